// Fault injection, shared by the memory wire and the wrapper that puts it in front of any
// driver (the kernel offers no netem here: DESIGN.md, "Networks in tests").
//
// One FaultStage is one direction of one port. It decides, per frame and from its own seeded
// PRNG, whether the frame is filtered, lost, tail-dropped by the rate limiter, corrupted,
// delayed, reordered or duplicated, and counts every decision. Same seed, same frames in the
// same order: same decisions.
import { Csum, Gso, type PacketBuffer, type BufferPool } from '../base/pktbuf.js';
import { completeChecksum } from '../base/offload.js';
import { Prng } from '../base/prng.js';
import type { Clock } from '../base/time.js';
import { TimedQueue, WakeUp, isRealtimeClock } from './timed.js';
import type { Offloads } from '../base/device.js';
import type { Driver, DriverStats } from './types.js';

export type FaultDirection = 'tx' | 'rx';
export type FilterVerdict = 'drop' | 'pass';

export interface FaultConfig {
  /** Probability that a frame is lost. */
  loss?: number;
  /** Probability that a frame is delivered twice (the copy right after the original). */
  duplicate?: number;
  /** Probability that a frame is held back `reorderDelayMs` extra, so later frames overtake it. */
  reorder?: number;
  /** Extra delay of a reordered frame (default 10 ms). */
  reorderDelayMs?: number;
  /** Probability that one random bit of one random byte at or beyond `corruptFrom` is flipped. */
  corrupt?: number;
  /** First byte offset eligible for corruption (default 14: past the Ethernet header). */
  corruptFrom?: number;
  /** Fixed one-way delay added to every frame (ms). */
  delayMs?: number;
  /** Uniform extra delay in [0, jitterMs) per frame; frames may overtake each other. */
  jitterMs?: number;
  /** Link rate in bits per second: each frame occupies the link for len*8/rate s (serialization). */
  rateBps?: number;
  /** Bytes the rate limiter may hold waiting for the link; beyond that it tail-drops (default 500 full frames). */
  queueLimitBytes?: number;
  /** Scripted faults: called with the frame's bytes (a view; do not keep it). */
  filter?: (frame: Uint8Array, dir: FaultDirection) => FilterVerdict;
}

export interface FaultStats {
  filtered: number;
  dropped: number;
  rateDropped: number;
  corrupted: number;
  reordered: number;
  duplicated: number;
}

export const DEFAULT_REORDER_DELAY_MS = 10;
export const DEFAULT_QUEUE_LIMIT_BYTES = 500 * 1514;

export function emptyFaultStats(): FaultStats {
  return { filtered: 0, dropped: 0, rateDropped: 0, corrupted: 0, reordered: 0, duplicated: 0 };
}

export class FaultStage {
  readonly stats: FaultStats = emptyFaultStats();
  /** Set by decide(): deliver this frame twice. */
  duplicate = false;
  private cfg: FaultConfig = {};
  private active = false;
  private loss = 0;
  private dup = 0;
  private reorder = 0;
  private reorderDelay = DEFAULT_REORDER_DELAY_MS;
  private corrupt = 0;
  private corruptFrom = 14;
  private delay = 0;
  private jitter = 0;
  private rate = Infinity;
  private queueLimit = DEFAULT_QUEUE_LIMIT_BYTES;
  /** When the rate-limited link finishes serializing what it already holds. */
  private linkFreeAt = -Infinity;

  constructor(private readonly rng: Prng, readonly dir: FaultDirection, config: FaultConfig = {}) {
    this.configure(config);
  }

  get config(): Readonly<FaultConfig> { return this.cfg; }

  /** True when any fault (or a filter) is configured: frames may be inspected, changed, lost or held. */
  get isActive(): boolean { return this.active; }

  /** Replaces the fault configuration (counters and the link's backlog carry over). */
  configure(config: FaultConfig): void {
    const c = config;
    this.cfg = { ...c };
    this.loss = c.loss ?? 0;
    this.dup = c.duplicate ?? 0;
    this.reorder = c.reorder ?? 0;
    this.reorderDelay = c.reorderDelayMs ?? DEFAULT_REORDER_DELAY_MS;
    this.corrupt = c.corrupt ?? 0;
    this.corruptFrom = c.corruptFrom ?? 14;
    this.delay = c.delayMs ?? 0;
    this.jitter = c.jitterMs ?? 0;
    this.rate = c.rateBps !== undefined && c.rateBps > 0 ? c.rateBps : Infinity;
    this.queueLimit = c.queueLimitBytes ?? DEFAULT_QUEUE_LIMIT_BYTES;
    this.active = c.filter !== undefined || this.loss > 0 || this.dup > 0 || this.reorder > 0 || this.corrupt > 0
      || this.delay > 0 || this.jitter > 0 || this.rate !== Infinity;
  }

  /**
   * Decides the fate of one frame arriving at this stage at time `at` (ms). Returns the time the
   * frame leaves the stage, or -1 when it is dropped (the caller releases it). May corrupt the
   * frame in place. Sets `duplicate` when a second copy is to follow.
   */
  decide(buf: PacketBuffer, at: number): number {
    this.duplicate = false;
    if (!this.active) return at;
    const len = buf.end - buf.start;
    if (this.cfg.filter !== undefined && this.cfg.filter(buf.data.subarray(buf.start, buf.end), this.dir) === 'drop') {
      this.stats.filtered++;
      return -1;
    }
    if (this.loss > 0 && this.rng.chance(this.loss)) { this.stats.dropped++; return -1; }
    let t = at;
    if (this.rate !== Infinity) {
      const free = this.linkFreeAt > at ? this.linkFreeAt : at;
      // Bytes still waiting for (or on) the link when this frame arrives.
      const backlog = (free - at) * this.rate / 8000;
      if (backlog + len > this.queueLimit) { this.stats.rateDropped++; return -1; }
      t = free + len * 8000 / this.rate;
      this.linkFreeAt = t;
    }
    if (this.corrupt > 0 && this.rng.chance(this.corrupt)) this.corruptFrame(buf);
    t += this.delay;
    if (this.jitter > 0) t += this.rng.next() * this.jitter;
    if (this.reorder > 0 && this.rng.chance(this.reorder)) { t += this.reorderDelay; this.stats.reordered++; }
    if (this.dup > 0 && this.rng.chance(this.dup)) { this.duplicate = true; this.stats.duplicated++; }
    return t;
  }

  private corruptFrame(buf: PacketBuffer): void {
    // A segmentation-offload super-frame is re-checksummed per segment by the device, which
    // would hide the damage: leave those alone.
    if (buf.gso !== Gso.None) return;
    const len = buf.end - buf.start;
    if (len === 0) return;
    // Complete a deferred checksum first, or the device would checksum the damaged bytes.
    completeChecksum(buf);
    const from = Math.min(this.corruptFrom, len - 1);
    const i = buf.start + this.rng.int(from, len - 1);
    buf.data[i] = buf.data[i]! ^ (1 << this.rng.int(0, 7));
    // A device's "checksum verified" mark would hide the damage from the receiver.
    buf.csum = Csum.None;
    this.stats.corrupted++;
  }
}

export interface FaultInjectorOptions {
  clock: Clock;
  /** Seed for the fault decisions (default 1), or a generator to fork from. */
  seed?: number | string;
  random?: Prng;
  /** Faults applied to transmitted frames. */
  tx?: FaultConfig;
  /** Faults applied to received frames. */
  rx?: FaultConfig;
  /** Arm event-loop timers for held frames; default: true unless the clock is a VirtualClock. */
  realtime?: boolean;
}

export interface FaultInjectorStats extends DriverStats {
  faults: { tx: FaultStats; rx: FaultStats };
  /** Frames currently held back (delayed or reordered). */
  heldTx: number;
  heldRx: number;
}

/**
 * Wraps any Driver (the TAP driver, an AF_PACKET socket...) with the fault model on transmit
 * and/or receive. Delayed frames are held and handed on by later rxBurst/flush calls, or, in
 * real time, by a timer that also wakes the onReadable callback.
 */
export class FaultInjector implements Driver {
  readonly tx: FaultStage;
  readonly rx: FaultStage;
  private readonly txHeld = new TimedQueue();
  private readonly rxHeld = new TimedQueue();
  private readonly clock: Clock;
  private readonly wake: WakeUp;
  private userCb: (() => void) | null = null;
  private scratch: PacketBuffer[] = new Array<PacketBuffer>(64);
  private closed = false;

  constructor(readonly inner: Driver, opts: FaultInjectorOptions) {
    this.clock = opts.clock;
    const rng = opts.random ? opts.random.fork() : new Prng(opts.seed ?? 1);
    this.tx = new FaultStage(rng.fork(), 'tx', opts.tx);
    this.rx = new FaultStage(rng.fork(), 'rx', opts.rx);
    this.wake = new WakeUp(this.clock, () => this.nextEventTime(), opts.realtime ?? isRealtimeClock(this.clock));
    // Held transmit frames must leave on time even when nobody polls for receive.
    this.wake.set(this.onWake);
  }

  get name(): string { return this.inner.name; }
  get mac(): Uint8Array { return this.inner.mac; }
  get mtu(): number { return this.inner.mtu; }
  /**
   * The inner device's offloads without segmentation: losing or corrupting a 64 KiB super-frame
   * as a whole is not what the wire would do to its segments, so TCP sends MSS-sized frames here.
   */
  get offloads(): Offloads {
    const o = this.inner.offloads;
    if (!o.tso4 && !o.tso6) return o;
    if (this.offloadsFrom !== o) { this.offloadsFrom = o; this.masked = Object.freeze({ ...o, tso4: false, tso6: false }); }
    return this.masked!;
  }
  private offloadsFrom: Offloads | null = null;
  private masked: Offloads | null = null;
  get pool(): BufferPool { return this.inner.pool; }

  /** Changes the faults in one or both directions. */
  setFaults(tx?: FaultConfig, rx?: FaultConfig): void {
    if (tx) this.tx.configure(tx);
    if (rx) this.rx.configure(rx);
  }

  transmit(buf: PacketBuffer): void {
    if (this.closed) { buf.release(); return; }
    const now = this.clock.now();
    const t = this.tx.decide(buf, now);
    if (t < 0) { buf.release(); return; }
    const copy = this.tx.duplicate ? buf.clone() : null;
    if (t <= now && this.txHeld.size === 0) {
      this.inner.transmit(buf);
      if (copy) this.inner.transmit(copy);
      return;
    }
    this.txHeld.push(t, buf);
    if (copy) this.txHeld.push(t, copy);
    this.wake.arm();
  }

  flush(): void {
    this.releaseTx(this.clock.now());
    this.inner.flush();
  }

  rxBurst(out: PacketBuffer[], max: number): number {
    if (this.closed) return 0;
    const now = this.clock.now();
    this.releaseTx(now);
    let n = 0;
    while (n < max && this.rxHeld.peekTime() <= now) out[n++] = this.rxHeld.pop();
    if (n < max) {
      if (this.scratch.length < max - n) this.scratch = new Array<PacketBuffer>(max - n);
      const k = this.inner.rxBurst(this.scratch, max - n);
      for (let i = 0; i < k; i++) {
        const b = this.scratch[i]!;
        const t = this.rx.decide(b, now);
        if (t < 0) { b.release(); continue; }
        const copy = this.rx.duplicate ? b.clone() : null;
        if (t <= now && n < max) out[n++] = b; else this.rxHeld.push(t, b);
        if (copy) { if (t <= now && n < max) out[n++] = copy; else this.rxHeld.push(t, copy); }
      }
    }
    this.wake.arm();
    return n;
  }

  onReadable(cb: (() => void) | null): void {
    this.userCb = cb;
    this.inner.onReadable(cb);
    this.wake.arm();
  }

  /** Earliest time a held frame comes due (Infinity when none). */
  nextEventTime(): number {
    const a = this.txHeld.peekTime(), b = this.rxHeld.peekTime();
    return a < b ? a : b;
  }

  stats(): FaultInjectorStats {
    return {
      ...this.inner.stats(),
      faults: { tx: { ...this.tx.stats }, rx: { ...this.rx.stats } },
      heldTx: this.txHeld.size,
      heldRx: this.rxHeld.size,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake.cancel();
    this.txHeld.clear();
    this.rxHeld.clear();
    this.inner.close();
  }

  private releaseTx(now: number): void {
    let sent = false;
    while (this.txHeld.peekTime() <= now) { this.inner.transmit(this.txHeld.pop()); sent = true; }
    if (sent) this.inner.flush();
  }

  private readonly onWake = (): void => {
    const now = this.clock.now();
    this.releaseTx(now);
    if (this.rxHeld.peekTime() <= now) this.userCb?.();
  };
}

