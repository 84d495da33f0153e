// Prometheus text exposition (format 0.0.4) of an instance's counters, for `[metrics] listen`
// (an HTTP endpoint on the kernel's sockets) and `tstack metrics`. Names are documented in
// docs/tools.md: tstack_<area>_<counter>_total for counters (labelled by port for interfaces and
// by worker everywhere), plain names for gauges.
import { createServer, type Server } from 'node:http';
import type { StackSnapshot } from '../stack/stats.js';
import type { DriverStats } from '../driver/types.js';
import type { RunLoopStats } from './loop.js';

export interface MetricsInput {
  worker: number;
  snapshot: StackSnapshot;
  loop: RunLoopStats;
  /** Per port: the driver's own counters (ring drops the stack never saw). */
  devices: { port: string; driver: string; stats: DriverStats }[];
  startTimeSeconds: number;
}

const snake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

class Exposition {
  private readonly out: string[] = [];
  private readonly seen = new Set<string>();

  family(name: string, type: 'counter' | 'gauge', help: string): void {
    if (this.seen.has(name)) return;
    this.seen.add(name);
    this.out.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
    this.out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? String(value) : 'NaN'}`);
  }

  text(): string { return this.out.join('\n') + '\n'; }
}

const IF_COUNTERS: [keyof StackSnapshot['interfaces'][number], string, string][] = [
  ['rxPackets', 'tstack_interface_receive_packets_total', 'Frames received on the port'],
  ['rxBytes', 'tstack_interface_receive_bytes_total', 'Bytes received on the port'],
  ['rxErrors', 'tstack_interface_receive_errors_total', 'Received frames with a bad header'],
  ['rxDropped', 'tstack_interface_receive_drops_total', 'Received frames dropped by the stack (not for us, port down, unknown type)'],
  ['rxMulticast', 'tstack_interface_receive_multicast_total', 'Multicast frames received'],
  ['txPackets', 'tstack_interface_transmit_packets_total', 'Frames transmitted on the port'],
  ['txBytes', 'tstack_interface_transmit_bytes_total', 'Bytes transmitted on the port'],
  ['txErrors', 'tstack_interface_transmit_errors_total', 'Frames the stack failed to transmit'],
  ['txDropped', 'tstack_interface_transmit_drops_total', 'Frames the stack dropped on transmit'],
];

/** The exposition text for one worker's stack. */
export function formatMetrics(inputs: MetricsInput[]): string {
  const e = new Exposition();
  e.family('tstack_start_time_seconds', 'gauge', 'Start time of the instance since the Unix epoch in seconds');
  for (const m of inputs) e.sample('tstack_start_time_seconds', { worker: String(m.worker) }, m.startTimeSeconds);
  for (const [key, name, help] of IF_COUNTERS) {
    e.family(name, 'counter', help);
    for (const m of inputs) for (const i of m.snapshot.interfaces) e.sample(name, { port: i.name, worker: String(m.worker) }, i[key] as number);
  }
  const dev: [keyof DriverStats, string, string][] = [
    ['rxDropped', 'tstack_device_receive_drops_total', 'Frames the driver dropped before the stack saw them (ring or queue full)'],
    ['txDropped', 'tstack_device_transmit_drops_total', 'Frames the driver dropped on transmit (queue full)'],
    ['txErrors', 'tstack_device_transmit_errors_total', 'Frames the device refused'],
  ];
  for (const [key, name, help] of dev) {
    e.family(name, 'counter', help);
    for (const m of inputs) for (const d of m.devices) e.sample(name, { port: d.port, worker: String(m.worker) }, d.stats[key]);
  }
  // The format wants each family's samples in one group, right after its TYPE line.
  e.family('tstack_interface_up', 'gauge', '1 when the port is administratively up');
  for (const m of inputs) for (const i of m.snapshot.interfaces) e.sample('tstack_interface_up', { port: i.name, worker: String(m.worker) }, i.up ? 1 : 0);
  e.family('tstack_interface_mtu_bytes', 'gauge', 'MTU of the port');
  for (const m of inputs) for (const i of m.snapshot.interfaces) e.sample('tstack_interface_mtu_bytes', { port: i.name, worker: String(m.worker) }, i.mtu);
  for (const area of ['ip', 'reass', 'icmp', 'udp', 'tcp', 'arp'] as const) {
    const names = new Set<string>();
    for (const m of inputs) for (const k of Object.keys(m.snapshot.counters[area])) names.add(k);
    for (const k of names) {
      const name = `tstack_${area}_${snake(k)}_total`;
      e.family(name, 'counter', `${area === 'reass' ? 'IPv4 reassembly' : area.toUpperCase()} counter ${k} (netstat -s)`);
      for (const m of inputs) e.sample(name, { worker: String(m.worker) }, m.snapshot.counters[area][k] ?? 0);
    }
  }
  e.family('tstack_drops_total', 'counter', 'Packets the stack refused, by reason');
  for (const m of inputs) for (const [reason, n] of Object.entries(m.snapshot.counters.drops)) e.sample('tstack_drops_total', { reason, worker: String(m.worker) }, n);
  const gauges: [string, string, string][] = [
    ['tcpEstablished', 'tstack_tcp_established_connections', 'TCP connections in ESTABLISHED or CLOSE_WAIT'],
    ['tcpConnections', 'tstack_tcp_connections', 'TCP connections holding state (TIME_WAIT included)'],
    ['tcpTimeWait', 'tstack_tcp_time_wait_connections', 'TCP connections in TIME_WAIT'],
    ['tcpListeners', 'tstack_tcp_listeners', 'Listening TCP sockets'],
    ['udpSockets', 'tstack_udp_sockets', 'Bound UDP sockets'],
    ['arpEntries', 'tstack_arp_entries', 'ARP cache entries'],
    ['poolInUse', 'tstack_packet_buffers_in_use', 'Packet buffers in use'],
  ];
  for (const [key, name, help] of gauges) {
    e.family(name, 'gauge', help);
    for (const m of inputs) e.sample(name, { worker: String(m.worker) }, m.snapshot.gauges[key] ?? 0);
  }
  const loop: [keyof RunLoopStats, string, string, number][] = [
    ['iterations', 'tstack_loop_iterations_total', 'Run loop iterations', 1],
    ['rxFrames', 'tstack_loop_receive_frames_total', 'Frames the run loop pulled from the drivers', 1],
    ['busyMs', 'tstack_loop_busy_seconds_total', 'Seconds the run loop spent in iterations', 1000],
    ['errors', 'tstack_loop_errors_total', 'Iterations that threw', 1],
    ['commands', 'tstack_loop_commands_total', 'Control commands run between iterations', 1],
  ];
  for (const [key, name, help, div] of loop) {
    e.family(name, 'counter', help);
    for (const m of inputs) e.sample(name, { worker: String(m.worker) }, m.loop[key] / div);
  }
  return e.text();
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Serves `render()` at /metrics on `listen` ("ADDRESS:PORT") with the kernel's sockets. The
 * server does not keep the process alive. `render` runs on the thread that owns the stack and
 * resolves with the text.
 */
export function startMetricsServer(listen: string, render: () => Promise<string>, onError: (e: Error) => void): Server {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at), port = Number(listen.slice(at + 1));
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    render().then((text) => {
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) }).end(text);
    }, (e: Error) => { res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`); });
  });
  // A scraper's keep-alive connection must not keep the program alive either.
  server.on('connection', (sock) => sock.unref());
  server.on('error', onError);
  server.listen(port, host);
  server.unref();
  return server;
}
