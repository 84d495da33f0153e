// IGMP (RFC 3376 §4; RFC 2236 and RFC 1112 for the older versions): message types, the
// query view, the version-3 report writer, and the IPv4 header with Router Alert (RFC 2113)
// every IGMP message carries.
import { internetChecksum } from './checksum.js';
import { readIpv4, writeIpv4 } from './addr.js';
import { WireError } from './errors.js';

export const IgmpType = { Query: 0x11, V1Report: 0x12, V2Report: 0x16, V2Leave: 0x17, V3Report: 0x22 } as const;
/** Group Record Types (RFC 3376 §4.2.12). */
export const IgmpRecord = { IsInclude: 1, IsExclude: 2, ToInclude: 3, ToExclude: 4, AllowNew: 5, BlockOld: 6 } as const;
/** 224.0.0.1, 224.0.0.2, 224.0.0.22 */
export const ALL_SYSTEMS = 0xe0000001;
export const ALL_ROUTERS = 0xe0000002;
export const ALL_IGMPV3_ROUTERS = 0xe0000016;
/** IPv4 header with the 4-byte Router Alert option. */
export const IPV4_RA_HLEN = 24;
export const IGMP_V3_REPORT_HLEN = 8;
export const IGMP_RECORD_HLEN = 8;

/** A received IGMP message (checked length and checksum). */
export class IgmpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;

  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (len < 8 || off + len > bytes.length) return WireError.Truncated;
    if (internetChecksum(bytes, off, len) !== 0) return WireError.BadChecksum;
    this.bytes = bytes; this.off = off; this.len = len;
    if (bytes[off] === IgmpType.Query && len >= 12) {
      const n = (bytes[off + 10]! << 8) | bytes[off + 11]!;
      if (12 + n * 4 > len) return WireError.Truncated;
    }
    return WireError.Ok;
  }

  get type(): number { return this.bytes[this.off]!; }
  get maxRespCode(): number { return this.bytes[this.off + 1]!; }
  get group(): number { return readIpv4(this.bytes, this.off + 4); }
  /** 1, 2 or 3 (RFC 3376 §7.1: an 8-byte query is v1 when Max Resp Code is 0, else v2). */
  get queryVersion(): number { return this.len >= 12 ? 3 : this.maxRespCode === 0 ? 1 : 2; }
  /**
   * Maximum Response Time in ms (§4.1.1: in 1/10 s, a float from 128 on); v1 queries mean 10 s.
   */
  get maxResponseMs(): number {
    const c = this.maxRespCode;
    if (this.len < 12) return c === 0 ? 10000 : c * 100;
    return (c < 128 ? c : ((c & 0x0f) | 0x10) << (((c >> 4) & 7) + 3)) * 100;
  }
  /** Querier's Robustness Variable (§4.1.6), 0 when unset. */
  get qrv(): number { return this.len >= 12 ? this.bytes[this.off + 8]! & 7 : 0; }
  /** Querier's Query Interval in seconds (§4.1.7). */
  get qqi(): number {
    if (this.len < 12) return 0;
    const c = this.bytes[this.off + 9]!;
    return c < 128 ? c : ((c & 0x0f) | 0x10) << (((c >> 4) & 7) + 3);
  }
  get sourceCount(): number { return this.len >= 12 ? (this.bytes[this.off + 10]! << 8) | this.bytes[this.off + 11]! : 0; }
  source(i: number): number { return readIpv4(this.bytes, this.off + 12 + i * 4); }
}

/** Writes a Group Record header; the sources follow it (writeIpv4 each). Returns the next offset. */
export function writeGroupRecord(b: Uint8Array, o: number, type: number, group: number, sources: readonly number[]): number {
  b[o] = type; b[o + 1] = 0; b[o + 2] = sources.length >> 8; b[o + 3] = sources.length & 0xff;
  writeIpv4(b, o + 4, group);
  o += IGMP_RECORD_HLEN;
  for (const s of sources) { writeIpv4(b, o, s); o += 4; }
  return o;
}

/** Writes the Version 3 Membership Report header (checksum left for finishIgmp). */
export function writeV3ReportHeader(b: Uint8Array, o: number, records: number): void {
  b[o] = IgmpType.V3Report; b[o + 1] = 0; b[o + 2] = 0; b[o + 3] = 0;
  b[o + 4] = 0; b[o + 5] = 0; b[o + 6] = records >> 8; b[o + 7] = records & 0xff;
}

/** Writes an 8-byte v1/v2 message (report or leave) at o, checksum included. */
export function writeIgmpV2(b: Uint8Array, o: number, type: number, group: number): void {
  b[o] = type; b[o + 1] = 0; b[o + 2] = 0; b[o + 3] = 0;
  writeIpv4(b, o + 4, group);
  finishIgmp(b, o, 8);
}

export function finishIgmp(b: Uint8Array, o: number, len: number): void {
  b[o + 2] = 0; b[o + 3] = 0;
  const c = internetChecksum(b, o, len);
  b[o + 2] = c >> 8; b[o + 3] = c & 0xff;
}

/**
 * The IPv4 header of an IGMP message (RFC 3376 §4: TTL 1, IP Router Alert; Linux and FreeBSD
 * also send TOS 0xc0, internetwork control), checksum included.
 */
export function writeIpv4RaHeader(b: Uint8Array, o: number, totalLen: number, id: number, src: number, dst: number): void {
  b[o] = 0x46; b[o + 1] = 0xc0; b[o + 2] = totalLen >> 8; b[o + 3] = totalLen & 0xff;
  b[o + 4] = id >> 8; b[o + 5] = id & 0xff; b[o + 6] = 0x40; b[o + 7] = 0;
  b[o + 8] = 1; b[o + 9] = 2; b[o + 10] = 0; b[o + 11] = 0;
  writeIpv4(b, o + 12, src); writeIpv4(b, o + 16, dst);
  b[o + 20] = 0x94; b[o + 21] = 4; b[o + 22] = 0; b[o + 23] = 0;
  const c = internetChecksum(b, o, IPV4_RA_HLEN);
  b[o + 10] = c >> 8; b[o + 11] = c & 0xff;
}

/** Builds a v3 query (tests and simulations play the querier with it). Returns its length. */
export function writeV3Query(b: Uint8Array, o: number, maxRespCode: number, group: number, sources: readonly number[], qrv = 2, qqic = 125): number {
  b[o] = IgmpType.Query; b[o + 1] = maxRespCode; b[o + 2] = 0; b[o + 3] = 0;
  writeIpv4(b, o + 4, group);
  b[o + 8] = qrv & 7; b[o + 9] = qqic; b[o + 10] = sources.length >> 8; b[o + 11] = sources.length & 0xff;
  let p = o + 12;
  for (const s of sources) { writeIpv4(b, p, s); p += 4; }
  finishIgmp(b, o, p - o);
  return p - o;
}
