import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng, createRandom, hashSeed } from '../../src/base/prng.js';

test('the same seed gives the same sequence; another seed a different one', () => {
  const a = new Prng(42), b = new Prng(42), c = new Prng(43);
  const sa = Array.from({ length: 16 }, () => a.u32());
  const sb = Array.from({ length: 16 }, () => b.u32());
  const sc = Array.from({ length: 16 }, () => c.u32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  for (const v of sa) assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
});

test('seed 1 gives the xoshiro128** sequence of an independent reference implementation', () => {
  // Values from a separate Python xoshiro128** with the same splitmix32 seeding. A change
  // here changes every recorded simulation seed's replay.
  const p = new Prng(1);
  assert.deepEqual([p.u32(), p.u32(), p.u32()], [2442144158, 3238099751, 3819917871]);
});

test('next() is uniform in [0, 1): mean and bucket counts within tolerance', () => {
  const p = new Prng(7);
  const buckets = new Array<number>(10).fill(0);
  let sum = 0;
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const x = p.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
    buckets[Math.floor(x * 10)]!++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  for (const b of buckets) assert.ok(Math.abs(b - n / 10) < n / 100, `bucket ${b}`);
});

test('int(lo, hi) covers both bounds and nothing outside', () => {
  const p = new Prng(3);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const v = p.int(-2, 3);
    assert.ok(v >= -2 && v <= 3 && Number.isInteger(v));
    seen.add(v);
  }
  assert.deepEqual([...seen].sort((x, y) => x - y), [-2, -1, 0, 1, 2, 3]);
  assert.equal(p.int(5, 5), 5);
});

test('fork() gives a reproducible stream independent of later draws on the parent', () => {
  const a = new Prng(9), b = new Prng(9);
  const fa = a.fork(), fb = b.fork();
  a.u32(); a.u32(); // extra draws on the parent do not touch the fork
  assert.deepEqual([fa.u32(), fa.u32()], [fb.u32(), fb.u32()]);
  assert.notEqual(new Prng(9).fork().u32(), new Prng(9).u32());
});

test('string seeds hash deterministically; createRandom yields [0,1) for Stack', () => {
  assert.equal(hashSeed('tcp-17'), hashSeed('tcp-17'));
  assert.notEqual(hashSeed('tcp-17'), hashSeed('tcp-18'));
  assert.equal(new Prng('x').u32(), new Prng('x').u32());
  const r1 = createRandom(5), r2 = createRandom(5);
  for (let i = 0; i < 10; i++) {
    const v = r1();
    assert.equal(v, r2());
    assert.ok(v >= 0 && v < 1);
  }
});

test('chance(p) hits about p of the time and draws nothing for p = 0 or 1', () => {
  const p = new Prng(11);
  let hits = 0;
  for (let i = 0; i < 20_000; i++) if (p.chance(0.2)) hits++;
  assert.ok(Math.abs(hits / 20_000 - 0.2) < 0.01, `rate ${hits / 20_000}`);
  const a = new Prng(12), b = new Prng(12);
  assert.equal(a.chance(0), false);
  assert.equal(a.chance(1), true);
  assert.equal(a.u32(), b.u32());
});
