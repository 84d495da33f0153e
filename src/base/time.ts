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

/** Called as `timer.callback(now)`: a plain function sees the Timer as `this`. */
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
  /** @internal on the wheel's far list rather than in a slot */
  far = false;
  /** @internal */
  prev: Timer | null = null;
  /** @internal */
  next: Timer | null = null;
  constructor(readonly callback: TimerCallback) {}
  get armed(): boolean { return this.deadline >= 0; }
}

/**
 * Hashed timer wheel (Varghese & Lauck scheme 6): `slots` buckets of `resolution` ms each,
 * each a doubly linked list. Timers due within two revolutions sit in their bucket; later ones
 * (TIME_WAIT, keepalive) wait on a far list and move into the buckets in batches as their time
 * approaches, so thousands of idle connections cost neither the per-tick walk nor the search
 * for the next deadline. The earliest deadline is cached so the run loop can ask when to wake
 * without scanning, and found by a forward scan that stops at the first armed bucket.
 */
export class TimerWheel {
  private readonly slots: (Timer | null)[];
  private readonly mask: number;
  private current = 0; // last tick processed
  /** While advance() runs: the tick it is processing up to (timers armed meanwhile go after it). */
  private floor = 0;
  private armedCount = 0;
  private nearCount = 0;
  private farHead: Timer | null = null;
  private farCount = 0;
  private farMinTick = Infinity;
  private farMinValid = true;
  private cachedNext = Infinity;
  private nextValid = true;

  constructor(readonly resolution = 1, slotCount = 4096, now = 0) {
    if (slotCount & (slotCount - 1)) throw new Error('TimerWheel: slotCount must be a power of two');
    this.slots = new Array<Timer | null>(slotCount).fill(null);
    this.mask = slotCount - 1;
    this.current = Math.floor(now / resolution);
    this.floor = this.current;
  }

  get size(): number { return this.armedCount; }

  /** Arms (or re-arms) `t` to fire at absolute time `deadline` ms. */
  arm(t: Timer, deadline: number): void {
    if (t.deadline >= 0) this.unlink(t);
    let tick = Math.ceil(deadline / this.resolution);
    // A timer armed by a callback during advance() for a tick already walked fires on the next.
    if (tick <= this.floor) tick = this.floor + 1;
    t.deadline = deadline;
    t.tick = tick;
    this.armedCount++;
    if (tick - this.current >= 2 * (this.mask + 1)) this.linkFar(t); else this.linkSlot(t);
    const fireAt = tick * this.resolution;
    if (this.nextValid && fireAt < this.cachedNext) this.cachedNext = fireAt;
  }

  disarm(t: Timer): void {
    if (t.deadline < 0) return;
    if (t.tick * this.resolution <= this.cachedNext) this.nextValid = false;
    this.unlink(t);
  }

  private linkSlot(t: Timer): void {
    const i = t.tick & this.mask;
    const head = this.slots[i] ?? null;
    t.far = false;
    t.prev = null; t.next = head;
    if (head) head.prev = t;
    this.slots[i] = t;
    this.nearCount++;
  }

  private linkFar(t: Timer): void {
    const head = this.farHead;
    t.far = true;
    t.prev = null; t.next = head;
    if (head) head.prev = t;
    this.farHead = t;
    this.farCount++;
    if (this.farMinValid && t.tick < this.farMinTick) this.farMinTick = t.tick;
  }

  private unlink(t: Timer): void {
    if (t.far) {
      if (t.prev) t.prev.next = t.next; else this.farHead = t.next;
      this.farCount--;
      if (t.tick <= this.farMinTick) this.farMinValid = false;
    } else {
      if (t.prev) t.prev.next = t.next; else this.slots[t.tick & this.mask] = t.next;
      this.nearCount--;
    }
    if (t.next) t.next.prev = t.prev;
    t.prev = t.next = null;
    t.far = false;
    t.deadline = -1;
    this.armedCount--;
  }

  /** Earliest tick on the far list (Infinity when empty); recomputed only after its holder left. */
  private farMin(): number {
    if (!this.farMinValid) {
      let m = Infinity;
      for (let t = this.farHead; t; t = t.next) if (t.tick < m) m = t.tick;
      this.farMinTick = m;
      this.farMinValid = true;
    }
    return this.farCount === 0 ? Infinity : this.farMinTick;
  }

  /** Moves far timers due before `limit` into their buckets (one walk of the far list). */
  private migrate(limit: number): void {
    let m = Infinity;
    for (let t = this.farHead; t;) {
      const next = t.next;
      if (t.tick < limit) {
        if (t.prev) t.prev.next = t.next; else this.farHead = t.next;
        if (t.next) t.next.prev = t.prev;
        this.farCount--;
        this.linkSlot(t);
      } else if (t.tick < m) {
        m = t.tick;
      }
      t = next;
    }
    this.farMinTick = m;
    this.farMinValid = true;
  }

  /** Fires every timer whose deadline is <= now, in tick order. Returns how many fired. */
  advance(now: number): number {
    const target = Math.floor(now / this.resolution);
    if (target <= this.current) return 0;
    let fired = 0;
    const span = target - this.current;
    const slotCount = this.mask + 1;
    if (this.armedCount === 0) { this.current = this.floor = target; return 0; }
    // Far timers due within a revolution of `target` join the buckets first (in a batch that
    // covers two revolutions, so this walk happens at most once per revolution).
    if (this.farCount > 0 && this.farMin() < target + slotCount) this.migrate(target + 2 * slotCount);
    this.floor = target;
    // Walk each tick once; after a long jump, one revolution visits every bucket.
    const steps = Math.min(span, slotCount);
    const base = span > slotCount ? target - slotCount : this.current;
    for (let s = 1; s <= steps; s++) {
      const tick = base + s;
      let t = this.slots[tick & this.mask] ?? null;
      while (t) {
        if (t.tick <= target && t.deadline <= now) {
          this.unlink(t);
          fired++;
          t.callback(now);
          // The callback may have disarmed or moved any timer of this bucket (the one after
          // `t` included): walk it again from its head (what it re-armed is due later).
          t = this.slots[tick & this.mask] ?? null;
        } else {
          t = t.next;
        }
      }
      if (this.nearCount === 0) break;
    }
    this.current = target;
    this.nextValid = false;
    return fired;
  }

  /** When the earliest armed timer fires (ms, on a tick boundary), or Infinity when none is armed. */
  nextDeadline(): number {
    if (this.armedCount === 0) return Infinity;
    if (this.nextValid) return this.cachedNext;
    let best = this.farCount > 0 ? this.farMin() : Infinity;
    if (this.nearCount > 0) {
      // Every bucketed timer is due after `current`, and the one in the bucket s ticks ahead no
      // sooner than current + s: the first bucket holding the earliest tick ends the search.
      const n = this.mask + 1;
      for (let s = 1; s <= n; s++) {
        const tick = this.current + s;
        if (best <= tick) break;
        for (let t = this.slots[tick & this.mask] ?? null; t; t = t.next) if (t.tick < best) best = t.tick;
      }
    }
    best *= this.resolution;
    this.cachedNext = best;
    this.nextValid = true;
    return best;
  }
}
