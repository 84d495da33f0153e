// UDP (RFC 768, RFC 1122 §4.1): sockets with bind/connect/send/receive, broadcast, bounded
// receive queues, port unreachable for closed ports, and ICMP errors for connected sockets.
import { Csum, DEFAULT_HEADROOM, SMALL_BUF_SIZE, LARGE_BUF_SIZE, type PacketBuffer } from '../base/pktbuf.js';
import { UDP_HLEN, UdpView, finishUdpChecksumV4, writeUdpHeader } from '../wire/udp.js';
import { IpProto, IPV4_HLEN, type Ipv4View } from '../wire/ipv4.js';
import { IcmpType, UnreachCode } from '../wire/icmpv4.js';
import { isIpv4Multicast } from '../wire/addr.js';
import { WireError } from '../wire/errors.js';
import { NetError } from '../base/errors.js';
import type { BufferPool } from '../base/pktbuf.js';
import type { Sysctl, SysctlHandle } from './sysctl.js';
import type { Icmp } from './ip/icmp.js';
import { FilterMode, type Igmp, type SourceFilter } from './ip/igmp.js';

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
}

export const UDP_MAX_PAYLOAD = 65535 - IPV4_HLEN - UDP_HLEN;

export function defineUdpSysctls(s: Sysctl): void {
  s.define({ name: 'net.inet.udp.recvspace', type: 'int', default: 262144, min: 1024, max: 1 << 30, description: 'default UDP receive queue limit in bytes' });
  s.define({ name: 'net.inet.udp.checksum', type: 'bool', default: true, description: 'compute checksums on sent UDP datagrams' });
  s.define({ name: 'net.inet.udp.blackhole', type: 'bool', default: false, description: 'do not answer datagrams to closed ports with ICMP port unreachable' });
}

export interface UdpMessage { data: Uint8Array; addr: number; port: number; }

/** A socket's membership of a group on one interface, with its source filter (RFC 3678 semantics). */
export interface UdpMembership { ifIndex: number; mode: number; sources: number[]; }

export class UdpSocket {
  localAddr = 0;
  localPort = 0;
  remoteAddr = 0;
  remotePort = 0;
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
  /** Receive mode 1: every datagram is handed over at once. */
  onMessage: ((data: Uint8Array, addr: number, port: number) => void) | null = null;
  /** Receive mode 2 (onMessage unset): datagrams queue (bounded); onReadable says when one arrived. */
  onReadable: (() => void) | null = null;
  /** Asynchronous errors (ICMP) on a connected socket: ECONNREFUSED, EHOSTUNREACH, EMSGSIZE... */
  onError: ((err: NetError) => void) | null = null;
  private readonly queue: UdpMessage[] = [];
  private queuedBytes = 0;
  stats = { received: 0, sent: 0, dropped: 0 };

  constructor(private readonly udp: Udp) {
    this.recvBufSize = udp.ctx.sysctl.int('net.inet.udp.recvspace');
    this.ttl = udp.ctx.defaultTtl;
  }

  get connected(): boolean { return this.remotePort !== 0; }
  get bound(): boolean { return this.localPort !== 0; }
  get pending(): number { return this.queue.length; }
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
    if (!this.bound) this.udp.bind(this, 0, 0);
    this.remoteAddr = addr;
    this.remotePort = port;
  }

  disconnect(): void { this.remoteAddr = 0; this.remotePort = 0; }

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
    if (!this.bound) this.udp.bind(this, 0, 0);
    this.udp.output(this, data, dst, dport);
    this.stats.sent++;
  }

  /** Next queued datagram (receive mode 2), or null. */
  recv(): UdpMessage | null {
    const m = this.queue.shift();
    if (!m) return null;
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

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const g of [...this.memberships.keys()]) this.#setFilter(g, null);
    this.udp.unbind(this);
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  /** @internal */
  deliver(data: Uint8Array, addr: number, port: number): boolean {
    this.stats.received++;
    if (this.onMessage) { this.onMessage(data, addr, port); return true; }
    if (this.queuedBytes + data.length > this.recvBufSize) { this.stats.dropped++; return false; }
    this.queue.push({ data, addr, port });
    this.queuedBytes += data.length;
    this.onReadable?.();
    return true;
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
  /** Bound sockets by local port. */
  private readonly ports = new Map<number, UdpSocket[]>();
  private readonly view = new UdpView();
  private nextEphemeral = 0;
  stats = { received: 0, delivered: 0, sent: 0, noPort: 0, badChecksum: 0, badLength: 0, fullSocket: 0 };
  /** A local port got its first socket (true) or lost its last (false); the Stack's watchPorts. */
  onPortChanged: ((proto: number, port: number, inUse: boolean) => void) | null = null;

  constructor(readonly ctx: UdpContext) {
    ctx.icmp.handlers.set(IpProto.UDP, (type, code, info, inner, l4Off) => this.icmpError(type, code, info, inner, l4Off));
  }

  open(): UdpSocket { return new UdpSocket(this); }

  /** Bound local ports (allocates: for subscribers). */
  portsInUse(): number[] { return [...this.ports.keys()]; }

  /** Bound sockets (allocates: tools). */
  sockets(): UdpSocket[] {
    const out: UdpSocket[] = [];
    for (const l of this.ports.values()) out.push(...l);
    return out;
  }

  get socketCount(): number { let n = 0; for (const l of this.ports.values()) n += l.length; return n; }

  /** @internal */
  bind(s: UdpSocket, addr: number, port: number): void {
    if (addr !== 0 && !this.ctx.isLocalAddress(addr) && !isIpv4Multicast(addr) && addr !== 0xffffffff) {
      throw new NetError('EADDRNOTAVAIL', 'address not on this stack');
    }
    if (port === 0) port = this.ephemeral(addr);
    else if (port < 0 || port > 65535) throw new NetError('EINVAL', 'bad port');
    const list = this.ports.get(port);
    if (list) {
      for (const o of list) {
        const overlap = o.localAddr === 0 || addr === 0 || o.localAddr === addr;
        if (overlap && !(o.reuseAddr && s.reuseAddr)) throw new NetError('EADDRINUSE', `port ${port} in use`);
      }
      list.push(s);
    } else {
      this.ports.set(port, [s]);
      this.onPortChanged?.(17, port, true);
    }
    s.localAddr = addr;
    s.localPort = port;
  }

  /** Whether a datagram to addr:port would find a socket (the routing policy asks, not the hot path). */
  hasSocket(addr: number, port: number): boolean {
    const list = this.ports.get(port);
    return !!list && list.some((o) => !o.closed && (o.localAddr === 0 || o.localAddr === addr));
  }

  /** @internal */
  unbind(s: UdpSocket): void {
    const list = this.ports.get(s.localPort);
    if (!list) return;
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) {
      this.ports.delete(s.localPort);
      this.onPortChanged?.(17, s.localPort, false);
    }
  }

  private ephemeral(addr: number): number {
    const first = this.ctx.portFirst.value;
    const last = this.ctx.portLast.value;
    const n = last - first + 1;
    if (this.nextEphemeral === 0) this.nextEphemeral = Math.floor(this.ctx.random() * n);
    for (let i = 0; i < n; i++) {
      const p = first + ((this.nextEphemeral + i) % n);
      const list = this.ports.get(p);
      if (!list || !list.some((o) => o.localAddr === 0 || addr === 0 || o.localAddr === addr)) {
        this.nextEphemeral = (this.nextEphemeral + i + 1) % n;
        return p;
      }
    }
    throw new NetError('EADDRNOTAVAIL', 'no free ephemeral port');
  }

  /** @internal Builds and sends one datagram. */
  output(s: UdpSocket, data: Uint8Array, dst: number, dport: number): void {
    const len = data.length;
    if (len > UDP_MAX_PAYLOAD) throw new NetError('EMSGSIZE', `datagram of ${len} bytes is too large`);
    const ctx = this.ctx;
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
    const total = UDP_HLEN + len;
    const buf = ctx.pool.alloc(total + DEFAULT_HEADROOM <= SMALL_BUF_SIZE ? SMALL_BUF_SIZE : LARGE_BUF_SIZE);
    const off = buf.append(total);
    writeUdpHeader(buf.data, off, s.localPort, dport, total);
    buf.data.set(data, off + UDP_HLEN);
    if (ctx.sysctl.bool('net.inet.udp.checksum')) finishUdpChecksumV4(buf.data, off, total, src, dst);
    buf.csum = Csum.None;
    this.stats.sent++;
    if (mcastIf !== 0) {
      if (!ctx.multicastOutput(buf, mcastIf, src, dst, IpProto.UDP, s.tos, s.mcastTtl, s.mcastLoop)) throw new NetError('ENETUNREACH', 'interface down');
    } else if (!ctx.ipOutput(buf, src, dst, IpProto.UDP, s.tos, s.ttl, false)) {
      throw new NetError('ENETUNREACH', 'no route to destination');
    }
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
          if (s.localAddr !== 0 && s.localAddr !== dst) continue;
          if (isIpv4Multicast(dst) && !s.wantsMulticast(dst, src, buf.ifIndex)) continue;
          if (s.connected && (s.remoteAddr !== src || s.remotePort !== sport)) continue;
          delivered = true;
          if (!s.deliver(buf.data.slice(v.payloadOff, v.payloadOff + v.payloadLen), src, sport)) { this.stats.fullSocket++; ctx.drop('udp_full_socket'); }
        }
      } else {
        let best: UdpSocket | null = null, bestScore = -1;
        for (const s of list) {
          let score = 0;
          if (s.localAddr !== 0) { if (s.localAddr !== dst) continue; score += 2; }
          if (s.connected) { if (s.remoteAddr !== src || s.remotePort !== sport) continue; score += 4; }
          if (score > bestScore) { best = s; bestScore = score; }
        }
        if (best) {
          delivered = true;
          if (!best.deliver(buf.data.slice(v.payloadOff, v.payloadOff + v.payloadLen), src, sport)) { this.stats.fullSocket++; ctx.drop('udp_full_socket'); }
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
      if (s.connected && s.remoteAddr === inner.dst && s.remotePort === dport) s.onError?.(err);
    }
  }
}
