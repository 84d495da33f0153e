// Where the time goes inside the process between a frame's readiness report and its reply
// leaving, per driver and polling policy (a diagnostic, not a registered benchmark; root):
//
//   node dist/bench/wakeup-probe.js [tap|afpacket|afxdp] [interrupt|adaptive|busy] [busy_poll_us]
//   PING="-c 2000 -f" node dist/bench/wakeup-probe.js afxdp      # other ping arguments
//   node --cpu-prof --cpu-prof-interval 100 dist/bench/wakeup-probe.js afpacket   # with a profile
//
// The kernel in a fresh namespace pings a Stack behind the driver (default: -c 300 -i 0.01, one
// echo every 10 ms, so every request finds the loop idle). The driver's methods are wrapped to
// stamp performance.now() at: the readable callback's entry (R), rxBurst returning the request
// (X), the stack handing the reply to transmit() (T), and the flush that kicked it out ending
// (F). Printed: ping's RTT (min/p50/avg), the medians and p90s of R→X (the loop reaching the
// ring), X→T (the stack: Ethernet, IPv4, ICMP, the reply built in place) and T→F (the kick), and
// this process's CPU. The rest of the round trip is the kernel's and the two wake-ups (this
// process, then ping).
import { AfPacketDriver } from '../src/driver/afpacket.js';
import { AfXdpDriver } from '../src/driver/afxdp.js';
import { TapDriver } from '../src/driver/tap.js';
import type { Driver } from '../src/driver/types.js';
import { RunLoop, realClock } from '../src/runtime/loop.js';
import { Stack } from '../src/stack/stack.js';
import { createNetns, destroyNetns, spawnIn } from '../src/runtime/netns.js';
import type { PollMode } from '../src/runtime/config.js';
import { parsePing } from './driver-ping.js';

const kind = process.argv[2] ?? 'afpacket';
const poll = (process.argv[3] ?? 'interrupt') as PollMode;
const busyPollUs = Number(process.argv[4] ?? 0);
const pingArgs = (process.env['PING'] ?? '-c 300 -i 0.01').split(' ').filter(Boolean);

const ns = createNetns('wprobe');
const ifname = `wp${kind[1]}${process.pid % 10000}`;
const hostAddr = '198.18.94.1/24';
const drv: Driver & { close(): void } = kind === 'tap' ? TapDriver.open({ ifname, netns: ns, hostAddr })
  : kind === 'afxdp' ? AfXdpDriver.open({ ifname, netns: ns, hostAddr })
  : AfPacketDriver.open({ ifname, netns: ns, hostAddr });
const stack = new Stack({ clock: realClock, name: 'probe' });
const loop = new RunLoop({ stack, poll, busyPollUs });
loop.addPort(drv, stack.addInterface(drv, { addr: '198.18.94.2/24' }));

const now = () => performance.now();
let tR = 0, tX = 0, tT = 0;
const rToX: number[] = [], xToT: number[] = [], tToF: number[] = [];
const onReadable = drv.onReadable.bind(drv);
drv.onReadable = (cb) => onReadable(cb === null ? null : () => { tR = now(); cb(); });
const rxBurst = drv.rxBurst.bind(drv);
drv.rxBurst = (out, max) => {
  const n = rxBurst(out, max);
  if (n > 0) { tX = now(); if (tR) rToX.push(tX - tR); tR = 0; }
  return n;
};
const transmit = drv.transmit.bind(drv);
drv.transmit = (b) => { if (tX) { tT = now(); xToT.push(tT - tX); tX = 0; } transmit(b); };
const flush = drv.flush.bind(drv);
drv.flush = () => { flush(); if (tT) { tToF.push(now() - tT); tT = 0; } };
loop.start();

const q = (a: number[], p: number) => a.length ? ([...a].sort((x, y) => x - y)[Math.floor(p * (a.length - 1))]! * 1000).toFixed(1) : '-';
const line = (what: string, a: number[]) => `${what} ${q(a, 0.5)} / ${q(a, 0.9)} µs`;
try {
  await spawnIn(ns, 'ping', ['-q', '-c', '5', '-i', '0.01', '198.18.94.2']); // ARP, JIT
  rToX.length = xToT.length = tToF.length = 0;
  const c0 = process.cpuUsage(), t0 = now();
  const r = await spawnIn(ns, 'ping', ['-n', ...pingArgs, '198.18.94.2'], 120_000);
  const c = process.cpuUsage(c0);
  const s = parsePing(r.stdout);
  if (!s) throw new Error(`ping failed:\n${r.stdout}${r.stderr}`);
  console.log(`${kind} poll=${poll}${busyPollUs ? ` busy_poll_us=${busyPollUs}` : ''} ping ${pingArgs.join(' ')}: ` +
    `RTT min/p50/avg ${(s.min * 1000).toFixed(0)}/${(s.p50 * 1000).toFixed(0)}/${(s.avg * 1000).toFixed(0)} µs, ` +
    `CPU ${(((c.user + c.system) / 1000) / (now() - t0) * 100).toFixed(1)}%`);
  console.log(`  p50 / p90: ${line('readable→rx', rToX)}; ${line('rx→transmit', xToT)}; ${line('transmit→kicked', tToF)}`);
} finally {
  loop.stop();
  destroyNetns(ns);
}
