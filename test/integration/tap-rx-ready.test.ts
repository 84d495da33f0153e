// TapDriver skips read() while its readiness watcher has not reported a frame since the last
// read that met EAGAIN (the run loop's spins and kicks would otherwise pay a failing system
// call each), and reads on every rxBurst when nobody watches (busy polling). Root only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import { TapDriver } from '../../src/driver/tap.js';
import { formatMac, parseMac } from '../../src/wire/addr.js';
import { createNetns, destroyNetns, ipIn, requireRoot } from '../helpers/netns.js';

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
const OUR_MAC = parseMac('02:00:5e:00:62:02')!;

/** The kernel in ns sends one UDP datagram to 198.18.98.2:9; returns once it has left. */
function kernelSendsUdp(ns: string): void {
  execFileSync('ip', ['netns', 'exec', ns, 'bash', '-c', 'echo x > /dev/udp/198.18.98.2/9'], { stdio: 'ignore' });
}

function drain(d: TapDriver, out: PacketBuffer[]): number {
  let total = 0;
  for (let n; (n = d.rxBurst(out, 32)) > 0;) {
    total += n;
    for (let i = 0; i < n; i++) out[i]!.release();
  }
  return total;
}

/** How many of out[0..n) are IPv4 UDP to port 9 (the kernel may add IPv6 chatter). */
function udpTo9(out: PacketBuffer[], n: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) {
    const b = out[i]!, d = b.data, s = b.start;
    if (d[s + 12] === 0x08 && d[s + 13] === 0x00 && d[s + 23] === 17 && d[s + 36] === 0 && d[s + 37] === 9) k++;
    b.release();
  }
  return k;
}

test('TapDriver reads only after the watcher reports readiness, and always without a watcher', { timeout: 20_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'bash'])) return;
  const ns = createNetns('taprdy');
  const ifname = `tstr${process.pid % 100000}`;
  let drv: TapDriver | null = null;
  t.after(() => { drv?.close(); destroyNetns(ns); });
  drv = TapDriver.open({ ifname, netns: ns, mac: OUR_MAC, hostAddr: '198.18.98.1/24' });
  const d = drv;
  // The kernel knows our MAC, so its datagrams leave at once (no ARP round trip).
  ipIn(ns, ['neigh', 'replace', '198.18.98.2', 'lladdr', formatMac(OUR_MAC), 'dev', ifname, 'nud', 'permanent']);
  let reports = 0;
  d.onReadable(() => { reports++; });
  const out: PacketBuffer[] = [];
  await sleep(200); // link-up chatter (IPv6 solicitations) comes and goes
  drain(d, out);

  // The event loop does not run between these lines: the watcher cannot have reported the
  // datagram, so rxBurst must not read it yet.
  kernelSendsUdp(ns);
  assert.equal(d.rxBurst(out, 32), 0, 'no read before the watcher reports');

  const before = reports;
  const end = Date.now() + 2000;
  while (reports === before && Date.now() < end) await sleep(5);
  assert.ok(reports > before, 'the watcher reported the datagram');
  assert.equal(udpTo9(out, d.rxBurst(out, 32)), 1, 'read once reported');

  // No watcher (busy polling): every rxBurst reads.
  d.onReadable(null);
  drain(d, out);
  kernelSendsUdp(ns);
  assert.equal(udpTo9(out, d.rxBurst(out, 32)), 1, 'read at once without a watcher');
  assert.equal(d.stats().rxDropped, 0);
});
