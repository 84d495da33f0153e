import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, Csum, type PacketBuffer } from '../../src/base/pktbuf.js';
import { VirtualClock } from '../../src/base/time.js';
import { NO_OFFLOADS } from '../../src/base/device.js';
import { emptyDriverStats, type Driver, type DriverStats } from '../../src/driver/types.js';
import { FaultInjector } from '../../src/driver/fault.js';
import { completeChecksum } from '../../src/base/offload.js';
import { internetChecksum } from '../../src/wire/checksum.js';

/** A stand-in for a real driver (TAP): records what is transmitted, hands out queued frames. */
class FakeDriver implements Driver {
  readonly name = 'fake0';
  readonly mac = new Uint8Array([2, 0, 0, 0, 0, 1]);
  readonly mtu = 1500;
  readonly offloads = NO_OFFLOADS;
  readonly pool = new BufferPool();
  readonly sent: number[] = [];
  readonly rxQueue: PacketBuffer[] = [];
  flushes = 0;
  closed = false;
  transmit(buf: PacketBuffer): void { this.sent.push(buf.view.getUint32(buf.start + 14)); buf.release(); }
  flush(): void { this.flushes++; }
  rxBurst(out: PacketBuffer[], max: number): number {
    let n = 0;
    while (n < max && this.rxQueue.length) out[n++] = this.rxQueue.shift()!;
    return n;
  }
  onReadable(): void {}
  stats(): DriverStats { return emptyDriverStats(); }
  close(): void { this.closed = true; }
  inject(seq: number): void { this.rxQueue.push(mk(this.pool, seq)); }
}

function mk(pool: BufferPool, seq: number): PacketBuffer {
  const b = pool.alloc();
  const o = b.append(60);
  b.data.fill(0xff, o, o + 6);
  b.view.setUint16(o + 12, 0x88b5);
  b.view.setUint32(o + 14, seq);
  return b;
}

function take(d: Driver, max = 64): number[] {
  const out: PacketBuffer[] = [];
  const n = d.rxBurst(out, max);
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) { seqs.push(out[i]!.view.getUint32(out[i]!.start + 14)); out[i]!.release(); }
  return seqs;
}

test('tx delay: frames are held and handed to the inner driver by the first flush at or after their time', () => {
  const clock = new VirtualClock();
  const inner = new FakeDriver();
  const f = new FaultInjector(inner, { clock, tx: { delayMs: 5 } });
  const pool = new BufferPool();
  f.transmit(mk(pool, 1));
  f.flush();
  assert.deepEqual(inner.sent, []);
  assert.equal(f.nextEventTime(), 5);
  clock.set(5);
  f.flush();
  assert.deepEqual(inner.sent, [1]);
  assert.equal(pool.stats().inUse, 0);
});

test('without tx faults a frame goes straight through to the inner driver', () => {
  const clock = new VirtualClock();
  const inner = new FakeDriver();
  const f = new FaultInjector(inner, { clock, rx: { loss: 1 } });
  f.transmit(mk(new BufferPool(), 3));
  assert.deepEqual(inner.sent, [3]);
});

test('tx reorder with duplication: the inner driver sees later frames overtake and copies repeat', () => {
  const clock = new VirtualClock();
  const inner = new FakeDriver();
  const f = new FaultInjector(inner, { clock, seed: 5, tx: { reorder: 0.2, reorderDelayMs: 10.5, duplicate: 0.1 } });
  const pool = new BufferPool();
  for (let i = 0; i < 400; i++) { clock.set(i); f.transmit(mk(pool, i)); f.flush(); }
  // A tail of clean frames overtakes the last reordered ones too.
  f.setFaults({});
  for (let i = 400; i < 420; i++) { clock.set(i); f.transmit(mk(pool, i)); f.flush(); }
  clock.set(1000); f.flush();
  const st = f.stats().faults.tx;
  assert.equal(inner.sent.length, 420 + st.duplicated);
  assert.ok(st.reordered > 50 && st.reordered < 110, `reordered ${st.reordered}`);
  // A frame is late when a later one went first; its duplicate (right behind it) is not counted twice.
  const late = new Set<number>();
  let max = -1;
  for (const s of inner.sent) { if (s < max) late.add(s); else max = s; }
  assert.equal(late.size, st.reordered);
  assert.equal(pool.stats().inUse, 0);
});

test('rx faults: loss and duplication apply to frames the inner driver receives', () => {
  const clock = new VirtualClock();
  const inner = new FakeDriver();
  const f = new FaultInjector(inner, { clock, seed: 9, rx: { loss: 0.25, duplicate: 0.25 } });
  for (let i = 0; i < 2000; i++) inner.inject(i);
  const got: number[] = [];
  for (let k = 0; k < 200 && got.length < 4000; k++) {
    const s = take(f, 32);
    if (s.length === 0) break;
    got.push(...s);
  }
  const st = f.stats().faults.rx;
  assert.ok(st.dropped > 430 && st.dropped < 570, `dropped ${st.dropped}`);
  assert.equal(got.length, 2000 - st.dropped + st.duplicated);
  assert.equal(new Set(got).size, 2000 - st.dropped);
  assert.equal(inner.pool.stats().inUse, 0);
});

test('rx delay: a received frame is held until its time and then returned by rxBurst', () => {
  const clock = new VirtualClock();
  const inner = new FakeDriver();
  const f = new FaultInjector(inner, { clock, rx: { delayMs: 10 } });
  inner.inject(1);
  assert.deepEqual(take(f), []);
  assert.equal(f.stats().heldRx, 1);
  clock.set(9.9);
  assert.deepEqual(take(f), []);
  clock.set(10);
  inner.inject(2);
  assert.deepEqual(take(f), [1]);
  clock.set(20);
  assert.deepEqual(take(f), [2]);
});

test('tx corruption of a Csum.Partial frame completes the checksum first, so the damage is detectable', () => {
  const clock = new VirtualClock();
  const pool = new BufferPool();
  const b = pool.alloc();
  const o = b.append(14 + 28);
  b.view.setUint16(o + 12, 0x0800);
  // A UDP-like region at o+14 of 28 bytes with the checksum field at offset 6 holding 0.
  for (let i = 0; i < 28; i++) b.data[o + 14 + i] = i * 7;
  b.data[o + 20] = 0; b.data[o + 21] = 0;
  b.csum = Csum.Partial; b.csumStart = o + 14; b.csumOffset = 6;
  const c = b.clone();
  completeChecksum(c);
  assert.equal(c.csum, Csum.None);
  assert.equal(internetChecksum(c.data, o + 14, 28), 0, 'completed checksum verifies');
  c.release();
  let seen: Uint8Array | null = null;
  const inner = new FakeDriver();
  inner.transmit = (buf: PacketBuffer) => { seen = buf.bytes().slice(); assert.equal(buf.csum, Csum.None); buf.release(); };
  const f = new FaultInjector(inner, { clock, tx: { corrupt: 1, corruptFrom: 14 } });
  f.transmit(b);
  assert.ok(seen);
  assert.notEqual(internetChecksum(seen, 14, 28), 0, 'the flipped bit breaks the checksum');
  assert.equal(f.stats().faults.tx.corrupted, 1);
});

test('close() releases held frames and closes the inner driver', () => {
  const clock = new VirtualClock();
  const inner = new FakeDriver();
  const pool = new BufferPool();
  const f = new FaultInjector(inner, { clock, tx: { delayMs: 100 }, rx: { delayMs: 100 } });
  f.transmit(mk(pool, 1));
  inner.inject(2);
  take(f);
  f.close();
  assert.equal(pool.stats().inUse, 0);
  assert.equal(inner.pool.stats().inUse, 0);
  assert.equal(inner.closed, true);
});

test('real-time clock: a held transmit frame leaves on its own timer without any flush', async () => {
  const clock = { now: () => performance.now() };
  const inner = new FakeDriver();
  const f = new FaultInjector(inner, { clock, tx: { delayMs: 20 } });
  const t0 = clock.now();
  f.transmit(mk(new BufferPool(), 4));
  assert.deepEqual(inner.sent, []);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(inner.sent, [4]);
  assert.ok(inner.flushes >= 1);
  assert.ok(clock.now() - t0 >= 20);
  f.close();
});
