// What a benchmark is and what it reports. To add one: write bench/<name>.ts exporting a
// `Benchmark`, and list it in BENCHMARKS in bench/run.ts.
//
// Every figure comes with a reference measured in the same run (Node on kernel sockets, or the
// kernel itself), so the ratio means something on any machine.

export interface BenchOptions {
  /** Shorten everything (the smoke test uses it): figures are noisy but the plumbing runs. */
  quick: boolean;
  /** Progress and diagnostics; goes to stderr so --json output stays clean. */
  log(msg: string): void;
}

export interface BenchResult {
  /** Benchmark name, e.g. "icmp-echo-memory". */
  bench: string;
  /** What was measured, e.g. "frames", "rtt-avg". */
  metric: string;
  /** This stack's figure. */
  value: number;
  /** "frames/s", "µs", "MB/s". */
  unit: string;
  /** The same quantity measured on the reference in this run; null when there is none. */
  reference: number | null;
  /** What the reference is ("node dgram, kernel loopback"). */
  referenceLabel: string;
  /** value / reference; null without a reference. */
  ratio: number | null;
  /** Which way is good: throughput is 'higher', latency 'lower'. */
  better: 'higher' | 'lower';
  note?: string;
}

export interface Benchmark {
  /** Unique, kebab-case: what `node dist/bench/run.js <name>` selects. */
  name: string;
  /** One line: what is measured and against what. */
  description: string;
  /** Needs root (namespaces, TAP devices): skipped with a reason otherwise. */
  needsRoot?: boolean;
  /** Commands that must be on PATH (checked before running, like needsRoot). */
  needsCommands?: string[];
  run(opts: BenchOptions): Promise<BenchResult[]>;
}

/** Rounds to `digits` significant digits (figures in a table need no more). */
export function roundSig(x: number, digits = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(digits));
}

/**
 * Builds a result: rounds value and reference, and computes the ratio from the rounded figures,
 * so a reader (or the smoke test) can check ratio = value / reference from the printed numbers.
 */
export function result(r: Omit<BenchResult, 'ratio'>): BenchResult {
  const value = roundSig(r.value);
  const reference = r.reference === null ? null : roundSig(r.reference);
  const ratio = reference === null || reference === 0 ? null : Number((value / reference).toFixed(4));
  return { ...r, value, reference, ratio };
}
