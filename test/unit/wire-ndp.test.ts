import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import { parseIpv6, parseMac } from '../../src/wire/addr.js';
import { Ipv6View } from '../../src/wire/ipv6.js';
import { finishIcmpv6Checksum, icmpv6ChecksumOk } from '../../src/wire/icmpv6.js';
import {
  NaFlag, NdpOption, NdpOptionIter, NeighborAdvertView, NeighborSolicitView, PrefixFlag, PrefixInfoView, RaFlag, RedirectView,
  RouterAdvertView, RouterSolicitView, isSolicitedNodeMulticast, readMtuOption, writeLinkLayerOption, writeMtuOption,
  writeNeighborAdvert, writeNeighborSolicit, writePrefixInfoOption, writeRouterAdvert, writeRouterSolicit, writeSolicitedNodeMulticast,
} from '../../src/wire/ndp.js';
import { FRAMES } from '../fixtures/frames.js';
import { hexToBytes } from '../helpers/wire-dissect.js';

const frame = (label: string) => hexToBytes(FRAMES.find((f) => f.label === label)!.hex);
const ICMP = 54, SRC = 22, DST = 38;
const MAC_A = parseMac('02:00:00:00:50:01')!;
const ip6 = (b: Uint8Array) => { const v = new Ipv6View(); assert.equal(v.wrap(b, 14, b.length - 14), WireError.Ok); return v; };

test('captured NS: target, source link-layer option, and IP-level checks pass', () => {
  const b = frame('ns');
  const v = new NeighborSolicitView();
  assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.Ok);
  assert.deepEqual(b.subarray(v.targetOff, v.targetOff + 16), parseIpv6('2001:db8:50::2'));
  const mac = v.linkLayerAddrOff(NdpOption.SourceLinkLayer);
  assert.deepEqual(b.subarray(mac, mac + 6), MAC_A);
  assert.equal(v.linkLayerAddrOff(NdpOption.TargetLinkLayer), -1);
  assert.equal(v.checkIp(ip6(b)), WireError.Ok);
});

test('a zero-length option makes the whole message invalid (RFC 4861 §4.6 "MUST silently discard")', () => {
  for (const label of ['ns', 'ra', 'rs-kernel', 'na-solicited', 'redirect']) {
    const b = frame(label);
    const views = [new RouterSolicitView(), new RouterAdvertView(), new NeighborSolicitView(), new NeighborAdvertView(), new RedirectView()];
    const v = views.find((x) => x.msgType === b[ICMP])!;
    assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.Ok, label);
    b[v.optionsOff + 1] = 0;
    assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.BadOption, label);
  }
  // The iterator alone, on a zero-length option after a good one.
  const opts = new Uint8Array([1, 1, 2, 0, 0, 0, 0, 0, 5, 0, 0, 0]);
  const it = new NdpOptionIter();
  it.begin(opts, 0, opts.length);
  assert.equal(it.next(), true);
  assert.equal(it.next(), false);
  assert.equal(it.error, WireError.BadOption);
});

test('an option longer than the message is BadOption; so is a lone trailing byte', () => {
  const v = new NeighborSolicitView();
  const c = frame('ns');
  c[ICMP + 24 + 1] = 2; // SLLA claims 16 bytes, 8 remain
  assert.equal(v.wrap(c, ICMP, c.length - ICMP), WireError.BadOption);
  const d = new Uint8Array(frame('ns').length + 1);
  d.set(frame('ns'));
  assert.equal(v.wrap(d, ICMP, d.length - ICMP), WireError.BadOption);
});

test('code must be 0, and NS/NA targets must not be multicast', () => {
  const v = new NeighborSolicitView();
  const b = frame('ns');
  b[ICMP + 1] = 1;
  assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.Malformed);
  const c = frame('ns');
  c[ICMP + 8] = 0xff;
  assert.equal(v.wrap(c, ICMP, c.length - ICMP), WireError.Malformed);
  assert.equal(new RouterAdvertView().wrap(frame('ns'), ICMP, 32), WireError.Unsupported, 'an NS is not an RA');
});

test('IP-level checks: hop limit 255, RA from link-local, DAD NS to solicited-node without SLLA, NA to multicast with S=0', () => {
  const ns = frame('ns');
  const v = new NeighborSolicitView();
  v.wrap(ns, ICMP, ns.length - ICMP);
  const ip = ip6(ns);
  ip.hopLimit = 254;
  assert.equal(v.checkIp(ip), WireError.Malformed, 'RFC 4861 §7.1.1: hop limit 255');

  const dad = frame('ns-dad');
  v.wrap(dad, ICMP, dad.length - ICMP);
  assert.equal(v.checkIp(ip6(dad)), WireError.Ok, 'the kernel\'s DAD probe');
  // A DAD probe (source ::) must not carry SLLA: take the plain NS, clear its source.
  const bad = frame('ns');
  bad.fill(0, SRC, SRC + 16);
  v.wrap(bad, ICMP, bad.length - ICMP);
  assert.equal(v.checkIp(ip6(bad)), WireError.Malformed);
  // ...and must go to the solicited-node group.
  const dad2 = frame('ns-dad');
  dad2[DST + 15] ^= 1; dad2[DST + 12] = 0;
  v.wrap(dad2, ICMP, dad2.length - ICMP);
  assert.equal(v.checkIp(ip6(dad2)), WireError.Malformed);

  const ra = frame('ra');
  const r = new RouterAdvertView();
  r.wrap(ra, ICMP, ra.length - ICMP);
  assert.equal(r.checkIp(ip6(ra)), WireError.Ok);
  ra[SRC] = 0x20; ra[SRC + 1] = 0x01;
  assert.equal(r.checkIp(ip6(ra)), WireError.Malformed, 'RFC 4861 §6.1.2: source must be link-local');

  const na = frame('na-solicited');
  const n = new NeighborAdvertView();
  n.wrap(na, ICMP, na.length - ICMP);
  assert.equal(n.checkIp(ip6(na)), WireError.Ok);
  na.set(parseIpv6('ff02::1')!, DST);
  assert.equal(n.checkIp(ip6(na)), WireError.Malformed, 'RFC 4861 §7.1.2: solicited NA to multicast');
});

test('captured RA: fixed fields, MTU option and Prefix Information decode as sent', () => {
  const b = frame('ra');
  const v = new RouterAdvertView();
  assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.Ok);
  assert.equal(v.curHopLimit, 64);
  assert.equal(v.managed, false);
  assert.equal(v.other, true);
  assert.equal(v.routerLifetime, 1800);
  assert.equal(v.reachableTime, 30000);
  assert.equal(v.retransTimer, 1000);
  const mtuOff = v.findOption(NdpOption.Mtu);
  assert.equal(readMtuOption(b, mtuOff, 8), 1500);
  const p = new PrefixInfoView();
  const po = v.findOption(NdpOption.PrefixInfo);
  assert.equal(p.wrap(b, po, 32), WireError.Ok);
  assert.equal(p.prefixLength, 64);
  assert.ok(p.onLink && p.autonomous);
  assert.equal(p.validLifetime, 2592000);
  assert.equal(p.preferredLifetime, 604800);
  assert.deepEqual(b.subarray(p.prefixOff, p.prefixOff + 16), parseIpv6('2001:db8:50::'));
  b[po + 1] = 3;
  assert.equal(p.wrap(b, po, 32), WireError.BadOption, 'Prefix Information has length 4');
  b[po + 1] = 4; b[po + 2] = 129;
  assert.equal(p.wrap(b, po, 32), WireError.BadOption, 'prefix length > 128');
  assert.equal(v.findOption(NdpOption.Rdnss), -1);
  assert.equal(readMtuOption(b, po, 32), -1, 'not an MTU option');
});

test('emitters rebuild the captured RA, RS, NS and NA byte for byte', () => {
  const ra = frame('ra');
  const out = ra.slice(); out.fill(0, ICMP);
  let o = ICMP;
  o += writeRouterAdvert(out, o, 64, RaFlag.Other, 1800, 30000, 1000);
  o += writeLinkLayerOption(out, o, NdpOption.SourceLinkLayer, MAC_A);
  o += writeMtuOption(out, o, 1500);
  o += writePrefixInfoOption(out, o, 64, PrefixFlag.OnLink | PrefixFlag.Autonomous, 2592000, 604800, parseIpv6('2001:db8:50::')!, 0);
  assert.equal(o, ra.length);
  finishIcmpv6Checksum(out, ICMP, o - ICMP, out, SRC, out, DST);
  assert.deepEqual(out, ra);

  const rs = frame('rs-crafted');
  const rsOut = rs.slice(); rsOut.fill(0, ICMP);
  const rsLen = writeRouterSolicit(rsOut, ICMP, MAC_A);
  finishIcmpv6Checksum(rsOut, ICMP, rsLen, rsOut, SRC, rsOut, DST);
  assert.deepEqual(rsOut, rs);

  const ns = frame('ns');
  const nsOut = ns.slice(); nsOut.fill(0, ICMP);
  const nsLen = writeNeighborSolicit(nsOut, ICMP, parseIpv6('2001:db8:50::2')!, 0, MAC_A);
  finishIcmpv6Checksum(nsOut, ICMP, nsLen, nsOut, SRC, nsOut, DST);
  assert.deepEqual(nsOut, ns);

  const dad = frame('ns-dad');
  const dadOut = dad.slice(); dadOut.fill(0, ICMP);
  let dadLen = writeNeighborSolicit(dadOut, ICMP, parseIpv6('fe80::ff:fe00:5001')!, 0, null);
  assert.equal(dadLen, 24);
  // Linux adds a Nonce option to DAD probes (RFC 7527): carried over as an opaque option.
  const dv = new NeighborSolicitView();
  dv.wrap(dad, ICMP, dad.length - ICMP);
  const nonce = dv.findOption(NdpOption.Nonce);
  assert.equal(nonce, ICMP + 24);
  dadOut.set(dad.subarray(nonce, nonce + 8), ICMP + dadLen); dadLen += 8;
  finishIcmpv6Checksum(dadOut, ICMP, dadLen, dadOut, SRC, dadOut, DST);
  assert.deepEqual(dadOut, dad);

  const na = frame('na-solicited');
  const naOut = na.slice(); naOut.fill(0, ICMP);
  const naLen = writeNeighborAdvert(naOut, ICMP, NaFlag.Router | NaFlag.Solicited | NaFlag.Override, parseIpv6('2001:db8:50::2')!, 0, parseMac('02:00:00:00:50:02')!);
  finishIcmpv6Checksum(naOut, ICMP, naLen, naOut, SRC, naOut, DST);
  assert.deepEqual(naOut, na);
  assert.ok(icmpv6ChecksumOk(naOut, ICMP, naLen, naOut, SRC, naOut, DST));
});

test('captured Redirect: target, destination, TLLA, and the Redirected Header option located', () => {
  const b = frame('redirect');
  const v = new RedirectView();
  assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.Ok);
  assert.deepEqual(b.subarray(v.targetOff, v.targetOff + 16), parseIpv6('fe80::5003'));
  assert.deepEqual(b.subarray(v.destinationOff, v.destinationOff + 16), parseIpv6('2001:db8:51::3'));
  const t = v.linkLayerAddrOff(NdpOption.TargetLinkLayer);
  assert.deepEqual(b.subarray(t, t + 6), parseMac('02:00:00:00:50:03'));
  const rh = v.findOption(NdpOption.RedirectedHeader);
  assert.equal(b[rh + 1], 7);
  assert.equal(b[rh + 8]! >> 4, 6, 'the quoted packet starts 8 bytes in');
  b[v.destinationOff] = 0xff;
  assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.Malformed, 'RFC 4861 §8.1: destination not multicast');
});

test('solicited-node multicast address (RFC 4291 §2.7.1)', () => {
  const out = new Uint8Array(16);
  writeSolicitedNodeMulticast(out, 0, parseIpv6('2001:db8:50::abcd:1234')!, 0);
  assert.deepEqual(out, parseIpv6('ff02::1:ffcd:1234'));
  assert.ok(isSolicitedNodeMulticast(out, 0));
  assert.ok(!isSolicitedNodeMulticast(parseIpv6('ff02::1')!, 0));
  // The captured DAD probe went to the solicited-node group of its target.
  const dad = frame('ns-dad');
  writeSolicitedNodeMulticast(out, 0, dad, ICMP + 8);
  assert.deepEqual(out, dad.subarray(DST, DST + 16));
});
