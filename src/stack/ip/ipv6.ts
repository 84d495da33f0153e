// IPv6 (RFC 8200) for a host: input validation, the extension-header chain (hop-by-hop and
// destination options with their unrecognised-option actions, routing headers refused while
// segments are left, fragments reassembled), output with source selection, routing and
// fragmentation to the path MTU, and the parts that make IPv6 work on a link: ICMPv6, the
// neighbour cache, address configuration and MLD. The stack hands it frames whose EtherType is
// 0x86DD and gives it an Ethernet output; nothing else.
import { completeChecksum } from '../../base/offload.js';
import { Csum, Gso, type BufferPool, type PacketBuffer } from '../../base/pktbuf.js';
import type { Clock, TimerWheel } from '../../base/time.js';
import { parseIpv6 } from '../../wire/addr.js';
import { EtherType } from '../../wire/ethernet.js';
import { WireError, wireErrorName } from '../../wire/errors.js';
import { Icmpv6ParamProblemCode, Icmpv6TimeExceededCode, Icmpv6Type, Icmpv6UnreachCode, finishIcmpv6Checksum } from '../../wire/icmpv6.js';
import {
  IPV6_FRAG_HLEN, IPV6_HLEN, IPV6_MAX_EXT_HEADERS, IPV6_MIN_MTU, Ipv6Next, Ipv6Option, Ipv6OptionIter, Ipv6View, isIpv6LinkLocal,
  isIpv6Multicast, isIpv6Unspecified, writeIpv6FragmentHeader, writeIpv6Header, writeIpv6MulticastMac,
} from '../../wire/ipv6.js';
import { Addrconf, defineAddrconfSysctls, type If6AddrInfo } from '../neighbor/addrconf.js';
import { Ndp, defineNdpSysctls } from '../neighbor/ndp.js';
import type { Sysctl } from '../sysctl.js';
import { addr6Equals, copyAddr6, prefixMatch } from './addr6.js';
import { PathFamily, type Path } from './path.js';
import { Icmpv6, defineIcmp6Sysctls } from './icmpv6.js';
import type { Ip6Services, Ipv6Context, Ipv6Iface } from './ipv6-context.js';
import { Addr6Origin, Addr6State, If6Addr, Ipv6Link } from './ipv6-link.js';
import { Mld, type SourceFilter6 } from './mld.js';
import { PmtuCache } from './pmtu.js';
import { Reassembler6, defineReass6Sysctls } from './reass6.js';
import { Route6Flags, RouteTable6 } from './route6.js';

export function defineIpv6Sysctls(s: Sysctl): void {
  s.define({ name: 'net.inet6.ip6.hlim', type: 'int', default: 64, min: 1, max: 255, description: 'default hop limit of sent IPv6 packets (a router advertisement may change it per link)' });
  s.define({ name: 'net.inet6.ip6.pmtu_expire', type: 'int', default: 600, min: 300, max: 86400, description: 'seconds a path MTU learned from Packet Too Big is kept (RFC 8201 §5.3)' });
  s.define({ name: 'net.inet6.ip6.forwarding', type: 'int', default: 0, min: 0, max: 1, description: 'forward IPv6 packets between interfaces (RFC 8200: hop limit decremented, ICMPv6 time exceeded / no route / packet too big; link-local and multicast never forwarded)' });
  s.define({ name: 'net.inet6.ip6.pmtu_entries', type: 'int', default: 1024, min: 16, max: 1 << 20, description: 'path MTU cache size (taken when the first interface starts IPv6)' });
  defineIcmp6Sysctls(s);
  defineReass6Sysctls(s);
  defineNdpSysctls(s);
  defineAddrconfSysctls(s);
}

export interface Ipv6Config {
  /** "2001:db8::2/64": an address configured on the interface (DAD runs before it is used). */
  addr6?: string;
  /** Default router for IPv6 ("2001:db8::1" or a link-local "fe80::1"). */
  gateway6?: string;
  /** Accept router advertisements: default routers, on-link prefixes, SLAAC addresses (RFC 4862). */
  slaac?: boolean;
}

export class Ip6Stats {
  received = 0; delivered = 0; fragmentsReceived = 0; reassembled = 0;
  outRequests = 0; outNoRoute = 0; fragmented = 0; fragmentsCreated = 0;
  /** Packets forwarded to another link (net.inet6.ip6.forwarding), and those that could not be. */
  forwarded = 0; cantForward = 0;
}

/** Hands an upper-layer packet to a transport: `ip` wrapped over the packet, the payload at buf.data[off, off+len). Takes ownership. */
export type Ipv6UpperInput = (ip: Ipv6View, buf: PacketBuffer, off: number, len: number, ifIndex: number) => void;

const ROUTER_ALERT_HBH = Uint8Array.of(Ipv6Next.ICMPv6, 0, Ipv6Option.RouterAlert, 2, 0, 0, Ipv6Option.PadN, 0);

export class Ipv6 implements Ip6Services {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  readonly routes = new RouteTable6();
  readonly pmtu: PmtuCache;
  readonly reass: Reassembler6;
  /**
   * Sees each reassembled datagram (buf.start at its IPv6 header, no Fragment header) before
   * delivery; true takes it (several workers: it goes to its flow's owner, src/runtime/worker.ts).
   */
  onReassembled: ((ifIndex: number, buf: PacketBuffer) => boolean) | null = null;
  readonly icmp: Icmpv6;
  readonly ndp: Ndp;
  readonly mld: Mld;
  readonly addrconf: Addrconf;
  readonly stats = new Ip6Stats();
  /** Transports by Next Header value (TCP and UDP over IPv6 plug in here). */
  readonly upper = new Map<number, Ipv6UpperInput>();
  /**
   * Admission of packets from the wire once the extension headers are walked (the shield):
   * `nh` the upper layer, its header at b[l4Off..], `len` bytes; false drops the packet (the
   * filter counts why). Neighbour discovery and MLD are never offered to it (RFC 4890 §4.4.1:
   * IPv6 does not work without them), nor is loopback traffic.
   */
  filter: ((b: Uint8Array, srcOff: number, nh: number, l4Off: number, len: number) => boolean) | null = null;
  private fromLoopback = false;
  /** The path MTU towards a destination went down (RFC 8201): transports re-read it. */
  onPathMtu: ((dst: Uint8Array, dstOff: number, mtu: number) => void) | null = null;

  private readonly links: (Ipv6Link | undefined)[] = [];
  private readonly ip = new Ipv6View();
  private readonly opts = new Ipv6OptionIter();
  private readonly nexthop = new Uint8Array(16);
  private readonly mcastMac = new Uint8Array(6);
  private readonly loopQueue: PacketBuffer[] = [];
  private optAction = 0;
  private optOff = 0;

  constructor(private readonly ctx: Ipv6Context) {
    this.clock = ctx.clock; this.wheel = ctx.wheel; this.sysctl = ctx.sysctl; this.pool = ctx.pool;
    defineIpv6Sysctls(ctx.sysctl);
    const s = ctx.sysctl;
    this.pmtu = new PmtuCache(s.int('net.inet6.ip6.pmtu_entries'), ctx.random32());
    this.reass = new Reassembler6({
      clock: ctx.clock, wheel: ctx.wheel, sysctl: ctx.sysctl, pool: ctx.pool, drop: (r) => ctx.drop(r),
      reassemblyTimedOut: (first) => {
        // RFC 8200 §4.5: "an ICMP Time Exceeded -- Fragment Reassembly Time Exceeded message should be sent to the source of that fragment".
        this.icmp.sendError(first, Icmpv6Type.TimeExceeded, Icmpv6TimeExceededCode.Reassembly, 0, first.ifIndex, false);
        first.release();
      },
    });
    this.icmp = new Icmpv6(this);
    this.ndp = new Ndp(this, s.int('net.inet6.icmp6.nd6_maxentries'), ctx.random32());
    this.mld = new Mld(this);
    this.addrconf = new Addrconf(this, this.ndp, this.mld, this.routes);
    this.icmp.onPacketTooBig = (q, ipOff, mtu) => this.packetTooBig(q, ipOff, mtu);
  }

  // ---- interfaces --------------------------------------------------------------------------

  /** Starts IPv6 on an interface: link-local address, `addr6`, `gateway6`, SLAAC. Throws on a bad address. */
  attach(iface: Ipv6Iface, cfg: Ipv6Config = {}): void {
    if (this.links[iface.index]) throw new Error(`IPv6 already enabled on interface ${iface.index}`);
    let addr: Uint8Array | null = null, prefixLen = 128, gw: Uint8Array | null = null;
    if (cfg.addr6) {
      const [a, l, ...rest] = cfg.addr6.split('/');
      addr = a ? parseIpv6(a) : null;
      prefixLen = l === undefined ? 128 : /^\d{1,3}$/.test(l) ? Number(l) : -1;
      if (!addr || rest.length || prefixLen < 0 || prefixLen > 128) throw new Error(`bad IPv6 address '${cfg.addr6}' (want 2001:db8::2/64)`);
      if (isIpv6Multicast(addr, 0) || isIpv6Unspecified(addr, 0)) throw new Error(`bad IPv6 address '${cfg.addr6}' (not a unicast address)`);
    }
    if (cfg.gateway6) {
      gw = parseIpv6(cfg.gateway6);
      if (!gw || isIpv6Multicast(gw, 0) || isIpv6Unspecified(gw, 0)) throw new Error(`bad IPv6 gateway '${cfg.gateway6}'`);
    }
    // RFC 8200 §5: "IPv6 requires that every link in the Internet have an MTU of 1280 octets or greater."
    if (iface.mtu < IPV6_MIN_MTU) throw new Error(`IPv6 needs a link MTU of at least ${IPV6_MIN_MTU} (this interface has ${iface.mtu})`);
    const link = new Ipv6Link(iface.index, iface.mac, iface.mtu, this.sysctl.int('net.inet6.ip6.hlim'),
      (l, now) => this.addrconf.rsTimer(l, now));
    link.slaac = !!cfg.slaac;
    this.ndp.setCapacity(this.sysctl.int('net.inet6.icmp6.nd6_maxentries'));
    this.pmtu.setCapacity(this.sysctl.int('net.inet6.ip6.pmtu_entries'));
    this.links[iface.index] = link;
    this.routes.add(LINK_LOCAL_PREFIX, 0, 64, null, iface.index, Route6Flags.Connected);
    this.addrconf.start(link);
    if (addr) {
      this.addrconf.addAddress(link, addr, 0, prefixLen, Addr6Origin.Manual, INFINITE, INFINITE);
      if (prefixLen < 128) this.routes.add(addr, 0, prefixLen, null, iface.index, Route6Flags.Connected);
    }
    if (gw) this.routes.add(ANY, 0, 0, gw, iface.index, Route6Flags.Static);
  }

  /**
   * IPv6 on the loopback interface: ::1 only (RFC 4291 §2.5.3), assigned at once (no DAD, no
   * link-local address, no MLD). Packets to it loop back through pollLoopback(); the wire never
   * carries it (input() drops it as source or destination).
   */
  attachLoopback(iface: Ipv6Iface): void {
    if (this.links[iface.index]) return;
    const link = new Ipv6Link(iface.index, iface.mac, iface.mtu, this.sysctl.int('net.inet6.ip6.hlim'), (l, now) => this.addrconf.rsTimer(l, now));
    const a = new If6Addr(LOOPBACK6, 0, 128, Addr6Origin.Manual, iface.index, () => {});
    a.state = Addr6State.Preferred;
    link.addrs.push(a);
    this.links[iface.index] = link;
  }

  /** Adds "addr/len" to an interface (DAD first). */
  addAddress(ifIndex: number, cidr: string): void {
    const link = this.links[ifIndex];
    const [a, l] = cidr.split('/');
    const addr = a ? parseIpv6(a) : null;
    const len = l === undefined ? 128 : Number(l);
    if (!link || !addr || !Number.isInteger(len) || len < 0 || len > 128) throw new Error(`bad interface or IPv6 address '${cidr}'`);
    this.addrconf.addAddress(link, addr, 0, len, Addr6Origin.Manual, INFINITE, INFINITE);
    if (len < 128) this.routes.add(addr, 0, len, null, ifIndex, Route6Flags.Connected);
  }

  /** Unsolicited neighbour advertisements for the interface's addresses (RFC 4861 §7.2.6; a bond's failover). */
  announce(ifIndex: number): number {
    const link = this.links[ifIndex];
    return link ? this.ndp.announce(link) : 0;
  }

  /**
   * Removes an address from an interface; its connected route goes too unless another address
   * of the interface is in the same prefix. False when the interface has no such address.
   */
  removeAddress(ifIndex: number, addr: Uint8Array): boolean {
    const link = this.links[ifIndex];
    const a = link?.findAddress(addr, 0);
    if (!link || !a) return false;
    this.addrconf.removeAddress(link, a);
    if (a.prefixLen < 128 && !link.addrs.some((o) => o.prefixLen === a.prefixLen && prefixMatch(o.addr, 0, a.addr, 0, a.prefixLen))) {
      const r = this.routes.find(a.addr, a.prefixLen, null, ifIndex);
      if (r && (r.flags & Route6Flags.Connected) !== 0) this.routes.remove(r);
    }
    return true;
  }

  /** Stops IPv6 on an interface (it went away): addresses, neighbours, routes. */
  detach(ifIndex: number): void {
    const link = this.links[ifIndex];
    if (!link) return;
    this.addrconf.stop(link);
    this.ndp.flushInterface(ifIndex);
    this.mld.flushInterface(ifIndex);
    this.routes.deleteInterface(ifIndex);
    this.links[ifIndex] = undefined;
  }

  /** The interface went down: neighbours are forgotten (addresses stay, as on Linux with keep_addr_on_down). */
  interfaceDown(ifIndex: number): void { this.ndp.flushInterface(ifIndex); }

  link(ifIndex: number): Ipv6Link | undefined { return this.links[ifIndex]; }

  addresses(ifIndex: number): If6AddrInfo[] {
    const l = this.links[ifIndex];
    return l ? this.addrconf.listAddresses(l) : [];
  }

  /** True when b[off..] is an assigned address of any interface (link-local ones only count on their own link when ifIndex is given). */
  isLocalAddress(b: Uint8Array, off: number, ifIndex = 0): boolean {
    if (ifIndex !== 0 && isIpv6LinkLocal(b, off)) return this.links[ifIndex]?.isAssigned(b, off) ?? false;
    for (const l of this.links) if (l?.isAssigned(b, off)) return true;
    return false;
  }

  /** Assigned to an interface that accepts it from any other (the weak host model; not a VLAN's, see Ipv6Iface.separateLink). */
  private isWeakLocal(b: Uint8Array, off: number): boolean {
    const ls = this.links;
    for (let i = 0; i < ls.length; i++) if (ls[i]?.isAssigned(b, off)) return this.ctx.interfaceByIndex(i)?.separateLink !== true;
    return false;
  }

  // ---- receive -----------------------------------------------------------------------------

  /** One frame's IPv6 packet at buf.data[off, off+len); `l2Multicast` when the Ethernet destination was a group. Takes ownership. */
  input(iface: Ipv6Iface, buf: PacketBuffer, off: number, len: number, l2Multicast: boolean): void {
    const link = this.links[iface.index];
    if (!link) { buf.release(); this.ctx.drop('ip6_not_enabled'); return; }
    const ip = this.ip;
    const err = ip.wrap(buf.data, off, len);
    if (err !== WireError.Ok) { buf.release(); this.ctx.drop(`ip6_${wireErrorName(err)}`); return; }
    this.stats.received++;
    const b = buf.data;
    // RFC 4291 §2.7: "Multicast addresses must not be used as source addresses in IPv6 packets";
    // §2.5.3: the loopback address "must never be sent outside of a single node".
    if (isIpv6Multicast(b, ip.srcOff) || isLoopback(b, ip.srcOff) || isLoopback(b, ip.dstOff)) { buf.release(); this.ctx.drop('ip6_bad_address'); return; }
    buf.start = off;
    buf.end = ip.end; // strip Ethernet padding
    buf.l3 = off;
    const mcast = isIpv6Multicast(b, ip.dstOff);
    if (mcast) {
      // RFC 3810 §4.2: the link's source filter; ICMPv6 (MLD queries, behind a Hop-by-Hop
      // header too) passes on membership alone.
      const nh = ip.nextHeader;
      if (!link.hasGroup(b, ip.dstOff) || (nh !== Ipv6Next.ICMPv6 && nh !== Ipv6Next.HopByHop && !this.mld.accepts(link, b, ip.dstOff, ip.srcOff))) {
        buf.release(); this.ctx.drop('ip6_not_member'); return;
      }
    } else if (!link.isAssigned(b, ip.dstOff) && (isIpv6LinkLocal(b, ip.dstOff) || iface.separateLink === true || !this.isWeakLocal(b, ip.dstOff))) {
      if (!isIpv6LinkLocal(b, ip.dstOff) && !this.isLocalAddress(b, ip.dstOff) && this.sysctl.int('net.inet6.ip6.forwarding') !== 0) {
        this.forward(link, buf, l2Multicast);
        return;
      }
      buf.release(); this.ctx.drop('ip6_not_for_us'); return;
    }
    this.headers(link, buf, mcast, l2Multicast);
  }

  private refuseForward(buf: PacketBuffer, reason: string): void { this.stats.cantForward++; buf.release(); this.ctx.drop(reason); }

  /**
   * A packet (buf.start = its header, this.ip wrapped over it) for none of our addresses while
   * forwarding is on (RFC 8200 §3, RFC 4443 §3): route it and decrement the hop limit, or answer
   * with the ICMPv6 error. Never fragmented on the way (§5). Takes ownership.
   */
  private forward(inLink: Ipv6Link, buf: PacketBuffer, l2Multicast: boolean): void {
    const ip = this.ip, b = buf.data;
    if (l2Multicast) { this.refuseForward(buf, 'ip6_forward_l2_multicast'); return; }
    // RFC 4291 §2.5.6: "Routers must not forward any packets with Link-Local source or destination
    // addresses to other links"; §2.5.2: nor the unspecified source.
    if (isIpv6LinkLocal(b, ip.srcOff) || isIpv6Unspecified(b, ip.srcOff)) { this.refuseForward(buf, 'ip6_forward_scope'); return; }
    const out = this.route(b, ip.dstOff, 0);
    if (!out) {
      this.icmp.sendError(buf, Icmpv6Type.DestUnreachable, Icmpv6UnreachCode.NoRoute, 0, inLink.ifIndex, false);
      this.refuseForward(buf, 'ip6_forward_no_route'); return;
    }
    const hl = ip.hopLimit;
    if (hl <= 1) {
      this.icmp.sendError(buf, Icmpv6Type.TimeExceeded, Icmpv6TimeExceededCode.HopLimit, 0, inLink.ifIndex, false);
      this.refuseForward(buf, 'ip6_forward_hop_limit'); return;
    }
    if (buf.length > out.mtu) {
      this.icmp.sendError(buf, Icmpv6Type.PacketTooBig, 0, out.mtu, inLink.ifIndex, false);
      this.refuseForward(buf, 'ip6_forward_too_big'); return;
    }
    if (buf.gso !== Gso.None) { this.refuseForward(buf, 'ip6_forward_gso_unsupported'); return; }
    ip.hopLimit = hl - 1;
    // A checksum the receiving device left partial is completed (no IPv6 checksum offload on output).
    if (buf.csum === Csum.Valid && buf.csumOffset !== 0) { buf.csum = Csum.Partial; completeChecksum(buf); }
    buf.csum = Csum.None;
    this.stats.forwarded++;
    this.ndp.output(out, this.nexthop, 0, buf);
  }

  /** Walks the extension headers in order (RFC 8200 §4.1) and hands the upper layer its payload. */
  private headers(link: Ipv6Link, buf: PacketBuffer, mcast: boolean, l2Multicast: boolean): void {
    let b = buf.data, ipOff = buf.start, end = buf.end;
    let nh = b[ipOff + 6]!, nhField = ipOff + 6, pos = ipOff + IPV6_HLEN, count = 0;
    for (;;) {
      let hlen = 0;
      if (nh === Ipv6Next.HopByHop || nh === Ipv6Next.DestOptions || nh === Ipv6Next.Routing) {
        if (++count > IPV6_MAX_EXT_HEADERS) { buf.release(); this.ctx.drop('ip6_too_many_headers'); return; }
        // RFC 8200 §4.3: Hop-by-Hop "must immediately follow the IPv6 header"; elsewhere it is
        // "an unrecognized Next Header type" (Parameter Problem code 1 at the field naming it).
        if (nh === Ipv6Next.HopByHop && pos !== ipOff + IPV6_HLEN) return this.refuse(buf, link, Icmpv6ParamProblemCode.NextHeader, nhField, l2Multicast, 'ip6_hbh_not_first');
        if (pos + 8 > end) { buf.release(); this.ctx.drop('ip6_ext_truncated'); return; }
        hlen = (b[pos + 1]! + 1) * 8;
        if (pos + hlen > end) return this.refuse(buf, link, Icmpv6ParamProblemCode.Header, pos + 1, l2Multicast, 'ip6_ext_truncated');
        if (nh === Ipv6Next.Routing) {
          // RFC 8200 §4.4: with an unrecognized Routing Type and Segments Left non-zero, "discard
          // the packet and send an ICMP Parameter Problem, Code 0, ... pointing to the unrecognized
          // Routing Type"; with Segments Left zero, ignore the header. A host recognizes none, and
          // RFC 5095 §3 deprecates type 0 so that it is handled exactly this way.
          if (b[pos + 3] !== 0) return this.refuse(buf, link, Icmpv6ParamProblemCode.Header, pos + 2, l2Multicast, b[pos + 2] === 0 ? 'ip6_rh0_refused' : 'ip6_routing_header');
        } else if (!this.options(b, pos, hlen, nh === Ipv6Next.HopByHop)) {
          const a = this.optAction;
          if (a === OPT_MALFORMED) return this.refuse(buf, link, Icmpv6ParamProblemCode.Header, this.optOff, l2Multicast, 'ip6_bad_option');
          // §4.2: 01 discard silently; 10 discard and Parameter Problem code 2 even to a
          // multicast destination; 11 the same, only when the destination was not multicast.
          if (a === 1 || (a === 3 && mcast)) { buf.release(); this.ctx.drop('ip6_unknown_option'); return; }
          return this.refuse(buf, link, Icmpv6ParamProblemCode.Option, this.optOff, l2Multicast, 'ip6_unknown_option', a === 2);
        }
      } else if (nh === Ipv6Next.Fragment) {
        if (pos + IPV6_FRAG_HLEN > end) { buf.release(); this.ctx.drop('ip6_ext_truncated'); return; }
        const fw = (b[pos + 2]! << 8) | b[pos + 3]!;
        if ((fw & 0xfff9) === 0) {
          // RFC 6946 §4: an atomic fragment (offset 0, M = 0) is processed as a whole packet.
          hlen = IPV6_FRAG_HLEN;
        } else {
          this.stats.fragmentsReceived++;
          const fragLen = end - pos - IPV6_FRAG_HLEN;
          // RFC 8200 §4.5: a fragment other than the last whose length is not a multiple of 8:
          // Parameter Problem code 0 pointing to the Payload Length field.
          if ((fw & 1) && (fragLen & 7) !== 0) return this.refuse(buf, link, Icmpv6ParamProblemCode.Header, ipOff + 4, l2Multicast, 'frag6_bad_length');
          // "... would exceed 65,535 octets": Parameter Problem code 0 pointing to the Fragment Offset field.
          if ((pos - ipOff - IPV6_HLEN) + (fw & 0xfff8) + fragLen > 65535) return this.refuse(buf, link, Icmpv6ParamProblemCode.Header, pos + 2, l2Multicast, 'frag6_too_long');
          if (fragLen === 0) { buf.release(); this.ctx.drop('frag6_empty'); return; }
          const whole = this.reass.input(buf, ipOff, nhField, pos);
          if (!whole) return;
          this.stats.reassembled++;
          buf = whole;
          if (this.onReassembled !== null && this.onReassembled(link.ifIndex, buf)) return;
          b = buf.data; ipOff = buf.start; end = buf.end;
          nh = b[ipOff + 6]!; nhField = ipOff + 6; pos = ipOff + IPV6_HLEN; count = 0;
          continue;
        }
      } else {
        this.deliver(link, buf, nh, nhField, pos, end, mcast, l2Multicast);
        return;
      }
      nhField = pos; nh = b[pos]!; pos += hlen;
    }
  }

  /**
   * Checks the options of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2). True when
   * the packet goes on; otherwise optAction holds the action bits of the offending option (or
   * OPT_MALFORMED) and optOff its offset.
   */
  private options(b: Uint8Array, off: number, len: number, hopByHop: boolean): boolean {
    const it = this.opts;
    it.begin(b, off, len);
    while (it.next()) {
      const t = it.type;
      // Router Alert (RFC 2711) is understood: MLD carries it; a host has nothing more to do.
      if (hopByHop && t === Ipv6Option.RouterAlert && it.dataLen === 2) continue;
      const action = t >> 6;
      if (action === 0) continue;
      this.optAction = action; this.optOff = it.off;
      return false;
    }
    if (it.error !== WireError.Ok) { this.optAction = OPT_MALFORMED; this.optOff = it.pos; return false; }
    return true;
  }

  private deliver(link: Ipv6Link, buf: PacketBuffer, nh: number, nhField: number, off: number, end: number, mcast: boolean, l2Multicast: boolean): void {
    const ip = this.ip;
    ip.wrap(buf.data, buf.start, buf.length);
    if (this.filter !== null && !this.fromLoopback && !(nh === Ipv6Next.ICMPv6 && end - off >= 1 && isNdOrMld(buf.data[off]!))
        && !this.filter(buf.data, ip.srcOff, nh, off, end - off)) { buf.release(); return; }
    this.stats.delivered++;
    if (nh === Ipv6Next.ICMPv6) { this.icmpInput(link, ip, buf, off, end - off, mcast); return; }
    const h = this.upper.get(nh);
    if (h) { h(ip, buf, off, end - off, link.ifIndex); return; }
    // RFC 8200 §4: "If, as a result of processing a header, the destination node is required to
    // proceed to the next header but the Next Header value in the current header is unrecognized
    // by the node, it should discard the packet and send an ICMP Parameter Problem message ...
    // with an ICMP Code value of 1". No Next Header (59) simply ends the packet.
    if (nh === Ipv6Next.NoNext) { buf.release(); this.ctx.drop('ip6_no_next_header'); return; }
    if (nh === Ipv6Next.UDP) {
      // No UDP over IPv6 yet: no socket can be listening, which RFC 4443 §3.1 answers with port unreachable.
      this.icmp.sendError(buf, Icmpv6Type.DestUnreachable, Icmpv6UnreachCode.Port, 0, link.ifIndex, l2Multicast);
      buf.release(); this.ctx.drop('udp6_no_socket'); return;
    }
    if (nh === Ipv6Next.TCP) { buf.release(); this.ctx.drop('tcp6_not_implemented'); return; }
    this.refuse(buf, link, Icmpv6ParamProblemCode.NextHeader, nhField, l2Multicast, 'ip6_unknown_next_header');
  }

  private icmpInput(link: Ipv6Link, ip: Ipv6View, buf: PacketBuffer, off: number, len: number, mcast: boolean): void {
    if (len < 4 || !this.icmp.checksumOk(buf, ip, off, len)) { buf.release(); this.ctx.drop(len < 4 ? 'icmp6_truncated' : 'icmp6_bad_checksum'); return; }
    switch (buf.data[off]) {
      case Icmpv6Type.NeighborSolicit: this.ndp.inputNs(link, ip, buf, off, len); break;
      case Icmpv6Type.NeighborAdvert: this.ndp.inputNa(link, ip, buf, off, len); break;
      case Icmpv6Type.RouterAdvert: this.addrconf.inputRa(link, ip, buf, off, len); break;
      case Icmpv6Type.MldQuery: this.mld.inputQuery(link, ip, buf, off, len); break;
      // RFC 4861 §6.2.6: a host "MUST silently discard any received Router Solicitation messages".
      case Icmpv6Type.RouterSolicit: this.ctx.drop('nd6_rs_host'); break;
      case Icmpv6Type.Redirect: this.ctx.drop('nd6_redirect_ignored'); break;
      case Icmpv6Type.MldReport: case Icmpv6Type.MldV2Report: case Icmpv6Type.MldDone: break;
      default: this.icmp.input(ip, buf, off, len, mcast, link.ifIndex); return;
    }
    buf.release();
  }

  /** Drops the packet with an ICMPv6 Parameter Problem pointing at byte `at` (subject to §2.4(e)). Takes ownership. */
  private refuse(buf: PacketBuffer, link: Ipv6Link, code: number, at: number, l2Multicast: boolean, reason: string, allowMulticast = false): void {
    this.icmp.paramProblem(buf, code, at, link.ifIndex, l2Multicast, allowMulticast);
    buf.release();
    this.ctx.drop(reason);
  }

  private packetTooBig(q: Uint8Array, ipOff: number, mtu: number): void {
    // Only about packets we sent (the quoted source is ours), so a forged error cannot shrink
    // others' paths; RFC 8201 §4 keeps the estimate at 1280 or more.
    if (!this.isLocalAddress(q, ipOff + 8)) { this.ctx.drop('icmp6_ptb_not_ours'); return; }
    const dstOff = ipOff + 24;
    const link = this.route(q, dstOff, 0);
    if (!link) return;
    const now = this.clock.now();
    const m = this.pmtu.update(q, dstOff, mtu, link.mtu, now, this.sysctl.int('net.inet6.ip6.pmtu_expire') * 1000);
    if (m) {
      // Paths re-read their MTU at their next use.
      this.routes.generation++;
      this.onPathMtu?.(q, dstOff, m);
    }
  }

  // ---- paths (TCP over IPv6) ---------------------------------------------------------------

  /**
   * Resolves `path` (ip/path.ts) from `src` (null or :: = the source RFC 6724 picks) to `dst`,
   * or revalidates it with one comparison: the route table's generation, which route changes
   * and Packet Too Big updates bump, and the interface being up. False when there is no route
   * or no usable source. `src`/`dst` may be the path's own src6/dst6.
   */
  resolvePath(path: Path, src: Uint8Array | null, dst: Uint8Array): boolean {
    const routes = this.routes;
    if (path.generation === routes.generation && path.family === PathFamily.V6
        && (dst === path.dst6 || addr6Equals(path.dst6, 0, dst, 0))
        && (src === null || src === path.src6 || isIpv6Unspecified(src, 0) || addr6Equals(path.src6, 0, src, 0))) {
      const i = path.iface;
      return path.ok && i !== null && i.up;
    }
    path.makeV6();
    path.ok = false;
    path.iface = null;
    path.gsoMax = 0;
    path.gsoKind = Gso.None;
    path.headerLen = IPV6_HLEN;
    path.generation = -1;
    if (dst !== path.dst6) copyAddr6(path.dst6, 0, dst, 0);
    const local = this.isLocalAddress(dst, 0);
    path.local = local;
    const link = local ? this.linkOwning(dst) : this.route(dst, 0, 0);
    if (!link) return false;
    const iface = this.ctx.interfaceByIndex(link.ifIndex);
    if (!iface || !iface.up) return false;
    if (local) copyAddr6(path.nexthop6, 0, dst, 0);
    else copyAddr6(path.nexthop6, 0, this.nexthop, 0);
    if (src !== null && !isIpv6Unspecified(src, 0)) {
      if (src !== path.src6) copyAddr6(path.src6, 0, src, 0);
    } else if (local) {
      copyAddr6(path.src6, 0, dst, 0);
    } else {
      const a = link.sourceFor(dst, 0);
      if (!a) return false;
      copyAddr6(path.src6, 0, a.addr, 0);
    }
    path.iface = iface as unknown as Path['iface'];
    path.ok = true;
    path.generation = routes.generation;
    path.mtu = local ? link.mtu : this.pmtu.get(dst, 0, link.mtu, this.clock.now());
    // Looped-back segments need no checksum at all; a device may complete it, and segment
    // super-segments (TSO6: the IPv6 payload length field bounds them).
    const o = iface.dev?.offloads;
    path.txCsum = local || (o !== undefined && o.txCsum);
    if (!local && o !== undefined && o.tso6 && o.txCsum) {
      path.gsoKind = Gso.Tcp6;
      path.gsoMax = 65535 - 60;
    }
    return true;
  }

  /**
   * Sends an upper-layer payload (buf.start = its header) along a resolved path: no route
   * lookup, the next hop and source come from the path. Takes ownership; false when not sent.
   */
  pathOutput(path: Path, buf: PacketBuffer, nextHeader: number, trafficClass: number): boolean {
    this.stats.outRequests++;
    if (!this.resolvePath(path, path.src6, path.dst6)) { this.stats.outNoRoute++; buf.release(); this.ctx.drop('ip6_no_route'); return false; }
    const link = this.links[path.iface!.index]!;
    if (buf.csum === Csum.Partial && !path.txCsum) completeChecksum(buf);
    const payloadLen = buf.length;
    if (buf.gso !== Gso.None) {
      // A super-segment only goes to a device that segments it (the path may have changed).
      if (path.gsoKind !== Gso.Tcp6 || payloadLen > 65535) { buf.release(); this.ctx.drop('ip6_gso_unsupported'); return false; }
    } else if (IPV6_HLEN + payloadLen > path.mtu) {
      return this.fragment(link, buf, path.src6, 0, path.dst6, 0, nextHeader, link.curHopLimit, trafficClass, path.mtu, path.nexthop6);
    }
    const off = buf.prepend(IPV6_HLEN);
    writeIpv6Header(buf.data, off, trafficClass, 0, payloadLen, nextHeader, link.curHopLimit, path.src6, 0, path.dst6, 0);
    buf.l3 = off;
    if (path.local) {
      buf.csum = Csum.Valid;
      buf.ifIndex = link.ifIndex;
      this.loopQueue.push(buf);
      this.ctx.outputPending();
      return true;
    }
    this.ndp.output(link, path.nexthop6, 0, buf);
    return true;
  }

  /** The link one of our addresses is assigned on. */
  private linkOwning(a: Uint8Array): Ipv6Link | undefined {
    for (const l of this.links) if (l?.isAssigned(a, 0)) return l;
    return undefined;
  }

  // ---- send --------------------------------------------------------------------------------

  /**
   * Sends buf (start = what follows the IPv6 header, `nextHeader` names it) to dst[dstOff..]:
   * route or `ifIndex` (required for multicast and link-local destinations on hosts with
   * several interfaces), source `src` (null = chosen per RFC 6724), hop limit (-1 = the link's,
   * 1 for multicast), fragmentation to the path MTU (RFC 8200 §4.5), neighbour resolution.
   * `loop` (IPV6_MULTICAST_LOOP) also delivers a multicast packet here when the link listens
   * to the group; a hop limit of 0 then keeps it on the host. `src` and `dst` must not lie in
   * buf's headroom. Takes ownership; false when not sent.
   */
  output(buf: PacketBuffer, src: Uint8Array | null, srcOff: number, dst: Uint8Array, dstOff: number, nextHeader: number,
    hopLimit = -1, trafficClass = 0, ifIndex = 0, loop = false): boolean {
    if (!loop || !isIpv6Multicast(dst, dstOff)) return this.output1(buf, src, srcOff, dst, dstOff, nextHeader, hopLimit, trafficClass, ifIndex);
    this.mcastLoop = true;
    this.mcastHostOnly = hopLimit === 0;
    try { return this.output1(buf, src, srcOff, dst, dstOff, nextHeader, hopLimit, trafficClass, ifIndex); } finally { this.mcastLoop = false; this.mcastHostOnly = false; }
  }

  /** While output() sends a multicast packet with IPV6_MULTICAST_LOOP: loop a copy (and, hop limit 0, only that). */
  private mcastLoop = false;
  private mcastHostOnly = false;

  private output1(buf: PacketBuffer, src: Uint8Array | null, srcOff: number, dst: Uint8Array, dstOff: number, nextHeader: number,
    hopLimit: number, trafficClass: number, ifIndex: number): boolean {
    this.stats.outRequests++;
    const link = this.route(dst, dstOff, ifIndex);
    if (!link) { this.stats.outNoRoute++; buf.release(); this.ctx.drop('ip6_no_route'); return false; }
    if (!src) {
      const a = link.sourceFor(dst, dstOff);
      if (!a) { this.stats.outNoRoute++; buf.release(); this.ctx.drop('ip6_no_source'); return false; }
      src = a.addr; srcOff = 0;
    }
    const mcast = isIpv6Multicast(dst, dstOff);
    if (hopLimit < 0) hopLimit = mcast ? 1 : link.curHopLimit;
    // No device checksum offload for IPv6 yet: a partial sum is completed here.
    if (buf.csum === Csum.Partial) completeChecksum(buf);
    const payloadLen = buf.length;
    const mtu = mcast ? link.mtu : this.pmtu.get(dst, dstOff, link.mtu, this.clock.now());
    if (IPV6_HLEN + payloadLen > mtu) return this.fragment(link, buf, src, srcOff, dst, dstOff, nextHeader, hopLimit, trafficClass, mtu);
    if (payloadLen > 65535) { buf.release(); this.ctx.drop('ip6_too_long'); return false; }
    const off = buf.prepend(IPV6_HLEN);
    writeIpv6Header(buf.data, off, trafficClass, 0, payloadLen, nextHeader, hopLimit, src, srcOff, dst, dstOff);
    buf.l3 = off;
    this.l2Output(link, dst, dstOff, buf);
    return true;
  }

  /** RFC 8200 §4.5: fragments of at most the path MTU, each carrying the data in multiples of 8 octets. */
  private fragment(link: Ipv6Link, buf: PacketBuffer, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
    nextHeader: number, hopLimit: number, tc: number, mtu: number, nexthop: Uint8Array = this.nexthop): boolean {
    const total = buf.length;
    const chunk = (mtu - IPV6_HLEN - IPV6_FRAG_HLEN) & ~7;
    // Our own extension headers (MLD's Hop-by-Hop) belong to the unfragmentable part; nothing
    // that carries one is ever this large.
    if (nextHeader === Ipv6Next.HopByHop || total > 65535 - IPV6_FRAG_HLEN) { buf.release(); this.ctx.drop('ip6_cannot_fragment'); return false; }
    // RFC 7739: identifications that an off-path attacker cannot predict.
    const id = this.ctx.random32();
    this.stats.fragmented++;
    for (let at = 0; at < total; at += chunk) {
      const n = Math.min(chunk, total - at);
      const f = this.pool.alloc(n + 256);
      const o = f.append(n);
      f.data.set(buf.data.subarray(buf.start + at, buf.start + at + n), o);
      const fh = f.prepend(IPV6_FRAG_HLEN);
      writeIpv6FragmentHeader(f.data, fh, nextHeader, at, at + n < total, id);
      const h = f.prepend(IPV6_HLEN);
      writeIpv6Header(f.data, h, tc, 0, IPV6_FRAG_HLEN + n, Ipv6Next.Fragment, hopLimit, src, srcOff, dst, dstOff);
      f.l3 = h;
      this.stats.fragmentsCreated++;
      this.l2Output(link, dst, dstOff, f, nexthop);
    }
    buf.release();
    return true;
  }

  /** The link a destination is reached by, with its next hop left in `this.nexthop`; undefined when none (or it is down). */
  private route(dst: Uint8Array, dstOff: number, ifIndex: number): Ipv6Link | undefined {
    let link: Ipv6Link | undefined;
    copyAddr6(this.nexthop, 0, dst, dstOff);
    if (isLoopback(dst, dstOff)) {
      // ::1 is lo0's (attachLoopback) and no route's: a default route must not carry it off the host.
      for (const l of this.links) if (l?.isAssigned(dst, dstOff)) { link = l; break; }
    } else if (isIpv6Multicast(dst, dstOff) || (isIpv6LinkLocal(dst, dstOff) && ifIndex === 0)) {
      // Scoped destinations need an interface; without one, the first with IPv6 (a single-port stack's only one).
      link = ifIndex ? this.links[ifIndex] : this.firstUpLink();
    } else {
      const r = this.routes.lookup(dst, dstOff, this.clock.now(), isIpv6LinkLocal(dst, dstOff) ? ifIndex : 0);
      if (r) {
        link = this.links[r.ifIndex];
        if (r.hasGateway) copyAddr6(this.nexthop, 0, r.gateway, 0);
      } else if (ifIndex) {
        link = this.links[ifIndex];
      }
    }
    if (!link || !this.ctx.interfaceByIndex(link.ifIndex)?.up) return undefined;
    return link;
  }

  /**
   * Whether the stack carries traffic to dst: a route reaches it, or it is on the prefix of one of
   * our addresses, duplicate address detection still running included (no source address may be
   * usable yet; a connect then fails on the stack, it does not belong to another network).
   */
  routesTo(dst: Uint8Array): boolean {
    if (this.route(dst, 0, 0)) return true;
    for (const l of this.links) {
      if (l) for (const a of l.addrs) if (a.state !== Addr6State.Duplicated && prefixMatch(a.addr, 0, dst, 0, a.prefixLen)) return true;
    }
    return false;
  }

  /** Udp6Context: the interface for a socket's IPv6 group — `ifIndex` when it has IPv6 and is up, else the first up link's (0 = none). */
  multicastIfIndex6(ifIndex: number): number {
    const link = ifIndex !== 0 ? this.links[ifIndex] : this.firstUpLink();
    return link !== undefined && this.ctx.interfaceByIndex(link.ifIndex)?.up ? link.ifIndex : 0;
  }

  /** Udp6Context: a socket's MLDv2 source filter for group[0..16) on an interface (RFC 3810 §4.2). */
  setMulticastFilter6(ifIndex: number, group: Uint8Array, owner: object, filter: SourceFilter6 | null): void {
    const link = this.links[ifIndex];
    if (link !== undefined) this.mld.setFilter(link, group, 0, owner, filter);
  }

  private firstUpLink(): Ipv6Link | undefined {
    // Never lo0 (the link holding ::1): scoped traffic is for a real link.
    for (const l of this.links) if (l && this.ctx.interfaceByIndex(l.ifIndex)?.up && !l.isAssigned(LOOPBACK6, 0)) return l;
    return undefined;
  }

  private l2Output(link: Ipv6Link, dst: Uint8Array, dstOff: number, buf: PacketBuffer, nexthop: Uint8Array = this.nexthop): void {
    if (isIpv6Multicast(dst, dstOff)) {
      // IPV6_MULTICAST_LOOP: a copy for our own listeners of the group (the link's MLD filter
      // decides, as for a packet from the wire), through the loopback queue (ip6_mc_output).
      if (this.mcastLoop && this.mld.accepts(link, buf.data, buf.l3 + 24, buf.l3 + 8)) {
        const c = buf.clone();
        c.ifIndex = link.ifIndex; c.csum = Csum.Valid;
        this.loopQueue.push(c);
        this.ctx.outputPending();
      }
      if (this.mcastHostOnly) { buf.release(); return; }
      // RFC 2464 §7: 33:33 and the low 32 bits of the group.
      writeIpv6MulticastMac(this.mcastMac, 0, dst, dstOff);
      this.linkOutput(link.ifIndex, this.mcastMac, 0, buf);
      return;
    }
    if (this.isLocalAddress(dst, dstOff)) {
      // To ourselves: delivered by the next poll (never re-entrantly), as IPv4 does.
      buf.csum = Csum.Valid;
      buf.ifIndex = link.ifIndex;
      this.loopQueue.push(buf);
      this.ctx.outputPending();
      return;
    }
    this.ndp.output(link, nexthop, 0, buf);
  }

  /** Packets to our own addresses are waiting for pollLoopback(). */
  get loopbackPending(): boolean { return this.loopQueue.length > 0; }

  /** Delivers the packets looped back since the last call. */
  pollLoopback(): void {
    if (!this.loopQueue.length) return;
    const q = this.loopQueue.splice(0);
    this.fromLoopback = true;
    try {
      for (const b of q) {
        const link = this.links[b.ifIndex];
        if (!link) { b.release(); this.ctx.drop('ip6_not_enabled'); continue; }
        this.stats.received++;
        this.headers(link, b, isIpv6Multicast(b.data, b.start + 24), false);
      }
    } finally { this.fromLoopback = false; }
  }

  // ---- Ip6Services -------------------------------------------------------------------------

  drop(reason: string): void { this.ctx.drop(reason); }
  random32(): number { return this.ctx.random32(); }

  linkOutput(ifIndex: number, dstMac: Uint8Array, dstOff: number, buf: PacketBuffer): void {
    const iface = this.ctx.interfaceByIndex(ifIndex);
    if (!iface) { buf.release(); this.ctx.drop('ip6_no_interface'); return; }
    this.ctx.ethOutput(iface, dstMac, dstOff, EtherType.IPv6, buf);
  }

  sendIcmpv6(buf: PacketBuffer, src: Uint8Array | null, srcOff: number, dst: Uint8Array, dstOff: number, hopLimit: number, ifIndex: number, routerAlert = false): boolean {
    if (!src) {
      const link = this.route(dst, dstOff, ifIndex);
      const a = link?.sourceFor(dst, dstOff);
      if (!a) { buf.release(); this.stats.outNoRoute++; this.ctx.drop('ip6_no_source'); return false; }
      src = a.addr; srcOff = 0;
    }
    finishIcmpv6Checksum(buf.data, buf.start, buf.length, src, srcOff, dst, dstOff);
    buf.csum = Csum.None;
    let nh: number = Ipv6Next.ICMPv6;
    if (routerAlert) {
      const o = buf.prepend(ROUTER_ALERT_HBH.length);
      buf.data.set(ROUTER_ALERT_HBH, o);
      nh = Ipv6Next.HopByHop;
    }
    return this.output(buf, src, srcOff, dst, dstOff, nh, hopLimit, 0, ifIndex);
  }

  icmpError(orig: PacketBuffer, type: number, code: number, word: number, ifIndex: number): void {
    this.icmp.sendError(orig, type, code, word, ifIndex, false);
  }

  // ---- tools -------------------------------------------------------------------------------

  /** Drops everything held (stack shutdown). */
  close(): void {
    for (let i = 0; i < this.links.length; i++) if (this.links[i]) this.detach(i);
    this.reass.clear();
    this.pmtu.clear();
    for (const b of this.loopQueue.splice(0)) b.release();
  }

  describe(ifIndex: number): string {
    return this.addresses(ifIndex).map((a) => `${a.addr}/${a.prefixLen} ${a.state}`).join(' ');
  }
}

const INFINITE = 0xffffffff;
const OPT_MALFORMED = -1;
const ANY = new Uint8Array(16);
const LOOPBACK6 = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const LINK_LOCAL_PREFIX = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

function isLoopback(b: Uint8Array, off: number): boolean {
  for (let i = 0; i < 15; i++) if (b[off + i] !== 0) return false;
  return b[off + 15] === 1;
}

/** MLD (130-132, 143) and neighbour discovery (133-137) messages: never filtered. */
function isNdOrMld(type: number): boolean { return (type >= 130 && type <= 137) || type === 143; }
