import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRandom32 } from '../../src/base/prng.js';
import { EphemeralPorts } from '../../src/stack/tcp/ports.js';
import { parseIpv4 } from '../../src/wire/addr.js';


const L = parseIpv4('198.18.0.2')!;
const R = parseIpv4('198.18.0.1')!;
const none = () => false;

test('selects ports inside the default range 49152-65535', () => {
  const p = new EphemeralPorts(createRandom32(1));
  for (let i = 0; i < 1000; i++) {
    const port = p.select(L, R, 80 + (i % 7), none);
    assert.ok(port >= 49152 && port <= 65535, `${port}`);
  }
});

test('successive connections to one destination take consecutive ports (Algorithm 3)', () => {
  const p = new EphemeralPorts(createRandom32(2), 1000, 1999);
  const a = p.select(L, R, 80, none);
  const b = p.select(L, R, 80, none);
  const c = p.select(L, R, 80, none);
  assert.equal((b - 1000) % 1000, (a - 1000 + 1) % 1000);
  assert.equal((c - 1000) % 1000, (a - 1000 + 2) % 1000);
});

test('different destinations start at different secret offsets', () => {
  const p = new EphemeralPorts(createRandom32(3));
  const q = new EphemeralPorts(createRandom32(3)); // same seed: same counter and key
  const a = p.select(L, R, 80, none);
  const b = q.select(L, R, 443, none);
  assert.notEqual(a, b);
  const other = new EphemeralPorts(createRandom32(4));
  assert.notEqual(other.select(L, R, 80, none), a);
});

test('skips ports in use and uses each port of the range before failing', () => {
  const p = new EphemeralPorts(createRandom32(5), 5000, 5009);
  const used = new Set<number>();
  const inUse = (port: number) => used.has(port);
  for (let i = 0; i < 10; i++) {
    const port = p.select(L, R, 80, inUse);
    assert.ok(port >= 5000 && port <= 5009);
    assert.ok(!used.has(port));
    used.add(port);
  }
  assert.equal(used.size, 10);
  assert.equal(p.select(L, R, 80, inUse), -1);
  used.delete(5003);
  assert.equal(p.select(L, R, 80, inUse), 5003);
});

test('setRange changes the range and rejects invalid ones', () => {
  const p = new EphemeralPorts(createRandom32(6));
  p.setRange(32768, 32769);
  for (let i = 0; i < 10; i++) {
    const port = p.select(L, R, 80, none);
    assert.ok(port === 32768 || port === 32769);
  }
  assert.throws(() => p.setRange(0, 10), RangeError);
  assert.throws(() => p.setRange(2000, 1000), RangeError);
  assert.throws(() => p.setRange(1000, 65536), RangeError);
  assert.equal(p.rangeFirst, 32768);
});
