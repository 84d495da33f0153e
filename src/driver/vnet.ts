// The virtio_net_hdr codec shared by the TAP and AF_PACKET drivers (PACKET_VNET_HDR uses the
// same 10-byte header), and the random local MAC both give the stack side by default.
//   flags u8 | gso_type u8 | hdr_len u16 | gso_size u16 | csum_start u16 | csum_offset u16
// (little-endian), carrying checksum and segmentation offload state (DESIGN.md, "Offload metadata").
import { randomBytes } from 'node:crypto';
import { Csum, Gso, type PacketBuffer } from '../base/pktbuf.js';

// <linux/virtio_net.h>
export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/**
 * Decodes the virtio_net_hdr at data[off..off+10) into buf's offload metadata; `frameStart`
 * is the absolute offset of the frame (csum_start is relative to it).
 *
 * NEEDS_CSUM means the kernel left only the pseudo-header sum in the field: the frame never
 * crossed a wire, so we trust it as DESIGN.md says (Csum.Valid) and keep where the sum sits.
 */
export function decodeVnetHeader(data: Uint8Array, off: number, buf: PacketBuffer, frameStart: number): void {
  const flags = data[off]!;
  const gsoType = data[off + 1]! & ~VIRTIO_NET_HDR_GSO_ECN;
  if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    buf.csum = Csum.Valid;
    buf.csumStart = frameStart + (data[off + 6]! | (data[off + 7]! << 8));
    buf.csumOffset = data[off + 8]! | (data[off + 9]! << 8);
  } else if (flags & VIRTIO_NET_HDR_F_DATA_VALID) {
    buf.csum = Csum.Valid;
  } else {
    buf.csum = Csum.None;
  }
  switch (gsoType) {
    case VIRTIO_NET_HDR_GSO_TCPV4: buf.gso = Gso.Tcp4; break;
    case VIRTIO_NET_HDR_GSO_TCPV6: buf.gso = Gso.Tcp6; break;
    case VIRTIO_NET_HDR_GSO_UDP:
    case VIRTIO_NET_HDR_GSO_UDP_L4: buf.gso = Gso.Udp; break;
    default: buf.gso = Gso.None;
  }
  buf.gsoSize = buf.gso === Gso.None ? 0 : data[off + 4]! | (data[off + 5]! << 8);
}

/**
 * Encodes buf's offload metadata as a virtio_net_hdr at data[off..off+10) for the frame
 * starting at buf.start. Returns false when the metadata cannot be expressed (offsets beyond
 * 16 bits or before the frame); the caller drops the frame.
 */
export function encodeVnetHeader(data: Uint8Array, off: number, buf: PacketBuffer): boolean {
  let flags = 0, gsoType = VIRTIO_NET_HDR_GSO_NONE, hdrLen = 0, gsoSize = 0, csumStart = 0, csumOffset = 0;
  if (buf.csum === Csum.Partial) {
    csumStart = buf.csumStart - buf.start;
    csumOffset = buf.csumOffset;
    if (csumStart < 0 || csumStart > 0xffff || csumOffset > 0xffff) return false;
    flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  }
  if (buf.gso !== Gso.None) {
    // Gso.Udp is UDP segmentation (like UDP_SEGMENT), which virtio calls GSO_UDP_L4.
    gsoType = buf.gso === Gso.Tcp4 ? VIRTIO_NET_HDR_GSO_TCPV4
      : buf.gso === Gso.Tcp6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_UDP_L4;
    gsoSize = buf.gsoSize;
    // hdr_len: Ethernet + IP + L4 headers, the part copied into every segment.
    const l4 = buf.l4 >= 0 ? buf.l4 : buf.csumStart;
    const l4Len = buf.gso === Gso.Udp ? 8 : ((data[l4 + 12]! >> 4) * 4);
    hdrLen = l4 - buf.start + l4Len;
    // A TCP super-segment with CWR: the device puts CWR on the first segment only (RFC 3168 §6.1.2).
    if (buf.gso !== Gso.Udp && (data[l4 + 13]! & 0x80) !== 0) gsoType |= VIRTIO_NET_HDR_GSO_ECN;
    if (gsoSize <= 0 || gsoSize > 0xffff || hdrLen <= 0 || hdrLen > 0xffff) return false;
  }
  data[off] = flags;
  data[off + 1] = gsoType;
  data[off + 2] = hdrLen & 0xff; data[off + 3] = hdrLen >> 8;
  data[off + 4] = gsoSize & 0xff; data[off + 5] = gsoSize >> 8;
  data[off + 6] = csumStart & 0xff; data[off + 7] = csumStart >> 8;
  data[off + 8] = csumOffset & 0xff; data[off + 9] = csumOffset >> 8;
  return true;
}

/** A random unicast, locally administered MAC (02:xx:...). */
export function randomLocalMac(): Uint8Array {
  const m = new Uint8Array(randomBytes(6));
  m[0] = (m[0]! & 0xfe) | 0x02;
  return m;
}
