// Tunnel interfaces: an Interface whose device encapsulates what the stack sends on it and
// whose input arrives decapsulated from the underlay. VXLAN (RFC 7348) carries Ethernet frames
// in UDP 4789, with static remote VTEPs and a learned forwarding database; GRE (RFC 2784,
// RFC 2890 key and sequence number) and IP-in-IP (RFC 2003) carry IPv4 point to point.
import { NO_OFFLOADS, type NetDevice } from '../../base/device.js';
import { Csum, type BufferPool, type PacketBuffer } from '../../base/pktbuf.js';
import type { Clock } from '../../base/time.js';
import { formatIpv4, parseIpv4 } from '../../wire/addr.js';
import { internetChecksum } from '../../wire/checksum.js';
import { ETH_HLEN, EtherType } from '../../wire/ethernet.js';
import { IcmpType, UnreachCode } from '../../wire/icmpv4.js';
import { IPV4_DF, IPV4_HLEN, IpProto, type Ipv4View } from '../../wire/ipv4.js';
import { UDP_HLEN, writeUdpHeader } from '../../wire/udp.js';
import {
  GRE_C, GRE_K, GRE_MUST_BE_ZERO, GRE_S, VXLAN_HLEN, VXLAN_PORT, greHeaderLength, readVxlanVni, writeGreHeader, writeVxlanHeader,
} from '../../wire/tunnel.js';
import type { Interface } from '../iface.js';

export type TunnelKind = 'vxlan' | 'gre' | 'ipip';

/** A tunnel as the stack is given it (the runtime's [[tunnel]] table). */
export interface TunnelConfig {
  kind: TunnelKind;
  ifname: string;
  /** Underlay source address (one of the stack's). */
  local: string;
  /** The peer (gre, ipip) or the static remote VTEPs (vxlan). */
  remotes: string[];
  /** vxlan: the VNI (0..16777215). */
  vni?: number;
  /** gre: the key (RFC 2890), absent for none. */
  key?: number;
  /** gre: send and check sequence numbers (RFC 2890 §2.2). */
  seq?: boolean;
  /** vxlan: UDP destination port (default 4789). */
  port?: number;
  addr?: string;
  addr6?: string;
  /** Inner MTU; default the underlay's minus the encapsulation. */
  mtu?: number;
  /** vxlan: the interface's MAC (default a random locally administered one). */
  mac?: Uint8Array;
  /** Outer TTL (default 64). */
  ttl?: number;
}

/** What tunnels need from the stack. */
export interface TunnelContext {
  readonly pool: BufferPool;
  readonly clock: Clock;
  readonly random: () => number;
  drop(reason: string): void;
  /** One received frame on an interface (Stack.input). Takes ownership. */
  input(ifIndex: number, buf: PacketBuffer): void;
  ipOutput(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean;
  isLocalAddress(addr: number): boolean;
  /** The MTU of the interface the route to `dst` leaves by (0 when there is no route). */
  routeMtu(dst: number): number;
  interfaceByIndex(ifIndex: number): Interface | undefined;
  /** Sets an interface's MTU (path MTU learned through the tunnel). */
  setInterfaceMtu(ifIndex: number, mtu: number): void;
}

export class TunnelStats {
  txPackets = 0; rxPackets = 0; txErrors = 0; rxErrors = 0;
  /** vxlan: frames flooded to the static remotes; FDB entries learned. */
  flooded = 0; learned = 0;
}

const FDB_MAX = 4096;
const FDB_AGE_MS = 300_000;
/** Headroom the outer headers need: Ethernet + IPv4 + (UDP + VXLAN | GRE with key and sequence). */
const OUTER_ROOM = ETH_HLEN + IPV4_HLEN + 16;

class FdbEntry { constructor(public remote: number, public at: number) {} }

abstract class TunnelDevice implements NetDevice {
  readonly offloads = NO_OFFLOADS;
  readonly stats = new TunnelStats();
  ifIndex = 0;
  mtu: number;
  constructor(readonly name: string, readonly mac: Uint8Array, readonly local: number, mtu: number, readonly ttl: number) { this.mtu = mtu; }
  abstract transmit(buf: PacketBuffer): void;
  /** One line for the tools ("vxlan vni 42 local 198.18.0.2 remote 198.18.0.1"). */
  abstract describe(): string;

  /** A buffer whose payload starts at buf.start with room for the outer headers (a copy when short). */
  protected roomy(ctx: TunnelContext, buf: PacketBuffer): PacketBuffer {
    if (buf.start >= OUTER_ROOM) return buf;
    const c = ctx.pool.alloc(buf.length + 256 <= 2048 ? 2048 : buf.length + 256);
    const o = c.append(buf.length);
    c.data.set(buf.data.subarray(buf.start, buf.end), o);
    buf.release();
    return c;
  }
}

/** A VXLAN interface's device: Ethernet frames out become UDP datagrams to a VTEP. */
export class VxlanDevice extends TunnelDevice {
  readonly fdb = new Map<number, FdbEntry>();
  constructor(private readonly ctx: TunnelContext, name: string, mac: Uint8Array, local: number, mtu: number, ttl: number,
    readonly vni: number, readonly port: number, readonly remotes: number[]) { super(name, mac, local, mtu, ttl); }

  transmit(frame: PacketBuffer): void {
    const ctx = this.ctx;
    const b = frame.data, s = frame.start;
    let remote = 0;
    if ((b[s]! & 1) === 0) {
      const e = this.fdb.get(macKey(b, s));
      if (e !== undefined && ctx.clock.now() - e.at < FDB_AGE_MS) remote = e.remote;
    }
    if (remote !== 0) { this.send(frame, remote); return; }
    // Broadcast, multicast and unknown unicast: head-end replication to the static remotes.
    const n = this.remotes.length;
    if (n === 0) { this.stats.txErrors++; frame.release(); ctx.drop('vxlan_no_remote'); return; }
    this.stats.flooded++;
    for (let i = 0; i < n - 1; i++) this.send(frame.clone(), this.remotes[i]!);
    this.send(frame, this.remotes[n - 1]!);
  }

  private send(frame: PacketBuffer, remote: number): void {
    const buf = this.roomy(this.ctx, frame);
    const b = buf.data, s = buf.start, len = buf.length;
    // RFC 7348 §5: the source port is a hash of the inner headers (ECMP entropy), in 49152-65535.
    let h = 0x811c9dc5;
    const end = Math.min(len, 38);
    for (let i = 0; i < end; i++) h = Math.imul(h ^ b[s + i]!, 0x01000193);
    const sport = 49152 + ((h >>> 0) % 16384);
    const vo = buf.prepend(VXLAN_HLEN);
    writeVxlanHeader(b, vo, this.vni);
    const uo = buf.prepend(UDP_HLEN);
    // §5: "UDP Checksum: It SHOULD be transmitted as zero."
    writeUdpHeader(b, uo, sport, this.port, UDP_HLEN + VXLAN_HLEN + len);
    buf.csum = Csum.None;
    this.stats.txPackets++;
    if (!this.ctx.ipOutput(buf, this.local, remote, IpProto.UDP, 0, this.ttl, false)) this.stats.txErrors++;
  }

  /** A VXLAN datagram's payload (after the UDP header) at buf[off, off+len) from `src`. Takes ownership. */
  input(buf: PacketBuffer, src: number, off: number, len: number): void {
    const b = buf.data;
    const inner = off + VXLAN_HLEN;
    // Learn where the inner source lives (§4: "learn the inner source MAC to outer source IP").
    if ((b[inner + 6]! & 1) === 0) {
      const k = macKey(b, inner + 6);
      const e = this.fdb.get(k);
      const now = this.ctx.clock.now();
      if (e !== undefined) { e.remote = src; e.at = now; } else if (this.fdb.size < FDB_MAX) { this.fdb.set(k, new FdbEntry(src, now)); this.stats.learned++; } else this.ctx.drop('vxlan_fdb_full');
    }
    this.stats.rxPackets++;
    buf.start = inner;
    buf.end = off + len;
    // A checksum the device vouched for stays vouched for only when it is the inner one (a
    // kernel on the same host leaves the inner L4 sum partial: NEEDS_CSUM pointing inside).
    if (buf.csum !== Csum.Valid || buf.csumStart < inner + ETH_HLEN) buf.csum = Csum.None;
    buf.l3 = -1; buf.l4 = -1;
    this.ctx.input(this.ifIndex, buf);
  }

  describe(): string {
    return `vxlan vni ${this.vni} local ${formatIpv4(this.local)} remote ${this.remotes.map(formatIpv4).join(',') || '-'} port ${this.port} fdb ${this.fdb.size}`;
  }

  /** The forwarding database (tools, tests): MAC → remote VTEP. */
  entries(): { mac: string; remote: string; ageMs: number }[] {
    const now = this.ctx.clock.now();
    return [...this.fdb].map(([k, e]) => ({ mac: formatMacKey(k), remote: formatIpv4(e.remote), ageMs: now - e.at }));
  }
}

/** The peer MAC a point-to-point tunnel's frames claim to come from. */
const P2P_PEER_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0xfe);

/**
 * A GRE or IP-in-IP interface's device: the stack sends Ethernet frames to it (ARP is skipped:
 * `pointToPoint`); it strips the Ethernet header and wraps the IPv4 packet for the peer.
 * Decapsulated packets get a made-up Ethernet header back for Stack.input.
 */
export class P2pTunnelDevice extends TunnelDevice {
  readonly pointToPoint = true;
  private txSeq = 0;
  private rxSeq = -1;
  constructor(private readonly ctx: TunnelContext, name: string, local: number, mtu: number, ttl: number,
    readonly kind: 'gre' | 'ipip', readonly remote: number, readonly key: number | undefined, readonly seq: boolean) {
    super(name, Uint8Array.of(0x02, 0, 0, 0, 0, 0x01), local, mtu, ttl);
  }

  describe(): string {
    return `${this.kind}${this.key !== undefined ? ` key ${this.key}` : ''}${this.seq ? ' seq' : ''} local ${formatIpv4(this.local)} remote ${formatIpv4(this.remote)}`;
  }

  /** Bytes the encapsulation adds (outer IPv4 + GRE). */
  get overhead(): number { return IPV4_HLEN + (this.kind === 'gre' ? greHeaderLength((this.key !== undefined ? GRE_K : 0) | (this.seq ? GRE_S : 0)) : 0); }

  transmit(frame: PacketBuffer): void {
    const b0 = frame.data, s0 = frame.start;
    const type = (b0[s0 + 12]! << 8) | b0[s0 + 13]!;
    if (type !== EtherType.IPv4 || frame.length < ETH_HLEN + IPV4_HLEN) { this.stats.txErrors++; frame.release(); this.ctx.drop('tunnel_not_ipv4'); return; }
    frame.start += ETH_HLEN;
    // Ethernet padding is not part of the packet.
    const total = (b0[frame.start + 2]! << 8) | b0[frame.start + 3]!;
    if (total < frame.length) frame.end = frame.start + total;
    const buf = this.roomy(this.ctx, frame);
    const b = buf.data;
    // RFC 2003 §3.1 (and GRE likewise): the outer DF is the inner one, so PMTU discovery works end to end.
    const df = (b[buf.start + 6]! & (IPV4_DF >> 8)) !== 0;
    const tos = b[buf.start + 1]!;
    let proto: number = IpProto.IPIP;
    if (this.kind === 'gre') {
      const flags = (this.key !== undefined ? GRE_K : 0) | (this.seq ? GRE_S : 0);
      const o = buf.prepend(greHeaderLength(flags));
      writeGreHeader(b, o, flags, EtherType.IPv4, this.key ?? 0, this.txSeq);
      if (this.seq) this.txSeq = (this.txSeq + 1) >>> 0;
      proto = IpProto.GRE;
    }
    buf.csum = Csum.None;
    this.stats.txPackets++;
    if (!this.ctx.ipOutput(buf, this.local, this.remote, proto, tos & 0xfc, this.ttl, df)) this.stats.txErrors++;
  }

  /** Checks a GRE header at b[off..]: returns the inner offset, or -1 (counted) when it is not for this tunnel. */
  greAccept(b: Uint8Array, off: number, len: number): number {
    if (len < 4) return -1;
    const flags = (b[off]! << 8) | b[off + 1]!;
    if ((flags & GRE_MUST_BE_ZERO) !== 0) return -1;
    const hl = greHeaderLength(flags);
    if (len < hl) return -1;
    let p = off + 4;
    if (flags & GRE_C) { if (internetChecksum(b, off, len) !== 0) { this.ctx.drop('gre_bad_checksum'); return -2; } p += 4; }
    // RFC 2890 §2.1: a keyed tunnel takes only packets with its key; an unkeyed one only unkeyed.
    const hasKey = (flags & GRE_K) !== 0;
    if (hasKey !== (this.key !== undefined)) return -1;
    if (hasKey) { if ((((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0) !== this.key) return -1; p += 4; }
    if (flags & GRE_S) {
      const seq = ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
      // §2.2: a packet older than the last one accepted is dropped (32-bit serial arithmetic).
      if (this.seq && this.rxSeq >= 0 && ((seq - this.rxSeq) | 0) <= 0) { this.ctx.drop('gre_out_of_order'); return -2; }
      this.rxSeq = seq;
    } else if (this.seq) { this.ctx.drop('gre_no_sequence'); return -2; }
    const proto = (b[off + 2]! << 8) | b[off + 3]!;
    if (proto !== EtherType.IPv4) { this.ctx.drop('gre_unsupported_protocol'); return -2; }
    return off + hl;
  }

  /** The inner IPv4 packet at buf[inner, end). Takes ownership. */
  input(buf: PacketBuffer, inner: number, end: number): void {
    if (end - inner < IPV4_HLEN || (buf.data[inner]! >> 4) !== 4) { this.stats.rxErrors++; buf.release(); this.ctx.drop('tunnel_bad_inner'); return; }
    this.stats.rxPackets++;
    const b = buf.data;
    const e = inner - ETH_HLEN;
    b.set(this.mac, e); b.set(P2P_PEER_MAC, e + 6); b[e + 12] = 0x08; b[e + 13] = 0x00;
    buf.start = e;
    buf.end = end;
    if (buf.csum !== Csum.Valid || buf.csumStart < inner) buf.csum = Csum.None;
    buf.l3 = -1; buf.l4 = -1;
    this.ctx.input(this.ifIndex, buf);
  }
}

/** The stack's tunnels: configuration, demultiplexing of what the underlay delivers, PMTU. */
export class Tunnels {
  readonly devices: TunnelDevice[] = [];
  private readonly vxlan = new Map<number, VxlanDevice[]>();
  private readonly p2p: P2pTunnelDevice[] = [];

  constructor(private readonly ctx: TunnelContext) {}

  /**
   * Builds the device for `cfg` (validated here: addresses, VNI, key); the caller attaches it
   * as an interface and then calls attached(). Throws Error with the reason.
   */
  create(cfg: TunnelConfig): TunnelDevice {
    const local = parseIpv4(cfg.local);
    if (local === null || !this.ctx.isLocalAddress(local)) throw new Error(`tunnel ${cfg.ifname}: local ${cfg.local} is not an address of this stack`);
    const remotes = cfg.remotes.map((r) => {
      const a = parseIpv4(r);
      if (a === null || a === 0) throw new Error(`tunnel ${cfg.ifname}: bad remote '${r}'`);
      return a;
    });
    const ttl = cfg.ttl ?? 64;
    const under = remotes.length ? Math.min(...remotes.map((r) => this.ctx.routeMtu(r))) : this.ctx.routeMtu(local);
    if (under === 0) throw new Error(`tunnel ${cfg.ifname}: no route to ${cfg.remotes.join(', ')} on the underlay`);
    if (cfg.kind === 'vxlan') {
      const vni = cfg.vni ?? -1;
      if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffff) throw new Error(`tunnel ${cfg.ifname}: vni must be 0..16777215`);
      // RFC 7348 §4.3: 50 bytes of outer Ethernet-less encapsulation (IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
      const max = under - IPV4_HLEN - UDP_HLEN - VXLAN_HLEN - ETH_HLEN;
      const mtu = cfg.mtu ?? max;
      if (mtu > max || mtu < 576) throw new Error(`tunnel ${cfg.ifname}: mtu ${mtu} out of range (576..${max}, the underlay's ${under} minus 50)`);
      const mac = cfg.mac ?? randomMac(this.ctx.random);
      const d = new VxlanDevice(this.ctx, cfg.ifname, mac, local, mtu, ttl, vni, cfg.port ?? VXLAN_PORT, remotes);
      const list = this.vxlan.get(vni) ?? [];
      list.push(d);
      this.vxlan.set(vni, list);
      this.devices.push(d);
      return d;
    }
    if (remotes.length !== 1) throw new Error(`tunnel ${cfg.ifname}: a ${cfg.kind} tunnel has exactly one remote`);
    if (cfg.addr6 !== undefined) throw new Error(`tunnel ${cfg.ifname}: a ${cfg.kind} tunnel carries IPv4 only (no addr6 yet)`);
    if (cfg.key !== undefined && (cfg.kind !== 'gre' || !Number.isInteger(cfg.key) || cfg.key < 0 || cfg.key > 0xffffffff)) throw new Error(`tunnel ${cfg.ifname}: key is for gre, 0..4294967295`);
    const d0 = new P2pTunnelDevice(this.ctx, cfg.ifname, local, 0, ttl, cfg.kind, remotes[0]!, cfg.key, cfg.kind === 'gre' && !!cfg.seq);
    const max = under - d0.overhead;
    const mtu = cfg.mtu ?? max;
    if (mtu > max || mtu < 576) throw new Error(`tunnel ${cfg.ifname}: mtu ${mtu} out of range (576..${max})`);
    d0.mtu = mtu;
    if (this.p2p.some((o) => o.kind === d0.kind && o.local === local && o.remote === d0.remote && o.key === d0.key)) throw new Error(`tunnel ${cfg.ifname}: another ${cfg.kind} tunnel has these ends${cfg.key !== undefined ? ' and key' : ''}`);
    this.p2p.push(d0);
    this.devices.push(d0);
    return d0;
  }

  /** Whether any tunnel of `kind` exists (the stack registers the underlay protocols then). */
  has(kind: TunnelKind): boolean { return this.devices.some((d) => (d instanceof VxlanDevice ? 'vxlan' : (d as P2pTunnelDevice).kind) === kind); }

  /** Underlay UDP to a VXLAN port: the payload at buf[off, off+len). Takes ownership. */
  vxlanInput(ip: Ipv4View, buf: PacketBuffer, off: number, len: number): void {
    const b = buf.data;
    if (len < VXLAN_HLEN + ETH_HLEN) { buf.release(); this.ctx.drop('vxlan_truncated'); return; }
    const vni = readVxlanVni(b, off);
    const list = vni < 0 ? undefined : this.vxlan.get(vni);
    const dst = ip.dst;
    const d = list?.find((x) => x.local === dst);
    if (d === undefined) { buf.release(); this.ctx.drop(vni < 0 ? 'vxlan_bad_flags' : 'vxlan_unknown_vni'); return; }
    d.input(buf, ip.src, off, len);
  }

  /** Underlay IPv4 protocol 47 or 4. Takes ownership. */
  p2pInput(ip: Ipv4View, buf: PacketBuffer): void {
    const proto = ip.protocol, src = ip.src, dst = ip.dst;
    const off = ip.payloadOff, len = ip.payloadLen, end = off + len;
    let bad = false;
    for (const d of this.p2p) {
      if (d.remote !== src || d.local !== dst) continue;
      if (proto === IpProto.IPIP) { if (d.kind === 'ipip') { d.input(buf, off, end); return; } continue; }
      if (d.kind !== 'gre') continue;
      const inner = d.greAccept(buf.data, off, len);
      if (inner >= 0) { d.input(buf, inner, end); return; }
      if (inner === -2) { d.stats.rxErrors++; buf.release(); return; }
      bad = true;
    }
    buf.release();
    this.ctx.drop(bad ? 'gre_key_mismatch' : proto === IpProto.GRE ? 'gre_no_tunnel' : 'ipip_no_tunnel');
  }

  /**
   * An ICMP error about an outer packet we sent (RFC 2003 §4, RFC 4459): Fragmentation Needed
   * lowers the tunnel's MTU to the reported MTU minus the encapsulation, so new inner packets
   * (and TCP's segments, which follow the interface MTU) fit.
   */
  icmpError(type: number, code: number, info: number, inner: Ipv4View): void {
    if (type !== IcmpType.DestUnreachable || code !== UnreachCode.FragNeeded || info < 68) return;
    for (const d of this.p2p) {
      if (d.local !== inner.src || d.remote !== inner.dst || inner.protocol !== (d.kind === 'gre' ? IpProto.GRE : IpProto.IPIP)) continue;
      const mtu = Math.max(576, info - d.overhead);
      if (mtu < d.mtu) { d.mtu = mtu; this.ctx.setInterfaceMtu(d.ifIndex, mtu); }
    }
  }
}

function macKey(b: Uint8Array, o: number): number {
  return ((b[o]! * 0x10000 + ((b[o + 1]! << 8) | b[o + 2]!)) * 0x1000000) + ((b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!);
}

function formatMacKey(k: number): string {
  const out: string[] = [];
  for (let i = 5; i >= 0; i--) out.push((Math.floor(k / 2 ** (8 * i)) & 0xff).toString(16).padStart(2, '0'));
  return out.join(':');
}

function randomMac(random: () => number): Uint8Array {
  const m = new Uint8Array(6);
  for (let i = 0; i < 6; i++) m[i] = Math.floor(random() * 256);
  m[0] = (m[0]! & 0xfc) | 0x02; // locally administered, unicast
  return m;
}

