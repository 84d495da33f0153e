// TCP over IPv6 between two stacks on the memory wire (virtual clock, seeded faults): the
// handshake and its options, byte-exact bulk transfer with loss, SYN cookies, resets and
// ICMPv6 errors, TIME_WAIT, and dual-stack listeners (an IPv4 peer of a :: listener).
import test from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, type StackNode } from '../helpers/sim.js';
import { collect, pump, sha } from '../helpers/stream.js';
import { parseIpv6 } from '../../src/wire/addr.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { TcpError } from '../../src/stack/tcp/socket.js';
import { sockets } from '../../src/stack/stats.js';

const A6 = parseIpv6('2001:db8:6::1')!, B6 = parseIpv6('2001:db8:6::2')!;
const ANY6 = new Uint8Array(16);

function hosts(seed: number, faults = {}, sysctl = {}) {
  const sim = new Simulation({ seed });
  const a = sim.addHost({ name: 'a', addr: '198.18.66.1/24', addr6: '2001:db8:6::1/64', faults, sysctl });
  const b = sim.addHost({ name: 'b', addr: '198.18.66.2/24', addr6: '2001:db8:6::2/64', faults, sysctl });
  // DAD (RFC 4862) must finish before the addresses are usable.
  sim.runUntil(() => false, { maxMs: 3000 });
  return { sim, a, b };
}

function filler(n: number, seed: number): Uint8Array {
  const d = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; d[i] = x >>> 24; }
  return d;
}

/** Both ways at once; returns after both sides closed. */
function exchange(sim: Simulation, a: StackNode, b: StackNode, sizeAB: number, sizeBA: number, seed: number, maxMs = 600_000) {
  const l = b.stack.tcp.listen({ port: 80, addr6: ANY6 });
  const ab = filler(sizeAB, seed), ba = filler(sizeBA, seed + 1);
  let server: ReturnType<typeof collect> | null = null;
  let ss: TcpSocket | null = null;
  l.onConnection = (s) => { ss = s; server = collect(s); pump(s, ba); };
  const c = a.stack.tcp.connect({ raddr: 0, raddr6: B6, rport: 80 });
  const client = collect(c);
  c.onConnect = () => pump(c, ab);
  sim.runUntil(() => client.closed && server !== null && server.closed, { maxMs });
  assert.ok(server, 'the listener accepted');
  const srv = server as ReturnType<typeof collect>;
  assert.equal(client.err, undefined);
  assert.equal(srv.err, undefined);
  assert.equal(srv.bytes, sizeAB);
  assert.equal(client.bytes, sizeBA);
  assert.equal(sha(srv.chunks), sha([ab]));
  assert.equal(sha(client.chunks), sha([ba]));
  return { l, c, ss: ss as TcpSocket | null };
}

test('an IPv6 handshake negotiates MSS 1440 (MTU 1500 - 60), window scale, SACK and timestamps', () => {
  const { sim, a, b } = hosts(1);
  const l = b.stack.tcp.listen({ port: 80, addr6: ANY6 });
  let accepted: TcpSocket | null = null;
  l.onConnection = (s) => { accepted = s; };
  const c = a.stack.tcp.connect({ raddr: 0, raddr6: B6, rport: 80 });
  sim.runUntil(() => accepted !== null && c.state === 'ESTABLISHED', { maxMs: 5000 });
  assert.equal(c.state, 'ESTABLISHED');
  const t = c.tcb, s = (accepted as unknown as TcpSocket).tcb;
  assert.equal(t.family, 6);
  assert.deepEqual([...t.laddr6], [...A6]);
  assert.deepEqual([...t.raddr6], [...B6]);
  assert.deepEqual([...s.raddr6], [...A6]);
  assert.equal(s.rport, t.lport);
  assert.equal(t.mss, 1440);
  assert.equal(t.rcvMss, 1440);
  assert.ok(t.wsOk && t.sackOk && t.tsOk && s.wsOk && s.sackOk && s.tsOk);
  assert.equal(t.path.headerLen, 40);
  // The tools' socket list (netstat) names IPv6 ends by their addresses.
  const socks = sockets(b.stack).map((x) => `${x.localAddress}:${x.localPort} ${x.foreignAddress}:${x.foreignPort} ${x.state}`);
  assert.ok(socks.includes(':::80 :::0 LISTEN'), socks.join('\n'));
  assert.ok(socks.includes(`2001:db8:6::2:80 2001:db8:6::1:${t.lport} ESTABLISHED`), socks.join('\n'));
  // Nothing went over IPv4.
  assert.equal(a.stack.tcp.lookup(0, t.lport, 0, 80), null);
});

test('1 MiB each way over IPv6 arrives byte-exact on a clean wire, then TIME_WAIT runs out', () => {
  const { sim, a, b } = hosts(2, {}, { 'net.inet.tcp.msl': 1000 });
  const { l } = exchange(sim, a, b, 1 << 20, 1 << 20, 2);
  const tw = [...a.stack.tcp.timeWaitEntries(), ...b.stack.tcp.timeWaitEntries()];
  // Both shut down as soon as they have written: either or both sides wait (simultaneous close).
  assert.ok(tw.length >= 1 && tw.every((e) => e.family === 6 && e.laddr6 !== undefined), JSON.stringify(tw));
  sim.runUntil(() => a.stack.tcp.activeTcbs === 0 && b.stack.tcp.activeTcbs === 0, { maxMs: 10_000 });
  assert.equal(a.stack.tcp.activeTcbs + b.stack.tcp.activeTcbs, 0);
  l.close();
});

for (const seed of [3, 4, 5]) {
  test(`2 MiB each way over IPv6 with 3% loss, duplication and reordering arrives byte-exact (seed ${seed})`, () => {
    const { sim, a, b } = hosts(seed, { loss: 0.03, duplicate: 0.01, reorder: 0.02 });
    exchange(sim, a, b, 2 << 20, 2 << 20, seed, 3_600_000);
  });
}

test('SYN cookies over IPv6: a forced-cookie listener completes the handshake and carries data', () => {
  const { sim, a, b } = hosts(6, {}, { 'net.inet.tcp.syncookies': 2 });
  exchange(sim, a, b, 100_000, 50_000, 6);
  assert.ok(b.stack.tcp.counters.synCookiesSent >= 1);
  assert.ok(b.stack.tcp.counters.synCookiesReceived >= 1);
});

test('a SYN to a closed IPv6 port is answered with RST: connect fails with ECONNREFUSED', () => {
  const { sim, a } = hosts(7);
  const c = a.stack.tcp.connect({ raddr: 0, raddr6: B6, rport: 81 });
  const r = collect(c);
  sim.runUntil(() => r.closed, { maxMs: 5000 });
  assert.equal(r.err?.code, 'ECONNREFUSED');
});

test('an ICMPv6 port unreachable quoting our SYN ends the connect with ECONNREFUSED', () => {
  const { sim, a } = hosts(8);
  const c = a.stack.tcp.connect({ raddr: 0, raddr6: B6, rport: 82 });
  const r = collect(c);
  // Forge the error as b would send it: it quotes the SYN a just sent.
  const t = c.tcb;
  const quoted = new Uint8Array(40 + 20);
  quoted[0] = 0x60; quoted[5] = 20; quoted[6] = 6; quoted[7] = 64;
  quoted.set(A6, 8); quoted.set(B6, 24);
  quoted[40] = t.lport >> 8; quoted[41] = t.lport & 0xff; quoted[42] = 0; quoted[43] = 82;
  const iss = t.iss;
  quoted[44] = iss >>> 24; quoted[45] = (iss >>> 16) & 0xff; quoted[46] = (iss >>> 8) & 0xff; quoted[47] = iss & 0xff;
  a.stack.ip6.icmp.handlers.get(6)!(1, 4, 0, quoted, 0, 40, 20);
  sim.runUntil(() => r.closed, { maxMs: 1000 });
  assert.equal(r.err?.code, 'ECONNREFUSED');
  assert.equal(a.stack.tcp.counters.icmpHardErrors, 1);
});

test('connect to an on-link IPv6 address nobody answers: NDP fails and the connect ends with EHOSTUNREACH', () => {
  const { sim, a } = hosts(14);
  const c = a.stack.tcp.connect({ raddr: 0, raddr6: parseIpv6('2001:db8:6::99')!, rport: 80 });
  const r = collect(c);
  sim.runUntil(() => r.closed, { maxMs: 30_000 });
  assert.equal(r.err?.code, 'EHOSTUNREACH');
  assert.ok(sim.now < 3000 + 10_000, `took until ${sim.now} ms`);
});

test('Packet Too Big lowers an IPv6 connection\'s MSS to the path MTU - 60 and data still arrives', () => {
  const { sim, a, b } = hosts(9);
  const l = b.stack.tcp.listen({ port: 80, addr6: ANY6 });
  let srv: ReturnType<typeof collect> | null = null;
  l.onConnection = (s) => { srv = collect(s); };
  const c = a.stack.tcp.connect({ raddr: 0, raddr6: B6, rport: 80 });
  sim.runUntil(() => c.state === 'ESTABLISHED', { maxMs: 5000 });
  const data = filler(200_000, 9);
  pump(c, data);
  const t = c.tcb;
  const quoted = new Uint8Array(40 + 20);
  quoted[0] = 0x60; quoted[6] = 6; quoted.set(A6, 8); quoted.set(B6, 24);
  quoted[40] = t.lport >> 8; quoted[41] = t.lport & 0xff; quoted[43] = 80;
  const una = t.sndUna;
  quoted[44] = una >>> 24; quoted[45] = (una >>> 16) & 0xff; quoted[46] = (una >>> 8) & 0xff; quoted[47] = una & 0xff;
  a.stack.ip6.icmp.handlers.get(6)!(2, 0, 1400, quoted, 0, 40, 20);
  assert.equal(t.mss, 1340);
  sim.runUntil(() => srv !== null && (srv as { ended: boolean }).ended, { maxMs: 60_000 });
  assert.equal(sha((srv as unknown as { chunks: Uint8Array[] }).chunks), sha([data]));
});

test('a :: listener takes IPv4 peers too (seen as IPv4-mapped); ipv6Only refuses them', () => {
  const { sim, a, b } = hosts(10);
  const l = b.stack.tcp.listen({ port: 80, addr6: ANY6 });
  const got: TcpSocket[] = [];
  l.onConnection = (s) => got.push(s);
  const c4 = a.stack.tcp.connect({ raddr: 0xc6124201, rport: 80 }); // wrong host: 198.18.66.1 is a itself
  c4.onClose = () => {};
  const c = a.stack.tcp.connect({ raddr: 0xc6124202, rport: 80 });
  sim.runUntil(() => got.length === 1 && c.state === 'ESTABLISHED', { maxMs: 5000 });
  assert.equal(got.length, 1);
  assert.equal(got[0]!.tcb.family, 4);
  assert.equal(got[0]!.tcb.v4mapped, true);
  l.close();
  const l6 = b.stack.tcp.listen({ port: 81, addr6: ANY6, ipv6Only: true });
  l6.onConnection = (s) => got.push(s);
  const d = a.stack.tcp.connect({ raddr: 0xc6124202, rport: 81 });
  const r = collect(d);
  sim.runUntil(() => r.closed, { maxMs: 5000 });
  assert.equal(r.err?.code, 'ECONNREFUSED');
  const e = a.stack.tcp.connect({ raddr: 0, raddr6: B6, rport: 81 });
  sim.runUntil(() => got.length === 2 && e.state === 'ESTABLISHED', { maxMs: 5000 });
  assert.equal(got[1]!.tcb.family, 6);
});

test('IPv4 0.0.0.0 and dual-stack :: on one port conflict; with ipv6Only they coexist', () => {
  const { b } = hosts(11);
  const l4 = b.stack.tcp.listen({ port: 90 });
  assert.throws(() => b.stack.tcp.listen({ port: 90, addr6: ANY6 }), (e: TcpError) => e.code === 'EADDRINUSE');
  const l6 = b.stack.tcp.listen({ port: 90, addr6: ANY6, ipv6Only: true });
  assert.throws(() => b.stack.tcp.listen({ port: 90, addr6: B6 }), (e: TcpError) => e.code === 'EADDRINUSE');
  assert.throws(() => b.stack.tcp.listen({ port: 91, addr6: A6 }), (e: TcpError) => e.code === 'EADDRNOTAVAIL');
  l4.close(); l6.close();
});

test('every IPv6 segment passes the receiver\'s checksum check (pseudo-header with 16-byte addresses)', () => {
  // Receive coalescing off: TCP input itself checks every segment (coalescing checks them first).
  const { sim, a, b } = hosts(12, {}, { 'net.link.ether.gro': 0 });
  exchange(sim, a, b, 300_000, 300_000, 12);
  assert.ok(b.stack.tcp.counters.rcvTotal > 200 && a.stack.tcp.counters.rcvTotal > 200);
  assert.equal(a.stack.tcp.counters.rcvBadChecksum + b.stack.tcp.counters.rcvBadChecksum, 0);
});

for (const both of [false, true]) {
  test(`TSO6: super-segments ${both ? 'cross the wire whole to a tso6 port' : 'are segmented by the wire for a port without tso6'}, data byte-exact`, () => {
    const sim = new Simulation({ seed: 13 });
    const off = { txCsum: true, rxCsum: true, tso6: true };
    const a = sim.addHost({ name: 'a', addr6: '2001:db8:6::1/64', offloads: off });
    const b = sim.addHost({ name: 'b', addr6: '2001:db8:6::2/64', ...(both && { offloads: off }) });
    sim.runUntil(() => false, { maxMs: 3000 });
    const { c } = exchange(sim, a, b, 4 << 20, 1000, 13);
    assert.equal(c.tcb.path.gsoKind, 2, 'the path segments with Gso.Tcp6');
    // With TSO, TCP emits far fewer (super-)segments than MSS-sized ones would need.
    const n = a.stack.tcp.counters.sndData;
    assert.ok(n * 1.5 < (4 << 20) / 1440, `a sent ${n} data segments`);
    assert.equal(a.stack.tcp.counters.rcvBadChecksum + b.stack.tcp.counters.rcvBadChecksum, 0);
  });
}
