// ARP (RFC 826) and the IPv4 neighbor cache. Entry life cycle, FreeBSD-like:
//   INCOMPLETE --reply--> REACHABLE --max_age--> STALE --used--> PROBE --reply--> REACHABLE
//   INCOMPLETE --maxtries unanswered--> FAILED (drops for `wait` seconds) --> gone
//   PROBE --maxtries unanswered--> gone
// Packets waiting for resolution are held per entry (at most maxhold, oldest dropped first).
//
// The table is bounded and never refuses a neighbour we need (Linux's gc_thresh idea): at
// max_entries (gc_thresh3) a new entry evicts an old one instead of being refused — first the
// oldest unsolicited entry (learned from someone's request for us, never used by us since),
// else the oldest entry that is not permanent. Unsolicited entries are the ones forged traffic
// can create, so they have their own budget (unsolicited_max), a creation rate
// (unsolicited_rate; past it the request is still answered, only not remembered), a short life
// when unused (unsolicited_age) and come only from on-link senders.
import type { BufferPool, PacketBuffer } from '../../base/pktbuf.js';
import { ARP_LEN, ArpOp, ArpView, writeArp } from '../../wire/arp.js';
import { MAC_BROADCAST, MAC_ZERO, formatIpv4, formatMac, macEquals } from '../../wire/addr.js';
import { EtherType } from '../../wire/ethernet.js';
import { WireError } from '../../wire/errors.js';
import type { Interface } from '../iface.js';
import type { Sysctl } from '../sysctl.js';
import { Timer, type Clock, type TimerWheel } from '../../base/time.js';
import { Ip4Map } from './ip4map.js';

export const ArpState = { Incomplete: 0, Reachable: 1, Stale: 2, Probe: 3, Failed: 4, Permanent: 5 } as const;
export type ArpState = (typeof ArpState)[keyof typeof ArpState];
const STATE_NAMES = ['incomplete', 'reachable', 'stale', 'probe', 'failed', 'permanent'];

/** What ARP needs from the stack. */
export interface ArpContext {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  interfaceByIndex(ifIndex: number): Interface | undefined;
  /** Prepends an Ethernet header (dst MAC at dstMac[dstOff..]) and transmits on `iface`. Takes ownership. */
  ethOutput(iface: Interface, dstMac: Uint8Array, dstOff: number, etherType: number, buf: PacketBuffer): void;
  drop(reason: string): void;
  /** Randomness for the table's hash seed (the stack's source); a fixed seed without it. */
  readonly random?: () => number;
  /** A packet held for a neighbour that did not answer (start = IP header), before it is dropped. */
  unreachable?(buf: PacketBuffer): void;
}

export function defineArpSysctls(s: Sysctl): void {
  s.define({ name: 'net.link.ether.inet.max_age', type: 'int', default: 1200, min: 1, max: 86400, description: 'seconds an ARP entry stays reachable before it is re-verified' });
  s.define({ name: 'net.link.ether.inet.maxtries', type: 'int', default: 3, min: 1, max: 100, description: 'ARP requests sent (retrans apart) before a destination is declared down and its packets reported unreachable (Linux mcast_solicit 3: a connect to a silent neighbour fails with EHOSTUNREACH in 3 s)' });
  s.define({ name: 'net.link.ether.inet.maxhold', type: 'int', default: 16, min: 1, max: 1024, description: 'packets held per entry while ARP resolves' });
  s.define({ name: 'net.link.ether.inet.wait', type: 'int', default: 20, min: 0, max: 3600, description: 'seconds an unresolvable destination is marked down' });
  s.define({ name: 'net.link.ether.inet.retrans', type: 'int', default: 1000, min: 10, max: 60000, description: 'milliseconds between ARP request retries' });
  s.define({ name: 'net.link.ether.inet.max_entries', type: 'int', default: 4096, min: 16, max: 1 << 20, description: 'bound on the ARP cache size: a new entry evicts the oldest unsolicited, else the oldest non-permanent one (Linux gc_thresh3)' });
  s.define({ name: 'net.link.ether.inet.unsolicited_max', type: 'int', default: 1024, min: 1, max: 1 << 20, description: 'entries learned from requests for us and not used since, at most (the oldest makes room)' });
  s.define({ name: 'net.link.ether.inet.unsolicited_rate', type: 'int', default: 100, min: 0, max: 1 << 20, description: 'entries learned from requests for us per second, at most (requests past it are answered, not remembered; 0 learns none)' });
  s.define({ name: 'net.link.ether.inet.unsolicited_age', type: 'int', default: 60, min: 1, max: 86400, description: 'seconds an entry learned from a request for us lives when we do not use it (Linux gc_stale_time)' });
}

export class ArpEntry {
  state: ArpState = ArpState.Incomplete;
  readonly mac = new Uint8Array(6);
  readonly queue: PacketBuffer[] = [];
  tries = 0;
  updatedAt = 0;
  /** Learned from someone's request for us, not used by us since: evicted first. */
  unsolicited = false;
  readonly timer: Timer;
  constructor(readonly ifIndex: number, readonly ip: number, cb: (e: ArpEntry, now: number) => void) {
    this.timer = new Timer((now) => cb(this, now));
  }
}

export interface ArpEntryInfo { ip: string; mac: string; ifIndex: number; state: string; queued: number; }

export class Arp {
  /** Entries by (interface, address), typed keys (the per-packet lookup allocates nothing). */
  private readonly entries: Ip4Map<ArpEntry>;
  /** Every entry, oldest first, and the unsolicited ones, oldest first (a Set keeps insertion order). */
  private readonly order = new Set<ArpEntry>();
  private readonly unsolicited = new Set<ArpEntry>();
  /** Token bucket for unsolicited entries: tokens left and when it was last refilled. */
  private tokens = 0;
  private tokensAt = -Infinity;
  private readonly view = new ArpView();
  private readonly onTimer = (e: ArpEntry, now: number) => this.expire(e, now);
  stats = { announcements: 0, requestsSent: 0, repliesSent: 0, requestsReceived: 0, repliesReceived: 0, held: 0, holdDropped: 0, unresolved: 0, evicted: 0, unsolicitedLimited: 0 };

  constructor(private readonly ctx: ArpContext) {
    this.entries = new Ip4Map<ArpEntry>(64, ctx.random ? Math.floor(ctx.random() * 0x100000000) | 0 : 0x9e3779b9);
  }

  get size(): number { return this.entries.size; }

  /** A received ARP packet at buf.data[off, off+len). Does not take ownership. */
  input(iface: Interface, buf: PacketBuffer, off: number, len: number): void {
    const v = this.view;
    const err = v.wrap(buf.data, off, len);
    if (err !== WireError.Ok) { this.ctx.drop(err === WireError.Unsupported ? 'arp_unsupported' : 'arp_malformed'); return; }
    const b = buf.data;
    const spa = v.spa, tpa = v.tpa, op = v.op;
    if (op === ArpOp.Request) this.stats.requestsReceived++; else this.stats.repliesReceived++;
    // A sender claiming a broadcast/multicast/zero MAC, or one of our own addresses, is bogus.
    if ((b[v.shaOff]! & 1) === 1) { this.ctx.drop('arp_bad_sender_mac'); return; }
    if (spa !== 0 && iface.hasAddress(spa) && !macEquals(b, v.shaOff, iface.mac, 0)) { this.ctx.drop('arp_address_conflict'); return; }
    const forUs = iface.hasAddress(tpa);
    // RFC 826 "merge": update an existing entry for the sender; create one only when the packet is for us.
    if (spa !== 0) {
      const e = this.entries.get(iface.index, spa);
      if (e) this.confirm(e, b, v.shaOff);
      else if (forUs && this.mayLearn(iface, spa)) this.create(iface.index, spa, b, v.shaOff);
    }
    if (!forUs) return;
    if (op === ArpOp.Request) this.sendArp(iface, ArpOp.Reply, b, v.shaOff, tpa, b, v.shaOff, spa);
  }

  /**
   * Sends the IPv4 packet in buf (start = IP header) to `nexthop` on `iface`, resolving the MAC.
   * Takes ownership.
   */
  output(iface: Interface, nexthop: number, buf: PacketBuffer): void {
    let e = this.entries.get(iface.index, nexthop);
    if (e) {
      if (e.unsolicited) this.adopt(e);
      switch (e.state) {
        case ArpState.Reachable: case ArpState.Permanent: case ArpState.Probe:
          this.ctx.ethOutput(iface, e.mac, 0, EtherType.IPv4, buf); return;
        case ArpState.Stale:
          // Still usable; ask again by unicast to confirm (FreeBSD arp_refresh, RFC 1122 §2.3.2.1).
          e.state = ArpState.Probe; e.tries = 1;
          this.sendArp(iface, ArpOp.Request, e.mac, 0, iface.sourceFor(nexthop), MAC_ZERO, 0, nexthop);
          this.ctx.wheel.arm(e.timer, this.ctx.clock.now() + this.ctx.sysctl.int('net.link.ether.inet.retrans'));
          this.ctx.ethOutput(iface, e.mac, 0, EtherType.IPv4, buf); return;
        case ArpState.Failed:
          this.ctx.unreachable?.(buf);
          buf.release(); this.ctx.drop('arp_host_down'); return;
        case ArpState.Incomplete:
          this.hold(e, buf); return;
      }
    }
    if (this.entries.size >= this.ctx.sysctl.int('net.link.ether.inet.max_entries') && !this.evictOne()) {
      // Only permanent entries left: the operator filled the table.
      buf.release(); this.ctx.drop('arp_table_full'); return;
    }
    e = new ArpEntry(iface.index, nexthop, this.onTimer);
    this.insert(e);
    this.hold(e, buf);
    e.tries = 1;
    this.sendArp(iface, ArpOp.Request, MAC_BROADCAST, 0, iface.sourceFor(nexthop), MAC_ZERO, 0, nexthop);
    this.ctx.wheel.arm(e.timer, this.ctx.clock.now() + this.ctx.sysctl.int('net.link.ether.inet.retrans'));
  }

  /** Gratuitous ARP (RFC 5227 §3 announcement) for each address of an interface coming up. */
  announce(iface: Interface): void {
    for (const a of iface.addrs) {
      this.sendArp(iface, ArpOp.Request, MAC_BROADCAST, 0, a.addr, MAC_ZERO, 0, a.addr);
      this.stats.announcements++;
      this.stats.requestsSent--;
    }
  }

  /** A broadcast request for `target` from the interface's address on its subnet (a bond's link probe). */
  probe(iface: Interface, target: number): void {
    this.sendArp(iface, ArpOp.Request, MAC_BROADCAST, 0, iface.sourceFor(target), MAC_ZERO, 0, target);
  }

  addStatic(ifIndex: number, ip: number, mac: Uint8Array): void {
    let e = this.entries.get(ifIndex, ip);
    if (!e) { e = new ArpEntry(ifIndex, ip, this.onTimer); this.insert(e); }
    if (e.unsolicited) this.adopt(e);
    this.ctx.wheel.disarm(e.timer);
    e.mac.set(mac); e.state = ArpState.Permanent;
    this.flush(e);
  }

  delete(ifIndex: number, ip: number): boolean {
    const e = this.entries.get(ifIndex, ip);
    if (!e) return false;
    this.remove(e);
    return true;
  }

  lookup(ifIndex: number, ip: number): ArpEntry | undefined { return this.entries.get(ifIndex, ip); }

  list(): ArpEntryInfo[] {
    return [...this.order].map((e) => ({
      ip: formatIpv4(e.ip), mac: e.state === ArpState.Incomplete || e.state === ArpState.Failed ? '(incomplete)' : formatMac(e.mac),
      ifIndex: e.ifIndex, state: STATE_NAMES[e.state]!, queued: e.queue.length,
    }));
  }

  /** Drops every entry (and held packet) of an interface. */
  flushInterface(ifIndex: number): void {
    for (const e of [...this.order]) if (e.ifIndex === ifIndex) this.remove(e);
  }

  /**
   * Whether a request from `spa` for us may create an entry: an on-link sender (RFC 826's
   * merge is about the local network), within the unsolicited creation rate.
   */
  private mayLearn(iface: Interface, spa: number): boolean {
    let onLink = false;
    for (const a of iface.addrs) if (((spa & a.mask) >>> 0) === a.network && a.prefixLen < 32) { onLink = true; break; }
    if (!onLink || iface.isBroadcast(spa)) return false;
    const rate = this.ctx.sysctl.int('net.link.ether.inet.unsolicited_rate');
    const now = this.ctx.clock.now();
    const elapsed = now - this.tokensAt;
    if (elapsed > 0) {
      this.tokens = elapsed >= 1000 ? rate : Math.min(rate, this.tokens + (elapsed * rate) / 1000);
      this.tokensAt = now;
    }
    if (this.tokens < 1) { this.stats.unsolicitedLimited++; return false; }
    this.tokens--;
    return true;
  }

  private create(ifIndex: number, ip: number, mac: Uint8Array, macOff: number): void {
    const s = this.ctx.sysctl;
    // The unsolicited class makes room within its own budget first.
    if (this.unsolicited.size >= s.int('net.link.ether.inet.unsolicited_max')) this.evictUnsolicited();
    if (this.entries.size >= s.int('net.link.ether.inet.max_entries') && !this.evictOne()) { this.ctx.drop('arp_table_full'); return; }
    const e = new ArpEntry(ifIndex, ip, this.onTimer);
    this.insert(e);
    e.unsolicited = true;
    this.unsolicited.add(e);
    this.confirm(e, mac, macOff);
  }

  /** We use an entry someone else's request created: it becomes an ordinary one. */
  private adopt(e: ArpEntry): void {
    e.unsolicited = false;
    this.unsolicited.delete(e);
  }

  private insert(e: ArpEntry): void {
    this.entries.set(e.ifIndex, e.ip, e);
    this.order.add(e);
  }

  private confirm(e: ArpEntry, mac: Uint8Array, macOff: number): void {
    if (e.state === ArpState.Permanent) return;
    for (let i = 0; i < 6; i++) e.mac[i] = mac[macOff + i]!;
    e.state = ArpState.Reachable;
    e.tries = 0;
    const now = this.ctx.clock.now();
    e.updatedAt = now;
    const age = e.unsolicited ? 'net.link.ether.inet.unsolicited_age' : 'net.link.ether.inet.max_age';
    this.ctx.wheel.arm(e.timer, now + this.ctx.sysctl.int(age) * 1000);
    this.flush(e);
  }

  private flush(e: ArpEntry): void {
    if (e.queue.length === 0) return;
    const iface = this.ctx.interfaceByIndex(e.ifIndex);
    for (const b of e.queue.splice(0)) {
      if (iface) this.ctx.ethOutput(iface, e.mac, 0, EtherType.IPv4, b); else b.release();
    }
  }

  private hold(e: ArpEntry, buf: PacketBuffer): void {
    if (e.queue.length >= this.ctx.sysctl.int('net.link.ether.inet.maxhold')) {
      e.queue.shift()!.release();
      this.stats.holdDropped++;
      this.ctx.drop('arp_hold_overflow');
    }
    e.queue.push(buf);
    this.stats.held++;
  }

  private expire(e: ArpEntry, now: number): void {
    const iface = this.ctx.interfaceByIndex(e.ifIndex);
    const s = this.ctx.sysctl;
    switch (e.state) {
      case ArpState.Incomplete:
        if (iface && e.tries < s.int('net.link.ether.inet.maxtries')) {
          e.tries++;
          this.sendArp(iface, ArpOp.Request, MAC_BROADCAST, 0, iface.sourceFor(e.ip), MAC_ZERO, 0, e.ip);
          this.ctx.wheel.arm(e.timer, now + s.int('net.link.ether.inet.retrans'));
          return;
        }
        for (const b of e.queue.splice(0)) { this.ctx.unreachable?.(b); b.release(); this.stats.unresolved++; this.ctx.drop('arp_unresolved'); }
        e.state = ArpState.Failed;
        this.ctx.wheel.arm(e.timer, now + Math.max(1, s.int('net.link.ether.inet.wait') * 1000));
        return;
      case ArpState.Reachable:
        // Learned from a request and never used: forgotten (Linux gc_stale_time).
        if (e.unsolicited) { this.remove(e); return; }
        e.state = ArpState.Stale;
        // A stale entry that nobody uses is collected after another max_age.
        this.ctx.wheel.arm(e.timer, now + s.int('net.link.ether.inet.max_age') * 1000);
        return;
      case ArpState.Probe:
        if (iface && e.tries < s.int('net.link.ether.inet.maxtries')) {
          e.tries++;
          this.sendArp(iface, ArpOp.Request, e.mac, 0, iface.sourceFor(e.ip), MAC_ZERO, 0, e.ip);
          this.ctx.wheel.arm(e.timer, now + s.int('net.link.ether.inet.retrans'));
          return;
        }
        this.remove(e); return;
      default:
        this.remove(e);
    }
  }

  private remove(e: ArpEntry): void {
    this.ctx.wheel.disarm(e.timer);
    for (const b of e.queue.splice(0)) b.release();
    this.entries.delete(e.ifIndex, e.ip);
    this.order.delete(e);
    if (e.unsolicited) { this.unsolicited.delete(e); e.unsolicited = false; }
  }

  private evictUnsolicited(): boolean {
    for (const e of this.unsolicited.values()) { this.remove(e); this.stats.evicted++; return true; }
    return false;
  }

  /**
   * Makes room: the oldest unsolicited entry, else the oldest that is not permanent (its held
   * packets are dropped; a neighbour still in use is resolved again). False only when every
   * entry is permanent.
   */
  private evictOne(): boolean {
    if (this.evictUnsolicited()) return true;
    for (const e of this.order) {
      if (e.state !== ArpState.Permanent) { this.remove(e); this.stats.evicted++; return true; }
    }
    return false;
  }

  private sendArp(iface: Interface, op: number, ethDst: Uint8Array, ethDstOff: number, spa: number, tha: Uint8Array, thaOff: number, tpa: number): void {
    const buf = this.ctx.pool.alloc();
    const off = buf.append(ARP_LEN);
    const thaBytes = thaOff === 0 ? tha : tha.subarray(thaOff, thaOff + 6);
    writeArp(buf.data, off, op, iface.mac, spa, thaBytes, tpa);
    if (op === ArpOp.Request) this.stats.requestsSent++; else this.stats.repliesSent++;
    this.ctx.ethOutput(iface, ethDst, ethDstOff, EtherType.ARP, buf);
  }
}

