// IPv4 fragment reassembly (RFC 791 §3.2, RFC 815 hole tracking), bounded against hostile
// input: a cap on datagrams in progress, on fragments per datagram, and a timeout. A full table
// evicts its oldest datagram for a new one (as Linux's inet_frag eviction does), so a flood of
// never-completed fragments cannot shut legitimate fragmented traffic out until it times out:
// a datagram whose fragments arrive together completes before the flood pushes it out. A datagram
// whose fragments overlap with different bytes is dropped whole (the RFC 5722 rule, applied to v4).
import { LARGE_BUF_SIZE, type BufferPool, type PacketBuffer } from '../../base/pktbuf.js';
import { IPV4_HLEN, writeIpv4Header, type Ipv4View } from '../../wire/ipv4.js';
import type { Sysctl } from '../sysctl.js';
import { Timer, type Clock, type TimerWheel } from '../../base/time.js';

export function defineReassSysctls(s: Sysctl): void {
  s.define({ name: 'net.inet.ip.maxfragpackets', type: 'int', default: 256, min: 0, max: 65536, description: 'IPv4 datagrams being reassembled at once (0 disables reassembly)' });
  s.define({ name: 'net.inet.ip.maxfragsperpacket', type: 'int', default: 64, min: 1, max: 8192, description: 'fragments accepted per IPv4 datagram' });
  s.define({ name: 'net.inet.ip.fragttl', type: 'int', default: 30000, min: 100, max: 120000, description: 'ms to wait for the rest of a fragmented datagram' });
}

export interface ReassContext {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  drop(reason: string): void;
  /** Reassembly timed out with fragment 0 present: the caller may send ICMP time exceeded (code 1). */
  timedOut(first: PacketBuffer): void;
}

class Datagram {
  /** Payload bytes placed at their offset (absolute offset DATA_OFF + fragment offset). */
  readonly buf: PacketBuffer;
  /** Received [start, end) ranges of the payload, sorted and merged, as flat pairs. */
  ranges: number[] = [];
  total = -1; // payload length once the last fragment arrived
  frags = 0;
  /** Copy of the first fragment's IP header (without options), for the reassembled datagram. */
  first: PacketBuffer | null = null;
  readonly timer: Timer;
  constructor(readonly key: number, readonly src: number, readonly dst: number, readonly proto: number, readonly id: number, buf: PacketBuffer, cb: (d: Datagram) => void) {
    this.buf = buf;
    this.timer = new Timer(() => cb(this));
  }
}

/** Where payload starts inside a reassembly buffer: room for link + IP headers in front. */
const DATA_OFF = 128;

export class Reassembler {
  private readonly table = new Map<number, Datagram[]>();
  /** Every datagram in progress, oldest first (the eviction order). */
  private readonly age = new Set<Datagram>();
  private count = 0;
  stats = { fragments: 0, reassembled: 0, timedOut: 0, dropped: 0 };

  constructor(private readonly ctx: ReassContext) {}

  get inProgress(): number { return this.count; }

  /**
   * One fragment whose header is in `ip` (wrapped over buf). Takes ownership of buf.
   * Returns a buffer holding the complete datagram (start = IPv4 header, no options), or null.
   */
  input(ip: Ipv4View, buf: PacketBuffer): PacketBuffer | null {
    this.stats.fragments++;
    const s = this.ctx.sysctl;
    const src = ip.src, dst = ip.dst, proto = ip.protocol, id = ip.id;
    const off = ip.fragOffset, len = ip.payloadLen, more = ip.moreFragments;
    const key = src * 0x10000 + id;
    let list = this.table.get(key);
    let d = list?.find((x) => x.dst === dst && x.proto === proto);
    // Fragments other than the last must carry a multiple of 8 bytes (RFC 791).
    if ((more && (len & 7) !== 0) || off + len > 65535 - IPV4_HLEN || (len === 0 && more)) { return this.reject(buf, d, 'frag_bad_length'); }
    if (!d) {
      const max = s.int('net.inet.ip.maxfragpackets');
      if (max === 0) return this.reject(buf, undefined, 'frag_disabled');
      while (this.count >= max) this.evictOldest();
      const store = this.ctx.pool.alloc(LARGE_BUF_SIZE);
      d = new Datagram(key, src, dst, proto, id, store, (x) => this.expire(x));
      if (!list) { list = []; this.table.set(key, list); }
      list.push(d);
      this.age.add(d);
      this.count++;
      this.ctx.wheel.arm(d.timer, this.ctx.clock.now() + s.int('net.inet.ip.fragttl'));
    }
    if (++d.frags > s.int('net.inet.ip.maxfragsperpacket')) return this.reject(buf, d, 'frag_too_many');
    if (!more) {
      if (d.total >= 0 && d.total !== off + len) return this.reject(buf, d, 'frag_inconsistent');
      d.total = off + len;
    }
    if (d.total >= 0 && off + len > d.total) return this.reject(buf, d, 'frag_inconsistent');
    // Overlap: identical bytes (a duplicate) are harmless; different bytes poison the datagram.
    const data = buf.data, at = DATA_OFF + off, p = ip.payloadOff;
    const r = d.ranges;
    for (let i = 0; i < r.length; i += 2) {
      const lo = Math.max(r[i]!, off), hi = Math.min(r[i + 1]!, off + len);
      for (let j = lo; j < hi; j++) if (d.buf.data[DATA_OFF + j] !== data[p + j - off]) return this.reject(buf, d, 'frag_overlap');
    }
    d.buf.data.set(data.subarray(p, p + len), at);
    addRange(r, off, off + len);
    if (off === 0 && !d.first) { d.first = buf; } else buf.release();
    if (d.total >= 0 && r.length === 2 && r[0] === 0 && r[1] === d.total && d.first) return this.complete(d);
    return null;
  }

  private complete(d: Datagram): PacketBuffer {
    this.unlink(d);
    const out = d.buf;
    out.start = DATA_OFF - IPV4_HLEN;
    out.end = DATA_OFF + d.total;
    const f = d.first!;
    const fo = f.l3 >= 0 ? f.l3 : f.start;
    const tos = f.data[fo + 1]!, ttl = f.data[fo + 8]!;
    writeIpv4Header(out.data, out.start, tos, IPV4_HLEN + d.total, d.id, 0, ttl, d.proto, d.src, d.dst);
    out.l3 = out.start;
    out.ifIndex = f.ifIndex;
    f.release();
    d.first = null;
    this.stats.reassembled++;
    return out;
  }

  private reject(buf: PacketBuffer, d: Datagram | undefined, reason: string): null {
    buf.release();
    this.ctx.drop(reason);
    this.stats.dropped++;
    if (d) this.discard(d);
    return null;
  }

  /** Makes room for a new datagram: the one in progress longest goes (counted). */
  private evictOldest(): void {
    const oldest = this.age.values().next().value as Datagram;
    this.stats.dropped++;
    this.ctx.drop('frag_evicted');
    this.discard(oldest);
  }

  private expire(d: Datagram): void {
    this.stats.timedOut++;
    this.ctx.drop('frag_timeout');
    const first = d.first;
    d.first = null;
    this.discard(d);
    if (first) { this.ctx.timedOut(first); }
  }

  private unlink(d: Datagram): void {
    this.ctx.wheel.disarm(d.timer);
    this.age.delete(d);
    const list = this.table.get(d.key);
    if (list) {
      const i = list.indexOf(d);
      if (i >= 0) { list.splice(i, 1); this.count--; }
      if (list.length === 0) this.table.delete(d.key);
    }
  }

  private discard(d: Datagram): void {
    this.unlink(d);
    d.buf.release();
    d.first?.release();
    d.first = null;
  }

  /** Drops everything in progress (stack shutdown). */
  clear(): void {
    for (const list of [...this.table.values()]) for (const d of [...list]) this.discard(d);
  }
}

/** Inserts [lo, hi) into sorted, merged flat ranges (IPv4 and IPv6 reassembly). */
export function addRange(r: number[], lo: number, hi: number): void {
  let i = 0;
  while (i < r.length && r[i + 1]! < lo) i += 2;
  let j = i;
  while (j < r.length && r[j]! <= hi) { lo = Math.min(lo, r[j]!); hi = Math.max(hi, r[j + 1]!); j += 2; }
  r.splice(i, j - i, lo, hi);
}
