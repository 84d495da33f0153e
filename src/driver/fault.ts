// Fault injection, shared by the memory wire and the wrapper that puts it in front of any
// driver (the kernel offers no netem here: DESIGN.md, "Networks in tests").
//
// One FaultStage is one direction of one port. It decides, per frame and from its own seeded
// PRNG, whether the frame is filtered, lost, tail-dropped by the rate limiter, corrupted,
// delayed, reordered or duplicated, and counts every decision. Same seed, same frames in the
// same order: same decisions.
import { Csum, Gso, type PacketBuffer, type BufferPool } from '../buf/pktbuf.js';
import { Prng } from '../stack/prng.js';
import { VirtualClock, type Clock } from '../stack/time.js';
import { sum16, finish, pseudoHeaderV4 } from '../wire/checksum.js';
import type { Offloads } from '../stack/device.js';
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

/**
 * Completes an L4 checksum left Csum.Partial, as a device with txCsum offload would: the field
 * holds the folded pseudo-header sum, so the sum from csumStart to the end includes it.
 */
export function completeChecksum(buf: PacketBuffer): void {
  if (buf.csum !== Csum.Partial) return;
  const start = buf.csumStart;
  const at = start + buf.csumOffset;
  if (start < buf.start || at + 2 > buf.end) { buf.csum = Csum.None; return; }
  let c = finish(sum16(buf.data, start, buf.end - start));
  // RFC 768: "If the computed checksum is zero, it is transmitted as all ones". The UDP
  // checksum sits 6 bytes into its header (TCP's at 16, where 0 is a legal value).
  if (c === 0 && buf.csumOffset === 6) c = 0xffff;
  buf.data[at] = c >>> 8;
  buf.data[at + 1] = c & 0xff;
  buf.csum = Csum.None;
}

/**
 * Software TCP segmentation (what a NIC does with a TSO super-frame when the far side cannot take
 * it whole): splits an Ethernet + IPv4 + TCP frame marked Gso.Tcp4 into frames of at most
 * buf.gsoSize payload bytes, each with its own IPv4 total length, id (+1 per segment) and header
 * checksum, TCP sequence number and complete TCP checksum; FIN and PSH stay on the last segment
 * only, CWR on the first (RFC 3168 §6.1.2). Appends the frames to `out` from index 0 and returns
 * how many; returns 0 (the caller counts an error) when the frame is not Ethernet/IPv4/TCP or
 * its sizes disagree. Does not take ownership of buf.
 */
export function segmentTcp4(buf: PacketBuffer, pool: BufferPool, out: PacketBuffer[]): number {
  const d = buf.data;
  const s = buf.start;
  const len = buf.end - s;
  if (len < 14 + 20 + 20 || d[s + 12] !== 0x08 || d[s + 13] !== 0x00) return 0;
  const ip = s + 14;
  const ihl = (d[ip]! & 0x0f) * 4;
  if ((d[ip]! >> 4) !== 4 || ihl < 20 || d[ip + 9] !== 6) return 0;
  const tcp = ip + ihl;
  if (tcp + 20 > buf.end) return 0;
  const thl = (d[tcp + 12]! >> 4) * 4;
  const hdrs = tcp + thl - s;
  const payload = len - hdrs;
  const mss = buf.gsoSize;
  if (thl < 20 || payload < 0 || mss <= 0) return 0;
  const id0 = (d[ip + 4]! << 8) | d[ip + 5]!;
  const seq0 = ((d[tcp + 4]! << 24) | (d[tcp + 5]! << 16) | (d[tcp + 6]! << 8) | d[tcp + 7]!) >>> 0;
  const flags = d[tcp + 13]!;
  const src = ((d[ip + 12]! << 24) | (d[ip + 13]! << 16) | (d[ip + 14]! << 8) | d[ip + 15]!) >>> 0;
  const dst = ((d[ip + 16]! << 24) | (d[ip + 17]! << 16) | (d[ip + 18]! << 8) | d[ip + 19]!) >>> 0;
  let n = 0;
  // A super-frame without payload (never built by TCP, but legal) becomes one plain frame.
  for (let at = 0; at === 0 || at < payload; at += mss) {
    const chunk = Math.min(mss, payload - at);
    const f = pool.alloc(pool.headroom + hdrs + chunk);
    const o = f.append(hdrs + chunk);
    const fd = f.data;
    copyBytes(fd, o, d, s, hdrs);
    if (chunk > 0) fd.set(d.subarray(s + hdrs + at, s + hdrs + at + chunk), o + hdrs);
    const fip = o + 14, ftcp = fip + ihl;
    const total = ihl + thl + chunk;
    fd[fip + 2] = total >>> 8; fd[fip + 3] = total & 0xff;
    const id = (id0 + n) & 0xffff;
    fd[fip + 4] = id >>> 8; fd[fip + 5] = id & 0xff;
    fd[fip + 10] = 0; fd[fip + 11] = 0;
    const ipc = finish(sum16(fd, fip, ihl));
    fd[fip + 10] = ipc >>> 8; fd[fip + 11] = ipc & 0xff;
    const seq = (seq0 + at) >>> 0;
    fd[ftcp + 4] = seq >>> 24; fd[ftcp + 5] = (seq >>> 16) & 0xff; fd[ftcp + 6] = (seq >>> 8) & 0xff; fd[ftcp + 7] = seq & 0xff;
    const last = at + mss >= payload;
    // FIN 0x01 and PSH 0x08 only on the last segment, CWR 0x80 only on the first.
    fd[ftcp + 13] = flags & ~(last ? 0 : 0x09) & ~(n === 0 ? 0 : 0x80);
    fd[ftcp + 16] = 0; fd[ftcp + 17] = 0;
    const tc = finish(sum16(fd, ftcp, thl + chunk, pseudoHeaderV4(src, dst, 6, thl + chunk)));
    fd[ftcp + 16] = tc >>> 8; fd[ftcp + 17] = tc & 0xff;
    f.ifIndex = buf.ifIndex;
    out[n++] = f;
  }
  return n;
}

/**
 * Copies len bytes between arrays. Short frames (ACKs, ARP) are copied by a loop, which
 * allocates nothing; longer ones through a subarray view, where the native copy wins.
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (len <= 256) { for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!; return; }
  dst.set(src.subarray(srcOff, srcOff + len), dstOff);
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

