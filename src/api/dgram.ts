// tstack/dgram: Node's `dgram` API on the tstack UDP engine (src/stack/udp.ts).
//
// The compatibility surface is Node's documented (and, where the docs are silent, observed)
// behaviour for udp4 and udp6 sockets (a udp6 socket bound to :: also hears IPv4 unless
// ipv6Only, its peers shown as ::ffff:a.b.c.d): the same overloads, the same argument errors (ERR_* codes), the
// same event order ('listening' before 'connect', 'close' after close()), errors shaped like
// Node's (`bind EADDRINUSE 0.0.0.0:41234` with errno/code/syscall/address/port), and events
// emitted asynchronously relative to the call that caused them (Node resolves every address
// through dns.lookup, which calls back on a later tick even for literals). The structure
// follows Node's lib/dgram.js so the two can be compared line by line; see docs/api-dgram.md
// for what differs.
import { EventEmitter } from 'node:events';
import { Buffer } from 'node:buffer';
import dns from 'node:dns';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../wire/addr.js';
import type { ErrnoCode, NetError } from '../base/errors.js';
import { UdpFamily, mappedV4, type UdpSocket } from '../stack/udp.js';
import { resolveStack, type StackContext, type StackOption } from './runtime.js';
import {
  codedError, errnoException, exceptionWithHostPort, invalidArgType, netCode, systemError,
  validateNumber, validatePort, validateString,
} from './errors.js';

export type SocketType = 'udp4' | 'udp6';

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

export interface AddressInfo {
  address: string;
  family: string;
  port: number;
}

export interface BindOptions {
  port?: number;
  address?: string;
  exclusive?: boolean;
  fd?: number;
}

export type LookupFunction = (
  hostname: string, family: number,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
) => void;

export interface SocketOptions extends StackOption {
  type: SocketType;
  reuseAddr?: boolean;
  /** Accepted; the engine treats it as reuseAddr (no load balancing across the sockets). */
  reusePort?: boolean;
  ipv6Only?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
  lookup?: LookupFunction;
  signal?: AbortSignal;
}

type SendCallback = (error: Error | null, bytes?: number) => void;
type Message = string | ArrayBufferView | readonly (string | ArrayBufferView)[];

const BIND_STATE_UNBOUND = 0;
const BIND_STATE_BINDING = 1;
const BIND_STATE_BOUND = 2;

const CONNECT_STATE_DISCONNECTED = 0;
const CONNECT_STATE_CONNECTING = 1;
const CONNECT_STATE_CONNECTED = 2;

const BUFFER_TYPES = ['Buffer', 'TypedArray', 'DataView', 'string'];

function notRunning(): Error { return codedError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running'); }
function notConnected(): Error { return codedError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected'); }
function isConnectedError(): Error { return codedError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected'); }

/** What the C++ binding does with bind's port: a uint32 truncated to 16 bits (70000 -> 4464). */
function bindPort(port: unknown): number {
  return (Number(port) >>> 0) & 0xffff;
}

function sliceBuffer(buffer: unknown, offset: unknown, length: unknown): Buffer {
  let b: ArrayBufferView;
  if (typeof buffer === 'string') b = Buffer.from(buffer);
  else if (ArrayBuffer.isView(buffer)) b = buffer;
  else throw invalidArgType('buffer', BUFFER_TYPES, buffer);
  const off = Number(offset) >>> 0;
  const len = Number(length) >>> 0;
  if (off > b.byteLength) throw codedError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
  if (off + len > b.byteLength) throw codedError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
  return Buffer.from(b.buffer, b.byteOffset + off, len);
}

function toBuffer(b: ArrayBufferView): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function fixBufferList(list: readonly unknown[]): Buffer[] | null {
  const out = new Array<Buffer>(list.length);
  for (let i = 0; i < list.length; i++) {
    const b = list[i];
    if (typeof b === 'string') out[i] = Buffer.from(b);
    else if (ArrayBuffer.isView(b)) out[i] = toBuffer(b);
    else return null;
  }
  return out;
}

/** An IPv6 address as Node prints it: RFC 5952, with a v4-mapped tail in dotted form. */
function formatAddr6(b: Uint8Array): string {
  const v4 = mappedV4(b, 0);
  return v4 >= 0 ? `::ffff:${formatIpv4(v4)}` : formatIpv6(b);
}

export class Socket extends EventEmitter {
  readonly type: SocketType;
  readonly #ctx: StackContext;
  #sock: UdpSocket | null;
  #bindState = BIND_STATE_UNBOUND;
  #connectState = CONNECT_STATE_DISCONNECTED;
  /** Operations waiting for an implicit bind to finish (Node's state.queue). */
  #queue: (() => void)[] | undefined = undefined;
  readonly #lookupFn: LookupFunction | undefined;
  readonly #reuseAddr: boolean;
  readonly #recvBufferSize: number | undefined;
  readonly #sendBufferSize: number | undefined;
  /** There is no send buffer (datagrams leave synchronously); the value is kept for get. */
  #sendBufSize = 0;
  #multicastTtl = 1;
  #multicastLoopback = true;
  #refd = true;
  /**
   * libuv creates a socket's descriptor on the first bind attempt, successful or not; before
   * that, getsockname and socket options fail with EBADF. This mirrors that.
   */
  #hasFd = false;
  /** This socket currently holds a handle count on its stack (bound, open and ref'd). */
  #holding = false;

  constructor(type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void) {
    super();
    let options: SocketOptions | undefined;
    let t: unknown = type;
    if (type !== null && typeof type === 'object') {
      options = type;
      t = options.type;
    }
    validateSocketOptions(type);
    this.type = t as SocketType;
    this.#ctx = resolveStack(options);
    this.#sock = this.#ctx.stack.udp.open(t === 'udp6' ? UdpFamily.V6 : UdpFamily.V4);
    if (t === 'udp6') this.#sock.v6Only = !!options?.ipv6Only;
    this.#sendBufSize = this.#ctx.stack.sysctl.int('net.inet.udp.recvspace');
    this.#lookupFn = options?.lookup;
    this.#reuseAddr = !!(options?.reuseAddr || options?.reusePort);
    this.#recvBufferSize = options?.recvBufferSize;
    this.#sendBufferSize = options?.sendBufferSize;
    if (typeof listener === 'function') this.on('message', listener);

    const signal = options?.signal;
    if (signal !== undefined) {
      if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) throw invalidArgType('options.signal', ['AbortSignal'], signal);
      const onAborted = () => { if (this.#sock) this.close(); };
      if (signal.aborted) onAborted();
      else {
        signal.addEventListener('abort', onAborted, { once: true });
        this.once('close', () => signal.removeEventListener('abort', onAborted));
      }
    }
  }

  // ---- bind ------------------------------------------------------------------------------

  bind(port?: number, address?: string, callback?: () => void): this;
  bind(port?: number, callback?: () => void): this;
  bind(callback?: () => void): this;
  bind(options: BindOptions, callback?: () => void): this;
  bind(...args: unknown[]): this {
    let port: unknown = args[0];
    const address_ = args[1];
    this.#healthCheck();
    if (this.#bindState !== BIND_STATE_UNBOUND) throw codedError(Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    this.#bindState = BIND_STATE_BINDING;

    const cb = args.length ? args[args.length - 1] : undefined;
    if (typeof cb === 'function') {
      // As Node does: the callback is a 'listening' listener, withdrawn if binding fails.
      const removeListeners = (): void => {
        this.removeListener('error', removeListeners);
        this.removeListener('listening', onListening);
      };
      const onListening = (): void => { removeListeners(); (cb as () => void).call(this); };
      this.on('error', removeListeners);
      this.on('listening', onListening);
    }

    let address: unknown;
    if (port !== null && typeof port === 'object') {
      const o = port as BindOptions;
      if (typeof o.fd === 'number' && o.fd > 0) {
        this.#bindState = BIND_STATE_UNBOUND;
        throw codedError(Error, 'ERR_INVALID_FD_TYPE', 'tstack/dgram: bind({ fd }) is not supported: a tstack socket has no file descriptor');
      }
      address = o.address || '';
      port = o.port;
    } else {
      address = typeof address_ === 'function' ? '' : address_;
    }
    if (!address) address = this.type === 'udp6' ? '::' : '0.0.0.0';

    this.#lookup(address as string, (err, ip) => {
      const sock = this.#sock;
      if (!sock) return; // closed in the meantime
      if (err) {
        this.#bindState = BIND_STATE_UNBOUND;
        this.emit('error', err);
        return;
      }
      const addr = this.type === 'udp6' ? parseIpv6(ip) : parseIpv4(ip);
      let code: ErrnoCode | null = addr === null ? 'EINVAL' : null;
      this.#hasFd = true;
      if (addr !== null) {
        sock.reuseAddr = this.#reuseAddr;
        try {
          if (typeof addr === 'number') sock.bind(addr, bindPort(port));
          else sock.bind6(addr, 0, bindPort(port), this.#scope(ip));
        } catch (e) { code = netCode(e); }
      }
      if (code !== null) {
        this.#bindState = BIND_STATE_UNBOUND;
        this.emit('error', exceptionWithHostPort(code, 'bind', ip, port as number));
        return;
      }
      this.#startListening();
    });
    return this;
  }

  #startListening(): void {
    const sock = this.#sock!;
    sock.onMessage = this.#onMessage;
    sock.onError = this.#onError;
    this.#bindState = BIND_STATE_BOUND;
    if (this.#recvBufferSize) this.#bufferSize(this.#recvBufferSize, true);
    if (this.#sendBufferSize) this.#bufferSize(this.#sendBufferSize, false);
    this.#updateRef();
    this.emit('listening');
  }

  // ---- connect ---------------------------------------------------------------------------

  connect(port: number, address?: string, callback?: () => void): void;
  connect(port: number, callback: () => void): void;
  connect(port: unknown, address?: unknown, callback?: unknown): void {
    const p = validatePort(port, 'Port', false);
    if (typeof address === 'function') {
      callback = address;
      address = '';
    } else if (address === undefined) {
      address = '';
    }
    validateString(address, 'address');
    if (this.#connectState !== CONNECT_STATE_DISCONNECTED) throw isConnectedError();
    this.#connectState = CONNECT_STATE_CONNECTING;
    if (this.#bindState === BIND_STATE_UNBOUND) this.bind({ port: 0, exclusive: true });
    const cb = typeof callback === 'function' ? callback as () => void : undefined;
    if (this.#bindState !== BIND_STATE_BOUND) {
      this.#enqueue(() => this.#connect(p, address as string, cb));
      return;
    }
    this.#connect(p, address, cb);
  }

  #connect(port: number, address: string, callback: ((err?: Error) => void) | undefined): void {
    if (callback) this.once('connect', callback);
    this.#lookup(address, (ex, ip) => {
      const sock = this.#sock;
      if (!sock) return;
      let err: Error | null = ex;
      if (!err) {
        const addr = this.type === 'udp6' ? parseIpv6(ip) : parseIpv4(ip);
        let code: ErrnoCode | null = addr === null ? 'EINVAL' : null;
        if (typeof addr === 'number' && this.#isMartian(addr)) code = 'ENETUNREACH';
        else if (addr !== null) {
          try {
            if (typeof addr === 'number') sock.connect(addr, port);
            else sock.connect6(addr, 0, port, this.#scope(ip));
          } catch (e) { code = netCode(e); }
        }
        if (code !== null) err = exceptionWithHostPort(code, 'connect', address, port);
      }
      if (err) {
        const error = err;
        this.#connectState = CONNECT_STATE_DISCONNECTED;
        process.nextTick(() => {
          if (callback) {
            this.removeListener('connect', callback);
            callback(error);
          } else {
            this.emit('error', error);
          }
        });
        return;
      }
      this.#connectState = CONNECT_STATE_CONNECTED;
      process.nextTick(() => this.emit('connect'));
    });
  }

  disconnect(): void {
    if (this.#connectState !== CONNECT_STATE_CONNECTED) throw notConnected();
    const sock = this.#sock;
    if (!sock) throw notRunning();
    sock.disconnect();
    this.#connectState = CONNECT_STATE_DISCONNECTED;
  }

  // ---- send ------------------------------------------------------------------------------

  // Unconnected: send(msg, [offset, length,] port[, address][, callback]).
  // Connected:   send(msg, [offset, length,] [callback]).
  send(msg: Message, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: Message, port?: number, callback?: SendCallback): void;
  send(msg: Message, callback?: SendCallback): void;
  send(msg: string | ArrayBufferView, offset: number, length: number, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: string | ArrayBufferView, offset: number, length: number, port?: number, callback?: SendCallback): void;
  send(msg: string | ArrayBufferView, offset: number, length: number, callback?: SendCallback): void;
  send(buffer: unknown, offset?: unknown, length?: unknown, port?: unknown, address?: unknown, callback?: unknown): void {
    let list: Buffer[] | null;
    const connected = this.#connectState === CONNECT_STATE_CONNECTED;
    if (!connected) {
      if (address || (port && typeof port !== 'function')) {
        buffer = sliceBuffer(buffer, offset, length);
      } else {
        callback = port;
        port = offset;
        address = length;
      }
    } else {
      if (typeof length === 'number') {
        buffer = sliceBuffer(buffer, offset, length);
        if (typeof port === 'function') {
          callback = port;
          port = null;
        }
      } else {
        callback = offset;
      }
      if (port || address) throw isConnectedError();
    }

    if (!Array.isArray(buffer)) {
      if (typeof buffer === 'string') list = [Buffer.from(buffer)];
      else if (!ArrayBuffer.isView(buffer)) throw invalidArgType('buffer', BUFFER_TYPES, buffer);
      else list = [toBuffer(buffer)];
    } else if (!(list = fixBufferList(buffer))) {
      throw invalidArgType('buffer list arguments', BUFFER_TYPES, buffer);
    }

    let dport = 0;
    if (!connected) dport = validatePort(port, 'Port', false);
    if (typeof callback !== 'function') callback = undefined;
    if (typeof address === 'function') {
      callback = address;
      address = undefined;
    } else if (address != null) {
      validateString(address, 'address');
    }

    this.#healthCheck();
    if (this.#bindState === BIND_STATE_UNBOUND) this.bind({ port: 0, exclusive: true });
    if (list.length === 0) list.push(Buffer.alloc(0));

    const cb = callback as SendCallback | undefined;
    const dst = address as string | undefined;
    const bufs = list;
    // Not bound yet: send once the implicit bind above has finished.
    if (this.#bindState !== BIND_STATE_BOUND) {
      this.#enqueue(() => this.send(bufs, dport, dst as string, cb as SendCallback));
      return;
    }
    if (!connected) this.#lookup(dst ?? '', (ex, ip) => this.#doSend(ex, ip, bufs, dst, dport, cb));
    else this.#doSend(null, '', bufs, dst, 0, cb);
  }

  /** Node's deprecated sendto(): send() with every argument required. */
  sendto(buffer: string | ArrayBufferView, offset: number, length: number, port: number, address: string, callback?: SendCallback): void {
    validateSendtoArgs(offset, length, port, address);
    this.send(buffer, offset, length, port, address, callback);
  }

  #doSend(ex: Error | null, ip: string, list: Buffer[], address: string | undefined, port: number, callback: SendCallback | undefined): void {
    if (ex) {
      if (callback) process.nextTick(callback, ex);
      else process.nextTick(() => this.emit('error', ex));
      return;
    }
    const sock = this.#sock;
    if (!sock) return;
    const data = list.length === 1 ? list[0]! : Buffer.concat(list);
    const addr = !port ? 0 : this.type === 'udp6' ? parseIpv6(ip) : parseIpv4(ip);
    let code: ErrnoCode | null = addr === null ? 'EINVAL' : null;
    if (typeof addr === 'number' && port && this.#isMartian(addr)) code = 'ENETUNREACH';
    else if (addr !== null) {
      try {
        if (!port) sock.send(data);
        else if (typeof addr === 'number') sock.send(data, addr, port);
        else sock.send6(data, addr, 0, port, this.#scope(ip));
      } catch (e) { code = netCode(e); }
    }
    if (code !== null) {
      // Like Node: a failed send is reported to the callback only, never as an 'error' event.
      if (callback) process.nextTick(callback, exceptionWithHostPort(code, 'send', address, port || undefined));
      return;
    }
    if (callback) process.nextTick(callback, null, data.length);
  }

  // ---- close -----------------------------------------------------------------------------

  close(callback?: () => void): this {
    const queue = this.#queue;
    if (typeof callback === 'function') this.on('close', callback);
    if (queue !== undefined) {
      queue.push(() => this.close());
      return this;
    }
    this.#healthCheck();
    const sock = this.#sock!;
    sock.onMessage = null;
    sock.onError = null;
    sock.close();
    this.#sock = null;
    this.#updateRef();
    process.nextTick(() => this.emit('close'));
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#sock) return;
    await new Promise<void>((resolve) => this.close(resolve));
  }

  // ---- addresses -------------------------------------------------------------------------

  address(): AddressInfo {
    this.#healthCheck();
    const sock = this.#sock!;
    if (!this.#hasFd) throw errnoException('EBADF', 'getsockname');
    if (this.type === 'udp6') {
      // As for IPv4 below (ip6_datagram_connect): a connected socket reports the source its path chose.
      let a = sock.local6!;
      if (sock.anyLocal6 && sock.accepts6 && sock.connected && sock.remoteIs6 && sock.path?.resolved) a = sock.path.src6;
      else if (sock.anyLocal6 && sock.connected && !sock.remoteIs6) return { address: formatAddr6(mapped(this.#ctx.stack.sourceAddress(sock.remoteAddr))), family: 'IPv6', port: sock.localPort };
      return { address: formatAddr6(a), family: 'IPv6', port: sock.localPort };
    }
    let a = sock.localAddr;
    // Linux fixes an unbound-address socket's source on connect (ip4_datagram_connect) and
    // getsockname reports it; disconnect resets it.
    if (a === 0 && sock.connected) a = this.#ctx.stack.sourceAddress(sock.remoteAddr);
    return { address: formatIpv4(a), family: 'IPv4', port: sock.localPort };
  }

  remoteAddress(): AddressInfo {
    this.#healthCheck();
    if (this.#connectState !== CONNECT_STATE_CONNECTED) throw notConnected();
    const sock = this.#sock!;
    if (this.type === 'udp6') {
      return { address: sock.remoteIs6 ? formatAddr6(sock.remote6!) : `::ffff:${formatIpv4(sock.remoteAddr)}`, family: 'IPv6', port: sock.remotePort };
    }
    return { address: formatIpv4(sock.remoteAddr), family: 'IPv4', port: sock.remotePort };
  }

  // ---- options ---------------------------------------------------------------------------

  setBroadcast(flag: boolean): void {
    this.#boundSock('setBroadcast').broadcast = !!flag;
  }

  setTTL(ttl: number): number {
    validateNumber(ttl, 'ttl');
    const sock = this.#boundSock('setTTL');
    // libuv accepts 1..255 (uv_udp_set_ttl).
    if (ttl < 1 || ttl > 255) throw errnoException('EINVAL', 'setTTL');
    sock.ttl = ttl | 0;
    // udp6: libuv sets IPV6_UNICAST_HOPS.
    if (this.type === 'udp6') sock.hopLimit = ttl | 0;
    return ttl;
  }

  setMulticastTTL(ttl: number): number {
    validateNumber(ttl, 'ttl');
    const sock = this.#boundSock('setMulticastTTL');
    if (ttl < 0 || ttl > 255) throw errnoException('EINVAL', 'setMulticastTTL');
    this.#multicastTtl = sock.mcastTtl = ttl | 0;
    return ttl;
  }

  setMulticastLoopback(flag: boolean): boolean {
    const sock = this.#boundSock('setMulticastLoopback');
    this.#multicastLoopback = sock.mcastLoop = !!flag;
    return flag;
  }

  setMulticastInterface(interfaceAddress: string): void {
    this.#healthCheck();
    validateString(interfaceAddress, 'interfaceAddress');
    const sock = this.#boundSock('setMulticastInterface');
    if (this.type === 'udp6') {
      // udp6 (libuv uv__udp_set_multicast_interface6): '::%eth1' names the interface by its zone id.
      const a6 = parseIpv6(interfaceAddress);
      if (a6 === null) throw errnoException('EINVAL', 'setMulticastInterface');
      const i = this.#scope(interfaceAddress);
      if (interfaceAddress.includes('%') && i === 0) throw errnoException('EADDRNOTAVAIL', 'setMulticastInterface');
      sock.mcastIf6 = i;
      return;
    }
    const a = parseIpv4(interfaceAddress);
    if (a === null) throw errnoException('EINVAL', 'setMulticastInterface');
    if (a !== 0 && !this.#ctx.stack.isLocalAddress(a)) throw errnoException('EADDRNOTAVAIL', 'setMulticastInterface');
    sock.mcastIf = a;
  }

  addMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#healthCheck();
    if (!multicastAddress) throw codedError(TypeError, 'ERR_MISSING_ARGS', 'The "multicastAddress" argument must be specified');
    const sock = this.#sock!;
    if (this.#group6(multicastAddress)) {
      // IPv6 groups (IPV6_JOIN_GROUP): the interface is the zone id of interfaceAddress ('::%eth1').
      const g6 = parseIpv6(multicastAddress);
      if (g6 === null) throw errnoException('EINVAL', 'addMembership');
      try { sock.addMembership6(g6, 0, interfaceAddress !== undefined ? this.#scope(String(interfaceAddress)) : 0); } catch (e) { throw errnoException(netCode(e), 'addMembership'); }
      return;
    }
    const g = parseIpv4(multicastAddress);
    const i = interfaceAddress !== undefined ? parseIpv4(interfaceAddress) : 0;
    if (g === null || i === null) throw errnoException('EINVAL', 'addMembership');
    // Linux refuses a second IP_ADD_MEMBERSHIP for the same group with EADDRINUSE.
    if (sock.memberships.has(g)) throw errnoException('EADDRINUSE', 'addMembership');
    try { sock.addMembership(g, i); } catch (e) { throw errnoException(netCode(e), 'addMembership'); }
  }

  dropMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#healthCheck();
    if (!multicastAddress) throw codedError(TypeError, 'ERR_MISSING_ARGS', 'The "multicastAddress" argument must be specified');
    const sock = this.#sock!;
    if (this.#group6(multicastAddress)) {
      const g6 = parseIpv6(multicastAddress);
      if (g6 === null) throw errnoException('EINVAL', 'dropMembership');
      try { sock.dropMembership6(g6, 0); } catch (e) { throw errnoException(netCode(e), 'dropMembership'); }
      return;
    }
    const g = parseIpv4(multicastAddress);
    const i = interfaceAddress !== undefined ? parseIpv4(interfaceAddress) : 0;
    if (g === null || i === null) throw errnoException('EINVAL', 'dropMembership');
    try { sock.dropMembership(g, i); } catch (e) { throw errnoException(netCode(e), 'dropMembership'); }
  }

  /** Source-specific multicast (RFC 4607): receive `groupAddress` only from `sourceAddress`. */
  addSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceSpecific('addSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress);
  }

  dropSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceSpecific('dropSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress);
  }

  #sourceSpecific(syscall: 'addSourceSpecificMembership' | 'dropSourceSpecificMembership', source: unknown, group: unknown, iface: unknown): void {
    this.#healthCheck();
    validateString(source, 'sourceAddress');
    validateString(group, 'groupAddress');
    if (this.#group6(group)) {
      const s6 = parseIpv6(source), g6 = parseIpv6(group);
      if (s6 === null || g6 === null) throw errnoException('EINVAL', syscall);
      const sock6 = this.#sock!;
      try {
        if (syscall === 'addSourceSpecificMembership') sock6.addSourceMembership6(g6, 0, s6, 0, iface !== undefined ? this.#scope(String(iface)) : 0);
        else sock6.dropSourceMembership6(g6, 0, s6, 0);
      } catch (e) { throw errnoException(netCode(e), syscall); }
      return;
    }
    const s = parseIpv4(source), g = parseIpv4(group), i = iface !== undefined ? parseIpv4(String(iface)) : 0;
    if (s === null || g === null || i === null) throw errnoException('EINVAL', syscall);
    const sock = this.#sock!;
    try {
      if (syscall === 'addSourceSpecificMembership') sock.addSourceMembership(g, s, i);
      else sock.dropSourceMembership(g, s, i);
    } catch (e) { throw errnoException(netCode(e), syscall); }
  }

  setRecvBufferSize(size: number): void { this.#bufferSize(size, true); }
  setSendBufferSize(size: number): void { this.#bufferSize(size, false); }
  getRecvBufferSize(): number { return this.#bufferSize(0, true); }
  getSendBufferSize(): number { return this.#bufferSize(0, false); }
  /** Datagrams leave synchronously: nothing is ever queued. */
  getSendQueueSize(): number { return 0; }
  getSendQueueCount(): number { return 0; }

  // ---- process lifetime ------------------------------------------------------------------

  ref(): this {
    if (this.#sock) { this.#refd = true; this.#updateRef(); }
    return this;
  }

  unref(): this {
    if (this.#sock) { this.#refd = false; this.#updateRef(); }
    return this;
  }

  // ---- internals -------------------------------------------------------------------------

  #healthCheck(): void {
    if (!this.#sock) throw notRunning();
  }

  /** Socket options need a bound socket, as with libuv, whose descriptor exists only after bind. */
  #boundSock(syscall: string): UdpSocket {
    const sock = this.#sock;
    if (!sock) throw notRunning();
    if (!this.#hasFd) throw errnoException('EBADF', syscall);
    return sock;
  }

  #bufferSize(size: number, recv: boolean): number {
    if (size >>> 0 !== size) throw codedError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
    const sock = this.#sock;
    if (!sock || !this.#hasFd) {
      throw systemError('ERR_SOCKET_BUFFER_SIZE', 'Could not get or set buffer size', 'EBADF', recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size');
    }
    // libuv takes an int: a larger size is EINVAL. Linux keeps twice what is asked (the
    // bookkeeping overhead) and reports that, as SO_RCVBUF/SO_SNDBUF do.
    if (size > 0x7fffffff) throw systemError('ERR_SOCKET_BUFFER_SIZE', 'Could not get or set buffer size', 'EINVAL', recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size');
    if (recv) {
      if (size > 0) sock.recvBufSize = size * 2;
      return sock.recvBufSize;
    }
    if (size > 0) this.#sendBufSize = size * 2;
    return this.#sendBufSize;
  }

  /** Hold a handle count on the stack exactly while bound, open and ref'd (a libuv handle's life). */
  #updateRef(): void {
    const want = this.#sock !== null && this.#bindState === BIND_STATE_BOUND && this.#refd;
    if (want === this.#holding) return;
    this.#holding = want;
    if (want) this.#ctx.acquire();
    else this.#ctx.release();
  }

  /**
   * Node's lookup4 / lookup6: '' means 127.0.0.1 / ::1, and every address, literals included,
   * goes through the socket's lookup option or the dns module's lookup as it is now (programs
   * and tests replace dns.lookup); a literal comes back on a later tick.
   */
  #lookup(address: string, cb: (err: Error | null, ip: string) => void): void {
    const v6 = this.type === 'udp6';
    const host = address || (v6 ? '::1' : '127.0.0.1');
    const lookup = this.#lookupFn ?? (dns.lookup as unknown as LookupFunction);
    lookup(host, v6 ? 6 : 4, (err, ip) => cb(err, ip));
  }

  /**
   * The stack has no loopback interface. RFC 1122 §3.2.1.3 (g): 127.0.0.0/8 "MUST NOT appear
   * outside a host", so such a destination must not follow a default route to the gateway.
   */
  #isMartian(addr: number): boolean {
    return (addr >>> 24) === 127 && !this.#ctx.stack.isLocalAddress(addr);
  }

  /** An IPv6 group on a udp6 socket (an IPv4 group on a udp6 socket is an IPv4 join, as on Linux). */
  #group6(group: string): boolean {
    return this.type === 'udp6' && parseIpv4(group) === null;
  }

  /** The interface of an IPv6 zone id (fe80::1%tst0 or %2); 0 when none or unknown. */
  #scope(ip: string): number {
    const i = ip.indexOf('%');
    if (i < 0) return 0;
    const z = ip.slice(i + 1);
    if (/^\d+$/.test(z)) return Number(z);
    return this.#ctx.stack.interfaces.find((x) => x.name === z)?.index ?? 0;
  }

  #enqueue(fn: () => void): void {
    if (this.#queue === undefined) {
      this.#queue = [];
      this.once(EventEmitter.errorMonitor, this.#onListenError);
      this.once('listening', this.#onListenSuccess);
    }
    this.#queue.push(fn);
  }

  readonly #onListenSuccess = (): void => {
    this.removeListener(EventEmitter.errorMonitor, this.#onListenError);
    const q = this.#queue ?? [];
    this.#queue = undefined;
    for (const f of q) f();
  };

  readonly #onListenError = (): void => {
    this.removeListener('listening', this.#onListenSuccess);
    this.#queue = undefined;
  };

  // The engine calls these once per receive burst, after the burst's input (Stack.poll's
  // event delivery): one 'message' per datagram, in order, then an ICMP error. A reply sent
  // from 'message' goes out with the iteration's other output.
  readonly #onMessage = (data: Uint8Array, addr: number, port: number, addr6: Uint8Array | null): void => {
    // A udp6 socket's peers are IPv6 addresses; an IPv4 one is shown v4-mapped, as Linux does.
    if (this.type === 'udp6') emitMessage6(this, data, addr6 !== null ? formatAddr6(addr6) : `::ffff:${formatIpv4(addr)}`, port);
    else emitMessage(this, data, addr, port);
  };

  readonly #onError = (err: NetError): void => {
    // Kernel sockets report an ICMP error on a connected socket through the next recvmsg.
    if (this.#sock) this.emit('error', errnoException(err.code, 'recvmsg'));
  };

  /** @internal */
  get _closed(): boolean { return this.#sock === null; }

  /** The socket's multicast options (tests). */
  get _multicastOptions(): { ttl: number; loopback: boolean } { return { ttl: this.#multicastTtl, loopback: this.#multicastLoopback }; }
}

function emitMessage(self: Socket, data: Uint8Array, addr: number, port: number): void {
  if (self._closed) return;
  const msg = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const rinfo: RemoteInfo = { address: formatIpv4(addr), family: 'IPv4', port, size: msg.length };
  self.emit('message', msg, rinfo);
}

function emitMessage6(self: Socket, data: Uint8Array, address: string, port: number): void {
  if (self._closed) return;
  const msg = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const rinfo: RemoteInfo = { address, family: 'IPv6', port, size: msg.length };
  self.emit('message', msg, rinfo);
}

function mapped(v4: number): Uint8Array {
  const b = new Uint8Array(16);
  b[10] = 0xff; b[11] = 0xff;
  b[12] = v4 >>> 24; b[13] = (v4 >>> 16) & 0xff; b[14] = (v4 >>> 8) & 0xff; b[15] = v4 & 0xff;
  return b;
}

/** Node's validateUint32 (the "Received" part without Node's digit grouping). */
function checkUint32(v: unknown, name: string): void {
  if (typeof v !== 'number') throw invalidArgType(name, ['number'], v);
  if (!Number.isInteger(v)) throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be an integer. Received ${v}`);
  if (v < 0 || v > 0xffffffff) {
    throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be >= 0 && <= 4294967295. Received ${v}`);
  }
}

/** Node's sendto() checks (its only difference from send()). */
export function validateSendtoArgs(offset: unknown, length: unknown, port: unknown, address: unknown): void {
  validateNumber(offset, 'offset');
  validateNumber(length, 'length');
  validateNumber(port, 'port');
  validateString(address, 'address');
}

/**
 * The argument checks of Node's dgram.createSocket / new dgram.Socket, in its order and with
 * its errors: buffer sizes, lookup, the socket type, the abort signal. (tstack/register's
 * udp4 socket runs them before it knows where the socket will live.)
 */
export function validateSocketOptions(type: unknown): void {
  let t = type;
  let options: Record<string, unknown> | undefined;
  if (type !== null && typeof type === 'object') {
    options = type as Record<string, unknown>;
    t = options['type'];
    if (options['recvBufferSize']) checkUint32(options['recvBufferSize'], 'options.recvBufferSize');
    if (options['sendBufferSize']) checkUint32(options['sendBufferSize'], 'options.sendBufferSize');
    const lookup = options['lookup'];
    if (lookup !== undefined && typeof lookup !== 'function') throw invalidArgType('lookup', ['function'], lookup);
  }
  if (t !== 'udp4' && t !== 'udp6') throw codedError(TypeError, 'ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6');
  const signal = options?.['signal'];
  if (signal !== undefined && (signal === null || typeof signal !== 'object' || !('aborted' in signal))) {
    throw invalidArgType('options.signal', ['AbortSignal'], signal);
  }
}

/** Node's dgram.createSocket(type | options, listener?); `options.stack` picks the stack. */
export function createSocket(type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void): Socket {
  return new Socket(type, listener);
}

export default { createSocket, Socket };
