// TCP header (RFC 9293 §3.1) and options: a view over bytes, an allocation-free option walker
// that fills a reusable struct, an option emitter and a header emitter.
import { WireError } from './errors.js';

export const TCP_HEADER_LEN = 20;
/** Data offset is 4 bits of 32-bit words: at most 60 bytes of header, 40 of options. */
export const TCP_MAX_HEADER_LEN = 60;
export const TCP_MAX_OPTIONS_LEN = 40;

export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

export const TcpOpt = {
  EOL: 0,
  NOP: 1,
  MSS: 2,
  WSCALE: 3,
  SACK_PERMITTED: 4,
  SACK: 5,
  TIMESTAMPS: 8,
  /** TCP Fast Open cookie (RFC 7413 §4.1.1): length 2 asks for a cookie, 6..18 carries one. */
  FASTOPEN: 34,
} as const;

/** RFC 7413 §4.1.1: cookies are 4 to 16 bytes (Linux also wants an even length). */
export const TFO_COOKIE_MIN = 4;
export const TFO_COOKIE_MAX = 16;

/** RFC 7323 §2.3: "the shift count must be limited to 14". */
export const TCP_MAX_WSCALE = 14;
/** At most 4 SACK blocks fit in 40 option bytes (RFC 2018 §3). */
export const TCP_MAX_SACK_BLOCKS = 4;

/** Zero-copy view over a TCP header; getters and setters read and write the bytes. */
export class TcpHeader {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  /** Segment length (header + payload) as given to wrap(). */
  len = 0;

  /** Checks that a header fits and that the data offset is sane; never throws. */
  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    this.bytes = bytes; this.off = off; this.len = len;
    if (len < TCP_HEADER_LEN || off < 0 || off + len > bytes.length) return WireError.Truncated;
    const hl = (bytes[off + 12]! >>> 4) * 4;
    if (hl < TCP_HEADER_LEN) return WireError.BadHeaderLength;
    if (hl > len) return WireError.Truncated;
    return WireError.Ok;
  }

  get srcPort(): number { return (this.bytes[this.off]! << 8) | this.bytes[this.off + 1]!; }
  set srcPort(v: number) { this.bytes[this.off] = v >>> 8; this.bytes[this.off + 1] = v; }
  get dstPort(): number { return (this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!; }
  set dstPort(v: number) { this.bytes[this.off + 2] = v >>> 8; this.bytes[this.off + 3] = v; }
  get seq(): number { return readU32(this.bytes, this.off + 4); }
  set seq(v: number) { writeU32(this.bytes, this.off + 4, v); }
  get ack(): number { return readU32(this.bytes, this.off + 8); }
  set ack(v: number) { writeU32(this.bytes, this.off + 8, v); }
  /** Header length in bytes (data offset * 4). */
  get headerLength(): number { return (this.bytes[this.off + 12]! >>> 4) * 4; }
  set headerLength(v: number) { this.bytes[this.off + 12] = ((v >>> 2) << 4) | (this.bytes[this.off + 12]! & 0x0f); }
  get flags(): number { return this.bytes[this.off + 13]!; }
  set flags(v: number) { this.bytes[this.off + 13] = v; }
  get window(): number { return (this.bytes[this.off + 14]! << 8) | this.bytes[this.off + 15]!; }
  set window(v: number) { this.bytes[this.off + 14] = v >>> 8; this.bytes[this.off + 15] = v; }
  get checksum(): number { return (this.bytes[this.off + 16]! << 8) | this.bytes[this.off + 17]!; }
  set checksum(v: number) { this.bytes[this.off + 16] = v >>> 8; this.bytes[this.off + 17] = v; }
  get urgentPointer(): number { return (this.bytes[this.off + 18]! << 8) | this.bytes[this.off + 19]!; }
  set urgentPointer(v: number) { this.bytes[this.off + 18] = v >>> 8; this.bytes[this.off + 19] = v; }
  get optionsOffset(): number { return this.off + TCP_HEADER_LEN; }
  get optionsLength(): number { return this.headerLength - TCP_HEADER_LEN; }
  get payloadOffset(): number { return this.off + this.headerLength; }
  get payloadLength(): number { return this.len - this.headerLength; }
}

/** Options of one segment, filled by parseTcpOptions; reuse one instance. -1 = absent. */
export class TcpOptions {
  mss = -1;
  wscale = -1;
  sackPermitted = false;
  timestamps = false;
  tsVal = 0;
  tsEcr = 0;
  /** SACK blocks as (left, right) pairs in sackBlocks[0 .. 2*sackCount). */
  sackCount = 0;
  readonly sackBlocks = new Uint32Array(2 * TCP_MAX_SACK_BLOCKS);
  /** TCP Fast Open option: -1 absent, 0 a cookie request, else the cookie's length (in fastOpenCookie). */
  fastOpen = -1;
  readonly fastOpenCookie = new Uint8Array(TFO_COOKIE_MAX);

  clear(): void {
    this.mss = -1; this.wscale = -1; this.sackPermitted = false; this.fastOpen = -1;
    this.timestamps = false; this.tsVal = 0; this.tsEcr = 0; this.sackCount = 0;
  }
}

/**
 * Walks the options in bytes[off, off+len) into `out` (cleared first). Unknown options are
 * skipped by their length; a length of 0 or 1, or one running past the end, is BadOption;
 * a known option with the wrong length is BadOption too (RFC 9293 §3.1: "A TCP implementation
 * MUST be able to receive a TCP Option in any segment"; MUST-64: be prepared for illegal lengths).
 */
export function parseTcpOptions(bytes: Uint8Array, off: number, len: number, out: TcpOptions): WireError {
  out.clear();
  const end = off + len;
  let i = off;
  while (i < end) {
    const kind = bytes[i]!;
    if (kind === TcpOpt.EOL) break;
    if (kind === TcpOpt.NOP) { i++; continue; }
    if (i + 1 >= end) return WireError.BadOption;
    const olen = bytes[i + 1]!;
    if (olen < 2 || i + olen > end) return WireError.BadOption;
    switch (kind) {
      case TcpOpt.MSS:
        if (olen !== 4) return WireError.BadOption;
        out.mss = (bytes[i + 2]! << 8) | bytes[i + 3]!;
        break;
      case TcpOpt.WSCALE:
        if (olen !== 3) return WireError.BadOption;
        // RFC 7323 §2.3: a larger shift is used as 14 (and logged).
        out.wscale = Math.min(bytes[i + 2]!, TCP_MAX_WSCALE);
        break;
      case TcpOpt.SACK_PERMITTED:
        if (olen !== 2) return WireError.BadOption;
        out.sackPermitted = true;
        break;
      case TcpOpt.TIMESTAMPS:
        if (olen !== 10) return WireError.BadOption;
        out.timestamps = true;
        out.tsVal = readU32(bytes, i + 2);
        out.tsEcr = readU32(bytes, i + 6);
        break;
      case TcpOpt.SACK: {
        const n = (olen - 2) >>> 3;
        if (n < 1 || (olen - 2) & 7 || n > TCP_MAX_SACK_BLOCKS) return WireError.BadOption;
        for (let k = 0; k < n; k++) {
          out.sackBlocks[2 * k] = readU32(bytes, i + 2 + 8 * k);
          out.sackBlocks[2 * k + 1] = readU32(bytes, i + 6 + 8 * k);
        }
        out.sackCount = n;
        break;
      }
      case TcpOpt.FASTOPEN: {
        // A cookie of a length RFC 7413 does not allow is ignored like an unknown option.
        const n = olen - 2;
        if (n === 0) out.fastOpen = 0;
        else if (n >= TFO_COOKIE_MIN && n <= TFO_COOKIE_MAX && (n & 1) === 0) {
          out.fastOpenCookie.set(bytes.subarray(i + 2, i + olen));
          out.fastOpen = n;
        }
        break;
      }
      default:
        break; // unknown: skipped by its length
    }
    i += olen;
  }
  return WireError.Ok;
}

/** What to emit; a plain reusable struct (fields < 0 / false are omitted). */
export interface TcpOptionsSpec {
  mss: number;
  wscale: number;
  sackPermitted: boolean;
  timestamps: boolean;
  tsVal: number;
  tsEcr: number;
  sackCount: number;
  sackBlocks: Uint32Array;
  /** TCP Fast Open (RFC 7413): absent or -1 = no option, 0 = a cookie request, n = the first n bytes of fastOpenCookie. */
  fastOpen?: number;
  fastOpenCookie?: Uint8Array;
}

/** Bytes writeTcpOptions will write for `o` (a multiple of 4, at most 40). */
export function tcpOptionsLength(o: TcpOptionsSpec): number {
  let n = 0;
  if (o.mss >= 0) n += 4;
  if (o.timestamps) n += 12; // SACK-permitted rides in the timestamp's NOP padding
  else if (o.sackPermitted) n += 4;
  if (o.wscale >= 0) n += 4;
  if (o.fastOpen !== undefined && o.fastOpen >= 0) n += (2 + o.fastOpen + 3) & ~3;
  const maxBlocks = Math.min(o.sackCount, Math.floor((TCP_MAX_OPTIONS_LEN - n - 4) / 8));
  if (maxBlocks > 0) n += 4 + 8 * maxBlocks;
  return n;
}

/**
 * Writes the options at bytes[off] in the layout most stacks use (MSS, SACK-permitted +
 * timestamps, NOP + window scale, NOP NOP + SACK blocks), padded with NOPs to a 4-byte
 * boundary. SACK blocks are cut to what fits in 40 bytes. Returns the bytes written.
 */
export function writeTcpOptions(bytes: Uint8Array, off: number, o: TcpOptionsSpec): number {
  let i = off;
  if (o.mss >= 0) {
    bytes[i] = TcpOpt.MSS; bytes[i + 1] = 4; bytes[i + 2] = o.mss >>> 8; bytes[i + 3] = o.mss; i += 4;
  }
  if (o.timestamps) {
    if (o.sackPermitted) { bytes[i] = TcpOpt.SACK_PERMITTED; bytes[i + 1] = 2; } else { bytes[i] = TcpOpt.NOP; bytes[i + 1] = TcpOpt.NOP; }
    bytes[i + 2] = TcpOpt.TIMESTAMPS; bytes[i + 3] = 10;
    writeU32(bytes, i + 4, o.tsVal); writeU32(bytes, i + 8, o.tsEcr);
    i += 12;
  } else if (o.sackPermitted) {
    bytes[i] = TcpOpt.NOP; bytes[i + 1] = TcpOpt.NOP; bytes[i + 2] = TcpOpt.SACK_PERMITTED; bytes[i + 3] = 2; i += 4;
  }
  if (o.wscale >= 0) {
    bytes[i] = TcpOpt.NOP; bytes[i + 1] = TcpOpt.WSCALE; bytes[i + 2] = 3; bytes[i + 3] = o.wscale; i += 4;
  }
  if (o.fastOpen !== undefined && o.fastOpen >= 0) {
    // As Linux: kind, length, cookie, then NOPs to the 4-byte boundary.
    const n = o.fastOpen;
    bytes[i] = TcpOpt.FASTOPEN; bytes[i + 1] = 2 + n;
    for (let k = 0; k < n; k++) bytes[i + 2 + k] = o.fastOpenCookie![k]!;
    i += 2 + n;
    while ((i - off) & 3) bytes[i++] = TcpOpt.NOP;
  }
  const maxBlocks = Math.min(o.sackCount, Math.floor((TCP_MAX_OPTIONS_LEN - (i - off) - 4) / 8));
  if (maxBlocks > 0) {
    bytes[i] = TcpOpt.NOP; bytes[i + 1] = TcpOpt.NOP; bytes[i + 2] = TcpOpt.SACK; bytes[i + 3] = 2 + 8 * maxBlocks;
    i += 4;
    for (let k = 0; k < maxBlocks; k++) {
      writeU32(bytes, i, o.sackBlocks[2 * k]!); writeU32(bytes, i + 4, o.sackBlocks[2 * k + 1]!); i += 8;
    }
  }
  return i - off;
}

/**
 * Writes a 20-byte TCP header at bytes[off] with data offset `headerLength` (options, if any,
 * follow at off+20) and a zero checksum.
 */
export function writeTcpHeader(bytes: Uint8Array, off: number, srcPort: number, dstPort: number, seq: number, ack: number,
  flags: number, window: number, headerLength = TCP_HEADER_LEN, urgent = 0): void {
  bytes[off] = srcPort >>> 8; bytes[off + 1] = srcPort;
  bytes[off + 2] = dstPort >>> 8; bytes[off + 3] = dstPort;
  writeU32(bytes, off + 4, seq);
  writeU32(bytes, off + 8, ack);
  bytes[off + 12] = (headerLength >>> 2) << 4;
  bytes[off + 13] = flags;
  bytes[off + 14] = window >>> 8; bytes[off + 15] = window;
  bytes[off + 16] = 0; bytes[off + 17] = 0;
  bytes[off + 18] = urgent >>> 8; bytes[off + 19] = urgent;
}

/** Names of the set flags, e.g. "SYN|ACK" (for logs and tests; allocates). */
export function tcpFlagsToString(flags: number): string {
  const names = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];
  const out: string[] = [];
  for (let i = 0; i < 8; i++) if (flags & (1 << i)) out.push(names[i]!);
  return out.join('|') || 'none';
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = v >>> 16; b[o + 2] = v >>> 8; b[o + 3] = v;
}
