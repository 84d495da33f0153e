// The timer wheel: far timers (beyond two revolutions) wait on a list and still fire on time;
// nextDeadline finds the earliest timer wherever it is; timers armed from a callback for a tick
// already walked are not left behind for a revolution.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Timer, TimerWheel } from '../../src/base/time.js';

test('a timer an hour ahead fires at its deadline, not a revolution early or late', () => {
  const w = new TimerWheel(1, 4096, 0);
  const fired: number[] = [];
  const t = new Timer((now) => fired.push(now));
  w.arm(t, 3_600_000);
  assert.equal(w.nextDeadline(), 3_600_000);
  for (let now = 0; now < 3_599_990; now += 997) w.advance(now);
  assert.deepEqual(fired, []);
  assert.equal(w.nextDeadline(), 3_600_000);
  w.advance(3_599_999);
  assert.deepEqual(fired, []);
  w.advance(3_600_000);
  assert.deepEqual(fired, [3_600_000]);
  assert.equal(w.size, 0);
  assert.equal(w.nextDeadline(), Infinity);
});

test('a long jump of the clock fires near and far timers that came due', () => {
  const w = new TimerWheel(1, 64, 0);
  const fired: string[] = [];
  const near = new Timer(() => fired.push('near'));
  const far = new Timer(() => fired.push('far'));
  const later = new Timer(() => fired.push('later'));
  w.arm(near, 10);
  w.arm(far, 1000);
  w.arm(later, 5000);
  w.advance(2000);
  assert.deepEqual(fired.sort(), ['far', 'near']);
  assert.equal(w.nextDeadline(), 5000);
  w.advance(5000);
  assert.deepEqual(fired.sort(), ['far', 'later', 'near']);
});

test('nextDeadline is the earliest of near and far timers, and moves on when that one is disarmed', () => {
  const w = new TimerWheel(1, 256, 0);
  const ts = [40, 200, 60_000, 7_000, 120_000].map((d) => { const t = new Timer(() => {}); w.arm(t, d); return t; });
  assert.equal(w.nextDeadline(), 40);
  w.disarm(ts[0]!);
  assert.equal(w.nextDeadline(), 200);
  w.disarm(ts[1]!);
  assert.equal(w.nextDeadline(), 7_000);
  w.disarm(ts[3]!);
  assert.equal(w.nextDeadline(), 60_000);
  w.disarm(ts[2]!);
  assert.equal(w.nextDeadline(), 120_000);
  // Re-arming a far timer near works, and the far list forgets it.
  w.arm(ts[4]!, 5);
  assert.equal(w.nextDeadline(), 5);
  w.advance(5);
  assert.equal(w.size, 0);
  assert.equal(w.nextDeadline(), Infinity);
});

test('thousands of far timers fire in deadline order as the clock walks', () => {
  const w = new TimerWheel(1, 1024, 0);
  const fired: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const d = 10_000 + ((i * 7919) % 50_000);
    w.arm(new Timer(() => fired.push(d)), d);
  }
  for (let now = 0; now <= 61_000; now += 1) w.advance(now);
  assert.equal(fired.length, 5000);
  for (let i = 1; i < fired.length; i++) assert.ok(fired[i - 1]! <= fired[i]!, `out of order at ${i}`);
});

test('a timer armed from a callback for the current tick fires on the next advance, not a revolution later', () => {
  const w = new TimerWheel(1, 4096, 0);
  const fired: number[] = [];
  const second = new Timer((now) => fired.push(now));
  const first = new Timer((now) => { fired.push(now); w.arm(second, now); });
  w.arm(first, 10);
  w.advance(10);
  assert.deepEqual(fired, [10]);
  assert.equal(w.nextDeadline(), 11);
  w.advance(11);
  assert.deepEqual(fired, [10, 11]);
});
