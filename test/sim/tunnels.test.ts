// Tunnel interfaces between two stacks on the memory wire: VXLAN, GRE (keyed, with sequence
// numbers) and IP-in-IP carry ping and a 16 MiB TCP transfer (SHA-256 equal both ways); tshark
// decodes the capture with 0 malformed frames; a Fragmentation Needed about the outer packets
// lowers the tunnel MTU; a wrong GRE key is dropped and counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Simulation } from '../helpers/sim.js';
import { hasCommand } from '../helpers/netns.js';
import { collect, pump, sha } from '../helpers/stream.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/addr.js';
import type { TunnelConfig } from '../../src/stack/tunnel/tunnels.js';
import type { Stack } from '../../src/stack/stack.js';

const IN_A = parseIpv4('198.18.213.1')!, IN_B = parseIpv4('198.18.213.2')!;

function data(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}
function twoEnds(kind: TunnelConfig['kind'], seed: string, capturePath?: string) {
  const sim = new Simulation({ seed, latencyMs: 1 });
  if (capturePath) sim.capture(capturePath);
  const a = sim.addHost({ name: 'a', addr: '198.18.212.1/24' }).stack;
  const b = sim.addHost({ name: 'b', addr: '198.18.212.2/24' }).stack;
  const extra = kind === 'vxlan' ? { vni: 42 } : kind === 'gre' ? { key: 7, seq: true } : {};
  const ta = a.addTunnel({ kind, ifname: 't0', local: '198.18.212.1', remotes: ['198.18.212.2'], addr: '198.18.213.1/24', ...extra });
  const tb = b.addTunnel({ kind, ifname: 't0', local: '198.18.212.2', remotes: ['198.18.212.1'], addr: '198.18.213.2/24', ...extra });
  return { sim, a, b, ta, tb };
}

function pingAndTransfer(sim: Simulation, a: Stack, b: Stack, size: number): void {
  const replies: number[] = [];
  a.icmp.onEchoReply = (src, _id, seq) => { if (src === IN_B) replies.push(seq); };
  for (let i = 1; i <= 3; i++) a.icmp.sendEcho(IN_B, 9, i, new Uint8Array(56).fill(i));
  assert.ok(sim.runUntil(() => replies.length === 3, { maxMs: 5000 }), `ping through the tunnel: ${sim.describe()}`);
  assert.deepEqual(replies, [1, 2, 3]);

  const ab = data(size, 1), ba = data(size >> 4, 2);
  const l = b.tcp.listen({ port: 5001 });
  let server: ReturnType<typeof collect> | null = null;
  l.onConnection = (s) => { server = collect(s); pump(s, ba); };
  const c = a.tcp.connect({ raddr: IN_B, rport: 5001 });
  const client = collect(c);
  c.onConnect = () => pump(c, ab);
  const ok = sim.runUntil(() => client.ended && server !== null && (server as { ended: boolean }).ended, { maxMs: 600_000, maxSteps: 5_000_000 });
  const srv = server as unknown as ReturnType<typeof collect>;
  assert.ok(ok, `transfer finished: a got ${client.bytes}/${ba.length}, b got ${srv?.bytes}/${ab.length}`);
  assert.equal(sha(srv.chunks), sha([ab]), 'a→b SHA-256');
  assert.equal(sha(client.chunks), sha([ba]), 'b→a SHA-256');
}

for (const kind of ['vxlan', 'gre', 'ipip'] as const) {
  test(`${kind}: ping and a 16 MiB TCP transfer through the tunnel, SHA-256 equal; MSS follows the inner MTU`, () => {
    const { sim, a, b, ta, tb } = twoEnds(kind, kind);
    const want = kind === 'vxlan' ? 1450 : kind === 'gre' ? 1500 - 20 - 12 : 1480;
    assert.equal(a.interfaceByIndex(ta)!.mtu, want);
    pingAndTransfer(sim, a, b, 16 << 20);
    const da = a.tunnels.devices[0]!, db = b.tunnels.devices[0]!;
    assert.ok(da.stats.txPackets > 16 * 1024 * 1024 / want, `a sent ${da.stats.txPackets} packets through the tunnel`);
    assert.ok(db.stats.rxPackets > 11000);
    assert.equal(a.interfaceByIndex(ta)!.counters.rxErrors, 0);
    assert.equal(b.interfaceByIndex(tb)!.counters.rxErrors, 0);
    if (kind === 'vxlan') {
      // b learned a's inner MAC behind a's underlay address.
      const macA = [...a.interfaceByIndex(ta)!.mac].map((x) => x.toString(16).padStart(2, '0')).join(':');
      assert.deepEqual((db as unknown as { entries(): { mac: string; remote: string }[] }).entries().find((e) => e.mac === macA)?.remote, '198.18.212.1');
    }
    sim.close();
  });
}

test('tshark decodes VXLAN, GRE and IP-in-IP on the underlay with 0 malformed frames, both directions', (t) => {
  if (!hasCommand('tshark')) {
    if (process.env.CI) throw new Error('tshark missing under CI');
    t.skip('tshark not installed'); return;
  }
  const dir = process.env.TUN_KEEP ?? mkdtempSync(join(tmpdir(), 'tstack-tun-'));
  try {
    for (const kind of ['vxlan', 'gre', 'ipip'] as const) {
      const path = join(dir, `${kind}.pcap`);
      const { sim, a, b } = twoEnds(kind, `pcap-${kind}`, path);
      pingAndTransfer(sim, a, b, 64 << 10);
      sim.close();
      const out = execFileSync('tshark', ['-n', '-r', path, '-T', 'fields', '-e', 'frame.protocols', '-e', 'ip.src', '-e', '_ws.malformed', '-e', 'gre.key', '-e', 'vxlan.vni'], { encoding: 'utf8' });
      const lines = out.split('\n').filter((l) => l !== '');
      const tag = kind === 'vxlan' ? ':vxlan:eth:' : kind === 'gre' ? ':gre:ip:' : ':ip:ip:';
      const inner = lines.filter((l) => l.includes(tag));
      assert.ok(inner.some((l) => l.includes(':tcp')) && inner.some((l) => l.includes(':icmp')), `${kind}: tshark sees TCP and ICMP inside`);
      const srcs = new Set(inner.map((l) => l.split('\t')[1]!.split(',')[0]));
      assert.deepEqual([...srcs].sort(), ['198.18.212.1', '198.18.212.2'], `${kind}: both directions`);
      assert.equal(lines.filter((l) => (l.split('\t')[2] ?? '') !== '').length, 0, `${kind}: malformed frames`);
      if (kind === 'gre') assert.ok(inner.every((l) => l.split('\t')[3] === '0x00000007'), 'the GRE key');
      if (kind === 'vxlan') assert.ok(inner.every((l) => l.split('\t')[4] === '42'), 'the VNI');
    }
  } finally {
    if (!process.env.TUN_KEEP) rmSync(dir, { recursive: true, force: true });
  }
});

/** A router on the underlay (198.18.212.254) reports `mtu` to `st` for an outer GRE packet 198.18.212.1 → .2. */
function fragNeeded(st: Stack, mtu: number): void {
  const buf = st.pool.alloc();
  const o = buf.append(14 + 20 + 8 + 28);
  const d = buf.data;
  d.set(st.interfaceByIndex(1)!.mac, o); d.set([2, 0, 0, 0, 0, 0x99, 0x08, 0x00], o + 6);
  const ip = o + 14;
  d.set([0x45, 0, 0, 56, 0, 1, 0, 0, 64, 1, 0, 0, 198, 18, 212, 254, 198, 18, 212, 1], ip);
  const icmp = ip + 20;
  d.set([3, 4, 0, 0, 0, 0, mtu >> 8, mtu & 0xff], icmp);
  d.set([0x45, 0, 0x05, 0xdc, 0, 2, 0x40, 0, 64, 47, 0, 0, 198, 18, 212, 1, 198, 18, 212, 2, 0x30, 0, 8, 0, 0, 0, 0, 7], icmp + 8);
  const csum = (b: Uint8Array, off: number, len: number) => { let s = 0; for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (b[off + i + 1] ?? 0); while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return ~s & 0xffff; };
  const qc = csum(d, icmp + 8, 20); d[icmp + 8 + 10] = qc >> 8; d[icmp + 8 + 11] = qc & 0xff;
  const ic = csum(d, icmp, 36); d[icmp + 2] = ic >> 8; d[icmp + 3] = ic & 0xff;
  const hc = csum(d, ip, 20); d[ip + 10] = hc >> 8; d[ip + 11] = hc & 0xff;
  st.input(1, buf);
}

test('PMTU through a GRE tunnel: Fragmentation Needed about an outer packet lowers the tunnel MTU', () => {
  const { sim, a, ta } = twoEnds('gre', 'pmtu');
  sim.run(10);
  assert.equal(a.interfaceByIndex(ta)!.mtu, 1468);
  fragNeeded(a, 1400);
  assert.equal(a.interfaceByIndex(ta)!.mtu, 1400 - 32);
  sim.close();
});

test('PMTU through a GRE tunnel: a transfer under way when the tunnel MTU drops resizes its segments and finishes', () => {
  const { sim, a, b, ta } = twoEnds('gre', 'pmtu-live');
  const size = 4 << 20;
  const ab = data(size, 5);
  const l = b.tcp.listen({ port: 5003 });
  let server: ReturnType<typeof collect> | null = null;
  l.onConnection = (s) => { server = collect(s); };
  const c = a.tcp.connect({ raddr: IN_B, rport: 5003 });
  c.onConnect = () => pump(c, ab);
  assert.ok(sim.runUntil(() => server !== null && (server as { bytes: number }).bytes > (1 << 20), { maxMs: 60_000 }));
  fragNeeded(a, 1400);
  assert.equal(a.interfaceByIndex(ta)!.mtu, 1368);
  assert.ok(sim.runUntil(() => (server as unknown as { ended: boolean }).ended, { maxMs: 60_000 }), `finished: b got ${(server as unknown as { bytes: number }).bytes}/${size}`);
  assert.equal(sha((server as unknown as { chunks: Uint8Array[] }).chunks), sha([ab]));
  assert.ok(a.tcp.counters.pmtuUpdates >= 1, 'TCP took the smaller MTU');
  sim.close();
});

test('GRE: a packet with another key is not taken by the tunnel (dropped, counted)', () => {
  const sim = new Simulation({ seed: 'key', latencyMs: 1 });
  const a = sim.addHost({ name: 'a', addr: '198.18.212.1/24' }).stack;
  const b = sim.addHost({ name: 'b', addr: '198.18.212.2/24' }).stack;
  a.addTunnel({ kind: 'gre', ifname: 't0', local: '198.18.212.1', remotes: ['198.18.212.2'], addr: '198.18.213.1/24', key: 7 });
  b.addTunnel({ kind: 'gre', ifname: 't0', local: '198.18.212.2', remotes: ['198.18.212.1'], addr: '198.18.213.2/24', key: 8 });
  let replies = 0;
  a.icmp.onEchoReply = () => replies++;
  a.icmp.sendEcho(IN_B, 1, 1, new Uint8Array(8));
  sim.run(2000);
  assert.equal(replies, 0);
  assert.equal(b.drops['gre_key_mismatch'], 1);
  sim.close();
});

test('vxlan with two remote VTEPs: broadcasts are replicated to both, unicast follows the learned FDB', () => {
  const sim = new Simulation({ seed: 'three', latencyMs: 1 });
  const a = sim.addHost({ name: 'a', addr: '198.18.212.1/24' }).stack;
  const b = sim.addHost({ name: 'b', addr: '198.18.212.2/24' }).stack;
  const c = sim.addHost({ name: 'c', addr: '198.18.212.3/24' }).stack;
  a.addTunnel({ kind: 'vxlan', ifname: 'vx0', vni: 7, local: '198.18.212.1', remotes: ['198.18.212.2', '198.18.212.3'], addr: '198.18.213.1/24' });
  b.addTunnel({ kind: 'vxlan', ifname: 'vx0', vni: 7, local: '198.18.212.2', remotes: ['198.18.212.1'], addr: '198.18.213.2/24' });
  c.addTunnel({ kind: 'vxlan', ifname: 'vx0', vni: 7, local: '198.18.212.3', remotes: ['198.18.212.1'], addr: '198.18.213.3/24' });
  sim.run(100);
  const got: number[] = [];
  a.icmp.onEchoReply = (src) => got.push(src);
  a.icmp.sendEcho(IN_B, 1, 1, new Uint8Array(8));
  a.icmp.sendEcho(parseIpv4('198.18.213.3')!, 1, 2, new Uint8Array(8));
  assert.ok(sim.runUntil(() => got.length === 2, { maxMs: 5000 }), sim.describe());
  assert.deepEqual(got.sort(), [IN_B, parseIpv4('198.18.213.3')!].sort());
  const d = a.tunnels.devices[0] as unknown as { stats: { flooded: number }; entries(): { remote: string }[] };
  assert.ok(d.stats.flooded >= 2, 'the ARP requests were replicated');
  assert.deepEqual(d.entries().map((e) => e.remote).sort(), ['198.18.212.2', '198.18.212.3'], 'one learned entry behind each VTEP');
  // Once learned, unicast goes to one VTEP only: c sees nothing of a's pings to b.
  const cBefore = c.tunnels.devices[0]!.stats.rxPackets;
  const flooded = d.stats.flooded;
  for (let i = 0; i < 5; i++) a.icmp.sendEcho(IN_B, 1, 10 + i, new Uint8Array(8));
  assert.ok(sim.runUntil(() => got.length === 7, { maxMs: 5000 }));
  assert.equal(c.tunnels.devices[0]!.stats.rxPackets, cBefore);
  assert.equal(d.stats.flooded, flooded);
  sim.close();
});

test('vxlan carries IPv6 inside: addr6 on the tunnel, NDP and DAD through it, ping6 both ways', () => {
  const sim = new Simulation({ seed: 'v6in', latencyMs: 1 });
  const a = sim.addHost({ name: 'a', addr: '198.18.212.1/24' }).stack;
  const b = sim.addHost({ name: 'b', addr: '198.18.212.2/24' }).stack;
  a.addTunnel({ kind: 'vxlan', ifname: 'vx0', vni: 9, local: '198.18.212.1', remotes: ['198.18.212.2'], addr6: '2001:db8:213::1/64' });
  b.addTunnel({ kind: 'vxlan', ifname: 'vx0', vni: 9, local: '198.18.212.2', remotes: ['198.18.212.1'], addr6: '2001:db8:213::2/64' });
  sim.run(5000); // DAD
  const got: string[] = [];
  a.ip6.icmp.onEchoReply = (src, _id, seq) => got.push(`${[...src].map((x) => x.toString(16)).join('.')}#${seq}`);
  for (let i = 1; i <= 3; i++) a.ip6.icmp.sendEcho(parseIpv6('2001:db8:213::2')!, 3, i, new Uint8Array(1200).fill(i));
  assert.ok(sim.runUntil(() => got.length === 3, { maxMs: 5000 }), sim.describe());
  let back = 0;
  b.ip6.icmp.onEchoReply = () => back++;
  b.ip6.icmp.sendEcho(parseIpv6('2001:db8:213::1')!, 4, 1, new Uint8Array(8));
  assert.ok(sim.runUntil(() => back === 1, { maxMs: 5000 }), sim.describe());
  sim.close();
});
