import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, Csum, type PacketBuffer } from '../../src/base/pktbuf.js';
import { VirtualClock } from '../../src/base/time.js';
import { MemoryWire, type MemoryPort } from '../../src/driver/memory.js';
import type { FaultConfig } from '../../src/driver/fault.js';
import { internetChecksum, sum16, fold } from '../../src/wire/checksum.js';
import { Stack } from '../../src/stack/stack.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';

const BCAST = new Uint8Array([255, 255, 255, 255, 255, 255]);

/** An Ethernet frame (ethertype 0x88b5, local experimental) whose payload starts with a u32 sequence number. */
function frame(pool: BufferPool, dst: Uint8Array, src: Uint8Array, seq: number, payloadLen = 46): PacketBuffer {
  const b = pool.alloc();
  const o = b.append(14 + payloadLen);
  b.data.set(dst, o);
  b.data.set(src, o + 6);
  b.view.setUint16(o + 12, 0x88b5);
  b.view.setUint32(o + 14, seq);
  for (let i = 4; i < payloadLen; i++) b.data[o + 14 + i] = (seq + i) & 0xff;
  return b;
}

interface Got { seq: number; t: number; bytes: Uint8Array }

/** Drains everything due on `port` at the clock's current time. */
function drain(port: MemoryPort, clock: VirtualClock, into: Got[] = []): Got[] {
  const out: PacketBuffer[] = [];
  let n: number;
  do {
    n = port.rxBurst(out, 32);
    for (let i = 0; i < n; i++) {
      const b = out[i]!;
      into.push({ seq: b.view.getUint32(b.start + 14), t: clock.now(), bytes: b.bytes().slice() });
      b.release();
    }
  } while (n === 32);
  return into;
}

/** Advances the clock event by event until nothing is pending, draining `ports`. */
function runAll(wire: MemoryWire, clock: VirtualClock, ports: MemoryPort[], got: Got[][]): void {
  for (let guard = 0; guard < 1_000_000; guard++) {
    ports.forEach((p, i) => drain(p, clock, got[i]));
    const t = wire.nextEventTime();
    if (t === Infinity) return;
    clock.set(t);
  }
  throw new Error('runAll did not settle');
}

function setup(faults: FaultConfig = {}, opts: { seed?: number; latencyMs?: number; bandwidthBps?: number; rxFaults?: FaultConfig } = {}) {
  const clock = new VirtualClock();
  const wire = new MemoryWire({ clock, seed: opts.seed ?? 1, latencyMs: opts.latencyMs, bandwidthBps: opts.bandwidthBps });
  const a = wire.createPort({ name: 'a', faults });
  const b = wire.createPort({ name: 'b', rxFaults: opts.rxFaults });
  const txPool = new BufferPool();
  return { clock, wire, a, b, txPool };
}

test('floods an unknown destination to every other port and never back to the sender', () => {
  const clock = new VirtualClock();
  const wire = new MemoryWire({ clock });
  const [a, b, c] = [wire.createPort(), wire.createPort(), wire.createPort()];
  const pool = new BufferPool();
  a.transmit(frame(pool, b.mac, a.mac, 1));
  assert.equal(drain(a, clock).length, 0);
  assert.deepEqual(drain(b, clock).map((g) => g.seq), [1]);
  assert.deepEqual(drain(c, clock).map((g) => g.seq), [1]);
  assert.equal(wire.stats().flooded, 1);
});

test('learns source MACs: once B has spoken, frames to B reach only B', () => {
  const clock = new VirtualClock();
  const wire = new MemoryWire({ clock });
  const [a, b, c] = [wire.createPort(), wire.createPort(), wire.createPort()];
  const pool = new BufferPool();
  b.transmit(frame(pool, a.mac, b.mac, 1)); // unknown a: flooded; b learned
  drain(a, clock); drain(c, clock);
  a.transmit(frame(pool, b.mac, a.mac, 2));
  assert.deepEqual(drain(b, clock).map((g) => g.seq), [2]);
  assert.equal(drain(c, clock).length, 0, 'C must not see unicast to a learned port');
  assert.deepEqual(wire.stats(), { unicast: 1, flooded: 1, filtered: 0, learned: 2 });
});

test('broadcast and multicast are flooded even when learned addresses exist', () => {
  const clock = new VirtualClock();
  const wire = new MemoryWire({ clock });
  const [a, b, c] = [wire.createPort(), wire.createPort(), wire.createPort()];
  const pool = new BufferPool();
  b.transmit(frame(pool, a.mac, b.mac, 0));
  c.transmit(frame(pool, a.mac, c.mac, 0));
  drain(a, clock); drain(b, clock); drain(c, clock);
  a.transmit(frame(pool, BCAST, a.mac, 1));
  a.transmit(frame(pool, new Uint8Array([0x01, 0x00, 0x5e, 0, 0, 1]), a.mac, 2));
  assert.deepEqual(drain(b, clock).map((g) => g.seq), [1, 2]);
  assert.deepEqual(drain(c, clock).map((g) => g.seq), [1, 2]);
});

test('a frame is receivable only at now + latency, with identical bytes in the receiver\'s own pool', () => {
  const { clock, a, b, txPool } = setup({}, { latencyMs: 5 });
  const f = frame(txPool, b.mac, a.mac, 7, 100);
  const sent = f.bytes().slice();
  a.transmit(f);
  assert.equal(txPool.stats().inUse, 0, 'sender buffer released once copied');
  assert.equal(b.pool.stats().inUse, 1);
  clock.set(4.999);
  assert.equal(drain(b, clock).length, 0);
  assert.equal(b.nextEventTime(), 5);
  clock.set(5);
  const got = drain(b, clock);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0]!.bytes, sent);
  assert.equal(b.pool.stats().inUse, 0);
});

function blast(faults: FaultConfig, n: number, opts: Parameters<typeof setup>[1] = {}, spacingMs = 1) {
  const s = setup(faults, opts);
  const got: Got[] = [];
  for (let i = 0; i < n; i++) {
    s.clock.set(i * spacingMs);
    drain(s.b, s.clock, got);
    s.a.transmit(frame(s.txPool, BCAST, s.a.mac, i));
  }
  runAll(s.wire, s.clock, [s.b], [got]);
  return { ...s, got };
}

test('loss 10%: about 10% of frames vanish, and the count matches stats.dropped', () => {
  const { got, a, b, txPool } = blast({ loss: 0.1 }, 10_000);
  const lost = 10_000 - got.length;
  assert.ok(lost > 900 && lost < 1100, `lost ${lost}`);
  assert.equal(a.stats().faults.tx.dropped, lost);
  assert.equal(txPool.stats().inUse, 0);
  assert.equal(b.pool.stats().inUse, 0);
});

test('duplicate 5%: about 5% of frames arrive twice, back to back', () => {
  const { got, a } = blast({ duplicate: 0.05 }, 10_000);
  const extra = got.length - 10_000;
  assert.ok(extra > 400 && extra < 600, `duplicates ${extra}`);
  assert.equal(a.stats().faults.tx.duplicated, extra);
  let adjacent = 0;
  for (let i = 1; i < got.length; i++) if (got[i]!.seq === got[i - 1]!.seq) adjacent++;
  assert.equal(adjacent, extra);
});

test('corrupt 2%: that share of frames differ from what was sent in exactly one bit past the Ethernet header', () => {
  const { got, a } = blast({ corrupt: 0.02 }, 5000);
  assert.equal(got.length, 5000);
  const pool = new BufferPool();
  let corrupted = 0;
  for (let k = 0; k < got.length; k++) {
    const g = got[k]!;
    // Nothing is lost or reordered here, so the k-th arrival is the k-th frame sent.
    const want = frame(pool, BCAST, a.mac, k);
    const w = want.bytes();
    let bits = 0, firstDiff = -1;
    for (let i = 0; i < w.length; i++) {
      const x = w[i]! ^ g.bytes[i]!;
      if (x) { bits += x.toString(2).replace(/0/g, '').length; if (firstDiff < 0) firstDiff = i; }
    }
    want.release();
    if (bits) {
      corrupted++;
      assert.equal(bits, 1);
      assert.ok(firstDiff >= 14, `corrupted byte ${firstDiff} inside the Ethernet header`);
    }
  }
  const counted = a.stats().faults.tx.corrupted;
  assert.ok(counted > 70 && counted < 130, `corrupted ${counted}`);
  assert.equal(corrupted, counted);
});

test('reorder 10%: reordered frames are overtaken by later ones; every late arrival is counted', () => {
  const { got, a } = blast({ reorder: 0.1, reorderDelayMs: 10 }, 5000);
  assert.equal(got.length, 5000);
  let maxSeen = -1, late = 0;
  for (const g of got) { if (g.seq < maxSeen) late++; else maxSeen = g.seq; }
  const counted = a.stats().faults.tx.reordered;
  assert.ok(counted > 400 && counted < 600, `reordered ${counted}`);
  assert.equal(late, counted);
});

test('delay + jitter: each frame arrives within [sent + delay, sent + delay + jitter)', () => {
  const s = setup({ delayMs: 20, jitterMs: 5 }, { latencyMs: 1 });
  const sentAt: number[] = [];
  const got: Got[] = [];
  // Step in 0.01 ms so arrival times are observed precisely; send one frame every 0.5 ms.
  for (let k = 0; k <= 20_000; k++) {
    s.clock.set(k / 100);
    if (k % 50 === 0 && sentAt.length < 200) {
      sentAt.push(s.clock.now());
      s.a.transmit(frame(s.txPool, BCAST, s.a.mac, sentAt.length - 1));
    }
    drain(s.b, s.clock, got);
  }
  assert.equal(got.length, 200);
  let spread = 0;
  for (const g of got) {
    const d = g.t - sentAt[g.seq]!;
    assert.ok(d >= 21 - 1e-9 && d < 26 + 0.011, `delay ${d}`);
    spread = Math.max(spread, d - 21);
  }
  assert.ok(spread > 4, 'jitter spreads arrivals over most of its range');
});

test('rate limit: back-to-back frames leave one serialization time apart (1000 B at 1 Mb/s = 8 ms)', () => {
  const s = setup({ rateBps: 1_000_000 });
  for (let i = 0; i < 5; i++) s.a.transmit(frame(s.txPool, BCAST, s.a.mac, i, 1000 - 14));
  const got: Got[] = [];
  runAll(s.wire, s.clock, [s.b], [got]);
  assert.deepEqual(got.map((g) => g.t), [8, 16, 24, 32, 40]);
  assert.deepEqual(got.map((g) => g.seq), [0, 1, 2, 3, 4]);
});

test('rate limit tail-drops beyond queueLimitBytes and counts rateDropped', () => {
  const s = setup({ rateBps: 1_000_000, queueLimitBytes: 3000 });
  for (let i = 0; i < 10; i++) s.a.transmit(frame(s.txPool, BCAST, s.a.mac, i, 1000 - 14));
  const got: Got[] = [];
  runAll(s.wire, s.clock, [s.b], [got]);
  assert.deepEqual(got.map((g) => g.seq), [0, 1, 2]);
  assert.equal(s.a.stats().faults.tx.rateDropped, 7);
  // Once the queue has drained, the link accepts frames again.
  s.a.transmit(frame(s.txPool, BCAST, s.a.mac, 10, 1000 - 14));
  runAll(s.wire, s.clock, [s.b], [got]);
  assert.equal(got.at(-1)!.seq, 10);
  assert.equal(got.at(-1)!.t, 32);
});

test('the wire bandwidth applies to every port unless its faults set rateBps', () => {
  const s = setup({}, { bandwidthBps: 8_000_000 });
  s.a.transmit(frame(s.txPool, BCAST, s.a.mac, 0, 1000 - 14));
  s.a.transmit(frame(s.txPool, BCAST, s.a.mac, 1, 1000 - 14));
  const got: Got[] = [];
  runAll(s.wire, s.clock, [s.b], [got]);
  assert.deepEqual(got.map((g) => g.t), [1, 2]);
});

test('a filter hook drops exactly the frames it is scripted to drop, on tx or rx', () => {
  const s = setup({ filter: (f) => (f[17]! % 3 === 0 ? 'drop' : 'pass') });
  const got: Got[] = [];
  for (let i = 0; i < 30; i++) s.a.transmit(frame(s.txPool, BCAST, s.a.mac, i));
  runAll(s.wire, s.clock, [s.b], [got]);
  assert.deepEqual(got.map((g) => g.seq), Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 3 !== 0));
  assert.equal(s.a.stats().faults.tx.filtered, 10);
  const dirs: string[] = [];
  s.b.setFaults(undefined, { filter: (_f, dir) => { dirs.push(dir); return 'drop'; } });
  s.a.transmit(frame(s.txPool, BCAST, s.a.mac, 100));
  runAll(s.wire, s.clock, [s.b], [got]);
  assert.equal(got.length, 20);
  assert.deepEqual(dirs, ['rx']);
  assert.equal(s.b.stats().faults.rx.filtered, 1);
});

test('receive faults on one port do not affect another port receiving the same flood', () => {
  const clock = new VirtualClock();
  const wire = new MemoryWire({ clock, seed: 3 });
  const a = wire.createPort();
  const b = wire.createPort({ rxFaults: { loss: 1 } });
  const c = wire.createPort();
  const pool = new BufferPool();
  for (let i = 0; i < 10; i++) a.transmit(frame(pool, BCAST, a.mac, i));
  assert.equal(drain(b, clock).length, 0);
  assert.equal(drain(c, clock).length, 10);
  assert.equal(b.stats().faults.rx.dropped, 10);
  assert.equal(b.pool.stats().inUse, 0);
});

function trace(seed: number): string {
  const s = setup({ loss: 0.05, duplicate: 0.05, reorder: 0.05, corrupt: 0.05, delayMs: 3, jitterMs: 4, rateBps: 10_000_000, queueLimitBytes: 8000 },
    { seed, latencyMs: 1, rxFaults: { loss: 0.02, jitterMs: 1 } });
  const got: Got[] = [];
  for (let i = 0; i < 500; i++) {
    s.clock.set(i * 0.3);
    drain(s.b, s.clock, got);
    s.a.transmit(frame(s.txPool, BCAST, s.a.mac, i, 46 + (i % 7) * 100));
  }
  runAll(s.wire, s.clock, [s.b], [got]);
  return got.map((g) => `${g.t.toFixed(6)}:${g.seq}:${Buffer.from(g.bytes).toString('base64')}`).join('\n');
}

test('determinism: the same seed gives an identical delivery sequence; another seed does not', () => {
  const one = trace(1234), two = trace(1234), other = trace(1235);
  assert.equal(one, two);
  assert.notEqual(one, other);
});

test('no buffer leaks: every pool is back to zero in use after a faulty run is drained', () => {
  const s = setup({ loss: 0.1, duplicate: 0.1, reorder: 0.1, corrupt: 0.1, rateBps: 1e6, queueLimitBytes: 5000 }, { rxFaults: { duplicate: 0.1 } });
  const got: Got[] = [];
  for (let i = 0; i < 1000; i++) s.a.transmit(frame(s.txPool, BCAST, s.a.mac, i));
  runAll(s.wire, s.clock, [s.b], [got]);
  assert.ok(got.length > 0);
  assert.equal(s.txPool.stats().inUse, 0);
  assert.equal(s.a.pool.stats().inUse, 0);
  assert.equal(s.b.pool.stats().inUse, 0);
});

test('closing a port frees its queued frames and stops traffic to it', () => {
  const { clock, a, b, txPool } = setup({}, { latencyMs: 10 });
  for (let i = 0; i < 5; i++) a.transmit(frame(txPool, BCAST, a.mac, i));
  assert.equal(b.pool.stats().inUse, 5);
  b.close();
  assert.equal(b.pool.stats().inUse, 0);
  a.transmit(frame(txPool, BCAST, a.mac, 9));
  clock.set(20);
  assert.equal(drain(b, clock).length, 0);
  assert.equal(txPool.stats().inUse, 0);
});

test('frames larger than MTU + Ethernet header are counted as tx errors and not delivered', () => {
  const { clock, a, b, txPool } = setup();
  a.transmit(frame(txPool, BCAST, a.mac, 1, 1500 + 4 + 1));
  a.transmit(frame(txPool, BCAST, a.mac, 2, 1500));
  assert.deepEqual(drain(b, clock).map((g) => g.seq), [2]);
  assert.equal(a.stats().txErrors, 1);
  assert.equal(a.stats().txPackets, 1);
});

test('the receive queue limit drops excess frames as rxDropped', () => {
  const clock = new VirtualClock();
  const wire = new MemoryWire({ clock, rxQueueLimit: 8 });
  const a = wire.createPort(), b = wire.createPort();
  const pool = new BufferPool();
  for (let i = 0; i < 12; i++) a.transmit(frame(pool, BCAST, a.mac, i));
  assert.equal(drain(b, clock).length, 8);
  assert.equal(b.stats().rxDropped, 4);
});

test('with txCsum offload the wire completes a Csum.Partial UDP checksum as a NIC would', () => {
  const clock = new VirtualClock();
  const wire = new MemoryWire({ clock });
  const a = wire.createPort({ offloads: { txCsum: true } }), b = wire.createPort();
  assert.equal(a.offloads.txCsum, true);
  const pool = new BufferPool();
  const f = pool.alloc();
  const o = f.append(14 + 20 + 8 + 4);
  f.data.set(BCAST, o); f.data.set(a.mac, o + 6); f.view.setUint16(o + 12, 0x0800);
  const ip = o + 14;
  f.data.set([0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2], ip);
  f.view.setUint16(ip + 10, internetChecksum(f.data, ip, 20));
  const udp = ip + 20;
  f.view.setUint16(udp, 1000); f.view.setUint16(udp + 2, 2000); f.view.setUint16(udp + 4, 12);
  f.data.set([1, 2, 3, 4], udp + 8);
  // Pseudo-header sum, folded, not inverted: what a stack leaves for the device.
  const pseudo = fold(sum16(f.data, ip + 12, 8) + 17 + 12);
  f.view.setUint16(udp + 6, pseudo);
  f.csum = Csum.Partial; f.csumStart = udp; f.csumOffset = 6;
  a.transmit(f);
  const [g] = drain(b, clock);
  const bytes = g!.bytes;
  const check = internetChecksum(bytes, 34, 12, sum16(bytes, 26, 8) + 17 + 12);
  assert.equal(check, 0, 'UDP checksum verifies over the pseudo-header');
  assert.notEqual((bytes[40]! << 8) | bytes[41]!, pseudo);
});

test('real-time clock: onReadable fires once the latency has passed, not before', async () => {
  const clock = { now: () => performance.now() };
  const wire = new MemoryWire({ clock, latencyMs: 30 });
  const a = wire.createPort(), b = wire.createPort();
  assert.equal(wire.realtime, true);
  const pool = new BufferPool();
  const start = clock.now();
  const woke = new Promise<number>((resolve) => b.onReadable(() => resolve(clock.now())));
  a.transmit(frame(pool, BCAST, a.mac, 1));
  const out: PacketBuffer[] = [];
  const early = b.rxBurst(out, 8);
  const checkedAt = clock.now();
  // Nothing before the latency has passed (on a loaded machine this line may run later than that).
  if (checkedAt - start < 29) assert.equal(early, 0, `a frame after ${checkedAt - start} ms`);
  const at = await woke;
  assert.ok(at - start >= 29, `woke after ${at - start} ms`);
  assert.equal(early + b.rxBurst(out, early === 0 ? 8 : 0), 1);
  out[0]!.release();
  b.onReadable(null);
  a.close(); b.close();
});

test('real time: two stacks in one process joined by the wire ping each other through their run loops', async () => {
  const wire = new MemoryWire({ clock: realClock, latencyMs: 1 });
  const loops: RunLoop[] = [];
  const stacks = ['198.18.0.1/24', '198.18.0.2/24'].map((addr, i) => {
    const stack = new Stack({ clock: realClock, name: `rt${i}` });
    const port = wire.createPort({ name: `rt${i}` });
    const ifIndex = stack.addInterface(port, { addr });
    const loop = new RunLoop({ stack, poll: 'interrupt' });
    loop.addPort(port, ifIndex);
    loops.push(loop);
    return stack;
  });
  try {
    for (const l of loops) l.start();
    const replies: number[] = [];
    const done = new Promise<void>((resolve) => {
      stacks[0]!.icmp.onEchoReply = (_src, _id, seq) => { replies.push(seq); if (replies.length === 3) resolve(); };
    });
    const t0 = performance.now();
    for (let i = 1; i <= 3; i++) stacks[0]!.icmp.sendEcho(0xc6120002, 5, i, new Uint8Array(16));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([done, new Promise((_r, reject) => { timer = setTimeout(() => reject(new Error(`replies ${replies}`)), 2000); })]);
    clearTimeout(timer);
    assert.deepEqual(replies, [1, 2, 3]);
    // ARP request + reply, then echo + reply: at least four one-way latencies.
    assert.ok(performance.now() - t0 >= 4 - 0.5);
  } finally {
    for (const l of loops) l.stop();
  }
});
