// IPv6 multicast for udp6 sockets between two stacks on the memory wire (virtual clock): a
// socket's join goes through MLDv2 (Mld.setFilter), the group's datagrams reach the joined
// sockets, a source-specific join receives only from its source, and a leave stops delivery.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Simulation } from '../helpers/sim.js';
import { formatIpv4, formatIpv6, parseIpv6 } from '../../src/wire/addr.js';
import { UdpFamily, type UdpSocket } from '../../src/stack/udp.js';
import { NetError } from '../../src/base/errors.js';

const A6 = parseIpv6('2001:db8:10::1')!, A6b = parseIpv6('2001:db8:10::9')!;
const G = parseIpv6('ff15::1:2:3')!, G2 = parseIpv6('ff15::1:2:5')!;
const ANY = new Uint8Array(16);

function listen(s: UdpSocket): string[] {
  const got: string[] = [];
  s.onMessage = (data, addr, _port, addr6) => got.push(`${new TextDecoder().decode(data)} from ${addr6 ? formatIpv6(addr6) : formatIpv4(addr)}`);
  return got;
}

const code = (fn: () => void): string => { try { fn(); return 'ok'; } catch (e) { return (e as NetError).code; } };

test('udp6 multicast: joined sockets receive the group (MLDv2 EXCLUDE state), a source-specific join only its source, nothing after the leave', () => {
  const sim = new Simulation({ seed: 7 });
  const a = sim.addHost({ name: 'a', mac: '02:00:00:00:10:01', addr: '198.18.10.1/24', addr6: '2001:db8:10::1/64' });
  const b = sim.addHost({ name: 'b', mac: '02:00:00:00:10:02', addr: '198.18.10.2/24', addr6: '2001:db8:10::2/64' });
  a.stack.ip6.addAddress(1, '2001:db8:10::9/64');
  sim.runUntil(() => false, { maxMs: 3000 }); // DAD

  const s1 = b.stack.udp.open(UdpFamily.V6), s2 = b.stack.udp.open(UdpFamily.V6);
  for (const s of [s1, s2]) { s.reuseAddr = true; s.bind6(ANY, 0, 5402); }
  const got1 = listen(s1), got2 = listen(s2);
  s1.addMembership6(G, 0);
  s2.addSourceMembership6(G2, 0, A6, 0);
  const groups = () => b.stack.ip6.mld.groups(1).map((g) => `${formatIpv6(g.group)} ${g.mode} ${g.sources.map((x) => formatIpv6(x)).join(',')}`);
  assert.ok(groups().includes('ff15::1:2:3 exclude '), groups().join('; '));
  assert.ok(groups().includes('ff15::1:2:5 include 2001:db8:10::1'), groups().join('; '));

  // Linux's errors.
  assert.equal(code(() => s1.addMembership6(G, 0)), 'EADDRINUSE');
  assert.equal(code(() => s1.addMembership6(A6, 0)), 'EINVAL');
  assert.equal(code(() => s1.dropMembership6(G2, 0)), 'EADDRNOTAVAIL');
  assert.equal(code(() => s2.addSourceMembership6(G2, 0, A6, 0)), 'EADDRNOTAVAIL');
  assert.equal(code(() => b.stack.udp.open().addMembership6(G, 0)), 'EINVAL');
  assert.equal(code(() => s1.addMembership6(G2, 0, 99)), 'ENODEV');

  const fromA = a.stack.udp.open(UdpFamily.V6);
  const fromA2 = a.stack.udp.open(UdpFamily.V6);
  fromA2.bind6(A6b, 0, 0);
  const te = new TextEncoder();
  fromA.send6(te.encode('g1'), G, 0, 5402);
  fromA2.send6(te.encode('x'), G2, 0, 5402); // another source: filtered
  fromA.send6(te.encode('y'), G2, 0, 5402);
  assert.ok(sim.runUntil(() => got1.length >= 1 && got2.length >= 1, { maxMs: 2000 }), sim.describe());
  sim.runUntil(() => false, { maxMs: 200 });
  // s2 has not joined ff15::1:2:3 and so hears it as Linux's IPV6_MULTICAST_ALL socket would;
  // s1 has not joined ff15::1:2:5 but the link filter lets only 2001:db8:10::1 in.
  assert.deepEqual(got1, ['g1 from 2001:db8:10::1', 'y from 2001:db8:10::1']);
  assert.deepEqual(got2, ['g1 from 2001:db8:10::1', 'y from 2001:db8:10::1']);
  assert.ok((b.stack.drops['ip6_not_member'] ?? 0) >= 1, 'the other source is dropped at IPv6 input');

  s1.dropMembership6(G, 0);
  assert.ok(!groups().some((g) => g.startsWith('ff15::1:2:3 ')), groups().join('; '));
  fromA.send6(te.encode('g2'), G, 0, 5402);
  sim.runUntil(() => false, { maxMs: 500 });
  assert.equal(got1.length, 2, 'nothing after the leave');
  // Closing the last member leaves ff15::1:2:5 too.
  s2.close();
  assert.ok(!groups().some((g) => g.startsWith('ff15::1:2:5 ')), groups().join('; '));
});

test('udp6 multicast loopback (IPV6_MULTICAST_LOOP): a member socket on the sending stack gets a copy unless loopback is off; hop limit 0 stays on the host; a fragmented datagram loops whole', () => {
  const sim = new Simulation({ seed: 11 });
  const a = sim.addHost({ name: 'a', mac: '02:00:00:00:10:11', addr: '198.18.10.11/24', addr6: '2001:db8:10::11/64' });
  const b = sim.addHost({ name: 'b', mac: '02:00:00:00:10:12', addr: '198.18.10.12/24', addr6: '2001:db8:10::12/64' });
  sim.runUntil(() => false, { maxMs: 3000 }); // DAD

  // A member on the sender's own stack, one on the other stack, and a non-member socket on the
  // sender's stack bound to another port (must hear nothing).
  const local = a.stack.udp.open(UdpFamily.V6); local.reuseAddr = true; local.bind6(ANY, 0, 5410); local.addMembership6(G, 0);
  const remote = b.stack.udp.open(UdpFamily.V6); remote.bind6(ANY, 0, 5410); remote.addMembership6(G, 0);
  const other = a.stack.udp.open(UdpFamily.V6); other.bind6(ANY, 0, 5411);
  const gotL = listen(local), gotR = listen(remote), gotO = listen(other);
  const hops: number[] = [];
  // What a transmits, as a capture on its interface sees it.
  const chunks: Uint8Array[] = [];
  const writer = sim.capture((c) => chunks.push(c), { hosts: ['a'], rx: false, tx: true });
  const onWire = (): Uint8Array[] => {
    writer.flush();
    const all = Buffer.concat(chunks);
    const out: Uint8Array[] = [];
    for (let o = 24; o + 16 <= all.length;) {
      const n = all.readUInt32LE(o + 8);
      const f = all.subarray(o + 16, o + 16 + n);
      // IPv6 (86dd) carrying UDP, or a fragment header (44).
      if (f[12] === 0x86 && f[13] === 0xdd && (f[14 + 6] === 17 || f[14 + 6] === 44)) out.push(f);
      o += 16 + n;
    }
    return out;
  };
  const tx = a.stack.udp.open(UdpFamily.V6);
  tx.mcastTtl = 5;
  const te = new TextEncoder();
  const before = onWire().length;
  tx.send6(te.encode('one'), G, 0, 5410);
  assert.ok(sim.runUntil(() => gotL.length >= 1 && gotR.length >= 1, { maxMs: 1000 }), sim.describe());
  assert.deepEqual(gotL, ['one from 2001:db8:10::11']);
  assert.deepEqual(gotR, ['one from 2001:db8:10::11']);
  const sent = onWire().slice(before);
  assert.equal(sent.length, 1, 'one datagram on the wire');
  hops.push(sent[0]![14 + 7]!);
  assert.deepEqual(hops, [5], 'IPV6_MULTICAST_HOPS on the wire');

  // Loopback off: only the other stack hears it.
  tx.mcastLoop = false;
  tx.send6(te.encode('two'), G, 0, 5410);
  assert.ok(sim.runUntil(() => gotR.length >= 2, { maxMs: 1000 }), sim.describe());
  sim.runUntil(() => false, { maxMs: 100 });
  assert.deepEqual(gotL, ['one from 2001:db8:10::11']);

  // Hop limit 0 with loopback: the copy only, nothing on the wire.
  tx.mcastLoop = true; tx.mcastTtl = 0;
  const n0 = onWire().length;
  tx.send6(te.encode('three'), G, 0, 5410);
  assert.ok(sim.runUntil(() => gotL.length >= 2, { maxMs: 1000 }), sim.describe());
  sim.runUntil(() => false, { maxMs: 100 });
  assert.deepEqual(gotL, ['one from 2001:db8:10::11', 'three from 2001:db8:10::11']);
  assert.equal(onWire().length, n0, 'hop limit 0 never leaves the host');
  assert.equal(gotR.length, 2);

  // A datagram larger than the MTU is fragmented on the wire and reassembled from the looped fragments.
  tx.mcastTtl = 1;
  const big = new Uint8Array(3000).fill(0x61);
  tx.send6(big, G, 0, 5410);
  assert.ok(sim.runUntil(() => gotL.length >= 3 && gotR.length >= 3, { maxMs: 2000 }), sim.describe());
  assert.equal(gotL[2], `${'a'.repeat(3000)} from 2001:db8:10::11`);
  assert.equal(gotR[2], `${'a'.repeat(3000)} from 2001:db8:10::11`);
  assert.deepEqual(gotO, []);
});
