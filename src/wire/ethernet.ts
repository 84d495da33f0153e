// Ethernet II framing (IEEE 802.3 with EtherType). The FCS never reaches us.
import { WireError } from './errors.js';

export const ETH_HLEN = 14;
/** Smallest frame on the wire without FCS; shorter frames are padded on transmit. */
export const ETH_MIN_FRAME = 60;

export const EtherType = {
  IPv4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QinQ: 0x88a8,
  IPv6: 0x86dd,
} as const;

export class EthernetView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;

  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (len < ETH_HLEN || off < 0 || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off; this.len = len;
    // EtherType values below 0x0600 are 802.3 lengths (LLC frames): not ours to handle.
    if (this.etherType < 0x0600) return WireError.Unsupported;
    return WireError.Ok;
  }

  /** Offset of the destination MAC within `bytes`. */
  get dstOff(): number { return this.off; }
  get srcOff(): number { return this.off + 6; }
  get etherType(): number { return (this.bytes[this.off + 12]! << 8) | this.bytes[this.off + 13]!; }
  get payloadOff(): number { return this.off + ETH_HLEN; }
  get payloadLen(): number { return this.len - ETH_HLEN; }
}

/** Writes dst MAC, src MAC and EtherType at `off`. */
export function writeEthernetHeader(b: Uint8Array, off: number, dst: Uint8Array, dstOff: number, src: Uint8Array, etherType: number): void {
  for (let i = 0; i < 6; i++) { b[off + i] = dst[dstOff + i]!; b[off + 6 + i] = src[i]!; }
  b[off + 12] = etherType >> 8;
  b[off + 13] = etherType & 0xff;
}
