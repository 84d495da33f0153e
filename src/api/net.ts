// tstack/net: Node's `net` API (TCP over IPv4) on the tstack TCP engine (src/stack/tcp/).
//
// The compatibility surface is Node's documented (and, where the docs are silent, observed)
// behaviour: the same overloads and argument errors, the same events in the same order
// ('connect' then 'ready'; 'error' then 'close(true)'; a server's 'close' only after its last
// connection), errors shaped like Node's (`connect ECONNREFUSED 198.18.0.2:9`, `read
// ECONNRESET`, `listen EADDRINUSE: address already in use 0.0.0.0:8080`, with code, negative
// errno, syscall, address and port), and Socket as a real stream.Duplex with Node's
// allowHalfOpen, backpressure and autoDestroy rules. The structure follows Node's lib/net.js
// so the two can be compared function by function; the engine's TcpSocket plays the part of
// the libuv handle. See docs/api-net.md for what differs.
//
// Mapping to the engine (the "handle"):
//   _read        -> resume pulling bytes out of the engine's receive buffer; while the stream's
//                   buffer is full we stop pulling, the engine's buffer fills and the advertised
//                   window closes (real backpressure on the peer).
//   _write(v)    -> TcpSocket.write(); what the send buffer cannot take waits for onDrain, and
//                   the write callback (hence the stream's 'drain') waits with it.
//   _final       -> TcpSocket.shutdown() (FIN after queued data).
//   _destroy     -> TcpSocket.close() (FIN, or RST with unread data, as the kernel does), or
//                   TcpSocket.abort() (RST) for resetAndDestroy().
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { Buffer } from 'node:buffer';
import { Duplex, addAbortSignal } from 'node:stream';
import { lookup as dnsLookup } from 'node:dns';
import { isIP, isIPv4, isIPv6, BlockList, SocketAddress } from 'node:net';
import { formatIpv4, formatIpv6, isIpv4Loopback, parseIpv4, parseIpv6 } from '../wire/addr.js';
import { Errno, type ErrnoCode } from '../base/errors.js';
import type { TcpSocket, TcpError } from '../stack/tcp/socket.js';
import type { TcpListener } from '../stack/tcp/listen.js';
import { resolveStack, type StackContext, type StackOption } from './runtime.js';
import { codedError, errnoException, exceptionWithHostPort, invalidArgType, validatePort } from './errors.js';

export { isIP, isIPv4, isIPv6, BlockList, SocketAddress };

export interface AddressInfo {
  address: string;
  family: string;
  port: number;
}

export type LookupFunction = (
  hostname: string,
  options: { family?: number; hints?: number; all?: boolean },
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
) => void;

export interface SocketConstructorOpts extends StackOption {
  allowHalfOpen?: boolean;
  readable?: boolean;
  writable?: boolean;
  highWaterMark?: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  signal?: AbortSignal;
  fd?: number;
  /** Bytes go into this buffer and to this callback instead of 'data' (Node's onread). */
  onread?: OnRead;
}

export interface TcpSocketConnectOpts extends SocketConstructorOpts {
  port: number | string;
  host?: string;
  localAddress?: string;
  localPort?: number;
  family?: number;
  hints?: number;
  lookup?: LookupFunction;
  timeout?: number;
  path?: undefined;
  autoSelectFamily?: boolean;
  autoSelectFamilyAttemptTimeout?: number;
  /**
   * tstack extension: TCP Fast Open (RFC 7413; Linux's TCP_FASTOPEN_CONNECT). What is written
   * before the connection attempt leaves (in the same tick as connect()) rides in the SYN when
   * a cookie for the server is cached; the first connection to a server fetches the cookie.
   * Needs net.inet.tcp.fastopen bit 0x1 (the default).
   */
  tfo?: boolean;
}

export interface ServerOpts extends StackOption {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
}

export interface ListenOptions {
  port?: number | string | null;
  host?: string;
  backlog?: number;
  exclusive?: boolean;
  ipv6Only?: boolean;
  /**
   * tstack extension: TCP Fast Open on this listener (RFC 7413; Linux's TCP_FASTOPEN): data in a
   * client's SYN is readable as soon as the connection is accepted. `true` or the most pending
   * TFO requests (default: the backlog). Needs net.inet.tcp.fastopen bit 0x2.
   */
  tfo?: boolean | number;
  reusePort?: boolean;
  signal?: AbortSignal;
  path?: string;
  readableAll?: boolean;
  writableAll?: boolean;
  fd?: number;
  handle?: unknown;
}

/** net.connect's `onread` option. */
export interface OnRead {
  buffer: Uint8Array | (() => Uint8Array);
  callback: (bytesWritten: number, buf: Uint8Array) => boolean | void;
}

/** The engine's socket and how this Socket came by it (Node's `options.handle`). */
const kHandle = Symbol('tstack.handle');
interface InternalOpts extends SocketConstructorOpts {
  [kHandle]?: { tcp: TcpSocket; ctx: StackContext; pauseOnCreate: boolean; mapped: boolean };
}

/** Bytes pulled from the engine per read (libuv reads into 64 KiB buffers too). */
const READ_CHUNK = 64 * 1024;

/**
 * Read chunks of 4 KiB and more are carved from a shared 256 KiB slab, as Node's Buffer pool
 * does below 4 KiB (Buffer.allocUnsafe): one ArrayBuffer per slab instead of one per read, so a
 * bulk stream allocates, tracks and sweeps a quarter as many. A chunk the program keeps keeps
 * its slab (at most 256 KiB) alive, as a kept small Buffer keeps Node's 8 KiB pool.
 */
const READ_SLAB = 256 * 1024;
let readSlab: Buffer | null = null;
let readSlabOff = 0;

function readBuffer(n: number): Buffer {
  if (n < 4096) return Buffer.allocUnsafe(n);
  if (readSlab === null || READ_SLAB - readSlabOff < n) { readSlab = Buffer.allocUnsafeSlow(READ_SLAB); readSlabOff = 0; }
  const b = readSlab.subarray(readSlabOff, readSlabOff + n);
  readSlabOff += (n + 7) & ~7;
  return b;
}

// libuv's uv_strerror() texts for the codes uvException messages can carry here.
const UV_MESSAGE: Partial<Record<ErrnoCode, string>> = {
  EADDRINUSE: 'address already in use', EADDRNOTAVAIL: 'address not available',
  EAFNOSUPPORT: 'address family not supported', EACCES: 'permission denied', EINVAL: 'invalid argument',
  ENETUNREACH: 'network is unreachable', EHOSTUNREACH: 'host is unreachable', EAGAIN: 'resource temporarily unavailable',
};

/** An address as Node reports it: IPv4, or IPv4-mapped IPv6 on a dual-stack ("::") server. */
function nameOf(addr: number, port: number, mapped: boolean): AddressInfo {
  return mapped ? { address: `::ffff:${formatIpv4(addr)}`, family: 'IPv6', port } : { address: formatIpv4(addr), family: 'IPv4', port };
}

/** A connection's local (or remote) end as Node names it: IPv6, IPv4-mapped (dual-stack) or IPv4. */
function endName(t: TcpSocket, local: boolean, mapped: boolean): AddressInfo {
  const port = local ? t.localPort : t.remotePort;
  if (t.family === 6) return { address: formatIpv6(local ? t.localAddress6 : t.remoteAddress6), family: 'IPv6', port };
  return nameOf(local ? t.localAddress : t.remoteAddress, port, mapped || t.v4mapped);
}

const ANY6 = new Uint8Array(16);

/** `::` (or `::0`): IPv6's unspecified address, which Node binds dual-stack. */
function isUnspecified6(host: string): boolean {
  return host === '::' || host === '::0' || host === '0:0:0:0:0:0:0:0';
}

/** Node's UVExceptionWithHostPort: `listen EADDRINUSE: address already in use 0.0.0.0:8080`. */
function uvExceptionWithHostPort(code: ErrnoCode, syscall: string, address: string, port: number): NodeJS.ErrnoException & { address: string; port?: number } {
  const details = port > 0 ? `${address}:${port}` : address;
  const e = new Error(`${syscall} ${code}: ${UV_MESSAGE[code] ?? code} ${details}`) as NodeJS.ErrnoException & { address: string; port?: number };
  e.code = code;
  e.errno = -Errno[code];
  e.syscall = syscall;
  e.address = address;
  if (port) e.port = port;
  return e;
}

/** The engine's TcpError code as an errno name (unknown codes are engine bugs: EINVAL). */
function tcpCode(err: unknown): ErrnoCode {
  const code = (err as TcpError | undefined)?.code;
  if (typeof code === 'string' && code in Errno) return code as ErrnoCode;
  if (err instanceof Error && !(typeof code === 'string')) throw err;
  return 'EINVAL';
}

/** Node's normalizeArgs for connect()/listen(): [options, cb]. */
function normalizeArgs(args: unknown[]): [Record<string, unknown>, ((...a: unknown[]) => void) | null] {
  if (args.length === 0) return [{}, null];
  const arg0 = args[0];
  let options: Record<string, unknown> = {};
  if (typeof arg0 === 'object' && arg0 !== null) {
    options = arg0 as Record<string, unknown>;
  } else if (isPipeName(arg0)) {
    options['path'] = arg0;
  } else {
    options['port'] = arg0;
    if (args.length > 1 && typeof args[1] === 'string') options['host'] = args[1];
  }
  const cb = args[args.length - 1];
  return [options, typeof cb === 'function' ? cb as (...a: unknown[]) => void : null];
}

function toNumber(x: unknown): number | false { const n = Number(x); return n >= 0 ? n : false; }
function isPipeName(s: unknown): boolean { return typeof s === 'string' && toNumber(s) === false; }

function notSupported(what: string): Error {
  return codedError(Error, 'ERR_TSTACK_NOT_SUPPORTED', `tstack/net: ${what} is not supported (a tstack socket is TCP over the user-space stack; there are no descriptors or Unix domain sockets)`);
}

// ---- Socket ------------------------------------------------------------------------------

export class Socket extends Duplex {
  connecting = false;
  /** The net.Server that accepted this socket (Node's `server`/`_server`). */
  server: Server | null = null;
  _server: Server | null = null;
  /** setTimeout()'s value (Node sets it as a plain property). */
  timeout = 0;

  #stackOpt: StackOption;
  #ctx: StackContext | null = null;
  #tcp: TcpSocket | null = null;
  /** Node's `_handle !== null`: from connect() (or accept) until destroy. */
  #hasHandle = false;
  /** Node's handle.reading: pull bytes out of the engine as they arrive. */
  #reading = false;
  /** The engine has reported the peer's FIN; EOF is pushed once its buffer is drained. */
  #eof = false;
  #eofPushed = false;
  /**
   * A write the send buffer could only partly take: the rest (`data`, then the later chunks of a
   * _writev in `more`, never concatenated) and the callback wait for onDrain.
   */
  #pending: { data: Uint8Array; more: Uint8Array[] | null; cb: (err?: Error | null) => void } | null = null;
  /** Data handed to _write before the connection was up (Node's _pendingData). */
  #pendingData: Uint8Array | null = null;
  /** TCP Fast Open requested (connect option `tfo`), and the write held before the engine socket existed. */
  #tfo = false;
  #tfoHeld: (() => void) | null = null;
  #bytesRead = 0;
  #bytesDispatched = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #refd = true;
  #holding = false;
  #resetAndClosing = false;
  #noDelay: boolean;
  #notSentLowat = 0;
  #keepAlive: boolean;
  /** Seconds, as Node keeps it. */
  #keepAliveInitialDelay: number;
  #peer: AddressInfo | null = null;
  #sock: AddressInfo | null = null;
  /** The address and port being connected to (for connect errors). */
  #connectAddress = '';
  #connectPort = 0;
  /** Bumped on each connect() so a stale lookup does not connect a re-used socket. */
  #attempt = 0;

  constructor(options: SocketConstructorOpts = {}) {
    const o = options as InternalOpts;
    if (typeof o.fd === 'number') throw notSupported('new Socket({ fd })');
    const hwm = o.highWaterMark;
    super({
      allowHalfOpen: Boolean(o.allowHalfOpen),
      // Node's net.Socket emits 'close' itself, when the handle is closed.
      emitClose: false,
      autoDestroy: true,
      decodeStrings: false,
      ...(hwm !== undefined && { highWaterMark: hwm }),
      ...(o.readableHighWaterMark !== undefined && { readableHighWaterMark: o.readableHighWaterMark }),
      ...(o.writableHighWaterMark !== undefined && { writableHighWaterMark: o.writableHighWaterMark }),
    });
    this.#stackOpt = o.stack !== undefined ? { stack: o.stack } : {};
    this.#noDelay = Boolean(o.noDelay);
    this.#keepAlive = Boolean(o.keepAlive);
    this.#keepAliveInitialDelay = ~~((o.keepAliveInitialDelay ?? 0) / 1000);
    this.on('end', onReadableStreamEnd);
    const onread = (o as { onread?: OnRead }).onread;
    if (onread !== null && typeof onread === 'object' && (onread.buffer instanceof Uint8Array || typeof onread.buffer === 'function') &&
        typeof onread.callback === 'function') {
      this.#onread = onread;
    }
    if (o.signal) addAbortSignal(o.signal, this);

    const h = o[kHandle];
    if (h) {
      this.#ctx = h.ctx;
      this.#mapped = h.mapped;
      this.#attach(h.tcp);
      this.#updateRef();
      if (o.readable !== false) {
        if (h.pauseOnCreate) {
          this.pause();
        } else {
          this.read(0);
        }
      }
    }
  }

  // ---- connect ---------------------------------------------------------------------------

  connect(options: TcpSocketConnectOpts, connectionListener?: () => void): this;
  connect(port: number, host: string, connectionListener?: () => void): this;
  connect(port: number, connectionListener?: () => void): this;
  connect(path: string, connectionListener?: () => void): this;
  connect(...args: unknown[]): this {
    const [options, cb] = normalizeArgs(args);
    if (options['path'] != null) throw notSupported('connect({ path }) (IPC)');
    if (options['port'] === undefined) {
      throw codedError(TypeError, 'ERR_MISSING_ARGS', 'The "options" or "port" or "path" argument must be specified');
    }
    if (cb !== null) this.once('connect', cb);
    if (this.write !== Socket.prototype.write) this.write = Socket.prototype.write;
    if (this.destroyed) {
      this.#peer = this.#sock = null;
      this.#eof = this.#eofPushed = this.#eofDue = false;
      (this as unknown as { _undestroy(): void })._undestroy();
    }
    // Resolving the stack is connect()'s "create a handle": a missing default stack is a
    // configuration error the program should hear about at once.
    this.#ctx ??= resolveStack(this.#stackOpt);
    this.#unrefTimer();
    this.#hasHandle = true;
    this.connecting = true;
    // As Node: an argument error throws from here with the socket left connecting but idle (no
    // request was started), so it does not keep the process alive.
    this.#tfo = (options as { tfo?: unknown }).tfo === true;
    this.#lookupAndConnect(options as unknown as TcpSocketConnectOpts);
    this.#updateRef();
    return this;
  }

  #lookupAndConnect(options: TcpSocketConnectOpts): void {
    const { localAddress, localPort } = options;
    const host = options.host || 'localhost';
    let port: unknown = options.port;
    if (localAddress && !isIP(localAddress)) {
      throw codedError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${localAddress}`);
    }
    if (localPort !== undefined && localPort !== null && typeof localPort !== 'number') {
      throw invalidArgType('options.localPort', ['number'], localPort);
    }
    if (typeof port !== 'undefined') {
      if (typeof port !== 'number' && typeof port !== 'string') throw invalidArgType('options.port', ['number', 'string'], port);
      port = validatePort(port);
    }
    const p = (port as number) | 0;
    const attempt = ++this.#attempt;
    const family = isIP(host);
    if (family) {
      process.nextTick(() => {
        if (this.connecting && attempt === this.#attempt) this.#internalConnect(host, p, family, localAddress, localPort);
      });
      return;
    }
    if (options.lookup != null && typeof options.lookup !== 'function') throw invalidArgType('options.lookup', ['function'], options.lookup);
    // A records unless the caller asks for IPv6 (family 6): the stack's names are mostly IPv4.
    const dnsopts = { family: options.family === 6 ? 6 : 4, hints: options.hints ?? 0 };
    const lookup = options.lookup ?? (dnsLookup as unknown as LookupFunction);
    lookup(host, dnsopts, (err, ip, addressType) => {
      this.emit('lookup', err, ip, addressType, host);
      if (!this.connecting || attempt !== this.#attempt) return;
      if (err) {
        process.nextTick(() => this.destroy(err));
      } else if (!isIP(ip)) {
        const e = codedError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${ip}`);
        process.nextTick(() => this.destroy(e));
      } else if (addressType !== 4 && addressType !== 6) {
        const e = codedError(TypeError, 'ERR_INVALID_ADDRESS_FAMILY', `Invalid address family: ${addressType} ${options.host}:${options.port}`);
        process.nextTick(() => this.destroy(e));
      } else {
        this.#unrefTimer();
        this.#internalConnect(ip, p, addressType, localAddress, localPort);
      }
    });
  }

  #internalConnect(address: string, port: number, family: number, localAddress?: string, localPort?: number): void {
    this.#connectAddress = address;
    this.#connectPort = port;
    if (family === 6 || (localAddress !== undefined && isIPv6(localAddress))) {
      this.#internalConnect6(address, port, family, localAddress, localPort);
      return;
    }
    const raddr = parseIpv4(address)!;
    const stack = this.#ctx!.stack;
    let laddr = 0;
    if (localAddress) {
      laddr = parseIpv4(localAddress)!;
      if (laddr !== 0 && !stack.isLocalAddress(laddr)) {
        this.destroy(exceptionWithHostPort('EADDRNOTAVAIL', 'bind', localAddress, localPort));
        return;
      }
    }
    // 127/8 never leaves a host (RFC 1122 §3.2.1.3): on a stack without lo0 (a bare Stack; every
    // instance has one) a loopback destination is unreachable.
    if (isIpv4Loopback(raddr) && !stack.isLocalAddress(raddr)) {
      this.destroy(exceptionWithHostPort('ENETUNREACH', 'connect', address, port));
      return;
    }
    // Linux refuses to bind a port a listening socket holds on that address (or on any), even
    // with SO_REUSEADDR (which libuv sets): Node reports it from bind(), before connecting.
    if (localPort && stack.tcp.findListener(laddr !== 0 ? laddr : stack.sourceAddress(raddr), localPort) !== null) {
      this.destroy(exceptionWithHostPort('EADDRINUSE', 'bind', localAddress || '0.0.0.0', localPort));
      return;
    }
    let tcp: TcpSocket;
    try {
      tcp = stack.tcp.connect({ raddr, rport: port, ...(laddr && { laddr }), ...(localPort && { lport: localPort }), noDelay: this.#noDelay,
        ...(this.#tfo && { fastOpen: true }) });
    } catch (e) {
      this.destroy(exceptionWithHostPort(tcpCode(e), 'connect', address, port));
      return;
    }
    this.#attach(tcp);
    // TCP Fast Open: the SYN waits for the end of this run-loop iteration; a write made before
    // now goes to the engine at once so that it rides in the SYN.
    if (this.#tfo && this.#tfoHeld !== null) this.#tfoHeld();
  }

  /** connect() to an IPv6 address (or from one): ::ffff:a.b.c.d goes over IPv4, named as IPv6. */
  #internalConnect6(address: string, port: number, family: number, localAddress?: string, localPort?: number): void {
    const stack = this.#ctx!.stack;
    const raddr6 = family === 6 ? parseIpv6(address) : parseIpv6(`::ffff:${address}`);
    const laddr6 = localAddress ? (isIPv6(localAddress) ? parseIpv6(localAddress) : parseIpv6(`::ffff:${localAddress}`)) : null;
    if (!raddr6 || (localAddress && !laddr6)) { this.destroy(exceptionWithHostPort('EINVAL', 'connect', address, port)); return; }
    if (laddr6 && !isUnspecified6(localAddress!) && !stack.isLocalAddress6(laddr6) && !(localAddress!.startsWith('::ffff:') || isIPv4(localAddress!))) {
      this.destroy(exceptionWithHostPort('EADDRNOTAVAIL', 'bind', localAddress!, localPort));
      return;
    }
    let tcp: TcpSocket;
    try {
      tcp = stack.tcp.connect({ raddr: 0, raddr6, rport: port, ...(laddr6 && { laddr6 }), ...(localPort && { lport: localPort }), noDelay: this.#noDelay });
    } catch (e) {
      this.destroy(exceptionWithHostPort(tcpCode(e), 'connect', address, port));
      return;
    }
    this.#attach(tcp);
  }

  /** Takes the engine socket as this Socket's handle. */
  #attach(tcp: TcpSocket): void {
    this.#tcp = tcp;
    this.#hasHandle = true;
    // Reading starts with the stream's first _read() (Node: read(0) after connect or accept).
    this.#reading = false;
    tcp.onConnect = this.#onConnect;
    tcp.onData = this.#onData;
    tcp.onEnd = this.#onEnd;
    tcp.onDrain = this.#onDrain;
    if (this.#notSentLowat > 0) tcp.setNotSentLowat(this.#notSentLowat);
    tcp.onClose = this.#onClose;
    if (!this.connecting) this.#cacheNames();
  }

  /**
   * Accepted by a server listening on "any" the way Node does by default (`::`, dual-stack):
   * Node names IPv4 ends as IPv4-mapped IPv6 addresses there (::ffff:198.18.0.1, family IPv6).
   */
  #mapped = false;

  #cacheNames(): void {
    const t = this.#tcp!;
    this.#peer = endName(t, false, this.#mapped);
    this.#sock = endName(t, true, this.#mapped);
  }

  /** Node's afterConnect(). */
  readonly #onConnect = (): void => {
    if (this.destroyed) return;
    this.connecting = false;
    this.#cacheNames();
    this.#unrefTimer();
    const tcp = this.#tcp!;
    if (this.#noDelay) tcp.setNoDelay(true);
    if (this.#keepAlive) this.#engineKeepAlive(true);
    this.emit('connect');
    this.emit('ready');
    // Start the first read (or get an immediate EOF).
    if (!this.isPaused()) this.read(0);
    this.#updateRef();
  };

  // ---- reading ---------------------------------------------------------------------------

  readonly #onData = (): void => { if (this.#reading) this.#pull(); };

  readonly #onEnd = (): void => {
    this.#eof = true;
    if (this.#reading) this.#pull();
  };

  /** Moves readable bytes from the engine into the stream until it says stop (onStreamRead). */
  #pull(): void {
    for (;;) {
      const tcp = this.#tcp;
      if (tcp === null || this.destroyed) return;
      const avail = tcp.readableLength;
      if (avail === 0) {
        if (this.#eof && !this.#eofPushed) {
          // libuv stops reading after a short read and sees the EOF on its next read, a loop
          // iteration later: the handlers of the data that came with the FIN (an HTTP server
          // answering, from a timer or a promise, a request whose client half-closed at once)
          // run before 'end'. So the EOF goes out a loop iteration later (an immediate, then a
          // timer: after the handlers' own immediates and zero timers, whatever phase the
          // engine's event came from), never with the engine's event.
          if (!this.#eofDue) {
            this.#eofTimer ??= setImmediate(this.#eofNextTurn);
            return;
          }
          this.#eofPushed = true;
          this.#reading = false;
          // libuv asks for a buffer before the read that returns the EOF too.
          if (this.#onread !== null && typeof this.#onread.buffer === 'function') this.#onread.buffer();
          this.#updateRef();
          this.push(null);
          this.read(0);
        }
        return;
      }
      const onread = this.#onread;
      if (onread !== null) {
        // The `onread` option: bytes go into the program's buffer and to its callback, never
        // to 'data'; a callback returning false stops reading until resume() or read().
        const buf = typeof onread.buffer === 'function' ? onread.buffer() : onread.buffer;
        const n = tcp.readInto(buf, 0, buf.length);
        this.#bytesRead += n;
        this.#unrefTimer();
        if (onread.callback.call(this, n, buf) === false) {
          this.#reading = false;
          this.#updateRef();
        }
        if (!this.#reading) return; // the callback returned false or called pause()
        continue;
      }
      // Straight into a Buffer from a shared slab (readBuffer).
      const chunk = readBuffer(avail < READ_CHUNK ? avail : READ_CHUNK);
      const n = tcp.readInto(chunk, 0, chunk.length);
      this.#bytesRead += n;
      this.#unrefTimer();
      if (!this.push(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        // The stream's buffer is full: leave the rest in the engine, whose window closes.
        this.#reading = false;
        this.#updateRef();
        return;
      }
    }
  }

  #eofTimer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | null = null;
  #onread: OnRead | null = null;

  readonly #eofNextTurn = (): void => { this.#eofTimer = setTimeout(this.#deferredEof, 0); };

  /** The EOF's timer has fired: it may be pushed. */
  #eofDue = false;

  readonly #deferredEof = (): void => {
    this.#eofTimer = null;
    this.#eofDue = true;
    if (this.#reading) this.#pull();
  };

  override _read(_size: number): void {
    if (this.connecting || this.#tcp === null) {
      this.once('connect', () => this._read(_size));
    } else if (!this.#reading) {
      this.#reading = true;
      this.#updateRef();
      this.#pull();
    }
  }

  // ---- writing ---------------------------------------------------------------------------

  override _write(chunk: Buffer | string, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.#writeGeneric(data, cb);
  }

  override _writev(chunks: { chunk: Buffer | string; encoding: BufferEncoding }[], cb: (err?: Error | null) => void): void {
    const bufs = chunks.map((c) => typeof c.chunk === 'string' ? Buffer.from(c.chunk, c.encoding) : c.chunk);
    const tcp = this.#tcp;
    if (bufs.length === 1 || this.connecting || tcp === null) { this.#writeGeneric(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs), cb); return; }
    // Each chunk goes straight into the send buffer (one copy, not a concatenation first), all
    // but the last with MSG_MORE so that they leave as full segments, as a corked socket's would.
    this.#pendingData = null;
    this.#unrefTimer();
    const last = bufs.length - 1;
    for (let i = 0; i <= last; i++) {
      const b = bufs[i]!;
      this.#bytesDispatched += b.length;
      let n: number;
      try {
        n = tcp.write(b, i < last);
      } catch (e) {
        cb(errnoException(tcpCode(e), 'write'));
        return;
      }
      if (n < b.length) {
        // The send buffer is full: the rest waits for room ('drain'), as one pending write.
        for (let j = i + 1; j <= last; j++) this.#bytesDispatched += bufs[j]!.length;
        if (i < last) tcp.write(new Uint8Array(0)); // ends the MSG_MORE hold
        this.#pending = { data: b.subarray(n), more: i < last ? bufs.slice(i + 1) : null, cb };
        this.#updateRef();
        return;
      }
    }
    if (tcp.notSentLowat === 0 || tcp.writable) { cb(); return; }
    tcp.wantDrain = true;
    this.#pending = { data: new Uint8Array(0), more: null, cb };
    this.#updateRef();
  }

  #writeGeneric(data: Uint8Array, cb: (err?: Error | null) => void): void {
    // With TCP Fast Open the engine takes writes while connecting (they may ride in the SYN).
    if (this.connecting && !(this.#tfo && this.#tcp !== null)) {
      // As Node: hold the data until 'connect'; a close before that fails the write.
      this.#pendingData = data;
      const onClose = () => cb(codedError(Error, 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'Socket closed before the connection was established'));
      const go = () => {
        this.off('close', onClose);
        this.off('connect', go);
        this.#tfoHeld = null;
        this.#writeGeneric(data, cb);
      };
      this.once('connect', go);
      this.once('close', onClose);
      if (this.#tfo) this.#tfoHeld = go;
      return;
    }
    this.#pendingData = null;
    const tcp = this.#tcp;
    if (tcp === null) { cb(codedError(Error, 'ERR_SOCKET_CLOSED', 'Socket is closed')); return; }
    this.#unrefTimer();
    this.#bytesDispatched += data.length;
    let n: number;
    try {
      n = tcp.write(data);
    } catch (e) {
      cb(errnoException(tcpCode(e), 'write'));
      return;
    }
    // With TCP_NOTSENT_LOWAT, the write completes (and 'drain' follows) only once the unsent
    // bytes are below the mark, as a kernel socket's writability would have it.
    if (n === data.length && (tcp.notSentLowat === 0 || tcp.writable)) { cb(); return; }
    if (n === data.length) tcp.wantDrain = true;
    this.#pending = { data: data.subarray(n), more: null, cb };
    this.#updateRef();
  }

  /**
   * tstack extension (Linux's TCP_NOTSENT_LOWAT, which Node has no call for): writes complete,
   * and 'drain' comes, only while fewer than `bytes` are queued unsent (0 = no limit).
   */
  setNotSentLowat(bytes: number): this {
    this.#notSentLowat = bytes > 0 ? bytes : 0;
    this.#tcp?.setNotSentLowat(this.#notSentLowat);
    return this;
  }

  readonly #onDrain = (): void => {
    const p = this.#pending;
    const tcp = this.#tcp;
    if (p === null || tcp === null) return;
    let n: number;
    try {
      for (;;) {
        n = p.data.length === 0 ? 0 : tcp.write(p.data);
        if (n < p.data.length || p.more === null) break;
        // Chunk by chunk into the send buffer, as _writev does.
        p.data = p.more.shift()!;
        if (p.more.length === 0) p.more = null;
      }
    } catch (e) {
      this.#pending = null;
      this.#updateRef();
      p.cb(errnoException(tcpCode(e), 'write'));
      return;
    }
    this.#unrefTimer();
    if (n < p.data.length) { p.data = p.data.subarray(n); return; }
    this.#pending = null;
    this.#updateRef();
    p.cb();
  };

  override _final(cb: (err?: Error | null) => void): void {
    if (this.pending) {
      this.once('connect', () => this._final(cb));
      return;
    }
    const tcp = this.#tcp;
    if (tcp === null) { cb(); return; }
    // The FIN follows the queued data; like uv_shutdown the request completes once it is
    // handed over, not when the peer acknowledges it.
    tcp.shutdown();
    cb();
  }

  // ---- closing ---------------------------------------------------------------------------

  readonly #onClose = (err?: TcpError): void => {
    if (this.destroyed) return;
    if (err) {
      // Refused or timed out while connecting: Node reports the connect() that failed.
      if (this.connecting) this.destroy(exceptionWithHostPort(tcpCode(err), 'connect', this.#connectAddress, this.#connectPort));
      else this.destroy(errnoException(tcpCode(err), 'read'));
      return;
    }
    // A clean end of the connection (both FINs): whatever is still buffered in the engine stays
    // readable; the stream destroys itself once both of its sides are done (autoDestroy).
    if (this.#eof && this.#reading) this.#pull();
  };

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.connecting = false;
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
    if (this.#eofTimer !== null) {
      clearTimeout(this.#eofTimer as ReturnType<typeof setTimeout>);
      clearImmediate(this.#eofTimer as ReturnType<typeof setImmediate>);
      this.#eofTimer = null;
    }
    const tcp = this.#tcp;
    const p = this.#pending;
    this.#pending = null;
    if (this.#hasHandle) {
      const isException = err ? true : false;
      if (tcp !== null) {
        tcp.onConnect = tcp.onData = tcp.onEnd = tcp.onDrain = null;
        tcp.onClose = null;
        if (this.#resetAndClosing) tcp.abort();
        else tcp.close();
      }
      this.#resetAndClosing = false;
      this.#tcp = null;
      this.#hasHandle = false;
      this.#reading = false;
      this.#updateRef();
      cb(err);
      // Node emits 'close' from the handle's close callback: after 'error', a turn later.
      setImmediate(() => this.emit('close', isException));
    } else {
      this.#updateRef();
      cb(err);
      process.nextTick(() => this.emit('close'));
    }
    p?.cb(err ?? codedError(Error, 'ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed'));
    const server = this._server;
    if (server) {
      server._connections--;
      server._emitCloseIfDrained();
    }
  }

  /**
   * Node wraps a stream that is not a kernel net.Socket in a JSStreamSocket to run TLS (or
   * HTTP/2) over it, and from then on the wrapper owns the stream's lifetime: it ends it
   * (doShutdown) and destroys it (doClose) when the TLS socket does. Over a kernel socket, the
   * TLS socket's own allowHalfOpen decides what the peer's FIN does; if this socket ended and
   * closed itself on that FIN, the TLS socket would close with its data unread (a paused
   * reader loses the peer's last bytes and 'end'), and a TLS write in between would fail with
   * "This socket has been ended by the other party". So a wrapped socket is half-open: the
   * wrapper recognised by its constructor, which pauses the stream before it listens to it.
   * (A tick later: TLSSocket's constructor copies this socket's allowHalfOpen right after.)
   */
  /** With `onread`, pause() stops reading from the stack (Node's readStop), resume() restarts it. */
  override resume(): this {
    if (this.#onread !== null && !this.connecting && this.#tcp !== null && !this.#reading) {
      this.#reading = true;
      this.#updateRef();
      queueMicrotask(() => { if (this.#reading) this.#pull(); });
    }
    return super.resume();
  }

  override pause(): this {
    if (this.#onread !== null && !this.connecting && this.#reading) {
      this.#reading = false;
      this.#updateRef();
    }
    if (!this.allowHalfOpen && this.listenerCount('data') === 0 && new Error().stack?.includes('node:internal/js_stream_socket')) {
      process.nextTick(() => { this.allowHalfOpen = true; });
    }
    return super.pause();
  }

  /** Ends the writable side, then destroys the socket once the data has been handed over. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Closes the connection with a RST (SO_LINGER 0), then destroys the socket. */
  resetAndDestroy(): this {
    if (this.#hasHandle) {
      if (this.connecting) this.once('connect', () => this.#reset());
      else this.#reset();
    } else {
      this.destroy(codedError(Error, 'ERR_SOCKET_CLOSED', 'Socket is closed'));
    }
    return this;
  }

  #reset(): void {
    this.#resetAndClosing = true;
    this.destroy();
  }

  // ---- options ---------------------------------------------------------------------------

  setTimeout(msecs: number, callback?: () => void): this {
    if (typeof msecs !== 'number') throw invalidArgType('msecs', ['number'], msecs);
    if (!(msecs >= 0 && Number.isFinite(msecs))) {
      throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "msecs" is out of range. It must be a non-negative finite number. Received ${msecs}`);
    }
    this.timeout = msecs;
    if (this.destroyed) return this;
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
    if (msecs === 0) {
      if (callback !== undefined) {
        if (typeof callback !== 'function') throw invalidArgType('callback', ['Function'], callback);
        this.removeListener('timeout', callback);
      }
    } else {
      // Unref'd like Node's socket timers: an idle timer never keeps the process alive.
      this.#timer = setTimeout(this.#onTimeout, msecs);
      this.#timer.unref();
      if (callback !== undefined) {
        if (typeof callback !== 'function') throw invalidArgType('callback', ['Function'], callback);
        this.once('timeout', callback);
      }
    }
    return this;
  }

  readonly #onTimeout = (): void => { this.emit('timeout'); };

  /** Restarts the idle timer: activity (connect, data, write). */
  #unrefTimer(): void { this.#timer?.refresh(); }

  setNoDelay(noDelay?: boolean): this {
    const on = noDelay === undefined ? true : !!noDelay;
    if (this.#tcp === null || this.connecting) { this.#noDelay = on; return this; }
    if (on !== this.#noDelay) {
      this.#noDelay = on;
      this.#tcp.setNoDelay(on);
    }
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    const on = Boolean(enable);
    const delay = ~~((initialDelay ?? 0) / 1000);
    if (this.#tcp === null || this.connecting) {
      this.#keepAlive = on;
      this.#keepAliveInitialDelay = delay;
      return this;
    }
    if (on !== this.#keepAlive || (on && delay !== this.#keepAliveInitialDelay)) {
      this.#keepAlive = on;
      this.#keepAliveInitialDelay = delay;
      this.#engineKeepAlive(on);
    }
    return this;
  }

  #engineKeepAlive(on: boolean): void {
    // Whole seconds, like setsockopt(TCP_KEEPIDLE); 0 keeps the stack's default idle time.
    const d = this.#keepAliveInitialDelay;
    this.#tcp!.setKeepAlive(on, d > 0 ? d * 1000 : undefined);
  }

  // ---- addresses and state ---------------------------------------------------------------

  /** The local address while the socket is open ({} before it connects and after it closes, as Node). */
  address(): AddressInfo | Record<string, never> {
    const a = this.#sockname();
    return a !== null ? { ...a } : {};
  }

  #sockname(): AddressInfo | null { return this.#hasHandle && !this.connecting ? this.#sock : null; }

  // The peer's name is remembered after close (Node keeps it once it has been asked for).
  get remoteAddress(): string | undefined { return this.#peer?.address; }
  get remoteFamily(): string | undefined { return this.#peer?.family; }
  get remotePort(): number | undefined { return this.#peer?.port; }
  get localAddress(): string | undefined { return this.#sockname()?.address; }
  get localPort(): number | undefined { return this.#sockname()?.port; }
  get localFamily(): string | undefined { return this.#sockname()?.family; }

  get pending(): boolean { return !this.#hasHandle || this.connecting; }

  /** Node's legacy name for `connecting`. */
  get _connecting(): boolean { return this.connecting; }

  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable && !this.writable) return 'readOnly';
    if (!this.readable && this.writable) return 'writeOnly';
    return 'closed';
  }

  get bytesRead(): number { return this.#bytesRead; }

  /** Bytes handed to the stack plus those still queued in the stream (as Node counts them). */
  get bytesWritten(): number | undefined {
    let bytes = this.#bytesDispatched;
    const buffered = (this as unknown as { writableBuffer?: { chunk: Buffer | string; encoding: BufferEncoding }[] }).writableBuffer;
    if (!buffered) return undefined;
    for (const el of buffered) bytes += typeof el.chunk === 'string' ? Buffer.byteLength(el.chunk, el.encoding) : el.chunk.length;
    if (this.#pendingData) bytes += this.#pendingData.length;
    return bytes;
  }

  /** Bytes waiting in the stream's writable buffer (Node's bufferSize, deprecated): from connect() on, as Node has a handle then. */
  get bufferSize(): number | undefined { return this.#hasHandle ? this.writableLength : undefined; }

  // ---- process lifetime ------------------------------------------------------------------

  ref(): this {
    if (!this.#hasHandle) { this.once('connect', () => this.ref()); return this; }
    this.#refd = true;
    this.#updateRef();
    return this;
  }

  unref(): this {
    if (!this.#hasHandle) { this.once('connect', () => this.unref()); return this; }
    this.#refd = false;
    this.#updateRef();
    return this;
  }

  /**
   * Hold a handle count on the stack exactly while libuv's TCP handle would keep the loop
   * alive: a connect or write request in flight (ref'd or not, as libuv's requests), or the
   * handle reading and ref'd. A socket that is not reading (paused on connect, its buffer full,
   * or past the peer's FIN) and has nothing to send lets the process exit, as Node's does.
   */
  #updateRef(): void {
    const want = this.#ctx !== null && this.#hasHandle &&
      (this.connecting || this.#pending !== null || (this.#refd && this.#reading));
    if (want === this.#holding) return;
    this.#holding = want;
    if (want) this.#ctx!.acquire();
    else this.#ctx!.release();
  }

  /** @internal the stack this socket lives on (null before connect()). */
  get _stackContext(): StackContext | null { return this.#ctx; }
}

/** Node's onReadableStreamEnd: without allowHalfOpen, the peer's FIN ends our writing too. */
function onReadableStreamEnd(this: Socket): void {
  if (!this.allowHalfOpen) this.write = writeAfterFIN as Socket['write'];
}

function writeAfterFIN(this: Socket, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  if (!this.writableEnded) return (Duplex.prototype.write as (...a: unknown[]) => boolean).call(this, chunk, encoding, cb);
  if (typeof encoding === 'function') { cb = encoding; encoding = null; }
  const er = new Error('This socket has been ended by the other party') as NodeJS.ErrnoException;
  er.code = 'EPIPE';
  if (typeof cb === 'function') process.nextTick(cb as (e: Error) => void, er);
  this.destroy(er);
  return false;
}

// ---- Server ------------------------------------------------------------------------------

export class Server extends EventEmitter {
  readonly allowHalfOpen: boolean;
  readonly pauseOnConnect: boolean;
  readonly noDelay: boolean;
  readonly keepAlive: boolean;
  /** Seconds, as Node keeps it. */
  readonly keepAliveInitialDelay: number;
  readonly highWaterMark: number | undefined;
  /** New connections beyond this many are closed at once ('drop'). */
  maxConnections: number | undefined = undefined;
  /** Open connections accepted by this server (Node's field of the same name). */
  _connections = 0;

  #stackOpt: StackOption;
  #ctx: StackContext | null = null;
  #listener: TcpListener | null = null;
  #address: AddressInfo | null = null;
  /** Listening as Node's default `::` (see listen). */
  #dualStack = false;
  /** TCP Fast Open queue length (listen option `tfo`; 0: none). */
  #tfoQueue = 0;
  #refd = true;
  #holding = false;

  constructor(options?: ServerOpts | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void) {
    super();
    let opts: ServerOpts;
    if (typeof options === 'function') {
      connectionListener = options;
      opts = {};
    } else if (options == null || typeof options === 'object') {
      opts = options ?? {};
    } else {
      throw invalidArgType('options', ['Object'], options);
    }
    if (typeof connectionListener === 'function') this.on('connection', connectionListener);
    this.allowHalfOpen = opts.allowHalfOpen || false;
    this.pauseOnConnect = !!opts.pauseOnConnect;
    this.noDelay = Boolean(opts.noDelay);
    this.keepAlive = Boolean(opts.keepAlive);
    this.keepAliveInitialDelay = ~~((opts.keepAliveInitialDelay ?? 0) / 1000);
    this.highWaterMark = opts.highWaterMark;
    this.#stackOpt = opts.stack !== undefined ? { stack: opts.stack } : {};
  }

  listen(port?: number, hostname?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, hostname?: string, listeningListener?: () => void): this;
  listen(port?: number, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, listeningListener?: () => void): this;
  listen(options: ListenOptions, listeningListener?: () => void): this;
  listen(path: string, listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    const [normalized, cb] = normalizeArgs(args);
    const options = normalized as ListenOptions;
    if (this.#listener !== null) {
      throw codedError(Error, 'ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    }
    if (cb !== null) this.once('listening', cb);
    const backlogFromArgs = toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]);
    if (options.handle !== undefined || (options as { _handle?: unknown })._handle !== undefined) throw notSupported('listen(handle)');
    if (typeof options.fd === 'number' && options.fd >= 0) throw notSupported('listen({ fd })');
    if (options.signal !== undefined) this.#addAbortSignal(options.signal);

    if (args.length === 0 || typeof args[0] === 'function' || (typeof options.port === 'undefined' && 'port' in options) || options.port === null) {
      options.port = 0;
    }
    if (typeof options.port === 'number' || typeof options.port === 'string') {
      const port = validatePort(options.port, 'options.port');
      const backlog = options.backlog || backlogFromArgs || undefined;
      this.#ctx ??= resolveStack(this.#stackOpt);
      // No host: Node binds `::` dual-stack (IPv4 clients included, named ::ffff:a.b.c.d) unless ipv6Only.
      this.#dualStack = false;
      const tfo = options.tfo;
      this.#tfoQueue = tfo === true ? (backlog ?? 511) : typeof tfo === 'number' && tfo > 0 ? Math.trunc(tfo) : 0;
      if (options.host && !isUnspecified6(options.host)) this.#lookupAndListen(port, options.host, backlog, !!options.ipv6Only);
      else this.#listen2('::', port, backlog, !!options.ipv6Only);
      return this;
    }
    if (options.path) throw notSupported('listen(path) (Unix domain sockets / pipes)');
    if (!('port' in options) && !('path' in options)) {
      throw codedError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' must have the property "port" or "path". Received ${inspect(options)}`);
    }
    throw codedError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'options' is invalid. Received ${inspect(options)}`);
  }

  #addAbortSignal(signal: AbortSignal): void {
    if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) throw invalidArgType('options.signal', ['AbortSignal'], signal);
    const onAborted = () => { this.close(); };
    if (signal.aborted) process.nextTick(onAborted);
    else {
      signal.addEventListener('abort', onAborted);
      this.once('close', () => signal.removeEventListener('abort', onAborted));
    }
  }

  #lookupAndListen(port: number, host: string, backlog: number | undefined, ipv6Only = false): void {
    // A close() while the address is being resolved cancels the listen, as on Node.
    const gen = this.#closeGen;
    const done = (err: NodeJS.ErrnoException | null, ip: string) => {
      if (gen !== this.#closeGen) return;
      if (err) { this.emit('error', err); return; }
      this.#listen2(ip, port, backlog, ipv6Only);
    };
    if (isIPv4(host) || isIPv6(host)) process.nextTick(done, null, host);
    else dnsLookup(host, 4, (err, ip) => done(err, ip));
  }

  /** Node's setupListenHandle + the 'listening' event. */
  #listen2(address: string, port: number, backlog: number | undefined, ipv6Only = false): void {
    // IPv6 (`::` dual-stack unless ipv6Only, as Node binds it) or IPv4.
    const six = isIPv6(address);
    const addr6 = six ? (isUnspecified6(address) ? ANY6 : parseIpv6(address)) : null;
    const addr = six ? 0 : parseIpv4(address);
    let code: ErrnoCode | null = (six ? addr6 === null : addr === null) ? 'EINVAL' : null;
    if (code === null) {
      try {
        this.#listener = this.#ctx!.stack.tcp.listen({
          ...(six ? { addr6: addr6!, ipv6Only } : { addr: addr! }), port, ...(backlog !== undefined && { backlog }),
          ...(this.#tfoQueue > 0 && { fastOpen: this.#tfoQueue }),
        });
      } catch (e) {
        code = tcpCode(e);
      }
    }
    if (code !== null) {
      const ex = uvExceptionWithHostPort(code, 'listen', address, port);
      process.nextTick(() => this.emit('error', ex));
      return;
    }
    const l = this.#listener!;
    this.#dualStack = six && !ipv6Only && isUnspecified6(address);
    this.#address = six ? { address: formatIpv6(addr6!), family: 'IPv6', port: l.localPort } : { address, family: 'IPv4', port: l.localPort };
    l.onConnection = this.#onConnection;
    this.#updateRef();
    process.nextTick(() => { if (this.#listener === l) this.emit('listening'); });
  }

  /** Node's onconnection(). */
  readonly #onConnection = (tcp: TcpSocket): void => {
    if (this.maxConnections != null && this._connections >= this.maxConnections) {
      const local = endName(tcp, true, this.#dualStack);
      const remote = endName(tcp, false, this.#dualStack);
      this.emit('drop', {
        localAddress: local.address, localPort: local.port, localFamily: local.family,
        remoteAddress: remote.address, remotePort: remote.port, remoteFamily: remote.family,
      });
      tcp.close();
      return;
    }
    const opts: InternalOpts = {
      allowHalfOpen: this.allowHalfOpen,
      readable: true,
      writable: true,
      ...(this.highWaterMark !== undefined && { readableHighWaterMark: this.highWaterMark, writableHighWaterMark: this.highWaterMark }),
      [kHandle]: { tcp, ctx: this.#ctx!, pauseOnCreate: this.pauseOnConnect, mapped: this.#dualStack },
    };
    const socket = new Socket(opts);
    if (this.noDelay) socket.setNoDelay(true);
    if (this.keepAlive) socket.setKeepAlive(true, this.keepAliveInitialDelay * 1000);
    this._connections++;
    socket.server = this;
    socket._server = this;
    this.emit('connection', socket);
  };

  /** Stops accepting; 'close' (and the callback) follow once every connection has ended. */
  /** Bumped by close(): a listen still resolving its address is abandoned. */
  #closeGen = 0;

  close(cb?: (err?: Error) => void): this {
    this.#closeGen++;
    if (typeof cb === 'function') {
      if (this.#listener === null) {
        this.once('close', () => cb(codedError(Error, 'ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
      } else {
        this.once('close', cb);
      }
    }
    if (this.#listener !== null) {
      this.#listener.onConnection = null;
      this.#listener.close();
      this.#listener = null;
      this.#address = null;
      this.#updateRef();
    }
    this._emitCloseIfDrained();
    return this;
  }

  /** @internal 'close' once neither the listener nor any connection is left. */
  _emitCloseIfDrained(): void {
    if (this.#listener !== null || this._connections) return;
    process.nextTick(() => this.emit('close'));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#listener === null) return;
    await new Promise<void>((resolve, reject) => this.close((e) => e ? reject(e) : resolve()));
  }

  address(): AddressInfo | null {
    return this.#address !== null ? { ...this.#address } : null;
  }

  get listening(): boolean { return this.#listener !== null; }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(cb, null, this._connections);
    return this;
  }

  ref(): this { this.#refd = true; this.#updateRef(); return this; }
  unref(): this { this.#refd = false; this.#updateRef(); return this; }

  #updateRef(): void {
    const want = this.#listener !== null && this.#refd;
    if (want === this.#holding) return;
    this.#holding = want;
    if (want) this.#ctx!.acquire();
    else this.#ctx!.release();
  }
}

// ---- factories ---------------------------------------------------------------------------

export function createServer(connectionListener?: (socket: Socket) => void): Server;
export function createServer(options?: ServerOpts, connectionListener?: (socket: Socket) => void): Server;
export function createServer(options?: ServerOpts | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void): Server {
  return new Server(options, connectionListener);
}

export function connect(options: TcpSocketConnectOpts, connectionListener?: () => void): Socket;
export function connect(port: number, host?: string, connectionListener?: () => void): Socket;
export function connect(port: number, connectionListener?: () => void): Socket;
export function connect(...args: unknown[]): Socket {
  const [options, cb] = normalizeArgs(args);
  const socket = new Socket(options as SocketConstructorOpts);
  const timeout = options['timeout'];
  if (typeof timeout === 'number' && timeout) socket.setTimeout(timeout);
  return cb !== null ? socket.connect(options as unknown as TcpSocketConnectOpts, cb as () => void) : socket.connect(options as unknown as TcpSocketConnectOpts);
}

export const createConnection = connect;
/** Node's legacy alias. */
export const Stream = Socket;

export default { createServer, connect, createConnection, Server, Socket, Stream, isIP, isIPv4, isIPv6, BlockList, SocketAddress };
