// Proportional Rate Reduction (RFC 6937), as Linux runs it for SACK fast recovery: on each ACK
// during recovery the sender may send what brings the data it sent since recovery began
// (prr_out) in proportion to what the receiver got (prr_delivered) — ssthresh / RecoverFS of
// it — while the pipe (RFC 6675 SetPipe) is above ssthresh; below it, slow start back up to
// ssthresh (PRR-SSRB), at most one segment more than was delivered. RFC 6675's own rule
// (send while cwnd - pipe >= SMSS, cwnd = ssthresh) instead sends nothing until the pipe has
// drained below ssthresh, then one segment per ACK: a stall, then a burst.
import type { SackScoreboard } from './sack.js';
import type { Tcb } from './tcb.js';

/** Fast recovery began: RFC 6937 §3 "RecoverFS = snd.nxt - snd.una; prr_delivered = 0; prr_out = 0". */
export function prrStart(tcb: Tcb): void {
  tcb.recoverFs = (tcb.sndMax - tcb.sndUna) >>> 0;
  tcb.prrDelivered = 0;
  tcb.prrOut = 0;
}

/**
 * An ACK during recovery reported `delivered` bytes (cumulatively or by SACK, RFC 6937's
 * DeliveredData): sets cwnd so that the sender's `cwnd - pipe` rule sends sndcnt bytes, in whole
 * segments.
 */
export function prrOnAck(tcb: Tcb, delivered: number): void {
  if (!tcb.hasScoreboard) return;
  const mss = tcb.maxSeg;
  tcb.prrDelivered += delivered;
  const pipe = sackPipe(tcb, tcb.scoreboard, mss);
  const ssthresh = tcb.cc.ssthresh;
  let sndcnt: number;
  if (pipe > ssthresh) {
    // "sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out", counted in segments as
    // Linux counts it (SACK blocks need not fall on segment boundaries).
    const d = Math.round(tcb.prrDelivered / mss);
    const fs = Math.max(1, Math.round(tcb.recoverFs / mss));
    sndcnt = Math.ceil(d * Math.round(ssthresh / mss) / fs) * mss - tcb.prrOut;
  } else {
    // PRR-SSRB: "limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS;
    // sndcnt = MIN(ssthresh - pipe, limit)"
    const d = tcb.prrDelivered - tcb.prrOut;
    const limit = (d > delivered ? d : delivered) + mss;
    sndcnt = ssthresh - pipe < limit ? ssthresh - pipe : limit;
  }
  sndcnt -= sndcnt % mss;
  // Linux: the fast retransmit on entering recovery goes whatever the arithmetic says (RFC 6675
  // §5 (4.3) "MUST retransmit the first data segment presumed dropped").
  if (sndcnt < mss && tcb.prrOut === 0) sndcnt = mss;
  if (sndcnt < 0) sndcnt = 0;
  tcb.cc.cwnd = pipe + sndcnt;
}

/** RFC 6675 SetPipe(), less what RACK has since found lost (neither it nor its retransmission is in flight). */
export function sackPipe(tcb: Tcb, sb: SackScoreboard, mss: number): number {
  const pipe = sb.pipe(tcb.sndUna, tcb.sndNxt, tcb.highRxt, mss);
  const r = tcb.rack;
  if (r === null || r.lostCount === 0) return pipe;
  const p = pipe - r.lostInPipe(sb, tcb.highRxt, mss);
  return p > 0 ? p : 0;
}
