// What to send now (RFC 9293 §3.8.6, RFC 5681, RFC 6675): data within min(cwnd, SND.WND),
// Nagle and sender SWS avoidance, window updates with receiver SWS avoidance, ACKs,
// options, SACK blocks, retransmissions. One pooled buffer per segment; payload copied once.
import { Csum, Gso } from '../../base/pktbuf.js';
import { finish, fold, pseudoHeaderV4, sum16 } from '../../wire/checksum.js';
import { TcpFlag, tcpOptionsLength, writeTcpHeader, writeTcpOptions, type TcpOptionsSpec } from '../../wire/tcp.js';
import type { SackScoreboard } from './sack.js';
import { sackPipe } from './prr.js';
import { seqDiff, seqGt, seqLt } from './seq.js';
import { fastOpenSyn, tfoChild } from './fastopen.js';
import { TcbStats } from './stats.js';
import { AF_INET6, resolveEndsPath, type TcpEnds } from './ends.js';
import { EcnFlag, Tcb, TcpState } from './tcb.js';
import type { Tcp } from './tcp.js';

const IPPROTO_TCP = 6;
/** RFC 3168 §5: the ECN field's ECT(0) codepoint. */
const ECT0 = 2;

/** Reusable option spec (one per process is enough: emitting is synchronous). */
const spec: TcpOptionsSpec = {
  mss: -1, wscale: -1, sackPermitted: false, timestamps: false, tsVal: 0, tsEcr: 0, sackCount: 0, sackBlocks: new Uint32Array(8), fastOpen: -1, fastOpenCookie: undefined,
};
const nextSegOut = new Int32Array(2);

function clearSpec(): void {
  spec.mss = -1; spec.wscale = -1; spec.sackPermitted = false; spec.timestamps = false; spec.sackCount = 0; spec.fastOpen = -1;
}

/** Our TSval: a millisecond clock plus a per-connection random offset (RFC 7323 §5.4). */
export function tsNow(tcb: Tcb, now: number): number {
  return (Math.floor(now) + tcb.tsOffset) >>> 0;
}

/** Window scale we offer so that recvspace fits (RFC 7323 §2.2). */
export function chooseWscale(space: number): number {
  let s = 0;
  while (s < 14 && (65535 << s) < space) s++;
  return s;
}

/**
 * The receive window to advertise (bytes, before scaling). RFC 9293 §3.8.6.2.2: the right
 * edge only moves when it can move by min(RCV.BUFF/2, Eff.snd.MSS); it never shrinks.
 */
export function rcvWindow(tcb: Tcb): number {
  const space = tcb.rcvBuf.space;
  let cur = seqDiff(tcb.rcvAdv, tcb.rcvNxt);
  if (cur < 0) cur = 0;
  let win = space;
  const threshold = Math.min(tcb.rcvBuf.capacity >>> 1, tcb.rcvMss);
  if (win - cur < threshold) win = cur;
  const max = 65535 * (1 << tcb.rcvWscale);
  return win > max ? max : win;
}

/**
 * True when the window may be opened enough to be worth a segment of its own (FreeBSD's
 * tcp_output rule): by two segments when that is a quarter of the buffer, or the window left is
 * down to an eighth of it, or the buffer is small; or by half the buffer. Reads that free a
 * little of a large buffer wait for the next ACK of data, which carries the window anyway: an
 * update for every two segments read doubled the ACKs of a bulk receiver.
 */
function windowUpdateDue(tcb: Tcb): boolean {
  // Only reading opens the window; the first scaled advertisement rides on the next segment.
  if (!tcb.readSinceAck || tcb.finRcvd) return false;
  let cur = seqDiff(tcb.rcvAdv, tcb.rcvNxt);
  if (cur < 0) cur = 0;
  const win = rcvWindow(tcb);
  const grow = win - cur;
  const cap = tcb.rcvBuf.capacity, mss = tcb.rcvMss;
  if (grow >= 2 * mss && (4 * grow >= cap || 8 * win <= cap || cap <= 8 * mss)) return true;
  return 2 * grow >= cap;
}

/** Option bytes on a non-SYN segment right now (timestamps, SACK blocks). */
function dataOptionBytes(tcb: Tcb): number {
  let n = tcb.tsOk ? 12 : 0;
  if (tcb.sackOk && tcb.rcvBuf.oooCount > 0) {
    const blocks = Math.min(tcb.rcvBuf.oooCount, tcb.tsOk ? 3 : 4);
    n += 4 + 8 * blocks;
  }
  return n;
}

/** Sends whatever the state, windows and queues allow (`now`: the caller's clock reading, if it has one). */
export function tcpOutput(tcp: Tcp, tcb: Tcb, now = -1): void {
  const st = tcb.state;
  if (st === TcpState.CLOSED || st === TcpState.LISTEN) return;
  if (now < 0) now = tcp.host.clock.now();
  // A TCB in TIME_WAIT is already freed: its record (timewait.ts) answers for it.
  if (st === TcpState.TIME_WAIT) return;
  if (st === TcpState.SYN_SENT || st === TcpState.SYN_RECEIVED) {
    if (tcb.sndNxt === tcb.iss) {
      const synData = st === TcpState.SYN_SENT && tcb.tfo !== null ? fastOpenSyn(tcp, tcb, now) : 0;
      emit(tcp, tcb, tcb.iss, synData, st === TcpState.SYN_SENT ? TcpFlag.SYN : TcpFlag.SYN | TcpFlag.ACK, now);
      tcb.sndNxt = (tcb.iss + 1 + synData) >>> 0;
      if (seqGt(tcb.sndNxt, tcb.sndMax)) tcb.sndMax = tcb.sndNxt;
      if (tcb.unaSentAt < 0) tcb.unaSentAt = now;
      if (!tcb.rexmtTimer.armed) tcp.host.wheel.arm(tcb.rexmtTimer, rtoDeadline(tcb, now));
      if (tcb.rexmtCount === 0 && tcb.rttSeq < 0) { tcb.rttSeq = tcb.iss; tcb.rttStart = now; }
    } else if (tcb.ackNow && st === TcpState.SYN_RECEIVED && tcb.sndBuf.length === 0) {
      emit(tcp, tcb, tcb.sndNxt, 0, TcpFlag.ACK, now);
    }
    // RFC 7413 §4.2.2, as Linux: a connection opened by a SYN with data may answer before the
    // handshake completes (its SYN-ACK is out); everything else waits for ESTABLISHED.
    if (st === TcpState.SYN_SENT || tcb.sndNxt === tcb.iss || tcb.sndBuf.length === 0 || !tfoChild(tcb)) return;
  }

  // A quick ACK waits for the deferred-output flush (outPending is cleared just before it).
  if (tcb.quickAckPending && !tcb.outPending) tcb.ackNow = true;
  // RFC 5681 §4.1: restart from a small window after an idle period longer than the RTO.
  if (tcb.sndMax === tcb.sndUna && tcb.lastSendTime > 0 && now - tcb.lastSendTime > tcb.rtt.rto && tcb.sndBuf.length > 0) {
    tcb.cc.onIdle(now, tcb.rtt.rto);
  }
  const sackRecovery = tcb.inRecovery && tcb.sackOk;
  if (sackRecovery) sackRetransmit(tcp, tcb, now);
  // TCP segmentation offload: several full segments may leave as one super-segment.
  const path = tcb.path;
  const gsoMax = resolveEndsPath(tcp.host, path, tcb) ? path.gsoMax : 0;

  for (;;) {
    const buffered = tcb.sndBuf.length;
    // After an RTO, the go-back-N retransmission jumps over ranges SACKed since (RFC 6675 §5.1)
    // and a segment stops at the next SACKed range; SACKed bytes are not in flight.
    let holeEnd = -1;
    let sackedInFlight = 0;
    if (tcb.rtoRecovery && tcb.hasScoreboard && seqLt(tcb.sndNxt, tcb.sndMax)) {
      const sb = tcb.scoreboard;
      if (sb.count > 0) {
        const e = sb.rangeEndAt(tcb.sndNxt);
        if (e >= 0) {
          const dataEnd = (tcb.sndBase + buffered) >>> 0;
          tcb.sndNxt = seqGt(e, dataEnd) ? dataEnd : e;
        }
        holeEnd = sb.nextRangeStart(tcb.sndNxt);
        sackedInFlight = sb.sackedBelow(tcb.sndNxt);
      }
    }
    const off = seqDiff(tcb.sndNxt, tcb.sndBase);
    let avail = buffered - off;
    if (avail < 0) avail = 0;
    const maxSeg = tcb.mss - dataOptionBytes(tcb);
    let len = 0;
    let forced = false;
    /** Room the windows leave after this segment (for PSH placement). */
    let usableAfter = 0;
    /** New data waits for the ACKs in flight to open more of the windows (tsoDefer). */
    let deferred = false;
    if (avail > 0) {
      // Usable window: the peer's window measured from SND.UNA, and cwnd less what is in flight.
      let cwnd = tcb.cc.cwnd;
      // RFC 3042 limited transmit: one new segment for each of the first two duplicate ACKs.
      if (!tcb.inRecovery && tcb.dupAcks > 0 && tcb.dupAcks < 3) cwnd += tcb.dupAcks * maxSeg;
      const flight = sackRecovery ? sackPipe(tcb, tcb.scoreboard, maxSeg) : seqDiff(tcb.sndNxt, tcb.sndUna) - sackedInFlight;
      let usable = tcb.sndWnd - seqDiff(tcb.sndNxt, tcb.sndUna);
      const cw = cwnd - flight;
      if (cw < usable) usable = cw;
      len = avail < usable ? avail : usable;
      if (holeEnd >= 0 && len > seqDiff(holeEnd, tcb.sndNxt)) len = seqDiff(holeEnd, tcb.sndNxt);
      if (len < 0) len = 0;
      if (len > maxSeg) {
        // Only whole segments are merged, so the receiver sees exactly the segments it would
        // have without offload; a short tail goes on through the rules below on its own.
        const most = gsoMax >= 2 * maxSeg ? gsoMax - gsoMax % maxSeg : maxSeg;
        len = len > most ? most : len - len % maxSeg;
        if (len < most && avail > usable && most > maxSeg && !tcb.inRecovery && !tcb.rtoRecovery && !seqLt(tcb.sndNxt, tcb.sndMax)) {
          deferred = tsoDefer(tcb, usable, cwnd, most, now);
        }
      }
      if (len === 0 && tcb.forceOne) { len = 1; forced = true; }
      usableAfter = usable - len;
    }
    const fin = tcb.finQueued && !forced && off + len === buffered && off <= buffered;
    // TCP_CORK / MSG_MORE: a short segment waits for more data, whatever Nagle would allow.
    const corked = tcb.cork || tcb.more;
    let held = false;
    let send = false;
    if (len > 0 && !deferred) {
      if (len >= maxSeg) send = true;
      else if (corked && !fin && !seqLt(tcb.sndNxt, tcb.sndMax) && !forced && !tcb.forceOne) held = true;
      // Nagle (RFC 9293 §3.7.4) and sender SWS avoidance (§3.8.6.2.1): a short segment goes
      // only when it empties the buffer and nothing is outstanding (or NODELAY), or it is at
      // least half the largest window the peer offered.
      // (In SYN_RECEIVED — a TFO reply — only the SYN-ACK is outstanding: no data to wait for.)
      else if ((tcb.noDelay || tcb.push || tcb.sndNxt === tcb.sndUna || st === TcpState.SYN_RECEIVED) && off + len >= buffered) send = true;
      else if (tcb.maxSndWnd > 0 && len >= tcb.maxSndWnd >>> 1) send = true;
      else if (seqLt(tcb.sndNxt, tcb.sndMax)) send = true;
      else if (forced || fin) send = true;
      // The persist timer fired with a window smaller than the SWS threshold: RFC 9293
      // §3.8.6.2.1 sends anyway on "the override timeout", else a lost window update would
      // stall the connection for good. Once per timeout.
      else if (tcb.forceOne) { send = true; tcb.forceOne = false; }
    } else if (fin) {
      send = true;
    }
    if (!send && (tcb.ackNow || windowUpdateDue(tcb))) { send = true; if (held || deferred) len = 0; }
    if (!send) break;
    let flags = TcpFlag.ACK;
    if (fin) flags |= TcpFlag.FIN;
    // PSH as Linux places it: on the segment that empties the send buffer, and on the last
    // segment of each burst — the one after which the windows leave no room for a full segment
    // of what is still buffered — so the receiver delivers what it holds.
    if (len > 0 && (off + len === buffered || usableAfter < Math.min(maxSeg, buffered - off - len))) flags |= TcpFlag.PSH;
    if (len === 0 && !fin) {
      // A pure ACK carries SND.MAX, not a rolled-back SND.NXT: the peer has already seen
      // everything below it and would find an older sequence number unacceptable (FreeBSD does
      // the same), leaving both ends exchanging ACKs neither processes.
      emit(tcp, tcb, tcb.sndMax, 0, flags, now);
      break;
    }
    const seq = tcb.sndNxt;
    const rexmt = seqLt(seq, tcb.sndMax);
    if (tcb.sndUna === tcb.sndMax) tcb.unaSentAt = now;
    // Linux enters ping-pong (interactive) mode when it sends data within the delayed-ACK time
    // of receiving some: its ACKs then wait to ride on replies.
    if (len > 0 && !rexmt && tcb.lastDataRecvTime >= 0 && now - tcb.lastDataRecvTime < tcp.tun.delAckTime.value) tcb.pingpong = true;
    emit(tcp, tcb, seq, len, flags, now, len > maxSeg ? maxSeg : 0);
    if (fin) { tcb.finSent = true; tcb.finSeq = (seq + len) >>> 0; if (!rexmt) tcb.finAlone = len === 0; }
    tcb.sndNxt = (seq + len + (fin ? 1 : 0)) >>> 0;
    if (seqGt(tcb.sndNxt, tcb.sndMax)) tcb.sndMax = tcb.sndNxt;
    if (len > 0 || fin) {
      tcb.lastSendTime = now;
      if (rexmt) { tcp.counters.sndRexmtPackets++; if (tcb.rttSeq >= 0 && !tcb.tsOk) tcb.rttSeq = -1; }
      else if (tcb.rttSeq < 0 && !tcb.tsOk && len > 0) { tcb.rttSeq = seq; tcb.rttStart = now; }
      if (!forced && (!tcb.rexmtTimer.armed || (!rexmt && (tcb.tlpArmed || tlpAllowed(tcp, tcb))))) {
        // RFC 8985 §7.2: "The sender SHOULD start or restart a loss probe PTO timer after
        // transmitting new data" — also when the RTO runs since a probe or a recovery ended.
        armRexmtTimer(tcp, tcb, now);
        if (tcb.persistArmed) tcp.host.wheel.disarm(tcb.persistTimer);
      }
    }
    if (len === 0 || forced) break;
  }
  tcb.push = false;
  // Data waiting but nothing in flight and nothing sent: the persist timer keeps probing the
  // window (RFC 9293 §3.8.6.1) and breaks an SWS stand-off.
  if (seqDiff(tcb.sndBase + tcb.sndBuf.length, tcb.sndNxt) > 0 && !tcb.rexmtTimer.armed && !tcb.persistArmed) {
    armPersist(tcp, tcb, now);
  }
}

/**
 * Linux's tcp_tso_should_defer() (tso_win_divisor 3): on a path with segmentation offload, when
 * more data waits than the windows allow and they allow less than a whole super-segment (`most`),
 * wait for the ACKs of what is in flight to open more — unless the windows allow a third of
 * themselves (min(SND.WND, cwnd) / 3) or nothing was sent in the last millisecond (a jiffy). A
 * window-limited sender otherwise answers every ACK with a segment the size of what that ACK
 * freed, and a flight once cut into small pieces stays cut: twice the segments and ACKs for the
 * same bytes. The flight is then at least two thirds of the window, so ACKs (or the
 * retransmission timer, armed while data is in flight) come back to send the rest.
 */
function tsoDefer(tcb: Tcb, usable: number, cwnd: number, most: number, now: number): boolean {
  if (usable >= most) return false;
  const win = tcb.sndWnd < cwnd ? tcb.sndWnd : cwnd;
  if (3 * usable >= win) return false;
  return now - tcb.lastSendTime < 1;
}

export function armPersist(tcp: Tcp, tcb: Tcb, now: number): void {
  let t = tcb.rtt.rto * (1 << Math.min(tcb.persistBackoff, 16));
  const lo = tcp.tun.persMin.value, hi = tcp.tun.persMax.value;
  if (t < lo) t = lo;
  if (t > hi) t = hi;
  tcp.host.wheel.arm(tcb.persistTimer, now + t);
}

/**
 * RFC 6675 §5 (C): while (cwnd - pipe) >= 1 SMSS, retransmit what NextSeg() returns — first
 * what RACK marked lost (RFC 8985 §6.2: also a retransmission lost again, below HighRxt).
 */
function sackRetransmit(tcp: Tcp, tcb: Tcb, now: number): void {
  const sb = tcb.scoreboard;
  const mss = tcb.maxSeg;
  for (let guard = 0; guard < 1024; guard++) {
    const pipe = sackPipe(tcb, sb, mss);
    if (tcb.cc.cwnd - pipe < mss) return;
    let s = -1;
    const r = tcb.rack;
    if (r !== null && r.lostCount > 0 && tcp.tun.rack.value) s = r.nextLost(sb, mss, nextSegOut);
    if (s < 0) s = sb.nextSeg(tcb.sndUna, tcb.sndNxt, tcb.highRxt, mss, nextSegOut);
    if (s < 0) return;
    const n = retransmit(tcp, tcb, s >>> 0, nextSegOut[0]!, now);
    if (n <= 0) return;
    const end = (s + n) >>> 0;
    if (seqGt(end, tcb.highRxt)) tcb.highRxt = end;
  }
}

/**
 * Sends one segment of already-sent data from `seq` (at most maxLen bytes, one MSS), with the
 * FIN if it reaches it. SND.NXT is left alone. Returns the sequence space covered.
 */
export function retransmit(tcp: Tcp, tcb: Tcb, seq: number, maxLen: number, now: number): number {
  const dataEnd = (tcb.sndBase + tcb.sndBuf.length) >>> 0;
  let len = seqDiff(dataEnd, seq);
  if (len < 0) len = 0;
  const maxSeg = tcb.mss - dataOptionBytes(tcb);
  if (len > maxSeg) len = maxSeg;
  if (len > maxLen) len = maxLen;
  const fin = tcb.finSent && ((seq + len) >>> 0) === tcb.finSeq;
  if (len === 0 && !fin) return 0;
  emit(tcp, tcb, seq, len, TcpFlag.ACK | (fin ? TcpFlag.FIN : 0) | (len > 0 && seq + len === dataEnd ? TcpFlag.PSH : 0), now);
  tcp.counters.sndRexmtPackets++;
  tcb.lastSendTime = now;
  if (!tcb.tsOk) tcb.rttSeq = -1; // Karn: the timed segment may be this one
  if (!tcb.rexmtTimer.armed) tcp.host.wheel.arm(tcb.rexmtTimer, rtoDeadline(tcb, now));
  return len + (fin ? 1 : 0);
}

/** RFC 8985 §7.5's WCDelAckT: the most a receiver may delay the ACK of a lone segment. */
const TLP_MAX_ACK_DELAY = 200;
/** Floor of the probe timeout (Linux's 10 ms): a probe never races the ACK of a segment just sent. */
const TLP_MIN_PTO = 10;
/** RFC 8985 §7.2: the PTO before an RTT sample. */
const TLP_INITIAL_PTO = 1000;

/**
 * The retransmission timer's deadline when started now: now + RTO, brought forward to the user
 * timeout's deadline (RFC 5482; Linux's tcp_clamp_rto_to_user_timeout()) so the connection
 * fails when its oldest unacknowledged data has waited that long, not at a later timer.
 */
export function rtoDeadline(tcb: Tcb, now: number): number {
  const at = now + tcb.rtt.rto;
  if (tcb.userTimeout > 0 && tcb.unaSentAt >= 0) {
    const limit = tcb.unaSentAt + tcb.userTimeout;
    if (limit < at) return limit > now ? limit : now;
  }
  return at;
}

/**
 * (Re)arms the retransmission timer: the RTO (RFC 6298), or — with SACK, outside loss recovery
 * and with no probe outstanding — RFC 8985 §7.2's probe timeout: "PTO = 2 * SRTT; if FlightSize
 * is equal to one segment: PTO += WCDelAckT" (1 s before an RTT sample), and "If Now() + PTO >
 * TCP_RTO_expiration(): PTO = TCP_RTO_expiration() - Now()" — the probe replaces the first RTO.
 */
export function armRexmtTimer(tcp: Tcp, tcb: Tcb, now: number): void {
  const rtoAt = rtoDeadline(tcb, now);
  let at = rtoAt;
  tcb.tlpArmed = false;
  if (tlpAllowed(tcp, tcb)) {
    let pto = TLP_INITIAL_PTO;
    if (tcb.rtt.hasSample) {
      pto = 2 * tcb.rtt.srtt;
      if (seqDiff(tcb.sndMax, tcb.sndUna) <= tcb.maxSeg) pto += TLP_MAX_ACK_DELAY;
      if (pto < TLP_MIN_PTO) pto = TLP_MIN_PTO;
    }
    if (now + pto < at) at = now + pto;
    // A probe brought forward by the user timeout is no probe: the timer is the deadline.
    tcb.tlpArmed = at < rtoAt || rtoAt === now + tcb.rtt.rto;
  }
  tcp.host.wheel.arm(tcb.rexmtTimer, at);
}

/** A loss probe may be scheduled now (RFC 8985 §7.2: SACK, no recovery, no probe outstanding). */
function tlpAllowed(tcp: Tcp, tcb: Tcb): boolean {
  return tcp.tun.tlp.value && tcb.sackOk && !tcb.inRecovery && !tcb.rtoRecovery && tcb.tlpHigh < 0
    && tcb.rexmtCount === 0 && tcb.synchronized && seqLt(tcb.sndUna, tcb.sndMax);
}

/**
 * RFC 8985 §7.3: the probe timeout fired. "If previously unsent data is available and the
 * receive window allows, send one segment of new data; else retransmit the highest-sequence
 * segment sent" — a FIN-only tail is probed with the FIN alone. Its ACK carries SACK information
 * that starts fast recovery for a lost tail (or shows, by a D-SACK, that nothing was lost);
 * then the RTO proper runs.
 */
export function sendLossProbe(tcp: Tcp, tcb: Tcb, now: number): void {
  tcb.tlpArmed = false;
  if (!seqLt(tcb.sndUna, tcb.sndMax)) return;
  const maxSeg = tcb.mss - dataOptionBytes(tcb);
  tcp.counters.tlpProbes++;
  const unsent = seqDiff((tcb.sndBase + tcb.sndBuf.length) >>> 0, tcb.sndMax);
  const wndRoom = tcb.sndWnd - seqDiff(tcb.sndMax, tcb.sndUna);
  if (!tcb.finSent && tcb.sndNxt === tcb.sndMax && unsent > 0 && wndRoom > 0) {
    // New data: the probe may also be what the receiver was waiting for.
    let len = unsent < maxSeg ? unsent : maxSeg;
    if (len > wndRoom) len = wndRoom;
    const seq = tcb.sndMax;
    tcb.tlpStart = seq;
    emit(tcp, tcb, seq, len, TcpFlag.ACK | (len === unsent ? TcpFlag.PSH : 0), now);
    tcb.sndNxt = tcb.sndMax = (seq + len) >>> 0;
    tcb.tlpHigh = tcb.sndMax;
    tcb.lastSendTime = now;
    tcp.host.wheel.arm(tcb.rexmtTimer, rtoDeadline(tcb, now));
    return;
  }
  let start: number, len: number;
  if (tcb.finSent && tcb.finAlone) {
    start = tcb.finSeq; len = 0;
  } else {
    const dataMax = tcb.finSent ? tcb.finSeq : tcb.sndMax;
    len = seqDiff(dataMax, tcb.sndUna);
    if (len > maxSeg) len = maxSeg;
    if (len < 0) len = 0;
    start = (dataMax - len) >>> 0;
  }
  tcb.tlpHigh = tcb.sndMax;
  tcb.tlpStart = start;
  // retransmit() arms the RTO: the timer just fired, so it is not running.
  retransmit(tcp, tcb, start, len, now);
}

/** ACK now (e.g. an out-of-window segment, a challenge ACK). */
export function sendAck(tcp: Tcp, tcb: Tcb, now = -1): void {
  tcb.ackNow = true;
  tcpOutput(tcp, tcb, now);
}

/** RFC 5961 §3.2/§4/§5: a rate-limited ACK telling a blind attacker nothing. */
export function sendChallengeAck(tcp: Tcp, tcb: Tcb): void {
  const now = tcp.host.clock.now();
  if (!tcp.challengeAllowed(now)) return;
  tcp.counters.sndChallengeAcks++;
  emit(tcp, tcb, tcb.sndMax, 0, TcpFlag.ACK, now);
}

/**
 * Builds and sends one segment of `tcb` (payload from the send buffer at `seq`); with gsoSize > 0
 * a super-segment of len / gsoSize full segments (and options replicated on each).
 */
export function emit(tcp: Tcp, tcb: Tcb, seq: number, len: number, flags: number, now: number, gsoSize = 0): void {
  clearSpec();
  const syn = (flags & TcpFlag.SYN) !== 0;
  if (syn) {
    spec.mss = tcb.rcvMss;
    if (tcb.state === TcpState.SYN_SENT) {
      // An active open offers what is enabled; the SYN-ACK only what the SYN offered (RFC 7323
      // §2.2, §3.2; RFC 2018 §2).
      if (tcp.tun.rfc1323.value) { spec.wscale = tcb.rcvWscale; spec.timestamps = true; }
      spec.sackPermitted = tcp.tun.sackEnable.value;
    } else {
      if (tcb.wsOk) spec.wscale = tcb.rcvWscale;
      spec.timestamps = tcb.tsOk;
      spec.sackPermitted = tcb.sackOk;
    }
    // RFC 7413: the client's cookie or cookie request; the server's fresh cookie.
    const f = tcb.tfo;
    if (f !== null && (tcb.state === TcpState.SYN_SENT ? f.cookieLen >= 0 : f.cookieLen > 0)) {
      spec.fastOpen = f.cookieLen; spec.fastOpenCookie = f.cookie;
    }
  } else {
    spec.timestamps = tcb.tsOk;
    if (tcb.sackOk && (flags & TcpFlag.ACK) && tcb.rcvBuf.oooCount > 0) {
      spec.sackCount = tcb.rcvBuf.sackBlocks(spec.sackBlocks, tcb.tsOk ? 3 : 4);
    }
  }
  if (spec.timestamps) {
    spec.tsVal = tsNow(tcb, now);
    spec.tsEcr = (flags & TcpFlag.ACK) ? tcb.tsRecent : 0;
  }
  let window: number;
  if (syn) {
    // RFC 7323 §2.2: the window field of a SYN is never scaled.
    window = Math.min(tcb.rcvBuf.space, 65535);
  } else {
    const w = rcvWindow(tcb);
    window = Math.min(Math.floor(w / (1 << tcb.rcvWscale)), 65535);
    const edge = (tcb.rcvNxt + window * (1 << tcb.rcvWscale)) >>> 0;
    if (seqGt(edge, tcb.rcvAdv)) tcb.rcvAdv = edge;
  }
  const ack = flags & TcpFlag.ACK ? tcb.rcvNxt : 0;
  // A SYN's data (TCP Fast Open) is the start of the send buffer.
  const payloadOff = syn ? 0 : seqDiff(seq, tcb.sndBase);
  if ((len > 0 || (flags & TcpFlag.FIN)) && !syn && tcb.sackOk && tcp.tun.rack.value) {
    // RFC 8985 §6.2 step 1: remember when each range (or its retransmission) left.
    if (tcb.rack === null) tcb.rack = tcp.takeRack();
    tcb.rack.onSend(seq, seq + len + (flags & TcpFlag.FIN ? 1 : 0), now, seqLt(seq, tcb.sndMax));
  }
  if (tcb.inRecovery && len > 0) tcb.prrOut += len; // RFC 6937 prr_out
  tcb.segsOut += gsoSize > 0 ? Math.ceil(len / gsoSize) : 1;
  if (len > 0) {
    const st = tcb.stats ??= new TcbStats();
    st.dataSegsOut += gsoSize > 0 ? Math.ceil(len / gsoSize) : 1;
    st.lastDataSentTime = now;
    if (!syn && seqLt(seq, tcb.sndMax)) { st.totalRetrans++; st.bytesRetrans += len; } else st.bytesSent += len;
  }
  let tos = tcb.tos & 0xfc;
  if (syn) {
    if (tcb.state === TcpState.SYN_SENT) {
      // RFC 3168 §6.1.1: an ECN-setup SYN carries ECE and CWR (net.inet.tcp.ecn = 1). Like
      // Linux (tcp_ecn_clear_syn), a retransmitted SYN goes without them: a middlebox may be
      // dropping ECN-setup SYNs.
      if (tcb.rexmtCount === 0 && tcp.tun.ecn.value === 1) { flags |= TcpFlag.ECE | TcpFlag.CWR; tcb.ecn = EcnFlag.Ok; } else tcb.ecn = 0;
    } else if (tcb.ecn & EcnFlag.Ok) {
      flags |= TcpFlag.ECE; // the ECN-setup SYN-ACK: ECE without CWR
    }
  } else if (tcb.ecn !== 0) {
    // RFC 3168 §6.1.3: ECE on every segment from a CE mark until the peer's CWR.
    if (tcb.ecn & EcnFlag.DemandCwr) flags |= TcpFlag.ECE;
    // §6.1.2 / §6.1.5, as Linux's tcp_ecn_send(): ECT(0) on new data only — never on pure ACKs,
    // retransmissions or SYNs; CWR on the first new data after a reduction.
    if (len > 0 && (tcb.ecn & EcnFlag.Ok) && !seqLt(seq, tcb.sndMax)) {
      tos |= ECT0;
      if (tcb.ecn & EcnFlag.QueueCwr) { flags |= TcpFlag.CWR; tcb.ecn &= ~EcnFlag.QueueCwr; }
    }
  }
  sendRaw(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, seq, ack, flags, window, spec, tcb, payloadOff, len, gsoSize, tos);
  if (flags & TcpFlag.ACK) {
    // An ACK of new data spends one of the quick-ACK budget (Linux's tcp_dec_quickack_mode()).
    if (tcb.quickAcks > 0 && tcb.lastAckSent !== tcb.rcvNxt) tcb.quickAcks--;
    tcb.lastAckSent = tcb.rcvNxt;
    tcb.ackNow = false;
    tcb.quickAckPending = false;
    tcb.unackedBytes = 0;
    tcb.readSinceAck = false;
    if (tcb.delackArmed) tcp.host.wheel.disarm(tcb.delackTimer);
  }
}

/**
 * Sends a segment with the given header fields and options; payload (len bytes) comes from
 * tcb's send buffer at payloadOff. Used by emit() and by stateless replies (RST, SYN cookies).
 */
export function sendRaw(tcp: Tcp, laddr: number, lport: number, raddr: number, rport: number, seq: number, ack: number,
  flags: number, window: number, opts: TcpOptionsSpec | null, tcb: Tcb | null, payloadOff: number, len: number, gsoSize = 0, tos = 0,
  ends: TcpEnds | null = null): void {
  const host = tcp.host;
  const optLen = opts ? tcpOptionsLength(opts) : 0;
  const hl = 20 + optLen;
  const total = hl + len;
  const buf = host.pool.alloc(host.pool.headroom + total);
  const off = buf.append(total);
  const d = buf.data;
  writeTcpHeader(d, off, lport, rport, seq, ack, flags, window, hl);
  if (opts && optLen) writeTcpOptions(d, off + 20, opts);
  if (len > 0 && tcb) tcb.sndBuf.copyOut(payloadOff, d, off + hl, len);
  // A connection's own path, or the scratch one for a reply without a TCB; resolved or revalidated
  // here. IPv6 ends (a v6 TCB, or `ends` for a stateless reply) go by their 16-byte addresses.
  const e = tcb !== null ? tcb : ends;
  let path;
  if (e !== null && e.family === AF_INET6) {
    path = tcb !== null ? tcb.path : tcp.scratchPath6;
    host.resolvePath6(path, e.laddr6, e.raddr6);
  } else {
    path = tcb !== null ? tcb.path : tcp.scratchPath;
    host.resolvePath(path, laddr, raddr);
  }
  const ph = path.pseudoSum(IPPROTO_TCP, total);
  if (path.txCsum && path.resolved) {
    // The device completes the sum: leave the folded pseudo-header sum in the field.
    const p = fold(ph);
    d[off + 16] = p >>> 8; d[off + 17] = p;
    buf.csum = Csum.Partial; buf.csumStart = off; buf.csumOffset = 16;
  } else {
    const c = finish(sum16(d, off, total, ph));
    d[off + 16] = c >>> 8; d[off + 17] = c;
  }
  if (gsoSize > 0 && len > gsoSize) { buf.gso = path.gsoKind; buf.gsoSize = gsoSize; }
  const c = tcp.counters;
  c.sndTotal++;
  if (len > 0) c.sndData++;
  else if (flags & TcpFlag.RST) c.sndRst++;
  else if (!(flags & (TcpFlag.SYN | TcpFlag.FIN))) c.sndAcks++;
  if (!host.pathOutput(path, buf, IPPROTO_TCP, tos, tcp.tun.ttl.value, true)) c.noRoute++;
}

/** A reset not tied to a live TCB (closed port, bad ACK in LISTEN or SYN-SENT). */
export function sendRst(tcp: Tcp, laddr: number, lport: number, raddr: number, rport: number, seq: number, ack: number, flags: number,
  ends: TcpEnds | null = null): void {
  sendRaw(tcp, laddr, lport, raddr, rport, seq >>> 0, ack >>> 0, flags, 0, null, null, 0, 0, 0, 0, ends);
}
