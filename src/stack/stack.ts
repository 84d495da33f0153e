// The engine: one independent stack per worker. Sans-I/O: it is fed frames (input) and
// time (poll), and transmits on its interfaces' NetDevices. No node:* imports here.
//
// This file is the facade: it composes the rooms (l2/ethernet, ip/ipv4 with ICMP and
// reassembly, ip/ipv6 with ICMPv6, NDP and address configuration, neighbor/arp, udp, tcp), owns the interfaces and the route table, and offers the
// entry points the run loop, the API and the tools use.
import { BufferPool, type PacketBuffer } from '../base/pktbuf.js';
import type { NetDevice } from '../base/device.js';
import { Timer, TimerWheel, type Clock } from '../base/time.js';
import { formatIpv4, parseIpv4, parseIpv4Cidr, parseIpv6 } from '../wire/addr.js';
import { EtherType } from '../wire/ethernet.js';
import { IpProto } from '../wire/ipv4.js';
import { Interface } from './iface.js';
import { LOOPBACK_ADDR, LoopbackDevice, isLoopbackAddress } from './loopback.js';
import type { Icmp } from './ip/icmp.js';
import { Ipv4, type IpStats, type Ipv4Context } from './ip/ipv4.js';
import { Ipv6 } from './ip/ipv6.js';
import type { Reassembler } from './ip/reass.js';
import { RouteFlags, RouteTable } from './ip/route.js';
import { PathFamily, type Path } from './ip/path.js';
import { Ethernet, type EthernetContext } from './l2/ethernet.js';
import { VlanDevice } from './l2/vlan.js';
import { BondDevice, type BondMode } from './l2/bond.js';
import { Arp, defineArpSysctls, type ArpContext } from './neighbor/arp.js';
import { Sysctl, type SysctlHandle } from './sysctl.js';
import { Gro, GroStats, defineGroSysctls } from './ip/gro.js';
import { Shield, type ShieldConfig } from './shield.js';
import type { TcpHost } from './tcp/host.js';
import { Tcp } from './tcp/tcp.js';
import { Udp, defineUdpSysctls } from './udp.js';
import { Tunnels, type TunnelConfig, type TunnelContext } from './tunnel/tunnels.js';

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
  /**
   * "2001:db8::2/64". Any of addr6, gateway6 and slaac turns IPv6 on for the interface, with a
   * link-local address from the MAC (docs/ipv6.md).
   */
  addr6?: string;
  /** Default IPv6 router ("2001:db8::1" or a link-local "fe80::1"). */
  gateway6?: string;
  /** Accept router advertisements: default routers, on-link prefixes and SLAAC addresses (RFC 4862). */
  slaac?: boolean;
  name?: string;
  /** Send a gratuitous ARP for each address (default true). */
  announce?: boolean;
}

/** A subscriber to the stack's local ports (Stack.watchPorts): proto 6 (TCP) or 17 (UDP). */
export type PortWatcher = (proto: number, port: number, inUse: boolean) => void;

export class Stack implements EthernetContext, Ipv4Context, ArpContext, TcpHost, TunnelContext {
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
  readonly ip6: Ipv6;
  readonly arp: Arp;
  /** Allow/deny filter and per-source TCP limits on input (configure()). */
  readonly shield = new Shield();
  readonly reass: Reassembler;
  readonly icmp: Icmp;
  readonly udp: Udp;
  readonly tcp: Tcp;
  readonly ipStats: IpStats;
  /** VXLAN, GRE and IP-in-IP interfaces (addTunnel). */
  readonly tunnels: Tunnels;
  /** Drops by reason; every packet the stack refuses is counted here. */
  readonly drops: Record<string, number> = Object.create(null);
  private readonly gro: Gro;
  private readonly groOn: SysctlHandle<number>;
  private readonly ip6Forwarding: SysctlHandle<number>;
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
    this.udp.onPortChanged = (proto, port, inUse) => this.portChanged(proto, port, inUse);
    this.tcp = new Tcp(this);
    // Application events are delivered once per receive burst, by poll() (deliverEvents).
    this.tcp.batchEvents = true;
    this.ip6 = new Ipv6(this);
    this.tunnels = new Tunnels(this);
    this.groOn = defineGroSysctls(this.sysctl);
    this.ip6Forwarding = this.sysctl.handle<number>('net.inet6.ip6.forwarding');
    this.gro = new Gro(this.pool, (ifIndex, buf) => this.input(ifIndex, buf));
    const ipv4 = this.ipv4, arp = this.arp, udp = this.udp, tcp = this.tcp, ip6 = this.ip6;
    udp.attach6(ip6);
    ip6.upper.set(IpProto.UDP, (ip, buf, off, len, ifIndex) => udp.input6(ip, buf, off, len, ifIndex));
    this.ethernet.register(EtherType.IPv4, (iface, buf, off, len, l2Bcast) => ipv4.input(iface, buf, off, len, l2Bcast));
    this.ethernet.register(EtherType.ARP, (iface, buf, off, len) => { arp.input(iface, buf, off, len); buf.release(); });
    // IPv6 wants to know whether the frame was link-layer multicast (RFC 4443 §2.4(e.3)): the
    // destination MAC's group bit, the frame's first byte (VLAN tags sit between it and the payload).
    this.ethernet.register(EtherType.IPv6, (iface, buf, off, len) => ip6.input(iface, buf, off, len, (buf.data[buf.start]! & 1) === 1));
    ipv4.register(IpProto.UDP, (ip, buf, toBroadcast) => udp.input(ip, buf, toBroadcast));
    ipv4.register(IpProto.TCP, (ip, buf, toBroadcast) => {
      // RFC 1122 §4.2.3.10: TCP never answers a broadcast or multicast destination.
      if (toBroadcast) { buf.release(); this.drop('tcp_broadcast'); return; }
      if (this.shield.active && ip.payloadLen >= 14 && (buf.data[ip.payloadOff + 13]! & 0x16) === 0x02
          && !this.shield.admitsSyn(ip.src, tcp.connectionsFrom(ip.src), this.clock.now())) {
        // A new connection attempt (SYN without ACK or RST) past the source's limits.
        buf.release(); this.drop('shield_syn_limit'); return;
      }
      buf.l4 = ip.payloadOff;
      buf.start = ip.payloadOff;
      buf.end = ip.payloadOff + ip.payloadLen;
      tcp.input(buf, ip.src, ip.dst, ip.tos & 3);
    });
    this.icmp.handlers.set(IpProto.TCP, (type, code, info, inner, l4Off) => {
      const b = inner.bytes;
      const sport = (b[l4Off]! << 8) | b[l4Off + 1]!, dport = (b[l4Off + 2]! << 8) | b[l4Off + 3]!;
      const seq = ((b[l4Off + 4]! << 24) | (b[l4Off + 5]! << 16) | (b[l4Off + 6]! << 8) | b[l4Off + 7]!) >>> 0;
      tcp.icmpError(type, code, inner.src, sport, inner.dst, dport, seq, info);
    });
    // TCP over IPv6: segments from the IPv6 layer, and ICMPv6 errors quoting ours.
    ip6.upper.set(IpProto.TCP, (ip, buf, off, len) => {
      if (this.shield.active && len >= 14 && (buf.data[off + 13]! & 0x16) === 0x02) {
        // The shield's per-source SYN limits; an IPv6 source is its /64 (shield.ts).
        const k = tcp.sourceKey6(ip.bytes, ip.srcOff);
        if (!this.shield.admitsSyn(k, tcp.connectionsFrom(k), this.clock.now())) { buf.release(); this.drop('shield_syn_limit'); return; }
      }
      buf.l4 = off; buf.start = off; buf.end = off + len;
      // The ECN field: the low two bits of the Traffic Class (bytes 0-1 of the header, 8 before the source).
      tcp.input6(buf, ip.bytes, ip.srcOff, ip.dstOff, (ip.bytes[ip.srcOff - 7]! >> 4) & 3);
    });
    ip6.icmp.handlers.set(IpProto.TCP, (type, code, word, b, ipOff, l4Off, l4Len) => {
      if (l4Len < 8) return;
      const sport = (b[l4Off]! << 8) | b[l4Off + 1]!, dport = (b[l4Off + 2]! << 8) | b[l4Off + 3]!;
      const seq = ((b[l4Off + 4]! << 24) | (b[l4Off + 5]! << 16) | (b[l4Off + 6]! << 8) | b[l4Off + 7]!) >>> 0;
      // The quoted packet is one we sent: its source is our end.
      tcp.icmpError6(type, code, b.subarray(ipOff + 8, ipOff + 24), sport, b.subarray(ipOff + 24, ipOff + 40), dport, seq, word);
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
    this.interfaces.push(iface);
    if (cfg.addr6 || cfg.gateway6 || cfg.slaac) {
      try {
        this.ip6.attach(iface, { ...(cfg.addr6 && { addr6: cfg.addr6 }), ...(cfg.gateway6 && { gateway6: cfg.gateway6 }), slaac: !!cfg.slaac });
      } catch (e) { this.interfaces.pop(); throw e; }
    }
    if (cfg.gateway) {
      const gw = parseIpv4(cfg.gateway);
      if (gw === null) throw new Error(`bad gateway '${cfg.gateway}'`);
      this.routes.add(0, 0, gw, index, 0, RouteFlags.Static);
    }
    if (cfg.announce !== false) this.arp.announce(iface);
    return index;
  }

  /**
   * Adds a VLAN interface on port `portIndex`: 802.1Q VID `vid` (1..4094), inside the 802.1ad
   * service VLAN `outer` when not 0 (Q-in-Q). It has its own addresses, MTU (at most the port's
   * device MTU), neighbour caches and counters; `mac` defaults to the port's. Returns its index.
   */
  addVlan(portIndex: number, vid: number, cfg: InterfaceConfig & { outer?: number; mac?: Uint8Array; pcp?: number } = {}): number {
    const port = this.interfaces[portIndex - 1];
    if (!port || port.loopback || port.lower !== null) throw new Error(`VLAN ${vid}: interface ${portIndex} is not a port`);
    // A VXLAN interface carries Ethernet and so VLANs (as Linux); GRE and IP-in-IP carry IPv4 only.
    if ((port.dev as { pointToPoint?: boolean }).pointToPoint === true) throw new Error(`VLAN ${vid}: ${port.name} is a point-to-point tunnel (no Ethernet inside)`);
    const outer = cfg.outer ?? 0;
    if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw new Error(`VLAN id ${vid} is out of range (1..4094)`);
    if (!Number.isInteger(outer) || outer < 0 || outer > 4094) throw new Error(`outer VLAN id ${outer} is out of range (1..4094)`);
    if (port.vlans.some((v) => v.vlanId === vid && v.vlanOuter === outer)) throw new Error(`VLAN ${outer ? `${outer}.` : ''}${vid} already exists on ${port.name}`);
    const name = cfg.name ?? (outer ? `${port.name}.${outer}.${vid}` : `${port.name}.${vid}`);
    const dev = new VlanDevice(port, vid, outer, name, cfg.mac);
    if (cfg.pcp !== undefined) dev.pcp = cfg.pcp;
    const index = this.addInterface(dev, { ...cfg, name, announce: false, mtu: cfg.mtu ?? port.mtu });
    const iface = this.interfaces[index - 1]!;
    iface.lower = port;
    iface.vlanId = vid;
    iface.vlanOuter = outer;
    port.vlans.push(iface);
    if (cfg.announce !== false) this.arp.announce(iface);
    return index;
  }

  private readonly bondTimers: Timer[] = [];

  /**
   * Adds a bond over ports `members` (their indices; ports without addresses, not in another
   * bond): `mode` active-backup (default) or balance-xor, carrier checked every `miimon` ms
   * (default 100). It takes the first member's MAC. On failover the bond announces its addresses
   * on the new active member (gratuitous ARP, unsolicited NA). Returns its index.
   */
  addBond(members: number[], cfg: InterfaceConfig & { mode?: BondMode; miimon?: number; arpInterval?: number; arpTargets?: number[] } = {}): number {
    const ms = members.map((i) => {
      const m = this.interfaces[i - 1];
      if (!m || m.loopback || m.lower !== null || m.master !== null || m.vlans.length > 0 || m.addrs.length > 0 || m.addrs6.length > 0 || this.tunnels.devices.some((d) => d === m.dev)) {
        throw new Error(`bond member ${i}: not a free port (a port without addresses, VLANs or another bond)`);
      }
      return m;
    });
    if (new Set(ms).size !== ms.length) throw new Error('bond: a port is listed twice');
    const name = cfg.name ?? `bond${this.bondTimers.length}`;
    if (cfg.arpInterval && !cfg.arpTargets?.length) throw new Error(`bond ${name}: ARP monitoring needs targets`);
    const dev = new BondDevice(name, cfg.mode ?? 'active-backup', ms);
    const index = this.addInterface(dev, { ...cfg, name, announce: false });
    const bond = this.interfaces[index - 1]!;
    dev.iface = bond;
    for (const m of ms) m.master = bond;
    if (cfg.arpInterval) {
      dev.arpInterval = cfg.arpInterval;
      dev.arpTargets = cfg.arpTargets!;
    }
    dev.monitor();
    // With ARP monitoring, the interval is the probes' (Linux: arp_interval replaces miimon).
    const every = dev.arpInterval || (cfg.miimon ?? 100);
    const probe = () => { for (const t of dev.arpTargets) this.arp.probe(bond, t); };
    const timer = new Timer((now) => {
      if (dev.monitor()) {
        this.arp.announce(bond);
        this.ip6.announce(index);
      }
      probe();
      this.wheel.arm(timer, now + every);
    });
    this.wheel.arm(timer, this.clock.now() + every);
    probe();
    this.bondTimers.push(timer);
    if (cfg.announce !== false) this.arp.announce(bond);
    return index;
  }

  /**
   * Adds a tunnel interface (VXLAN, GRE, IP-in-IP: docs/tunnels.md) over the underlay the route
   * to its remote gives; returns its interface index. Throws on a bad configuration.
   */
  addTunnel(cfg: TunnelConfig): number {
    const dev = this.tunnels.create(cfg);
    const vxlan = cfg.kind === 'vxlan';
    const index = this.addInterface(dev, {
      name: cfg.ifname, mtu: dev.mtu, announce: vxlan,
      ...(cfg.addr && { addr: cfg.addr }), ...(cfg.addr6 && { addr6: cfg.addr6 }),
    });
    dev.ifIndex = index;
    const tunnels = this.tunnels;
    if (vxlan) {
      const port = cfg.port ?? 4789;
      if (!this.udp.encap.has(port)) this.udp.encap.set(port, (ip, buf, off, len) => tunnels.vxlanInput(ip, buf, off, len));
    } else {
      const proto = cfg.kind === 'gre' ? IpProto.GRE : IpProto.IPIP;
      this.ipv4.register(proto, (ip, buf, toBroadcast) => { if (toBroadcast) { buf.release(); this.drop('tunnel_broadcast'); return; } tunnels.p2pInput(ip, buf); });
      this.icmp.handlers.set(proto, (type, code, info, inner) => tunnels.icmpError(type, code, info, inner));
    }
    return index;
  }

  /** TunnelContext: the MTU of the interface the route to `dst` leaves by (0: no route). */
  routeMtu(dst: number): number {
    const r = this.routes.lookup(dst);
    const i = r ? this.interfaces[r.ifIndex - 1] : undefined;
    return i && i.up ? i.mtu : 0;
  }

  /**
   * Adds the loopback interface lo0 (127.0.0.1/8 — all of 127/8 is local — and ::1) unless it
   * exists; returns its index. Instances add it after their ports, so ports keep indices 1..n.
   */
  addLoopback(): number {
    const existing = this.loopbackInterface();
    if (existing) return existing.index;
    const index = this.interfaces.length + 1;
    const lo = new Interface(index, 'lo0', new LoopbackDevice(), undefined, true);
    lo.addAddress(LOOPBACK_ADDR, 8);
    lo.addrs6.push({ addr: parseIpv6('::1')!, prefixLen: 128 });
    this.interfaces.push(lo);
    this.ip6.attachLoopback(lo);
    this.routes.add(0x7f000000, 8, 0, index, 0, RouteFlags.Connected);
    return index;
  }

  /** lo0, when the stack has one. */
  loopbackInterface(): Interface | undefined { return this.interfaces.find((i) => i.loopback); }

  interfaceByIndex(ifIndex: number): Interface | undefined { return this.interfaces[ifIndex - 1]; }

  setInterfaceUp(ifIndex: number, up: boolean): void {
    const iface = this.interfaces[ifIndex - 1];
    if (!iface || iface.up === up) return;
    iface.up = up;
    this.routes.touch();
    if (iface.loopback) return;
    if (up) this.arp.announce(iface); else { this.arp.flushInterface(ifIndex); this.ip6.interfaceDown(ifIndex); this.ipv4.igmp.flushInterface(ifIndex); }
  }

  /** Adds an address to an interface (with its connected route). */
  addAddress(ifIndex: number, cidr: string): void {
    const iface = this.interfaces[ifIndex - 1];
    const c = parseIpv4Cidr(cidr);
    if (!iface || !c) throw new Error(`bad interface or address '${cidr}'`);
    if (iface.hasAddress(c.addr)) throw new Error(`${cidr.split('/')[0]} is already an address of ${iface.name}`);
    const a = iface.addAddress(c.addr, c.prefixLen);
    // A secondary address on a subnet the interface already has shares its connected route.
    if (c.prefixLen < 32 && !this.routes.list().some((r) => r.dst === a.network && r.prefixLen === c.prefixLen && r.ifIndex === ifIndex && r.gateway === 0)) {
      this.routes.add(a.network, c.prefixLen, 0, ifIndex, 0, RouteFlags.Connected);
    } else this.routes.touch();
    this.arp.announce(iface);
  }

  /** Removes an address from an interface, with its connected route. Returns false when it was not there. */
  removeAddress(ifIndex: number, cidr: string): boolean {
    const iface = this.interfaces[ifIndex - 1];
    // "A" without a length removes A whatever its prefix.
    const c = cidr.includes('/') ? parseIpv4Cidr(cidr) : parseIpv4(cidr) !== null ? { addr: parseIpv4(cidr)!, prefixLen: -1 } : null;
    if (!iface || !c) throw new Error(`bad interface or address '${cidr}'`);
    const a = iface.addrs.find((x) => x.addr === c.addr && (c.prefixLen < 0 || x.prefixLen === c.prefixLen));
    if (!a || !iface.removeAddress(a.addr)) return false;
    this.routes.touch();
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
    this.routes.touch();
  }

  /**
   * Frame tap for live captures (tools): called with every frame received on or transmitted by
   * an interface, before the stack looks at it / as it leaves. null (the default) costs one test
   * per frame; the hook must not keep or change the buffer.
   */
  frameTap: ((ifIndex: number, buf: PacketBuffer, tx: boolean) => void) | null = null;

  // ---- receive, time, output ---------------------------------------------------------------

  /**
   * One received Ethernet frame from interface `ifIndex`. Takes ownership of buf. What it means
   * for sockets (data, connections, closes, datagrams, ICMP errors) is only marked: the events
   * of all the frames input before the next poll() are delivered there, once per socket.
   */
  input(ifIndex: number, buf: PacketBuffer): void {
    const iface = this.interfaces[ifIndex - 1];
    if (!iface) { buf.release(); this.drop('no_interface'); return; }
    const c = iface.counters;
    c.rxPackets++; c.rxBytes += buf.length;
    if (this.frameTap !== null) this.frameTap(ifIndex, buf, false);
    if (!iface.up) { c.rxDropped++; buf.release(); this.drop('interface_down'); return; }
    buf.ifIndex = ifIndex;
    this.ethernet.input(iface, buf);
  }

  /**
   * A receive burst from interface `ifIndex`: bufs[0..n), in arrival order, each as input() takes
   * it, after receive coalescing (ip/gro.ts; sysctl net.link.ether.gro) merged the in-order TCP
   * data of each flow. Takes ownership of the n buffers.
   */
  inputBurst(ifIndex: number, bufs: PacketBuffer[], n: number): void {
    if (n > 1 && this.groOn.value !== 0) { this.gro.burst(ifIndex, bufs, n, this.ip6Forwarding.value === 0); return; }
    for (let i = 0; i < n; i++) this.input(ifIndex, bufs[i]!);
  }

  /** Receive coalescing counters (segments merged, super-segments handed to input). */
  get groStats(): GroStats { return this.gro.stats; }

  /**
   * Delivers the application events of the frames input since the last poll: each socket
   * once, readable with all the burst's data, then writable, end, close. First thing poll()
   * does; the run loop calls poll() right after each receive burst.
   */
  poll(now = this.clock.now()): number {
    // The burst's events (and those posted outside input: an accept() that took queued data).
    this.deliverEvents();
    // Looped-back packets are the next burst, and due timers the one after.
    this.ipv4.pollLoopback();
    this.ip6.pollLoopback();
    this.deliverEvents();
    this.wheel.advance(now);
    // What the timers posted (a connection given up, a retransmission's outcome) is delivered
    // now, not at some later poll the loop may sleep long before.
    this.deliverEvents();
    return this.ipv4.loopbackPending || this.ip6.loopbackPending || this.eventsPending ? now : this.wheel.nextDeadline();
  }

  /**
   * Delivers the events waiting for sockets now (poll() does it; embedders that input frames
   * without polling at once may call it). Callbacks may write, close and open sockets: the
   * events they raise are delivered in this pass or the next poll's, never lost.
   */
  deliverEvents(): void {
    this.tcp.deliverEvents();
    this.udp.deliverEvents();
  }

  /** Socket events wait for deliverEvents(). */
  get eventsPending(): boolean { return this.tcp.eventsPending || this.udp.eventsPending; }

  /** When the stack next needs poll() (clock ms; Infinity when idle), without running anything. */
  nextDeadline(): number {
    return this.ipv4.loopbackPending || this.ip6.loopbackPending || this.eventsPending ? this.clock.now() : this.wheel.nextDeadline();
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
    // A point-to-point tunnel has no neighbours to resolve: its device takes the packet.
    if ((iface.dev as { pointToPoint?: boolean }).pointToPoint === true) { this.ethernet.output(iface, iface.mac, 0, EtherType.IPv4, buf); return; }
    this.arp.output(iface, nexthop, buf);
  }

  // ---- contexts (TcpHost, ArpContext, Ipv4Context) and queries ------------------------------

  drop(reason: string): void { this.drops[reason] = (this.drops[reason] ?? 0) + 1; }

  /** Sets the shield's rules and limits (at start from [shield], or at run time). */
  configureShield(cfg: ShieldConfig): void {
    this.shield.configure(cfg);
    const shield = this.shield;
    this.ipv4.filter = !shield.active ? null : (ip, buf) => {
      const proto = ip.protocol;
      const ported = (proto === IpProto.TCP || proto === IpProto.UDP) && ip.payloadLen >= 4;
      const dport = ported ? (buf.data[ip.payloadOff + 2]! << 8) | buf.data[ip.payloadOff + 3]! : -1;
      if (shield.allows(ip.src, proto, dport)) return true;
      this.drop('shield_deny');
      return false;
    };
    this.ip6.filter = !shield.active ? null : (b, srcOff, nh, l4Off, len) => {
      const dport = (nh === IpProto.TCP || nh === IpProto.UDP) && len >= 4 ? (b[l4Off + 2]! << 8) | b[l4Off + 3]! : -1;
      if (shield.allows6(b, srcOff, nh, dport)) return true;
      this.drop('shield_deny');
      return false;
    };
  }

  /**
   * EthernetContext: the multicast MAC filter. 01:00:5e:… (RFC 1112 §6.4) passes for a group an
   * IGMP membership holds, 33:33:… (RFC 2464 §7) for one of the link's IPv6 groups (MLD's).
   * Loopback and devices without a link layer see no such frames.
   */
  acceptsMulticastMac(iface: Interface, b: Uint8Array, off: number): boolean {
    if (b[off] === 0x01 && b[off + 1] === 0x00 && b[off + 2] === 0x5e) return this.ipv4.igmp.macJoined(iface.index, b, off);
    if (b[off] === 0x33 && b[off + 1] === 0x33) {
      const link = this.ip6.link(iface.index);
      if (link === undefined) return false;
      for (const g of link.groups) {
        const a = g.addr;
        if (a[12] === b[off + 2] && a[13] === b[off + 3] && a[14] === b[off + 4] && a[15] === b[off + 5]) return true;
      }
      return false;
    }
    return false;
  }

  /** ArpContext: a packet we sent cannot reach its neighbour; its transport hears of it. */
  unreachable(buf: PacketBuffer): void {
    const b = buf.data, off = buf.start;
    if (buf.end - off < 20 || b[off]! >> 4 !== 4) return;
    const ihl = (b[off]! & 15) * 4;
    // Only a first fragment carries the ports.
    if (b[off + 9] !== IpProto.TCP || (((b[off + 6]! & 0x1f) << 8) | b[off + 7]!) !== 0 || buf.end - off < ihl + 4) return;
    const src = ((b[off + 12]! << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!) >>> 0;
    const dst = ((b[off + 16]! << 24) | (b[off + 17]! << 16) | (b[off + 18]! << 8) | b[off + 19]!) >>> 0;
    const sport = (b[off + ihl]! << 8) | b[off + ihl + 1]!;
    const dport = (b[off + ihl + 2]! << 8) | b[off + ihl + 3]!;
    this.tcp.hostUnreachable(src, sport, dst, dport);
  }

  random32(): number { return Math.floor(this.random() * 0x100000000) >>> 0; }

  /** A frame or deferred TCP output is waiting: the run loop should flush soon. */
  outputPending(): void {
    this.onOutput?.();
  }

  private portWatchers: PortWatcher[] = [];

  /**
   * Calls `watcher(proto, port, true)` for every TCP (6) and UDP (17) local port the stack holds
   * now, then on every change: a port taken by a listener, a connection, a TIME_WAIT entry or a
   * bound UDP socket (true), or no longer held by any (false). Returns the unsubscribe. What a
   * driver's exception path uses to hand the kernel every frame the stack has no socket for.
   */
  watchPorts(watcher: PortWatcher): () => void {
    for (const p of this.tcp.portsInUse()) watcher(6, p, true);
    for (const p of this.udp.portsInUse()) watcher(17, p, true);
    this.portWatchers = [...this.portWatchers, watcher];
    return () => { this.portWatchers = this.portWatchers.filter((w) => w !== watcher); };
  }

  /** TcpHost (and Udp): a local port changed hands; see watchPorts. */
  portChanged(proto: number, port: number, inUse: boolean): void {
    const ws = this.portWatchers;
    for (let i = 0; i < ws.length; i++) ws[i]!(proto, port, inUse);
  }

  isLocalAddress(addr: number): boolean { return this.ipv4.isLocalAddress(addr); }
  isBroadcastAddress(addr: number): boolean { return this.ipv4.isBroadcastAddress(addr); }
  sourceAddress(dst: number): number { return this.ipv4.sourceAddress(dst); }

  /** TcpHost: resolves or revalidates a connection's path (see Ipv4.resolvePath). */
  resolvePath(path: Path, src: number, dst: number): boolean { return this.ipv4.resolvePath(path, src, dst); }

  /** TcpHost: the same over IPv6 (see Ipv6.resolvePath). */
  resolvePath6(path: Path, src: Uint8Array, dst: Uint8Array): boolean { return this.ip6.resolvePath(path, src, dst); }

  isLocalAddress6(addr: Uint8Array): boolean { return this.ip6.isLocalAddress(addr, 0); }

  /** TcpHost: sends an L4 payload along a path (of either family). Takes ownership. */
  pathOutput(path: Path, buf: PacketBuffer, proto: number, tos: number, ttl: number, df: boolean): boolean {
    if (path.family === PathFamily.V6) return this.ip6.pathOutput(path, buf, proto, tos);
    return this.ipv4.pathOutput(path, buf, proto, tos, ttl, df);
  }

  /** Releases everything the stack holds (held packets, reassembly, loopback queue). */
  close(): void {
    for (const t of this.bondTimers) this.wheel.disarm(t);
    this.tcp.destroy();
    this.ip6.close();
    for (const i of this.interfaces) this.arp.flushInterface(i.index);
    this.ipv4.close();
  }

  /** Human-readable summary (for logs and the tools). */
  describe(): string {
    return this.interfaces.map((i) => `${i.name}: ${[...i.addrs.map((a) => `${formatIpv4(a.addr)}/${a.prefixLen}`), this.ip6.describe(i.index)].filter(Boolean).join(' ')} mtu ${i.mtu}`).join('\n');
  }
}
