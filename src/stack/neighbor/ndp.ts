// Neighbour Discovery's neighbour cache (RFC 4861 §7): address resolution and neighbour
// unreachability detection.
//   INCOMPLETE --NA--> REACHABLE --ReachableTime--> STALE --sent to--> DELAY --5 s--> PROBE
//   PROBE --solicited NA--> REACHABLE; PROBE / INCOMPLETE unanswered --> gone
// Entries are keyed by (interface, address) in typed storage (Addr6Table). A full cache makes
// room by evicting instead of refusing (Linux's gc_thresh idea), first the oldest unsolicited
// entry, else the least useful one it finds (stale before incomplete before the rest, oldest
// first): junk from a scan can never lock out a new neighbour. Unsolicited entries — learned
// from someone's solicitation for us, not used by us since — are what forged traffic can
// create, so, as ARP's, they have their own budget (nd6_unsolicited_max), a creation rate
// (nd6_unsolicited_rate: past it the solicitation is still answered, straight to the
// link-layer address it gave, only not remembered) and a short life when unused
// (nd6_unsolicited_age).
import type { PacketBuffer } from '../../base/pktbuf.js';
import { formatIpv6, formatMac, macEquals } from '../../wire/addr.js';
import { WireError } from '../../wire/errors.js';
import { Icmpv6Type, Icmpv6UnreachCode } from '../../wire/icmpv6.js';
import { IPV6_HLEN, Ipv6Next, isIpv6LinkLocal, isIpv6Unspecified, writeIpv6Header, writeIpv6MulticastMac, type Ipv6View } from '../../wire/ipv6.js';
import { finishIcmpv6Checksum } from '../../wire/icmpv6.js';
import { Csum } from '../../base/pktbuf.js';
import {
  NDP_HOP_LIMIT, NaFlag, NdpOption, NeighborAdvertView, NeighborSolicitView, writeNeighborAdvert,
  writeNeighborSolicit, writeSolicitedNodeMulticast, NS_LEN,
} from '../../wire/ndp.js';
import { Addr6Table, copyAddr6 } from '../ip/addr6.js';
import type { Ip6Services } from '../ip/ipv6-context.js';
import { Addr6State, type If6Addr, type Ipv6Link } from '../ip/ipv6-link.js';
import type { Sysctl } from '../sysctl.js';
import { Timer } from '../../base/time.js';

export const NdState = { Incomplete: 0, Reachable: 1, Stale: 2, Delay: 3, Probe: 4 } as const;
export type NdState = (typeof NdState)[keyof typeof NdState];
export const ND_STATE_NAMES = ['incomplete', 'reachable', 'stale', 'delay', 'probe'];

export function defineNdpSysctls(s: Sysctl): void {
  s.define({ name: 'net.inet6.icmp6.nd6_mmaxtries', type: 'int', default: 3, min: 1, max: 100, description: 'multicast neighbour solicitations sent to resolve an address (RFC 4861 MAX_MULTICAST_SOLICIT)' });
  s.define({ name: 'net.inet6.icmp6.nd6_umaxtries', type: 'int', default: 3, min: 1, max: 100, description: 'unicast probes sent before a neighbour is declared unreachable (MAX_UNICAST_SOLICIT)' });
  s.define({ name: 'net.inet6.icmp6.nd6_delay', type: 'int', default: 5, min: 1, max: 3600, description: 'seconds in DELAY before the first unicast probe (DELAY_FIRST_PROBE_TIME)' });
  s.define({ name: 'net.inet6.icmp6.nd6_maxqueuelen', type: 'int', default: 16, min: 1, max: 1024, description: 'packets held per neighbour while its address is resolved' });
  s.define({ name: 'net.inet6.icmp6.nd6_gctimer', type: 'int', default: 1200, min: 1, max: 86400, description: 'seconds an unused stale neighbour entry is kept' });
  s.define({ name: 'net.inet6.icmp6.nd6_maxentries', type: 'int', default: 4096, min: 16, max: 1 << 20, description: 'neighbour cache size (taken when the first interface starts IPv6); a full cache evicts, it never refuses' });
  s.define({ name: 'net.inet6.icmp6.nd6_unsolicited_max', type: 'int', default: 1024, min: 1, max: 1 << 20, description: 'entries learned from solicitations for us and not used since, at most (the oldest makes room)' });
  s.define({ name: 'net.inet6.icmp6.nd6_unsolicited_rate', type: 'int', default: 100, min: 0, max: 1 << 20, description: 'entries learned from solicitations for us per second, at most (solicitations past it are answered, not remembered; 0 learns none)' });
  s.define({ name: 'net.inet6.icmp6.nd6_unsolicited_age', type: 'int', default: 60, min: 1, max: 86400, description: 'seconds an entry learned from a solicitation for us lives when we do not use it' });
}

export class NdEntry {
  state: NdState = NdState.Incomplete;
  readonly addr = new Uint8Array(16);
  readonly mac = new Uint8Array(6);
  isRouter = false;
  readonly queue: PacketBuffer[] = [];
  probes = 0;
  /** Last time the entry was confirmed or changed state (eviction age). */
  updatedAt = 0;
  slot = -1;
  /** Learned from a solicitation for us, not used by us since: evicted first. Linked oldest first. */
  unsolicited = false;
  uPrev: NdEntry | null = null;
  uNext: NdEntry | null = null;
  readonly timer: Timer;
  constructor(readonly ifIndex: number, addr: Uint8Array, addrOff: number, cb: (e: NdEntry, now: number) => void) {
    copyAddr6(this.addr, 0, addr, addrOff);
    this.timer = new Timer((now) => cb(this, now));
  }
}

export interface NdEntryInfo { addr: string; mac: string; ifIndex: number; state: string; router: boolean; queued: number; }

/** Eviction preference: lower goes first. */
const EVICT_RANK = [1, 3, 0, 2, 2];
const EVICT_WINDOW = 64;

export class Ndp {
  private table: Addr6Table<NdEntry>;
  private readonly ns = new NeighborSolicitView();
  private readonly na = new NeighborAdvertView();
  private readonly mcastMac = new Uint8Array(6);
  private readonly group = new Uint8Array(16);
  private readonly scratch = new Uint8Array(16);
  private readonly onTimer = (e: NdEntry, now: number) => this.expire(e, now);
  private hand = 0;
  /** The unsolicited entries, oldest first, and their count. */
  private uHead: NdEntry | null = null;
  private uTail: NdEntry | null = null;
  private uCount = 0;
  /** Token bucket for unsolicited entries: tokens left and when it was last refilled. */
  private tokens = 0;
  private tokensAt = -Infinity;
  private readonly peerMac = new Uint8Array(6);
  /** DAD saw another node claim a tentative address (RFC 4862 §5.4.3, §5.4.4). */
  onDadConflict: ((link: Ipv6Link, a: If6Addr) => void) | null = null;
  /** A neighbour stopped being a router (RFC 4861 §7.2.5): its default routes go. */
  onRouterLost: ((ifIndex: number, addr: Uint8Array) => void) | null = null;
  stats = {
    nsSent: 0, nsReceived: 0, naSent: 0, naReceived: 0, held: 0, holdDropped: 0, unresolved: 0, evicted: 0,
    probesFailed: 0, addressConflicts: 0,
    /** Solicitations answered without remembering the sender (past nd6_unsolicited_rate), and those dropped unanswered. */
    unsolicitedLimited: 0, nsLimited: 0,
  };

  constructor(private readonly host: Ip6Services, capacity: number, private readonly seed: number) {
    this.table = new Addr6Table<NdEntry>(capacity, seed);
  }

  /** Resizes the (still empty) cache: the size sysctl is set after the stack is built, before interfaces attach. */
  setCapacity(capacity: number): void {
    if (this.table.size === 0 && capacity !== this.table.capacity) this.table = new Addr6Table<NdEntry>(capacity, this.seed);
  }

  get size(): number { return this.table.size; }
  /** Unsolicited entries in the cache. */
  get unsolicitedCount(): number { return this.uCount; }

  lookup(ifIndex: number, addr: Uint8Array, off = 0): NdEntry | undefined {
    const s = this.table.find(ifIndex, addr, off);
    return s < 0 ? undefined : this.table.value(s);
  }

  /**
   * Sends the IPv6 packet in buf (start = IPv6 header) to the neighbour nexthop[off..] on
   * `link`, resolving its link-layer address first when needed (§7.2.2). Takes ownership.
   */
  output(link: Ipv6Link, nexthop: Uint8Array, off: number, buf: PacketBuffer): void {
    const s = this.table.find(link.ifIndex, nexthop, off);
    if (s >= 0) {
      const e = this.table.value(s)!;
      if (e.unsolicited) this.adopt(e);
      switch (e.state) {
        case NdState.Reachable: case NdState.Delay: case NdState.Probe:
          this.host.linkOutput(link.ifIndex, e.mac, 0, buf); return;
        case NdState.Stale:
          // §7.3.3: "the first time a node sends a packet to a neighbor whose entry is STALE,
          // the sender changes the state to DELAY and sets a timer to expire in DELAY_FIRST_PROBE_TIME seconds."
          this.setState(e, NdState.Delay, this.host.sysctl.int('net.inet6.icmp6.nd6_delay') * 1000);
          this.host.linkOutput(link.ifIndex, e.mac, 0, buf); return;
        case NdState.Incomplete:
          this.hold(e, buf); return;
      }
    }
    const e = this.create(link.ifIndex, nexthop, off);
    this.hold(e, buf);
    e.probes = 1;
    this.sendNs(link, e.addr, false);
    this.host.wheel.arm(e.timer, this.host.clock.now() + link.retransTimer);
  }

  /** A Neighbor Solicitation (checksum verified) at buf.data[off, off+len); does not take ownership. */
  inputNs(link: Ipv6Link, ip: Ipv6View, buf: PacketBuffer, off: number, len: number): void {
    const v = this.ns;
    if (v.wrap(buf.data, off, len) !== WireError.Ok || v.checkIp(ip) !== WireError.Ok) { this.host.drop('nd6_ns_invalid'); return; }
    this.stats.nsReceived++;
    const b = buf.data;
    const a = link.findAddress(b, v.targetOff);
    if (!a || a.state === Addr6State.Duplicated) { this.host.drop('nd6_ns_not_for_us'); return; }
    const fromDad = isIpv6Unspecified(b, ip.srcOff);
    if (a.state === Addr6State.Tentative) {
      // RFC 4862 §5.4.3: an NS from :: for our tentative address means another node runs DAD on
      // it — unless it is our own probe looped back, recognised by its nonce (RFC 7527 §4.2).
      // An NS from a real source is address resolution by a node that must not be answered yet.
      if (fromDad && !this.ownNonce(v, a)) this.onDadConflict?.(link, a);
      return;
    }
    copyAddr6(this.scratch, 0, b, v.targetOff);
    if (fromDad) {
      // §7.2.4: "If the source of the solicitation is the unspecified address, the node MUST set
      // the Solicited flag to zero and multicast the advertisement to the all-nodes address."
      this.sendNa(link, this.scratch, ALL_NODES, NaFlag.Override);
      return;
    }
    const slla = v.linkLayerAddrOff(NdpOption.SourceLinkLayer);
    const known = this.table.find(link.ifIndex, b, ip.srcOff) >= 0;
    copyAddr6(this.group, 0, b, ip.srcOff);
    if (slla >= 0) {
      // §7.2.3: the sender's link-layer address goes into the cache — for a new sender only
      // within the unsolicited budget and rate (past it nothing is remembered). The
      // advertisement goes straight to that link-layer address either way: answering is not
      // using the entry (it stays unsolicited, first to go), and a forged sender costs no
      // DELAY/PROBE round of unicast solicitations.
      if (known || this.mayLearn(link, b, ip.srcOff)) this.learn(link.ifIndex, b, ip.srcOff, b, slla, false, !known);
      for (let i = 0; i < 6; i++) this.peerMac[i] = b[slla + i]!;
      this.sendNaDirect(link, this.scratch, this.group, this.peerMac, NaFlag.Solicited | NaFlag.Override);
      return;
    } else if (!known && !this.mayLearn(link, b, ip.srcOff)) {
      // No link-layer address given and none known: answering means resolving the sender
      // first (an entry and a multicast solicitation), which the same budget bounds.
      this.stats.nsLimited++;
      this.host.drop('nd6_ns_limited');
      return;
    }
    this.sendNa(link, this.scratch, this.group, NaFlag.Solicited | NaFlag.Override);
  }

  /** A Neighbor Advertisement (checksum verified); does not take ownership. */
  inputNa(link: Ipv6Link, ip: Ipv6View, buf: PacketBuffer, off: number, len: number): void {
    const v = this.na;
    if (v.wrap(buf.data, off, len) !== WireError.Ok || v.checkIp(ip) !== WireError.Ok) { this.host.drop('nd6_na_invalid'); return; }
    this.stats.naReceived++;
    const b = buf.data;
    const a = link.findAddress(b, v.targetOff);
    if (a) {
      // RFC 4862 §5.4.4: an NA for a tentative address: it is a duplicate. For an assigned one,
      // another node claims our address; we keep it and count the conflict.
      if (a.state === Addr6State.Tentative) this.onDadConflict?.(link, a);
      else { this.stats.addressConflicts++; this.host.drop('nd6_address_conflict'); }
      return;
    }
    const s = this.table.find(link.ifIndex, b, v.targetOff);
    // §7.2.5: "If no entry exists, the advertisement SHOULD be silently discarded."
    if (s < 0) return;
    const e = this.table.value(s)!;
    const tlla = v.linkLayerAddrOff(NdpOption.TargetLinkLayer);
    const solicited = v.solicited, override = v.override, router = v.router;
    if (e.state === NdState.Incomplete) {
      if (tlla < 0) return;
      for (let i = 0; i < 6; i++) e.mac[i] = b[tlla + i]!;
      e.isRouter = router;
      this.setState(e, solicited ? NdState.Reachable : NdState.Stale, solicited ? link.reachableTime : this.gcMs());
      this.flush(e, link);
      return;
    }
    const sameMac = tlla < 0 || macEquals(e.mac, 0, b, tlla);
    if (!override && !sameMac) {
      // "If the Override flag is clear and the supplied link-layer address differs ... if the
      // state of the entry is REACHABLE, set it to STALE, but do not update the entry in any other way."
      if (e.state === NdState.Reachable) this.setState(e, NdState.Stale, this.gcMs());
      return;
    }
    if (!sameMac) for (let i = 0; i < 6; i++) e.mac[i] = b[tlla + i]!;
    if (solicited) this.setState(e, NdState.Reachable, link.reachableTime);
    else if (!sameMac) this.setState(e, NdState.Stale, this.gcMs());
    if (e.isRouter && !router) this.onRouterLost?.(e.ifIndex, e.addr);
    e.isRouter = router;
  }

  /**
   * What a Router Advertisement (or a redirect) tells about its sender (§6.3.4): its link-layer
   * address, if given, and that it is a router.
   */
  routerSeen(link: Ipv6Link, addr: Uint8Array, addrOff: number, mac: Uint8Array | null, macOff: number): void {
    if (mac) this.learn(link.ifIndex, addr, addrOff, mac, macOff, true);
    else {
      const e = this.lookup(link.ifIndex, addr, addrOff);
      if (e) e.isRouter = true;
    }
  }

  /** Upper-layer confirmation of reachability (§7.3.1), e.g. TCP acknowledged new data. */
  confirm(ifIndex: number, addr: Uint8Array, off: number): void {
    const e = this.lookup(ifIndex, addr, off);
    if (!e || e.state === NdState.Incomplete) return;
    if (e.unsolicited) this.adopt(e);
    const link = this.host.link(ifIndex);
    this.setState(e, NdState.Reachable, link?.reachableTime ?? 30_000);
  }

  /** Sends a DAD probe for a tentative address: NS from ::, no source link-layer option, a nonce (RFC 4862 §5.4.2, RFC 7527). */
  sendDadProbe(link: Ipv6Link, a: If6Addr): void {
    const buf = this.host.pool.alloc();
    const off = buf.append(NS_LEN + 8);
    writeNeighborSolicit(buf.data, off, a.addr, 0, null);
    const o = off + NS_LEN;
    buf.data[o] = NdpOption.Nonce; buf.data[o + 1] = 1;
    buf.data.set(a.dadNonce, o + 2);
    writeSolicitedNodeMulticast(this.group, 0, a.addr, 0);
    this.stats.nsSent++;
    this.host.sendIcmpv6(buf, UNSPECIFIED, 0, this.group, 0, NDP_HOP_LIMIT, link.ifIndex);
  }

  /** Drops every entry (and held packet) of an interface. */
  flushInterface(ifIndex: number): void {
    this.table.forEach((e) => { if (e.ifIndex === ifIndex) this.remove(e); });
  }

  /** Removes a neighbour's entry (and its held packets); false when there was none (tools: ndp -d). */
  delete(ifIndex: number, addr: Uint8Array): boolean {
    const e = this.lookup(ifIndex, addr);
    if (!e) return false;
    this.remove(e);
    return true;
  }

  list(): NdEntryInfo[] {
    const out: NdEntryInfo[] = [];
    this.table.forEach((e) => out.push({
      addr: formatIpv6(e.addr), mac: e.state === NdState.Incomplete ? '(incomplete)' : formatMac(e.mac),
      ifIndex: e.ifIndex, state: ND_STATE_NAMES[e.state]!, router: e.isRouter, queued: e.queue.length,
    }));
    return out;
  }

  // ---- internals ---------------------------------------------------------------------------

  /**
   * §7.2.3 / §6.3.4: a neighbour's link-layer address from an option: new entries and changed
   * addresses go STALE. `unsolicited`: a new entry learned from a solicitation for us.
   */
  private learn(ifIndex: number, addr: Uint8Array, addrOff: number, mac: Uint8Array, macOff: number, router: boolean, unsolicited = false): void {
    let e = this.lookup(ifIndex, addr, addrOff);
    if (!e) {
      if (unsolicited && this.uCount >= this.host.sysctl.int('net.inet6.icmp6.nd6_unsolicited_max') && this.uHead) this.evict(this.uHead);
      e = this.create(ifIndex, addr, addrOff);
      if (unsolicited) this.enlist(e);
    }
    if (router) { e.isRouter = true; if (e.unsolicited) this.adopt(e); }
    if (e.state !== NdState.Incomplete && macEquals(e.mac, 0, mac, macOff)) return;
    for (let i = 0; i < 6; i++) e.mac[i] = mac[macOff + i]!;
    this.setState(e, NdState.Stale, e.unsolicited ? this.host.sysctl.int('net.inet6.icmp6.nd6_unsolicited_age') * 1000 : this.gcMs());
    const link = this.host.link(ifIndex);
    if (link) this.flush(e, link);
  }

  /**
   * Whether a solicitation from addr[off..] may create an entry: a sender on the link (a
   * link-local address, or one of the link's prefixes), within the unsolicited creation rate.
   */
  private mayLearn(link: Ipv6Link, addr: Uint8Array, off: number): boolean {
    if (!isIpv6LinkLocal(addr, off) && !link.onLinkByAddress(addr, off)) { this.stats.unsolicitedLimited++; return false; }
    const rate = this.host.sysctl.int('net.inet6.icmp6.nd6_unsolicited_rate');
    const now = this.host.clock.now();
    const elapsed = now - this.tokensAt;
    if (elapsed > 0) {
      this.tokens = elapsed >= 1000 ? rate : Math.min(rate, this.tokens + (elapsed * rate) / 1000);
      this.tokensAt = now;
    }
    if (this.tokens < 1) { this.stats.unsolicitedLimited++; return false; }
    this.tokens--;
    return true;
  }

  private enlist(e: NdEntry): void {
    e.unsolicited = true;
    e.uPrev = this.uTail; e.uNext = null;
    if (this.uTail) this.uTail.uNext = e; else this.uHead = e;
    this.uTail = e;
    this.uCount++;
  }

  /** The entry is ours now (we sent to it, or it was confirmed): no longer first to go. */
  private adopt(e: NdEntry): void {
    if (!e.unsolicited) return;
    e.unsolicited = false;
    if (e.uPrev) e.uPrev.uNext = e.uNext; else this.uHead = e.uNext;
    if (e.uNext) e.uNext.uPrev = e.uPrev; else this.uTail = e.uPrev;
    e.uPrev = e.uNext = null;
    this.uCount--;
  }

  private evict(e: NdEntry): void {
    this.remove(e);
    this.stats.evicted++;
    this.host.drop('nd6_evicted');
  }

  private create(ifIndex: number, addr: Uint8Array, off: number): NdEntry {
    if (this.table.full) { if (this.uHead) this.evict(this.uHead); else this.evictOne(); }
    const e = new NdEntry(ifIndex, addr, off, this.onTimer);
    e.slot = this.table.insert(ifIndex, addr, off, e);
    e.updatedAt = this.host.clock.now();
    return e;
  }

  private setState(e: NdEntry, state: NdState, timeoutMs: number): void {
    e.state = state;
    if (state !== NdState.Probe && state !== NdState.Incomplete) e.probes = 0;
    const now = this.host.clock.now();
    e.updatedAt = now;
    this.host.wheel.arm(e.timer, now + timeoutMs);
  }

  private gcMs(): number { return this.host.sysctl.int('net.inet6.icmp6.nd6_gctimer') * 1000; }

  private hold(e: NdEntry, buf: PacketBuffer): void {
    if (e.queue.length >= this.host.sysctl.int('net.inet6.icmp6.nd6_maxqueuelen')) {
      e.queue.shift()!.release();
      this.stats.holdDropped++;
      this.host.drop('nd6_hold_overflow');
    }
    e.queue.push(buf);
    this.stats.held++;
  }

  private flush(e: NdEntry, link: Ipv6Link): void {
    while (e.queue.length) this.host.linkOutput(link.ifIndex, e.mac, 0, e.queue.shift()!);
  }

  private expire(e: NdEntry, now: number): void {
    const link = this.host.link(e.ifIndex);
    const s = this.host.sysctl;
    switch (e.state) {
      case NdState.Incomplete:
        if (link && e.probes < s.int('net.inet6.icmp6.nd6_mmaxtries')) {
          e.probes++;
          this.sendNs(link, e.addr, false);
          this.host.wheel.arm(e.timer, now + link.retransTimer);
          return;
        }
        // §7.2.2: "If no Neighbor Advertisement is received after MAX_MULTICAST_SOLICIT
        // solicitations, address resolution has failed. The sender MUST return ICMP destination
        // unreachable indications with code 3 (Address Unreachable) for each packet queued."
        while (e.queue.length) {
          const b = e.queue.shift()!;
          this.host.icmpError(b, Icmpv6Type.DestUnreachable, Icmpv6UnreachCode.Address, 0, e.ifIndex);
          b.release();
          this.stats.unresolved++;
          this.host.drop('nd6_unresolved');
        }
        this.remove(e);
        return;
      case NdState.Reachable:
        // §7.3.3: "When ReachableTime milliseconds have passed since receipt of the last
        // reachability confirmation for a neighbor, the Neighbor Cache entry's state changes from REACHABLE to STALE."
        this.setState(e, NdState.Stale, this.gcMs());
        return;
      case NdState.Delay:
        if (!link) { this.remove(e); return; }
        this.setState(e, NdState.Probe, link.retransTimer);
        e.probes = 1;
        this.sendNs(link, e.addr, true);
        return;
      case NdState.Probe:
        if (link && e.probes < s.int('net.inet6.icmp6.nd6_umaxtries')) {
          e.probes++;
          this.sendNs(link, e.addr, true);
          this.host.wheel.arm(e.timer, now + link.retransTimer);
          return;
        }
        this.stats.probesFailed++;
        if (e.isRouter) this.onRouterLost?.(e.ifIndex, e.addr);
        this.remove(e);
        return;
      default:
        this.remove(e);
    }
  }

  private remove(e: NdEntry): void {
    if (e.unsolicited) this.adopt(e);
    this.host.wheel.disarm(e.timer);
    while (e.queue.length) e.queue.shift()!.release();
    if (e.slot >= 0) this.table.remove(e.slot);
    e.slot = -1;
  }

  /** Frees a slot: the lowest-ranked, oldest entry within a window that walks the table. */
  private evictOne(): void {
    const cap = this.table.capacity;
    let victim: NdEntry | undefined;
    for (let i = 0; i < EVICT_WINDOW; i++) {
      const e = this.table.value((this.hand + i) % cap);
      if (!e) continue;
      if (!victim || EVICT_RANK[e.state]! < EVICT_RANK[victim.state]!
        || (EVICT_RANK[e.state] === EVICT_RANK[victim.state] && e.updatedAt < victim.updatedAt)) victim = e;
    }
    this.hand = (this.hand + EVICT_WINDOW) % cap;
    if (!victim) { this.table.forEach((e) => { victim ??= e; }); }
    if (victim) this.evict(victim);
  }

  /** §7.2.2 multicast NS to the solicited-node group, or a §7.3.3 unicast probe to the cached address. */
  private sendNs(link: Ipv6Link, target: Uint8Array, unicast: boolean): void {
    const src = link.sourceFor(target, 0);
    // No assigned address yet (link-local still tentative): nothing to solicit from; the timer retries.
    if (!src) { this.host.drop('nd6_no_source'); return; }
    const buf = this.host.pool.alloc();
    const off = buf.append(0);
    const n = writeNeighborSolicit(buf.data, off, target, 0, link.mac);
    buf.append(n);
    this.stats.nsSent++;
    if (unicast) { this.host.sendIcmpv6(buf, src.addr, 0, target, 0, NDP_HOP_LIMIT, link.ifIndex); return; }
    writeSolicitedNodeMulticast(this.group, 0, target, 0);
    this.host.sendIcmpv6(buf, src.addr, 0, this.group, 0, NDP_HOP_LIMIT, link.ifIndex);
  }

  /**
   * RFC 4861 §7.2.6: unsolicited advertisements (Override set, to all-nodes) for every assigned
   * address of the link — "a node may wish to send unsolicited advertisements when its
   * link-layer address changes" (a bond's failover). Returns how many were sent.
   */
  announce(link: Ipv6Link): number {
    let n = 0;
    for (const a of link.addrs) if (a.assigned) { this.sendNa(link, a.addr, ALL_NODES, NaFlag.Override); n++; }
    return n;
  }

  /** NA for our `target` (it is the source too, §7.2.4) to dst, with our link-layer address. */
  private sendNa(link: Ipv6Link, target: Uint8Array, dst: Uint8Array, flags: number): void {
    const buf = this.host.pool.alloc();
    const off = buf.append(0);
    const n = writeNeighborAdvert(buf.data, off, flags, target, 0, link.mac);
    buf.append(n);
    this.stats.naSent++;
    this.host.sendIcmpv6(buf, target, 0, dst, 0, NDP_HOP_LIMIT, link.ifIndex);
  }

  /**
   * The solicited NA of sendNa, sent straight to `mac` (the solicitation's source link-layer
   * address) without going through the cache: checksum, IPv6 header with hop limit 255
   * (§7.1.2), link output.
   */
  private sendNaDirect(link: Ipv6Link, target: Uint8Array, dst: Uint8Array, mac: Uint8Array, flags: number): void {
    const buf = this.host.pool.alloc();
    const off = buf.append(0);
    const n = writeNeighborAdvert(buf.data, off, flags, target, 0, link.mac);
    buf.append(n);
    finishIcmpv6Checksum(buf.data, off, n, target, 0, dst, 0);
    buf.csum = Csum.None;
    const h = buf.prepend(IPV6_HLEN);
    writeIpv6Header(buf.data, h, 0, 0, n, Ipv6Next.ICMPv6, NDP_HOP_LIMIT, target, 0, dst, 0);
    buf.l3 = h;
    this.stats.naSent++;
    this.host.linkOutput(link.ifIndex, mac, 0, buf);
  }

  private ownNonce(v: NeighborSolicitView, a: If6Addr): boolean {
    const o = v.findOption(NdpOption.Nonce);
    if (o < 0 || v.bytes[o + 1] !== 1) return false;
    for (let i = 0; i < 6; i++) if (v.bytes[o + 2 + i] !== a.dadNonce[i]) return false;
    return true;
  }

  /** The Ethernet address of a multicast group, in a reused array. */
  multicastMac(group: Uint8Array, off: number): Uint8Array {
    writeIpv6MulticastMac(this.mcastMac, 0, group, off);
    return this.mcastMac;
  }
}

export const UNSPECIFIED = new Uint8Array(16);
/** ff02::1, the link-local all-nodes group. */
export const ALL_NODES = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
