// The low-level TCP socket API (for tests and for the Node-compatible `net` layer built on top):
// callbacks for readiness, copy-in write with backpressure, copy-out read, and async/await
// helpers. Events are delivered after the segment or timer that caused them has been processed,
// so callbacks may call back into the socket freely.
import { createCongestionControl, CC_ALGORITHMS } from './congestion/index.js';
import type { AbortSignalLike } from './listen.js';
import { sendRst } from './output.js';
import { EcnFlag, KeepMode, TcbEvent, Tcb, TcpState, TCP_STATE_NAMES } from './tcb.js';
import { armKeepalive, dropConnection, freeTcb, setState } from './lifecycle.js';
import { TcpFlag } from '../../wire/tcp.js';
import { seqDiff } from './seq.js';
import { tfoChild } from './fastopen.js';
import type { TcpBinding } from './ports.js';

export type TcpErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT' | 'EPIPE' | 'EADDRINUSE' | 'EADDRNOTAVAIL'
  | 'ENETUNREACH' | 'EHOSTUNREACH' | 'EINVAL' | 'EAGAIN' | 'ENOTCONN' | 'ECONNABORTED';

export class TcpError extends Error {
  constructor(readonly code: TcpErrorCode | string, message?: string) {
    super(message ?? code);
    this.name = 'TcpError';
  }
}

export interface ConnectOptions {
  raddr: number;
  rport: number;
  /** Local address (0/undefined = the route's source address). */
  laddr?: number;
  /** IPv6 destination (16 bytes; raddr is then ignored). ::ffff:a.b.c.d connects over IPv4 and reports IPv6. */
  raddr6?: Uint8Array;
  /** IPv6 local address (undefined or :: = chosen by RFC 6724). */
  laddr6?: Uint8Array;
  /** Local port (0/undefined = ephemeral, RFC 6056). */
  lport?: number;
  /** The binding a socket took with Tcp.bind(): its address and port are used, and it holds the chosen port. */
  binding?: TcpBinding;
  noDelay?: boolean;
  /** Congestion control for this socket (default: net.inet.tcp.cc.algorithm). */
  congestionControl?: string;
  /** TCP_MAXSEG before connect: caps the MSS announced in the SYN and the one used. */
  mss?: number;
  /** IP_TOS before connect (the SYN carries it too). */
  tos?: number;
  /**
   * TCP Fast Open (RFC 7413; needs net.inet.tcp.fastopen bit 0x1): data may ride in the SYN when
   * a cookie for the peer is cached (else the SYN asks for one). With `synData` (sendto with
   * MSG_FASTOPEN), as much of it as the SYN carries is queued (`socket.fastOpenLength` says how
   * much: 0 without a cookie); without it, under deferred output (the run loop), what the
   * application writes before the end of the current iteration rides in the SYN.
   */
  fastOpen?: boolean;
  synData?: Uint8Array;
}

type Waiter = () => void;

/** Linux's TCP states (include/net/tcp_states.h) by RFC state index. */
const LINUX_STATE = [7 /* CLOSE */, 10 /* LISTEN */, 2 /* SYN_SENT */, 3 /* SYN_RECV */, 1 /* ESTABLISHED */,
  4 /* FIN_WAIT1 */, 5 /* FIN_WAIT2 */, 8 /* CLOSE_WAIT */, 11 /* CLOSING */, 9 /* LAST_ACK */, 6 /* TIME_WAIT */];

/** TCP_INFO, field by field as Linux's struct tcp_info names them (camelCase). */
export interface TcpInfo {
  state: number; caState: number; retransmits: number; probes: number; backoff: number; options: number;
  sndWscale: number; rcvWscale: number;
  rto: number; ato: number; sndMss: number; rcvMss: number;
  unacked: number; sacked: number; lost: number; retrans: number;
  lastDataSent: number; lastDataRecv: number; lastAckRecv: number;
  pmtu: number; rcvSsthresh: number; rtt: number; rttvar: number; sndSsthresh: number; sndCwnd: number;
  advmss: number; reordering: number; rcvSpace: number; totalRetrans: number;
  bytesAcked: number; bytesReceived: number; segsOut: number; segsIn: number; notsentBytes: number; minRtt: number;
  dataSegsIn: number; dataSegsOut: number; deliveryRate: number; bytesSent: number; bytesRetrans: number;
  sndWnd: number; rcvWnd: number;
}

export class TcpSocket {
  /** The three-way handshake completed. */
  onConnect: (() => void) | null = null;
  /** Bytes are readable. */
  onData: (() => void) | null = null;
  /** The peer sent FIN and every byte before it has been made readable. */
  onEnd: (() => void) | null = null;
  /** Send buffer space is available again after write() accepted less than asked. */
  onDrain: (() => void) | null = null;
  /** The connection is over (err set for ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...). */
  onClose: ((err?: TcpError) => void) | null = null;
  /** @internal write() fell short: announce drain */
  wantDrain = false;
  private closeNotified = false;
  private endNotified = false;
  /** Pending async helpers; allocated by the first one (most sockets never await). */
  private waiters: Waiter[] | null = null;

  constructor(readonly tcb: Tcb) {
    tcb.sock = this;
  }

  /** RFC 9293 state name; TIME_WAIT until 2*MSL is over (or the entry is reset), then CLOSED. */
  get state(): string { return TCP_STATE_NAMES[this.tcb.liveState]; }
  get localAddress(): number { return this.tcb.laddr; }
  get localPort(): number { return this.tcb.lport; }
  get remoteAddress(): number { return this.tcb.raddr; }
  /** 4 or 6. An IPv6 connection's addresses are localAddress6/remoteAddress6 (localAddress = remoteAddress = 0). */
  get family(): number { return this.tcb.family; }
  get localAddress6(): Uint8Array { return this.tcb.laddr6; }
  get remoteAddress6(): Uint8Array { return this.tcb.raddr6; }
  /** An IPv4 connection an IPv6 socket made or accepted (dual-stack): its ends are named ::ffff:a.b.c.d. */
  get v4mapped(): boolean { return this.tcb.v4mapped; }
  get remotePort(): number { return this.tcb.rport; }
  /** Bytes readable now. */
  get readableLength(): number { return this.tcb.rcvBuf.length; }
  get bytesRead(): number { return this.tcb.bytesReceived - this.tcb.rcvBuf.length; }
  /** Bytes the peer has acknowledged. */
  get bytesWritten(): number { return this.tcb.bytesAcked; }
  /** Room in the send buffer. */
  get sendBufferFree(): number { return this.tcb.state === TcpState.CLOSED || this.tcb.finQueued ? 0 : this.tcb.sndBuf.free; }
  /** Bytes queued and not yet acknowledged. */
  get sendBufferLength(): number { return this.tcb.sndBuf.length; }
  /** The peer's FIN has been received. */
  get ended(): boolean { return this.tcb.finRcvd; }
  get closed(): boolean { return this.closeNotified || this.tcb.state === TcpState.CLOSED; }
  /** Bytes queued for the SYN by connect({ fastOpen, synData }) (TCP Fast Open), or carried by it. */
  get fastOpenLength(): number { return this.tcb.tfo !== null ? this.tcb.tfo.synData : 0; }
  /** Error that closed the connection, if any. */
  get error(): TcpError | undefined { return this.tcb.error ? new TcpError(this.tcb.error) : undefined; }

  /**
   * Copies bytes into the send buffer and sends what the windows allow. Returns the number of
   * bytes accepted (less than data.length when the buffer is full: wait for onDrain).
   * Throws TcpError EPIPE after shutdown()/close() or once the connection is gone.
   */
  write(data: Uint8Array, more = false): number {
    const t = this.tcb;
    if (t.finQueued || t.state === TcpState.CLOSED || t.state === TcpState.TIME_WAIT) throw new TcpError('EPIPE', 'write after end');
    const n = t.sndBuf.write(data, 0, data.length);
    if (n < data.length) this.wantDrain = true;
    // MSG_MORE (Linux): this write's tail waits, like a cork, for the next write without it.
    const wasMore = t.more;
    t.more = more;
    if ((n > 0 || wasMore) && (t.synchronized || tfoChild(t))) t.tcp.requestOutput(t);
    return n;
  }

  /** Copies up to `max` readable bytes without consuming them (MSG_PEEK). */
  peekInto(dst: Uint8Array, off = 0, max = dst.length - off): number {
    return this.tcb.rcvBuf.length === 0 ? 0 : this.tcb.rcvBuf.peekInto(dst, off, max);
  }

  /**
   * Linux's sk_stream_is_writeable(): at least a third of the queue free (free >= queued / 2)
   * and, with TCP_NOTSENT_LOWAT, fewer unsent bytes than the mark.
   */
  get writable(): boolean {
    const free = this.sendBufferFree;
    if (free <= 0 || free * 2 < this.tcb.sndBuf.length) return false;
    const lowat = this.tcb.notsentLowat;
    return lowat === 0 || this.tcb.notSent < lowat;
  }
  /** Bytes queued and never sent (SIOCOUTQNSD; TCP_INFO's notsent_bytes). */
  get notSentLength(): number { return this.tcb.notSent; }

  /** TCP_CORK: hold short segments until uncorked (a FIN still goes). */
  setCork(on: boolean): void {
    const t = this.tcb;
    if (t.cork && !on) t.push = true;
    t.cork = on;
    if (!on && t.synchronized) t.tcp.requestOutput(t);
  }
  get cork(): boolean { return this.tcb.cork; }

  /** TCP_NOTSENT_LOWAT in bytes (0 = off): writability and drain wait for unsent data below it. */
  setNotSentLowat(bytes: number): void {
    this.tcb.notsentLowat = bytes > 0 ? bytes : 0;
    if (this.writable && this.wantDrain) this.tcb.tcp.post(this.tcb, TcbEvent.Drain);
  }
  get notSentLowat(): number { return this.tcb.notsentLowat; }

  /** IP_TOS / IPV6_TCLASS for this connection's segments (ECN bits are the stack's). */
  setTos(tos: number): void { this.tcb.tos = tos & 0xfc; }
  get tos(): number { return this.tcb.tos; }

  /**
   * TCP_INFO in Linux's struct tcp_info terms (times in µs as Linux, windows in segments where
   * Linux counts segments). Fields tstack does not track (pacing, busy/rwnd/sndbuf-limited time)
   * are 0.
   */
  info(): TcpInfo {
    const t = this.tcb;
    const now = t.tcp.host.clock.now();
    const mss = t.maxSeg > 0 ? t.maxSeg : 1;
    const flight = t.flightSize;
    const sb = t.hasScoreboard ? t.scoreboard : null;
    const st = t.stats;
    const caState = t.rtoRecovery || t.rexmtCount > 0 ? 4 : t.inRecovery ? 3 : t.dupAcks > 0 ? 1 : 0;
    return {
      state: LINUX_STATE[t.liveState]!,
      caState,
      retransmits: t.rexmtCount,
      probes: t.keepProbes,
      backoff: t.rtt.backoffs,
      // TCPI_OPT_TIMESTAMPS, _SACK, _WSCALE, _ECN (8), _ECN_SEEN (16).
      options: (t.tsOk ? 1 : 0) | (t.sackOk ? 2 : 0) | (t.wsOk ? 4 : 0) | (t.ecn & EcnFlag.Ok ? 8 : 0) | (t.ecn & EcnFlag.Seen ? 16 : 0),
      sndWscale: t.sndWscale,
      rcvWscale: t.rcvWscale,
      rto: Math.round(t.rtt.rto * 1000),
      ato: t.tcp.tun.delAckTime.value * 1000,
      sndMss: t.maxSeg,
      rcvMss: t.rcvMss,
      unacked: Math.ceil(flight / mss),
      sacked: sb ? Math.ceil(sb.sackedBytes / mss) : 0,
      lost: t.rack ? t.rack.lostCount : 0,
      retrans: t.inRecovery ? Math.ceil(Math.max(0, seqDiff(t.highRxt, t.sndUna)) / mss) : 0,
      lastDataSent: st && st.lastDataSentTime > 0 ? Math.round(now - st.lastDataSentTime) : 0,
      lastDataRecv: t.lastDataRecvTime >= 0 ? Math.round(now - t.lastDataRecvTime) : 0,
      lastAckRecv: st && st.lastAckRecvTime > 0 ? Math.round(now - st.lastAckRecvTime) : 0,
      pmtu: t.path.mtu,
      rcvSsthresh: t.rcvBuf.capacity,
      rtt: Math.round(t.rtt.srtt * 1000),
      rttvar: Math.round(t.rtt.rttvar * 1000),
      sndSsthresh: Math.min(Math.ceil(t.cc.ssthresh / mss), 0x7fffffff),
      sndCwnd: Math.ceil(t.cc.cwnd / mss),
      advmss: t.rcvMss,
      reordering: t.rack?.reorderingSeen ? 4 : 3,
      rcvSpace: t.rcvBuf.capacity,
      totalRetrans: st ? st.totalRetrans : 0,
      bytesAcked: t.bytesAcked,
      bytesReceived: t.bytesReceived,
      segsOut: t.segsOut,
      segsIn: t.segsIn,
      notsentBytes: t.notSent,
      minRtt: t.rack && t.rack.minRtt !== Infinity ? Math.round(t.rack.minRtt * 1000) : Math.round(t.rtt.srtt * 1000),
      dataSegsIn: st ? st.dataSegsIn : 0,
      dataSegsOut: st ? st.dataSegsOut : 0,
      deliveryRate: st ? st.deliveryRate : 0,
      bytesSent: st ? st.bytesSent : 0,
      bytesRetrans: st ? st.bytesRetrans : 0,
      sndWnd: t.sndWnd,
      rcvWnd: Math.max(0, seqDiff(t.rcvAdv, t.rcvNxt)),
    };
  }

  /** Effective send MSS without options (TCP_MAXSEG on a connected socket: Linux's mss_cache). */
  get maxSegment(): number { return this.tcb.maxSeg; }

  /** Copies up to `max` readable bytes out; null when nothing is readable. */
  read(max = Infinity): Uint8Array | null {
    const t = this.tcb;
    const out = t.rcvBuf.read(max);
    if (out) this.afterRead();
    return out;
  }

  /** Reads into a caller-provided buffer; returns the byte count (0 when nothing is readable). */
  readInto(dst: Uint8Array, off = 0, max = dst.length - off): number {
    const n = this.tcb.rcvBuf.length === 0 ? 0 : this.tcb.rcvBuf.readInto(dst, off, max);
    if (n > 0) this.afterRead();
    return n;
  }

  private afterRead(): void {
    const t = this.tcb;
    if (t.state === TcpState.CLOSED || t.state === TcpState.TIME_WAIT) {
      if (t.rcvBuf.length === 0) t.rcvBuf.release();
      return;
    }
    // The window may have opened enough for an update (receiver SWS rules in output).
    t.readSinceAck = true;
    t.tcp.requestOutput(t);
  }

  /** Half-close: FIN after the queued data (RFC 9293 §3.10.4 CLOSE on our side only). */
  shutdown(): void {
    const t = this.tcb;
    if (t.finQueued) return;
    switch (t.state) {
      case TcpState.SYN_SENT: case TcpState.SYN_RECEIVED:
        t.finQueued = true; // sent once established
        return;
      case TcpState.ESTABLISHED:
        t.finQueued = true;
        setState(t, TcpState.FIN_WAIT_1);
        break;
      case TcpState.CLOSE_WAIT:
        t.finQueued = true;
        setState(t, TcpState.LAST_ACK);
        break;
      default:
        return;
    }
    t.tcp.requestOutput(t);
  }

  /**
   * Graceful close: FIN after queued data; the application will read no more. Like Linux and
   * FreeBSD (RFC 2525 §2.17), unread received data — or data arriving later — makes it a reset
   * instead. In SYN_SENT the connection is simply forgotten.
   */
  close(): void {
    const t = this.tcb;
    if (t.userClosed) return;
    t.userClosed = true;
    this.onData = null;
    if (t.state === TcpState.CLOSED || t.state === TcpState.TIME_WAIT) { t.rcvBuf.release(); return; }
    if (t.state === TcpState.SYN_SENT) { dropConnection(t.tcp, t, ''); t.tcp.deliverEvents(); return; }
    if (t.rcvBuf.length > 0) { this.abort(); return; }
    t.rcvBuf.release();
    this.shutdown();
    if (t.state === TcpState.FIN_WAIT_2) {
      t.tcp.host.wheel.arm(t.keepTimer, t.tcp.host.clock.now() + t.tcp.tun.finWait2Timeout.value);
      t.keepMode = KeepMode.FinWait2;
    }
  }

  /** Abortive close: RST (RFC 9293 §3.10.5 ABORT), buffers dropped, onClose() without error. */
  abort(): void {
    const t = this.tcb;
    if (t.state === TcpState.CLOSED) return;
    if (t.state === TcpState.TIME_WAIT) {
      // The connection lives on as a TIME_WAIT record: abort ends it (no segment, no event).
      t.userClosed = true;
      if (t.tcp.timeWait.isLive(t.tw, t.twGen)) t.tcp.timeWait.remove(t.tw);
      t.tw = -1;
      setState(t, TcpState.CLOSED);
      return;
    }
    if (t.state !== TcpState.SYN_SENT) {
      // "<SEQ=SND.NXT><CTL=RST>"
      sendRst(t.tcp, t.laddr, t.lport, t.raddr, t.rport, seqDiff(t.sndNxt, 0) >>> 0, 0, TcpFlag.RST, t);
    }
    t.userClosed = true;
    freeTcb(t.tcp, t);
    t.tcp.post(t, TcbEvent.Close);
    t.tcp.deliverEvents();
  }

  setNoDelay(on = true): void {
    this.tcb.noDelay = on;
    if (on && this.tcb.synchronized) this.tcb.tcp.requestOutput(this.tcb);
  }

  /** Keepalive (RFC 9293 §3.8.4); times in ms; unset values keep the sysctl defaults. */
  setKeepAlive(on: boolean, idleMs?: number, intvlMs?: number, count?: number): void {
    const t = this.tcb;
    t.keepalive = on;
    if (idleMs !== undefined && idleMs > 0) t.keepIdle = idleMs;
    if (intvlMs !== undefined && intvlMs > 0) t.keepIntvl = intvlMs;
    if (count !== undefined && count > 0) t.keepCnt = count;
    const now = t.tcp.host.clock.now();
    if (on && (t.state === TcpState.ESTABLISHED || t.state === TcpState.CLOSE_WAIT)) armKeepalive(t.tcp, t, now);
    else if (!on && t.keepMode === KeepMode.Keepalive) { t.tcp.host.wheel.disarm(t.keepTimer); t.keepMode = 0; }
  }

  /** RFC 9293 §3.8.4 / RFC 5482 user timeout: give up when data stays unacknowledged this long (0 = off). */
  setUserTimeout(ms: number): void { this.tcb.userTimeout = ms; }

  /** Switches this connection's congestion control ('newreno' | 'cubic'). */
  setCongestionControl(name: string): void {
    if (!(CC_ALGORITHMS as readonly string[]).includes(name)) throw new TcpError('EINVAL', `unknown congestion control '${name}'`);
    const t = this.tcb;
    const cc = createCongestionControl(name);
    if (t.synchronized) {
      cc.init(t.maxSeg, t.tcp.host.clock.now(), 1);
      cc.cwnd = t.cc.cwnd;
      cc.ssthresh = t.cc.ssthresh;
    }
    t.cc = cc;
  }
  get congestionControl(): string { return this.tcb.cc.name; }

  // ---- async/await helpers ----

  /** Resolves when connected; rejects with the TcpError that closed the connection. */
  connected(): Promise<void> {
    return this.waitFor(() => {
      if (this.tcb.state >= TcpState.ESTABLISHED && this.tcb.state !== TcpState.CLOSED) return true;
      if (this.closed) throw this.error ?? new TcpError('ECONNABORTED', 'closed before connecting');
      return false;
    });
  }

  /** Next readable bytes, or null at end of stream (peer FIN) or after a clean close. */
  async readAsync(signal?: AbortSignalLike, max = Infinity): Promise<Uint8Array | null> {
    let out: Uint8Array | null = null;
    await this.waitFor(() => {
      out = this.read(max);
      if (out) return true;
      if (this.tcb.finRcvd) return true;
      if (this.closed) { if (this.tcb.error) throw this.error; return true; }
      return false;
    }, signal);
    return out;
  }

  /** Queues all of data, waiting for buffer space as needed. */
  async writeAsync(data: Uint8Array, signal?: AbortSignalLike): Promise<void> {
    let off = 0;
    await this.waitFor(() => {
      if (this.closed && this.tcb.error) throw this.error;
      if (off < data.length) off += this.write(off === 0 ? data : data.subarray(off));
      return off >= data.length;
    }, signal);
  }

  /** Resolves when the connection has closed (with or without error). */
  closedAsync(): Promise<TcpError | undefined> {
    return this.waitFor(() => this.closed).then(() => this.error);
  }

  /** Re-evaluates `check` on every event until it returns true (or throws). */
  private waitFor(check: () => boolean, signal?: AbortSignalLike): Promise<void> {
    try { if (check()) return Promise.resolve(); } catch (e) { return Promise.reject(e); }
    if (signal?.aborted) return Promise.reject(signal.reason ?? new TcpError('ECONNABORTED', 'aborted'));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => { remove(); reject(signal!.reason ?? new TcpError('ECONNABORTED', 'aborted')); };
      const w: Waiter = () => {
        let done: boolean;
        try { done = check(); } catch (e) { remove(); reject(e); return; }
        if (done) { remove(); resolve(); }
      };
      const remove = () => {
        const i = this.waiters!.indexOf(w);
        if (i >= 0) this.waiters!.splice(i, 1);
        signal?.removeEventListener('abort', onAbort);
      };
      (this.waiters ??= []).push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * @internal One delivery of everything a burst raised, in this order: connected, readable
   * (once, with all the data of the burst), writable (drain), end of the peer's data, close
   * (with its error). A callback may close the socket; what follows then sees it closed.
   */
  deliver(ev: number): void {
    if (ev & TcbEvent.Connect) this.onConnect?.();
    if ((ev & TcbEvent.Data) && this.tcb.rcvBuf.length > 0) this.onData?.();
    if (ev & TcbEvent.Drain) {
      const free = this.tcb.sndBuf.free;
      const lowat = this.tcb.notsentLowat;
      if (this.wantDrain && free >= this.tcb.sndBuf.capacity >>> 1 && (lowat === 0 || this.tcb.notSent < lowat)) {
        this.wantDrain = false;
        this.onDrain?.();
      }
    }
    if ((ev & TcbEvent.End) && !this.endNotified) { this.endNotified = true; this.onEnd?.(); }
    if ((ev & TcbEvent.Close) && !this.closeNotified) {
      this.closeNotified = true;
      this.onClose?.(this.error);
    }
    if (this.waiters !== null && this.waiters.length > 0) for (const w of this.waiters.slice()) w();
  }
}

/** @internal Tcp's ready list delivers a connection's events through here. */
export function deliverTcbEvents(tcb: Tcb): void {
  let ev = tcb.events;
  if (ev === 0) return;
  tcb.events = 0;
  if (ev & TcbEvent.Accept) {
    // Listener reference is kept until accept; deliver from the listener the TCB belongs to.
    const l = tcb.listener;
    if (l && tcb.inAcceptQueue) l.deliver();
    // The accept announced what arrived before it (data, end): the same burst's, delivered
    // once, here.
    ev |= tcb.events;
    tcb.events = 0;
  }
  const s = tcb.sock;
  if (s) s.deliver(ev & ~TcbEvent.Accept);
}
