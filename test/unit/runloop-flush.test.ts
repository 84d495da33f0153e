// The run loop's transmit flush waits for what the received frames made the application do in
// process.nextTick callbacks and promise jobs, so it leaves in the same batch (node:http sends
// a `Connection: close` response from the frame's callback and the FIN from a nextTick chain).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { emptyDriverStats, type Driver, type DriverStats } from '../../src/driver/types.js';
import { NO_OFFLOADS } from '../../src/base/device.js';
import { RunLoop, realClock, type LoopStack } from '../../src/runtime/loop.js';
import type { PollMode } from '../../src/runtime/config.js';

/** Records each flush as the list of frame tags (first byte) it pushed. */
class BatchDriver implements Driver {
  readonly name = 'batch0';
  readonly mac = new Uint8Array([2, 0, 0, 0, 0, 2]);
  readonly mtu = 1500;
  readonly offloads = NO_OFFLOADS;
  readonly pool = new BufferPool();
  readonly rxQueue: PacketBuffer[] = [];
  readable: (() => void) | null = null;
  private queued: number[] = [];
  readonly batches: number[][] = [];
  transmit(buf: PacketBuffer): void { this.queued.push(buf.data[buf.start]!); buf.release(); }
  rxBurst(out: PacketBuffer[], max: number): number {
    let n = 0;
    while (n < max && this.rxQueue.length) out[n++] = this.rxQueue.shift()!;
    return n;
  }
  flush(): void { if (this.queued.length) { this.batches.push(this.queued); this.queued = []; } }
  onReadable(cb: (() => void) | null): void { this.readable = cb; }
  stats(): DriverStats { return emptyDriverStats(); }
  close(): void {}
  frame(tag: number): PacketBuffer { const b = this.pool.alloc(); b.append(60); b.data[b.start] = tag; return b; }
  receive(): void { this.rxQueue.push(this.frame(0)); this.readable?.(); }
}

/**
 * For each received frame, "the application" answers: tag 1 at once (inside input), tag 2 in a
 * nextTick, tag 3 in a nextTick queued by that nextTick, tag 4 in a promise job.
 */
class AppStack implements LoopStack {
  readonly clock = realClock;
  onOutput: (() => void) | null = null;
  constructor(private readonly drv: BatchDriver) {}
  private send(tag: number): void { this.drv.transmit(this.drv.frame(tag)); this.onOutput?.(); }
  input(_ifIndex: number, buf: PacketBuffer): void {
    buf.release();
    this.send(1);
    process.nextTick(() => { this.send(2); process.nextTick(() => this.send(3)); });
    void Promise.resolve().then(() => this.send(4));
  }
  poll(): number { return Infinity; }
}

const turns = async (n = 5) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

describe('RunLoop transmit flush', () => {
  for (const mode of ['interrupt', 'adaptive', 'busy'] as PollMode[]) {
    // A readable report arrives from the event loop (a libuv poll callback), never from inside
    // a microtask: model that with setImmediate.
    const wake = mode === 'busy' ? 'the next spin' : 'the readable callback';
    test(`${mode}: frames the application queues in nextTick callbacks and promise jobs leave in one batch after what ${wake} queued`, async () => {
      const drv = new BatchDriver();
      const loop = new RunLoop({ stack: new AppStack(drv), poll: mode, spinIterations: 2 });
      loop.addPort(drv, 1);
      loop.start();
      try {
        await turns();
        setImmediate(() => drv.receive());
        await turns(10);
        // Without readiness reports (busy) the frame's iteration waits for the application's
        // callbacks; with them, what the stack queued inside input() leaves from the callback at
        // once (an echo reply, an ACK), and the rest in the flush of the iteration behind it.
        assert.deepEqual(drv.batches, mode === 'busy' ? [[1, 2, 3, 4]] : [[1], [2, 3, 4]]);
      } finally {
        loop.stop();
      }
    });
  }

  test('interrupt: the readable callback receives and hands the stack\'s own reply to the driver before it returns', async () => {
    const drv = new BatchDriver();
    const loop = new RunLoop({ stack: new AppStack(drv), poll: 'interrupt' });
    loop.addPort(drv, 1);
    loop.start();
    try {
      await turns();
      const seen = await new Promise<number[][]>((resolve) => setImmediate(() => {
        drv.receive();
        // No setImmediate hop in between: the frame is in, and what input() queued is flushed.
        resolve(drv.batches.map((b) => [...b]));
      }));
      assert.deepEqual(seen, [[1]]);
      assert.equal(loop.stats().readableWakeups, 1);
      assert.equal(drv.rxQueue.length, 0);
    } finally {
      loop.stop();
    }
  });

  test('iterate() driven by hand still flushes before it returns', () => {
    const drv = new BatchDriver();
    const loop = new RunLoop({ stack: new AppStack(drv), poll: 'interrupt' });
    loop.addPort(drv, 1);
    drv.rxQueue.push(drv.frame(0));
    assert.equal(loop.iterate(), 1);
    // Only what the application did synchronously exists yet; it is flushed.
    assert.deepEqual(drv.batches, [[1]]);
  });

  test('stop() between the iteration and its deferred flush flushes once; the deferred flush then does nothing', async () => {
    const drv = new BatchDriver();
    let loop: RunLoop | null = null;
    const stack = new AppStack(drv);
    const input = stack.input.bind(stack);
    // Queued before the application's nextTick, so stop() runs before frames 2, 3 and 4 exist.
    stack.input = (i, b) => { process.nextTick(() => loop!.stop()); input(i, b); };
    loop = new RunLoop({ stack, poll: 'interrupt' });
    loop.addPort(drv, 1);
    loop.start();
    await turns();
    setImmediate(() => drv.receive());
    await turns(10);
    // Frame 1 left from the readable callback; stop() ran before 2, 3 and 4 existed.
    assert.deepEqual(drv.batches, [[1]]);
  });
});
