// UDP (RFC 768, RFC 1122 §4.1) over IPv4 and IPv6 (RFC 8200 §8.1): sockets with
// bind/connect/send/receive, broadcast, bounded receive queues, port unreachable for closed
// ports, and ICMP/ICMPv6 errors for connected sockets. A socket is of one family, as a kernel
// socket is: an IPv4 socket keeps u32 addresses; an IPv6 socket keeps 16-byte ones in its own
// typed storage, and one bound to :: also receives IPv4 unless v6Only (the application sees
// such peers as ::ffff:a.b.c.d). Both families share one port space, as on Linux. A connected
// socket resolves its Path once and sends through it.
import { Csum, DEFAULT_HEADROOM, SMALL_BUF_SIZE, LARGE_BUF_SIZE, type PacketBuffer } from '../base/pktbuf.js';
import { UDP_HLEN, UdpView, finishUdpChecksumV4, finishUdpChecksumV6, writeUdpHeader } from '../wire/udp.js';
import { IpProto, IPV4_HLEN, type Ipv4View } from '../wire/ipv4.js';
import { IcmpType, UnreachCode } from '../wire/icmpv4.js';
import { isIpv4Multicast } from '../wire/addr.js';
import { WireError } from '../wire/errors.js';
import { NetError } from '../base/errors.js';
import type { BufferPool } from '../base/pktbuf.js';
import type { Sysctl, SysctlHandle } from './sysctl.js';
import type { Icmp } from './ip/icmp.js';
import { FilterMode, type Igmp, type SourceFilter } from './ip/igmp.js';
import { FilterMode6, type SourceFilter6 } from './ip/mld.js';
import { Icmpv6Type, Icmpv6UnreachCode } from '../wire/icmpv6.js';
import { IPV6_HLEN, Ipv6Next, isIpv6LinkLocal, isIpv6Multicast, isIpv6Unspecified, type Ipv6View } from '../wire/ipv6.js';
import { addr6Equals, copyAddr6 } from './ip/addr6.js';
import { Path } from './ip/path.js';
import { ReadyList } from './ready.js';
import type { Icmpv6 } from './ip/icmpv6.js';

/** What UDP needs from the stack (IPv4 implements it). */
export interface UdpContext {
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  readonly random: () => number;
  readonly icmp: Icmp;
  /** net.inet.ip.ttl: a new socket's TTL. */
  readonly defaultTtl: number;
  readonly portFirst: SysctlHandle<number>;
  readonly portLast: SysctlHandle<number>;
  drop(reason: string): void;
  isLocalAddress(addr: number): boolean;
  isBroadcastAddress(addr: number): boolean;
  /** The source address towards `dst`; 0 when there is no route. */
  sourceAddress(dst: number): number;
  interfaceByIndex(ifIndex: number): { readonly primary: number } | undefined;
  /** Group memberships and their reports. */
  readonly igmp: Igmp;
  /** The interface for a group: the one with address ifAddr, else by route (0 = none). */
  multicastIfIndex(group: number, ifAddr: number): number;
  /** Sends an L4 payload to a group on an interface (see Ipv4.multicastOutput). Takes ownership. */
  multicastOutput(buf: PacketBuffer, ifIndex: number, src: number, dst: number, proto: number, tos: number, ttl: number, loop: boolean): boolean;
  /** Sends an L4 payload as an IPv4 datagram. Takes ownership; false when there is no route. */
  ipOutput(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean;
  /** Resolves or revalidates a connected socket's path (Ipv4.resolvePath). */
  resolvePath(path: Path, src: number, dst: number): boolean;
  /** Sends along a path (Ipv4.pathOutput). Takes ownership. */
  pathOutput(path: Path, buf: PacketBuffer, proto: number, tos: number, ttl: number, df: boolean): boolean;
}

/** What UDP needs from IPv6 (Ipv6 implements it). */
export interface Udp6Context {
  readonly icmp: Icmpv6;
  isLocalAddress(b: Uint8Array, off: number, ifIndex?: number): boolean;
  /** Resolves or revalidates a path to dst[0..16) (Ipv6.resolvePath). */
  resolvePath(path: Path, src: Uint8Array | null, dst: Uint8Array): boolean;
  /** Sends along a path with the link's hop limit (Ipv6.pathOutput). Takes ownership. */
  pathOutput(path: Path, buf: PacketBuffer, nextHeader: number, trafficClass: number): boolean;
  /** An interface's IPv6 side: the source address it would use towards a destination (scoped sends). */
  link(ifIndex: number): { sourceFor(dst: Uint8Array, dstOff: number): { readonly addr: Uint8Array } | undefined } | undefined;
  /** The interface for an IPv6 group: `ifIndex` when it has IPv6, 0 = the first up link's (0 = none). */
  multicastIfIndex6(ifIndex: number): number;
  /** Sets `owner`'s MLDv2 filter for group[0..16) on an interface (Mld.setFilter); null leaves. */
  setMulticastFilter6(ifIndex: number, group: Uint8Array, owner: object, filter: SourceFilter6 | null): void;
  /**
   * Sends with an explicit hop limit (multicast, IPV6_UNICAST_HOPS) and interface (Ipv6.output);
   * `loop`: a multicast copy for our own listeners too (IPV6_MULTICAST_LOOP). Takes ownership.
   */
  output(buf: PacketBuffer, src: Uint8Array | null, srcOff: number, dst: Uint8Array, dstOff: number, nextHeader: number,
    hopLimit?: number, trafficClass?: number, ifIndex?: number, loop?: boolean): boolean;
}

export const UDP_MAX_PAYLOAD = 65535 - IPV4_HLEN - UDP_HLEN;
/** IPv6's payload length counts no IP header (RFC 8200 §3); no jumbograms. */
export const UDP6_MAX_PAYLOAD = 65535 - UDP_HLEN;

export function defineUdpSysctls(s: Sysctl): void {
  s.define({ name: 'net.inet.udp.recvspace', type: 'int', default: 262144, min: 1024, max: 1 << 30, description: 'default UDP receive queue limit in bytes' });
  s.define({ name: 'net.inet.udp.checksum', type: 'bool', default: true, description: 'compute checksums on sent UDP datagrams' });
  s.define({ name: 'net.inet.udp.blackhole', type: 'bool', default: false, description: 'do not answer datagrams to closed ports with ICMP port unreachable' });
}

/** A queued datagram: an IPv4 source in `addr`, or an IPv6 one in `addr6` (then addr is 0). */
export interface UdpMessage { data: Uint8Array; addr: number; port: number; addr6: Uint8Array | null; }

/** Socket families (AF_INET, AF_INET6). */
export const UdpFamily = { V4: 4, V6: 6 } as const;
export type UdpFamily = (typeof UdpFamily)[keyof typeof UdpFamily];

/** A socket's membership of a group on one interface, with its source filter (RFC 3678 semantics). */
export interface UdpMembership { ifIndex: number; mode: number; sources: number[]; }

/** An IPv6 socket's membership of an IPv6 group (RFC 3810 §3's per-socket state). */
export interface UdpMembership6 { group: Uint8Array; ifIndex: number; mode: number; sources: Uint8Array[]; }

export class UdpSocket {
  /** IPv4 local and remote addresses (u32; 0 = any / none). An IPv6 socket uses them for its IPv4 (v4-mapped) side. */
  localAddr = 0;
  localPort = 0;
  remoteAddr = 0;
  remotePort = 0;
  /** IPv6 socket: local and remote addresses (16 bytes; :: = any), allocated with the socket. */
  readonly local6: Uint8Array | null;
  readonly remote6: Uint8Array | null;
  /** The peer fixed by connect() is an IPv6 address (in remote6). */
  remoteIs6 = false;
  /** IPv6 socket: bound to :: (or not bound yet). */
  anyLocal6 = true;
  /** IPV6_UNICAST_HOPS for IPv6 datagrams; -1 = the link's hop limit. */
  hopLimit = -1;
  /** IPV6_V6ONLY: an IPv6 socket bound to :: receives no IPv4. Set before bind. */
  v6Only = false;
  /** Which families' datagrams can reach this socket (fixed at bind). */
  accepts4: boolean;
  accepts6: boolean;
  /** IPv6 interface (scope) of a link-local local or remote address; 0 = none. */
  scope = 0;
  /** A connected socket's path (unicast peers), resolved at connect() and revalidated per datagram. */
  path: Path | null = null;
  broadcast = false;
  reuseAddr = false;
  /** Unicast TTL (IP_TTL); starts at net.inet.ip.ttl. */
  ttl: number;
  tos = 0;
  recvBufSize: number;
  closed = false;
  /** Groups joined, by group address. */
  readonly memberships = new Map<number, UdpMembership>();
  /** IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_MULTICAST_IF (an address; 0 = by route). */
  mcastTtl = 1;
  mcastLoop = true;
  mcastIf = 0;
  /** IPv6 groups joined (IPV6_JOIN_GROUP, MCAST_JOIN_SOURCE_GROUP). */
  readonly memberships6: UdpMembership6[] = [];
  /** IPV6_MULTICAST_IF: the interface index IPv6 multicast leaves by (0 = the first up link). */
  mcastIf6 = 0;
  // Datagrams queue (bounded by recvBufSize) as they arrive; the stack delivers each socket's
  // events once per receive burst (Udp.deliverEvents, from Stack.poll):
  /**
   * Receive mode 1: the burst's datagrams are handed over one call each, in order. An IPv6
   * source comes in `addr6` (addr is then 0); an IPv4 one in `addr` with addr6 null.
   */
  onMessage: ((data: Uint8Array, addr: number, port: number, addr6: Uint8Array | null) => void) | null = null;
  /** Receive mode 2 (onMessage unset): datagrams stay queued for recv(); onReadable says, once per burst, that some arrived. */
  onReadable: (() => void) | null = null;
  /** Asynchronous errors (ICMP) on a connected socket: ECONNREFUSED, EHOSTUNREACH, EMSGSIZE... (after the burst's datagrams). */
  onError: ((err: NetError) => void) | null = null;
  /** Queued datagrams are queue[queueHead..]. */
  private readonly queue: (UdpMessage | undefined)[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  /** The last ICMP error of the burst, for onError (Linux keeps one pending error too: sk_err). */
  private pendingError: NetError | null = null;
  /** @internal on the Udp's ready list. */
  ready = false;
  stats = { received: 0, sent: 0, dropped: 0 };

  constructor(private readonly udp: Udp, readonly family: UdpFamily = UdpFamily.V4) {
    this.recvBufSize = udp.ctx.sysctl.int('net.inet.udp.recvspace');
    this.ttl = udp.ctx.defaultTtl;
    const v6 = family === UdpFamily.V6;
    this.local6 = v6 ? new Uint8Array(16) : null;
    this.remote6 = v6 ? new Uint8Array(16) : null;
    this.accepts4 = true;
    this.accepts6 = v6;
  }

  get connected(): boolean { return this.remotePort !== 0; }
  get bound(): boolean { return this.localPort !== 0; }
  get pending(): number { return this.queue.length - this.queueHead; }
  /** Bytes of queued datagrams (netstat's Recv-Q). */
  get pendingBytes(): number { return this.queuedBytes; }

  /** Binds to addr (0 = any) and port (0 = ephemeral). Throws NetError EADDRINUSE / EADDRNOTAVAIL / EINVAL. */
  bind(addr = 0, port = 0): void {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    if (this.bound) throw new NetError('EINVAL', 'socket is already bound');
    this.udp.bind(this, addr, port);
  }

  /** Fixes the peer: send() without an address goes there, and only its datagrams are received. */
  connect(addr: number, port: number): void {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    if (port <= 0 || port > 65535) throw new NetError('EINVAL', 'bad port');
    if (addr === 0 || addr === 0xffffffff && !this.broadcast) throw new NetError(addr === 0 ? 'EINVAL' : 'EACCES', 'bad destination');
    if (this.udp.ctx.sourceAddress(addr) === 0) throw new NetError('ENETUNREACH', 'no route to destination');
    if (!this.bound) this.bindAny(addr, port);
    const ctx = this.udp.ctx;
    // Unicast peers get a path, resolved once; broadcast and multicast keep per-datagram output.
    if (!isIpv4Multicast(addr) && !ctx.isBroadcastAddress(addr)) {
      const src = this.localAddr !== 0 && !isIpv4Multicast(this.localAddr) && this.localAddr !== 0xffffffff ? this.localAddr : 0;
      if (this.path === null || this.path.family !== 4) this.path = new Path();
      if (!ctx.resolvePath(this.path, src, addr)) this.path.reset();
    } else {
      this.path?.reset();
    }
    if (this.remoteIs6) { this.remote6!.fill(0); this.remoteIs6 = false; }
    this.remoteAddr = addr;
    this.remotePort = port;
  }

  /** The implicit bind of connect() and send(): an ephemeral port, chosen knowing the first peer (IPv4). */
  private bindAny(raddr = 0, rport = 0): void {
    if (this.family === UdpFamily.V6) this.udp.bind6(this, UNSPECIFIED6, 0, 0, 0);
    else this.udp.bind(this, 0, 0, raddr, rport);
  }

  disconnect(): void {
    this.remoteAddr = 0; this.remotePort = 0;
    if (this.remoteIs6) { this.remote6!.fill(0); this.remoteIs6 = false; }
    this.path?.reset();
  }

  /**
   * IPv6 socket: binds to the address at addr[off..] (:: = any; ::ffff:a.b.c.d = that IPv4
   * address only) and port (0 = ephemeral). `scope`: the interface of a link-local address.
   */
  bind6(addr: Uint8Array, off: number, port = 0, scope = 0): void {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    if (this.family !== UdpFamily.V6) throw new NetError('EAFNOSUPPORT', 'not an IPv6 socket');
    if (this.bound) throw new NetError('EINVAL', 'socket is already bound');
    this.udp.bind6(this, addr, off, port, scope);
  }

  /** IPv6 socket: connect() to addr[off..] (a v4-mapped address connects over IPv4). */
  connect6(addr: Uint8Array, off: number, port: number, scope = 0): void {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    if (this.family !== UdpFamily.V6) throw new NetError('EAFNOSUPPORT', 'not an IPv6 socket');
    if (port <= 0 || port > 65535) throw new NetError('EINVAL', 'bad port');
    const v4 = mappedV4(addr, off);
    if (v4 >= 0) {
      if (!this.accepts4 && this.bound || this.v6Only) throw new NetError('ENETUNREACH', 'IPv4 peer on an IPv6-only socket');
      this.connect(v4, port);
      return;
    }
    if (scope !== 0) this.scope = scope;
    if (this.bound && !this.accepts6) throw new NetError('ENETUNREACH', 'IPv6 peer on a socket bound to an IPv4 address');
    // Linux (ip6_datagram_connect): connecting to :: connects to ::1.
    const dst = isIpv6Unspecified(addr, off) ? LOOPBACK6 : addr;
    const dOff = dst === addr ? off : 0;
    if (this.path === null || this.path.family !== 6) { this.path = new Path(); this.path.makeV6(); }
    const path = this.path;
    if (!this.udp.ctx6 || !this.udp.ctx6.resolvePath(path, this.fixedSource6(), dOff === 0 ? dst : dst.subarray(dOff, dOff + 16))) {
      path.reset();
      throw new NetError('ENETUNREACH', 'no route to destination');
    }
    if (!this.bound) this.udp.bind6(this, UNSPECIFIED6, 0, 0, 0);
    copyAddr6(this.remote6!, 0, dst, dOff);
    this.remoteIs6 = true;
    this.remoteAddr = 0;
    this.remotePort = port;
  }

  /** IPv6 socket: sends one datagram to addr[off..] (a v4-mapped address goes over IPv4). Throws NetError as send(). */
  send6(data: Uint8Array, addr: Uint8Array, off: number, port: number, scope = 0): void {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    if (this.family !== UdpFamily.V6) throw new NetError('EAFNOSUPPORT', 'not an IPv6 socket');
    if (port <= 0 || port > 65535) throw new NetError('EINVAL', 'bad port');
    const v4 = mappedV4(addr, off);
    if (v4 >= 0) {
      if (this.v6Only || (this.bound && !this.accepts4)) throw new NetError('ENETUNREACH', 'IPv4 destination on an IPv6-only socket');
      this.send(data, v4, port);
      return;
    }
    if (this.connected && !(this.remoteIs6 && this.remotePort === port && addr6Equals(this.remote6!, 0, addr, off))) throw new NetError('EISCONN', 'socket is connected');
    if (this.bound && !this.accepts6) throw new NetError('ENETUNREACH', 'IPv6 destination on a socket bound to an IPv4 address');
    if (!this.bound) this.udp.bind6(this, UNSPECIFIED6, 0, 0, 0);
    const dst = isIpv6Unspecified(addr, off) ? LOOPBACK6 : addr;
    this.udp.output6(this, data, dst, dst === addr ? off : 0, port, scope || this.scope);
    this.stats.sent++;
  }

  /** The source an IPv6 socket's datagrams must carry: its bound unicast address, else null (chosen per route). */
  fixedSource6(): Uint8Array | null {
    const l = this.local6!;
    if (this.anyLocal6) return null;
    return isIpv6Unspecified(l, 0) || isIpv6Multicast(l, 0) ? null : l;
  }

  /** Sends one datagram. Throws NetError (EMSGSIZE, EACCES, ENETUNREACH, EDESTADDRREQ, EISCONN). */
  send(data: Uint8Array, addr?: number, port?: number): void {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    let dst = this.remoteAddr, dport = this.remotePort;
    if (addr !== undefined && port !== undefined) {
      if (this.connected && (addr !== this.remoteAddr || port !== this.remotePort)) throw new NetError('EISCONN', 'socket is connected');
      dst = addr; dport = port;
    }
    if (dport === 0) throw new NetError('EDESTADDRREQ', 'no destination');
    if (dport < 0 || dport > 65535) throw new NetError('EINVAL', 'bad port');
    if (!this.bound) this.bindAny(dst, dport);
    if (this.remoteIs6 && dst === 0) this.udp.output6(this, data, this.remote6!, 0, dport, this.scope);
    else this.udp.output(this, data, dst, dport);
    this.stats.sent++;
  }

  /** Next queued datagram (receive mode 2), or null. */
  recv(): UdpMessage | null {
    const q = this.queue;
    if (this.queueHead === q.length) return null;
    const m = q[this.queueHead]!;
    q[this.queueHead++] = undefined;
    if (this.queueHead === q.length) { q.length = 0; this.queueHead = 0; }
    this.queuedBytes -= m.data.length;
    return m;
  }

  /**
   * IP_ADD_MEMBERSHIP: joins `group` (any source) on the interface owning `ifAddr` (0: by
   * route). Throws NetError EINVAL (not multicast), ENODEV (no interface), EADDRINUSE (joined).
   */
  addMembership(group: number, ifAddr = 0): void {
    const ifIndex = this.#membershipIf(group, ifAddr);
    if (this.memberships.has(group)) throw new NetError('EADDRINUSE', 'already a member');
    this.#setFilter(group, { ifIndex, mode: FilterMode.Exclude, sources: [] });
  }

  /** IP_DROP_MEMBERSHIP. Throws NetError EADDRNOTAVAIL when not a member. */
  dropMembership(group: number, _ifAddr = 0): void {
    if (!isIpv4Multicast(group)) throw new NetError('EINVAL', 'not a multicast address');
    if (!this.memberships.has(group)) throw new NetError('EADDRNOTAVAIL', 'not a member');
    this.#setFilter(group, null);
  }

  /**
   * IP_ADD_SOURCE_MEMBERSHIP: receive `group` from `source` (INCLUDE mode). Throws EINVAL when
   * the group was joined for any source (as Linux), EADDRNOTAVAIL when the source is there.
   */
  addSourceMembership(group: number, source: number, ifAddr = 0): void {
    const ifIndex = this.#membershipIf(group, ifAddr);
    if (source === 0 || isIpv4Multicast(source) || source === 0xffffffff) throw new NetError('EINVAL', 'bad source address');
    const m = this.memberships.get(group);
    if (m && m.mode !== FilterMode.Include) throw new NetError('EINVAL', 'group joined for any source');
    if (m && m.sources.includes(source)) throw new NetError('EADDRNOTAVAIL', 'source already joined');
    this.#setFilter(group, { ifIndex: m?.ifIndex ?? ifIndex, mode: FilterMode.Include, sources: [...(m?.sources ?? []), source] });
  }

  /** IP_DROP_SOURCE_MEMBERSHIP: the last source dropped leaves the group. */
  dropSourceMembership(group: number, source: number, _ifAddr = 0): void {
    if (!isIpv4Multicast(group)) throw new NetError('EINVAL', 'not a multicast address');
    const m = this.memberships.get(group);
    if (!m || m.mode !== FilterMode.Include || !m.sources.includes(source)) throw new NetError('EADDRNOTAVAIL', 'not a member from that source');
    const rest = m.sources.filter((x) => x !== source);
    this.#setFilter(group, rest.length ? { ifIndex: m.ifIndex, mode: FilterMode.Include, sources: rest } : null);
  }

  /** Whether a datagram to `group` from `src` that arrived on `ifIndex` passes this socket's filter. */
  wantsMulticast(group: number, src: number, ifIndex: number): boolean {
    const m = this.memberships.get(group);
    if (m === undefined || (ifIndex !== 0 && m.ifIndex !== ifIndex)) return false;
    const has = m.sources.includes(src);
    return m.mode === FilterMode.Include ? has : !has;
  }

  #membershipIf(group: number, ifAddr: number): number {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    if (!isIpv4Multicast(group)) throw new NetError('EINVAL', 'not a multicast address');
    const ifIndex = this.udp.ctx.multicastIfIndex(group, ifAddr);
    // Linux (ip_mc_find_dev): ENODEV when no interface has the address or the route.
    if (ifIndex === 0) throw new NetError('ENODEV', 'no interface for the group');
    return ifIndex;
  }

  #setFilter(group: number, m: UdpMembership | null): void {
    const old = this.memberships.get(group);
    if (old && (!m || old.ifIndex !== m.ifIndex)) this.udp.ctx.igmp.setFilter(old.ifIndex, group, this, null);
    if (m) {
      this.memberships.set(group, m);
      const f: SourceFilter = { mode: m.mode, sources: m.sources };
      this.udp.ctx.igmp.setFilter(m.ifIndex, group, this, f);
    } else this.memberships.delete(group);
  }

  /**
   * IPV6_JOIN_GROUP: joins group[off..] (any source) on interface `ifIndex` (0: the first up
   * link's, as a kernel picks by route). Throws NetError EINVAL (not multicast), ENODEV (no
   * interface with IPv6), EADDRINUSE (joined).
   */
  addMembership6(group: Uint8Array, off: number, ifIndex = 0): void {
    const i = this.#membershipIf6(group, off, ifIndex);
    if (this.#find6(group, off) !== undefined) throw new NetError('EADDRINUSE', 'already a member');
    this.#setFilter6(group, off, { group: group.slice(off, off + 16), ifIndex: i, mode: FilterMode6.Exclude, sources: [] });
  }

  /** IPV6_LEAVE_GROUP. Throws NetError EADDRNOTAVAIL when not a member. */
  dropMembership6(group: Uint8Array, off: number): void {
    if (!isIpv6Multicast(group, off)) throw new NetError('EINVAL', 'not a multicast address');
    if (this.#find6(group, off) === undefined) throw new NetError('EADDRNOTAVAIL', 'not a member');
    this.#setFilter6(group, off, null);
  }

  /** MCAST_JOIN_SOURCE_GROUP (IPv6): receive group[gOff..] from source[sOff..] (INCLUDE mode); errors as addSourceMembership. */
  addSourceMembership6(group: Uint8Array, gOff: number, source: Uint8Array, sOff: number, ifIndex = 0): void {
    const i = this.#membershipIf6(group, gOff, ifIndex);
    if (isIpv6Unspecified(source, sOff) || isIpv6Multicast(source, sOff)) throw new NetError('EINVAL', 'bad source address');
    const m = this.#find6(group, gOff);
    if (m && m.mode !== FilterMode6.Include) throw new NetError('EINVAL', 'group joined for any source');
    if (m && m.sources.some((x) => addr6Equals(x, 0, source, sOff))) throw new NetError('EADDRNOTAVAIL', 'source already joined');
    const sources = [...(m?.sources ?? []), source.slice(sOff, sOff + 16)];
    this.#setFilter6(group, gOff, { group: group.slice(gOff, gOff + 16), ifIndex: m?.ifIndex ?? i, mode: FilterMode6.Include, sources });
  }

  /** MCAST_LEAVE_SOURCE_GROUP (IPv6): the last source dropped leaves the group. */
  dropSourceMembership6(group: Uint8Array, gOff: number, source: Uint8Array, sOff: number): void {
    if (!isIpv6Multicast(group, gOff)) throw new NetError('EINVAL', 'not a multicast address');
    const m = this.#find6(group, gOff);
    if (!m || m.mode !== FilterMode6.Include || !m.sources.some((x) => addr6Equals(x, 0, source, sOff))) throw new NetError('EADDRNOTAVAIL', 'not a member from that source');
    const rest = m.sources.filter((x) => !addr6Equals(x, 0, source, sOff));
    this.#setFilter6(group, gOff, rest.length ? { group: m.group, ifIndex: m.ifIndex, mode: FilterMode6.Include, sources: rest } : null);
  }

  /**
   * Whether an IPv6 datagram to group b[groupOff..] from b[srcOff..] that arrived on `ifIndex`
   * passes this socket's filter. A socket that has not joined the group receives what the
   * link receives, as Linux's default IPV6_MULTICAST_ALL (inet6_mc_check).
   */
  wantsMulticast6(b: Uint8Array, groupOff: number, srcOff: number, ifIndex: number): boolean {
    const m = this.#find6(b, groupOff);
    if (m === undefined) return true;
    if (ifIndex !== 0 && m.ifIndex !== ifIndex) return false;
    let has = false;
    for (const x of m.sources) if (addr6Equals(x, 0, b, srcOff)) { has = true; break; }
    return m.mode === FilterMode6.Include ? has : !has;
  }

  #find6(group: Uint8Array, off: number): UdpMembership6 | undefined {
    for (const m of this.memberships6) if (addr6Equals(m.group, 0, group, off)) return m;
    return undefined;
  }

  #membershipIf6(group: Uint8Array, off: number, ifIndex: number): number {
    if (this.closed) throw new NetError('EBADF', 'socket is closed');
    if (this.family !== UdpFamily.V6) throw new NetError('EINVAL', 'an IPv6 group needs an IPv6 socket');
    if (!isIpv6Multicast(group, off)) throw new NetError('EINVAL', 'not a multicast address');
    const i = this.udp.ctx6?.multicastIfIndex6(ifIndex) ?? 0;
    // Linux (ipv6_sock_mc_join): ENODEV when there is no such interface or route.
    if (i === 0) throw new NetError('ENODEV', 'no interface with IPv6 for the group');
    return i;
  }

  #setFilter6(group: Uint8Array, off: number, m: UdpMembership6 | null): void {
    const ctx6 = this.udp.ctx6!;
    const old = this.#find6(group, off);
    if (old && (!m || old.ifIndex !== m.ifIndex)) ctx6.setMulticastFilter6(old.ifIndex, old.group, this, null);
    if (old) this.memberships6.splice(this.memberships6.indexOf(old), 1);
    if (m) {
      this.memberships6.push(m);
      ctx6.setMulticastFilter6(m.ifIndex, m.group, this, { mode: m.mode, sources: m.sources });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const g of [...this.memberships.keys()]) this.#setFilter(g, null);
    for (const m of [...this.memberships6]) this.#setFilter6(m.group, 0, null);
    this.udp.unbind(this);
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.pendingError = null;
  }

  /** @internal a datagram arrived (`addr6`: an IPv6 source, copied; else null). False when the queue is full. */
  deliver(data: Uint8Array, addr: number, port: number, addr6: Uint8Array | null): boolean {
    this.stats.received++;
    if (this.queuedBytes + data.length > this.recvBufSize) { this.stats.dropped++; return false; }
    this.queue.push({ data, addr, port, addr6: addr6 === null ? null : addr6.slice() });
    this.queuedBytes += data.length;
    this.udp.markReady(this);
    return true;
  }

  /** @internal datagrams or an error wait for deliverEvents(). */
  get hasEvents(): boolean { return this.queueHead < this.queue.length || this.pendingError !== null; }

  /** @internal an ICMP error for a connected socket, reported after the burst's datagrams. */
  raiseError(err: NetError): void {
    this.pendingError = err;
    this.udp.markReady(this);
  }

  /**
   * @internal The socket's one delivery per burst: every queued datagram to onMessage (mode 1)
   * or one onReadable (mode 2), then the pending error. A callback may close the socket: the
   * rest is then dropped. Events a callback raises on this socket wait for the next delivery.
   */
  deliverEvents(): void {
    if (this.onMessage !== null) {
      const q = this.queue;
      // Each message leaves the queue before its callback runs (a callback that throws does
      // not see it again); the ones after it stay queued.
      while (this.queueHead < q.length && this.onMessage !== null) {
        const m = q[this.queueHead]!;
        q[this.queueHead++] = undefined;
        this.queuedBytes -= m.data.length;
        if (this.queueHead === q.length) { q.length = 0; this.queueHead = 0; }
        this.onMessage(m.data, m.addr, m.port, m.addr6);
      }
    } else if (this.queueHead < this.queue.length) {
      this.onReadable?.();
    }
    const err = this.pendingError;
    if (err !== null && !this.closed) {
      this.pendingError = null;
      this.onError?.(err);
    }
  }
}

/** A UDP encapsulation (VXLAN): the payload at buf[off, off+len) of a datagram to its port. Takes ownership. */
export type UdpEncapInput = (ip: Ipv4View, buf: PacketBuffer, off: number, len: number) => void;

export class Udp {
  /**
   * Unicast datagrams to these local ports go to a tunnel's decapsulation before any socket
   * (Linux's encap_rcv).
   */
  readonly encap = new Map<number, UdpEncapInput>();
  /**
   * Ownership of ephemeral ports with several workers (src/runtime/worker.ts): when set, a port
   * is chosen only if portFilter(lport, laddr, raddr, rport) — raddr 0 when the peer is not
   * known yet (an explicit bind to port 0). F-Stack's ff_rss_check, extended to UDP.
   */
  portFilter: ((lport: number, laddr: number, raddr: number, rport: number) => boolean) | null = null;
  /** Bound sockets by local port (both families: one port space, as on Linux). */
  private readonly ports = new Map<number, UdpSocket[]>();
  private readonly view = new UdpView();
  private nextEphemeral = 0;
  /** IPv6, once the stack attached it (attach6). */
  ctx6: Udp6Context | null = null;
  /** Unconnected IPv6 sends resolve this path (cached while the same socket sends to the same peer). */
  private readonly sendPath6 = new Path();
  private sendPath6Owner: UdpSocket | null = null;
  /** An IPv6 datagram's source, handed to the socket during delivery. */
  private readonly src6 = new Uint8Array(16);
  stats = {
    received: 0, delivered: 0, sent: 0, noPort: 0, badChecksum: 0, badLength: 0, fullSocket: 0,
    /** IPv6 datagrams among the above, and those refused for a zero checksum (RFC 8200 §8.1). */
    received6: 0, sent6: 0, zeroChecksum6: 0,
  };
  /** A local port got its first socket (true) or lost its last (false); the Stack's watchPorts. */
  onPortChanged: ((proto: number, port: number, inUse: boolean) => void) | null = null;
  /** Sockets with datagrams or errors to deliver (ready.ts); a closed one is skipped. */
  private readonly ready = new ReadyList<UdpSocket>((s) => { if (!s.closed) s.deliverEvents(); }, (s) => !s.closed && s.hasEvents);

  constructor(readonly ctx: UdpContext) {
    ctx.icmp.handlers.set(IpProto.UDP, (type, code, info, inner, l4Off) => this.icmpError(type, code, info, inner, l4Off));
  }

  /** Enables UDP over IPv6 (the stack calls it once; ICMPv6 errors about UDP come here). */
  attach6(ctx6: Udp6Context): void {
    this.ctx6 = ctx6;
    ctx6.icmp.handlers.set(Ipv6Next.UDP, (type, code, word, bytes, ipOff, l4Off, l4Len) => this.icmp6Error(type, code, word, bytes, ipOff, l4Off, l4Len));
  }

  /** @internal `s` has datagrams or an error for its next delivery. */
  markReady(s: UdpSocket): void { this.ready.mark(s); }

  /** True when sockets wait for deliverEvents(). */
  get eventsPending(): boolean { return this.ready.pending; }

  /**
   * Delivers what the burst raised: each ready socket once (UdpSocket.deliverEvents). Callbacks
   * may send, close and open sockets.
   */
  deliverEvents(): void { this.ready.deliver(); }

  /** A new socket: IPv4 (AF_INET, the default) or IPv6 (AF_INET6). */
  open(family: UdpFamily = UdpFamily.V4): UdpSocket { return new UdpSocket(this, family); }

  /** Bound local ports (allocates: for subscribers). */
  portsInUse(): number[] { return [...this.ports.keys()]; }

  /** Bound sockets (allocates: tools). */
  sockets(): UdpSocket[] {
    const out: UdpSocket[] = [];
    for (const l of this.ports.values()) out.push(...l);
    return out;
  }

  get socketCount(): number { let n = 0; for (const l of this.ports.values()) n += l.length; return n; }

  /** @internal IPv4 bind (also an IPv6 socket's bind to a v4-mapped address); raddr:rport, the first peer when known. */
  bind(s: UdpSocket, addr: number, port: number, raddr = 0, rport = 0): void {
    if (addr !== 0 && !this.ctx.isLocalAddress(addr) && !isIpv4Multicast(addr) && addr !== 0xffffffff) {
      throw new NetError('EADDRNOTAVAIL', 'address not on this stack');
    }
    if (s.family === UdpFamily.V6) {
      // ::ffff:a.b.c.d (or :: with an IPv4 peer): the IPv4 side only.
      if (s.v6Only && addr !== 0) throw new NetError('EINVAL', 'IPv4 address on an IPv6-only socket');
      if (addr !== 0) { writeMapped(s.local6!, addr); s.accepts6 = false; s.accepts4 = true; s.anyLocal6 = false; }
      else { s.accepts6 = true; s.accepts4 = !s.v6Only; s.anyLocal6 = true; }
    }
    s.localAddr = addr;
    try { this.place(s, port, raddr, rport); } catch (e) { this.unplace(s); throw e; }
  }

  /** @internal IPv6 bind: addr[off..] (:: = any, ::ffff:a.b.c.d = that IPv4 address). */
  bind6(s: UdpSocket, addr: Uint8Array, off: number, port: number, scope: number): void {
    const v4 = mappedV4(addr, off);
    if (v4 >= 0) { this.bind(s, v4, port); return; }
    const any = isIpv6Unspecified(addr, off);
    if (!any && !isIpv6Multicast(addr, off) && !this.ctx6?.isLocalAddress(addr, off, scope)) {
      throw new NetError('EADDRNOTAVAIL', 'address not on this stack');
    }
    copyAddr6(s.local6!, 0, addr, off);
    s.anyLocal6 = any;
    s.accepts6 = true;
    s.accepts4 = any && !s.v6Only;
    s.localAddr = 0;
    s.scope = scope;
    try { this.place(s, port); } catch (e) { this.unplace(s); throw e; }
  }

  /** Puts a socket whose local address is set on `port` (0: an ephemeral one). */
  private place(s: UdpSocket, port: number, raddr = 0, rport = 0): void {
    if (port === 0) port = this.ephemeral(s, raddr, rport);
    else if (port < 0 || port > 65535) throw new NetError('EINVAL', 'bad port');
    const list = this.ports.get(port);
    if (list) {
      for (const o of list) {
        if (overlaps(s, o) && !(o.reuseAddr && s.reuseAddr)) throw new NetError('EADDRINUSE', `port ${port} in use`);
      }
      list.push(s);
    } else {
      this.ports.set(port, [s]);
      this.onPortChanged?.(17, port, true);
    }
    s.localPort = port;
  }

  /** Undoes a failed bind's address choice. */
  private unplace(s: UdpSocket): void {
    s.localAddr = 0;
    if (s.family === UdpFamily.V6) { s.local6!.fill(0); s.anyLocal6 = true; s.accepts4 = true; s.accepts6 = true; s.scope = 0; }
  }

  /** Whether a datagram to addr:port would find a socket (the routing policy asks, not the hot path). */
  hasSocket(addr: number, port: number): boolean {
    const list = this.ports.get(port);
    if (list === undefined) return false;
    // A loop, not some(): the workers' steering asks this per received datagram.
    for (const o of list) if (!o.closed && o.accepts4 && (o.localAddr === 0 || o.localAddr === addr)) return true;
    return false;
  }

  /** hasSocket for an IPv6 destination at addr[off..]. */
  hasSocket6(addr: Uint8Array, off: number, port: number): boolean {
    const list = this.ports.get(port);
    if (list === undefined) return false;
    for (const o of list) if (!o.closed && o.accepts6 && (o.anyLocal6 || addr6Equals(o.local6!, 0, addr, off))) return true;
    return false;
  }

  /** @internal */
  unbind(s: UdpSocket): void {
    const list = this.ports.get(s.localPort);
    if (!list) return;
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
    if (this.sendPath6Owner === s) this.sendPath6Owner = null;
    if (list.length === 0) {
      this.ports.delete(s.localPort);
      this.onPortChanged?.(17, s.localPort, false);
    }
  }

  private ephemeral(s: UdpSocket, raddr: number, rport: number): number {
    const first = this.ctx.portFirst.value;
    const last = this.ctx.portLast.value;
    const n = last - first + 1;
    if (this.nextEphemeral === 0) this.nextEphemeral = Math.floor(this.ctx.random() * n);
    const mine = this.portFilter;
    const laddr = mine === null ? 0 : s.localAddr !== 0 ? s.localAddr : raddr !== 0 ? this.ctx.sourceAddress(raddr) : 0;
    for (let i = 0; i < n; i++) {
      const p = first + ((this.nextEphemeral + i) % n);
      if (mine !== null && !mine(p, laddr, raddr, rport)) continue;
      const list = this.ports.get(p);
      if (!list || !list.some((o) => overlaps(s, o))) {
        this.nextEphemeral = (this.nextEphemeral + i + 1) % n;
        return p;
      }
    }
    throw new NetError('EADDRNOTAVAIL', 'no free ephemeral port');
  }

  /** @internal Builds and sends one IPv4 datagram. */
  output(s: UdpSocket, data: Uint8Array, dst: number, dport: number): void {
    const len = data.length;
    if (len > UDP_MAX_PAYLOAD) throw new NetError('EMSGSIZE', `datagram of ${len} bytes is too large`);
    const ctx = this.ctx;
    const path = s.path;
    // A connected socket's own peer: the path resolved at connect(), revalidated by one comparison.
    if (path !== null && path.generation >= 0 && path.family === 4 && dst === s.remoteAddr && dport === s.remotePort) {
      const fixed = s.localAddr !== 0 && !isIpv4Multicast(s.localAddr) && s.localAddr !== 0xffffffff ? s.localAddr : 0;
      if (!ctx.resolvePath(path, fixed, dst)) throw new NetError('ENETUNREACH', 'no route to destination');
      const buf = this.build(s, data, dport);
      if (ctx.sysctl.bool('net.inet.udp.checksum')) finishUdpChecksumV4(buf.data, buf.start, buf.length, path.src, dst);
      this.stats.sent++;
      if (!ctx.pathOutput(path, buf, IpProto.UDP, s.tos, s.ttl, false)) throw new NetError('ENETUNREACH', 'no route to destination');
      return;
    }
    const toBroadcast = dst === 0xffffffff || ctx.isBroadcastAddress(dst);
    if (toBroadcast && !s.broadcast) throw new NetError('EACCES', 'broadcast not enabled on this socket (setBroadcast)');
    let src = s.localAddr;
    // Multicast leaves by IP_MULTICAST_IF's interface, else the group's route, else the first.
    const mcastIf = isIpv4Multicast(dst) ? ctx.multicastIfIndex(dst, s.mcastIf) : 0;
    if (isIpv4Multicast(dst) && mcastIf === 0) throw new NetError('ENETUNREACH', 'no interface for multicast');
    if (src === 0 || isIpv4Multicast(src) || src === 0xffffffff) {
      src = mcastIf === 0 ? ctx.sourceAddress(dst) : s.mcastIf !== 0 ? s.mcastIf : ctx.interfaceByIndex(mcastIf)?.primary ?? 0;
    }
    if (src === 0) throw new NetError('ENETUNREACH', 'no route to destination');
    const buf = this.build(s, data, dport);
    if (ctx.sysctl.bool('net.inet.udp.checksum')) finishUdpChecksumV4(buf.data, buf.start, buf.length, src, dst);
    this.stats.sent++;
    if (mcastIf !== 0) {
      if (!ctx.multicastOutput(buf, mcastIf, src, dst, IpProto.UDP, s.tos, s.mcastTtl, s.mcastLoop)) throw new NetError('ENETUNREACH', 'interface down');
    } else if (!ctx.ipOutput(buf, src, dst, IpProto.UDP, s.tos, s.ttl, false)) {
      throw new NetError('ENETUNREACH', 'no route to destination');
    }
  }

  /** @internal Builds and sends one IPv6 datagram to dst[dOff..] (not v4-mapped). */
  output6(s: UdpSocket, data: Uint8Array, dst: Uint8Array, dOff: number, dport: number, scope: number): void {
    const len = data.length;
    if (len > UDP6_MAX_PAYLOAD) throw new NetError('EMSGSIZE', `datagram of ${len} bytes is too large`);
    const ctx6 = this.ctx6;
    if (ctx6 === null) throw new NetError('ENETUNREACH', 'IPv6 is not enabled on this stack');
    // IPV6_MULTICAST_IF names the interface a group without a zone id leaves by.
    if (scope === 0 && s.mcastIf6 !== 0 && isIpv6Multicast(dst, dOff)) scope = s.mcastIf6;
    // Hop limit 0 stays on the host: only the loopback copy, if any (Linux ip6_finish_output2).
    if (s.mcastTtl === 0 && !s.mcastLoop && isIpv6Multicast(dst, dOff)) { this.stats.sent++; this.stats.sent6++; this.ctx.drop('udp6_mcast_hops_zero'); return; }
    if (scope !== 0 && (isIpv6LinkLocal(dst, dOff) || isIpv6Multicast(dst, dOff))) {
      // A scoped destination (fe80::1%tst0): out of that interface, from its own address.
      const src = s.fixedSource6() ?? ctx6.link(scope)?.sourceFor(dst, dOff)?.addr ?? null;
      if (src === null) throw new NetError('ENETUNREACH', 'no IPv6 source on that interface');
      const buf = this.build(s, data, dport);
      finishUdpChecksumV6(buf.data, buf.start, buf.length, src, 0, dst, dOff);
      this.stats.sent++;
      this.stats.sent6++;
      const m = isIpv6Multicast(dst, dOff);
      if (!ctx6.output(buf, src, 0, dst, dOff, Ipv6Next.UDP, m ? s.mcastTtl : s.hopLimit, s.tos, scope, m && s.mcastLoop)) throw new NetError('ENETUNREACH', 'no route to destination');
      return;
    }
    let path = s.path;
    if (path === null || !s.remoteIs6 || dport !== s.remotePort || !addr6Equals(s.remote6!, 0, dst, dOff)) {
      path = this.sendPath6;
      if (this.sendPath6Owner !== s) { path.reset(); this.sendPath6Owner = s; }
    }
    if (!ctx6.resolvePath(path, s.fixedSource6(), dOff === 0 ? dst : dst.subarray(dOff, dOff + 16))) throw new NetError('ENETUNREACH', 'no route to destination');
    const buf = this.build(s, data, dport);
    // RFC 8200 §8.1: "unlike IPv4, the default behavior when UDP packets are originated by an
    // IPv6 node is that the UDP checksum is not optional."
    finishUdpChecksumV6(buf.data, buf.start, buf.length, path.src6, 0, path.dst6, 0);
    this.stats.sent++;
    this.stats.sent6++;
    // Multicast leaves with IPV6_MULTICAST_HOPS (1 unless set) on the scope's interface; an IPV6_UNICAST_HOPS other
    // than the link's goes the same way; everything else along the path.
    const mcast = isIpv6Multicast(path.dst6, 0);
    const sent = mcast || s.hopLimit >= 0
      ? ctx6.output(buf, path.src6, 0, path.dst6, 0, Ipv6Next.UDP, mcast ? s.mcastTtl : s.hopLimit, s.tos, scope, mcast && s.mcastLoop)
      : ctx6.pathOutput(path, buf, Ipv6Next.UDP, s.tos);
    if (!sent) throw new NetError('ENETUNREACH', 'no route to destination');
  }

  /** A pooled buffer holding the UDP header and data (checksum left zero, buf.csum None). */
  private build(s: UdpSocket, data: Uint8Array, dport: number): PacketBuffer {
    const total = UDP_HLEN + data.length;
    const buf = this.ctx.pool.alloc(total + DEFAULT_HEADROOM <= SMALL_BUF_SIZE ? SMALL_BUF_SIZE : LARGE_BUF_SIZE);
    const off = buf.append(total);
    writeUdpHeader(buf.data, off, s.localPort, dport, total);
    buf.data.set(data, off + UDP_HLEN);
    buf.csum = Csum.None;
    return buf;
  }

  /** A datagram for us; `ip` is wrapped over buf. Takes ownership. */
  input(ip: Ipv4View, buf: PacketBuffer, toBroadcast: boolean): void {
    const v = this.view;
    const ctx = this.ctx;
    const err = v.wrap(buf.data, ip.payloadOff, ip.payloadLen);
    if (err !== WireError.Ok) { this.stats.badLength++; buf.release(); ctx.drop('udp_bad_length'); return; }
    const src = ip.src, dst = ip.dst;
    if (buf.csum !== Csum.Valid && !v.checksumOkV4(src, dst)) { this.stats.badChecksum++; buf.release(); ctx.drop('udp_bad_checksum'); return; }
    this.stats.received++;
    const sport = v.srcPort, dport = v.dstPort;
    const multi = toBroadcast || isIpv4Multicast(dst);
    if (this.encap.size !== 0 && !multi) {
      const fn = this.encap.get(dport);
      if (fn !== undefined) { this.stats.delivered++; fn(ip, buf, v.payloadOff, v.payloadLen); return; }
    }
    const list = this.ports.get(dport);
    let delivered = false;
    if (list) {
      if (multi) {
        // Broadcast and multicast go to every socket that matches (RFC 1122 §4.1.3.5).
        for (const s of list) {
          if (!s.accepts4) continue;
          if (s.localAddr !== 0 && s.localAddr !== dst) continue;
          if (isIpv4Multicast(dst) && !s.wantsMulticast(dst, src, buf.ifIndex)) continue;
          if (s.connected && (s.remoteAddr !== src || s.remotePort !== sport)) continue;
          delivered = true;
          if (!s.deliver(buf.data.slice(v.payloadOff, v.payloadOff + v.payloadLen), src, sport, null)) { this.stats.fullSocket++; ctx.drop('udp_full_socket'); }
        }
      } else {
        let best: UdpSocket | null = null, bestScore = -1;
        for (const s of list) {
          if (!s.accepts4) continue;
          let score = 0;
          if (s.localAddr !== 0) { if (s.localAddr !== dst) continue; score += 2; }
          if (s.connected) { if (s.remoteAddr !== src || s.remotePort !== sport) continue; score += 4; }
          // The same match in both families: the IPv4 socket wins, as a more specific bind.
          if (s.family === UdpFamily.V4) score += 1;
          if (score > bestScore) { best = s; bestScore = score; }
        }
        if (best) {
          delivered = true;
          if (!best.deliver(buf.data.slice(v.payloadOff, v.payloadOff + v.payloadLen), src, sport, null)) { this.stats.fullSocket++; ctx.drop('udp_full_socket'); }
        }
      }
    }
    if (delivered) { this.stats.delivered++; buf.release(); return; }
    this.stats.noPort++;
    if (multi) { ctx.drop('udp_noport_bcast'); buf.release(); return; }
    ctx.drop('udp_noport');
    // RFC 1122 §4.1.3.1: "If a datagram arrives addressed to a UDP port for which there is no
    // pending LISTEN call, UDP SHOULD send an ICMP Port Unreachable message."
    if (!ctx.sysctl.bool('net.inet.udp.blackhole')) ctx.icmp.sendError(ip, buf, IcmpType.DestUnreachable, UnreachCode.Port, false);
    buf.release();
  }

  /**
   * An IPv6 datagram for us at buf.data[off, off+len) (`ip` wrapped over its packet, buf.start at
   * the IPv6 header). Takes ownership.
   */
  input6(ip: Ipv6View, buf: PacketBuffer, off: number, len: number, ifIndex: number): void {
    const v = this.view;
    const ctx = this.ctx;
    if (v.wrap(buf.data, off, len) !== WireError.Ok) { this.stats.badLength++; buf.release(); ctx.drop('udp6_bad_length'); return; }
    const b = ip.bytes, srcOff = ip.srcOff, dstOff = ip.dstOff;
    // RFC 8200 §8.1: "IPv6 receivers must discard UDP packets containing a zero checksum and
    // should log the error."
    if (v.checksum === 0) { this.stats.zeroChecksum6++; buf.release(); ctx.drop('udp6_zero_checksum'); return; }
    if (buf.csum !== Csum.Valid && !v.checksumOkV6(b, srcOff, b, dstOff)) { this.stats.badChecksum++; buf.release(); ctx.drop('udp6_bad_checksum'); return; }
    this.stats.received++;
    this.stats.received6++;
    const sport = v.srcPort, dport = v.dstPort;
    const list = this.ports.get(dport);
    const mcast = isIpv6Multicast(b, dstOff);
    let delivered = false;
    if (list) {
      const from = this.src6;
      copyAddr6(from, 0, b, srcOff);
      if (mcast) {
        // A group the interface listens to: every socket on the port bound to it or to ::.
        for (const s of list) {
          if (!s.accepts6) continue;
          if (!s.anyLocal6 && !addr6Equals(s.local6!, 0, b, dstOff)) continue;
          if (s.memberships6.length !== 0 && !s.wantsMulticast6(b, dstOff, srcOff, ifIndex)) continue;
          if (s.connected && (!s.remoteIs6 || s.remotePort !== sport || !addr6Equals(s.remote6!, 0, b, srcOff))) continue;
          delivered = true;
          if (!s.deliver(buf.data.slice(v.payloadOff, v.payloadOff + v.payloadLen), 0, sport, from)) { this.stats.fullSocket++; ctx.drop('udp_full_socket'); }
        }
      } else {
        let best: UdpSocket | null = null, bestScore = -1;
        for (const s of list) {
          if (!s.accepts6) continue;
          let score = 0;
          if (!s.anyLocal6) { if (!addr6Equals(s.local6!, 0, b, dstOff)) continue; score += 2; }
          if (s.connected) { if (!s.remoteIs6 || s.remotePort !== sport || !addr6Equals(s.remote6!, 0, b, srcOff)) continue; score += 4; }
          if (score > bestScore) { best = s; bestScore = score; }
        }
        if (best) {
          delivered = true;
          if (!best.deliver(buf.data.slice(v.payloadOff, v.payloadOff + v.payloadLen), 0, sport, from)) { this.stats.fullSocket++; ctx.drop('udp_full_socket'); }
        }
      }
    }
    if (delivered) { this.stats.delivered++; buf.release(); return; }
    this.stats.noPort++;
    if (mcast) { ctx.drop('udp6_noport_mcast'); buf.release(); return; }
    ctx.drop('udp6_noport');
    // RFC 4443 §3.1: "Destination Unreachable ... code 4 ... if the transport protocol (e.g., UDP)
    // has no listener" (rate limited by ICMPv6, §2.4(f)).
    if (!ctx.sysctl.bool('net.inet.udp.blackhole') && this.ctx6 !== null && buf.start + IPV6_HLEN <= off) {
      this.ctx6.icmp.sendError(buf, Icmpv6Type.DestUnreachable, Icmpv6UnreachCode.Port, 0, ifIndex, false);
    }
    buf.release();
  }

  private icmpError(type: number, code: number, info: number, inner: Ipv4View, l4Off: number): void {
    const b = inner.bytes;
    const sport = (b[l4Off]! << 8) | b[l4Off + 1]!;
    const dport = (b[l4Off + 2]! << 8) | b[l4Off + 3]!;
    const list = this.ports.get(sport);
    if (!list) return;
    let err: NetError | null = null;
    if (type === IcmpType.DestUnreachable) {
      if (code === UnreachCode.Port || code === UnreachCode.Protocol) err = new NetError('ECONNREFUSED', 'port unreachable');
      else if (code === UnreachCode.FragNeeded) err = new NetError('EMSGSIZE', `path MTU ${info}`);
      else if (code === UnreachCode.Net) err = new NetError('ENETUNREACH');
      else err = new NetError('EHOSTUNREACH');
    } else if (type === IcmpType.TimeExceeded) err = new NetError('EHOSTUNREACH', 'time exceeded');
    if (!err) return;
    // Like Linux without IP_RECVERR: only connected sockets hear about errors.
    for (const s of list) {
      if (s.connected && s.remoteAddr === inner.dst && s.remotePort === dport) s.raiseError(err);
    }
  }

  /**
   * An ICMPv6 error quoting a datagram we sent (its IPv6 header at bytes[ipOff..], UDP header at
   * l4Off). As Linux without IPV6_RECVERR (__udp6_lib_err, icmpv6_err_convert): only a
   * connected socket hears, and only of the errors Linux calls fatal — port unreachable
   * (ECONNREFUSED), administratively prohibited and policy (EACCES), Packet Too Big (EMSGSIZE),
   * Parameter Problem (EPROTO).
   */
  private icmp6Error(type: number, code: number, word: number, bytes: Uint8Array, ipOff: number, l4Off: number, l4Len: number): void {
    if (l4Len < 4) return;
    const sport = (bytes[l4Off]! << 8) | bytes[l4Off + 1]!;
    const dport = (bytes[l4Off + 2]! << 8) | bytes[l4Off + 3]!;
    const list = this.ports.get(sport);
    if (!list) return;
    let code6: 'ECONNREFUSED' | 'EACCES' | 'EMSGSIZE' | 'EPROTO' | null = null;
    if (type === Icmpv6Type.DestUnreachable) {
      if (code === Icmpv6UnreachCode.Port) code6 = 'ECONNREFUSED';
      else if (code === Icmpv6UnreachCode.AdminProhibited || code === 5 || code === 6) code6 = 'EACCES';
    } else if (type === Icmpv6Type.PacketTooBig) code6 = 'EMSGSIZE';
    else if (type === Icmpv6Type.ParamProblem) code6 = 'EPROTO';
    if (code6 === null) return;
    const dstOff = ipOff + 24;
    for (const s of list) {
      if (s.remoteIs6 && s.remotePort === dport && addr6Equals(s.remote6!, 0, bytes, dstOff)) {
        s.raiseError(new NetError(code6, type === Icmpv6Type.PacketTooBig ? `path MTU ${word}` : 'ICMPv6 error'));
      }
    }
  }
}

/** Whether two sockets' local addresses could both receive one datagram (bind conflict, without SO_REUSEADDR). */
function overlaps(s: UdpSocket, o: UdpSocket): boolean {
  if (s.accepts4 && o.accepts4 && (o.localAddr === 0 || s.localAddr === 0 || o.localAddr === s.localAddr)) return true;
  return s.accepts6 && o.accepts6 && (o.anyLocal6 || s.anyLocal6 || addr6Equals(o.local6!, 0, s.local6!, 0));
}

const UNSPECIFIED6 = new Uint8Array(16);
const LOOPBACK6 = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);

/** The IPv4 address of a v4-mapped IPv6 address (::ffff:a.b.c.d) at b[off..], else -1. */
export function mappedV4(b: Uint8Array, off: number): number {
  for (let i = 0; i < 10; i++) if (b[off + i] !== 0) return -1;
  if (b[off + 10] !== 0xff || b[off + 11] !== 0xff) return -1;
  return ((b[off + 12]! << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!) >>> 0;
}

function writeMapped(out: Uint8Array, v4: number): void {
  out.fill(0, 0, 10);
  out[10] = 0xff; out[11] = 0xff;
  out[12] = v4 >>> 24; out[13] = (v4 >>> 16) & 0xff; out[14] = (v4 >>> 8) & 0xff; out[15] = v4 & 0xff;
}
