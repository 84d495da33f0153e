// ICMPv6 (RFC 4443). The checksum covers the IPv6 pseudo-header (RFC 8200 §8.1), so verifying
// and finishing it take the addresses (16 bytes at an offset, usually inside the packet).
import { IcmpHeaderView } from './icmp-header.js';
import { incrementalUpdate, internetChecksum, pseudoHeaderV6 } from './checksum.js';
import { WireError } from './errors.js';
import { IPV6_HLEN, IPV6_MIN_MTU, Ipv6Next } from './ipv6.js';

export const ICMPV6_HLEN = 8;

export const Icmpv6Type = {
  DestUnreachable: 1,
  PacketTooBig: 2,
  TimeExceeded: 3,
  ParamProblem: 4,
  EchoRequest: 128,
  EchoReply: 129,
  MldQuery: 130,
  MldReport: 131,
  MldDone: 132,
  RouterSolicit: 133,
  RouterAdvert: 134,
  NeighborSolicit: 135,
  NeighborAdvert: 136,
  Redirect: 137,
  MldV2Report: 143,
} as const;

export const Icmpv6UnreachCode = {
  NoRoute: 0,
  AdminProhibited: 1,
  BeyondScope: 2,
  Address: 3,
  Port: 4,
  SourcePolicy: 5,
  RejectRoute: 6,
} as const;
export const Icmpv6TimeExceededCode = { HopLimit: 0, Reassembly: 1 } as const;
export const Icmpv6ParamProblemCode = { Header: 0, NextHeader: 1, Option: 2 } as const;

/**
 * RFC 4443 §2.4(c): an error message carries "as much of invoking packet as possible without
 * the ICMPv6 packet exceeding the minimum IPv6 MTU".
 */
export const ICMPV6_ERROR_MAX_QUOTE = IPV6_MIN_MTU - IPV6_HLEN - ICMPV6_HLEN;

/** RFC 4443 §2.1: "Error messages are identified as such by a zero in the high-order bit". */
export function isIcmpv6Error(type: number): boolean { return type < 128; }

export class Icmpv6View extends IcmpHeaderView {
  /** `len` is the upper-layer length the IPv6 layer found. The checksum is checked by checksumOk. */
  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (off < 0 || len < ICMPV6_HLEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off; this.len = len;
    return WireError.Ok;
  }

  /** The 32-bit word after the checksum: Packet Too Big's MTU, Parameter Problem's pointer. */
  get word(): number {
    const b = this.bytes, o = this.off + 4;
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }
  get mtu(): number { return this.word; }
  get pointer(): number { return this.word; }
  /** Echo data, or the invoking packet quoted by an error message. */
  get payloadOff(): number { return this.off + ICMPV6_HLEN; }
  get payloadLen(): number { return this.len - ICMPV6_HLEN; }

  /** Verifies the checksum with the pseudo-header built from the packet's addresses. */
  checksumOk(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): boolean {
    return icmpv6ChecksumOk(this.bytes, this.off, this.len, src, srcOff, dst, dstOff);
  }
}

export function icmpv6ChecksumOk(b: Uint8Array, off: number, len: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): boolean {
  return internetChecksum(b, off, len, pseudoHeaderV6(src, srcOff, dst, dstOff, Ipv6Next.ICMPv6, len)) === 0;
}

/** Computes and stores the checksum of the `len`-byte message at `off`. */
export function finishIcmpv6Checksum(b: Uint8Array, off: number, len: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  b[off + 2] = 0; b[off + 3] = 0;
  const c = internetChecksum(b, off, len, pseudoHeaderV6(src, srcOff, dst, dstOff, Ipv6Next.ICMPv6, len));
  b[off + 2] = c >> 8; b[off + 3] = c & 0xff;
}

/** Writes type, code, a zero checksum and the 32-bit word that follows. */
export function writeIcmpv6Header(b: Uint8Array, off: number, type: number, code: number, word: number): void {
  b[off] = type; b[off + 1] = code; b[off + 2] = 0; b[off + 3] = 0;
  b[off + 4] = word >>> 24; b[off + 5] = (word >>> 16) & 0xff; b[off + 6] = (word >>> 8) & 0xff; b[off + 7] = word & 0xff;
}

/** Writes an echo request or reply header (data follows at off + 8); checksum left zero. */
export function writeIcmpv6Echo(b: Uint8Array, off: number, type: number, id: number, seq: number): void {
  writeIcmpv6Header(b, off, type, 0, ((id & 0xffff) << 16 | (seq & 0xffff)) >>> 0);
}

/**
 * Turns the echo request at `off` into the reply in place (RFC 4443 §4.2: the reply carries the
 * request's identifier, sequence and data). Only the type changes, so the checksum is patched
 * incrementally (RFC 1624); the pseudo-header sum is unchanged when the addresses are swapped.
 */
export function echoRequestToReply(b: Uint8Array, off: number): void {
  const oldWord = (b[off]! << 8) | b[off + 1]!;
  b[off] = Icmpv6Type.EchoReply;
  const c = incrementalUpdate((b[off + 2]! << 8) | b[off + 3]!, oldWord, (b[off]! << 8) | b[off + 1]!);
  b[off + 2] = c >> 8; b[off + 3] = c & 0xff;
}

/**
 * Writes an error message: header, then as much of the invoking packet (`inv[invOff, invOff+invLen)`,
 * starting at its IPv6 header) as fits `ICMPV6_ERROR_MAX_QUOTE`. `inv` may be `b` itself, even
 * overlapping (the copy is a memmove). Returns the message length; the checksum is left zero.
 */
export function writeIcmpv6Error(b: Uint8Array, off: number, type: number, code: number, word: number,
  inv: Uint8Array, invOff: number, invLen: number): number {
  const n = invLen < ICMPV6_ERROR_MAX_QUOTE ? invLen : ICMPV6_ERROR_MAX_QUOTE;
  const to = off + ICMPV6_HLEN;
  if (inv === b) b.copyWithin(to, invOff, invOff + n);
  else for (let i = 0; i < n; i++) b[to + i] = inv[invOff + i]!;
  writeIcmpv6Header(b, off, type, code, word);
  return ICMPV6_HLEN + n;
}

export function writeIcmpv6DestUnreachable(b: Uint8Array, off: number, code: number, inv: Uint8Array, invOff: number, invLen: number): number {
  return writeIcmpv6Error(b, off, Icmpv6Type.DestUnreachable, code, 0, inv, invOff, invLen);
}
export function writeIcmpv6PacketTooBig(b: Uint8Array, off: number, mtu: number, inv: Uint8Array, invOff: number, invLen: number): number {
  return writeIcmpv6Error(b, off, Icmpv6Type.PacketTooBig, 0, mtu, inv, invOff, invLen);
}
export function writeIcmpv6TimeExceeded(b: Uint8Array, off: number, code: number, inv: Uint8Array, invOff: number, invLen: number): number {
  return writeIcmpv6Error(b, off, Icmpv6Type.TimeExceeded, code, 0, inv, invOff, invLen);
}
/** `pointer` is the offset of the offending byte from the start of the invoking packet's IPv6 header. */
export function writeIcmpv6ParamProblem(b: Uint8Array, off: number, code: number, pointer: number, inv: Uint8Array, invOff: number, invLen: number): number {
  return writeIcmpv6Error(b, off, Icmpv6Type.ParamProblem, code, pointer, inv, invOff, invLen);
}

