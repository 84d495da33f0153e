// Sequence-space arithmetic modulo 2^32 (RFC 9293 §3.4). Sequence numbers are stored as u32
// JS numbers; comparisons use the signed 32-bit difference, so they are correct whenever the
// two values are less than 2^31 apart, which TCP's window rules guarantee.

/** a < b in sequence space. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** a <= b in sequence space. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** a > b in sequence space. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** a >= b in sequence space. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** Signed distance a - b, in [-2^31, 2^31). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a + n as a u32 (n may be negative). */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** The later of a and b in sequence space. */
export function seqMax(a: number, b: number): number {
  return ((a - b) | 0) >= 0 ? a >>> 0 : b >>> 0;
}

/** The earlier of a and b in sequence space. */
export function seqMin(a: number, b: number): number {
  return ((a - b) | 0) <= 0 ? a >>> 0 : b >>> 0;
}

/**
 * lo <= x < hi in sequence space. Measured as offsets from lo, so an empty range (lo == hi)
 * contains nothing and a range may wrap past 2^32.
 */
export function seqInRange(x: number, lo: number, hi: number): boolean {
  return ((x - lo) >>> 0) < ((hi - lo) >>> 0);
}
