// TAP wake-up latency and echo round trip, without the stack (root only).
//
//   node dist/bench/tap-wakeup.js [samples=300]
//
// Setup: namespace A holds our TAP's kernel side (198.18.9.1/24); the driver answers ARP and
// ICMP echo for 198.18.9.2 with the in-place responder of test/helpers/l2-responder.ts
// (swap MAC/IP, fix the ICMP checksum incrementally). Reference: the kernel answering the
// same ping across a veth pair (namespace A -> namespace B).
//
// 1. kernel -> callback: iputils ping writes gettimeofday() into each echo request just
//    before sendmsg(); the driver's readable callback reads the wall clock on entry
//    (performance.timeOrigin + performance.now(), µs resolution) and subtracts. This covers
//    ping's send syscall, IP output, the TAP queue, epoll, libuv and the callback dispatch.
// 2. echo RTT: ping -i 0.01 (paced: every request wakes an idle loop) and ping -f (flood:
//    next request as soon as the reply arrives), and ping -i 0.2 (the loop and the CPU fully
//    idle between requests), for our responder and for the kernel.
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { BufferPool, type PacketBuffer } from '../src/base/pktbuf.js';
import { TapDriver } from '../src/driver/tap.js';
import { parseIpv4, parseMac } from '../src/wire/addr.js';
import { Reply, respond } from '../test/helpers/l2-responder.js';
import { createNetns, destroyAllNetns, hasCommand, ipIn, isRoot, spawnIn } from '../src/runtime/netns.js';

const OUR_IP = parseIpv4('198.18.9.2')!;
const OUR_MAC = parseMac('02:00:5e:00:09:02')!;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!;
}

interface PingStats { sent: number; received: number; min: number; avg: number; max: number; mdev: number; ms: number; }
function parsePing(out: string): PingStats {
  const tx = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(out);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  if (!tx || !rtt) throw new Error(`cannot parse ping output:\n${out}`);
  return { sent: +tx[1]!, received: +tx[2]!, ms: +tx[3]!, min: +rtt[1]!, avg: +rtt[2]!, max: +rtt[3]!, mdev: +rtt[4]! };
}

async function ping(ns: string, addr: string, args: string[]): Promise<PingStats> {
  const r = await spawnIn(ns, 'ping', ['-q', ...args, addr], 120_000);
  if (r.code !== 0) throw new Error(`ping ${addr} failed: ${r.stdout}${r.stderr}`);
  return parsePing(r.stdout);
}

async function main(): Promise<void> {
  if (!isRoot() || !hasCommand('ip') || !hasCommand('ping')) {
    console.error('tap-wakeup: needs root, ip and ping');
    process.exit(2);
  }
  const samples = Number(process.argv[2] ?? 300);
  const nsA = createNetns('wake');
  const nsB = createNetns('wakeref');
  const pool = new BufferPool();
  const ifname = `tstw${process.pid % 100000}`;
  const drv = TapDriver.open({ ifname, netns: nsA, hostAddr: '198.18.9.1/24', mac: OUR_MAC, pool });
  try {
    // Reference peer: the kernel in B across a veth pair, same /24 so no routing differs.
    const va = `tstva${process.pid % 10000}`, vb = `tstvb${process.pid % 10000}`;
    ipIn(nsA, ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb, 'netns', nsB]);
    ipIn(nsA, ['addr', 'add', '198.18.10.1/24', 'dev', va]);
    ipIn(nsA, ['link', 'set', va, 'up']);
    ipIn(nsB, ['addr', 'add', '198.18.10.2/24', 'dev', vb]);
    ipIn(nsB, ['link', 'set', vb, 'up']);
    // Static neighbor: measure the data path, not ARP.
    ipIn(nsA, ['neigh', 'replace', '198.18.9.2', 'lladdr', '02:00:5e:00:09:02', 'dev', ifname, 'nud', 'permanent']);

    const lat: number[] = [];
    const out: PacketBuffer[] = [];
    let wakeups = 0, frames = 0;
    let measure = false;
    const t0 = performance.timeOrigin * 1000;
    drv.onReadable(() => {
      const nowUs = t0 + performance.now() * 1000;
      wakeups++;
      const n = drv.rxBurst(out, 32);
      frames += n;
      for (let k = 0; k < n; k++) {
        const b = out[k]!;
        const d = b.data, s = b.start;
        // An echo request (IPv4, no options, type 8) carrying ping's struct timeval (2 x i64).
        if (measure && b.length >= 14 + 20 + 8 + 16 && d[s + 23] === 1 && d[s + 14] === 0x45 && d[s + 34] === 8) {
          const sentUs = Number(b.view.getBigInt64(s + 42, true)) * 1e6 + Number(b.view.getBigInt64(s + 50, true));
          lat.push(nowUs - sentUs);
        }
        if (respond(b, OUR_MAC, OUR_IP) !== Reply.None) drv.transmit(b);
        else b.release();
      }
      drv.flush();
    });

    const pingN = Math.max(100, samples);
    measure = true;
    const paced = await ping(nsA, '198.18.9.2', ['-c', String(pingN), '-i', '0.01']);
    measure = false;
    lat.sort((a, b) => a - b);
    const pacedRef = await ping(nsA, '198.18.10.2', ['-c', String(pingN), '-i', '0.01']);
    const slow = await ping(nsA, '198.18.9.2', ['-c', '50', '-i', '0.2']);
    const slowRef = await ping(nsA, '198.18.10.2', ['-c', '50', '-i', '0.2']);
    const flood = await ping(nsA, '198.18.9.2', ['-f', '-c', String(pingN * 20)]);
    const floodRef = await ping(nsA, '198.18.10.2', ['-f', '-c', String(pingN * 20)]);

    const f1 = (x: number) => x.toFixed(1);
    const fmtUs = (ms: number) => f1(ms * 1000);
    const rows: string[][] = [
      ['what', 'tstack TAP driver', 'kernel over veth', 'ratio'],
      [`ping sendmsg -> readable callback µs (n=${lat.length}) min / p50 / p90 / p99 / max`,
        `${f1(lat[0]!)} / ${f1(pct(lat, 0.5))} / ${f1(pct(lat, 0.9))} / ${f1(pct(lat, 0.99))} / ${f1(lat[lat.length - 1]!)}`, '-', '-'],
      [`ping -i 0.01 RTT µs (n=${pingN}) min / avg / max`,
        `${fmtUs(paced.min)} / ${fmtUs(paced.avg)} / ${fmtUs(paced.max)}`,
        `${fmtUs(pacedRef.min)} / ${fmtUs(pacedRef.avg)} / ${fmtUs(pacedRef.max)}`,
        `${(paced.avg / pacedRef.avg).toFixed(2)}x avg`],
      ['ping -i 0.2 RTT µs (n=50) min / avg / max',
        `${fmtUs(slow.min)} / ${fmtUs(slow.avg)} / ${fmtUs(slow.max)}`,
        `${fmtUs(slowRef.min)} / ${fmtUs(slowRef.avg)} / ${fmtUs(slowRef.max)}`,
        `${(slow.avg / slowRef.avg).toFixed(2)}x avg`],
      [`ping -f RTT µs (n=${pingN * 20}) min / avg`,
        `${fmtUs(flood.min)} / ${fmtUs(flood.avg)}`, `${fmtUs(floodRef.min)} / ${fmtUs(floodRef.avg)}`,
        `${(flood.avg / floodRef.avg).toFixed(2)}x avg`],
      ['ping -f echoes/s', `${Math.round(flood.received / (flood.ms / 1000))}`,
        `${Math.round(floodRef.received / (floodRef.ms / 1000))}`,
        `${((flood.received / flood.ms) / (floodRef.received / floodRef.ms)).toFixed(2)}x`],
      ['frames per wake-up (whole run)', (frames / Math.max(1, wakeups)).toFixed(2), '-', '-'],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const row of rows) console.log(`| ${row.map((x, c) => x.padEnd(widths[c]!)).join(' | ')} |`);
    console.log(`\nmachine: ${cpus().length}x ${cpus()[0]?.model ?? '?'}, node ${process.version}, ` +
      `loadavg ${loadavg().map((x) => x.toFixed(2)).join(' ')}; losses: paced ${paced.sent - paced.received}, flood ${flood.sent - flood.received}`);
  } finally {
    drv.close();
    destroyAllNetns();
  }
}

main().catch((e) => { console.error(e); destroyAllNetns(); process.exit(1); });
