// A handle with the shape of Node's own TCP handle (lib/net.js talks to `TCP` from
// internalBinding('tcp_wrap')), backed by a tstack TCP socket. `tstack/register` gives one to a
// `new net.Socket()` whose connect() the routing policy sends to the stack, so the program's
// own net.Socket object — `instanceof net.Socket`, Node's own argument validation, DNS lookup,
// errors, events, timeouts and state — runs on the stack. That is how `pg`, `mysql2`, `redis`
// and many other clients connect (docs/compat.md).
//
// What net.Socket calls on its handle, and what this one does:
//   connect(req, address, port) → 0 or -errno; later req.oncomplete(status, handle, req, r, w)
//   bind(address, port), bind6(address, port, flags), connect6(req, address, port): IPv6 too
//   readStart()/readStop() and `reading`; data goes to the owner with push() as Node's
//     onStreamRead does (Node's own onread reads a private shared array, so it is not used)
//   shutdown(req) → 1 (done: the FIN follows the queued data), close(cb), reset(cb)
//   getsockname(out)/getpeername(out), setNoDelay, setKeepAlive, ref/unref/hasRef,
//   bytesRead/bytesWritten/writeQueueSize.
// Writes do not use Node's writeGeneric (it reads the result of the write from the same private
// array): patch-node.ts routes net.Socket.prototype._writeGeneric here for this handle.
import { Duplex } from 'node:stream';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../wire/addr.js';
import { Errno, type ErrnoCode } from '../base/errors.js';
import type { ConnectOptions, TcpError, TcpSocket } from '../stack/tcp/socket.js';
import type { StackContext } from './runtime.js';
import { errnoException } from './errors.js';

const READ_CHUNK = 64 * 1024;

/** What the handle needs of its owner (a net.Socket). */
interface Owner extends Duplex {
  _unrefTimer(): void;
}

/** Node's TCPConnectWrap as lib/net.js fills it. */
interface ConnectReq {
  oncomplete: (status: number, handle: StackTcpHandle, req: ConnectReq, readable: boolean, writable: boolean) => void;
  address: string;
  port: number;
}

function uvErr(code: ErrnoCode): number { return -Errno[code]; }

function codeOf(err: unknown): ErrnoCode {
  const code = (err as TcpError | undefined)?.code;
  if (typeof code === 'string' && code in Errno) return code as ErrnoCode;
  if (err instanceof Error && typeof code !== 'string') throw err;
  return 'EINVAL';
}

export class StackTcpHandle {
  /** Node's handle.reading: lib/net.js sets it around readStart/readStop. */
  reading = false;
  /** Bytes accepted by write() that the stack has not taken yet (Node's writeQueueSize). */
  writeQueueSize = 0;
  bytesRead = 0;
  bytesWritten = 0;
  /** Set by lib/net.js (onStreamRead); unused, see the file header. */
  onread: unknown = null;
  readonly fd = -1;

  #ctx: StackContext;
  #ownerKey: symbol;
  #tcp: TcpSocket | null = null;
  #laddr = 0;
  #lport = 0;
  #connecting = false;
  #eof = false;
  #eofDelivered = false;
  #refd = true;
  #holding = false;
  #closed = false;
  #pending: { data: Uint8Array; cb: (err?: Error | null) => void } | null = null;

  /** `ownerKey`: Node's owner_symbol, under which lib/net.js stores the net.Socket on its handle. */
  constructor(ctx: StackContext, ownerKey: symbol) {
    this.#ctx = ctx;
    this.#ownerKey = ownerKey;
  }

  get #owner(): Owner | undefined { return (this as unknown as Record<symbol, Owner | undefined>)[this.#ownerKey]; }

  // ---- connecting ------------------------------------------------------------------------

  bind(address: string, port: number): number {
    const addr = parseIpv4(address);
    if (addr === null) return uvErr('EINVAL');
    if (addr !== 0 && !this.#ctx.stack.isLocalAddress(addr)) return uvErr('EADDRNOTAVAIL');
    this.#laddr = addr;
    this.#lport = port | 0;
    return 0;
  }

  bind6(address: string, port: number): number {
    const a = parseIpv6(address);
    if (a === null) return uvErr('EINVAL');
    if (a.some((x) => x !== 0) && !this.#ctx.stack.isLocalAddress6(a)) return uvErr('EADDRNOTAVAIL');
    this.#laddr6 = a;
    this.#lport = port | 0;
    return 0;
  }

  connect6(req: ConnectReq, address: string, port: number): number {
    const raddr6 = parseIpv6(address);
    if (raddr6 === null) return uvErr('EINVAL');
    return this.#connect(req, { raddr: 0, raddr6, rport: port, ...(this.#laddr6 && { laddr6: this.#laddr6 }), ...(this.#lport && { lport: this.#lport }) });
  }

  #laddr6: Uint8Array | null = null;

  connect(req: ConnectReq, address: string, port: number): number {
    const raddr = parseIpv4(address);
    if (raddr === null) return uvErr('EINVAL');
    return this.#connect(req, { raddr, rport: port, ...(this.#laddr && { laddr: this.#laddr }), ...(this.#lport && { lport: this.#lport }) });
  }

  #connect(req: ConnectReq, opts: ConnectOptions): number {
    if (this.#closed || this.#tcp !== null) return uvErr('EINVAL');
    let tcp: TcpSocket;
    try {
      tcp = this.#ctx.stack.tcp.connect(opts);
    } catch (e) {
      return uvErr(codeOf(e));
    }
    this.#tcp = tcp;
    this.#connecting = true;
    this.#updateRef();
    tcp.onConnect = () => {
      this.#connecting = false;
      req.oncomplete(0, this, req, true, true);
    };
    tcp.onData = () => { if (this.reading) this.#pull(); };
    tcp.onEnd = () => { this.#eof = true; if (this.reading) this.#pull(); };
    tcp.onDrain = () => this.#drain();
    tcp.onClose = (err?: TcpError) => {
      if (!err) { if (this.#eof && this.reading) this.#pull(); return; }
      const code = codeOf(err);
      if (this.#connecting) {
        this.#connecting = false;
        req.oncomplete(uvErr(code), this, req, false, false);
        return;
      }
      const owner = this.#owner;
      if (owner && !owner.destroyed) owner.destroy(errnoException(code, 'read'));
    };
    return 0;
  }

  // ---- reading ---------------------------------------------------------------------------

  readStart(): number {
    this.reading = true;
    this.#pull();
    return 0;
  }

  readStop(): number {
    this.reading = false;
    return 0;
  }

  /** Node's onStreamRead: push what the stack holds until the stream says stop; EOF once drained. */
  #pull(): void {
    const owner = this.#owner;
    for (;;) {
      const tcp = this.#tcp;
      if (tcp === null || !owner || owner.destroyed || !this.reading) return;
      const avail = tcp.readableLength;
      if (avail === 0) {
        if (this.#eof && !this.#eofDelivered) {
          this.#eofDelivered = true;
          this.reading = false;
          owner.push(null);
          owner.read(0);
        }
        return;
      }
      const chunk = Buffer.allocUnsafe(avail < READ_CHUNK ? avail : READ_CHUNK);
      const n = tcp.readInto(chunk, 0, chunk.length);
      this.bytesRead += n;
      owner._unrefTimer();
      if (!owner.push(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        this.reading = false;
        return;
      }
    }
  }

  // ---- writing (patch-node.ts's _writeGeneric) -------------------------------------------

  /** Hands `chunks` to the stack; `cb` runs once all of it is taken (at once when it fits). */
  write(chunks: Uint8Array[], cb: (err?: Error | null) => void): void {
    const tcp = this.#tcp;
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (tcp === null) { cb(errnoException('EBADF', 'write')); return; }
    this.bytesWritten += data.length;
    let n: number;
    try {
      n = tcp.write(data);
    } catch (e) {
      cb(errnoException(codeOf(e), 'write'));
      return;
    }
    if (n === data.length) { cb(); return; }
    this.#pending = { data: data.subarray(n), cb };
    this.writeQueueSize = data.length - n;
  }

  #drain(): void {
    const p = this.#pending;
    const tcp = this.#tcp;
    if (p === null || tcp === null) return;
    let n: number;
    try {
      n = tcp.write(p.data);
    } catch (e) {
      this.#pending = null;
      this.writeQueueSize = 0;
      p.cb(errnoException(codeOf(e), 'write'));
      return;
    }
    this.#owner?._unrefTimer();
    if (n < p.data.length) { p.data = p.data.subarray(n); this.writeQueueSize = p.data.length; return; }
    this.#pending = null;
    this.writeQueueSize = 0;
    p.cb();
  }

  shutdown(_req: unknown): number {
    const tcp = this.#tcp;
    if (tcp === null) return uvErr('ENOTCONN');
    tcp.shutdown();
    return 1;
  }

  // ---- closing ---------------------------------------------------------------------------

  close(cb?: () => void): void {
    this.#release(false);
    // libuv calls the close callback on a later loop iteration.
    if (typeof cb === 'function') setImmediate(cb);
  }

  reset(cb?: () => void): number {
    this.#release(true);
    if (typeof cb === 'function') setImmediate(cb);
    return 0;
  }

  #release(abort: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.reading = false;
    const tcp = this.#tcp;
    if (tcp !== null) {
      tcp.onConnect = tcp.onData = tcp.onEnd = tcp.onDrain = null;
      tcp.onClose = null;
      if (abort) tcp.abort(); else tcp.close();
    }
    const p = this.#pending;
    this.#pending = null;
    this.writeQueueSize = 0;
    this.#updateRef();
    // As Node's onWriteComplete for a destroyed stream: the callback, without an error.
    p?.cb(null);
  }

  // ---- names and options -----------------------------------------------------------------

  getsockname(out: Record<string, unknown>): number {
    const tcp = this.#tcp;
    if (tcp === null || this.#closed) return uvErr('EBADF');
    const six = tcp.family === 6;
    out['address'] = six ? formatIpv6(tcp.localAddress6) : tcp.v4mapped ? `::ffff:${formatIpv4(tcp.localAddress)}` : formatIpv4(tcp.localAddress);
    out['family'] = six || tcp.v4mapped ? 'IPv6' : 'IPv4';
    out['port'] = tcp.localPort;
    return 0;
  }

  getpeername(out: Record<string, unknown>): number {
    const tcp = this.#tcp;
    if (tcp === null || this.#closed || this.#connecting) return uvErr('ENOTCONN');
    const six = tcp.family === 6;
    out['address'] = six ? formatIpv6(tcp.remoteAddress6) : tcp.v4mapped ? `::ffff:${formatIpv4(tcp.remoteAddress)}` : formatIpv4(tcp.remoteAddress);
    out['family'] = six || tcp.v4mapped ? 'IPv6' : 'IPv4';
    out['port'] = tcp.remotePort;
    return 0;
  }

  setNoDelay(on: boolean): number {
    this.#tcp?.setNoDelay(!!on);
    return 0;
  }

  /** `delay` in seconds, as lib/net.js passes it (0: the stack's default idle time). */
  setKeepAlive(on: boolean, delay: number): number {
    this.#tcp?.setKeepAlive(!!on, delay > 0 ? delay * 1000 : undefined);
    return 0;
  }

  ref(): void { this.#refd = true; this.#updateRef(); }
  unref(): void { this.#refd = false; this.#updateRef(); }
  hasRef(): boolean { return this.#refd && !this.#closed; }

  /** The stack is kept running exactly while the socket is open and ref'd. */
  #updateRef(): void {
    const want = this.#tcp !== null && !this.#closed && this.#refd;
    if (want === this.#holding) return;
    this.#holding = want;
    if (want) this.#ctx.acquire(); else this.#ctx.release();
  }
}
