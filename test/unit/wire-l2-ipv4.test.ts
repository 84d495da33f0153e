// The lead's codecs (ethernet, arp, ipv4, icmpv4, udp) on their own: error codes, setters,
// emitters. The captured-frame tests in wire-vectors.test.ts cover them on real traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import { parseIpv4, parseMac } from '../../src/wire/addr.js';
import { internetChecksum } from '../../src/wire/checksum.js';
import { ETH_HLEN, EtherType, EthernetView, writeEthernetHeader } from '../../src/wire/ethernet.js';
import { ARP_LEN, ArpOp, ArpView, writeArp } from '../../src/wire/arp.js';
import { IPV4_DF, IPV4_MF, Ipv4View, writeIpv4Header } from '../../src/wire/ipv4.js';
import { IcmpType, IcmpV4View, finishIcmpChecksum, isIcmpError, writeIcmpHeader } from '../../src/wire/icmpv4.js';
import { UdpView, finishUdpChecksumV4, writeUdpHeader } from '../../src/wire/udp.js';
import { FRAMES } from '../fixtures/frames.js';
import { hexToBytes } from '../helpers/wire-dissect.js';

const frame = (label: string) => hexToBytes(FRAMES.find((f) => f.label === label)!.hex);
const A = parseIpv4('198.18.50.1')!, B = parseIpv4('198.18.50.2')!;

test('Ethernet: header fields, truncation, and 802.3 length frames reported Unsupported', () => {
  const b = frame('arp-request');
  const e = new EthernetView();
  for (let n = 0; n < ETH_HLEN; n++) assert.equal(e.wrap(b, 0, n), WireError.Truncated);
  assert.equal(e.wrap(b, 0, b.length), WireError.Ok);
  assert.equal(e.etherType, EtherType.ARP);
  assert.equal(e.payloadOff, 14);
  assert.equal(e.payloadLen, 28);
  const llc = b.slice(); llc[12] = 0x00; llc[13] = 0x2e;
  assert.equal(e.wrap(llc, 0, llc.length), WireError.Unsupported);
  const out = new Uint8Array(14);
  writeEthernetHeader(out, 0, b, 0, b.slice(6, 12), EtherType.ARP);
  assert.deepEqual(out, b.subarray(0, 14));
});

test('ARP: the captured request and reply, unsupported hardware/protocol types and opcodes', () => {
  const v = new ArpView();
  const req = frame('arp-request');
  assert.equal(v.wrap(req, 14, 28), WireError.Ok);
  assert.equal(v.op, ArpOp.Request);
  assert.equal(v.spa, A);
  assert.equal(v.tpa, B);
  for (let n = 0; n < ARP_LEN; n++) assert.equal(v.wrap(req, 14, n), WireError.Truncated, `${n}`);
  const rep = frame('arp-reply');
  assert.equal(v.wrap(rep, 14, 28), WireError.Ok);
  assert.equal(v.op, ArpOp.Reply);
  const out = new Uint8Array(28);
  writeArp(out, 0, ArpOp.Reply, parseMac('02:00:00:00:50:02')!, B, parseMac('02:00:00:00:50:01')!, A);
  assert.deepEqual(out, rep.subarray(14));
  for (const [at, val] of [[15, 6], [16, 0x86], [18, 16], [19, 16], [21, 3]] as const) {
    const c = req.slice(); c[at] = val;
    assert.equal(v.wrap(c, 14, 28), WireError.Unsupported, `byte ${at}`);
  }
});

test('IPv4: version, header length, total length and checksum errors each have their code', () => {
  const b = frame('icmp4-echo-request');
  const v = new Ipv4View();
  const len = b.length - 14;
  assert.equal(v.wrap(b, 14, len), WireError.Ok);
  const c = (at: number, val: number) => { const x = b.slice(); x[at] = val; return x; };
  assert.equal(v.wrap(c(14, 0x65), 14, len), WireError.BadVersion);
  assert.equal(v.wrap(c(14, 0x44), 14, len), WireError.BadHeaderLength);
  assert.equal(v.wrap(c(14, 0x4f), 14, len), WireError.BadChecksum, 'IHL 15 fits the 84 bytes: the checksum catches it');
  assert.equal(v.wrap(c(14, 0x4f), 14, 40), WireError.Truncated, 'IHL 15 past the bytes');
  assert.equal(v.wrap(c(17, 19), 14, len), WireError.BadLength, 'total length below the header length');
  assert.equal(v.wrap(c(17, 85), 14, len), WireError.Truncated, 'total length past the frame');
  assert.equal(v.wrap(c(22, 63), 14, len), WireError.BadChecksum);
  assert.equal(v.wrap(c(22, 63), 14, len, false), WireError.Ok, 'checksum not verified when the device did');
});

test('IPv4: options are skipped by the header length (Record Route, IHL 8)', () => {
  const b = frame('udp4-ip-options');
  const v = new Ipv4View();
  assert.equal(v.wrap(b, 14, b.length - 14), WireError.Ok);
  assert.equal(v.headerLength, 32);
  assert.equal(b[34], 7, 'the option starts right after the fixed header');
  assert.equal(v.payloadOff, 46);
  assert.equal(v.payloadLen, 20);
  const u = new UdpView();
  assert.equal(u.wrap(b, v.payloadOff, v.payloadLen), WireError.Ok);
  assert.equal(u.dstPort, 7002);
  assert.ok(u.checksumOkV4(v.src, v.dst));
});

test('IPv4: fragment fields of the captured fragments', () => {
  const v = new Ipv4View();
  const first = frame('ipv4-frag-first'), mid = frame('ipv4-frag-middle'), last = frame('ipv4-frag-last');
  v.wrap(first, 14, first.length - 14);
  assert.deepEqual([v.isFragment, v.moreFragments, v.fragOffset, v.dontFragment], [true, true, 0, false]);
  v.wrap(mid, 14, mid.length - 14);
  assert.deepEqual([v.isFragment, v.moreFragments, v.fragOffset], [true, true, 1480]);
  v.wrap(last, 14, last.length - 14);
  assert.deepEqual([v.isFragment, v.moreFragments, v.fragOffset], [true, false, 2960]);
  const echo = frame('icmp4-echo-request');
  v.wrap(echo, 14, echo.length - 14);
  assert.deepEqual([v.isFragment, v.dontFragment], [false, true]);
});

test('IPv4: setTtl patches the checksum incrementally, like a router', () => {
  const b = frame('icmp4-echo-request');
  const v = new Ipv4View();
  v.wrap(b, 14, b.length - 14);
  for (let ttl = 64; ttl >= 0; ttl--) {
    v.setTtl(ttl);
    assert.equal(v.ttl, ttl);
    assert.equal(internetChecksum(b, 14, 20), 0, `ttl ${ttl}`);
  }
});

test('IPv4 emitter reproduces the captured header (DF, id, TTL, protocol)', () => {
  const b = frame('icmp4-echo-request');
  const v = new Ipv4View();
  v.wrap(b, 14, b.length - 14);
  const out = new Uint8Array(20);
  writeIpv4Header(out, 0, v.tos, v.totalLength, v.id, v.fragWord, v.ttl, v.protocol, v.src, v.dst);
  assert.deepEqual(out, b.subarray(14, 34));
  assert.equal(v.fragWord & (IPV4_DF | IPV4_MF), IPV4_DF);
});

test('ICMPv4: checksum over the whole message, echo fields, next-hop MTU, and the error types', () => {
  const b = frame('icmp4-echo-request');
  const v = new IcmpV4View();
  assert.equal(v.wrap(b, 34, b.length - 34), WireError.Ok);
  assert.equal(v.type, IcmpType.Echo);
  for (let n = 0; n < 8; n++) assert.equal(v.wrap(b, 34, n), WireError.Truncated);
  b[b.length - 1] ^= 1;
  assert.equal(v.wrap(b, 34, b.length - 34), WireError.BadChecksum);
  const fn = frame('icmp4-frag-needed');
  assert.equal(v.wrap(fn, 34, fn.length - 34), WireError.Ok);
  assert.equal(v.nextHopMtu, 576);
  for (const t of [3, 4, 5, 11, 12]) assert.ok(isIcmpError(t));
  for (const t of [0, 8, 13, 14]) assert.ok(!isIcmpError(t));
  // Emitter: header + payload + finish gives the captured reply.
  const rep = frame('icmp4-echo-reply');
  const out = rep.slice(); out.fill(0, 34, 42);
  v.wrap(rep, 34, rep.length - 34);
  writeIcmpHeader(out, 34, IcmpType.EchoReply, 0, (v.echoId << 16 | v.echoSeq) >>> 0);
  finishIcmpChecksum(out, 34, rep.length - 34);
  assert.deepEqual(out, rep);
});

test('UDP: length field errors, a zero checksum means none (IPv4), 0 is sent as 0xffff', () => {
  const b = frame('udp4');
  const u = new UdpView();
  assert.equal(u.wrap(b, 34, 18), WireError.Ok);
  assert.deepEqual([u.srcPort, u.dstPort, u.length, u.payloadLen], [40000, 7000, 18, 10]);
  for (let n = 0; n < 18; n++) assert.notEqual(u.wrap(b, 34, n), WireError.Ok, `${n}`);
  const short = b.slice(); short[39] = 7;
  assert.equal(u.wrap(short, 34, 18), WireError.BadLength);
  const none = b.slice(); none[40] = 0; none[41] = 0;
  u.wrap(none, 34, 18);
  assert.ok(u.checksumOkV4(A, B), 'RFC 768: all zero = no checksum');
  u.wrap(b, 34, 18);
  assert.ok(u.checksumOkV4(A, B));
  assert.ok(!u.checksumOkV4(A, A));
  // Emitter: ports 1, 2, length 10, pseudo-header (0, 0, 17, 10) and data word 0xffd7 sum to
  // 0xffff, whose checksum 0 must go out as 0xffff.
  const out = new Uint8Array(10);
  writeUdpHeader(out, 0, 1, 2, 10);
  out[8] = 0xff; out[9] = 0xd7;
  finishUdpChecksumV4(out, 0, 10, 0, 0);
  assert.equal((out[6]! << 8) | out[7]!, 0xffff);
  u.wrap(out, 0, 10);
  assert.ok(u.checksumOkV4(0, 0));
});

test('Ipv4View reads the header quoted in an ICMP error even though RFC 792 cuts it short', () => {
  const b = frame('icmp4-frag-needed');
  const v = new Ipv4View();
  assert.equal(v.wrap(b, 42, b.length - 42, false), WireError.Truncated);
  assert.equal(v.wrapQuoted(b, 42, b.length - 42), WireError.Ok);
  assert.equal(v.totalLength, 1028);
  for (let n = 0; n < 20; n++) assert.notEqual(v.wrapQuoted(b, 42, n), WireError.Ok);
});
