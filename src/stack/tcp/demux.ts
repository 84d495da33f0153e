// Demultiplexing: which connection, TIME_WAIT entry or listener a segment belongs to.
// Connections sit in a chained hash table over the 4-tuple (a keyed 32-bit mix, so a peer
// cannot aim at one chain), chained through Tcb.hashNext; it doubles when the load passes 1.
// No Map: numeric 48-bit keys would each cost a boxed number, and inserts would allocate.
// Listeners are keyed by (address, port); a listener on a specific address beats one on the
// wildcard address, as in Linux's inet_lhash2 lookup.
import type { TcpListener } from './listen.js';
import type { Tcb } from './tcb.js';

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

  insert(tcb: Tcb): void {
    if (this.count >= this.buckets.length) this.grow();
    const i = connHash(this.hashKey, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport) & this.bucketMask;
    tcb.hashNext = this.buckets[i]!;
    this.buckets[i] = tcb;
    tcb.inTable = true;
    this.count++;
    this.refPort(tcb.lport);
  }

  remove(tcb: Tcb): void {
    if (!tcb.inTable) return;
    const i = connHash(this.hashKey, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport) & this.bucketMask;
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
        const i = connHash(this.hashKey, head.laddr, head.lport, head.raddr, head.rport) & mask;
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

  /** The listener for a segment to laddr:lport: one bound to laddr first, else a wildcard one. */
  findListener(laddr: number, lport: number): TcpListener | null {
    const list = this.listeners.get(lport);
    if (list === undefined) return null;
    let wild: TcpListener | null = null;
    for (let i = 0; i < list.length; i++) {
      const l = list[i]!;
      if (l.closed) continue;
      if (l.laddr === laddr) return l;
      if (l.laddr === 0 && wild === null) wild = l;
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

