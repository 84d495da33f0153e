// IPv6 fragment reassembly (RFC 8200 §4.5), bounded against hostile input: a cap on datagrams in
// progress and on fragments per datagram, and the 60-second limit. Overlapping fragments poison
// the whole datagram, including fragments not yet received (RFC 5722 §4); an exact duplicate is
// only dropped itself (RFC 8200 §4.5 allows it).
import { LARGE_BUF_SIZE, type BufferPool, type PacketBuffer } from '../../base/pktbuf.js';
import { IPV6_FRAG_HLEN, IPV6_HLEN } from '../../wire/ipv6.js';
import type { Sysctl } from '../sysctl.js';
import { Timer, type Clock, type TimerWheel } from '../../base/time.js';
import { addr6Equals, copyAddr6 } from './addr6.js';
import { addRange } from './reass.js';

export function defineReass6Sysctls(s: Sysctl): void {
  s.define({ name: 'net.inet6.ip6.maxfragpackets', type: 'int', default: 256, min: 0, max: 65536, description: 'IPv6 datagrams being reassembled at once (0 disables reassembly)' });
  s.define({ name: 'net.inet6.ip6.maxfragsperpacket', type: 'int', default: 64, min: 1, max: 8192, description: 'fragments accepted per IPv6 datagram' });
  s.define({ name: 'net.inet6.ip6.fragttl', type: 'int', default: 60000, min: 100, max: 120000, description: 'ms to wait for the rest of a fragmented IPv6 datagram (RFC 8200: 60 s)' });
}

export interface Reass6Context {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  drop(reason: string): void;
  /**
   * RFC 8200 §4.5: reassembly timed out and the first fragment (offset 0) had arrived: the
   * caller should send Time Exceeded code 1 quoting it. Takes ownership of `first`.
   */
  reassemblyTimedOut(first: PacketBuffer): void;
}

/** Where fragment data starts in a reassembly buffer: room in front for the unfragmentable part and L2. */
const DATA_OFF = 512;
/** Longest unfragmentable part (IPv6 header + extension headers before the Fragment header) we keep. */
export const REASS6_MAX_UNFRAG = DATA_OFF - 64;

class Datagram6 {
  readonly src = new Uint8Array(16);
  readonly dst = new Uint8Array(16);
  store: PacketBuffer | null;
  /** Received [start, end) ranges of the fragmentable part, sorted and merged, as flat pairs. */
  readonly ranges: number[] = [];
  total = -1;
  frags = 0;
  /** The offset-0 fragment, kept whole (for its unfragmentable part and a Time Exceeded quote). */
  first: PacketBuffer | null = null;
  /** Offsets inside `first`: IPv6 header, the byte naming the Fragment header, the Fragment header. */
  firstIpOff = 0; firstNhField = 0; firstFragOff = 0;
  nextHeader = 0;
  /** Poisoned by an overlap (RFC 5722): held until it times out so later fragments are dropped too. */
  dead = false;
  readonly timer: Timer;
  constructor(readonly id: number, b: Uint8Array, srcOff: number, dstOff: number, store: PacketBuffer, cb: (d: Datagram6) => void) {
    copyAddr6(this.src, 0, b, srcOff);
    copyAddr6(this.dst, 0, b, dstOff);
    this.store = store;
    this.timer = new Timer(() => cb(this));
  }
}

export class Reassembler6 {
  private readonly list: Datagram6[] = [];
  stats = { fragments: 0, reassembled: 0, timedOut: 0, dropped: 0, overlaps: 0, duplicates: 0 };

  constructor(private readonly ctx: Reass6Context) {}

  get inProgress(): number { return this.list.length; }

  /**
   * One fragment in buf: IPv6 header at `ipOff` (already validated, payload length trimmed to
   * buf.end), Fragment header at `fragOff` (the headers before it processed), the byte that
   * names the Fragment header at `nhField`. The caller checked RFC 8200's length rules. Takes
   * ownership. Returns the reassembled packet (start = IPv6 header, no Fragment header, Payload
   * Length set), or null.
   */
  input(buf: PacketBuffer, ipOff: number, nhField: number, fragOff: number): PacketBuffer | null {
    this.stats.fragments++;
    const b = buf.data;
    const id = ((b[fragOff + 4]! << 24) | (b[fragOff + 5]! << 16) | (b[fragOff + 6]! << 8) | b[fragOff + 7]!) >>> 0;
    const fw = (b[fragOff + 2]! << 8) | b[fragOff + 3]!;
    const off = fw & 0xfff8, more = (fw & 1) !== 0;
    const dataOff = fragOff + IPV6_FRAG_HLEN, len = buf.end - dataOff;
    const srcOff = ipOff + 8, dstOff = ipOff + 24;
    const s = this.ctx.sysctl;
    let d: Datagram6 | undefined;
    for (const x of this.list) {
      if (x.id === id && addr6Equals(x.src, 0, b, srcOff) && addr6Equals(x.dst, 0, b, dstOff)) { d = x; break; }
    }
    if (d?.dead) return this.reject(buf, undefined, 'frag6_poisoned');
    if (fragOff - ipOff > REASS6_MAX_UNFRAG) return this.reject(buf, d, 'frag6_header_too_long');
    if (!d) {
      // A full table evicts its oldest datagram (as for IPv4, see reass.ts): a flood of
      // never-completed fragments cannot shut out datagrams whose fragments arrive together.
      const max = s.int('net.inet6.ip6.maxfragpackets');
      if (max === 0) return this.reject(buf, undefined, 'frag6_disabled');
      while (this.list.length >= max) this.evictOldest();
      d = new Datagram6(id, b, srcOff, dstOff, this.ctx.pool.alloc(LARGE_BUF_SIZE), (x) => this.expire(x));
      this.list.push(d);
      // RFC 8200 §4.5: "within 60 seconds of the reception of the first-arriving fragment".
      this.ctx.wheel.arm(d.timer, this.ctx.clock.now() + s.int('net.inet6.ip6.fragttl'));
    }
    if (++d.frags > s.int('net.inet6.ip6.maxfragsperpacket')) return this.reject(buf, d, 'frag6_too_many');
    if (!more) {
      if (d.total >= 0 && d.total !== off + len) return this.reject(buf, d, 'frag6_inconsistent');
      d.total = off + len;
    }
    if (d.total >= 0 && off + len > d.total) return this.reject(buf, d, 'frag6_inconsistent');
    const store = d.store!;
    const r = d.ranges;
    for (let i = 0; i < r.length; i += 2) {
      const lo = Math.max(r[i]!, off), hi = Math.min(r[i + 1]!, off + len);
      if (lo >= hi) continue;
      // A fragment wholly inside what arrived, with the same bytes, is a duplicate; anything
      // else that intersects is an overlap (RFC 5722 §4: discard the whole datagram).
      let same = lo === off && hi === off + len;
      for (let j = lo; same && j < hi; j++) if (store.data[DATA_OFF + j] !== b[dataOff + j - off]) same = false;
      if (same) { this.stats.duplicates++; d.frags--; buf.release(); this.ctx.drop('frag6_duplicate'); return null; }
      this.stats.overlaps++;
      return this.poison(buf, d);
    }
    store.data.set(b.subarray(dataOff, dataOff + len), DATA_OFF + off);
    addRange(r, off, off + len);
    if (off === 0) {
      d.first = buf;
      d.firstIpOff = ipOff; d.firstNhField = nhField; d.firstFragOff = fragOff;
      d.nextHeader = b[fragOff]!;
    } else buf.release();
    if (d.total >= 0 && d.first && r.length === 2 && r[0] === 0 && r[1] === d.total) return this.complete(d);
    return null;
  }

  private complete(d: Datagram6): PacketBuffer {
    this.unlink(d);
    const out = d.store!;
    d.store = null;
    const f = d.first!;
    d.first = null;
    // The unfragmentable part of the offset-0 fragment, then the data (RFC 8200 §4.5
    // "reassembled original packet"): the Next Header field that named the Fragment header takes
    // the Fragment header's Next Header value, and Payload Length covers it all.
    const unfrag = d.firstFragOff - d.firstIpOff;
    out.start = DATA_OFF - unfrag;
    out.end = DATA_OFF + d.total;
    out.data.set(f.data.subarray(d.firstIpOff, d.firstFragOff), out.start);
    out.data[out.start + (d.firstNhField - d.firstIpOff)] = d.nextHeader;
    const pl = unfrag - IPV6_HLEN + d.total;
    out.data[out.start + 4] = pl >> 8; out.data[out.start + 5] = pl & 0xff;
    out.l3 = out.start;
    out.ifIndex = f.ifIndex;
    f.release();
    this.stats.reassembled++;
    return out;
  }

  private reject(buf: PacketBuffer, d: Datagram6 | undefined, reason: string): null {
    buf.release();
    this.ctx.drop(reason);
    this.stats.dropped++;
    if (d) this.discard(d);
    return null;
  }

  /** Drops what the datagram holds but keeps its entry until the timer, so later fragments die too. */
  private poison(buf: PacketBuffer, d: Datagram6): null {
    buf.release();
    this.ctx.drop('frag6_overlap');
    this.stats.dropped++;
    d.dead = true;
    d.store?.release(); d.store = null;
    d.first?.release(); d.first = null;
    return null;
  }

  /** Makes room for a new datagram: the one in progress longest goes (counted). */
  private evictOldest(): void {
    this.stats.dropped++;
    this.ctx.drop('frag6_evicted');
    this.discard(this.list[0]!);
  }

  private expire(d: Datagram6): void {
    const first = d.first;
    d.first = null;
    const wasDead = d.dead;
    this.discard(d);
    if (wasDead) return;
    this.stats.timedOut++;
    this.ctx.drop('frag6_timeout');
    if (first) this.ctx.reassemblyTimedOut(first);
  }

  private unlink(d: Datagram6): void {
    this.ctx.wheel.disarm(d.timer);
    const i = this.list.indexOf(d);
    if (i >= 0) this.list.splice(i, 1);
  }

  private discard(d: Datagram6): void {
    this.unlink(d);
    d.store?.release(); d.store = null;
    d.first?.release(); d.first = null;
  }

  clear(): void {
    for (const d of [...this.list]) this.discard(d);
  }
}
