// Connection lifecycle and the per-TCB timers (each a Timer on host.wheel allocated once per
// TCB): retransmission (RFC 6298), persist (RFC 9293 §3.8.6.1), keep (keepalive RFC 9293
// §3.8.4 / RFC 1122 §4.2.3.6, FIN_WAIT_2 timeout), delayed ACK. TIME_WAIT's 2*MSL belongs to
// the compact TIME_WAIT table (timewait.ts), which outlives the TCB.
import { TcpFlag, type TcpOptions } from '../../wire/tcp.js';
import { armPersist, chooseWscale, emit, rcvWindow, sendLossProbe, sendRst, tcpOutput } from './output.js';
import { seqDiff, seqGt } from './seq.js';
import { KeepMode, TcbEvent, Tcb, TcpState } from './tcb.js';
import type { Tcp } from './tcp.js';

/** Active open: choose the ISN (RFC 6528), offer our options, send the SYN. */
export function startConnect(tcp: Tcp, tcb: Tcb, mtu: number, isnFloor = -1): void {
  const now = tcp.host.clock.now();
  tcb.state = TcpState.SYN_SENT;
  initSendSpace(tcb, chooseIsn(tcp, now, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, isnFloor));
  tcb.rcvMss = tcb.userMss > 0 && tcb.userMss < mtu - 40 ? tcb.userMss : mtu - 40;
  tcb.rcvWscale = tcp.rfc1323 ? chooseWscale(tcb.rcvBuf.capacity) : 0;
  tcpOutput(tcp, tcb, now);
}

/**
 * RFC 6528 ISN; when the 4-tuple comes out of TIME_WAIT (isnFloor >= 0), at least isnFloor so
 * it lies above every sequence number the previous incarnation used (RFC 1122 §4.2.2.13).
 */
export function chooseIsn(tcp: Tcp, now: number, laddr: number, lport: number, raddr: number, rport: number, isnFloor: number): number {
  const isn = tcp.isnGen.isn(now, laddr, lport, raddr, rport) >>> 0;
  return isnFloor >= 0 && !seqGt(isn, isnFloor) ? isnFloor >>> 0 : isn;
}

export function initSendSpace(tcb: Tcb, iss: number): void {
  tcb.iss = iss;
  tcb.sndUna = tcb.sndNxt = tcb.sndMax = iss;
  tcb.sndBase = (iss + 1) >>> 0;
  tcb.recover = iss;
  tcb.highRxt = iss;
}

/**
 * Records what the peer's SYN offered and what we therefore use. An option is in use only when
 * both sides sent it (RFC 7323 §1.3, RFC 2018 §2); the MSS is clamped to the route.
 */
export function applySynOptions(tcp: Tcp, tcb: Tcb, opts: TcpOptions, active: boolean, now: number): void {
  const mtu = tcp.host.routeMtu(tcb.raddr) || 576;
  const routeMss = mtu - 40;
  const peerMss = opts.mss >= 0 ? opts.mss : tcp.host.sysctl.int('net.inet.tcp.mssdflt');
  // TCP_MAXSEG caps both the MSS we use and the one we announce (Linux: user_mss).
  const cap = tcb.userMss > 0 && tcb.userMss < routeMss ? tcb.userMss : routeMss;
  tcb.mss = Math.max(64, Math.min(peerMss, cap));
  tcb.rcvMss = cap;
  if (tcp.rfc1323 && opts.wscale >= 0 && (!active || tcb.rcvWscale >= 0)) {
    tcb.wsOk = true;
    tcb.sndWscale = opts.wscale;
    tcb.rcvWscale = active ? tcb.rcvWscale : chooseWscale(tcb.rcvBuf.capacity);
  } else {
    tcb.wsOk = false; tcb.sndWscale = 0; tcb.rcvWscale = 0;
  }
  tcb.peerWscale = opts.wscale;
  tcb.tsOk = tcp.rfc1323 && opts.timestamps;
  if (tcb.tsOk) { tcb.tsRecent = opts.tsVal; tcb.tsRecentAge = now; }
  tcb.sackOk = tcp.sackEnable && opts.sackPermitted;
  // The receive buffer never exceeds what the window field can announce.
  const maxWin = 65535 * (1 << tcb.rcvWscale);
  if (tcb.rcvBuf.capacity > maxWin) tcb.rcvBuf.capacity = maxWin;
}

/**
 * SYN_SENT/SYN_RECEIVED -> ESTABLISHED: start congestion control, hand a passive connection to
 * its listener's accept queue. Returns false when the connection was dropped (queue full).
 */
export function establish(tcp: Tcp, tcb: Tcb, now: number): boolean {
  const wasSynRcvd = tcb.state === TcpState.SYN_RECEIVED;
  tcb.state = TcpState.ESTABLISHED;
  tcb.cc.init(tcb.maxSeg, now, tcp.initCwndSegments);
  tcb.lastRecvTime = now;
  tcp.counters.connEstablished++;
  if (tcb.passive && wasSynRcvd && tcb.listener) {
    const l = tcb.listener;
    l.synQueueLen--;
    if (l.closed || l.acceptQueue.length >= l.backlog) {
      tcp.counters.listenOverflows++;
      sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST);
      tcb.listener = null;
      freeTcb(tcp, tcb);
      return false;
    }
    l.acceptQueue.push(tcb);
    tcb.inAcceptQueue = true;
    tcp.counters.connAccepts++;
    tcp.post(tcb, TcbEvent.Accept);
  } else {
    tcp.post(tcb, TcbEvent.Connect);
  }
  if (tcb.keepalive) armKeepalive(tcp, tcb, now);
  // A shutdown() issued before the handshake finished takes effect now (RFC 9293 §3.10.4).
  if (tcb.finQueued) tcb.state = TcpState.FIN_WAIT_1;
  return true;
}

export function armKeepalive(tcp: Tcp, tcb: Tcb, now: number): void {
  if (tcb.keepMode === KeepMode.TimeWait || tcb.keepMode === KeepMode.FinWait2) return;
  tcb.keepMode = KeepMode.Keepalive;
  tcb.keepProbes = 0;
  tcp.host.wheel.arm(tcb.keepTimer, Math.max(tcb.lastRecvTime, now - tcb.keepIdle) + tcb.keepIdle);
}

/** Ends a connection with an error for the application ('' for a normal close). */
export function dropConnection(tcp: Tcp, tcb: Tcb, err: string): void {
  if (err) tcb.error = err;
  if (err) tcp.counters.connDrops++;
  freeTcb(tcp, tcb);
  tcp.post(tcb, TcbEvent.Close);
}

/**
 * Forgets a connection: every timer disarmed, buffers returned (unread data stays readable
 * for an application that is still reading after a clean close), out of every table.
 */
export function freeTcb(tcp: Tcp, tcb: Tcb): void {
  const wheel = tcp.host.wheel;
  wheel.disarm(tcb.rexmtTimer);
  wheel.disarm(tcb.persistTimer);
  wheel.disarm(tcb.keepTimer);
  wheel.disarm(tcb.delackTimer);
  wheel.disarm(tcb.reoTimer);
  if (tcb.rack !== null) { tcp.giveRack(tcb.rack); tcb.rack = null; }
  tcb.keepMode = KeepMode.None;
  tcb.sndBuf.release();
  if (!tcb.sock || tcb.userClosed || tcb.error || tcb.rcvBuf.length === 0) tcb.rcvBuf.release();
  tcb.rcvBuf.oooCount = 0;
  tcb.resetScoreboard();
  tcp.remove(tcb);
  const l = tcb.listener;
  if (l) {
    if (tcb.inAcceptQueue) {
      const i = l.acceptQueue.indexOf(tcb);
      if (i >= 0) l.acceptQueue.splice(i, 1);
    } else if (tcb.state === TcpState.SYN_RECEIVED) {
      l.synQueueLen--;
    }
    tcb.listener = null;
    tcb.inAcceptQueue = false;
  }
  tcb.state = TcpState.CLOSED;
}

/**
 * RFC 9293 §3.10.7.4: "Enter the TIME-WAIT state. Start the time-wait timer". The TCB is freed
 * (timers, buffers, table entry) and the connection continues as a compact TIME_WAIT entry
 * (timewait.ts); the TCB keeps its slot and generation so its socket reports TIME_WAIT, then CLOSED.
 */
export function enterTimeWait(tcp: Tcp, tcb: Tcb, now: number): void {
  freeTcb(tcp, tcb);
  // The window our TIME_WAIT ACKs advertise (as on the last ACK), and the right edge the
  // acceptability test uses.
  const ws = tcb.rcvWscale;
  const field = Math.min(Math.floor(rcvWindow(tcb) / (1 << ws)), 65535);
  let edge = seqDiff(tcb.rcvAdv, tcb.rcvNxt);
  if (edge < field * (1 << ws)) edge = field * (1 << ws);
  tcb.state = TcpState.TIME_WAIT;
  const slot = tcp.addTimeWait(tcb, now + 2 * tcp.msl, field, edge);
  tcb.tw = slot;
  tcb.twGen = tcp.timeWait.gen(slot);
  tcp.post(tcb, TcbEvent.Close);
}

export function onRexmtTimer(tcb: Tcb, now: number): void {
  const tcp = tcb.tcp;
  if (tcb.state === TcpState.CLOSED) return;
  if (tcb.hostUnreach && (tcb.state === TcpState.SYN_SENT || tcb.state === TcpState.SYN_RECEIVED)) {
    // The neighbour did not answer ARP: like Linux, a connection being opened ends at once
    // (connect() fails with EHOSTUNREACH; a half-open passive one is forgotten).
    tcp.counters.timeoutDrops++;
    if (tcb.passive) freeTcb(tcp, tcb);
    else dropConnection(tcp, tcb, 'EHOSTUNREACH');
    tcp.dispatch();
    return;
  }
  // RFC 5482 / RFC 9293 §3.8.4: data unacknowledged for the user timeout ends the connection
  // (Linux measures from the oldest unacknowledged send; rtoDeadline() timed this timer for it).
  if (tcb.userTimeout > 0 && tcb.unaSentAt >= 0 && now - tcb.unaSentAt >= tcb.userTimeout) {
    giveUp(tcp, tcb);
    return;
  }
  if (tcb.tlpArmed) {
    sendLossProbe(tcp, tcb, now);
    tcp.dispatch();
    return;
  }
  tcb.tlpHigh = -1;
  const s = tcp.host.sysctl;
  tcb.rexmtCount++;
  tcp.counters.rexmtTimeouts++;
  const synState = tcb.state === TcpState.SYN_SENT || tcb.state === TcpState.SYN_RECEIVED;
  const limit = synState ? s.int('net.inet.tcp.syn_retries') : s.int('net.inet.tcp.rexmit_count');
  if (tcb.rexmtCount > limit) {
    giveUp(tcp, tcb);
    return;
  }
  // RFC 6298 §5.5: back off; §5.4: retransmit the earliest unacknowledged segment.
  tcb.rtt.backoff();
  tcb.rttSeq = -1;
  if (synState) {
    tcb.sndNxt = tcb.iss;
  } else {
    tcb.cc.onRto(now, seqDiff(tcb.sndMax, tcb.sndUna));
    // RFC 6582 §3.2 step 4: "recover" is set to the highest sequence sent; recovery ends.
    tcb.recover = tcb.sndMax;
    tcb.inRecovery = false;
    tcb.dupAcks = 0;
    // RFC 2018 §8: after a timeout the sender "MUST ignore prior SACK information in determining
    // which data to retransmit" (the receiver may have reneged); but RFC 6675 §5.1: "a SACK TCP
    // sender SHOULD utilize all SACK information made available during the slow start phase of
    // loss recovery following an RTO". So the scoreboard starts empty and what the receiver
    // SACKs from now on steers the go-back-N retransmission (output.ts skips those ranges).
    tcb.resetScoreboard();
    // RACK's records go too: the go-back-N resend records each range again as it leaves.
    if (tcb.rack !== null) tcb.rack.clear();
    if (tcb.reoTimer.armed) tcp.host.wheel.disarm(tcb.reoTimer);
    tcb.rtoRecovery = tcb.sackOk;
    tcb.highRxt = tcb.sndUna;
    tcb.sndNxt = tcb.sndUna;
  }
  tcpOutput(tcp, tcb, now);
  tcp.dispatch();
}

/** RFC 9293 §3.8.3 R2 / user timeout §3.10.8: give up on the peer and tell the user ETIMEDOUT. */
function giveUp(tcp: Tcp, tcb: Tcb): void {
  tcp.counters.timeoutDrops++;
  if (tcb.state === TcpState.SYN_RECEIVED && tcb.passive) freeTcb(tcp, tcb);
  else {
    if (tcb.synchronized) sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST);
    dropConnection(tcp, tcb, tcb.softError || 'ETIMEDOUT');
  }
  tcp.dispatch();
}

export function onPersistTimer(tcb: Tcb, now: number): void {
  const tcp = tcb.tcp;
  if (tcb.state === TcpState.CLOSED) return;
  tcp.counters.persistTimeouts++;
  if (tcb.userTimeout > 0) {
    if (tcb.firstRexmtTime < 0) tcb.firstRexmtTime = now;
    else if (now - tcb.firstRexmtTime >= tcb.userTimeout) { dropConnection(tcp, tcb, 'ETIMEDOUT'); tcp.dispatch(); return; }
  }
  // RFC 1122 §4.2.2.17: "As long as the receiving TCP continues to send acknowledgments in
  // response to the probe segments, the sending TCP MUST allow the connection to stay open."
  // A peer that stopped answering is gone: after persist_probes unanswered probes or
  // maxpersistidle without a segment (Linux tcp_retries2, FreeBSD tcp_maxpersistidle) the
  // connection is dropped and its buffers freed. An orphan (the application closed it) gets
  // persist_probes in all, answered or not, as Linux's tcp_orphan_retries bounds it: no one
  // will ever read what a peer that holds its window shut makes it keep.
  const s = tcp.host.sysctl;
  const maxProbes = s.int('net.inet.tcp.persist_probes');
  if (tcb.persistProbes >= maxProbes || now - tcb.lastRecvTime >= s.int('net.inet.tcp.maxpersistidle')
      || (tcb.userClosed && tcb.persistBackoff >= maxProbes)) {
    tcp.counters.persistDrops++;
    sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST);
    dropConnection(tcp, tcb, 'ETIMEDOUT');
    tcp.dispatch();
    return;
  }
  tcb.persistProbes++;
  // Probe with one byte past the window (RFC 9293 §3.8.6.1 "send at least one octet of new
  // data"); the interval doubles up to persmax.
  tcb.persistBackoff++;
  // With a zero window this forces a one-byte probe; with a small one, what the window allows.
  tcb.forceOne = true;
  if (tcb.sndWnd === 0) {
    tcb.sndNxt = tcb.sndUna;
    tcp.counters.sndProbes++;
  }
  tcpOutput(tcp, tcb, now);
  tcb.forceOne = false;
  if (!tcb.persistTimer.armed && !tcb.rexmtTimer.armed && tcb.sndBuf.length > 0) armPersist(tcp, tcb, now);
  tcp.dispatch();
}

export function onKeepTimer(tcb: Tcb, now: number): void {
  const tcp = tcb.tcp;
  switch (tcb.keepMode) {
    case KeepMode.FinWait2:
      if (tcb.state === TcpState.FIN_WAIT_2) dropConnection(tcp, tcb, '');
      break;
    case KeepMode.Keepalive: {
      if (!tcb.keepalive || (tcb.state !== TcpState.ESTABLISHED && tcb.state !== TcpState.CLOSE_WAIT)) { tcb.keepMode = KeepMode.None; break; }
      const idle = now - tcb.lastRecvTime;
      if (tcb.keepProbes === 0 && idle < tcb.keepIdle) {
        tcp.host.wheel.arm(tcb.keepTimer, tcb.lastRecvTime + tcb.keepIdle);
        break;
      }
      if (tcb.keepProbes >= tcb.keepCnt) {
        tcp.counters.keepDrops++;
        sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST);
        dropConnection(tcp, tcb, 'ETIMEDOUT');
        break;
      }
      // RFC 9293 §3.8.4: a probe is a segment with SEG.SEQ = SND.NXT-1 and no data.
      tcp.counters.sndKeepProbes++;
      tcb.keepProbes++;
      emit(tcp, tcb, (tcb.sndUna - 1) >>> 0, 0, TcpFlag.ACK, now);
      tcp.host.wheel.arm(tcb.keepTimer, now + tcb.keepIntvl);
      break;
    }
  }
  tcp.dispatch();
}

export function onDelackTimer(tcb: Tcb, now: number): void {
  void now;
  const tcp = tcb.tcp;
  if (tcb.state === TcpState.CLOSED) return;
  // Linux: a delayed ACK that had to fire was not picked up by a reply; leave ping-pong mode.
  tcb.pingpong = false;
  tcb.ackNow = true;
  tcpOutput(tcp, tcb, now);
  tcp.dispatch();
}
