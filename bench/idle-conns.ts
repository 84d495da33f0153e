// Memory per idle TCP connection, two figures.
// Engine level: two Stacks on the memory wire in a child process (bench/idle-conns-child.ts,
// --expose-gc) open N idle established connections (1,000,000; 20,000 with --quick); the figure
// is V8 heap plus external memory after a full GC, per connection end (half a pair). Its
// reference, same run: the Linux kernel's own cost per socket, measured as the growth of
// /proc/meminfo's Slab while a node:net process holds K idle loopback connections
// (bench/idle-conns-kernel-child.ts; K = 5,000, under the default 20,000-descriptor limit), per
// connection end.
// Through tstack/net: a child (bench/idle-conns-net-child.ts) holds M idle connections made by
// net.createServer and net.connect on two tstack instances joined by the memory wire
// (M = 20,000; 2,000 with --quick); the figure is that process's RSS growth per connection end.
// Its reference is what the same connections cost on kernel sockets: the node:net process's RSS
// growth per connection end plus the kernel's slab per socket (the TCP state tstack keeps in the
// process, the kernel keeps in its slab). The note gives the node:net RSS alone too.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));

function child(file: string, args: string[], heapMb: number): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', `--max-old-space-size=${heapMb}`, `${HERE}${file}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    p.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`${file} exited ${code}: ${out}${err}`));
      else resolve(JSON.parse(line) as Record<string, number>);
    });
  });
}

export const idleConns: Benchmark = {
  name: 'idle-conns',
  description: 'bytes per idle established TCP connection end in the engine (two stacks on the memory wire, 1M connections) and through ' +
    "tstack/net (RSS, 20k connections); references: the Linux kernel's slab per idle loopback socket, and node:net's RSS plus that slab",
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const n = opts.quick ? 20_000 : 1_000_000;
    const k = opts.quick ? 2_000 : 5_000;
    const engine = await child('idle-conns-child.js', [String(n)], opts.quick ? 2048 : 16_384);
    opts.log(`idle-conns engine: ${n} pairs in ${(engine['ms']! / 1000).toFixed(1)} s, heap ${engine['heapPerPair']!.toFixed(0)} B + external ${engine['externalPerPair']!.toFixed(0)} B per pair`);
    const kernel = await child('idle-conns-kernel-child.js', [String(k)], 2048);
    opts.log(`idle-conns kernel: ${k} pairs, slab ${kernel['slabPerPair']!.toFixed(0)} B, node RSS ${kernel['rssPerPair']!.toFixed(0)} B, node heap ${kernel['heapPerPair']!.toFixed(0)} B per pair`);
    const m = opts.quick ? 2_000 : 20_000;
    const net = await child('idle-conns-net-child.js', [String(m)], 4096);
    opts.log(`idle-conns tstack/net: ${m} pairs, RSS ${net['rssPerPair']!.toFixed(0)} B, heap ${net['heapPerPair']!.toFixed(0)} B + external ${net['externalPerPair']!.toFixed(0)} B per pair`);
    const perEnd = (engine['heapPerPair']! + engine['externalPerPair']!) / 2;
    const kernelRss = kernel['rssPerPair']! / 2, kernelSlab = kernel['slabPerPair']! / 2;
    return [result({
      bench: 'idle-conns', metric: 'engine-bytes-per-conn', value: perEnd, unit: 'B', reference: kernelSlab,
      referenceLabel: 'Linux slab memory per idle socket', better: 'lower',
      note: `${n.toLocaleString('en-US')} connection pairs: heap ${engine['heapPerPair']!.toFixed(0)} B + external ${engine['externalPerPair']!.toFixed(0)} B per pair; ` +
        `kernel reference over ${k.toLocaleString('en-US')} loopback pairs, whose node:net process also used ${kernel['rssPerPair']!.toFixed(0)} B of RSS ` +
        `(${kernel['heapPerPair']!.toFixed(0)} B of heap) per pair`,
    }), result({
      bench: 'idle-conns', metric: 'net-rss-per-conn', value: net['rssPerPair']! / 2, unit: 'B', reference: kernelRss + kernelSlab,
      referenceLabel: 'node:net RSS + Linux slab per idle socket', better: 'lower',
      note: `tstack/net: ${m.toLocaleString('en-US')} net.createServer/net.connect pairs on the memory wire, RSS ${net['rssPerPair']!.toFixed(0)} B ` +
        `(heap ${net['heapPerPair']!.toFixed(0)} B + external ${net['externalPerPair']!.toFixed(0)} B) per pair; kernel sockets: node:net RSS ` +
        `${kernelRss.toFixed(0)} B + slab ${kernelSlab.toFixed(0)} B per connection end`,
    })];
  },
};
