// Classic libpcap file format (https://www.tcpdump.org/manpages/pcap-savefile.5.html; the
// IETF draft-ietf-opsawg-pcap): a 24-byte global header, then per packet a 16-byte record
// header and the captured bytes. We write little-endian, microsecond timestamps,
// LINKTYPE_ETHERNET; the reader also accepts big-endian and nanosecond files.
import { WireError } from './errors.js';

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const LINKTYPE_ETHERNET = 1;
export const PCAP_SNAPLEN = 262144;
export const PCAP_GLOBAL_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;

function wr32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff; b[off + 1] = (v >>> 8) & 0xff; b[off + 2] = (v >>> 16) & 0xff; b[off + 3] = (v >>> 24) & 0xff;
}

/** Writes the global header at `off`; returns the bytes written (24). */
export function writePcapGlobalHeader(b: Uint8Array, off: number, snaplen = PCAP_SNAPLEN, linktype = LINKTYPE_ETHERNET): number {
  wr32(b, off, PCAP_MAGIC_US);
  b[off + 4] = 2; b[off + 5] = 0; // version_major 2
  b[off + 6] = 4; b[off + 7] = 0; // version_minor 4
  wr32(b, off + 8, 0); // thiszone: "always 0" in practice
  wr32(b, off + 12, 0); // sigfigs
  wr32(b, off + 16, snaplen);
  wr32(b, off + 20, linktype);
  return PCAP_GLOBAL_HEADER_LEN;
}

/**
 * Writes a record header at `off` for a packet seen at `timestampMs` (ms since the Unix epoch,
 * fractional allowed) of which `capturedLen` of `originalLen` bytes follow. Returns 16.
 */
export function writePcapRecordHeader(b: Uint8Array, off: number, timestampMs: number, capturedLen: number, originalLen: number): number {
  const ms = timestampMs > 0 ? timestampMs : 0;
  let sec = Math.floor(ms / 1000);
  let usec = Math.round((ms - sec * 1000) * 1000);
  if (usec >= 1000000) { sec++; usec -= 1000000; }
  wr32(b, off, sec >>> 0);
  wr32(b, off + 4, usec);
  wr32(b, off + 8, capturedLen);
  wr32(b, off + 12, originalLen);
  return PCAP_RECORD_HEADER_LEN;
}

/**
 * Walks a pcap file in place. wrap() checks the global header; each next() moves to the next
 * record and exposes its header fields and the offset of its bytes. Never throws: a file cut
 * short inside a record ends the walk with `error` = Truncated.
 */
export class PcapReader {
  private b: Uint8Array = new Uint8Array(0);
  private base = 0;
  private limit = 0;
  private pos = 0;
  private le = true;
  private nanos = false;
  linktype = 0;
  snaplen = 0;
  versionMajor = 0;
  versionMinor = 0;
  /** Ok while walking and after a clean end; otherwise why the walk stopped. */
  error: WireError = WireError.Ok;
  /** Fields of the current record (after next() returned true). */
  tsSec = 0;
  /** Fraction of the second in microseconds (nanosecond files are scaled down). */
  tsUsec = 0;
  capturedLen = 0;
  originalLen = 0;
  /** Offset of the current record's bytes in the wrapped array. */
  dataOffset = 0;
  /** Records walked so far. */
  count = 0;

  /** Checks the global header of `bytes[off, off+len)`. */
  wrap(bytes: Uint8Array, off = 0, len = bytes.length - off): WireError {
    this.b = bytes; this.base = off; this.limit = off + len; this.count = 0;
    this.error = WireError.Ok;
    if (len < PCAP_GLOBAL_HEADER_LEN) return this.fail(WireError.Truncated);
    const magicLe = this.u32(off, true);
    if (magicLe === PCAP_MAGIC_US || magicLe === PCAP_MAGIC_NS) { this.le = true; this.nanos = magicLe === PCAP_MAGIC_NS; }
    else {
      const magicBe = this.u32(off, false);
      if (magicBe === PCAP_MAGIC_US || magicBe === PCAP_MAGIC_NS) { this.le = false; this.nanos = magicBe === PCAP_MAGIC_NS; }
      else return this.fail(WireError.Malformed);
    }
    this.versionMajor = this.u16(off + 4);
    this.versionMinor = this.u16(off + 6);
    if (this.versionMajor !== 2) return this.fail(WireError.BadVersion);
    this.snaplen = this.u32(off + 16, this.le);
    // The upper bits of the link-type field carry FCS information; the type is the low 16.
    this.linktype = this.u32(off + 20, this.le) & 0xffff;
    this.pos = off + PCAP_GLOBAL_HEADER_LEN;
    return WireError.Ok;
  }

  /** Advances to the next record; false at the end of the file or on an error (see `error`). */
  next(): boolean {
    if (this.error !== WireError.Ok) return false;
    const p = this.pos;
    if (p >= this.limit) return false;
    if (p + PCAP_RECORD_HEADER_LEN > this.limit) { this.fail(WireError.Truncated); return false; }
    const sec = this.u32(p, this.le);
    const frac = this.u32(p + 4, this.le);
    const incl = this.u32(p + 8, this.le);
    const orig = this.u32(p + 12, this.le);
    // A captured length beyond the snaplen (or absurdly large) means we lost sync with the file.
    if (incl > Math.max(this.snaplen, PCAP_SNAPLEN)) { this.fail(WireError.BadLength); return false; }
    if (p + PCAP_RECORD_HEADER_LEN + incl > this.limit) { this.fail(WireError.Truncated); return false; }
    this.tsSec = sec;
    this.tsUsec = this.nanos ? Math.floor(frac / 1000) : frac;
    this.capturedLen = incl;
    this.originalLen = orig;
    this.dataOffset = p + PCAP_RECORD_HEADER_LEN;
    this.pos = this.dataOffset + incl;
    this.count++;
    return true;
  }

  /** The current record's timestamp in ms since the epoch. */
  get timestampMs(): number { return this.tsSec * 1000 + this.tsUsec / 1000; }

  /** Where the walk stands (offset from the wrapped start): the end of the last whole record. */
  get offset(): number { return this.pos - this.base; }

  private fail(e: WireError): WireError { this.error = e; this.pos = this.limit; return e; }

  private u16(off: number): number {
    return this.le ? this.b[off]! | (this.b[off + 1]! << 8) : (this.b[off]! << 8) | this.b[off + 1]!;
  }

  private u32(off: number, le: boolean): number {
    const b = this.b;
    return le
      ? (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0
      : ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
  }
}

export interface PcapRecord {
  timestampMs: number;
  originalLen: number;
  /** The captured bytes (a view into the file's bytes). */
  data: Uint8Array;
}

/** Reads a whole file into records (allocates; for tests and tools). */
export function readPcap(bytes: Uint8Array): { error: WireError; linktype: number; records: PcapRecord[] } {
  const r = new PcapReader();
  const records: PcapRecord[] = [];
  if (r.wrap(bytes) !== WireError.Ok) return { error: r.error, linktype: 0, records };
  while (r.next()) {
    records.push({ timestampMs: r.timestampMs, originalLen: r.originalLen, data: bytes.subarray(r.dataOffset, r.dataOffset + r.capturedLen) });
  }
  return { error: r.error, linktype: r.linktype, records };
}
