// HTTP benchmarks with wrk: the same unmodified hello app (examples/hello-http/server.js) under
// `tstack run` (its sockets on the user-space stack, behind an AF_PACKET-driven veth by default,
// or a TAP device) and under plain Node on kernel sockets, measured in the same run. Root only;
// wrk (Debian package) must be on PATH.
//
//   namespace A: veth/tap (198.18.92.1/24) -- `tstack run` process: stack 198.18.92.2, :8080
//                veth (198.18.93.1/24) ------ namespace B: veth (198.18.93.2/24), `node server.js` :8080
//                wrk (both rounds start here)
//
// wrk runs in namespace A for both sides, so the client, its sockets and the kernel's TCP
// on the client side are the same; what differs is the server's network path: our driver
// (AF_PACKET rings on a veth, like the reference's link, or TAP), run loop, stack and
// tstack/net, or the kernel's veth and TCP under Node's libuv.
// TSTACK_BENCH_DRIVER=afpacket|afxdp|tap (default afpacket) chooses the tstack side's driver.
//
//   http-keepalive: wrk -t1 -c50 -d5s --latency               (requests over 50 persistent connections)
//   http-close:     wrk -t1 -c50 -d5s --latency -H 'Connection: close'   (one connection per request)
//
// With two or more CPUs the app (both of them) is pinned to CPU 0 and wrk to CPU 1 (taskset), so
// neither side competes with the load generator for a core.
//
// TSTACK_BENCH_POLL=busy|adaptive|interrupt chooses the run loop's poll mode for the tstack
// side (default adaptive, the configuration default).
// TSTACK_BENCH_PROF=<dir> runs the tstack side with `node --cpu-prof --cpu-prof-dir=<dir>`
// (one .cpuprofile per tstack run) for finding where the time goes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createNetns, destroyNetns, exec, hasCommand, ipIn, spawnIn } from '../src/runtime/netns.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

/** The package root (dist/bench/ -> ../../). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const APP = join(ROOT, 'examples', 'hello-http', 'server.js');
const TSTACK_BIN = join(ROOT, 'bin', 'tstack.js');
const PORT = 8080;
const READY = /hello-http: listening on/;

export interface WrkResult {
  /** "Requests/sec:" */
  rps: number;
  /** Completed requests ("N requests in Xs"). */
  requests: number;
  /** Latency percentiles from --latency, in ms (NaN when absent). */
  p50: number;
  p99: number;
  /** connect + read + write + timeout socket errors. */
  socketErrors: number;
  /** "Non-2xx or 3xx responses" (0 when absent). */
  non2xx: number;
}

/** "1.23ms" / "850.00us" / "1.01s" -> ms. */
function latencyMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (!m) return NaN;
  const x = Number(m[1]);
  switch (m[2]) {
    case 'us': return x / 1000;
    case 'ms': return x;
    case 's': return x * 1000;
    default: return x * 60_000;
  }
}

/** Parses wrk's summary (with --latency). Null when the requests/s line is missing. */
export function parseWrk(out: string): WrkResult | null {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!rps) return null;
  const reqs = /(\d+) requests in /.exec(out);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? latencyMs(m[1]!) : NaN;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const n2 = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    rps: Number(rps[1]),
    requests: reqs ? Number(reqs[1]) : NaN,
    p50: pct('50'),
    p99: pct('99'),
    socketErrors: se ? Number(se[1]) + Number(se[2]) + Number(se[3]) + Number(se[4]) : 0,
    non2xx: n2 ? Number(n2[1]) : 0,
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A server process (own process group) that printed its ready line. */
export interface Server {
  /** The process (and process group) id. */
  readonly pid: number;
  output(): string;
  /** SIGSTOP / SIGCONT to the group: the side not being measured must not use the CPU. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

export async function startServer(cmd: string, args: string[], env: NodeJS.ProcessEnv, what: string, ready: RegExp = READY): Promise<Server> {
  const child: ChildProcess = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let exited = false;
  let wake: (() => void) | null = null;
  const closed = new Promise<void>((resolve) => child.on('close', () => { exited = true; wake?.(); resolve(); }));
  child.on('error', (e) => { out += `spawn error: ${e.message}\n`; });
  const onData = (d: string) => { out += d; wake?.(); };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  const killGroup = (sig: NodeJS.Signals) => { try { process.kill(-child.pid!, sig); } catch { /* gone */ } };
  const stop = async () => {
    if (!exited) {
      killGroup('SIGCONT');
      killGroup('SIGTERM');
      const t = setTimeout(() => killGroup('SIGKILL'), 5000);
      await closed;
      clearTimeout(t);
    }
    killGroup('SIGKILL'); // anything left in the group
  };
  const deadline = Date.now() + 20_000;
  while (!ready.test(out)) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`${what} did not start (${exited ? 'exited' : 'timed out'}); output:\n${out}`);
    }
    await new Promise<void>((r) => { wake = r; setTimeout(r, 100); });
    wake = null;
  }
  return { pid: child.pid!, output: () => out, stop, freeze: () => killGroup('SIGSTOP'), thaw: () => killGroup('SIGCONT') };
}

interface HttpBenchSpec {
  name: string;
  metric: string;
  unit: string;
  description: string;
  /** Extra wrk arguments (the Connection: close header). */
  wrkArgs: string[];
  /** Third octets of the two /24s: tstack's TAP link and the reference's veth link. */
  tapNet: number;
  refNet: number;
  /** Several workers: `[stack] workers = N` for tstack, Node's `cluster` with N workers for the reference (N from the cores). */
  workers?: boolean;
}

async function runHttpBench(spec: HttpBenchSpec, opts: BenchOptions): Promise<BenchResult[]> {
  const duration = opts.quick ? 1 : 5;
  const warmup = opts.quick ? 1 : 3;
  // Five rounds: on a shared VM one round in five can run at half speed on either side.
  const rounds = opts.quick ? 1 : 5;
  const conns = 50;
  const workers = spec.workers ? Math.max(2, cpus().length) : 1;
  // N workers share the cores with wrk: no pinning then.
  const pin = !spec.workers && cpus().length >= 2 && hasCommand('taskset');
  const appPin = pin ? ['taskset', '-c', '0'] : [];
  const wrkPin = pin ? ['taskset', '-c', '1'] : [];
  const tag = process.pid % 100000;
  const tmp = mkdtempSync(join(tmpdir(), `tstack-bench-${spec.name}-`));
  const servers: Server[] = [];
  let nsA: string | null = null;
  let nsB: string | null = null;
  try {
    nsA = createNetns('bench-hta');
    nsB = createNetns('bench-hrefb');
    const stackIp = `198.18.${spec.tapNet}.2`;
    const refIp = `198.18.${spec.refNet}.2`;

    // wrk's namespace: with `Connection: close` tens of thousands of connections per run
    // leave TIME_WAIT entries on whichever side closes first, and a client that runs out of
    // ports spends its time in connect() searching for one (or fails with EADDRNOTAVAIL);
    // rounds would slow each other down. As for any load generator: the whole port range,
    // and reuse of TIME_WAIT ports for new connections (RFC 6191 timestamps). Same for both sides.
    exec(nsA, 'sysctl', ['-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);

    // Reference link: veth A <-> B.
    const va = `tsthva${tag}`, vb = `tsthvb${tag}`;
    ipIn(nsA, ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb, 'netns', nsB]);
    ipIn(nsA, ['addr', 'add', `198.18.${spec.refNet}.1/24`, 'dev', va]);
    ipIn(nsA, ['link', 'set', va, 'up']);
    ipIn(nsB, ['addr', 'add', `${refIp}/24`, 'dev', vb]);
    ipIn(nsB, ['link', 'set', vb, 'up']);

    // tstack: `tstack run` with a TAP port whose kernel side is in namespace A.
    const poll = process.env['TSTACK_BENCH_POLL'] ?? 'adaptive';
    if (!['busy', 'adaptive', 'interrupt'].includes(poll)) throw new Error(`TSTACK_BENCH_POLL=${poll}: expected busy, adaptive or interrupt`);
    const driver = process.env['TSTACK_BENCH_DRIVER'] ?? 'afpacket';
    if (!['tap', 'afpacket', 'afxdp'].includes(driver)) throw new Error(`TSTACK_BENCH_DRIVER=${driver}: expected tap, afpacket or afxdp`);
    const config = join(tmp, 'tstack.toml');
    writeFileSync(config, `# written by bench/http.ts
[stack]
poll = "${poll}"
workers = ${workers}

[[port]]
driver = "${driver}"
ifname = "tsthb${tag}"
addr = "${stackIp}/24"
host_addr = "198.18.${spec.tapNet}.1/24"
netns = "${nsA}"
`);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(PORT) };
    delete env['TSTACK_CONFIG'];
    delete env['TSTACK_REGISTER_PID'];
    const prof = process.env['TSTACK_BENCH_PROF'];
    const nodeOpts = prof ? ['--node-option', '--cpu-prof', '--node-option', `--cpu-prof-dir=${prof}`] : [];
    const [tsCmd, ...tsArgs] = [...appPin, process.execPath, TSTACK_BIN, 'run', '--config', config, ...nodeOpts, APP];
    const tstack = await startServer(tsCmd!, tsArgs, env, 'tstack run hello-http');
    servers.push(tstack);
    // The reference with several workers: Node's own cluster module forking the same app.
    const clusterApp = join(tmp, 'cluster.cjs');
    writeFileSync(clusterApp, `const cluster = require('node:cluster');
if (cluster.isPrimary) { for (let i = 0; i < ${workers}; i++) cluster.fork(); }
else import(${JSON.stringify(pathToFileURL(APP).href)});
`);
    const [refCmd, ...refArgs] = ['ip', 'netns', 'exec', nsB, ...appPin, process.execPath, spec.workers ? clusterApp : APP];
    const reference = await startServer(refCmd!, refArgs, env, 'node hello-http (reference)');
    servers.push(reference);

    const wrk = async (ip: string, seconds: number): Promise<WrkResult> => {
      // Only the server being measured runs: an idle tstack in busy poll mode would otherwise
      // spin on the reference's CPU (and either idle side still takes timer wake-ups).
      const [on, off] = ip === stackIp ? [tstack, reference] : [reference, tstack];
      off.freeze();
      on.thaw();
      const args = [...wrkPin, 'wrk', '-t1', `-c${conns}`, `-d${seconds}s`, '--latency', ...spec.wrkArgs, `http://${ip}:${PORT}/`];
      const r = await spawnIn(nsA!, args[0]!, args.slice(1), (seconds + 30) * 1000);
      const w = parseWrk(r.stdout);
      if (!w || r.code !== 0) throw new Error(`wrk against ${ip} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
      if (w.requests === 0) throw new Error(`wrk against ${ip} completed no request:\n${r.stdout}`);
      return w;
    };

    // Warm-up: ARP, the JIT on both sides, the listen queues; not measured.
    await wrk(stackIp, warmup);
    await wrk(refIp, warmup);

    const ours: WrkResult[] = [], ref: WrkResult[] = [];
    for (let i = 0; i < rounds; i++) {
      // Alternate which side goes first, so a drift in machine load hits both alike.
      const order = i % 2 === 0 ? [true, false] : [false, true];
      for (const isTstack of order) {
        const w = await wrk(isTstack ? stackIp : refIp, duration);
        (isTstack ? ours : ref).push(w);
        opts.log(`${spec.name} round ${i + 1} ${isTstack ? 'tstack   ' : 'reference'}: ${w.rps.toFixed(0)} req/s, ` +
          `p50 ${w.p50.toFixed(2)} ms, p99 ${w.p99.toFixed(2)} ms, ${w.socketErrors} socket errors, ${w.non2xx} non-2xx`);
      }
    }
    const errs = (ws: WrkResult[]) => ws.reduce((s, w) => s + w.socketErrors + w.non2xx, 0);
    const oursP99 = median(ours.map((w) => w.p99)), refP99 = median(ref.map((w) => w.p99));
    const fmt = (x: number) => x < 10 ? x.toFixed(2) : x.toFixed(1);
    const note = `wrk -t1 -c${conns} -d${duration}s --latency${spec.wrkArgs.length ? ` ${spec.wrkArgs.map((a) => a.includes(' ') ? `'${a}'` : a).join(' ')}` : ''}` +
      `, median of ${rounds} interleaved round${rounds > 1 ? 's' : ''} after a ${warmup} s warm-up, driver ${driver}, poll = "${poll}"` +
      `${spec.workers ? `, ${workers} workers (tstack run processes vs node cluster)` : ''}` +
      `${pin ? ', app on CPU 0 and wrk on CPU 1' : ''}; p99 latency ${fmt(oursP99)} ms tstack vs ${fmt(refP99)} ms reference` +
      `${errs(ours) || errs(ref) ? `; socket errors + non-2xx: tstack ${errs(ours)}, reference ${errs(ref)}` : ''}`;
    return [result({
      bench: spec.name, metric: spec.metric, value: median(ours.map((w) => w.rps)), unit: spec.unit,
      reference: median(ref.map((w) => w.rps)),
      referenceLabel: spec.workers ? `same app, node cluster (${workers} workers) on kernel sockets over veth` : 'same app, plain node on kernel sockets over veth', better: 'higher', note,
    })];
  } finally {
    for (const s of servers.reverse()) {
      try { await s.stop(); } catch (e) { opts.log(`${spec.name}: stopping a server: ${(e as Error).message}`); }
    }
    if (nsB) destroyNetns(nsB);
    if (nsA) destroyNetns(nsA);
    rmSync(tmp, { recursive: true, force: true });
  }
}

const KEEPALIVE: HttpBenchSpec = {
  name: 'http-keepalive', metric: 'requests', unit: 'req/s', wrkArgs: [], tapNet: 92, refNet: 93,
  description: 'HTTP requests/s over 50 keep-alive connections (wrk) to examples/hello-http under tstack run (TAP); ' +
    'reference: the same app on plain node, kernel sockets, over veth',
};

const CLOSE: HttpBenchSpec = {
  name: 'http-close', metric: 'connections', unit: 'conn/s', wrkArgs: ['-H', 'Connection: close'], tapNet: 94, refNet: 95,
  description: "HTTP requests/s with 'Connection: close' (one TCP connection per request, wrk -c50) to examples/hello-http " +
    'under tstack run (TAP); reference: the same app on plain node, kernel sockets, over veth',
};

export const httpKeepalive: Benchmark = {
  name: KEEPALIVE.name, description: KEEPALIVE.description, needsRoot: true, needsCommands: ['ip', 'wrk'],
  run: (opts) => runHttpBench(KEEPALIVE, opts),
};

export const httpClose: Benchmark = {
  name: CLOSE.name, description: CLOSE.description, needsRoot: true, needsCommands: ['ip', 'wrk'],
  run: (opts) => runHttpBench(CLOSE, opts),
};

const KEEPALIVE_WORKERS: HttpBenchSpec = {
  name: 'http-keepalive-workers', metric: 'requests', unit: 'req/s', wrkArgs: [], tapNet: 176, refNet: 177, workers: true,
  description: 'HTTP requests/s over 50 keep-alive connections (wrk) to examples/hello-http under tstack run with N workers (N = cores); ' +
    "reference: the same app under Node's cluster with N workers, kernel sockets, over veth",
};

const CLOSE_WORKERS: HttpBenchSpec = {
  name: 'http-close-workers', metric: 'connections', unit: 'conn/s', wrkArgs: ['-H', 'Connection: close'], tapNet: 178, refNet: 179, workers: true,
  description: "HTTP requests/s with 'Connection: close' (wrk -c50) to examples/hello-http under tstack run with N workers (N = cores); " +
    "reference: the same app under Node's cluster with N workers, kernel sockets, over veth",
};

export const httpKeepaliveWorkers: Benchmark = {
  name: KEEPALIVE_WORKERS.name, description: KEEPALIVE_WORKERS.description, needsRoot: true, needsCommands: ['ip', 'wrk'],
  run: (opts) => runHttpBench(KEEPALIVE_WORKERS, opts),
};

export const httpCloseWorkers: Benchmark = {
  name: CLOSE_WORKERS.name, description: CLOSE_WORKERS.description, needsRoot: true, needsCommands: ['ip', 'wrk'],
  run: (opts) => runHttpBench(CLOSE_WORKERS, opts),
};
