// HTTP latency at one connection: wrk -t1 -c1 --latency (one request in flight, the next sent
// as soon as the response arrives) against the unmodified hello app (examples/hello-http) under
// `tstack run` with each polling policy, beside the same app under plain Node on kernel sockets
// behind a veth, in interleaved rounds. Reports p50 and p99 latency and the CPU the server's
// processes used under that load and idle. Root only; wrk must be on PATH.
//
//   namespace A: driver's kernel end (198.18.10X.1/24) -- `tstack run` (one per policy): 198.18.10X.2:8080
//                veth (198.18.109.1/24) ------------------ namespace B: `node server.js` on 198.18.109.2:8080
//                wrk (every round starts here)
//
// Only the server being measured runs: the others are stopped (SIGSTOP), so an idle busy-polling
// server does not take the CPU from the one under test. Nothing is pinned by default: on a
// shared machine a server pinned to one CPU waits for that CPU at every wake-up, which swamps
// what is measured. TSTACK_BENCH_PIN=1 pins the servers to CPU 0 and wrk to CPU 1 (for a quiet
// machine with cores to give).
//
// TSTACK_BENCH_DRIVER=afxdp|afpacket|tap (default afxdp) chooses the tstack side's driver.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetns, destroyNetns, hasCommand, ipIn, spawnIn } from '../src/runtime/netns.js';
import { median, parseWrk, startServer, type Server, type WrkResult } from './http.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const APP = join(ROOT, 'examples', 'hello-http', 'server.js');
const TSTACK_BIN = join(ROOT, 'bin', 'tstack.js');
const PORT = 8080;
const REF_NET = 109;

/** CPU milliseconds (user + system) used so far by every live process of process group `pgid`. */
export function groupCpuMs(pgid: number): number {
  let ticks = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try { stat = readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

interface Side {
  label: string;
  server: Server;
  ip: string;
  runs: { wrk: WrkResult; cpu: number }[];
  idleCpu: number;
}

interface LatencyPolicy { label: string; poll: string; busyPollUs?: number }
const POLICIES: readonly LatencyPolicy[] = [
  { label: 'interrupt', poll: 'interrupt' },
  { label: 'adaptive', poll: 'adaptive' },
  // Longer than one request/response cycle at -c1: the loop spins from a response to the next request.
  { label: 'adaptive+busy200us', poll: 'adaptive', busyPollUs: 200 },
  { label: 'busy', poll: 'busy' },
];

async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const seconds = opts.quick ? 1 : 5;
  const rounds = opts.quick ? 1 : 3;
  const driver = process.env['TSTACK_BENCH_DRIVER'] ?? 'afxdp';
  if (!['tap', 'afpacket', 'afxdp'].includes(driver)) throw new Error(`TSTACK_BENCH_DRIVER=${driver}: expected afxdp, afpacket or tap`);
  const pin = process.env['TSTACK_BENCH_PIN'] === '1' && cpus().length >= 2 && hasCommand('taskset');
  const appPin = pin ? ['taskset', '-c', '0'] : [];
  const wrkPin = pin ? ['taskset', '-c', '1'] : [];
  const tag = process.pid % 10000;
  const tmp = mkdtempSync(join(tmpdir(), 'tstack-bench-http-latency-'));
  const sides: Side[] = [];
  let nsA: string | null = null;
  let nsB: string | null = null;
  try {
    nsA = createNetns('bench-hla');
    nsB = createNetns('bench-hlb');
    const va = `hlva${tag}`, vb = `hlvb${tag}`;
    ipIn(nsA, ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb, 'netns', nsB]);
    ipIn(nsA, ['addr', 'add', `198.18.${REF_NET}.1/24`, 'dev', va]);
    ipIn(nsA, ['link', 'set', va, 'up']);
    ipIn(nsB, ['addr', 'add', `198.18.${REF_NET}.2/24`, 'dev', vb]);
    ipIn(nsB, ['link', 'set', vb, 'up']);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(PORT) };
    delete env['TSTACK_CONFIG'];
    delete env['TSTACK_REGISTER_PID'];

    for (const [i, p] of POLICIES.entries()) {
      const net = 100 + i;
      const config = join(tmp, `tstack-${i}.toml`);
      writeFileSync(config, `# written by bench/http-latency.ts
[stack]
poll = "${p.poll}"
${p.busyPollUs !== undefined ? `busy_poll_us = ${p.busyPollUs}\n` : ''}
[[port]]
driver = "${driver}"
ifname = "hl${i}t${tag}"
addr = "198.18.${net}.2/24"
host_addr = "198.18.${net}.1/24"
netns = "${nsA}"
`);
      const [cmd, ...args] = [...appPin, process.execPath, TSTACK_BIN, 'run', '--config', config, APP];
      const server = await startServer(cmd!, args, env, `tstack run hello-http (${p.label})`);
      sides.push({ label: p.label, server, ip: `198.18.${net}.2`, runs: [], idleCpu: NaN });
    }
    const [refCmd, ...refArgs] = ['ip', 'netns', 'exec', nsB, ...appPin, process.execPath, APP];
    const refServer = await startServer(refCmd!, refArgs, env, 'node hello-http (reference)');
    const ref: Side = { label: 'kernel', server: refServer, ip: `198.18.${REF_NET}.2`, runs: [], idleCpu: NaN };
    sides.push(ref);

    const only = (s: Side) => { for (const o of sides) if (o !== s) o.server.freeze(); s.server.thaw(); };
    const wrk = async (s: Side, secs: number): Promise<{ wrk: WrkResult; cpu: number }> => {
      only(s);
      const c0 = groupCpuMs(s.server.pid), t0 = performance.now();
      const args = [...wrkPin, 'wrk', '-t1', '-c1', `-d${secs}s`, '--latency', `http://${s.ip}:${PORT}/`];
      const r = await spawnIn(nsA!, args[0]!, args.slice(1), (secs + 30) * 1000);
      const cpu = (groupCpuMs(s.server.pid) - c0) / (performance.now() - t0) * 100;
      const w = parseWrk(r.stdout);
      if (!w || r.code !== 0 || w.requests === 0) throw new Error(`wrk against ${s.label} (${s.ip}) failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
      return { wrk: w, cpu };
    };

    for (const s of sides) await wrk(s, opts.quick ? 1 : 2); // ARP, JIT, warm-up
    for (let i = 0; i < rounds; i++) {
      // Each round in another order, so a drift in machine load hits every side alike.
      const order = i % 2 === 0 ? sides : [...sides].reverse();
      for (const s of order) {
        const r = await wrk(s, seconds);
        s.runs.push(r);
        opts.log(`http-latency round ${i + 1} ${s.label.padEnd(18)}: p50 ${(r.wrk.p50 * 1000).toFixed(0)} µs, p99 ${(r.wrk.p99 * 1000).toFixed(0)} µs, ` +
          `${r.wrk.rps.toFixed(0)} req/s, server CPU ${r.cpu.toFixed(0)}%`);
      }
    }
    // Idle: the server alone, no traffic.
    const idleMs = opts.quick ? 500 : 2000;
    for (const s of sides) {
      only(s);
      const c0 = groupCpuMs(s.server.pid), t0 = performance.now();
      await new Promise((r) => setTimeout(r, idleMs));
      s.idleCpu = (groupCpuMs(s.server.pid) - c0) / (performance.now() - t0) * 100;
    }

    const med = (s: Side, f: (r: { wrk: WrkResult; cpu: number }) => number) => median(s.runs.map(f));
    const out: BenchResult[] = [];
    const label = 'same app, plain node on kernel sockets over veth';
    for (const s of sides) {
      if (s === ref) continue;
      const note = `wrk -t1 -c1 -d${seconds}s --latency, median of ${rounds} interleaved round${rounds > 1 ? 's' : ''}, driver ${driver}, ` +
        `poll = "${POLICIES.find((p) => p.label === s.label)!.poll}"${s.label.includes('busy') && s.label !== 'busy' ? ', busy_poll_us = 200' : ''}` +
        `${pin ? ', servers on CPU 0 and wrk on CPU 1' : ''}`;
      out.push(result({ bench: 'http-latency', metric: `p50 ${s.label}`, value: med(s, (r) => r.wrk.p50 * 1000), unit: 'µs', reference: med(ref, (r) => r.wrk.p50 * 1000), referenceLabel: label, better: 'lower', note }));
      out.push(result({ bench: 'http-latency', metric: `p99 ${s.label}`, value: med(s, (r) => r.wrk.p99 * 1000), unit: 'µs', reference: med(ref, (r) => r.wrk.p99 * 1000), referenceLabel: label, better: 'lower', note }));
      out.push(result({ bench: 'http-latency', metric: `requests ${s.label}`, value: med(s, (r) => r.wrk.rps), unit: 'req/s', reference: med(ref, (r) => r.wrk.rps), referenceLabel: label, better: 'higher', note }));
      out.push(result({ bench: 'http-latency', metric: `cpu-load ${s.label}`, value: med(s, (r) => r.cpu), unit: '% of a core', reference: med(ref, (r) => r.cpu), referenceLabel: 'the reference server under the same load', better: 'lower', note }));
      out.push(result({ bench: 'http-latency', metric: `cpu-idle ${s.label}`, value: s.idleCpu, unit: '% of a core', reference: ref.idleCpu, referenceLabel: `the reference server idle (${idleMs / 1000} s)`, better: 'lower', note }));
    }
    return out;
  } finally {
    for (const s of sides.reverse()) {
      try { await s.server.stop(); } catch (e) { opts.log(`http-latency: stopping ${s.label}: ${(e as Error).message}`); }
    }
    if (nsB) destroyNetns(nsB);
    if (nsA) destroyNetns(nsA);
    rmSync(tmp, { recursive: true, force: true });
  }
}

export const httpLatency: Benchmark = {
  name: 'http-latency',
  description: 'HTTP latency at one connection (wrk -t1 -c1 --latency, p50/p99) to examples/hello-http under tstack run with each polling policy ' +
    '(AF_XDP by default), with the server CPU under that load and idle; reference: the same app on plain node, kernel sockets, over veth',
  needsRoot: true,
  needsCommands: ['ip', 'wrk'],
  run,
};
