// `npm run bench`: runs the benchmarks and prints one table a user can paste into an issue
// (what, this stack, the reference measured in the same run, the ratio, the machine).
//
//   node dist/bench/run.js [names...] [--json] [--quick] [--list]
//
// --json prints one JSON object per result line instead of the table:
//   {"bench","metric","value","unit","reference","ratio","better","referenceLabel"}
// --quick shortens every benchmark (figures get noisy; the smoke test uses it).
// Progress, skips and the machine line go to stderr under --json, so stdout is only results.
//
// Adding a benchmark: write bench/<name>.ts exporting a Benchmark (bench/types.ts) and add it
// to BENCHMARKS below.
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { pathToFileURL } from 'node:url';
import { hasCommand, isRoot } from '../src/runtime/netns.js';
import { afpacketPing, afxdpPing, tapPing } from './driver-ping.js';
import { httpLatency } from './http-latency.js';
import { httpClose, httpCloseWorkers, httpKeepalive, httpKeepaliveWorkers } from './http.js';
import { icmpEchoMemory } from './icmp-echo-memory.js';
import { idleConns } from './idle-conns.js';
import { tcpAutotuneMemory } from './tcp-autotune-memory.js';
import { tcpBulkKernel } from './tcp-bulk-kernel.js';
import { tcpBulkMemory, tcpBulkMemoryIpv6 } from './tcp-bulk-memory.js';
import { tcpConnectCloseMemory } from './tcp-connect-close-memory.js';
import { toolsUnderLoad } from './tools-under-load.js';
import { workersMemory } from './workers-memory.js';
import type { BenchResult, Benchmark } from './types.js';

export const BENCHMARKS: readonly Benchmark[] = [
  icmpEchoMemory,
  tcpBulkMemory,
  tcpBulkMemoryIpv6,
  tcpAutotuneMemory,
  tcpConnectCloseMemory,
  tcpBulkKernel,
  idleConns,
  tapPing,
  afpacketPing,
  afxdpPing,
  httpLatency,
  httpKeepalive,
  httpClose,
  toolsUnderLoad,
  httpKeepaliveWorkers,
  httpCloseWorkers,
  workersMemory,
];

export interface CliArgs { names: string[]; json: boolean; quick: boolean; list: boolean; help: boolean }

export function parseArgs(argv: string[]): CliArgs {
  const a: CliArgs = { names: [], json: false, quick: false, list: false, help: false };
  for (const x of argv) {
    if (x === '--json') a.json = true;
    else if (x === '--quick') a.quick = true;
    else if (x === '--list') a.list = true;
    else if (x === '--help' || x === '-h') a.help = true;
    else if (x.startsWith('-')) throw new Error(`unknown option ${x} (try --help)`);
    else a.names.push(x);
  }
  return a;
}

/** Why a benchmark cannot run here, or null when it can. */
function skipReason(b: Benchmark): string | null {
  if (b.needsRoot) {
    if (process.platform !== 'linux') return 'needs Linux network namespaces';
    if (!isRoot()) return 'needs root (network namespaces, TAP devices)';
  }
  const missing = (b.needsCommands ?? []).filter((c) => !hasCommand(c));
  return missing.length ? `needs ${missing.join(', ')} on PATH` : null;
}

/** "AMD EPYC 7B13 (2 cores), node v20.20.2, Linux 6.8.0, loadavg 0.52 0.40 0.31" */
export function machineLine(): string {
  let model = cpus()[0]?.model?.trim() ?? '';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1]!.trim();
  } catch { /* not Linux: keep os.cpus()'s model */ }
  const la = loadavg().map((x) => x.toFixed(2)).join(' ');
  return `${model || 'unknown CPU'} (${cpus().length} cores), node ${process.version}, ${process.platform === 'linux' ? 'Linux' : process.platform} ${release()}, loadavg ${la}`;
}

function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toLocaleString('en-US');
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** The result as a markdown table (so it pastes into an issue as a table). */
export function formatTable(results: BenchResult[]): string {
  const head = ['bench', 'metric', 'tstack', 'reference (what it is)', 'ratio', 'unit'];
  const rows = results.map((r) => [
    r.bench,
    r.metric,
    fmtNum(r.value),
    r.reference === null ? `- (${r.referenceLabel})` : `${fmtNum(r.reference)} (${r.referenceLabel})`,
    r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x (${r.better} is better)`,
    r.unit,
  ]);
  const all = [head, ...rows];
  const w = head.map((_, c) => Math.max(...all.map((row) => row[c]!.length)));
  const line = (row: string[]) => `| ${row.map((x, c) => x.padEnd(w[c]!)).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** "- bench metric1, metric2: note", one line per distinct note of a benchmark. */
export function noteLines(results: BenchResult[]): string[] {
  const byNote = new Map<string, string[]>();
  for (const r of results) {
    if (!r.note) continue;
    const key = `${r.bench}\0${r.note}`;
    const metrics = byNote.get(key);
    if (metrics) metrics.push(r.metric); else byNote.set(key, [r.metric]);
  }
  return [...byNote].map(([key, metrics]) => {
    const [bench, note] = key.split('\0');
    return `- ${bench} ${metrics.join(', ')}: ${note}`;
  });
}

/** One JSON line: exactly the fields the issue names, then better and referenceLabel. */
export function formatJson(r: BenchResult): string {
  return JSON.stringify({
    bench: r.bench, metric: r.metric, value: r.value, unit: r.unit,
    reference: r.reference, ratio: r.ratio, better: r.better, referenceLabel: r.referenceLabel,
  });
}

const USAGE = `usage: node dist/bench/run.js [names...] [--json] [--quick] [--list]
  names    run only these benchmarks (default: all)
  --json   one JSON object per result line instead of the table
  --quick  shorten every benchmark (noisy figures; for smoke tests)
  --list   list the benchmarks and exit`;

export async function main(argv: string[]): Promise<number> {
  let args: CliArgs;
  try { args = parseArgs(argv); } catch (e) { console.error((e as Error).message); return 2; }
  if (args.help) { console.log(USAGE); return 0; }
  if (args.list) {
    for (const b of BENCHMARKS) console.log(`${b.name.padEnd(22)} ${b.needsRoot ? '(root) ' : ''}${b.description}`);
    return 0;
  }
  const unknown = args.names.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const selected = args.names.length ? BENCHMARKS.filter((b) => args.names.includes(b.name)) : BENCHMARKS;
  // Under --json stdout carries only result lines.
  const info = args.json ? (m: string) => console.error(m) : (m: string) => console.log(m);
  const log = (m: string) => console.error(`  ${m}`);

  const results: BenchResult[] = [];
  const skipped: string[] = [];
  let failed = 0;
  for (const b of selected) {
    const why = skipReason(b);
    if (why !== null) {
      skipped.push(`${b.name}: skipped, ${why}`);
      info(`skipped ${b.name}: ${why}`);
      continue;
    }
    info(`running ${b.name}${args.quick ? ' (quick)' : ''}: ${b.description}`);
    try {
      const rs = await b.run({ quick: args.quick, log });
      for (const r of rs) {
        results.push(r);
        if (args.json) console.log(formatJson(r));
      }
    } catch (e) {
      failed++;
      console.error(`FAILED ${b.name}: ${(e as Error).stack ?? String(e)}`);
    }
  }
  if (!args.json) {
    console.log('');
    if (results.length) console.log(formatTable(results));
    for (const line of noteLines(results)) console.log(line);
    for (const s of skipped) console.log(`- ${s}`);
    console.log(`\nmachine: ${machineLine()}`);
  } else {
    console.error(`machine: ${machineLine()}`);
  }
  return failed ? 1 : 0;
}

// Run only when executed (the smoke test and others may import the helpers).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e) => { console.error(e); process.exitCode = 1; },
  );
}
