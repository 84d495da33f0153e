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
