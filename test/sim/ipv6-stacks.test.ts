// Two stacks speaking IPv6 to each other on the memory wire (virtual clock, seeded faults):
// DAD, neighbour discovery, ping of every size, fragments both ways, and a duplicate address.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Simulation } from '../helpers/sim.js';
import { parseIpv6 } from '../../src/wire/addr.js';

const A6 = parseIpv6('2001:db8::1')!, B6 = parseIpv6('2001:db8::2')!;

function pingAll(sim: Simulation, from: ReturnType<Simulation['addHost']>, to: Uint8Array, sizes: number[], maxMs = 10_000): number[] {
  const got: number[] = [];
  from.stack.ip6.icmp.onEchoReply = (_src, _id, seq, payload) => {
    const n = sizes[seq]!;
    if (payload.length === n && payload.every((x, i) => x === (i & 0xff))) got.push(seq);
  };
  sizes.forEach((n, seq) => from.stack.ip6.icmp.sendEcho(to, 0x77, seq, Uint8Array.from({ length: n }, (_, i) => i & 0xff)));
  sim.runUntil(() => got.length === sizes.length, { maxMs });
  from.stack.ip6.icmp.onEchoReply = null;
  return got.sort((x, y) => x - y);
}

test('two stacks pass DAD, resolve each other and ping with 56, 1452 and 3000-byte payloads both ways', () => {
  const sim = new Simulation({ seed: 6 });
  const a = sim.addHost({ name: 'a', addr6: '2001:db8::1/64' });
  const b = sim.addHost({ name: 'b', addr6: '2001:db8::2/64' });
  sim.runUntil(() => false, { maxMs: 3000 });
  for (const h of [a, b]) assert.ok(h.stack.ip6.addresses(h.ifIndex).every((x) => x.state === 'preferred'), h.stack.describe());
  assert.deepEqual(pingAll(sim, a, B6, [56, 1452, 3000]), [0, 1, 2]);
  assert.deepEqual(pingAll(sim, b, A6, [56, 1452, 3000]), [0, 1, 2]);
  assert.ok(b.stack.ip6.stats.reassembled >= 1 && a.stack.ip6.stats.reassembled >= 1);
  assert.equal(a.stack.ip6.ndp.lookup(1, B6)?.state, 1);
});

test('pings survive 10% loss, duplication and reordering on the wire', () => {
  const faults = { loss: 0.1, duplicate: 0.05, reorder: 0.05 };
  const sim = new Simulation({ seed: 11 });
  const a = sim.addHost({ name: 'a', addr6: '2001:db8::1/64', faults });
  sim.addHost({ name: 'b', addr6: '2001:db8::2/64', faults });
  sim.runUntil(() => false, { maxMs: 3000 });
  let ok = 0;
  for (let round = 0; round < 20; round++) if (pingAll(sim, a, B6, [100], 2000).length === 1) ok++;
  assert.ok(ok >= 12, `${ok} of 20 pings answered`);
});

test('the second stack to claim an address sees the first defend it and marks its own copy duplicated', () => {
  const sim = new Simulation({ seed: 3 });
  const a = sim.addHost({ name: 'a', addr6: '2001:db8::9/64' });
  sim.runUntil(() => false, { maxMs: 3000 });
  const b = sim.addHost({ name: 'b', addr6: '2001:db8::9/64' });
  sim.runUntil(() => false, { maxMs: 3000 });
  assert.equal(a.stack.ip6.addresses(1).find((x) => x.addr === '2001:db8::9')?.state, 'preferred');
  assert.equal(b.stack.ip6.addresses(1).find((x) => x.addr === '2001:db8::9')?.state, 'duplicated');
  assert.equal(b.stack.drops['nd6_dad_duplicate'], 1);
});

test('stacks on different prefixes reach each other through gateway6 given as a link-local address', () => {
  const sim = new Simulation({ seed: 5 });
  // Link-local addresses are the modified EUI-64 of each MAC: 02:00:00:00:00:01 -> fe80::ff:fe00:1.
  const a = sim.addHost({ name: 'a', mac: '02:00:00:00:00:01', addr6: '2001:db8:1::1/64', gateway6: 'fe80::ff:fe00:2' });
  const b = sim.addHost({ name: 'b', mac: '02:00:00:00:00:02', addr6: '2001:db8:2::2/64', gateway6: 'fe80::ff:fe00:1' });
  sim.runUntil(() => false, { maxMs: 3000 });
  assert.ok(b.stack.ip6.addresses(1).some((x) => x.addr === 'fe80::ff:fe00:2' && x.state === 'preferred'));
  assert.deepEqual(pingAll(sim, a, parseIpv6('2001:db8:2::2')!, [64, 2000]), [0, 1]);
});
