// A coverage-guided fuzzer for the engine's input path, on V8's own block coverage (the
// inspector's precise coverage; no native fuzzing engine fits this machine's C library): an
// input that runs a block of src/ never run before joins the corpus, and inputs are made by
// mutating corpus entries (bit flips, byte sets, inserted and removed bytes, overwrite
// triplets, splices). Seeded: the same seed and budget in executions replay the same run.
// `npm run fuzz` (scripts/fuzz.js) runs it for minutes; test/unit/engine-fuzz-guided.test.ts
// for a few seconds in `npm test`.
import { Session } from 'node:inspector';
import { Prng } from '../../src/base/prng.js';
import { EngineTarget } from './engine-target.js';

export interface FuzzOptions {
  seed?: string | number;
  /** Stop after this many executions (deterministic) … */
  execs?: number;
  /** … or after this many seconds, whichever comes first. */
  seconds?: number;
  /** Check the target's invariants (EngineTarget.settle) every this many executions, on a fresh target. */
  settleEvery?: number;
  log?: (line: string) => void;
}

export interface Finding { input: Uint8Array; error: string }

export interface FuzzResult {
  execs: number;
  seconds: number;
  corpus: Uint8Array[];
  /** Blocks of src/ run at least once. */
  blocks: number;
  /** Blocks the templates alone reach. */
  seedBlocks: number;
  findings: Finding[];
}

interface Range { startOffset: number; endOffset: number; count: number }
interface ScriptCoverage { scriptId: string; url: string; functions: { ranges: Range[] }[] }

export function guidedFuzz(opts: FuzzOptions = {}): FuzzResult {
  const rnd = new Prng(opts.seed ?? 'guided');
  const maxExecs = opts.execs ?? Infinity;
  const deadline = opts.seconds !== undefined ? Date.now() + opts.seconds * 1000 : Infinity;
  const settleEvery = opts.settleEvery ?? 5000;
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): unknown => {
    let out: unknown, err: Error | null = null;
    session.post(method, params ?? {}, (e, r) => { err = e; out = r; });
    if (err) throw err;
    return out;
  };
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  /** Per script of src/: the blocks (start * 2^24 + end) run so far. */
  const seenBy = new Map<string, Set<number>>();
  let seenCount = 0;
  const seen = { get size() { return seenCount; } };
  /** What newBlocks(false) found and did not remember yet. */
  const pending: [Set<number>, number][] = [];
  const commitPending = () => {
    for (const [set, k] of pending) if (!set.has(k)) { set.add(k); seenCount++; }
    pending.length = 0;
  };
  /** Blocks run since the last call (counts reset at each take) and never before; `keep`: remember them (else hold them in `pending`). */
  const newBlocks = (keep = true): number => {
    const { result } = post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    let n = 0;
    for (const sc of result) {
      let set = seenBy.get(sc.scriptId);
      if (set === undefined) {
        if (!sc.url.includes('/src/')) continue;
        set = new Set();
        seenBy.set(sc.scriptId, set);
      }
      for (const f of sc.functions) for (const r of f.ranges) {
        if (r.count === 0) continue;
        const k = r.startOffset * 16777216 + r.endOffset;
        if (!set.has(k)) { if (keep) set.add(k); else pending.push([set, k]); n++; }
      }
    }
    if (keep) seenCount += n;
    return n;
  };

  const started = Date.now();
  let target = new EngineTarget(opts.seed ?? 'guided');
  const findings: Finding[] = [];
  const corpus: Uint8Array[] = [];
  const run = (input: Uint8Array): boolean => {
    try {
      target.input(input);
    } catch (e) {
      findings.push({ input, error: (e as Error).stack ?? String(e) });
      target = new EngineTarget(opts.seed ?? 'guided');
      return false;
    }
    return newBlocks() > 0;
  };
  newBlocks();
  for (let i = 0; i < target.templates.length; i++) {
    for (const flags of [0, 1, 3]) {
      const seedInput = Uint8Array.of(i, flags);
      if (run(seedInput)) corpus.push(seedInput);
    }
  }
  const seedBlocks = seen.size;

  const mutate = (src: Uint8Array): Uint8Array => {
    let b = Array.from(src);
    const n = 1 + rnd.int(0, 3);
    for (let k = 0; k < n; k++) {
      switch (rnd.int(0, 7)) {
        case 0: if (b.length) { const i = rnd.int(0, b.length - 1); b[i] = b[i]! ^ (1 << rnd.int(0, 7)); } break;
        case 1: if (b.length) b[rnd.int(0, b.length - 1)] = rnd.int(0, 255); break;
        case 2: b.splice(rnd.int(0, b.length), 0, rnd.int(0, 255)); break;
        case 3: if (b.length > 2) b.splice(rnd.int(2, b.length - 1), 1); break;
        // An overwrite triplet: offset, value (most of a frame's interesting bytes are in its first 128).
        case 4: b.push(0, rnd.chance(0.8) ? rnd.int(0, 127) : rnd.int(0, 255), rnd.chance(0.3) ? [0, 1, 0x7f, 0x80, 0xff][rnd.int(0, 4)]! : rnd.int(0, 255)); break;
        case 5: { const o = corpus[rnd.int(0, corpus.length - 1)]!; b = b.slice(0, rnd.int(0, b.length)).concat(Array.from(o.subarray(rnd.int(0, o.length)))); break; }
        case 6: if (b.length > 1) b[1] = rnd.int(0, 3); break;
        default: if (b.length > 2) b[2] = rnd.chance(0.5) ? 0 : rnd.int(1, 255); break;
      }
    }
    if (b.length === 0) b.push(rnd.int(0, 255));
    return Uint8Array.from(b.slice(0, 4096));
  };

  let execs = 0;
  let lastLog = Date.now();
  // Coverage is taken once per batch (taking it costs more than an execution); a batch that
  // found new blocks is run again input by input to find which ones did.
  const BATCH = 64;
  const batch: Uint8Array[] = [];
  while (execs < maxExecs && Date.now() < deadline) {
    batch.length = 0;
    let failed = false;
    for (let k = 0; k < BATCH && execs < maxExecs; k++) {
      const parent = corpus.length > 0 ? corpus[rnd.int(0, corpus.length - 1)]! : Uint8Array.of(rnd.int(0, 255));
      const input = mutate(parent);
      batch.push(input);
      execs++;
      try { target.input(input); } catch (e) {
        findings.push({ input, error: (e as Error).stack ?? String(e) });
        target = new EngineTarget(opts.seed ?? 'guided');
        failed = true;
      }
    }
    // Which of the batch found them: each again on its own (the blocks are not remembered yet).
    if (!failed && newBlocks(false) > 0) {
      for (const input of batch) if (run(input)) corpus.push(input);
      // Blocks no single input found again (they needed the batch's earlier state) count as seen.
      commitPending();
    }
    if (execs % settleEvery < BATCH) {
      try { target.settle(); } catch (e) { findings.push({ input: batch[batch.length - 1]!, error: `after ${execs} executions: ${(e as Error).message}` }); }
      target = new EngineTarget(`${opts.seed ?? 'guided'}-${execs}`);
    }
    if (opts.log && Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      opts.log(`${execs} execs (${Math.round(execs / ((Date.now() - started) / 1000))}/s), corpus ${corpus.length}, blocks ${seen.size} (templates ${seedBlocks}), findings ${findings.length}`);
    }
  }
  try { target.settle(); } catch (e) { findings.push({ input: new Uint8Array(0), error: `at the end: ${(e as Error).message}` }); }
  post('Profiler.stopPreciseCoverage');
  session.disconnect();
  return { execs, seconds: (Date.now() - started) / 1000, corpus, blocks: seen.size, seedBlocks, findings };
}
