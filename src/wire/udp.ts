// UDP header (RFC 768).
import { internetChecksum, pseudoHeaderV4, pseudoHeaderV6 } from './checksum.js';
import { WireError } from './errors.js';

export const UDP_HLEN = 8;

export class UdpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  /** `len` is the bytes the IP layer says belong to the datagram. */
  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (len < UDP_HLEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off;
    const l = this.length;
    if (l < UDP_HLEN) return WireError.BadLength;
    if (l > len) return WireError.Truncated;
    return WireError.Ok;
  }

  get srcPort(): number { return (this.bytes[this.off]! << 8) | this.bytes[this.off + 1]!; }
  get dstPort(): number { return (this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!; }
  /** The UDP length field: header plus data. */
  get length(): number { return (this.bytes[this.off + 4]! << 8) | this.bytes[this.off + 5]!; }
  get checksum(): number { return (this.bytes[this.off + 6]! << 8) | this.bytes[this.off + 7]!; }
  get payloadOff(): number { return this.off + UDP_HLEN; }
  get payloadLen(): number { return this.length - UDP_HLEN; }

  /** RFC 768: a zero checksum means none was computed (IPv4 only); otherwise the sum must verify. */
  checksumOkV4(src: number, dst: number): boolean {
    if (this.checksum === 0) return true;
    return internetChecksum(this.bytes, this.off, this.length, pseudoHeaderV4(src, dst, 17, this.length)) === 0;
  }

  /**
   * RFC 8200 §8.1: over IPv6 the checksum is mandatory and covers the IPv6 pseudo-header with
   * the UDP length. The caller refuses a zero checksum first; this says whether the sum verifies.
   */
  checksumOkV6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): boolean {
    return internetChecksum(this.bytes, this.off, this.length, pseudoHeaderV6(src, srcOff, dst, dstOff, 17, this.length)) === 0;
  }
}

/** Writes the header with a zero checksum. */
export function writeUdpHeader(b: Uint8Array, off: number, srcPort: number, dstPort: number, length: number): void {
  b[off] = srcPort >> 8; b[off + 1] = srcPort & 0xff;
  b[off + 2] = dstPort >> 8; b[off + 3] = dstPort & 0xff;
  b[off + 4] = length >> 8; b[off + 5] = length & 0xff;
  b[off + 6] = 0; b[off + 7] = 0;
}

/** Computes the full checksum over header+data with the IPv4 pseudo-header; 0 is sent as 0xffff (RFC 768). */
export function finishUdpChecksumV4(b: Uint8Array, off: number, length: number, src: number, dst: number): void {
  b[off + 6] = 0; b[off + 7] = 0;
  let c = internetChecksum(b, off, length, pseudoHeaderV4(src, dst, 17, length));
  if (c === 0) c = 0xffff;
  b[off + 6] = c >> 8; b[off + 7] = c & 0xff;
}

/** The full checksum with the IPv6 pseudo-header (RFC 8200 §8.1); a computed 0 is sent as 0xffff. */
export function finishUdpChecksumV6(b: Uint8Array, off: number, length: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  b[off + 6] = 0; b[off + 7] = 0;
  let c = internetChecksum(b, off, length, pseudoHeaderV6(src, srcOff, dst, dstOff, 17, length));
  if (c === 0) c = 0xffff;
  b[off + 6] = c >> 8; b[off + 7] = c & 0xff;
}
