// The wire codecs against real Linux frames (test/fixtures/frames.ts, captured by
// test/fixtures/capture/capture.sh): they decode to what tshark decoded, rebuild byte for byte
// from the emitters, verify their checksums, and reject every truncation and survive random
// corruption without throwing or reading past the frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FRAMES, type FrameVector } from '../fixtures/frames.js';
import { dissect, hexToBytes, describe, udpChecksumOkV6, type Dissection, type FieldValue } from '../helpers/wire-dissect.js';
import { WireError, wireErrorName } from '../../src/wire/errors.js';
import { EthernetView, writeEthernetHeader } from '../../src/wire/ethernet.js';
import { ArpView, writeArp } from '../../src/wire/arp.js';
import { Ipv4View, writeIpv4Header } from '../../src/wire/ipv4.js';
import { IcmpV4View, finishIcmpChecksum, writeIcmpHeader } from '../../src/wire/icmpv4.js';
import { UdpView, finishUdpChecksumV4, writeUdpHeader } from '../../src/wire/udp.js';
import { internetChecksum, pseudoHeaderV6 } from '../../src/wire/checksum.js';
import { VlanView, writeVlanTag } from '../../src/wire/vlan.js';
import { Ipv6FragmentView, Ipv6OptionIter, Ipv6View, writeIpv6FragmentHeader, writeIpv6Header, writeIpv6PaddingOptionsHeader } from '../../src/wire/ipv6.js';
import { Icmpv6Type, Icmpv6View, finishIcmpv6Checksum, isIcmpv6Error, writeIcmpv6Echo, writeIcmpv6Error, writeIcmpv6Header } from '../../src/wire/icmpv6.js';
import {
  NdpOption, NdpOptionIter, NeighborAdvertView, NeighborSolicitView, PrefixInfoView, RedirectView, RouterAdvertView,
  RouterSolicitView, readMtuOption, writeLinkLayerOption, writeMtuOption, writeNeighborAdvert, writeNeighborSolicit,
  writePrefixInfoOption, writeRedirect, writeRouterAdvert, writeRouterSolicit, type NdpView,
} from '../../src/wire/ndp.js';
import { Prng } from '../../src/base/prng.js';

/** The tshark fields the dissector claims; each present in a vector must match exactly. */
const MAPPED = new Set([
  'eth.dst', 'eth.src', 'eth.type', 'ieee8021ad.priority', 'ieee8021ad.dei', 'ieee8021ad.id', 'ieee8021ah.etype',
  'vlan.priority', 'vlan.dei', 'vlan.id', 'vlan.etype',
  'arp.hw.type', 'arp.proto.type', 'arp.hw.size', 'arp.proto.size', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4',
  'arp.dst.hw_mac', 'arp.dst.proto_ipv4',
  'ip.version', 'ip.hdr_len', 'ip.dsfield', 'ip.len', 'ip.id', 'ip.flags', 'ip.flags.df', 'ip.flags.mf', 'ip.frag_offset',
  'ip.ttl', 'ip.proto', 'ip.checksum', 'ip.src', 'ip.dst',
  'icmp.type', 'icmp.code', 'icmp.checksum', 'icmp.ident', 'icmp.seq', 'icmp.mtu',
  'udp.srcport', 'udp.dstport', 'udp.length', 'udp.checksum',
  'ipv6.version', 'ipv6.tclass', 'ipv6.flow', 'ipv6.plen', 'ipv6.nxt', 'ipv6.hlim', 'ipv6.src', 'ipv6.dst',
  'ipv6.hopopts.nxt', 'ipv6.hopopts.len', 'ipv6.dstopts.nxt', 'ipv6.dstopts.len', 'ipv6.routing.nxt', 'ipv6.routing.len',
  'ipv6.routing.type', 'ipv6.routing.segleft', 'ipv6.fraghdr.nxt', 'ipv6.fraghdr.offset', 'ipv6.fraghdr.more', 'ipv6.fraghdr.ident',
  'icmpv6.type', 'icmpv6.code', 'icmpv6.checksum', 'icmpv6.echo.identifier', 'icmpv6.echo.sequence_number', 'icmpv6.mtu',
  'icmpv6.pointer', 'icmpv6.nd.ns.target_address', 'icmpv6.nd.na.target_address', 'icmpv6.nd.na.flag.r', 'icmpv6.nd.na.flag.s',
  'icmpv6.nd.na.flag.o', 'icmpv6.nd.ra.cur_hop_limit', 'icmpv6.nd.ra.flag.m', 'icmpv6.nd.ra.flag.o', 'icmpv6.nd.ra.router_lifetime',
  'icmpv6.nd.ra.reachable_time', 'icmpv6.nd.ra.retrans_timer', 'icmpv6.nd.rd.target_address', 'icmpv6.rd.na.destination_address',
  'icmpv6.opt.type', 'icmpv6.opt.length', 'icmpv6.opt.linkaddr', 'icmpv6.opt.mtu', 'icmpv6.opt.prefix', 'icmpv6.opt.prefix.length',
  'icmpv6.opt.prefix.flag.l', 'icmpv6.opt.prefix.flag.a', 'icmpv6.opt.prefix.valid_lifetime', 'icmpv6.opt.prefix.preferred_lifetime',
]);

/**
 * Where the dissector deliberately stops short of tshark, and why. IPv4 quoted in an ICMP error
 * is cut short by design (RFC 792), and Ipv4View has no mode for that (see the todo test below).
 */
const STOPS_SHORT: Record<string, string> = { 'icmp4-frag-needed': 'quoted-ipv4-cut-short' };

function norm(v: FieldValue): FieldValue {
  if (typeof v === 'number') return v;
  return /^(0x[0-9a-f]+|\d+)$/i.test(v) ? Number(v) : v.toLowerCase();
}
function list(v: string | string[]): FieldValue[] { return (Array.isArray(v) ? v : [v]).map(norm); }
const bytesOf = (f: FrameVector) => hexToBytes(f.hex);

test('the fixture holds every kind of frame the codecs handle', () => {
  const protos = new Set(FRAMES.flatMap((f) => String(f.fields['frame.protocols']).split(':')));
  for (const p of ['eth', 'vlan', 'ieee8021ad', 'arp', 'ip', 'icmp', 'udp', 'ipv6', 'ipv6.hopopts', 'ipv6.routing', 'ipv6.dstopts', 'ipv6.fraghdr', 'icmpv6']) {
    assert.ok(protos.has(p), p);
  }
  const icmp6 = new Set(FRAMES.flatMap((f) => list(f.fields['icmpv6.type'] ?? [])));
  for (const t of [1, 2, 3, 128, 129, 133, 134, 135, 136, 137, 143]) assert.ok(icmp6.has(t), `ICMPv6 type ${t}`);
});

for (const f of FRAMES) {
  test(`${f.label}: decodes to the fields tshark decoded (${f.how})`, () => {
    const d = dissect(bytesOf(f));
    assert.equal(d.error, null, describe(d));
    const tsharkLayers = String(f.fields['frame.protocols']).split(':').filter((p) => p !== 'ethertype' && p !== 'data');
    const ours = d.layers.map((l) => l.name);
    const short = STOPS_SHORT[f.label];
    if (short) {
      assert.equal(d.stop, short);
      assert.deepEqual(ours, tsharkLayers.slice(0, ours.length));
    } else {
      assert.deepEqual(ours, tsharkLayers);
    }
    let compared = 0;
    for (const [name, value] of Object.entries(f.fields)) {
      if (!MAPPED.has(name)) continue;
      const theirs = list(value);
      const mine = d.fields[name] ?? [];
      if (short) assert.deepEqual(mine, theirs.slice(0, mine.length), name);
      else assert.deepEqual(mine, theirs, name);
      compared++;
    }
    // Nothing decoded that tshark did not see.
    for (const name of Object.keys(d.fields)) assert.ok(name in f.fields, `extra field ${name}`);
    assert.ok(compared >= 3, 'compared fields');
  });
}

test('every checksum in the captured frames verifies (IPv4 header, ICMP, ICMPv6, UDP over both)', () => {
  const counts: Record<string, number> = {};
  for (const f of FRAMES) {
    const d = dissect(bytesOf(f));
    assert.deepEqual(d.checksumsBad, [], f.label);
    for (const c of d.checksumsOk) counts[c] = (counts[c] ?? 0) + 1;
  }
  assert.ok(counts['ip']! >= 10 && counts['icmp']! >= 4 && counts['icmpv6']! >= 12 && counts['udp']! >= 5, JSON.stringify(counts));
});

// ---- round trip: rebuild each frame with the emitters ----

const ethV = new EthernetView(), vlanV = new VlanView(), arpV = new ArpView(), ip4V = new Ipv4View(), icmp4V = new IcmpV4View();
const udpV = new UdpView(), ip6V = new Ipv6View(), fragV = new Ipv6FragmentView(), icmp6V = new Icmpv6View();
const optsV = new Ipv6OptionIter(), ndpIt = new NdpOptionIter(), prefixV = new PrefixInfoView();
const ndpViews: Record<number, NdpView> = {
  133: new RouterSolicitView(), 134: new RouterAdvertView(), 135: new NeighborSolicitView(), 136: new NeighborAdvertView(), 137: new RedirectView(),
};

/** Is this Hop-by-Hop / Destination Options header nothing but padding? */
function onlyPadding(b: Uint8Array, off: number): boolean {
  optsV.begin(b, off, (b[off + 1]! + 1) * 8);
  return !optsV.next() && optsV.error === WireError.Ok;
}

/**
 * Rebuilds `src` into a zeroed buffer: bytes no emitter covers (application data, IP options,
 * routing headers, parts of quoted packets) are copied first; then every layer is emitted from
 * the fields its view read, innermost first so checksums cover finished bytes. Returns the
 * rebuilt frame and how many bytes the emitters wrote.
 */
function rebuild(src: Uint8Array, d: Dissection): { out: Uint8Array; emitted: number; copied: number } {
  const out = new Uint8Array(src.length);
  const cover = new Uint8Array(src.length); // 1 = an emitter writes it
  const mark = (off: number, n: number) => cover.fill(1, off, off + n);
  const emitters: (() => void)[] = [];
  // Which layer headers the emitters can write.
  for (const l of d.layers) {
    const o = l.off;
    switch (l.name) {
      case 'eth': mark(o, 14); emitters.push(() => {
        ethV.wrap(src, o, src.length - o);
        writeEthernetHeader(out, o, src, ethV.dstOff, src.slice(ethV.srcOff, ethV.srcOff + 6), ethV.etherType);
      }); break;
      case 'vlan': case 'ieee8021ad': mark(o, 6); emitters.push(() => {
        vlanV.wrap(src, o, src.length - o);
        writeVlanTag(out, o, vlanV.tpid, vlanV.pcp, vlanV.dei, vlanV.vid, vlanV.innerEtherType);
      }); break;
      case 'arp': mark(o, 28); emitters.push(() => {
        arpV.wrap(src, o, 28);
        writeArp(out, o, arpV.op, src.slice(arpV.shaOff, arpV.shaOff + 6), arpV.spa, src.slice(arpV.thaOff, arpV.thaOff + 6), arpV.tpa);
      }); break;
      case 'ip':
        ip4V.wrap(src, o, l.len, false);
        if (l.checked && ip4V.headerLength === 20) { // writeIpv4Header emits no options
          mark(o, 20); emitters.push(() => {
            ip4V.wrap(src, o, l.len);
            writeIpv4Header(out, o, ip4V.tos, ip4V.totalLength, ip4V.id, ip4V.fragWord, ip4V.ttl, ip4V.protocol, ip4V.src, ip4V.dst);
          });
        }
        break;
      case 'icmp':
        if (l.checked) { mark(o, 8); emitters.push(() => {
          icmp4V.wrap(src, o, l.len);
          const rest = ((src[o + 4]! << 24) | (src[o + 5]! << 16) | (src[o + 6]! << 8) | src[o + 7]!) >>> 0;
          writeIcmpHeader(out, o, icmp4V.type, icmp4V.code, rest);
          finishIcmpChecksum(out, o, l.len);
        }); }
        break;
      case 'udp':
        if (l.checked) {
          const ipl = [...d.layers].reverse().find((x) => x.off < o && (x.name === 'ip' || x.name === 'ipv6'))!;
          mark(o, 8); emitters.push(() => {
            udpV.wrap(src, o, l.len);
            writeUdpHeader(out, o, udpV.srcPort, udpV.dstPort, udpV.length);
            if (ipl.name === 'ip') {
              ip4V.wrap(src, ipl.off, ipl.len);
              finishUdpChecksumV4(out, o, udpV.length, ip4V.src, ip4V.dst);
            } else {
              // udp.ts has no IPv6 emitter: the pseudo-header from checksum.ts.
              let c = internetChecksum(out, o, l.len, pseudoHeaderV6(src, ipl.off + 8, src, ipl.off + 24, 17, l.len));
              if (c === 0) c = 0xffff;
              out[o + 6] = c >> 8; out[o + 7] = c & 0xff;
            }
          });
        }
        break;
      case 'ipv6': mark(o, 40); emitters.push(() => {
        ip6V.wrapQuoted(src, o, src.length - o);
        writeIpv6Header(out, o, ip6V.trafficClass, ip6V.flowLabel, ip6V.payloadLength, ip6V.nextHeader, ip6V.hopLimit, src, ip6V.srcOff, src, ip6V.dstOff);
      }); break;
      case 'ipv6.fraghdr': mark(o, 8); emitters.push(() => {
        fragV.wrap(src, o, 8);
        writeIpv6FragmentHeader(out, o, fragV.nextHeader, fragV.fragmentOffset, fragV.moreFragments, fragV.identification);
      }); break;
      case 'ipv6.hopopts': case 'ipv6.dstopts':
        if (onlyPadding(src, o)) { mark(o, l.len); emitters.push(() => { writeIpv6PaddingOptionsHeader(out, o, src[o]!, l.len); }); }
        break;
      case 'icmpv6':
        if (l.checked) {
          const ipOff = [...d.layers].reverse().find((x) => x.off < o && x.name === 'ipv6')!.off;
          icmp6V.wrap(src, o, l.len);
          const type = icmp6V.type;
          if (type === Icmpv6Type.EchoRequest || type === Icmpv6Type.EchoReply) mark(o, 8);
          else if (isIcmpv6Error(type)) mark(o, 8); // the quoted packet is rebuilt (or copied) as its own layers
          else if (ndpViews[type]) markNdp(src, o, l.len, ndpViews[type]!, mark);
          else mark(o, 8);
          emitters.push(() => {
            icmp6V.wrap(src, o, l.len);
            const t = icmp6V.type;
            if (t === Icmpv6Type.EchoRequest || t === Icmpv6Type.EchoReply) writeIcmpv6Echo(out, o, t, icmp6V.echoId, icmp6V.echoSeq);
            else if (isIcmpv6Error(t)) {
              // The quoted packet was rebuilt in place already: the emitter's copy is a same-buffer move.
              const n = writeIcmpv6Error(out, o, t, icmp6V.code, icmp6V.word, out, o + 8, l.len - 8);
              assert.equal(n, l.len);
            } else if (ndpViews[t]) emitNdp(src, out, o, l.len, ndpViews[t]!);
            else writeIcmpv6Header(out, o, t, icmp6V.code, icmp6V.word);
            finishIcmpv6Checksum(out, o, l.len, src, ipOff + 8, src, ipOff + 24);
          });
        }
        break;
      default: break; // routing headers, options-bearing headers: copied
    }
  }
  let copied = 0;
  for (let i = 0; i < src.length; i++) if (!cover[i]) { out[i] = src[i]!; copied++; }
  for (let i = emitters.length - 1; i >= 0; i--) emitters[i]!();
  return { out, emitted: src.length - copied, copied };
}

function markNdp(src: Uint8Array, o: number, len: number, v: NdpView, mark: (off: number, n: number) => void): void {
  v.wrap(src, o, len);
  mark(o, v.fixedLen);
  const it = v.options(ndpIt);
  while (it.next()) {
    if (it.type === NdpOption.SourceLinkLayer || it.type === NdpOption.TargetLinkLayer || it.type === NdpOption.Mtu || it.type === NdpOption.PrefixInfo) mark(it.off, it.len);
  }
}

function emitNdp(src: Uint8Array, out: Uint8Array, o: number, len: number, v: NdpView): void {
  v.wrap(src, o, len);
  if (v instanceof RouterSolicitView) writeRouterSolicit(out, o, null);
  else if (v instanceof RouterAdvertView) writeRouterAdvert(out, o, v.curHopLimit, v.flags, v.routerLifetime, v.reachableTime, v.retransTimer);
  else if (v instanceof NeighborSolicitView) writeNeighborSolicit(out, o, src, v.targetOff, null);
  else if (v instanceof NeighborAdvertView) writeNeighborAdvert(out, o, v.flags, src, v.targetOff, null);
  else if (v instanceof RedirectView) writeRedirect(out, o, src, v.targetOff, src, v.destinationOff);
  const it = v.options(ndpIt);
  while (it.next()) {
    if (it.type === NdpOption.SourceLinkLayer || it.type === NdpOption.TargetLinkLayer) writeLinkLayerOption(out, it.off, it.type, src, it.off + 2);
    else if (it.type === NdpOption.Mtu) writeMtuOption(out, it.off, readMtuOption(src, it.off, it.len));
    else if (it.type === NdpOption.PrefixInfo) {
      prefixV.wrap(src, it.off, it.len);
      writePrefixInfoOption(out, it.off, prefixV.prefixLength, prefixV.flags, prefixV.validLifetime, prefixV.preferredLifetime, src, prefixV.prefixOff);
    }
  }
}

for (const f of FRAMES) {
  test(`${f.label}: parse, emit, identical bytes`, () => {
    const src = bytesOf(f);
    const d = dissect(src);
    const { out, emitted } = rebuild(src, d);
    assert.equal(Buffer.from(out).toString('hex'), f.hex);
    // The emitters, not the copy, must have produced the headers.
    assert.ok(emitted >= 22, `only ${emitted} bytes emitted`);
  });
}

test('rebuilding also re-derives every checksum: a frame with its checksums zeroed comes back whole', () => {
  for (const f of FRAMES.filter((x) => ['icmp4-echo-request', 'udp4', 'udp6', 'icmp6-time-exceeded', 'ra', 'redirect'].includes(x.label))) {
    const src = bytesOf(f);
    const d = dissect(src);
    const { out } = rebuild(src, d);
    assert.equal(Buffer.from(out).toString('hex'), f.hex, f.label);
    // Emitters start from zero checksums: check the rebuilt checksum fields were really written.
    for (const l of d.layers.filter((x) => x.checked && (x.name === 'udp' || x.name === 'icmpv6'))) {
      const at = l.name === 'udp' ? l.off + 6 : l.off + 2;
      assert.notEqual((out[at]! << 8) | out[at + 1]!, 0, `${f.label} ${l.name}`);
    }
  }
});

// ---- truncation and corruption ----

for (const f of FRAMES) {
  test(`${f.label}: every truncation of the frame is rejected with a WireError`, () => {
    const src = bytesOf(f);
    for (let n = 0; n < src.length; n++) {
      const d = dissect(src, 0, n);
      assert.notEqual(d.error, null, `prefix ${n}: ${describe(d)}`);
      assert.ok(d.error!.code > 0 && d.error!.code <= 8, `prefix ${n}: ${wireErrorName(d.error!.code)}`);
    }
  });
}

/** Each layer's own view, given a prefix of that layer's bytes. */
const views = {
  eth: (b: Uint8Array, o: number, n: number) => ethV.wrap(b, o, n),
  vlan: (b: Uint8Array, o: number, n: number) => vlanV.wrap(b, o, n),
  ieee8021ad: (b: Uint8Array, o: number, n: number) => vlanV.wrap(b, o, n),
  arp: (b: Uint8Array, o: number, n: number) => arpV.wrap(b, o, n),
  ip: (b: Uint8Array, o: number, n: number) => ip4V.wrap(b, o, n, false),
  icmp: (b: Uint8Array, o: number, n: number) => icmp4V.wrap(b, o, n, false),
  udp: (b: Uint8Array, o: number, n: number) => udpV.wrap(b, o, n),
  ipv6: (b: Uint8Array, o: number, n: number) => ip6V.wrap(b, o, n),
  'ipv6.fraghdr': (b: Uint8Array, o: number, n: number) => fragV.wrap(b, o, n),
  icmpv6: (b: Uint8Array, o: number, n: number) => icmp6V.wrap(b, o, n),
} as Record<string, (b: Uint8Array, o: number, n: number) => WireError>;
/** Layers whose own length field covers all their bytes: every shorter prefix must fail. */
const LENGTH_BEARING = new Set(['ip', 'udp', 'ipv6']);
const FIXED: Record<string, number> = { eth: 14, vlan: 6, ieee8021ad: 6, arp: 28, icmp: 8, 'ipv6.fraghdr': 8, icmpv6: 8 };

test('every layer view rejects every prefix shorter than what it needs (its header, or its declared length)', () => {
  let checks = 0;
  for (const f of FRAMES) {
    const src = bytesOf(f);
    const d = dissect(src);
    for (const l of d.layers) {
      const wrap = views[l.name];
      if (!wrap) continue;
      const need = LENGTH_BEARING.has(l.name) ? l.len : FIXED[l.name]!;
      // Quoted packets are cut short by design: their own length fields cannot be honoured.
      if (LENGTH_BEARING.has(l.name) && (l.name === 'ipv6' ? l.len - 40 < ((src[l.off + 4]! << 8) | src[l.off + 5]!) : false)) continue;
      for (let n = 0; n < need; n++) {
        const e = wrap(src, l.off, n);
        assert.notEqual(e, WireError.Ok, `${f.label} ${l.name} prefix ${n}`);
        checks++;
      }
      if (!LENGTH_BEARING.has(l.name) || l.checked) assert.equal(wrap(src, l.off, need), WireError.Ok, `${f.label} ${l.name} whole`);
    }
  }
  assert.ok(checks > 5000, `${checks}`);
});

test('an NDP message cut inside an option is rejected (BadOption); cut between options it is a shorter valid message', () => {
  for (const f of FRAMES) {
    const src = bytesOf(f);
    const d = dissect(src);
    const l = d.layers.find((x) => x.name === 'icmpv6' && x.checked && ndpViews[src[x.off]!]);
    if (!l) continue;
    const v = ndpViews[src[l.off]!]!;
    const bounds = new Set<number>([v.fixedLen]);
    v.wrap(src, l.off, l.len);
    const it = v.options(ndpIt);
    while (it.next()) bounds.add(it.off + it.len - l.off);
    for (let n = 0; n <= l.len; n++) {
      const e = v.wrap(src, l.off, n);
      if (n < v.fixedLen) assert.equal(e, WireError.Truncated, `${f.label} ${n}`);
      else if (bounds.has(n)) assert.equal(e, WireError.Ok, `${f.label} ${n}`);
      else assert.equal(e, WireError.BadOption, `${f.label} ${n}`);
    }
  }
});

/** Dissects the frame placed at an odd offset inside a larger buffer filled with `fill`. */
function dissectEmbedded(src: Uint8Array, fill: number): Dissection {
  const big = new Uint8Array(src.length + 64).fill(fill);
  big.set(src, 7);
  const d = dissect(big, 7, src.length);
  // Offsets are reported in the big buffer: normalise them for comparison.
  for (const l of d.layers) l.off -= 7;
  return d;
}

test('random corruption (seeded) never throws, and no codec reads past the frame it was given', () => {
  const rng = new Prng('wire-vectors-corruption');
  let runs = 0, errors = 0;
  for (const f of FRAMES) {
    const orig = bytesOf(f);
    for (let i = 0; i < 150; i++) {
      const b = orig.slice();
      const flips = rng.int(1, 4);
      // Bias towards the headers, where the parsing decisions are.
      for (let k = 0; k < flips; k++) b[rng.int(0, Math.min(b.length, 120) - 1)] ^= 1 << rng.int(0, 7);
      const len = rng.chance(0.3) ? rng.int(0, b.length) : b.length;
      const x = dissectEmbedded(b.subarray(0, len), 0x00);
      const y = dissectEmbedded(b.subarray(0, len), 0xff);
      assert.deepEqual(y, x, `${f.label} mutation ${i}: result depends on bytes past the frame`);
      if (x.error) errors++;
      runs++;
    }
  }
  assert.ok(errors > runs / 4, `${errors}/${runs} corrupted frames flagged`);
});

test('random garbage (seeded) never throws, and never reads past the frame', () => {
  const rng = new Prng('wire-vectors-garbage');
  const prefixes = [
    '', '0200000050020200000050010800', '02000000500202000000500186dd', '0200000050020200000050018100',
    '02000000500202000000500188a8', '0200000050020200000050010806', '020000005002020000005001080045',
    '02000000500202000000500186dd60', '02000000500202000000500186dd6000000000', // IPv6 with random payload length
  ];
  for (let i = 0; i < 3000; i++) {
    const head = hexToBytes(prefixes[i % prefixes.length]!);
    const b = new Uint8Array(head.length + rng.int(0, 200));
    b.set(head);
    for (let k = head.length; k < b.length; k++) b[k] = rng.int(0, 255);
    assert.deepEqual(dissectEmbedded(b, 0xff), dissectEmbedded(b, 0x00), `garbage ${i}`);
  }
});
