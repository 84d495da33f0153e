// The connection lifecycle: active open (ISN, SYN options), establishment, keepalive arming,
// drops, freeing a TCB and moving it to TIME_WAIT — and setState(), the only writer of
// tcb.state (RFC 9293 §3.3.2's diagram is the list of its callers).
import { TcpFlag, type TcpOptions } from '../../wire/tcp.js';
import { chooseWscale, emit, rcvWindow, sendRst, tcpOutput } from './output.js';
import { seqDiff, seqGt } from './seq.js';
import { EcnFlag, KeepMode, TcbEvent, TcpState, type Tcb } from './tcb.js';
import type { Tcp } from './tcp.js';
import type { Path } from '../ip/path.js';
import { AF_INET6, resolveEndsPath, type TcpEnds } from './ends.js';
import type { Segment } from './tcp.js';
import type { TcpListener } from './listen.js';

/**
 * The MSS a path allows: its MTU less the IP and TCP headers (RFC 9293 §3.7.1), resolving the
 * path first; 576-byte datagrams when there is no route (RFC 1122 §3.3.3's minimum).
 */
export function pathMss(tcp: Tcp, path: Path, e: TcpEnds): number {
  if (resolveEndsPath(tcp.host, path, e)) return path.mtu - path.headerLen - 20;
  // IPv6: every link carries 1280 (RFC 8200 §5), less 40 + 20 of headers.
  return e.family === AF_INET6 ? 1220 : 576 - 40;
}

/** Moves a connection to `state`: every state change goes through here. */
export function setState(tcb: Tcb, state: TcpState): void {
  (tcb as { state: TcpState }).state = state;
}

/** Active open: choose the ISN (RFC 6528), offer our options, send the SYN. */
export function startConnect(tcp: Tcp, tcb: Tcb, isnFloor = -1, defer = false): void {
  const now = tcp.host.clock.now();
  setState(tcb, TcpState.SYN_SENT);
  initSendSpace(tcb, chooseIsn(tcp, now, tcb, tcb.lport, tcb.rport, isnFloor));
  const mss = pathMss(tcp, tcb.path, tcb);
  tcb.rcvMss = tcb.userMss > 0 && tcb.userMss < mss ? tcb.userMss : mss;
  tcb.rcvWscale = tcp.tun.rfc1323.value ? chooseWscale(Math.max(tcb.rcvBuf.capacity, tcb.rcvBufMax)) : 0;
  // A TFO SYN may wait for the deferred-output flush, so it carries what is written meanwhile.
  if (defer) tcp.requestOutput(tcb); else tcpOutput(tcp, tcb, now);
}

/**
 * RFC 6528 ISN; when the 4-tuple comes out of TIME_WAIT (isnFloor >= 0), at least isnFloor so
 * it lies above every sequence number the previous incarnation used (RFC 1122 §4.2.2.13).
 */
export function chooseIsn(tcp: Tcp, now: number, e: TcpEnds, lport: number, rport: number, isnFloor: number): number {
  const isn = tcp.isnGen.isn(now, tcp.prf.local(e), lport, tcp.prf.remote(e), rport) >>> 0;
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
  const routeMss = pathMss(tcp, tcb.path, tcb);
  const peerMss = opts.mss >= 0 ? opts.mss : tcp.tun.mssDefault.value;
  // TCP_MAXSEG caps both the MSS we use and the one we announce (Linux: user_mss).
  const cap = tcb.userMss > 0 && tcb.userMss < routeMss ? tcb.userMss : routeMss;
  tcb.mss = Math.max(64, Math.min(peerMss, cap));
  tcb.rcvMss = cap;
  if (tcp.tun.rfc1323.value && opts.wscale >= 0 && (!active || tcb.rcvWscale >= 0)) {
    tcb.wsOk = true;
    tcb.sndWscale = opts.wscale;
    tcb.rcvWscale = active ? tcb.rcvWscale : chooseWscale(Math.max(tcb.rcvBuf.capacity, tcb.rcvBufMax));
  } else {
    tcb.wsOk = false; tcb.sndWscale = 0; tcb.rcvWscale = 0;
  }
  tcb.peerWscale = opts.wscale;
  tcb.tsOk = tcp.tun.rfc1323.value && opts.timestamps;
  if (tcb.tsOk) { tcb.tsRecent = opts.tsVal; tcb.tsRecentAge = now; }
  tcb.sackOk = tcp.tun.sackEnable.value && opts.sackPermitted;
  // The receive buffer never exceeds what the window field can announce.
  const maxWin = 65535 * (1 << tcb.rcvWscale);
  if (tcb.rcvBuf.capacity > maxWin) tcb.rcvBuf.capacity = maxWin;
  if (tcb.rcvBufMax > maxWin) tcb.rcvBufMax = maxWin;
}

/**
 * SYN_SENT/SYN_RECEIVED -> ESTABLISHED: start congestion control, hand a passive connection to
 * its listener's accept queue. Returns false when the segment must go no further: the listener
 * closed (the connection was reset and freed), or its accept queue is full (the connection stays
 * in SYN_RECEIVED).
 */
export function establish(tcp: Tcp, tcb: Tcb, now: number): boolean {
  const wasSynRcvd = tcb.state === TcpState.SYN_RECEIVED;
  if (tcb.passive && wasSynRcvd && tcb.listener && !tcb.listener.closed && tcb.listener.acceptQueue.length >= tcb.listener.backlog) {
    // A full accept queue (the application accepts slower than peers connect): as Linux with
    // tcp_abort_on_overflow = 0, the handshake's ACK is dropped and the connection stays in
    // SYN_RECEIVED; the SYN-ACK retransmission (or the peer's next segment) tries again, and
    // it is accepted once there is room. Only a bounded SYN_RECEIVED lifetime ends it.
    tcp.counters.listenOverflows++;
    return false;
  }
  setState(tcb, TcpState.ESTABLISHED);
  tcb.cc.init(tcb.maxSeg, now, tcp.tun.initCwndSegments.value);
  tcb.lastRecvTime = now;
  tcp.counters.connEstablished++;
  if (tcb.ecn & EcnFlag.Ok) { tcp.counters.ecnNegotiated++; tcb.ecnHigh = tcb.iss; }
  const tfo = tcb.tfo;
  tcb.tfo = null;
  if (tfo !== null && tfo.listener !== null) {
    // A TFO connection: in the accept queue (or accepted) since its SYN; its handshake is done.
    tfo.listener.tfoPending--;
  } else if (tcb.passive && wasSynRcvd && tcb.listener) {
    const l = tcb.listener;
    l.synQueueLen--;
    if (l.closed) {
      tcp.counters.listenOverflows++;
      sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST, tcb);
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
  if (tcb.finQueued) setState(tcb, TcpState.FIN_WAIT_1);
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
  tcb.disarmTimers(wheel);
  if (tcb.rack !== null) { tcp.giveRack(tcb.rack); tcb.rack = null; }
  tcb.keepMode = KeepMode.None;
  tcb.sndBuf.release();
  // Established and ended in the same receive burst, before the application heard of it: it
  // stays in the accept queue, so the burst's delivery still hands it over, then its end (as
  // Linux's accept queue keeps a child that was reset).
  const unannounced = tcb.inAcceptQueue && (tcb.events & TcbEvent.Accept) !== 0;
  // Data of the same burst that the application has not been told of yet (a reset right
  // after it) is still delivered before the close: it stays until read or closed.
  if ((!tcb.sock && !unannounced) || tcb.userClosed || (tcb.error && (tcb.events & TcbEvent.Data) === 0) || tcb.rcvBuf.length === 0) tcb.rcvBuf.release();
  tcb.rcvBuf.oooCount = 0;
  tcb.resetScoreboard();
  tcp.remove(tcb);
  if (tcb.tfo !== null) {
    if (tcb.tfo.listener !== null) tcb.tfo.listener.tfoPending--;
    tcb.tfo = null;
  }
  const l = tcb.listener;
  if (l && !unannounced) {
    if (tcb.inAcceptQueue) {
      const i = l.acceptQueue.indexOf(tcb);
      if (i >= 0) l.acceptQueue.splice(i, 1);
    } else if (tcb.state === TcpState.SYN_RECEIVED) {
      l.synQueueLen--;
    }
    tcb.listener = null;
    tcb.inAcceptQueue = false;
  }
  setState(tcb, TcpState.CLOSED);
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
  setState(tcb, TcpState.TIME_WAIT);
  const slot = tcp.addTimeWait(tcb, now + 2 * tcp.tun.msl.value, field, edge);
  tcb.tw = slot;
  tcb.twGen = tcp.timeWait.gen(slot);
  tcp.post(tcb, TcbEvent.Close);
}


/** A TCB for the connection a received segment (to listener `l`) opens, either family. */
export function newTcbFor(tcp: Tcp, seg: Segment, l: TcpListener): Tcb {
  if (seg.family === AF_INET6) return newTcb6(tcp, seg.laddr6, seg.dport, seg.raddr6, seg.sport);
  const t = tcp.newTcb(seg.dst, seg.dport, seg.src, seg.sport);
  // An IPv4 peer of a dual-stack listener: the application sees ::ffff:a.b.c.d.
  if (l.family === AF_INET6) t.v4mapped = true;
  return t;
}

/** An IPv6 TCB (addresses copied; laddr = raddr = 0 keep it out of every IPv4 lookup). */
export function newTcb6(tcp: Tcp, l6: Uint8Array, lport: number, r6: Uint8Array, rport: number, ccName?: string): Tcb {
  const t = tcp.newTcb(0, lport, 0, rport, ccName);
  t.family = AF_INET6;
  t.laddr6 = Uint8Array.from(l6);
  t.raddr6 = Uint8Array.from(r6);
  return t;
}
