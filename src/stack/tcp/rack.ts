// RACK time-based loss detection (RFC 8985 §6) for SACK connections: a record per transmitted
// range (new data or a retransmission; a TSO super-segment is one record until a SACK splits it)
// with its transmit time, kept in transmit order in a ring of typed arrays that grows by
// doubling; and RACK's state (the most recently sent delivered record, its RTT, min_RTT,
// reordering). A record is lost when something sent after it was delivered at least
// RACK.rtt + reo_wnd after it was sent — which also finds a lost retransmission, something
// RFC 6675's DupThresh rule never does. No allocation once the ring is large enough.
import type { TcpOptions } from '../../wire/tcp.js';
import { armRexmtTimer, retransmit, tcpOutput } from './output.js';
import { prrOnAck, prrStart } from './prr.js';
import { DUP_THRESH, type SackScoreboard } from './sack.js';
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';
import { TcpState, type Tcb } from './tcb.js';
import type { Tcp } from './tcp.js';

export const RecFlag = {
  /** The range was sent before (a retransmission): its delivery may be the original's. */
  Rexmt: 1,
  /** Wholly SACKed. */
  Sacked: 2,
  /** RACK says lost: to be retransmitted. */
  Lost: 4,
  /** Superseded by a later retransmission of the same bytes, or acknowledged: ignored. */
  Dead: 8,
} as const;

const INITIAL_CAPACITY = 64;

/**
 * RFC 8985 §6.2 step 2's RACK_sent_after(t1, seq1, t2, seq2) breaks a tie of transmit times by
 * end_seq; here the tie is broken by the order of transmission itself, which also orders a
 * retransmission after new data sent in the same millisecond (pieces of one
 * super-segment share its order and fall back to end_seq).
 */
function sentAfter(t1: number, o1: number, e1: number, t2: number, o2: number, e2: number): boolean {
  return t1 > t2 || (t1 === t2 && (o1 > o2 || (o1 === o2 && seqGt(e1, e2))));
}

export class Rack {
  // RFC 8985 §6.1 per-connection state.
  /** RACK.xmit_ts: transmit time of the most recently sent delivered record; -1 before any. */
  xmitTs = -1;
  /** RACK.end_seq: that record's end. */
  endSeq = 0;
  /** Transmission order of that record (the tie-breaker for equal transmit times). */
  private xmitOrder = -1;
  /** Next transmission order number. */
  private nextOrder = 0;
  /** RACK.rtt: the RTT of that record's delivery. */
  rtt = 0;
  /** RACK.min_RTT: the smallest RTT seen (Infinity before a sample). */
  minRtt = Infinity;
  /** RACK.fack: the highest end of a delivered record. */
  fack = 0;
  private hasFack = false;
  /** RACK.reordering_seen: a record was delivered below RACK.fack without being retransmitted. */
  reorderingSeen = false;
  /** Live records marked lost and not yet retransmitted. */
  lostCount = 0;

  private cap = INITIAL_CAPACITY;
  private mask = INITIAL_CAPACITY - 1;
  private head = 0;
  private n = 0;
  private starts = new Uint32Array(INITIAL_CAPACITY);
  private ends = new Uint32Array(INITIAL_CAPACITY);
  private ts = new Float64Array(INITIAL_CAPACITY);
  private order = new Float64Array(INITIAL_CAPACITY);
  private flags = new Uint8Array(INITIAL_CAPACITY);
  /** Records in the ring carrying Rexmt (live or not): while 0, the ring is in sequence order. */
  private rexmtRecords = 0;

  /** Records in the ring (for tests and diagnostics). */
  get size(): number { return this.n; }
  recordStart(i: number): number { return this.starts[(this.head + i) & this.mask]!; }
  recordEnd(i: number): number { return this.ends[(this.head + i) & this.mask]!; }
  recordTime(i: number): number { return this.ts[(this.head + i) & this.mask]!; }
  recordFlags(i: number): number { return this.flags[(this.head + i) & this.mask]!; }

  /** Back to the state of a new connection (for reuse from Tcp's pool). */
  reset(): void {
    this.clear();
    this.xmitTs = -1; this.endSeq = 0; this.xmitOrder = -1; this.nextOrder = 0;
    this.rtt = 0; this.minRtt = Infinity; this.fack = 0; this.hasFack = false; this.reorderingSeen = false;
  }

  /** Forgets every record (after a retransmission timeout); RTT knowledge stays. */
  clear(): void {
    this.head = 0;
    this.n = 0;
    this.rexmtRecords = 0;
    this.lostCount = 0;
  }

  /**
   * A range [s, e) left at `now` (e includes a FIN). A retransmission supersedes the older
   * records' copies of the same bytes (RFC 8985 §6.2 step 1: the segment's xmit_ts becomes the
   * retransmission's); they are split where the ranges differ.
   */
  onSend(s: number, e: number, now: number, rexmt: boolean): void {
    s >>>= 0; e >>>= 0;
    if (rexmt) {
      for (let i = 0; i < this.n; i++) {
        const p = (this.head + i) & this.mask;
        if (this.flags[p]! & RecFlag.Dead) continue;
        const a = this.starts[p]!, b = this.ends[p]!;
        if (!seqLt(a, e) || !seqGt(b, s)) continue;
        if (seqLt(a, s)) { this.split(i, s); continue; } // the left piece stays; look at the right one next
        if (seqGt(b, e)) this.split(i, e);
        this.kill(p);
      }
      this.trimHead();
    }
    if (this.n === this.cap) this.grow();
    const p = (this.head + this.n) & this.mask;
    this.starts[p] = s; this.ends[p] = e; this.ts[p] = now; this.order[p] = this.nextOrder++; this.flags[p] = rexmt ? RecFlag.Rexmt : 0;
    if (rexmt) this.rexmtRecords++;
    this.n++;
  }

  /**
   * RFC 8985 §6.2 steps 1-3 for one ACK: the records it delivers (wholly below `una`, or wholly
   * SACKed now — a record SACKed in part is split so its SACKed pieces are delivered) update
   * RACK.xmit_ts / end_seq / rtt / min_RTT / fack / reordering_seen; delivered records leave.
   * `tsEcr` is the echoed timestamp in our TSval clock, -1 without one; `tsOffset` turns a
   * transmit time into that clock.
   */
  onAck(una: number, sb: SackScoreboard | null, blocks: Uint32Array, nBlocks: number, now: number, tsEcr: number, tsOffset: number): void {
    una >>>= 0;
    const inOrder = this.rexmtRecords === 0;
    for (let i = 0; i < this.n; i++) {
      const p = (this.head + i) & this.mask;
      const f = this.flags[p]!;
      if (f & RecFlag.Dead) continue;
      const a = this.starts[p]!, b = this.ends[p]!;
      if (seqLe(b, una)) {
        if (!(f & RecFlag.Sacked)) this.deliver(p, now, tsEcr, tsOffset);
        this.kill(p);
        continue;
      }
      if (seqLt(a, una)) { this.split(i, una); i--; continue; } // look at the acknowledged left piece again
      if (f & RecFlag.Sacked) continue;
      if (sb === null || nBlocks === 0 || !this.touches(a, b, blocks, nBlocks)) {
        if (inOrder && (sb === null || nBlocks === 0)) break; // nothing sent later is acknowledged either
        continue;
      }
      // Split off SACKed pieces (both keep the transmit time) and deliver them.
      const end = sb.rangeEndAt(a);
      if (end >= 0) {
        if (seqLt(end, b)) this.split(i, end);
        this.deliver(p, now, tsEcr, tsOffset);
        this.flags[p] = this.flags[p]! | RecFlag.Sacked;
        if (this.flags[p]! & RecFlag.Lost) { this.flags[p] = this.flags[p]! & ~RecFlag.Lost; this.lostCount--; }
      } else {
        const next = sb.nextRangeStart(a);
        if (next >= 0 && seqLt(next, b)) this.split(i, next);
      }
    }
    this.trimHead();
  }

  /**
   * RFC 8985 §6.2 step 5, RACK_detect_loss(): every live record not SACKed, sent before
   * RACK.xmit_ts, is lost once "Segment.xmit_ts + RACK.rtt + RACK.reo_wnd - Now() <= 0".
   * Returns the number newly marked lost; `timeoutOut[0]` gets the time until the youngest
   * record not yet due would be (0 when none: the reordering timer is not needed).
   */
  detectLoss(now: number, reoWnd: number, timeoutOut: Float64Array): number {
    timeoutOut[0] = 0;
    if (this.xmitTs < 0) return 0;
    let marked = 0;
    let timeout = 0;
    for (let i = 0; i < this.n; i++) {
      const p = (this.head + i) & this.mask;
      const t = this.ts[p]!;
      // Records are in transmit order: the first one sent after RACK.xmit_ts ends the scan.
      if (t > this.xmitTs) break;
      if (this.flags[p]! & (RecFlag.Dead | RecFlag.Sacked | RecFlag.Lost)) continue;
      if (!sentAfter(this.xmitTs, this.xmitOrder, this.endSeq, t, this.order[p]!, this.ends[p]!)) continue;
      const remaining = t + this.rtt + reoWnd - now;
      if (remaining <= 0) {
        this.flags[p] = this.flags[p]! | RecFlag.Lost;
        this.lostCount++;
        marked++;
      } else if (remaining > timeout) {
        timeout = remaining;
      }
    }
    timeoutOut[0] = timeout;
    return marked;
  }

  /**
   * The lowest live lost range to retransmit: its start, with its length (at most `mss`, never
   * into SACKed bytes) in out[0]; -1 when nothing is lost.
   */
  nextLost(sb: SackScoreboard, mss: number, out: Int32Array): number {
    if (this.lostCount === 0) return -1;
    let best = -1;
    let bestEnd = 0;
    for (let i = 0; i < this.n; i++) {
      const p = (this.head + i) & this.mask;
      if ((this.flags[p]! & (RecFlag.Lost | RecFlag.Dead | RecFlag.Sacked)) !== RecFlag.Lost) continue;
      let s = this.starts[p]!;
      const b = this.ends[p]!;
      // Skip SACKed bytes inside the record.
      for (let e = sb.rangeEndAt(s); e >= 0 && seqLt(s, b); e = sb.rangeEndAt(s)) s = e;
      if (!seqLt(s, b)) continue;
      if (best < 0 || seqLt(s, best)) {
        best = s;
        let hi = b;
        const next = sb.nextRangeStart(s);
        if (next >= 0 && seqLt(next, hi)) hi = next;
        bestEnd = hi;
      }
    }
    if (best < 0) return -1;
    const room = (bestEnd - best) >>> 0;
    out[0] = room < mss ? room : mss;
    return best;
  }

  /**
   * What RFC 6675's SetPipe() counts for bytes RACK has since declared lost and not yet resent:
   * the original once unless IsLost() already says lost, and once more below HighRxt (its
   * retransmission, now lost too). Output subtracts this so lost bytes are not "in flight".
   */
  lostInPipe(sb: SackScoreboard, highRxt: number, mss: number): number {
    if (this.lostCount === 0) return 0;
    let total = 0;
    for (let i = 0; i < this.n; i++) {
      const p = (this.head + i) & this.mask;
      if ((this.flags[p]! & (RecFlag.Lost | RecFlag.Dead | RecFlag.Sacked)) !== RecFlag.Lost) continue;
      const a = this.starts[p]!;
      const len = (this.ends[p]! - a) >>> 0;
      if (!sb.isLost(a, mss)) total += len;
      if (seqLt(a, highRxt)) total += len;
    }
    return total;
  }

  /** RFC 8985 §6.2 step 2, RACK_update(), for one delivered record. */
  private deliver(p: number, now: number, tsEcr: number, tsOffset: number): void {
    const t = this.ts[p]!;
    const end = this.ends[p]!;
    const rtt = now - t;
    const rexmt = (this.flags[p]! & RecFlag.Rexmt) !== 0;
    if (rexmt) {
      // "If Segment.retransmitted is TRUE and ACK.ts_option.echo_reply < Segment.xmit_ts: Return"
      // "If Segment.retransmitted is TRUE and rtt < RACK.min_RTT: Return" — the ACK is likely
      // for the original, and believing it would mark the unacknowledged rest lost spuriously.
      if (tsEcr >= 0 && seqLt(tsEcr, (Math.floor(t) + tsOffset) >>> 0)) return;
      if (rtt < this.minRtt) return;
    } else if (rtt < this.minRtt) {
      this.minRtt = rtt;
    }
    this.rtt = rtt;
    if (sentAfter(t, this.order[p]!, end, this.xmitTs, this.xmitOrder, this.endSeq)) { this.xmitTs = t; this.endSeq = end; this.xmitOrder = this.order[p]!; }
    // Step 3, RACK_detect_reordering().
    if (!this.hasFack || seqGt(end, this.fack)) { this.fack = end; this.hasFack = true; }
    else if (seqLt(end, this.fack) && !rexmt) this.reorderingSeen = true;
  }

  private touches(a: number, b: number, blocks: Uint32Array, n: number): boolean {
    for (let k = 0; k < n; k++) if (seqLt(blocks[2 * k]!, b) && seqGt(blocks[2 * k + 1]!, a)) return true;
    return false;
  }

  private kill(p: number): void {
    const f = this.flags[p]!;
    if ((f & (RecFlag.Lost | RecFlag.Dead)) === RecFlag.Lost) this.lostCount--;
    this.flags[p] = (f & ~RecFlag.Lost) | RecFlag.Dead;
  }

  /** Drops dead records at the head of the ring. */
  private trimHead(): void {
    while (this.n > 0 && (this.flags[this.head]! & RecFlag.Dead)) {
      if (this.flags[this.head]! & RecFlag.Rexmt) this.rexmtRecords--;
      this.head = (this.head + 1) & this.mask;
      this.n--;
    }
  }

  /** Splits record i at `seq` (inside it) into [start, seq) at i and [seq, end) at i + 1. */
  private split(i: number, seq: number): void {
    if (this.n === this.cap) this.grow();
    // Shift records i+1.. one place towards the tail.
    for (let k = this.n; k > i + 1; k--) {
      const to = (this.head + k) & this.mask, from = (this.head + k - 1) & this.mask;
      this.starts[to] = this.starts[from]!; this.ends[to] = this.ends[from]!;
      this.ts[to] = this.ts[from]!; this.order[to] = this.order[from]!; this.flags[to] = this.flags[from]!;
    }
    const p = (this.head + i) & this.mask, q = (this.head + i + 1) & this.mask;
    this.starts[q] = seq >>> 0; this.ends[q] = this.ends[p]!; this.ts[q] = this.ts[p]!; this.order[q] = this.order[p]!; this.flags[q] = this.flags[p]!;
    this.ends[p] = seq >>> 0;
    const f = this.flags[p]!;
    if (f & RecFlag.Rexmt) this.rexmtRecords++;
    if ((f & (RecFlag.Lost | RecFlag.Dead)) === RecFlag.Lost) this.lostCount++;
    this.n++;
  }

  private grow(): void {
    const cap = this.cap * 2;
    const starts = new Uint32Array(cap), ends = new Uint32Array(cap), ts = new Float64Array(cap), order = new Float64Array(cap), flags = new Uint8Array(cap);
    for (let i = 0; i < this.n; i++) {
      const p = (this.head + i) & this.mask;
      starts[i] = this.starts[p]!; ends[i] = this.ends[p]!; ts[i] = this.ts[p]!; order[i] = this.order[p]!; flags[i] = this.flags[p]!;
    }
    this.starts = starts; this.ends = ends; this.ts = ts; this.order = order; this.flags = flags;
    this.cap = cap; this.mask = cap - 1; this.head = 0;
  }
}

// ---- The TCB side: when RACK runs, what it changes ----

const timeoutOut = new Float64Array(1);

/**
 * RFC 8985 §6.2.4 step 4, RACK_update_reo_wnd() without the D-SACK multiplier: "If
 * RACK.reordering_seen is FALSE: If in Fast or RTO recovery: Return 0; Else if RACK.segs_sacked
 * >= DupThresh: Return 0", else "min(RACK.min_RTT / 4, SRTT)".
 */
export function rackReoWnd(tcb: Tcb): number {
  const r = tcb.rack!;
  if (!r.reorderingSeen) {
    if (tcb.inRecovery || tcb.rtoRecovery) return 0;
    if (tcb.hasScoreboard && tcb.scoreboard.sackedBytes > (DUP_THRESH - 1) * tcb.maxSeg) return 0;
  }
  let w = r.minRtt === Infinity ? 0 : r.minRtt / 4;
  if (tcb.rtt.hasSample && w > tcb.rtt.srtt) w = tcb.rtt.srtt;
  return w;
}

/**
 * RACK for one acceptable ACK (after the scoreboard took its SACK blocks): update, detect,
 * (re)arm or stop the reordering timer. Returns true when records were newly marked lost.
 */
export function rackOnAck(tcp: Tcp, tcb: Tcb, opts: TcpOptions, now: number): boolean {
  const r = tcb.rack;
  if (r === null || !tcp.tun.rack.value) return false;
  const tsEcr = tcb.tsOk && opts.timestamps && opts.tsEcr !== 0 ? opts.tsEcr : -1;
  r.onAck(tcb.sndUna, tcb.hasScoreboard ? tcb.scoreboard : null, opts.sackBlocks, opts.sackCount, now, tsEcr, tcb.tsOffset);
  return rackDetect(tcp, tcb, now);
}

/** RACK_detect_loss_and_arm_timer() (RFC 8985 §6.2 step 5). */
export function rackDetect(tcp: Tcp, tcb: Tcb, now: number): boolean {
  const r = tcb.rack!;
  const wheel = tcp.host.wheel;
  // After a retransmission timeout the go-back-N resend owns recovery (RFC 6675 §5.1).
  const marked = tcb.rtoRecovery ? 0 : r.detectLoss(now, rackReoWnd(tcb), timeoutOut);
  const t = tcb.rtoRecovery ? 0 : timeoutOut[0]!;
  tcp.counters.rackLost += marked;
  // "If timeout != 0: Arm the RACK timer to call RACK_detect_loss_and_arm_timer() after timeout"
  if (t > 0) wheel.arm(tcb.reoTimer, now + Math.ceil(t));
  else if (tcb.reoArmed) wheel.disarm(tcb.reoTimer);
  return marked > 0;
}

/**
 * Losses RACK found outside recovery start SACK recovery (RFC 6675 §5, as a DupThresh loss
 * would); the congestion response is made once per episode: not again while SND.UNA is below
 * "recover" (RFC 6582 §3.2 step 2).
 */
export function rackEnterRecovery(tcp: Tcp, tcb: Tcb, now: number): void {
  if (tcb.inRecovery || tcb.rtoRecovery || !tcb.sackOk) return;
  tcb.inRecovery = true;
  tcb.rttSeq = -1;
  tcb.highRxt = tcb.sndUna;
  // No loss probes during recovery (RFC 8985 §7.2): a pending probe timeout becomes the RTO.
  if (tcb.tlpArmed) armRexmtTimer(tcp, tcb, now);
  if (seqGe(tcb.sndUna, tcb.recover)) {
    tcp.counters.fastRetransmits++;
    tcp.counters.sackRecoveries++;
    tcb.recover = tcb.sndMax;
    tcb.cc.onCongestion(now, seqDiff(tcb.sndMax, tcb.sndUna));
  }
  // PRR runs for every recovery episode (state from an earlier one must not carry over).
  prrStart(tcb);
  prrOnAck(tcb, 0);
  // RFC 6675 §5 (4.3): "the TCP MUST retransmit the first data segment presumed dropped" —
  // whatever pipe says; the rest follows by pipe.
  const r = tcb.rack;
  if (r === null || !tcb.hasScoreboard) return;
  const s = r.nextLost(tcb.scoreboard, tcb.maxSeg, lostOut);
  if (s < 0) return;
  const n = retransmit(tcp, tcb, s >>> 0, lostOut[0]!, now);
  const end = (s + n) >>> 0;
  if (n > 0 && seqGt(end, tcb.highRxt)) tcb.highRxt = end;
}
const lostOut = new Int32Array(2);

/** The reordering timer fired: detect again; what is now lost is retransmitted. */
export function onRackTimer(tcb: Tcb, now: number): void {
  const tcp = tcb.tcp;
  if (tcb.state === TcpState.CLOSED || tcb.rack === null || !tcp.tun.rack.value) return;
  if (rackDetect(tcp, tcb, now)) {
    tcp.counters.rackTimeouts++;
    rackEnterRecovery(tcp, tcb, now);
    tcpOutput(tcp, tcb, now);
  }
  tcp.dispatch();
}
