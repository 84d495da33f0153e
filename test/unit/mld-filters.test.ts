// MLDv2 source filters (RFC 3810 §4.2, §6): a socket-level filter set through Mld.setFilter
// merges with the stack's own joins, is announced with ALLOW/BLOCK/TO_IN/TO_EX records (with
// sources), filters IPv6 input by source, and answers group-and-source-specific queries. This
// is the engine half; udp6 sockets join through it (test/sim/udp6-multicast.test.ts).
import test from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv6 } from '../../src/wire/addr.js';
import { Icmpv6Type } from '../../src/wire/icmpv6.js';
import { Ipv6Next } from '../../src/wire/ipv6.js';
import { FilterMode6, MldRecord } from '../../src/stack/ip/mld.js';
import { PEER_LL, icmp6, ip6, ipv6Frame, makeHarness, type Sent } from '../helpers/ipv6-harness.js';

const G = ip6('ff15::1:2:3');
const S1 = ip6('2001:db8::1'), S2 = ip6('2001:db8::7');

/** The records of an MLDv2 report: [type, group, sources...]. */
function records(f: Sent): string[][] {
  const b = f.bytes, o = f.l4;
  const out: string[][] = [];
  let p = o + 8;
  for (let n = (b[o + 6]! << 8) | b[o + 7]!; n > 0; n--) {
    const ns = (b[p + 2]! << 8) | b[p + 3]!;
    const r = [String(b[p]), formatIpv6(b, p + 4)];
    for (let i = 0; i < ns; i++) r.push(formatIpv6(b, p + 20 + 16 * i));
    out.push(r);
    p += 20 + 16 * ns;
  }
  return out;
}
const reports = (fs: Sent[]) => fs.filter((f) => f.icmpType === Icmpv6Type.MldV2Report).flatMap(records).filter((r) => r[1] === 'ff15::1:2:3');

test('MLDv2: a source-specific filter reports ALLOW(S), passes only S; an any-source owner turns it into TO_EX({})', () => {
  const h = makeHarness();
  const link = h.ip6.link(1)!;
  const a = {}, b = {};
  h.ip6.mld.setFilter(link, G, 0, a, { mode: FilterMode6.Include, sources: [S1] });
  assert.deepEqual(reports(h.take()), [[String(MldRecord.AllowNew), 'ff15::1:2:3', '2001:db8::1']]);
  h.advance(3000);
  assert.deepEqual(reports(h.take()), [[String(MldRecord.AllowNew), 'ff15::1:2:3', '2001:db8::1']], 'retransmitted once');
  // A UDP datagram (next header 17) from another source is filtered at IPv6 input.
  const before = h.drops['ip6_not_member'] ?? 0;
  h.receive(ipv6Frame(S2, G, Ipv6Next.UDP, new Uint8Array(16)));
  assert.equal(h.drops['ip6_not_member'], before + 1, 'another source is filtered at IPv6 input');
  assert.ok(h.ip6.mld.accepts(link, concat(G, S1), 0, 16));
  assert.ok(!h.ip6.mld.accepts(link, concat(G, S2), 0, 16));
  h.ip6.mld.setFilter(link, G, 0, b, { mode: FilterMode6.Exclude, sources: [] });
  assert.deepEqual(reports(h.take()), [[String(MldRecord.ToExclude), 'ff15::1:2:3']]);
  assert.deepEqual(h.ip6.mld.groups(1).filter((g) => formatIpv6(g.group) === 'ff15::1:2:3').map((g) => g.mode), ['exclude']);
  h.advance(3000); h.take();
  // Both leave: TO_IN({}) and the group is gone.
  h.ip6.mld.setFilter(link, G, 0, b, null);
  assert.deepEqual(reports(h.take()), [[String(MldRecord.ToInclude), 'ff15::1:2:3', '2001:db8::1']], 'back to INCLUDE(S1)');
  h.ip6.mld.setFilter(link, G, 0, a, null);
  h.advance(3000);
  // INCLUDE(S1) → INCLUDE({}): BLOCK(S1) (§6.1's table).
  const last = reports(h.take());
  assert.deepEqual(last.at(-1), [String(MldRecord.BlockOld), 'ff15::1:2:3', '2001:db8::1']);
  assert.equal(link.hasGroup(G, 0), false);
});

test('MLDv2: a group-and-source-specific query is answered with IS_IN(A*Q) in INCLUDE mode; a general query lists the filter', () => {
  const h = makeHarness();
  const link = h.ip6.link(1)!;
  h.ip6.mld.setFilter(link, G, 0, {}, { mode: FilterMode6.Include, sources: [S1] });
  h.advance(3000); h.take();
  const q = new Uint8Array(28 + 32);
  q[0] = Icmpv6Type.MldQuery; q[4] = 0x03; q[5] = 0xe8;
  q.set(G, 8); q[27] = 2; q.set(S1, 28); q.set(S2, 44);
  h.receive(ipv6Frame(PEER_LL, G, Ipv6Next.ICMPv6, icmp6(PEER_LL, G, q), { hopLimit: 1 }));
  h.advance(1000);
  assert.deepEqual(reports(h.take()), [[String(MldRecord.IsInclude), 'ff15::1:2:3', '2001:db8::1']]);
  const g = new Uint8Array(28);
  g[0] = Icmpv6Type.MldQuery; g[4] = 0x03; g[5] = 0xe8;
  const all = ip6('ff02::1');
  h.receive(ipv6Frame(PEER_LL, all, Ipv6Next.ICMPv6, icmp6(PEER_LL, all, g), { hopLimit: 1 }));
  h.advance(1000);
  assert.deepEqual(reports(h.take()), [[String(MldRecord.IsInclude), 'ff15::1:2:3', '2001:db8::1']]);
});

function concat(a: Uint8Array, b: Uint8Array): Uint8Array { const c = new Uint8Array(a.length + b.length); c.set(a); c.set(b, a.length); return c; }
