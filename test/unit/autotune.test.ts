// Receive buffer autotuning (src/stack/tcp/autotune.ts) driven directly: arrivals of a given
// rate in bursts, with receiver-side RTT samples, and the buffer capacity it ends with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rcvAutotune, type AutotuneTcb } from '../../src/stack/tcp/autotune.js';

const KB = 1024;
const MB = 1024 * KB;

/** A TCB with the fields autotuning reads; the ring is a capacity only. `handshakeRtt` is the srtt of the handshake. */
function fakeTcb(handshakeRtt: number): AutotuneTcb & { bytesReceived: number } {
  const rcvBuf = { capacity: 256 * KB, grow(c: number) { if (c > this.capacity) this.capacity = c; } };
  return {
    rcvBufMax: 6 * MB, sndBufMax: 4 * MB, stats: null, bytesReceived: 0,
    rtt: { hasSample: true, srtt: handshakeRtt }, rcvMss: 1448, rcvBuf, sndBuf: { capacity: 256 * KB },
    cc: { cwnd: 0 }, flightSize: 0, maxSndWnd: 0,
  } as unknown as AutotuneTcb & { bytesReceived: number };
}

/**
 * `ms` of arrivals: every `stepMs` a burst of `rate(window) * stepMs` bytes in 64 KiB segments,
 * all at the same instant (one receive batch), each carrying an RTT sample of `sampleMs()`.
 */
function drive(tcb: ReturnType<typeof fakeTcb>, ms: number, stepMs: number, rate: (window: number) => number, sampleMs: () => number): void {
  for (let now = 0; now < ms; now += stepMs) {
    let burst = rate(tcb.rcvBuf.capacity) * stepMs;
    while (burst > 0) {
      const n = Math.min(burst, 64 * KB);
      tcb.bytesReceived += n;
      burst -= n;
      rcvAutotune(tcb, sampleMs(), now);
    }
  }
}

test('a path limited by the CPU, not the window, keeps a small ring however bursty its arrivals', () => {
  // The memory wire: 3.5 GB/s whatever the window, in bursts of one window every loop
  // iteration; the millisecond TSecr samples are 0 or 1 as the iterations straddle ticks.
  const tcb = fakeTcb(3); // a handshake timed on a cold start
  let i = 0;
  drive(tcb, 2000, 0.3, () => 3.5e6, () => (i++ % 3 === 0 ? 1 : 0));
  assert.ok(tcb.rcvBuf.capacity <= 512 * KB, `capacity ${tcb.rcvBuf.capacity}`);
});

test('a window-limited long path grows the ring until the link, not the window, is the limit', () => {
  // 40 ms RTT, 25 MB/s link (BDP 1 MB): the sender moves one window per round trip until the
  // link is full.
  const tcb = fakeTcb(40);
  drive(tcb, 4000, 40, (w) => Math.min(w / 40, 25e3), () => 40);
  assert.ok(tcb.rcvBuf.capacity >= 2 * MB && tcb.rcvBuf.capacity <= 4 * MB, `capacity ${tcb.rcvBuf.capacity}`);
});

test('growth is at most twofold per measurement and stops at recvbuf_max', () => {
  const tcb = fakeTcb(40);
  const seen: number[] = [];
  for (let now = 0, prev = tcb.rcvBuf.capacity; now < 2000; now += 40) {
    const burst = tcb.rcvBuf.capacity; // window-limited, and the link never fills
    tcb.bytesReceived += burst;
    rcvAutotune(tcb, 40, now);
    if (tcb.rcvBuf.capacity !== prev) { seen.push(tcb.rcvBuf.capacity / prev); prev = tcb.rcvBuf.capacity; }
  }
  assert.ok(seen.every((r) => r <= 2), `growth steps ${seen.join(', ')}`);
  assert.equal(tcb.rcvBuf.capacity, 6 * MB);
});

test('the receiver measures the round trip itself: a slow handshake does not size the ring for ever', () => {
  // A 3 s handshake RTT (a loaded loop) and then a sub-millisecond path at a fixed rate.
  const tcb = fakeTcb(3000);
  drive(tcb, 3000, 0.5, () => 1e6, () => 0);
  assert.ok(tcb.rcvBuf.capacity <= 512 * KB, `capacity ${tcb.rcvBuf.capacity}`);
  assert.ok(tcb.stats!.rcvRtt >= 0 && tcb.stats!.rcvRtt < 0.01, `receiver RTT ${tcb.stats!.rcvRtt}`);
});
