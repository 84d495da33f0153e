import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seqAdd, seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMax, seqMin } from '../../src/stack/tcp/seq.js';

test('orders sequence numbers across the 2^32 wrap', () => {
  assert.equal(seqLt(0xfffffff0, 0x10), true);
  assert.equal(seqGt(0x10, 0xfffffff0), true);
  assert.equal(seqLe(0xfffffff0, 0xfffffff0), true);
  assert.equal(seqGe(0xfffffff0, 0xfffffff0), true);
  assert.equal(seqLt(5, 5), false);
  assert.equal(seqGt(5, 5), false);
  assert.equal(seqLt(1, 2), true);
  assert.equal(seqLe(2, 1), false);
  assert.equal(seqGe(1, 2), false);
});

test('treats values less than 2^31 apart as ordered, 2^31 + 1 apart as wrapped', () => {
  assert.equal(seqLt(0, 0x7fffffff), true);
  assert.equal(seqLt(0, 0x80000001), false); // 0x80000001 is 2^31 - 1 behind 0
  assert.equal(seqGt(0, 0x80000001), true);
});

test('seqDiff is the signed distance and seqAdd wraps to u32', () => {
  assert.equal(seqDiff(0x10, 0xfffffff0), 0x20);
  assert.equal(seqDiff(0xfffffff0, 0x10), -0x20);
  assert.equal(seqDiff(7, 7), 0);
  assert.equal(seqAdd(0xffffffff, 1), 0);
  assert.equal(seqAdd(0xfffffff0, 0x20), 0x10);
  assert.equal(seqAdd(0x10, -0x20), 0xfffffff0);
  assert.equal(seqAdd(0, 0), 0);
});

test('seqMax and seqMin pick by sequence order, not numeric order', () => {
  assert.equal(seqMax(0xfffffff0, 0x10), 0x10);
  assert.equal(seqMin(0xfffffff0, 0x10), 0xfffffff0);
  assert.equal(seqMax(3, 9), 9);
  assert.equal(seqMin(3, 9), 3);
});

test('seqInRange is lo <= x < hi, including ranges that wrap', () => {
  assert.equal(seqInRange(100, 100, 200), true);
  assert.equal(seqInRange(199, 100, 200), true);
  assert.equal(seqInRange(200, 100, 200), false);
  assert.equal(seqInRange(99, 100, 200), false);
  assert.equal(seqInRange(0xfffffffe, 0xfffffff0, 0x10), true);
  assert.equal(seqInRange(0x0f, 0xfffffff0, 0x10), true);
  assert.equal(seqInRange(0x10, 0xfffffff0, 0x10), false);
  assert.equal(seqInRange(5, 5, 5), false); // empty window holds nothing
});
