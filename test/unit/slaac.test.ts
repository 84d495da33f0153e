// Address configuration on the virtual clock: DAD (RFC 4862 §5.4), SLAAC from router
// advertisements (§5.5) with lifetimes and the two-hour rule, router discovery (RFC 4861 §6.3)
// and the MLDv2 reports for solicited-node groups (RFC 3810).
import test from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv6 } from '../../src/wire/addr.js';
import { Icmpv6Type } from '../../src/wire/icmpv6.js';
import { Ipv6Next } from '../../src/wire/ipv6.js';
import { NaFlag, NdpOption } from '../../src/wire/ndp.js';
import {
  ETH_HLEN, IPV6_HLEN, OUR, PEER_LL, icmp6, ip6, ipv6Frame, makeHarness, naFrame, nsFrame, pingFrame, raFrame, type Sent,
} from '../helpers/ipv6-harness.js';

const ofType = (fs: Sent[], t: number) => fs.filter((f) => f.icmpType === t);
/** The groups of an MLDv2 report's records (no sources: 20 bytes each). */
const reportGroups = (f: Sent) => {
  const n = (f.bytes[f.l4 + 6]! << 8) | f.bytes[f.l4 + 7]!;
  return Array.from({ length: n }, (_, i) => formatIpv6(f.bytes, f.l4 + 8 + 20 * i + 4));
};
const recordTypes = (f: Sent) => {
  const n = (f.bytes[f.l4 + 6]! << 8) | f.bytes[f.l4 + 7]!;
  return Array.from({ length: n }, (_, i) => f.bytes[f.l4 + 8 + 20 * i]!);
};
const addr = (h: ReturnType<typeof makeHarness>, a: string) => h.ip6.addresses(1).find((x) => x.addr === a);

test('DAD: an NS from :: to the solicited-node group with a nonce and no link-layer option, then the address is preferred', () => {
  const h = makeHarness({ settle: false });
  h.advance(1000);
  const probes = ofType(h.take(), Icmpv6Type.NeighborSolicit);
  assert.equal(probes.length, 2, 'one probe for the link-local, one for the configured address');
  const p = probes.find((f) => formatIpv6(f.bytes, f.l4 + 8) === '2001:db8::2')!;
  assert.equal(p.src, '::');
  assert.equal(p.dst, 'ff02::1:ff00:2');
  assert.equal(p.dstMac, '33:33:ff:00:00:02');
  assert.equal(p.hopLimit, 255);
  assert.equal(p.bytes[p.l4 + 24], NdpOption.Nonce);
  assert.ok(p.icmpChecksumOk);
  assert.equal(addr(h, '2001:db8::2')?.state, 'tentative');
  h.advance(1000);
  assert.equal(addr(h, '2001:db8::2')?.state, 'preferred');
});

test('MLDv2: joining a solicited-node group sends a report to ff02::16 with Router Alert, hop limit 1, CHANGE_TO_EXCLUDE', () => {
  const h = makeHarness({ settle: false });
  const reports = ofType(h.take(), Icmpv6Type.MldV2Report);
  assert.ok(reports.length >= 2);
  const r = reports.find((f) => reportGroups(f).includes('ff02::1:ff00:2'))!;
  assert.ok(r, 'a report for the configured address\'s group');
  assert.equal(r.dst, 'ff02::16');
  assert.equal(r.dstMac, '33:33:00:00:00:16');
  assert.equal(r.hopLimit, 1);
  assert.equal(r.src, '::', 'before a link-local address is valid, from ::');
  assert.equal(r.ip.nextHeader, Ipv6Next.HopByHop);
  const hbh = ETH_HLEN + IPV6_HLEN;
  assert.deepEqual([...r.bytes.subarray(hbh, hbh + 6)], [Ipv6Next.ICMPv6, 0, 5, 2, 0, 0], 'Router Alert, value 0 (MLD)');
  assert.ok(recordTypes(r).every((t) => t === 4), 'CHANGE_TO_EXCLUDE_MODE');
  assert.ok(r.icmpChecksumOk);
  // ff02::1 is never reported (RFC 3810 §6).
  assert.ok(reports.every((f) => !reportGroups(f).includes('ff02::1')));
  // Robustness: the report is repeated once within a second.
  h.advance(1000);
  assert.ok(ofType(h.take(), Icmpv6Type.MldV2Report).length >= 1);
});

test('MLDv2: a general query is answered with a current-state report listing every group (MODE_IS_EXCLUDE)', () => {
  const h = makeHarness();
  const q = new Uint8Array(28);
  q[0] = Icmpv6Type.MldQuery; q[4] = 0x03; q[5] = 0xe8; // max response 1000 ms, group ::
  const dst = ip6('ff02::1');
  h.receive(ipv6Frame(PEER_LL, dst, Ipv6Next.ICMPv6, icmp6(PEER_LL, dst, q), { hopLimit: 1 }));
  h.advance(1000);
  const [r] = ofType(h.take(), Icmpv6Type.MldV2Report);
  assert.ok(r);
  assert.equal(r.src, 'fe80::5eff:fe10:1');
  const n = (r.bytes[r.l4 + 6]! << 8) | r.bytes[r.l4 + 7]!;
  assert.equal(n, 2, 'the two solicited-node groups');
  assert.deepEqual(reportGroups(r).sort(), ['ff02::1:ff00:2', 'ff02::1:ff10:1']);
  assert.deepEqual(recordTypes(r), [2, 2], 'MODE_IS_EXCLUDE');
});

test('DAD: an NA for the tentative address marks it duplicated; it is never used or answered', () => {
  const h = makeHarness({ settle: false });
  h.advance(1000);
  h.receive(naFrame(PEER_LL, ip6('ff02::1'), OUR, NaFlag.Override));
  h.advance(3000);
  assert.equal(addr(h, '2001:db8::2')?.state, 'duplicated');
  assert.equal(h.ip6.addrconf.stats.dadFailed, 1);
  h.take();
  h.receive(pingFrame(OUR, new Uint8Array(8)));
  assert.equal(h.take().length, 0);
  // A duplicated address is not a source either: only the link-local address is left.
  h.ip6.icmp.sendEcho(ip6('2001:db8::1'), 1, 1, new Uint8Array(8));
  assert.ok(h.take().every((f) => f.src !== '2001:db8::2'));
});

test('DAD: an NS from :: for the tentative address from another node marks it duplicated; our own looped-back probe does not', () => {
  const h = makeHarness({ settle: false });
  h.advance(1000);
  const probe = ofType(h.take(), Icmpv6Type.NeighborSolicit).find((f) => formatIpv6(f.bytes, f.l4 + 8) === '2001:db8::2')!;
  const nonce = probe.bytes.slice(probe.l4 + 26, probe.l4 + 32);
  h.receive(nsFrame(ip6('::'), OUR, { slla: null, nonce }));
  assert.equal(addr(h, '2001:db8::2')?.state, 'tentative', 'our own probe, looped back');
  h.receive(nsFrame(ip6('::'), OUR, { slla: null, nonce: Uint8Array.of(1, 2, 3, 4, 5, 6) }));
  assert.equal(addr(h, '2001:db8::2')?.state, 'duplicated');
});

test('DAD: an NS from a real source for a tentative address is ignored (address resolution must wait)', () => {
  const h = makeHarness({ settle: false });
  h.advance(500);
  h.take();
  h.receive(nsFrame(ip6('2001:db8::1'), OUR));
  assert.equal(ofType(h.take(), Icmpv6Type.NeighborAdvert).length, 0);
  h.advance(3000);
  assert.equal(addr(h, '2001:db8::2')?.state, 'preferred');
});

test('SLAAC: router solicitations go to ff02::2; an RA gives an EUI-64 address, a default route, an on-link prefix and the MTU', () => {
  const h = makeHarness({ cfg: { slaac: true }, settle: false });
  h.advance(3000);
  const rs = ofType(h.take(), Icmpv6Type.RouterSolicit);
  assert.ok(rs.length >= 1);
  const last = rs[rs.length - 1]!;
  assert.equal(last.dst, 'ff02::2');
  assert.equal(last.hopLimit, 255);
  h.receive(raFrame({ routerLifetime: 1800, hopLimit: 60, mtu: 1400, prefixes: [{ prefix: '2001:db8:1::', valid: 86400, preferred: 14400 }] }));
  h.advance(3000);
  const a = addr(h, '2001:db8:1::5eff:fe10:1');
  assert.equal(a?.state, 'preferred');
  assert.equal(a?.origin, 'slaac');
  assert.equal(a?.validMs, 86400_000 - 3000);
  const routes = h.ip6.routes.list(h.clock.now());
  assert.ok(routes.some((r) => r.prefix === '::/0' && r.gateway === 'fe80::2' && r.flags.includes('R')));
  assert.ok(routes.some((r) => r.prefix === '2001:db8:1::/64' && r.gateway === null));
  assert.equal(h.ip6.link(1)!.mtu, 1400);
  assert.equal(h.ip6.link(1)!.curHopLimit, 60);
  // No more solicitations once a router answered.
  h.advance(10_000);
  assert.equal(ofType(h.take(), Icmpv6Type.RouterSolicit).length, 0);
  // A far destination goes to the router's MAC, from the SLAAC address.
  h.ip6.icmp.sendEcho(ip6('2001:db8:99::1'), 1, 1, new Uint8Array(8));
  const [e] = ofType(h.take(), Icmpv6Type.EchoRequest);
  assert.equal(e?.src, '2001:db8:1::5eff:fe10:1');
  assert.equal(e?.dstMac, '02:00:5e:10:00:02');
});

test('SLAAC: the address is deprecated at the end of its preferred lifetime and removed at the end of its valid lifetime', () => {
  const h = makeHarness({ cfg: { slaac: true } });
  h.receive(raFrame({ prefixes: [{ prefix: '2001:db8:1::', valid: 120, preferred: 60 }] }));
  h.advance(3000);
  const text = '2001:db8:1::5eff:fe10:1';
  assert.equal(addr(h, text)?.state, 'preferred');
  h.advance(60_000);
  assert.equal(addr(h, text)?.state, 'deprecated');
  h.advance(60_000);
  assert.equal(addr(h, text), undefined);
});

test('SLAAC two-hour rule: an RA cannot cut a long remaining valid lifetime below two hours (RFC 4862 §5.5.3(e))', () => {
  const h = makeHarness({ cfg: { slaac: true } });
  const text = '2001:db8:1::5eff:fe10:1';
  h.receive(raFrame({ prefixes: [{ prefix: '2001:db8:1::', valid: 86400, preferred: 3600 }] }));
  h.advance(3000);
  h.receive(raFrame({ prefixes: [{ prefix: '2001:db8:1::', valid: 60, preferred: 30 }] }));
  assert.equal(addr(h, text)?.validMs, 7_200_000);
  assert.equal(addr(h, text)?.preferredMs, 30_000, 'the preferred lifetime is always taken');
  // With two hours or less remaining, a shorter lifetime is ignored.
  h.advance(7_200_000 - 600_000);
  h.receive(raFrame({ prefixes: [{ prefix: '2001:db8:1::', valid: 60, preferred: 0 }] }));
  assert.equal(addr(h, text)?.validMs, 600_000);
  // A longer one is taken.
  h.receive(raFrame({ prefixes: [{ prefix: '2001:db8:1::', valid: 3 * 3600, preferred: 3600 }] }));
  assert.equal(addr(h, text)?.validMs, 3 * 3_600_000);
});

test('SLAAC ignores a prefix whose preferred lifetime exceeds its valid one, a link-local prefix and a non-/64 prefix', () => {
  const h = makeHarness({ cfg: { slaac: true } });
  h.receive(raFrame({ prefixes: [
    { prefix: '2001:db8:1::', valid: 60, preferred: 120 },
    { prefix: 'fe80::', valid: 600, preferred: 600 },
    { prefix: '2001:db8:2::', len: 48, valid: 600, preferred: 600 },
  ] }));
  h.advance(3000);
  assert.deepEqual(h.ip6.addresses(1).filter((a) => a.origin === 'slaac'), []);
});

test('an RA with router lifetime 0 removes the default router; a prefix with valid lifetime 0 leaves the on-link list', () => {
  const h = makeHarness({ cfg: { slaac: true } });
  h.receive(raFrame({ routerLifetime: 600, prefixes: [{ prefix: '2001:db8:1::', auto: false, valid: 600, preferred: 600 }] }));
  assert.ok(h.ip6.routes.list(h.clock.now()).some((r) => r.prefix === '::/0'));
  h.receive(raFrame({ routerLifetime: 0, prefixes: [{ prefix: '2001:db8:1::', auto: false, valid: 0, preferred: 0 }] }));
  const routes = h.ip6.routes.list(h.clock.now());
  assert.ok(!routes.some((r) => r.prefix === '::/0'));
  assert.ok(!routes.some((r) => r.prefix === '2001:db8:1::/64'));
});

test('RA timers: reachable time randomised around the base, above MAX_REACHABLE_TIME ignored; RetransTimer kept within [10 ms, 60 s]', () => {
  const h = makeHarness({ cfg: { slaac: true } });
  const link = h.ip6.link(1)!;
  h.receive(raFrame({ reachable: 10_000, retrans: 2_000 }));
  assert.equal(link.baseReachableTime, 10_000);
  assert.ok(link.reachableTime >= 5_000 && link.reachableTime <= 15_000, String(link.reachableTime));
  assert.equal(link.retransTimer, 2_000);
  h.receive(raFrame({ reachable: 3_600_001, retrans: 0xffffffff }));
  assert.equal(link.baseReachableTime, 10_000);
  assert.equal(link.retransTimer, 60_000);
  h.receive(raFrame({ retrans: 1 }));
  assert.equal(link.retransTimer, 10);
});

test('a default router expires with its lifetime', () => {
  const h = makeHarness({ cfg: { slaac: true } });
  h.receive(raFrame({ routerLifetime: 30 }));
  assert.equal(h.ip6.icmp.sendEcho(ip6('2001:db8:99::1'), 1, 1, new Uint8Array(8)), true);
  h.advance(31_000);
  assert.equal(h.ip6.icmp.sendEcho(ip6('2001:db8:99::1'), 1, 1, new Uint8Array(8)), false);
});

test('RAs are ignored without slaac = true, and RAs from a non-link-local source or hop limit < 255 are invalid', () => {
  const h = makeHarness();
  h.receive(raFrame({ prefixes: [{ prefix: '2001:db8:1::', valid: 600, preferred: 600 }] }));
  assert.equal(h.drops['nd6_ra_ignored'], 1);
  const s = makeHarness({ cfg: { slaac: true } });
  s.receive(raFrame({ src: ip6('2001:db8::1'), prefixes: [{ prefix: '2001:db8:1::', valid: 600, preferred: 600 }] }));
  assert.equal(s.drops['nd6_ra_invalid'], 1);
  assert.equal(s.ip6.routes.list(s.clock.now()).filter((r) => r.prefix === '::/0').length, 0);
});

test('stable interface identifiers (RFC 7217) differ from EUI-64, repeat for the same prefix, and differ across prefixes', () => {
  const mk = () => makeHarness({ cfg: { slaac: true }, sysctl: { 'net.inet6.ip6.use_stableaddr': true }, seed: 42 });
  const h1 = mk(), h2 = mk();
  for (const h of [h1, h2]) {
    h.receive(raFrame({ prefixes: [{ prefix: '2001:db8:1::', valid: 600, preferred: 600 }, { prefix: '2001:db8:2::', valid: 600, preferred: 600 }] }));
    h.advance(3000);
  }
  const s1 = h1.ip6.addresses(1).filter((a) => a.origin === 'slaac').map((a) => a.addr);
  const s2 = h2.ip6.addresses(1).filter((a) => a.origin === 'slaac').map((a) => a.addr);
  assert.equal(s1.length, 2);
  assert.deepEqual(s1, s2, 'same secret, same prefix: same address');
  assert.ok(!s1.some((a) => a.endsWith('5eff:fe10:1')));
  assert.notEqual(s1[0]!.split(':').slice(-4).join(':'), s1[1]!.split(':').slice(-4).join(':'));
});

test('a configured gateway6 is the default route', () => {
  const h = makeHarness({ cfg: { addr6: '2001:db8::2/64', gateway6: '2001:db8::1' } });
  h.ip6.icmp.sendEcho(ip6('2001:db8:77::1'), 1, 1, new Uint8Array(8));
  const [e] = ofType(h.take(), Icmpv6Type.EchoRequest);
  assert.equal(e?.dst, '2001:db8:77::1');
  assert.equal(e?.dstMac, '02:00:5e:10:00:02', 'through the gateway');
});

test('bad addr6 and gateway6 values are refused with a clear error', () => {
  assert.throws(() => makeHarness({ cfg: { addr6: '2001:db8::zz/64' } }), /bad IPv6 address '2001:db8::zz\/64'/);
  assert.throws(() => makeHarness({ cfg: { addr6: '2001:db8::2/129' } }), /bad IPv6 address/);
  assert.throws(() => makeHarness({ cfg: { addr6: 'ff02::1/64' } }), /not a unicast address/);
  assert.throws(() => makeHarness({ cfg: { gateway6: 'nope' } }), /bad IPv6 gateway 'nope'/);
});
