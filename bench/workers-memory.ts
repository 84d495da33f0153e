// Shared-nothing scaling on the memory wire (issue 11): N independent pairs of stacks, each in
// its own process (as `tstack run` runs one process per worker), each doing what one pair does
// alone — bulk TCP, then connect+close cycles — in the same time windows. The figure is the
// aggregate with N pairs, N the cores available; the reference is one pair, measured in the
// same processes in interleaved rounds, so the ratio is the scaling factor.
//
// What makes the figure fair (docs/benchmarks.md, `workers-memory`, has the measurements):
// - JIT: every process compiles its own code, and the optimizing compiler runs on V8's helper
//   threads. A pair measured from a cold start spends more CPU on those threads than on its
//   own; alone, it gets them for free on the idle core, with N pairs they compete with the
//   other pairs. So every process runs warm-up rounds first, and the reference rounds run in
//   the same, warm processes (only pair 0 active, the others blocked on their IPC channel).
// - Windows: every pair measures the same absolute time window (the parent sends its start;
//   a pair streams from before the start and counts only what arrives inside the window), so
//   the aggregate is total work / window length, not a sum of rates over windows that do not
//   coincide.
// - Load: the machine is shared, so besides wall-clock rates each pair reports the CPU time its
//   process (all threads) spent in the window. Work per CPU-second with N pairs against one
//   pair is the scaling efficiency that the other load cannot fake (1.0: N pairs cost each
//   other nothing); CPU-seconds per second is the share of the cores the pairs got.
// - A control: a pure compute loop (no allocation, no stack) in the same windows shows what
//   scaling the machine itself gives at that moment.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MemoryPair, median } from './tcp-bulk-memory.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const CHUNK = 64 * 1024;
const ROLE = 'TSTACK_BENCH_WORKERS_MEMORY_PAIR';

/** One round, sent by the parent: absolute times (ms since the epoch, performance.timeOrigin based). */
interface Round { start: number; ms: number; gap: number }
/** What a pair measured in one round; cpu = its process's CPU time (all threads), ms. */
interface Measured { bytes: number; bulkCpu: number; bulkMain: number; cycles: number; cycCpu: number; cycMain: number; ops: number; opsCpu: number; late: number }

const now = () => performance.timeOrigin + performance.now();

/** CPU time of this process (all threads) and of this thread, ms. Linux: /proc; elsewhere: getrusage. */
function cpuMs(): { all: number; main: number } {
  try {
    const self = readFileSync('/proc/thread-self/stat', 'utf8').split(' ', 1)[0];
    let all = 0, main = 0;
    for (const t of readdirSync('/proc/self/task')) {
      let ns = 0;
      try { ns = Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ', 1)[0]); } catch { continue; }
      all += ns / 1e6;
      if (t === self) main = ns / 1e6;
    }
    return { all, main };
  } catch {
    const u = process.cpuUsage();
    return { all: (u.user + u.system) / 1000, main: NaN };
  }
}

/** The control: integer work on a 16 KiB array, no allocation. */
function compute(arr: Int32Array, n: number): void {
  let x = 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; arr[i & 4095]! += x; }
}

/** The pair's side: one MemoryPair for the whole run; one bulk connection and one batch of cycles per round. */
class PairRunner {
  private readonly pair = new MemoryPair();
  private readonly arr = new Int32Array(4096);
  private readonly chunk = new Uint8Array(CHUNK).fill(0x5a);
  private readonly sink = new Uint8Array(256 * 1024);
  private port = 10000;
  private closed = 0;

  constructor() {
    this.pair.a.tcp.ports.setRange(1024, 65535);
    // Connect+close leaves the client's side in TIME_WAIT; at tens of thousands of cycles a
    // second, 2 * MSL = 60 s would run out of ephemeral ports. 250 ms keeps a few thousand.
    for (const st of [this.pair.a, this.pair.b]) st.sysctl.set('net.inet.tcp.msl', 250);
    const l = this.pair.b.tcp.listen({ port: 5004 });
    l.onConnection = (s) => { s.onEnd = () => s.close(); s.onClose = () => { this.closed++; }; };
  }

  /** Runs the pair until `t` (absolute ms). */
  private until(t: number): void {
    if (!this.pair.runUntil(() => now() >= t, Math.max(0, t - now()) + 5000)) throw new Error('workers-memory: a window overran');
  }

  round(r: Round): Measured {
    const { pair, chunk, sink } = this;
    // Bulk: a fresh connection, streaming from before the window; only bytes received inside count.
    const port = this.port++;
    let got = 0, stop = false;
    const l = pair.b.tcp.listen({ port });
    l.onConnection = (s) => {
      s.onData = () => { for (let n = s.readInto(sink); n > 0; n = s.readInto(sink)) got += n; };
      s.onEnd = () => s.close();
    };
    const c = pair.a.tcp.connect({ raddr: pair.bAddr, rport: port });
    const fill = () => { while (!stop) if (c.write(chunk) === 0) return; };
    c.onDrain = fill;
    c.onConnect = fill;
    const late = Math.max(0, now() - r.start);
    this.until(r.start);
    let c0 = cpuMs();
    const g0 = got;
    this.until(r.start + r.ms);
    let c1 = cpuMs();
    const bytes = got - g0;
    const bulkCpu = c1.all - c0.all, bulkMain = c1.main - c0.main;
    // Reset, not close: a FIN would first drain the send buffer into the next window.
    stop = true;
    c.onDrain = null;
    c.abort();
    l.close();
    // Connect+close cycles, one at a time, in the second window.
    const t2 = r.start + r.ms + r.gap, t3 = t2 + r.ms;
    this.until(t2);
    c0 = cpuMs();
    let cycles = 0;
    while (now() < t3) {
      const k = pair.a.tcp.connect({ raddr: pair.bAddr, rport: 5004 });
      k.onConnect = () => k.close();
      const want = this.closed + 1;
      if (!pair.runUntil(() => this.closed >= want, 5000)) throw new Error('workers-memory: a connect+close cycle did not finish');
      cycles++;
    }
    c1 = cpuMs();
    const cycCpu = c1.all - c0.all, cycMain = c1.main - c0.main;
    // The control, in a third (half-length) window.
    const t4 = t3 + r.gap, t5 = t4 + r.ms / 2;
    this.until(t4);
    c0 = cpuMs();
    let ops = 0;
    while (now() < t5) { compute(this.arr, 100_000); ops++; }
    c1 = cpuMs();
    return { bytes, bulkCpu, bulkMain, cycles, cycCpu, cycMain, ops, opsCpu: c1.all - c0.all, late };
  }
}

function servePair(send: (m: Measured | 'ready') => void): void {
  const runner = new PairRunner();
  process.on('disconnect', () => process.exit(0));
  process.on('message', (r: Round | 'exit') => {
    if (r === 'exit') { process.disconnect?.(); return; }
    send(runner.round(r));
  });
  send('ready');
}

if (process.env[ROLE] === '1' && process.send) servePair(process.send.bind(process));

/** The parent's handle on one pair process. */
class PairProcess {
  private readonly child: ChildProcess;
  private pending: { resolve(m: Measured): void; reject(e: Error): void } | null = null;
  private failed: Error | null = null;
  readonly ready: Promise<void>;

  constructor() {
    // TSTACK_BENCH_PAIR_FLAGS: extra node flags for the pair processes (the experiments in
    // docs/benchmarks.md: --single-threaded-gc, --v8-pool-size=1, ...).
    const execArgv = [...process.execArgv, ...(process.env.TSTACK_BENCH_PAIR_FLAGS ?? '').split(' ').filter(Boolean)];
    // detached: each pair in a session of its own. Linux's scheduler (with autogroup, the
    // default on desktop and many VM kernels) shares the CPU fairly between sessions, not
    // processes: with other sessions busy, all pairs in our session would share one session's
    // share, and two pairs get no more CPU than one (docs/benchmarks.md). A pair exits when
    // the channel closes, so it does not outlive the bench.
    const detached = process.env.TSTACK_BENCH_PAIR_SESSION !== 'shared';
    this.child = fork(fileURLToPath(import.meta.url), [], { execArgv, detached, env: { ...process.env, [ROLE]: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve, reject) => {
      const fail = (e: Error) => {
        this.failed = e;
        reject(e);
        const p = this.pending;
        this.pending = null;
        p?.reject(e);
      };
      this.child.on('message', (m: Measured | 'ready') => {
        if (m === 'ready') { resolve(); return; }
        const p = this.pending;
        this.pending = null;
        p?.resolve(m);
      });
      this.child.on('error', fail);
      this.child.on('exit', (code, sig) => { if (code !== 0 || this.pending) fail(new Error(`workers-memory: a pair process exited (${code ?? sig})`)); });
    });
    this.ready.catch(() => {});
  }

  round(r: Round): Promise<Measured> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.child.send(r);
    });
  }

  close(): void {
    if (this.child.connected) this.child.send('exit');
  }
}

/** One round with the pairs given, all in the same windows; returns what each measured. */
async function round(pairs: PairProcess[], ms: number): Promise<Measured[]> {
  const r: Round = { start: now() + 100, ms, gap: 20 };
  return Promise.all(pairs.map((p) => p.round(r)));
}

/** Aggregate figures of one round. */
interface Figures { late: number; mbps: number; cps: number; ops: number; mbPerCpu: number; cPerCpu: number; opsPerCpu: number; cores: number; helpers: number }

function figures(ms: Measured[], windowMs: number): Figures {
  const sum = (f: (m: Measured) => number) => ms.reduce((s, m) => s + f(m), 0);
  const bulkCpu = sum((m) => m.bulkCpu), cycCpu = sum((m) => m.cycCpu);
  return {
    late: Math.max(...ms.map((m) => m.late)),
    mbps: sum((m) => m.bytes) / 1e6 / (windowMs / 1000),
    cps: sum((m) => m.cycles) / (windowMs / 1000),
    ops: sum((m) => m.ops) / (windowMs / 2000),
    mbPerCpu: sum((m) => m.bytes) / 1e6 / (bulkCpu / 1000),
    cPerCpu: sum((m) => m.cycles) / (cycCpu / 1000),
    opsPerCpu: sum((m) => m.ops) / (sum((m) => m.opsCpu) / 1000),
    cores: (bulkCpu + cycCpu) / (2 * windowMs),
    helpers: (bulkCpu + cycCpu) / sum((m) => m.bulkMain + m.cycMain) - 1,
  };
}

function medianFigures(fs: Figures[]): Figures {
  const m = (k: keyof Figures) => median(fs.map((f) => f[k]));
  return { late: Math.max(...fs.map((f) => f.late)), mbps: m('mbps'), cps: m('cps'), ops: m('ops'), mbPerCpu: m('mbPerCpu'), cPerCpu: m('cPerCpu'), opsPerCpu: m('opsPerCpu'), cores: m('cores'), helpers: m('helpers') };
}

const loadavg = () => { try { return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '); } catch { return '?'; } };

export const workersMemory: Benchmark = {
  name: 'workers-memory',
  description: 'aggregate bulk TCP MB/s and connect+close cycles/s of N independent stack pairs on the memory wire, one per process, in the same windows (N = cores); reference: one pair, interleaved rounds',
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const n = Math.max(2, availableParallelism());
    const plan = opts.quick ? { ms: 400, minWarm: 2, maxWarm: 3, rounds: 1 } : { ms: 1000, minWarm: 3, maxWarm: 12, rounds: 7 };
    const pairs = Array.from({ length: n }, () => new PairProcess());
    try {
      await Promise.all(pairs.map((p) => p.ready));
      // Warm-up: every process, all at once, until its optimizing compiler has the hot paths:
      // the helper threads' CPU falls to a few per cent of the pairs' and the work per
      // CPU-second stops rising (it takes seconds of traffic; docs/benchmarks.md).
      let prev: Figures | null = null, warm = 0;
      for (; warm < plan.maxWarm; warm++) {
        const f = figures(await round(pairs, plan.ms), plan.ms);
        const settled = prev !== null && f.helpers < 0.15 && f.mbPerCpu < 1.15 * prev.mbPerCpu && f.cPerCpu < 1.15 * prev.cPerCpu;
        prev = f;
        if (warm + 1 >= plan.minWarm && settled) { warm++; break; }
      }
      opts.log(`workers-memory: ${warm} warm-up round(s); helper threads then +${(100 * prev!.helpers).toFixed(0)}% of the pair threads' CPU`);
      const one: Figures[] = [], many: Figures[] = [];
      for (let i = 0; i < plan.rounds; i++) {
        one.push(figures(await round(pairs.slice(0, 1), plan.ms), plan.ms));
        many.push(figures(await round(pairs, plan.ms), plan.ms));
        const o = one[i]!, m = many[i]!;
        opts.log(`workers-memory round ${i + 1}: 1 pair ${o.mbps.toFixed(0)} MB/s, ${o.cps.toFixed(0)} cycles/s, ${o.cores.toFixed(2)} cores; ` +
          `${n} pairs ${m.mbps.toFixed(0)} MB/s, ${m.cps.toFixed(0)} cycles/s, ${m.cores.toFixed(2)} cores; load ${loadavg()}`);
      }
      const o = medianFigures(one), m = medianFigures(many);
      const late = Math.max(o.late, m.late);
      if (late > plan.ms / 20) opts.log(`workers-memory: a pair started ${late.toFixed(0)} ms into its window (machine too loaded): figures low`);
      opts.log(`workers-memory: per CPU-second, 1 pair ${o.mbPerCpu.toFixed(0)} MB, ${o.cPerCpu.toFixed(0)} cycles; ${n} pairs ${m.mbPerCpu.toFixed(0)} MB, ${m.cPerCpu.toFixed(0)} cycles; ` +
        `V8/libuv helper threads +${(100 * o.helpers).toFixed(0)}% / +${(100 * m.helpers).toFixed(0)}% of the pair threads' CPU`);
      opts.log(`workers-memory: control (compute loop, same windows) ${(m.ops / o.ops).toFixed(2)}x wall, ${(m.opsPerCpu / o.opsPerCpu).toFixed(2)} per CPU-second`);
      const label = 'one pair, same processes, interleaved rounds';
      const note = `${n} pairs (the cores available) against 1, one process each, same windows, medians of ${plan.rounds} round(s); ` +
        `cores used ${o.cores.toFixed(2)} (1 pair) / ${m.cores.toFixed(2)} (${n}); control loop ${(m.ops / o.ops).toFixed(2)}x; load average ${loadavg()}`;
      return [
        result({ bench: 'workers-memory', metric: `bulk-${n}w`, value: m.mbps, unit: 'MB/s', reference: o.mbps, referenceLabel: label, better: 'higher', note }),
        result({ bench: 'workers-memory', metric: `connect-close-${n}w`, value: m.cps, unit: 'cycles/s', reference: o.cps, referenceLabel: label, better: 'higher', note }),
        result({ bench: 'workers-memory', metric: `bulk-per-cpu-${n}w`, value: m.mbPerCpu, unit: 'MB/CPU-s', reference: o.mbPerCpu, referenceLabel: label, better: 'higher', note }),
        result({ bench: 'workers-memory', metric: `connect-close-per-cpu-${n}w`, value: m.cPerCpu, unit: 'cycles/CPU-s', reference: o.cPerCpu, referenceLabel: label, better: 'higher', note }),
      ];
    } finally {
      for (const p of pairs) p.close();
    }
  },
};
