// The neighbour cache (RFC 4861 §7) on the virtual clock: resolution, NUD states, NS/NA
// handling both ways, hold queue and eviction bounds.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Icmpv6Type } from '../../src/wire/icmpv6.js';
import { formatIpv6 } from '../../src/wire/addr.js';
import { NaFlag, NdpOption } from '../../src/wire/ndp.js';
import { Addr6Table } from '../../src/stack/ip/addr6.js';
import {
  OUR, PEER, PEER_MAC, ip6, makeHarness, naFrame, nsFrame, solicitedNode, type Sent,
} from '../helpers/ipv6-harness.js';

const ns = (fs: Sent[]) => fs.filter((f) => f.icmpType === Icmpv6Type.NeighborSolicit);
const echoes = (fs: Sent[]) => fs.filter((f) => f.icmpType === Icmpv6Type.EchoRequest);

test('resolves a neighbour with a multicast NS to its solicited-node group, then sends what it held', () => {
  const h = makeHarness();
  h.answering.clear();
  const dst = ip6('2001:db8::1:abcd');
  for (let i = 0; i < 3; i++) h.ip6.icmp.sendEcho(dst, 1, i, new Uint8Array(8));
  const [s, ...rest] = h.take();
  assert.equal(rest.length, 0, 'one solicitation, packets held');
  assert.equal(s!.icmpType, Icmpv6Type.NeighborSolicit);
  assert.equal(s!.dst, 'ff02::1:ff01:abcd');
  assert.equal(s!.dstMac, '33:33:ff:01:ab:cd');
  assert.equal(s!.hopLimit, 255);
  assert.equal(s!.src, '2001:db8::2');
  assert.equal(formatIpv6(s!.bytes, s!.l4 + 8), '2001:db8::1:abcd');
  assert.equal(s!.bytes[s!.l4 + 24], NdpOption.SourceLinkLayer);
  assert.ok(s!.icmpChecksumOk);
  assert.equal(h.ip6.ndp.list()[0]?.state, 'incomplete');
  h.receive(naFrame(dst, OUR, dst, NaFlag.Solicited | NaFlag.Override));
  const out = h.take();
  assert.equal(echoes(out).length, 3);
  assert.ok(out.every((f) => f.dstMac === '02:00:5e:10:00:02'));
  assert.equal(h.ip6.ndp.lookup(1, dst)?.state, 1 /* reachable */);
});

test('an unanswered resolution gives up after nd6_mmaxtries solicitations and drops what it held', () => {
  const h = makeHarness();
  const dst = ip6('2001:db8::1:abcd');
  h.ip6.icmp.sendEcho(dst, 1, 1, new Uint8Array(8));
  h.advance(10_000);
  assert.equal(ns(h.take()).length, 3);
  assert.equal(h.ip6.ndp.size, 0);
  assert.equal(h.drops['nd6_unresolved'], 1);
  assert.equal(h.pool.inUse, 0);
});

test('the hold queue is bounded: the oldest held packet goes first', () => {
  const h = makeHarness({ sysctl: { 'net.inet6.icmp6.nd6_maxqueuelen': 4 } });
  const dst = ip6('2001:db8::1:abcd');
  for (let i = 0; i < 10; i++) h.ip6.icmp.sendEcho(dst, 1, i, new Uint8Array(8));
  h.take();
  h.receive(naFrame(dst, OUR, dst, NaFlag.Solicited | NaFlag.Override));
  const seqs = echoes(h.take()).map((f) => f.icmpWord & 0xffff);
  assert.deepEqual(seqs, [6, 7, 8, 9]);
  assert.equal(h.drops['nd6_hold_overflow'], 6);
});

test('NUD: REACHABLE goes STALE after ReachableTime; use moves it to DELAY, then unicast probes; no answer removes it', () => {
  const h = makeHarness();
  h.answering.clear();
  const dst = ip6('2001:db8::1:abcd');
  h.ip6.icmp.sendEcho(dst, 1, 1, new Uint8Array(8));
  h.receive(naFrame(dst, OUR, dst, NaFlag.Solicited | NaFlag.Override));
  h.take();
  const e = h.ip6.ndp.lookup(1, dst)!;
  assert.equal(e.state, 1);
  h.advance(45_000); // ReachableTime is at most 1.5 × 30 s
  assert.equal(e.state, 2, 'stale');
  h.ip6.icmp.sendEcho(dst, 1, 2, new Uint8Array(8));
  assert.equal(echoes(h.take()).length, 1, 'a stale entry is still used');
  assert.equal(e.state, 3, 'delay');
  h.advance(5_000);
  assert.equal(e.state, 4, 'probe');
  const [p] = ns(h.take());
  assert.equal(p!.dst, '2001:db8::1:abcd', 'the probe is unicast');
  assert.equal(p!.dstMac, '02:00:5e:10:00:02');
  h.advance(3_000);
  assert.equal(ns(h.take()).length, 2);
  assert.equal(h.ip6.ndp.lookup(1, dst), undefined);
});

test('NUD: a solicited NA to a probe makes the entry REACHABLE again', () => {
  const h = makeHarness();
  const dst = PEER; // the harness answers solicitations for PEER
  h.ip6.icmp.sendEcho(dst, 1, 1, new Uint8Array(8));
  h.take();
  const e = h.ip6.ndp.lookup(1, dst)!;
  assert.equal(e.state, 1);
  h.advance(45_000);
  h.ip6.icmp.sendEcho(dst, 1, 2, new Uint8Array(8));
  h.advance(6_000);
  assert.equal(e.state, 1, 'reachable after the probe was answered');
});

test('an NS for our address is answered by a solicited NA (S and O set, target link-layer option) to the solicitor', () => {
  const h = makeHarness();
  h.receive(nsFrame(PEER, OUR));
  const [a] = h.take();
  assert.equal(a!.icmpType, Icmpv6Type.NeighborAdvert);
  assert.equal(a!.src, '2001:db8::2');
  assert.equal(a!.dst, '2001:db8::1');
  assert.equal(a!.dstMac, '02:00:5e:10:00:02', 'sent to the MAC the solicitation carried');
  assert.equal(a!.bytes[a!.l4 + 4], NaFlag.Solicited | NaFlag.Override);
  assert.equal(a!.bytes[a!.l4 + 24], NdpOption.TargetLinkLayer);
  assert.deepEqual(a!.bytes.subarray(a!.l4 + 26, a!.l4 + 32), Uint8Array.of(2, 0, 0x5e, 0x10, 0, 1));
  assert.equal(a!.hopLimit, 255);
  assert.ok(a!.icmpChecksumOk);
});

test('an NS for an address that is not ours, or with a hop limit other than 255, gets nothing', () => {
  const h = makeHarness();
  h.receive(nsFrame(PEER, ip6('2001:db8::99')));
  const f = nsFrame(PEER, OUR);
  f[14 + 7] = 64; // hop limit: the checksum does not cover it
  h.receive(f);
  assert.equal(h.take().length, 0);
  assert.equal(h.drops['ip6_not_member'], 1, 'its solicited-node group is not one we joined');
  assert.equal(h.drops['nd6_ns_invalid'], 1);
});

test('an NS from :: for our assigned address (another node running DAD) is answered to all-nodes with S clear', () => {
  const h = makeHarness();
  h.receive(nsFrame(ip6('::'), OUR, { slla: null }));
  const [a] = h.take();
  assert.equal(a!.icmpType, Icmpv6Type.NeighborAdvert);
  assert.equal(a!.dst, 'ff02::1');
  assert.equal(a!.bytes[a!.l4 + 4], NaFlag.Override);
});

test('an NA without Override and with another MAC makes a REACHABLE entry STALE and keeps its address', () => {
  const h = makeHarness();
  const dst = ip6('2001:db8::1:abcd');
  h.ip6.icmp.sendEcho(dst, 1, 1, new Uint8Array(8));
  h.receive(naFrame(dst, OUR, dst, NaFlag.Solicited | NaFlag.Override));
  const e = h.ip6.ndp.lookup(1, dst)!;
  const other = Uint8Array.of(2, 9, 9, 9, 9, 9);
  h.receive(naFrame(dst, OUR, dst, NaFlag.Solicited, other));
  assert.equal(e.state, 2);
  assert.deepEqual(e.mac, PEER_MAC);
  h.receive(naFrame(dst, OUR, dst, NaFlag.Override, other));
  assert.deepEqual(e.mac, other, 'with Override the new address is taken');
});

test('an unsolicited NA for an unknown neighbour creates nothing (RFC 4861 §7.2.5)', () => {
  const h = makeHarness();
  h.receive(naFrame(PEER, ip6('ff02::1'), PEER, NaFlag.Override));
  assert.equal(h.ip6.ndp.size, 0);
});

test('a full cache evicts incomplete entries before reachable ones and never refuses a new neighbour', () => {
  const h = makeHarness({ sysctl: { 'net.inet6.icmp6.nd6_maxentries': 16 } });
  h.answering.clear();
  const good: Uint8Array[] = [];
  for (let i = 0; i < 10; i++) {
    const a = ip6(`2001:db8::1:${i}`);
    good.push(a);
    h.answering.add(formatIpv6(a));
    h.ip6.icmp.sendEcho(a, 1, i, new Uint8Array(8));
  }
  h.take();
  for (let i = 0; i < 40; i++) h.ip6.icmp.sendEcho(ip6(`2001:db8::2:${i}`), 1, i, new Uint8Array(8));
  assert.equal(h.ip6.ndp.size, 16);
  for (const a of good) assert.equal(h.ip6.ndp.lookup(1, a)?.state, 1, `${formatIpv6(a)} still reachable`);
  assert.ok(h.ip6.ndp.lookup(1, ip6('2001:db8::2:39')), 'the newest junk entry got in');
  assert.equal(h.ip6.ndp.stats.evicted, 34);
  void Addr6Table;
});

test('junk from a scan of 5,000 addresses cannot lock a real neighbour out of the cache', () => {
  const h = makeHarness();
  h.answering.clear();
  const a = ip6('2001:db8::aa:0:0');
  for (let i = 0; i < 5000; i++) {
    a[14] = i >> 8; a[15] = i & 0xff;
    h.ip6.icmp.sendEcho(a, 1, 1, new Uint8Array(8));
  }
  assert.ok(h.ip6.ndp.size <= 4096);
  h.take();
  h.answering.add('2001:db8::1');
  h.ip6.icmp.sendEcho(PEER, 9, 9, new Uint8Array(8));
  const out = h.take();
  assert.equal(echoes(out).filter((f) => f.dst === '2001:db8::1').length, 1);
  assert.ok(h.ip6.ndp.stats.evicted >= 5000 - 4096);
});

test('multicast NS goes to the solicited-node group of the target (RFC 4291 §2.7.1)', () => {
  assert.equal(formatIpv6(solicitedNode(ip6('2001:db8::12:3456:789a'))), 'ff02::1:ff56:789a');
});
