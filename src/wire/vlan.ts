// IEEE 802.1Q VLAN tags (C-tag, TPID 0x8100) and 802.1ad service tags (S-tag, TPID 0x88a8).
//
// On the wire a tag sits where the EtherType was: TPID(2) TCI(2) then the inner EtherType(2).
// The view wraps those 6 bytes, starting at the TPID (frame offset 12 for the outer tag,
// 16 for the inner tag of a Q-in-Q frame), so stacked tags are walked with one view.
import { WireError } from './errors.js';

/** TPID + TCI. */
export const VLAN_TAG_LEN = 4;
/** What the view needs: TPID + TCI + the inner EtherType. */
export const VLAN_VIEW_LEN = 6;

export const VlanTpid = {
  CTag: 0x8100,
  STag: 0x88a8,
  /** Pre-standard Q-in-Q outer tag some switches still send. */
  QinQLegacy: 0x9100,
} as const;

/** VID 0xFFF is reserved (802.1Q Table 9-2): it must not appear in a tag. */
export const VLAN_VID_RESERVED = 0xfff;

export function isVlanTpid(etherType: number): boolean {
  return etherType === VlanTpid.CTag || etherType === VlanTpid.STag || etherType === VlanTpid.QinQLegacy;
}

export class VlanView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;

  /** `off` is the TPID's offset; `len` the bytes available from there to the end of the frame. */
  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (off < 0 || len < VLAN_VIEW_LEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off; this.len = len;
    if (!isVlanTpid(this.tpid)) return WireError.Unsupported;
    if (this.vid === VLAN_VID_RESERVED) return WireError.Malformed;
    // EtherType values below 0x0600 are 802.3 lengths: an LLC frame inside the tag.
    if (this.innerEtherType < 0x0600) return WireError.Unsupported;
    return WireError.Ok;
  }

  get tpid(): number { return (this.bytes[this.off]! << 8) | this.bytes[this.off + 1]!; }
  /** Tag control information: PCP(3) DEI(1) VID(12). */
  get tci(): number { return (this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!; }
  set tci(v: number) { this.bytes[this.off + 2] = (v >> 8) & 0xff; this.bytes[this.off + 3] = v & 0xff; }
  /** Priority code point (802.1p class), 0..7. */
  get pcp(): number { return this.bytes[this.off + 2]! >> 5; }
  set pcp(v: number) { this.bytes[this.off + 2] = (this.bytes[this.off + 2]! & 0x1f) | ((v & 7) << 5); }
  /** Drop eligible indicator (was CFI). */
  get dei(): boolean { return (this.bytes[this.off + 2]! & 0x10) !== 0; }
  set dei(v: boolean) { this.bytes[this.off + 2] = (this.bytes[this.off + 2]! & 0xef) | (v ? 0x10 : 0); }
  /** VLAN identifier; 0 means priority-tagged (no VLAN). */
  get vid(): number { return ((this.bytes[this.off + 2]! & 0x0f) << 8) | this.bytes[this.off + 3]!; }
  set vid(v: number) {
    this.bytes[this.off + 2] = (this.bytes[this.off + 2]! & 0xf0) | ((v >> 8) & 0x0f);
    this.bytes[this.off + 3] = v & 0xff;
  }
  /** The EtherType after this tag: another TPID for stacked tags, else the payload's type. */
  get innerEtherType(): number { return (this.bytes[this.off + 4]! << 8) | this.bytes[this.off + 5]!; }
  /** Offset of what follows the inner EtherType (the payload, or the next tag's TCI when stacked). */
  get payloadOff(): number { return this.off + VLAN_VIEW_LEN; }
  get payloadLen(): number { return this.len - VLAN_VIEW_LEN; }
  /** Offset of the next tag's TPID (the inner EtherType field) when tags are stacked. */
  get nextTagOff(): number { return this.off + VLAN_TAG_LEN; }
}

export function makeTci(pcp: number, dei: boolean, vid: number): number {
  return ((pcp & 7) << 13) | (dei ? 0x1000 : 0) | (vid & 0xfff);
}

/** Writes TPID, TCI and the inner EtherType (6 bytes) at `off`, the EtherType's position. */
export function writeVlanTag(b: Uint8Array, off: number, tpid: number, pcp: number, dei: boolean, vid: number, innerEtherType: number): void {
  const tci = makeTci(pcp, dei, vid);
  b[off] = tpid >> 8; b[off + 1] = tpid & 0xff;
  b[off + 2] = tci >> 8; b[off + 3] = tci & 0xff;
  b[off + 4] = innerEtherType >> 8; b[off + 5] = innerEtherType & 0xff;
}

/**
 * Inserts a tag into the Ethernet frame at `frameOff` by moving the two MAC addresses 4 bytes
 * into the headroom; returns the frame's new start (`frameOff - 4`). The caller guarantees
 * the headroom (PacketBuffer.prepend(4)). The old EtherType becomes the inner EtherType.
 */
export function pushVlanTag(b: Uint8Array, frameOff: number, tpid: number, tci: number): number {
  const n = frameOff - VLAN_TAG_LEN;
  b.copyWithin(n, frameOff, frameOff + 12);
  b[n + 12] = tpid >> 8; b[n + 13] = tpid & 0xff;
  b[n + 14] = tci >> 8; b[n + 15] = tci & 0xff;
  return n;
}

/**
 * Removes the outer tag of the frame at `frameOff` by moving the MAC addresses 4 bytes forward;
 * returns the frame's new start (`frameOff + 4`). The inner EtherType becomes the frame's.
 */
export function popVlanTag(b: Uint8Array, frameOff: number): number {
  const n = frameOff + VLAN_TAG_LEN;
  b.copyWithin(n, frameOff, frameOff + 12);
  return n;
}
