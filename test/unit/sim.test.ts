// The simulation harness itself, driven with scripted hosts (the Stack gets its own tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import type { Driver } from '../../src/driver/types.js';
import { readPcap } from '../../src/wire/pcap.js';
import { Simulation, type SimHost } from '../helpers/sim.js';

const BCAST = new Uint8Array([255, 255, 255, 255, 255, 255]);

/** Replies to every frame by swapping the MACs and bumping the counter at byte 14. */
class Echo implements SimHost {
  received = 0;
  constructor(private readonly dev: Driver) {}
  input(_ifIndex: number, buf: PacketBuffer): void {
    this.received++;
    const d = buf.data, s = buf.start;
    const hops = buf.view.getUint32(s + 14);
    d.copyWithin(s, s + 6, s + 12);
    d.set(this.dev.mac, s + 6);
    buf.view.setUint32(s + 14, hops + 1);
    this.dev.transmit(buf);
  }
  poll(): number { return Infinity; }
}

/** Sends one frame every `periodMs` from its timer; records replies. */
class Pinger implements SimHost {
  next: number;
  sent = 0;
  replies: { at: number; hops: number }[] = [];
  constructor(private readonly dev: Driver, private readonly sim: Simulation, readonly periodMs: number, readonly count: number) {
    this.next = sim.now;
  }
  input(_ifIndex: number, buf: PacketBuffer): void {
    this.replies.push({ at: this.sim.now, hops: buf.view.getUint32(buf.start + 14) });
    buf.release();
  }
  poll(now: number): number {
    if (this.sent >= this.count) return Infinity;
    if (now >= this.next) {
      const b = this.dev.pool.alloc();
      const o = b.append(60);
      b.data.set(BCAST, o); b.data.set(this.dev.mac, o + 6);
      b.view.setUint16(o + 12, 0x88b5);
      b.view.setUint32(o + 14, 0);
      this.dev.transmit(b);
      this.sent++;
      this.next += this.periodMs;
    }
    return this.sent >= this.count ? Infinity : this.next;
  }
}

function pingPong(seed: number, faults = {}) {
  const sim = new Simulation({ seed, latencyMs: 5 });
  const p = sim.attach({ name: 'pinger', faults }, (dev) => ({ host: new Pinger(dev, sim, 100, 20) }));
  sim.attach({ name: 'echo' }, (dev) => ({ host: new Echo(dev) }));
  return { sim, pinger: p.host };
}

test('jumps the virtual clock from event to event: 20 pings 100 ms apart over 5 ms latency', () => {
  const { sim, pinger } = pingPong(1);
  const ok = sim.runUntil(() => pinger.replies.length === 20, { maxMs: 10_000 });
  assert.ok(ok, sim.describe());
  assert.deepEqual(pinger.replies.map((r) => r.at), Array.from({ length: 20 }, (_, i) => i * 100 + 10));
  assert.ok(pinger.replies.every((r) => r.hops === 1));
  assert.ok(sim.steps < 200, `took ${sim.steps} steps`);
});

test('runUntil returns false at maxMs without hanging when the predicate never holds', () => {
  const { sim } = pingPong(1);
  const t0 = Date.now();
  assert.equal(sim.runUntil(() => false, { maxMs: 60_000 }), false);
  assert.equal(sim.lastStop, 'timeout');
  assert.equal(sim.now, 60_000);
  assert.ok(Date.now() - t0 < 2000);
});

test('runUntil stops a host that asks to run "now" forever (stalled), and honours maxSteps', () => {
  const sim = new Simulation({ seed: 1 });
  sim.attach({ name: 'spin' }, () => ({ host: { input: (_i: number, b: PacketBuffer) => b.release(), poll: (now: number) => now } }));
  assert.equal(sim.runUntil(() => false, { maxMs: 1000, maxSteps: 500 }), false);
  assert.equal(sim.lastStop, 'steps');
  assert.equal(sim.runUntil(() => false, { maxMs: 1000 }), false);
  assert.equal(sim.lastStop, 'stalled');
});

test('run(ms) advances the clock by exactly ms and processes what falls inside', () => {
  const { sim, pinger } = pingPong(1);
  sim.run(250);
  assert.equal(sim.now, 250);
  assert.equal(pinger.sent, 3);
  assert.equal(pinger.replies.length, 3);
});

test('the same seed replays the same faulty run; the description names the seed', () => {
  const faults = { loss: 0.2, jitterMs: 30, duplicate: 0.1 };
  const runs = [7, 7, 8].map((seed) => {
    const { sim, pinger } = pingPong(seed, faults);
    sim.run(5000);
    return { replies: JSON.stringify(pinger.replies), text: sim.describe() };
  });
  assert.equal(runs[0]!.replies, runs[1]!.replies);
  assert.notEqual(runs[0]!.replies, runs[2]!.replies);
  assert.match(runs[0]!.text, /seed=7 .*TSTACK_SEED=7/);
});

test('Simulation.seeds gives a range, or just TSTACK_SEED to replay one', () => {
  const saved = process.env['TSTACK_SEED'];
  try {
    delete process.env['TSTACK_SEED'];
    assert.deepEqual(Simulation.seeds(3, 10), [10, 11, 12]);
    process.env['TSTACK_SEED'] = '42';
    assert.deepEqual(Simulation.seeds(500), [42]);
  } finally {
    if (saved === undefined) delete process.env['TSTACK_SEED']; else process.env['TSTACK_SEED'] = saved;
  }
});

test('capture() records each transmitted frame once, including hosts added after it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tstack-sim-'));
  try {
    const path = join(dir, 'sim.pcap');
    const sim = new Simulation({ seed: 1, latencyMs: 1 });
    sim.capture(path);
    let pinger!: Pinger;
    sim.attach({ name: 'p' }, (dev) => ({ host: (pinger = new Pinger(dev, sim, 10, 3)) }));
    sim.attach({ name: 'e' }, (dev) => ({ host: new Echo(dev) }));
    assert.ok(sim.runUntil(() => pinger.replies.length === 3, { maxMs: 1000 }), sim.describe());
    sim.close();
    const r = readPcap(readFileSync(path));
    assert.equal(r.records.length, 6);
    assert.deepEqual(r.records.map((x) => x.timestampMs), [0, 1, 10, 11, 20, 21]);
    assert.deepEqual(r.records.map((x) => x.data[17]), [0, 1, 0, 1, 0, 1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('addHost puts a real Stack on the wire with its sysctls, and two stacks answer pings', () => {
  const sim = new Simulation({ seed: 1, latencyMs: 2 });
  const a = sim.addHost({ name: 'a', addr: '198.18.0.1/24', sysctl: { 'net.inet.udp.recvspace': 12345 } });
  const b = sim.addHost({ name: 'b', addr: '198.18.0.2/24' });
  assert.equal(a.ifIndex, 1);
  assert.equal(a.stack.name, 'a');
  assert.equal(a.stack.clock, sim.clock);
  assert.equal(a.stack.sysctl.int('net.inet.udp.recvspace'), 12345);
  assert.notEqual(b.stack.sysctl.int('net.inet.udp.recvspace'), 12345);
  const replies: number[] = [];
  a.stack.icmp.onEchoReply = (_src, _id, seq) => replies.push(seq);
  a.stack.icmp.sendEcho(0xc6120002, 1, 1, new Uint8Array(32));
  assert.ok(sim.runUntil(() => replies.length === 1, { maxMs: 1000 }), sim.describe());
  sim.close();
});

function stackTrace(seed: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  const sim = new Simulation({ seed, latencyMs: 1 });
  sim.capture((c) => chunks.push(c), { hosts: ['a'] });
  const faults = { loss: 0.1, duplicate: 0.1, reorder: 0.2, jitterMs: 3 };
  const a = sim.addHost({ name: 'a', addr: '198.18.0.1/24', faults });
  sim.addHost({ name: 'b', addr: '198.18.0.2/24', faults });
  for (let i = 0; i < 30; i++) a.stack.icmp.sendEcho(0xc6120002, 9, i, new Uint8Array(64).fill(i));
  sim.run(3000);
  for (let i = 30; i < 60; i++) a.stack.icmp.sendEcho(0xc6120002, 9, i, new Uint8Array(64).fill(i));
  sim.run(3000);
  sim.close();
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}

test('two stacks under loss, duplication, reordering and jitter: the same seed gives a byte-identical capture', () => {
  const one = stackTrace(77), two = stackTrace(77), other = stackTrace(78);
  assert.ok(readPcap(one).records.length > 60);
  assert.deepEqual(one, two);
  assert.notDeepEqual(one, other);
});
