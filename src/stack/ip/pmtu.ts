// Path MTU per destination, learned from ICMPv6 Packet Too Big (RFC 8201). Entries only lower
// the estimate, never below the IPv6 minimum link MTU, and age out so that a larger path MTU is
// found again (§4: "attempt to detect an increase ... no less than 5 minutes"; we forget after
// net.inet6.ip6.pmtu_expire seconds, 10 minutes by default as §5.3 suggests). Bounded: when the
// cache is full the entry closest to expiry makes room.
import { IPV6_MIN_MTU } from '../../wire/ipv6.js';
import { Addr6Table } from './addr6.js';

class PmtuEntry {
  mtu = 0;
  expiresAt = 0;
}

export class PmtuCache {
  private table: Addr6Table<PmtuEntry>;
  stats = { updates: 0, ignored: 0, expired: 0, evicted: 0 };

  constructor(capacity: number, private readonly seed: number) {
    this.table = new Addr6Table<PmtuEntry>(capacity, seed);
  }

  /** Resizes the (still empty) cache. */
  setCapacity(capacity: number): void {
    if (this.table.size === 0 && capacity !== this.table.capacity) this.table = new Addr6Table<PmtuEntry>(capacity, this.seed);
  }

  get size(): number { return this.table.size; }

  /**
   * The path MTU towards dst[off..] at `now`, capped by `linkMtu` (0 = no entry: use linkMtu).
   */
  get(dst: Uint8Array, off: number, linkMtu: number, now: number): number {
    const s = this.table.find(0, dst, off);
    if (s < 0) return linkMtu;
    const e = this.table.value(s)!;
    if (e.expiresAt <= now) { this.table.remove(s); this.stats.expired++; return linkMtu; }
    return e.mtu < linkMtu ? e.mtu : linkMtu;
  }

  /**
   * A Packet Too Big reported `mtu` for dst[off..]. RFC 8201 §4: "A node MUST NOT reduce its
   * estimate of the Path MTU below the IPv6 minimum link MTU" and "MUST NOT increase its
   * estimate ... in response to the contents of a Packet Too Big message". Returns the new
   * estimate, or 0 when nothing changed.
   */
  update(dst: Uint8Array, off: number, mtu: number, linkMtu: number, now: number, ageMs: number): number {
    if (mtu < IPV6_MIN_MTU) mtu = IPV6_MIN_MTU;
    const current = this.get(dst, off, linkMtu, now);
    if (mtu >= current) { this.stats.ignored++; return 0; }
    let s = this.table.find(0, dst, off);
    if (s < 0) {
      if (this.table.full) this.evictOne();
      s = this.table.insert(0, dst, off, new PmtuEntry());
      if (s < 0) return 0;
    }
    const e = this.table.value(s)!;
    e.mtu = mtu;
    e.expiresAt = now + ageMs;
    this.stats.updates++;
    return mtu;
  }

  clear(): void { this.table.forEach((_e, s) => this.table.remove(s)); }

  private evictOne(): void {
    let victim = -1, soonest = Infinity;
    this.table.forEach((e, s) => { if (e.expiresAt < soonest) { soonest = e.expiresAt; victim = s; } });
    if (victim >= 0) { this.table.remove(victim); this.stats.evicted++; }
  }
}
