// The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the
// IPv4/IPv6 pseudo-headers used by UDP, TCP and ICMPv6.
//
// Partial sums are plain numbers holding an unfolded 32-bit-or-wider ones'-complement
// accumulation; fold() reduces one to 16 bits, finish() gives the value to store.

/** Adds the 16-bit big-endian words of data[off, off+len) to `sum` (odd trailing byte padded with zero). */
export function sum16(data: Uint8Array, off: number, len: number, sum = 0): number {
  let i = off;
  const end = off + len;
  const even = end - ((end - off) & 1);
  // Unrolled by 4 words; the accumulator stays well below 2^53 for any frame size.
  for (; i + 8 <= even; i += 8) {
    sum += ((data[i]! << 8) | data[i + 1]!) + ((data[i + 2]! << 8) | data[i + 3]!)
      + ((data[i + 4]! << 8) | data[i + 5]!) + ((data[i + 6]! << 8) | data[i + 7]!);
  }
  for (; i < even; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return sum;
}

/** Folds a partial sum to 16 bits (ones' complement end-around carry). */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for a partial sum: the ones' complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Checksum of a byte range, ready to store. Verifying a range that includes its checksum yields 0. */
export function internetChecksum(data: Uint8Array, off: number, len: number, initial = 0): number {
  return finish(sum16(data, off, len, initial));
}

/** Partial sum of the IPv4 pseudo-header (RFC 768, RFC 9293 §3.1). Addresses are u32. */
export function pseudoHeaderV4(src: number, dst: number, proto: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
}

/** Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1). Addresses are 16 bytes at the given offsets. */
export function pseudoHeaderV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, proto: number, length: number): number {
  let s = sum16(src, srcOff, 16);
  s = sum16(dst, dstOff, 16, s);
  return s + (length >>> 16) + (length & 0xffff) + proto;
}

/**
 * RFC 1624 eqn. 3: the new checksum after a 16-bit field changes from `oldValue` to `newValue`.
 * HC' = ~(~HC + ~m + m')
 */
export function incrementalUpdate(oldChecksum: number, oldValue: number, newValue: number): number {
  const sum = (~oldChecksum & 0xffff) + (~oldValue & 0xffff) + (newValue & 0xffff);
  return ~fold(sum) & 0xffff;
}
