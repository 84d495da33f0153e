// Round-trip latency of each packet driver under each polling policy, beside the kernel, with
// the CPU each policy costs: `tap-ping`, `afpacket-ping` and `afxdp-ping`. The kernel pings the
// Stack through the driver (TAP device, or a veth pair the AF_PACKET / AF_XDP driver creates),
// with the RunLoop in each poll mode. Reference, measured right after each policy's run: the
// kernel pinging the kernel across a veth pair between two namespaces. Root only.
//
//   namespace A: driver's kernel end (198.18.N.1/24) ---- this process: Stack 198.18.N.2
//                veth (198.18.N+1.1/24) ----------------- namespace B: veth (198.18.N+1.2/24)
//
// Both pings start in namespace A, so ping itself, its socket and IP output are the same on
// both sides; what differs is who answers: our driver, loop and stack, or the kernel.
//
// Each run starts with a flood of echoes (ping -f, 20,000) at its responder: V8 optimizes the
// echo path only after it has run many times, and the steady state of a server is what is
// measured (the kernel's reference gets the same flood).
//
// "Low load" is one echo every 10 ms (ping -i 0.01): every request finds the loop idle unless a
// busy-poll budget keeps it spinning. CPU: this process's user+system time (process.cpuUsage)
// over the ping run and over one idle second after it, in percent of one core.
import { AfPacketDriver } from '../src/driver/afpacket.js';
import { AfXdpDriver } from '../src/driver/afxdp.js';
import { TapDriver } from '../src/driver/tap.js';
import type { Driver } from '../src/driver/types.js';
import { RunLoop, realClock } from '../src/runtime/loop.js';
import { Stack } from '../src/stack/stack.js';
import type { PollMode } from '../src/runtime/config.js';
import { createNetns, destroyNetns, ipIn, spawnIn } from '../src/runtime/netns.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

export interface PingStats { sent: number; received: number; min: number; avg: number; max: number; mdev: number; p50: number; p99: number }

/**
 * Parses iputils `ping` output: the summary ("rtt min/avg/max/mdev = 0.012/0.034/0.101/0.011
 * ms") and, when ping was not run with -q, the per-reply "time=0.034 ms" lines for the median
 * and p99 (NaN without them). Null when the summary is absent.
 */
export function parsePing(out: string): PingStats | null {
  const tx = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  if (!tx || !rtt) return null;
  const times = [...out.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  const pct = (p: number) => times.length ? times[Math.min(times.length - 1, Math.floor(p * times.length))]! : NaN;
  return { sent: +tx[1]!, received: +tx[2]!, min: +rtt[1]!, avg: +rtt[2]!, max: +rtt[3]!, mdev: +rtt[4]!, p50: pct(0.5), p99: pct(0.99) };
}

export async function ping(ns: string, dst: string, args: string[]): Promise<PingStats> {
  const r = await spawnIn(ns, 'ping', ['-n', ...args, dst], 120_000);
  const s = parsePing(r.stdout);
  if (!s || s.received === 0) throw new Error(`ping ${args.join(' ')} ${dst} from ${ns} got no reply (exit ${r.code}):\n${r.stdout.slice(-2000)}${r.stderr}`);
  return s;
}

/** Percent of one core this process used while `fn` ran. */
export async function cpuDuring<T>(fn: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const c = process.cpuUsage(c0);
  return { value, cpu: ((c.user + c.system) / 1000) / (performance.now() - t0) * 100 };
}

export interface Policy { label: string; poll: PollMode; busyPollUs?: number }
export const POLICIES: readonly Policy[] = [
  { label: 'interrupt', poll: 'interrupt' },
  // The configuration default: 64 idle iterations after traffic, then sleep.
  { label: 'adaptive', poll: 'adaptive' },
  // A budget shorter than the gap between requests: spins after each echo, then sleeps.
  { label: 'adaptive+busy200us', poll: 'adaptive', busyPollUs: 200 },
  // A budget longer than the gap: the loop never sleeps while the pings last.
  { label: 'adaptive+busy20ms', poll: 'adaptive', busyPollUs: 20_000 },
  { label: 'busy', poll: 'busy' },
];

type DriverKind = 'tap' | 'afpacket' | 'afxdp';

interface PingBenchSpec {
  name: string;
  driver: DriverKind;
  /** Third octet of the driver's /24; the reference veth uses the next one. */
  net: number;
  what: string;
}

function openDriver(kind: DriverKind, ifname: string, netns: string, hostAddr: string): Driver & { close(): void } {
  switch (kind) {
    case 'tap': return TapDriver.open({ ifname, netns, hostAddr });
    case 'afpacket': return AfPacketDriver.open({ ifname, netns, hostAddr });
    case 'afxdp': return AfXdpDriver.open({ ifname, netns, hostAddr });
  }
}

async function runPingBench(spec: PingBenchSpec, opts: BenchOptions): Promise<BenchResult[]> {
  const count = opts.quick ? 30 : 300;
  const tag = process.pid % 10000;
  const hostAddr = `198.18.${spec.net}.1/24`;
  const stackIp = `198.18.${spec.net}.2`;
  const refIp = `198.18.${spec.net + 1}.2`;
  const nsA = createNetns(`bping-${spec.driver[1]}`);
  let nsB: string | null = null;
  try {
    nsB = createNetns(`bping-${spec.driver[1]}-ref`);
    const va = `pbva${spec.driver[1]}${tag}`, vb = `pbvb${spec.driver[1]}${tag}`;
    ipIn(nsA, ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb, 'netns', nsB]);
    ipIn(nsA, ['addr', 'add', `198.18.${spec.net + 1}.1/24`, 'dev', va]);
    ipIn(nsA, ['link', 'set', va, 'up']);
    ipIn(nsB, ['addr', 'add', `${refIp}/24`, 'dev', vb]);
    ipIn(nsB, ['link', 'set', vb, 'up']);
    await ping(nsA, refIp, ['-q', '-c', '5', '-i', '0.01']);
    const warm = opts.quick ? 2_000 : 20_000;
    await ping(nsA, refIp, ['-q', '-f', '-c', String(warm)]);
    const args = ['-c', String(count), '-i', '0.01'];
    const label = 'kernel ping over veth between namespaces';
    const out: BenchResult[] = [];
    for (const p of POLICIES) {
      const drv = openDriver(spec.driver, `pb${spec.driver[1]}${tag}`, nsA, hostAddr);
      const stack = new Stack({ clock: realClock, name: 'bench' });
      const loop = new RunLoop({ stack, poll: p.poll, ...(p.busyPollUs !== undefined && { busyPollUs: p.busyPollUs }) });
      try {
        loop.addPort(drv, stack.addInterface(drv, { addr: `${stackIp}/24` }));
        loop.start();
        await ping(nsA, stackIp, ['-q', '-c', '5', '-i', '0.01']); // ARP
        // JIT: a flood, so the echo path runs optimized code as in a server that has been
        // serving (a few pings leave it in the interpreter: 96 µs per echo against 2-25 µs).
        await ping(nsA, stackIp, ['-q', '-f', '-c', String(warm)]);
        const ours = await cpuDuring(() => ping(nsA, stackIp, args));
        const ref = await ping(nsA, refIp, args);
        const idle = await cpuDuring(() => new Promise((r) => setTimeout(r, 1000)));
        const o = ours.value;
        const st = loop.stats();
        opts.log(`${spec.name} ${p.label}: tstack min/p50/avg/p99 ${o.min}/${o.p50}/${o.avg}/${o.p99} ms (${o.received}/${o.sent}), ` +
          `kernel ${ref.min}/${ref.p50}/${ref.avg}/${ref.p99} ms; CPU ${ours.cpu.toFixed(1)}% at one ping per 10 ms, ${idle.cpu.toFixed(1)}% idle; ` +
          `loop ${st.iterations} iterations, ${st.readableWakeups} readable / ${st.timerWakeups} timer wake-ups`);
        const lost = o.sent - o.received;
        const note = `ping -c ${count} -i 0.01, poll = "${p.poll}"${p.busyPollUs ? `, busy_poll_us = ${p.busyPollUs}` : ''}` +
          (lost ? `; tstack lost ${lost}/${o.sent}` : '');
        const m = (metric: string, value: number, refValue: number) =>
          out.push(result({ bench: spec.name, metric: `${metric} ${p.label}`, value: value * 1000, unit: 'µs', reference: refValue * 1000, referenceLabel: label, better: 'lower', note }));
        m('rtt-avg', o.avg, ref.avg);
        m('rtt-p50', o.p50, ref.p50);
        m('rtt-min', o.min, ref.min);
        out.push(result({ bench: spec.name, metric: `cpu-low-load ${p.label}`, value: ours.cpu, unit: '% of a core', reference: null, referenceLabel: 'one ping every 10 ms', better: 'lower', note }));
        out.push(result({ bench: spec.name, metric: `cpu-idle ${p.label}`, value: idle.cpu, unit: '% of a core', reference: null, referenceLabel: 'no traffic, 1 s', better: 'lower', note }));
      } finally {
        try { loop.stop(); } catch (e) { opts.log(`${spec.name}: stopping the loop: ${(e as Error).message}`); }
        drv.close();
      }
    }
    return out;
  } finally {
    if (nsB) destroyNetns(nsB);
    destroyNetns(nsA);
  }
}

function pingBench(spec: PingBenchSpec): Benchmark {
  return {
    name: spec.name,
    description: `round trip of kernel pings (ping -i 0.01) answered by the stack over ${spec.what} under each polling policy ` +
      '(interrupt, adaptive, adaptive with busy_poll_us 200 and 20000, busy), with the CPU each costs at low load and idle; ' +
      'reference: kernel-to-kernel ping across a veth pair between two namespaces',
    needsRoot: true,
    needsCommands: ['ip', 'ping'],
    run: (opts) => runPingBench(spec, opts),
  };
}

export const tapPing = pingBench({ name: 'tap-ping', driver: 'tap', net: 90, what: 'TAP' });
export const afpacketPing = pingBench({ name: 'afpacket-ping', driver: 'afpacket', net: 86, what: 'AF_PACKET rings on a veth' });
export const afxdpPing = pingBench({ name: 'afxdp-ping', driver: 'afxdp', net: 92, what: 'AF_XDP (copy mode on veth)' });
