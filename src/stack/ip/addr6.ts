// IPv6 addresses as the engine keys them: four u32 words kept in typed storage, never a string
// or a boxed number. Addr6Table maps (interface index, address) to a slot; callers keep their
// per-entry state in objects indexed by slot. Used by the neighbour cache and the path MTU cache.

/** Reads word `i` (0..3) of the address at b[off..off+16) as a signed int32 (stays a small value for V8). */
export function word6(b: Uint8Array, off: number, i: number): number {
  const o = off + 4 * i;
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

/** Compares the address at a[aOff..] with the one at b[bOff..]. */
export function addr6Equals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

export function copyAddr6(to: Uint8Array, toOff: number, from: Uint8Array, fromOff: number): void {
  for (let i = 0; i < 16; i++) to[toOff + i] = from[fromOff + i]!;
}

/** True when the first `len` bits of the two addresses agree. */
export function prefixMatch(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  let i = 0;
  for (; len >= 8; i++, len -= 8) if (a[aOff + i] !== b[bOff + i]) return false;
  if (len === 0) return true;
  const m = (0xff << (8 - len)) & 0xff;
  return (a[aOff + i]! & m) === (b[bOff + i]! & m);
}

/** Copies the first `len` bits of `from` into `to`, zeroing the rest. */
export function maskAddr6(to: Uint8Array, toOff: number, from: Uint8Array, fromOff: number, len: number): void {
  for (let i = 0; i < 16; i++) {
    const bits = len - 8 * i;
    const m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
    to[toOff + i] = from[fromOff + i]! & m;
  }
}

const NIL = -1;
const KW = 5; // words per key: interface index + four address words

/**
 * A bounded chained hash table keyed by (ifIndex, IPv6 address). Keys, chains and the free list
 * are Int32Arrays; values live in a plain array indexed by slot. Lookups read the address
 * straight from packet bytes and allocate nothing. The hash is seeded so that an attacker who
 * picks source addresses cannot aim them all at one chain.
 */
export class Addr6Table<T> {
  readonly capacity: number;
  private readonly keys: Int32Array;
  private readonly nextInChain: Int32Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly values: (T | undefined)[];
  private freeHead = 0;
  private count = 0;

  constructor(capacity: number, private readonly seed = 0x9e3779b9) {
    this.capacity = capacity;
    this.keys = new Int32Array(capacity * KW);
    this.nextInChain = new Int32Array(capacity);
    let nb = 16;
    while (nb < capacity * 2) nb <<= 1;
    this.buckets = new Int32Array(nb).fill(NIL);
    this.mask = nb - 1;
    this.values = new Array<T | undefined>(capacity).fill(undefined);
    for (let i = 0; i < capacity; i++) this.nextInChain[i] = i + 1 < capacity ? i + 1 : NIL;
    if (capacity === 0) this.freeHead = NIL;
  }

  get size(): number { return this.count; }
  get full(): boolean { return this.freeHead === NIL; }

  private hash(ifIndex: number, b: Uint8Array, off: number): number {
    let h = this.seed ^ ifIndex;
    for (let i = 0; i < 4; i++) {
      h = Math.imul(h ^ word6(b, off, i), 0x85ebca6b);
      h ^= h >>> 13;
    }
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) & this.mask;
  }

  /** The slot holding (ifIndex, address at b[off..]), or -1. */
  find(ifIndex: number, b: Uint8Array, off: number): number {
    const k = this.keys;
    for (let s = this.buckets[this.hash(ifIndex, b, off)]!; s !== NIL; s = this.nextInChain[s]!) {
      const o = s * KW;
      if (k[o] === ifIndex && k[o + 1] === word6(b, off, 0) && k[o + 2] === word6(b, off, 1)
        && k[o + 3] === word6(b, off, 2) && k[o + 4] === word6(b, off, 3)) return s;
    }
    return NIL;
  }

  /** Inserts a new key (the caller checked it is absent); returns its slot, or -1 when full. */
  insert(ifIndex: number, b: Uint8Array, off: number, value: T): number {
    const s = this.freeHead;
    if (s === NIL) return NIL;
    this.freeHead = this.nextInChain[s]!;
    const o = s * KW, k = this.keys;
    k[o] = ifIndex;
    for (let i = 0; i < 4; i++) k[o + 1 + i] = word6(b, off, i);
    const h = this.hash(ifIndex, b, off);
    this.nextInChain[s] = this.buckets[h]!;
    this.buckets[h] = s;
    this.values[s] = value;
    this.count++;
    return s;
  }

  remove(slot: number): void {
    const v = this.values[slot];
    if (v === undefined) return;
    const o = slot * KW;
    const tmp = ADDR_SCRATCH;
    this.addressInto(slot, tmp, 0);
    const h = this.hash(this.keys[o]!, tmp, 0);
    let prev = NIL;
    for (let s = this.buckets[h]!; s !== NIL; prev = s, s = this.nextInChain[s]!) {
      if (s !== slot) continue;
      if (prev === NIL) this.buckets[h] = this.nextInChain[s]!; else this.nextInChain[prev] = this.nextInChain[s]!;
      break;
    }
    this.values[slot] = undefined;
    this.nextInChain[slot] = this.freeHead;
    this.freeHead = slot;
    this.count--;
  }

  value(slot: number): T | undefined { return this.values[slot]; }
  ifIndexOf(slot: number): number { return this.keys[slot * KW]!; }

  /** Writes the slot's address at out[off..off+16). */
  addressInto(slot: number, out: Uint8Array, off: number): void {
    const o = slot * KW + 1, k = this.keys;
    for (let i = 0; i < 4; i++) {
      const w = k[o + i]!;
      out[off + 4 * i] = w >>> 24; out[off + 4 * i + 1] = (w >>> 16) & 0xff;
      out[off + 4 * i + 2] = (w >>> 8) & 0xff; out[off + 4 * i + 3] = w & 0xff;
    }
  }

  /** Calls fn for every occupied slot (removing the current slot inside fn is allowed). */
  forEach(fn: (value: T, slot: number) => void): void {
    for (let s = 0; s < this.capacity; s++) {
      const v = this.values[s];
      if (v !== undefined) fn(v, s);
    }
  }
}

const ADDR_SCRATCH = new Uint8Array(16);
