// Tunnel headers: VXLAN (RFC 7348 §5) and GRE (RFC 2784, with RFC 2890's key and sequence
// number). IP-in-IP (RFC 2003) has no header of its own.

export const VXLAN_HLEN = 8;
export const VXLAN_PORT = 4789;
/** The I flag: the VNI is valid (RFC 7348 §5). */
export const VXLAN_FLAG_I = 0x08;

export function writeVxlanHeader(b: Uint8Array, o: number, vni: number): void {
  b[o] = VXLAN_FLAG_I; b[o + 1] = 0; b[o + 2] = 0; b[o + 3] = 0;
  b[o + 4] = (vni >>> 16) & 0xff; b[o + 5] = (vni >>> 8) & 0xff; b[o + 6] = vni & 0xff; b[o + 7] = 0;
}

/** The VNI of a VXLAN header, or -1 when the I flag is clear. */
export function readVxlanVni(b: Uint8Array, o: number): number {
  if ((b[o]! & VXLAN_FLAG_I) === 0) return -1;
  return (b[o + 4]! << 16) | (b[o + 5]! << 8) | b[o + 6]!;
}

/** GRE flag bits (first 16-bit word): C (checksum present), K (key), S (sequence number). */
export const GRE_C = 0x8000;
export const GRE_K = 0x2000;
export const GRE_S = 0x1000;
/** Bits a receiver must find zero (RFC 2784 §2.3: Reserved0 bits 1-5 as RFC 1701's R, s, Recur; version 0). */
export const GRE_MUST_BE_ZERO = 0x4000 | 0x0800 | 0x0700 | 0x0007 | 0x00f8;

/** Header length for the flags. */
export function greHeaderLength(flags: number): number {
  return 4 + ((flags & GRE_C) ? 4 : 0) + ((flags & GRE_K) ? 4 : 0) + ((flags & GRE_S) ? 4 : 0);
}

/** Writes a GRE header (the checksum, when C is set, is left zero for the caller). Returns its length. */
export function writeGreHeader(b: Uint8Array, o: number, flags: number, protocol: number, key: number, seq: number): number {
  b[o] = flags >> 8; b[o + 1] = flags & 0xff; b[o + 2] = protocol >> 8; b[o + 3] = protocol & 0xff;
  let p = o + 4;
  if (flags & GRE_C) { b[p] = 0; b[p + 1] = 0; b[p + 2] = 0; b[p + 3] = 0; p += 4; }
  if (flags & GRE_K) { b[p] = key >>> 24; b[p + 1] = (key >>> 16) & 0xff; b[p + 2] = (key >>> 8) & 0xff; b[p + 3] = key & 0xff; p += 4; }
  if (flags & GRE_S) { b[p] = seq >>> 24; b[p + 1] = (seq >>> 16) & 0xff; b[p + 2] = (seq >>> 8) & 0xff; b[p + 3] = seq & 0xff; p += 4; }
  return p - o;
}
