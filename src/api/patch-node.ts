// Puts an unmodified program's node:net, node:dgram (and so node:http, https, express, fastify,
// undici, ws…) on a tstack instance by patching Node's own modules in place.
//
// Why patch prototypes instead of swapping classes: http.Server, https.Server and tls.Server
// inherit from the net.Server that existed when they were loaded, and http.Agent copied
// net.createConnection at load time. So `listen`, `close`, `address`… are patched on the
// original net.Server.prototype (a patched listen opens a tstack listener and emits
// 'connection' with tstack sockets: http's connection handling works on any Duplex), and the
// copies of createConnection are patched where they were copied to. `new net.Socket().connect()`
// routed to the stack gets a handle backed by the stack (stack-handle.ts), so the program's own
// net.Socket object runs there. A stack listener on any address or loopback is mirrored on the
// kernel's loopback (same-host reach): one server to the program (docs/compat.md).
//
// installPatches() is idempotent; uninstallPatches() restores every original (tests use it).
import net from 'node:net';
import http from 'node:http';
import tls from 'node:tls';
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { syncBuiltinESMExports } from 'node:module';
import * as tnet from './net.js';
import * as tdgram from './dgram.js';
import { resolveStack, type StackLike } from './runtime.js';
import { StackTcpHandle } from './stack-handle.js';
import { RoutingPolicy, type Placement } from './register-policy.js';

export interface PatchOptions {
  /** The stack the patched modules put sockets on (the default instance under `tstack run`). */
  stack: StackLike;
  policy: RoutingPolicy;
  /** Called with each placement decision (tests and `TSTACK_DEBUG`); not on the hot path. */
  onDecision?: (what: string, target: string, where: Placement) => void;
}

// Node's functions are called with whatever arguments the program passed.
type AnyFn = (...args: any[]) => any;
type Cb = (...args: unknown[]) => void;

interface Saved {
  netProto: Record<string, PropertyDescriptor | undefined>;
  getpeername: AnyFn;
  getsockname: AnyFn;
  netConnect: AnyFn;
  socketConnect: AnyFn;
  writeGeneric: AnyFn;
  netCreateConnection: AnyFn;
  agentCreateConnection: AnyFn;
  tlsConnect: AnyFn;
  dgramCreateSocket: AnyFn;
  dgramSocket: AnyFn;
}

let saved: Saved | null = null;
let active: PatchOptions | null = null;

/** The tstack server behind a patched net.Server (absent: the server is the kernel's, or idle). */
const kTstack = Symbol('tstack.server');

type OuterServer = net.Server & { [kTstack]?: ListenGroup; _unref?: boolean; _handle?: unknown; allowHalfOpen?: boolean; pauseOnConnect?: boolean; noDelay?: boolean; keepAlive?: boolean; keepAliveInitialDelay?: number; highWaterMark?: number };

function decide(what: string, target: string | undefined, where: Placement): Placement {
  active?.onDecision?.(what, target ?? '', where);
  return where;
}

// ---- net.Server --------------------------------------------------------------------------

/** Where a listen(...) call's arguments point: a Unix path, a handle or fd stays on the kernel. */
function listenTarget(args: unknown[]): { where: Placement; host: string | undefined } {
  const a0 = args[0];
  const policy = active!.policy;
  if (a0 !== null && typeof a0 === 'object') {
    const o = a0 as Record<string, unknown>;
    if (o['_handle'] !== undefined || o['handle'] !== undefined || (typeof o['fd'] === 'number' && o['fd'] >= 0) || o['path'] != null) {
      return { where: decide('listen', 'handle/path', 'kernel'), host: undefined };
    }
    const host = o['host'] as string | undefined;
    return { where: decide('listen', `${host || '*'}:${String(o['port'] ?? 0)}`, policy.listen(host)), host };
  }
  if (typeof a0 === 'string' && !(Number(a0) >= 0)) return { where: decide('listen', a0, 'kernel'), host: undefined }; // a pipe name
  const host = typeof args[1] === 'string' ? args[1] : undefined;
  return { where: decide('listen', `${host || '*'}:${typeof a0 === 'function' || a0 === undefined ? 0 : String(a0)}`, policy.listen(host)), host };
}

function serverNotRunning(): Error {
  const e = new Error('Server is not running.') as Error & { code: string };
  e.code = 'ERR_SERVER_NOT_RUNNING';
  return e;
}

function alreadyListening(): Error {
  const e = new Error('Listen method has been called more than once without closing.') as Error & { code: string };
  e.code = 'ERR_SERVER_ALREADY_LISTEN';
  return e;
}

/** Whether listen(...) asked for an ephemeral port (0, or none). */
function ephemeralPort(args: unknown[]): boolean {
  const a0 = args[0];
  const p = a0 !== null && typeof a0 === 'object' ? (a0 as { port?: unknown }).port : a0;
  return p === undefined || p === null || typeof p === 'function' || Number(p) === 0;
}

/** Retries of an ephemeral listen whose port the stack chose but the kernel's loopback holds. */
const EPHEMERAL_RETRIES = 8;

/**
 * What a patched server listens with: the tstack server, and its mirrors on the kernel's
 * loopback (same-host reach). To the program it is one server: one 'listening' once all are up,
 * the stack server's address(), connections from both as 'connection', one 'close' when all
 * are closed and drained.
 */
class ListenGroup {
  readonly mirrors: net.Server[] = [];

  constructor(readonly outer: OuterServer, readonly srv: tnet.Server) {}

  get listening(): boolean { return this.srv.listening; }

  close(): void {
    let waiting = 1 + this.mirrors.length;
    const done = () => { if (--waiting === 0) this.outer.emit('close'); };
    this.srv.once('close', done);
    this.srv.close();
    for (const m of this.mirrors) { m.once('close', done); m.close(); }
  }

  getConnections(cb: (err: Error | null, count: number) => void): void {
    let total = 0;
    let waiting = 1 + this.mirrors.length;
    let failed = false;
    const add = (err: Error | null, n: number) => {
      if (failed) return;
      if (err) { failed = true; cb(err, 0); return; }
      total += n;
      if (--waiting === 0) cb(null, total);
    };
    this.srv.getConnections(add);
    for (const m of this.mirrors) m.getConnections(add);
  }

  ref(): void { this.srv.ref(); for (const m of this.mirrors) m.ref(); }
  unref(): void { this.srv.unref(); for (const m of this.mirrors) m.unref(); }

  /** Closes everything at once, without 'close' on the program's server (a failed listen). */
  abandon(): void {
    this.srv.removeAllListeners('close');
    this.srv.close();
    for (const m of this.mirrors) { m.removeAllListeners(); m.on('error', () => {}); m.close(); }
    this.mirrors.length = 0;
  }
}

function makeServerPatches(orig: Saved['netProto']): Record<string, PropertyDescriptor> {
  const o = (k: string) => orig[k]!.value as AnyFn;
  const origListening = orig['listening']!.get!;

  /** The options of the program's server, for the servers that listen for it (stack and mirrors). */
  function serverOptions(outer: OuterServer) {
    return {
      allowHalfOpen: outer.allowHalfOpen ?? false,
      pauseOnConnect: outer.pauseOnConnect ?? false,
      noDelay: outer.noDelay ?? false,
      keepAlive: outer.keepAlive ?? false,
      keepAliveInitialDelay: (outer.keepAliveInitialDelay ?? 0) * 1000,
      ...(outer.highWaterMark !== undefined && { highWaterMark: outer.highWaterMark }),
    };
  }

  /** maxConnections is set on the server the program holds: the servers listening for it read it there. */
  function shareMaxConnections(server: object, outer: OuterServer): void {
    Object.defineProperty(server, 'maxConnections', {
      configurable: true, enumerable: true,
      get: () => outer.maxConnections,
      set: (v: number) => { outer.maxConnections = v; },
    });
  }

  /** A kernel server on `host`:`port` whose connections are the program server's. */
  function openMirror(outer: OuterServer, group: ListenGroup, host: string, port: number, done: (err: NodeJS.ErrnoException | null) => void): void {
    const m = new net.Server(serverOptions(outer));
    shareMaxConnections(m, outer);
    m.on('connection', (socket: net.Socket) => {
      (socket as unknown as { server: unknown }).server = outer;
      outer.emit('connection', socket);
    });
    m.on('drop', (d: unknown) => outer.emit('drop', d));
    const onError = (e: NodeJS.ErrnoException) => { m.removeListener('listening', onListening); done(e); };
    const onListening = () => {
      m.removeListener('error', onError);
      m.on('error', (e: Error) => outer.emit('error', e));
      group.mirrors.push(m);
      if (outer._unref) m.unref();
      done(null);
    };
    m.once('error', onError);
    m.once('listening', onListening);
    o('listen').call(m, { port, host });
  }

  function startListen(outer: OuterServer, args: unknown[], host: string | undefined, attempt: number): void {
    const srv = tnet.createServer({ stack: active!.stack, ...serverOptions(outer) });
    shareMaxConnections(srv, outer);
    const group = new ListenGroup(outer, srv);
    outer[kTstack] = group;
    const mirrorHosts = active!.policy.mirrorAddresses(host);
    srv.on('listening', () => {
      if (outer[kTstack] !== group) return;
      const port = srv.address()!.port;
      const pending = [...mirrorHosts];
      const next = (err: NodeJS.ErrnoException | null) => {
        if (outer[kTstack] !== group) return;
        if (err && (err.code === 'EADDRNOTAVAIL' || err.code === 'EAFNOSUPPORT') && lastHost.startsWith('::ffff:')) {
          // A kernel without IPv6: the IPv4 loopback as itself.
          lastHost = lastHost.slice(7);
          openMirror(outer, group, lastHost, port, next);
          return;
        }
        if (err && (err.code === 'EACCES' || (err.code === 'EADDRINUSE' && !ephemeralPort(args)))) {
          // A privileged port (say 80) the stack may take but this process may not bind on
          // the host, or a port another process already holds on the host (a second instance
          // on another device, a kernel service): the stack listener, the server itself,
          // stands; only the host's loopback does not reach it.
          decide('mirror', `${lastHost}:${port}`, 'stack');
          err = null;
        }
        if (err) {
          // ::1 where the kernel has no IPv6: nothing to mirror there.
          const optional = pending.length < mirrorHosts.length && (err.code === 'EADDRNOTAVAIL' || err.code === 'EAFNOSUPPORT');
          if (!optional) {
            group.abandon();
            delete outer[kTstack];
            if (err.code === 'EADDRINUSE' && ephemeralPort(args) && attempt < EPHEMERAL_RETRIES) {
              startListen(outer, args, host, attempt + 1);
              return;
            }
            outer.emit('error', asProgramError(err, srv.address()?.address ?? host ?? '::', port));
            return;
          }
        }
        const h = pending.shift();
        if (h === undefined) { outer.emit('listening'); return; }
        lastHost = h;
        openMirror(outer, group, h, port, next);
      };
      let lastHost = '';
      next(null);
    });
    srv.on('error', (e: Error) => outer.emit('error', e));
    srv.on('drop', (d: unknown) => outer.emit('drop', d));
    srv.on('connection', (socket: tnet.Socket) => {
      // http's connection listener sets this too; a plain net server's user expects it.
      (socket as unknown as { server: unknown }).server = outer;
      outer.emit('connection', socket);
    });
    if (outer._unref) srv.unref();
    // `::` and no host listen dual-stack in tstack/net as in Node (reported as `::`).
    srv.listen(...(args as Parameters<tnet.Server['listen']>));
  }

  function listen(this: OuterServer, ...args: unknown[]): OuterServer {
    if (!active) return o('listen').apply(this, args) as OuterServer;
    const { where, host } = listenTarget(args);
    if (where === 'kernel') return o('listen').apply(this, args) as OuterServer;
    if (this[kTstack]?.listening || this._handle) throw alreadyListening();
    const a = [...args];
    // The callback is a 'listening' listener of the program's server, as on Node.
    if (typeof a[a.length - 1] === 'function') this.once('listening', a.pop() as Cb);
    startListen(this, a, host, 0);
    return this;
  }

  function close(this: OuterServer, cb?: (err?: Error) => void): OuterServer {
    const group = this[kTstack];
    if (!group) return o('close').call(this, cb) as OuterServer;
    // A closed tstack server is done: listening/address() fall back to Node's (no handle: false/null).
    delete this[kTstack];
    if (typeof cb === 'function') {
      if (!group.listening) this.once('close', () => cb(serverNotRunning()));
      else this.once('close', cb);
    }
    group.close();
    return this;
  }

  function address(this: OuterServer): ReturnType<net.Server['address']> {
    const group = this[kTstack];
    return group ? group.srv.address() : o('address').call(this);
  }

  function getConnections(this: OuterServer, cb: (err: Error | null, count: number) => void): OuterServer {
    const group = this[kTstack];
    if (!group) return o('getConnections').call(this, cb) as OuterServer;
    group.getConnections(cb);
    return this;
  }

  function ref(this: OuterServer): OuterServer {
    o('ref').call(this);
    this[kTstack]?.ref();
    return this;
  }

  function unref(this: OuterServer): OuterServer {
    o('unref').call(this);
    this[kTstack]?.unref();
    return this;
  }

  const fn = (value: AnyFn): PropertyDescriptor => ({ value, writable: true, configurable: true, enumerable: false });
  return {
    listen: fn(listen), close: fn(close), address: fn(address), getConnections: fn(getConnections),
    ref: fn(ref), unref: fn(unref),
    listening: {
      configurable: true, enumerable: true,
      get(this: OuterServer) { const g = this[kTstack]; return g ? g.listening : origListening.call(this) as boolean; },
    },
  };
}

/** A mirror's listen error as the program's own listen would have reported it (its address). */
function asProgramError(err: NodeJS.ErrnoException & { address?: string; port?: number }, address: string, port: number): NodeJS.ErrnoException {
  const e = new Error(`${err.syscall ?? 'listen'} ${err.code}: ${err.message.replace(/^[^:]*: /, '').replace(/ \S+$/, '')} ${address}:${port}`) as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err.errno !== undefined) e.errno = err.errno;
  if (err.code !== undefined) e.code = err.code;
  e.syscall = err.syscall ?? 'listen';
  e.address = address;
  e.port = port;
  return e;
}

// ---- outgoing TCP ------------------------------------------------------------------------

/** Node's normalizeArgs for connect(): the options (a copy when built from positionals) and cb. */
function connectArgs(args: unknown[]): { options: Record<string, unknown>; cb: Cb | undefined; positional: boolean } {
  const a0 = args[0];
  const last = args[args.length - 1];
  const cb = typeof last === 'function' ? last as Cb : undefined;
  if (Array.isArray(a0)) return connectArgs(a0); // Node's internal [options, cb] form
  if (a0 !== null && typeof a0 === 'object') return { options: a0 as Record<string, unknown>, cb, positional: false };
  if (typeof a0 === 'string' && !(Number(a0) >= 0)) return { options: { path: a0 }, cb, positional: true };
  const options: Record<string, unknown> = { port: a0 };
  if (typeof args[1] === 'string') options['host'] = args[1];
  return { options, cb, positional: true };
}

function connectPlacement(what: string, options: Record<string, unknown>): Placement {
  if (options['path'] != null || options['fd'] !== undefined) return decide(what, 'path/fd', 'kernel');
  const host = options['host'] as string | undefined;
  return decide(what, `${host ?? 'localhost'}:${String(options['port'])}`, active!.policy.outgoing(host, options['port']));
}

function makeConnect(origConnect: AnyFn): AnyFn {
  return function connect(this: unknown, ...args: unknown[]) {
    if (!active) return origConnect.apply(this, args);
    const { options, cb } = connectArgs(args);
    if (connectPlacement('connect', options) === 'kernel') {
      // Node's connect makes a net.Socket and connects it: already decided, do not ask again.
      kernelDecided++;
      try { return origConnect.apply(this, args); } finally { kernelDecided--; }
    }
    const opts = { ...options, stack: active.stack } as unknown as tnet.TcpSocketConnectOpts;
    return cb ? tnet.connect(opts, cb as () => void) : tnet.connect(opts);
  };
}

/** Depth of kernel-placed net.connect calls in progress (their Socket.connect is not re-decided). */
let kernelDecided = 0;
/** Node's owner_symbol: lib/net.js finds the net.Socket of a handle under it. */
let ownerKey: symbol | null = null;

function nodeOwnerSymbol(): symbol {
  if (ownerKey) return ownerKey;
  // A Socket made around a bare object marks it with owner_symbol (initSocketHandle).
  const probe = {};
  new net.Socket({ handle: probe as never, readable: false, writable: false });
  const sym = Object.getOwnPropertySymbols(probe).find((x) => x.description === 'owner_symbol');
  if (!sym) throw new Error('tstack: cannot find Node\'s owner_symbol (unsupported Node version)');
  return (ownerKey = sym);
}

type NodeSocket = net.Socket & { _handle: unknown; _peername: unknown; _sockname: unknown; _undestroy(): void; _pendingData: unknown; _pendingEncoding: string; _unrefTimer(): void };

/**
 * net.Socket.prototype.connect: a socket the policy routes to the stack gets a StackTcpHandle
 * before Node's own connect() runs, which then validates, resolves and connects through it.
 * A socket that already has a handle (`{ fd }`, `{ handle }`, a reconnect before close) is left
 * to Node.
 */
function makeSocketConnect(origConnect: AnyFn): AnyFn {
  return function connect(this: NodeSocket, ...args: unknown[]) {
    if (!active || kernelDecided > 0 || (this._handle && !this.destroyed)) return origConnect.apply(this, args);
    const { options, cb } = connectArgs(args);
    if (options['port'] === undefined || connectPlacement('socket.connect', options) === 'kernel') return origConnect.apply(this, args);
    const ctx = resolveStack({ stack: active.stack });
    if (this.destroyed) { this._peername = null; this._sockname = null; this._undestroy(); }
    const handle = new StackTcpHandle(ctx, nodeOwnerSymbol());
    (handle as unknown as Record<symbol, unknown>)[nodeOwnerSymbol()] = this;
    this._handle = handle;
    // One attempt, IPv4, through the given handle: Node's happy-eyeballs path makes kernel handles.
    const o: Record<string, unknown> = { ...options, autoSelectFamily: false };
    if (o['family'] === undefined || o['family'] === 0) o['family'] = 4;
    return cb ? origConnect.call(this, o, cb) : origConnect.call(this, o);
  };
}

/** net.Socket.prototype._writeGeneric: a StackTcpHandle takes the bytes itself (stack-handle.ts). */
function makeWriteGeneric(orig: AnyFn): AnyFn {
  return function _writeGeneric(this: NodeSocket, writev: boolean, data: unknown, encoding: BufferEncoding, cb: (err?: Error | null) => void) {
    const h = this._handle;
    if (!(h instanceof StackTcpHandle) || this.connecting) return orig.call(this, writev, data, encoding, cb);
    this._pendingData = null;
    this._pendingEncoding = '';
    this._unrefTimer();
    const toBuf = (c: unknown, enc: BufferEncoding): Uint8Array => (typeof c === 'string' ? Buffer.from(c, enc) : c as Uint8Array);
    const chunks = writev
      ? (data as { chunk: unknown; encoding: BufferEncoding }[]).map((c) => toBuf(c.chunk, c.encoding))
      : [toBuf(data, encoding)];
    h.write(chunks, cb);
  };
}

/**
 * A Duplex in front of a net.Socket whose handle is a StackTcpHandle: Node's TLSSocket would
 * hand such a socket's handle to its C++ TLS layer, which needs a kernel stream; a plain
 * Duplex takes its JS-stream path instead (as tstack/net sockets do).
 */
class SocketStream extends Duplex {
  constructor(readonly socket: net.Socket) {
    super({ allowHalfOpen: true, emitClose: true, autoDestroy: true });
    socket.on('data', (d: Buffer) => { if (!this.push(d)) socket.pause(); });
    socket.on('end', () => this.push(null));
    socket.on('error', (e: Error) => this.destroy(e));
    socket.on('close', () => this.destroy());
  }
  get connecting(): boolean { return this.socket.connecting; }
  get remoteAddress(): string | undefined { return this.socket.remoteAddress; }
  get remotePort(): number | undefined { return this.socket.remotePort; }
  get remoteFamily(): string | undefined { return this.socket.remoteFamily; }
  get localAddress(): string | undefined { return this.socket.localAddress; }
  get localPort(): number | undefined { return this.socket.localPort; }
  get localFamily(): string | undefined { return (this.socket as { localFamily?: string }).localFamily; }
  override _read(): void { this.socket.resume(); }
  override _write(chunk: Buffer, enc: BufferEncoding, cb: (e?: Error | null) => void): void { this.socket.write(chunk, enc, cb); }
  override _final(cb: () => void): void { this.socket.end(cb); }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void { this.socket.destroy(err ?? undefined); cb(err); }
  setNoDelay(on?: boolean): this { this.socket.setNoDelay(on); return this; }
  setKeepAlive(on?: boolean, d?: number): this { this.socket.setKeepAlive(on, d); return this; }
  ref(): this { this.socket.ref(); return this; }
  unref(): this { this.socket.unref(); return this; }
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** tls.connect without a `socket` opens a kernel net.Socket: give it a tstack one when routed. */
function makeTlsConnect(origTls: AnyFn): AnyFn {
  return function connect(this: unknown, ...args: unknown[]) {
    if (!active) return origTls.apply(this, args);
    // tls.connect(options[, cb]) or (port[, host][, options][, cb]).
    const last = args[args.length - 1];
    const cb = typeof last === 'function' ? last as Cb : undefined;
    let options: Record<string, unknown>;
    if (args[0] !== null && typeof args[0] === 'object') options = { ...(args[0] as object) };
    else {
      options = {};
      for (const a of args.slice(1)) if (a !== null && typeof a === 'object') options = { ...(a as object) };
      options['port'] = args[0];
      if (typeof args[1] === 'string') options['host'] = args[1];
    }
    const given = options['socket'] as NodeSocket | null | undefined;
    if (given instanceof net.Socket && given._handle instanceof StackTcpHandle) {
      const o = { ...options, socket: new SocketStream(given) };
      return cb ? origTls.call(this, o, cb) : origTls.call(this, o);
    }
    if (given != null || connectPlacement('tls.connect', options) === 'kernel') return origTls.apply(this, args);
    const host = (options['host'] as string | undefined) ?? 'localhost';
    const raw = tnet.connect({
      port: options['port'] as number, host, stack: active.stack,
      ...(options['localAddress'] !== undefined && { localAddress: options['localAddress'] as string }),
      ...(options['timeout'] !== undefined && { timeout: options['timeout'] as number }),
      // What tls.connect hands to net.connect on Node: a custom lookup dials what it resolves.
      ...pick(options, ['lookup', 'family', 'hints', 'localPort', 'noDelay', 'keepAlive', 'keepAliveInitialDelay']),
    });
    const tlsOpts: Record<string, unknown> = { ...options, socket: raw, host };
    if (tlsOpts['servername'] === undefined && !net.isIP(host)) tlsOpts['servername'] = host;
    return cb ? origTls.call(this, tlsOpts, cb) : origTls.call(this, tlsOpts);
  };
}

// ---- dgram -------------------------------------------------------------------------------

const DGRAM_EVENTS = ['message', 'listening', 'connect', 'close', 'error'] as const;

function ebadf(syscall: string): NodeJS.ErrnoException {
  const e = new Error(`${syscall} EBADF`) as NodeJS.ErrnoException;
  e.code = 'EBADF';
  e.errno = -9;
  e.syscall = syscall;
  return e;
}

type DgramSock = dgram.Socket | tdgram.Socket;

/**
 * A udp4 or udp6 socket whose home (stack or kernel) is chosen by its first bind, connect or send:
 * bind → the stack (unless loopback); send/connect → where the destination is. Until then it
 * only records listeners and ref state; afterwards every call and event goes to the real one.
 */
class PolicyUdpSocket extends EventEmitter {
  readonly type: string;
  #options: Record<string, unknown>;
  #inner: DgramSock | null = null;
  #refd = true;
  #patch: PatchOptions | null;

  #closed = false;

  constructor(type: string | Record<string, unknown>, listener?: Cb) {
    super();
    // Node's argument errors at once, before the socket has a home.
    tdgram.validateSocketOptions(type);
    this.#options = typeof type === 'object' && type !== null ? { ...type } : { type };
    this.type = this.#options['type'] as string;
    this.#patch = active;
    if (typeof listener === 'function') this.on('message', listener);
    // The abort signal closes this socket (wherever it ends up), as Node's does.
    const signal = this.#options['signal'] as AbortSignal | undefined;
    delete this.#options['signal'];
    if (signal !== undefined) {
      const onAborted = () => { if (!this.#closed) this.close(); };
      if (signal.aborted) onAborted();
      else {
        signal.addEventListener('abort', onAborted, { once: true });
        this.once('close', () => signal.removeEventListener('abort', onAborted));
      }
    }
    if ((this.type !== 'udp4' && this.type !== 'udp6') || !this.#patch) this.#choose('kernel');
  }

  /** The real socket, created on first need. */
  #choose(where: Placement): DgramSock {
    if (this.#inner) return this.#inner;
    const inner: DgramSock = where === 'stack'
      ? tdgram.createSocket({ ...this.#options, stack: this.#patch!.stack } as tdgram.SocketOptions)
      : (saved ? saved.dgramCreateSocket : dgram.createSocket)(this.#options) as dgram.Socket;
    this.#inner = inner;
    for (const ev of DGRAM_EVENTS) (inner as EventEmitter).on(ev, (...a: unknown[]) => { this.emit(ev, ...a); });
    if (!this.#refd) inner.unref();
    return inner;
  }

  #innerOrChoose(what: string, host: string | undefined, port: unknown, how: 'listen' | 'outgoing'): DgramSock {
    if (this.#inner) return this.#inner;
    const policy = this.#patch!.policy;
    // Node's default destination: localhost of the socket's family.
    const dflt = this.type === 'udp6' ? '::1' : '127.0.0.1';
    const where = how === 'listen' ? policy.listen(host, 'udp') : policy.outgoingUdp(host || dflt, port);
    const shown = how === 'listen' ? host || '*' : host || dflt;
    return this.#choose(decide(`udp ${what}`, `${shown}:${typeof port === 'number' || typeof port === 'string' ? port : 0}`, where));
  }

  /** The socket, or EBADF as Node's unbound socket gives for getsockname/setsockopt. */
  #bound(syscall: string): DgramSock {
    if (!this.#inner) throw ebadf(syscall);
    return this.#inner;
  }

  bind(...args: unknown[]): this {
    const a0 = args[0];
    const obj = a0 !== null && typeof a0 === 'object' ? a0 as { address?: string; port?: number } : null;
    const host = obj ? obj.address : typeof args[1] === 'string' ? args[1] : undefined;
    // A descriptor is the kernel's, as for listen({ fd }).
    const fd = obj ? (obj as { fd?: unknown }).fd : undefined;
    const inner = typeof fd === 'number' && fd >= 0 && !this.#inner
      ? this.#choose(decide('udp bind', 'fd', 'kernel'))
      : this.#innerOrChoose('bind', host, obj ? obj.port : a0, 'listen');
    const a = [...args];
    if (typeof a[a.length - 1] === 'function') {
      // As Node does: the callback is a 'listening' listener (of this socket), dropped on error.
      const cb = a.pop() as Cb;
      const onListening = () => { this.removeListener('error', onError); cb.call(this); };
      const onError = () => { this.removeListener('listening', onListening); };
      this.once('listening', onListening);
      this.once('error', onError);
    }
    (inner.bind as AnyFn).apply(inner, a);
    return this;
  }

  connect(port: number, address?: unknown, cb?: unknown): void {
    const host = typeof address === 'string' ? address : undefined;
    const inner = this.#innerOrChoose('connect', host, port, 'outgoing');
    (inner.connect as AnyFn).call(inner, port, address, cb);
  }

  send(...args: unknown[]): void {
    if (!this.#inner) {
      // Node's own reading of send(msg, [offset, length,] port[, address][, callback]).
      const [, offset, length, port, address] = args;
      let host: unknown, dport: unknown;
      if (address || (port && typeof port !== 'function')) { host = address; dport = port; } else { host = length; dport = offset; }
      this.#innerOrChoose('send', typeof host === 'string' ? host : undefined, dport, 'outgoing');
    }
    const inner = this.#inner!;
    (inner.send as AnyFn).apply(inner, args);
  }

  close(cb?: () => void): this {
    if (typeof cb === 'function') this.once('close', cb);
    this.#choose('kernel').close();
    this.#closed = true;
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) return;
    await new Promise<void>((resolve) => this.close(resolve));
  }

  sendto(...args: unknown[]): void {
    tdgram.validateSendtoArgs(args[1], args[2], args[3], args[4]);
    this.send(...args);
  }

  ref(): this { this.#refd = true; this.#inner?.ref(); return this; }
  unref(): this { this.#refd = false; this.#inner?.unref(); return this; }

  address(): ReturnType<dgram.Socket['address']> { return this.#bound('getsockname').address(); }
  remoteAddress(): ReturnType<dgram.Socket['remoteAddress']> {
    if (!this.#inner) {
      const e = new Error('Not connected') as Error & { code: string };
      e.code = 'ERR_SOCKET_DGRAM_NOT_CONNECTED';
      throw e;
    }
    return this.#inner.remoteAddress();
  }
  disconnect(): void { (this.#bound('disconnect').disconnect as AnyFn).call(this.#inner); }
  setBroadcast(flag: boolean): void { this.#bound('setBroadcast').setBroadcast(flag); }
  setTTL(ttl: number): number { return this.#bound('setTTL').setTTL(ttl); }
  setMulticastTTL(ttl: number): number { return this.#bound('setMulticastTTL').setMulticastTTL(ttl); }
  setMulticastLoopback(flag: boolean): boolean { return this.#bound('setMulticastLoopback').setMulticastLoopback(flag); }
  setMulticastInterface(i: string): void { this.#bound('setMulticastInterface').setMulticastInterface(i); }
  // libuv binds an unbound socket to the any address for these (uv__udp_maybe_deferred_bind).
  addMembership(g: string, i?: string): void { this.#membership('addMembership', g, i); }
  dropMembership(g: string, i?: string): void { this.#membership('dropMembership', g, i); }

  #membership(op: 'addMembership' | 'dropMembership', g: string, i?: string): void {
    if (this.#closed) { (this.#inner as dgram.Socket)[op](g, i); return; }
    if (!g) throw Object.assign(new TypeError('The "multicastAddress" argument must be specified'), { code: 'ERR_MISSING_ARGS' });
    this.#innerOrChoose('bind', undefined, 0, 'listen')[op](g, i);
  }
  addSourceSpecificMembership(...a: unknown[]): void { this.#call('addSourceSpecificMembership', a, true); }
  dropSourceSpecificMembership(...a: unknown[]): void { this.#call('dropSourceSpecificMembership', a, true); }
  setRecvBufferSize(n: number): void { this.#bound('setRecvBufferSize').setRecvBufferSize(n); }
  setSendBufferSize(n: number): void { this.#bound('setSendBufferSize').setSendBufferSize(n); }
  getRecvBufferSize(): number { return this.#bound('getRecvBufferSize').getRecvBufferSize(); }
  getSendBufferSize(): number { return this.#bound('getSendBufferSize').getSendBufferSize(); }
  getSendQueueSize(): number { return this.#inner ? this.#inner.getSendQueueSize() : 0; }
  getSendQueueCount(): number { return this.#inner ? this.#inner.getSendQueueCount() : 0; }

  #call(name: string, a: unknown[], bindsAny = false): unknown {
    const inner = (bindsAny && !this.#inner ? this.#innerOrChoose('bind', undefined, 0, 'listen') : this.#bound(name)) as unknown as Record<string, AnyFn>;
    if (typeof inner[name] !== 'function') {
      const e = new Error(`${name} is not supported on a tstack UDP socket`) as Error & { code: string };
      e.code = 'ERR_TSTACK_NOT_SUPPORTED';
      throw e;
    }
    return inner[name]!.apply(inner, a);
  }
}

function createSocket(type: string | Record<string, unknown>, listener?: Cb): dgram.Socket {
  const t = typeof type === 'object' && type !== null ? (type as { type?: string }).type : type;
  // Bad types (whose errors Node's own createSocket gives) stay on the kernel.
  if (!active || (t !== 'udp4' && t !== 'udp6')) return saved!.dgramCreateSocket(type, listener) as dgram.Socket;
  return new PolicyUdpSocket(type, listener) as unknown as dgram.Socket;
}

// ---- install -----------------------------------------------------------------------------

const SERVER_KEYS = ['listen', 'close', 'address', 'getConnections', 'ref', 'unref', 'listening'];

/** Patches node:net, node:http, node:tls and node:dgram so new sockets follow `opts.policy`. */
export function installPatches(opts: PatchOptions): void {
  active = opts;
  if (saved) return;
  const proto = net.Server.prototype as unknown as Record<string | symbol, unknown>;
  const sockProto = net.Socket.prototype as unknown as Record<string, unknown>;
  const netProto: Saved['netProto'] = {};
  for (const k of SERVER_KEYS) netProto[k] = Object.getOwnPropertyDescriptor(proto, k);
  netProto[Symbol.asyncDispose as unknown as string] = Object.getOwnPropertyDescriptor(proto, Symbol.asyncDispose);
  const s: Saved = {
    netProto,
    getpeername: sockProto['_getpeername'] as AnyFn,
    getsockname: sockProto['_getsockname'] as AnyFn,
    netConnect: net.connect,
    socketConnect: sockProto['connect'] as AnyFn,
    writeGeneric: sockProto['_writeGeneric'] as AnyFn,
    netCreateConnection: net.createConnection,
    agentCreateConnection: http.Agent.prototype.createConnection as AnyFn,
    tlsConnect: tls.connect,
    dgramCreateSocket: dgram.createSocket,
    dgramSocket: dgram.Socket as unknown as AnyFn,
  };
  saved = s;

  const patches = makeServerPatches(netProto);
  for (const [k, d] of Object.entries(patches)) Object.defineProperty(proto, k, d);
  Object.defineProperty(proto, Symbol.asyncDispose, {
    value: asyncDisposeFor(netProto), writable: true, configurable: true, enumerable: false,
  });

  const connect = makeConnect(s.netConnect);
  const m = net as unknown as Record<string, unknown>;
  m['connect'] = connect;
  m['createConnection'] = connect;
  (http.Agent.prototype as unknown as Record<string, unknown>)['createConnection'] = connect;
  (tls as unknown as Record<string, unknown>)['connect'] = makeTlsConnect(s.tlsConnect);
  sockProto['connect'] = makeSocketConnect(s.socketConnect);
  sockProto['_writeGeneric'] = makeWriteGeneric(s.writeGeneric);
  const dg = dgram as unknown as Record<string, unknown>;
  dg['createSocket'] = createSocket;
  dg['Socket'] = PolicyUdpSocket;

  sockProto['_getpeername'] = throughTls(s.getpeername, 'remote');
  sockProto['_getsockname'] = throughTls(s.getsockname, 'local');

  // Deliberately not done: making `x instanceof net.Socket` true for tstack sockets. Node's own
  // TLSSocket takes such a socket for a kernel one (it waits for a 'connect' an accepted socket
  // never emits, so an https server would never answer): see docs/run.md, "Limitations".

  // ESM named imports (`import { createServer } from 'node:net'`) read these bindings.
  syncBuiltinESMExports();
}

function asyncDisposeFor(orig: Saved['netProto']): AnyFn {
  const origDispose = orig[Symbol.asyncDispose as unknown as string]?.value as AnyFn | undefined;
  return async function (this: OuterServer): Promise<void> {
    if (!this[kTstack]) { await origDispose?.call(this); return; }
    await new Promise<void>((resolve, reject) => this.close((e) => (e ? reject(e) : resolve())));
  };
}

/**
 * A TLSSocket over a tstack socket asks its JS-stream handle for addresses, which has none
 * (Node gives undefined, as for any Duplex): answer from the tstack socket underneath, so
 * `req.socket.remoteAddress` (express's req.ip, logs) works for https too.
 */
function throughTls(orig: AnyFn, side: 'remote' | 'local'): AnyFn {
  return function (this: { _handle?: { _parentWrap?: { stream?: unknown } }; _peername?: unknown; _sockname?: unknown }) {
    const r = orig.call(this) as { address?: string };
    if (r.address !== undefined) return r;
    const inner = this._handle?._parentWrap?.stream as object | undefined;
    if (!(inner instanceof tnet.Socket) && !(inner instanceof SocketStream)) return r;
    const address = side === 'remote' ? inner.remoteAddress : inner.localAddress;
    if (address === undefined) return r;
    const info = side === 'remote'
      ? { address, family: inner.remoteFamily, port: inner.remotePort }
      : { address, family: inner.localFamily, port: inner.localPort };
    if (side === 'remote') this._peername = info; else this._sockname = info;
    return info;
  };
}

/** Restores every original (servers already listening on the stack stay there). */
export function uninstallPatches(): void {
  const s = saved;
  active = null;
  if (!s) return;
  saved = null;
  const proto = net.Server.prototype as unknown as Record<string | symbol, unknown>;
  for (const k of SERVER_KEYS) Object.defineProperty(proto, k, s.netProto[k]!);
  const sockProto = net.Socket.prototype as unknown as Record<string, unknown>;
  sockProto['_getpeername'] = s.getpeername;
  sockProto['_getsockname'] = s.getsockname;
  sockProto['connect'] = s.socketConnect;
  sockProto['_writeGeneric'] = s.writeGeneric;
  const d = s.netProto[Symbol.asyncDispose as unknown as string];
  if (d) Object.defineProperty(proto, Symbol.asyncDispose, d);
  const m = net as unknown as Record<string, unknown>;
  m['connect'] = s.netConnect;
  m['createConnection'] = s.netCreateConnection;
  (http.Agent.prototype as unknown as Record<string, unknown>)['createConnection'] = s.agentCreateConnection;
  (tls as unknown as Record<string, unknown>)['connect'] = s.tlsConnect;
  const dg = dgram as unknown as Record<string, unknown>;
  dg['createSocket'] = s.dgramCreateSocket;
  dg['Socket'] = s.dgramSocket;
  syncBuiltinESMExports();
}

/** Whether patches are installed (for diagnostics). */
export function patchesInstalled(): boolean { return saved !== null; }
