// The IPv6 layer on the virtual clock: echo, the extension-header chain and its ICMPv6 errors,
// fragmentation both ways, reassembly limits, path MTU and error rate limiting.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Icmpv6ParamProblemCode, Icmpv6Type, Icmpv6UnreachCode } from '../../src/wire/icmpv6.js';
import { Ipv6Next } from '../../src/wire/ipv6.js';
import { formatIpv6 } from '../../src/wire/addr.js';
import {
  ETH_HLEN, IPV6_HLEN, OUR, OUR_LL, PEER, PEER_LL, PEER_MAC, echoRequest, fragmentFrames, icmp6, ip6, ipv6Frame, makeHarness,
  nsFrame, pingFrame, type Harness,
} from '../helpers/ipv6-harness.js';

/** PEER announces its MAC (an NS for our address with its link-layer option), so replies need no resolution. */
function knowPeer(h: Harness, src = PEER, target = OUR): void {
  h.receive(nsFrame(src, target));
  const na = h.take();
  assert.equal(na.length, 1);
  assert.equal(na[0]!.icmpType, Icmpv6Type.NeighborAdvert);
}

const data = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

test('answers an echo request to its configured address with the same identifier, sequence and data', () => {
  const h = makeHarness();
  knowPeer(h);
  h.receive(pingFrame(OUR, data(56), { id: 0x1234, seq: 9 }));
  const [r, ...rest] = h.take();
  assert.equal(rest.length, 0);
  assert.equal(r!.icmpType, Icmpv6Type.EchoReply);
  assert.equal(r!.src, '2001:db8::2');
  assert.equal(r!.dst, '2001:db8::1');
  assert.equal(r!.dstMac, '02:00:5e:10:00:02');
  assert.equal(r!.hopLimit, 64);
  assert.ok(r!.icmpChecksumOk);
  assert.equal(r!.icmpWord, 0x12340009);
  assert.deepEqual(r!.bytes.subarray(r!.l4 + 8), data(56));
});

test('answers on its link-local address, which is derived from the MAC (modified EUI-64)', () => {
  const h = makeHarness();
  assert.ok(h.ip6.addresses(1).some((a) => a.addr === 'fe80::5eff:fe10:1' && a.state === 'preferred' && a.origin === 'link-local'));
  knowPeer(h, PEER_LL, OUR_LL);
  h.receive(pingFrame(OUR_LL, data(8), { src: PEER_LL }));
  const [r] = h.take();
  assert.equal(r!.icmpType, Icmpv6Type.EchoReply);
  assert.equal(r!.src, 'fe80::5eff:fe10:1');
});

test('a tentative address is not ours yet: packets to it are dropped until DAD completes', () => {
  const h = makeHarness({ settle: false });
  h.receive(pingFrame(OUR, data(8)));
  assert.equal(h.drops['ip6_not_for_us'], 1);
  assert.ok(h.ip6.addresses(1).every((a) => a.state === 'tentative'));
  h.advance(3000);
  assert.ok(h.ip6.addresses(1).every((a) => a.state === 'preferred'));
});

test('a ping to one of its own addresses loops back inside the stack (nothing on the wire)', () => {
  const h = makeHarness();
  const got: number[] = [];
  const from: string[] = [];
  h.ip6.icmp.onEchoReply = (src, _id, seq, p) => { if (p.length === (seq === 5 ? 100 : 3000)) { got.push(seq); from.push(formatIpv6(src)); } };
  h.ip6.icmp.sendEcho(OUR, 1, 5, data(100));
  h.ip6.icmp.sendEcho(OUR_LL, 1, 6, data(3000));
  assert.equal(h.take().length, 0);
  assert.deepEqual(got, [5, 6]);
  assert.deepEqual(from, ['2001:db8::2', 'fe80::5eff:fe10:1']);
  assert.equal(h.pool.inUse, 0);
});

test('an echo request from the unspecified address is not answered', () => {
  const h = makeHarness();
  h.receive(pingFrame(OUR, data(8), { src: ip6('::') }));
  assert.equal(h.take().length, 0);
  assert.equal(h.drops['icmp6_echo_from_unspecified'], 1);
});

test('a packet for another host, a multicast group we did not join, or from a multicast source is dropped', () => {
  const h = makeHarness();
  h.receive(pingFrame(ip6('2001:db8::99'), data(8)));
  h.receive(pingFrame(ip6('ff02::1234'), data(8)));
  h.receive(pingFrame(OUR, data(8), { src: ip6('ff02::1') }));
  assert.equal(h.drops['ip6_not_for_us'], 1);
  assert.equal(h.drops['ip6_not_member'], 1);
  assert.equal(h.drops['ip6_bad_address'], 1);
  assert.equal(h.take().length, 0);
});

test('an echo request to all-nodes is answered from a unicast address of the interface (RFC 4443 §4.2)', () => {
  const h = makeHarness();
  knowPeer(h, PEER_LL, OUR_LL);
  h.receive(pingFrame(ip6('ff02::1'), data(16), { src: PEER_LL }));
  const [r] = h.take();
  assert.equal(r!.icmpType, Icmpv6Type.EchoReply);
  assert.equal(r!.src, 'fe80::5eff:fe10:1');
  assert.ok(r!.icmpChecksumOk);
});

/** A destination options header holding one option of `type` with 2 data bytes. */
function destOpts(next: number, type: number): Uint8Array {
  return Uint8Array.of(next, 0, type, 2, 0, 0, 1, 0); // option + PadN(0)
}

test('an unrecognised option whose type says "skip" (00) is skipped and the packet delivered', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(1, 1, data(8)));
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.DestOptions, Uint8Array.of(...destOpts(Ipv6Next.ICMPv6, 0x1e), ...echo)));
  assert.equal(h.take()[0]?.icmpType, Icmpv6Type.EchoReply);
});

test('an unrecognised option with action 01 is dropped silently; 10 draws Parameter Problem code 2 pointing at it', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(1, 1, data(8)));
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.DestOptions, Uint8Array.of(...destOpts(Ipv6Next.ICMPv6, 0x5e), ...echo)));
  assert.equal(h.take().length, 0);
  assert.equal(h.drops['ip6_unknown_option'], 1);
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.DestOptions, Uint8Array.of(...destOpts(Ipv6Next.ICMPv6, 0x9e), ...echo)));
  const [e] = h.take();
  assert.equal(e!.icmpType, Icmpv6Type.ParamProblem);
  assert.equal(e!.icmpCode, Icmpv6ParamProblemCode.Option);
  assert.equal(e!.icmpWord, IPV6_HLEN + 2, 'points at the option type byte');
  assert.ok(e!.icmpChecksumOk);
});

test('option action 11 draws Parameter Problem only for a unicast destination; action 10 even for multicast', () => {
  const h = makeHarness();
  knowPeer(h, PEER_LL, OUR_LL);
  const dst = ip6('ff02::1');
  const echo = icmp6(PEER_LL, dst, echoRequest(1, 1, data(8)));
  h.receive(ipv6Frame(PEER_LL, dst, Ipv6Next.DestOptions, Uint8Array.of(...destOpts(Ipv6Next.ICMPv6, 0xde), ...echo)));
  assert.equal(h.take().length, 0);
  h.receive(ipv6Frame(PEER_LL, dst, Ipv6Next.DestOptions, Uint8Array.of(...destOpts(Ipv6Next.ICMPv6, 0x9e), ...echo)));
  const [e] = h.take();
  assert.equal(e?.icmpType, Icmpv6Type.ParamProblem);
  assert.equal(e!.icmpCode, Icmpv6ParamProblemCode.Option);
});

test('a routing header of type 0 with segments left is refused with Parameter Problem code 0 at the routing type (RFC 5095)', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(1, 1, data(8)));
  // Type 0, 1 segment left, one address.
  const rh0 = new Uint8Array(24);
  rh0[0] = Ipv6Next.ICMPv6; rh0[1] = 2; rh0[2] = 0; rh0[3] = 1;
  rh0.set(ip6('2001:db8::77'), 8);
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.Routing, Uint8Array.of(...rh0, ...echo)));
  const [e] = h.take();
  assert.equal(e!.icmpType, Icmpv6Type.ParamProblem);
  assert.equal(e!.icmpCode, Icmpv6ParamProblemCode.Header);
  assert.equal(e!.icmpWord, IPV6_HLEN + 2);
  assert.equal(h.drops['ip6_rh0_refused'], 1);
  // With no segments left the header is ignored and the packet processed (RFC 8200 §4.4).
  rh0[3] = 0;
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.Routing, Uint8Array.of(...rh0, ...echo)));
  assert.equal(h.take()[0]?.icmpType, Icmpv6Type.EchoReply);
});

test('a Hop-by-Hop header that does not follow the IPv6 header draws Parameter Problem code 1 at the field naming it', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(1, 1, data(8)));
  const hbh = Uint8Array.of(Ipv6Next.ICMPv6, 0, 1, 4, 0, 0, 0, 0);
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.DestOptions, Uint8Array.of(...destOpts(Ipv6Next.HopByHop, 0x1e), ...hbh, ...echo)));
  const [e] = h.take();
  assert.equal(e!.icmpType, Icmpv6Type.ParamProblem);
  assert.equal(e!.icmpCode, Icmpv6ParamProblemCode.NextHeader);
  assert.equal(e!.icmpWord, IPV6_HLEN, 'the destination options header\'s Next Header byte');
});

test('an unknown next header draws Parameter Problem code 1 at byte 6; UDP to no socket draws port unreachable', () => {
  const h = makeHarness();
  knowPeer(h);
  h.receive(ipv6Frame(PEER, OUR, 143, data(20)));
  let [e] = h.take();
  assert.equal(e!.icmpType, Icmpv6Type.ParamProblem);
  assert.equal(e!.icmpCode, Icmpv6ParamProblemCode.NextHeader);
  assert.equal(e!.icmpWord, 6);
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.UDP, Uint8Array.of(0x30, 0x39, 0, 9, 0, 12, 0, 0, 1, 2, 3, 4)));
  [e] = h.take();
  assert.equal(e!.icmpType, Icmpv6Type.DestUnreachable);
  assert.equal(e!.icmpCode, Icmpv6UnreachCode.Port);
  // The quote starts with the invoking packet's IPv6 header.
  assert.equal(formatIpv6(e!.bytes, e!.l4 + 8 + 8), '2001:db8::1');
});

test('no error answers an ICMPv6 error, a multicast destination or an unspecified source (RFC 4443 §2.4(e))', () => {
  const h = makeHarness();
  knowPeer(h);
  // An unknown-type error message with a bad next header after it is still an error: no reply.
  const err = icmp6(PEER, OUR, Uint8Array.of(1, 4, 0, 0, 0, 0, 0, 0, ...data(40)));
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.ICMPv6, err));
  h.receive(ipv6Frame(PEER, ip6('ff02::1'), 143, data(20), { srcMac: PEER_MAC }));
  h.receive(ipv6Frame(ip6('::'), OUR, 143, data(20)));
  assert.equal(h.take().length, 0);
  assert.ok(h.ip6.icmp.stats.errorsSuppressed >= 2);
});

test('ICMPv6 errors are rate limited to errppslimit per second', () => {
  const h = makeHarness({ sysctl: { 'net.inet6.icmp6.errppslimit': 5 } });
  knowPeer(h);
  for (let i = 0; i < 20; i++) h.receive(ipv6Frame(PEER, OUR, 143, data(20)));
  assert.equal(h.take().length, 5);
  assert.equal(h.ip6.icmp.stats.errorsRateLimited, 15);
  h.advance(1000);
  for (let i = 0; i < 20; i++) h.receive(ipv6Frame(PEER, OUR, 143, data(20)));
  assert.equal(h.take().length, 5, 'the bucket refills at the limit per second');
});

test('a fragmented 3000-byte echo request is reassembled and answered in fragments that fit the link MTU', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(5, 6, data(3000)));
  const frags = fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 1448, 0xabcd);
  assert.equal(frags.length, 3);
  // Out of order, with the first last.
  h.receive(frags[2]!); h.receive(frags[1]!);
  assert.equal(h.take().length, 0);
  h.receive(frags[0]!);
  const out = h.take();
  assert.equal(h.ip6.stats.reassembled, 1);
  assert.equal(out.length, 3);
  const total = new Uint8Array(echo.length);
  let id = -1;
  for (const f of out) {
    assert.ok(f.length <= 1514, `frame of ${f.length} bytes`);
    assert.equal(f.ip.nextHeader, Ipv6Next.Fragment);
    const fo = ETH_HLEN + IPV6_HLEN;
    const off = ((f.bytes[fo + 2]! << 8) | f.bytes[fo + 3]!) & 0xfff8;
    const fid = ((f.bytes[fo + 4]! << 24) | (f.bytes[fo + 5]! << 16) | (f.bytes[fo + 6]! << 8) | f.bytes[fo + 7]!) >>> 0;
    if (id < 0) id = fid; else assert.equal(fid, id, 'one identification for all fragments');
    total.set(f.bytes.subarray(fo + 8, ETH_HLEN + IPV6_HLEN + f.ip.payloadLength), off);
  }
  assert.equal(total[0], Icmpv6Type.EchoReply);
  assert.deepEqual(total.subarray(8), data(3000));
  const last = out[out.length - 1]!;
  assert.equal(last.bytes[ETH_HLEN + IPV6_HLEN + 3]! & 1, 0, 'the last fragment has M = 0');
});

test('overlapping fragments discard the whole datagram, including fragments that arrive later (RFC 5722)', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(5, 6, data(2000)));
  const frags = fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 0, 77, [[0, 1000], [992, 1600], [1600, echo.length]]);
  for (const f of frags) h.receive(f);
  assert.equal(h.take().length, 0);
  assert.equal(h.drops['frag6_overlap'], 1);
  assert.equal(h.drops['frag6_poisoned'], 1);
  // The same fragments without the overlap, under another id, reassemble.
  for (const f of fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 0, 78, [[0, 1000], [1000, 1600], [1600, echo.length]])) h.receive(f);
  assert.equal(h.ip6.stats.reassembled, 1);
  assert.equal(h.take().length, 2, 'the reply, in two fragments');
});

test('an exact duplicate fragment is dropped alone; the datagram still completes', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(5, 6, data(2000)));
  const frags = fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 1000, 79);
  h.receive(frags[0]!); h.receive(frags[0]!); h.receive(frags[1]!); h.receive(frags[2]!);
  assert.equal(h.drops['frag6_duplicate'], 1);
  assert.ok(h.take().some((f) => f.proto === Ipv6Next.ICMPv6 || f.proto === Ipv6Next.Fragment));
  assert.equal(h.ip6.stats.reassembled, 1);
});

test('reassembly gives up after 60 s and sends Time Exceeded code 1 when the first fragment arrived', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(5, 6, data(2000)));
  const frags = fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 1000, 80);
  h.receive(frags[0]!);
  h.advance(59_000);
  assert.ok(h.take().every((f) => f.icmpType !== Icmpv6Type.TimeExceeded));
  h.advance(1_000);
  const [e] = h.take().filter((f) => f.icmpType === Icmpv6Type.TimeExceeded);
  assert.equal(e!.icmpType, Icmpv6Type.TimeExceeded);
  assert.equal(e!.icmpCode, 1);
  assert.equal(h.ip6.reass.inProgress, 0);
  // Only a later fragment: it times out silently.
  h.receive(frags[1]!);
  h.advance(60_000);
  assert.ok(h.take().every((f) => f.icmpType !== Icmpv6Type.TimeExceeded));
  assert.equal(h.pool.inUse, 0, 'every buffer returned');
});

test('a non-last fragment whose length is not a multiple of 8 draws Parameter Problem at the Payload Length', () => {
  const h = makeHarness();
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(5, 6, data(2000)));
  const [f] = fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 0, 81, [[0, 1001], [1001, echo.length]]);
  h.receive(f!);
  const [e] = h.take();
  assert.equal(e!.icmpType, Icmpv6Type.ParamProblem);
  assert.equal(e!.icmpWord, 4);
});

test('the reassembly table is bounded: a full table evicts its oldest datagram, so one whose fragments arrive together still completes', () => {
  const h = makeHarness({ sysctl: { 'net.inet6.ip6.maxfragpackets': 4 } });
  knowPeer(h);
  const echo = icmp6(PEER, OUR, echoRequest(5, 6, data(2000)));
  for (let id = 1; id <= 10; id++) h.receive(fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 1000, id)[1]!);
  assert.equal(h.ip6.reass.inProgress, 4);
  assert.equal(h.drops['frag6_evicted'], 6);
  for (const f of fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 1000, 99)) h.receive(f);
  assert.equal(h.ip6.reass.stats.reassembled, 1, 'the complete datagram was reassembled');
  assert.ok(h.take().length >= 2, 'and answered (a fragmented echo reply)');
  assert.equal(h.drops['frag6_evicted'], 7);
});

test('Packet Too Big lowers the path MTU (never below 1280); sends fragment to it; the estimate ages out', () => {
  const h = makeHarness();
  knowPeer(h);
  const far = ip6('2001:db8::1');
  // A PTB quoting a 1500-byte packet we sent to PEER.
  const quoted = ipv6Frame(OUR, far, Ipv6Next.ICMPv6, new Uint8Array(1460)).subarray(ETH_HLEN, ETH_HLEN + 1232);
  const ptb = (mtu: number) => icmp6(PEER, OUR, Uint8Array.of(2, 0, 0, 0, mtu >>> 24, (mtu >> 16) & 0xff, (mtu >> 8) & 0xff, mtu & 0xff, ...quoted));
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.ICMPv6, ptb(1400)));
  h.ip6.icmp.sendEcho(far, 1, 1, data(1400));
  let out = h.take();
  assert.equal(out.length, 2);
  assert.ok(out.every((f) => f.length - ETH_HLEN <= 1400));
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.ICMPv6, ptb(600)));
  assert.equal(h.ip6.pmtu.get(far, 0, 1500, h.clock.now()), 1280, 'RFC 8201: not below 1280');
  // A PTB can never raise the estimate.
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.ICMPv6, ptb(1450)));
  assert.equal(h.ip6.pmtu.get(far, 0, 1500, h.clock.now()), 1280);
  h.advance(601_000);
  h.take();
  knowPeer(h);
  assert.equal(h.ip6.pmtu.get(far, 0, 1500, h.clock.now()), 1500, 'forgotten after pmtu_expire');
  h.ip6.icmp.sendEcho(far, 1, 2, data(1400));
  out = h.take().filter((f) => f.icmpType === Icmpv6Type.EchoRequest);
  assert.equal(out.length, 1);
});

test('a Packet Too Big about a packet someone else sent changes nothing', () => {
  const h = makeHarness();
  const quoted = ipv6Frame(ip6('2001:db8::55'), PEER, Ipv6Next.ICMPv6, new Uint8Array(100)).subarray(ETH_HLEN);
  h.receive(ipv6Frame(PEER, OUR, Ipv6Next.ICMPv6, icmp6(PEER, OUR, Uint8Array.of(2, 0, 0, 0, 0, 0, 5, 0, ...quoted))));
  assert.equal(h.ip6.pmtu.size, 0);
  assert.equal(h.drops['icmp6_ptb_not_ours'], 1);
});

test('a bad ICMPv6 checksum is dropped and counted', () => {
  const h = makeHarness();
  const f = pingFrame(OUR, data(8));
  f[f.length - 1]! ^= 1;
  h.receive(f);
  assert.equal(h.drops['icmp6_bad_checksum'], 1);
  assert.equal(h.take().length, 0);
});

test('truncated and non-IPv6 input is dropped and counted, never thrown', () => {
  const h = makeHarness();
  const f = pingFrame(OUR, data(8));
  for (let n = ETH_HLEN; n < f.length; n += 3) h.receive(f.subarray(0, n));
  const v4 = f.slice(); v4[ETH_HLEN] = 0x45;
  h.receive(v4);
  const total = Object.values(h.drops).reduce((a, b) => a + b, 0);
  assert.ok(total >= Math.floor((f.length - ETH_HLEN) / 3));
  assert.equal(h.pool.inUse, 0);
});
