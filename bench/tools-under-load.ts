// What the operator tools cost a busy instance: HTTP requests/s (wrk) to examples/hello-http
// under `tstack run`, with and without tool requests on its control socket during the run, in
// interleaved rounds (medians). Issue 12's claim: 100 concurrent tool requests during a wrk run
// leave throughput within 10% of a run without them, and a client that never reads does not slow
// the stack.
//
//   namespace A: veth/tap (198.18.190.1/24) -- `tstack run` hello-http: stack 198.18.190.2, :8080
//                wrk -t1 -c50 (in namespace A)
//
// "With tools" rounds: every second of the run, a wave of 100 clients connects at once and each
// sends one request (half `counters`, half the full `snapshot` with every socket: what netstat,
// top and ifconfig ask), from this process; and at the start of the run one more client sends
// 5,000 snapshot requests and never reads a reply (the instance stops serving it once 1 MiB of
// replies is unread, OUTPUT_HIGH_WATER, and cuts it off STALL_MS later). Every reply must arrive.
// TSTACK_BENCH_DRIVER=afpacket|tap (default afpacket). Root only; wrk on PATH.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../src/cli/client.js';
import { STALL_MS } from '../src/runtime/control.js';
import { createNetns, destroyNetns, hasCommand, spawnIn } from '../src/runtime/netns.js';
import { median, parseWrk, startServer, type Server } from './http.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const APP = join(ROOT, 'examples', 'hello-http', 'server.js');
const TSTACK_BIN = join(ROOT, 'bin', 'tstack.js');
const PORT = 8080;
const NET = 190;
const WAVE = 100;

interface ToolLoad {
  answered: number;
  asked: number;
  waveMs: number[];
  /** ms from the start of the run until the never-reading client was cut off (NaN: it was not). */
  greedyCutMs: number;
}

/** One wave: WAVE clients at once, one request each; resolves with how many got their answer. */
async function wave(sock: string): Promise<number> {
  const answers = await Promise.all(Array.from({ length: WAVE }, async (_, i) => {
    try {
      const c = await ControlClient.connect(sock);
      try {
        const r = await c.request<{ interfaces?: unknown[] }>(i % 2 ? 'snapshot' : 'counters', { sockets: true });
        return Array.isArray(r.interfaces) ? 1 : 0;
      } finally { c.close(); }
    } catch { return 0; }
  }));
  return answers.reduce<number>((a, b) => a + b, 0);
}

/** Tool traffic for `seconds`: a never-reading client, then a wave each second. */
async function toolLoad(sock: string, seconds: number): Promise<ToolLoad> {
  const t0 = Date.now();
  const load: ToolLoad = { answered: 0, asked: 0, waveMs: [], greedyCutMs: NaN };
  const greedy = createConnection(sock);
  greedy.on('error', () => {});
  greedy.on('close', () => { load.greedyCutMs = Date.now() - t0; });
  greedy.once('connect', () => {
    greedy.pause();
    greedy.write('{"v":1,"id":1,"cmd":"snapshot","args":{"sockets":true,"sysctl":true}}\n'.repeat(5000));
  });
  for (let s = 0; s < seconds; s++) {
    const due = t0 + 500 + s * 1000;
    if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
    const w0 = Date.now();
    load.answered += await wave(sock);
    load.asked += WAVE;
    load.waveMs.push(Date.now() - w0);
  }
  // The instance cuts it off STALL_MS after its unread replies passed OUTPUT_HIGH_WATER; one
  // still connected well after that was never cut off: say so (NaN), and go.
  const until = t0 + STALL_MS + 3000;
  while (Number.isNaN(load.greedyCutMs) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  greedy.removeAllListeners('close');
  greedy.destroy();
  return load;
}

async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const duration = opts.quick ? 2 : 5;
  const rounds = opts.quick ? 1 : 7;
  const conns = 50;
  const pin = cpus().length >= 2 && hasCommand('taskset');
  const appPin = pin ? ['taskset', '-c', '0'] : [];
  const wrkPin = pin ? ['taskset', '-c', '1'] : [];
  const tag = process.pid % 100000;
  const tmp = mkdtempSync(join(tmpdir(), 'tstack-bench-tools-'));
  const sock = join(tmp, 'bench.sock');
  const driver = process.env['TSTACK_BENCH_DRIVER'] ?? 'afpacket';
  if (!['tap', 'afpacket'].includes(driver)) throw new Error(`TSTACK_BENCH_DRIVER=${driver}: expected tap or afpacket`);
  let ns: string | null = null;
  let server: Server | null = null;
  try {
    ns = createNetns('bench-tools');
    const stackIp = `198.18.${NET}.2`;
    const config = join(tmp, 'tstack.toml');
    writeFileSync(config, `# written by bench/tools-under-load.ts
[stack]
poll = "adaptive"

[[port]]
driver = "${driver}"
ifname = "tstto${tag}"
addr = "${stackIp}/24"
host_addr = "198.18.${NET}.1/24"
netns = "${ns}"

[control]
socket = "${sock}"
`);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(PORT) };
    delete env['TSTACK_CONFIG'];
    delete env['TSTACK_REGISTER_PID'];
    const [cmd, ...args] = [...appPin, process.execPath, TSTACK_BIN, 'run', '--config', config, APP];
    server = await startServer(cmd!, args, env, 'tstack run hello-http');
    const s = server;

    const wrk = async (seconds: number) => {
      const a = [...wrkPin, 'wrk', '-t1', `-c${conns}`, `-d${seconds}s`, `http://${stackIp}:${PORT}/`];
      const r = await spawnIn(ns!, a[0]!, a.slice(1), (seconds + 30) * 1000);
      const w = parseWrk(r.stdout);
      if (!w || r.code !== 0 || w.requests === 0) throw new Error(`wrk failed (exit ${r.code}):\n${r.stdout}${r.stderr}\n${s.output()}`);
      return w;
    };
    await wrk(opts.quick ? 1 : 3); // warm-up

    const plain: number[] = [], withTools: number[] = [];
    const loads: ToolLoad[] = [];
    for (let i = 0; i < rounds; i++) {
      for (const tools of i % 2 === 0 ? [false, true] : [true, false]) {
        const load = tools ? toolLoad(sock, duration) : null;
        const w = await wrk(duration);
        const l = load ? await load : null;
        (tools ? withTools : plain).push(w.rps);
        if (l) loads.push(l);
        opts.log(`round ${i + 1} ${tools ? 'with tools' : 'wrk alone '}: ${w.rps.toFixed(0)} req/s` +
          (l ? `, ${l.answered}/${l.asked} tool requests answered, waves ${l.waveMs.join('/')} ms, never-reading client cut off after ${l.greedyCutMs} ms` : ''));
      }
    }
    const answered = loads.reduce((n, l) => n + l.answered, 0), asked = loads.reduce((n, l) => n + l.asked, 0);
    if (answered !== asked) throw new Error(`only ${answered} of ${asked} tool requests were answered`);
    const waves = loads.flatMap((l) => l.waveMs);
    const cut = loads.map((l) => l.greedyCutMs);
    const note = `wrk -t1 -c${conns} -d${duration}s, median of ${rounds} interleaved rounds, driver ${driver}${pin ? ', app on CPU 0 and wrk on CPU 1' : ''}; ` +
      `with tools: a wave of ${WAVE} concurrent requests each second (${asked} in all, every one answered; a wave took median ${median(waves).toFixed(0)} ms, max ${Math.max(...waves)} ms) ` +
      `and a client that never reads (cut off after median ${median(cut.filter((x) => !Number.isNaN(x))).toFixed(0)} ms; ${cut.filter((x) => Number.isNaN(x)).length} not cut off)`;
    return [result({
      bench: 'tools-under-load', metric: 'requests', unit: 'req/s', value: median(withTools), reference: median(plain),
      referenceLabel: 'the same instance, no tool requests', better: 'higher', note,
    })];
  } finally {
    try { await server?.stop(); } catch (e) { opts.log(`stopping tstack run: ${(e as Error).message}`); }
    if (ns) destroyNetns(ns);
    rmSync(tmp, { recursive: true, force: true });
  }
}

export const toolsUnderLoad: Benchmark = {
  name: 'tools-under-load',
  description: 'HTTP req/s (wrk) to hello-http under tstack run while waves of 100 concurrent control-socket requests and a never-reading client hit it; ' +
    'reference: the same instance without them (interleaved rounds)',
  needsRoot: true, needsCommands: ['ip', 'wrk'],
  run,
};
