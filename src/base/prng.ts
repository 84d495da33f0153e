// A small, fast, seeded PRNG for simulations and fault injection: xoshiro128** (Blackman &
// Vigna), its 128-bit state filled from the seed by splitmix32. Same seed, same sequence, on
// every platform: everything is 32-bit integer arithmetic (Math.imul, >>> 0).
//
// Not for cryptography (initial sequence numbers in production come from a better source).

/** splitmix32 step: a well-mixed u32 from a counter; used only to expand seeds. */
function splitmix32(state: number): number {
  let z = (state + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Hashes a string seed (FNV-1a, 32-bit) so seeds can be names ("tcp-matrix-17"). */
export function hashSeed(seed: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const TWO_POW_32 = 4294967296;

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** The seed this generator started from (as a u32). */
  readonly seed: number;

  constructor(seed: number | string = 1) {
    let s = typeof seed === 'string' ? hashSeed(seed) : seed >>> 0;
    // Fractional or huge numeric seeds: fold the high bits in so 2**32 + 1 differs from 1.
    if (typeof seed === 'number' && (seed > 0xffffffff || seed < 0 || !Number.isInteger(seed))) {
      s = (s ^ (Math.floor(seed / TWO_POW_32) >>> 0) ^ hashSeed(String(seed))) >>> 0;
    }
    this.seed = s;
    // Each state word is splitmix32 of successive counters; xoshiro needs a state that is not all zero,
    // which splitmix32 of four distinct counters cannot produce.
    let x = s;
    this.a = splitmix32(x); x = (x + 0x9e3779b9) | 0;
    this.b = splitmix32(x); x = (x + 0x9e3779b9) | 0;
    this.c = splitmix32(x); x = (x + 0x9e3779b9) | 0;
    this.d = splitmix32(x);
  }

  /** Uniform u32. */
  u32(): number {
    const a = this.a, b = this.b;
    // xoshiro128**: result = rotl(b * 5, 7) * 9
    const t = Math.imul(b, 5);
    const result = Math.imul((t << 7) | (t >>> 25), 9) >>> 0;
    const s = b << 9;
    this.c ^= a;
    this.d ^= b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= s;
    this.d = (this.d << 11) | (this.d >>> 21);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.u32() / TWO_POW_32;
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    if (hi <= lo) return lo;
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. Draws nothing when p <= 0 or p >= 1. */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  /**
   * An independent generator seeded from this one. Forking in a fixed order gives each
   * consumer (a port, a stack) its own stream, so adding draws in one does not shift another.
   */
  fork(): Prng {
    return new Prng((this.u32() ^ Math.imul(this.u32(), 0x9e3779b1)) >>> 0);
  }
}

/** A `() => number` in [0, 1) for `new Stack({ random })`. */
export function createRandom(seed: number | string): () => number {
  const p = new Prng(seed);
  return () => p.next();
}

/** A `() => u32` for the TCP modules' `random32` parameter. */
export function createRandom32(seed: number | string): () => number {
  const p = new Prng(seed);
  return () => p.u32();
}
