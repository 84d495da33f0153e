import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import { parseIpv6 } from '../../src/wire/addr.js';
import {
  IPV6_HLEN, IPV6_MAX_EXT_HEADERS, Ipv6ExtChain, Ipv6FragmentView, Ipv6Next, Ipv6Option, Ipv6OptionIter, Ipv6View,
  isIpv6LinkLocal, isIpv6Multicast, isIpv6Unspecified, ipv6Equals, writeIpv6FragmentHeader, writeIpv6Header,
  writeIpv6MulticastMac, writeIpv6PaddingOptionsHeader,
} from '../../src/wire/ipv6.js';
import { FRAMES } from '../fixtures/frames.js';
import { hexToBytes } from '../helpers/wire-dissect.js';

const SRC = parseIpv6('2001:db8:50::1')!;
const DST = parseIpv6('2001:db8:50::2')!;

/** An IPv6 packet at offset 2 of a buffer: header, then `ext` (raw extension bytes), then `upper` bytes. */
function packet(firstNext: number, ext: number[], upperLen = 8, payloadLength?: number): { b: Uint8Array; ip: Ipv6View } {
  const plen = payloadLength ?? ext.length + upperLen;
  const b = new Uint8Array(2 + IPV6_HLEN + ext.length + upperLen);
  writeIpv6Header(b, 2, 0, 0, plen, firstNext, 64, SRC, 0, DST, 0);
  b.set(ext, 2 + IPV6_HLEN);
  const ip = new Ipv6View();
  assert.equal(ip.wrap(b, 2, b.length - 2), WireError.Ok);
  return { b, ip };
}
/** An 8-byte options header holding only PadN. */
const pad8 = (next: number) => [next, 0, 1, 4, 0, 0, 0, 0];

test('fixed header: every field written is read back, and the setters change only their bits', () => {
  const b = new Uint8Array(48);
  writeIpv6Header(b, 4, 0xb8, 0xabcde, 1234, Ipv6Next.UDP, 255, SRC, 0, DST, 0);
  const ip = new Ipv6View();
  assert.equal(ip.wrap(b, 4, 44), WireError.Truncated, 'payload length 1234 does not fit');
  b[8] = 0; b[9] = 4;
  assert.equal(ip.wrap(b, 4, 44), WireError.Ok);
  assert.equal(ip.version, 6);
  assert.equal(ip.trafficClass, 0xb8);
  assert.equal(ip.flowLabel, 0xabcde);
  assert.equal(ip.payloadLength, 4);
  assert.equal(ip.nextHeader, 17);
  assert.equal(ip.hopLimit, 255);
  assert.ok(ipv6Equals(b, ip.srcOff, SRC, 0));
  assert.ok(ipv6Equals(b, ip.dstOff, DST, 0));
  assert.equal(ip.payloadOff, 44);
  assert.equal(ip.end, 48);
  ip.hopLimit = 63; ip.trafficClass = 0x01; ip.nextHeader = 59; ip.payloadLength = 0;
  assert.equal(ip.hopLimit, 63);
  assert.equal(ip.trafficClass, 0x01);
  assert.equal(ip.flowLabel, 0xabcde, 'flow label untouched by the traffic class setter');
  assert.equal(ip.nextHeader, 59);
  assert.equal(ip.payloadLength, 0);
});

test('wrap rejects a wrong version, a short header, and a payload length past the bytes', () => {
  const { b } = packet(Ipv6Next.NoNext, [], 0);
  const ip = new Ipv6View();
  for (let n = 0; n < IPV6_HLEN; n++) assert.equal(ip.wrap(b, 2, n), WireError.Truncated);
  assert.equal(ip.wrap(b, 2, 40), WireError.Ok);
  assert.equal(ip.wrap(b, 10, 40), WireError.Truncated, 'runs past the array');
  b[2] = 0x45;
  assert.equal(ip.wrap(b, 2, 40), WireError.BadVersion);
});

test('wrapQuoted accepts a header whose payload was cut short by an ICMPv6 error', () => {
  const { b, ip } = packet(Ipv6Next.UDP, [], 8);
  ip.payloadLength = 1400;
  assert.equal(ip.wrap(b, 2, 48), WireError.Truncated);
  assert.equal(ip.wrapQuoted(b, 2, 48), WireError.Ok);
  assert.equal(ip.payloadLength, 1400);
  assert.equal(ip.wrapQuoted(b, 2, 39), WireError.Truncated);
});

test('chain: no extension headers gives the upper layer at the payload offset', () => {
  const { ip } = packet(Ipv6Next.TCP, []);
  const c = new Ipv6ExtChain();
  assert.equal(c.walk(ip), WireError.Ok);
  assert.equal(c.protocol, Ipv6Next.TCP);
  assert.equal(c.offset, 42);
  assert.equal(c.length, 8);
  assert.equal(c.count, 0);
  assert.equal(c.nextHeaderFieldOff, 2 + 6);
});

test('chain: Hop-by-Hop, Destination Options, Routing, Destination Options, then UDP', () => {
  const rt = [Ipv6Next.DestOptions, 0, 4, 0, 0, 0, 0, 0];
  const { ip } = packet(Ipv6Next.HopByHop, [...pad8(Ipv6Next.DestOptions), ...pad8(Ipv6Next.Routing), ...rt, ...pad8(Ipv6Next.UDP)]);
  const c = new Ipv6ExtChain();
  assert.equal(c.walk(ip), WireError.Ok);
  assert.equal(c.protocol, Ipv6Next.UDP);
  assert.equal(c.count, 4);
  assert.equal(c.hopByHopOff, 42);
  assert.equal(c.routingOff, 58);
  assert.equal(c.destOptionsOff, 66, 'the last Destination Options header');
  assert.equal(c.offset, 74);
  assert.equal(c.nextHeaderFieldOff, 66, 'the byte naming UDP is the last header\'s Next Header');
});

test('chain: a Hop-by-Hop header that is not first is malformed, pointing at the Next Header field that names it', () => {
  const { ip } = packet(Ipv6Next.DestOptions, [...pad8(Ipv6Next.HopByHop), ...pad8(Ipv6Next.UDP)]);
  const c = new Ipv6ExtChain();
  assert.equal(c.walk(ip), WireError.Malformed);
  assert.equal(c.errorOff - ip.off, 40, 'Parameter Problem code 1 pointer: the first byte after the fixed header');
});

test('chain: No Next Header (59) ends the walk with nothing after it', () => {
  const { ip } = packet(Ipv6Next.DestOptions, pad8(Ipv6Next.NoNext), 0);
  const c = new Ipv6ExtChain();
  assert.equal(c.walk(ip), WireError.Ok);
  assert.equal(c.protocol, Ipv6Next.NoNext);
  assert.equal(c.length, 0);
});

test('chain: a header running past the payload length is BadLength, also when bytes follow in the frame', () => {
  // DestOptions claiming 16 bytes, payload length 8: the next 8 bytes are Ethernet padding.
  const { b, ip } = packet(Ipv6Next.DestOptions, [Ipv6Next.UDP, 1, 1, 4, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0], 0, 8);
  const c = new Ipv6ExtChain();
  assert.equal(c.walk(ip), WireError.BadLength);
  assert.equal(c.errorOff, 43, 'points at Hdr Ext Len');
  assert.equal(b.length, 58);
  // Not even the 2-byte start of a header fits.
  const p2 = packet(Ipv6Next.Routing, [], 0, 0);
  assert.equal(c.walk(p2.ip), WireError.BadLength);
});

test(`chain: more than ${IPV6_MAX_EXT_HEADERS} extension headers are refused; the limit can be set per call`, () => {
  const ext: number[] = [];
  for (let i = 0; i < IPV6_MAX_EXT_HEADERS + 1; i++) ext.push(...pad8(i === IPV6_MAX_EXT_HEADERS ? Ipv6Next.UDP : Ipv6Next.DestOptions));
  const { ip } = packet(Ipv6Next.DestOptions, ext);
  const c = new Ipv6ExtChain();
  assert.equal(c.walk(ip), WireError.Unsupported);
  assert.equal(c.walk(ip, IPV6_MAX_EXT_HEADERS + 1), WireError.Ok);
  assert.equal(c.protocol, Ipv6Next.UDP);
  assert.equal(c.walk(ip, 2), WireError.Unsupported);
});

test('chain: a malformed option inside Hop-by-Hop is BadOption', () => {
  // PadN claiming 5 bytes where 4 remain.
  const { ip } = packet(Ipv6Next.HopByHop, [Ipv6Next.UDP, 0, 1, 5, 0, 0, 0, 0]);
  assert.equal(new Ipv6ExtChain().walk(ip), WireError.BadOption);
  // Pad1 run to the end is fine.
  const ok = packet(Ipv6Next.HopByHop, [Ipv6Next.UDP, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(new Ipv6ExtChain().walk(ok.ip), WireError.Ok);
});

test('chain: a non-first fragment stops at the Fragment header; an atomic fragment is walked through', () => {
  const c = new Ipv6ExtChain();
  const fragHdr = (off: number, more: boolean) => {
    const h = new Uint8Array(8);
    writeIpv6FragmentHeader(h, 0, Ipv6Next.UDP, off, more, 0xdeadbeef);
    return [...h];
  };
  const later = packet(Ipv6Next.Fragment, fragHdr(1448, false));
  assert.equal(c.walk(later.ip), WireError.Ok);
  assert.equal(c.protocol, Ipv6Next.Fragment);
  assert.equal(c.offset, 42);
  assert.equal(c.fragmentOff, 42);
  const first = packet(Ipv6Next.Fragment, fragHdr(0, true));
  assert.equal(c.walk(first.ip), WireError.Ok);
  assert.equal(c.protocol, Ipv6Next.Fragment, 'first fragment: reassemble before the upper layer');
  const atomic = packet(Ipv6Next.Fragment, fragHdr(0, false));
  assert.equal(c.walk(atomic.ip), WireError.Ok);
  assert.equal(c.protocol, Ipv6Next.UDP, 'RFC 8200 §4.5: an atomic fragment is processed as a whole packet');
  assert.equal(c.fragmentOff, 42);
  assert.equal(c.offset, 50);
});

test('fragment view reads the captured middle fragment as tshark did (offset 1448, M=1, id 0x4726f647)', () => {
  const f = FRAMES.find((x) => x.label === 'ipv6-frag-middle')!;
  const b = hexToBytes(f.hex);
  const v = new Ipv6FragmentView();
  for (let n = 0; n < 8; n++) assert.equal(v.wrap(b, 54, n), WireError.Truncated);
  assert.equal(v.wrap(b, 54, b.length - 54), WireError.Ok);
  assert.equal(v.nextHeader, Number(f.fields['ipv6.fraghdr.nxt']));
  assert.equal(v.fragmentOffset, Number(f.fields['ipv6.fraghdr.offset']) * 8);
  assert.equal(v.moreFragments, true);
  assert.equal(v.identification, Number(f.fields['ipv6.fraghdr.ident']));
  assert.equal(v.isAtomic, false);
  const out = new Uint8Array(8);
  writeIpv6FragmentHeader(out, 0, v.nextHeader, v.fragmentOffset, v.moreFragments, v.identification);
  assert.deepEqual(out, b.subarray(54, 62));
});

test('option iterator: the captured MLD report carries Router Alert (type 5, value 0) and skips the padding', () => {
  const f = FRAMES.find((x) => x.label === 'mldv2-report-hbh')!;
  const b = hexToBytes(f.hex);
  const it = new Ipv6OptionIter();
  it.begin(b, 54, 8);
  assert.equal(it.next(), true);
  assert.equal(it.type, Ipv6Option.RouterAlert);
  assert.equal(it.dataLen, 2);
  assert.equal((b[it.dataOff]! << 8) | b[it.dataOff + 1]!, 0, 'MLD');
  assert.equal(it.next(), false);
  assert.equal(it.error, WireError.Ok);
});

test('option iterator: the captured unknown option 0x1e (action bits 00: skip) is reported with its data', () => {
  const f = FRAMES.find((x) => x.label === 'udp6-hbh-rh-dstopts')!;
  const b = hexToBytes(f.hex);
  const it = new Ipv6OptionIter();
  it.begin(b, 54, 8);
  assert.equal(it.next(), true);
  assert.equal(it.type, 0x1e);
  assert.equal(it.type >> 6, 0);
  assert.deepEqual([...b.subarray(it.dataOff, it.dataOff + it.dataLen)], [0xab, 0xcd]);
  assert.equal(it.next(), false);
});

test('padding-only options header: the emitter reproduces the captured Destination Options header', () => {
  const f = FRAMES.find((x) => x.label === 'udp6-dstopts')!;
  const b = hexToBytes(f.hex);
  const out = new Uint8Array(8);
  assert.equal(writeIpv6PaddingOptionsHeader(out, 0, Ipv6Next.UDP, 8), 8);
  assert.deepEqual(out, b.subarray(54, 62));
  const big = new Uint8Array(24);
  writeIpv6PaddingOptionsHeader(big, 0, Ipv6Next.TCP, 24);
  const it = new Ipv6OptionIter();
  it.begin(big, 0, 24);
  assert.equal(it.next(), false);
  assert.equal(it.error, WireError.Ok);
  assert.equal(big[1], 2);
});

test('address helpers: unspecified, multicast, link-local, and the 33:33 multicast MAC (RFC 2464 §7)', () => {
  const a = (s: string) => parseIpv6(s)!;
  assert.ok(isIpv6Unspecified(a('::'), 0));
  assert.ok(!isIpv6Unspecified(a('::1'), 0));
  assert.ok(isIpv6Multicast(a('ff02::1'), 0));
  assert.ok(!isIpv6Multicast(a('fe80::1'), 0));
  assert.ok(isIpv6LinkLocal(a('fe80::ff:fe00:5001'), 0));
  assert.ok(isIpv6LinkLocal(a('febf::1'), 0));
  assert.ok(!isIpv6LinkLocal(a('fec0::1'), 0));
  const mac = new Uint8Array(6);
  writeIpv6MulticastMac(mac, 0, a('ff02::1:ff00:5001'), 0);
  assert.deepEqual([...mac], [0x33, 0x33, 0xff, 0x00, 0x50, 0x01]);
});
