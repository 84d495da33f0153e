// IPv4 header (RFC 791). Options are skipped by the header length, never interpreted.
import { internetChecksum, incrementalUpdate } from './checksum.js';
import { readIpv4, writeIpv4 } from './addr.js';
import { WireError } from './errors.js';

export const IPV4_HLEN = 20;
export const IpProto = { ICMP: 1, IGMP: 2, IPIP: 4, TCP: 6, UDP: 17, IPv6: 41, GRE: 47, ICMPv6: 58 } as const;
/** Flag bits within the 16-bit flags/fragment-offset word. */
export const IPV4_DF = 0x4000;
export const IPV4_MF = 0x2000;

export class Ipv4View {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  /**
   * Validates the header per RFC 1122 §3.2.1.1-2 (version, header length, total length within
   * the frame, header checksum when `verifyChecksum`). `len` is the bytes available (frame payload).
   */
  wrap(bytes: Uint8Array, off: number, len: number, verifyChecksum = true): WireError {
    const err = this.wrapQuoted(bytes, off, len);
    if (err !== WireError.Ok) return err;
    const hlen = this.headerLength;
    const total = this.totalLength;
    if (total < hlen) return WireError.BadLength;
    if (total > len) return WireError.Truncated;
    if (verifyChecksum && internetChecksum(bytes, off, hlen) !== 0) return WireError.BadChecksum;
    return WireError.Ok;
  }

  /**
   * Points the view at a header quoted inside an ICMP error (RFC 792: the header plus the first
   * 8 payload bytes, so the datagram is cut short of its total length). Checks version and header
   * length only; the quoted checksum is not verified (a router may have changed the header).
   * wrap() starts with these same checks.
   */
  wrapQuoted(bytes: Uint8Array, off: number, len: number): WireError {
    if (len < IPV4_HLEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off;
    const vihl = bytes[off]!;
    if (vihl >> 4 !== 4) return WireError.BadVersion;
    const hlen = (vihl & 0x0f) * 4;
    if (hlen < IPV4_HLEN) return WireError.BadHeaderLength;
    if (hlen > len) return WireError.Truncated;
    return WireError.Ok;
  }

  get version(): number { return this.bytes[this.off]! >> 4; }
  get headerLength(): number { return (this.bytes[this.off]! & 0x0f) * 4; }
  get tos(): number { return this.bytes[this.off + 1]!; }
  get totalLength(): number { return (this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!; }
  get id(): number { return (this.bytes[this.off + 4]! << 8) | this.bytes[this.off + 5]!; }
  /** The flags/fragment-offset word. */
  get fragWord(): number { return (this.bytes[this.off + 6]! << 8) | this.bytes[this.off + 7]!; }
  get dontFragment(): boolean { return (this.fragWord & IPV4_DF) !== 0; }
  get moreFragments(): boolean { return (this.fragWord & IPV4_MF) !== 0; }
  /** Fragment offset in bytes. */
  get fragOffset(): number { return (this.fragWord & 0x1fff) * 8; }
  get isFragment(): boolean { return (this.fragWord & (IPV4_MF | 0x1fff)) !== 0; }
  get ttl(): number { return this.bytes[this.off + 8]!; }
  get protocol(): number { return this.bytes[this.off + 9]!; }
  get checksum(): number { return (this.bytes[this.off + 10]! << 8) | this.bytes[this.off + 11]!; }
  get src(): number { return readIpv4(this.bytes, this.off + 12); }
  get dst(): number { return readIpv4(this.bytes, this.off + 16); }
  get payloadOff(): number { return this.off + this.headerLength; }
  get payloadLen(): number { return this.totalLength - this.headerLength; }

  /** Sets TTL and patches the checksum incrementally (RFC 1624), as a router does. */
  setTtl(ttl: number): void {
    const b = this.bytes, o = this.off;
    const oldWord = (b[o + 8]! << 8) | b[o + 9]!;
    b[o + 8] = ttl;
    const c = incrementalUpdate(this.checksum, oldWord, (ttl << 8) | b[o + 9]!);
    b[o + 10] = c >> 8; b[o + 11] = c & 0xff;
  }
}

/**
 * Writes a 20-byte header (no options) with its checksum at `off`.
 * `fragWord` carries DF/MF and the offset in 8-byte units.
 */
export function writeIpv4Header(b: Uint8Array, off: number, tos: number, totalLength: number, id: number,
  fragWord: number, ttl: number, proto: number, src: number, dst: number): void {
  b[off] = 0x45; b[off + 1] = tos;
  b[off + 2] = totalLength >> 8; b[off + 3] = totalLength & 0xff;
  b[off + 4] = (id >> 8) & 0xff; b[off + 5] = id & 0xff;
  b[off + 6] = fragWord >> 8; b[off + 7] = fragWord & 0xff;
  b[off + 8] = ttl; b[off + 9] = proto;
  b[off + 10] = 0; b[off + 11] = 0;
  writeIpv4(b, off + 12, src);
  writeIpv4(b, off + 16, dst);
  const c = internetChecksum(b, off, IPV4_HLEN);
  b[off + 10] = c >> 8; b[off + 11] = c & 0xff;
}
