// UDP over IPv6 between two stacks on the memory wire (virtual clock): datagrams both ways with
// the IPv6 pseudo-header checksum, fragments, a :: socket that hears both families, bind rules
// shared by both families, connected sockets and their path, ICMPv6 errors to sockets, port
// unreachable for closed ports (rate limited), zero checksums refused, and ::1 on lo0.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, type StackNode } from '../helpers/sim.js';
import { formatIpv4, formatIpv6, parseIpv6 } from '../../src/wire/addr.js';
import { UdpFamily, type UdpSocket } from '../../src/stack/udp.js';
import { NetError } from '../../src/base/errors.js';
import { ETH_HLEN, EtherType, writeEthernetHeader } from '../../src/wire/ethernet.js';
import { IPV6_HLEN, writeIpv6Header } from '../../src/wire/ipv6.js';
import { finishUdpChecksumV6, writeUdpHeader } from '../../src/wire/udp.js';
import { Icmpv6Type } from '../../src/wire/icmpv6.js';

const A6 = parseIpv6('2001:db8:10::1')!, B6 = parseIpv6('2001:db8:10::2')!;
const MAC_A = '02:00:00:00:10:01', MAC_B = '02:00:00:00:10:02';

interface Got { data: Uint8Array; from: string; port: number; }

function hosts(seed = 1, extra: { sysctl?: Record<string, number | boolean | string> } = {}): { sim: Simulation; a: StackNode; b: StackNode } {
  const sim = new Simulation({ seed });
  const a = sim.addHost({ name: 'a', mac: MAC_A, addr: '198.18.10.1/24', addr6: '2001:db8:10::1/64', ...extra });
  const b = sim.addHost({ name: 'b', mac: MAC_B, addr: '198.18.10.2/24', addr6: '2001:db8:10::2/64', ...extra });
  sim.runUntil(() => false, { maxMs: 3000 }); // DAD
  return { sim, a, b };
}

function listen(s: UdpSocket): Got[] {
  const got: Got[] = [];
  s.onMessage = (data, addr, port, addr6) => got.push({ data, from: addr6 ? formatIpv6(addr6) : formatIpv4(addr), port });
  return got;
}

function pattern(n: number, k = 0): Uint8Array { return Uint8Array.from({ length: n }, (_, i) => (i * 7 + k) & 0xff); }

test('udp6 datagrams of 1, 1232, 1452 and 3000 bytes travel both ways with valid checksums (3000 fragmented)', () => {
  const { sim, a, b } = hosts(1);
  const sb = b.stack.udp.open(UdpFamily.V6);
  sb.bind6(new Uint8Array(16), 0, 5353);
  const gotB = listen(sb);
  const sa = a.stack.udp.open(UdpFamily.V6);
  const gotA = listen(sa);
  const sizes = [1, 1232, 1452, 3000];
  for (const n of sizes) sa.send6(pattern(n), B6, 0, 5353);
  assert.ok(sim.runUntil(() => gotB.length === sizes.length, { maxMs: 5000 }), sim.describe());
  assert.deepEqual(gotB.map((g) => g.data.length), sizes);
  gotB.forEach((g, i) => assert.deepEqual(g.data, pattern(sizes[i]!)));
  assert.equal(gotB[0]!.from, '2001:db8:10::1');
  assert.equal(gotB[0]!.port, sa.localPort);
  // Echo back from the receiving socket to the sender's port.
  for (const g of gotB) sb.send6(g.data, A6, 0, g.port);
  assert.ok(sim.runUntil(() => gotA.length === sizes.length, { maxMs: 5000 }), sim.describe());
  gotA.forEach((g, i) => { assert.deepEqual(g.data, pattern(sizes[i]!)); assert.equal(g.from, '2001:db8:10::2'); assert.equal(g.port, 5353); });
  for (const h of [a, b]) {
    assert.equal(h.stack.udp.stats.badChecksum, 0);
    assert.ok(h.stack.ip6.stats.reassembled >= 1, `${h.name} reassembled the 3000-byte datagram`);
    assert.equal(h.stack.udp.stats.received6, sizes.length);
  }
});

test('a :: socket hears IPv4 too (addr6 null) unless v6Only; a v4 socket beside a v6Only one on the same port', () => {
  const { sim, a, b } = hosts(2);
  const dual = b.stack.udp.open(UdpFamily.V6);
  dual.bind6(new Uint8Array(16), 0, 7000);
  const got = listen(dual);
  const ca = a.stack.udp.open();
  ca.send(Uint8Array.of(4), 0xc6120a02, 7000); // 198.18.10.2
  const c6 = a.stack.udp.open(UdpFamily.V6);
  c6.send6(Uint8Array.of(6), B6, 0, 7000);
  assert.ok(sim.runUntil(() => got.length === 2, { maxMs: 3000 }), sim.describe());
  assert.deepEqual(got.map((g) => [g.data[0], g.from]).sort(), [[4, '198.18.10.1'], [6, '2001:db8:10::1']]);
  // The IPv4 side of a :: socket takes the port in IPv4 too.
  assert.throws(() => b.stack.udp.open().bind(0, 7000), (e: NetError) => e.code === 'EADDRINUSE');
  dual.close();
  const only6 = b.stack.udp.open(UdpFamily.V6);
  only6.v6Only = true;
  only6.bind6(new Uint8Array(16), 0, 7000);
  const v4 = b.stack.udp.open();
  v4.bind(0, 7000);
  const got6 = listen(only6), got4 = listen(v4);
  ca.send(Uint8Array.of(44), 0xc6120a02, 7000);
  c6.send6(Uint8Array.of(66), B6, 0, 7000);
  assert.ok(sim.runUntil(() => got6.length === 1 && got4.length === 1, { maxMs: 3000 }), sim.describe());
  assert.equal(got6[0]!.data[0], 66);
  assert.equal(got4[0]!.data[0], 44);
  // A second :: socket (not v6Only) conflicts with both.
  assert.throws(() => b.stack.udp.open(UdpFamily.V6).bind6(new Uint8Array(16), 0, 7000), (e: NetError) => e.code === 'EADDRINUSE');
  // A specific address of another family does not.
  b.stack.udp.open(UdpFamily.V6).bind6(B6, 0, 7001);
  b.stack.udp.open().bind(0xc6120a02, 7001);
  assert.throws(() => b.stack.udp.open(UdpFamily.V6).bind6(parseIpv6('2001:db8:99::1')!, 0, 7002), (e: NetError) => e.code === 'EADDRNOTAVAIL');
});

test('a udp6 socket sends to ::ffff:a.b.c.d over IPv4, and a v6Only one refuses with ENETUNREACH', () => {
  const { sim, a, b } = hosts(3);
  const s4 = b.stack.udp.open();
  s4.bind(0, 7100);
  const got = listen(s4);
  const s6 = a.stack.udp.open(UdpFamily.V6);
  s6.send6(Uint8Array.of(1, 2), parseIpv6('::ffff:198.18.10.2')!, 0, 7100);
  assert.ok(sim.runUntil(() => got.length === 1, { maxMs: 3000 }));
  assert.equal(got[0]!.from, '198.18.10.1');
  const only = a.stack.udp.open(UdpFamily.V6);
  only.v6Only = true;
  assert.throws(() => only.send6(Uint8Array.of(1), parseIpv6('::ffff:198.18.10.2')!, 0, 7100), (e: NetError) => e.code === 'ENETUNREACH');
});

test('a closed port answers port unreachable (rate limited), which a connected udp6 socket reports as ECONNREFUSED', () => {
  const { sim, a, b } = hosts(4, { sysctl: { 'net.inet6.icmp6.errppslimit': 5 } });
  const s = a.stack.udp.open(UdpFamily.V6);
  s.connect6(B6, 0, 9999);
  const errors: string[] = [];
  s.onError = (e) => errors.push(e.code);
  s.send(Uint8Array.of(1));
  assert.ok(sim.runUntil(() => errors.length === 1, { maxMs: 3000 }), sim.describe());
  assert.deepEqual(errors, ['ECONNREFUSED']);
  assert.equal(b.stack.drops['udp6_noport'], 1);
  for (let i = 0; i < 50; i++) s.send(Uint8Array.of(i));
  sim.runUntil(() => false, { maxMs: 100 });
  assert.equal(b.stack.drops['udp6_noport'], 51);
  assert.ok(b.stack.ip6.icmp.stats.errorsRateLimited >= 40, `rate limited: ${b.stack.ip6.icmp.stats.errorsRateLimited}`);
  assert.ok(errors.length <= 6, `${errors.length} errors heard`);
  // An unconnected socket hears nothing (Linux without IPV6_RECVERR).
  const u = a.stack.udp.open(UdpFamily.V6);
  const uerr: string[] = [];
  u.onError = (e) => uerr.push(e.code);
  sim.runUntil(() => false, { maxMs: 2000 });
  u.send6(Uint8Array.of(1), B6, 0, 9998);
  sim.runUntil(() => false, { maxMs: 100 });
  assert.deepEqual(uerr, []);
});

test('a connected udp6 socket resolves its path once and follows a route change; receives only from its peer', () => {
  const { sim, a, b } = hosts(5);
  const sb = b.stack.udp.open(UdpFamily.V6);
  sb.bind6(new Uint8Array(16), 0, 6000);
  const got = listen(sb);
  const s = a.stack.udp.open(UdpFamily.V6);
  s.connect6(B6, 0, 6000);
  const path = s.path!;
  assert.ok(path.resolved);
  assert.equal(formatIpv6(path.src6!), '2001:db8:10::1');
  const gen = path.generation;
  s.send(Uint8Array.of(1));
  s.send(Uint8Array.of(2));
  assert.ok(sim.runUntil(() => got.length === 2, { maxMs: 3000 }));
  assert.equal(path.generation, gen, 'no re-resolution while routes did not change');
  // A reply from another port is not for the connected socket.
  const mine = listen(s);
  const other = b.stack.udp.open(UdpFamily.V6);
  other.send6(Uint8Array.of(9), A6, 0, s.localPort);
  sb.send6(Uint8Array.of(8), A6, 0, s.localPort);
  assert.ok(sim.runUntil(() => mine.length === 1, { maxMs: 3000 }));
  sim.runUntil(() => false, { maxMs: 50 });
  assert.deepEqual(mine.map((m) => m.data[0]), [8]);
  // A route change makes the next datagram revalidate the path.
  a.stack.ip6.routes.add(parseIpv6('2001:db8:77::')!, 0, 64, null, 1, 1);
  s.send(Uint8Array.of(3));
  assert.notEqual(path.generation, gen);
  assert.ok(sim.runUntil(() => got.length === 3, { maxMs: 3000 }));
  // Connecting to an address with no route fails at once.
  assert.throws(() => a.stack.udp.open(UdpFamily.V6).connect6(parseIpv6('2001:db8:99::9')!, 0, 53), (e: NetError) => e.code === 'ENETUNREACH');
});

test('Packet Too Big about a connected udp6 socket\'s datagram reaches it as EMSGSIZE; later datagrams fit the new MTU', () => {
  const { sim, a, b } = hosts(6);
  const sb = b.stack.udp.open(UdpFamily.V6);
  sb.bind6(new Uint8Array(16), 0, 6100);
  const got = listen(sb);
  const s = a.stack.udp.open(UdpFamily.V6);
  s.connect6(B6, 0, 6100);
  const errs: string[] = [];
  s.onError = (e) => errs.push(e.message);
  // b plays a router that could not forward a 1400-byte datagram: it answers Packet Too Big (MTU 1280).
  let quoted: Uint8Array | null = null;
  b.stack.frameTap = (_i, buf, tx) => { if (!tx && buf.length > 1300 && !quoted) quoted = buf.data.slice(buf.start + ETH_HLEN, buf.start + ETH_HLEN + 1232); };
  s.send(pattern(1400));
  assert.ok(sim.runUntil(() => got.length === 1, { maxMs: 3000 }));
  b.stack.frameTap = null;
  assert.ok(quoted);
  const msg = new Uint8Array(8 + (quoted as Uint8Array).length);
  msg[0] = Icmpv6Type.PacketTooBig; msg[6] = 1280 >> 8; msg[7] = 1280 & 0xff;
  msg.set(quoted!, 8);
  const ptb = b.stack.pool.alloc();
  ptb.appendBytes(msg);
  b.stack.ip6.sendIcmpv6(ptb, null, 0, A6, 0, -1, 0);
  assert.ok(sim.runUntil(() => errs.length === 1, { maxMs: 3000 }), sim.describe());
  assert.match(errs[0]!, /EMSGSIZE/);
  // The next 1400-byte datagram leaves in fragments of at most 1280 bytes and still arrives.
  let biggest = 0;
  b.stack.frameTap = (_i, buf, tx) => { if (!tx) biggest = Math.max(biggest, buf.length - ETH_HLEN); };
  s.send(pattern(1400, 1));
  assert.ok(sim.runUntil(() => got.length === 2, { maxMs: 3000 }));
  b.stack.frameTap = null;
  assert.ok(biggest <= 1280, `largest IPv6 packet ${biggest}`);
  assert.deepEqual(got[1]!.data, pattern(1400, 1));
});

test('a udp6 datagram with a zero checksum is dropped and counted; a bad checksum too', () => {
  const { sim, b } = hosts(7);
  const sb = b.stack.udp.open(UdpFamily.V6);
  sb.bind6(new Uint8Array(16), 0, 6200);
  const got = listen(sb);
  const frame = (checksum: 'zero' | 'good' | 'bad'): Uint8Array => {
    const udp = new Uint8Array(8 + 4);
    writeUdpHeader(udp, 0, 1111, 6200, udp.length);
    udp.set([1, 2, 3, 4], 8);
    if (checksum !== 'zero') finishUdpChecksumV6(udp, 0, udp.length, A6, 0, B6, 0);
    if (checksum === 'bad') udp[11] ^= 0xff;
    const f = new Uint8Array(ETH_HLEN + IPV6_HLEN + udp.length);
    writeEthernetHeader(f, 0, Uint8Array.of(2, 0, 0, 0, 0x10, 2), 0, Uint8Array.of(2, 0, 0, 0, 0x10, 1), EtherType.IPv6);
    writeIpv6Header(f, ETH_HLEN, 0, 0, udp.length, 17, 64, A6, 0, B6, 0);
    f.set(udp, ETH_HLEN + IPV6_HLEN);
    return f;
  };
  for (const k of ['zero', 'bad', 'good'] as const) {
    const buf = b.stack.pool.alloc();
    buf.appendBytes(frame(k));
    b.stack.input(b.ifIndex, buf);
  }
  sim.runUntil(() => got.length > 0, { maxMs: 100 });
  assert.equal(got.length, 1);
  assert.deepEqual([...got[0]!.data], [1, 2, 3, 4]);
  assert.equal(b.stack.drops['udp6_zero_checksum'], 1);
  assert.equal(b.stack.udp.stats.zeroChecksum6, 1);
  assert.equal(b.stack.drops['udp6_bad_checksum'], 1);
});

test('::1 on lo0 carries udp6 within the stack', () => {
  const { sim, a } = hosts(8);
  a.stack.addLoopback();
  const srv = a.stack.udp.open(UdpFamily.V6);
  srv.bind6(parseIpv6('::1')!, 0, 5000);
  const got = listen(srv);
  const cli = a.stack.udp.open(UdpFamily.V6);
  const back = listen(cli);
  cli.send6(Uint8Array.of(42), parseIpv6('::1')!, 0, 5000);
  assert.ok(sim.runUntil(() => got.length === 1, { maxMs: 1000 }));
  assert.equal(got[0]!.from, '::1');
  srv.send6(Uint8Array.of(43), parseIpv6('::1')!, 0, got[0]!.port);
  assert.ok(sim.runUntil(() => back.length === 1, { maxMs: 1000 }));
  assert.equal(back[0]!.data[0], 43);
  // And to the stack's own global address.
  const own = a.stack.udp.open(UdpFamily.V6);
  own.bind6(new Uint8Array(16), 0, 5001);
  const gotOwn = listen(own);
  cli.send6(Uint8Array.of(44), A6, 0, 5001);
  assert.ok(sim.runUntil(() => gotOwn.length === 1, { maxMs: 1000 }));
  assert.equal(gotOwn[0]!.from, '2001:db8:10::1');
});

test('a connected udp4 socket sends through its path, resolved at connect() and revalidated by the route generation', () => {
  const { sim, a, b } = hosts(9);
  const sb = b.stack.udp.open();
  sb.bind(0, 6300);
  const got = listen(sb);
  const s = a.stack.udp.open();
  s.connect(0xc6120a02, 6300);
  const path = s.path!;
  assert.ok(path.resolved);
  assert.equal(path.src, 0xc6120a01);
  const gen = path.generation;
  for (let i = 0; i < 5; i++) s.send(Uint8Array.of(i));
  assert.ok(sim.runUntil(() => got.length === 5, { maxMs: 3000 }));
  assert.equal(path.generation, gen);
  assert.deepEqual(got.map((g) => g.data[0]), [0, 1, 2, 3, 4]);
  a.stack.addAddress(1, '198.18.11.1/24');
  s.send(Uint8Array.of(5));
  assert.notEqual(path.generation, gen);
  assert.ok(sim.runUntil(() => got.length === 6, { maxMs: 3000 }));
  assert.equal(a.stack.udp.stats.badChecksum + b.stack.udp.stats.badChecksum, 0);
});

test('the tools see udp6 sockets: udp46 for a :: socket that hears IPv4, udp6 for an IPv6-only one, with IPv6 addresses', async () => {
  const { sockets } = await import('../../src/stack/stats.js');
  const { endpoint } = await import('../../src/cli/netstat.js');
  const { b } = hosts(10);
  const dual = b.stack.udp.open(UdpFamily.V6);
  dual.bind6(new Uint8Array(16), 0, 8000);
  const only = b.stack.udp.open(UdpFamily.V6);
  only.v6Only = true;
  only.connect6(A6, 0, 9000);
  const rows = sockets(b.stack).filter((r) => r.proto.startsWith('udp'));
  assert.deepEqual(rows.map((r) => [r.proto, r.localAddress, r.localPort === 8000 ? 8000 : 'EPH', r.foreignAddress, r.foreignPort]).sort(), [
    ['udp46', '::', 8000, '::', 0],
    ['udp6', '::', 'EPH', '2001:db8:10::1', 9000],
  ]);
  assert.equal(endpoint('::', 8000), '*.8000');
});

test('::1 never leaves the host: without lo0 a send to it fails with ENETUNREACH even with a default router', () => {
  const sim = new Simulation({ seed: 12 });
  const a = sim.addHost({ name: 'a', addr6: '2001:db8:10::1/64', gateway6: '2001:db8:10::fe' });
  sim.runUntil(() => false, { maxMs: 3000 });
  const before = a.port.stats().txPackets;
  const s = a.stack.udp.open(UdpFamily.V6);
  assert.throws(() => s.send6(Uint8Array.of(1), parseIpv6('::1')!, 0, 53), (e: NetError) => e.code === 'ENETUNREACH');
  sim.runUntil(() => false, { maxMs: 100 });
  assert.equal(a.port.stats().txPackets, before, "nothing went to the router");
});

test('a stack whose only IPv6 is lo0 has no route to a link-local or multicast destination', () => {
  const sim = new Simulation({ seed: 13 });
  const a = sim.addHost({ name: 'a', addr: '198.18.10.1/24' });
  a.stack.addLoopback();
  const s = a.stack.udp.open(UdpFamily.V6);
  for (const dst of ['fe80::1', 'ff02::1', '2001:db8::1']) {
    assert.throws(() => s.send6(Uint8Array.of(1), parseIpv6(dst)!, 0, 53), (e: NetError) => e.code === 'ENETUNREACH', dst);
  }
  // ::1 still works.
  const srv = a.stack.udp.open(UdpFamily.V6);
  srv.bind6(parseIpv6('::1')!, 0, 53);
  const got = listen(srv);
  s.send6(Uint8Array.of(7), parseIpv6('::1')!, 0, 53);
  assert.ok(sim.runUntil(() => got.length === 1, { maxMs: 100 }));
});

test('a scoped link-local destination (fe80::…%ifname) leaves by that interface, from its link-local address', async () => {
  const { createSocket } = await import('../../src/api/dgram.js');
  const sim = new Simulation({ seed: 14 });
  // Host a has two ports on the same link; b listens on its link-local address.
  const a = sim.addHost({ name: 'a', mac: '02:00:00:00:14:01', addr6: '2001:db8:14::1/64' });
  const a2 = sim.attach({ name: 'a2', mac: '02:00:00:00:14:03' }, (dev) => ({ host: a.stack, ifIndex: a.stack.addInterface(dev, { name: 'a2', addr6: '2001:db8:15::1/64' }) }));
  const b = sim.addHost({ name: 'b', mac: '02:00:00:00:14:02', addr6: '2001:db8:14::2/64' });
  sim.runUntil(() => false, { maxMs: 3000 });
  const bLl = b.stack.ip6.addresses(1).find((x) => x.origin === 'link-local')!.addr;
  const a2Ll = a.stack.ip6.addresses(a2.ifIndex).find((x) => x.origin === 'link-local')!.addr;
  const srv = b.stack.udp.open(UdpFamily.V6);
  srv.bind6(parseIpv6(bLl)!, 0, 5000, 1);
  const got = listen(srv);
  const s = createSocket({ type: 'udp6', stack: a.stack });
  const before1 = a.port.stats().txPackets, before2 = a2.port.stats().txPackets;
  let sent: Error | null | undefined;
  s.send('via a2', 5000, `${bLl}%a2`, (e) => { sent = e; });
  for (let i = 0; i < 100 && got.length === 0; i++) { sim.run(5); await new Promise((r) => setImmediate(r)); }
  assert.equal(sent, null);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.from, a2Ll, 'from the link-local address of the interface named in the scope');
  assert.ok(a2.port.stats().txPackets > before2, 'it left by a2');
  assert.equal(a.port.stats().txPackets, before1, 'nothing left by the other port');
  s.close();
});
