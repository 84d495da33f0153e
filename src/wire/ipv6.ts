// IPv6 (RFC 8200): the fixed header, the extension-header chain, the Fragment header and the
// TLV options of Hop-by-Hop / Destination Options headers. Addresses stay in the packet's
// bytes; accessors hand out their offsets.
import { WireError } from './errors.js';

export const IPV6_HLEN = 40;
export const IPV6_MIN_MTU = 1280;
export const IPV6_FRAG_HLEN = 8;

/** Next Header values (IANA "Assigned Internet Protocol Numbers"). */
export const Ipv6Next = {
  HopByHop: 0,
  TCP: 6,
  UDP: 17,
  IPv6: 41,
  Routing: 43,
  Fragment: 44,
  ESP: 50,
  AH: 51,
  ICMPv6: 58,
  NoNext: 59,
  DestOptions: 60,
  Mobility: 135,
} as const;

/** Longest extension-header chain walked before the packet is refused (RFC 8504 §5.3 lets a node limit it). */
export const IPV6_MAX_EXT_HEADERS = 8;

export class Ipv6View {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  /**
   * Validates version and that the payload length fits the `len` bytes available (Ethernet
   * padding after the payload is allowed). Extension headers are left to Ipv6ExtChain.
   */
  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (off < 0 || len < IPV6_HLEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off;
    if (bytes[off]! >> 4 !== 6) return WireError.BadVersion;
    if (IPV6_HLEN + this.payloadLength > len) return WireError.Truncated;
    return WireError.Ok;
  }

  /**
   * For the invoking packet quoted inside an ICMPv6 error (RFC 4443 §2.4(c)), which is usually
   * cut short: only the fixed header must be present. Walk its chain with
   * `walkFrom(bytes, payloadOff, min(end, off + len), …)`.
   */
  wrapQuoted(bytes: Uint8Array, off: number, len: number): WireError {
    if (off < 0 || len < IPV6_HLEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off;
    if (bytes[off]! >> 4 !== 6) return WireError.BadVersion;
    return WireError.Ok;
  }

  get version(): number { return this.bytes[this.off]! >> 4; }
  get trafficClass(): number { return ((this.bytes[this.off]! & 0x0f) << 4) | (this.bytes[this.off + 1]! >> 4); }
  set trafficClass(v: number) {
    const b = this.bytes, o = this.off;
    b[o] = 0x60 | ((v >> 4) & 0x0f);
    b[o + 1] = ((v & 0x0f) << 4) | (b[o + 1]! & 0x0f);
  }
  get flowLabel(): number { return ((this.bytes[this.off + 1]! & 0x0f) << 16) | (this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!; }
  /** Bytes after the fixed header, extension headers included. */
  get payloadLength(): number { return (this.bytes[this.off + 4]! << 8) | this.bytes[this.off + 5]!; }
  set payloadLength(v: number) { this.bytes[this.off + 4] = (v >> 8) & 0xff; this.bytes[this.off + 5] = v & 0xff; }
  get nextHeader(): number { return this.bytes[this.off + 6]!; }
  set nextHeader(v: number) { this.bytes[this.off + 6] = v; }
  get hopLimit(): number { return this.bytes[this.off + 7]!; }
  /** IPv6 has no header checksum, so a router just rewrites the byte. */
  set hopLimit(v: number) { this.bytes[this.off + 7] = v; }
  get srcOff(): number { return this.off + 8; }
  get dstOff(): number { return this.off + 24; }
  get payloadOff(): number { return this.off + IPV6_HLEN; }
  /** Offset just past the payload (extension headers and upper layer). */
  get end(): number { return this.off + IPV6_HLEN + this.payloadLength; }
}

/**
 * Writes the 40-byte fixed header at `off`. Addresses are 16 bytes at `srcOff` / `dstOff` in
 * `src` / `dst` (they may be this same buffer, e.g. when swapping to build a reply, as long as
 * the ranges do not overlap the header being written).
 */
export function writeIpv6Header(b: Uint8Array, off: number, trafficClass: number, flowLabel: number, payloadLength: number,
  nextHeader: number, hopLimit: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  b[off] = 0x60 | ((trafficClass >> 4) & 0x0f);
  b[off + 1] = ((trafficClass & 0x0f) << 4) | ((flowLabel >> 16) & 0x0f);
  b[off + 2] = (flowLabel >> 8) & 0xff; b[off + 3] = flowLabel & 0xff;
  b[off + 4] = (payloadLength >> 8) & 0xff; b[off + 5] = payloadLength & 0xff;
  b[off + 6] = nextHeader; b[off + 7] = hopLimit;
  for (let i = 0; i < 16; i++) { b[off + 8 + i] = src[srcOff + i]!; b[off + 24 + i] = dst[dstOff + i]!; }
}

// ---- addresses (16 bytes at an offset) ----

export function isIpv6Unspecified(b: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (b[off + i] !== 0) return false;
  return true;
}
export function isIpv6Multicast(b: Uint8Array, off: number): boolean { return b[off] === 0xff; }
/** fe80::/10 (RFC 4291 §2.5.6). */
export function isIpv6LinkLocal(b: Uint8Array, off: number): boolean { return b[off] === 0xfe && (b[off + 1]! & 0xc0) === 0x80; }
export function ipv6Equals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
/** The Ethernet address of an IPv6 multicast group: 33:33 + its low 32 bits (RFC 2464 §7). */
export function writeIpv6MulticastMac(out: Uint8Array, outOff: number, group: Uint8Array, groupOff: number): void {
  out[outOff] = 0x33; out[outOff + 1] = 0x33;
  for (let i = 0; i < 4; i++) out[outOff + 2 + i] = group[groupOff + 12 + i]!;
}

// ---- Fragment header (RFC 8200 §4.5) ----

export class Ipv6FragmentView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;

  wrap(bytes: Uint8Array, off: number, len: number): WireError {
    if (off < 0 || len < IPV6_FRAG_HLEN || off + len > bytes.length) return WireError.Truncated;
    this.bytes = bytes; this.off = off;
    return WireError.Ok;
  }

  get nextHeader(): number { return this.bytes[this.off]!; }
  /** Offset of this fragment's data within the original payload, in bytes (the field counts 8-octet units). */
  get fragmentOffset(): number { return (((this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!) & 0xfff8); }
  get moreFragments(): boolean { return (this.bytes[this.off + 3]! & 1) !== 0; }
  get identification(): number {
    const b = this.bytes, o = this.off + 4;
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }
  /** RFC 8200 §4.5: offset 0 and M = 0 — "processed as a fully reassembled packet". */
  get isAtomic(): boolean { return this.fragmentOffset === 0 && !this.moreFragments; }
}

/** Writes a Fragment header; `fragmentOffset` is in bytes and must be a multiple of 8. */
export function writeIpv6FragmentHeader(b: Uint8Array, off: number, nextHeader: number, fragmentOffset: number, more: boolean, identification: number): void {
  b[off] = nextHeader; b[off + 1] = 0;
  const w = (fragmentOffset & 0xfff8) | (more ? 1 : 0);
  b[off + 2] = w >> 8; b[off + 3] = w & 0xff;
  b[off + 4] = identification >>> 24; b[off + 5] = (identification >>> 16) & 0xff;
  b[off + 6] = (identification >>> 8) & 0xff; b[off + 7] = identification & 0xff;
}

// ---- Hop-by-Hop / Destination Options TLVs (RFC 8200 §4.2) ----

export const Ipv6Option = { Pad1: 0, PadN: 1, RouterAlert: 5, Jumbo: 0xc2 } as const;
/**
 * RFC 8200 §4.2: the two high-order bits of an unrecognized option's type say what to do:
 * 00 skip, 01 discard, 10 discard + Parameter Problem code 2, 11 the same unless the
 * destination is multicast.
 */
export const Ipv6OptionAction = { Skip: 0, Discard: 1, DiscardIcmp: 2, DiscardIcmpUnicast: 3 } as const;

/** Walks the options of a Hop-by-Hop or Destination Options header without allocating. */
export class Ipv6OptionIter {
  bytes: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  /** The current option: type, offset of its type byte, data offset and data length. */
  type = 0;
  off = 0;
  dataOff = 0;
  dataLen = 0;
  /** Set when next() returned false: Ok at a clean end, BadOption when an option overruns the header. */
  error: WireError = WireError.Ok;

  /** `hdrOff` is the extension header's start; its options begin 2 bytes in. */
  begin(bytes: Uint8Array, hdrOff: number, hdrLen: number): void {
    this.bytes = bytes; this.pos = hdrOff + 2; this.end = hdrOff + hdrLen; this.error = WireError.Ok;
  }

  /** Advances to the next option other than padding; false at the end or on a malformed option. */
  next(): boolean {
    const b = this.bytes;
    while (this.pos < this.end) {
      const t = b[this.pos]!;
      if (t === Ipv6Option.Pad1) { this.pos++; continue; }
      if (this.pos + 2 > this.end) { this.error = WireError.BadOption; return false; }
      const l = b[this.pos + 1]!;
      if (this.pos + 2 + l > this.end) { this.error = WireError.BadOption; return false; }
      this.off = this.pos; this.type = t; this.dataOff = this.pos + 2; this.dataLen = l;
      this.pos += 2 + l;
      if (t === Ipv6Option.PadN) continue;
      return true;
    }
    this.error = WireError.Ok;
    return false;
  }
}

// ---- the extension-header chain ----

/**
 * Walks the extension headers after a fixed header and finds the upper-layer header, without
 * allocating: reuse one instance for every packet. After `walk` returned Ok:
 *  - `protocol` is the upper-layer Next Header value (or NoNext 59, or Fragment 44 when the
 *    packet is a non-atomic fragment: nothing past that header may be parsed before reassembly,
 *    or ESP/AH, which are reported as upper layers);
 *  - `offset` / `length` locate the upper-layer header and data;
 *  - `nextHeaderFieldOff` is the byte holding `protocol` (to patch after reassembly);
 *  - `hopByHopOff`, `routingOff`, `fragmentOff`, `destOptionsOff` locate those headers (-1 absent;
 *    destOptionsOff is the last Destination Options header seen).
 * On error, `errorOff` is the offset of the offending byte (the ICMPv6 Parameter Problem
 * pointer is `errorOff` minus the IPv6 header's offset), or -1 when there is no such byte.
 */
export class Ipv6ExtChain {
  protocol = 0;
  offset = 0;
  length = 0;
  count = 0;
  nextHeaderFieldOff = -1;
  hopByHopOff = -1;
  routingOff = -1;
  fragmentOff = -1;
  destOptionsOff = -1;
  errorOff = -1;
  private readonly opts = new Ipv6OptionIter();

  /** Walks the chain of the packet `ip` points at. */
  walk(ip: Ipv6View, maxHeaders = IPV6_MAX_EXT_HEADERS): WireError {
    return this.walkFrom(ip.bytes, ip.payloadOff, ip.end, ip.nextHeader, ip.off + 6, maxHeaders);
  }

  /**
   * Walks headers from `off` to `end` (the end of the IPv6 payload), the first one being
   * `nextHeader`, whose value sits at `nextHeaderFieldOff`.
   */
  walkFrom(bytes: Uint8Array, off: number, end: number, nextHeader: number, nextHeaderFieldOff: number,
    maxHeaders = IPV6_MAX_EXT_HEADERS): WireError {
    this.count = 0; this.hopByHopOff = -1; this.routingOff = -1; this.fragmentOff = -1; this.destOptionsOff = -1;
    this.errorOff = -1;
    if (end > bytes.length || off > end) return WireError.Truncated;
    const first = off;
    let nh = nextHeader, nhField = nextHeaderFieldOff, pos = off;
    for (;;) {
      if (nh !== Ipv6Next.HopByHop && nh !== Ipv6Next.Routing && nh !== Ipv6Next.Fragment && nh !== Ipv6Next.DestOptions) break;
      if (this.count >= maxHeaders) { this.errorOff = nhField; return WireError.Unsupported; }
      // RFC 8200 §4.3: "The Hop-by-Hop Options header, when present, must immediately follow
      // the IPv6 header" (a later one draws Parameter Problem code 1 pointing at this field).
      if (nh === Ipv6Next.HopByHop && pos !== first) { this.errorOff = nhField; return WireError.Malformed; }
      if (pos + 2 > end) { this.errorOff = nhField; return WireError.BadLength; }
      const hlen = nh === Ipv6Next.Fragment ? IPV6_FRAG_HLEN : (bytes[pos + 1]! + 1) * 8;
      if (pos + hlen > end) { this.errorOff = pos + 1; return WireError.BadLength; }
      this.count++;
      if (nh === Ipv6Next.HopByHop || nh === Ipv6Next.DestOptions) {
        this.opts.begin(bytes, pos, hlen);
        while (this.opts.next()) { /* structure check only; meaning is the stack's */ }
        if (this.opts.error !== WireError.Ok) { this.errorOff = this.opts.pos; return this.opts.error; }
        if (nh === Ipv6Next.HopByHop) this.hopByHopOff = pos; else this.destOptionsOff = pos;
      } else if (nh === Ipv6Next.Routing) {
        if (hlen < 8) { this.errorOff = pos + 1; return WireError.BadLength; }
        this.routingOff = pos;
      } else {
        this.fragmentOff = pos;
        const fw = (bytes[pos + 2]! << 8) | bytes[pos + 3]!;
        // A real fragment: the rest of the chain may lie in other fragments.
        if ((fw & 0xfff9) !== 0) {
          this.protocol = Ipv6Next.Fragment; this.offset = pos; this.length = end - pos; this.nextHeaderFieldOff = nhField;
          return WireError.Ok;
        }
      }
      nhField = pos; nh = bytes[pos]!; pos += hlen;
    }
    this.protocol = nh; this.offset = pos; this.length = end - pos; this.nextHeaderFieldOff = nhField;
    return WireError.Ok;
  }
}

/**
 * Writes a Hop-by-Hop or Destination Options header at `off` holding nothing but padding, sized
 * `hdrLen` bytes (a multiple of 8, at least 8). Returns `hdrLen`.
 */
export function writeIpv6PaddingOptionsHeader(b: Uint8Array, off: number, nextHeader: number, hdrLen: number): number {
  b[off] = nextHeader; b[off + 1] = hdrLen / 8 - 1;
  const padN = hdrLen - 2;
  b[off + 2] = Ipv6Option.PadN; b[off + 3] = padN - 2;
  for (let i = 4; i < hdrLen; i++) b[off + i] = 0;
  return hdrLen;
}
