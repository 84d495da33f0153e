// tstack/posix over IPv6, as Linux behaves: AF_INET6 stream and datagram sockets between two
// memory-wire stacks (real clock), sockaddr_in6-shaped addresses, dual-stack sockets naming
// IPv4 peers ::ffff:a.b.c.d, IPV6_V6ONLY, the IPv6 multicast options with loopback to the
// sending stack, and the errno values Linux gives (each case below was run on kernel sockets
// with the same arguments: scripts/posix-ipv6-linux.py; test/fixtures/posix-ipv6-linux.ts).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';
import {
  posix, type Posix, type EpollEvent, type SockAddr, Errno, errnoName,
  AF_INET, AF_INET6, AF_UNSPEC, SOCK_STREAM, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET, IPPROTO_IP, IPPROTO_IPV6, SO_ERROR, SO_REUSEADDR,
  IPV6_V6ONLY, IPV6_UNICAST_HOPS, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP, IPV6_MULTICAST_IF, IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP,
  IPV6_TCLASS, IP_TOS, IP_TTL, IP_MULTICAST_LOOP, MCAST_JOIN_SOURCE_GROUP, MCAST_LEAVE_SOURCE_GROUP,
  EPOLLIN, EPOLL_CTL_ADD,
} from '../../src/api/posix.js';
import { parseIpv6 } from '../../src/wire/addr.js';
import { LINUX_POSIX6 } from '../fixtures/posix-ipv6-linux.js';

const A = '198.18.22.1', B = '198.18.22.2';
const A6 = '2001:db8:22::1', B6 = '2001:db8:22::2';
const G = 'ff15::22:1';
const { EAGAIN, EINPROGRESS, EINVAL, ENETUNREACH, ECONNREFUSED } = Errno;

let wire: MemoryWire;
let instA: Instance, instB: Instance;
let pa: Posix, pb: Posix;

function instance(addr: string, addr6: string): Instance {
  return startInstance(parseConfig(`[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\naddr = "${addr}/24"\naddr6 = "${addr6}/64"\n`, 'posix6.toml'), { memoryWire: wire });
}

async function preferred(inst: Instance, addr: string): Promise<void> {
  const t0 = Date.now();
  while (!inst.stack.ip6.addresses(1).some((a) => a.addr === addr && a.state === 'preferred')) {
    if (Date.now() - t0 > 20_000) throw new Error(`${addr} never became preferred`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ok(r: number, what: string): number {
  assert.ok(r >= 0, `${what} failed: ${r} (${r < 0 ? errnoName(r) : ''})`);
  return r;
}
const errno = (r: number): string => (r < 0 ? errnoName(r) : String(r));
const te = new TextEncoder(), td = new TextDecoder();
const sa6 = (addr: string, port: number, scopeId = 0): SockAddr => ({ family: AF_INET6, addr, port, scopeId });
const name = (p: Posix, fd: number, peer = false): SockAddr => {
  const out: SockAddr = { addr: '', port: 0 };
  ok(peer ? p.getpeername(fd, out) : p.getsockname(fd, out), peer ? 'getpeername' : 'getsockname');
  return out;
};

/** ipv6_mreq: the group, then the interface index (host order). */
function mreq6(group: string, ifIndex: number): Uint8Array {
  const b = new Uint8Array(20);
  b.set(parseIpv6(group)!, 0);
  new DataView(b.buffer).setInt32(16, ifIndex, true);
  return b;
}

/** group_source_req: interface, then sockaddr_in6 group and source in sockaddr_storage slots. */
function gsr6(group: string, source: string, ifIndex: number): Uint8Array {
  const b = new Uint8Array(264);
  const v = new DataView(b.buffer);
  v.setUint32(0, ifIndex, true);
  v.setUint16(8, AF_INET6, true); b.set(parseIpv6(group)!, 16);
  v.setUint16(136, AF_INET6, true); b.set(parseIpv6(source)!, 144);
  return b;
}

/** Waits (real clock) until fn() is true. */
async function until(fn: () => boolean, what: string, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('tstack/posix over IPv6 on two memory-wire stacks', () => {
  before(async () => {
    wire = new MemoryWire({ clock: realClock });
    instA = instance(A, A6);
    instB = instance(B, B6);
    pa = posix({ stack: instA });
    pb = posix({ stack: instB });
    await Promise.all([preferred(instA, A6), preferred(instB, B6)]);
  });
  after(() => { instA.stop(); instB.stop(); });

  test('TCP over IPv6: listen on ::, connect, accept names the peer as sockaddr_in6, echo, getsockname/getpeername', async () => {
    const lfd = ok(pa.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
    ok(pa.bind(lfd, sa6('::', 6100)), 'bind');
    assert.deepEqual(name(pa, lfd), { family: AF_INET6, addr: '::', port: 6100, flowinfo: 0, scopeId: 0 });
    ok(pa.listen(lfd, 8), 'listen');
    const ep = ok(pa.epoll_create1(), 'epoll');
    ok(pa.epoll_ctl(ep, EPOLL_CTL_ADD, lfd, { events: EPOLLIN, data: lfd }), 'ctl');

    const cfd = ok(pb.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
    assert.equal(pb.connect(cfd, { addr: A6, port: 6100 }), -EINPROGRESS, 'family defaults to the socket\'s');
    assert.equal(pb.connect(cfd, sa6(A6, 6100)), -Errno.EALREADY);
    const evs: EpollEvent<number>[] = [];
    assert.ok(await pa.epollWaitAsync(ep, evs, 4, { timeoutMs: 3000 }) > 0, 'listener readable');
    const peer: SockAddr = { addr: '', port: 0 };
    const afd = ok(pa.accept(lfd, peer), 'accept');
    const cname = await (async () => { await until(() => pb.getpeername(cfd, { addr: '', port: 0 }) === 0, 'connected'); return name(pb, cfd); })();
    assert.deepEqual(peer, { family: AF_INET6, addr: B6, port: cname.port, flowinfo: 0, scopeId: 0 });
    assert.deepEqual(cname, { family: AF_INET6, addr: B6, port: cname.port, flowinfo: 0, scopeId: 0 });
    assert.deepEqual(name(pb, cfd, true), { family: AF_INET6, addr: A6, port: 6100, flowinfo: 0, scopeId: 0 });
    assert.deepEqual(name(pa, afd), { family: AF_INET6, addr: A6, port: 6100, flowinfo: 0, scopeId: 0 });
    assert.equal(pb.getsockopt(cfd, SOL_SOCKET, SO_ERROR), 0);

    assert.equal(pb.write(cfd, te.encode('ping6')), 5);
    const buf = new Uint8Array(64);
    assert.equal(await pa.readAsync(afd, buf, 64, { timeoutMs: 3000 }), 5);
    assert.equal(td.decode(buf.subarray(0, 5)), 'ping6');
    assert.equal(pa.write(afd, te.encode('pong6')), 5);
    assert.equal(await pb.readAsync(cfd, buf, 64, { timeoutMs: 3000 }), 5);
    assert.equal(td.decode(buf.subarray(0, 5)), 'pong6');
    for (const fd of [afd, lfd, ep]) ok(pa.close(fd), 'close');
    ok(pb.close(cfd), 'close');
  });

  test('dual-stack TCP: a :: listener accepts an IPv4 client as ::ffff:a.b.c.d; an AF_INET6 client reaches an IPv4 server through ::ffff:a.b.c.d; IPV6_V6ONLY refuses IPv4 and frees the IPv4 port', async () => {
    const lfd = ok(pa.socket(AF_INET6, SOCK_STREAM, 0), 'socket');
    ok(pa.bind(lfd, sa6('::', 6101)), 'bind');
    ok(pa.listen(lfd), 'listen');
    // While the dual-stack listener holds the port, an AF_INET wildcard bind conflicts (Linux: EADDRINUSE).
    const v4 = ok(pa.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    assert.equal(errno(pa.bind(v4, { addr: '0.0.0.0', port: 6101 })), 'EADDRINUSE');
    ok(pa.close(v4), 'close');

    const c4 = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    assert.equal(await pb.connectAsync(c4, { addr: A, port: 6101 }, { timeoutMs: 3000 }), 0);
    const peer: SockAddr = { addr: '', port: 0 };
    const afd = await pa.acceptAsync(lfd, peer, { timeoutMs: 3000 });
    ok(afd, 'accept');
    const c4name = name(pb, c4);
    assert.deepEqual(peer, { family: AF_INET6, addr: `::ffff:${B}`, port: c4name.port, flowinfo: 0, scopeId: 0 });
    assert.deepEqual(name(pa, afd), { family: AF_INET6, addr: `::ffff:${A}`, port: 6101, flowinfo: 0, scopeId: 0 });
    assert.deepEqual(name(pb, c4, true), { family: AF_INET, addr: A, port: 6101 });
    ok(pa.close(afd), 'close'); ok(pb.close(c4), 'close');

    // An AF_INET6 socket connecting to ::ffff:a.b.c.d speaks IPv4 and names both ends mapped.
    const c6 = ok(pb.socket(AF_INET6, SOCK_STREAM, 0), 'socket');
    assert.equal(await pb.connectAsync(c6, sa6(`::ffff:${A}`, 6101), { timeoutMs: 3000 }), 0);
    assert.deepEqual(name(pb, c6, true), { family: AF_INET6, addr: `::ffff:${A}`, port: 6101, flowinfo: 0, scopeId: 0 });
    assert.equal(name(pb, c6).addr, `::ffff:${B}`);
    const afd2 = await pa.acceptAsync(lfd, peer, { timeoutMs: 3000 });
    ok(afd2, 'accept');
    assert.equal(peer.addr, `::ffff:${B}`);
    ok(pa.close(afd2), 'close'); ok(pb.close(c6), 'close'); ok(pa.close(lfd), 'close');

    // IPV6_V6ONLY: the listener hears IPv6 only (an IPv4 SYN is refused) and the IPv4 port stays free.
    const l6 = ok(pa.socket(AF_INET6, SOCK_STREAM, 0), 'socket');
    assert.equal(pa.getsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    ok(pa.setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, 1), 'IPV6_V6ONLY');
    assert.equal(pa.getsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    ok(pa.bind(l6, sa6('::', 6102)), 'bind');
    assert.equal(errno(pa.setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, 0)), 'EINVAL', 'after bind');
    ok(pa.listen(l6), 'listen');
    const l4 = ok(pa.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    ok(pa.bind(l4, { addr: '0.0.0.0', port: 6102 }), 'an IPv4 bind of a v6-only listener\'s port');
    ok(pa.close(l4), 'close');
    const r4 = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    assert.equal(await pb.connectAsync(r4, { addr: A, port: 6102 }, { timeoutMs: 3000 }), -ECONNREFUSED);
    const r6 = ok(pb.socket(AF_INET6, SOCK_STREAM, 0), 'socket');
    assert.equal(await pb.connectAsync(r6, sa6(A6, 6102), { timeoutMs: 3000 }), 0);
    const v6only = ok(pb.socket(AF_INET6, SOCK_STREAM, 0), 'socket');
    ok(pb.setsockopt(v6only, IPPROTO_IPV6, IPV6_V6ONLY, 1), 'IPV6_V6ONLY');
    assert.equal(errno(pb.connect(v6only, sa6(`::ffff:${A}`, 6102))), 'ENETUNREACH');
    for (const fd of [r4, r6, v6only]) ok(pb.close(fd), 'close');
    ok(pa.close(l6), 'close');
  });

  test('errors as Linux gives them (bind, connect, options on AF_INET6 and AF_INET sockets)', () => {
    const results: Record<string, string> = {};
    const run = (label: string, p: Posix, domain: number, type: number, fn: (fd: number) => number, v6only = false): void => {
      const fd = ok(p.socket(domain, type, 0), 'socket');
      if (v6only) ok(p.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1), 'IPV6_V6ONLY');
      results[label] = errno(fn(fd));
      p.close(fd);
    };
    for (const [ty, tn] of [[SOCK_STREAM, 'tcp'], [SOCK_DGRAM, 'udp']] as const) {
      run(`${tn} v6 bind AF_INET sa`, pa, AF_INET6, ty, (fd) => pa.bind(fd, { family: AF_INET, addr: A, port: 0 }));
      run(`${tn} v6 bind family 99`, pa, AF_INET6, ty, (fd) => pa.bind(fd, { family: 99, addr: '::', port: 0 }));
      run(`${tn} v4 bind AF_INET6 sa`, pa, AF_INET, ty, (fd) => pa.bind(fd, sa6('::', 0)));
      run(`${tn} v6only bind mapped`, pa, AF_INET6, ty, (fd) => pa.bind(fd, sa6(`::ffff:${A}`, 0)), true);
      run(`${tn} v6 bind mapped`, pa, AF_INET6, ty, (fd) => pa.bind(fd, sa6(`::ffff:${A}`, 0)));
      run(`${tn} v6 set V6ONLY after bind`, pa, AF_INET6, ty, (fd) => { ok(pa.bind(fd, sa6('::', 0)), 'bind'); return pa.getsockname(fd, { addr: '', port: 0 }) || pa.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1); });
      run(`${tn} v4 set V6ONLY`, pa, AF_INET, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1));
      run(`${tn} v4 get V6ONLY`, pa, AF_INET, ty, (fd) => pa.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY));
      run(`${tn} v4 set IPV6_TCLASS`, pa, AF_INET, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, 8));
      run(`${tn} v6 set IP_TOS`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IP, IP_TOS, 8) || pa.getsockopt(fd, IPPROTO_IP, IP_TOS));
      run(`${tn} v6 get IP_TTL`, pa, AF_INET6, ty, (fd) => pa.getsockopt(fd, IPPROTO_IP, IP_TTL));
      run(`${tn} v6 get IPV6_MULTICAST_HOPS`, pa, AF_INET6, ty, (fd) => pa.getsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS));
      run(`${tn} v6 get IPV6_MULTICAST_LOOP`, pa, AF_INET6, ty, (fd) => pa.getsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP));
      run(`${tn} v6 get IPV6_MULTICAST_IF`, pa, AF_INET6, ty, (fd) => pa.getsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF));
      run(`${tn} v6 set IPV6_MULTICAST_HOPS 256`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 256));
      run(`${tn} v6 set IPV6_MULTICAST_LOOP 2`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 2));
      run(`${tn} v6 set IPV6_UNICAST_HOPS -2`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, -2));
      run(`${tn} v6 set IPV6_MULTICAST_IF 999`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, 999));
      run(`${tn} v6 set IP_MULTICAST_LOOP`, pa, AF_INET6, ty, (fd) => ty === SOCK_STREAM ? 0 : pa.setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0) || pa.getsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP));
      run(`${tn} v6 connect AF_INET sa`, pb, AF_INET6, ty, (fd) => { const r = pb.connect(fd, { family: AF_INET, addr: A, port: 9 }); return r === -EINPROGRESS ? 0 : r; });
      run(`${tn} v6only connect AF_INET sa`, pb, AF_INET6, ty, (fd) => pb.connect(fd, { family: AF_INET, addr: A, port: 9 }), true);
      run(`${tn} v6only connect mapped`, pb, AF_INET6, ty, (fd) => pb.connect(fd, sa6(`::ffff:${A}`, 9)), true);
      run(`${tn} v4 connect AF_INET6 sa`, pb, AF_INET, ty, (fd) => pb.connect(fd, sa6(A6, 9)));
      run(`${tn} v6 bound mapped connect v6`, pb, AF_INET6, ty, (fd) => { ok(pb.bind(fd, sa6(`::ffff:${B}`, 0)), 'bind'); return pb.connect(fd, sa6(A6, 9)); });
      run(`${tn} v6 bound v6 connect mapped`, pb, AF_INET6, ty, (fd) => { ok(pb.bind(fd, sa6(B6, 0)), 'bind'); return pb.connect(fd, sa6(`::ffff:${A}`, 9)); });
      run(`${tn} v6 bind fe80::1 no scope`, pa, AF_INET6, ty, (fd) => pa.bind(fd, sa6('fe80::1', 0)));
      run(`${tn} v6 bind not local`, pa, AF_INET6, ty, (fd) => pa.bind(fd, sa6('2001:db8:22::99', 0)));
      run(`${tn} v6 bind ff02::1`, pa, AF_INET6, ty, (fd) => pa.bind(fd, sa6('ff02::1', 0)));
      run(`${tn} v6 join`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1)));
      run(`${tn} v6 join twice`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1)) || pa.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1)));
      run(`${tn} v6 join unicast`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6(A6, 1)));
      run(`${tn} v6 leave unjoined`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_LEAVE_GROUP, mreq6('ff15::1', 1)));
      run(`${tn} v6 join short`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, new Uint8Array(8)));
      run(`${tn} v6 join ifindex 999`, pa, AF_INET6, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 999)));
      run(`${tn} v4 join`, pa, AF_INET, ty, (fd) => pa.setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6('ff15::1', 1)));
    }
    // Linux's answers, recorded from scripts/posix-ipv6-linux.py (test/integration/posix-ipv6-linux re-checks them).
    const linux = LINUX_POSIX6;
    assert.deepEqual(results, linux);
  });

  test('UDP over IPv6: sendto/recvfrom with sockaddr_in6; a dual-stack socket hears IPv4 as ::ffff:a.b.c.d and sends to a sockaddr_in; v6-only refuses IPv4', async () => {
    const rfd = ok(pa.socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0), 'socket');
    ok(pa.bind(rfd, sa6('::', 6200)), 'bind');
    const s6 = ok(pb.socket(AF_INET6, SOCK_DGRAM, 0), 'socket');
    const s4 = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    const buf = new Uint8Array(64);
    const from: SockAddr = { addr: '', port: 0 };
    assert.equal(pa.recvfrom(rfd, buf, 64, 0, from), -EAGAIN);
    assert.equal(pb.sendto(s6, te.encode('six'), 3, 0, sa6(A6, 6200)), 3);
    assert.equal(await pa.recvfromAsync(rfd, buf, 64, 0, from, { timeoutMs: 3000 }), 3);
    const me6 = name(pb, s6);
    assert.deepEqual(from, { family: AF_INET6, addr: B6, port: me6.port, flowinfo: 0, scopeId: 0 });
    assert.equal(me6.addr, '::', 'an unconnected socket bound at sendto names ::');
    assert.equal(pb.sendto(s4, te.encode('four'), 4, 0, { addr: A, port: 6200 }), 4);
    assert.equal(await pa.recvfromAsync(rfd, buf, 64, 0, from, { timeoutMs: 3000 }), 4);
    assert.deepEqual(from, { family: AF_INET6, addr: `::ffff:${B}`, port: name(pb, s4).port, flowinfo: 0, scopeId: 0 });
    // udpv6_sendmsg: a sockaddr_in (or ::ffff:a.b.c.d) goes out over IPv4 from a dual-stack socket.
    const back4 = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pb.bind(back4, { addr: B, port: 6201 }), 'bind');
    assert.equal(pa.sendto(rfd, te.encode('x'), 1, 0, { family: AF_INET, addr: B, port: 6201 }), 1);
    const from4: SockAddr = { addr: '', port: 0 };
    assert.equal(await pb.recvfromAsync(back4, buf, 64, 0, from4, { timeoutMs: 3000 }), 1);
    assert.deepEqual(from4, { family: AF_INET, addr: A, port: 6200 });
    assert.equal(pa.sendto(rfd, te.encode('y'), 1, 0, sa6(`::ffff:${B}`, 6201)), 1);
    assert.equal(await pb.recvfromAsync(back4, buf, 64, 0, from, { timeoutMs: 3000 }), 1);
    // connect() with a sockaddr_in: peer and local names are mapped (ip6_datagram_connect).
    const c = ok(pb.socket(AF_INET6, SOCK_DGRAM, 0), 'socket');
    ok(pb.connect(c, { family: AF_INET, addr: A, port: 6200 }), 'connect');
    assert.deepEqual(name(pb, c, true), { family: AF_INET6, addr: `::ffff:${A}`, port: 6200, flowinfo: 0, scopeId: 0 });
    assert.equal(name(pb, c).addr, `::ffff:${B}`);
    const c6 = ok(pb.socket(AF_INET6, SOCK_DGRAM, 0), 'socket');
    ok(pb.connect(c6, sa6(A6, 6200)), 'connect');
    assert.equal(name(pb, c6).addr, B6, 'the source connect() chose');
    assert.equal(pb.send(c6, te.encode('conn')), 4);
    assert.equal(await pa.recvfromAsync(rfd, buf, 64, 0, from, { timeoutMs: 3000 }), 4);
    assert.equal(from.addr, B6);
    ok(pb.connect(c6, { family: AF_UNSPEC, addr: '', port: 0 }), 'dissolve');
    assert.equal(pb.getpeername(c6, { addr: '', port: 0 }), -Errno.ENOTCONN);
    // v6-only: no IPv4 either way.
    const v6only = ok(pb.socket(AF_INET6, SOCK_DGRAM, 0), 'socket');
    ok(pb.setsockopt(v6only, IPPROTO_IPV6, IPV6_V6ONLY, 1), 'IPV6_V6ONLY');
    assert.equal(pb.sendto(v6only, te.encode('z'), 1, 0, { family: AF_INET, addr: A, port: 6200 }), -ENETUNREACH);
    assert.equal(pb.sendto(v6only, te.encode('z'), 1, 0, sa6(`::ffff:${A}`, 6200)), -ENETUNREACH);
    assert.equal(pb.sendto(v6only, te.encode('z'), 1, 0, sa6(A6, 0)), -EINVAL, 'port 0');
    ok(pa.setsockopt(rfd, SOL_SOCKET, SO_REUSEADDR, 1), 'SO_REUSEADDR');
    // Options: IPV6_UNICAST_HOPS and IPV6_TCLASS on a UDP socket.
    assert.equal(pb.getsockopt(c6, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 64);
    ok(pb.setsockopt(c6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7), 'IPV6_UNICAST_HOPS');
    assert.equal(pb.getsockopt(c6, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 7);
    ok(pb.setsockopt(c6, IPPROTO_IPV6, IPV6_TCLASS, 0x20), 'IPV6_TCLASS');
    assert.equal(pb.getsockopt(c6, IPPROTO_IPV6, IPV6_TCLASS), 0x20);
    for (const fd of [s6, s4, back4, c, c6, v6only]) ok(pb.close(fd), 'close');
    ok(pa.close(rfd), 'close');
  });

  test('IPv6 multicast: IPV6_JOIN_GROUP on both stacks, the sender\'s own member gets a copy (IPV6_MULTICAST_LOOP), not with loop 0; IPV6_MULTICAST_HOPS; a source-specific join (MCAST_JOIN_SOURCE_GROUP)', async () => {
    const ra = ok(pa.socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0), 'socket');
    const rb = ok(pb.socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0), 'socket');
    ok(pa.bind(ra, sa6('::', 6300)), 'bind'); ok(pb.bind(rb, sa6('::', 6300)), 'bind');
    ok(pa.setsockopt(ra, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6(G, 0)), 'join a');
    ok(pb.setsockopt(rb, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6(G, 1)), 'join b');
    const tx = ok(pa.socket(AF_INET6, SOCK_DGRAM, 0), 'socket');
    ok(pa.setsockopt(tx, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 3), 'hops');
    assert.equal(pa.getsockopt(tx, IPPROTO_IPV6, IPV6_MULTICAST_HOPS), 3);
    ok(pa.setsockopt(tx, IPPROTO_IPV6, IPV6_MULTICAST_IF, 1), 'if');
    assert.equal(pa.getsockopt(tx, IPPROTO_IPV6, IPV6_MULTICAST_IF), 1);
    const buf = new Uint8Array(64);
    const from: SockAddr = { addr: '', port: 0 };
    assert.equal(pa.sendto(tx, te.encode('g1'), 2, 0, sa6(G, 6300)), 2);
    assert.equal(await pb.recvfromAsync(rb, buf, 64, 0, from, { timeoutMs: 3000 }), 2);
    assert.equal(from.addr, A6);
    assert.equal(await pa.recvfromAsync(ra, buf, 64, 0, from, { timeoutMs: 3000 }), 2, 'looped back to the sending stack');
    assert.equal(td.decode(buf.subarray(0, 2)), 'g1');
    assert.equal(from.addr, A6);

    ok(pa.setsockopt(tx, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0), 'loop off');
    assert.equal(pa.getsockopt(tx, IPPROTO_IPV6, IPV6_MULTICAST_LOOP), 0);
    assert.equal(pa.sendto(tx, te.encode('g2'), 2, 0, sa6(G, 6300)), 2);
    assert.equal(await pb.recvfromAsync(rb, buf, 64, 0, from, { timeoutMs: 3000 }), 2);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pa.recvfrom(ra, buf, 64, 0, from), -EAGAIN, 'no copy with loop 0');

    // Leave on b; a source-specific join for a source that is not A hears nothing from A.
    ok(pb.setsockopt(rb, IPPROTO_IPV6, IPV6_LEAVE_GROUP, mreq6(G, 1)), 'leave');
    ok(pb.setsockopt(rb, IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, gsr6(G, '2001:db8:22::77', 1)), 'ssm join');
    assert.equal(errno(pb.setsockopt(rb, IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, gsr6(G, '2001:db8:22::77', 1))), 'EADDRNOTAVAIL');
    assert.equal(pa.sendto(tx, te.encode('g3'), 2, 0, sa6(G, 6300)), 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(pb.recvfrom(rb, buf, 64, 0, from), -EAGAIN, 'filtered: another source');
    ok(pb.setsockopt(rb, IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, gsr6(G, A6, 1)), 'ssm join A');
    assert.equal(pa.sendto(tx, te.encode('g4'), 2, 0, sa6(G, 6300)), 2);
    assert.equal(await pb.recvfromAsync(rb, buf, 64, 0, from, { timeoutMs: 3000 }), 2);
    assert.equal(td.decode(buf.subarray(0, 2)), 'g4');
    ok(pb.setsockopt(rb, IPPROTO_IPV6, MCAST_LEAVE_SOURCE_GROUP, gsr6(G, A6, 1)), 'ssm leave');
    ok(pb.setsockopt(rb, IPPROTO_IPV6, MCAST_LEAVE_SOURCE_GROUP, gsr6(G, '2001:db8:22::77', 1)), 'ssm leave');
    assert.equal(errno(pb.setsockopt(rb, IPPROTO_IPV6, MCAST_LEAVE_SOURCE_GROUP, gsr6(G, A6, 1))), 'EADDRNOTAVAIL');
    for (const fd of [ra, tx]) ok(pa.close(fd), 'close');
    ok(pb.close(rb), 'close');
  });
});
