// Shared-nothing scaling on the memory wire (issue 11): N independent pairs of stacks, one per
// worker thread, each doing what one pair does alone — bulk TCP and connect+close cycles — at
// the same time. The figure is the aggregate (sum over workers) with N workers, N the cores
// available; the reference is the same with one worker, measured in the same run, so the ratio
// is the scaling factor (N on an idle N-core machine, less when the load generator or other
// work shares the cores). Threads stand for the worker processes of `tstack run` here: each
// pair shares nothing with the others, which is what the measure is about.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { realClock } from '../src/runtime/loop.js';
import { MemoryPair } from './tcp-bulk-memory.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

interface Job { bytes: number; cycles: number }
interface Rates { mbps: number; cps: number }

const CHUNK = 64 * 1024;

/** One pair: `bytes` of bulk on one connection, then `cycles` connect+close cycles. */
function runPair(job: Job): Rates {
  const pair = new MemoryPair();
  pair.a.tcp.ports.setRange(1024, 65535);
  try {
    // Bulk.
    const chunk = new Uint8Array(CHUNK).fill(0x5a);
    const sink = new Uint8Array(256 * 1024);
    let got = 0, sent = 0;
    const l = pair.b.tcp.listen({ port: 5003 });
    l.onConnection = (s) => {
      s.onData = () => { for (let n = s.readInto(sink); n > 0; n = s.readInto(sink)) got += n; };
      s.onEnd = () => s.close();
    };
    const c = pair.a.tcp.connect({ raddr: pair.bAddr, rport: 5003 });
    const fill = () => {
      while (sent < job.bytes) {
        const n = c.write(job.bytes - sent >= CHUNK ? chunk : chunk.subarray(0, job.bytes - sent));
        if (n === 0) return;
        sent += n;
      }
      c.onDrain = null;
      c.close();
    };
    c.onDrain = fill;
    let up = false;
    c.onConnect = () => { up = true; };
    if (!pair.runUntil(() => up, 5000)) throw new Error('workers-memory: no connection');
    const t0 = realClock.now();
    fill();
    if (!pair.runUntil(() => got >= job.bytes, 120_000)) throw new Error(`workers-memory: ${got}/${job.bytes} bytes`);
    const t1 = realClock.now();
    l.close();
    // Connect+close cycles.
    let closed = 0;
    const l2 = pair.b.tcp.listen({ port: 5004 });
    l2.onConnection = (s) => { s.onEnd = () => s.close(); s.onClose = () => { closed++; }; };
    const t2 = realClock.now();
    for (let i = 0; i < job.cycles; i++) {
      const k = pair.a.tcp.connect({ raddr: pair.bAddr, rport: 5004 });
      k.onConnect = () => k.close();
      const want = i + 1;
      if (!pair.runUntil(() => closed >= want, 5000)) throw new Error(`workers-memory: cycle ${i} not done`);
    }
    const t3 = realClock.now();
    l2.close();
    return { mbps: job.bytes / 1e6 / ((t1 - t0) / 1000), cps: job.cycles / ((t3 - t2) / 1000) };
  } finally {
    pair.close();
  }
}

/** Runs `n` pairs in `n` threads at once; resolves with the sum of their rates. */
async function runWorkers(n: number, job: Job): Promise<Rates> {
  const all = await Promise.all(Array.from({ length: n }, () => new Promise<Rates>((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => { if (code !== 0) reject(new Error(`workers-memory: a worker exited with ${code}`)); });
  })));
  return { mbps: all.reduce((s, r) => s + r.mbps, 0), cps: all.reduce((s, r) => s + r.cps, 0) };
}

if (!isMainThread && parentPort && workerData && typeof (workerData as Job).bytes === 'number') {
  parentPort.postMessage(runPair(workerData as Job));
}

export const workersMemory: Benchmark = {
  name: 'workers-memory',
  description: 'aggregate bulk TCP MB/s and connect+close cycles/s of N independent stack pairs on the memory wire, one per worker thread (N = cores); reference: one worker, same run',
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const n = Math.max(2, availableParallelism());
    const job: Job = opts.quick ? { bytes: 32e6, cycles: 1000 } : { bytes: 256e6, cycles: 5000 };
    // Warm-up (JIT in each thread is its own; this mostly loads the modules and the disk cache).
    await runWorkers(1, { bytes: job.bytes / 8, cycles: job.cycles / 10 });
    const one = await runWorkers(1, job);
    opts.log(`workers-memory: 1 worker ${one.mbps.toFixed(0)} MB/s, ${one.cps.toFixed(0)} cycles/s`);
    const many = await runWorkers(n, job);
    opts.log(`workers-memory: ${n} workers ${many.mbps.toFixed(0)} MB/s, ${many.cps.toFixed(0)} cycles/s (aggregate)`);
    const note = `${n} workers (the cores available) against 1; each worker a pair of stacks in its own thread; ratio = scaling; the machine's other load counts against it`;
    return [
      result({ bench: 'workers-memory', metric: `bulk-${n}w`, value: many.mbps, unit: 'MB/s', reference: one.mbps, referenceLabel: 'one worker, same run', better: 'higher', note }),
      result({ bench: 'workers-memory', metric: `connect-close-${n}w`, value: many.cps, unit: 'cycles/s', reference: one.cps, referenceLabel: 'one worker, same run', better: 'higher', note }),
    ];
  },
};
