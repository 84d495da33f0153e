// Child process of bench/idle-conns.ts (run with --expose-gc): N idle connections through
// tstack/net, as an unmodified program holds them. Two tstack instances (each a Stack with its
// run loop, as `tstack up` starts them) are joined by the memory wire; one runs a
// `net.createServer` on 16 ports, the other `net.connect`s N clients to it (explicit local
// ports, like the engine child), in batches of 1,000 until each batch is connected and
// accepted. Prints one JSON line with this process's RSS and V8 heap (+ external) growth per
// connection pair after a full GC: Node-compatible Socket objects, engine TCBs and sockets
// together, everything the connections cost (no kernel state exists for them).
//   node --expose-gc dist/bench/idle-conns-net-child.js N
import { createServer, connect, type Socket } from '../src/api/net.js';
import { MemoryWire } from '../src/driver/memory.js';
import { parseConfig } from '../src/runtime/config.js';
import { startInstance, type Instance } from '../src/runtime/instance.js';
import { realClock } from '../src/runtime/loop.js';

const n = Number(process.argv[2] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('idle-conns-net-child: run with --expose-gc');

function instance(wire: MemoryWire, addr: string): Instance {
  return startInstance(parseConfig(`[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\naddr = "${addr}"\n`, 'idle-conns.toml'), { memoryWire: wire });
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function measure(): Promise<{ rss: number; heap: number; external: number }> {
  await sleep(50);
  gc!(); gc!();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external };
}

const wire = new MemoryWire({ clock: realClock });
const client = instance(wire, '198.18.31.1/24');
const server = instance(wire, '198.18.31.2/24');
const PORTS = 16;
const keep: Socket[] = [];
let accepted = 0, connected = 0;
// One handler for all sockets, as a server written for many connections would have.
function onConnection(s: Socket): void { accepted++; keep.push(s); }
function onConnect(): void { connected++; }
for (let p = 0; p < PORTS; p++) {
  const srv = createServer({ stack: server }, onConnection);
  await new Promise<void>((r) => srv.listen({ port: 6000 + p, host: '198.18.31.2', backlog: 4096 }, r));
}
const open = (i: number) => {
  keep.push(connect({ stack: client, host: '198.18.31.2', port: 6000 + (i % PORTS), localPort: 1024 + Math.floor(i / PORTS) }, onConnect));
};
async function until(pred: () => boolean, what: string): Promise<void> {
  const t = performance.now();
  while (!pred()) {
    if (performance.now() - t > 30_000) throw new Error(`${what}: ${connected} connected, ${accepted} accepted`);
    await sleep(1);
  }
}
// Warm the path (ARP, JIT) with one connection that stays open like the rest.
open(0);
await until(() => connected === 1 && accepted === 1, 'first connection');
const before = await measure();
const t0 = performance.now();
for (let i = 1; i <= n; i += 1000) {
  const end = Math.min(i + 1000, n + 1);
  for (let j = i; j < end; j++) open(j);
  await until(() => connected === end && accepted === end, `batch at ${i}`);
}
const ms = performance.now() - t0;
await sleep(300);
const after = await measure();
console.log(JSON.stringify({
  n, ms,
  rssPerPair: (after.rss - before.rss) / n,
  heapPerPair: (after.heap - before.heap) / n,
  externalPerPair: (after.external - before.external) / n,
}));
for (const s of keep) s.destroy();
client.stop(); server.stop();
