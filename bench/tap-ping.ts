// TAP round-trip latency: the kernel pings the Stack through a TAP device (TapDriver + Stack +
// RunLoop in interrupt mode, as `tstack up` runs it). Reference, same run: the kernel pinging
// the kernel across a veth pair between two namespaces. Root only.
//
//   namespace A: tap (198.18.90.1/24) ---- this process: Stack 198.18.90.2
//                veth (198.18.91.1/24) --- namespace B: veth (198.18.91.2/24)
//
// Both pings start in namespace A, so ping itself, its socket and IP output are the same on
// both sides; what differs is who answers: our driver, loop and stack, or the kernel.
import { TapDriver } from '../src/driver/tap.js';
import { RunLoop, realClock } from '../src/runtime/loop.js';
import { Stack } from '../src/stack/stack.js';
import { createNetns, destroyNetns, ipIn, spawnIn } from '../src/runtime/netns.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const HOST_ADDR = '198.18.90.1/24';
const STACK_ADDR = '198.18.90.2/24';
const REF_A = '198.18.91.1/24';
const REF_B = '198.18.91.2/24';
const ip = (cidr: string) => cidr.split('/')[0]!;

export interface PingStats { sent: number; received: number; min: number; avg: number; max: number; mdev: number }

/** Parses iputils `ping -q` output ("rtt min/avg/max/mdev = 0.012/0.034/0.101/0.011 ms"). Null when absent. */
export function parsePing(out: string): PingStats | null {
  const tx = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  if (!tx || !rtt) return null;
  return { sent: +tx[1]!, received: +tx[2]!, min: +rtt[1]!, avg: +rtt[2]!, max: +rtt[3]!, mdev: +rtt[4]! };
}

async function ping(ns: string, dst: string, args: string[]): Promise<PingStats> {
  const r = await spawnIn(ns, 'ping', ['-q', '-n', ...args, dst], 120_000);
  const s = parsePing(r.stdout);
  if (!s || s.received === 0) throw new Error(`ping ${args.join(' ')} ${dst} from ${ns} got no reply (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return s;
}

export const tapPing: Benchmark = {
  name: 'tap-ping',
  description: 'round trip of kernel pings (ping -i 0.01) answered by the stack over TAP (interrupt-mode run loop); ' +
    'reference: kernel-to-kernel ping across a veth pair between two namespaces',
  needsRoot: true,
  needsCommands: ['ip', 'ping'],
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const count = opts.quick ? 30 : 200;
    const tag = process.pid % 100000;
    const nsA = createNetns('bench-tap');
    let nsB: string | null = null;
    let loop: RunLoop | null = null;
    let drv: TapDriver | null = null;
    try {
      nsB = createNetns('bench-ref');
      drv = TapDriver.open({ ifname: `tstbp${tag}`, netns: nsA, hostAddr: HOST_ADDR });
      const stack = new Stack({ clock: realClock, name: 'bench' });
      const ifIndex = stack.addInterface(drv, { addr: STACK_ADDR });
      loop = new RunLoop({ stack, poll: 'interrupt' });
      loop.addPort(drv, ifIndex);
      loop.start();

      const va = `tstva${tag}`, vb = `tstvb${tag}`;
      ipIn(nsA, ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb, 'netns', nsB]);
      ipIn(nsA, ['addr', 'add', REF_A, 'dev', va]);
      ipIn(nsA, ['link', 'set', va, 'up']);
      ipIn(nsB, ['addr', 'add', REF_B, 'dev', vb]);
      ipIn(nsB, ['link', 'set', vb, 'up']);

      // Warm-up: ARP on both paths, JIT on ours; not measured.
      await ping(nsA, ip(STACK_ADDR), ['-c', '5', '-i', '0.01']);
      await ping(nsA, ip(REF_B), ['-c', '5', '-i', '0.01']);

      const out: BenchResult[] = [];
      // Default size (56 bytes of data) and the largest unfragmented one at MTU 1500.
      for (const size of [56, 1472]) {
        const args = ['-c', String(count), '-i', '0.01', '-s', String(size)];
        const ours = await ping(nsA, ip(STACK_ADDR), args);
        const ref = await ping(nsA, ip(REF_B), args);
        opts.log(`tap-ping -s ${size}: tstack min/avg/max ${ours.min}/${ours.avg}/${ours.max} ms (${ours.received}/${ours.sent}), ` +
          `kernel ${ref.min}/${ref.avg}/${ref.max} ms (${ref.received}/${ref.sent})`);
        const suffix = size === 56 ? '' : `-s${size}`;
        const lost = ours.sent - ours.received;
        const note = `ping -c ${count} -i 0.01 -s ${size} (${size + 8}-byte ICMP)` + (lost ? `; tstack lost ${lost}/${ours.sent}` : '');
        const label = 'kernel ping over veth between namespaces';
        out.push(result({ bench: 'tap-ping', metric: `rtt-avg${suffix}`, value: ours.avg * 1000, unit: 'µs', reference: ref.avg * 1000, referenceLabel: label, better: 'lower', note }));
        out.push(result({ bench: 'tap-ping', metric: `rtt-min${suffix}`, value: ours.min * 1000, unit: 'µs', reference: ref.min * 1000, referenceLabel: label, better: 'lower', note }));
      }
      const st = loop.stats();
      opts.log(`tap-ping: loop ${st.iterations} iterations, ${st.rxFrames} frames, ${st.readableWakeups} readable / ${st.timerWakeups} timer wake-ups; drops ${JSON.stringify(stack.drops)}`);
      return out;
    } finally {
      // loop.stop() closes the driver; close it directly if the loop never started.
      try { if (loop) loop.stop(); else drv?.close(); } catch (e) { opts.log(`tap-ping: stopping the loop: ${(e as Error).message}`); }
      if (nsB) destroyNetns(nsB);
      destroyNetns(nsA);
    }
  },
};
