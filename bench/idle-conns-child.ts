// Child process of bench/idle-conns.ts (run with --expose-gc): opens N idle established TCP
// connections between two Stacks on the memory wire and prints one JSON line with the heap and
// external memory they hold after a full GC:
//   node --expose-gc dist/bench/idle-conns-child.js N
// Connections go from A's ephemeral-free explicit ports (1024..65535) to 16 listening ports on
// B, in batches of 1,000 run to ESTABLISHED before the next batch.
import { MemoryPair } from './tcp-bulk-memory.js';

const n = Number(process.argv[2] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('idle-conns-child: run with --expose-gc');

function measure(): { heap: number; external: number } {
  gc!(); gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external };
}

const pair = new MemoryPair({ tso: true });
// Room for all of them (the default net.inet.tcp.maxconn is 65,536 per stack).
for (const st of [pair.a, pair.b]) st.sysctl.set('net.inet.tcp.maxconn', Math.max(65_536, n + 16));
const PORTS = 16;
let accepted = 0;
const keep: unknown[] = [];
for (let p = 0; p < PORTS; p++) {
  const l = pair.b.tcp.listen({ port: 6000 + p, backlog: 4096 });
  l.onConnection = (s) => { accepted++; keep.push(s); };
}
// Warm the path (ARP, JIT) with one connection that stays open like the rest.
let connected = 0;
// One handler for all connections (a closure each would be counted as the engine's memory).
const onConnect = () => { connected++; };
const open = (i: number) => {
  const c = pair.a.tcp.connect({ raddr: pair.bAddr, rport: 6000 + (i % PORTS), lport: 1024 + Math.floor(i / PORTS) });
  c.onConnect = onConnect;
  keep.push(c);
};
open(0);
if (!pair.runUntil(() => connected === 1 && accepted === 1, 5000)) throw new Error(`first connection not established (${pair.drops()})`);
const before = measure();
const t0 = performance.now();
for (let i = 1; i <= n; i += 1000) {
  const end = Math.min(i + 1000, n + 1);
  for (let j = i; j < end; j++) open(j);
  if (!pair.runUntil(() => connected === end && accepted === end, 30_000)) {
    throw new Error(`batch at ${i}: ${connected} connected, ${accepted} accepted (${pair.drops()})`);
  }
}
const ms = performance.now() - t0;
// Let delayed ACKs and timers settle: a few idle iterations.
for (let k = 0; k < 100; k++) pair.step();
const after = measure();
console.log(JSON.stringify({
  n, ms,
  heapPerPair: (after.heap - before.heap) / n,
  externalPerPair: (after.external - before.external) / n,
}));
pair.close();
