// Bad input to the multicast and tunnel code: 30,000 mutated VXLAN, GRE, IP-in-IP and IGMP
// frames into a stack with those tunnels and memberships: no exception, every buffer returned.
import test from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { NO_OFFLOADS, type NetDevice } from '../../src/base/device.js';
import { Stack } from '../../src/stack/stack.js';
import { VirtualClock } from '../../src/base/time.js';
import { Prng } from '../../src/base/prng.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { writeIpv4RaHeader, writeV3Query } from '../../src/wire/igmp.js';

class Sink implements NetDevice {
  readonly offloads = NO_OFFLOADS;
  readonly frames: Uint8Array[] = [];
  keep = true;
  constructor(readonly name: string, readonly mac: Uint8Array, readonly mtu = 1500) {}
  transmit(buf: PacketBuffer): void { if (this.keep) this.frames.push(buf.bytes().slice()); buf.release(); }
}

const MAC_A = Uint8Array.of(2, 0, 0, 0, 9, 1), MAC_B = Uint8Array.of(2, 0, 0, 0, 9, 2);
const A = parseIpv4('198.18.9.1')!;
const G = parseIpv4('239.1.2.3')!;

function tunnels(s: Stack, me: number, peer: number): void {
  s.addTunnel({ kind: 'vxlan', ifname: 'vx0', vni: 5, local: `198.18.9.${me}`, remotes: [`198.18.9.${peer}`], addr: `198.18.10.${me}/24`, mac: Uint8Array.of(2, 0, 0, 0, 10, me) });
  s.addTunnel({ kind: 'gre', ifname: 'gre0', key: 3, seq: true, local: `198.18.9.${me}`, remotes: [`198.18.9.${peer}`], addr: `198.18.11.${me}/24` });
  s.addTunnel({ kind: 'ipip', ifname: 'ipip0', local: `198.18.9.${me}`, remotes: [`198.18.9.${peer}`], addr: `198.18.12.${me}/24` });
}

test('30,000 mutated tunnel and IGMP frames: no exception, no buffer leaked', () => {
  const clock = new VirtualClock(0);
  // The peer produces real frames of each kind.
  const devB = new Sink('b0', MAC_B);
  const b = new Stack({ clock, name: 'b' });
  b.addInterface(devB, { addr: '198.18.9.2/24' });
  b.arp.addStatic(1, A, MAC_A);
  tunnels(b, 2, 1);
  for (const i of [2, 3, 4]) b.arp.addStatic(i, parseIpv4(`198.18.${8 + i}.1`)!, Uint8Array.of(2, 0, 0, 0, 10, 1));
  for (const net of [10, 11, 12]) {
    b.icmp.sendEcho(parseIpv4(`198.18.${net}.1`)!, 1, 1, new Uint8Array(64).fill(net));
    const u = b.udp.open(); u.send(new Uint8Array(200).fill(1), parseIpv4(`198.18.${net}.1`)!, 7);
    b.tcp.connect({ raddr: parseIpv4(`198.18.${net}.1`)!, rport: 80 });
  }
  b.udp.open().send(new Uint8Array(30), G, 5000);
  const templates = devB.frames.filter((f) => f[12] === 8 && f[13] === 0);
  // An IGMPv3 query with sources, by hand.
  const q = new Uint8Array(14 + 24 + 20);
  q.set([1, 0, 0x5e, 1, 2, 3, ...MAC_B, 8, 0]);
  const n = writeV3Query(q, 38, 10, G, [parseIpv4('198.18.9.2')!]);
  writeIpv4RaHeader(q, 14, 24 + n, 1, parseIpv4('198.18.9.2')!, G);
  templates.push(q);
  assert.ok(templates.length >= 8, `templates: ${templates.length}`);

  const rnd = new Prng(99);
  const pool = new BufferPool();
  const dev = new Sink('a0', MAC_A);
  dev.keep = false;
  const a = new Stack({ clock, pool, name: 'a', random: () => rnd.next() });
  a.addInterface(dev, { addr: '198.18.9.1/24' });
  tunnels(a, 1, 2);
  const s = a.udp.open(); s.reuseAddr = true; s.bind(0, 5000); s.addMembership(G);
  const t = a.udp.open(); t.reuseAddr = true; t.bind(0, 5000); t.addSourceMembership(G, parseIpv4('198.18.9.2')!);
  a.tcp.listen({ port: 80 });
  const base = pool.inUse;
  for (let i = 0; i < 30_000; i++) {
    const tpl = templates[rnd.int(0, templates.length - 1)]!;
    const f = tpl.slice(0, rnd.next() < 0.1 ? rnd.int(0, tpl.length + 1 - 1) : tpl.length);
    const flips = 1 + rnd.int(0, 4 - 1);
    // Mutate past the Ethernet header mostly: the outer IPv4 header, GRE/UDP/VXLAN and the inner frame.
    for (let k = 0; k < flips && f.length > 14; k++) f[14 + rnd.int(0, f.length - 14 - 1)] = rnd.int(0, 256 - 1);
    const buf = pool.alloc();
    buf.append(f.length);
    buf.data.set(f, buf.start);
    a.input(1, buf);
    if (i % 97 === 0) { clock.advance(50); a.poll(); }
  }
  clock.advance(600_000); a.poll();
  a.close();
  assert.ok(pool.inUse <= base, `buffers in use ${pool.inUse} (was ${base})`);
  assert.ok(Object.keys(a.drops).length > 5, JSON.stringify(a.drops));
  // The mutations reached the tunnels' own checks, and unmutated ones got through them.
  assert.ok(Object.keys(a.drops).some((k) => /^(gre|vxlan|ipip|tunnel)_/.test(k)), JSON.stringify(a.drops));
  assert.ok(a.tunnels.devices.every((d) => d.stats.rxPackets > 0), 'every tunnel received frames');
});
