// Port ownership: the table of bound ports (bind/listen/connect, Linux's reuse rules) and
// ephemeral port selection, RFC 6056 §3.3.3 "Algorithm 3: Simple Hash-Based Port Selection":
//
//   offset = F(local_IP, remote_IP, remote_port, secret_key);
//   count = num_ephemeral;
//   do {
//       port = min_ephemeral + (next_ephemeral + offset) % num_ephemeral;
//       next_ephemeral++;
//       if(check_suitable_port(port)) return port;
//       count--;
//   } while (count > 0);
//   return ERROR;
//
// Each destination sees its own sequence of ports starting at a secret offset, so ports are
// hard to guess off-path, and a port is not reused for the same destination until the whole
// range has been cycled through. F is SipHash-2-4 with a key drawn once.
import { type SipKey, siphash24, sipKeyFromRandom } from './siphash.js';
import { eq6, isZero6, v4Mapped } from './ends.js';

export class EphemeralPorts {
  private readonly key: SipKey;
  private first: number;
  private last: number;
  private nextEphemeral: number;
  // F() of the last destination: clients mostly connect to one server over and over.
  private lastLaddr = -1;
  private lastRaddr = -1;
  private lastRport = -1;
  private lastOffset = 0;

  /** Default range is IANA's dynamic ports (RFC 6056 §3.2: 49152-65535). */
  constructor(random32: () => number, first = 49152, last = 65535) {
    this.key = sipKeyFromRandom(random32);
    // RFC 6056 §3.3.3: "next_ephemeral = initial_value" — random, so a restart does not
    // replay the same ports.
    this.nextEphemeral = random32() >>> 0;
    this.first = 0;
    this.last = 0;
    this.setRange(first, last);
  }

  /** Sets the inclusive range [first, last]; throws on an invalid one. */
  setRange(first: number, last: number): void {
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 65535 || first > last) {
      throw new RangeError(`invalid ephemeral port range ${first}-${last}`);
    }
    this.first = first;
    this.last = last;
  }

  get rangeFirst(): number { return this.first; }
  get rangeLast(): number { return this.last; }

  /**
   * Chooses a local port for a connection from `laddr` to `raddr`:`rport`. `inUse(p)` says
   * whether p cannot be used (e.g. the 4-tuple exists or a listener holds the port).
   * Returns -1 when every port in the range is unsuitable.
   */
  select(laddr: number, raddr: number, rport: number, inUse: (lport: number) => boolean): number {
    const num = this.last - this.first + 1;
    let offset = this.lastOffset;
    if (laddr !== this.lastLaddr || raddr !== this.lastRaddr || rport !== this.lastRport) {
      offset = siphash24(this.key, laddr, raddr, rport & 0xffff);
      this.lastLaddr = laddr; this.lastRaddr = raddr; this.lastRport = rport; this.lastOffset = offset;
    }
    for (let count = num; count > 0; count--) {
      const port = this.first + ((this.nextEphemeral + offset) % 4294967296) % num;
      this.nextEphemeral = (this.nextEphemeral + 1) >>> 0;
      if (!inUse(port)) return port;
    }
    return -1;
  }
}

/**
 * A local address and port a socket holds: bound by bind(), by listen(), or by connect() on a
 * socket that bound first (Linux's inet_bind_bucket owners). Port 0 until one is chosen.
 */
export class TcpBinding {
  /** Listening: SO_REUSEADDR no longer lets another socket share the port. */
  listening = false;
  /** In the port table (a port was chosen and the binding not released). */
  held = false;
  /**
   * An IPv6 binding: its address (all zero = ::). `addr` is then what the binding covers of
   * IPv4: 0 for a dual-stack ::, a.b.c.d for ::ffff:a.b.c.d, NO_V4 for none (IPV6_V6ONLY or a
   * plain IPv6 address).
   */
  addr6: Uint8Array | null = null;
  constructor(readonly addr: number, public port: number, public reuseAddr: boolean) {}
}

/** The IPv4 part of an IPv6 binding that covers none: an address no IPv4 segment is sent to. */
export const NO_V4 = 0xffffffff;

/** Makes an IPv6 binding for `addr6` (copied), IPV6_V6ONLY when `v6Only`. */
export function binding6(addr6: Uint8Array, port: number, reuseAddr: boolean, v6Only: boolean): TcpBinding {
  const a = Uint8Array.from(addr6);
  const mapped = v4Mapped(a);
  const b = new TcpBinding(mapped >= 0 ? mapped : isZero6(a) && !v6Only ? 0 : NO_V4, port, reuseAddr);
  b.addr6 = a;
  return b;
}

/** Linux's overlap of two bindings' addresses (inet_rcv_saddr_equal, both families). */
function overlaps(addr: number, addr6: Uint8Array | null, o: TcpBinding): boolean {
  if (addr6 !== null && o.addr6 !== null) return isZero6(addr6) || isZero6(o.addr6) || eq6(addr6, o.addr6);
  // IPv4 against IPv4, or one side's IPv4 coverage (NO_V4: none) against the other.
  if (addr === NO_V4 || o.addr === NO_V4) return false;
  return o.addr === 0 || addr === 0 || o.addr === addr;
}

/**
 * The one table of bound TCP ports, shared by the engine's listen() and the POSIX layer's
 * bind(). Linux's inet_csk_bind_conflict for sockets of one owner: two bindings of a port
 * conflict when their addresses overlap (equal, or either is the wildcard 0), unless both set
 * SO_REUSEADDR and the one already there is not listening.
 */
export class TcpPortTable {
  private readonly byPort = new Map<number, TcpBinding[]>();

  /** True when some binding holds `port`. */
  has(port: number): boolean { return this.byPort.has(port); }

  /** Whether binding addr:port (with these flags) would conflict with a binding other than `self`. */
  conflicts(addr: number, port: number, reuseAddr: boolean, self: TcpBinding | null = null, addr6: Uint8Array | null = null): boolean {
    const list = this.byPort.get(port);
    if (list === undefined) return false;
    for (const o of list) {
      if (o === self) continue;
      if (!overlaps(addr, addr6, o)) continue;
      if (reuseAddr && o.reuseAddr && !o.listening) continue;
      return true;
    }
    return false;
  }

  /** Puts `b` in the table at `port` (the caller checked conflicts). */
  hold(b: TcpBinding, port: number): void {
    if (b.held) this.release(b);
    b.port = port;
    let list = this.byPort.get(port);
    if (!list) { list = []; this.byPort.set(port, list); }
    list.push(b);
    b.held = true;
  }

  /** Takes `b` out of the table (idempotent). */
  release(b: TcpBinding): void {
    if (!b.held) return;
    const list = this.byPort.get(b.port);
    const i = list ? list.indexOf(b) : -1;
    if (i >= 0) list!.splice(i, 1);
    if (list && list.length === 0) this.byPort.delete(b.port);
    b.held = false;
  }
}
