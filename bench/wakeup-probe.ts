// Scratch probe (not registered): where the time goes inside the process between the readable
// callback and the transmit kick, per driver, in interrupt mode.
import { AfPacketDriver } from '../src/driver/afpacket.js';
import { AfXdpDriver } from '../src/driver/afxdp.js';
import { TapDriver } from '../src/driver/tap.js';
import { RunLoop, realClock } from '../src/runtime/loop.js';
import { Stack } from '../src/stack/stack.js';
import { createNetns, destroyNetns, spawnIn } from '../src/runtime/netns.js';
import type { Driver } from '../src/driver/types.js';
import type { PollMode } from '../src/runtime/config.js';

const which = process.argv[2] ?? 'afpacket';
const poll = (process.argv[3] ?? 'interrupt') as PollMode;
const busy = Number(process.argv[4] ?? 0);
const ns = createNetns('lat13p');
const tag = process.pid % 10000;
let drv: Driver & { close(): void };
if (which === 'tap') drv = TapDriver.open({ ifname: `l13t${tag}`, netns: ns, hostAddr: '198.18.94.1/24' });
else if (which === 'afxdp') drv = AfXdpDriver.open({ ifname: `l13x${tag}`, netns: ns, hostAddr: '198.18.94.1/24' });
else drv = AfPacketDriver.open({ ifname: `l13p${tag}`, netns: ns, hostAddr: '198.18.94.1/24' });
const stack = new Stack({ clock: realClock, name: 'probe' });
const loop = new RunLoop({ stack, poll, busyPollUs: busy });
loop.addPort(drv, stack.addInterface(drv, { addr: '198.18.94.2/24' }));
const now = () => performance.now();
let tReadable = 0, tRx = 0;
const dReadToRx: number[] = [], dRxToTx: number[] = [];
const origOn = drv.onReadable.bind(drv);
drv.onReadable = (cb) => origOn(cb === null ? null : () => { tReadable = now(); cb(); });
const origRx = drv.rxBurst.bind(drv);
drv.rxBurst = (out, max) => { const n = origRx(out, max); if (n > 0) { tRx = now(); if (tReadable) dReadToRx.push(tRx - tReadable); tReadable = 0; } return n; };
const origTx = drv.transmit.bind(drv);
drv.transmit = (b) => { if (tRx) { dRxToTx.push(now() - tRx); tRx = 0; } origTx(b); };
const st = stack as unknown as Record<string, (...a: unknown[]) => unknown>;
const acc: Record<string, number[]> = {};
for (const m of ['input']) {
  const o = st[m]!.bind(stack); acc[m] = [];
  st[m] = (...a: unknown[]) => { const t = now(); const r = o(...a); acc[m]!.push(now() - t); return r; };
}
loop.start();
const q = (a: number[], p: number) => { const s = [...a].sort((x, y) => x - y); return (s[Math.floor(p * (s.length - 1))]! * 1000).toFixed(1); };
(async () => {
  try {
    await spawnIn(ns, 'ping', ['-q', '-c', '5', '-i', '0.01', '198.18.94.2']);
    dReadToRx.length = 0; dRxToTx.length = 0;
    const c0 = process.cpuUsage(); const t0 = now();
    const r = await spawnIn(ns, 'ping', ['-q', ...(process.env.PARGS ?? '-c 300 -i 0.01').split(' '), '198.18.94.2'], 60000);
    const c = process.cpuUsage(c0);
    console.log(which, poll, busy, r.stdout.split('\n').filter((l) => l.includes('rtt')).join(''), `cpu ${(((c.user + c.system) / 1000) / (now() - t0) * 100).toFixed(1)}%`);
    console.log(`readable→rx µs p50/p90 ${q(dReadToRx, 0.5)}/${q(dReadToRx, 0.9)} (n=${dReadToRx.length}); rx→tx ${q(dRxToTx, 0.5)}/${q(dRxToTx, 0.9)} (n=${dRxToTx.length})`);
    for (const [k, v] of Object.entries(acc)) console.log(`${k} µs p50/p90 ${q(v, 0.5)}/${q(v, 0.9)} n=${v.length}`);
  } finally { loop.stop(); destroyNetns(ns); }
})();
