// Offloads done in software: checksum completion and TCP segmentation, what a NIC does with a
// Csum.Partial buffer or a TSO super-frame. Shared by the engine (loopback, devices without
// txCsum), the drivers (memory wire, fault injector) and the pcap writer: one version.
import { Csum, type PacketBuffer, type BufferPool } from './pktbuf.js';
import { sum16, finish, pseudoHeaderV4, pseudoHeaderV6 } from '../wire/checksum.js';

/**
 * The checksum a Csum.Partial buffer's L4 header should carry, computed over `data` (buf.data or
 * a copy of it laid out at the same offsets minus `shift`). Returns -1 when the checksum region
 * does not fit the buffer. The field holds the folded pseudo-header sum, so the sum from
 * csumStart to the end includes it.
 */
export function partialChecksum(buf: PacketBuffer, data: Uint8Array = buf.data, shift = 0): number {
  const start = buf.csumStart;
  const at = start + buf.csumOffset;
  if (start < buf.start || at + 2 > buf.end) return -1;
  let c = finish(sum16(data, start - shift, buf.end - start));
  // RFC 768: "If the computed checksum is zero, it is transmitted as all ones". The UDP
  // checksum sits 6 bytes into its header (TCP's at 16, where 0 is a legal value).
  if (c === 0 && buf.csumOffset === 6) c = 0xffff;
  return c;
}

/**
 * Completes an L4 checksum left Csum.Partial, as a device with txCsum offload would: the field
 * holds the folded pseudo-header sum, so the sum from csumStart to the end includes it.
 */
export function completeChecksum(buf: PacketBuffer): void {
  if (buf.csum !== Csum.Partial) return;
  const c = partialChecksum(buf);
  if (c < 0) { buf.csum = Csum.None; return; }
  const at = buf.csumStart + buf.csumOffset;
  buf.data[at] = c >>> 8;
  buf.data[at + 1] = c & 0xff;
  buf.csum = Csum.None;
}

/**
 * Software TCP segmentation (what a NIC does with a TSO super-frame when the far side cannot take
 * it whole): splits an Ethernet + IPv4 + TCP frame marked Gso.Tcp4 into frames of at most
 * buf.gsoSize payload bytes, each with its own IPv4 total length, id (+1 per segment) and header
 * checksum, TCP sequence number and complete TCP checksum; FIN and PSH stay on the last segment
 * only, CWR on the first (RFC 3168 §6.1.2). Appends the frames to `out` from index 0 and returns
 * how many; returns 0 (the caller counts an error) when the frame is not Ethernet/IPv4/TCP or
 * its sizes disagree. Does not take ownership of buf.
 */
export function segmentTcp4(buf: PacketBuffer, pool: BufferPool, out: PacketBuffer[]): number {
  const d = buf.data;
  const s = buf.start;
  const len = buf.end - s;
  if (len < 14 + 20 + 20 || d[s + 12] !== 0x08 || d[s + 13] !== 0x00) return 0;
  const ip = s + 14;
  const ihl = (d[ip]! & 0x0f) * 4;
  if ((d[ip]! >> 4) !== 4 || ihl < 20 || d[ip + 9] !== 6) return 0;
  const tcp = ip + ihl;
  if (tcp + 20 > buf.end) return 0;
  const thl = (d[tcp + 12]! >> 4) * 4;
  const hdrs = tcp + thl - s;
  const payload = len - hdrs;
  const mss = buf.gsoSize;
  if (thl < 20 || payload < 0 || mss <= 0) return 0;
  const id0 = (d[ip + 4]! << 8) | d[ip + 5]!;
  const seq0 = ((d[tcp + 4]! << 24) | (d[tcp + 5]! << 16) | (d[tcp + 6]! << 8) | d[tcp + 7]!) >>> 0;
  const flags = d[tcp + 13]!;
  const src = ((d[ip + 12]! << 24) | (d[ip + 13]! << 16) | (d[ip + 14]! << 8) | d[ip + 15]!) >>> 0;
  const dst = ((d[ip + 16]! << 24) | (d[ip + 17]! << 16) | (d[ip + 18]! << 8) | d[ip + 19]!) >>> 0;
  let n = 0;
  // A super-frame without payload (never built by TCP, but legal) becomes one plain frame.
  for (let at = 0; at === 0 || at < payload; at += mss) {
    const chunk = Math.min(mss, payload - at);
    const f = cutSegment(buf, pool, hdrs, at, chunk);
    const fd = f.data;
    const fip = f.start + 14, ftcp = fip + ihl;
    const total = ihl + thl + chunk;
    fd[fip + 2] = total >>> 8; fd[fip + 3] = total & 0xff;
    const id = (id0 + n) & 0xffff;
    fd[fip + 4] = id >>> 8; fd[fip + 5] = id & 0xff;
    fd[fip + 10] = 0; fd[fip + 11] = 0;
    const ipc = finish(sum16(fd, fip, ihl));
    fd[fip + 10] = ipc >>> 8; fd[fip + 11] = ipc & 0xff;
    finishTcpSegment(fd, ftcp, (seq0 + at) >>> 0, flags, n === 0, at + mss >= payload, thl + chunk, pseudoHeaderV4(src, dst, 6, thl + chunk));
    out[n++] = f;
  }
  return n;
}

/**
 * The same for an Ethernet + IPv6 + TCP frame marked Gso.Tcp6 (TCP directly after the 40-byte
 * header, as the stack builds them): each segment gets its own payload length, sequence number
 * and complete TCP checksum over the IPv6 pseudo-header. Returns 0 for anything else.
 */
export function segmentTcp6(buf: PacketBuffer, pool: BufferPool, out: PacketBuffer[]): number {
  const d = buf.data;
  const s = buf.start;
  const len = buf.end - s;
  if (len < 14 + 40 + 20 || d[s + 12] !== 0x86 || d[s + 13] !== 0xdd) return 0;
  const ip = s + 14;
  if ((d[ip]! >> 4) !== 6 || d[ip + 6] !== 6) return 0;
  const tcp = ip + 40;
  const thl = (d[tcp + 12]! >> 4) * 4;
  const hdrs = tcp + thl - s;
  const payload = len - hdrs;
  const mss = buf.gsoSize;
  if (thl < 20 || payload < 0 || mss <= 0) return 0;
  const seq0 = ((d[tcp + 4]! << 24) | (d[tcp + 5]! << 16) | (d[tcp + 6]! << 8) | d[tcp + 7]!) >>> 0;
  const flags = d[tcp + 13]!;
  let n = 0;
  for (let at = 0; at === 0 || at < payload; at += mss) {
    const chunk = Math.min(mss, payload - at);
    const f = cutSegment(buf, pool, hdrs, at, chunk);
    const fd = f.data;
    const fip = f.start + 14, ftcp = fip + 40;
    const plen = thl + chunk;
    fd[fip + 4] = plen >>> 8; fd[fip + 5] = plen & 0xff;
    finishTcpSegment(fd, ftcp, (seq0 + at) >>> 0, flags, n === 0, at + mss >= payload, plen, pseudoHeaderV6(fd, fip + 8, fd, fip + 24, 6, plen));
    out[n++] = f;
  }
  return n;
}

/**
 * One segment of a super-frame: its `hdrs` bytes of headers and the payload bytes [at, at+chunk)
 * copied into a new buffer (frame at its start), on the super-frame's interface.
 */
function cutSegment(buf: PacketBuffer, pool: BufferPool, hdrs: number, at: number, chunk: number): PacketBuffer {
  const d = buf.data, s = buf.start;
  const f = pool.alloc(pool.headroom + hdrs + chunk);
  const o = f.append(hdrs + chunk);
  copyBytes(f.data, o, d, s, hdrs);
  if (chunk > 0) f.data.set(d.subarray(s + hdrs + at, s + hdrs + at + chunk), o + hdrs);
  f.ifIndex = buf.ifIndex;
  return f;
}

/**
 * A segment's TCP header: its sequence number, the flags (FIN 0x01 and PSH 0x08 only on the last
 * segment, CWR 0x80 only on the first) and the complete checksum over `tcpLen` bytes with the
 * pseudo-header sum `pseudo`.
 */
function finishTcpSegment(fd: Uint8Array, ftcp: number, seq: number, flags: number, first: boolean, last: boolean, tcpLen: number, pseudo: number): void {
  fd[ftcp + 4] = seq >>> 24; fd[ftcp + 5] = (seq >>> 16) & 0xff; fd[ftcp + 6] = (seq >>> 8) & 0xff; fd[ftcp + 7] = seq & 0xff;
  fd[ftcp + 13] = flags & ~(last ? 0 : 0x09) & ~(first ? 0 : 0x80);
  fd[ftcp + 16] = 0; fd[ftcp + 17] = 0;
  const tc = finish(sum16(fd, ftcp, tcpLen, pseudo));
  fd[ftcp + 16] = tc >>> 8; fd[ftcp + 17] = tc & 0xff;
}

/**
 * Copies len bytes between arrays. Short frames (ACKs, ARP) are copied by a loop, which
 * allocates nothing; longer ones through a subarray view, where the native copy wins.
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (len <= 256) { for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!; return; }
  dst.set(src.subarray(srcOff, srcOff + len), dstOff);
}
