// Buffer autotuning on a long fat path: two stacks on the memory wire with 20 ms one-way delay
// (40 ms RTT) and a 200 Mbit/s link (BDP 1 MB, four times the 256 KiB starting buffers), on the
// simulation's virtual clock, so the figure is the protocol's and not the machine's load. One
// connection streams 64 MiB with default buffers; the figure is its goodput over the transfer,
// the reference the link rate itself (ratio = share of the link filled). A second line runs the
// same transfer with autotuning off (net.inet.tcp.sendbuf_auto / recvbuf_auto = 0).
import { Simulation } from '../test/helpers/sim.js';
import { parseIpv4 } from '../src/wire/addr.js';
import type { SysctlValue } from '../src/stack/sysctl.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const LINK_BPS = 200e6;
const ONE_WAY_MS = 20;
const PORT = 5001;

/**
 * One bulk transfer of `bytes`: goodput in MB/s (10^6 bytes per virtual second) over the whole
 * transfer (slow start and buffer growth included) and over its second half (the steady state).
 */
export function autotuneBulk(bytes: number, sysctl: Record<string, SysctlValue>): { mbps: number; steadyMbps: number; sndBuf: number; rcvBuf: number } {
  const sim = new Simulation({ seed: 'autotune', latencyMs: ONE_WAY_MS, bandwidthBps: LINK_BPS });
  try {
    // A queue of one BDP at the bottleneck, as a well-sized router has.
    const queue = { queueLimitBytes: (LINK_BPS / 8) * (2 * ONE_WAY_MS) / 1000 };
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

export const tcpAutotuneMemory: Benchmark = {
  name: 'tcp-autotune-memory',
  description: 'TCP goodput with default buffers over the memory wire at 200 Mbit/s and 40 ms RTT (virtual clock), ' +
    'against the link rate; and with autotuning off',
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const bytes = (opts.quick ? 16 : 64) << 20;
    const link = LINK_BPS / 8 / 1e6;
    const on = autotuneBulk(bytes, {});
    opts.log(`tcp-autotune-memory: autotuned buffers send ${on.sndBuf}, receive ${on.rcvBuf}`);
    const off = autotuneBulk(bytes, { 'net.inet.tcp.sendbuf_auto': false, 'net.inet.tcp.recvbuf_auto': false });
    const label = `link rate (${LINK_BPS / 1e6} Mbit/s, RTT ${2 * ONE_WAY_MS} ms)`;
    return [
      result({ bench: 'tcp-autotune-memory', metric: 'goodput-autotuned-steady', value: on.steadyMbps, unit: 'MB/s', reference: link, referenceLabel: label, better: 'higher', note: 'second half of the transfer' }),
      result({ bench: 'tcp-autotune-memory', metric: 'goodput-autotuned-whole', value: on.mbps, unit: 'MB/s', reference: link, referenceLabel: label, better: 'higher', note: 'slow start and buffer growth included' }),
      result({ bench: 'tcp-autotune-memory', metric: 'goodput-fixed-256k', value: off.steadyMbps, unit: 'MB/s', reference: link, referenceLabel: label, better: 'higher', note: 'autotuning off, second half' }),
    ];
  },
};
