// tstack/posix: the descriptor API in F-Stack's shape (ff_socket, ff_bind, ff_epoll_wait…)
// over the tstack engine: socket, bind, listen, accept, connect, read/write/readv/writev,
// send/recv/sendto/recvfrom, shutdown, close, setsockopt/getsockopt, fcntl, ioctl,
// getsockname/getpeername and epoll, with awaitable variants taking a timeout or an AbortSignal.
//
// Conventions (docs/api-posix.md):
// - Every call returns a non-negative result or a NEGATIVE errno (-Errno.EAGAIN …), like the
//   raw Linux syscall ABI and io_uring completions. There is no global errno.
// - Descriptors are small integers from a per-stack table (lowest free number first, from 3).
//   They are NOT kernel file descriptors: pass them only to this module.
// - Addresses are text: { addr: '198.18.0.2', port: 80 } on AF_INET sockets, { addr:
//   '2001:db8::1', port: 80, scopeId } on AF_INET6 ones (sockaddr_in6's fields; a dual-stack
//   socket names IPv4 peers ::ffff:a.b.c.d, as Linux does).
// - The synchronous calls never wait: one thread runs both the program and the stack, so every
//   descriptor behaves as if O_NONBLOCK were set (the flag is kept for F_GETFL). The *Async
//   variants are the blocking forms.
// - Semantics follow Linux (tcp_poll, inet_stream_connect, epoll) unless docs/api-posix.md
//   says otherwise.
import { Errno as EngineErrno } from '../base/errors.js';
import { Stack } from '../stack/stack.js';
import type { TcpSocket } from '../stack/tcp/socket.js';
import type { TcpListener } from '../stack/tcp/listen.js';
import type { TcpBinding } from '../stack/tcp/ports.js';
import { TcpState } from '../stack/tcp/tcb.js';
import { CC_ALGORITHMS } from '../stack/tcp/congestion/index.js';
import type { UdpMessage, UdpSocket } from '../stack/udp.js';
import { UdpFamily, mappedV4 } from '../stack/udp.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../wire/addr.js';
import { resolveStack, type StackContext, type StackOption } from './runtime.js';
import {
  EpollCtlResult, EpollSet, type EpollEntry, type EpollEvent, type Pollable,
  EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDNORM, EPOLLWRNORM, EPOLLRDHUP, EPOLLRDBAND, EPOLLPRI, EPOLLWRBAND,
  EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD,
} from './epoll.js';

export {
  EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDNORM, EPOLLRDBAND, EPOLLWRNORM, EPOLLWRBAND, EPOLLRDHUP,
  EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, type EpollEvent,
} from './epoll.js';

// ---- constants (Linux values, as F-Stack's ff_api.h uses) -----------------------------------

/** Positive POSIX errno values (Linux numbering). Calls return them negated. */
export const Errno = {
  ...EngineErrno,
  EWOULDBLOCK: 11, ENOTSOCK: 88, ESOCKTNOSUPPORT: 94, ENOTSUP: 95,
} as const;
export type ErrnoName = keyof typeof Errno;

const {
  EBADF, EAGAIN, EINVAL, EFAULT, EMFILE, EPIPE, ENOTSOCK, EDESTADDRREQ, ENOPROTOOPT, EPROTONOSUPPORT,
  ESOCKTNOSUPPORT, EOPNOTSUPP, EAFNOSUPPORT, EADDRINUSE, EADDRNOTAVAIL, ECONNABORTED, EISCONN, ENOTCONN,
  ETIMEDOUT, EALREADY, EINPROGRESS, EPERM, EEXIST, ENOENT, ENETUNREACH, ENODEV, EPROTO,
} = Errno;

const ERRNO_NAMES = new Map<number, string>();
for (const [k, v] of Object.entries(Errno)) if (!ERRNO_NAMES.has(v)) ERRNO_NAMES.set(v, k);

/** 'EAGAIN' for 11 or -11 (the name of an errno value, for messages and logs). */
export function errnoName(e: number): string { return ERRNO_NAMES.get(Math.abs(e)) ?? `E${Math.abs(e)}`; }

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const IPPROTO_IP = 0;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const SO_BROADCAST = 6;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_KEEPALIVE = 9;
export const SO_LINGER = 13;
export const SO_ACCEPTCONN = 30;
export const IPPROTO_IPV6 = 41;
export const TCP_NODELAY = 1;
export const TCP_MAXSEG = 2;
export const TCP_CORK = 3;
export const TCP_KEEPIDLE = 4;
export const TCP_KEEPINTVL = 5;
export const TCP_KEEPCNT = 6;
export const TCP_INFO = 11;
export const TCP_CONGESTION = 13;
export const TCP_USER_TIMEOUT = 18;
export const TCP_FASTOPEN = 23;
export const TCP_NOTSENT_LOWAT = 25;
export const TCP_INQ = 36;
export const IP_TOS = 1;
export const IP_TTL = 2;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MULTICAST_IF = 17;
export const IPV6_MULTICAST_HOPS = 18;
export const IPV6_MULTICAST_LOOP = 19;
export const IPV6_JOIN_GROUP = 20;
export const IPV6_LEAVE_GROUP = 21;
/** Linux's aliases (RFC 3493 names). */
export const IPV6_ADD_MEMBERSHIP = IPV6_JOIN_GROUP;
export const IPV6_DROP_MEMBERSHIP = IPV6_LEAVE_GROUP;
export const IPV6_V6ONLY = 26;
export const IPV6_TCLASS = 67;
/** RFC 3678 protocol-independent source-specific joins (struct group_source_req), used here for IPv6 groups. */
export const MCAST_JOIN_SOURCE_GROUP = 46;
export const MCAST_LEAVE_SOURCE_GROUP = 47;
export const IP_MULTICAST_IF = 32;
export const IP_MULTICAST_TTL = 33;
export const IP_MULTICAST_LOOP = 34;
export const IP_ADD_MEMBERSHIP = 35;
export const IP_DROP_MEMBERSHIP = 36;
export const IP_ADD_SOURCE_MEMBERSHIP = 39;
export const IP_DROP_SOURCE_MEMBERSHIP = 40;
/** Size of Linux's struct tcp_info (6.x), as getsockopt(TCP_INFO) fills it. */
export const TCP_INFO_SIZE = 248;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
export const MSG_OOB = 0x1;
export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_WAITALL = 0x100;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_MORE = 0x8000;
/** sendto() on an unconnected TCP socket: connect, with the data in the SYN (TCP Fast Open). */
export const MSG_FASTOPEN = 0x20000000;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const FD_CLOEXEC = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const FIONREAD = 0x541b;
/** SIOCINQ is FIONREAD on Linux: bytes readable. */
export const SIOCINQ = FIONREAD;
/** SIOCOUTQ (TIOCOUTQ): bytes in the send queue, sent or not, not yet acknowledged. */
export const SIOCOUTQ = 0x5411;
/** SIOCOUTQNSD: bytes in the send queue never sent. */
export const SIOCOUTQNSD = 0x894b;
export const FIONBIO = 0x5421;
/** Linux's current default for listen() backlogs (net.core.somaxconn). */
export const SOMAXCONN = 4096;

/** The first descriptor number handed out (0-2 look like stdio; these are not kernel fds). */
export const FD_BASE = 3;
const FD_MAX = 65536;
const SOCK_TYPE_MASK = 0xf;
/** Linux caps TCP_KEEPIDLE/KEEPINTVL at MAX_TCP_KEEPIDLE seconds and TCP_KEEPCNT at MAX_TCP_KEEPCNT. */
const MAX_TCP_KEEPIDLE = 32767;
const MAX_TCP_KEEPCNT = 127;
const BUF_MIN = 1024;
const BUF_MAX = 1 << 30;
const UDP_SNDBUF_DEFAULT = 65536;
/** The TTL the engine's TCP output uses (it has no per-connection TTL). */
const TCP_TTL = 64;

const KEY_IN = EPOLLIN | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND;
const KEY_OUT = EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;

/**
 * A socket address: sockaddr_in or sockaddr_in6 as an object. `family` defaults to the
 * socket's own; getsockname & co. fill family, addr and port (and flowinfo, scopeId on AF_INET6).
 */
export interface SockAddr {
  family?: number;
  /** AF_INET: a dotted quad ('0.0.0.0' is INADDR_ANY). AF_INET6: IPv6 text ('::' is in6addr_any; '::ffff:a.b.c.d' an IPv4 address). */
  addr: string;
  port: number;
  /** AF_INET6: sin6_scope_id, the interface index of a link-local address (0 = none). */
  scopeId?: number;
  /** AF_INET6: sin6_flowinfo (accepted, always reported 0). */
  flowinfo?: number;
}

/** Options of the *Async variants. */
export interface WaitOptions {
  /** Give up after this many ms (see each call for what a timeout returns). Absent or negative: wait forever. */
  timeoutMs?: number;
  /** Abort the wait: the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

/** What an aborted *Async call rejects with (Node's shape: name 'AbortError', code 'ABORT_ERR'). */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  /** writeAsync: bytes queued before the abort. */
  transferred = 0;
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

function abortError(signal: AbortSignal): AbortError {
  return new AbortError('The operation was aborted', { cause: signal.reason });
}

// ---- descriptors ------------------------------------------------------------------------------

interface Waiter {
  /** Re-try the operation (the descriptor changed). */
  retry(): void;
  /** The descriptor was closed under the waiter. */
  cancel(result: number): void;
}

abstract class Desc implements Pollable {
  readonly watchers: EpollEntry[] = [];
  readonly waiters = new Set<Waiter>();
  fd = -1;
  nonblock = false;
  cloexec = false;
  closed = false;
  private waitersQueued = false;
  private readonly runWaiters = (): void => {
    this.waitersQueued = false;
    if (this.waiters.size === 0) return;
    for (const w of [...this.waiters]) w.retry();
  };

  abstract poll(): number;

  /**
   * The descriptor's state changed (an engine callback). `key` names the events concerned
   * (0 = any), as Linux's wake-up keys do. Epoll entries are queued at once; async waiters
   * re-try in a microtask, outside the engine's event dispatch.
   */
  wake(key: number): void {
    if (this.closed) return;
    const w = this.watchers;
    for (let i = 0; i < w.length; i++) w[i]!.set.check(w[i]!, key);
    this.scheduleWaiters();
  }

  scheduleWaiters(): void {
    if (this.waiters.size > 0 && !this.waitersQueued) {
      this.waitersQueued = true;
      queueMicrotask(this.runWaiters);
    }
  }
}

abstract class SockDesc extends Desc {
  abstract readonly type: number;
  /** AF_INET or AF_INET6. */
  family = AF_INET;
  /** IPV6_V6ONLY (AF_INET6 only; set before bind). */
  v6Only = false;
  /** Pending asynchronous error (SO_ERROR), a positive errno; 0 = none. */
  soError = 0;
  shutRd = false;
  shutWr = false;
  /** SO_BROADCAST on TCP, SO_KEEPALIVE on UDP: kept and reported, no effect (as on Linux). */
  broadcastFlag = false;
  keepFlag = false;

  takeError(): number {
    const e = this.soError;
    this.soError = 0;
    return e;
  }
}

class TcpDesc extends SockDesc {
  readonly type = SOCK_STREAM;
  conn: TcpSocket | null = null;
  listener: TcpListener | null = null;
  /** Connections taken from the engine's accept queue, waiting for accept(). */
  readonly acceptQueue: TcpDesc[] = [];
  backlog = 0;
  /** bind() succeeded (a second bind is EINVAL). */
  bound = false;
  bindAddr = 0;
  /** AF_INET6: the address bind() gave (:: until then). */
  bindAddr6: Uint8Array | null = null;
  bindPort = 0;
  /** The port this socket holds in the engine's port table (bind, listen, connect). */
  binding: TcpBinding | null = null;
  reuseAddr = false;
  /** The handshake completed at some point (connect() then says EISCONN). */
  everConnected = false;
  // Options kept until there is a connection (and inherited by accepted connections).
  noDelay = false;
  keepAlive = false;
  keepIdleMs = 0;
  keepIntvlMs = 0;
  keepCnt = 0;
  sndBufSize = 0;
  rcvBufSize = 0;
  cork = false;
  notsentLowat = 0;
  userTimeoutMs = 0;
  maxSeg = 0;
  tos = 0;
  congestion = '';
  /** SO_LINGER: -1 off, else the linger time in seconds (0: close() resets). */
  linger = -1;
  /** TCP_INQ: kept and reported (there is no recvmsg() control data to carry it). */
  inqFlag = false;
  /** TCP_FASTOPEN: the listener's TFO queue length (0: no TFO). */
  fastOpen = 0;

  /** Listener callback: one established connection taken from the engine's queue. */
  readonly onConnection = (s: TcpSocket): void => {
    const child = new TcpDesc();
    inheritOptions(child, this);
    child.attach(s);
    applyOptions(child, s);
    child.everConnected = true;
    this.acceptQueue.push(child);
    // Our queue holds `backlog`; beyond that, connections wait in the engine's queue (whose
    // own backlog then makes it refuse SYNs) until accept() makes room.
    if (this.acceptQueue.length >= this.backlog && this.listener) this.listener.onConnection = null;
    this.wake(KEY_IN);
  };

  attach(c: TcpSocket): void {
    this.conn = c;
    // Wake-up keys as Linux sends them: sk_state_change wakes everyone (0), sk_data_ready
    // EPOLLIN, sk_write_space EPOLLOUT.
    c.onConnect = () => { this.everConnected = true; this.wake(0); };
    c.onData = () => this.wake(KEY_IN);
    c.onEnd = () => this.wake(0);
    c.onDrain = () => this.wake(KEY_OUT);
    c.onClose = (err) => {
      if (err) { const e = (Errno as Record<string, number>)[err.code]; this.soError = e ?? ECONNABORTED; }
      this.wake(0);
    };
  }

  detach(): TcpSocket | null {
    const c = this.conn;
    if (c) { c.onConnect = null; c.onData = null; c.onEnd = null; c.onDrain = null; c.onClose = null; }
    this.conn = null;
    return c;
  }

  get connecting(): boolean {
    const st = this.conn?.tcb.state;
    // An accepted TCP Fast Open connection is usable in SYN_RECEIVED (its data came in the SYN).
    return (st === TcpState.SYN_SENT || st === TcpState.SYN_RECEIVED) && !this.everConnected;
  }

  /** Linux tcp_poll(), in the engine's terms. */
  poll(): number {
    if (this.listener) return this.acceptQueue.length > 0 ? EPOLLIN | EPOLLRDNORM : 0;
    let mask = 0;
    const c = this.conn;
    if (c === null) {
      // Never connected (or a failed connect was reported): TCP_CLOSE, which tcp_poll reports
      // as EPOLLHUP and, not being SYN_SENT, writable.
      mask = EPOLLOUT | EPOLLWRNORM | EPOLLHUP;
      if (this.shutRd) mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
      if (this.soError) mask |= EPOLLERR;
      return mask;
    }
    const closed = c.closed;
    const rd = this.shutRd || closed || c.ended;
    const wr = this.shutWr || closed;
    // "if (sk->sk_shutdown == SHUTDOWN_MASK || state == TCP_CLOSE) mask |= EPOLLHUP;
    //  if (sk->sk_shutdown & RCV_SHUTDOWN) mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;"
    if (rd && wr) mask |= EPOLLHUP;
    if (rd) mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
    if (!this.connecting) {
      if (c.readableLength > 0) mask |= EPOLLIN | EPOLLRDNORM;
      if (wr) mask |= EPOLLOUT | EPOLLWRNORM;
      else if (tcpWritable(c)) mask |= EPOLLOUT | EPOLLWRNORM;
      // Linux sets SOCK_NOSPACE here so that freed send space wakes the poller; the engine's
      // equivalent is wantDrain (onDrain once half the buffer is free).
      else c.wantDrain = true;
    }
    if (this.soError) mask |= EPOLLERR;
    return mask;
  }
}

/** sk_stream_is_writeable(): free space at least half of what is queued, and TCP_NOTSENT_LOWAT met. */
function tcpWritable(c: TcpSocket): boolean {
  return c.writable;
}

function inheritOptions(child: TcpDesc, l: TcpDesc): void {
  child.family = l.family;
  child.v6Only = l.v6Only;
  child.noDelay = l.noDelay;
  child.keepAlive = l.keepAlive;
  child.keepIdleMs = l.keepIdleMs;
  child.keepIntvlMs = l.keepIntvlMs;
  child.keepCnt = l.keepCnt;
  child.sndBufSize = l.sndBufSize;
  child.rcvBufSize = l.rcvBufSize;
  child.cork = l.cork;
  child.notsentLowat = l.notsentLowat;
  child.userTimeoutMs = l.userTimeoutMs;
  child.maxSeg = l.maxSeg;
  child.tos = l.tos;
  child.congestion = l.congestion;
  child.linger = l.linger;
  child.inqFlag = l.inqFlag;
  child.broadcastFlag = l.broadcastFlag;
}

class UdpDesc extends SockDesc {
  readonly type = SOCK_DGRAM;
  /** A datagram looked at with MSG_PEEK: the next receive returns it. */
  peeked: UdpMessage | null = null;
  sndBufSize = UDP_SNDBUF_DEFAULT;

  constructor(readonly sock: UdpSocket) {
    super();
    sock.onReadable = () => this.wake(KEY_IN);
    // Like Linux without IP_RECVERR, only connected sockets hear ICMP errors (the engine filters).
    sock.onError = (err) => { this.soError = err.errno; this.wake(EPOLLERR); };
  }

  /** datagram_poll(). */
  poll(): number {
    let mask = EPOLLOUT | EPOLLWRNORM;
    if (this.sock.pending > 0 || this.peeked) mask |= EPOLLIN | EPOLLRDNORM;
    if (this.shutRd) mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
    if (this.shutRd && this.shutWr) mask |= EPOLLHUP;
    if (this.soError) mask |= EPOLLERR;
    return mask;
  }

  next(): UdpMessage | null {
    const p = this.peeked;
    if (p) { this.peeked = null; return p; }
    return this.sock.recv();
  }
}

class EpollDesc extends Desc {
  readonly set = new EpollSet();
  constructor() {
    super();
    this.set.onReady = () => this.wake(KEY_IN);
  }
  poll(): number { return this.set.hasReady ? EPOLLIN | EPOLLRDNORM : 0; }
}

// ---- helpers ------------------------------------------------------------------------------

/** The positive errno of an engine error (NetError / TcpError); anything else is a bug: rethrown. */
function errnoOf(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    const n = (Errno as Record<string, number>)[code];
    if (n !== undefined) return n;
  }
  throw err;
}

/** Parses a SockAddr: the u32 address, or a negative errno. Port in `portOut[0]`. */
function parseSockAddr(a: SockAddr | null | undefined, portOut: number[]): number {
  if (a === null || a === undefined || typeof a !== 'object') return -EFAULT;
  if (a.family !== undefined && a.family !== AF_INET) return -EAFNOSUPPORT;
  const port = a.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) return -EINVAL;
  const addr = typeof a.addr === 'string' ? parseIpv4(a.addr) : null;
  if (addr === null) return -EINVAL;
  portOut[0] = port;
  return addr >>> 0;
}

let lastAddrU32 = -1;
let lastAddrText = '';
/** formatIpv4 with a one-entry cache: a receive loop from one peer formats its address once. */
function addrText(a: number): string {
  if (a !== lastAddrU32) { lastAddrU32 = a; lastAddrText = formatIpv4(a); }
  return lastAddrText;
}

function fillAddr(out: SockAddr | null | undefined, addr: number, port: number): void {
  if (!out) return;
  out.family = AF_INET;
  out.addr = addrText(addr >>> 0);
  out.port = port;
}

// ---- AF_INET6 addresses (sockaddr_in6) ----

const ANY6 = new Uint8Array(16);

/**
 * Parses an AF_INET6 socket's address into out[0..16): 0 or a negative errno; port in
 * portOut[0], scope id in portOut[1]. A sockaddr_in (family AF_INET) is what `v4` says: 0 =
 * taken as ::ffff:a.b.c.d (a dual-stack UDP socket's connect/sendto), else that errno (Linux
 * checks the length first: a sockaddr_in is too short for bind and TCP connect, EINVAL).
 */
function parseSockAddr6(a: SockAddr | null | undefined, out: Uint8Array, portOut: number[], v4: number): number {
  if (a === null || a === undefined || typeof a !== 'object') return -EFAULT;
  const port = a.port;
  if (a.family === AF_INET) {
    if (v4 !== 0) return -v4;
    const x = typeof a.addr === 'string' ? parseIpv4(a.addr) : null;
    if (x === null || !Number.isInteger(port) || port < 0 || port > 65535) return -EINVAL;
    writeMapped(out, x >>> 0);
    portOut[0] = port; portOut[1] = 0;
    return 0;
  }
  if (a.family !== undefined && a.family !== AF_INET6) return -EAFNOSUPPORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) return -EINVAL;
  const b = typeof a.addr === 'string' ? parseIpv6(a.addr) : null;
  if (b === null) return -EINVAL;
  const scope = a.scopeId ?? 0;
  if (!Number.isInteger(scope) || scope < 0) return -EINVAL;
  out.set(b);
  portOut[0] = port; portOut[1] = scope;
  return 0;
}

function isZero6(a: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== 0) return false;
  return true;
}

function writeMapped(out: Uint8Array, v4: number): void {
  out.fill(0, 0, 10);
  out[10] = 0xff; out[11] = 0xff;
  out[12] = v4 >>> 24; out[13] = (v4 >>> 16) & 0xff; out[14] = (v4 >>> 8) & 0xff; out[15] = v4 & 0xff;
}

/** Link-local unicast (fe80::/10) or a multicast group of interface- or link-local scope: needs a scope id. */
function needsScope(a: Uint8Array): boolean {
  return (a[0] === 0xfe && (a[1]! & 0xc0) === 0x80) || (a[0] === 0xff && (a[1]! & 0x0f) <= 2);
}

/** IPv6 text as Linux tools print it: ::ffff:a.b.c.d for a v4-mapped address (RFC 5952 §5). */
function text6(a: Uint8Array): string {
  const m = mappedV4(a, 0);
  return m >= 0 ? `::ffff:${addrText(m)}` : formatIpv6(a);
}

/** Fills a sockaddr_in6: the IPv6 address `a6`, or (a6 null) the IPv4 address `v4` as ::ffff:a.b.c.d. */
function fillAddr6(out: SockAddr | null | undefined, a6: Uint8Array | null, v4: number, port: number, scope = 0): void {
  if (!out) return;
  out.family = AF_INET6;
  out.addr = a6 !== null ? text6(a6) : `::ffff:${addrText(v4 >>> 0)}`;
  out.port = port;
  out.flowinfo = 0;
  out.scopeId = scope;
}

/** Fills `out` with a TCP connection's local or remote end, in the descriptor's family. */
function fillTcpEnd(d: SockDesc, out: SockAddr | null | undefined, c: TcpSocket, local: boolean): void {
  const port = local ? c.localPort : c.remotePort;
  if (d.family === AF_INET) fillAddr(out, local ? c.localAddress : c.remoteAddress, port);
  else if (c.family === 6) fillAddr6(out, local ? c.localAddress6 : c.remoteAddress6, 0, port);
  else fillAddr6(out, null, local ? c.localAddress : c.remoteAddress, port);
}

function badRange(buf: Uint8Array, n: number): boolean {
  return !(buf instanceof Uint8Array) || !Number.isInteger(n) || n < 0 || n > buf.length;
}

function clampBuf(v: number): number { return Math.min(BUF_MAX, Math.max(BUF_MIN, v | 0)); }

/**
 * The engine allocates a connection's rings at first use; a ring already allocated can
 * shrink (never below what it holds) but not grow.
 */
function setTcpSendBuf(c: TcpSocket, v: number): void {
  const sb = c.tcb.sndBuf;
  c.tcb.sndBufMax = 0; // Linux SOCK_SNDBUF_LOCK: a size the application set is not autotuned
  let cap = clampBuf(v);
  if (sb.data.length !== 0 && cap > sb.data.length) cap = sb.data.length;
  sb.capacity = Math.max(cap, sb.length);
}
function setTcpRecvBuf(c: TcpSocket, v: number): void {
  const rb = c.tcb.rcvBuf;
  c.tcb.rcvBufMax = 0; // Linux SOCK_RCVBUF_LOCK
  if (rb.data.length !== 0) return; // data already arrived: out-of-order state lives in the ring
  rb.capacity = clampBuf(v);
}

function applyOptions(d: TcpDesc, c: TcpSocket): void {
  if (d.noDelay) c.setNoDelay(true);
  if (d.keepAlive || d.keepIdleMs || d.keepIntvlMs || d.keepCnt) {
    c.setKeepAlive(d.keepAlive, d.keepIdleMs || undefined, d.keepIntvlMs || undefined, d.keepCnt || undefined);
  }
  if (d.sndBufSize) setTcpSendBuf(c, d.sndBufSize);
  if (d.rcvBufSize) setTcpRecvBuf(c, d.rcvBufSize);
  if (d.cork) c.setCork(true);
  if (d.notsentLowat) c.setNotSentLowat(d.notsentLowat);
  if (d.userTimeoutMs) c.setUserTimeout(d.userTimeoutMs);
  if (d.tos) c.setTos(d.tos);
  if (d.congestion && c.congestionControl !== d.congestion) c.setCongestionControl(d.congestion);
}

/** Linux's struct tcp_info, little-endian, from the engine's TCP_INFO. Returns the bytes written. */
function encodeTcpInfo(c: TcpSocket, out: Uint8Array): number {
  const i = c.info();
  const b = new Uint8Array(TCP_INFO_SIZE);
  const v = new DataView(b.buffer);
  b[0] = i.state; b[1] = i.caState; b[2] = Math.min(255, i.retransmits); b[3] = Math.min(255, i.probes);
  b[4] = Math.min(255, i.backoff); b[5] = i.options; b[6] = (i.sndWscale & 15) | ((i.rcvWscale & 15) << 4);
  const u32 = [i.rto, i.ato, i.sndMss, i.rcvMss, i.unacked, i.sacked, i.lost, i.retrans, 0 /* fackets */,
    i.lastDataSent, 0 /* last_ack_sent: unused by Linux */, i.lastDataRecv, i.lastAckRecv, i.pmtu, i.rcvSsthresh,
    i.rtt, i.rttvar, i.sndSsthresh, i.sndCwnd, i.advmss, i.reordering, 0 /* rcv_rtt */, i.rcvSpace, i.totalRetrans];
  for (let k = 0; k < u32.length; k++) v.setUint32(8 + 4 * k, u32[k]! >>> 0, true);
  // 104 pacing_rate, 112 max_pacing_rate: no pacing (Linux reports ~0U64 for "unlimited").
  v.setBigUint64(104, 0xffffffffffffffffn, true); v.setBigUint64(112, 0xffffffffffffffffn, true);
  v.setBigUint64(120, BigInt(i.bytesAcked), true);
  v.setBigUint64(128, BigInt(i.bytesReceived), true);
  v.setUint32(136, i.segsOut >>> 0, true); v.setUint32(140, i.segsIn >>> 0, true);
  v.setUint32(144, i.notsentBytes >>> 0, true); v.setUint32(148, i.minRtt >>> 0, true);
  v.setUint32(152, i.dataSegsIn >>> 0, true); v.setUint32(156, i.dataSegsOut >>> 0, true);
  v.setBigUint64(160, BigInt(i.deliveryRate), true);
  // 168 busy_time, 176 rwnd_limited, 184 sndbuf_limited: not tracked (0); 192 delivered, 196 delivered_ce.
  v.setUint32(192, Math.ceil(i.bytesAcked / Math.max(1, i.sndMss)) >>> 0, true);
  v.setBigUint64(200, BigInt(i.bytesSent), true);
  v.setBigUint64(208, BigInt(i.bytesRetrans), true);
  // 216 dsack_dups, 220 reord_seen, 224 rcv_ooopack: 0.
  v.setUint32(228, i.sndWnd >>> 0, true);
  v.setUint32(232, i.rcvWnd >>> 0, true);
  const n = Math.min(out.length, TCP_INFO_SIZE);
  out.set(b.subarray(0, n));
  return n;
}

/** A setsockopt() value: an integer (booleans accepted), a string (TCP_CONGESTION), bytes (C structs), or SO_LINGER's pair. */
export type SockOptValue = number | boolean | string | Uint8Array | { onoff: number; linger: number };

function toInt(v: number | boolean): number { return typeof v === 'boolean' ? (v ? 1 : 0) : v; }

/** A C string from bytes (up to the first NUL). */
function cString(b: Uint8Array): string {
  const z = b.indexOf(0);
  return new TextDecoder().decode(z >= 0 ? b.subarray(0, z) : b);
}

// ---- the descriptor table -----------------------------------------------------------------

/**
 * One stack's descriptor table and the POSIX calls on it. Get one with `posix({ stack })`
 * (one table per stack) or use the module-level functions, which use the default stack.
 */
export class Posix {
  readonly stack: Stack;
  private readonly slots: (Desc | null)[] = [];
  private lowestFree = 0;
  private open = 0;
  private readonly portTmp = [0, 0];
  private readonly addr6Tmp = new Uint8Array(16);

  constructor(readonly ctx: StackContext) { this.stack = ctx.stack; }

  /** Open descriptors in this table. */
  get openCount(): number { return this.open; }

  // -- table --

  private install(d: Desc): number {
    let i = this.lowestFree;
    while (i < this.slots.length && this.slots[i] !== null) i++;
    if (i >= FD_MAX) return -EMFILE;
    if (i === this.slots.length) this.slots.push(d); else this.slots[i] = d;
    this.lowestFree = i + 1;
    this.open++;
    d.fd = i + FD_BASE;
    if (d instanceof SockDesc) this.ctx.acquire();
    return d.fd;
  }

  private get(fd: number): Desc | null {
    const i = fd - FD_BASE;
    if (!Number.isInteger(i) || i < 0 || i >= this.slots.length) return null;
    return this.slots[i] ?? null;
  }

  /** Gives back the port `d` holds in the engine's table. */
  private unregister(d: TcpDesc): void {
    if (d.binding) this.stack.tcp.unbind(d.binding);
    d.binding = null;
  }

  // -- sockets --

  /** socket(AF_INET | AF_INET6, SOCK_STREAM | SOCK_DGRAM [| SOCK_NONBLOCK | SOCK_CLOEXEC], 0) → fd. */
  socket(domain: number, type: number, protocol = 0): number {
    if (domain !== AF_INET && domain !== AF_INET6) return -EAFNOSUPPORT;
    const base = type & SOCK_TYPE_MASK;
    const flags = type & ~SOCK_TYPE_MASK;
    if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) !== 0) return -EINVAL;
    let d: SockDesc;
    if (base === SOCK_STREAM) {
      if (protocol !== 0 && protocol !== IPPROTO_TCP) return -EPROTONOSUPPORT;
      d = new TcpDesc();
    } else if (base === SOCK_DGRAM) {
      if (protocol !== 0 && protocol !== IPPROTO_UDP) return -EPROTONOSUPPORT;
      d = new UdpDesc(this.stack.udp.open(domain === AF_INET6 ? UdpFamily.V6 : UdpFamily.V4));
    } else if (base === SOCK_RAW) {
      return -EPROTONOSUPPORT;
    } else {
      return -ESOCKTNOSUPPORT;
    }
    d.family = domain;
    d.nonblock = (flags & SOCK_NONBLOCK) !== 0;
    d.cloexec = (flags & SOCK_CLOEXEC) !== 0;
    const fd = this.install(d);
    if (fd < 0 && d instanceof UdpDesc) d.sock.close();
    return fd;
  }

  private sock(fd: number): SockDesc | number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    if (!(d instanceof SockDesc)) return -ENOTSOCK;
    return d;
  }

  /** bind(fd, { addr, port }) → 0. Port 0 on TCP is chosen at listen()/connect(). */
  bind(fd: number, sa: SockAddr): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    if (d.family === AF_INET6) return this.bind6(d, sa);
    const addr = parseSockAddr(sa, this.portTmp);
    if (addr < 0) return addr;
    const port = this.portTmp[0]!;
    if (d instanceof UdpDesc) {
      try { d.sock.bind(addr, port); } catch (e) { return -errnoOf(e); }
      return 0;
    }
    const t = d as TcpDesc;
    if (t.bound || t.binding || t.conn || t.listener) return -EINVAL;
    try { t.binding = this.stack.tcp.bind(addr, port, t.reuseAddr); } catch (e) { return -errnoOf(e); }
    t.bound = true;
    t.bindAddr = addr;
    t.bindPort = port;
    return 0;
  }

  /** bind() of an AF_INET6 socket (Linux's __inet6_bind checks, in its order). */
  private bind6(d: SockDesc, sa: SockAddr): number {
    const a = this.addr6Tmp;
    const r = parseSockAddr6(sa, a, this.portTmp, EINVAL);
    if (r < 0) return r;
    const port = this.portTmp[0]!, scope = this.portTmp[1]!;
    const mapped = mappedV4(a, 0);
    // "Binding to v4-mapped address on a v6-only socket makes no sense"; a multicast v4-mapped
    // address is refused too; link-local needs its interface.
    if (mapped >= 0 && (d.v6Only || (mapped >>> 28) === 0xe)) return -EINVAL;
    if (mapped < 0 && needsScope(a) && scope === 0) return -EINVAL;
    if (d instanceof UdpDesc) {
      if (d.sock.bound) return -EINVAL;
      try { d.sock.bind6(a, 0, port, scope); } catch (e) { return -errnoOf(e); }
      return 0;
    }
    const t = d as TcpDesc;
    if (t.bound || t.binding || t.conn || t.listener) return -EINVAL;
    if (mapped < 0 && a[0] === 0xff) return -EINVAL;
    try { t.binding = this.stack.tcp.bind6(a, port, t.reuseAddr, t.v6Only); } catch (e) { return -errnoOf(e); }
    t.bound = true;
    t.bindAddr6 = a.slice();
    t.bindPort = port;
    return 0;
  }

  /** A TCP socket's binding for listen()/connect() when bind() made none: the wildcard of its family. */
  private anyBinding(t: TcpDesc): TcpBinding {
    return t.family === AF_INET6 ? this.stack.tcp.bind6(ANY6, 0, t.reuseAddr, t.v6Only) : this.stack.tcp.bind(0, 0, t.reuseAddr);
  }

  /** listen(fd, backlog) → 0. Backlog is clamped to [1, SOMAXCONN]. */
  listen(fd: number, backlog = SOMAXCONN): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    if (!(d instanceof TcpDesc)) return -EOPNOTSUPP;
    if (d.listener) return 0;
    if (d.conn) return -EINVAL;
    const b = Math.max(1, Math.min(SOMAXCONN, Math.trunc(backlog) || 0));
    let l: TcpListener;
    try {
      d.binding ??= this.anyBinding(d);
      l = this.stack.tcp.listen({ binding: d.binding, port: d.binding.port, backlog: b, ...(d.maxSeg > 0 && { mss: d.maxSeg }),
        ...(d.fastOpen > 0 && { fastOpen: d.fastOpen }) });
    } catch (e) { return -errnoOf(e); }
    l.tos = d.tos;
    if (d.fastOpen > 0) l.tfoQlen = d.fastOpen;
    d.backlog = b;
    d.listener = l;
    d.bindPort = l.localPort;
    l.onConnection = d.onConnection;
    return 0;
  }

  /** accept(fd, peer?) → new fd, or -EAGAIN when no connection is waiting. */
  accept(fd: number, peer?: SockAddr | null): number { return this.accept4(fd, peer, 0); }

  /** accept4(fd, peer, SOCK_NONBLOCK | SOCK_CLOEXEC): the new descriptor's flags (not inherited, as on Linux). */
  accept4(fd: number, peer: SockAddr | null | undefined, flags: number): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    return this.acceptOn(d, peer, flags);
  }

  private acceptOn(d: SockDesc, peer: SockAddr | null | undefined, flags: number): number {
    if (d.closed) return -EBADF;
    if (!(d instanceof TcpDesc)) return -EOPNOTSUPP;
    if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) !== 0) return -EINVAL;
    const l = d.listener;
    if (!l) return -EINVAL;
    const child = d.acceptQueue.shift();
    if (!child) return -EAGAIN;
    const nfd = this.install(child);
    if (nfd < 0) { child.detach()?.abort(); return nfd; }
    child.nonblock = (flags & SOCK_NONBLOCK) !== 0;
    child.cloexec = (flags & SOCK_CLOEXEC) !== 0;
    const c = child.conn!;
    child.bindAddr = c.localAddress;
    fillTcpEnd(d, peer, c, false);
    // Room again: take what waited in the engine's queue (synchronously, via its callback).
    if (l.onConnection === null && d.acceptQueue.length < d.backlog && !l.closed) {
      l.onConnection = d.onConnection;
      l.deliver();
    }
    return nfd;
  }

  /**
   * connect(fd, { addr, port }). TCP: -EINPROGRESS, then EPOLLOUT and getsockopt(SO_ERROR)
   * say how it went; while in progress -EALREADY; once connected -EISCONN; after a failure the
   * next connect() returns the error and the socket may connect again. UDP: sets the peer
   * (family AF_UNSPEC dissolves it) and returns 0.
   */
  connect(fd: number, sa: SockAddr): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    return this.connectOn(d, sa);
  }

  private connectOn(d: SockDesc, sa: SockAddr, synData?: Uint8Array): number {
    if (d.closed) return -EBADF;
    if (d instanceof UdpDesc) {
      if (sa && sa.family === AF_UNSPEC) { d.sock.disconnect(); return 0; }
      if (d.family === AF_INET6) return this.udpConnect6(d, sa);
      const addr = parseSockAddr(sa, this.portTmp);
      if (addr < 0) return addr;
      try { d.sock.connect(addr, this.portTmp[0]!); } catch (e) { return -errnoOf(e); }
      return 0;
    }
    const t = d as TcpDesc;
    if (t.listener) return -EISCONN;
    if (t.conn) {
      if (t.connecting) return -EALREADY;
      if (!t.everConnected && t.conn.closed) return this.failedConnect(t);
      return -EISCONN;
    }
    let raddr = 0, raddr6: Uint8Array | undefined;
    if (t.family === AF_INET6) {
      const r = this.tcpDest6(t, sa);
      if (r < 0) return r;
      raddr6 = this.addr6Tmp;
    } else {
      raddr = parseSockAddr(sa, this.portTmp);
      if (raddr < 0) return raddr;
    }
    const rport = this.portTmp[0]!;
    let c: TcpSocket;
    try {
      t.binding ??= this.anyBinding(t);
      c = this.stack.tcp.connect({
        raddr, ...(raddr6 !== undefined && { raddr6 }), rport, binding: t.binding, noDelay: t.noDelay, ...(t.maxSeg > 0 && { mss: t.maxSeg }), ...(t.tos !== 0 && { tos: t.tos }),
        ...(t.congestion !== '' && { congestionControl: t.congestion }),
        ...(synData !== undefined && { fastOpen: true, synData }),
      });
    } catch (e) { return -errnoOf(e); }
    t.soError = 0;
    t.shutRd = t.shutWr = false;
    t.attach(c);
    applyOptions(t, c);
    t.bindPort = c.localPort;
    // sendto(MSG_FASTOPEN), as Linux's tcp_sendmsg_fastopen(): the bytes the SYN carries, or
    // EINPROGRESS when it carries none (no cookie yet: send them once connected).
    if (synData !== undefined && c.fastOpenLength > 0) return c.fastOpenLength;
    // Even when the engine settled it at once (a local peer), the outcome is reported the
    // non-blocking way: EPOLLOUT and SO_ERROR.
    return -EINPROGRESS;
  }

  /**
   * An AF_INET6 TCP socket's destination, into addr6Tmp/portTmp: 0 or -errno, with Linux's
   * tcp_v6_connect checks (a v4-mapped peer on a v6-only socket or from an IPv6 source:
   * ENETUNREACH; an IPv6 peer from a v4-mapped source: EAFNOSUPPORT; link-local needs a scope).
   */
  private tcpDest6(t: TcpDesc, sa: SockAddr): number {
    const a = this.addr6Tmp;
    const r = parseSockAddr6(sa, a, this.portTmp, EINVAL);
    if (r < 0) return r;
    const src = t.bindAddr6;
    const srcMapped = src !== null && mappedV4(src, 0) >= 0;
    if (mappedV4(a, 0) >= 0) {
      if (t.v6Only || (src !== null && !srcMapped && !isZero6(src))) return -ENETUNREACH;
      return 0;
    }
    if (srcMapped) return -EAFNOSUPPORT;
    if (a[0] === 0xff) return -ENETUNREACH;
    if (needsScope(a) && this.portTmp[1] === 0) return -EINVAL;
    // "connect() to INADDR_ANY means loopback (BSD'ism)."
    if (isZero6(a)) a[15] = 1;
    return 0;
  }

  /** connect() of an AF_INET6 UDP socket (Linux's __ip6_datagram_connect). */
  private udpConnect6(d: UdpDesc, sa: SockAddr): number {
    const s = d.sock;
    if (sa && typeof sa === 'object' && sa.family === AF_INET && d.v6Only) return -EAFNOSUPPORT;
    const a = this.addr6Tmp;
    const r = parseSockAddr6(sa, a, this.portTmp, 0);
    if (r < 0) return r;
    const port = this.portTmp[0]!, scope = this.portTmp[1]!;
    const mapped = mappedV4(a, 0) >= 0;
    // A socket bound to ::ffff:a.b.c.d cannot reach an IPv6 peer.
    if (!mapped && s.bound && !s.accepts6) return -EAFNOSUPPORT;
    if (!mapped && needsScope(a) && a[0] !== 0xff && scope === 0 && s.scope === 0) return -EINVAL;
    try { s.connect6(a, 0, port, scope); } catch (e) { return -errnoOf(e); }
    return 0;
  }

  /** inet_stream_connect on a socket whose attempt failed: "err = sock_error(sk) ? : -ECONNABORTED". */
  private failedConnect(t: TcpDesc): number {
    const err = t.takeError() || ECONNABORTED;
    t.detach();
    t.shutRd = t.shutWr = false;
    return -err;
  }

  /** For connectAsync: -EAGAIN while connecting, 0 once connected, else the failure. */
  private connectOutcome(t: TcpDesc): number {
    if (t.closed) return -EBADF;
    const c = t.conn;
    if (c === null) return -ECONNABORTED;
    if (t.connecting) return -EAGAIN;
    if (t.everConnected) return 0;
    return this.failedConnect(t);
  }

  // -- data --

  /** read(fd, buf, count = buf.length) → bytes read; 0 at end of stream; -EAGAIN when nothing is there. */
  read(fd: number, buf: Uint8Array, count = buf?.length): number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    if (!(d instanceof SockDesc)) return -EINVAL;
    return this.recvOn(d, buf, count, 0, null);
  }

  /** write(fd, buf, count = buf.length) → bytes queued (maybe fewer), -EAGAIN when none fit. */
  write(fd: number, buf: Uint8Array, count = buf?.length): number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    if (!(d instanceof SockDesc)) return -EINVAL;
    return this.sendOn(d, buf, count, 0, null);
  }

  /** recv(fd, buf, len = buf.length, flags = 0): MSG_PEEK (UDP), MSG_TRUNC (UDP), MSG_DONTWAIT. */
  recv(fd: number, buf: Uint8Array, len = buf?.length, flags = 0): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    return this.recvOn(d, buf, len, flags, null);
  }

  /** send(fd, buf, len = buf.length, flags = 0): MSG_DONTWAIT, MSG_NOSIGNAL, MSG_MORE accepted. */
  send(fd: number, buf: Uint8Array, len = buf?.length, flags = 0): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    return this.sendOn(d, buf, len, flags, null);
  }

  /** recvfrom(fd, buf, len, flags, from?): fills `from` with the sender. */
  recvfrom(fd: number, buf: Uint8Array, len = buf?.length, flags = 0, from?: SockAddr | null): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    return this.recvOn(d, buf, len, flags, from ?? null);
  }

  /** sendto(fd, buf, len, flags, to?): `to` is required on an unconnected UDP socket, ignored on TCP (as Linux) — except with MSG_FASTOPEN on an unconnected TCP socket: connect with the data in the SYN (TCP Fast Open; returns the bytes the SYN carries, or -EINPROGRESS). */
  sendto(fd: number, buf: Uint8Array, len = buf?.length, flags = 0, to?: SockAddr | null): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    return this.sendOn(d, buf, len, flags, to ?? null);
  }

  /** readv(fd, iov): fills the buffers in order; stops at the first one not filled. */
  readv(fd: number, iov: readonly Uint8Array[]): number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    if (!(d instanceof SockDesc)) return -EINVAL;
    if (!Array.isArray(iov)) return -EFAULT;
    if (d instanceof UdpDesc) return this.recvDatagramV(d, iov);
    let total = 0;
    for (const b of iov) {
      if (!(b instanceof Uint8Array)) return total > 0 ? total : -EFAULT;
      if (b.length === 0) continue;
      const r = this.recvOn(d, b, b.length, 0, null);
      if (r < 0) return total > 0 ? total : r;
      total += r;
      if (r < b.length) break;
    }
    return total;
  }

  /** writev(fd, iov): queues the buffers in order; stops at the first one not taken whole. */
  writev(fd: number, iov: readonly Uint8Array[]): number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    if (!(d instanceof SockDesc)) return -EINVAL;
    if (!Array.isArray(iov)) return -EFAULT;
    if (d instanceof UdpDesc) {
      // One datagram from all the pieces.
      let n = 0;
      for (const b of iov) { if (!(b instanceof Uint8Array)) return -EFAULT; n += b.length; }
      const all = new Uint8Array(n);
      let off = 0;
      for (const b of iov) { all.set(b, off); off += b.length; }
      return this.sendOn(d, all, n, 0, null);
    }
    let total = 0;
    for (const b of iov) {
      if (!(b instanceof Uint8Array)) return total > 0 ? total : -EFAULT;
      if (b.length === 0) continue;
      const r = this.sendOn(d, b, b.length, 0, null);
      if (r < 0) return total > 0 ? total : r;
      total += r;
      if (r < b.length) break;
    }
    return total;
  }

  private recvDatagramV(d: UdpDesc, iov: readonly Uint8Array[]): number {
    const r = this.udpCheckRecv(d);
    if (r !== 1) return r;
    const m = d.next()!;
    let off = 0;
    for (const b of iov) {
      if (!(b instanceof Uint8Array)) break;
      const n = Math.min(b.length, m.data.length - off);
      if (n <= 0) break;
      b.set(m.data.subarray(off, off + n));
      off += n;
    }
    return off;
  }

  /** UDP receive preconditions: 1 when a datagram is there, else the result to return. */
  private udpCheckRecv(d: UdpDesc): number {
    if (d.closed) return -EBADF;
    // __skb_try_recv_datagram: "int error = sock_error(sk); if (error) goto no_packet;"
    if (d.soError) return -d.takeError();
    if (d.peeked || d.sock.pending > 0) return 1;
    if (d.shutRd) return 0;
    return -EAGAIN;
  }

  private recvOn(d: SockDesc, buf: Uint8Array, len: number, flags: number, from: SockAddr | null): number {
    if (d.closed) return -EBADF;
    if (badRange(buf, len)) return -EFAULT;
    if ((flags & MSG_OOB) !== 0) return -EOPNOTSUPP;
    if (d instanceof UdpDesc) {
      const r = this.udpCheckRecv(d);
      if (r !== 1) return r;
      const m = d.next()!;
      if ((flags & MSG_PEEK) !== 0) d.peeked = m;
      const n = Math.min(len, m.data.length);
      buf.set(n === m.data.length ? m.data : m.data.subarray(0, n));
      if (d.family === AF_INET) fillAddr(from, m.addr, m.port);
      else fillAddr6(from, m.addr6, m.addr, m.port, m.addr6 !== null && needsScope(m.addr6) ? d.sock.scope : 0);
      // The rest of a datagram longer than the buffer is discarded (MSG_TRUNC: report its length).
      return (flags & MSG_TRUNC) !== 0 ? m.data.length : n;
    }
    const t = d as TcpDesc;
    const c = t.conn;
    if (t.listener || c === null) return -ENOTCONN;
    if (len === 0) return 0;
    if (t.connecting) return -EAGAIN;
    // Like Linux's tcp_recvmsg, `from` is left alone on a stream socket.
    const n = (flags & MSG_PEEK) !== 0 ? c.peekInto(buf, 0, len) : c.readInto(buf, 0, len);
    if (n > 0) return n;
    if (t.soError) return -t.takeError();
    if (t.shutRd || c.ended || c.closed) return 0;
    return -EAGAIN;
  }

  private sendOn(d: SockDesc, buf: Uint8Array, len: number, flags: number, to: SockAddr | null): number {
    if (d.closed) return -EBADF;
    if (badRange(buf, len)) return -EFAULT;
    if ((flags & MSG_OOB) !== 0) return -EOPNOTSUPP;
    const data = len === buf.length ? buf : buf.subarray(0, len);
    if (d instanceof UdpDesc) {
      if (d.shutWr) return -EPIPE;
      // sock_alloc_send_pskb: a pending error fails the next send.
      if (d.soError) return -d.takeError();
      try {
        if (to && d.family === AF_INET6 && to.family !== AF_UNSPEC) {
          // udpv6_sendmsg: a sockaddr_in goes out over IPv4 unless the socket is v6-only.
          if (typeof to === 'object' && to.family === AF_INET && d.v6Only) return -ENETUNREACH;
          const a = this.addr6Tmp;
          const r = parseSockAddr6(to, a, this.portTmp, 0);
          if (r < 0) return r;
          if (this.portTmp[0] === 0) return -EINVAL;
          if (mappedV4(a, 0) >= 0 ? d.v6Only : d.sock.bound && !d.sock.accepts6) return -ENETUNREACH;
          d.sock.send6(data, a, 0, this.portTmp[0]!, this.portTmp[1]!);
        } else if (to && d.family === AF_INET) {
          const addr = parseSockAddr(to, this.portTmp);
          if (addr < 0) return addr;
          d.sock.send(data, addr, this.portTmp[0]!);
        } else {
          if (!d.sock.connected) return -EDESTADDRREQ;
          d.sock.send(data);
        }
      } catch (e) { return -errnoOf(e); }
      return len;
    }
    const t = d as TcpDesc;
    const c = t.conn;
    if ((flags & MSG_FASTOPEN) !== 0 && !t.listener) {
      // Linux: needs net.inet.tcp.fastopen bit 0x1 and an address; on a connected socket EISCONN.
      if (!(this.stack.sysctl.int('net.inet.tcp.fastopen') & 1)) return -EOPNOTSUPP;
      if (c !== null) return t.connecting ? -EALREADY : -EISCONN;
      if (to === null) return -EDESTADDRREQ;
      return this.connectOn(t, to, data);
    }
    if (t.listener || c === null) return -ENOTCONN;
    if (t.soError) return -t.takeError();
    if (t.shutWr || c.closed || c.tcb.finQueued) return -EPIPE;
    // tcp_sendmsg waits for the handshake: without time to wait, EAGAIN.
    if (t.connecting) return -EAGAIN;
    if (len === 0) return 0;
    let n: number;
    try { n = c.write(data, (flags & MSG_MORE) !== 0); } catch (e) { return -errnoOf(e); }
    return n > 0 ? n : -EAGAIN;
  }

  /** shutdown(fd, SHUT_RD | SHUT_WR | SHUT_RDWR) → 0, or -ENOTCONN on an unconnected socket. */
  shutdown(fd: number, how: number): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    if (how !== SHUT_RD && how !== SHUT_WR && how !== SHUT_RDWR) return -EINVAL;
    const rd = how !== SHUT_WR, wr = how !== SHUT_RD;
    if (d instanceof UdpDesc) {
      // inet_shutdown on an unconnected datagram socket: -ENOTCONN, yet the flags are set
      // ("Hack to wake up other listeners, who can poll for EPOLLHUP").
      if (rd) d.shutRd = true;
      if (wr) d.shutWr = true;
      d.wake(0);
      return d.sock.connected ? 0 : -ENOTCONN;
    }
    const t = d as TcpDesc;
    const c = t.conn;
    if (t.listener || c === null || c.closed) return -ENOTCONN;
    if (rd) t.shutRd = true;
    if (wr && !t.shutWr) { t.shutWr = true; c.shutdown(); }
    t.wake(0);
    return 0;
  }

  /** close(fd) → 0. TCP: FIN after queued data (RST if unread data remains, as Linux). */
  close(fd: number): number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    this.slots[fd - FD_BASE] = null;
    if (fd - FD_BASE < this.lowestFree) this.lowestFree = fd - FD_BASE;
    this.open--;
    d.closed = true;
    for (const e of [...d.watchers]) e.set.forget(e);
    for (const w of [...d.waiters]) w.cancel(-EBADF);
    if (d instanceof TcpDesc) {
      this.unregister(d);
      if (d.listener) {
        d.listener.onConnection = null;
        d.listener.close();
        for (const child of d.acceptQueue.splice(0)) child.detach()?.abort();
        d.listener = null;
      }
      // SO_LINGER with a zero time: close() aborts with a RST (Linux's tcp_close()). A positive
      // time is the graceful close (there is no thread to block).
      const c = d.detach();
      if (c && d.linger === 0) c.abort(); else c?.close();
    } else if (d instanceof UdpDesc) {
      d.sock.onReadable = null;
      d.sock.onError = null;
      d.sock.close();
    } else if (d instanceof EpollDesc) {
      d.set.clear();
    }
    if (d instanceof SockDesc) this.ctx.release();
    return 0;
  }

  // -- options --

  /**
   * setsockopt(fd, level, name, value) → 0. Values are integers (booleans accepted; times in
   * seconds, TCP_USER_TIMEOUT in ms as Linux), TCP_CONGESTION a name, SO_LINGER { onoff, linger }
   * or Linux's 8-byte struct linger.
   */
  setsockopt(fd: number, level: number, name: number, value: SockOptValue): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    const tcp = d instanceof TcpDesc ? d : null;
    const udp = d instanceof UdpDesc ? d : null;
    const c = tcp?.conn ?? null;
    if (level === IPPROTO_TCP && name === TCP_CONGESTION) {
      if (!tcp) return -EOPNOTSUPP;
      const algo = typeof value === 'string' ? value : value instanceof Uint8Array ? cString(value) : null;
      if (algo === null) return -EINVAL;
      if (!(CC_ALGORITHMS as readonly string[]).includes(algo)) return -ENOENT;
      tcp.congestion = algo;
      if (c) c.setCongestionControl(algo);
      return 0;
    }
    if (level === SOL_SOCKET && name === SO_LINGER) {
      let onoff: number, secs: number;
      if (value instanceof Uint8Array) {
        if (value.length < 8) return -EINVAL;
        const dv = new DataView(value.buffer, value.byteOffset, 8);
        onoff = dv.getInt32(0, true); secs = dv.getInt32(4, true);
      } else if (typeof value === 'object' && value !== null) { onoff = value.onoff; secs = value.linger; } else return -EINVAL;
      if (!tcp) return 0; // kept without effect on datagram sockets, as Linux
      tcp.linger = onoff ? Math.max(0, secs | 0) : -1;
      return 0;
    }
    if (level === IPPROTO_IP && name >= IP_MULTICAST_IF && name <= IP_DROP_SOURCE_MEMBERSHIP) {
      if (!udp) return -ENOPROTOOPT;
      return multicastOption(udp.sock, name, value);
    }
    // An AF_INET socket has no IPPROTO_IPV6 options (ip_setsockopt: level != SOL_IP).
    if (level === IPPROTO_IPV6 && d.family !== AF_INET6) return -ENOPROTOOPT;
    if (level === IPPROTO_IPV6 && (name === IPV6_JOIN_GROUP || name === IPV6_LEAVE_GROUP || name === MCAST_JOIN_SOURCE_GROUP || name === MCAST_LEAVE_SOURCE_GROUP)) {
      if (!(value instanceof Uint8Array) || value.length < (name <= IPV6_LEAVE_GROUP ? 20 : GROUP_SOURCE_REQ_SIZE)) return -EINVAL;
      // Linux: "if (sk->sk_type == SOCK_STREAM) break;" with retv = -EPROTO.
      if (!udp) return -EPROTO;
      return multicastOption6(udp.sock, name, value);
    }
    if (typeof value === 'string' || value instanceof Uint8Array || (typeof value === 'object' && value !== null)) return -EINVAL;
    const v = toInt(value);
    if (!Number.isInteger(v)) return -EINVAL;
    if (level === SOL_SOCKET) {
      switch (name) {
        case SO_REUSEADDR:
          if (udp) udp.sock.reuseAddr = v !== 0; else { tcp!.reuseAddr = v !== 0; if (tcp!.binding) tcp!.binding.reuseAddr = v !== 0; }
          return 0;
        case SO_BROADCAST:
          if (udp) udp.sock.broadcast = v !== 0; else d.broadcastFlag = v !== 0;
          return 0;
        case SO_KEEPALIVE:
          if (udp) { d.keepFlag = v !== 0; return 0; }
          tcp!.keepAlive = v !== 0;
          if (c) c.setKeepAlive(v !== 0);
          return 0;
        case SO_SNDBUF:
          if (udp) { udp.sndBufSize = clampBuf(v); return 0; }
          tcp!.sndBufSize = clampBuf(v);
          if (c) setTcpSendBuf(c, v);
          return 0;
        case SO_RCVBUF:
          if (udp) { udp.sock.recvBufSize = clampBuf(v); return 0; }
          tcp!.rcvBufSize = clampBuf(v);
          if (c) setTcpRecvBuf(c, v);
          return 0;
        default:
          return -ENOPROTOOPT;
      }
    }
    if (level === IPPROTO_IPV6 && name !== IPV6_TCLASS) return this.setIpv6Option(d, name, v);
    if (level === IPPROTO_TCP) {
      if (!tcp) return -EOPNOTSUPP;
      switch (name) {
        case TCP_NODELAY:
          tcp.noDelay = v !== 0;
          if (c) c.setNoDelay(v !== 0);
          return 0;
        case TCP_KEEPIDLE: case TCP_KEEPINTVL:
          if (v < 1 || v > MAX_TCP_KEEPIDLE) return -EINVAL;
          if (name === TCP_KEEPIDLE) tcp.keepIdleMs = v * 1000; else tcp.keepIntvlMs = v * 1000;
          if (c) c.setKeepAlive(c.tcb.keepalive, name === TCP_KEEPIDLE ? v * 1000 : undefined, name === TCP_KEEPINTVL ? v * 1000 : undefined);
          return 0;
        case TCP_KEEPCNT:
          if (v < 1 || v > MAX_TCP_KEEPCNT) return -EINVAL;
          tcp.keepCnt = v;
          if (c) c.setKeepAlive(c.tcb.keepalive, undefined, undefined, v);
          return 0;
        case TCP_FASTOPEN:
          // The TFO queue length of a listener (before or after listen(), as Linux).
          if (v < 0) return -EINVAL;
          tcp.fastOpen = v;
          if (tcp.listener) tcp.listener.tfoQlen = v;
          return 0;
        case TCP_CORK:
          tcp.cork = v !== 0;
          if (c) c.setCork(v !== 0);
          return 0;
        case TCP_NOTSENT_LOWAT:
          // Linux: an unsigned int; 0 and UINT_MAX (-1) both leave the queue unlimited here.
          tcp.notsentLowat = v > 0 ? v : 0;
          if (c) c.setNotSentLowat(tcp.notsentLowat);
          return 0;
        case TCP_USER_TIMEOUT:
          if (v < 0) return -EINVAL;
          tcp.userTimeoutMs = v;
          if (c) c.setUserTimeout(v);
          return 0;
        case TCP_MAXSEG:
          // Linux do_tcp_setsockopt(): "if (val && (val < TCP_MIN_MSS || val > MAX_TCP_WINDOW)) return -EINVAL";
          // it shapes the SYN, so it takes effect for connections opened after it.
          if (v !== 0 && (v < 88 || v > 32767)) return -EINVAL;
          tcp.maxSeg = v;
          return 0;
        case TCP_INQ:
          tcp.inqFlag = v !== 0;
          return 0;
        default:
          return -ENOPROTOOPT;
      }
    }
    if ((level === IPPROTO_IP && name === IP_TOS) || (level === IPPROTO_IPV6 && name === IPV6_TCLASS)) {
      // Linux: IP_TOS keeps the ECN bits its own; IPV6_TCLASS takes -1 for the default.
      const tos = (v === -1 ? 0 : v) & 0xfc;
      if (v < -1 || v > 255) return -EINVAL;
      // A datagram socket keeps the ECN bits it is given (only SOCK_STREAM's are the stack's).
      if (udp) { udp.sock.tos = v === -1 ? 0 : v; return 0; }
      if (!tcp) return -ENOPROTOOPT;
      tcp.tos = tos;
      if (c) c.setTos(tos);
      if (tcp.listener) tcp.listener.tos = tos;
      return 0;
    }
    if (level === IPPROTO_IP) {
      if (name !== IP_TTL) return -ENOPROTOOPT;
      // Linux: -1 restores the default; 1..255 otherwise.
      const ttl = v === -1 ? 64 : v;
      if (ttl < 1 || ttl > 255) return -EINVAL;
      if (udp) { udp.sock.ttl = ttl; return 0; }
      return -ENOPROTOOPT; // the engine's TCP output has no per-connection TTL
    }
    return -ENOPROTOOPT;
  }

  /**
   * getsockopt(fd, level, name, out?) → the value (>= 0; booleans as 0/1; times in seconds) or
   * -errno. SO_ERROR clears the error. Options whose value is a C struct or a string — TCP_INFO
   * (Linux's struct tcp_info), TCP_CONGESTION (the name, NUL-terminated), SO_LINGER (struct
   * linger) — are written into `out` and the call returns the bytes written, as optlen.
   */
  getsockopt(fd: number, level: number, name: number, out?: Uint8Array): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    const tcp = d instanceof TcpDesc ? d : null;
    const udp = d instanceof UdpDesc ? d : null;
    const c = tcp?.conn ?? null;
    const sys = this.stack.sysctl;
    if ((level === IPPROTO_TCP && (name === TCP_INFO || name === TCP_CONGESTION)) || (level === SOL_SOCKET && name === SO_LINGER)) {
      if (!(out instanceof Uint8Array)) return -EFAULT;
      if (level === SOL_SOCKET) {
        if (out.length < 8) return -EINVAL;
        const dv = new DataView(out.buffer, out.byteOffset, 8);
        const l = tcp ? tcp.linger : -1;
        dv.setInt32(0, l >= 0 ? 1 : 0, true); dv.setInt32(4, l >= 0 ? l : 0, true);
        return 8;
      }
      if (!tcp) return -EOPNOTSUPP;
      if (name === TCP_CONGESTION) {
        const algo = c ? c.congestionControl : tcp.congestion || sys.str('net.inet.tcp.cc.algorithm');
        const bytes = new TextEncoder().encode(algo);
        const n = Math.min(out.length, 16);
        out.fill(0, 0, n);
        out.set(bytes.subarray(0, Math.min(bytes.length, n)));
        return n;
      }
      if (!c) { out.fill(0, 0, Math.min(out.length, TCP_INFO_SIZE)); out[0] = tcp.listener ? 10 : 7; return Math.min(out.length, TCP_INFO_SIZE); }
      return encodeTcpInfo(c, out);
    }
    if (level === SOL_SOCKET) {
      switch (name) {
        case SO_ERROR: return d.takeError();
        case SO_TYPE: return d.type;
        case SO_ACCEPTCONN: return tcp?.listener ? 1 : 0;
        case SO_REUSEADDR: return (udp ? udp.sock.reuseAddr : tcp!.reuseAddr) ? 1 : 0;
        case SO_BROADCAST: return (udp ? udp.sock.broadcast : d.broadcastFlag) ? 1 : 0;
        case SO_KEEPALIVE: return (tcp ? (c ? c.tcb.keepalive : tcp.keepAlive) : d.keepFlag) ? 1 : 0;
        // Linux doubles a value set with SO_SNDBUF/SO_RCVBUF ("to allow space for bookkeeping
        // overhead") and reports the doubled value; the engine's buffer holds the value asked for.
        case SO_SNDBUF:
          if (udp) return udp.sndBufSize;
          if (tcp!.sndBufSize) return 2 * (c ? c.tcb.sndBuf.capacity : tcp!.sndBufSize);
          return c ? c.tcb.sndBuf.capacity : sys.int('net.inet.tcp.sendspace');
        case SO_RCVBUF:
          if (udp) return udp.sock.recvBufSize;
          if (tcp!.rcvBufSize) return 2 * (c ? c.tcb.rcvBuf.capacity : tcp!.rcvBufSize);
          return c ? c.tcb.rcvBuf.capacity : sys.int('net.inet.tcp.recvspace');
        case SO_LINGER: return -EINVAL;
        default: return -ENOPROTOOPT;
      }
    }
    if (level === IPPROTO_TCP) {
      if (!tcp) return -EOPNOTSUPP;
      switch (name) {
        case TCP_NODELAY: return (c ? c.tcb.noDelay : tcp.noDelay) ? 1 : 0;
        case TCP_KEEPIDLE: return Math.round((c ? c.tcb.keepIdle : tcp.keepIdleMs || sys.int('net.inet.tcp.keepidle')) / 1000);
        case TCP_KEEPINTVL: return Math.round((c ? c.tcb.keepIntvl : tcp.keepIntvlMs || sys.int('net.inet.tcp.keepintvl')) / 1000);
        case TCP_KEEPCNT: return c ? c.tcb.keepCnt : tcp.keepCnt || sys.int('net.inet.tcp.keepcnt');
        case TCP_CORK: return (c ? c.cork : tcp.cork) ? 1 : 0;
        case TCP_FASTOPEN: return tcp.fastOpen;
        case TCP_NOTSENT_LOWAT: return c ? c.notSentLowat : tcp.notsentLowat;
        case TCP_USER_TIMEOUT: return c ? c.tcb.userTimeout : tcp.userTimeoutMs;
        // Linux: the connection's mss_cache once synchronized, else user_mss or TCP_MSS_DEFAULT.
        case TCP_MAXSEG: return c && c.tcb.synchronized ? c.maxSegment : tcp.maxSeg || 536;
        case TCP_INQ: return tcp.inqFlag ? 1 : 0;
        default: return -ENOPROTOOPT;
      }
    }
    // An AF_INET socket answers IPPROTO_IPV6 with EOPNOTSUPP (ip_getsockopt: level != SOL_IP).
    if (level === IPPROTO_IPV6 && d.family !== AF_INET6) return -EOPNOTSUPP;
    if (udp && ((level === IPPROTO_IPV6 && name === IPV6_TCLASS) || (level === IPPROTO_IP && name === IP_TOS))) return udp.sock.tos;
    if ((level === IPPROTO_IP && name === IP_TOS) || (level === IPPROTO_IPV6 && name === IPV6_TCLASS)) {
      if (!tcp) return -ENOPROTOOPT;
      return c ? c.tos : tcp.tos;
    }
    if (level === IPPROTO_IPV6) {
      const s = udp?.sock;
      switch (name) {
        case IPV6_V6ONLY: return d.v6Only ? 1 : 0;
        // Linux reports the route's (the link's) hop limit while the socket has none of its own.
        case IPV6_UNICAST_HOPS: return s && s.hopLimit >= 0 ? s.hopLimit : TCP_TTL;
        case IPV6_MULTICAST_HOPS: return s ? s.mcastTtl : 1;
        case IPV6_MULTICAST_LOOP: return s ? (s.mcastLoop ? 1 : 0) : 1;
        case IPV6_MULTICAST_IF: return s ? s.mcastIf6 : 0;
        default: return -ENOPROTOOPT;
      }
    }
    if (level === IPPROTO_IP && name === IP_TTL) return udp ? udp.sock.ttl : TCP_TTL;
    if (level === IPPROTO_IP && udp && name === IP_MULTICAST_TTL) return udp.sock.mcastTtl;
    if (level === IPPROTO_IP && udp && name === IP_MULTICAST_LOOP) return udp.sock.mcastLoop ? 1 : 0;
    return -ENOPROTOOPT;
  }

  /** setsockopt(IPPROTO_IPV6, name) with an integer value on an AF_INET6 socket (Linux's do_ipv6_setsockopt checks). */
  private setIpv6Option(d: SockDesc, name: number, v: number): number {
    const udp = d instanceof UdpDesc ? d : null;
    const tcp = d instanceof TcpDesc ? d : null;
    switch (name) {
      case IPV6_V6ONLY:
        // Only before the socket has a port: "if (... inet_sk(sk)->inet_num) goto e_inval".
        if (udp ? udp.sock.bound : tcp!.bound || tcp!.binding !== null || tcp!.conn !== null || tcp!.listener !== null) return -EINVAL;
        d.v6Only = v !== 0;
        if (udp) udp.sock.v6Only = v !== 0;
        return 0;
      case IPV6_UNICAST_HOPS:
        if (v < -1 || v > 255) return -EINVAL;
        if (!udp) return -ENOPROTOOPT; // the engine's TCP output has no per-connection hop limit
        udp.sock.hopLimit = v;
        return 0;
      case IPV6_MULTICAST_HOPS:
        if (!udp) return -ENOPROTOOPT;
        if (v < -1 || v > 255) return -EINVAL;
        udp.sock.mcastTtl = v === -1 ? 1 : v;
        return 0;
      case IPV6_MULTICAST_LOOP:
        if (v !== 0 && v !== 1) return -EINVAL;
        if (udp) udp.sock.mcastLoop = v === 1;
        return 0;
      case IPV6_MULTICAST_IF:
        if (!udp) return -ENOPROTOOPT;
        if (v !== 0 && (!Number.isInteger(v) || v < 0 || this.stack.ip6.link(v) === undefined)) return -ENODEV;
        udp.sock.mcastIf6 = v;
        return 0;
      default:
        return -ENOPROTOOPT;
    }
  }

  /** fcntl(fd, F_GETFL | F_SETFL | F_GETFD | F_SETFD, arg). Only O_NONBLOCK / FD_CLOEXEC are kept. */
  fcntl(fd: number, cmd: number, arg = 0): number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    switch (cmd) {
      case F_GETFL: return O_RDWR | (d.nonblock ? O_NONBLOCK : 0);
      case F_SETFL: d.nonblock = (arg & O_NONBLOCK) !== 0; return 0;
      case F_GETFD: return d.cloexec ? FD_CLOEXEC : 0;
      case F_SETFD: d.cloexec = (arg & FD_CLOEXEC) !== 0; return 0;
      default: return -EINVAL;
    }
  }

  /** ioctl(fd, FIONBIO, on) → 0; ioctl(fd, FIONREAD) → bytes readable (the next datagram's size on UDP). */
  ioctl(fd: number, request: number, arg = 0): number {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    if (request === FIONBIO) { d.nonblock = arg !== 0; return 0; }
    if (request === SIOCOUTQ || request === SIOCOUTQNSD) {
      if (!(d instanceof TcpDesc)) return d instanceof UdpDesc ? 0 : -EINVAL;
      if (d.listener) return -EINVAL;
      const c = d.conn;
      if (c === null) return 0;
      return request === SIOCOUTQ ? c.sendBufferLength : c.notSentLength;
    }
    if (request === FIONREAD) {
      if (d instanceof TcpDesc) return d.listener ? -EINVAL : d.conn ? d.conn.readableLength : 0;
      if (d instanceof UdpDesc) {
        if (!d.peeked && d.sock.pending > 0) d.peeked = d.sock.recv();
        return d.peeked ? d.peeked.data.length : 0;
      }
      return -EINVAL;
    }
    return -EINVAL;
  }

  /** getsockname(fd, out) → 0; fills out with the local address (port 0 before it is chosen). */
  getsockname(fd: number, out: SockAddr): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    if (!out || typeof out !== 'object') return -EFAULT;
    if (d instanceof UdpDesc) {
      const s = d.sock;
      if (d.family === AF_INET) { fillAddr(out, s.localAddr, s.localPort); return 0; }
      // A socket bound to :: names the source its connect() chose (ip6_datagram_connect sets it).
      const p = s.path;
      if (!s.anyLocal6 || !s.connected || p === null) fillAddr6(out, s.local6!, 0, s.localPort, s.scope);
      else if (s.remoteIs6) fillAddr6(out, p.src6, 0, s.localPort, s.scope);
      else fillAddr6(out, null, p.src, s.localPort);
      return 0;
    }
    const t = d as TcpDesc;
    if (t.family === AF_INET6) {
      if (t.listener) fillAddr6(out, t.listener.laddr6, 0, t.listener.localPort);
      else if (t.conn) fillTcpEnd(t, out, t.conn, true);
      else fillAddr6(out, t.bindAddr6 ?? ANY6, 0, t.bindPort);
      return 0;
    }
    if (t.listener) fillAddr(out, t.listener.laddr, t.listener.localPort);
    else if (t.conn) fillAddr(out, t.conn.localAddress, t.conn.localPort);
    else fillAddr(out, t.bindAddr, t.bindPort);
    return 0;
  }

  /** getpeername(fd, out) → 0 or -ENOTCONN. */
  getpeername(fd: number, out: SockAddr): number {
    const d = this.sock(fd);
    if (typeof d === 'number') return d;
    if (!out || typeof out !== 'object') return -EFAULT;
    if (d instanceof UdpDesc) {
      const s = d.sock;
      if (!s.connected) return -ENOTCONN;
      if (d.family === AF_INET) fillAddr(out, s.remoteAddr, s.remotePort);
      else if (s.remoteIs6) fillAddr6(out, s.remote6!, 0, s.remotePort, needsScope(s.remote6!) ? s.scope : 0);
      else fillAddr6(out, null, s.remoteAddr, s.remotePort);
      return 0;
    }
    const c = (d as TcpDesc).conn;
    if (c === null || (d as TcpDesc).connecting || (c.closed && !(d as TcpDesc).everConnected)) return -ENOTCONN;
    fillTcpEnd(d, out, c, false);
    return 0;
  }

  // -- epoll --

  /** epoll_create(size) → epfd; size must be positive and is otherwise ignored (as on Linux). */
  epoll_create(size = 1): number {
    if (!(size > 0)) return -EINVAL;
    return this.install(new EpollDesc());
  }

  /** epoll_create1(flags): flags 0 or EPOLL_CLOEXEC (= O_CLOEXEC). */
  epoll_create1(flags = 0): number {
    if ((flags & ~SOCK_CLOEXEC) !== 0) return -EINVAL;
    const d = new EpollDesc();
    d.cloexec = flags !== 0;
    return this.install(d);
  }

  /** epoll_ctl(epfd, EPOLL_CTL_ADD | MOD | DEL, fd, { events, data }) → 0. */
  epoll_ctl(epfd: number, op: number, fd: number, event?: EpollEvent | null): number {
    const ep = this.get(epfd);
    if (ep === null) return -EBADF;
    const target = this.get(fd);
    if (target === null) return -EBADF;
    if (!(ep instanceof EpollDesc) || epfd === fd) return -EINVAL;
    // Nested epoll sets are not supported (Linux allows them).
    if (target instanceof EpollDesc) return -EPERM;
    if (op !== EPOLL_CTL_DEL && (!event || typeof event.events !== 'number')) return -EFAULT;
    let r: EpollCtlResult;
    switch (op) {
      case EPOLL_CTL_ADD: r = ep.set.add(fd, target, event!.events, event!.data); break;
      case EPOLL_CTL_MOD: r = ep.set.modify(fd, event!.events, event!.data); break;
      case EPOLL_CTL_DEL: r = ep.set.remove(fd); break;
      default: return -EINVAL;
    }
    switch (r) {
      case EpollCtlResult.Ok: return 0;
      case EpollCtlResult.Exists: return -EEXIST;
      case EpollCtlResult.NotFound: return -ENOENT;
      default: return -EINVAL;
    }
  }

  /**
   * epoll_wait(epfd, events, maxevents) → the number of events written to events[0..n) (0 when
   * nothing is ready; it never waits — see epollWaitAsync). Objects already in `events` are
   * reused, so a loop that passes the same array allocates nothing.
   */
  epoll_wait<D = unknown>(epfd: number, events: EpollEvent<D>[], maxevents = events?.length): number {
    const ep = this.get(epfd);
    if (ep === null) return -EBADF;
    if (!(ep instanceof EpollDesc)) return -EINVAL;
    if (!Array.isArray(events)) return -EFAULT;
    if (!Number.isInteger(maxevents) || maxevents <= 0) return -EINVAL;
    return ep.set.wait(events as EpollEvent[], maxevents);
  }

  // -- awaitable variants --

  /**
   * Runs `attempt` now and after each change of `d` until it returns something other than
   * -EAGAIN. A timeout resolves with `onTimeout()`, an abort rejects with AbortError, a close
   * of the descriptor resolves with -EBADF.
   */
  private block(d: Desc, attempt: () => number, opts: WaitOptions | undefined, onTimeout: () => number): Promise<number> {
    const first = attempt();
    if (first !== -EAGAIN) return Promise.resolve(first);
    const signal = opts?.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const ms = opts?.timeoutMs;
    if (ms === 0) return Promise.resolve(onTimeout());
    return new Promise<number>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const finish = (): void => {
        d.waiters.delete(w);
        if (timer !== null) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const w: Waiter = {
        retry: () => {
          const r = attempt();
          if (r === -EAGAIN) return;
          finish();
          resolve(r);
        },
        cancel: (r) => { finish(); resolve(r); },
      };
      const onAbort = (): void => { finish(); reject(abortError(signal!)); };
      d.waiters.add(w);
      if (ms !== undefined && ms > 0 && Number.isFinite(ms)) timer = setTimeout(() => { finish(); resolve(onTimeout()); }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * epoll_wait that waits: resolves with the event count once something is ready, or 0 when
   * `timeoutMs` passes (as epoll_wait's timeout). Rejects with AbortError on abort.
   */
  epollWaitAsync<D = unknown>(epfd: number, events: EpollEvent<D>[], maxevents = events?.length, opts?: WaitOptions): Promise<number> {
    const ep = this.get(epfd);
    const first = this.epoll_wait(epfd, events, maxevents);
    if (first !== 0 || !(ep instanceof EpollDesc)) return Promise.resolve(first);
    return this.block(ep, () => {
      const n = ep.set.wait(events as EpollEvent[], maxevents);
      return n === 0 ? -EAGAIN : n;
    }, opts, () => 0);
  }

  /** accept that waits for a connection; a timeout resolves with -ETIMEDOUT. */
  acceptAsync(fd: number, peer?: SockAddr | null, opts?: WaitOptions & { flags?: number }): Promise<number> {
    const d = this.sock(fd);
    if (typeof d === 'number') return Promise.resolve(d);
    const flags = opts?.flags ?? 0;
    return this.block(d, () => this.acceptOn(d, peer, flags), opts, () => -ETIMEDOUT);
  }

  /**
   * connect that waits for the handshake: 0 when connected, else the failure (-ECONNREFUSED,
   * -ETIMEDOUT …). A timeout resolves with -ETIMEDOUT and leaves the attempt running (close()
   * ends it). UDP connects at once.
   */
  connectAsync(fd: number, sa: SockAddr, opts?: WaitOptions): Promise<number> {
    const d = this.sock(fd);
    if (typeof d === 'number') return Promise.resolve(d);
    const r = this.connectOn(d, sa);
    if (r !== -EINPROGRESS && r !== -EALREADY) return Promise.resolve(r);
    const t = d as TcpDesc;
    return this.block(t, () => this.connectOutcome(t), opts, () => -ETIMEDOUT);
  }

  /** read that waits until something can be read (bytes, 0 at EOF, or an error); timeout: -ETIMEDOUT. */
  readAsync(fd: number, buf: Uint8Array, count = buf?.length, opts?: WaitOptions): Promise<number> {
    const d = this.get(fd);
    if (d === null) return Promise.resolve(-EBADF);
    if (!(d instanceof SockDesc)) return Promise.resolve(-EINVAL);
    return this.block(d, () => this.recvOn(d, buf, count, 0, null), opts, () => -ETIMEDOUT);
  }

  /** recvfrom that waits; timeout: -ETIMEDOUT. */
  recvfromAsync(fd: number, buf: Uint8Array, len = buf?.length, flags = 0, from?: SockAddr | null, opts?: WaitOptions): Promise<number> {
    const d = this.sock(fd);
    if (typeof d === 'number') return Promise.resolve(d);
    return this.block(d, () => this.recvOn(d, buf, len, flags, from ?? null), opts, () => -ETIMEDOUT);
  }

  /**
   * write that waits until all `count` bytes are queued, like a blocking write(2). An error
   * or timeout after some bytes were queued resolves with that count (POSIX partial write);
   * with none, with the error or -ETIMEDOUT. On abort the AbortError's `transferred` says how
   * many bytes were queued.
   */
  async writeAsync(fd: number, buf: Uint8Array, count = buf?.length, opts?: WaitOptions): Promise<number> {
    const d = this.get(fd);
    if (d === null) return -EBADF;
    if (!(d instanceof SockDesc)) return -EINVAL;
    if (badRange(buf, count)) return -EFAULT;
    if (d instanceof UdpDesc) return this.sendOn(d, buf, count, 0, null);
    let done = 0;
    const attempt = (): number => {
      while (done < count) {
        const r = this.sendOn(d, done === 0 ? buf : buf.subarray(done), count - done, 0, null);
        if (r === -EAGAIN) return -EAGAIN;
        if (r < 0) return done > 0 ? done : r;
        done += r;
      }
      return done;
    };
    try {
      return await this.block(d, attempt, opts, () => done > 0 ? done : -ETIMEDOUT);
    } catch (e) {
      if (e instanceof AbortError) e.transferred = done;
      throw e;
    }
  }
}

// ---- one table per stack, and the default stack's functions -------------------------------------

const tables = new WeakMap<Stack, Posix>();

/** The descriptor table of a stack (`{ stack }`: a Stack or an Instance; default: the default instance). */
export function posix(opts?: StackOption): Posix {
  const ctx = resolveStack(opts);
  let t = tables.get(ctx.stack);
  if (!t) { t = new Posix(ctx); tables.set(ctx.stack, t); }
  return t;
}

// F-Stack-style free functions on the default stack (TSTACK_CONFIG or setDefaultInstance()).
export const socket = (domain: number, type: number, protocol = 0): number => posix().socket(domain, type, protocol);
export const bind = (fd: number, sa: SockAddr): number => posix().bind(fd, sa);
export const listen = (fd: number, backlog?: number): number => posix().listen(fd, backlog);
export const accept = (fd: number, peer?: SockAddr | null): number => posix().accept(fd, peer);
export const accept4 = (fd: number, peer: SockAddr | null | undefined, flags: number): number => posix().accept4(fd, peer, flags);
export const connect = (fd: number, sa: SockAddr): number => posix().connect(fd, sa);
export const read = (fd: number, buf: Uint8Array, count?: number): number => posix().read(fd, buf, count);
export const write = (fd: number, buf: Uint8Array, count?: number): number => posix().write(fd, buf, count);
export const readv = (fd: number, iov: readonly Uint8Array[]): number => posix().readv(fd, iov);
export const writev = (fd: number, iov: readonly Uint8Array[]): number => posix().writev(fd, iov);
export const recv = (fd: number, buf: Uint8Array, len?: number, flags?: number): number => posix().recv(fd, buf, len, flags);
export const send = (fd: number, buf: Uint8Array, len?: number, flags?: number): number => posix().send(fd, buf, len, flags);
export const recvfrom = (fd: number, buf: Uint8Array, len?: number, flags?: number, from?: SockAddr | null): number => posix().recvfrom(fd, buf, len, flags, from);
export const sendto = (fd: number, buf: Uint8Array, len?: number, flags?: number, to?: SockAddr | null): number => posix().sendto(fd, buf, len, flags, to);
export const shutdown = (fd: number, how: number): number => posix().shutdown(fd, how);
export const close = (fd: number): number => posix().close(fd);
export const setsockopt = (fd: number, level: number, name: number, value: SockOptValue): number => posix().setsockopt(fd, level, name, value);
export const getsockopt = (fd: number, level: number, name: number, out?: Uint8Array): number => posix().getsockopt(fd, level, name, out);
export const fcntl = (fd: number, cmd: number, arg?: number): number => posix().fcntl(fd, cmd, arg);
export const ioctl = (fd: number, request: number, arg?: number): number => posix().ioctl(fd, request, arg);
export const getsockname = (fd: number, out: SockAddr): number => posix().getsockname(fd, out);
export const getpeername = (fd: number, out: SockAddr): number => posix().getpeername(fd, out);
export const epoll_create = (size?: number): number => posix().epoll_create(size);
export const epoll_create1 = (flags?: number): number => posix().epoll_create1(flags);
export const epoll_ctl = (epfd: number, op: number, fd: number, event?: EpollEvent | null): number => posix().epoll_ctl(epfd, op, fd, event);
export const epoll_wait = <D = unknown>(epfd: number, events: EpollEvent<D>[], maxevents?: number): number => posix().epoll_wait(epfd, events, maxevents);
export const epollWaitAsync = <D = unknown>(epfd: number, events: EpollEvent<D>[], maxevents?: number, opts?: WaitOptions): Promise<number> => posix().epollWaitAsync(epfd, events, maxevents, opts);
export const acceptAsync = (fd: number, peer?: SockAddr | null, opts?: WaitOptions & { flags?: number }): Promise<number> => posix().acceptAsync(fd, peer, opts);
export const connectAsync = (fd: number, sa: SockAddr, opts?: WaitOptions): Promise<number> => posix().connectAsync(fd, sa, opts);
export const readAsync = (fd: number, buf: Uint8Array, count?: number, opts?: WaitOptions): Promise<number> => posix().readAsync(fd, buf, count, opts);
export const writeAsync = (fd: number, buf: Uint8Array, count?: number, opts?: WaitOptions): Promise<number> => posix().writeAsync(fd, buf, count, opts);
export const recvfromAsync = (fd: number, buf: Uint8Array, len?: number, flags?: number, from?: SockAddr | null, opts?: WaitOptions): Promise<number> => posix().recvfromAsync(fd, buf, len, flags, from, opts);

/** sizeof(struct group_source_req) on 64-bit Linux: interface, padding, two sockaddr_storage. */
const GROUP_SOURCE_REQ_SIZE = 264;

/**
 * IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP (struct ipv6_mreq: the group, then the interface index as
 * a host-order int; 0 = by route) and MCAST_JOIN_SOURCE_GROUP / MCAST_LEAVE_SOURCE_GROUP
 * (struct group_source_req: interface, then sockaddr_in6 group and source in sockaddr_storage
 * slots at 8 and 136) on an AF_INET6 UDP socket. Returns 0 or -errno.
 */
function multicastOption6(sock: UdpSocket, name: number, b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  try {
    if (name === IPV6_JOIN_GROUP || name === IPV6_LEAVE_GROUP) {
      const ifIndex = dv.getInt32(16, true);
      if (ifIndex < 0) return -ENODEV;
      if (name === IPV6_JOIN_GROUP) sock.addMembership6(b, 0, ifIndex); else sock.dropMembership6(b, 0);
      return 0;
    }
    const ifIndex = dv.getUint32(0, true);
    // Both must be sockaddr_in6 (an IPv4 group on an AF_INET6 socket is not supported here).
    if (dv.getUint16(8, true) !== AF_INET6 || dv.getUint16(136, true) !== AF_INET6) return -EINVAL;
    if (name === MCAST_JOIN_SOURCE_GROUP) sock.addSourceMembership6(b, 16, b, 144, ifIndex);
    else sock.dropSourceMembership6(b, 16, b, 144);
    return 0;
  } catch (e) {
    return -errnoOf(e);
  }
}

/**
 * IP_MULTICAST_* and IP_{ADD,DROP}_{SOURCE_,}MEMBERSHIP on a UDP socket, with Linux's value
 * shapes: integers for TTL and LOOP; struct in_addr or ip_mreq(n) for MULTICAST_IF; struct
 * ip_mreq / ip_mreqn (group, interface) and ip_mreq_source (group, interface, source), all in
 * network byte order. Returns 0 or -errno.
 */
function multicastOption(sock: UdpSocket, name: number, value: SockOptValue): number {
  if (name === IP_MULTICAST_TTL || name === IP_MULTICAST_LOOP) {
    const v = typeof value === 'number' || typeof value === 'boolean' ? toInt(value) : value instanceof Uint8Array && value.length >= 1 ? (value.length >= 4 ? new DataView(value.buffer, value.byteOffset, 4).getInt32(0, true) : value[0]!) : NaN;
    if (!Number.isInteger(v)) return -EINVAL;
    if (name === IP_MULTICAST_TTL) {
      // Linux: -1 restores the default (1).
      const ttl = v === -1 ? 1 : v;
      if (ttl < 0 || ttl > 255) return -EINVAL;
      sock.mcastTtl = ttl;
    } else sock.mcastLoop = v !== 0;
    return 0;
  }
  if (!(value instanceof Uint8Array)) return -EINVAL;
  const addr = (o: number) => ((value[o]! << 24) | (value[o + 1]! << 16) | (value[o + 2]! << 8) | value[o + 3]!) >>> 0;
  try {
    if (name === IP_MULTICAST_IF) {
      if (value.length < 4) return -EINVAL;
      // struct ip_mreqn carries the interface address second; struct in_addr alone is the address.
      const a = value.length >= 8 ? addr(4) : addr(0);
      sock.mcastIf = a;
      return 0;
    }
    if (name === IP_ADD_MEMBERSHIP || name === IP_DROP_MEMBERSHIP) {
      if (value.length < 8) return -EINVAL;
      if (name === IP_ADD_MEMBERSHIP) sock.addMembership(addr(0), addr(4)); else sock.dropMembership(addr(0), addr(4));
      return 0;
    }
    if (value.length < 12) return -EINVAL;
    if (name === IP_ADD_SOURCE_MEMBERSHIP) sock.addSourceMembership(addr(0), addr(8), addr(4));
    else if (name === IP_DROP_SOURCE_MEMBERSHIP) sock.dropSourceMembership(addr(0), addr(8), addr(4));
    else return -ENOPROTOOPT;
    return 0;
  } catch (e) {
    return -errnoOf(e);
  }
}
