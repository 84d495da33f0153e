// Memory per idle TCP connection. Engine level: two Stacks on the memory wire in a child process
// (bench/idle-conns-child.ts, --expose-gc) open N idle established connections (1,000,000; 20,000
// with --quick); the figure is V8 heap plus external memory after a full GC, per connection end
// (half a pair). Reference, same run: the Linux kernel's own cost per socket, measured as the
// growth of /proc/meminfo's Slab while a node:net process holds K idle loopback connections
// (bench/idle-conns-kernel-child.ts; K = 5,000, under the default 20,000-descriptor limit), per
// connection end. The note adds that process's RSS and heap per pair (Node's socket objects).
// Not measured yet: the same through tstack/net sockets.
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
  description: 'bytes per idle established TCP connection end in the engine (two stacks on the memory wire, 1M connections); ' +
    "reference: the Linux kernel's slab memory per idle loopback socket held by node:net",
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const n = opts.quick ? 20_000 : 1_000_000;
    const k = opts.quick ? 2_000 : 5_000;
    const engine = await child('idle-conns-child.js', [String(n)], opts.quick ? 2048 : 16_384);
    opts.log(`idle-conns engine: ${n} pairs in ${(engine['ms']! / 1000).toFixed(1)} s, heap ${engine['heapPerPair']!.toFixed(0)} B + external ${engine['externalPerPair']!.toFixed(0)} B per pair`);
    const kernel = await child('idle-conns-kernel-child.js', [String(k)], 2048);
    opts.log(`idle-conns kernel: ${k} pairs, slab ${kernel['slabPerPair']!.toFixed(0)} B, node RSS ${kernel['rssPerPair']!.toFixed(0)} B, node heap ${kernel['heapPerPair']!.toFixed(0)} B per pair`);
    const perEnd = (engine['heapPerPair']! + engine['externalPerPair']!) / 2;
    return [result({
      bench: 'idle-conns', metric: 'engine-bytes-per-conn', value: perEnd, unit: 'B', reference: kernel['slabPerPair']! / 2,
      referenceLabel: 'Linux slab memory per idle socket', better: 'lower',
      note: `${n.toLocaleString('en-US')} connection pairs: heap ${engine['heapPerPair']!.toFixed(0)} B + external ${engine['externalPerPair']!.toFixed(0)} B per pair; ` +
        `kernel reference over ${k.toLocaleString('en-US')} loopback pairs, whose node:net process also used ${kernel['rssPerPair']!.toFixed(0)} B of RSS ` +
        `(${kernel['heapPerPair']!.toFixed(0)} B of heap) per pair`,
    })];
  },
};
