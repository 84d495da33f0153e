// ICMP for IPv4 (RFC 792, RFC 1122 §3.2.2).
import { IcmpHeaderView } from './icmp-header.js';
import { internetChecksum } from './checksum.js';
import { WireError } from './errors.js';

export const ICMP_HLEN = 8;
export const IcmpType = {
  EchoReply: 0,
  DestUnreachable: 3,
  SourceQuench: 4,
  Redirect: 5,
  Echo: 8,
  RouterAdvert: 9,
  RouterSolicit: 10,
  TimeExceeded: 11,
  ParamProblem: 12,
  Timestamp: 13,
  TimestampReply: 14,
} as const;
export const UnreachCode = { Net: 0, Host: 1, Protocol: 2, Port: 3, FragNeeded: 4, SourceRouteFailed: 5, AdminProhibited: 13 } as const;

/** True for the ICMP types that report errors (RFC 1122 §3.2.2: never answer these with an error). */
export function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

export class IcmpV4View extends IcmpHeaderView {
  wrap(bytes: Uint8Array, off: number, len: number, verifyChecksum = true): WireError {
    if (len < ICMP_HLEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off; this.len = len;
    if (verifyChecksum && internetChecksum(bytes, off, len) !== 0) return WireError.BadChecksum;
    return WireError.Ok;
  }

  /** Next-hop MTU of a "fragmentation needed" message (RFC 1191). */
  get nextHopMtu(): number { return (this.bytes[this.off + 6]! << 8) | this.bytes[this.off + 7]!; }
  get payloadOff(): number { return this.off + ICMP_HLEN; }
  get payloadLen(): number { return this.len - ICMP_HLEN; }
}

/** Writes type, code and the 32-bit rest-of-header; the checksum is left zero (see finishIcmpChecksum). */
export function writeIcmpHeader(b: Uint8Array, off: number, type: number, code: number, rest: number): void {
  b[off] = type; b[off + 1] = code; b[off + 2] = 0; b[off + 3] = 0;
  b[off + 4] = rest >>> 24; b[off + 5] = rest >>> 16; b[off + 6] = rest >>> 8; b[off + 7] = rest;
}

/** Computes and stores the checksum over the whole message (header + payload, `len` bytes). */
export function finishIcmpChecksum(b: Uint8Array, off: number, len: number): void {
  b[off + 2] = 0; b[off + 3] = 0;
  const c = internetChecksum(b, off, len);
  b[off + 2] = c >> 8; b[off + 3] = c & 0xff;
}
