// Demultiplexing: which connection, TIME_WAIT entry or listener a segment belongs to.
// Connections sit in a chained hash table over the 4-tuple (a keyed 32-bit mix, so a peer
// cannot aim at one chain), chained through Tcb.hashNext; it doubles when the load passes 1.
// No Map: numeric 48-bit keys would each cost a boxed number, and inserts would allocate.
// Listeners are keyed by (address, port); a listener on a specific address beats one on the
// wildcard address, as in Linux's inet_lhash2 lookup.
import type { TcpListener } from './listen.js';
import type { Tcb } from './tcb.js';
import { AF_INET6, connHash6, eq6, isZero6 } from './ends.js';

export class TcpDemux {
  private buckets: (Tcb | null)[] = new Array<Tcb | null>(256).fill(null);
  private bucketMask = 255;
  /** Listeners by local port; few per port (one per address, or a SO_REUSEPORT group). */
  private readonly listeners = new Map<number, TcpListener[]>();
  private listenerTotal = 0;
  /** Connections and TIME_WAIT entries using each local port. */
  readonly portRefs = new Uint32Array(65536);
  /** Connections in the table. */
  count = 0;
  /** Told when a local port becomes used (a listener, connection or TIME_WAIT entry) or free. */
  onPortChange: ((port: number, inUse: boolean) => void) | null = null;

  constructor(private readonly hashKey: number) {}

  /** The table's hash of a 4-tuple. */
  hash(laddr: number, lport: number, raddr: number, rport: number): number {
    return connHash(this.hashKey, laddr, lport, raddr, rport);
  }

  /** The connection in the chain of hash `h` with this 4-tuple, or null. */
  lookupHashed(h: number, laddr: number, lport: number, raddr: number, rport: number): Tcb | null {
    let t: Tcb | null = this.buckets[h & this.bucketMask]!;
    while (t !== null && (t.lport !== lport || t.rport !== rport || t.raddr !== raddr || t.laddr !== laddr)) t = t.hashNext;
    return t;
  }

  lookup(laddr: number, lport: number, raddr: number, rport: number): Tcb | null {
    return this.lookupHashed(connHash(this.hashKey, laddr, lport, raddr, rport), laddr, lport, raddr, rport);
  }

  /** The table's hash of an IPv6 4-tuple (addresses at l[lOff..], r[rOff..]). */
  hash6(l: Uint8Array, lOff: number, lport: number, r: Uint8Array, rOff: number, rport: number): number {
    return connHash6(this.hashKey, l, lOff, lport, r, rOff, rport);
  }

  /** The IPv6 connection in the chain of hash `h` with this 4-tuple, or null (v4 entries have laddr6 = NO_ADDR6). */
  lookup6Hashed(h: number, l6: Uint8Array, lport: number, r6: Uint8Array, rport: number): Tcb | null {
    let t: Tcb | null = this.buckets[h & this.bucketMask]!;
    while (t !== null && (t.lport !== lport || t.rport !== rport || t.family !== AF_INET6 || !eq6(t.raddr6, r6) || !eq6(t.laddr6, l6))) t = t.hashNext;
    return t;
  }

  lookup6(l6: Uint8Array, lport: number, r6: Uint8Array, rport: number): Tcb | null {
    return this.lookup6Hashed(connHash6(this.hashKey, l6, 0, lport, r6, 0, rport), l6, lport, r6, rport);
  }

  /** A TCB's own hash, either family. */
  hashOf(t: Tcb): number {
    return t.family === AF_INET6 ? connHash6(this.hashKey, t.laddr6, 0, t.lport, t.raddr6, 0, t.rport)
      : connHash(this.hashKey, t.laddr, t.lport, t.raddr, t.rport);
  }

  insert(tcb: Tcb): void {
    if (this.count >= this.buckets.length) this.grow();
    const i = this.hashOf(tcb) & this.bucketMask;
    tcb.hashNext = this.buckets[i]!;
    this.buckets[i] = tcb;
    tcb.inTable = true;
    this.count++;
    this.refPort(tcb.lport);
  }

  remove(tcb: Tcb): void {
    if (!tcb.inTable) return;
    const i = this.hashOf(tcb) & this.bucketMask;
    let t: Tcb | null = this.buckets[i]!;
    if (t === tcb) {
      this.buckets[i] = tcb.hashNext;
    } else {
      while (t && t.hashNext !== tcb) t = t.hashNext;
      if (t) t.hashNext = tcb.hashNext;
    }
    tcb.hashNext = null;
    tcb.inTable = false;
    this.count--;
    this.unrefPort(tcb.lport);
  }

  /** A connection or TIME_WAIT entry took `port`. */
  refPort(port: number): void {
    if (this.portRefs[port]!++ === 0 && this.onPortChange !== null && !this.listeners.has(port)) this.onPortChange(port, true);
  }

  /** A connection or TIME_WAIT entry let `port` go. */
  unrefPort(port: number): void {
    if (--this.portRefs[port]! === 0 && this.onPortChange !== null && !this.listeners.has(port)) this.onPortChange(port, false);
  }

  /** Every connection in the table (allocates). */
  connections(): Tcb[] {
    const out: Tcb[] = [];
    for (const head of this.buckets) for (let t: Tcb | null = head; t; t = t.hashNext) out.push(t);
    return out;
  }

  /** Doubles the bucket array and rehashes every chain (amortised: load stays at most 1). */
  private grow(): void {
    const old = this.buckets;
    const n = old.length * 2;
    const b = new Array<Tcb | null>(n).fill(null);
    const mask = n - 1;
    for (let head of old) {
      while (head !== null) {
        const next: Tcb | null = head.hashNext;
        const i = this.hashOf(head) & mask;
        head.hashNext = b[i]!;
        b[i] = head;
        head = next;
      }
    }
    this.buckets = b;
    this.bucketMask = mask;
  }

  // ---- listeners ----

  get listenerCount(): number { return this.listenerTotal; }

  addListener(l: TcpListener): void {
    let list = this.listeners.get(l.localPort);
    if (!list) {
      list = [];
      this.listeners.set(l.localPort, list);
      if (this.portRefs[l.localPort] === 0 && this.onPortChange !== null) this.onPortChange(l.localPort, true);
    }
    list.push(l);
    this.listenerTotal++;
  }

  removeListener(l: TcpListener): void {
    const list = this.listeners.get(l.localPort);
    const i = list ? list.indexOf(l) : -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) {
      this.listeners.delete(l.localPort);
      if (this.portRefs[l.localPort] === 0 && this.onPortChange !== null) this.onPortChange(l.localPort, false);
    }
    this.listenerTotal--;
  }

  /** True when some listener holds `port` (any address). */
  hasListener(port: number): boolean { return this.listeners.has(port); }

  /**
   * The listener for an IPv6 segment to l6:lport: one bound to l6 first, else one on :: (both
   * dual-stack and ipv6Only ones take IPv6). IPv4 listeners never see IPv6 segments.
   */
  findListener6(l6: Uint8Array, lport: number): TcpListener | null {
    const list = this.listeners.get(lport);
    if (list === undefined) return null;
    let wild: TcpListener | null = null;
    for (let i = 0; i < list.length; i++) {
      const l = list[i]!;
      if (l.closed || l.family !== AF_INET6) continue;
      if (eq6(l.laddr6, l6)) return l;
      if (wild === null && isZero6(l.laddr6)) wild = l;
    }
    return wild;
  }

  /**
   * The listener for a segment to laddr:lport: one bound to laddr first, else a wildcard one.
   * IPv6 listeners take part through their laddr: 0 for a dual-stack ::, a.b.c.d for
   * ::ffff:a.b.c.d, and NO_V4 (an address no IPv4 segment carries) otherwise.
   */
  findListener(laddr: number, lport: number): TcpListener | null {
    const list = this.listeners.get(lport);
    if (list === undefined) return null;
    let wild: TcpListener | null = null;
    for (let i = 0; i < list.length; i++) {
      const l = list[i]!;
      if (l.closed) continue;
      if (l.laddr === laddr) return l;
      // Linux's compute_score: an IPv4 wildcard listener beats a dual-stack IPv6 one.
      if (l.laddr === 0 && (wild === null || (wild.family === AF_INET6 && l.family !== AF_INET6))) wild = l;
    }
    return wild;
  }

  /** Every listener (allocates). */
  allListeners(): TcpListener[] {
    const out: TcpListener[] = [];
    for (const list of this.listeners.values()) out.push(...list);
    return out;
  }
}

/**
 * The connection table's hash of a 4-tuple under a random key (multiply-xorshift rounds, all in
 * 32-bit integers): many connections from one client to one port, or from many clients to one
 * listener, spread over the buckets.
 */
export function connHash(key: number, laddr: number, lport: number, raddr: number, rport: number): number {
  let h = Math.imul(raddr ^ key, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ laddr, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 13) ^ ((lport << 16) | rport), 0xc2b2ae3d);
  return (h ^ (h >>> 16)) >>> 0;
}

