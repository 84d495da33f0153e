// The TCP receive buffer's out-of-order handling: ranges merge, in-order arrival absorbs them,
// and bytes already queued for a sequence number are kept when a later segment overlaps them
// with different bytes (as Linux does), so a sender cannot rewrite queued data.
import test from 'node:test';
import assert from 'node:assert/strict';
import { RecvBuffer, RingStore } from '../../src/stack/tcp/buffers.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b ? new TextDecoder().decode(b) : '');

test('overlapping out-of-order segments keep the bytes queued first; in-order data then absorbs them', () => {
  const rb = new RecvBuffer(1024, 16, new RingStore());
  const base = 1000;
  assert.equal(rb.insert(base, base + 4, enc('BBBB'), 0, 4), 0);
  assert.equal(rb.insert(base, base + 8, enc('CCCCCC'), 0, 6), 0);
  assert.equal(rb.insert(base, base + 12, enc('XXDDDD'), 0, 6), 0); // [12,14) already holds CC
  assert.equal(rb.oooCount, 1, 'one merged range [4, 18)');
  assert.equal(rb.insert(base, base, enc('AAAA'), 0, 4), 18);
  assert.equal(dec(rb.read(100)), 'AAAABBBBCCCCCCDDDD');
});

test('an out-of-order segment spanning a gap between queued ranges fills only the gap', () => {
  const rb = new RecvBuffer(1024, 16, new RingStore());
  const base = 0xfffffff0; // across the sequence-number wrap
  rb.insert(base, (base + 2) >>> 0, enc('bb'), 0, 2);
  rb.insert(base, (base + 6) >>> 0, enc('dd'), 0, 2);
  rb.insert(base, (base + 1) >>> 0, enc('XXcccXX'), 0, 7); // covers [1, 8): fills 1, 4-5, 8
  assert.equal(rb.insert(base, base, enc('a'), 0, 1), 8);
  assert.equal(dec(rb.read(100)), 'aXbbccdd');
});
