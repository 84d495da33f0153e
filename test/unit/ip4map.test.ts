// Ip4Map (src/stack/neighbor/ip4map.ts), the ARP cache's typed index: the same answers as a Map
// over a long random mix of inserts, updates and deletes (growth and backward-shift deletion
// included), and lookups that allocate no key.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Ip4Map } from '../../src/stack/neighbor/ip4map.js';
import { prng } from '../helpers/tcp-harness.js';

test('Ip4Map agrees with a Map over 200,000 random operations on a small key space', () => {
  const rnd = prng(99);
  const m = new Ip4Map<number>(4, 12345);
  const ref = new Map<string, number>();
  for (let i = 0; i < 200_000; i++) {
    const r = rnd();
    const ifIndex = 1 + (r & 3);
    // Addresses across the whole u32 range (high bit set too), few enough to collide and repeat.
    const ip = ((rnd() % 3000) * 0x9e3779b1) >>> 0;
    const k = `${ifIndex}/${ip}`;
    const op = (r >>> 8) % 3;
    if (op === 0) { m.set(ifIndex, ip, i); ref.set(k, i); }
    else if (op === 1) assert.equal(m.delete(ifIndex, ip), ref.delete(k));
    else assert.equal(m.get(ifIndex, ip), ref.get(k));
    if (i % 10_000 === 0) assert.equal(m.size, ref.size);
  }
  assert.equal(m.size, ref.size);
  for (const [k, v] of ref) {
    const [a, b] = k.split('/').map(Number);
    assert.equal(m.get(a!, b!), v);
  }
  assert.throws(() => m.set(0, 1, 1), RangeError);
});
