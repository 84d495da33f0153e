// Child process of bench/idle-conns.ts: the kernel's reference. Opens K idle TCP connections
// with node:net over 127.0.0.1 (both ends in this process) and prints one JSON line with what
// they cost: the kernel's slab memory (/proc/meminfo Slab: socket, inode, file, dentry objects)
// and this process's RSS and V8 heap (Node's own socket objects), each per connection pair.
//   node --expose-gc dist/bench/idle-conns-kernel-child.js K
import { readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

const k = Number(process.argv[2] ?? 2000);
const gc = (globalThis as { gc?: () => void }).gc!;

function slabKb(): number {
  const m = /^Slab:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : NaN;
}
function measure() { gc(); gc(); const m = process.memoryUsage(); return { slab: slabKb() * 1024, rss: m.rss, heap: m.heapUsed }; }

const keep: Socket[] = [];
const server = createServer((s) => { keep.push(s); });
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as AddressInfo).port;
const openOne = () => new Promise<void>((r, j) => { const c = connect(port, '127.0.0.1', () => r()); c.on('error', j); keep.push(c); });
await openOne();
await new Promise((r) => setTimeout(r, 200));
const before = measure();
for (let i = 0; i < k; i += 500) await Promise.all(Array.from({ length: Math.min(500, k - i) }, openOne));
while (keep.length < 2 * (k + 1)) await new Promise((r) => setTimeout(r, 10));
await new Promise((r) => setTimeout(r, 500));
const after = measure();
console.log(JSON.stringify({ k, slabPerPair: (after.slab - before.slab) / k, rssPerPair: (after.rss - before.rss) / k, heapPerPair: (after.heap - before.heap) / k }));
for (const s of keep) s.destroy();
server.close();
