// Buffer autotuning on a long fat path: two stacks on the memory wire with 20 ms one-way delay
// (40 ms RTT) and a 200 Mbit/s link (BDP 1 MB, four times the 256 KiB starting buffers), on the
// simulation's virtual clock, so the figure is the protocol's and not the machine's load. One
// connection streams 64 MiB with default buffers; the figure is its goodput over the transfer,
// the reference the same transfer between two Linux sockets with default buffers over the same
// link, built by bench/link-emulator.ts (two namespaces, two TAPs, this process as the link:
// bench/linux-bulk-emulated.ts). That part needs root; without it (or if it fails) the reference
// is the link rate itself and the note says why. Either way the note gives both as shares of the
// link rate. The Linux figure is on the real clock of a shared machine: the emulator's timer
// lateness (in the log) adds to its delay. A third line runs the tstack transfer with autotuning
// off (net.inet.tcp.sendbuf_auto / recvbuf_auto = 0), against the link rate.
import { Simulation } from '../test/helpers/sim.js';
import { parseIpv4 } from '../src/wire/addr.js';
import type { SysctlValue } from '../src/stack/sysctl.js';
import { emulatedLinkUnavailable, linuxBulkOverEmulatedLink, linuxCc, type LinuxBulkResult } from './linux-bulk-emulated.js';
import { median } from './http.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const LINK_BPS = 200e6;
const ONE_WAY_MS = 20;
const PORT = 5001;
/** A queue of one BDP at the bottleneck, as a well-sized router has. */
const QUEUE_LIMIT_BYTES = (LINK_BPS / 8) * (2 * ONE_WAY_MS) / 1000;

/**
 * One bulk transfer of `bytes`: goodput in MB/s (10^6 bytes per virtual second) over the whole
 * transfer (slow start and buffer growth included) and over its second half (the steady state).
 */
export function autotuneBulk(bytes: number, sysctl: Record<string, SysctlValue>): { mbps: number; steadyMbps: number; sndBuf: number; rcvBuf: number } {
  const sim = new Simulation({ seed: 'autotune', latencyMs: ONE_WAY_MS, bandwidthBps: LINK_BPS });
  try {
    const queue = { queueLimitBytes: QUEUE_LIMIT_BYTES };
    const a = sim.addHost({ name: 'a', addr: '198.18.0.1/24', sysctl, faults: { rateBps: LINK_BPS, ...queue } });
    const b = sim.addHost({ name: 'b', addr: '198.18.0.2/24', sysctl, faults: { rateBps: LINK_BPS, ...queue } });
    const l = b.stack.tcp.listen({ port: PORT });
    const sink = new Uint8Array(256 * 1024);
    let got = 0;
    let rcvBuf = 0;
    let t0 = -1;
    let tHalf = -1;
    l.onConnection = (s) => {
      s.onData = () => {
        if (t0 < 0) t0 = sim.now;
        for (let n = s.readInto(sink); n > 0; n = s.readInto(sink)) got += n;
        if (tHalf < 0 && got >= bytes / 2) tHalf = sim.now;
        rcvBuf = s.tcb.rcvBuf.capacity;
      };
    };
    const c = a.stack.tcp.connect({ raddr: parseIpv4('198.18.0.2')!, rport: PORT });
    const chunk = new Uint8Array(64 * 1024);
    let sent = 0;
    const fill = () => {
      while (sent < bytes) {
        const n = c.write(bytes - sent >= chunk.length ? chunk : chunk.subarray(0, bytes - sent));
        if (n === 0) return;
        sent += n;
      }
    };
    c.onConnect = fill;
    c.onDrain = fill;
    if (!sim.runUntil(() => got >= bytes, { maxMs: 600_000, maxSteps: 50_000_000 })) throw new Error(`tcp-autotune-memory: ${got}/${bytes} bytes (${sim.lastStop})`);
    return { mbps: bytes / 1e6 / ((sim.now - t0) / 1000), steadyMbps: bytes / 2 / 1e6 / ((sim.now - tHalf) / 1000), sndBuf: c.tcb.sndBuf.capacity, rcvBuf };
  } finally { sim.close(); }
}

/**
 * The Linux reference: `rounds` transfers over the emulated link, each figure the median of the
 * rounds. Null (with the reason in `why`) when it cannot run here or fails.
 */
async function linuxReference(bytes: number, rounds: number, opts: BenchOptions): Promise<{ mbps: number; steadyMbps: number; note: string } | { why: string }> {
  const why = emulatedLinkUnavailable();
  if (why !== null) return { why: `Linux reference skipped: ${why}` };
  const runs: LinuxBulkResult[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const r = await linuxBulkOverEmulatedLink(bytes, { rateBps: LINK_BPS, oneWayDelayMs: ONE_WAY_MS, queueLimitBytes: QUEUE_LIMIT_BYTES });
      const l = r.link;
      opts.log(`tcp-autotune-memory: Linux (${r.cc}, tcp_rmem ${r.rmem}, tcp_wmem ${r.wmem}) round ${i + 1}: ` +
        `${r.steadyMbps.toFixed(2)} MB/s second half, ${r.mbps.toFixed(2)} whole; ${r.retransmits} retransmitted, ` +
        `link dropped ${l.queueDropped} (ring ${l.ringFull}), delivered ${l.txFrames} frames late by ${(l.sumLateMs / Math.max(1, l.txFrames)).toFixed(2)} ms on average, ${l.maxLateMs.toFixed(1)} at worst`);
      runs.push(r);
    }
  } catch (e) {
    opts.log(`tcp-autotune-memory: Linux reference failed: ${(e as Error).stack ?? String(e)}`);
    return { why: `Linux reference failed: ${(e as Error).message.split('\n')[0]}` };
  }
  const link = LINK_BPS / 8 / 1e6;
  const pct = (xs: number[]) => xs.map((x) => (x / link).toFixed(2)).join(', ');
  const late = runs.reduce((s, r) => s + r.link.sumLateMs, 0) / Math.max(1, runs.reduce((s, r) => s + r.link.txFrames, 0));
  return {
    mbps: median(runs.map((r) => r.mbps)),
    steadyMbps: median(runs.map((r) => r.steadyMbps)),
    note: `Linux ${runs[0]!.cc}, median of ${rounds} (second half ${pct(runs.map((r) => r.steadyMbps))}, whole ${pct(runs.map((r) => r.mbps))} of link rate; ` +
      `emulated link late by ${late.toFixed(2)} ms per frame on average)`,
  };
}

export const tcpAutotuneMemory: Benchmark = {
  name: 'tcp-autotune-memory',
  description: 'TCP goodput with default buffers over the memory wire at 200 Mbit/s and 40 ms RTT (virtual clock); ' +
    'reference: two Linux sockets over the same link emulated between two namespaces (root; else the link rate); and with autotuning off',
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const bytes = (opts.quick ? 16 : 64) << 20;
    const link = LINK_BPS / 8 / 1e6;
    const on = autotuneBulk(bytes, {});
    opts.log(`tcp-autotune-memory: autotuned buffers send ${on.sndBuf}, receive ${on.rcvBuf}`);
    const off = autotuneBulk(bytes, { 'net.inet.tcp.sendbuf_auto': false, 'net.inet.tcp.recvbuf_auto': false });
    const linkLabel = `link rate (${LINK_BPS / 1e6} Mbit/s, RTT ${2 * ONE_WAY_MS} ms)`;
    const ref = await linuxReference(bytes, opts.quick ? 1 : 3, opts);
    const share = (x: number) => (x / link).toFixed(2);
    let steady = { reference: link, referenceLabel: linkLabel, note: 'second half of the transfer' };
    let whole = { reference: link, referenceLabel: linkLabel, note: 'slow start and buffer growth included' };
    if ('why' in ref) {
      opts.log(`tcp-autotune-memory: ${ref.why}`);
      steady.note += `; ${ref.why}`;
      whole.note += `; ${ref.why}`;
    } else {
      const label = `Linux sockets (${linuxCc()}), default buffers, emulated link`;
      steady = { reference: ref.steadyMbps, referenceLabel: label, note: `second half: tstack ${share(on.steadyMbps)}, Linux ${share(ref.steadyMbps)} of link rate; ${ref.note}` };
      whole = { reference: ref.mbps, referenceLabel: label, note: `whole transfer: tstack ${share(on.mbps)}, Linux ${share(ref.mbps)} of link rate` };
    }
    return [
      result({ bench: 'tcp-autotune-memory', metric: 'goodput-autotuned-steady', value: on.steadyMbps, unit: 'MB/s', better: 'higher', ...steady }),
      result({ bench: 'tcp-autotune-memory', metric: 'goodput-autotuned-whole', value: on.mbps, unit: 'MB/s', better: 'higher', ...whole }),
      result({ bench: 'tcp-autotune-memory', metric: 'goodput-fixed-256k', value: off.steadyMbps, unit: 'MB/s', reference: link, referenceLabel: linkLabel, better: 'higher', note: 'autotuning off, second half' }),
    ];
  },
};
