// IPv4 (RFC 791, RFC 1122 §3): input checks and delivery to the registered transports,
// reassembly, output with route lookup, source selection and fragmentation, loopback to our
// own addresses, and the link-layer hand-off (broadcast, multicast, ARP). Owns ICMPv4 and the
// reassembler, which belong to it.
import { LOOPBACK_ADDR, isLoopbackAddress } from '../loopback.js';
import { Csum, Gso, type BufferPool, type PacketBuffer } from '../../base/pktbuf.js';
import { completeChecksum, segmentTcp4 } from '../../base/offload.js';
import { finish, sum16 } from '../../wire/checksum.js';
import type { Clock, TimerWheel } from '../../base/time.js';
import { MAC_BROADCAST, isIpv4Multicast } from '../../wire/addr.js';
import { EtherType } from '../../wire/ethernet.js';
import { internetChecksum } from '../../wire/checksum.js';
import { WireError, wireErrorName } from '../../wire/errors.js';
import { IcmpType, UnreachCode } from '../../wire/icmpv4.js';
import { IPV4_DF, IPV4_HLEN, IPV4_MF, IpProto, Ipv4View, writeIpv4Header } from '../../wire/ipv4.js';
import type { Interface } from '../iface.js';
import type { Sysctl, SysctlHandle } from '../sysctl.js';
import { Icmp, defineIcmpSysctls, type IcmpContext } from './icmp.js';
import { Igmp, type IgmpContext } from './igmp.js';
import { Reassembler, defineReassSysctls, type ReassContext } from './reass.js';
import type { RouteTable } from './route.js';
import type { Path } from './path.js';
import { defineIpSysctls, definePortRangeSysctls, type IpTunables } from './tunables.js';

export { defineIpSysctls } from './tunables.js';

export class IpStats {
  received = 0; delivered = 0; fragmentsReceived = 0; reassembled = 0;
  outRequests = 0; outNoRoute = 0; fragmented = 0; fragmentsCreated = 0; loopback = 0;
  /** Datagrams forwarded to another interface (net.inet.ip.forwarding), and those that could not be. */
  forwarded = 0; cantForward = 0;
}

/** What IPv4 needs from the stack. */
export interface Ipv4Context {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  readonly random: () => number;
  readonly interfaces: readonly Interface[];
  readonly routes: RouteTable;
  drop(reason: string): void;
  /** Output was queued (a device or the loopback queue): the run loop should flush/poll soon. */
  outputPending(): void;
  /** Link-layer output to a known MAC (broadcast, multicast). Takes ownership. */
  ethOutput(iface: Interface, dstMac: Uint8Array, dstOff: number, etherType: number, buf: PacketBuffer): void;
  /** Link-layer output to a unicast next hop: neighbor resolution (ARP). Takes ownership. */
  resolveOutput(iface: Interface, nexthop: number, buf: PacketBuffer): void;
}

/**
 * A transport above IPv4: `ip` is wrapped over buf (the datagram starts at ip.off), `toBroadcast`
 * when the destination was a broadcast or multicast address. Takes ownership of buf.
 */
export type Ipv4ProtocolInput = (ip: Ipv4View, buf: PacketBuffer, toBroadcast: boolean) => void;

export class Ipv4 implements IcmpContext, ReassContext, IgmpContext {
  readonly stats = new IpStats();
  readonly reass: Reassembler;
  /**
   * Sees each reassembled datagram (buf.start at its IPv4 header) before delivery; true takes it
   * (several workers: it goes to its flow's owner, src/runtime/worker.ts).
   */
  onReassembled: ((ifIndex: number, buf: PacketBuffer) => boolean) | null = null;
  readonly icmp: Icmp;
  readonly igmp: Igmp;
  private readonly protocols: (Ipv4ProtocolInput | undefined)[] = new Array(256).fill(undefined);
  private readonly ip = new Ipv4View();
  private readonly mcastMac = new Uint8Array([0x01, 0x00, 0x5e, 0, 0, 0]);
  private readonly loopQueue: PacketBuffer[] = [];
  /**
   * Admission for datagrams from the wire, after reassembly (the shield): false drops the
   * datagram, the filter counting why. Loopback traffic is not filtered.
   */
  filter: ((ip: Ipv4View, buf: PacketBuffer) => boolean) | null = null;
  private ipId: number;

  readonly tun: IpTunables;
  readonly portFirst: SysctlHandle<number>;
  readonly portLast: SysctlHandle<number>;

  constructor(private readonly ctx: Ipv4Context) {
    this.tun = defineIpSysctls(ctx.sysctl);
    const range = definePortRangeSysctls(ctx.sysctl);
    this.portFirst = range.first;
    this.portLast = range.last;
    defineReassSysctls(ctx.sysctl);
    defineIcmpSysctls(ctx.sysctl);
    this.ipId = Math.floor(ctx.random() * 0x10000);
    this.reass = new Reassembler(this);
    this.icmp = new Icmp(this);
    this.protocols[IpProto.ICMP] = (ip, buf, toBroadcast) => this.icmp.input(ip, buf, toBroadcast);
    this.igmp = new Igmp(this);
    this.protocols[IpProto.IGMP] = (ip, buf) => {
      const iface = this.ctx.interfaces[buf.ifIndex - 1];
      if (iface !== undefined) this.igmp.input(iface, ip.dst, buf.data, ip.payloadOff, ip.payloadLen);
      buf.release();
    };
  }

  // ---- the contexts handed down (IcmpContext, ReassContext, UdpContext) --------------------

  get clock(): Clock { return this.ctx.clock; }
  get wheel(): TimerWheel { return this.ctx.wheel; }
  get sysctl(): Sysctl { return this.ctx.sysctl; }
  get pool(): BufferPool { return this.ctx.pool; }
  get random(): () => number { return this.ctx.random; }
  /** net.inet.ip.ttl: the TTL of what this host sends. */
  get defaultTtl(): number { return this.tun.ttl.value; }
  drop(reason: string): void { this.ctx.drop(reason); }
  interfaceByIndex(ifIndex: number): Interface | undefined { return this.ctx.interfaces[ifIndex - 1]; }

  /** Delivers datagrams of protocol `proto` to `fn`. */
  register(proto: number, fn: Ipv4ProtocolInput): void { this.protocols[proto] = fn; }

  // ---- receive -----------------------------------------------------------------------------

  /** An IPv4 datagram at buf.data[off, off + len) (Ethernet payload). Takes ownership. */
  input(iface: Interface, buf: PacketBuffer, off: number, len: number, l2Bcast: boolean): void {
    const ip = this.ip;
    const err = ip.wrap(buf.data, off, len, true);
    if (err !== WireError.Ok) { iface.counters.rxErrors++; buf.release(); this.ctx.drop(`ip_${wireErrorName(err)}`); return; }
    this.stats.received++;
    const src = ip.src, dst = ip.dst;
    const martian = this.martianSource(src, dst);
    if (martian !== null) { buf.release(); this.ctx.drop(martian); return; }
    // RFC 1122 §3.2.1.7: TTL 0 must never be sent; a datagram carrying it is bogus.
    if (ip.ttl === 0) { buf.release(); this.ctx.drop('ip_ttl_zero'); return; }
    buf.start = off;
    buf.end = off + ip.totalLength; // strip Ethernet padding
    buf.l3 = off;
    const bcast = dst === 0xffffffff || this.isBroadcastAddress(dst);
    const mcast = isIpv4Multicast(dst);
    if (!bcast && !mcast) {
      if (!iface.hasAddress(dst) && !this.acceptsFromOtherInterface(iface, dst)) {
        if (this.tun.forwarding.value !== 0) { this.forward(buf, l2Bcast); return; }
        buf.release(); this.ctx.drop('ip_not_for_us'); return;
      }
      // RFC 1122 §3.2.1.3(g): 127/8 never arrives from a wire, even when lo0 owns it.
      if (isLoopbackAddress(dst)) { buf.release(); this.ctx.drop('ip_loopback_destination'); return; }
      // RFC 1122 §3.3.6: unicast IP inside a link-layer broadcast is discarded.
      if (l2Bcast) { buf.release(); this.ctx.drop('ip_unicast_in_l2_broadcast'); return; }
    }
    // RFC 3376 §3.2: a multicast datagram is delivered when the interface's filter for the
    // group admits its source (IGMP itself always: queries go to groups we may have left).
    if (mcast && ip.protocol !== IpProto.IGMP && !this.igmp.accepts(iface.index, dst, src)) { buf.release(); this.ctx.drop('ip_mcast_not_member'); return; }
    if (ip.isFragment) {
      this.stats.fragmentsReceived++;
      const whole = this.reass.input(ip, buf);
      if (!whole) return;
      this.stats.reassembled++;
      buf = whole;
      if (this.onReassembled !== null && this.onReassembled(iface.index, buf)) return;
      ip.wrap(buf.data, buf.start, buf.length, false);
    }
    if (this.filter !== null && !this.filter(ip, buf)) { buf.release(); return; }
    this.deliver(ip, buf, bcast || mcast);
  }

  /**
   * The drop reason for a source address that cannot come from the wire, or null. RFC 1812
   * §5.3.7 / RFC 1122 §3.2.1.3: broadcast and multicast sources (a), class E (f), 127/8
   * "MUST NOT appear outside a host" (g), {0, host} only during initialization — accepted, as
   * Linux does, only from 0.0.0.0 to the limited broadcast (a DHCP/BOOTP client) — and, like
   * Linux, one of our own addresses (a packet "from ourselves" off the wire is forged or looped;
   * our own loopback traffic does not come this way, see pollLoopback).
   */
  private martianSource(src: number, dst: number): string | null {
    const top = src >>> 24;
    if (top === 0) return src === 0 && dst === 0xffffffff ? null : 'ip_martian_zero_source';
    if (top === 127) return 'ip_martian_loopback_source';
    if (top >= 224) {
      if (src === 0xffffffff) return 'ip_martian_broadcast_source';
      return top < 240 ? 'ip_martian_multicast_source' : 'ip_martian_class_e_source';
    }
    for (const i of this.ctx.interfaces) {
      if (i.hasAddress(src)) return 'ip_martian_own_source';
      if (i.isBroadcast(src)) return 'ip_martian_broadcast_source';
    }
    return null;
  }

  private deliver(ip: Ipv4View, buf: PacketBuffer, toBroadcast: boolean): void {
    this.stats.delivered++;
    const fn = this.protocols[ip.protocol];
    if (fn !== undefined) { fn(ip, buf, toBroadcast); return; }
    this.ctx.drop('ip_unknown_protocol');
    this.icmp.sendError(ip, buf, IcmpType.DestUnreachable, UnreachCode.Protocol, toBroadcast);
    buf.release();
  }

  // ---- forwarding (net.inet.ip.forwarding) ---------------------------------------------------

  private forwardSegs: PacketBuffer[] = [];

  private refuseForward(buf: PacketBuffer, reason: string): void { this.stats.cantForward++; buf.release(); this.ctx.drop(reason); }

  /**
   * A datagram (buf.start = its header, this.ip wrapped over it) for none of our addresses while
   * forwarding is on: RFC 1812 §5.2-5.3 — route it, decrement the TTL, fragment or refuse.
   * Takes ownership.
   */
  private forward(buf: PacketBuffer, l2Bcast: boolean): void {
    const ip = this.ip;
    const src = ip.src, dst = ip.dst;
    // §5.3.4: never forward what arrived as a link-layer broadcast.
    if (l2Bcast) { this.refuseForward(buf, 'ip_forward_l2_broadcast'); return; }
    // §5.3.7 martian destinations (0/8, 127/8, class E); RFC 3927 §7: 169.254/16 is link-local,
    // never forwarded as source or destination.
    const top = dst >>> 24;
    if (top === 0 || top === 127 || top >= 240 || (dst >>> 16) === 0xa9fe || (src >>> 16) === 0xa9fe) { this.refuseForward(buf, 'ip_forward_martian'); return; }
    const r = this.ctx.routes.lookup(dst);
    const out = r ? this.ctx.interfaces[r.ifIndex - 1] : undefined;
    if (!r || !out || !out.up || out.loopback) {
      this.icmp.sendError(ip, buf, IcmpType.DestUnreachable, UnreachCode.Net, false);
      this.refuseForward(buf, 'ip_forward_no_route');
      return;
    }
    // §5.3.5.1: directed broadcasts are not forwarded by default.
    if (out.isBroadcast(dst)) { this.refuseForward(buf, 'ip_forward_directed_broadcast'); return; }
    // §5.3.1: a datagram whose TTL would reach 0 is discarded with a Time Exceeded (code 0).
    const ttl = ip.ttl;
    if (ttl <= 1) {
      this.icmp.sendError(ip, buf, IcmpType.TimeExceeded, 0, false);
      this.refuseForward(buf, 'ip_forward_ttl_exceeded');
      return;
    }
    const d = buf.data, off = ip.off;
    // TTL - 1 with the header checksum updated incrementally (RFC 1624 eqn. 3).
    const oldWord = (ttl << 8) | d[off + 9]!;
    d[off + 8] = ttl - 1;
    let sum = (~((d[off + 10]! << 8) | d[off + 11]!) & 0xffff) + (~oldWord & 0xffff) + (((ttl - 1) << 8) | d[off + 9]!);
    sum = (sum & 0xffff) + (sum >>> 16); sum = (sum & 0xffff) + (sum >>> 16);
    const hc = ~sum & 0xffff;
    d[off + 10] = hc >>> 8; d[off + 11] = hc & 0xff;
    const nexthop = r.gateway || dst;
    // The receiving device left the L4 checksum partial (a TAP peer's own traffic): it stays
    // partial, for the sending device or completeChecksum to finish.
    buf.csum = buf.csum === Csum.Valid && buf.csumOffset !== 0 ? Csum.Partial : Csum.None;
    if (buf.gso !== Gso.None) {
      const o = out.dev.offloads;
      const ihl = (d[off]! & 15) * 4, thl = (d[off + ihl + 12]! >> 4) * 4;
      if (buf.gso === Gso.Tcp4 && o.tso4 && o.txCsum && ihl + thl + buf.gsoSize <= out.mtu) { this.forwardOut(out, nexthop, dst, buf); return; }
      if (buf.gso !== Gso.Tcp4) { this.refuseForward(buf, 'ip_forward_gso_unsupported'); return; }
      // Segment in software (what a router's NIC would see anyway: wire-sized frames).
      const segs = this.forwardSegs;
      buf.start = off - 14;
      d[off - 2] = 0x08; d[off - 1] = 0x00;
      const n = segmentTcp4(buf, this.ctx.pool, segs);
      buf.release();
      if (n === 0) { this.stats.cantForward++; this.ctx.drop('ip_forward_bad_gso'); return; }
      for (let i = 0; i < n; i++) {
        const f = segs[i]!;
        segs[i] = undefined!;
        f.start += 14; f.l3 = f.start;
        this.forwardOut(out, nexthop, dst, f);
      }
      return;
    }
    this.forwardOut(out, nexthop, dst, buf);
  }

  /** The forwarded datagram in buf (start = IP header) leaves by `out`: MTU, checksum, link layer. */
  private forwardOut(out: Interface, nexthop: number, dst: number, buf: PacketBuffer): void {
    const d = buf.data, off = buf.start;
    buf.l3 = off;
    if (buf.length > out.mtu && buf.gso === Gso.None) {
      if ((d[off + 6]! & 0x40) !== 0) {
        // RFC 1191 §4: Fragmentation Needed, with the next-hop MTU.
        const ip = this.ip;
        if (ip.wrap(d, off, buf.length, false) === WireError.Ok) this.icmp.sendError(ip, buf, IcmpType.DestUnreachable, UnreachCode.FragNeeded, false, out.mtu);
        this.stats.cantForward++; buf.release(); this.ctx.drop('ip_forward_needs_frag'); return;
      }
      completeChecksum(buf);
      this.fragmentForwarded(out, nexthop, dst, buf);
      return;
    }
    if (buf.csum === Csum.Partial && !out.dev.offloads.txCsum) completeChecksum(buf);
    this.stats.forwarded++;
    this.l2Output(out, nexthop, dst, buf);
  }

  /**
   * RFC 791 fragmentation of a forwarded datagram (perhaps a fragment itself: offsets and MF
   * carry over). Options are copied into every fragment. Takes ownership.
   */
  private fragmentForwarded(out: Interface, nexthop: number, dst: number, buf: PacketBuffer): void {
    const d = buf.data, off = buf.start;
    const ihl = (d[off]! & 15) * 4;
    const payload = buf.length - ihl;
    const fo = ((d[off + 6]! & 0x1f) << 8) | d[off + 7]!;
    const mf = (d[off + 6]! & 0x20) !== 0;
    const chunk = (out.mtu - ihl) & ~7;
    if (chunk <= 0) { this.stats.cantForward++; buf.release(); this.ctx.drop('ip_mtu_too_small'); return; }
    this.stats.fragmented++;
    this.stats.forwarded++;
    for (let at = 0; at < payload; at += chunk) {
      const n = Math.min(chunk, payload - at);
      const f = this.ctx.pool.alloc(this.ctx.pool.headroom + ihl + n + 64);
      const o = f.append(n);
      f.data.set(d.subarray(off + ihl + at, off + ihl + at + n), o);
      const h = f.prepend(ihl);
      f.data.set(d.subarray(off, off + ihl), h);
      const fd = f.data;
      const total = ihl + n, fragOff = fo + (at >> 3), more = mf || at + n < payload;
      fd[h + 2] = total >>> 8; fd[h + 3] = total & 0xff;
      fd[h + 6] = (more ? 0x20 : 0) | ((fragOff >>> 8) & 0x1f); fd[h + 7] = fragOff & 0xff;
      fd[h + 10] = 0; fd[h + 11] = 0;
      const c = finish(sum16(fd, h, ihl));
      fd[h + 10] = c >>> 8; fd[h + 11] = c & 0xff;
      f.l3 = h;
      this.stats.fragmentsCreated++;
      this.l2Output(out, nexthop, dst, f);
    }
    buf.release();
  }

  // ---- send --------------------------------------------------------------------------------

  /**
   * Sends the L4 payload in buf (start..end) as an IPv4 datagram: route lookup, source address
   * (0 = choose), fragmentation, neighbor resolution. Takes ownership. Returns false (and counts)
   * when there is no route or the interface is down.
   */
  ipOutput(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean {
    this.stats.outRequests++;
    let iface: Interface | undefined;
    let nexthop = dst;
    // RFC 1122 §3.2.1.3(g): 127/8 "MUST NOT appear outside a host": without lo0 such a
    // destination has no route (never the default gateway); with it, it is local.
    if ((dst >>> 24) === 127 && !this.isLocalAddress(dst)) {
      this.stats.outNoRoute++;
      buf.release();
      this.ctx.drop('ip_loopback_destination');
      return false;
    }
    if (dst === 0xffffffff) {
      iface = this.interfaceForSource(src) ?? this.ctx.interfaces.find((i) => i.up && i.addrs.length > 0);
    } else {
      const r = this.ctx.routes.lookup(dst);
      if (r) { iface = this.ctx.interfaces[r.ifIndex - 1]; if (r.gateway) nexthop = r.gateway; }
    }
    if (!iface || !iface.up) {
      this.stats.outNoRoute++;
      buf.release();
      this.ctx.drop('ip_no_route');
      return false;
    }
    if (src === 0) src = iface.sourceFor(dst);
    return this.send(iface, nexthop, buf, src, dst, proto, tos, ttl, df, this.isLocalAddress(dst));
  }

  /**
   * The interface for multicast to (or a membership of) `group`: the one owning `ifAddr` when
   * given (IP_MULTICAST_IF, imr_interface), else the route's, else the first up interface with
   * an address. 0 when there is none.
   */
  multicastIfIndex(group: number, ifAddr: number): number {
    const ifs = this.ctx.interfaces;
    if (ifAddr !== 0) return ifs.find((i) => i.up && i.hasAddress(ifAddr))?.index ?? 0;
    const r = this.ctx.routes.lookup(group);
    if (r) { const i = ifs[r.ifIndex - 1]; if (i && i.up) return i.index; }
    return ifs.find((i) => i.up && !i.loopback && i.addrs.length > 0)?.index ?? 0;
  }

  /**
   * Sends an L4 payload to a multicast group on interface `ifIndex` (see multicastIfIndex);
   * `loop` (IP_MULTICAST_LOOP) also delivers a copy here when the interface is a member.
   * Takes ownership; false (counted) when the interface is missing or down.
   */
  multicastOutput(buf: PacketBuffer, ifIndex: number, src: number, dst: number, proto: number, tos: number, ttl: number, loop: boolean): boolean {
    this.stats.outRequests++;
    const iface = this.ctx.interfaces[ifIndex - 1];
    if (!iface || !iface.up) { this.stats.outNoRoute++; buf.release(); this.ctx.drop('ip_no_route'); return false; }
    if (src === 0) src = iface.primary;
    this.mcastLoop = loop && this.igmp.isMember(ifIndex, dst);
    // RFC 1112 §6.1: "a datagram with a TTL of 0 is restricted to the same host".
    this.mcastHostOnly = ttl === 0;
    try { return this.send(iface, dst, buf, src, dst, proto, tos, ttl, false, false); } finally { this.mcastLoop = false; this.mcastHostOnly = false; }
  }

  private mcastLoop = false;
  private mcastHostOnly = false;

  /** IgmpContext: the next IPv4 identification. */
  nextIpId(): number { return this.ipId = (this.ipId + 1) & 0xffff; }

  /** IgmpContext: a complete datagram (buf.start = IP header) to a multicast group on a link. */
  multicastLinkOutput(iface: Interface, dst: number, buf: PacketBuffer): void {
    buf.l3 = buf.start;
    this.l2Output(iface, dst, dst, buf);
  }

  /**
   * Resolves `path` towards `dst` from `src` (0: the route's source address), or revalidates it:
   * when neither routes nor addresses changed and its interface is up, this is one comparison.
   * Returns false (path left unresolved) when there is no route.
   */
  resolvePath(path: Path, src: number, dst: number): boolean {
    const routes = this.ctx.routes;
    if (path.generation === routes.generation && path.dst === dst && (src === 0 || src === path.src)) {
      const i = path.iface;
      return path.ok && i !== null && i.up;
    }
    path.generation = routes.generation;
    path.dst = dst;
    path.ok = false;
    path.iface = null;
    path.gsoMax = 0;
    path.gsoKind = Gso.None;
    path.headerLen = IPV4_HLEN;
    const ifs = this.ctx.interfaces;
    const local = this.isLocalAddress(dst);
    path.local = local;
    let iface: Interface | undefined;
    if (local) {
      iface = ifs.find((i) => i.hasAddress(dst));
      path.nexthop = dst;
    } else {
      // RFC 1122 §3.2.1.3(g): no route to 127/8 outside a host.
      if ((dst >>> 24) === 127) return false;
      const r = routes.lookup(dst);
      if (!r) return false;
      iface = ifs[r.ifIndex - 1];
      path.nexthop = r.gateway || dst;
    }
    if (!iface || !iface.up) return false;
    path.src = src !== 0 ? src : local ? dst : iface.sourceFor(path.nexthop);
    if (path.src === 0) return false;
    path.iface = iface;
    path.ok = true;
    path.mtu = iface.mtu;
    const o = iface.dev.offloads;
    path.txCsum = local || o.txCsum;
    if (!local && o.tso4 && o.txCsum) {
      path.gsoKind = Gso.Tcp4;
      // The whole datagram must fit IPv4's 16-bit total length with the largest TCP header.
      path.gsoMax = 65535 - IPV4_HLEN - 60;
    }
    return true;
  }

  /** Sends an L4 payload along `path` (resolving it again if routes changed). Takes ownership. */
  pathOutput(path: Path, buf: PacketBuffer, proto: number, tos: number, ttl: number, df: boolean): boolean {
    this.stats.outRequests++;
    if (!this.resolvePath(path, path.src, path.dst)) {
      this.stats.outNoRoute++;
      buf.release();
      this.ctx.drop('ip_no_route');
      return false;
    }
    return this.send(path.iface!, path.nexthop, buf, path.src, path.dst, proto, tos, ttl, df, path.local);
  }

  /** The part of output after routing: checksum completion, GSO check, fragmentation, header, L2. */
  private send(iface: Interface, nexthop: number, buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean, local: boolean): boolean {
    if (buf.csum === Csum.Partial && (!iface.dev.offloads.txCsum || local)) completeChecksum(buf);
    const payloadLen = buf.length;
    // A super-segment only goes to a device that segments it (the route may have changed).
    if (buf.gso !== Gso.None && !iface.dev.offloads.tso4) { buf.release(); this.ctx.drop('ip_gso_unsupported'); return false; }
    if (IPV4_HLEN + payloadLen > iface.mtu && buf.gso === Gso.None) {
      if (df) {
        this.fragNeededLocally(iface, buf, src, dst, proto, tos, ttl);
        buf.release(); this.ctx.drop('ip_needs_frag_df'); return false;
      }
      return this.fragment(iface, nexthop, buf, src, dst, proto, tos, ttl);
    }
    const id = this.ipId = (this.ipId + 1) & 0xffff;
    const off = buf.prepend(IPV4_HLEN);
    writeIpv4Header(buf.data, off, tos, IPV4_HLEN + payloadLen, id, df ? IPV4_DF : 0, ttl, proto, src, dst);
    buf.l3 = off;
    this.l2Output(iface, nexthop, dst, buf);
    return true;
  }

  /**
   * A datagram of ours with DF set is too big for its interface: the MTU shrank under a
   * connection (a tunnel learned a smaller path MTU). The transport hears it as from a router
   * (RFC 1191 Fragmentation Needed with the interface's MTU), through the loopback queue, so at
   * the next poll and never re-entrantly from inside its own output.
   */
  private fragNeededLocally(iface: Interface, buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number): void {
    if (buf.length < 8 || !this.isLocalAddress(src)) return;
    const e = this.ctx.pool.alloc();
    const o = e.append(IPV4_HLEN + 8 + IPV4_HLEN + 8);
    const b = e.data, ic = o + IPV4_HLEN, q = ic + 8;
    writeIpv4Header(b, q, tos, IPV4_HLEN + buf.length, 0, IPV4_DF, ttl, proto, src, dst);
    b.set(buf.data.subarray(buf.start, buf.start + 8), q + IPV4_HLEN);
    const mtu = iface.mtu;
    b[ic] = IcmpType.DestUnreachable; b[ic + 1] = UnreachCode.FragNeeded; b[ic + 2] = 0; b[ic + 3] = 0;
    b[ic + 4] = 0; b[ic + 5] = 0; b[ic + 6] = mtu >> 8; b[ic + 7] = mtu & 0xff;
    const c = internetChecksum(b, ic, 8 + IPV4_HLEN + 8);
    b[ic + 2] = c >> 8; b[ic + 3] = c & 0xff;
    writeIpv4Header(b, o, 0xc0, IPV4_HLEN + 8 + IPV4_HLEN + 8, this.nextIpId(), 0, 64, IpProto.ICMP, src, src);
    e.l3 = o; e.csum = Csum.Valid; e.ifIndex = iface.index;
    this.loopQueue.push(e);
    this.ctx.outputPending();
  }

  private fragment(iface: Interface, nexthop: number, buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number): boolean {
    const total = buf.length;
    const chunk = (iface.mtu - IPV4_HLEN) & ~7;
    if (chunk <= 0) { buf.release(); this.ctx.drop('ip_mtu_too_small'); return false; }
    const id = this.ipId = (this.ipId + 1) & 0xffff;
    this.stats.fragmented++;
    for (let at = 0; at < total; at += chunk) {
      const n = Math.min(chunk, total - at);
      const f = this.ctx.pool.alloc();
      const o = f.append(n);
      f.data.set(buf.data.subarray(buf.start + at, buf.start + at + n), o);
      const h = f.prepend(IPV4_HLEN);
      const more = at + n < total ? IPV4_MF : 0;
      writeIpv4Header(f.data, h, tos, IPV4_HLEN + n, id, more | (at >> 3), ttl, proto, src, dst);
      f.l3 = h;
      this.stats.fragmentsCreated++;
      this.l2Output(iface, nexthop, dst, f);
    }
    buf.release();
    return true;
  }

  private l2Output(iface: Interface, nexthop: number, dst: number, buf: PacketBuffer): void {
    if (dst === 0xffffffff || iface.isBroadcast(dst)) { this.ctx.ethOutput(iface, MAC_BROADCAST, 0, EtherType.IPv4, buf); return; }
    if (isIpv4Multicast(dst)) {
      // RFC 1112 §6.4: 01:00:5e + the low 23 bits of the group.
      const m = this.mcastMac;
      m[3] = (dst >>> 16) & 0x7f; m[4] = (dst >>> 8) & 0xff; m[5] = dst & 0xff;
      if (this.mcastLoop) {
        // IP_MULTICAST_LOOP: a copy for our own members, through the loopback queue.
        const c = buf.clone();
        c.ifIndex = iface.index; c.csum = Csum.Valid;
        this.loopQueue.push(c);
        this.ctx.outputPending();
      }
      if (this.mcastHostOnly) { buf.release(); return; }
      this.ctx.ethOutput(iface, m, 0, EtherType.IPv4, buf);
      return;
    }
    if (this.isLocalAddress(dst)) {
      // To ourselves: loop back through input on the next poll (never re-entrantly).
      this.stats.loopback++;
      buf.csum = Csum.Valid;
      this.loopQueue.push(buf);
      this.ctx.outputPending();
      return;
    }
    this.ctx.resolveOutput(iface, nexthop, buf);
  }

  // ---- loopback ----------------------------------------------------------------------------

  /** Datagrams to our own addresses are waiting for pollLoopback(). */
  get loopbackPending(): boolean { return this.loopQueue.length > 0; }

  /** Delivers the datagrams looped back since the last call. */
  pollLoopback(): void {
    if (!this.loopQueue.length) return;
    const q = this.loopQueue.splice(0);
    for (const b of q) {
      const ip = this.ip;
      ip.wrap(b.data, b.start, b.length, false);
      this.stats.received++;
      this.deliver(ip, b, false);
    }
  }

  // ---- queries -----------------------------------------------------------------------------

  isLocalAddress(addr: number): boolean {
    for (const i of this.ctx.interfaces) if (i.hasAddress(addr)) return true;
    return false;
  }

  isBroadcastAddress(addr: number): boolean {
    if (addr === 0xffffffff) return true;
    for (const i of this.ctx.interfaces) if (i.isBroadcast(addr)) return true;
    return false;
  }

  /**
   * A datagram for `dst` received on `iface`, which does not own it: the weak host model (RFC
   * 1122 §3.3.4.2, Linux's and FreeBSD's default) accepts it when another interface does —
   * unless net.inet.ip.check_interface asks for the strong model (FreeBSD), or either
   * interface is a separate link (VLANs, Interface.separateLink), and forwarding is off.
   */
  private acceptsFromOtherInterface(iface: Interface, dst: number): boolean {
    const owner = this.interfaceForSource(dst);
    if (owner === undefined) return false;
    if (this.tun.forwarding.value !== 0) return true;
    return this.tun.checkInterface.value === 0 && !iface.separateLink && !owner.separateLink;
  }

  private interfaceForSource(src: number): Interface | undefined {
    if (src === 0) return undefined;
    return this.ctx.interfaces.find((i) => i.hasAddress(src));
  }

  /** The source address towards `dst`; 0 when there is no route. */
  sourceAddress(dst: number): number {
    const ifs = this.ctx.interfaces;
    // To lo0's 127.0.0.5, as on Linux: from 127.0.0.1 (its route's source).
    if (this.isLocalAddress(dst)) return isLoopbackAddress(dst) ? LOOPBACK_ADDR : dst;
    if ((dst >>> 24) === 127) return 0;
    if (dst === 0xffffffff) return ifs.find((i) => i.up && i.addrs.length)?.primary ?? 0;
    const r = this.ctx.routes.lookup(dst);
    if (!r) return 0;
    const iface = ifs[r.ifIndex - 1];
    return iface && iface.up ? iface.sourceFor(r.gateway || dst) : 0;
  }

  /** ReassContext: a datagram timed out with its first fragment held: RFC 792 time exceeded, code 1. */
  timedOut(first: PacketBuffer): void {
    const ip = this.ip;
    if (ip.wrap(first.data, first.l3, first.end - first.l3, false) === WireError.Ok || ip.headerLength >= IPV4_HLEN) {
      this.icmp.sendError(ip, first, IcmpType.TimeExceeded, 1, false);
    }
    first.release();
  }

  /** Releases reassembly state and the loopback queue. */
  close(): void {
    this.reass.clear();
    for (const b of this.loopQueue.splice(0)) b.release();
  }
}
