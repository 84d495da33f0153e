import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { emptyDriverStats, type Driver, type DriverStats } from '../../src/driver/types.js';
import { NO_OFFLOADS } from '../../src/base/device.js';
import { RunLoop, realClock, type LoopStack } from '../../src/runtime/loop.js';
import type { PollMode } from '../../src/runtime/config.js';

/** A driver whose receive queue the test fills, recording what the loop does with it. */
class FakeDriver implements Driver {
  readonly name = 'fake0';
  readonly mac = new Uint8Array([2, 0, 0, 0, 0, 1]);
  readonly mtu = 1500;
  readonly offloads = NO_OFFLOADS;
  readonly pool = new BufferPool();
  readonly rxQueue: PacketBuffer[] = [];
  readable: (() => void) | null = null;
  readableRegistrations = 0;
  flushes = 0;
  closes = 0;
  rxBursts = 0;
  transmit(buf: PacketBuffer): void { buf.release(); }
  rxBurst(out: PacketBuffer[], max: number): number {
    this.rxBursts++;
    let n = 0;
    while (n < max && this.rxQueue.length) out[n++] = this.rxQueue.shift()!;
    return n;
  }
  flush(): void { this.flushes++; }
  onReadable(cb: (() => void) | null): void { this.readable = cb; if (cb) this.readableRegistrations++; }
  stats(): DriverStats { return emptyDriverStats(); }
  close(): void { this.closes++; }
  /** Queues `n` frames and, like a real device, signals readiness. */
  receive(n: number): void {
    for (let i = 0; i < n; i++) { const b = this.pool.alloc(); b.append(60); b.data[b.start] = i & 255; this.rxQueue.push(b); }
    this.readable?.();
  }
}

/** A driver with a receive ring the loop can watch (Driver.rxReady); `land` runs at a given look. */
class RingDriver extends FakeDriver {
  looks = 0;
  landAt = -1;
  onLook: (() => void) | null = null;
  rxReady(): boolean {
    this.onLook?.();
    if (++this.looks === this.landAt) { const b = this.pool.alloc(); b.append(60); this.rxQueue.push(b); }
    return this.rxQueue.length > 0;
  }
}

class FakeStack implements LoopStack {
  readonly clock = realClock;
  inputs: number[] = [];
  polls: number[] = [];
  /** What poll() returns: the stack's next deadline. */
  deadline = Infinity;
  onOutput: (() => void) | null = null;
  input(ifIndex: number, buf: PacketBuffer): void { this.inputs.push(ifIndex); buf.release(); }
  poll(now: number): number {
    this.polls.push(now);
    if (now >= this.deadline) this.deadline = Infinity;
    return this.deadline;
  }
}

function setup(poll: PollMode, extra: { spinIterations?: number; burst?: number } = {}) {
  const stack = new FakeStack();
  const driver = new FakeDriver();
  const loop = new RunLoop({ stack, poll, ...extra });
  loop.addPort(driver, 3);
  started.push(loop);
  return { stack, driver, loop };
}

/** Loops the tests made: stopped after each test, so a failed assertion cannot leave one running (and the file never exit). */
const started: RunLoop[] = [];
afterEach(() => { for (const l of started.splice(0)) l.stop(); });

/** Waits (up to 1 s) until `cond` holds; timing tests stay robust on a loaded machine. */
async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 1000;
  while (!cond() && Date.now() < end) await sleep(2);
}

/** Lets the event loop turn a few times (setImmediate-scheduled iterations run). */
const turns = async (n = 5) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

describe('RunLoop', () => {
  test('interrupt: a readable wake-up delivers the frames to stack.input on the port\'s ifIndex, then flushes', async () => {
    const { stack, driver, loop } = setup('interrupt');
    loop.start();
    await turns();
    const base = loop.stats().iterations;
    driver.receive(5);
    await turns();
    assert.deepEqual(stack.inputs, [3, 3, 3, 3, 3]);
    assert.equal(driver.pool.stats().inUse, 0);
    assert.ok(driver.flushes >= base + 1);
    assert.equal(loop.stats().readableWakeups, 1);
    loop.stop();
  });

  test('interrupt: never spins when idle', async () => {
    const { driver, loop } = setup('interrupt');
    loop.start();
    await turns();
    const before = loop.stats().iterations;
    const bursts = driver.rxBursts;
    await sleep(40);
    assert.equal(loop.stats().iterations, before);
    assert.equal(driver.rxBursts, bursts);
    loop.stop();
  });

  test('interrupt: sleeps until the stack\'s next deadline and wakes once for it', async () => {
    const { stack, loop } = setup('interrupt');
    stack.deadline = realClock.now() + 25;
    const target = stack.deadline;
    loop.start();
    await until(() => stack.polls.some((t) => t >= target));
    await sleep(20);
    const late = stack.polls.filter((t) => t >= target);
    assert.equal(late.length, 1, `polls after the deadline: ${late.length}`);
    assert.ok(late[0]! - target < 100, `woke ${late[0]! - target} ms late`);
    // One wake-up for the deadline; a setTimeout can fire a fraction of a millisecond before a
    // deadline read on another clock, and then the loop re-arms once: never more.
    assert.ok(loop.stats().timerWakeups <= 2, `timer wake-ups: ${loop.stats().timerWakeups}`);
    loop.stop();
  });

  test('interrupt: a deadline that moves earlier re-arms the timer', async () => {
    const { stack, driver, loop } = setup('interrupt');
    stack.deadline = realClock.now() + 1000;
    loop.start();
    await turns();
    stack.deadline = realClock.now() + 15;
    const target = stack.deadline;
    driver.receive(1); // an iteration sees the earlier deadline
    await until(() => stack.polls.some((t) => t >= target));
    assert.ok(stack.polls.some((t) => t >= target && t - target < 100));
    loop.stop();
  });

  test('a full burst is followed at once by another, without waiting for a wake-up', async () => {
    const { stack, driver, loop } = setup('interrupt', { burst: 16 });
    loop.start();
    await turns();
    driver.receive(100);
    await turns(12);
    assert.equal(stack.inputs.length, 100);
    assert.equal(loop.stats().readableWakeups, 1);
    loop.stop();
  });

  test('adaptive: spins a fixed number of idle iterations after traffic, then sleeps', async () => {
    const { driver, loop } = setup('adaptive', { spinIterations: 8 });
    loop.start();
    await turns(20);
    const idle = loop.stats().iterations;
    // The start iteration counts as activity-free: it should have spun at most spinIterations.
    assert.ok(idle <= 1 + 8, `iterations while idle: ${idle}`);
    driver.receive(2);
    await turns(30);
    const after = loop.stats().iterations;
    assert.equal(after - idle, 2 + 8, 'the iteration in the readable callback, the one scheduled behind it, then 8 spins');
    await sleep(30);
    assert.equal(loop.stats().iterations, after, 'then sleeps');
    loop.stop();
  });

  test('adaptive with busyPollUs: spins while the last traffic is younger than the budget, then sleeps on readiness', async () => {
    const clock = { t: 1000, now() { return this.t; } };
    const stack = new FakeStack();
    const driver = new FakeDriver();
    const loop = new RunLoop({ stack, clock, poll: 'adaptive', busyPollUs: 500 });
    loop.addPort(driver, 3);
    loop.start();
    await turns(5);
    assert.equal(loop.stats().iterations, 1, 'no traffic yet: the start iteration only, then asleep');
    driver.receive(2);
    await turns(40);
    const spun = loop.stats().iterations;
    // The clock has not moved: within the budget every turn runs an iteration (well past the
    // default spinIterations-free count, which would be 1 + 64 only with the iteration budget).
    assert.ok(spun > 20, `iterations while the budget lasts: ${spun}`);
    clock.t += 0.499;
    await turns(5);
    assert.ok(loop.stats().iterations > spun, 'still spinning 499 µs after the traffic');
    clock.t += 0.002;
    await turns(3);
    const stopped = loop.stats().iterations;
    await turns(20);
    assert.equal(loop.stats().iterations, stopped, 'asleep once the 500 µs budget is spent');
    driver.receive(1);
    await turns(3);
    assert.ok(loop.stats().iterations > stopped, 'a readable wake-up starts it again');
    loop.stop();
    assert.throws(() => new RunLoop({ stack, poll: 'adaptive', busyPollUs: -1 }), /busyPollUs/);
  });

  test('busy: keeps iterating with no traffic and registers no wake-up', async () => {
    const { driver, loop } = setup('busy');
    loop.start();
    // Spinning shows as iterations piling up with no traffic; allow for a starved CPU.
    const t0 = Date.now();
    while (loop.stats().iterations <= 20 && Date.now() - t0 < 3000) await sleep(5);
    assert.ok(loop.stats().iterations > 20, `iterations: ${loop.stats().iterations}`);
    assert.equal(driver.readableRegistrations, 0);
    loop.stop();
  });

  test('busy: between iterations that found nothing it watches the rings, and a frame that lands is input at once', async () => {
    const stack = new FakeStack();
    const driver = new RingDriver();
    const loop = new RunLoop({ stack, poll: 'busy', spinSliceUs: 50_000 });
    loop.addPort(driver, 3);
    started.push(loop);
    let inputAt = -1;
    const input = stack.input.bind(stack);
    stack.input = (i, b) => { inputAt = loop.stats().iterations; input(i, b); };
    loop.start();
    await turns(3);
    const before = loop.stats().iterations;
    // The frame lands while the next iteration watches the ring (no readable report, as a
    // kernel writing the ring of a busy-polled socket sends none).
    driver.landAt = driver.looks + 1000;
    await until(() => stack.inputs.length === 1);
    assert.equal(stack.inputs.length, 1);
    // The iteration count goes up at the end of an iteration: this is the first one after `before`.
    assert.equal(inputAt, before, 'received by the iteration that watched, not one event-loop turn later');
    assert.ok(driver.looks >= driver.landAt, `looks: ${driver.looks}`);
    assert.equal(driver.readableRegistrations, 0);
  });

  test('busy: the watch ends at the stack\'s next deadline and at the slice, so timers and the event loop still run', async () => {
    // A clock that moves 1 µs per look at the ring: where each watch ended is exact.
    const clock = { t: 1000, now() { return this.t; } };
    const stack = new FakeStack();
    const driver = new RingDriver();
    driver.onLook = () => { clock.t += 0.001; };
    const loop = new RunLoop({ stack, clock, poll: 'busy', spinSliceUs: 100_000 });
    loop.addPort(driver, 3);
    started.push(loop);
    stack.deadline = 1020;
    loop.start();
    await until(() => stack.polls.length >= 3);
    loop.stop();
    const [first, second, third] = stack.polls.map((t) => t - 1000);
    assert.equal(first, 0, 'the first iteration does not watch (its deadline is not known yet)');
    assert.ok(second! >= 20 && second! < 20.1, `the watch ended at the 20 ms deadline: ${second}`);
    assert.ok(third! - second! >= 100 && third! - second! < 100.1, `then at the end of the 100 ms slice: ${third! - second!}`);
    assert.throws(() => new RunLoop({ stack, poll: 'busy', spinSliceUs: 100_001 }), /spinSliceUs/);
  });

  test('the rings are not watched with spinSliceUs 0, in adaptive without busyPollUs, or when a driver has no rxReady', async () => {
    for (const [poll, extra] of [['busy', { spinSliceUs: 0 }], ['adaptive', {}]] as const) {
      const stack = new FakeStack();
      const driver = new RingDriver();
      const loop = new RunLoop({ stack, poll, ...extra });
      loop.addPort(driver, 3);
      started.push(loop);
      loop.start();
      driver.receive(1);
      await turns(30);
      assert.equal(driver.looks, 0, `${poll} ${JSON.stringify(extra)}`);
      loop.stop();
    }
    const stack = new FakeStack();
    const ring = new RingDriver();
    const loop = new RunLoop({ stack, poll: 'busy' });
    loop.addPort(ring, 3);
    loop.addPort(new FakeDriver(), 4);
    started.push(loop);
    loop.start();
    await turns(30);
    assert.equal(ring.looks, 0, 'one port without rxReady: spin by iterations');
    assert.ok(loop.stats().iterations > 20);
  });

  test('kick() coalesces: many kicks in one tick run one iteration that flushes', async () => {
    const { stack, driver, loop } = setup('interrupt');
    loop.start();
    await turns();
    const it = loop.stats().iterations;
    const fl = driver.flushes;
    // The stack calls onOutput when application code queues frames.
    assert.equal(typeof stack.onOutput, 'function');
    for (let i = 0; i < 10; i++) stack.onOutput!();
    await turns();
    assert.equal(loop.stats().iterations, it + 1);
    assert.equal(driver.flushes, fl + 1);
    loop.stop();
  });

  test('stop() flushes, unregisters, closes each driver once, and nothing runs afterwards', async () => {
    const { stack, driver, loop } = setup('adaptive');
    loop.start();
    await turns();
    assert.ok(driver.readable);
    loop.stop();
    loop.stop();
    assert.equal(driver.closes, 1);
    assert.equal(driver.readable, null);
    assert.equal(stack.onOutput, null);
    const it = loop.stats().iterations;
    driver.receive(1);
    loop.kick();
    await sleep(10);
    assert.equal(loop.stats().iterations, it);
    assert.equal(loop.isRunning, false);
    driver.rxQueue.forEach((b) => b.release());
  });

  test('iterate() can be driven by hand without start()', () => {
    const { stack, driver, loop } = setup('interrupt');
    driver.receive(3);
    assert.equal(loop.iterate(), 3);
    assert.equal(stack.inputs.length, 3);
    assert.equal(driver.flushes, 1);
    assert.equal(stack.polls.length, 1);
  });
});
