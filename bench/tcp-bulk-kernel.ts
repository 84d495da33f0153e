// Bulk TCP between an app on tstack and a Node peer on kernel sockets, both directions, for each
// driver that creates its own veth/TAP (tap, afpacket, afxdp), beside the same app under plain
// node on kernel sockets over a veth, in the same run. Root only.
//
//   namespace A: driver's kernel end (198.18.96.1/24) -- `tstack run` bulk-server: stack 198.18.96.2
//                veth (198.18.97.1/24) ----------------- namespace B: veth (198.18.97.2/24), node bulk-server
//                node bulk-client (kernel sockets) connects to either
//
// The server (bench/fixtures/bulk-server.js) is an ordinary node:net program; the client
// (bench/fixtures/bulk-client.js) runs in namespace A on kernel sockets for both sides, so what
// differs is the server's network path. "download": the server sends (tstack transmits);
// "upload": the client sends (tstack receives). Each figure is the median of interleaved rounds;
// the notes give every round. With two or more CPUs the server is pinned to CPU 0 and the client
// to CPU 1. TSTACK_BENCH_BULK_DRIVERS=tap,afpacket,afxdp picks the drivers (default: all three,
// afxdp skipped with the reason when the kernel refuses it). TSTACK_BENCH_BULK_DIRS=download|upload
// measures one direction; TSTACK_BENCH_BULK_NODE_OPTION passes one option to the node running the
// app under tstack run (e.g. --cpu-prof-dir=/tmp/prof with --cpu-prof: see docs/benchmarks.md).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetns, destroyNetns, hasCommand, ipIn, spawnIn } from '../src/runtime/netns.js';
import { median, startServer, type Server } from './http.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVER = join(ROOT, 'bench', 'fixtures', 'bulk-server.js');
const CLIENT = join(ROOT, 'bench', 'fixtures', 'bulk-client.js');
const TSTACK_BIN = join(ROOT, 'bin', 'tstack.js');
const PORT = 9000;
const READY = /bulk-server: listening on/;
const DRIVERS = ['tap', 'afpacket', 'afxdp'] as const;
type Driver = (typeof DRIVERS)[number];

async function transfer(ns: string, pin: string[], ip: string, verb: 'send' | 'recv', bytes: number): Promise<number> {
  const args = [...pin, process.execPath, CLIENT, ip, String(PORT), verb, String(bytes)];
  const r = await spawnIn(ns, args[0]!, args.slice(1), 300_000);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) throw new Error(`bulk-client ${verb} ${bytes} to ${ip} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
  const { seconds } = JSON.parse(line) as { seconds: number };
  return bytes / seconds / 1e6;
}

export const tcpBulkKernel: Benchmark = {
  name: 'tcp-bulk-kernel',
  description: 'MB/s of one TCP stream between an app under tstack run (per driver) and a node peer on kernel sockets, download and upload; ' +
    'reference: the same app on plain node, kernel sockets, over veth',
  needsRoot: true,
  needsCommands: ['ip'],
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const bytes = opts.quick ? 64 << 20 : 1 << 30;
    const rounds = opts.quick ? 1 : 3;
    const pin = cpus().length >= 2 && hasCommand('taskset');
    const appPin = pin ? ['taskset', '-c', '0'] : [];
    const cliPin = pin ? ['taskset', '-c', '1'] : [];
    const wanted = (process.env['TSTACK_BENCH_BULK_DRIVERS'] ?? DRIVERS.join(',')).split(',').map((d) => d.trim()) as Driver[];
    for (const d of wanted) if (!DRIVERS.includes(d)) throw new Error(`TSTACK_BENCH_BULK_DRIVERS: unknown driver ${d} (expected ${DRIVERS.join(', ')})`);
    const tag = process.pid % 100000;
    const tmp = mkdtempSync(join(tmpdir(), 'tstack-bench-bulk-'));
    const servers: Server[] = [];
    let nsA: string | null = null, nsB: string | null = null;
    const out: BenchResult[] = [];
    try {
      nsA = createNetns('bench-bka');
      nsB = createNetns('bench-bkb');
      const va = `tsbkva${tag}`, vb = `tsbkvb${tag}`;
      ipIn(nsA, ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb, 'netns', nsB]);
      ipIn(nsA, ['addr', 'add', '198.18.97.1/24', 'dev', va]);
      ipIn(nsA, ['link', 'set', va, 'up']);
      ipIn(nsB, ['addr', 'add', '198.18.97.2/24', 'dev', vb]);
      ipIn(nsB, ['link', 'set', vb, 'up']);
      const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(PORT) };
      delete env['TSTACK_CONFIG'];
      delete env['TSTACK_REGISTER_PID'];
      const reference = await startServer('ip', ['netns', 'exec', nsB, ...appPin, process.execPath, SERVER], env, 'node bulk-server (reference)', READY);
      servers.push(reference);
      const refIp = '198.18.97.2';
      const stackIp = '198.18.96.2';

      for (const driver of wanted) {
        const config = join(tmp, `${driver}.toml`);
        writeFileSync(config, `# written by bench/tcp-bulk-kernel.ts\n[[port]]\ndriver = "${driver}"\nifname = "tsbk${driver.slice(0, 2)}${tag}"\n` +
          `addr = "${stackIp}/24"\nhost_addr = "198.18.96.1/24"\nnetns = "${nsA}"\n`);
        let tstack: Server;
        try {
          const nodeOpts = (process.env['TSTACK_BENCH_BULK_NODE_OPTION'] ?? '').split(' ').filter((o) => o !== '').flatMap((o) => ['--node-option', o]);
          tstack = await startServer(appPin[0] ?? process.execPath, [...appPin.slice(1), ...(appPin.length ? [process.execPath] : []), TSTACK_BIN, 'run', '--config', config, ...nodeOpts, SERVER],
            env, `tstack run bulk-server (${driver})`, READY);
        } catch (e) {
          if (driver === 'afxdp') { opts.log(`tcp-bulk-kernel: afxdp skipped: ${(e as Error).message.split('\n')[0]}`); continue; }
          throw e;
        }
        try {
          const dirs = (process.env['TSTACK_BENCH_BULK_DIRS'] ?? 'download,upload').split(',');
          for (const verb of ['send', 'recv'] as const) {
            const dir = verb === 'send' ? 'download' : 'upload';
            if (!dirs.includes(dir)) continue;
            // Warm-up (ARP, JIT, buffers): a tenth of the size, not measured.
            tstack.thaw(); await transfer(nsA, cliPin, stackIp, verb, bytes >> 4);
            reference.thaw(); await transfer(nsA, cliPin, refIp, verb, bytes >> 4);
            const ours: number[] = [], ref: number[] = [];
            for (let i = 0; i < rounds; i++) {
              for (const isOurs of i % 2 === 0 ? [true, false] : [false, true]) {
                const [on, off] = isOurs ? [tstack, reference] : [reference, tstack];
                off.freeze(); on.thaw();
                const mbs = await transfer(nsA, cliPin, isOurs ? stackIp : refIp, verb, bytes);
                (isOurs ? ours : ref).push(mbs);
                opts.log(`tcp-bulk-kernel ${driver} ${dir} round ${i + 1} ${isOurs ? 'tstack   ' : 'reference'}: ${mbs.toFixed(0)} MB/s`);
              }
            }
            tstack.thaw(); reference.thaw();
            const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
            out.push(result({
              bench: 'tcp-bulk-kernel', metric: `${driver}-${dir}`, value: median(ours), unit: 'MB/s', reference: median(ref),
              referenceLabel: 'same app, plain node on kernel sockets over veth', better: 'higher',
              note: `${bytes >> 20} MiB per transfer, median of ${rounds} interleaved rounds (tstack ${list(ours)}; reference ${list(ref)})` +
                `${pin ? ', server on CPU 0, client on CPU 1' : ''}`,
            }));
          }
        } finally {
          await tstack.stop();
        }
      }
      return out;
    } finally {
      for (const s of servers) { try { await s.stop(); } catch { /* gone */ } }
      if (nsB) destroyNetns(nsB);
      if (nsA) destroyNetns(nsA);
      rmSync(tmp, { recursive: true, force: true });
    }
  },
};
