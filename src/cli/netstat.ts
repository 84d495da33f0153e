// `tstack netstat`: FreeBSD's netstat(1) for an instance. -a (every socket, listeners too),
// -n (numeric: always), -s (per-protocol counters), -r (routes), -i (interfaces), -p tcp|udp.
import type { Command } from 'commander';
import type { Counters, InterfaceSnapshot, Route6Snapshot, RouteSnapshot, SocketSnapshot } from '../stack/stats.js';
import { formatIpv4, parseIpv4, prefixMask } from '../wire/addr.js';
import { ToolError, action, instanceOptions, out, printJson, table, withWorkers } from './client.js';
import { mergeInterfaces, sumAll, tagged } from './aggregate.js';
import { formatRoutes } from './route.js';

interface Opts { all?: boolean; numeric?: boolean; stats?: boolean; route?: boolean; interfaces?: boolean; protocol?: string; json?: boolean; instance?: string; socket?: string; worker?: string }

interface Snap { interfaces: InterfaceSnapshot[]; counters: Counters; gauges: Record<string, number>; routes: RouteSnapshot[]; routes6?: Route6Snapshot[]; sockets: SocketSnapshot[] }

export function register(program: Command): void {
  instanceOptions(program.command('netstat')
    .description('sockets (-a), protocol counters (-s), routes (-r), interfaces (-i) of the instance')
    .option('-a, --all', 'also list listening sockets')
    .option('-n, --numeric', 'numeric addresses and ports (always: accepted for habit)')
    .option('-s, --stats', 'per-protocol counters')
    .option('-r, --route', 'the routing table')
    .option('-i, --interfaces', 'the interfaces with their counters')
    .option('-p, --protocol <proto>', 'only tcp or udp (also ip, icmp, arp with -s)'))
    .action(action(async (opts: Opts) => {
      const proto = opts.protocol?.toLowerCase();
      const known = opts.stats ? ['tcp', 'udp', 'ip', 'reass', 'icmp', 'arp'] : ['tcp', 'udp'];
      if (proto !== undefined && !known.includes(proto)) throw new ToolError(`netstat: unknown protocol '${opts.protocol}' (expected ${known.join(', ')})`, 2);
      await withWorkers(opts, async (w) => {
        // Several workers: counters add up, every worker's sockets are listed, routes are worker 0's.
        const snaps = await w.all<Snap>('snapshot', { sockets: !opts.stats && !opts.route && !opts.interfaces });
        const snap: Snap = !w.many ? snaps[0]! : {
          ...snaps[0]!, interfaces: mergeInterfaces(snaps.map((x) => x.interfaces)), counters: sumAll(snaps.map((x) => x.counters)),
          gauges: sumAll(snaps.map((x) => x.gauges)), sockets: tagged(snaps.map((x) => x.sockets ?? []), w.indices),
        };
        if (opts.route) { if (opts.json) printJson(snap.routes); else out(formatRoutes(snap.routes, snap.routes6)); return; }
        if (opts.interfaces) { if (opts.json) printJson(snap.interfaces); else out(formatInterfaces(snap.interfaces)); return; }
        if (opts.stats) {
          const areas = (proto ? [proto] : ['ip', 'reass', 'icmp', 'udp', 'tcp', 'arp']) as (keyof Counters)[];
          if (opts.json) {
            printJson({ ...Object.fromEntries(areas.map((a) => [a, snap.counters[a]])), ...(proto ? {} : { drops: snap.counters.drops }), gauges: snap.gauges });
            return;
          }
          for (const a of areas) {
            out(`${a}:\n`);
            for (const [k, v] of Object.entries(snap.counters[a])) out(`\t${v} ${PHRASES[`${a}.${k}`] ?? words(k)}\n`);
            if (a === 'tcp') out(`\t${snap.gauges['tcpEstablished'] ?? 0} connections established (current)\n\t${snap.gauges['tcpTimeWait'] ?? 0} connections in TIME_WAIT (current)\n`);
          }
          if (!proto) {
            out('drops:\n');
            const d = Object.entries(snap.counters.drops).sort((x, y) => y[1] - x[1]);
            if (d.length === 0) out('\t0 packets dropped\n');
            for (const [k, v] of d) out(`\t${v} ${k.replace(/_/g, ' ')}\n`);
          }
          return;
        }
        // Without -a, servers are hidden: TCP listeners and unconnected UDP sockets.
        // -p udp lists every UDP socket (udp4, udp6, udp46), as FreeBSD's.
        const socks = snap.sockets.filter((s) => (proto === undefined || s.proto.startsWith(proto)) &&
          (opts.all || (s.proto === 'tcp' ? s.state !== 'LISTEN' : s.foreignPort !== 0)));
        if (opts.json) { printJson({ sockets: socks }); return; }
        out(`Active Internet connections${opts.all ? ' (including servers)' : ''}\n`);
        // With several workers, a last column says whose socket it is.
        const wk = (s: SocketSnapshot) => (w.many ? [(s as SocketSnapshot & { worker: number }).worker] : []);
        out(table([['Proto', 'Recv-Q', 'Send-Q', 'Local Address', 'Foreign Address', '(state)', ...(w.many ? ['Worker'] : [])], ...socks.map((s) => [
          s.proto === 'tcp' || s.proto === 'udp' ? `${s.proto}4` : s.proto, s.recvQ, s.sendQ, endpoint(s.localAddress, s.localPort), endpoint(s.foreignAddress, s.foreignPort), s.state, ...wk(s),
        ])], [false, true, true, false, false, false, true]));
      });
    }));
}

/** FreeBSD's numeric endpoint: 198.18.0.2.80, *.80, *.* */
export function endpoint(addr: string, port: number): string {
  const a = addr === '0.0.0.0' || addr === '::' ? '*' : addr;
  return `${a}.${port === 0 ? '*' : port}`;
}

/** netstat -s lines in FreeBSD's words, where it has them; other counters read as their names. */
const PHRASES: Record<string, string> = {
  'ip.received': 'total packets received', 'ip.delivered': 'packets for this host', 'ip.fragmentsReceived': 'fragments received',
  'ip.reassembled': 'packets reassembled ok', 'ip.outRequests': 'packets sent from this host', 'ip.outNoRoute': 'output packets discarded due to no route',
  'ip.fragmented': 'output datagrams fragmented', 'ip.fragmentsCreated': 'fragments created', 'ip.loopback': 'packets looped back',
  'icmp.received': 'messages received', 'icmp.echoRequests': 'echo requests received', 'icmp.echoReplies': 'echo replies sent',
  'icmp.errorsSent': 'calls to icmp_error', 'icmp.errorsRateLimited': 'errors not generated in response to rate limit', 'icmp.errorsReceived': 'errors received',
  'udp.received': 'datagrams received', 'udp.delivered': 'delivered', 'udp.sent': 'datagrams output', 'udp.noPort': 'dropped due to no socket',
  'udp.badChecksum': 'with bad checksum', 'udp.badLength': 'with bad data length field', 'udp.fullSocket': 'dropped due to full socket buffers',
  'tcp.rcvTotal': 'packets received', 'tcp.sndTotal': 'packets sent', 'tcp.sndData': 'data packets sent', 'tcp.sndRexmtPackets': 'data packets retransmitted',
  'tcp.sndAcks': 'ack-only packets', 'tcp.sndRst': 'control packets (RST)', 'tcp.sndProbes': 'window probe packets', 'tcp.sndKeepProbes': 'keepalive probes sent',
  'tcp.rcvBadChecksum': 'discarded for bad checksums', 'tcp.rcvBadHeader': 'discarded for bad header offset fields', 'tcp.rcvDupAck': 'duplicate acks',
  'tcp.rcvAckTooMuch': 'acks for unsent data', 'tcp.rcvOutOfWindow': 'packets received after window', 'tcp.rcvPawsDropped': 'old duplicate packets (PAWS)',
  'tcp.rcvOutOfOrder': 'out-of-order packets', 'tcp.rcvAfterClose': 'packets received after close', 'tcp.rcvNoSocket': 'packets for no socket (reset)',
  'tcp.connAttempts': 'connection requests', 'tcp.connAccepts': 'connection accepts', 'tcp.connEstablished': 'connections established (including accepts)',
  'tcp.connDrops': 'connections dropped', 'tcp.connRefused': 'connections refused', 'tcp.connResets': 'connections reset', 'tcp.timeoutDrops': 'connections dropped by rexmit timeout',
  'tcp.keepDrops': 'connections dropped by keepalive', 'tcp.rexmtTimeouts': 'retransmit timeouts', 'tcp.persistTimeouts': 'persist timeouts',
  'tcp.fastRetransmits': 'fast retransmits', 'tcp.synCookiesSent': 'cookies sent', 'tcp.synCookiesReceived': 'cookies received', 'tcp.synCookiesFailed': 'cookies failed',
  'tcp.listenOverflows': 'listen queue overflows', 'tcp.sackRecoveries': 'SACK recovery episodes',
  'arp.requestsSent': 'ARP requests sent', 'arp.repliesSent': 'ARP replies sent', 'arp.requestsReceived': 'ARP requests received', 'arp.repliesReceived': 'ARP replies received',
  'arp.held': 'packets held waiting for resolution', 'arp.holdDropped': 'packets dropped from the hold queue', 'arp.unresolved': 'destinations that did not answer',
  'arp.announcements': 'gratuitous ARPs sent',
  'reass.fragments': 'fragments received', 'reass.reassembled': 'datagrams reassembled', 'reass.timedOut': 'datagrams timed out', 'reass.dropped': 'fragments dropped',
};

/** "rcvBadChecksum" -> "rcv bad checksum" */
function words(k: string): string {
  return k.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

function formatInterfaces(list: InterfaceSnapshot[]): string {
  const rows: (string | number)[][] = [['Name', 'Mtu', 'Network', 'Address', 'Ipkts', 'Ierrs', 'Idrop', 'Ibytes', 'Opkts', 'Oerrs', 'Odrop', 'Obytes']];
  for (const i of list) {
    const c = [i.rxPackets, i.rxErrors, i.rxDropped, i.rxBytes, i.txPackets, i.txErrors, i.txDropped, i.txBytes];
    rows.push([i.name, i.mtu, `<Link#${i.index}>`, i.mac, ...c]);
    for (const a of i.inet) rows.push([i.name, '-', `${formatIpv4((parseIpv4(a.addr)! & prefixMask(a.prefixLen)) >>> 0)}/${a.prefixLen}`, a.addr, ...c]);
  }
  return table(rows, [false, true, false, false, true, true, true, true, true, true, true, true]);
}
