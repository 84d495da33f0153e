// The engine: one independent stack per worker. Sans-I/O: it is fed frames (input) and
// time (poll), and transmits on its interfaces' NetDevices. No node:* imports here.
import { BufferPool, Csum, Gso, type PacketBuffer } from '../buf/pktbuf.js';
import { MAC_BROADCAST, formatIpv4, isIpv4Multicast, isMacBroadcast, isMacMulticast, macEquals, parseIpv4, parseIpv4Cidr, parseIpv6 } from '../wire/addr.js';
import { fold } from '../wire/checksum.js';
import { ETH_HLEN, ETH_MIN_FRAME, EtherType, EthernetView, writeEthernetHeader } from '../wire/ethernet.js';
import { WireError, wireErrorName } from '../wire/errors.js';
import { IcmpType, UnreachCode } from '../wire/icmpv4.js';
import { IPV4_DF, IPV4_HLEN, IPV4_MF, IpProto, Ipv4View, writeIpv4Header } from '../wire/ipv4.js';
import { Arp, defineArpSysctls, type ArpContext } from './arp.js';
import type { NetDevice } from './device.js';
import { Icmp, defineIcmpSysctls } from './icmp.js';
import { Interface } from './iface.js';
import { Reassembler, defineReassSysctls, type ReassContext } from './reass.js';
import { RouteFlags, RouteTable } from './route.js';
import { Sysctl } from './sysctl.js';
import type { TcpHost } from './tcp/host.js';
import { Tcp } from './tcp/tcp.js';
import { TimerWheel, type Clock } from './time.js';
import { Udp, defineUdpSysctls } from './udp.js';

export interface StackOptions {
  /** Source of time for everything the stack does between polls. */
  clock: Clock;
  sysctl?: Sysctl;
  pool?: BufferPool;
  /** Seeded randomness for simulations; defaults to Math.random. Returns [0, 1). */
  random?: () => number;
  name?: string;
}

export interface InterfaceConfig {
  /** "a.b.c.d/len" */
  addr?: string;
  /** Default gateway reached through this interface. */
  gateway?: string;
  /** Overrides the device MTU (must not exceed it). */
  mtu?: number;
  /** "2001:db8::2/64" (recorded; IPv6 behaviour is not implemented yet). */
  addr6?: string;
  name?: string;
  /** Send a gratuitous ARP for each address (default true). */
  announce?: boolean;
}

export class IpStats {
  received = 0; delivered = 0; fragmentsReceived = 0; reassembled = 0;
  outRequests = 0; outNoRoute = 0; fragmented = 0; fragmentsCreated = 0; loopback = 0;
}

export function defineIpSysctls(s: Sysctl): void {
  s.define({ name: 'net.inet.ip.ttl', type: 'int', default: 64, min: 1, max: 255, description: 'default TTL of sent datagrams' });
  s.define({ name: 'net.inet.ip.forwarding', type: 'int', default: 0, min: 0, max: 0, description: 'forward datagrams between interfaces (not implemented: must be 0)' });
  s.define({ name: 'net.inet.ip.portrange.first', type: 'int', default: 49152, min: 1024, max: 65535, description: 'first ephemeral port' });
  s.define({ name: 'net.inet.ip.portrange.last', type: 'int', default: 65535, min: 1024, max: 65535, description: 'last ephemeral port' });
}

export class Stack implements ArpContext, ReassContext, TcpHost {
  readonly clock: Clock;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  readonly wheel: TimerWheel;
  readonly random: () => number;
  readonly name: string;
  readonly interfaces: Interface[] = [];
  readonly routes = new RouteTable();
  readonly arp: Arp;
  readonly reass: Reassembler;
  readonly icmp: Icmp;
  readonly udp: Udp;
  readonly tcp: Tcp;
  readonly ipStats = new IpStats();
  /** Drops by reason; every packet the stack refuses is counted here. */
  readonly drops: Record<string, number> = Object.create(null);
  /** Called after a frame is queued on a device, so the run loop can flush soon. */
  onOutput: (() => void) | null = null;

  private readonly eth = new EthernetView();
  private readonly ip = new Ipv4View();
  private readonly mcastMac = new Uint8Array([0x01, 0x00, 0x5e, 0, 0, 0]);
  private readonly loopQueue: PacketBuffer[] = [];
  private ipId: number;

  constructor(opts: StackOptions) {
    this.clock = opts.clock;
    this.sysctl = opts.sysctl ?? new Sysctl();
    this.pool = opts.pool ?? new BufferPool();
    this.random = opts.random ?? Math.random;
    this.name = opts.name ?? 'tstack';
    this.wheel = new TimerWheel(1, 4096, this.clock.now());
    defineIpSysctls(this.sysctl);
    defineArpSysctls(this.sysctl);
    defineReassSysctls(this.sysctl);
    defineIcmpSysctls(this.sysctl);
    defineUdpSysctls(this.sysctl);
    this.ipId = Math.floor(this.random() * 0x10000);
    this.arp = new Arp(this);
    this.reass = new Reassembler(this);
    this.icmp = new Icmp(this);
    this.udp = new Udp(this);
    this.tcp = new Tcp(this);
    this.icmp.handlers.set(IpProto.TCP, (type, code, info, inner, l4Off) => {
      const b = inner.bytes;
      const sport = (b[l4Off]! << 8) | b[l4Off + 1]!, dport = (b[l4Off + 2]! << 8) | b[l4Off + 3]!;
      const seq = ((b[l4Off + 4]! << 24) | (b[l4Off + 5]! << 16) | (b[l4Off + 6]! << 8) | b[l4Off + 7]!) >>> 0;
      this.tcp.icmpError(type, code, inner.src, sport, inner.dst, dport, seq, info);
    });
  }

  // ---- interfaces and routes -------------------------------------------------------------

  /** Attaches a device; returns its interface index (1-based). Throws on a bad address. */
  addInterface(dev: NetDevice, cfg: InterfaceConfig = {}): number {
    const index = this.interfaces.length + 1;
    const iface = new Interface(index, cfg.name ?? dev.name, dev, cfg.mtu);
    if (cfg.addr) {
      const c = parseIpv4Cidr(cfg.addr);
      if (!c) throw new Error(`bad IPv4 address '${cfg.addr}' (want a.b.c.d/len)`);
      const a = iface.addAddress(c.addr, c.prefixLen);
      if (c.prefixLen < 32) this.routes.add(a.network, c.prefixLen, 0, index, 0, RouteFlags.Connected);
    }
    if (cfg.addr6) {
      const [a6, l6] = cfg.addr6.split('/');
      const bytes = a6 ? parseIpv6(a6) : null;
      if (!bytes) throw new Error(`bad IPv6 address '${cfg.addr6}'`);
      iface.addrs6.push({ addr: bytes, prefixLen: l6 ? Number(l6) : 128 });
    }
    this.interfaces.push(iface);
    if (cfg.gateway) {
      const gw = parseIpv4(cfg.gateway);
      if (gw === null) throw new Error(`bad gateway '${cfg.gateway}'`);
      this.routes.add(0, 0, gw, index, 0, RouteFlags.Static);
    }
    if (cfg.announce !== false) this.arp.announce(iface);
    return index;
  }

  interfaceByIndex(ifIndex: number): Interface | undefined { return this.interfaces[ifIndex - 1]; }

  setInterfaceUp(ifIndex: number, up: boolean): void {
    const iface = this.interfaces[ifIndex - 1];
    if (!iface || iface.up === up) return;
    iface.up = up;
    if (up) this.arp.announce(iface); else this.arp.flushInterface(ifIndex);
  }

  /** Adds an address to an interface (with its connected route). */
  addAddress(ifIndex: number, cidr: string): void {
    const iface = this.interfaces[ifIndex - 1];
    const c = parseIpv4Cidr(cidr);
    if (!iface || !c) throw new Error(`bad interface or address '${cidr}'`);
    const a = iface.addAddress(c.addr, c.prefixLen);
    if (c.prefixLen < 32) this.routes.add(a.network, c.prefixLen, 0, ifIndex, 0, RouteFlags.Connected);
    this.arp.announce(iface);
  }

  /** Removes an address from an interface, with its connected route. Returns false when it was not there. */
  removeAddress(ifIndex: number, cidr: string): boolean {
    const iface = this.interfaces[ifIndex - 1];
    const c = parseIpv4Cidr(cidr) ?? (parseIpv4(cidr) !== null ? { addr: parseIpv4(cidr)!, prefixLen: -1 } : null);
    if (!iface || !c) throw new Error(`bad interface or address '${cidr}'`);
    const a = iface.addrs.find((x) => x.addr === c.addr && (c.prefixLen < 0 || x.prefixLen === c.prefixLen));
    if (!a || !iface.removeAddress(a.addr)) return false;
    if (a.prefixLen < 32 && !iface.addrs.some((x) => x.network === a.network && x.prefixLen === a.prefixLen)) {
      this.routes.delete(a.network, a.prefixLen, ifIndex);
    }
    return true;
  }

  /** Sets an interface's MTU (at most its device's); new connections' MSS follows it. */
  setInterfaceMtu(ifIndex: number, mtu: number): void {
    const iface = this.interfaces[ifIndex - 1];
    if (!iface) throw new Error(`no interface ${ifIndex}`);
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > iface.dev.mtu) throw new Error(`mtu ${mtu} is out of range (576..${iface.dev.mtu}, the device's)`);
    iface.mtu = mtu;
  }

  /**
   * Frame tap for live captures (tools): called with every frame received on or transmitted by
   * an interface, before the stack looks at it / as it leaves. null (the default) costs one test
   * per frame; the hook must not keep or change the buffer.
   */
  frameTap: ((ifIndex: number, buf: PacketBuffer, tx: boolean) => void) | null = null;

  // ---- receive -----------------------------------------------------------------------------

  /** One received Ethernet frame from interface `ifIndex`. Takes ownership of buf. */
  input(ifIndex: number, buf: PacketBuffer): void {
    const iface = this.interfaces[ifIndex - 1];
    if (!iface) { buf.release(); this.drop('no_interface'); return; }
    const c = iface.counters;
    c.rxPackets++; c.rxBytes += buf.length;
    if (this.frameTap !== null) this.frameTap(ifIndex, buf, false);
    if (!iface.up) { c.rxDropped++; buf.release(); this.drop('interface_down'); return; }
    buf.ifIndex = ifIndex;
    const eth = this.eth;
    const d = buf.data;
    const err = eth.wrap(d, buf.start, buf.length);
    if (err !== WireError.Ok) { c.rxErrors++; buf.release(); this.drop(err === WireError.Unsupported ? 'eth_not_ethernet2' : 'eth_truncated'); return; }
    const dOff = eth.dstOff;
    const l2Bcast = isMacBroadcast(d, dOff);
    if (!l2Bcast) {
      if (isMacMulticast(d, dOff)) c.rxMulticast++;
      else if (!macEquals(d, dOff, iface.mac, 0)) { c.rxDropped++; buf.release(); this.drop('eth_not_for_us'); return; }
    }
    const type = eth.etherType;
    const off = eth.payloadOff, len = eth.payloadLen;
    if (type === EtherType.IPv4) { this.ipv4Input(iface, buf, off, len, l2Bcast); return; }
    if (type === EtherType.ARP) { this.arp.input(iface, buf, off, len); buf.release(); return; }
    c.rxDropped++;
    buf.release();
    this.drop(type === EtherType.IPv6 ? 'ipv6_not_implemented' : type === EtherType.VLAN || type === EtherType.QinQ ? 'vlan_not_configured' : 'eth_unknown_type');
  }

  private ipv4Input(iface: Interface, buf: PacketBuffer, off: number, len: number, l2Bcast: boolean): void {
    const ip = this.ip;
    const err = ip.wrap(buf.data, off, len, true);
    if (err !== WireError.Ok) { iface.counters.rxErrors++; buf.release(); this.drop(`ip_${wireErrorName(err)}`); return; }
    this.ipStats.received++;
    const src = ip.src, dst = ip.dst;
    // RFC 1122 §3.2.1.3: a source that is broadcast or multicast is martian.
    if (src === 0xffffffff || isIpv4Multicast(src) || (src >>> 24) === 127) { buf.release(); this.drop('ip_bad_source'); return; }
    // RFC 1122 §3.2.1.7: TTL 0 must never be sent; a datagram carrying it is bogus.
    if (ip.ttl === 0) { buf.release(); this.drop('ip_ttl_zero'); return; }
    buf.start = off;
    buf.end = off + ip.totalLength; // strip Ethernet padding
    buf.l3 = off;
    const bcast = dst === 0xffffffff || this.isBroadcastAddress(dst);
    const mcast = isIpv4Multicast(dst);
    if (!bcast && !mcast) {
      if (!this.isLocalAddress(dst)) { buf.release(); this.drop('ip_not_for_us'); return; }
      // RFC 1122 §3.3.6: unicast IP inside a link-layer broadcast is discarded.
      if (l2Bcast) { buf.release(); this.drop('ip_unicast_in_l2_broadcast'); return; }
    }
    if (ip.isFragment) {
      this.ipStats.fragmentsReceived++;
      const whole = this.reass.input(ip, buf);
      if (!whole) return;
      this.ipStats.reassembled++;
      buf = whole;
      ip.wrap(buf.data, buf.start, buf.length, false);
    }
    this.deliver(ip, buf, bcast || mcast);
  }

  private deliver(ip: Ipv4View, buf: PacketBuffer, toBroadcast: boolean): void {
    this.ipStats.delivered++;
    switch (ip.protocol) {
      case IpProto.ICMP: this.icmp.input(ip, buf, toBroadcast); return;
      case IpProto.UDP: this.udp.input(ip, buf, toBroadcast); return;
      case IpProto.TCP: {
        // RFC 1122 §4.2.3.10: TCP never answers a broadcast or multicast destination.
        if (toBroadcast) { buf.release(); this.drop('tcp_broadcast'); return; }
        const src = ip.src, dst = ip.dst;
        buf.l4 = ip.payloadOff;
        buf.start = ip.payloadOff;
        buf.end = ip.payloadOff + ip.payloadLen;
        this.tcp.input(buf, src, dst);
        return;
      }
      default:
        this.unknownProtocol(ip, buf, toBroadcast);
    }
  }

  private unknownProtocol(ip: Ipv4View, buf: PacketBuffer, toBroadcast: boolean): void {
    this.drop('ip_unknown_protocol');
    this.icmp.sendError(ip, buf, IcmpType.DestUnreachable, UnreachCode.Protocol, toBroadcast);
    buf.release();
  }

  // ---- send --------------------------------------------------------------------------------

  /**
   * Sends the L4 payload in buf (start..end) as an IPv4 datagram: route lookup, source address
   * (0 = choose), fragmentation, neighbor resolution. Takes ownership. Returns false (and counts)
   * when there is no route or the interface is down.
   */
  ipOutput(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean {
    this.ipStats.outRequests++;
    let iface: Interface | undefined;
    let nexthop = dst;
    // RFC 1122 §3.2.1.3(g): 127/8 "MUST NOT appear outside a host"; this stack has no loopback
    // interface, so such a destination has no route (never the default gateway).
    if ((dst >>> 24) === 127 && !this.isLocalAddress(dst)) {
      this.ipStats.outNoRoute++;
      buf.release();
      this.drop('ip_loopback_destination');
      return false;
    }
    if (dst === 0xffffffff) {
      iface = this.interfaceForSource(src) ?? this.interfaces.find((i) => i.up && i.addrs.length > 0);
    } else {
      const r = this.routes.lookup(dst);
      if (r) { iface = this.interfaces[r.ifIndex - 1]; if (r.gateway) nexthop = r.gateway; }
    }
    if (!iface || !iface.up) {
      this.ipStats.outNoRoute++;
      buf.release();
      this.drop('ip_no_route');
      return false;
    }
    if (src === 0) src = iface.sourceFor(dst);
    if (buf.csum === Csum.Partial && (!iface.dev.offloads.txCsum || this.isLocalAddress(dst))) completeChecksum(buf);
    const payloadLen = buf.length;
    // A super-segment only goes to a device that segments it (the route may have changed).
    if (buf.gso !== Gso.None && !iface.dev.offloads.tso4) { buf.release(); this.drop('ip_gso_unsupported'); return false; }
    if (IPV4_HLEN + payloadLen > iface.mtu && buf.gso === Gso.None) {
      if (df) { buf.release(); this.drop('ip_needs_frag_df'); return false; }
      return this.fragment(iface, nexthop, buf, src, dst, proto, tos, ttl);
    }
    const id = this.ipId = (this.ipId + 1) & 0xffff;
    const off = buf.prepend(IPV4_HLEN);
    writeIpv4Header(buf.data, off, tos, IPV4_HLEN + payloadLen, id, df ? IPV4_DF : 0, ttl, proto, src, dst);
    buf.l3 = off;
    this.l2Output(iface, nexthop, dst, buf);
    return true;
  }

  /** TcpHost's name for ipOutput. */
  ipv4Output(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean {
    return this.ipOutput(buf, src, dst, proto, tos, ttl, df);
  }

  private fragment(iface: Interface, nexthop: number, buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number): boolean {
    const total = buf.length;
    const chunk = (iface.mtu - IPV4_HLEN) & ~7;
    if (chunk <= 0) { buf.release(); this.drop('ip_mtu_too_small'); return false; }
    const id = this.ipId = (this.ipId + 1) & 0xffff;
    this.ipStats.fragmented++;
    for (let at = 0; at < total; at += chunk) {
      const n = Math.min(chunk, total - at);
      const f = this.pool.alloc();
      const o = f.append(n);
      f.data.set(buf.data.subarray(buf.start + at, buf.start + at + n), o);
      const h = f.prepend(IPV4_HLEN);
      const more = at + n < total ? IPV4_MF : 0;
      writeIpv4Header(f.data, h, tos, IPV4_HLEN + n, id, more | (at >> 3), ttl, proto, src, dst);
      f.l3 = h;
      this.ipStats.fragmentsCreated++;
      this.l2Output(iface, nexthop, dst, f);
    }
    buf.release();
    return true;
  }

  private l2Output(iface: Interface, nexthop: number, dst: number, buf: PacketBuffer): void {
    if (dst === 0xffffffff || iface.isBroadcast(dst)) { this.ethOutput(iface, MAC_BROADCAST, 0, EtherType.IPv4, buf); return; }
    if (isIpv4Multicast(dst)) {
      // RFC 1112 §6.4: 01:00:5e + the low 23 bits of the group.
      const m = this.mcastMac;
      m[3] = (dst >>> 16) & 0x7f; m[4] = (dst >>> 8) & 0xff; m[5] = dst & 0xff;
      this.ethOutput(iface, m, 0, EtherType.IPv4, buf);
      return;
    }
    if (this.isLocalAddress(dst)) {
      // To ourselves: loop back through input on the next poll (never re-entrantly).
      this.ipStats.loopback++;
      buf.csum = Csum.Valid;
      this.loopQueue.push(buf);
      this.onOutput?.();
      return;
    }
    this.arp.output(iface, nexthop, buf);
  }

  /** Prepends the Ethernet header and queues the frame on the device. Takes ownership. */
  ethOutput(iface: Interface, dstMac: Uint8Array, dstOff: number, etherType: number, buf: PacketBuffer): void {
    const off = buf.prepend(ETH_HLEN);
    writeEthernetHeader(buf.data, off, dstMac, dstOff, iface.mac, etherType);
    if (buf.length < ETH_MIN_FRAME) {
      const pad = ETH_MIN_FRAME - buf.length;
      buf.data.fill(0, buf.end, buf.end + pad);
      buf.append(pad);
    }
    const c = iface.counters;
    c.txPackets++; c.txBytes += buf.length;
    if (this.frameTap !== null) this.frameTap(iface.index, buf, true);
    iface.dev.transmit(buf);
    this.onOutput?.();
  }

  // ---- time --------------------------------------------------------------------------------

  /** Runs due timers and looped-back packets; returns when the stack next needs to run (ms), Infinity when idle. */
  poll(now = this.clock.now()): number {
    if (this.loopQueue.length) {
      const q = this.loopQueue.splice(0);
      for (const b of q) {
        const ip = this.ip;
        ip.wrap(b.data, b.start, b.length, false);
        this.ipStats.received++;
        this.deliver(ip, b, false);
      }
    }
    this.wheel.advance(now);
    return this.loopQueue.length ? now : this.wheel.nextDeadline();
  }

  /** When the stack next needs poll() (clock ms; Infinity when idle), without running anything. */
  nextDeadline(): number {
    return this.loopQueue.length ? this.clock.now() : this.wheel.nextDeadline();
  }

  // ---- queries (TcpHost, ArpContext, tools) -------------------------------------------------

  drop(reason: string): void { this.drops[reason] = (this.drops[reason] ?? 0) + 1; }

  random32(): number { return Math.floor(this.random() * 0x100000000) >>> 0; }

  isLocalAddress(addr: number): boolean {
    for (const i of this.interfaces) if (i.hasAddress(addr)) return true;
    return false;
  }

  isBroadcastAddress(addr: number): boolean {
    if (addr === 0xffffffff) return true;
    for (const i of this.interfaces) if (i.isBroadcast(addr)) return true;
    return false;
  }

  private interfaceForSource(src: number): Interface | undefined {
    if (src === 0) return undefined;
    return this.interfaces.find((i) => i.hasAddress(src));
  }

  sourceAddress(dst: number): number {
    if (this.isLocalAddress(dst)) return dst;
    if ((dst >>> 24) === 127) return 0;
    if (dst === 0xffffffff) return this.interfaces.find((i) => i.up && i.addrs.length)?.primary ?? 0;
    const r = this.routes.lookup(dst);
    if (!r) return 0;
    const iface = this.interfaces[r.ifIndex - 1];
    return iface && iface.up ? iface.sourceFor(r.gateway || dst) : 0;
  }

  routeMtu(dst: number): number {
    if (this.isLocalAddress(dst)) return this.interfaces.find((i) => i.hasAddress(dst))?.mtu ?? 0;
    if ((dst >>> 24) === 127) return 0;
    const r = this.routes.lookup(dst);
    const iface = r ? this.interfaces[r.ifIndex - 1] : undefined;
    return iface && iface.up ? iface.mtu : 0;
  }

  /** TcpHost: deferred TCP output is waiting for flushOutput(). */
  outputPending(): void {
    this.onOutput?.();
  }

  /**
   * Deferred output (Tcp.deferOutput): while on, application writes, reads and shutdowns are
   * sent by flushOutput() — the run loop calls it once per iteration — so what one iteration's
   * callbacks write to a connection leaves together. Turning it off sends what waits.
   */
  setDeferOutput(on: boolean): void {
    this.tcp.setDeferOutput(on);
  }

  /** Sends the deferred TCP output (see setDeferOutput). */
  flushOutput(): void {
    this.tcp.flushOutput();
  }

  /** TcpHost: TSO towards `dst` when its device offloads it (never for local addresses). */
  gsoMaxPayload(dst: number): number {
    const r = this.routes.lookup(dst);
    const iface = r ? this.interfaces[r.ifIndex - 1] : undefined;
    if (!iface || !iface.up) return 0;
    const o = iface.dev.offloads;
    if (!o.tso4 || !o.txCsum || this.isLocalAddress(dst)) return 0;
    // The whole datagram must fit IPv4's 16-bit total length with the largest TCP header.
    return 65535 - IPV4_HLEN - 60;
  }

  txCsumOffload(dst: number): boolean {
    if (this.isLocalAddress(dst)) return true;
    const r = this.routes.lookup(dst);
    const iface = r ? this.interfaces[r.ifIndex - 1] : undefined;
    return !!iface && iface.dev.offloads.txCsum;
  }

  /** Releases everything the stack holds (held packets, reassembly, loopback queue). */
  close(): void {
    this.tcp.destroy();
    for (const i of this.interfaces) this.arp.flushInterface(i.index);
    this.reass.clear();
    for (const b of this.loopQueue.splice(0)) b.release();
  }

  /** Human-readable summary (for logs and the tools). */
  describe(): string {
    return this.interfaces.map((i) => `${i.name}: ${i.addrs.map((a) => `${formatIpv4(a.addr)}/${a.prefixLen}`).join(' ')} mtu ${i.mtu}`).join('\n');
  }

  /** ReassContext: a datagram timed out with its first fragment held: RFC 792 time exceeded, code 1. */
  timedOut(first: PacketBuffer): void {
    const ip = this.ip;
    if (ip.wrap(first.data, first.l3, first.end - first.l3, false) === WireError.Ok || ip.headerLength >= IPV4_HLEN) {
      this.icmp.sendError(ip, first, IcmpType.TimeExceeded, 1, false);
    }
    first.release();
  }
}

/** Completes a Csum.Partial L4 checksum in software (for devices that cannot). */
export function completeChecksum(buf: PacketBuffer): void {
  const d = buf.data;
  const at = buf.csumStart + buf.csumOffset;
  // The field holds the folded pseudo-header sum; summing the region over it yields the total.
  let sum = 0;
  for (let i = buf.csumStart; i + 1 < buf.end; i += 2) sum += (d[i]! << 8) | d[i + 1]!;
  if ((buf.end - buf.csumStart) & 1) sum += d[buf.end - 1]! << 8;
  const c = ~fold(sum) & 0xffff;
  d[at] = c >> 8; d[at + 1] = c & 0xff;
  buf.csum = Csum.None;
}
