// Time for the engine: the engine never reads a clock itself. The caller passes `now`
// (milliseconds, fractional allowed) to stack.poll(); timers live in a hashed wheel.

export interface Clock {
  /** Milliseconds since an arbitrary origin; monotonic. */
  now(): number;
}

/** A clock that only moves when told to: the basis of deterministic simulation. */
export class VirtualClock implements Clock {
  constructor(private t = 0) {}
  now(): number { return this.t; }
  set(t: number): void { if (t > this.t) this.t = t; }
  advance(ms: number): void { this.t += ms; }
}

export type TimerCallback = (now: number) => void;

/**
 * A timer owned by one module (a TCB, the ARP cache...). Allocate it once and re-arm it;
 * arming and disarming allocate nothing.
 */
export class Timer {
  /** Absolute deadline in ms, or -1 when not armed. */
  deadline = -1;
  /** @internal wheel bookkeeping */
  tick = 0;
  /** @internal */
  prev: Timer | null = null;
  /** @internal */
  next: Timer | null = null;
  constructor(readonly callback: TimerCallback) {}
  get armed(): boolean { return this.deadline >= 0; }
}

/**
 * Hashed timer wheel (Varghese & Lauck scheme 6): `slots` buckets of `resolution` ms each,
 * each a doubly linked list; timers more than one revolution ahead stay in their bucket
 * until their tick comes round. The earliest deadline is cached so the run loop can ask
 * when to wake without scanning.
 */
export class TimerWheel {
  private readonly slots: (Timer | null)[];
  private readonly mask: number;
  private current = 0; // last tick processed
  private armedCount = 0;
  private cachedNext = Infinity;
  private nextValid = true;

  constructor(readonly resolution = 1, slotCount = 4096, now = 0) {
    if (slotCount & (slotCount - 1)) throw new Error('TimerWheel: slotCount must be a power of two');
    this.slots = new Array<Timer | null>(slotCount).fill(null);
    this.mask = slotCount - 1;
    this.current = Math.floor(now / resolution);
  }

  get size(): number { return this.armedCount; }

  /** Arms (or re-arms) `t` to fire at absolute time `deadline` ms. */
  arm(t: Timer, deadline: number): void {
    if (t.deadline >= 0) this.unlink(t);
    let tick = Math.ceil(deadline / this.resolution);
    if (tick <= this.current) tick = this.current + 1;
    t.deadline = deadline;
    t.tick = tick;
    const i = tick & this.mask;
    const head = this.slots[i] ?? null;
    t.prev = null; t.next = head;
    if (head) head.prev = t;
    this.slots[i] = t;
    this.armedCount++;
    const fireAt = tick * this.resolution;
    if (this.nextValid && fireAt < this.cachedNext) this.cachedNext = fireAt;
  }

  disarm(t: Timer): void {
    if (t.deadline < 0) return;
    if (t.tick * this.resolution <= this.cachedNext) this.nextValid = false;
    this.unlink(t);
  }

  private unlink(t: Timer): void {
    if (t.prev) t.prev.next = t.next; else this.slots[t.tick & this.mask] = t.next;
    if (t.next) t.next.prev = t.prev;
    t.prev = t.next = null;
    t.deadline = -1;
    this.armedCount--;
  }

  /** Fires every timer whose deadline is <= now, in tick order. Returns how many fired. */
  advance(now: number): number {
    const target = Math.floor(now / this.resolution);
    if (target <= this.current) return 0;
    let fired = 0;
    const span = target - this.current;
    const slotCount = this.mask + 1;
    if (this.armedCount === 0) { this.current = target; return 0; }
    // Walk each tick once; after a long jump, one revolution visits every bucket.
    const steps = Math.min(span, slotCount);
    const base = span > slotCount ? target - slotCount : this.current;
    for (let s = 1; s <= steps; s++) {
      const tick = base + s;
      let t = this.slots[tick & this.mask] ?? null;
      while (t) {
        const next = t.next;
        if (t.tick <= target && t.deadline <= now) {
          this.unlink(t);
          fired++;
          t.callback(now);
        }
        t = next;
      }
      if (this.armedCount === 0) break;
    }
    this.current = target;
    this.nextValid = false;
    return fired;
  }

  /** When the earliest armed timer fires (ms, on a tick boundary), or Infinity when none is armed. */
  nextDeadline(): number {
    if (this.armedCount === 0) return Infinity;
    if (this.nextValid) return this.cachedNext;
    let best = Infinity;
    for (let i = 0; i <= this.mask; i++) {
      for (let t = this.slots[i] ?? null; t; t = t.next) if (t.tick < best) best = t.tick;
    }
    best *= this.resolution;
    this.cachedNext = best;
    this.nextValid = true;
    return best;
  }
}
