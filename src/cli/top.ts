// `tstack top` (F-Stack's ff_top) and `tstack traffic` (ff_traffic): rates computed from two
// samples of the instance's counters, -i SECONDS apart. top redraws in place on a terminal
// (q or Ctrl-C leaves); with --json (or when stdout is not a terminal) it prints one sample per
// line, -c COUNT of them.
import type { Command } from 'commander';
import type { Counters, InterfaceSnapshot } from '../stack/stats.js';
import type { RunLoopStats } from '../runtime/loop.js';
import { ToolError, action, connectWorkers, instanceOptions, out, table, type Workers } from './client.js';

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

/** The whole instance's rates from its workers' (added up; busy is the workers' mean share). */
export function totalRates(list: Rates[]): Rates {
  const t: Rates = { ...list[0]!, ports: list[0]!.ports.map((p) => ({ ...p })) };
  for (const r of list.slice(1)) {
    for (const k of ['loopsPerSec', 'rxPps', 'rxBps', 'txPps', 'txBps', 'dropsPerSec', 'connections', 'established', 'timeWait'] as const) t[k] += r[k];
    t.busy += r.busy;
    t.interval = Math.max(t.interval, r.interval);
    for (const p of r.ports) {
      const q = t.ports.find((x) => x.name === p.name);
      if (q) { q.rxPps += p.rxPps; q.rxBps += p.rxBps; q.txPps += p.txPps; q.txBps += p.txBps; }
    }
  }
  t.busy /= list.length;
  return t;
}

/**
 * Samples every `ms` and calls `each(rates per worker)` until `count` (0: forever) or stop()
 * resolves (one entry per worker asked: every worker, or -w's one).
 */
async function sampleLoop(w: Workers, ms: number, count: number, each: (r: Rates[], n: number) => void, stopped: Promise<void>): Promise<void> {
  let prev = await w.all<Sample>('counters');
  let stop = false;
  void stopped.then(() => { stop = true; });
  for (let n = 1; count === 0 || n <= count; n++) {
    await Promise.race([new Promise((r) => setTimeout(r, ms)), stopped]);
    if (stop) return;
    const cur = await w.all<Sample>('counters');
    each(cur.map((c, k) => rates(prev[k]!, c)), n);
    prev = cur;
  }
}

/** Worker rates as one JSON line: the instance's totals, with several workers also each worker's. */
function jsonLine(list: Rates[], pick: (r: Rates) => object = (r) => r): string {
  if (list.length === 1) return JSON.stringify({ time: new Date().toISOString(), ...pick(list[0]!) }) + '\n';
  const { worker: _w, ...total } = totalRates(list);
  void _w;
  return JSON.stringify({ time: new Date().toISOString(), ...pick(total as Rates), workers: list.map(pick) }) + '\n';
}

export function register(program: Command): void {
  instanceOptions(program.command('top')
    .description('a live view of the instance: loop iterations/s, busy share, rx/tx rates, connections, drops')
    .option('-i, --interval <seconds>', 'seconds between samples', '1')
    .option('-c, --count <n>', 'samples to show, then exit (default: until q or Ctrl-C)'))
    .action(action(async (opts: LoopOpts) => {
      const { ms, count } = parseInterval(opts);
      const c = await connectWorkers(opts);
      try {
        const info = await c.first.request<Info>('info');
        // Several workers: the instance's name and its supervisor's pid.
        if (c.many) Object.assign(info, { name: c.target.name, pid: (info as Info & { supervisor?: number }).supervisor || info.pid });
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
            if (!live) { out(jsonLine(r)); return; }
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
      const c = await connectWorkers(opts);
      let quit: () => void = () => {};
      const stopped = new Promise<void>((r) => { quit = r; });
      process.once('SIGINT', () => quit());
      try {
        const bar = '|--------------------|--------------------|--------------------|--------------------|\n';
        if (!opts.json) out(bar + '|' + ['rx packets/s', 'rx bits/s', 'tx packets/s', 'tx bits/s'].map((h) => h.padStart(19) + ' ').join('|') + '|\n' + bar);
        await sampleLoop(c, ms, count, (list) => {
          if (opts.json) { out(jsonLine(list, (r) => ({ ...(list.length > 1 && { worker: r.worker }), rxPps: r.rxPps, rxBps: r.rxBps, txPps: r.txPps, txBps: r.txBps }))); return; }
          // The instance's totals (ff_traffic sums its processes).
          const r = list.length === 1 ? list[0]! : totalRates(list);
          out('|' + [r.rxPps, r.rxBps, r.txPps, r.txBps].map((v) => String(Math.round(v)).padStart(19) + ' ').join('|') + '|\n');
        }, stopped);
      } finally { c.close(); }
    }));
}

/** The screen: a row per worker (ff_top's view), with several a total row; the ports' rates (all workers'). */
function screen(info: Info, list: Rates[]): string {
  const r = list.length === 1 ? list[0]! : totalRates(list);
  const head = `tstack top - ${info.name} (pid ${info.pid}) - ${new Date().toISOString().replace('T', ' ').slice(0, 19)} - every ${r.interval.toFixed(1)} s - q to quit\n\n`;
  const row = (x: Rates, name: string | number) => [name, n0(x.loopsPerSec), `${(x.busy * 100).toFixed(1)}%`, `${((1 - x.busy) * 100).toFixed(1)}%`, n0(x.rxPps), bits(x.rxBps), n0(x.txPps), bits(x.txBps),
    x.connections, x.established, x.timeWait, n0(x.dropsPerSec)];
  const workers = table([
    ['WORKER', 'LOOPS/S', 'BUSY', 'IDLE', 'RX PPS', 'RX BIT/S', 'TX PPS', 'TX BIT/S', 'CONNS', 'ESTAB', 'TIME_WAIT', 'DROPS/S'],
    ...list.map((x) => row(x, x.worker)), ...(list.length > 1 ? [row(r, 'total')] : []),
  ], [false, true, true, true, true, true, true, true, true, true, true, true]);
  const ports = table([['PORT', 'RX PPS', 'RX BIT/S', 'TX PPS', 'TX BIT/S'], ...r.ports.map((p) => [p.name, n0(p.rxPps), bits(p.rxBps), n0(p.txPps), bits(p.txBps)])],
    [false, true, true, true, true]);
  return head + workers + '\n' + ports;
}

