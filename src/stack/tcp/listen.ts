// LISTEN (RFC 9293 §3.10.7.2): the SYN queue (TCBs in SYN_RECEIVED), the accept queue with
// its backlog, and SYN cookies (RFC 4987 §3.6) when the SYN queue overflows or are forced.
import { TcpFlag, type TcpOptionsSpec } from '../../wire/tcp.js';
import { segmentArrives } from './input.js';
import { chooseWscale, sendRaw, sendRst, tcpOutput } from './output.js';
import { EcnFlag, TcbEvent, TcpState, type Tcb } from './tcb.js';
import type { Segment, Tcp } from './tcp.js';
import type { TcpBinding } from './ports.js';
import { TcpSocket, TcpError } from './socket.js';
import { AF_INET, AF_INET6, NO_ADDR6 } from './ends.js';
import { applySynOptions, chooseIsn, freeTcb, initSendSpace, newTcbFor, pathMss, setState } from './lifecycle.js';
import { fastOpenServer } from './fastopen.js';

export interface ListenOptions {
  /** Local address (u32); 0 = any. */
  addr?: number;
  /**
   * An IPv6 listener: its address (16 bytes; all zero = ::). On :: it also takes IPv4
   * connections (they appear as ::ffff:a.b.c.d) unless `ipv6Only`.
   */
  addr6?: Uint8Array;
  /** IPV6_V6ONLY: an IPv6 listener on :: takes no IPv4 connections. */
  ipv6Only?: boolean;
  /** Local port; 0 = an ephemeral port. */
  port: number;
  /** Accept queue length (connections established but not yet accepted). */
  backlog?: number;
  /** TCP_MAXSEG before listen: caps the MSS of every accepted connection. */
  mss?: number;
  /** SO_REUSEADDR for the binding listen() takes when none is given (default true, as Node's servers). */
  reuseAddr?: boolean;
  /** The binding a socket took with Tcp.bind() (the POSIX layer); without one, listen() binds. */
  binding?: TcpBinding;
  /**
   * TCP Fast Open (RFC 7413; Linux's TCP_FASTOPEN socket option): the most connections opened by
   * a SYN with data that may wait for their handshake to complete; 0/undefined = no TFO (unless
   * net.inet.tcp.fastopen has 0x400). Needs net.inet.tcp.fastopen bit 0x2.
   */
  fastOpen?: number;
}

export class TcpListener {
  /** Called for each new connection; when null, connections wait for accept(). */
  onConnection: ((s: TcpSocket) => void) | null = null;
  /** @internal established, not yet accepted */
  readonly acceptQueue: Tcb[] = [];
  /** @internal TCBs in SYN_RECEIVED */
  synQueueLen = 0;
  closed = false;
  /** TCP_MAXSEG for connections accepted from now on (0 = none). */
  mss = 0;
  /** IP_TOS for connections accepted from now on (the SYN-ACK carries it). */
  tos = 0;
  /** AF_INET or AF_INET6 (then laddr is 0 for a dual-stack ::, a.b.c.d for ::ffff:a.b.c.d, else NO_V4). */
  family = AF_INET;
  laddr6: Uint8Array = NO_ADDR6;
  ipv6Only = false;
  /** TCP Fast Open queue length (TCP_FASTOPEN): 0 = no TFO on this listener. */
  tfoQlen = 0;
  /** Connections opened by a SYN with data whose handshake has not completed yet. */
  tfoPending = 0;
  private waiters: { resolve: (s: TcpSocket) => void; reject: (e: Error) => void; signal?: AbortSignalLike; onAbort?: () => void }[] = [];

  constructor(private readonly tcp: Tcp, readonly laddr: number, readonly localPort: number, readonly backlog: number, readonly binding: TcpBinding) {}

  /** Connections waiting in the accept queue. */
  get pending(): number { return this.acceptQueue.length; }

  /** The next established connection (waits for one). Rejects with ECONNABORTED on close, or the signal's reason. */
  accept(signal?: AbortSignalLike): Promise<TcpSocket> {
    const s = this.take();
    if (s) return Promise.resolve(s);
    if (this.closed) return Promise.reject(new TcpError('ECONNABORTED', 'listener closed'));
    if (signal?.aborted) return Promise.reject(signal.reason ?? new TcpError('ECONNABORTED', 'aborted'));
    return new Promise((resolve, reject) => {
      const w: (typeof this.waiters)[number] = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason ?? new TcpError('ECONNABORTED', 'aborted'));
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.push(w);
    });
  }

  /** Stops listening: queued and half-open connections are reset. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.tcp.unlisten(this);
    for (const t of [...this.acceptQueue]) abortChild(this.tcp, t);
    for (const t of this.tcp.connections()) if (t.listener === this) abortChild(this.tcp, t);
    for (const w of this.waiters.splice(0)) {
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
      w.reject(new TcpError('ECONNABORTED', 'listener closed'));
    }
  }

  /** @internal an accepted connection became ready (dispatch of TcbEvent.Accept). */
  deliver(): void {
    while (this.acceptQueue.length > 0 && (this.onConnection || this.waiters.length > 0)) {
      const s = this.take()!;
      if (this.onConnection) { this.onConnection(s); continue; }
      const w = this.waiters.shift()!;
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
      w.resolve(s);
    }
  }

  private take(): TcpSocket | null {
    const t = this.acceptQueue.shift();
    if (!t) return null;
    t.inAcceptQueue = false;
    t.listener = null;
    const s = new TcpSocket(t);
    // Whatever arrived before accept() is announced now.
    if (t.rcvBuf.length > 0) this.tcp.post(t, TcbEvent.Data);
    if (t.finRcvd) this.tcp.post(t, TcbEvent.End);
    return s;
  }
}

/** Minimal AbortSignal shape (the engine does not depend on DOM or node types). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', fn: () => void, opts?: { once?: boolean }): void;
  removeEventListener(type: 'abort', fn: () => void): void;
}

function abortChild(tcp: Tcp, t: Tcb): void {
  if (t.state === TcpState.CLOSED) {
    // Ended already, waiting in the accept queue for its burst's delivery (freeTcb).
    const q = t.listener!.acceptQueue, i = q.indexOf(t);
    if (i >= 0) q.splice(i, 1);
    t.listener = null;
    t.inAcceptQueue = false;
    return;
  }
  sendRst(tcp, t.laddr, t.lport, t.raddr, t.rport, t.sndNxt, 0, TcpFlag.RST, t);
  t.events &= ~TcbEvent.Accept; // never handed over now: out of the queue
  freeTcb(tcp, t);
}

/**
 * A segment for a listening port with no connection yet (RFC 9293 §3.10.7.2). `isnFloor` >= 0
 * when the SYN reopens a 4-tuple in TIME_WAIT: the new ISN is at least that.
 */
export function listenerInput(tcp: Tcp, l: TcpListener, seg: Segment, isnFloor = -1): void {
  const flags = seg.flags;
  // "First, check for a RST: An incoming RST segment could not be valid since it could not have
  // been sent in response to anything sent by this incarnation of the connection. An incoming
  // RST should be ignored."
  if (flags & TcpFlag.RST) return;
  const host = tcp.host;
  const now = host.clock.now();
  if (flags & TcpFlag.ACK) {
    // The final ACK of a handshake answered with a SYN cookie.
    if (!(flags & TcpFlag.SYN) && tcp.tun.syncookies.value > 0 && cookieAck(tcp, l, seg, now)) return;
    // "Second, check for an ACK: Any acknowledgment is bad if it arrives on a connection still in
    // the LISTEN state. An acceptable reset segment should be formed ... <SEQ=SEG.ACK><CTL=RST>"
    sendRst(tcp, seg.dst, seg.dport, seg.src, seg.sport, seg.ack, 0, TcpFlag.RST, seg);
    return;
  }
  // "Third, check for a SYN"; "Fourth, other data or control ... drop the segment, and return."
  if (!(flags & TcpFlag.SYN)) return;
  if (l.acceptQueue.length >= l.backlog) { tcp.counters.listenOverflows++; return; }
  const mode = tcp.tun.syncookies.value;
  const synBacklog = Math.min(tcp.tun.synBacklog.value, Math.max(l.backlog, 1) * 2);
  if (mode === 2 || (mode === 1 && l.synQueueLen >= synBacklog)) { sendCookieSynAck(tcp, seg, now); return; }
  if (l.synQueueLen >= synBacklog) { tcp.counters.synQueueDrops++; return; }
  if (!tcp.canCreate()) return;

  const tcb = newTcbFor(tcp, seg, l);
  tcb.passive = true;
  tcb.listener = l;
  tcb.userMss = l.mss;
  tcb.tos = l.tos;
  setState(tcb, TcpState.SYN_RECEIVED);
  // "Set RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ ... ISS should be selected"
  tcb.irs = seg.seq;
  tcb.rcvNxt = (seg.seq + 1) >>> 0;
  applySynOptions(tcp, tcb, seg.opts, false, now);
  // RFC 3168 §6.1.1: an ECN-setup SYN (ECE and CWR) is accepted unless net.inet.tcp.ecn is 0;
  // like Linux (tcp_ecn_create_request()), not when the SYN itself is ECT-marked.
  if ((flags & (TcpFlag.ECE | TcpFlag.CWR)) === (TcpFlag.ECE | TcpFlag.CWR) && tcp.tun.ecn.value !== 0 && seg.ecn === 0) tcb.ecn = EcnFlag.Ok;
  tcb.rcvAdv = (tcb.rcvNxt + Math.min(tcb.rcvBuf.space, 65535)) >>> 0;
  initSendSpace(tcb, chooseIsn(tcp, now, seg, seg.dport, seg.sport, isnFloor));
  tcb.sndWnd = seg.wnd; // SYN windows are not scaled
  tcb.maxSndWnd = seg.wnd;
  tcb.sndWl1 = seg.seq;
  tcb.sndWl2 = 0;
  tcb.lastRecvTime = now;
  tcp.insert(tcb);
  if ((seg.opts.fastOpen >= 0 || seg.dataLen > 0) && fastOpenServer(tcp, l, tcb, seg, now)) {
    // RFC 7413 §4.2.2: the data in the SYN is the application's at once; the connection waits
    // in the accept queue (not the SYN queue) and is counted in the listener's TFO queue.
    l.acceptQueue.push(tcb);
    tcb.inAcceptQueue = true;
    tcp.counters.connAccepts++;
    tcp.post(tcb, TcbEvent.Accept);
  } else {
    l.synQueueLen++;
  }
  tcpOutput(tcp, tcb, now); // SYN,ACK
}

/** Stateless SYN-ACK whose ISN encodes MSS, window scale and SACK-permitted (RFC 4987 §3.6). */
function sendCookieSynAck(tcp: Tcp, seg: Segment, now: number): void {
  const o = seg.opts;
  const ourMss = pathMss(tcp, seg.family === AF_INET6 ? tcp.scratchPath6 : tcp.scratchPath, seg);
  const peerMss = o.mss >= 0 ? o.mss : tcp.tun.mssDefault.value;
  const wscale = tcp.tun.rfc1323.value ? o.wscale : -1;
  const sackOk = tcp.tun.sackEnable.value && o.sackPermitted;
  const isn = tcp.cookies.encode(now, tcp.prf.local(seg), seg.dport, tcp.prf.remote(seg), seg.sport, seg.seq, Math.min(peerMss, ourMss), wscale, sackOk) >>> 0;
  tcp.counters.synCookiesSent++;
  const recvSpace = tcp.tun.recvSpace.value;
  cookieSpec.mss = ourMss;
  // The shift newTcb()'s connection will use: room for the autotuned maximum (applySynOptions()).
  const rmax = tcp.host.sysctl.get('net.inet.tcp.recvbuf_auto') ? tcp.host.sysctl.int('net.inet.tcp.recvbuf_max') : 0;
  cookieSpec.wscale = wscale >= 0 ? chooseWscale(Math.max(recvSpace, rmax)) : -1;
  cookieSpec.sackPermitted = sackOk;
  cookieSpec.timestamps = tcp.tun.rfc1323.value && o.timestamps;
  cookieSpec.tsVal = Math.floor(now) >>> 0;
  cookieSpec.tsEcr = o.tsVal;
  cookieSpec.sackCount = 0;
  sendRaw(tcp, seg.dst, seg.dport, seg.src, seg.sport, isn, (seg.seq + 1) >>> 0, TcpFlag.SYN | TcpFlag.ACK,
    Math.min(recvSpace, 65535), cookieSpec, null, 0, 0, 0, 0, seg);
}

const cookieSpec: TcpOptionsSpec = {
  mss: -1, wscale: -1, sackPermitted: false, timestamps: false, tsVal: 0, tsEcr: 0, sackCount: 0, sackBlocks: new Uint32Array(8),
};

/** The ACK completing a cookie handshake: rebuild the connection from the cookie. */
function cookieAck(tcp: Tcp, l: TcpListener, seg: Segment, now: number): boolean {
  const peerIsn = (seg.seq - 1) >>> 0;
  const ourIsn = (seg.ack - 1) >>> 0;
  const r = tcp.cookies.decode(now, tcp.prf.local(seg), seg.dport, tcp.prf.remote(seg), seg.sport, peerIsn, ourIsn);
  if (!r) { tcp.counters.synCookiesFailed++; return false; }
  if (l.acceptQueue.length >= l.backlog || !tcp.canCreate()) { tcp.counters.listenOverflows++; return true; }
  tcp.counters.synCookiesReceived++;
  const tcb = newTcbFor(tcp, seg, l);
  tcb.passive = true;
  tcb.listener = l;
  tcb.userMss = l.mss;
  tcb.tos = l.tos;
  setState(tcb, TcpState.SYN_RECEIVED);
  tcb.irs = peerIsn;
  tcb.rcvNxt = seg.seq;
  // Rebuild the options the SYN offered: the cookie carries MSS, window scale and SACK; a
  // timestamp on this ACK means both sides agreed to timestamps.
  const o = seg.opts;
  const saveMss = o.mss, saveWs = o.wscale, saveSack = o.sackPermitted, saveTsVal = o.tsVal;
  o.mss = r.mss; o.wscale = r.wscale; o.sackPermitted = r.sackOk;
  applySynOptions(tcp, tcb, o, false, now);
  o.mss = saveMss; o.wscale = saveWs; o.sackPermitted = saveSack; o.tsVal = saveTsVal;
  if (tcb.tsOk) { tcb.tsRecent = o.tsVal; tcb.tsRecentAge = now; tcb.tsOffset = 0; }
  tcb.rcvAdv = (tcb.rcvNxt + Math.min(tcb.rcvBuf.space, 65535)) >>> 0;
  initSendSpace(tcb, ourIsn);
  tcb.sndNxt = tcb.sndMax = (ourIsn + 1) >>> 0;
  tcb.lastAckSent = tcb.rcvNxt;
  tcp.insert(tcb);
  l.synQueueLen++;
  // The rest is the ordinary SYN_RECEIVED processing of this ACK (window, data, FIN).
  segmentArrives(tcp, tcb, seg);
  return true;
}
