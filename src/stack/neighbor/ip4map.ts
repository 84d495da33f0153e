// A map from (interface index, IPv4 address) to a value, kept in typed storage: the key is two
// int32 columns, never a boxed number (a Map keyed by ifIndex * 2^32 + ip makes a heap double
// of every lookup key). Open addressing with linear probing and backward-shift deletion; it
// grows by doubling at half load. The hash is seeded so that chosen addresses cannot aim at one
// run of slots. Used by the ARP cache on every transmitted packet.

export class Ip4Map<T> {
  private ifs: Int32Array;
  private ips: Int32Array;
  private vals: (T | undefined)[];
  private mask: number;
  private count = 0;

  constructor(capacity = 64, private readonly seed = 0x9e3779b9) {
    let n = 16;
    while (n < capacity * 2) n <<= 1;
    this.ifs = new Int32Array(n);
    this.ips = new Int32Array(n);
    this.vals = new Array<T | undefined>(n).fill(undefined);
    this.mask = n - 1;
  }

  get size(): number { return this.count; }

  private home(ifIndex: number, ip: number): number {
    let h = Math.imul((ip | 0) ^ this.seed, 0x85ebca6b) ^ ifIndex;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) & this.mask;
  }

  /** The value for (ifIndex >= 1, ip), or undefined. Allocates nothing. */
  get(ifIndex: number, ip: number): T | undefined {
    const ifs = this.ifs, ips = this.ips, m = this.mask, k = ip | 0;
    for (let i = this.home(ifIndex, ip); ifs[i] !== 0; i = (i + 1) & m) {
      if (ifs[i] === ifIndex && ips[i] === k) return this.vals[i];
    }
    return undefined;
  }

  set(ifIndex: number, ip: number, value: T): void {
    if (ifIndex <= 0) throw new RangeError('Ip4Map: interface indices start at 1');
    const ifs = this.ifs, ips = this.ips, m = this.mask, k = ip | 0;
    let i = this.home(ifIndex, ip);
    for (; ifs[i] !== 0; i = (i + 1) & m) {
      if (ifs[i] === ifIndex && ips[i] === k) { this.vals[i] = value; return; }
    }
    ifs[i] = ifIndex; ips[i] = k; this.vals[i] = value;
    if (++this.count * 2 > this.mask + 1) this.grow();
  }

  delete(ifIndex: number, ip: number): boolean {
    const ifs = this.ifs, ips = this.ips, m = this.mask, k = ip | 0;
    let i = this.home(ifIndex, ip);
    for (; ifs[i] !== 0; i = (i + 1) & m) if (ifs[i] === ifIndex && ips[i] === k) break;
    if (ifs[i] === 0) return false;
    // Backward shift: move later members of the run into the hole when their home allows it.
    for (let j = (i + 1) & m; ifs[j] !== 0; j = (j + 1) & m) {
      const h = this.home(ifs[j]!, ips[j]!);
      if (((j - h) & m) >= ((j - i) & m)) { ifs[i] = ifs[j]!; ips[i] = ips[j]!; this.vals[i] = this.vals[j]; i = j; }
    }
    ifs[i] = 0; ips[i] = 0; this.vals[i] = undefined;
    this.count--;
    return true;
  }

  private grow(): void {
    const ifs = this.ifs, ips = this.ips, vals = this.vals;
    const n = (this.mask + 1) * 2;
    this.ifs = new Int32Array(n); this.ips = new Int32Array(n);
    this.vals = new Array<T | undefined>(n).fill(undefined);
    this.mask = n - 1;
    this.count = 0;
    for (let i = 0; i < ifs.length; i++) if (ifs[i] !== 0) this.set(ifs[i]!, ips[i]!, vals[i]!);
  }
}
