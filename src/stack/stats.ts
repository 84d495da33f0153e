// One query surface for the tools: a plain, JSON-ready snapshot of a stack — every counter and,
// on request, the listings (interfaces, routes, ARP, TCP and UDP sockets, sysctls). Everything
// is read through the owners' public methods; nothing here keeps state. It allocates (tools only,
// never on the packet path). Field names are documented in docs/control.md.
import { formatIpv4, formatIpv6, formatMac } from '../wire/addr.js';
import { RouteFlags, type Route } from './ip/route.js';
import { BondDevice } from './l2/bond.js';
import type { Stack } from './stack.js';
import type { SysctlValue } from './sysctl.js';
import { TCP_STATE_NAMES, TcpState } from './tcp/tcb.js';

export interface InterfaceSnapshot {
  index: number;
  name: string;
  mac: string;
  mtu: number;
  /** The device's own MTU (the most `ifconfig mtu` accepts). */
  deviceMtu: number;
  up: boolean;
  /** FreeBSD-style flags: UP, BROADCAST, RUNNING, MULTICAST. */
  flags: string[];
  inet: { addr: string; prefixLen: number; broadcast: string }[];
  inet6: { addr: string; prefixLen: number }[];
  rxPackets: number; rxBytes: number; rxErrors: number; rxDropped: number; rxMulticast: number;
  txPackets: number; txBytes: number; txErrors: number; txDropped: number;
  /** A tunnel interface's kind and ends (docs/tunnels.md). */
  tunnel?: string;
  /** IPv4 multicast groups joined (IGMP), with their source filter when not EXCLUDE({}). */
  groups?: string[];
  /** VLAN interfaces: the port they ride on, the VID and the outer (802.1ad) VID, 0 without Q-in-Q. */
  vlan?: { parent: string; id: number; outer: number };
  /** Bonds: the mode, the members, the active one (active-backup) and the failovers so far. */
  bond?: { mode: string; members: string[]; active: string; failovers: number };
  /** A bond member: its bond. */
  master?: string;
}

export interface RouteSnapshot {
  destination: string;
  prefixLen: number;
  /** "" for a directly connected destination. */
  gateway: string;
  /** netstat -r flags: U up, G gateway, H host, S static, C connected. */
  flags: string;
  ifname: string;
  metric: number;
}

/** An IPv6 route (`route show`'s Internet6 table). */
export interface Route6Snapshot {
  destination: string;
  prefixLen: number;
  /** "" for an on-link destination. */
  gateway: string;
  /** U up, G gateway, H host (/128), S static, C connected, D learned from a router advertisement. */
  flags: string;
  ifname: string;
  metric: number;
  /** ms until a learned route expires; null when it does not. */
  expiresInMs: number | null;
}

export interface NdpSnapshot { addr: string; mac: string; ifname: string; state: string; router: boolean; queued: number }

export interface ArpSnapshot { ip: string; mac: string; ifname: string; state: string; queued: number }

export interface SocketSnapshot {
  /** TCP: 'tcp' for both families (its addresses say which; a dual-stack `::` listener shows `::`); UDP: 'udp6'/'udp46' for IPv6 and dual-stack sockets. */
  proto: 'tcp' | 'udp' | 'udp6' | 'udp46';
  localAddress: string;
  localPort: number;
  foreignAddress: string;
  foreignPort: number;
  /** TCP state name (LISTEN, ESTABLISHED, TIME_WAIT…); "" for UDP. */
  state: string;
  /** Bytes received not yet read by the application (listeners: connections waiting for accept()). */
  recvQ: number;
  /** Bytes sent and not acknowledged, plus bytes not yet sent (listeners: the backlog). */
  sendQ: number;
}

export interface SysctlSnapshot { name: string; value: SysctlValue; type: string; default: SysctlValue; description: string; readonly: boolean; min?: number; max?: number; choices?: readonly string[] }

export interface Counters {
  ip: Record<string, number>;
  icmp: Record<string, number>;
  udp: Record<string, number>;
  tcp: Record<string, number>;
  arp: Record<string, number>;
  /** IPv4 reassembly. */
  reass: Record<string, number>;
  /** Packets the stack refused, by reason. */
  drops: Record<string, number>;
}

export interface StackSnapshot {
  name: string;
  /** The stack's clock (ms) when the snapshot was taken. */
  time: number;
  interfaces: InterfaceSnapshot[];
  counters: Counters;
  /** Gauges: connections by state, listeners, UDP sockets, ARP entries. */
  gauges: Record<string, number>;
  routes?: RouteSnapshot[];
  routes6?: Route6Snapshot[];
  arp?: ArpSnapshot[];
  /** IPv6 neighbours (NDP). */
  ndp?: NdpSnapshot[];
  sockets?: SocketSnapshot[];
  sysctl?: SysctlSnapshot[];
}

export interface SnapshotOptions {
  /** Include routes and ARP entries (cheap). Default true. */
  tables?: boolean;
  /** Include every TCP/UDP socket (walks the connection table). Default false. */
  sockets?: boolean;
  /** Include the sysctl registry. Default false. */
  sysctl?: boolean;
}

const ROUTE_FLAG_LETTERS: [number, string][] = [
  [RouteFlags.Up, 'U'], [RouteFlags.Gateway, 'G'], [RouteFlags.Host, 'H'], [RouteFlags.Static, 'S'], [RouteFlags.Connected, 'C'],
];

export function routeFlagString(flags: number): string {
  let s = '';
  for (const [bit, letter] of ROUTE_FLAG_LETTERS) if (flags & bit) s += letter;
  return s;
}

/** The counters and gauges only (what top, traffic and metrics sample). */
export function counters(stack: Stack): Counters {
  return {
    ip: { ...stack.ipStats },
    icmp: { ...stack.icmp.stats },
    udp: { ...stack.udp.stats },
    tcp: { ...stack.tcp.counters },
    arp: { ...stack.arp.stats },
    reass: { ...stack.reass.stats },
    drops: { ...stack.drops },
  };
}

export function interfaces(stack: Stack): InterfaceSnapshot[] {
  return stack.interfaces.map((i) => {
    const c = i.counters;
    return {
      index: i.index, name: i.name, mac: formatMac(i.mac), mtu: i.mtu, deviceMtu: i.dev.mtu, up: i.up,
      flags: [...(i.up ? ['UP'] : []), (i.dev as { pointToPoint?: boolean }).pointToPoint ? 'POINTOPOINT' : 'BROADCAST', ...(i.up ? ['RUNNING'] : []), 'MULTICAST'],
      inet: i.addrs.map((a) => ({ addr: formatIpv4(a.addr), prefixLen: a.prefixLen, broadcast: formatIpv4(a.broadcast) })),
      inet6: [...i.addrs6.map((a) => ({ addr: formatIpv6(a.addr), prefixLen: a.prefixLen })), ...stack.ip6.addresses(i.index).map((a) => ({ addr: a.addr, prefixLen: a.prefixLen }))],
      rxPackets: c.rxPackets, rxBytes: c.rxBytes, rxErrors: c.rxErrors, rxDropped: c.rxDropped, rxMulticast: c.rxMulticast,
      txPackets: c.txPackets, txBytes: c.txBytes, txErrors: c.txErrors, txDropped: c.txDropped,
      ...tunnelAndGroups(stack, i.index),
      ...(i.vlanId !== 0 && i.lower && { vlan: { parent: i.lower.name, id: i.vlanId, outer: i.vlanOuter } }),
      ...(i.dev instanceof BondDevice && { bond: { mode: i.dev.mode, members: i.dev.members.map((m) => m.name), active: i.dev.mode === 'active-backup' ? i.dev.activeName : '', failovers: i.dev.failovers } }),
      ...(i.master && { master: i.master.name }),
    };
  });
}

function tunnelAndGroups(stack: Stack, ifIndex: number): { tunnel?: string; groups?: string[] } {
  const t = stack.tunnels.devices.find((d) => d.ifIndex === ifIndex);
  const g = stack.ipv4.igmp.groups(ifIndex).map((x) => formatIpv4(x.group) + (x.mode === 'exclude' && x.sources.length === 0 ? '' : ` ${x.mode}(${x.sources.map(formatIpv4).join(',')})`));
  return { ...(t && { tunnel: t.describe() }), ...(g.length && { groups: g }) };
}

export function gauges(stack: Stack): Record<string, number> {
  const tcp = stack.tcp;
  return {
    tcpEstablished: tcp.currentEstablished(),
    tcpConnections: tcp.activeTcbs,
    tcpTimeWait: tcp.timeWaitCount,
    tcpListeners: tcp.listenerCount,
    udpSockets: stack.udp.socketCount,
    arpEntries: stack.arp.size,
    poolInUse: stack.pool.stats().inUse,
  };
}

export function routes(stack: Stack): RouteSnapshot[] {
  const name = (ifIndex: number) => stack.interfaceByIndex(ifIndex)?.name ?? `if${ifIndex}`;
  return stack.routes.list().map((r: Route) => ({
    destination: formatIpv4(r.dst), prefixLen: r.prefixLen, gateway: r.gateway ? formatIpv4(r.gateway) : '',
    flags: routeFlagString(r.flags), ifname: name(r.ifIndex), metric: r.metric,
  }));
}

export function routes6(stack: Stack): Route6Snapshot[] {
  return stack.ip6.routes.list(stack.clock.now()).map((r) => {
    const slash = r.prefix.lastIndexOf('/');
    const prefixLen = Number(r.prefix.slice(slash + 1));
    const f = r.flags;
    return {
      destination: r.prefix.slice(0, slash), prefixLen, gateway: r.gateway ?? '',
      flags: `U${f.includes('G') ? 'G' : ''}${prefixLen === 128 ? 'H' : ''}${f.includes('S') ? 'S' : ''}${f.includes('C') ? 'C' : ''}${f.includes('R') ? 'D' : ''}`,
      ifname: stack.interfaceByIndex(r.ifIndex)?.name ?? `if${r.ifIndex}`, metric: r.metric, expiresInMs: r.expiresInMs,
    };
  });
}

export function arpEntries(stack: Stack): ArpSnapshot[] {
  return stack.arp.list().map((e) => ({
    ip: e.ip, mac: e.mac, ifname: stack.interfaceByIndex(e.ifIndex)?.name ?? `if${e.ifIndex}`, state: e.state, queued: e.queued,
  }));
}

export function ndpEntries(stack: Stack): NdpSnapshot[] {
  return stack.ip6.ndp.list().map((e) => ({
    addr: e.addr, mac: e.mac, ifname: stack.interfaceByIndex(e.ifIndex)?.name ?? `if${e.ifIndex}`, state: e.state, router: e.router, queued: e.queued,
  }));
}

/** Every socket: TCP listeners, connections (TIME_WAIT included), then UDP sockets. */
export function sockets(stack: Stack): SocketSnapshot[] {
  const out: SocketSnapshot[] = [];
  const tcp = stack.tcp;
  for (const l of tcp.listenerInfo()) {
    const six = l.laddr6 !== undefined;
    out.push({ proto: 'tcp', localAddress: six ? formatIpv6(l.laddr6!) : formatIpv4(l.laddr), localPort: l.lport, foreignAddress: six ? '::' : '0.0.0.0', foreignPort: 0,
      state: 'LISTEN', recvQ: l.acceptQueue, sendQ: l.backlog });
  }
  // IPv6 connections by their 16-byte addresses (IPv4 ones keep dotted quads, mapped or not).
  for (const t of tcp.connections()) {
    const six = t.family === 6;
    out.push({ proto: 'tcp', localAddress: six ? formatIpv6(t.laddr6) : formatIpv4(t.laddr), localPort: t.lport,
      foreignAddress: six ? formatIpv6(t.raddr6) : formatIpv4(t.raddr), foreignPort: t.rport,
      state: t.stateName, recvQ: t.rcvBuf.length, sendQ: t.sndBuf.length });
  }
  for (const t of tcp.timeWaitEntries()) {
    const six = t.laddr6 !== undefined;
    out.push({ proto: 'tcp', localAddress: six ? formatIpv6(t.laddr6!) : formatIpv4(t.laddr), localPort: t.lport,
      foreignAddress: six ? formatIpv6(t.raddr6!) : formatIpv4(t.raddr), foreignPort: t.rport,
      state: TCP_STATE_NAMES[TcpState.TIME_WAIT], recvQ: 0, sendQ: 0 });
  }
  for (const u of stack.udp.sockets()) {
    if (u.family === 6) {
      // FreeBSD's netstat: udp46 for a :: socket that also hears IPv4.
      out.push({ proto: u.accepts4 && u.accepts6 ? 'udp46' : 'udp6', localAddress: u.accepts6 ? formatIpv6(u.local6!) : formatIpv4(u.localAddr), localPort: u.localPort,
        foreignAddress: u.remoteIs6 ? formatIpv6(u.remote6!) : u.remoteAddr ? formatIpv4(u.remoteAddr) : '::', foreignPort: u.remotePort, state: '', recvQ: u.pendingBytes, sendQ: 0 });
      continue;
    }
    out.push({ proto: 'udp', localAddress: formatIpv4(u.localAddr), localPort: u.localPort, foreignAddress: formatIpv4(u.remoteAddr),
      foreignPort: u.remotePort, state: '', recvQ: u.pendingBytes, sendQ: 0 });
  }
  return out;
}

export function sysctls(stack: Stack): SysctlSnapshot[] {
  return stack.sysctl.list().map(({ name, value, def }) => ({
    name, value, type: def.type, default: def.default, description: def.description, readonly: def.readonly === true,
    ...(def.min !== undefined && { min: def.min }), ...(def.max !== undefined && { max: def.max }),
    ...(def.choices !== undefined && { choices: def.choices }),
  }));
}

/** The whole picture of one stack. */
export function snapshot(stack: Stack, opts: SnapshotOptions = {}): StackSnapshot {
  const s: StackSnapshot = {
    name: stack.name, time: stack.clock.now(), interfaces: interfaces(stack), counters: counters(stack), gauges: gauges(stack),
  };
  if (opts.tables !== false) { s.routes = routes(stack); s.routes6 = routes6(stack); s.arp = arpEntries(stack); s.ndp = ndpEntries(stack); }
  if (opts.sockets) s.sockets = sockets(stack);
  if (opts.sysctl) s.sysctl = sysctls(stack);
  return s;
}
