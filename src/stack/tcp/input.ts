// SEGMENT ARRIVES (RFC 9293 §3.10.7) for a connection that exists, with RFC 5961's
// challenge ACKs, RFC 7323's PAWS, and loss recovery driven by ACKs (RFC 5681 fast
// retransmit, RFC 6582 NewReno, RFC 6675 SACK, RFC 3042 limited transmit).
import { TcpFlag } from '../../wire/tcp.js';
import { armRexmtTimer, retransmit, sendAck, sendChallengeAck, sendRst, tcpOutput, tsNow } from './output.js';
import { rcvAutotune, sndAutotune } from './autotune.js';
import { prrOnAck, prrStart } from './prr.js';
import { rackEnterRecovery, rackOnAck } from './rack.js';
import { seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMin } from './seq.js';
import { TcbStats } from './stats.js';
import { fastOpenSynAck, tfoChild } from './fastopen.js';
import { ecnEcho, ecnOnData } from './ecn.js';
import { EcnFlag, KeepMode, TcbEvent, Tcb, TcpState } from './tcb.js';
import type { Segment, Tcp } from './tcp.js';
import { applySynOptions, armKeepalive, dropConnection, enterTimeWait, establish, freeTcb, setState } from './lifecycle.js';

/** RFC 7323 §5.5: TS.Recent older than 24 days is invalid. */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;

export function segmentArrives(tcp: Tcp, tcb: Tcb, seg: Segment): void {
  const now = tcp.host.clock.now();
  const flags = seg.flags;
  const opts = seg.opts;
  // A coalesced super-segment (ip/gro.ts, or the device's) counts as the segments it holds (Linux's gso_segs).
  const gs = seg.buf.gsoSize;
  const segs = gs > 0 && seg.dataLen > gs ? Math.ceil(seg.dataLen / gs) : 1;
  tcb.segsIn += segs;
  if (seg.dataLen > 0) (tcb.stats ??= new TcbStats()).dataSegsIn += segs;
  if ((flags & TcpFlag.ACK) && tcb.stats !== null) tcb.stats.lastAckRecvTime = now;
  if (tcb.state === TcpState.SYN_SENT) { synSentInput(tcp, tcb, seg, now); return; }

  // TIME_WAIT is handled by timewait.ts: a connection there has no TCB in the table.
  // A retransmitted SYN in SYN_RECEIVED: our SYN-ACK was lost, send it again.
  if (tcb.state === TcpState.SYN_RECEIVED && (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN && seg.seq === tcb.irs) {
    tcb.sndNxt = tcb.iss;
    tcpOutput(tcp, tcb, now);
    return;
  }

  // RFC 7323 §5.3 PAWS: "If there is a Timestamps option in the arriving segment, SEG.TSval <
  // TS.Recent, TS.Recent is valid, and the RST bit is not set, then treat the arriving segment
  // as not acceptable: Send an acknowledgment in reply as specified in RFC 793 page 69 and drop
  // the segment."
  if (tcb.tsOk && opts.timestamps && !(flags & TcpFlag.RST) && seqLt(opts.tsVal, tcb.tsRecent)) {
    if (now - tcb.tsRecentAge > PAWS_IDLE_MS) {
      tcb.tsRecent = opts.tsVal; // §5.5: an idle connection's TS.Recent is no longer valid
    } else {
      tcp.counters.rcvPawsDropped++;
      sendAck(tcp, tcb, now);
      return;
    }
  }

  // First: check the sequence number (§3.10.7.4, the four acceptability cases).
  let rcvWnd = seqDiff(tcb.rcvAdv, tcb.rcvNxt);
  if (rcvWnd < 0) rcvWnd = 0;
  let seq = seg.seq;
  let dataOff = seg.dataOff;
  let dataLen = seg.dataLen;
  let fin = (flags & TcpFlag.FIN) !== 0;
  let syn = (flags & TcpFlag.SYN) !== 0;
  const segLen = seg.len;
  let acceptable: boolean;
  if (segLen === 0) {
    acceptable = rcvWnd === 0 ? seq === tcb.rcvNxt : seqInRange(seq, tcb.rcvNxt, (tcb.rcvNxt + rcvWnd) >>> 0);
  } else if (rcvWnd === 0) {
    acceptable = false;
    // "special allowance should be made to accept valid ACKs, URGs, and RSTs": a zero-window
    // probe at RCV.NXT is processed for its ACK and answered with our (zero) window.
    if (seq === tcb.rcvNxt && !(flags & TcpFlag.RST)) { acceptable = true; dataLen = 0; fin = false; tcb.ackNow = true; }
  } else {
    const end = (tcb.rcvNxt + rcvWnd) >>> 0;
    acceptable = seqInRange(seq, tcb.rcvNxt, end) || seqInRange((seq + segLen - 1) >>> 0, tcb.rcvNxt, end);
  }
  if (!acceptable) {
    // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply
    // (unless the RST bit is set, if so drop the segment and return)"
    tcp.counters.rcvOutOfWindow++;
    if (flags & TcpFlag.RST) return;
    sendAck(tcp, tcb, now);
    return;
  }
  tcb.lastRecvTime = now;
  tcb.keepProbes = 0;
  tcb.persistProbes = 0;
  tcb.softError = '';

  // Second: the RST bit (RFC 5961 §3.2).
  if (flags & TcpFlag.RST) {
    if (seg.seq !== tcb.rcvNxt) {
      // "If the RST bit is set and the sequence number does not exactly match the next expected
      // sequence value, yet is within the current receive window, TCP MUST send an
      // acknowledgment (challenge ACK)"
      sendChallengeAck(tcp, tcb);
      return;
    }
    switch (tcb.state) {
      case TcpState.SYN_RECEIVED:
        // "If this connection was initiated with a passive OPEN ... return this connection to
        // LISTEN state"; an active one was refused.
        // A TFO connection is the application's already: it is reset.
        if (tfoChild(tcb)) { tcp.counters.connResets++; dropConnection(tcp, tcb, 'ECONNRESET'); }
        else if (tcb.passive) { tcp.counters.connDrops++; freeTcb(tcp, tcb); } else { tcp.counters.connRefused++; dropConnection(tcp, tcb, 'ECONNREFUSED'); }
        return;
      case TcpState.ESTABLISHED: case TcpState.FIN_WAIT_1: case TcpState.FIN_WAIT_2: case TcpState.CLOSE_WAIT:
        tcp.counters.connResets++;
        dropConnection(tcp, tcb, 'ECONNRESET');
        return;
      default: // CLOSING, LAST_ACK: "enter the CLOSED state, delete the TCB, and return"
        dropConnection(tcp, tcb, '');
        return;
    }
  }

  // Trim to the window: bytes before RCV.NXT are old duplicates, bytes past the right edge
  // do not fit.
  let front = seqDiff(tcb.rcvNxt, seq);
  if (front > 0 && !syn) {
    if (front >= dataLen + (fin ? 1 : 0)) {
      // Nothing new: a pure duplicate (keep it for its ACK, but ACK now so the peer learns).
      if (dataLen > 0 || fin) tcb.ackNow = true;
      front = dataLen;
      fin = false;
    }
    dataOff += front; dataLen -= front; seq = (seq + front) >>> 0;
  }
  if (dataLen > 0) {
    const over = seqDiff((seq + dataLen) >>> 0, (tcb.rcvNxt + rcvWnd) >>> 0);
    if (over > 0) { dataLen -= over; fin = false; tcb.ackNow = true; }
  }

  // RFC 7323 §4.3: "If SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent then SEG.TSval is
  // copied to TS.Recent".
  // Like Linux, not from a segment whose ACK covers data never sent: a forged or broken segment
  // must not move TS.Recent (it would weaken PAWS for the real peer's segments).
  if (tcb.tsOk && opts.timestamps && seqGe(opts.tsVal, tcb.tsRecent) && seqLe(seg.seq, tcb.lastAckSent)
    && (!(flags & TcpFlag.ACK) || seqLe(seg.ack, tcb.sndMax))) {
    tcb.tsRecent = opts.tsVal; tcb.tsRecentAge = now;
  }

  // Fourth: the SYN bit. RFC 5961 §4.2: "If the SYN bit is set, irrespective of the sequence
  // number, TCP MUST send an ACK (also referred to as challenge ACK) to the remote peer".
  if (syn) {
    if (tcb.state === TcpState.SYN_RECEIVED && tcb.passive) {
      tcp.counters.connDrops++;
      if (tfoChild(tcb)) dropConnection(tcp, tcb, 'ECONNRESET'); else freeTcb(tcp, tcb);
      return;
    }
    sendChallengeAck(tcp, tcb);
    return;
  }

  // Fifth: the ACK field. "if the ACK bit is off, drop the segment and return"
  if (!(flags & TcpFlag.ACK)) return;
  const ack = seg.ack;

  if (tcb.state === TcpState.SYN_RECEIVED) {
    // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state ... If the segment
    // acknowledgment is not acceptable, form a reset segment, <SEQ=SEG.ACK><CTL=RST>"
    if (!(seqGt(ack, tcb.sndUna) && seqLe(ack, tcb.sndMax))) {
      sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, ack, 0, TcpFlag.RST, tcb);
      return;
    }
    tcb.sndWnd = seg.wnd << tcb.sndWscale;
    tcb.sndWl1 = seg.seq; tcb.sndWl2 = ack;
    if (tcb.sndWnd > tcb.maxSndWnd) tcb.maxSndWnd = tcb.sndWnd;
    if (!establish(tcp, tcb, now)) return;
  }

  // RFC 5961 §5.2: acceptable ACKs satisfy (SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT;
  // anything else gets a (rate-limited) ACK and is dropped.
  if (seqGt(ack, tcb.sndMax)) {
    tcp.counters.rcvAckTooMuch++;
    sendChallengeAck(tcp, tcb);
    return;
  }
  if (seqLt(ack, (tcb.sndUna - Math.max(tcb.maxSndWnd, 1)) >>> 0)) {
    sendChallengeAck(tcp, tcb);
    return;
  }

  let ourFinAcked = false;
  const wnd = seg.wnd << tcb.sndWscale;
  // RFC 8985 §7.4: another ACK of exactly the loss probe's end (with or without its D-SACK):
  // the original and the probe both arrived; nothing was lost.
  if (tcb.tlpHigh >= 0 && ack === tcb.sndUna && !seqLt(ack, tcb.tlpHigh)) tcb.tlpHigh = -1;
  if (seqGt(ack, tcb.sndUna)) {
    ourFinAcked = newAck(tcp, tcb, seg, ack, now);
  } else if (ack === tcb.sndUna && dataLen === 0 && !fin && tcb.sndMax !== tcb.sndUna && tcb.rexmtTimer.armed
    && (wnd === tcb.sndWnd || (tcb.sackOk && opts.sackCount > 0))) {
    // RFC 5681 §2's duplicate ACK (with SACK, RFC 6675 counts ACKs carrying SACK information).
    // Like FreeBSD, only while the retransmission timer runs: answers to zero-window probes
    // are not duplicate ACKs.
    tcp.counters.rcvDupAck++;
    dupAck(tcp, tcb, seg, now);
  } else if (tcb.sackOk && opts.sackCount > 0) {
    const newlySacked = tcb.scoreboard.update(tcb.sndUna, tcb.sndMax, opts.sackBlocks, opts.sackCount);
    if (rackOnAck(tcp, tcb, opts, now)) rackEnterRecovery(tcp, tcb, now);
    else if (tcb.inRecovery) prrOnAck(tcb, newlySacked);
  }

  // RFC 3168 §6.1.2: the receiver saw congestion (ECE) — halve cwnd, at most once per window.
  if ((flags & TcpFlag.ECE) && (tcb.ecn & EcnFlag.Ok)) ecnEcho(tcp, tcb, now);

  // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated. If (SND.WL1 < SEG.SEQ
  // or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)), set SND.WND <- SEG.WND, set SND.WL1 <-
  // SEG.SEQ, and set SND.WL2 <- SEG.ACK."
  if (seqLt(tcb.sndWl1, seg.seq) || (tcb.sndWl1 === seg.seq && seqLe(tcb.sndWl2, ack))) {
    const opened = tcb.sndWnd === 0 && wnd > 0;
    tcb.sndWnd = wnd; tcb.sndWl1 = seg.seq; tcb.sndWl2 = ack;
    if (wnd > tcb.maxSndWnd) tcb.maxSndWnd = wnd;
    if (opened && tcb.persistArmed) {
      // Out of persist: the unaccepted probe byte is sent again as ordinary data.
      tcp.host.wheel.disarm(tcb.persistTimer);
      tcb.persistBackoff = 0;
      tcb.sndNxt = tcb.sndUna;
    }
  }

  switch (tcb.state) {
    case TcpState.FIN_WAIT_1:
      // "if the FIN segment is now acknowledged, then enter FIN-WAIT-2"
      if (ourFinAcked) {
        setState(tcb, TcpState.FIN_WAIT_2);
        if (tcb.userClosed) armFinWait2(tcp, tcb, now);
      }
      break;
    case TcpState.CLOSING:
      if (ourFinAcked) { enterTimeWait(tcp, tcb, now); return; }
      break;
    case TcpState.LAST_ACK:
      // "The only thing that can arrive in this state is an acknowledgment of our FIN. If our
      // FIN is now acknowledged, delete the TCB, enter the CLOSED state, and return."
      if (ourFinAcked) { dropConnection(tcp, tcb, ''); return; }
      break;
  }

  // Sixth: URG. Urgent data stays in-band (RFC 6093 §5: "the urgent mechanism ... should not
  // be used by new applications"); it is only counted.
  if (flags & TcpFlag.URG) tcp.counters.rcvUrgent++;

  // Seventh: segment text.
  if (seg.dataLen > 0 && (tcb.ecn & EcnFlag.Ok)) ecnOnData(tcp, tcb, flags, seg.ecn);
  if (dataLen > 0) {
    const st = tcb.state;
    if (st === TcpState.ESTABLISHED || st === TcpState.FIN_WAIT_1 || st === TcpState.FIN_WAIT_2) {
      if (tcb.userClosed) {
        // The application closed without reading: like Linux and FreeBSD, answer data arriving
        // after close() with a reset.
        tcp.counters.rcvAfterClose++;
        sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST, tcb);
        dropConnection(tcp, tcb, '');
        return;
      }
      // The receiver's own RTT sample (Linux tcp_rcv_rtt_measure_ts): the sender echoes our ACKs' TSval.
      const rttSample = tcb.tsOk && seg.opts.timestamps && seg.opts.tsEcr !== 0 ? (tsNow(tcb, now) - seg.opts.tsEcr) >>> 0 : -1;
      receiveData(tcp, tcb, seq, seg.bytes, dataOff, dataLen, fin, rttSample, now);
      fin = fin && ((seq + dataLen) >>> 0) === tcb.rcvNxt;
    } else {
      fin = false; // CLOSE_WAIT, CLOSING, LAST_ACK: the peer already sent its FIN
    }
  } else if (fin && seq !== tcb.rcvNxt) {
    // A FIN past a hole: remember where it is, take it when the hole fills.
    tcb.rcvFinSeq = seq;
    tcb.ackNow = true;
    fin = false;
  }
  if (!fin && tcb.rcvFinSeq >= 0 && tcb.rcvFinSeq === tcb.rcvNxt && !tcb.finRcvd) fin = true;

  // Eighth: the FIN bit.
  if (fin && !tcb.finRcvd) {
    tcb.rcvNxt = (tcb.rcvNxt + 1) >>> 0;
    tcb.finRcvd = true;
    tcb.rcvFinSeq = -1;
    tcb.ackNow = true;
    tcp.post(tcb, TcbEvent.End);
    switch (tcb.state) {
      case TcpState.SYN_RECEIVED: case TcpState.ESTABLISHED:
        setState(tcb, TcpState.CLOSE_WAIT);
        break;
      case TcpState.FIN_WAIT_1:
        // "If our FIN has been ACKed ... enter TIME-WAIT ... otherwise, enter the CLOSING state."
        setState(tcb, TcpState.CLOSING);
        break;
      case TcpState.FIN_WAIT_2:
        tcpOutput(tcp, tcb, now);
        enterTimeWait(tcp, tcb, now);
        return;
    }
  }

  tcpOutput(tcp, tcb, now);
}

/** New data acknowledged (SND.UNA < SEG.ACK =< SND.MAX). Returns true when our FIN is now acked. */
function newAck(tcp: Tcp, tcb: Tcb, seg: Segment, ack: number, now: number): boolean {
  const acked = seqDiff(ack, tcb.sndUna);
  const flightBefore = seqDiff(tcb.sndMax, tcb.sndUna);
  const opts = seg.opts;
  // RTT: from the echoed timestamp (RFC 7323 §4.1), else the timed segment (Karn's rule: the
  // timing was cancelled when anything was retransmitted).
  let rttMs = -1;
  if (tcb.tsOk && opts.timestamps && opts.tsEcr !== 0) {
    const r = (tsNow(tcb, now) - opts.tsEcr) >>> 0;
    if (r < 0x7fffffff) rttMs = r;
  } else if (tcb.rttSeq >= 0 && seqGt(ack, tcb.rttSeq)) {
    rttMs = now - tcb.rttStart;
    tcb.rttSeq = -1;
  }
  if (rttMs >= 0) tcb.rtt.sample(rttMs);

  // Drop acknowledged bytes from the send buffer.
  const dataEnd = (tcb.sndBase + tcb.sndBuf.length) >>> 0;
  const ackedData = seqDiff(seqMin(ack, dataEnd), tcb.sndBase);
  if (ackedData > 0) {
    const wasFull = tcb.sndBuf.free === 0;
    tcb.sndBuf.drop(ackedData);
    tcb.sndBase = (tcb.sndBase + ackedData) >>> 0;
    tcb.bytesAcked += ackedData;
    // Delivery rate for TCP_INFO: bytes acknowledged over at least one smoothed RTT.
    const st = tcb.stats ??= new TcbStats();
    if (st.rateStart < 0) { st.rateStart = now; st.rateBase = tcb.bytesAcked - ackedData; }
    else if (now - st.rateStart >= Math.max(1, tcb.rtt.srtt)) {
      st.deliveryRate = Math.round((tcb.bytesAcked - st.rateBase) * 1000 / (now - st.rateStart));
      st.rateStart = now; st.rateBase = tcb.bytesAcked;
    }
    if (tcb.sock && (wasFull || tcb.sock.wantDrain) && !tcb.finQueued) tcp.post(tcb, TcbEvent.Drain);
  }
  const finAcked = tcb.finSent && seqGt(ack, tcb.finSeq);
  const sackedBefore = tcb.hasScoreboard ? tcb.scoreboard.sackedBytes : 0;
  tcb.sndUna = ack;
  if (seqLt(tcb.sndNxt, ack)) tcb.sndNxt = ack;
  if (tcb.sackOk && (opts.sackCount > 0 || tcb.hasScoreboard)) tcb.scoreboard.update(ack, tcb.sndMax, opts.sackBlocks, opts.sackCount);
  // RFC 6937 DeliveredData: "the change in snd.una" plus "the change in SACKed bytes".
  const delivered = acked + (tcb.hasScoreboard ? tcb.scoreboard.sackedBytes : 0) - sackedBefore;
  rackOnAck(tcp, tcb, opts, now);
  tcb.rexmtCount = 0;
  tcb.firstRexmtTime = -1;
  // The user timeout runs from the oldest unacknowledged send; without per-segment send times,
  // the data above this ACK counts from now (at most an RTT later than its send).
  tcb.unaSentAt = ack === tcb.sndMax ? -1 : now;
  if (tcb.rtoRecovery && seqGe(ack, tcb.recover)) tcb.rtoRecovery = false;
  if (tcb.tlpHigh >= 0 && seqGe(ack, tcb.tlpHigh)) {
    // RFC 8985 §7.4: a D-SACK says the probe was a duplicate (nothing was lost). An ACK beyond
    // the probe without one says the probe repaired a lost tail, which gets its congestion
    // response; an ACK of exactly the probe waits for the next ACK (its D-SACK may follow).
    if (hasDsack(opts.sackBlocks, opts.sackCount, ack)) {
      tcb.tlpHigh = -1;
    } else if (seqGt(ack, tcb.tlpHigh)) {
      tcb.tlpHigh = -1;
      if (!tcb.inRecovery) {
        tcp.counters.tlpRecoveries++;
        tcb.cc.onCongestion(now, flightBefore);
        tcb.cc.onRecoveryExit(now);
        tcb.recover = tcb.sndMax;
      }
    }
  }

  if (tcb.inRecovery) {
    if (seqGe(ack, tcb.recover)) {
      // RFC 6582 §3.2 step 3: a full acknowledgment ends fast recovery.
      tcb.inRecovery = false;
      tcb.dupAcks = 0;
      tcb.cc.onRecoveryExit(now);
    } else if (!tcb.sackOk) {
      // Step 4 (partial ACK): "retransmit the first unacknowledged segment ... deflate the
      // congestion window by the amount of new data acknowledged ... then add back SMSS bytes
      // if the partial ACK acknowledges at least SMSS bytes of new data"
      const mss = tcb.maxSeg;
      retransmit(tcp, tcb, ack, mss, now);
      let cw = tcb.cc.cwnd - acked;
      if (acked >= mss) cw += mss;
      tcb.cc.cwnd = Math.max(cw, mss);
    } else {
      prrOnAck(tcb, delivered);
    }
  } else {
    tcb.dupAcks = 0;
    tcb.cc.onAck(acked, now, rttMs, flightBefore);
    sndAutotune(tcb);
  }
  // RFC 8985 §6.2: what RACK found lost (now, or on an earlier ACK of a recovery that has just
  // ended) is repaired by SACK recovery.
  if (!tcb.inRecovery && tcb.rack !== null && tcb.rack.lostCount > 0) rackEnterRecovery(tcp, tcb, now);

  // RFC 6298 §5.2/5.3: all data acknowledged -> stop the timer, else restart it.
  const wheel = tcp.host.wheel;
  if (tcb.sndUna === tcb.sndMax) {
    if (tcb.rexmtTimer.armed) wheel.disarm(tcb.rexmtTimer);
  } else {
    armRexmtTimer(tcp, tcb, now);
  }
  return finAcked;
}

/** RFC 2883: the first SACK block reports a duplicate when it lies at or below the cumulative ACK. */
function hasDsack(blocks: Uint32Array, n: number, ack: number): boolean {
  return n > 0 && !seqGt(blocks[1]!, ack);
}

function dupAck(tcp: Tcp, tcb: Tcb, seg: Segment, now: number): void {
  const opts = seg.opts;
  const delivered = tcb.sackOk && opts.sackCount > 0 ? tcb.scoreboard.update(tcb.sndUna, tcb.sndMax, opts.sackBlocks, opts.sackCount) : 0;
  const rackLost = rackOnAck(tcp, tcb, opts, now);
  tcb.dupAcks++;
  const mss = tcb.maxSeg;
  if (tcb.tlpHigh >= 0 && tcb.sackOk && seqLt(tcb.sndUna, tcb.tlpStart) && tcb.scoreboard.isSacked(tcb.tlpStart)) {
    // The probe arrived while older data is still missing: what was sent before it, a probe
    // timeout earlier, is lost (RFC 8985's time-based rule) — recover it by SACK now.
    tcb.scoreboard.markLostBelow(tcb.tlpStart);
    tcb.tlpHigh = -1;
    tcp.counters.tlpRecoveries++;
  }
  if (tcb.inRecovery) {
    // NewReno: "For each additional duplicate ACK received ... increment cwnd by SMSS" (RFC
    // 6582 §3.2 step 3 / RFC 5681 §3.2 step 4); SACK recovery sends by pipe instead.
    if (!tcb.sackOk) tcb.cc.cwnd += mss;
    else prrOnAck(tcb, delivered);
    tcpOutput(tcp, tcb, now);
    return;
  }
  const lost = tcb.dupAcks >= 3 || (tcb.sackOk && (rackLost || tcb.scoreboard.isLost(tcb.sndUna, mss)));
  // RFC 6582 §3.2 step 2: enter only when the ACK covers more than "recover" (no second
  // reduction for losses from the same window). With SACK, RFC 6675 §5 ends recovery on the ACK
  // that covers RecoveryPoint, so a loss found exactly there starts a new recovery at once
  // rather than waiting for the retransmission timer.
  if (lost && (tcb.sackOk ? seqGe(tcb.sndUna, tcb.recover) : seqGt(tcb.sndUna, tcb.recover))) {
    tcp.counters.fastRetransmits++;
    tcb.inRecovery = true;
    tcb.recover = tcb.sndMax;
    tcb.cc.onCongestion(now, seqDiff(tcb.sndMax, tcb.sndUna));
    tcb.rttSeq = -1;
    // No loss probes during recovery (RFC 8985 §7.2): a pending probe timeout becomes the RTO.
    if (tcb.tlpArmed) armRexmtTimer(tcp, tcb, now);
    // With SACK, RFC 6937 PRR sets the window for this ACK (RecoverFS: the flight just now).
    if (tcb.sackOk) { prrStart(tcb); prrOnAck(tcb, delivered); }
    // RFC 5681 §3.2 step 2/3: retransmit the lost segment; NewReno inflates by 3 segments.
    const n = retransmit(tcp, tcb, tcb.sndUna, mss, now);
    if (tcb.sackOk) {
      tcp.counters.sackRecoveries++;
      tcb.highRxt = (tcb.sndUna + n) >>> 0;
    } else {
      tcb.cc.cwnd = tcb.cc.ssthresh + 3 * mss;
    }
    tcpOutput(tcp, tcb, now);
    return;
  }
  if (rackLost && !tcb.inRecovery) {
    // RACK found a loss in the window of an earlier recovery: repair it, no second reduction.
    rackEnterRecovery(tcp, tcb, now);
    tcpOutput(tcp, tcb, now);
    return;
  }
  if (tcb.dupAcks < 3) {
    // RFC 3042 limited transmit: output() allows one extra segment per duplicate ACK.
    const before = tcb.sndMax;
    tcpOutput(tcp, tcb, now);
    if (tcb.sndMax !== before) tcp.counters.limitedTransmits++;
  }
}

/** Seventh step for ESTABLISHED / FIN_WAIT_1 / FIN_WAIT_2: queue in-order or out-of-order bytes. */
function receiveData(tcp: Tcp, tcb: Tcb, seq: number, bytes: Uint8Array, off: number, len: number, fin: boolean, rttSample: number, now: number): void {
  const rb = tcb.rcvBuf;
  const hadHoles = rb.oooCount > 0;
  const adv = rb.insert(tcb.rcvNxt, seq, bytes, off, len);
  if (adv < 0) {
    tcp.counters.rcvReassFull++;
    tcb.ackNow = true;
    return;
  }
  if (adv === 0) {
    // RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an
    // out-of-order segment arrives."
    tcp.counters.rcvOutOfOrder++;
    if (fin) tcb.rcvFinSeq = (seq + len) >>> 0;
    tcb.ackNow = true;
    return;
  }
  tcb.rcvNxt = (tcb.rcvNxt + adv) >>> 0;
  tcb.bytesReceived += adv;
  tcp.post(tcb, TcbEvent.Data);
  rcvAutotune(tcb, rttSample, now);
  // Linux's tcp_event_data_recv(): the first data of a connection, and data after a silence
  // longer than the RTO (the sender restarts from a small window), enter quick-ACK mode so the
  // peer's slow start is not held back by delayed ACKs; so does a filled hole (the sender is
  // recovering).
  if (tcb.lastDataRecvTime < 0 || now - tcb.lastDataRecvTime > tcb.rtt.rto || hadHoles) enterQuickAck(tcb);
  tcb.lastDataRecvTime = now;
  // RFC 5681 §4.2: ACK at once when a segment fills a hole; otherwise delay, but ACK at least
  // every second full-sized segment (RFC 1122 §4.2.3.2) and within delacktime.
  tcb.unackedBytes += adv;
  if (hadHoles || !tcp.tun.delayedAck.value || tcb.unackedBytes >= 2 * tcb.rcvMss) {
    tcb.ackNow = true;
  } else if (tcb.quickAcks > 0 && !tcb.pingpong) {
    // A quick ACK. Under a run loop (deferred output) it leaves at the end of this iteration,
    // with the reply when the application answers at once, instead of just before it.
    if (tcp.deferOutput) { tcb.quickAckPending = true; tcp.requestOutput(tcb); } else tcb.ackNow = true;
  } else if (!tcb.delackArmed) {
    tcp.host.wheel.arm(tcb.delackTimer, now + tcp.tun.delAckTime.value);
  }
}

/** Linux's TCP_MAX_QUICKACKS: the most segments acknowledged at once in a row. */
const MAX_QUICKACKS = 16;

/**
 * Linux's tcp_incr_quickack(): a budget of one immediate ACK per two full segments the window
 * holds (at least 2, at most 16); never lowers a budget already larger.
 */
export function enterQuickAck(tcb: Tcb): void {
  let n = Math.floor(seqDiff(tcb.rcvAdv, tcb.rcvNxt) / (2 * tcb.rcvMss));
  if (n <= 0) n = 2;
  if (n > MAX_QUICKACKS) n = MAX_QUICKACKS;
  if (n > tcb.quickAcks) tcb.quickAcks = n;
}

/** RFC 9293 §3.10.7.3: SYN-SENT. */
function synSentInput(tcp: Tcp, tcb: Tcb, seg: Segment, now: number): void {
  const flags = seg.flags;
  if (flags & TcpFlag.ACK) {
    // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set, if so
    // drop the segment and return) <SEQ=SEG.ACK><CTL=RST>"
    if (seqLe(seg.ack, tcb.iss) || seqGt(seg.ack, tcb.sndMax)) {
      if (!(flags & TcpFlag.RST)) sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, seg.ack, 0, TcpFlag.RST, tcb);
      return;
    }
  }
  if (flags & TcpFlag.RST) {
    // "If the ACK was acceptable, then signal to the user 'error: connection reset', drop the
    // segment, enter CLOSED state ... Otherwise (no ACK), drop the segment and return."
    if (flags & TcpFlag.ACK) { tcp.counters.connRefused++; dropConnection(tcp, tcb, 'ECONNREFUSED'); }
    return;
  }
  if (!(flags & TcpFlag.SYN)) return;
  tcb.irs = seg.seq;
  tcb.rcvNxt = (seg.seq + 1) >>> 0;
  tcb.rcvAdv = (tcb.rcvNxt + Math.min(tcb.rcvBuf.space, 65535)) >>> 0;
  applySynOptions(tcp, tcb, seg.opts, true, now);
  // RFC 3168 §6.1.1: ECN is on when the SYN-ACK answers our ECN-setup SYN with ECE alone (Linux's
  // tcp_ecn_rcv_synack(); also off for a simultaneous open).
  if ((tcb.ecn & EcnFlag.Ok) && (flags & (TcpFlag.ECE | TcpFlag.CWR | TcpFlag.ACK)) !== (TcpFlag.ECE | TcpFlag.ACK)) tcb.ecn = 0;
  // RFC 7323 §2.2: the window in a SYN is not scaled.
  tcb.sndWnd = seg.wnd;
  tcb.maxSndWnd = seg.wnd;
  tcb.sndWl1 = seg.seq;
  tcb.sndWl2 = seg.ack;
  if (flags & TcpFlag.ACK) {
    // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to ESTABLISHED,
    // form an ACK segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
    if (tcb.rttSeq >= 0 && !(tcb.tsOk && seg.opts.timestamps)) { tcb.rtt.sample(now - tcb.rttStart); }
    else if (tcb.tsOk && seg.opts.tsEcr !== 0 && tcb.rexmtCount === 0) tcb.rtt.sample((tsNow(tcb, now) - seg.opts.tsEcr) >>> 0);
    tcb.rttSeq = -1;
    tcb.sndUna = seg.ack;
    if (tcb.tfo !== null) fastOpenSynAck(tcp, tcb, seg);
    if (tcb.rexmtTimer.armed) tcp.host.wheel.disarm(tcb.rexmtTimer);
    tcb.rexmtCount = 0;
    tcb.firstRexmtTime = -1;
    tcb.unaSentAt = -1;
    if (!establish(tcp, tcb, now)) return;
    tcb.ackNow = true;
    // Data or FIN on a SYN-ACK is rare; it is dropped and the peer retransmits it.
    tcpOutput(tcp, tcb, now);
  } else {
    // Simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment
    // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it."
    setState(tcb, TcpState.SYN_RECEIVED);
    tcb.sndNxt = tcb.iss;
    if (tcb.rexmtTimer.armed) tcp.host.wheel.disarm(tcb.rexmtTimer);
    tcpOutput(tcp, tcb, now);
  }
}

function armFinWait2(tcp: Tcp, tcb: Tcb, now: number): void {
  tcb.keepMode = KeepMode.FinWait2;
  tcp.host.wheel.arm(tcb.keepTimer, now + tcp.tun.finWait2Timeout.value);
}

export { armFinWait2, armKeepalive };
