// Receive coalescing (Linux's GRO) for one receive burst: in-order, pure-data TCP segments of one
// flow that arrive in the same burst become one super-segment before IP and TCP input, so the
// stack parses, demultiplexes and acknowledges them once. The result is what a NIC with LRO/GRO
// or the kernel's veth would hand up: payload concatenated, IP length and checksum rewritten,
// the TCP checksum taken as verified, and the segment size kept as `gsoSize` (TCP counts the
// segments it stands for, and forwarding segments it again).
//
// The rules are Linux's tcp_gro_receive()/inet_gro_receive() ones:
// - same Ethernet header (no VLAN tag), IPv4 without options or fragments, or IPv6 with TCP
//   directly after the fixed header; same addresses, ports, TOS/traffic class, TTL/hop limit, DF;
// - flags ACK, optionally PSH; the same acknowledgement number; a PSH segment is merged and ends
//   the super-segment (Linux flushes on PSH);
// - the same TCP options byte for byte, except that the timestamp value may rise (the merged
//   segment carries the newest; the echo reply must be equal) — Linux insists on equal options,
//   which is the same thing within one millisecond;
// - the next segment's sequence number is where the super-segment ends; every segment but the
//   last has the first one's size (a shorter one is merged and ends it, a longer one is not);
// - the checksum verified (by the device or here): a bad segment is never merged (TCP counts it).
// Frames that are not candidates go to input at once, after whatever of their flow is held.
import { Csum, Gso, LARGE_BUF_SIZE, type BufferPool, type PacketBuffer } from '../../base/pktbuf.js';
import { copyBytes } from '../../base/offload.js';
import { finish, fold, pseudoHeaderV4, pseudoHeaderV6, sum16 } from '../../wire/checksum.js';
import type { Sysctl, SysctlHandle } from '../sysctl.js';

const ETH = 14;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
/** Largest TCP payload + headers one IPv4 datagram (or IPv6 payload) can carry. */
const IP_MAX = 65535;
/** Flows held at once within a burst (Linux: MAX_GRO_SKBS 8 per NAPI bucket). */
const MAX_FLOWS = 8;

export function defineGroSysctls(s: Sysctl): SysctlHandle<number> {
  return s.define({ name: 'net.link.ether.gro', type: 'int', default: 1, min: 0, max: 1, description: 'receive coalescing: in-order TCP data segments of one flow within a receive burst enter TCP as one segment (Linux GRO rules)' });
}

/** Counters of the coalescer (Stack.groStats). */
export class GroStats {
  /** Segments merged into a super-segment held before them. */
  merged = 0;
  /** Super-segments (two or more segments) handed to input. */
  superSegments = 0;
}

/** One flow held during a burst: its super-segment so far and where the next segment must fit. */
class Held {
  buf!: PacketBuffer;
  ifIndex = 0;
  v6 = false;
  /** Absolute offsets in buf.data. */
  ip = 0;
  tcp = 0;
  /** TCP header length. */
  thl = 0;
  /** Offset of the TS option's value in the TCP header (from tcp), or -1. */
  tsAt = -1;
  /** Segment size: the first segment's payload. */
  mss = 0;
  /** Sequence number the next segment must carry. */
  nextSeq = 0;
  segs = 1;
  /** A short segment or PSH ended it: nothing more merges. */
  closed = false;
}

/**
 * Coalesces one receive burst and hands every frame, merged or not, to `deliver` (stack input).
 * Owns nothing between bursts.
 */
export class Gro {
  readonly stats = new GroStats();
  private readonly held: Held[] = [];
  private nHeld = 0;

  constructor(private readonly pool: BufferPool, private readonly deliver: (ifIndex: number, buf: PacketBuffer) => void) {
    for (let i = 0; i < MAX_FLOWS; i++) this.held.push(new Held());
  }

  /** IPv6 segments merge only while this is true (IPv6 forwarding takes no super-segments). */
  private merge6 = true;

  /**
   * Frames bufs[0..n) from interface ifIndex, in arrival order. Takes ownership of each.
   * `merge6` false: IPv6 segments pass as they are (the stack forwards IPv6).
   */
  burst(ifIndex: number, bufs: PacketBuffer[], n: number, merge6 = true): void {
    this.merge6 = merge6;
    for (let i = 0; i < n; i++) {
      const b = bufs[i]!;
      this.frame(ifIndex, b);
    }
    this.flushAll();
  }

  private frame(ifIndex: number, buf: PacketBuffer): void {
    const d = buf.data, s = buf.start, len = buf.end - s;
    if (len < ETH + 40) { this.passThrough(ifIndex, buf); return; }
    const et = (d[s + 12]! << 8) | d[s + 13]!;
    let ip = s + ETH, tcp: number, payloadEnd: number, v6: boolean;
    if (et === 0x0800) {
      // IPv4, no options, not a fragment (MF clear, offset 0), TCP.
      if (d[ip] !== 0x45 || d[ip + 9] !== 6 || (d[ip + 6]! & 0x3f) !== 0 || d[ip + 7] !== 0) { this.passThrough(ifIndex, buf); return; }
      const total = (d[ip + 2]! << 8) | d[ip + 3]!;
      if (total !== len - ETH) { this.passThrough(ifIndex, buf); return; }
      tcp = ip + 20; payloadEnd = ip + total; v6 = false;
    } else if (et === 0x86dd) {
      if (!this.merge6 || (d[ip]! >> 4) !== 6 || d[ip + 6] !== 6) { this.passThrough(ifIndex, buf); return; }
      const plen = (d[ip + 4]! << 8) | d[ip + 5]!;
      if (plen !== len - ETH - 40) { this.passThrough(ifIndex, buf); return; }
      tcp = ip + 40; payloadEnd = tcp + plen; v6 = true;
    } else { this.passThrough(ifIndex, buf); return; }
    if (tcp + 20 > payloadEnd) { this.passThrough(ifIndex, buf); return; }
    const thl = (d[tcp + 12]! >> 4) * 4;
    const flags = d[tcp + 13]!;
    const dataLen = payloadEnd - tcp - thl;
    // Only ACK or ACK|PSH segments with data take part (no SYN/FIN/RST/URG/ECE/CWR). A device's
    // super-frame (the kernel's GSO on veth and TAP) is already coalesced: merging it would copy
    // tens of kilobytes to save one pass through TCP, so it goes on as it is. The IPv4 header
    // checksum must hold (IP input checks it too; a bad one is not ours to merge).
    if (thl < 20 || dataLen <= 0 || (flags & ~TCP_PSH) !== TCP_ACK || (d[tcp + 12]! & 0x0f) !== 0 || buf.gso !== Gso.None
        || (!v6 && fold(sum16(d, ip, 20)) !== 0xffff)) {
      // Whatever of its flow is held goes first (a pure ACK's flow is usually not held: no search).
      if (this.nHeld > 0) { const h = this.find(ifIndex, buf, ip, tcp, v6); if (h !== null) this.flush(h); }
      this.deliver(ifIndex, buf);
      return;
    }
    const h = this.nHeld > 0 ? this.find(ifIndex, buf, ip, tcp, v6) : null;
    if (buf.csum !== Csum.Valid) {
      const tl = payloadEnd - tcp;
      const pseudo = v6 ? pseudoHeaderV6(d, ip + 8, d, ip + 24, 6, tl) : pseudoHeaderV4(readU32(d, ip + 12), readU32(d, ip + 16), 6, tl);
      if (fold(sum16(d, tcp, tl, pseudo)) !== 0xffff) {
        // TCP input counts the bad checksum; what is held of the flow goes first.
        if (h !== null) this.flush(h);
        this.deliver(ifIndex, buf);
        return;
      }
      buf.csum = Csum.Valid;
    }
    if (h !== null) {
      if (this.merge(h, buf, tcp, thl, dataLen, flags)) {
        // PSH ended it: nothing more can join, so it goes now.
        if (h.closed) this.flush(h);
        return;
      }
      this.flush(h);
    }
    // A PSH segment with nothing of its flow held (a request, a reply) would only wait.
    if ((flags & TCP_PSH) !== 0) { this.deliver(ifIndex, buf); return; }
    this.hold(ifIndex, buf, ip, tcp, thl, dataLen, flags, v6);
  }

  /** The held flow of the frame's Ethernet header, addresses and ports, or null. */
  private find(ifIndex: number, buf: PacketBuffer, ip: number, tcp: number, v6: boolean): Held | null {
    const d = buf.data, s = buf.start;
    for (let i = 0; i < this.nHeld; i++) {
      const h = this.held[i]!;
      if (h.ifIndex !== ifIndex || h.v6 !== v6) continue;
      const hd = h.buf.data, hs = h.buf.start;
      // Ports, then addresses, then the Ethernet header.
      if (hd[h.tcp] !== d[tcp] || hd[h.tcp + 1] !== d[tcp + 1] || hd[h.tcp + 2] !== d[tcp + 2] || hd[h.tcp + 3] !== d[tcp + 3]) continue;
      const a = v6 ? 8 : 12, alen = v6 ? 32 : 8;
      if (!same(hd, h.ip + a, d, ip + a, alen) || !same(hd, hs, d, s, ETH)) continue;
      return h;
    }
    return null;
  }

  private hold(ifIndex: number, buf: PacketBuffer, ip: number, tcp: number, thl: number, dataLen: number, flags: number, v6: boolean): void {
    if (this.nHeld === MAX_FLOWS) this.flush(this.held[0]!);
    const h = this.held[this.nHeld++]!;
    h.buf = buf; h.ifIndex = ifIndex; h.v6 = v6; h.ip = ip; h.tcp = tcp; h.thl = thl;
    h.tsAt = thl > 20 ? tsOffset(buf.data, tcp, thl) : -1;
    h.mss = dataLen;
    h.nextSeq = (readU32(buf.data, tcp + 4) + dataLen) >>> 0;
    h.segs = 1;
    // A PSH ends it at once.
    h.closed = (flags & TCP_PSH) !== 0;
  }

  /** Appends the segment's payload to h when Linux's rules allow; false leaves buf untouched. */
  private merge(h: Held, buf: PacketBuffer, tcp: number, thl: number, dataLen: number, flags: number): boolean {
    if (h.closed || dataLen > h.mss) return false;
    const d = buf.data, hd0 = h.buf.data;
    if (readU32(d, tcp + 4) !== h.nextSeq) return false;
    // Same acknowledgement number, header length and options (bar a rising TS value).
    if (thl !== h.thl || readU32(d, tcp + 8) !== readU32(hd0, h.tcp + 8)) return false;
    if (h.tsAt < 0) {
      if (!same(hd0, h.tcp + 20, d, tcp + 20, thl - 20)) return false;
    } else {
      const ts = h.tsAt;
      if (!same(hd0, h.tcp + 20, d, tcp + 20, ts - 20) || !same(hd0, h.tcp + ts + 4, d, tcp + ts + 4, thl - ts - 4)) return false;
      // TS value: not older than the held one (modular, as PAWS compares them).
      if (((readU32(d, tcp + ts) - readU32(hd0, h.tcp + ts)) | 0) < 0) return false;
    }
    // IP: the same TOS/traffic class and flow label, TTL/hop limit and DF.
    const ip = buf.start + ETH;
    if (h.v6) {
      if (!same(hd0, h.ip, d, ip, 4) || hd0[h.ip + 7] !== d[ip + 7]) return false;
    } else if (hd0[h.ip + 1] !== d[ip + 1] || hd0[h.ip + 8] !== d[ip + 8] || ((hd0[h.ip + 6]! ^ d[ip + 6]!) & 0x40) !== 0) {
      return false;
    }
    const total = h.buf.end - h.ip + dataLen;
    if ((h.v6 ? total - 40 : total) > IP_MAX) return false;
    if (h.buf.end + dataLen > h.buf.data.length && !this.grow(h)) return false;
    const hb = h.buf, hd = hb.data;
    // In: the payload, then the newest window, TS value and PSH.
    copyBytes(hd, hb.end, d, tcp + thl, dataLen);
    hb.end += dataLen;
    hd[h.tcp + 14] = d[tcp + 14]!; hd[h.tcp + 15] = d[tcp + 15]!;
    if (h.tsAt >= 0) copyBytes(hd, h.tcp + h.tsAt, d, tcp + h.tsAt, 4);
    hd[h.tcp + 13] = hd[h.tcp + 13]! | (flags & TCP_PSH);
    h.nextSeq = (h.nextSeq + dataLen) >>> 0;
    h.segs++;
    if ((flags & TCP_PSH) !== 0 || dataLen % h.mss !== 0) h.closed = true;
    this.stats.merged++;
    buf.release();
    return true;
  }

  /** Hands h's frame to input, with its headers made true for what it now holds. */
  private flush(h: Held): void {
    const b = h.buf;
    if (h.segs > 1) {
      const d = b.data;
      const tl = b.end - h.tcp;
      let pseudo: number;
      if (h.v6) {
        const plen = b.end - h.ip - 40;
        d[h.ip + 4] = plen >>> 8; d[h.ip + 5] = plen & 0xff;
        pseudo = pseudoHeaderV6(d, h.ip + 8, d, h.ip + 24, 6, tl);
      } else {
        const total = b.end - h.ip;
        d[h.ip + 2] = total >>> 8; d[h.ip + 3] = total & 0xff;
        d[h.ip + 10] = 0; d[h.ip + 11] = 0;
        const c = finish(sum16(d, h.ip, 20));
        d[h.ip + 10] = c >>> 8; d[h.ip + 11] = c & 0xff;
        pseudo = pseudoHeaderV4(readU32(d, h.ip + 12), readU32(d, h.ip + 16), 6, tl);
      }
      // Every part was verified, so the whole is; as Linux's GRO leaves it (CHECKSUM_PARTIAL),
      // the field holds the pseudo-header sum, so that forwarding can hand the super-segment to
      // a TSO device to complete, or cut it up (src/base/offload.ts).
      const p = fold(pseudo);
      d[h.tcp + 16] = p >>> 8; d[h.tcp + 17] = p & 0xff;
      b.csum = Csum.Valid; b.csumStart = h.tcp; b.csumOffset = 16;
      b.gso = h.v6 ? Gso.Tcp6 : Gso.Tcp4;
      b.gsoSize = h.mss;
      this.stats.superSegments++;
    }
    // Out of the held list (order kept: flushAll delivers in arrival order).
    const i = this.held.indexOf(h);
    this.held.splice(i, 1);
    this.held.push(h);
    this.nHeld--;
    const ifIndex = h.ifIndex;
    h.buf = null as unknown as PacketBuffer;
    this.deliver(ifIndex, b);
  }

  private flushAll(): void {
    while (this.nHeld > 0) this.flush(this.held[0]!);
  }

  /** A frame GRO does not look into: delivered now (it belongs to no held flow). */
  private passThrough(ifIndex: number, buf: PacketBuffer): void {
    this.deliver(ifIndex, buf);
  }

  /**
   * Moves h's frame into a buffer with room for a whole super-segment (drivers hand small frames
   * in 2 KiB buffers), at the same offsets. False when it already is one.
   */
  private grow(h: Held): boolean {
    const old = h.buf;
    if (old.data.length >= LARGE_BUF_SIZE) return false;
    const b = this.pool.alloc(LARGE_BUF_SIZE);
    b.start = old.start; b.end = old.end;
    copyBytes(b.data, old.start, old.data, old.start, old.end - old.start);
    b.csum = old.csum; b.csumStart = old.csumStart; b.csumOffset = old.csumOffset;
    b.gso = old.gso; b.gsoSize = old.gsoSize; b.l3 = old.l3; b.l4 = old.l4; b.ifIndex = old.ifIndex;
    old.release();
    h.buf = b;
    return true;
  }
}

function readU32(d: Uint8Array, o: number): number {
  return ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
}

function same(a: Uint8Array, ao: number, b: Uint8Array, bo: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/** Offset from the TCP header of the timestamp option's TSval, or -1 (options are well formed or ignored). */
function tsOffset(d: Uint8Array, tcp: number, thl: number): number {
  let i = 20;
  while (i < thl) {
    const kind = d[tcp + i]!;
    if (kind === 0) return -1;
    if (kind === 1) { i++; continue; }
    if (i + 1 >= thl) return -1;
    const l = d[tcp + i + 1]!;
    if (l < 2 || i + l > thl) return -1;
    if (kind === 8 && l === 10) return i + 2;
    i += l;
  }
  return -1;
}
