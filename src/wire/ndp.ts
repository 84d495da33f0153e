// Neighbor Discovery for IPv6 (RFC 4861): Router Solicitation/Advertisement, Neighbor
// Solicitation/Advertisement, Redirect, and their options. Messages are ICMPv6 (types 133-137);
// the checksum is checked with icmpv6ChecksumOk / written with finishIcmpv6Checksum.
import { WireError } from './errors.js';
import { Icmpv6Type } from './icmpv6.js';
import { isIpv6LinkLocal, isIpv6Multicast, isIpv6Unspecified, type Ipv6View } from './ipv6.js';

export const NdpOption = {
  SourceLinkLayer: 1,
  TargetLinkLayer: 2,
  PrefixInfo: 3,
  RedirectedHeader: 4,
  Mtu: 5,
  /** RFC 3971 §5.3.2; Linux puts one in its DAD probes (RFC 7527 enhanced DAD). */
  Nonce: 14,
  RouteInfo: 24,
  Rdnss: 25,
} as const;

/** RFC 4861 §6.1.1 and friends: "The IP Hop Limit field has a value of 255". */
export const NDP_HOP_LIMIT = 255;

export const RS_LEN = 8;
export const RA_LEN = 16;
export const NS_LEN = 24;
export const NA_LEN = 24;
export const REDIRECT_LEN = 40;
/** An Ethernet link-layer address option: type, length 1, 6-byte address. */
export const NDP_LLA_OPTION_LEN = 8;
export const NDP_PREFIX_OPTION_LEN = 32;
export const NDP_MTU_OPTION_LEN = 8;

/** NA flag bits in the first byte after the checksum (RFC 4861 §4.4). */
export const NaFlag = { Router: 0x80, Solicited: 0x40, Override: 0x20 } as const;
/** RA flag bits (RFC 4861 §4.2). */
export const RaFlag = { Managed: 0x80, Other: 0x40 } as const;
/** Prefix Information flag bits (RFC 4861 §4.6.2). */
export const PrefixFlag = { OnLink: 0x80, Autonomous: 0x40 } as const;

/**
 * Walks NDP options (type, length in 8-octet units, data) without allocating. next() returns
 * false at the end or on error; `error` then says which (Ok at a clean end).
 */
export class NdpOptionIter {
  bytes: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  type = 0;
  /** Offset of the current option's type byte, and its whole length in bytes. */
  off = 0;
  len = 0;
  error: WireError = WireError.Ok;

  begin(bytes: Uint8Array, off: number, end: number): void {
    this.bytes = bytes; this.pos = off; this.end = end; this.error = WireError.Ok;
  }

  next(): boolean {
    if (this.pos >= this.end) { this.error = this.pos === this.end ? WireError.Ok : WireError.BadOption; return false; }
    if (this.pos + 2 > this.end) { this.error = WireError.BadOption; return false; }
    const units = this.bytes[this.pos + 1]!;
    // RFC 4861 §4.6: "Nodes MUST silently discard an ND packet that contains an option with length zero."
    if (units === 0) { this.error = WireError.BadOption; return false; }
    const l = units * 8;
    if (this.pos + l > this.end) { this.error = WireError.BadOption; return false; }
    this.type = this.bytes[this.pos]!; this.off = this.pos; this.len = l;
    this.pos += l;
    return true;
  }
}

/** Shared shape of the five messages: fixed part, then options to the end of the message. */
export class NdpView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;
  private readonly iter = new NdpOptionIter();

  constructor(readonly msgType: number, readonly fixedLen: number) {}

  /**
   * Checks what the message alone can tell (RFC 4861 §6.1, §7.1, §8.1): type, "ICMP Code is 0",
   * "ICMP length (derived from the IP length) is N or more octets", every option well formed
   * and not of length zero, and for NS/NA/Redirect that the target/destination is not multicast.
   * The checksum and the IP-level rules (checkIp) are separate.
   */
  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (off < 0 || len < 4 || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off; this.len = len;
    if (bytes[off] !== this.msgType) return WireError.Unsupported;
    if (bytes[off + 1] !== 0) return WireError.Malformed;
    if (len < this.fixedLen) return WireError.Truncated;
    const it = this.iter;
    it.begin(bytes, off + this.fixedLen, off + len);
    while (it.next()) { /* validate only */ }
    if (it.error !== WireError.Ok) return it.error;
    if (this.fixedLen >= NS_LEN && isIpv6Multicast(bytes, off + 8)) return WireError.Malformed;
    if (this.msgType === Icmpv6Type.Redirect && isIpv6Multicast(bytes, off + 24)) return WireError.Malformed;
    return WireError.Ok;
  }

  get type(): number { return this.bytes[this.off]!; }
  get code(): number { return this.bytes[this.off + 1]!; }
  get checksum(): number { return (this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!; }
  get optionsOff(): number { return this.off + this.fixedLen; }
  get optionsEnd(): number { return this.off + this.len; }

  /** Starts `it` over this message's options (wrap has already validated them). */
  options(it: NdpOptionIter): NdpOptionIter { it.begin(this.bytes, this.optionsOff, this.optionsEnd); return it; }

  /** Offset of the first option of `type`, or -1. */
  findOption(type: number): number {
    const it = this.iter;
    it.begin(this.bytes, this.optionsOff, this.optionsEnd);
    while (it.next()) if (it.type === type) return it.off;
    return -1;
  }

  /**
   * Offset of the 6-byte Ethernet address in the first Source/Target Link-Layer Address option
   * of `type`, or -1 when there is none (or it is not Ethernet-sized).
   */
  linkLayerAddrOff(type: number): number {
    const it = this.iter;
    it.begin(this.bytes, this.optionsOff, this.optionsEnd);
    while (it.next()) if (it.type === type && it.len === NDP_LLA_OPTION_LEN) return it.off + 2;
    return -1;
  }

  /**
   * The IP-level validity checks of RFC 4861 for this message type, given its IPv6 header:
   * hop limit 255 always; RA and Redirect from a link-local source; RS/NS from the unspecified
   * address carry no source link-layer option, and such an NS goes to a solicited-node group;
   * an NA sent to a multicast group has S = 0.
   */
  checkIp(ip: Ipv6View): WireError {
    const b = ip.bytes;
    if (ip.hopLimit !== NDP_HOP_LIMIT) return WireError.Malformed;
    const t = this.msgType;
    if ((t === Icmpv6Type.RouterAdvert || t === Icmpv6Type.Redirect) && !isIpv6LinkLocal(b, ip.srcOff)) return WireError.Malformed;
    if ((t === Icmpv6Type.RouterSolicit || t === Icmpv6Type.NeighborSolicit) && isIpv6Unspecified(b, ip.srcOff)) {
      // §6.1.1 / §7.1.1: "If the IP source address is the unspecified address, ... there is no
      // source link-layer address option in the message."
      if (this.findOption(NdpOption.SourceLinkLayer) >= 0) return WireError.Malformed;
      // §7.1.1: "... the IP destination address is a solicited-node multicast address."
      if (t === Icmpv6Type.NeighborSolicit && !isSolicitedNodeMulticast(b, ip.dstOff)) return WireError.Malformed;
    }
    // §7.1.2: "If the IP Destination Address is a multicast address the Solicited flag is zero."
    if (t === Icmpv6Type.NeighborAdvert && isIpv6Multicast(b, ip.dstOff) && (this.bytes[this.off + 4]! & NaFlag.Solicited) !== 0) return WireError.Malformed;
    return WireError.Ok;
  }
}

export class RouterSolicitView extends NdpView {
  constructor() { super(Icmpv6Type.RouterSolicit, RS_LEN); }
}

export class RouterAdvertView extends NdpView {
  constructor() { super(Icmpv6Type.RouterAdvert, RA_LEN); }
  /** 0 means unspecified (by this router). */
  get curHopLimit(): number { return this.bytes[this.off + 4]!; }
  get flags(): number { return this.bytes[this.off + 5]!; }
  get managed(): boolean { return (this.flags & RaFlag.Managed) !== 0; }
  get other(): boolean { return (this.flags & RaFlag.Other) !== 0; }
  /** Seconds; 0 = not a default router. */
  get routerLifetime(): number { return (this.bytes[this.off + 6]! << 8) | this.bytes[this.off + 7]!; }
  /** Milliseconds; 0 = unspecified. */
  get reachableTime(): number { return rd32(this.bytes, this.off + 8); }
  /** Milliseconds; 0 = unspecified. */
  get retransTimer(): number { return rd32(this.bytes, this.off + 12); }
}

export class NeighborSolicitView extends NdpView {
  constructor() { super(Icmpv6Type.NeighborSolicit, NS_LEN); }
  get targetOff(): number { return this.off + 8; }
}

export class NeighborAdvertView extends NdpView {
  constructor() { super(Icmpv6Type.NeighborAdvert, NA_LEN); }
  get flags(): number { return this.bytes[this.off + 4]!; }
  get router(): boolean { return (this.flags & NaFlag.Router) !== 0; }
  get solicited(): boolean { return (this.flags & NaFlag.Solicited) !== 0; }
  get override(): boolean { return (this.flags & NaFlag.Override) !== 0; }
  get targetOff(): number { return this.off + 8; }
}

export class RedirectView extends NdpView {
  constructor() { super(Icmpv6Type.Redirect, REDIRECT_LEN); }
  /** The better first hop. */
  get targetOff(): number { return this.off + 8; }
  /** The destination being redirected. */
  get destinationOff(): number { return this.off + 24; }
}

/** Prefix Information option (RFC 4861 §4.6.2) at an option's offset. */
export class PrefixInfoView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (off < 0 || len < NDP_PREFIX_OPTION_LEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off;
    if (bytes[off] !== NdpOption.PrefixInfo) return WireError.Unsupported;
    if (bytes[off + 1] !== 4) return WireError.BadOption;
    if (bytes[off + 2]! > 128) return WireError.BadOption;
    return WireError.Ok;
  }

  get prefixLength(): number { return this.bytes[this.off + 2]!; }
  get flags(): number { return this.bytes[this.off + 3]!; }
  get onLink(): boolean { return (this.flags & PrefixFlag.OnLink) !== 0; }
  get autonomous(): boolean { return (this.flags & PrefixFlag.Autonomous) !== 0; }
  /** Seconds; 0xffffffff = infinity. */
  get validLifetime(): number { return rd32(this.bytes, this.off + 4); }
  get preferredLifetime(): number { return rd32(this.bytes, this.off + 8); }
  get prefixOff(): number { return this.off + 16; }
}

/** The MTU carried by an MTU option at `off` (RFC 4861 §4.6.4), or -1 when it is malformed. */
export function readMtuOption(b: Uint8Array, off: number, len: number): number {
  if (len < NDP_MTU_OPTION_LEN || off + NDP_MTU_OPTION_LEN > b.length || b[off] !== NdpOption.Mtu || b[off + 1] !== 1) return -1;
  return rd32(b, off + 4);
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}
function copy16(b: Uint8Array, o: number, src: Uint8Array, srcOff: number): void {
  for (let i = 0; i < 16; i++) b[o + i] = src[srcOff + i]!;
}

// ---- solicited-node multicast (RFC 4291 §2.7.1): ff02::1:ff00:0/104 + the low 24 bits ----

export function writeSolicitedNodeMulticast(out: Uint8Array, outOff: number, addr: Uint8Array, addrOff: number): void {
  out[outOff] = 0xff; out[outOff + 1] = 0x02;
  for (let i = 2; i < 11; i++) out[outOff + i] = 0;
  out[outOff + 11] = 1; out[outOff + 12] = 0xff;
  out[outOff + 13] = addr[addrOff + 13]!; out[outOff + 14] = addr[addrOff + 14]!; out[outOff + 15] = addr[addrOff + 15]!;
}

export function isSolicitedNodeMulticast(b: Uint8Array, off: number): boolean {
  if (b[off] !== 0xff || b[off + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (b[off + i] !== 0) return false;
  return b[off + 11] === 1 && b[off + 12] === 0xff;
}

// ---- emitters: each writes at `off` with a zero checksum and returns the bytes written ----

/** Source (1) or Target (2) Link-Layer Address option for Ethernet. */
export function writeLinkLayerOption(b: Uint8Array, off: number, type: number, mac: Uint8Array, macOff = 0): number {
  b[off] = type; b[off + 1] = 1;
  for (let i = 0; i < 6; i++) b[off + 2 + i] = mac[macOff + i]!;
  return NDP_LLA_OPTION_LEN;
}

export function writePrefixInfoOption(b: Uint8Array, off: number, prefixLength: number, flags: number,
  validLifetime: number, preferredLifetime: number, prefix: Uint8Array, prefixOff: number): number {
  b[off] = NdpOption.PrefixInfo; b[off + 1] = 4; b[off + 2] = prefixLength; b[off + 3] = flags;
  wr32(b, off + 4, validLifetime); wr32(b, off + 8, preferredLifetime); wr32(b, off + 12, 0);
  copy16(b, off + 16, prefix, prefixOff);
  return NDP_PREFIX_OPTION_LEN;
}

export function writeMtuOption(b: Uint8Array, off: number, mtu: number): number {
  b[off] = NdpOption.Mtu; b[off + 1] = 1; b[off + 2] = 0; b[off + 3] = 0;
  wr32(b, off + 4, mtu);
  return NDP_MTU_OPTION_LEN;
}

function writeNdpHead(b: Uint8Array, off: number, type: number): void {
  b[off] = type; b[off + 1] = 0; b[off + 2] = 0; b[off + 3] = 0;
}

/** RS; with `slla` (our MAC) a Source Link-Layer Address option follows. */
export function writeRouterSolicit(b: Uint8Array, off: number, slla: Uint8Array | null): number {
  writeNdpHead(b, off, Icmpv6Type.RouterSolicit); wr32(b, off + 4, 0);
  return RS_LEN + (slla ? writeLinkLayerOption(b, off + RS_LEN, NdpOption.SourceLinkLayer, slla) : 0);
}

/** RA fixed part only; options are appended with the write…Option helpers. */
export function writeRouterAdvert(b: Uint8Array, off: number, curHopLimit: number, flags: number,
  routerLifetime: number, reachableTime: number, retransTimer: number): number {
  writeNdpHead(b, off, Icmpv6Type.RouterAdvert);
  b[off + 4] = curHopLimit; b[off + 5] = flags;
  b[off + 6] = (routerLifetime >> 8) & 0xff; b[off + 7] = routerLifetime & 0xff;
  wr32(b, off + 8, reachableTime); wr32(b, off + 12, retransTimer);
  return RA_LEN;
}

/** NS for `target`; with `slla` a Source Link-Layer Address option follows (omit it for DAD). */
export function writeNeighborSolicit(b: Uint8Array, off: number, target: Uint8Array, targetOff: number, slla: Uint8Array | null): number {
  writeNdpHead(b, off, Icmpv6Type.NeighborSolicit); wr32(b, off + 4, 0);
  copy16(b, off + 8, target, targetOff);
  return NS_LEN + (slla ? writeLinkLayerOption(b, off + NS_LEN, NdpOption.SourceLinkLayer, slla) : 0);
}

/** NA with NaFlag bits; with `tlla` a Target Link-Layer Address option follows. */
export function writeNeighborAdvert(b: Uint8Array, off: number, flags: number, target: Uint8Array, targetOff: number, tlla: Uint8Array | null): number {
  writeNdpHead(b, off, Icmpv6Type.NeighborAdvert); wr32(b, off + 4, 0);
  b[off + 4] = flags & 0xe0;
  copy16(b, off + 8, target, targetOff);
  return NA_LEN + (tlla ? writeLinkLayerOption(b, off + NA_LEN, NdpOption.TargetLinkLayer, tlla) : 0);
}

/** Redirect fixed part; options (TLLA, Redirected Header) are appended by the caller. */
export function writeRedirect(b: Uint8Array, off: number, target: Uint8Array, targetOff: number, dest: Uint8Array, destOff: number): number {
  writeNdpHead(b, off, Icmpv6Type.Redirect); wr32(b, off + 4, 0);
  copy16(b, off + 8, target, targetOff);
  copy16(b, off + 24, dest, destOff);
  return REDIRECT_LEN;
}
