// The run loop (F-Stack's ff_run): one per worker. An iteration pulls a receive burst from each
// driver into the stack, lets the stack run its due timers, and flushes every driver's transmit
// queue once (batching). Between iterations it idles according to the poll mode:
//   busy      - spin (setImmediate, so the event loop still runs application I/O);
//   adaptive  - spin for a few iterations (or busyPollUs microseconds) after traffic, then
//               sleep as in interrupt mode;
//   interrupt - sleep until a driver says it is readable or the stack's next timer is due.
import type { PacketBuffer } from '../base/pktbuf.js';
import type { Driver } from '../driver/types.js';
import type { Stack } from '../stack/stack.js';
import type { Clock } from '../base/time.js';
import type { PollMode } from './config.js';

/** Wall-clock milliseconds from the monotonic high-resolution timer. */
export class RealClock implements Clock {
  now(): number { return performance.now(); }
}
export const realClock: Clock = new RealClock();

export interface RunLoopOptions {
  stack: LoopStack;
  /** Default: the stack's clock. */
  clock?: Clock;
  poll?: PollMode;
  /** Frames pulled from each driver per iteration. */
  burst?: number;
  /** adaptive: idle iterations to keep spinning after the last traffic before sleeping. */
  spinIterations?: number;
  /**
   * adaptive: keep spinning for this many microseconds after the last traffic (frames received
   * or application activity) before sleeping on readiness, instead of `spinIterations`
   * iterations. The latency policy: a reply that comes within the budget is read without a
   * wake-up; the cost is up to that much CPU after each burst of traffic. 0 (default): off.
   */
  busyPollUs?: number;
  /**
   * busy, and adaptive with busyPollUs: when an iteration found nothing, the next one first
   * watches the drivers' receive rings (Driver.rxReady, no system call, no allocation) for up
   * to this many microseconds, then runs at once when a frame lands. An idle spin through the
   * event loop costs a setImmediate (an allocation, and a trip through libuv) per look, and
   * at hundreds of thousands a second that walks the heap's young generation through the
   * CPU's caches: the first frame after a quiet spell then found the stack's code and data
   * cold (input of one ping took 25 µs instead of 2). Other event-loop work (timers, kernel
   * sockets, worker messages) waits at most this long. 0: off. Default 50. Drivers without
   * rxReady (TAP) spin by iterations as before.
   */
  spinSliceUs?: number;
  /**
   * Called when an iteration throws (a bug in the stack, since parsers do not throw).
   * Default: rethrow, which crashes the process loudly.
   */
  onError?: (err: unknown) => void;
}

export interface RunLoopStats {
  iterations: number;
  rxFrames: number;
  /** Iterations started by a driver's readable callback. */
  readableWakeups: number;
  /** Iterations started by the stack's timer deadline. */
  timerWakeups: number;
  /** Iterations started by kick() (application activity). */
  kicks: number;
  errors: number;
  /** Milliseconds spent inside iterations (receive, timers, commands); the rest of the time is idle or application work. */
  busyMs: number;
  /** Commands run through post(). */
  commands: number;
}

interface LoopPort { driver: Driver; ifIndex: number }

/** The part of a Stack the loop drives (an interface so tests can hand in a fake). */
export type LoopStack = Pick<Stack, 'clock' | 'input' | 'poll'> & {
  onOutput?: (() => void) | null;
  /** A whole receive burst (Stack.inputBurst: receive coalescing); without it, input() per frame. */
  inputBurst?(ifIndex: number, bufs: PacketBuffer[], n: number): void;
  /** Deferred output (Stack.setDeferOutput): the loop turns it on while it runs and flushes it each iteration. */
  setDeferOutput?(on: boolean): void;
  flushOutput?(): void;
  /** When the stack next needs poll(), without running anything (timers the flush armed). */
  nextDeadline?(): number;
};

const NEVER = Infinity;

export class RunLoop {
  readonly stack: LoopStack;
  readonly clock: Clock;
  readonly mode: PollMode;
  private readonly burst: number;
  private readonly spinIterations: number;
  /** busyPollUs in clock milliseconds; 0 when off. */
  private readonly busyPollMs: number;
  /** spinSliceUs in clock milliseconds; 0 when off. */
  private readonly spinSliceMs: number;
  /** Every port's driver has rxReady(): the loop can watch the rings between iterations. */
  private ringsWatchable = true;
  /** Frames the last iteration received (-1 before the first, whose deadline is not known yet). */
  private lastFrames = -1;
  /** adaptive with busyPollUs: spin until this clock time (ms). */
  private spinUntil = 0;
  private readonly onError: (err: unknown) => void;
  private readonly ports: LoopPort[] = [];
  private readonly rx: PacketBuffer[];
  private running = false;
  private stopped = false;
  /** An iteration is already scheduled (setImmediate pending): schedule() coalesces. */
  private scheduled = false;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Deadline (clock ms) the armed timer is for; Infinity when none. */
  private timerDeadline = NEVER;
  private keepAlive: ReturnType<typeof setInterval> | null = null;
  /** False after unref(): nothing the loop arms keeps the process alive (see unref()). */
  private refed = true;
  private spinsLeft = 0;
  private activity = false;
  private wakeReason: 'readable' | 'timer' | 'kick' | 'spin' = 'spin';
  private readonly st: RunLoopStats = { iterations: 0, rxFrames: 0, readableWakeups: 0, timerWakeups: 0, kicks: 0, errors: 0, busyMs: 0, commands: 0 };

  // Bound once so the hot path does not allocate closures.
  private readonly onImmediate = (): void => { this.immediate = null; this.scheduled = false; this.runOnce(); };
  private readonly onTimer = (): void => { this.timer = null; this.timerDeadline = NEVER; this.wake('timer'); };
  private readonly onReadable = (): void => { this.readable(); };
  /** Inside runOnce() or readable()'s iteration: a readable report now must not nest one. */
  private inIteration = false;
  /** A deferred flush (see runOnce) is queued. */
  private flushQueued = false;
  private readonly onFlush = (): void => {
    this.flushQueued = false;
    if (!this.running) return; // stop() flushed already
    try {
      this.transmit();
    } catch (err) {
      this.st.errors++;
      this.onError(err);
    }
  };

  constructor(opts: RunLoopOptions) {
    this.stack = opts.stack;
    this.clock = opts.clock ?? opts.stack.clock;
    this.mode = opts.poll ?? 'adaptive';
    this.burst = opts.burst ?? 64;
    this.spinIterations = opts.spinIterations ?? 64;
    const us = opts.busyPollUs ?? 0;
    if (!(us >= 0 && us <= 1_000_000)) throw new RangeError(`RunLoop: busyPollUs must be 0-1000000 (got ${us})`);
    this.busyPollMs = us / 1000;
    const slice = opts.spinSliceUs ?? 50;
    if (!(slice >= 0 && slice <= 100_000)) throw new RangeError(`RunLoop: spinSliceUs must be 0-100000 (got ${slice})`);
    this.spinSliceMs = slice / 1000;
    this.onError = opts.onError ?? ((err) => { throw err; });
    this.rx = new Array<PacketBuffer>(this.burst);
  }

  /** Adds a driver whose frames go to `stack.input(ifIndex, …)`. Before or after start(). */
  addPort(driver: Driver, ifIndex: number): void {
    if (this.stopped) throw new Error('RunLoop: stopped');
    this.ports.push({ driver, ifIndex });
    if (typeof driver.rxReady !== 'function') this.ringsWatchable = false;
    if (this.running && this.mode !== 'busy') driver.onReadable(this.onReadable);
    if (!this.refed) driver.unref?.();
  }

  get isRunning(): boolean { return this.running; }

  stats(): RunLoopStats { return { ...this.st }; }

  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    // The stack calls onOutput whenever it queues a frame, so application writes get flushed.
    this.stack.onOutput = () => this.kick();
    this.stack.setDeferOutput?.(true);
    // Busy mode never sleeps, so it needs no wake-ups (and a TAP watcher would only add work).
    if (this.mode !== 'busy') for (const p of this.ports) p.driver.onReadable(this.onReadable);
    // Readiness watchers and timers come and go; this keeps the process alive while the loop
    // runs, at the cost of one wake-up every ~24 days.
    this.keepAlive = setInterval(() => {}, 0x7fffffff);
    if (!this.refed) {
      this.keepAlive.unref();
      for (const p of this.ports) p.driver.unref?.();
    }
    this.schedule();
  }

  /** Whether the loop keeps the process alive (true unless unref() was called). */
  get hasRef(): boolean { return this.refed; }

  /**
   * Lets the process exit while the loop runs, like a timer's unref(): the keep-alive, the
   * loop's timers and immediates, and the drivers' readiness watchers stop holding the event
   * loop. The API layers call this when no socket handle is ref'd (src/api/runtime.ts).
   * Frames already queued on a driver are flushed now: the turn that would have flushed
   * them may never come.
   */
  unref(): void {
    if (!this.refed) return;
    this.refed = false;
    this.keepAlive?.unref();
    this.timer?.unref();
    this.immediate?.unref();
    for (const p of this.ports) p.driver.unref?.();
    if (this.running) this.transmit();
  }

  /** Undoes unref(): the loop keeps the process alive again. */
  ref(): void {
    if (this.refed) return;
    this.refed = true;
    this.keepAlive?.ref();
    this.timer?.ref();
    this.immediate?.ref();
    for (const p of this.ports) p.driver.ref?.();
  }

  /**
   * Stops the loop and releases its drivers: unregisters wake-ups, flushes what the stack
   * queued, closes each driver (a TAP device disappears). Idempotent.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    if (this.stack.onOutput) this.stack.onOutput = null;
    let first: unknown = null;
    try { this.stack.setDeferOutput?.(false); } catch (e) { first = e; }
    if (this.immediate) clearImmediate(this.immediate);
    if (this.timer) clearTimeout(this.timer);
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.immediate = this.timer = this.keepAlive = null;
    this.scheduled = false;
    this.timerDeadline = NEVER;
    for (const p of this.ports) {
      try {
        p.driver.onReadable(null);
        p.driver.flush();
      } catch (e) { first ??= e; }
      try { p.driver.close(); } catch (e) { first ??= e; }
    }
    if (first) throw first;
  }

  static readonly POSTED_PER_ITERATION = 16;
  /** Commands waiting for the next iteration (post()). */
  private readonly posted: (() => void)[] = [];

  /**
   * Runs `fn` between iterations, on the thread that owns the stack (the control socket's
   * commands go through here, so a mutation never lands in the middle of an iteration). Runs it
   * at once when the loop is not running. `fn`'s exceptions go to the caller's own handling:
   * wrap it.
   */
  post(fn: () => void): void {
    if (!this.running) { fn(); return; }
    this.posted.push(fn);
    this.wake('kick');
  }

  private runPosted(): void {
    // A bounded batch per iteration: a flood of commands delays the stack by one batch at most.
    const q = this.posted.splice(0, RunLoop.POSTED_PER_ITERATION);
    for (const fn of q) {
      this.st.commands++;
      try { fn(); } catch (err) { this.st.errors++; this.onError(err); }
    }
    this.activity = true;
    if (this.posted.length !== 0) this.wake('kick');
  }

  /**
   * Asks for an iteration soon: application code queued frames (or otherwise changed what the
   * stack wants to do) outside an iteration. Coalesced: many kicks, one iteration.
   */
  kick(): void {
    if (!this.running) return;
    this.activity = true;
    if (!this.scheduled) this.st.kicks++;
    this.wake('kick');
  }

  /**
   * One iteration: RX burst from every port into the stack, due timers, TX flush.
   * Returns the number of frames received. Public so tests and embedders can drive it.
   */
  iterate(): number {
    const frames = this.receive();
    this.transmit();
    return frames;
  }

  /**
   * The first part of an iteration: RX bursts into the stack, then (`poll`) the application
   * events they raised and the due timers. Without `poll` (a driver's readable callback) the
   * stack only answers by itself; the events wait for the iteration scheduled behind.
   */
  private receive(poll = true): number {
    let frames = 0;
    const rx = this.rx;
    const stack = this.stack;
    for (let p = 0; p < this.ports.length; p++) {
      const port = this.ports[p]!;
      const n = port.driver.rxBurst(rx, this.burst);
      const steer = this.steer;
      let keep = n;
      if (steer !== null) {
        // The frames this worker keeps, compacted in place, stay one burst.
        keep = 0;
        for (let i = 0; i < n; i++) { const b = rx[i]!; if (!steer(port.ifIndex, b)) rx[keep++] = b; }
      }
      if (stack.inputBurst) stack.inputBurst(port.ifIndex, rx, keep);
      else for (let i = 0; i < keep; i++) stack.input(port.ifIndex, rx[i]!);
      frames += n;
    }
    if (poll) this.nextDeadline = stack.poll(this.clock.now());
    this.st.iterations++;
    this.st.rxFrames += frames;
    return frames;
  }

  /** The second part of an iteration: the stack's deferred TCP output, then every driver's queue. */
  private transmit(): void {
    const stack = this.stack;
    if (stack.flushOutput) {
      stack.flushOutput();
      // What the flush sent may have armed a timer (retransmission, persist, delayed ACK)
      // earlier than the deadline this iteration computed before it.
      const d = stack.nextDeadline ? stack.nextDeadline() : NEVER;
      if (d < this.nextDeadline) {
        this.nextDeadline = d;
        if (this.running && this.mode !== 'busy') this.armTimer(d);
      }
    }
    for (let p = 0; p < this.ports.length; p++) this.ports[p]!.driver.flush();
  }

  /** When the stack last said it next needs to run (clock ms). */
  nextDeadline = NEVER;

  /**
   * Flow steering with several workers (src/runtime/worker.ts): sees each received frame first
   * and returns true when it took the frame (another worker owns its flow). Null with one
   * worker: the receive path is exactly the single-stack one.
   */
  steer: ((ifIndex: number, buf: PacketBuffer) => boolean) | null = null;

  /**
   * A driver reported frames: receive them right here, in the readiness callback, instead of
   * one setImmediate later, and hand the drivers what the stack answered by itself (ICMP echo,
   * ARP, ACKs, UDP sent from the callback) at once. The application's deferred TCP output,
   * and what it does in its nextTick and promise callbacks (which a native callback does not
   * drain), leave together in the flush of the iteration scheduled behind, which also
   * decides whether to spin or sleep. A report that comes while an iteration runs (a driver
   * calling back synchronously) takes the scheduled path.
   */
  private readable(): void {
    if (!this.running) return;
    if (this.inIteration) { this.wake('readable'); return; }
    this.st.readableWakeups++;
    const t0 = this.clock.now();
    this.inIteration = true;
    try {
      // No poll here: application callbacks (and the nextTick and promise work they queue, which
      // a native callback does not drain) run from the iteration scheduled below, in Node's own
      // callback context, as every other Node callback does.
      if (this.receive(false) > 0) this.activity = true;
      for (let p = 0; p < this.ports.length; p++) this.ports[p]!.driver.flush();
    } catch (err) {
      this.st.errors++;
      // Not thrown from here: a native callback is no place for an exception to unwind to.
      setImmediate(() => this.onError(err));
    } finally {
      this.inIteration = false;
    }
    this.st.busyMs += this.clock.now() - t0;
    this.schedule();
  }

  private wake(reason: 'readable' | 'timer' | 'kick'): void {
    if (!this.running) return;
    if (!this.scheduled) this.wakeReason = reason;
    this.schedule();
  }

  private schedule(): void {
    if (!this.running || this.scheduled) return;
    this.scheduled = true;
    this.immediate = setImmediate(this.onImmediate);
    if (!this.refed) this.immediate.unref();
  }

  private runOnce(): void {
    if (!this.running) return;
    const reason = this.wakeReason;
    if (reason === 'readable') this.st.readableWakeups++;
    else if (reason === 'timer') this.st.timerWakeups++;
    this.wakeReason = 'spin';
    // A spin that found nothing last time: watch the rings here instead of going round the
    // event loop again (see spinSliceUs), until a frame lands, a timer is due, or the slice
    // (or the adaptive budget) is spent.
    if (reason === 'spin' && this.lastFrames === 0 && this.spinSliceMs > 0 && this.ringsWatchable && this.posted.length === 0 &&
        (this.mode === 'busy' || (this.mode === 'adaptive' && this.busyPollMs > 0))) {
      const now = this.clock.now();
      let until = now + this.spinSliceMs;
      if (this.nextDeadline < until) until = this.nextDeadline;
      if (this.mode === 'adaptive' && this.spinUntil < until) until = this.spinUntil;
      if (until > now) this.watchRings(until);
    }
    const t0 = this.clock.now();
    if (this.posted.length !== 0) this.runPosted();
    let frames = 0;
    this.inIteration = true;
    try {
      frames = this.receive();
    } catch (err) {
      this.st.errors++;
      this.onError(err);
    } finally {
      this.inIteration = false;
    }
    this.st.busyMs += this.clock.now() - t0;
    this.lastFrames = frames;
    if (!this.running) return;
    // The transmit flush waits for the process.nextTick callbacks (and the promise jobs) the
    // frames just triggered: what the application does there goes out in the same batch. For
    // node:http that is the FIN after a `Connection: close` response ('finish' -> end() runs
    // in a nextTick): flushed with the response, it reaches the client before the client's
    // own close, so the server keeps TIME_WAIT, as on kernel sockets (with the FIN one turn
    // later the client closed first and its connect() slowed down searching for a port).
    // A microtask queued now runs after the whole nextTick queue has drained.
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.onFlush);
    }
    // A burst that came back full means more is waiting: go again at once in every mode.
    const more = frames > 0 && frames >= this.burst;
    switch (this.mode) {
      case 'busy':
        this.schedule();
        return;
      case 'adaptive':
        if (this.busyPollMs > 0) {
          // Time budget: spin while the last traffic is less than busyPollUs old.
          const now = this.clock.now();
          if (frames > 0 || this.activity) this.spinUntil = now + this.busyPollMs;
          this.activity = false;
          if (more || now < this.spinUntil) { this.schedule(); return; }
          this.armTimer(this.nextDeadline);
          return;
        }
        if (frames > 0 || this.activity) this.spinsLeft = this.spinIterations;
        this.activity = false;
        if (more || this.spinsLeft > 0) {
          if (!more) this.spinsLeft--;
          this.schedule();
          return;
        }
        this.armTimer(this.nextDeadline);
        return;
      case 'interrupt':
        this.activity = false;
        if (more) { this.schedule(); return; }
        this.armTimer(this.nextDeadline);
        return;
    }
  }

  /** Looks at every driver's receive ring until one has a frame or the clock reaches `until` (ms). */
  private watchRings(until: number): void {
    const ports = this.ports;
    for (let i = 1; ; i++) {
      for (let p = 0; p < ports.length; p++) if (ports[p]!.driver.rxReady!()) return;
      if ((i & 15) === 0 && this.clock.now() >= until) return;
    }
  }

  /** One setTimeout for the stack's next deadline, re-armed only when the deadline moves earlier. */
  private armTimer(deadline: number): void {
    if (deadline === NEVER || deadline >= this.timerDeadline) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, Math.ceil(deadline - this.clock.now()));
    this.timerDeadline = deadline;
    this.timer = setTimeout(this.onTimer, delay);
    if (!this.refed) this.timer.unref();
  }
}
