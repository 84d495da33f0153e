// IPv4 and IPv6 forwarding between interfaces (net.inet.ip.forwarding, net.inet6.ip6.forwarding):
// a router-on-a-stick — one stack with VLANs 10 and 20 — between two hosts, each on one VLAN.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Simulation } from '../helpers/sim.js';
import { filler } from '../helpers/tcp-harness.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/addr.js';
import type { Stack } from '../../src/stack/stack.js';

const A = '198.18.160.1', R1 = '198.18.160.2', R2 = '198.18.161.2', B = '198.18.161.1';

/** The IPv4/IPv6 packets a stack receives on its port: "v4 src>dst proto ttl [icmp type]" / "v6 hlim nh". */
function l3Log(stack: Stack): string[] {
  const log: string[] = [];
  stack.frameTap = (ifIndex, buf, tx) => {
    if (tx || ifIndex !== 1) return;
    const d = buf.data; let o = buf.start + 12;
    let t = (d[o]! << 8) | d[o + 1]!;
    while (t === 0x8100 || t === 0x88a8) { o += 4; t = (d[o]! << 8) | d[o + 1]!; }
    const ip = o + 2;
    if (t === 0x0800) {
      const ihl = (d[ip]! & 15) * 4;
      log.push(`v4 ${d[ip + 12]}.${d[ip + 13]}.${d[ip + 14]}.${d[ip + 15]}>${d[ip + 16]}.${d[ip + 17]}.${d[ip + 18]}.${d[ip + 19]} p${d[ip + 9]} ttl${d[ip + 8]}${d[ip + 9] === 1 ? ` icmp${d[ip + ihl]}` : ''}`);
    } else if (t === 0x86dd) {
      log.push(`v6 hlim${d[ip + 7]} nh${d[ip + 6]}${d[ip + 6] === 58 ? ` icmp${d[ip + 40]}` : ''}`);
    }
  };
  return log;
}

function topology(seed: string) {
  const sim = new Simulation({ seed, latencyMs: 1 });
  const a = sim.addHost({ name: 'a' }).stack;
  const r = sim.addHost({ name: 'r' }).stack;
  const b = sim.addHost({ name: 'b' }).stack;
  a.addVlan(1, 10, { addr: `${A}/24`, gateway: R1, addr6: '2001:db8:160::1/64', gateway6: '2001:db8:160::2' });
  r.addVlan(1, 10, { addr: `${R1}/24`, addr6: '2001:db8:160::2/64' });
  r.addVlan(1, 20, { addr: `${R2}/24`, addr6: '2001:db8:161::2/64' });
  b.addVlan(1, 20, { addr: `${B}/24`, gateway: R2, addr6: '2001:db8:161::1/64', gateway6: '2001:db8:161::2' });
  sim.run(3000); // DAD
  return { sim, a, r, b };
}

test('forwarding is off by default: nothing crosses the router', () => {
  const { sim, a, r } = topology('fwd-off');
  let replies = 0;
  a.icmp.onEchoReply = () => { replies++; };
  a.icmp.sendEcho(parseIpv4(B)!, 1, 1, new Uint8Array(8));
  a.ip6.icmp.onEchoReply = () => { replies++; };
  a.ip6.icmp.sendEcho(parseIpv6('2001:db8:161::1')!, 1, 1, new Uint8Array(8));
  sim.run(3000);
  assert.equal(replies, 0);
  assert.equal(r.ipStats.forwarded, 0);
  assert.equal(r.ip6.stats.forwarded, 0);
  assert.ok((r.drops['ip_not_for_us'] ?? 0) >= 1 && (r.drops['ip6_not_for_us'] ?? 0) >= 1, JSON.stringify(r.drops));
  sim.close();
});

test('IPv4 forwarding: ping with the TTL decremented, time exceeded at TTL 1, martians refused, TCP with no byte lost', () => {
  const { sim, a, r, b } = topology('fwd-v4');
  r.sysctl.set('net.inet.ip.forwarding', 1);
  const atA = l3Log(a), atB = l3Log(b);
  const replies: number[] = [];
  a.icmp.onEchoReply = (src, _id, seq) => { if (src === parseIpv4(B)) replies.push(seq); };
  a.icmp.sendEcho(parseIpv4(B)!, 1, 1, new Uint8Array(56));
  assert.ok(sim.runUntil(() => replies.length === 1, { maxMs: 5000 }), sim.describe());
  assert.ok(atB.includes(`v4 ${A}>${B} p1 ttl63 icmp8`), atB.join('\n'));
  assert.ok(atA.includes(`v4 ${B}>${A} p1 ttl63 icmp0`), atA.join('\n'));

  // TTL 1: the router answers with Time Exceeded from the interface the datagram came in by.
  a.icmp.sendEcho(parseIpv4(B)!, 1, 2, new Uint8Array(8), 0, 1);
  assert.ok(sim.runUntil(() => atA.some((s) => s.startsWith(`v4 ${R1}>${A} p1`) && s.endsWith('icmp11')), { maxMs: 5000 }), atA.join('\n'));
  assert.equal(replies.length, 1);
  assert.ok((r.drops['ip_forward_ttl_exceeded'] ?? 0) === 1);

  // Link-local and martian destinations are never forwarded; an unrouted one gets Unreachable.
  a.icmp.sendEcho(parseIpv4('169.254.1.1')!, 1, 3, new Uint8Array(8));
  a.icmp.sendEcho(parseIpv4('198.18.170.1')!, 1, 4, new Uint8Array(8));
  sim.run(2000);
  assert.equal(r.drops['ip_forward_martian'], 1);
  assert.equal(r.drops['ip_forward_no_route'], 1);
  assert.ok(atA.some((s) => s.startsWith(`v4 ${R1}>${A} p1`) && s.endsWith('icmp3')), atA.join('\n'));

  // TCP through the router: 512 KiB, SHA-256 equal.
  const data = filler(512 * 1024, 3);
  const got: Uint8Array[] = [];
  let done = false;
  const l = b.tcp.listen({ port: 9 });
  l.onConnection = (s) => { s.onData = () => { for (let x = s.read(); x; x = s.read()) got.push(x); }; s.onEnd = () => { done = true; s.shutdown(); }; };
  const c = a.tcp.connect({ raddr: parseIpv4(B)!, rport: 9 });
  let off = 0;
  const pump = () => { while (off < data.length) { const n = c.write(data.subarray(off, off + 65536)); off += n; if (n === 0) return; } c.shutdown(); };
  c.onConnect = pump; c.onDrain = pump;
  assert.ok(sim.runUntil(() => done, { maxMs: 120_000 }), sim.describe());
  const h = createHash('sha256'); for (const g of got) h.update(g);
  assert.equal(h.digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.ok(r.ipStats.forwarded > 300, `${r.ipStats.forwarded} forwarded`);
  sim.close();
});

test('IPv4 forwarding fragments for a smaller next-hop MTU, and refuses DF with the next-hop MTU', () => {
  const sim = new Simulation({ seed: 'fwd-frag', latencyMs: 1 });
  const a = sim.addHost({ name: 'a' }).stack;
  const r = sim.addHost({ name: 'r' }).stack;
  const b = sim.addHost({ name: 'b' }).stack;
  a.addVlan(1, 10, { addr: `${A}/24`, gateway: R1 });
  r.addVlan(1, 10, { addr: `${R1}/24` });
  r.addVlan(1, 20, { addr: `${R2}/24`, mtu: 1000 });
  b.addVlan(1, 20, { addr: `${B}/24`, gateway: R2, mtu: 1000 });
  r.sysctl.set('net.inet.ip.forwarding', 1);
  const replies: number[] = [];
  a.icmp.onEchoReply = (_s, _id, seq, p) => { if (p.length === 1400) replies.push(seq); };
  a.icmp.sendEcho(parseIpv4(B)!, 1, 1, new Uint8Array(1400));
  assert.ok(sim.runUntil(() => replies.length === 1, { maxMs: 5000 }), sim.describe());
  assert.ok(r.ipStats.fragmentsCreated >= 2);
  // DF (as TCP sends): Fragmentation Needed carrying MTU 1000.
  let mtuSeen = 0;
  a.frameTap = (ifIndex, buf, tx) => {
    if (tx || ifIndex !== 1) return;
    const d = buf.data, ip = buf.start + 18;
    if (d[ip + 9] === 1 && d[ip + 20] === 3 && d[ip + 21] === 4) mtuSeen = (d[ip + 26]! << 8) | d[ip + 27]!;
  };
  // A 1200-byte datagram with DF set.
  const p = a.pool.alloc(); p.data.fill(0, p.start, p.start + 1200); p.append(1200);
  a.ipOutput(p, 0, parseIpv4(B)!, 17, 0, 64, true);
  sim.run(2000);
  assert.equal(mtuSeen, 1000);
  assert.equal(r.drops['ip_forward_needs_frag'], 1);
  sim.close();
});

test('IPv6 forwarding: ping6 with the hop limit decremented; hop limit 1 gets Time Exceeded', () => {
  const { sim, a, r, b } = topology('fwd-v6');
  r.sysctl.set('net.inet6.ip6.forwarding', 1);
  const atA = l3Log(a), atB = l3Log(b);
  const dst = parseIpv6('2001:db8:161::1')!;
  let replies = 0;
  a.ip6.icmp.onEchoReply = () => { replies++; };
  a.ip6.icmp.sendEcho(dst, 1, 1, new Uint8Array(56));
  assert.ok(sim.runUntil(() => replies === 1, { maxMs: 5000 }), `${sim.describe()} ${JSON.stringify(r.drops)}`);
  assert.ok(atB.includes('v6 hlim63 nh58 icmp128'), atB.join('\n'));
  assert.ok(atA.includes('v6 hlim63 nh58 icmp129'), atA.join('\n'));
  a.ip6.icmp.sendEcho(dst, 1, 2, new Uint8Array(8), null, 1);
  assert.ok(sim.runUntil(() => atA.some((s) => s.endsWith('icmp3')), { maxMs: 5000 }), atA.join('\n'));
  assert.equal(replies, 1);
  assert.ok(r.ip6.stats.forwarded >= 2);
  sim.close();
});
