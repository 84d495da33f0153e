// The engine: one independent stack per worker. Sans-I/O: it is fed frames (input) and
// time (poll), and transmits on its interfaces' NetDevices. No node:* imports here.
//
// This file is the facade: it composes the rooms (l2/ethernet, ip/ipv4 with ICMP and
// reassembly, neighbor/arp, udp, tcp), owns the interfaces and the route table, and offers the
// entry points the run loop, the API and the tools use.
import { BufferPool, type PacketBuffer } from '../base/pktbuf.js';
import type { NetDevice } from '../base/device.js';
import { TimerWheel, type Clock } from '../base/time.js';
import { formatIpv4, parseIpv4, parseIpv4Cidr, parseIpv6 } from '../wire/addr.js';
import { EtherType } from '../wire/ethernet.js';
import { IpProto } from '../wire/ipv4.js';
import { Interface } from './iface.js';
import type { Icmp } from './ip/icmp.js';
import { Ipv4, type IpStats, type Ipv4Context } from './ip/ipv4.js';
import type { Reassembler } from './ip/reass.js';
import { RouteFlags, RouteTable } from './ip/route.js';
import type { Path } from './ip/path.js';
import { Ethernet, type EthernetContext } from './l2/ethernet.js';
import { Arp, defineArpSysctls, type ArpContext } from './neighbor/arp.js';
import { Sysctl } from './sysctl.js';
import type { TcpHost } from './tcp/host.js';
import { Tcp } from './tcp/tcp.js';
import { Udp, defineUdpSysctls } from './udp.js';

export { IpStats, defineIpSysctls } from './ip/ipv4.js';

export interface StackOptions {
  /** Source of time for everything the stack does between polls. */
  clock: Clock;
  sysctl?: Sysctl;
  pool?: BufferPool;
  /**
   * Randomness in [0, 1) for ISNs, SYN cookies, hash keys, ports and IP ids: seeded in
   * simulations; production instances pass node:crypto's (runtime/random.ts). Default Math.random.
   */
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

export class Stack implements EthernetContext, Ipv4Context, ArpContext, TcpHost {
  readonly clock: Clock;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  readonly wheel: TimerWheel;
  readonly random: () => number;
  readonly name: string;
  readonly interfaces: Interface[] = [];
  readonly routes = new RouteTable();
  readonly ethernet: Ethernet;
  readonly ipv4: Ipv4;
  readonly arp: Arp;
  readonly reass: Reassembler;
  readonly icmp: Icmp;
  readonly udp: Udp;
  readonly tcp: Tcp;
  readonly ipStats: IpStats;
  /** Drops by reason; every packet the stack refuses is counted here. */
  readonly drops: Record<string, number> = Object.create(null);
  /** Called after a frame is queued on a device, so the run loop can flush soon. */
  onOutput: (() => void) | null = null;

  constructor(opts: StackOptions) {
    this.clock = opts.clock;
    this.sysctl = opts.sysctl ?? new Sysctl();
    this.pool = opts.pool ?? new BufferPool();
    this.random = opts.random ?? Math.random;
    this.name = opts.name ?? 'tstack';
    this.wheel = new TimerWheel(1, 4096, this.clock.now());
    this.ethernet = new Ethernet(this);
    this.ipv4 = new Ipv4(this);
    this.ipStats = this.ipv4.stats;
    this.reass = this.ipv4.reass;
    this.icmp = this.ipv4.icmp;
    defineArpSysctls(this.sysctl);
    defineUdpSysctls(this.sysctl);
    this.arp = new Arp(this);
    this.udp = new Udp(this.ipv4);
    this.tcp = new Tcp(this);
    const ipv4 = this.ipv4, arp = this.arp, udp = this.udp, tcp = this.tcp;
    this.ethernet.register(EtherType.IPv4, (iface, buf, off, len, l2Bcast) => ipv4.input(iface, buf, off, len, l2Bcast));
    this.ethernet.register(EtherType.ARP, (iface, buf, off, len) => { arp.input(iface, buf, off, len); buf.release(); });
    ipv4.register(IpProto.UDP, (ip, buf, toBroadcast) => udp.input(ip, buf, toBroadcast));
    ipv4.register(IpProto.TCP, (ip, buf, toBroadcast) => {
      // RFC 1122 §4.2.3.10: TCP never answers a broadcast or multicast destination.
      if (toBroadcast) { buf.release(); this.drop('tcp_broadcast'); return; }
      buf.l4 = ip.payloadOff;
      buf.start = ip.payloadOff;
      buf.end = ip.payloadOff + ip.payloadLen;
      tcp.input(buf, ip.src, ip.dst);
    });
    this.icmp.handlers.set(IpProto.TCP, (type, code, info, inner, l4Off) => {
      const b = inner.bytes;
      const sport = (b[l4Off]! << 8) | b[l4Off + 1]!, dport = (b[l4Off + 2]! << 8) | b[l4Off + 3]!;
      const seq = ((b[l4Off + 4]! << 24) | (b[l4Off + 5]! << 16) | (b[l4Off + 6]! << 8) | b[l4Off + 7]!) >>> 0;
      tcp.icmpError(type, code, inner.src, sport, inner.dst, dport, seq, info);
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
    this.routes.touch();
    if (up) this.arp.announce(iface); else this.arp.flushInterface(ifIndex);
  }

  /** Adds an address to an interface (with its connected route). */
  addAddress(ifIndex: number, cidr: string): void {
    const iface = this.interfaces[ifIndex - 1];
    const c = parseIpv4Cidr(cidr);
    if (!iface || !c) throw new Error(`bad interface or address '${cidr}'`);
    const a = iface.addAddress(c.addr, c.prefixLen);
    if (c.prefixLen < 32) this.routes.add(a.network, c.prefixLen, 0, ifIndex, 0, RouteFlags.Connected);
    else this.routes.touch();
    this.arp.announce(iface);
  }

  // ---- receive, time, output ---------------------------------------------------------------

  /** One received Ethernet frame from interface `ifIndex`. Takes ownership of buf. */
  input(ifIndex: number, buf: PacketBuffer): void {
    const iface = this.interfaces[ifIndex - 1];
    if (!iface) { buf.release(); this.drop('no_interface'); return; }
    const c = iface.counters;
    c.rxPackets++; c.rxBytes += buf.length;
    if (!iface.up) { c.rxDropped++; buf.release(); this.drop('interface_down'); return; }
    buf.ifIndex = ifIndex;
    this.ethernet.input(iface, buf);
  }

  /** Runs due timers and looped-back packets; returns when the stack next needs to run (ms), Infinity when idle. */
  poll(now = this.clock.now()): number {
    // Events posted outside segment input (an accept() that took queued data) are delivered here.
    this.tcp.dispatch();
    this.ipv4.pollLoopback();
    this.wheel.advance(now);
    return this.ipv4.loopbackPending ? now : this.wheel.nextDeadline();
  }

  /** When the stack next needs poll() (clock ms; Infinity when idle), without running anything. */
  nextDeadline(): number {
    return this.ipv4.loopbackPending ? this.clock.now() : this.wheel.nextDeadline();
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

  /** Sends the L4 payload in buf as an IPv4 datagram (see Ipv4.ipOutput). Takes ownership. */
  ipOutput(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean {
    return this.ipv4.ipOutput(buf, src, dst, proto, tos, ttl, df);
  }

  /** Prepends the Ethernet header and queues the frame on the device. Takes ownership. */
  ethOutput(iface: Interface, dstMac: Uint8Array, dstOff: number, etherType: number, buf: PacketBuffer): void {
    this.ethernet.output(iface, dstMac, dstOff, etherType, buf);
  }

  /** Ipv4Context: a unicast next hop goes through ARP. */
  resolveOutput(iface: Interface, nexthop: number, buf: PacketBuffer): void {
    this.arp.output(iface, nexthop, buf);
  }

  // ---- contexts (TcpHost, ArpContext, Ipv4Context) and queries ------------------------------

  drop(reason: string): void { this.drops[reason] = (this.drops[reason] ?? 0) + 1; }

  random32(): number { return Math.floor(this.random() * 0x100000000) >>> 0; }

  /** A frame or deferred TCP output is waiting: the run loop should flush soon. */
  outputPending(): void {
    this.onOutput?.();
  }

  isLocalAddress(addr: number): boolean { return this.ipv4.isLocalAddress(addr); }
  isBroadcastAddress(addr: number): boolean { return this.ipv4.isBroadcastAddress(addr); }
  sourceAddress(dst: number): number { return this.ipv4.sourceAddress(dst); }

  /** TcpHost: resolves or revalidates a connection's path (see Ipv4.resolvePath). */
  resolvePath(path: Path, src: number, dst: number): boolean { return this.ipv4.resolvePath(path, src, dst); }

  /** TcpHost: sends an L4 payload along a path. Takes ownership. */
  pathOutput(path: Path, buf: PacketBuffer, proto: number, tos: number, ttl: number, df: boolean): boolean {
    return this.ipv4.pathOutput(path, buf, proto, tos, ttl, df);
  }

  /** Releases everything the stack holds (held packets, reassembly, loopback queue). */
  close(): void {
    this.tcp.destroy();
    for (const i of this.interfaces) this.arp.flushInterface(i.index);
    this.ipv4.close();
  }

  /** Human-readable summary (for logs and the tools). */
  describe(): string {
    return this.interfaces.map((i) => `${i.name}: ${i.addrs.map((a) => `${formatIpv4(a.addr)}/${a.prefixLen}`).join(' ')} mtu ${i.mtu}`).join('\n');
  }
}
