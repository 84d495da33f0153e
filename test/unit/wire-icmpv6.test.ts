import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import { parseIpv6 } from '../../src/wire/addr.js';
import { Ipv6Next, writeIpv6Header } from '../../src/wire/ipv6.js';
import {
  ICMPV6_ERROR_MAX_QUOTE, ICMPV6_HLEN, Icmpv6ParamProblemCode, Icmpv6TimeExceededCode, Icmpv6Type, Icmpv6UnreachCode, Icmpv6View,
  echoRequestToReply, finishIcmpv6Checksum, icmpv6ChecksumOk, isIcmpv6Error, writeIcmpv6DestUnreachable, writeIcmpv6Echo,
  writeIcmpv6PacketTooBig, writeIcmpv6ParamProblem, writeIcmpv6TimeExceeded,
} from '../../src/wire/icmpv6.js';
import { FRAMES } from '../fixtures/frames.js';
import { hexToBytes } from '../helpers/wire-dissect.js';

const frame = (label: string) => hexToBytes(FRAMES.find((f) => f.label === label)!.hex);
/** Ethernet + IPv6 without extension headers: ICMPv6 starts at 54, the addresses at 22 and 38. */
const ICMP = 54, SRC = 22, DST = 38;

test('wrap needs the 8-byte header; every shorter length is Truncated', () => {
  const b = frame('icmp6-echo-request');
  const v = new Icmpv6View();
  for (let n = 0; n < ICMPV6_HLEN; n++) assert.equal(v.wrap(b, ICMP, n), WireError.Truncated);
  assert.equal(v.wrap(b, ICMP, b.length - ICMP), WireError.Ok);
  assert.equal(v.wrap(b, ICMP, b.length - ICMP + 1), WireError.Truncated, 'past the array');
});

test('checksum: the captured echo request verifies with its pseudo-header, and any flipped bit fails it', () => {
  const b = frame('icmp6-echo-request');
  const v = new Icmpv6View();
  const len = b.length - ICMP;
  v.wrap(b, ICMP, len);
  assert.ok(v.checksumOk(b, SRC, b, DST));
  assert.ok(!v.checksumOk(b, DST + 1, b, SRC), 'other addresses');
  for (const at of [ICMP, ICMP + 5, b.length - 1, SRC + 15]) {
    b[at] ^= 0x10;
    assert.ok(!icmpv6ChecksumOk(b, ICMP, len, b, SRC, b, DST), `flip at ${at}`);
    b[at] ^= 0x10;
  }
});

test('echo request to reply in place gives exactly the reply Linux sent (incremental checksum)', () => {
  const req = frame('icmp6-echo-request');
  const rep = frame('icmp6-echo-reply');
  echoRequestToReply(req, ICMP);
  assert.deepEqual(req.subarray(ICMP), rep.subarray(ICMP));
  const v = new Icmpv6View();
  v.wrap(req, ICMP, req.length - ICMP);
  assert.equal(v.type, Icmpv6Type.EchoReply);
  // The reply goes the other way: the pseudo-header sum does not care.
  assert.ok(v.checksumOk(rep, SRC, rep, DST));
});

test('echo emitter + finish reproduce the captured request', () => {
  const b = frame('icmp6-echo-request');
  const v = new Icmpv6View();
  v.wrap(b, ICMP, b.length - ICMP);
  const out = b.slice();
  out.fill(0, ICMP, ICMP + 8);
  writeIcmpv6Echo(out, ICMP, Icmpv6Type.EchoRequest, v.echoId, v.echoSeq);
  finishIcmpv6Checksum(out, ICMP, b.length - ICMP, out, SRC, out, DST);
  assert.deepEqual(out, b);
});

test('time exceeded and port unreachable: the emitters quote the invoking packet like Linux did', () => {
  for (const [label, emit] of [
    ['icmp6-time-exceeded', (o: Uint8Array, inv: Uint8Array, n: number) => writeIcmpv6TimeExceeded(o, ICMP, Icmpv6TimeExceededCode.HopLimit, inv, 14, n)],
    ['icmp6-port-unreachable', (o: Uint8Array, inv: Uint8Array, n: number) => writeIcmpv6DestUnreachable(o, ICMP, Icmpv6UnreachCode.Port, inv, 14, n)],
  ] as const) {
    const b = frame(label);
    const quoted = b.subarray(ICMP + 8);
    // The invoking packet, as a frame of its own (Ethernet header ignored).
    const inv = new Uint8Array(14 + quoted.length);
    inv.set(quoted, 14);
    const out = b.slice();
    out.fill(0, ICMP);
    const n = emit(out, inv, quoted.length);
    assert.equal(n, b.length - ICMP);
    finishIcmpv6Checksum(out, ICMP, n, out, SRC, out, DST);
    assert.deepEqual(out, b, label);
  }
});

test('packet too big carries the MTU and quotes no more than fits the 1280-byte minimum MTU (RFC 4443 §2.4(c))', () => {
  const b = frame('icmp6-packet-too-big');
  const v = new Icmpv6View();
  v.wrap(b, ICMP, b.length - ICMP);
  assert.equal(v.type, Icmpv6Type.PacketTooBig);
  assert.equal(v.mtu, 1280);
  assert.equal(14 + 40 + v.len, 1294, 'Linux filled the minimum MTU exactly');
  // Quote a 1462-byte invoking packet: only 1232 bytes go in.
  const inv = new Uint8Array(1462).map((_, i) => i & 0xff);
  const out = new Uint8Array(2000);
  const n = writeIcmpv6PacketTooBig(out, 10, 1280, inv, 0, inv.length);
  assert.equal(n, ICMPV6_HLEN + ICMPV6_ERROR_MAX_QUOTE);
  assert.equal(40 + n, 1280);
  assert.deepEqual(out.subarray(18, 18 + ICMPV6_ERROR_MAX_QUOTE), inv.subarray(0, ICMPV6_ERROR_MAX_QUOTE));
  assert.equal(out[18 + ICMPV6_ERROR_MAX_QUOTE], 0, 'nothing past the quote');
  v.wrap(out, 10, n);
  assert.equal(v.mtu, 1280);
});

test('an error can be built in the same buffer as the invoking packet (overlapping move)', () => {
  // Invoking packet at 54 (where it arrived); the error's quote starts at 54 + 48 + 8, past it.
  const b = new Uint8Array(400);
  const src = parseIpv6('2001:db8:50::1')!, dst = parseIpv6('2001:db8:50::2')!;
  writeIpv6Header(b, 54, 0, 0, 100, Ipv6Next.UDP, 64, src, 0, dst, 0);
  for (let i = 0; i < 100; i++) b[94 + i] = i + 1;
  const invoking = b.slice(54, 194);
  // Build the error's ICMPv6 message at 62: its quote (at 70) overlaps the packet it copies from.
  const n = writeIcmpv6ParamProblem(b, 62, Icmpv6ParamProblemCode.NextHeader, 6, b, 54, 140);
  assert.equal(n, 148);
  assert.deepEqual(b.subarray(70, 210), invoking);
  const v = new Icmpv6View();
  v.wrap(b, 62, n);
  assert.equal(v.type, Icmpv6Type.ParamProblem);
  assert.equal(v.code, 1);
  assert.equal(v.pointer, 6);
});

test('error types are those below 128 (RFC 4443 §2.1)', () => {
  for (const t of [1, 2, 3, 4, 127]) assert.ok(isIcmpv6Error(t));
  for (const t of [128, 129, 133, 137, 143, 255]) assert.ok(!isIcmpv6Error(t));
});
