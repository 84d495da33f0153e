// ARP for IPv4 over Ethernet (RFC 826). Other hardware/protocol types are reported Unsupported.
import { readIpv4, writeIpv4 } from './addr.js';
import { WireError } from './errors.js';

export const ARP_LEN = 28;
export const ArpOp = { Request: 1, Reply: 2 } as const;

export class ArpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (len < 8 || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off;
    const b = bytes;
    const htype = (b[off]! << 8) | b[off + 1]!;
    const ptype = (b[off + 2]! << 8) | b[off + 3]!;
    if (htype !== 1 || ptype !== 0x0800 || b[off + 4] !== 6 || b[off + 5] !== 4) return WireError.Unsupported;
    if (len < ARP_LEN) return WireError.Truncated;
    const op = this.op;
    if (op !== ArpOp.Request && op !== ArpOp.Reply) return WireError.Unsupported;
    return WireError.Ok;
  }

  get op(): number { return (this.bytes[this.off + 6]! << 8) | this.bytes[this.off + 7]!; }
  /** Offset of the sender hardware address. */
  get shaOff(): number { return this.off + 8; }
  get spa(): number { return readIpv4(this.bytes, this.off + 14); }
  get thaOff(): number { return this.off + 18; }
  get tpa(): number { return readIpv4(this.bytes, this.off + 24); }
}

/** Writes a 28-byte Ethernet/IPv4 ARP packet at `off`. */
export function writeArp(b: Uint8Array, off: number, op: number, sha: Uint8Array, spa: number, tha: Uint8Array, tpa: number): void {
  b[off] = 0; b[off + 1] = 1; b[off + 2] = 0x08; b[off + 3] = 0x00; b[off + 4] = 6; b[off + 5] = 4;
  b[off + 6] = op >> 8; b[off + 7] = op & 0xff;
  for (let i = 0; i < 6; i++) { b[off + 8 + i] = sha[i]!; b[off + 18 + i] = tha[i]!; }
  writeIpv4(b, off + 14, spa);
  writeIpv4(b, off + 24, tpa);
}
