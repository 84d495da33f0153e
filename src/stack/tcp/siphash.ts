// SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012) in 32-bit JS
// arithmetic. Each 64-bit lane is a (hi, lo) pair of int32 locals and the message sits in a
// preallocated Int32Array, so hashing allocates nothing (~0.15 µs for 16 bytes here). Used as the keyed PRF F() of RFC 6528 (ISNs),
// RFC 6056 (ephemeral ports) and the SYN-cookie MAC (RFC 4987 §3.6).
//
// Byte order follows the reference implementation: the key and message are read as
// little-endian 64-bit words and the 64-bit result is written little-endian. A message given
// as 32-bit words w0, w1, ... is the byte string of those words in little-endian order, so
// `siphash24(k, a, b, c, d)` equals `siphash24Bytes` over the 16 bytes LE(a)|LE(b)|LE(c)|LE(d).

/** A 128-bit SipHash key: [k0.lo, k0.hi, k1.lo, k1.hi], k0/k1 the little-endian halves. */
export type SipKey = Uint32Array;

/** Message blocks of the hash being computed: (lo, hi) pairs, final block included. */
let msg = new Int32Array(2 * 9);
/** [0] = high 32 bits of the most recent result (the return value is the low 32 bits). */
const hiOut = new Uint32Array(1);

/**
 * Runs SipHash-2-4 over the first `nBlocks` blocks of `msg` (the last being the length
 * block). One function with all state in locals: V8 keeps the int32 lanes in registers, where
 * module-level variables holding u32 values would be boxed as heap numbers on every store.
 */
function run(key: SipKey, nBlocks: number): number {
  const k0l = key[0]! | 0, k0h = key[1]! | 0, k1l = key[2]! | 0, k1h = key[3]! | 0;
  // "somepseudorandomlygeneratedbytes"
  let v0h = k0h ^ 0x736f6d65, v0l = k0l ^ 0x70736575;
  let v1h = k1h ^ 0x646f7261, v1l = k1l ^ 0x6e646f6d;
  let v2h = k0h ^ 0x6c796765, v2l = k0l ^ 0x6e657261;
  let v3h = k1h ^ 0x74656462, v3l = k1l ^ 0x79746573;
  let h = 0, l = 0, t = 0;
  for (let b = 0; b <= nBlocks; b++) {
    let ml = 0, mh = 0, rounds = 4;
    if (b < nBlocks) {
      // Compression: v3 ^= m; c = 2 SipRounds; v0 ^= m.
      ml = msg[2 * b]!; mh = msg[2 * b + 1]!;
      v3l ^= ml; v3h ^= mh;
      rounds = 2;
    } else {
      // Finalization: v2 ^= 0xff; d = 4 SipRounds.
      v2l ^= 0xff;
    }
    for (let r = 0; r < rounds; r++) {
      // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
      l = (v0l + v1l) | 0; v0h = (v0h + v1h + ((l >>> 0) < (v0l >>> 0) ? 1 : 0)) | 0; v0l = l;
      h = (v1h << 13) | (v1l >>> 19); l = (v1l << 13) | (v1h >>> 19);
      v1h = h ^ v0h; v1l = l ^ v0l;
      t = v0h; v0h = v0l; v0l = t;
      // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
      l = (v2l + v3l) | 0; v2h = (v2h + v3h + ((l >>> 0) < (v2l >>> 0) ? 1 : 0)) | 0; v2l = l;
      h = (v3h << 16) | (v3l >>> 16); l = (v3l << 16) | (v3h >>> 16);
      v3h = h ^ v2h; v3l = l ^ v2l;
      // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
      l = (v0l + v3l) | 0; v0h = (v0h + v3h + ((l >>> 0) < (v0l >>> 0) ? 1 : 0)) | 0; v0l = l;
      h = (v3h << 21) | (v3l >>> 11); l = (v3l << 21) | (v3h >>> 11);
      v3h = h ^ v0h; v3l = l ^ v0l;
      // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
      l = (v2l + v1l) | 0; v2h = (v2h + v1h + ((l >>> 0) < (v2l >>> 0) ? 1 : 0)) | 0; v2l = l;
      h = (v1h << 17) | (v1l >>> 15); l = (v1l << 17) | (v1h >>> 15);
      v1h = h ^ v2h; v1l = l ^ v2l;
      t = v2h; v2h = v2l; v2l = t;
    }
    if (b < nBlocks) { v0l ^= ml; v0h ^= mh; }
  }
  hiOut[0] = v0h ^ v1h ^ v2h ^ v3h;
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}

/**
 * SipHash-2-4 of the 12-byte (w3 omitted) or 16-byte message LE(w0)|LE(w1)|LE(w2)[|LE(w3)].
 * Returns the low 32 bits of the 64-bit result; `siphashHi()` gives the high 32 bits.
 */
export function siphash24(key: SipKey, w0: number, w1: number, w2: number, w3?: number): number {
  msg[0] = w0; msg[1] = w1;
  if (w3 === undefined) {
    // 12 bytes: the last block carries w2 in its low 4 bytes and the length in its top byte.
    msg[2] = w2; msg[3] = 12 << 24;
    return run(key, 2);
  }
  msg[2] = w2; msg[3] = w3;
  msg[4] = 0; msg[5] = 16 << 24;
  return run(key, 3);
}

/** High 32 bits of the last result returned by any siphash24* function. */
export function siphashHi(): number {
  return hiOut[0]!;
}

/** Longest message, in 32-bit words, that `siphash24Words` takes. */
export const SIPHASH_MAX_WORDS = 16;

/**
 * SipHash-2-4 of `n` (<= SIPHASH_MAX_WORDS) 32-bit words: the byte string of their
 * little-endian encodings. Returns the low 32 bits; `siphashHi()` gives the high 32 bits.
 */
export function siphash24Words(key: SipKey, words: ArrayLike<number>, n: number): number {
  if (n > SIPHASH_MAX_WORDS) throw new RangeError(`siphash24Words: ${n} words > ${SIPHASH_MAX_WORDS}`);
  // msg holds 9 blocks at least: 16 words + the length block.
  for (let i = 0; i < n; i++) msg[i] = words[i]!;
  const lenByte = ((n * 4) & 0xff) << 24;
  let blocks = n >>> 1;
  if (n & 1) {
    msg[n] = lenByte;
  } else {
    msg[n] = 0;
    msg[n + 1] = lenByte;
  }
  blocks++;
  return run(key, blocks);
}

/** SipHash-2-4 of `len` bytes at data[off..]; low 32 bits returned, high via `siphashHi()`. */
export function siphash24Bytes(key: SipKey, data: Uint8Array, off: number, len: number): number {
  const key0 = key;
  const full = len >>> 3;
  if (2 * (full + 1) > msg.length) msg = new Int32Array(2 * (full + 1)); // long input: grows once
  let p = off;
  for (let b = 0; b < full; b++, p += 8) {
    msg[2 * b] = data[p]! | (data[p + 1]! << 8) | (data[p + 2]! << 16) | (data[p + 3]! << 24);
    msg[2 * b + 1] = data[p + 4]! | (data[p + 5]! << 8) | (data[p + 6]! << 16) | (data[p + 7]! << 24);
  }
  // Last block: the 0..7 remaining bytes, then len mod 256 in the most significant byte.
  let lo = 0, hi = (len & 0xff) << 24;
  const rest = off + len - p;
  for (let i = 0; i < rest; i++) {
    const b = data[p + i]!;
    if (i < 4) lo |= b << (8 * i);
    else hi |= b << (8 * (i - 4));
  }
  msg[2 * full] = lo;
  msg[2 * full + 1] = hi;
  return run(key0, full + 1);
}

/** Builds a key from 16 bytes (k0 = bytes 0..7 LE, k1 = bytes 8..15 LE). */
export function sipKeyFromBytes(bytes: Uint8Array): SipKey {
  const k = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    k[i] = (bytes[4 * i]! | (bytes[4 * i + 1]! << 8) | (bytes[4 * i + 2]! << 16) | (bytes[4 * i + 3]! << 24)) >>> 0;
  }
  return k;
}

/** Draws a fresh 128-bit key from a 32-bit random source (once per generator, not per packet). */
export function sipKeyFromRandom(random32: () => number): SipKey {
  const k = new Uint32Array(4);
  for (let i = 0; i < 4; i++) k[i] = random32() >>> 0;
  return k;
}
