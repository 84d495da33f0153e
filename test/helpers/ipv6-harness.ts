// The IPv6 layer alone on the virtual clock: a fake stack context that records every frame it
// would transmit, and builders for received frames made with the wire codecs.
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { Ipv6, defineIpv6Sysctls, type Ipv6Config } from '../../src/stack/ip/ipv6.js';
import type { Ipv6Context, Ipv6Iface } from '../../src/stack/ip/ipv6-context.js';
import { Prng } from '../../src/base/prng.js';
import { Sysctl, type SysctlValue } from '../../src/stack/sysctl.js';
import { TimerWheel, VirtualClock } from '../../src/base/time.js';
import { formatIpv6, parseIpv6 } from '../../src/wire/addr.js';
import { ETH_HLEN, EtherType, writeEthernetHeader } from '../../src/wire/ethernet.js';
import { ICMPV6_HLEN, Icmpv6Type, finishIcmpv6Checksum, icmpv6ChecksumOk, writeIcmpv6Echo } from '../../src/wire/icmpv6.js';
import { IPV6_HLEN, Ipv6ExtChain, Ipv6Next, Ipv6View, writeIpv6Header } from '../../src/wire/ipv6.js';
import {
  NDP_HOP_LIMIT, NaFlag, NdpOption, PrefixFlag, writeLinkLayerOption, writeMtuOption, writeNeighborAdvert, writeNeighborSolicit,
  writePrefixInfoOption, writeRouterAdvert, writeSolicitedNodeMulticast,
} from '../../src/wire/ndp.js';

export const OUR_MAC = Uint8Array.of(0x02, 0x00, 0x5e, 0x10, 0x00, 0x01);
export const PEER_MAC = Uint8Array.of(0x02, 0x00, 0x5e, 0x10, 0x00, 0x02);
export const OUR_LL = ip6('fe80::5eff:fe10:1');
export const PEER_LL = ip6('fe80::2');
export const OUR = ip6('2001:db8::2');
export const PEER = ip6('2001:db8::1');

export function ip6(text: string): Uint8Array {
  const a = parseIpv6(text);
  if (!a) throw new Error(`bad address ${text}`);
  return a;
}

/** One transmitted frame, parsed enough for assertions. */
export class Sent {
  readonly ip = new Ipv6View();
  readonly chain = new Ipv6ExtChain();
  constructor(readonly bytes: Uint8Array) {
    if (this.etherType === EtherType.IPv6) {
      this.ip.wrap(bytes, ETH_HLEN, bytes.length - ETH_HLEN);
      this.chain.walk(this.ip);
    }
  }
  get dstMac(): string { return [...this.bytes.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':'); }
  get etherType(): number { return (this.bytes[12]! << 8) | this.bytes[13]!; }
  get src(): string { return formatIpv6(this.bytes, ETH_HLEN + 8); }
  get dst(): string { return formatIpv6(this.bytes, ETH_HLEN + 24); }
  get hopLimit(): number { return this.ip.hopLimit; }
  /** Upper-layer protocol after the extension headers (Fragment 44 for a non-first fragment). */
  get proto(): number { return this.chain.protocol; }
  /** Offset of the upper-layer header in bytes. */
  get l4(): number { return this.chain.offset; }
  get icmpType(): number { return this.proto === Ipv6Next.ICMPv6 ? this.bytes[this.l4]! : -1; }
  get icmpCode(): number { return this.bytes[this.l4 + 1]!; }
  /** The 32-bit word after an ICMPv6 checksum (pointer, MTU). */
  get icmpWord(): number { const o = this.l4 + 4; return ((this.bytes[o]! << 24) | (this.bytes[o + 1]! << 16) | (this.bytes[o + 2]! << 8) | this.bytes[o + 3]!) >>> 0; }
  get length(): number { return this.bytes.length; }
  /** The ICMPv6 checksum verifies against the pseudo-header (only for unfragmented messages). */
  get icmpChecksumOk(): boolean {
    return icmpv6ChecksumOk(this.bytes, this.l4, this.ip.end - this.l4, this.bytes, ETH_HLEN + 8, this.bytes, ETH_HLEN + 24);
  }
}

export class FakeIface implements Ipv6Iface {
  up = true;
  constructor(readonly index: number, readonly mac: Uint8Array, public mtu = 1500) {}
}

export interface Harness {
  clock: VirtualClock;
  wheel: TimerWheel;
  sysctl: Sysctl;
  pool: BufferPool;
  ip6: Ipv6;
  iface: FakeIface;
  sent: Sent[];
  drops: Record<string, number>;
  /** Moves the virtual clock forward by ms, running due timers. */
  advance(ms: number): void;
  /** Hands a frame (Ethernet header included) to the IPv6 layer. */
  receive(frame: Uint8Array): void;
  /** Frames sent since the last take(), removed from `sent`. */
  take(): Sent[];
  /** Addresses (text) whose neighbour solicitations the harness answers with a solicited NA from PEER_MAC. */
  answering: Set<string>;
}

export function makeHarness(opts: { cfg?: Ipv6Config; sysctl?: Record<string, SysctlValue>; mtu?: number; seed?: number; settle?: boolean } = {}): Harness {
  const clock = new VirtualClock(1_000_000);
  const wheel = new TimerWheel(1, 4096, clock.now());
  const sysctl = new Sysctl();
  const pool = new BufferPool();
  const prng = new Prng(opts.seed ?? 7);
  const iface = new FakeIface(1, OUR_MAC, opts.mtu ?? 1500);
  const sent: Sent[] = [];
  const pending: Uint8Array[] = [];
  const answering = new Set(['2001:db8::1', 'fe80::2']);
  const drops: Record<string, number> = Object.create(null);
  const ctx: Ipv6Context = {
    clock, wheel, sysctl, pool,
    interfaceByIndex: (i) => (i === 1 ? iface : undefined),
    ethOutput: (ifc, dstMac, dstOff, etherType, buf) => {
      const off = buf.prepend(ETH_HLEN);
      writeEthernetHeader(buf.data, off, dstMac, dstOff, ifc.mac, etherType);
      const f = new Sent(buf.data.slice(buf.start, buf.end));
      sent.push(f);
      buf.release();
      if (f.icmpType === Icmpv6Type.NeighborSolicit) {
        const target = f.bytes.subarray(f.l4 + 8, f.l4 + 24);
        if (answering.has(formatIpv6(target)) && f.src !== '::') pending.push(naFrame(target.slice(), f.ip.bytes.slice(f.ip.srcOff, f.ip.srcOff + 16), target.slice(), NaFlag.Solicited | NaFlag.Override));
      }
    },
    drop: (r) => { drops[r] = (drops[r] ?? 0) + 1; },
    random32: () => prng.u32(),
  };
  defineIpv6Sysctls(sysctl);
  for (const [k, v] of Object.entries(opts.sysctl ?? {})) sysctl.set(k, v);
  const ip6 = new Ipv6(ctx);
  ip6.attach(iface, opts.cfg ?? { addr6: '2001:db8::2/64' });
  const h: Harness = {
    clock, wheel, sysctl, pool, ip6, iface, sent, drops,
    advance(ms) {
      const until = clock.now() + ms;
      for (;;) {
        while (pending.length) h.receive(pending.shift()!);
        const next = wheel.nextDeadline();
        if (next > until) break;
        clock.set(Math.max(next, clock.now()));
        wheel.advance(clock.now());
      }
      clock.set(until);
      wheel.advance(until);
    },
    receive(frame) {
      const buf = pool.alloc(frame.length + 256);
      const o = buf.append(frame.length);
      buf.data.set(frame, o);
      buf.ifIndex = 1;
      const l2Mcast = (frame[0]! & 1) === 1;
      ip6.input(iface, buf, o + ETH_HLEN, frame.length - ETH_HLEN, l2Mcast);
    },
    take() {
      while (pending.length) h.receive(pending.shift()!);
      return sent.splice(0);
    },
    answering,
  };
  // Let DAD finish so the addresses are assigned (1 s random delay + 1 probe + 1 s).
  if (opts.settle !== false) { h.advance(3000); h.take(); }
  return h;
}

// ---- frame builders --------------------------------------------------------------------------

/** An Ethernet + IPv6 frame around `payload` (which starts with whatever nextHeader names). */
export function ipv6Frame(src: Uint8Array, dst: Uint8Array, nextHeader: number, payload: Uint8Array,
  opts: { hopLimit?: number; dstMac?: Uint8Array; srcMac?: Uint8Array } = {}): Uint8Array {
  const f = new Uint8Array(ETH_HLEN + IPV6_HLEN + payload.length);
  const dstMac = opts.dstMac ?? (dst[0] === 0xff ? Uint8Array.of(0x33, 0x33, dst[12]!, dst[13]!, dst[14]!, dst[15]!) : OUR_MAC);
  writeEthernetHeader(f, 0, dstMac, 0, opts.srcMac ?? PEER_MAC, EtherType.IPv6);
  writeIpv6Header(f, ETH_HLEN, 0, 0, payload.length, nextHeader, opts.hopLimit ?? 64, src, 0, dst, 0);
  f.set(payload, ETH_HLEN + IPV6_HLEN);
  return f;
}

/** An ICMPv6 message with a correct checksum for src → dst. */
export function icmp6(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): Uint8Array {
  const m = msg.slice();
  finishIcmpv6Checksum(m, 0, m.length, src, 0, dst, 0);
  return m;
}

export function echoRequest(id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(ICMPV6_HLEN + data.length);
  writeIcmpv6Echo(m, 0, Icmpv6Type.EchoRequest, id, seq);
  m.set(data, ICMPV6_HLEN);
  return m;
}

/** A ping frame from PEER (or `src`) to `dst`. */
export function pingFrame(dst: Uint8Array, data: Uint8Array, opts: { src?: Uint8Array; id?: number; seq?: number } = {}): Uint8Array {
  const src = opts.src ?? PEER;
  return ipv6Frame(src, dst, Ipv6Next.ICMPv6, icmp6(src, dst, echoRequest(opts.id ?? 7, opts.seq ?? 1, data)));
}

/**
 * Splits `payload` (what follows the IPv6 header; `nextHeader` names it) into fragment frames
 * with `chunk` data bytes each (a multiple of 8 except the last).
 */
export function fragmentFrames(src: Uint8Array, dst: Uint8Array, nextHeader: number, payload: Uint8Array, chunk: number, id: number,
  pieces?: [number, number][]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const ranges = pieces ?? [];
  if (!pieces) for (let at = 0; at < payload.length; at += chunk) ranges.push([at, Math.min(payload.length, at + chunk)]);
  for (const [lo, hi] of ranges) {
    const p = new Uint8Array(8 + hi - lo);
    p[0] = nextHeader;
    const more = hi < payload.length ? 1 : 0;
    p[2] = (lo >> 8) & 0xff; p[3] = (lo & 0xf8) | more;
    p[4] = id >>> 24; p[5] = (id >>> 16) & 0xff; p[6] = (id >>> 8) & 0xff; p[7] = id & 0xff;
    p.set(payload.subarray(lo, hi), 8);
    out.push(ipv6Frame(src, dst, Ipv6Next.Fragment, p));
  }
  return out;
}

export function nsFrame(src: Uint8Array, target: Uint8Array, opts: { slla?: Uint8Array | null; dst?: Uint8Array; nonce?: Uint8Array } = {}): Uint8Array {
  const m = new Uint8Array(64);
  let n = writeNeighborSolicit(m, 0, target, 0, opts.slla === undefined ? PEER_MAC : opts.slla);
  if (opts.nonce) { m[n] = NdpOption.Nonce; m[n + 1] = 1; m.set(opts.nonce, n + 2); n += 8; }
  const dst = opts.dst ?? solicitedNode(target);
  return ipv6Frame(src, dst, Ipv6Next.ICMPv6, icmp6(src, dst, m.subarray(0, n)), { hopLimit: NDP_HOP_LIMIT });
}

export function naFrame(src: Uint8Array, dst: Uint8Array, target: Uint8Array, flags: number, tlla: Uint8Array | null = PEER_MAC): Uint8Array {
  const m = new Uint8Array(64);
  const n = writeNeighborAdvert(m, 0, flags, target, 0, tlla);
  return ipv6Frame(src, dst, Ipv6Next.ICMPv6, icmp6(src, dst, m.subarray(0, n)), { hopLimit: NDP_HOP_LIMIT });
}

export interface RaPrefix { prefix: string; len?: number; onLink?: boolean; auto?: boolean; valid: number; preferred: number; }

export function raFrame(opts: { src?: Uint8Array; routerLifetime?: number; hopLimit?: number; mtu?: number; prefixes?: RaPrefix[]; slla?: boolean; reachable?: number; retrans?: number }): Uint8Array {
  const src = opts.src ?? PEER_LL;
  const dst = ip6('ff02::1');
  const m = new Uint8Array(256);
  let n = writeRouterAdvert(m, 0, opts.hopLimit ?? 0, 0, opts.routerLifetime ?? 1800, opts.reachable ?? 0, opts.retrans ?? 0);
  if (opts.slla !== false) n += writeLinkLayerOption(m, n, NdpOption.SourceLinkLayer, PEER_MAC);
  if (opts.mtu) n += writeMtuOption(m, n, opts.mtu);
  for (const p of opts.prefixes ?? []) {
    const flags = (p.onLink !== false ? PrefixFlag.OnLink : 0) | (p.auto !== false ? PrefixFlag.Autonomous : 0);
    n += writePrefixInfoOption(m, n, p.len ?? 64, flags, p.valid, p.preferred, ip6(p.prefix), 0);
  }
  return ipv6Frame(src, dst, Ipv6Next.ICMPv6, icmp6(src, dst, m.subarray(0, n)), { hopLimit: NDP_HOP_LIMIT });
}

export function solicitedNode(a: Uint8Array): Uint8Array {
  const g = new Uint8Array(16);
  writeSolicitedNodeMulticast(g, 0, a, 0);
  return g;
}

export { NaFlag, Ipv6Next, Icmpv6Type, ETH_HLEN, IPV6_HLEN };
export type { PacketBuffer };
