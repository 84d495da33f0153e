// Frames held until a time, and the real-time wake-ups that release them: shared by the
// drivers that delay frames (memory wire, fault injector, pcap replay).
import type { PacketBuffer } from '../base/pktbuf.js';
import { VirtualClock, type Clock } from '../base/time.js';

/** A record in a TimedQueue; reused through a free list. */
interface Held {
  time: number;
  seq: number;
  buf: PacketBuffer | null;
}

/**
 * Frames waiting until a time, earliest first; equal times keep insertion order.
 * A binary heap whose records and backing array are reused, so steady state allocates nothing.
 */
export class TimedQueue {
  private heap: Held[] = [];
  private spare: Held[] = [];
  private count = 0;
  private seq = 0;

  get size(): number { return this.count; }

  push(time: number, buf: PacketBuffer): void {
    const h = this.spare.pop() ?? { time: 0, seq: 0, buf: null };
    h.time = time; h.seq = this.seq++; h.buf = buf;
    let i = this.count++;
    const heap = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const q = heap[p]!;
      if (q.time < time || (q.time === time && q.seq < h.seq)) break;
      heap[i] = q;
      i = p;
    }
    heap[i] = h;
  }

  /** Earliest time, Infinity when empty. */
  peekTime(): number { return this.count > 0 ? this.heap[0]!.time : Infinity; }

  /** Removes and returns the earliest frame (check peekTime first). */
  pop(): PacketBuffer {
    const heap = this.heap;
    const top = heap[0]!;
    const buf = top.buf!;
    top.buf = null;
    this.spare.push(top);
    const last = heap[--this.count]!;
    const n = this.count;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && before(heap[r]!, heap[l]!)) c = r;
        if (!before(heap[c]!, last)) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return buf;
  }

  /** Releases every held frame. */
  clear(): void {
    while (this.count > 0) this.pop().release();
  }
}

function before(a: Held, b: Held): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/**
 * Real-time wake-ups for a driver holding frames until a time: calls `cb` from the event loop
 * when the earliest held frame is due. Under a VirtualClock it does nothing (the simulation
 * advances time and polls).
 */
export class WakeUp {
  private cb: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private immediate: ReturnType<typeof setImmediate> | null = null;

  constructor(private readonly clock: Clock, private readonly nextTime: () => number, readonly enabled: boolean) {}

  set(cb: (() => void) | null): void {
    this.cb = cb;
    if (cb) this.arm(); else this.cancel();
  }

  /** Call after anything that may have changed the earliest held time. */
  arm(): void {
    if (!this.enabled || this.cb === null) return;
    const t = this.nextTime();
    if (t === Infinity) return;
    const now = this.clock.now();
    if (t <= now) {
      // setImmediate, not a microtask: two stacks ping-ponging must still let I/O and timers run.
      if (this.immediate === null) this.immediate = setImmediate(this.fireNow);
      return;
    }
    if (this.timer !== null) {
      if (this.timerAt <= t) return;
      clearTimeout(this.timer);
    }
    this.timerAt = t;
    this.timer = setTimeout(this.fireTimer, Math.max(1, Math.ceil(t - now)));
  }

  cancel(): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; this.timerAt = Infinity; }
    if (this.immediate !== null) { clearImmediate(this.immediate); this.immediate = null; }
  }

  private readonly fireNow = (): void => {
    this.immediate = null;
    this.cb?.();
  };

  private readonly fireTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    // Timers may fire a fraction early against a sub-millisecond clock: re-arm instead.
    if (this.nextTime() > this.clock.now()) { this.arm(); return; }
    this.cb?.();
    this.arm();
  };
}

export function isRealtimeClock(clock: Clock): boolean {
  return !(clock instanceof VirtualClock);
}
