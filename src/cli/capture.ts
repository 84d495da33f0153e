// `tstack capture [-i PORT] [-w FILE|-] [-c COUNT] [FILTER]`: a live capture from a running
// instance. With -w it writes a pcap file (`-w -`: standard output, so `| tshark -r -` works);
// without, one tcpdump-like line per frame. The instance drops (and counts) frames rather than
// wait when this reader is slow; the count is printed at the end.
import type { Command } from 'commander';
import { PcapWriter } from '../driver/pcap.js';
import { ToolError, action, connectWorkers, instanceOptions, type Workers } from './client.js';

interface Opts { interface?: string; write?: string; count?: string; snaplen?: string; instance?: string; socket?: string; worker?: string }
interface FrameEvent { t: number; port: string; dir: string; len: number; data: string }

export function register(program: Command): void {
  instanceOptions(program.command('capture')
    .description('capture frames live from the instance (pcap with -w FILE or -w -)')
    .option('-i, --interface <port>', 'only this port (default: every port)')
    .option('-w, --write <file>', 'write a pcap file; - for standard output')
    .option('-c, --count <n>', 'stop after this many frames')
    .option('-s, --snaplen <bytes>', 'bytes kept of each frame', '262144')
    .argument('[filter...]', 'host A, net A/N, port N, src/dst, tcp, udp, icmp, arp, and/or/not (tcpdump-like)'), false, '--worker <n>')
    .action(action(async (filterWords: string[], opts: Opts) => {
      const count = opts.count === undefined ? 0 : Number(opts.count);
      if (!Number.isInteger(count) || count < 0) throw new ToolError(`-c ${opts.count}: the count must be a whole number`, 2);
      const snaplen = Number(opts.snaplen);
      const toStdout = opts.write === '-';
      const info = (s: string) => process.stderr.write(`${s}\n`);
      let writer: PcapWriter | null = null;
      if (opts.write !== undefined) {
        try {
          writer = toStdout
            ? new PcapWriter((chunk) => { process.stdout.write(Buffer.from(chunk)); }, { snaplen, bufferSize: 64 * 1024 })
            : new PcapWriter(opts.write, { snaplen });
        } catch (e) { throw new ToolError(`cannot write ${opts.write}: ${(e as Error).message}`); }
      }
      const w = await connectWorkers(opts);
      const onFrame = (ev: FrameEvent) => {
        const bytes = Buffer.from(ev.data, 'base64');
        if (writer) {
          writer.write(bytes, 0, bytes.length, ev.t);
          // Hand each frame on at once: a pipe reader (tshark) sees it live.
          writer.flush();
        } else {
          process.stdout.write(`${summary(ev.t, ev.port, ev.dir, bytes, ev.len)}\n`);
        }
      };
      const args = { filter: filterWords.join(' '), count, snaplen, ...(opts.interface && { port: opts.interface }) };
      const started = () => info(`tstack: capturing${opts.interface ? ` on ${opts.interface}` : ''}${filterWords.length ? ` (${filterWords.join(' ')})` : ''}${w.many ? ` from ${w.clients.length} workers` : ''}; Ctrl-C stops`);
      let stop = () => {};
      const onSignal = () => stop();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      // A pipe reader that went away (`| head`) ends the capture quietly.
      process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') stop(); });
      try {
        const r = w.many ? await captureAll(w, args, count, onFrame, started, (f) => { stop = f; }) : await (async () => {
          const c = w.first;
          const req = c.request<{ captured: number; dropped: number }>('capture', args, (ev) => {
            if (ev.event === 'frame') onFrame(ev as unknown as FrameEvent);
            else if (ev.event === 'started') started();
          });
          const id = c.lastId;
          stop = () => { void c.request('capture.stop', { id }).catch(() => {}); };
          return req;
        })();
        info(`${r.captured} packet${r.captured === 1 ? '' : 's'} captured, ${r.dropped} dropped by the instance (slow reader)`);
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        writer?.close();
        w.close();
      }
    }));
}

/** How long frames wait to be put in timestamp order with the other workers' (ms). */
const REORDER_MS = 50;

/**
 * A capture on every worker at once: one stream of frames in timestamp order (each worker's
 * frames come in order; a frame is held REORDER_MS for the others' earlier ones). -c COUNT
 * counts frames of all workers; then every worker's capture is stopped.
 */
async function captureAll(w: Workers, args: Record<string, unknown>, count: number, onFrame: (ev: FrameEvent) => void, started: () => void,
  setStop: (f: () => void) => void): Promise<{ captured: number; dropped: number }> {
  const held: FrameEvent[] = [];
  let written = 0, startedN = 0, done = false;
  const ids: number[] = [];
  const stopAll = () => {
    if (done) return;
    done = true;
    w.clients.forEach((c, k) => { if (ids[k] !== undefined) void c.request('capture.stop', { id: ids[k] }).catch(() => {}); });
  };
  setStop(stopAll);
  const flush = (all: boolean) => {
    held.sort((a, b) => a.t - b.t);
    const limit = all ? Infinity : performance.timeOrigin + performance.now() - REORDER_MS;
    while (held.length > 0 && held[0]!.t <= limit && (count === 0 || written < count)) { onFrame(held.shift()!); written++; }
    if (count !== 0 && written >= count) { held.length = 0; stopAll(); }
  };
  const timer = setInterval(() => flush(false), REORDER_MS / 2);
  try {
    const results = await Promise.all(w.clients.map((c) => {
      const req = c.request<{ captured: number; dropped: number }>('capture', args, (ev) => {
        if (ev.event === 'frame') { if (!done) held.push(ev as unknown as FrameEvent); } else if (ev.event === 'started' && ++startedN === w.clients.length) started();
      });
      ids.push(c.lastId);
      // A worker that stops (its -c reached) while others run on: that is fine, the others go on.
      return req.catch((e: Error) => { if (!done) throw e; return { captured: 0, dropped: 0 }; });
    }));
    flush(true);
    return { captured: written, dropped: results.reduce((a, r) => a + r.dropped, 0) };
  } finally {
    clearInterval(timer);
  }
}

/** A tcpdump-like one-line summary. */
export function summary(t: number, port: string, dir: string, b: Uint8Array, len: number): string {
  const d = new Date(t);
  const ts = `${d.toISOString().slice(11, 19)}.${String(Math.floor((t % 1000) * 1000)).padStart(6, '0')}`;
  const head = `${ts} ${port} ${dir === 'out' ? 'Out' : 'In '}`;
  if (b.length < 14) return `${head} truncated frame, length ${len}`;
  const type = (b[12]! << 8) | b[13]!;
  const ip = (o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
  if (type === 0x0806 && b.length >= 42) {
    const op = (b[20]! << 8) | b[21]!;
    return op === 1 ? `${head} ARP, Request who-has ${ip(38)} tell ${ip(28)}, length ${len}` : `${head} ARP, Reply ${ip(28)} is-at ${[...b.subarray(22, 28)].map((x) => x.toString(16).padStart(2, '0')).join(':')}, length ${len}`;
  }
  if (type !== 0x0800 || b.length < 34) return `${head} ethertype 0x${type.toString(16).padStart(4, '0')}, length ${len}`;
  const ihl = (b[14]! & 0x0f) * 4, proto = b[23]!, l4 = 14 + ihl;
  const src = ip(26), dst = ip(30);
  if ((proto === 6 || proto === 17) && b.length >= l4 + 4) {
    const sp = (b[l4]! << 8) | b[l4 + 1]!, dp = (b[l4 + 2]! << 8) | b[l4 + 3]!;
    if (proto === 17) return `${head} IP ${src}.${sp} > ${dst}.${dp}: UDP, length ${((b[l4 + 4]! << 8) | b[l4 + 5]!) - 8}`;
    if (b.length >= l4 + 14) {
      const f = b[l4 + 13]!;
      const flags = (f & 2 ? 'S' : '') + (f & 1 ? 'F' : '') + (f & 4 ? 'R' : '') + (f & 8 ? 'P' : '') + (f & 16 ? '.' : '');
      const seq = ((b[l4 + 4]! << 24) | (b[l4 + 5]! << 16) | (b[l4 + 6]! << 8) | b[l4 + 7]!) >>> 0;
      const ack = ((b[l4 + 8]! << 24) | (b[l4 + 9]! << 16) | (b[l4 + 10]! << 8) | b[l4 + 11]!) >>> 0;
      const totalLen = (b[16]! << 8) | b[17]!;
      const payload = totalLen - ihl - ((b[l4 + 12]! >> 4) * 4);
      return `${head} IP ${src}.${sp} > ${dst}.${dp}: Flags [${flags}], seq ${seq}, ack ${ack}, length ${payload}`;
    }
  }
  if (proto === 1 && b.length >= l4 + 1) {
    const names: Record<number, string> = { 0: 'echo reply', 8: 'echo request', 3: 'destination unreachable', 11: 'time exceeded' };
    return `${head} IP ${src} > ${dst}: ICMP ${names[b[l4]!] ?? `type ${b[l4]}`}, length ${len}`;
  }
  return `${head} IP ${src} > ${dst}: ip-proto-${proto}, length ${len}`;
}
