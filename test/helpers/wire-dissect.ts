// A small dissector built only from the codecs in src/wire/, for the codec tests: it walks a
// frame layer by layer the way the stack will, and reports what it decoded under tshark's field
// names (so the result can be compared with the fields tshark decoded from the same frame),
// the layers it walked, and the first WireError it met. It never throws on any input; the
// tests hold it to that.
import { formatIpv4, formatIpv6, formatMac } from '../../src/wire/addr.js';
import { ArpView } from '../../src/wire/arp.js';
import { internetChecksum, pseudoHeaderV6 } from '../../src/wire/checksum.js';
import { WireError, wireErrorName } from '../../src/wire/errors.js';
import { EtherType, EthernetView } from '../../src/wire/ethernet.js';
import { IcmpV4View, isIcmpError } from '../../src/wire/icmpv4.js';
import { Icmpv6Type, Icmpv6View, isIcmpv6Error } from '../../src/wire/icmpv6.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { Ipv6ExtChain, Ipv6FragmentView, Ipv6Next, Ipv6View } from '../../src/wire/ipv6.js';
import {
  NdpOption, NdpOptionIter, NdpView, NeighborAdvertView, NeighborSolicitView, PrefixInfoView, RedirectView,
  RouterAdvertView, RouterSolicitView, readMtuOption,
} from '../../src/wire/ndp.js';
import { UdpView } from '../../src/wire/udp.js';
import { VlanTpid, VlanView, isVlanTpid } from '../../src/wire/vlan.js';

export type FieldValue = string | number;

/** A layer walked: its name (tshark's protocol name), where its bytes start, and how many. */
export interface Layer {
  name: string; off: number; len: number;
  /** True when the layer's checksum (or, for IPv4, its header checksum) was verified. */
  checked: boolean;
}

export interface Dissection {
  fields: Record<string, FieldValue[]>;
  layers: Layer[];
  /** The first error met (layer name and code), or null when every layer parsed. */
  error: { layer: string; code: WireError } | null;
  /** Why the walk stopped early without an error (a fragment, a cut-short quoted packet), or null. */
  stop: string | null;
  /** Checksums that were checked and verified (layer names), and those that failed. */
  checksumsOk: string[];
  checksumsBad: string[];
}

export function hexToBytes(hex: string): Uint8Array {
  const b = new Uint8Array(hex.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return b;
}

/** Views, reused for every frame like the stack reuses them. */
const eth = new EthernetView();
const vlan = new VlanView();
const arp = new ArpView();
const ip4 = new Ipv4View();
const icmp4 = new IcmpV4View();
const udp = new UdpView();
const ip6 = new Ipv6View();
const chain = new Ipv6ExtChain();
const frag = new Ipv6FragmentView();
const icmp6 = new Icmpv6View();
const ndp: Record<number, NdpView> = {
  [Icmpv6Type.RouterSolicit]: new RouterSolicitView(),
  [Icmpv6Type.RouterAdvert]: new RouterAdvertView(),
  [Icmpv6Type.NeighborSolicit]: new NeighborSolicitView(),
  [Icmpv6Type.NeighborAdvert]: new NeighborAdvertView(),
  [Icmpv6Type.Redirect]: new RedirectView(),
};
const optIter = new NdpOptionIter();
const prefixInfo = new PrefixInfoView();

class Walk {
  readonly d: Dissection = { fields: {}, layers: [], error: null, stop: null, checksumsOk: [], checksumsBad: [] };
  constructor(readonly b: Uint8Array) {}
  put(name: string, v: FieldValue | boolean): void {
    (this.d.fields[name] ??= []).push(typeof v === 'boolean' ? (v ? 1 : 0) : v);
  }
  layer(name: string, off: number, len: number, checked = false): void { this.d.layers.push({ name, off, len, checked }); }
  fail(layer: string, code: WireError): false {
    if (!this.d.error) this.d.error = { layer, code };
    return false;
  }
  csum(layer: string, ok: boolean): void { (ok ? this.d.checksumsOk : this.d.checksumsBad).push(layer); }
}

/** Dissects the Ethernet frame `b[off, off+len)`. */
export function dissect(b: Uint8Array, off = 0, len = b.length - off): Dissection {
  const w = new Walk(b);
  const e = eth.wrap(b, off, len);
  if (e !== WireError.Ok) { w.fail('eth', e); return w.d; }
  w.layer('eth', off, 14);
  w.put('eth.dst', formatMac(b, eth.dstOff)); w.put('eth.src', formatMac(b, eth.srcOff)); w.put('eth.type', eth.etherType);
  let type = eth.etherType, pos = eth.payloadOff, end = off + len, tagOff = off + 12;
  while (isVlanTpid(type)) {
    const v = vlan.wrap(b, tagOff, end - tagOff);
    const name = vlan.tpid === VlanTpid.CTag ? 'vlan' : 'ieee8021ad';
    if (v !== WireError.Ok) { w.fail(name, v); return w.d; }
    w.layer(name, tagOff, 6);
    if (name === 'vlan') {
      w.put('vlan.priority', vlan.pcp); w.put('vlan.dei', vlan.dei); w.put('vlan.id', vlan.vid); w.put('vlan.etype', vlan.innerEtherType);
    } else {
      w.put('ieee8021ad.priority', vlan.pcp); w.put('ieee8021ad.dei', vlan.dei); w.put('ieee8021ad.id', vlan.vid);
      w.put('ieee8021ah.etype', vlan.innerEtherType);
    }
    type = vlan.innerEtherType; pos = vlan.payloadOff; tagOff = vlan.nextTagOff;
  }
  if (type === EtherType.ARP) dissectArp(w, pos, end);
  else if (type === EtherType.IPv4) dissectIpv4(w, pos, end - pos, false);
  else if (type === EtherType.IPv6) dissectIpv6(w, pos, end - pos, false);
  else w.fail('eth', WireError.Unsupported);
  return w.d;
}

function dissectArp(w: Walk, off: number, end: number): void {
  const b = w.b;
  const e = arp.wrap(b, off, end - off);
  if (e !== WireError.Ok) { w.fail('arp', e); return; }
  w.layer('arp', off, 28);
  w.put('arp.hw.type', 1); w.put('arp.proto.type', 0x0800); w.put('arp.hw.size', 6); w.put('arp.proto.size', 4);
  w.put('arp.opcode', arp.op);
  w.put('arp.src.hw_mac', formatMac(b, arp.shaOff)); w.put('arp.src.proto_ipv4', formatIpv4(arp.spa));
  w.put('arp.dst.hw_mac', formatMac(b, arp.thaOff)); w.put('arp.dst.proto_ipv4', formatIpv4(arp.tpa));
}

function dissectIpv4(w: Walk, off: number, len: number, quoted: boolean): void {
  const b = w.b;
  const e = ip4.wrap(b, off, len, !quoted);
  if (e !== WireError.Ok) {
    // RFC 792: an error quotes the header and 64 bits of data, so a quoted packet is cut short.
    if (quoted && e === WireError.Truncated) { w.d.stop = 'quoted-ipv4-cut-short'; return; }
    w.fail('ip', e); return;
  }
  if (!quoted) w.csum('ip', true);
  const hl = ip4.headerLength, payloadOff = ip4.payloadOff, payloadLen = ip4.payloadLen, proto = ip4.protocol;
  w.layer('ip', off, ip4.totalLength, !quoted);
  w.put('ip.version', ip4.version); w.put('ip.hdr_len', hl); w.put('ip.dsfield', ip4.tos); w.put('ip.len', ip4.totalLength);
  w.put('ip.id', ip4.id); w.put('ip.flags', ip4.fragWord >> 13); w.put('ip.flags.df', ip4.dontFragment);
  w.put('ip.flags.mf', ip4.moreFragments); w.put('ip.frag_offset', ip4.fragOffset / 8); w.put('ip.ttl', ip4.ttl);
  w.put('ip.proto', proto); w.put('ip.checksum', ip4.checksum);
  const src = ip4.src, dst = ip4.dst;
  w.put('ip.src', formatIpv4(src)); w.put('ip.dst', formatIpv4(dst));
  // Only a first fragment holds the upper-layer header, and its checksum cannot be checked alone.
  if (ip4.isFragment && ip4.fragOffset !== 0) { w.d.stop = 'ipv4-fragment'; return; }
  const whole = !ip4.isFragment;
  if (proto === 1) dissectIcmpv4(w, payloadOff, payloadLen, whole, quoted);
  else if (proto === 17) dissectUdp(w, payloadOff, payloadLen, whole && !quoted, src, dst, null, 0, 0);
}

function dissectIcmpv4(w: Walk, off: number, len: number, verify: boolean, quoted: boolean): void {
  const b = w.b;
  const e = icmp4.wrap(b, off, len, verify && !quoted);
  if (e !== WireError.Ok) { w.fail('icmp', e); return; }
  if (verify && !quoted) w.csum('icmp', true);
  w.layer('icmp', off, len, verify && !quoted);
  const type = icmp4.type, code = icmp4.code;
  w.put('icmp.type', type); w.put('icmp.code', code); w.put('icmp.checksum', icmp4.checksum);
  if (type === 0 || type === 8) { w.put('icmp.ident', icmp4.echoId); w.put('icmp.seq', icmp4.echoSeq); }
  if (type === 3 && code === 4) w.put('icmp.mtu', icmp4.nextHopMtu);
  if (isIcmpError(type) && !quoted) {
    const p = icmp4.payloadOff, n = icmp4.payloadLen;
    dissectIpv4(w, p, n, true);
  }
}

function dissectUdp(w: Walk, off: number, len: number, verify: boolean, src4: number, dst4: number,
  ip6bytes: Uint8Array | null, srcOff6: number, dstOff6: number): void {
  const b = w.b;
  const e = udp.wrap(b, off, len);
  if (e !== WireError.Ok) {
    if (!verify && e === WireError.Truncated) { w.d.stop = 'quoted-udp-cut-short'; return; }
    w.fail('udp', e); return;
  }
  const layer: Layer = { name: 'udp', off, len: udp.length, checked: false };
  w.d.layers.push(layer);
  w.put('udp.srcport', udp.srcPort); w.put('udp.dstport', udp.dstPort); w.put('udp.length', udp.length); w.put('udp.checksum', udp.checksum);
  if (!verify) return;
  if (ip6bytes) {
    // RFC 8200 §8.1: UDP over IPv6 must carry a checksum; it covers the IPv6 pseudo-header.
    const ok = udpChecksumOkV6(b, off, udp.length, ip6bytes, srcOff6, dstOff6);
    w.csum('udp', ok); layer.checked = ok;
    if (!ok) w.fail('udp', WireError.BadChecksum);
  } else {
    const ok = udp.checksumOkV4(src4, dst4);
    w.csum('udp', ok); layer.checked = ok;
    if (!ok) w.fail('udp', WireError.BadChecksum);
  }
}

/** The UDP/IPv6 check, from the shared checksum helpers (udp.ts has only the IPv4 one). */
export function udpChecksumOkV6(b: Uint8Array, off: number, len: number, a: Uint8Array, srcOff: number, dstOff: number): boolean {
  if (b[off + 6] === 0 && b[off + 7] === 0) return false;
  return internetChecksum(b, off, len, pseudoHeaderV6(a, srcOff, a, dstOff, 17, len)) === 0;
}

function dissectIpv6(w: Walk, off: number, len: number, quoted: boolean): void {
  const b = w.b;
  const e = quoted ? ip6.wrapQuoted(b, off, len) : ip6.wrap(b, off, len);
  if (e !== WireError.Ok) { w.fail('ipv6', e); return; }
  const srcOff = ip6.srcOff, dstOff = ip6.dstOff, ipOff = ip6.off;
  const end = quoted ? Math.min(ip6.end, off + len) : ip6.end;
  w.layer('ipv6', off, end - off);
  w.put('ip.version', ip6.version);
  w.put('ipv6.version', ip6.version); w.put('ipv6.tclass', ip6.trafficClass); w.put('ipv6.flow', ip6.flowLabel);
  w.put('ipv6.plen', ip6.payloadLength); w.put('ipv6.nxt', ip6.nextHeader); w.put('ipv6.hlim', ip6.hopLimit);
  w.put('ipv6.src', formatIpv6(b, srcOff)); w.put('ipv6.dst', formatIpv6(b, dstOff));
  const c = chain.walkFrom(b, ip6.payloadOff, end, ip6.nextHeader, off + 6);
  // The chain's positions are read before anything below reuses `chain`.
  const hbh = chain.hopByHopOff, rt = chain.routingOff, fr = chain.fragmentOff, dopt = chain.destOptionsOff;
  let proto = chain.protocol, upOff = chain.offset, upLen = chain.length;
  if (c !== WireError.Ok) { w.fail('ipv6', c); return; }
  // Extension headers in wire order.
  const hdrs: [number, string][] = [];
  if (hbh >= 0) hdrs.push([hbh, 'ipv6.hopopts']);
  if (rt >= 0) hdrs.push([rt, 'ipv6.routing']);
  if (dopt >= 0) hdrs.push([dopt, 'ipv6.dstopts']);
  if (fr >= 0) hdrs.push([fr, 'ipv6.fraghdr']);
  hdrs.sort((x, y) => x[0] - y[0]);
  for (const [h, name] of hdrs) {
    if (name === 'ipv6.fraghdr') {
      frag.wrap(b, h, end - h);
      w.layer(name, h, 8);
      w.put('ipv6.fraghdr.nxt', frag.nextHeader); w.put('ipv6.fraghdr.offset', frag.fragmentOffset / 8);
      w.put('ipv6.fraghdr.more', frag.moreFragments); w.put('ipv6.fraghdr.ident', frag.identification);
      continue;
    }
    const hl = (b[h + 1]! + 1) * 8;
    w.layer(name, h, hl);
    w.put(`${name}.nxt`, b[h]!); w.put(`${name}.len`, b[h + 1]!);
    if (name === 'ipv6.routing') { w.put('ipv6.routing.type', b[h + 2]!); w.put('ipv6.routing.segleft', b[h + 3]!); }
  }
  let verify = !quoted;
  if (proto === Ipv6Next.Fragment) {
    frag.wrap(b, fr, end - fr);
    if (frag.fragmentOffset !== 0) { w.d.stop = 'ipv6-fragment'; return; }
    // A first fragment: its upper-layer header is here (RFC 7112), its checksum is not checkable.
    const c2 = chain.walkFrom(b, fr + 8, end, frag.nextHeader, fr);
    if (c2 !== WireError.Ok) { w.fail('ipv6', c2); return; }
    proto = chain.protocol; upOff = chain.offset; upLen = chain.length; verify = false;
  }
  if (proto === Ipv6Next.ICMPv6) dissectIcmpv6(w, upOff, upLen, verify, quoted, ipOff);
  else if (proto === Ipv6Next.UDP) dissectUdp(w, upOff, upLen, verify, 0, 0, b, srcOff, dstOff);
}

function dissectIcmpv6(w: Walk, off: number, len: number, verify: boolean, quoted: boolean, ipOff: number): void {
  const b = w.b;
  const e = icmp6.wrap(b, off, len);
  if (e !== WireError.Ok) { w.fail('icmpv6', e); return; }
  if (verify) {
    const ok = icmp6.checksumOk(b, ipOff + 8, b, ipOff + 24);
    w.csum('icmpv6', ok);
    if (!ok) { w.fail('icmpv6', WireError.BadChecksum); return; }
  }
  w.layer('icmpv6', off, len, verify);
  const type = icmp6.type;
  w.put('icmpv6.type', type); w.put('icmpv6.code', icmp6.code); w.put('icmpv6.checksum', icmp6.checksum);
  if (type === Icmpv6Type.EchoRequest || type === Icmpv6Type.EchoReply) {
    w.put('icmpv6.echo.identifier', icmp6.echoId); w.put('icmpv6.echo.sequence_number', icmp6.echoSeq);
  }
  if (type === Icmpv6Type.PacketTooBig) w.put('icmpv6.mtu', icmp6.mtu);
  if (type === Icmpv6Type.ParamProblem) w.put('icmpv6.pointer', icmp6.pointer);
  if (isIcmpv6Error(type) && !quoted) {
    const p = icmp6.payloadOff, n = icmp6.payloadLen;
    dissectIpv6(w, p, n, true);
    return;
  }
  const v = ndp[type];
  if (!v || quoted) return;
  const ne = v.wrap(b, off, len);
  if (ne !== WireError.Ok) { w.fail('icmpv6.nd', ne); return; }
  ip6.wrap(b, ipOff, b.length - ipOff);
  const ie = v.checkIp(ip6);
  if (ie !== WireError.Ok) { w.fail('icmpv6.nd', ie); return; }
  if (v instanceof NeighborSolicitView) w.put('icmpv6.nd.ns.target_address', formatIpv6(b, v.targetOff));
  if (v instanceof NeighborAdvertView) {
    w.put('icmpv6.nd.na.target_address', formatIpv6(b, v.targetOff));
    w.put('icmpv6.nd.na.flag.r', v.router); w.put('icmpv6.nd.na.flag.s', v.solicited); w.put('icmpv6.nd.na.flag.o', v.override);
  }
  if (v instanceof RouterAdvertView) {
    w.put('icmpv6.nd.ra.cur_hop_limit', v.curHopLimit); w.put('icmpv6.nd.ra.flag.m', v.managed); w.put('icmpv6.nd.ra.flag.o', v.other);
    w.put('icmpv6.nd.ra.router_lifetime', v.routerLifetime); w.put('icmpv6.nd.ra.reachable_time', v.reachableTime);
    w.put('icmpv6.nd.ra.retrans_timer', v.retransTimer);
  }
  if (v instanceof RedirectView) {
    w.put('icmpv6.nd.rd.target_address', formatIpv6(b, v.targetOff));
    w.put('icmpv6.rd.na.destination_address', formatIpv6(b, v.destinationOff));
  }
  const it = v.options(optIter);
  let redirected = -1, redirectedLen = 0;
  while (it.next()) {
    w.put('icmpv6.opt.type', it.type); w.put('icmpv6.opt.length', it.len / 8);
    if ((it.type === NdpOption.SourceLinkLayer || it.type === NdpOption.TargetLinkLayer) && it.len === 8) w.put('icmpv6.opt.linkaddr', formatMac(b, it.off + 2));
    if (it.type === NdpOption.Mtu) w.put('icmpv6.opt.mtu', readMtuOption(b, it.off, it.len));
    if (it.type === NdpOption.PrefixInfo && prefixInfo.wrap(b, it.off, it.len) === WireError.Ok) {
      w.put('icmpv6.opt.prefix.length', prefixInfo.prefixLength);
      w.put('icmpv6.opt.prefix.flag.l', prefixInfo.onLink); w.put('icmpv6.opt.prefix.flag.a', prefixInfo.autonomous);
      w.put('icmpv6.opt.prefix.valid_lifetime', prefixInfo.validLifetime);
      w.put('icmpv6.opt.prefix.preferred_lifetime', prefixInfo.preferredLifetime);
      w.put('icmpv6.opt.prefix', formatIpv6(b, prefixInfo.prefixOff));
    }
    if (it.type === NdpOption.RedirectedHeader) { redirected = it.off + 8; redirectedLen = it.len - 8; }
  }
  // The Redirected Header option quotes the redirected packet (RFC 4861 §4.6.3).
  if (redirected >= 0) dissectIpv6(w, redirected, redirectedLen, true);
}

export function describe(d: Dissection): string {
  return `${d.layers.map((l) => l.name).join(':')}${d.error ? ` error=${d.error.layer}:${wireErrorName(d.error.code)}` : ''}${d.stop ? ` stop=${d.stop}` : ''}`;
}

