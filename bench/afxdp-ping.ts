// AF_XDP round-trip latency under each polling policy, beside the kernel, with the CPU each
// policy costs: the kernel pings the Stack through an AfXdpDriver on a veth pair it creates
// (copy mode, our XDP program), the RunLoop in interrupt mode, adaptive mode (the default
// iteration budget) and adaptive mode with a busy-poll time budget. Reference, same run: the
// kernel pinging the kernel across a veth pair between two namespaces. Root only.
//
//   namespace A: xdp kernel end (198.18.92.1/24) ---- this process: Stack 198.18.92.2
//                veth (198.18.93.1/24) -------------- namespace B: veth (198.18.93.2/24)
//
// CPU: this process's user+system time (process.cpuUsage) over the ping run ("low load": one
// echo every 10 ms) and over one idle second after it, as a percentage of one core.
import { AfXdpDriver } from '../src/driver/afxdp.js';
import { RunLoop, realClock } from '../src/runtime/loop.js';
import { Stack } from '../src/stack/stack.js';
import type { PollMode } from '../src/runtime/config.js';
import { createNetns, destroyNetns, ipIn, spawnIn } from '../src/runtime/netns.js';
import { parsePing, type PingStats } from './tap-ping.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const HOST_ADDR = '198.18.92.1/24';
const STACK_ADDR = '198.18.92.2/24';
const REF_A = '198.18.93.1/24';
const REF_B = '198.18.93.2/24';
const ip = (cidr: string) => cidr.split('/')[0]!;

async function ping(ns: string, dst: string, args: string[]): Promise<PingStats> {
  const r = await spawnIn(ns, 'ping', ['-q', '-n', ...args, dst], 120_000);
  const s = parsePing(r.stdout);
  if (!s || s.received === 0) throw new Error(`ping ${args.join(' ')} ${dst} from ${ns} got no reply (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return s;
}

interface Policy { label: string; poll: PollMode; busyPollUs?: number }
const POLICIES: Policy[] = [
  { label: 'interrupt', poll: 'interrupt' },
  { label: 'adaptive', poll: 'adaptive' },
  { label: 'adaptive+busy200us', poll: 'adaptive', busyPollUs: 200 },
  { label: 'adaptive+busy20ms', poll: 'adaptive', busyPollUs: 20_000 },
];

/** Percent of one core this process used while `fn` ran. */
async function cpuDuring<T>(fn: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const c = process.cpuUsage(c0);
  return { value, cpu: ((c.user + c.system) / 1000) / (performance.now() - t0) * 100 };
}

export const afxdpPing: Benchmark = {
  name: 'afxdp-ping',
  description: 'round trip of kernel pings (ping -i 0.01) answered by the stack over AF_XDP (copy mode on veth) under each polling policy, ' +
    'with the CPU it costs at low load and idle; reference: kernel-to-kernel ping across a veth pair between two namespaces',
  needsRoot: true,
  needsCommands: ['ip', 'ping'],
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const count = opts.quick ? 30 : 300;
    const tag = process.pid % 100000;
    const nsA = createNetns('bench-xdp');
    let nsB: string | null = null;
    try {
      nsB = createNetns('bench-xref');
      const va = `xbva${tag}`, vb = `xbvb${tag}`;
      ipIn(nsA, ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb, 'netns', nsB]);
      ipIn(nsA, ['addr', 'add', REF_A, 'dev', va]);
      ipIn(nsA, ['link', 'set', va, 'up']);
      ipIn(nsB, ['addr', 'add', REF_B, 'dev', vb]);
      ipIn(nsB, ['link', 'set', vb, 'up']);
      await ping(nsA, ip(REF_B), ['-c', '5', '-i', '0.01']);
      const args = ['-c', String(count), '-i', '0.01'];
      const label = 'kernel ping over veth between namespaces';
      const out: BenchResult[] = [];
      for (const p of POLICIES) {
        const drv = AfXdpDriver.open({ ifname: `xbp${tag}`, netns: nsA, hostAddr: HOST_ADDR });
        const stack = new Stack({ clock: realClock, name: 'bench' });
        const loop = new RunLoop({ stack, poll: p.poll, ...(p.busyPollUs !== undefined && { busyPollUs: p.busyPollUs }) });
        try {
          loop.addPort(drv, stack.addInterface(drv, { addr: STACK_ADDR }));
          loop.start();
          await ping(nsA, ip(STACK_ADDR), ['-c', '5', '-i', '0.01']); // ARP, JIT
          const ours = await cpuDuring(() => ping(nsA, ip(STACK_ADDR), args));
          const ref = await ping(nsA, ip(REF_B), args);
          const idle = await cpuDuring(() => new Promise((r) => setTimeout(r, 1000)));
          opts.log(`afxdp-ping ${p.label}: tstack min/avg/max ${ours.value.min}/${ours.value.avg}/${ours.value.max} ms (${ours.value.received}/${ours.value.sent}), ` +
            `kernel ${ref.min}/${ref.avg}/${ref.max} ms; CPU ${ours.cpu.toFixed(1)}% at one ping per 10 ms, ${idle.cpu.toFixed(1)}% idle`);
          const note = `ping -c ${count} -i 0.01, poll = "${p.poll}"${p.busyPollUs ? `, busy_poll_us = ${p.busyPollUs}` : ''}`;
          out.push(result({ bench: 'afxdp-ping', metric: `rtt-avg ${p.label}`, value: ours.value.avg * 1000, unit: 'µs', reference: ref.avg * 1000, referenceLabel: label, better: 'lower', note }));
          out.push(result({ bench: 'afxdp-ping', metric: `rtt-min ${p.label}`, value: ours.value.min * 1000, unit: 'µs', reference: ref.min * 1000, referenceLabel: label, better: 'lower', note }));
          out.push(result({ bench: 'afxdp-ping', metric: `cpu-low-load ${p.label}`, value: ours.cpu, unit: '% of a core', reference: null, referenceLabel: 'one ping every 10 ms', better: 'lower', note }));
          out.push(result({ bench: 'afxdp-ping', metric: `cpu-idle ${p.label}`, value: idle.cpu, unit: '% of a core', reference: null, referenceLabel: 'no traffic, 1 s', better: 'lower', note }));
        } finally {
          try { loop.stop(); } catch (e) { opts.log(`afxdp-ping: stopping the loop: ${(e as Error).message}`); }
          drv.close();
        }
      }
      return out;
    } finally {
      if (nsB) destroyNetns(nsB);
      destroyNetns(nsA);
    }
  },
};
