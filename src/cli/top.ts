// `tstack top` (F-Stack's ff_top) and `tstack traffic` (ff_traffic): rates computed from two
// samples of the instance's counters, -i SECONDS apart. top redraws in place on a terminal
// (q or Ctrl-C leaves); with --json (or when stdout is not a terminal) it prints one sample per
// line, -c COUNT of them.
import type { Command } from 'commander';
import type { Counters, InterfaceSnapshot } from '../stack/stats.js';
import type { RunLoopStats } from '../runtime/loop.js';
import { ToolError, action, connectInstance, instanceOptions, out, table, type ControlClient } from './client.js';

interface Sample { worker: number; time: number; interfaces: InterfaceSnapshot[]; counters: Counters; gauges: Record<string, number>; loop: RunLoopStats }
interface Info { name: string; pid: number; uptime: number }

export interface Rates {
  worker: number;
  /** Seconds between the two samples. */
  interval: number;
  loopsPerSec: number;
  /** Share of the interval spent inside run-loop iterations (0..1). */
  busy: number;
  rxPps: number; rxBps: number; txPps: number; txBps: number;
  dropsPerSec: number;
  connections: number;
  established: number;
  timeWait: number;
  ports: { name: string; rxPps: number; rxBps: number; txPps: number; txBps: number }[];
}

const sum = (l: InterfaceSnapshot[], k: keyof InterfaceSnapshot) => l.reduce((a, i) => a + (i[k] as number), 0);
const dropTotal = (s: Sample) => Object.values(s.counters.drops).reduce((a, b) => a + b, 0) + sum(s.interfaces, 'rxDropped') + sum(s.interfaces, 'txDropped');

export function rates(a: Sample, b: Sample): Rates {
  const dt = Math.max((b.time - a.time) / 1000, 1e-6);
  const per = (x: number) => x / dt;
  return {
    worker: b.worker, interval: dt,
    loopsPerSec: per(b.loop.iterations - a.loop.iterations),
    busy: Math.min(1, (b.loop.busyMs - a.loop.busyMs) / (dt * 1000)),
    rxPps: per(sum(b.interfaces, 'rxPackets') - sum(a.interfaces, 'rxPackets')),
    rxBps: per(8 * (sum(b.interfaces, 'rxBytes') - sum(a.interfaces, 'rxBytes'))),
    txPps: per(sum(b.interfaces, 'txPackets') - sum(a.interfaces, 'txPackets')),
    txBps: per(8 * (sum(b.interfaces, 'txBytes') - sum(a.interfaces, 'txBytes'))),
    dropsPerSec: per(dropTotal(b) - dropTotal(a)),
    connections: b.gauges['tcpConnections'] ?? 0, established: b.gauges['tcpEstablished'] ?? 0, timeWait: b.gauges['tcpTimeWait'] ?? 0,
    ports: b.interfaces.map((i) => {
      const o = a.interfaces.find((x) => x.index === i.index) ?? i;
      return { name: i.name, rxPps: per(i.rxPackets - o.rxPackets), rxBps: per(8 * (i.rxBytes - o.rxBytes)), txPps: per(i.txPackets - o.txPackets), txBps: per(8 * (i.txBytes - o.txBytes)) };
    }),
  };
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
function bits(x: number): string {
  const u = ['bit/s', 'Kbit/s', 'Mbit/s', 'Gbit/s'];
  let k = 0;
  while (x >= 1000 && k < u.length - 1) { x /= 1000; k++; }
  return `${k === 0 ? Math.round(x) : x.toFixed(1)} ${u[k]}`;
}

interface LoopOpts { interval?: string; count?: string; worker?: string; json?: boolean; instance?: string; socket?: string }

function parseInterval(opts: LoopOpts): { ms: number; count: number } {
  const s = opts.interval === undefined ? 1 : Number(opts.interval);
  if (!(s > 0) || s > 3600) throw new ToolError(`-i ${opts.interval}: the interval must be a number of seconds > 0`, 2);
  const count = opts.count === undefined ? 0 : Number(opts.count);
  if (!Number.isInteger(count) || count < 0) throw new ToolError(`-c ${opts.count}: the count must be a whole number`, 2);
  return { ms: s * 1000, count };
}

/** Samples every `ms` and calls `each(rates)` until `count` (0: forever) or stop() resolves. */
async function sampleLoop(c: ControlClient, ms: number, count: number, each: (r: Rates, n: number) => void, stopped: Promise<void>): Promise<void> {
  let prev = await c.request<Sample>('counters');
  let stop = false;
  void stopped.then(() => { stop = true; });
  for (let n = 1; count === 0 || n <= count; n++) {
    await Promise.race([new Promise((r) => setTimeout(r, ms)), stopped]);
    if (stop) return;
    const cur = await c.request<Sample>('counters');
    each(rates(prev, cur), n);
    prev = cur;
  }
}

export function register(program: Command): void {
  instanceOptions(program.command('top')
    .description('a live view of the instance: loop iterations/s, busy share, rx/tx rates, connections, drops')
    .option('-i, --interval <seconds>', 'seconds between samples', '1')
    .option('-c, --count <n>', 'samples to show, then exit (default: until q or Ctrl-C)'))
    .action(action(async (opts: LoopOpts) => {
      const { ms, count } = parseInterval(opts);
      const c = await connectInstance(opts);
      try {
        const info = await c.request<Info>('info');
        const live = !opts.json && process.stdout.isTTY === true;
        let quit: () => void = () => {};
        const stopped = new Promise<void>((r) => { quit = r; });
        const onSig = () => quit();
        process.once('SIGINT', onSig);
        process.once('SIGTERM', onSig);
        const stdin = process.stdin;
        const onKey = (d: Buffer) => { if (d.includes(0x71) || d.includes(0x51) || d.includes(0x03)) quit(); };
        if (live) {
          out('\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J');
          out(`tstack top: ${info.name} (pid ${info.pid}) - first sample in ${ms / 1000} s; q to quit\n`);
          if (stdin.isTTY) { stdin.setRawMode(true); stdin.resume(); stdin.on('data', onKey); }
        }
        try {
          await sampleLoop(c, ms, count, (r) => {
            if (!live) { out(JSON.stringify({ time: new Date().toISOString(), ...r }) + '\n'); return; }
            out('\x1b[H\x1b[2J' + screen(info, r));
          }, stopped);
        } finally {
          process.removeListener('SIGINT', onSig);
          process.removeListener('SIGTERM', onSig);
          if (live) {
            if (stdin.isTTY) { stdin.removeListener('data', onKey); stdin.setRawMode(false); stdin.pause(); }
            out('\x1b[?25h\x1b[?1049l');
          }
        }
      } finally { c.close(); }
    }));

  instanceOptions(program.command('traffic')
    .description('rx/tx packets and bits per second, one line per interval (ff_traffic)')
    .option('-i, --interval <seconds>', 'seconds between lines', '1')
    .option('-c, --count <n>', 'lines to print, then exit (default: until Ctrl-C)'))
    .action(action(async (opts: LoopOpts) => {
      const { ms, count } = parseInterval(opts);
      const c = await connectInstance(opts);
      let quit: () => void = () => {};
      const stopped = new Promise<void>((r) => { quit = r; });
      process.once('SIGINT', () => quit());
      try {
        const bar = '|--------------------|--------------------|--------------------|--------------------|\n';
        if (!opts.json) out(bar + '|' + ['rx packets/s', 'rx bits/s', 'tx packets/s', 'tx bits/s'].map((h) => h.padStart(19) + ' ').join('|') + '|\n' + bar);
        await sampleLoop(c, ms, count, (r) => {
          if (opts.json) { out(JSON.stringify({ time: new Date().toISOString(), rxPps: r.rxPps, rxBps: r.rxBps, txPps: r.txPps, txBps: r.txBps }) + '\n'); return; }
          out('|' + [r.rxPps, r.rxBps, r.txPps, r.txBps].map((v) => String(Math.round(v)).padStart(19) + ' ').join('|') + '|\n');
        }, stopped);
      } finally { c.close(); }
    }));
}

function screen(info: Info, r: Rates): string {
  const head = `tstack top - ${info.name} (pid ${info.pid}) - ${new Date().toISOString().replace('T', ' ').slice(0, 19)} - every ${r.interval.toFixed(1)} s - q to quit\n\n`;
  const workers = table([
    ['WORKER', 'LOOPS/S', 'BUSY', 'IDLE', 'RX PPS', 'RX BIT/S', 'TX PPS', 'TX BIT/S', 'CONNS', 'ESTAB', 'TIME_WAIT', 'DROPS/S'],
    [r.worker, n0(r.loopsPerSec), `${(r.busy * 100).toFixed(1)}%`, `${((1 - r.busy) * 100).toFixed(1)}%`, n0(r.rxPps), bits(r.rxBps), n0(r.txPps), bits(r.txBps),
      r.connections, r.established, r.timeWait, n0(r.dropsPerSec)],
  ], [false, true, true, true, true, true, true, true, true, true, true, true]);
  const ports = table([['PORT', 'RX PPS', 'RX BIT/S', 'TX PPS', 'TX BIT/S'], ...r.ports.map((p) => [p.name, n0(p.rxPps), bits(p.rxBps), n0(p.txPps), bits(p.txBps)])],
    [false, true, true, true, true]);
  return head + workers + '\n' + ports;
}

