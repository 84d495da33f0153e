// How many connections each remote source holds with us (in the table, any state but
// TIME_WAIT): the shield's per-source limit. An IPv4 source is its address; an IPv6 source is
// its /64, named by a keyed hash above the IPv4 range (prefixKey6), so that one table and one
// rate limiter serve both families. Typed storage: a Map keyed by an address above 2^31 boxes a
// heap number on every set, twice per connection on each side.
import { Ip4Map } from '../neighbor/ip4map.js';
import { AF_INET, prefixKey6, sourceSlot } from './ends.js';
import type { SipKey } from './siphash.js';
import type { Tcb } from './tcb.js';

export class SourceCounts {
  private readonly counts: Ip4Map<number>;

  constructor(seed: number, private readonly key: SipKey) {
    this.counts = new Ip4Map<number>(16, seed);
  }

  /** The name of the IPv6 source at b[off..]: its /64 as a keyed hash. */
  key6(b: Uint8Array, off: number): number { return prefixKey6(this.key, b, off); }

  /** Connections held by source `k` (an IPv4 address, or key6() of an IPv6 one). */
  count(k: number): number { return this.counts.get(sourceSlot(k), k >>> 0) ?? 0; }

  add(tcb: Tcb): void {
    const k = tcb.family === AF_INET ? tcb.raddr : this.key6(tcb.raddr6, 0);
    const slot = sourceSlot(k), ip = k >>> 0;
    this.counts.set(slot, ip, (this.counts.get(slot, ip) ?? 0) + 1);
  }

  remove(tcb: Tcb): void {
    const k = tcb.family === AF_INET ? tcb.raddr : this.key6(tcb.raddr6, 0);
    const slot = sourceSlot(k), ip = k >>> 0;
    const n = this.counts.get(slot, ip) ?? 0;
    if (n <= 1) this.counts.delete(slot, ip); else this.counts.set(slot, ip, n - 1);
  }
}
