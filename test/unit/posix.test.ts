// tstack/posix on two stacks joined by the memory wire (real clock, one process): a TCP echo
// written the F-Stack way with one epoll loop on each side, UDP sendto/recvfrom, errno results
// (ECONNREFUSED via SO_ERROR, EADDRINUSE, EBADF), level/edge/one-shot epoll semantics, and the
// awaitable variants' abort and timeout.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';
import {
  posix, type Posix, type EpollEvent, type SockAddr, Errno, AbortError, errnoName,
  AF_INET, AF_INET6, SOCK_STREAM, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET, IPPROTO_TCP, IPPROTO_IP,
  SO_ERROR, SO_REUSEADDR, SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_BROADCAST, SO_TYPE, TCP_NODELAY, TCP_KEEPIDLE, TCP_KEEPCNT, IP_TTL,
  F_GETFL, F_SETFL, O_NONBLOCK, SHUT_WR, MSG_TRUNC, MSG_PEEK, FIONREAD,
  MSG_MORE, SO_LINGER, TCP_CORK, TCP_INFO, TCP_INFO_SIZE, TCP_CONGESTION, TCP_MAXSEG, TCP_NOTSENT_LOWAT, TCP_USER_TIMEOUT,
  TCP_INQ, IP_TOS, IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP, IP_MULTICAST_TTL, SIOCINQ, SIOCOUTQ, SIOCOUTQNSD,
  EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLET, EPOLLONESHOT,
  EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL, socket, bind, close,
} from '../../src/api/posix.js';
import { setDefaultInstance } from '../../src/api/runtime.js';

const A = '198.18.21.1';
const B = '198.18.21.2';
const { EAGAIN, EINPROGRESS, EALREADY, EISCONN, ECONNREFUSED, EADDRINUSE, EBADF, ENOTCONN, EEXIST, ENOENT, EPIPE, EAFNOSUPPORT, ETIMEDOUT, EDESTADDRREQ, ECONNRESET } = Errno;

let wire: MemoryWire;
let instA: Instance;
let instB: Instance;
let pa: Posix;
let pb: Posix;

function instance(addr: string): Instance {
  return startInstance(parseConfig(`[[port]]\ndriver = "memory"\naddr = "${addr}/24"\n`, 'posix.toml'), { memoryWire: wire });
}

/** Asserts a call succeeded, naming the errno when it did not. */
function ok(r: number, what: string): number {
  assert.ok(r >= 0, `${what} failed: ${r} (${r < 0 ? errnoName(r) : ''})`);
  return r;
}

function payload(n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

/** Waits for the next event on epfd (at most ms), failing the test otherwise. */
async function next(p: Posix, epfd: number, evs: EpollEvent<number>[], ms = 3000): Promise<number> {
  const n = await p.epollWaitAsync(epfd, evs, evs.length || 16, { timeoutMs: ms });
  assert.ok(n > 0, `no epoll event within ${ms} ms`);
  return n;
}

describe('tstack/posix on two memory-wire stacks', () => {
  before(() => {
    wire = new MemoryWire({ clock: realClock });
    instA = instance(A);
    instB = instance(B);
    pa = posix({ stack: instA });
    pb = posix({ stack: instB });
  });
  after(() => { instA.stop(); instB.stop(); });

  test('TCP echo, F-Stack style: non-blocking connect, accept until EAGAIN, edge-triggered reads, partial writes, EOF and EPOLLRDHUP', async (t) => {
    const PORT = 7000;
    const data = payload(200_000);
    const st = {
      connectResult: 0, alreadyResult: 0, firstClientEvents: 0, soError: -1, isconn: 0,
      acceptEagain: 0, accepted: 0, serverPartial: 0, serverEagain: 0, serverRdhup: 0, serverEof: 0,
      clientPartial: 0, clientEagain: 0, clientOutAfterEagain: 0, clientEof: 0, clientRdhup: 0, peerMatches: false,
    };

    // Server: a non-blocking listener; accepted sockets inherit its small send buffer.
    const lfd = ok(pb.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
    ok(pb.setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, 1), 'SO_REUSEADDR');
    ok(pb.setsockopt(lfd, SOL_SOCKET, SO_SNDBUF, 4096), 'SO_SNDBUF');
    ok(pb.bind(lfd, { addr: '0.0.0.0', port: PORT }), 'bind');
    ok(pb.listen(lfd, 16), 'listen');
    assert.equal(pb.accept(lfd), -EAGAIN, 'nothing to accept yet');

    const server = async () => {
      const ep = ok(pb.epoll_create1(0), 'epoll_create1');
      ok(pb.epoll_ctl(ep, EPOLL_CTL_ADD, lfd, { events: EPOLLIN | EPOLLET, data: lfd }), 'ctl listener');
      const out = new Map<number, { q: Uint8Array[]; eof: boolean }>();
      const evs: EpollEvent<number>[] = [];
      const buf = new Uint8Array(8192);
      const peer: SockAddr = { addr: '', port: 0 };
      const flush = (fd: number, s: { q: Uint8Array[] }) => {
        while (s.q.length > 0) {
          const head = s.q[0]!;
          const r = pb.write(fd, head);
          if (r === -EAGAIN) { st.serverEagain++; return; }
          ok(r, 'server write');
          if (r < head.length) { st.serverPartial++; s.q[0] = head.subarray(r); } else s.q.shift();
        }
      };
      for (;;) {
        const n = await next(pb, ep, evs);
        for (let i = 0; i < n; i++) {
          const { events, data: fd } = evs[i]!;
          if (fd === lfd) {
            for (;;) {
              const c = pb.accept(lfd, peer);
              if (c === -EAGAIN) { st.acceptEagain++; break; }
              ok(c, 'accept');
              st.accepted++;
              const me: SockAddr = { addr: '', port: 0 };
              ok(pb.getsockname(c, me), 'getsockname');
              assert.deepEqual(me, { family: AF_INET, addr: B, port: PORT });
              st.peerMatches = peer.addr === A && peer.port > 0;
              ok(pb.epoll_ctl(ep, EPOLL_CTL_ADD, c, { events: EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, data: c }), 'ctl conn');
              out.set(c, { q: [], eof: false });
            }
            continue;
          }
          const s = out.get(fd)!;
          if (events & EPOLLRDHUP) st.serverRdhup++;
          if ((events & EPOLLIN) && !s.eof) {
            // Edge-triggered: read until EAGAIN (or EOF), or the next edge may never come.
            for (;;) {
              const r = pb.read(fd, buf);
              if (r > 0) { s.q.push(buf.slice(0, r)); continue; }
              if (r === 0) { s.eof = true; st.serverEof++; break; }
              assert.equal(r, -EAGAIN);
              break;
            }
          }
          flush(fd, s);
          if (s.eof && s.q.length === 0) {
            ok(pb.shutdown(fd, SHUT_WR), 'server shutdown');
            ok(pb.close(fd), 'server close');
            ok(pb.close(ep), 'close epoll');
            return;
          }
        }
      }
    };

    const client = async () => {
      const fd = ok(pa.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
      assert.equal(pa.fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
      ok(pa.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, 4096), 'SO_SNDBUF');
      ok(pa.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1), 'TCP_NODELAY');
      st.connectResult = pa.connect(fd, { addr: B, port: PORT });
      st.alreadyResult = pa.connect(fd, { addr: B, port: PORT });
      assert.equal(pa.write(fd, data), -EAGAIN, 'no writes before the handshake completes');
      const ep = ok(pa.epoll_create(1), 'epoll_create');
      ok(pa.epoll_ctl(ep, EPOLL_CTL_ADD, fd, { events: EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, data: fd }), 'ctl');
      const evs: EpollEvent<number>[] = [];
      const got: Uint8Array[] = [];
      const buf = new Uint8Array(8192);
      let sent = 0, connected = false, sawEagain = false;
      for (;;) {
        await next(pa, ep, evs);
        const events = evs[0]!.events;
        assert.equal(evs[0]!.data, fd);
        if (!connected) {
          st.firstClientEvents = events;
          st.soError = pa.getsockopt(fd, SOL_SOCKET, SO_ERROR);
          st.isconn = pa.connect(fd, { addr: B, port: PORT });
          assert.equal(pa.getsockopt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
          assert.equal(pa.getsockopt(fd, SOL_SOCKET, SO_SNDBUF), 8192, 'Linux reports a set SO_SNDBUF doubled');
          connected = true;
        }
        if (events & EPOLLRDHUP) st.clientRdhup++;
        if (events & EPOLLOUT) {
          if (sawEagain) { st.clientOutAfterEagain++; sawEagain = false; }
          while (sent < data.length) {
            const r = pa.write(fd, data.subarray(sent));
            if (r === -EAGAIN) { st.clientEagain++; sawEagain = true; break; }
            ok(r, 'client write');
            if (r < data.length - sent) st.clientPartial++;
            sent += r;
          }
          if (sent === data.length && pa.getsockopt(fd, SOL_SOCKET, SO_TYPE) === SOCK_STREAM) {
            sent++; // once
            ok(pa.shutdown(fd, SHUT_WR), 'client shutdown');
            assert.equal(pa.write(fd, data, 1), -EPIPE, 'write after SHUT_WR');
          }
        }
        if (events & EPOLLIN) {
          for (;;) {
            const r = pa.read(fd, buf);
            if (r > 0) { got.push(buf.slice(0, r)); continue; }
            if (r === 0) {
              st.clientEof++;
              ok(pa.close(fd), 'client close');
              ok(pa.close(ep), 'close epoll');
              return concat(got);
            }
            assert.equal(r, -EAGAIN);
            break;
          }
        }
      }
    };

    const [, echoed] = await Promise.all([server(), client()]);
    ok(pb.close(lfd), 'close listener');

    t.diagnostic(JSON.stringify(st));
    assert.equal(st.connectResult, -EINPROGRESS, 'non-blocking connect returns EINPROGRESS');
    assert.equal(st.alreadyResult, -EALREADY, 'a second connect while in progress returns EALREADY');
    assert.ok(st.firstClientEvents & EPOLLOUT, 'connection completion is reported as EPOLLOUT');
    assert.equal(st.firstClientEvents & (EPOLLERR | EPOLLHUP), 0);
    assert.equal(st.soError, 0, 'SO_ERROR is 0 after a successful connect');
    assert.equal(st.isconn, -EISCONN);
    assert.equal(st.accepted, 1);
    assert.ok(st.acceptEagain >= 1, 'accept was drained until EAGAIN');
    assert.ok(st.peerMatches, 'accept filled in the peer address');
    assert.ok(st.clientPartial + st.clientEagain > 0, 'a 4 KiB send buffer forced short writes');
    assert.ok(st.clientEagain > 0 && st.clientOutAfterEagain > 0, 'EPOLLOUT came back after EAGAIN');
    assert.equal(st.serverEof, 1, 'the server read 0 at EOF');
    assert.ok(st.serverRdhup >= 1, 'the peer\'s shutdown was reported as EPOLLRDHUP');
    assert.equal(st.clientEof, 1, 'the client read 0 at EOF');
    assert.ok(st.clientRdhup >= 1);
    assert.equal(echoed.length, data.length);
    assert.equal(sha(echoed), sha(data), 'echoed bytes equal what was sent');
    assert.equal(pa.openCount, 0);
    assert.equal(pb.openCount, 0);
  });

  test('UDP sendto/recvfrom: sender address filled in, truncation, MSG_PEEK, EAGAIN when empty', async () => {
    const rfd = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pb.bind(rfd, { addr: B, port: 5300 }), 'bind');
    const sfd = ok(pa.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), 'socket');
    assert.equal(pa.send(sfd, new Uint8Array(1)), -EDESTADDRREQ, 'unconnected send without address');
    const ep = ok(pb.epoll_create1(), 'epoll');
    ok(pb.epoll_ctl(ep, EPOLL_CTL_ADD, rfd, { events: EPOLLIN, data: rfd }), 'ctl');
    const buf = new Uint8Array(64);
    assert.equal(pb.recvfrom(rfd, buf, buf.length, 0, null), -EAGAIN);

    const msg = new TextEncoder().encode('hello over tstack/posix');
    assert.equal(pa.sendto(sfd, msg, msg.length, 0, { addr: B, port: 5300 }), msg.length);
    assert.equal(pa.sendto(sfd, msg, 5, 0, { addr: B, port: 5300 }), 5);
    const me: SockAddr = { addr: '', port: 0 };
    ok(pa.getsockname(sfd, me), 'getsockname');
    assert.ok(me.port > 0, 'sendto bound an ephemeral port');

    const evs: EpollEvent<number>[] = [];
    await next(pb, ep, evs);
    assert.equal(evs[0]!.events, EPOLLIN, 'only what was asked for (the socket is also writable)');
    const from: SockAddr = { addr: '', port: 0 };
    // MSG_PEEK leaves the datagram queued; FIONREAD gives its size.
    assert.equal(pb.recvfrom(rfd, buf, 3, MSG_PEEK, from), 3);
    assert.equal(pb.ioctl(rfd, FIONREAD), msg.length);
    // A buffer shorter than the datagram: the rest is discarded; MSG_TRUNC reports the real length.
    assert.equal(pb.recvfrom(rfd, buf, 5, MSG_TRUNC, from), msg.length);
    assert.equal(new TextDecoder().decode(buf.subarray(0, 5)), 'hello');
    assert.deepEqual(from, { family: AF_INET, addr: A, port: me.port });
    if (pb.ioctl(rfd, FIONREAD) === 0) await next(pb, ep, evs);
    assert.equal(pb.recvfrom(rfd, buf, buf.length, 0, from), 5);
    assert.equal(pb.recvfrom(rfd, buf, buf.length, 0, from), -EAGAIN);

    // recvfromAsync waits for the next datagram.
    const pending = pb.recvfromAsync(rfd, buf, buf.length, 0, from, { timeoutMs: 3000 });
    assert.equal(pa.sendto(sfd, msg, 2, 0, { addr: B, port: 5300 }), 2);
    assert.equal(await pending, 2);

    // Options that map onto the engine's UDP socket.
    ok(pb.setsockopt(rfd, IPPROTO_IP, IP_TTL, 7), 'IP_TTL');
    assert.equal(pb.getsockopt(rfd, IPPROTO_IP, IP_TTL), 7);
    ok(pb.setsockopt(rfd, SOL_SOCKET, SO_RCVBUF, 8192), 'SO_RCVBUF');
    assert.equal(pb.getsockopt(rfd, SOL_SOCKET, SO_RCVBUF), 8192);
    ok(pb.setsockopt(rfd, SOL_SOCKET, SO_BROADCAST, true), 'SO_BROADCAST');
    assert.equal(pb.getsockopt(rfd, SOL_SOCKET, SO_BROADCAST), 1);
    assert.equal(pb.getsockopt(rfd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);

    // Multicast: struct ip_mreq (group, interface) in network byte order, on a socket bound to
    // the any address (one bound to a unicast address gets no multicast, as on Linux).
    const mfd = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pb.bind(mfd, { addr: '0.0.0.0', port: 5301 }), 'bind');
    const mreq = Uint8Array.of(239, 5, 5, 5, 0, 0, 0, 0);
    ok(pb.setsockopt(mfd, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq), 'IP_ADD_MEMBERSHIP');
    assert.equal(pb.setsockopt(mfd, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq), -EADDRINUSE);
    ok(pa.setsockopt(sfd, IPPROTO_IP, IP_MULTICAST_TTL, 3), 'IP_MULTICAST_TTL');
    assert.equal(pa.getsockopt(sfd, IPPROTO_IP, IP_MULTICAST_TTL), 3);
    const got = pb.recvfromAsync(mfd, buf, buf.length, 0, from, { timeoutMs: 3000 });
    assert.equal(pa.sendto(sfd, msg, 4, 0, { addr: '239.5.5.5', port: 5301 }), 4);
    assert.equal(await got, 4);
    ok(pb.setsockopt(mfd, IPPROTO_IP, IP_DROP_MEMBERSHIP, mreq), 'IP_DROP_MEMBERSHIP');
    assert.equal(pb.setsockopt(mfd, IPPROTO_IP, IP_DROP_MEMBERSHIP, mreq), -Errno.EADDRNOTAVAIL);
    assert.equal(pb.setsockopt(mfd, IPPROTO_IP, IP_ADD_MEMBERSHIP, Uint8Array.of(10, 0, 0, 1, 0, 0, 0, 0)), -Errno.EINVAL);
    for (const fd of [rfd, mfd, ep]) ok(pb.close(fd), 'close');
    ok(pa.close(sfd), 'close');
  });

  test('connect to a closed port: EPOLLOUT|EPOLLERR, SO_ERROR is ECONNREFUSED once, connectAsync resolves -ECONNREFUSED', async () => {
    const fd = ok(pa.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
    assert.equal(pa.connect(fd, { addr: B, port: 9 }), -EINPROGRESS);
    const ep = ok(pa.epoll_create1(), 'epoll');
    ok(pa.epoll_ctl(ep, EPOLL_CTL_ADD, fd, { events: EPOLLOUT, data: fd }), 'ctl');
    const evs: EpollEvent<number>[] = [];
    await next(pa, ep, evs);
    const ev = evs[0]!.events;
    assert.ok(ev & EPOLLOUT, 'reported writable');
    assert.ok(ev & EPOLLERR, 'EPOLLERR is reported without being asked for');
    assert.ok(ev & EPOLLHUP, 'EPOLLHUP too (the connection is closed)');
    assert.equal(pa.getsockopt(fd, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    assert.equal(pa.getsockopt(fd, SOL_SOCKET, SO_ERROR), 0, 'reading SO_ERROR clears it');
    assert.equal(pa.read(fd, new Uint8Array(4)), 0, 'after the reported error, read sees end of stream');
    ok(pa.close(fd), 'close');

    const fd2 = ok(pa.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    assert.equal(await pa.connectAsync(fd2, { addr: B, port: 9 }, { timeoutMs: 3000 }), -ECONNREFUSED);
    assert.equal(pa.getpeername(fd2, { addr: '', port: 0 }), -ENOTCONN);
    ok(pa.close(fd2), 'close');
    ok(pa.close(ep), 'close');
  });

  test('EADDRINUSE: a second bind to a bound TCP or UDP port; SO_REUSEADDR on both UDP sockets allows it', () => {
    const t1 = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    const t2 = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    ok(pb.bind(t1, { addr: B, port: 7100 }), 'bind');
    assert.equal(pb.bind(t2, { addr: '0.0.0.0', port: 7100 }), -EADDRINUSE);
    ok(pb.listen(t1, 4), 'listen');
    ok(pb.setsockopt(t2, SOL_SOCKET, SO_REUSEADDR, 1), 'reuseaddr');
    assert.equal(pb.bind(t2, { addr: B, port: 7100 }), -EADDRINUSE, 'SO_REUSEADDR does not share a listening port');
    assert.equal(pb.getsockopt(t1, SOL_SOCKET, SO_SNDBUF) > 0, true);

    const u1 = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    const u2 = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pb.bind(u1, { addr: '0.0.0.0', port: 7101 }), 'bind');
    assert.equal(pb.bind(u2, { addr: '0.0.0.0', port: 7101 }), -EADDRINUSE);
    const u3 = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    const u4 = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    for (const u of [u3, u4]) ok(pb.setsockopt(u, SOL_SOCKET, SO_REUSEADDR, 1), 'reuseaddr');
    ok(pb.bind(u3, { addr: '0.0.0.0', port: 7102 }), 'bind');
    ok(pb.bind(u4, { addr: '0.0.0.0', port: 7102 }), 'bind with SO_REUSEADDR');
    assert.equal(pb.getsockopt(u4, SOL_SOCKET, SO_REUSEADDR), 1);
    for (const fd of [t1, t2, u1, u2, u3, u4]) ok(pb.close(fd), 'close');
    // Closing the listener frees the port.
    const t3 = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    ok(pb.bind(t3, { addr: B, port: 7100 }), 'bind after close');
    ok(pb.close(t3), 'close');
  });

  test('EBADF on a closed descriptor; the lowest free number is reused; argument errors', () => {
    const fd = ok(pa.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pa.close(fd), 'close');
    const buf = new Uint8Array(4);
    assert.equal(pa.read(fd, buf), -EBADF);
    assert.equal(pa.write(fd, buf), -EBADF);
    assert.equal(pa.sendto(fd, buf, 4, 0, { addr: B, port: 1 }), -EBADF);
    assert.equal(pa.getsockopt(fd, SOL_SOCKET, SO_ERROR), -EBADF);
    assert.equal(pa.close(fd), -EBADF);
    assert.equal(pa.read(12345, buf), -EBADF);
    const again = ok(pa.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    assert.equal(again, fd, 'the lowest free descriptor number is reused');
    assert.equal(pa.read(again, buf), -ENOTCONN);
    assert.equal(pa.shutdown(again, SHUT_WR), -ENOTCONN);
    // Options kept before a connection exists.
    ok(pa.setsockopt(again, SOL_SOCKET, SO_KEEPALIVE, 1), 'SO_KEEPALIVE');
    ok(pa.setsockopt(again, IPPROTO_TCP, TCP_KEEPIDLE, 30), 'TCP_KEEPIDLE');
    ok(pa.setsockopt(again, IPPROTO_TCP, TCP_KEEPCNT, 3), 'TCP_KEEPCNT');
    assert.equal(pa.getsockopt(again, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert.equal(pa.getsockopt(again, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    assert.equal(pa.getsockopt(again, IPPROTO_TCP, TCP_KEEPCNT), 3);
    assert.equal(pa.fcntl(again, F_GETFL) & O_NONBLOCK, 0);
    ok(pa.fcntl(again, F_SETFL, O_NONBLOCK), 'F_SETFL');
    assert.equal(pa.fcntl(again, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    ok(pa.close(again), 'close');
    assert.equal(pa.socket(1 /* AF_UNIX */, SOCK_STREAM, 0), -EAFNOSUPPORT);
    assert.equal(pa.openCount, 0);
  });

  test('epoll: level-triggered reports while ready, edge-triggered once per wake-up, EPOLLONESHOT until EPOLL_CTL_MOD', async () => {
    const rfd = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pb.bind(rfd, { addr: B, port: 5301 }), 'bind');
    const sfd = ok(pa.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pa.connect(sfd, { addr: B, port: 5301 }), 'connect');
    const lt = ok(pb.epoll_create1(), 'epoll');
    const et = ok(pb.epoll_create1(), 'epoll');
    const one = ok(pb.epoll_create1(), 'epoll');
    ok(pb.epoll_ctl(lt, EPOLL_CTL_ADD, rfd, { events: EPOLLIN, data: 1 }), 'ctl lt');
    ok(pb.epoll_ctl(et, EPOLL_CTL_ADD, rfd, { events: EPOLLIN | EPOLLET, data: 2 }), 'ctl et');
    ok(pb.epoll_ctl(one, EPOLL_CTL_ADD, rfd, { events: EPOLLIN | EPOLLONESHOT, data: 3 }), 'ctl oneshot');
    assert.equal(pb.epoll_ctl(one, EPOLL_CTL_ADD, rfd, { events: EPOLLIN, data: 3 }), -EEXIST);
    assert.equal(pb.epoll_ctl(one, EPOLL_CTL_MOD, sfd + 1000, { events: EPOLLIN, data: 3 }), -EBADF);
    const evs: EpollEvent<number>[] = [];
    assert.equal(pb.epoll_wait(lt, evs, 4), 0, 'nothing ready yet');

    assert.equal(pa.write(sfd, new Uint8Array([1])), 1);
    await next(pb, lt, evs);
    assert.deepEqual(evs[0], { events: EPOLLIN, data: 1 });
    assert.equal(pb.epoll_wait(lt, evs, 4), 1, 'level-triggered: reported again while the datagram is unread');
    assert.equal(pb.epoll_wait(et, evs, 4), 1);
    assert.equal(evs[0]!.data, 2);
    assert.equal(pb.epoll_wait(et, evs, 4), 0, 'edge-triggered: reported once');
    assert.equal(pb.epoll_wait(one, evs, 4), 1);
    assert.equal(pb.epoll_wait(one, evs, 4), 0, 'one-shot: disabled after one report');

    // A second datagram is a new wake-up: ET reports again (Linux does, though data was unread);
    // the one-shot entry stays quiet until re-armed.
    assert.equal(pa.write(sfd, new Uint8Array([2])), 1);
    await next(pb, et, evs);
    assert.equal(evs[0]!.data, 2);
    assert.equal(pb.epoll_wait(one, evs, 4), 0, 'one-shot: no report until EPOLL_CTL_MOD');
    ok(pb.epoll_ctl(one, EPOLL_CTL_MOD, rfd, { events: EPOLLIN | EPOLLONESHOT, data: 33 }), 'mod');
    assert.equal(pb.epoll_wait(one, evs, 4), 1, 're-armed: ready data is reported at once');
    assert.deepEqual(evs[0], { events: EPOLLIN, data: 33 });

    // Once drained, the level-triggered entry falls silent.
    const buf = new Uint8Array(4);
    assert.equal(pb.read(rfd, buf), 1);
    assert.equal(pb.read(rfd, buf), 1);
    assert.equal(pb.epoll_wait(lt, evs, 4), 0);
    // DEL, and closing a descriptor removes it from every set.
    ok(pb.epoll_ctl(lt, EPOLL_CTL_DEL, rfd, null), 'del');
    assert.equal(pb.epoll_ctl(lt, EPOLL_CTL_DEL, rfd, null), -ENOENT);
    ok(pb.close(rfd), 'close');
    assert.equal(pb.epoll_ctl(et, EPOLL_CTL_DEL, rfd, null), -EBADF);
    for (const fd of [lt, et, one]) ok(pb.close(fd), 'close');
    ok(pa.close(sfd), 'close');
  });

  test('epollWaitAsync: aborting rejects with AbortError; a timeout resolves 0; readAsync and acceptAsync time out with -ETIMEDOUT', async () => {
    const fd = ok(pb.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    ok(pb.bind(fd, { addr: B, port: 5302 }), 'bind');
    const ep = ok(pb.epoll_create1(), 'epoll');
    ok(pb.epoll_ctl(ep, EPOLL_CTL_ADD, fd, { events: EPOLLIN, data: fd }), 'ctl');
    const evs: EpollEvent<number>[] = [];

    const ac = new AbortController();
    const waiting = pb.epollWaitAsync(ep, evs, 4, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 20);
    await assert.rejects(waiting, (e: unknown) => e instanceof AbortError && e.name === 'AbortError' && (e.cause as Error).message === 'stop');
    // An already-aborted signal rejects at once.
    await assert.rejects(pb.epollWaitAsync(ep, evs, 4, { signal: AbortSignal.abort() }), AbortError);

    const t0 = performance.now();
    assert.equal(await pb.epollWaitAsync(ep, evs, 4, { timeoutMs: 60 }), 0);
    assert.ok(performance.now() - t0 >= 55, 'waited for the timeout');
    assert.equal(await pb.readAsync(fd, new Uint8Array(4), 4, { timeoutMs: 30 }), -ETIMEDOUT);

    const lfd = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    ok(pb.listen(lfd, 1), 'listen');
    assert.equal(await pb.acceptAsync(lfd, null, { timeoutMs: 30 }), -ETIMEDOUT);

    // A pending wait is answered by a later datagram (the aborted waiter is gone and harmless).
    const later = pb.epollWaitAsync(ep, evs, 4, { timeoutMs: 3000 });
    const sfd = ok(pa.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
    assert.equal(pa.sendto(sfd, new Uint8Array(3), 3, 0, { addr: B, port: 5302 }), 3);
    assert.equal(await later, 1);
    assert.equal(evs[0]!.events, EPOLLIN);

    // Closing the descriptor under a pending readAsync resolves it with -EBADF.
    assert.equal(pb.read(fd, new Uint8Array(4)), 3);
    const orphan = pb.readAsync(fd, new Uint8Array(4));
    ok(pb.close(fd), 'close');
    assert.equal(await orphan, -EBADF);
    for (const x of [ep, lfd]) ok(pb.close(x), 'close');
    ok(pa.close(sfd), 'close');
  });

  test('acceptAsync, connectAsync, writeAsync and readAsync: a blocking-style exchange; peer reset reported as ECONNRESET', async () => {
    const lfd = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    ok(pb.bind(lfd, { addr: '0.0.0.0', port: 0 }), 'bind');
    ok(pb.listen(lfd, 8), 'listen');
    const where: SockAddr = { addr: '', port: 0 };
    ok(pb.getsockname(lfd, where), 'getsockname');
    assert.ok(where.port > 0, 'listen chose a port');
    const cfd = ok(pa.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    const peer: SockAddr = { addr: '', port: 0 };
    const [sfd, cres] = await Promise.all([
      pb.acceptAsync(lfd, peer, { timeoutMs: 3000 }),
      pa.connectAsync(cfd, { addr: B, port: where.port }, { timeoutMs: 3000 }),
    ]);
    ok(sfd, 'acceptAsync');
    assert.equal(cres, 0);
    const mine: SockAddr = { addr: '', port: 0 };
    ok(pa.getsockname(cfd, mine), 'getsockname');
    assert.deepEqual(peer, mine, 'accept\'s peer is the client\'s local address');
    const data = payload(100_000);
    const got = new Uint8Array(data.length);
    const reader = (async () => {
      let off = 0;
      while (off < got.length) {
        const r = await pb.readAsync(sfd, got.subarray(off), got.length - off, { timeoutMs: 3000 });
        ok(r, 'readAsync');
        assert.ok(r > 0);
        off += r;
      }
    })();
    assert.equal(await pa.writeAsync(cfd, data, data.length, { timeoutMs: 3000 }), data.length);
    await reader;
    assert.equal(sha(got), sha(data));
    // Unread data on close makes it a reset (as on Linux): the peer's next read reports it once.
    assert.equal(pb.write(sfd, new Uint8Array(10)), 10);
    const evA = ok(pa.epoll_create1(), 'epoll');
    ok(pa.epoll_ctl(evA, EPOLL_CTL_ADD, cfd, { events: EPOLLIN, data: cfd }), 'ctl');
    await next(pa, evA, []);
    ok(pa.close(cfd), 'close with unread data');
    const buf = new Uint8Array(4);
    assert.equal(await pb.readAsync(sfd, buf, 4, { timeoutMs: 3000 }), -ECONNRESET);
    assert.equal(pb.read(sfd, buf), 0, 'after the reset was reported: end of stream');
    assert.equal(pb.write(sfd, buf), -EPIPE);
    for (const fd of [sfd, lfd]) ok(pb.close(fd), 'close');
    ok(pa.close(evA), 'close');
  });
  test('listen backlog 2: four quick connections all wait (backlog here + the engine\'s), accept drains them; readv/writev', async () => {
    const lfd = ok(pb.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
    ok(pb.bind(lfd, { addr: B, port: 7200 }), 'bind');
    ok(pb.listen(lfd, 2), 'listen');
    const clients: number[] = [];
    const done: Promise<number>[] = [];
    for (let i = 0; i < 4; i++) {
      const c = ok(pa.socket(AF_INET, SOCK_STREAM, 0), 'socket');
      clients.push(c);
      done.push(pa.connectAsync(c, { addr: B, port: 7200 }, { timeoutMs: 3000 }));
    }
    assert.deepEqual(await Promise.all(done), [0, 0, 0, 0], 'every handshake completed');
    const ep = ok(pb.epoll_create1(), 'epoll');
    ok(pb.epoll_ctl(ep, EPOLL_CTL_ADD, lfd, { events: EPOLLIN, data: lfd }), 'ctl');
    const accepted: number[] = [];
    const evs: EpollEvent<number>[] = [];
    while (accepted.length < 4) {
      await next(pb, ep, evs);
      // Level-triggered: one accept per event is enough; the listener stays ready.
      const fd = pb.accept(lfd);
      if (fd !== -EAGAIN) accepted.push(ok(fd, 'accept'));
    }
    assert.equal(pb.accept(lfd), -EAGAIN);
    assert.equal(pb.epoll_wait(ep, evs, 4), 0, 'an empty accept queue is not readable');

    // writev gathers, readv scatters (and stops at the first buffer it cannot fill).
    const iov = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array([4, 5])];
    assert.equal(pa.writev(clients[0]!, iov), 5);
    const rev = ok(pb.epoll_create1(), 'epoll');
    const srv = await (async () => {
      for (const fd of accepted) ok(pb.epoll_ctl(rev, EPOLL_CTL_ADD, fd, { events: EPOLLIN | EPOLLET, data: fd }), 'ctl');
      await next(pb, rev, evs);
      const fd = evs[0]!.data;
      // The two pieces may travel as two segments (Nagle holds the second): wait for both.
      while (pb.ioctl(fd, FIONREAD) < 5) await next(pb, rev, evs);
      return fd;
    })();
    const a = new Uint8Array(2), b = new Uint8Array(2), c = new Uint8Array(4);
    assert.equal(pb.readv(srv, [a, b, c]), 5);
    assert.deepEqual([...a, ...b, c[0]], [1, 2, 3, 4, 5]);
    assert.equal(pb.readv(srv, [a]), -EAGAIN);
    for (const fd of [...accepted, lfd, ep, rev]) ok(pb.close(fd), 'close');
    for (const fd of clients) ok(pa.close(fd), 'close');
  });
  test('TCP socket options as Linux: TCP_MAXSEG before connect, TCP_CORK and MSG_MORE, MSG_PEEK, SIOCINQ/SIOCOUTQ/SIOCOUTQNSD, TCP_INFO, TCP_CONGESTION, IP_TOS, SO_LINGER 0 resets', async () => {
    const lfd = ok(pb.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    ok(pb.setsockopt(lfd, IPPROTO_TCP, TCP_MAXSEG, 1000), 'TCP_MAXSEG on the listener');
    ok(pb.bind(lfd, { addr: '0.0.0.0', port: 0 }), 'bind');
    ok(pb.listen(lfd, 8), 'listen');
    const where: SockAddr = { addr: '', port: 0 };
    ok(pb.getsockname(lfd, where), 'getsockname');
    const cfd = ok(pa.socket(AF_INET, SOCK_STREAM, 0), 'socket');
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_MAXSEG), 536, 'TCP_MSS_DEFAULT before a connection');
    ok(pa.setsockopt(cfd, IPPROTO_TCP, TCP_MAXSEG, 1200), 'TCP_MAXSEG before connect');
    assert.equal(pa.setsockopt(cfd, IPPROTO_TCP, TCP_MAXSEG, 10), -Errno.EINVAL, 'below TCP_MIN_MSS');
    ok(pa.setsockopt(cfd, IPPROTO_TCP, TCP_CONGESTION, 'cubic'), 'TCP_CONGESTION');
    assert.equal(pa.setsockopt(cfd, IPPROTO_TCP, TCP_CONGESTION, 'nope'), -ENOENT);
    ok(pa.setsockopt(cfd, IPPROTO_IP, IP_TOS, 0x2e << 2), 'IP_TOS (DSCP EF)');
    ok(pa.setsockopt(cfd, IPPROTO_TCP, TCP_USER_TIMEOUT, 5000), 'TCP_USER_TIMEOUT');
    ok(pa.setsockopt(cfd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, 16384), 'TCP_NOTSENT_LOWAT');
    const [sfd, cres] = await Promise.all([
      pb.acceptAsync(lfd, null, { timeoutMs: 3000 }),
      pa.connectAsync(cfd, { addr: B, port: where.port }, { timeoutMs: 3000 }),
    ]);
    ok(sfd, 'acceptAsync');
    assert.equal(cres, 0);
    // Both ends' MSS: min(1200 asked by the client, 1000 announced by the listener) less 12 option bytes.
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_MAXSEG), 988);
    assert.equal(pb.getsockopt(sfd, IPPROTO_TCP, TCP_MAXSEG), 988);
    const name = new Uint8Array(16);
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_CONGESTION, name), 16);
    assert.equal(new TextDecoder().decode(name.subarray(0, name.indexOf(0))), 'cubic');
    assert.equal(pa.getsockopt(cfd, IPPROTO_IP, IP_TOS), 0xb8);
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_USER_TIMEOUT), 5000);
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_NOTSENT_LOWAT), 16384);

    // TCP_CORK: small writes wait for a full segment; uncorking sends them as one.
    ok(pa.setsockopt(cfd, IPPROTO_TCP, TCP_CORK, 1), 'TCP_CORK');
    ok(pa.write(cfd, new Uint8Array([1, 2, 3])), 'write');
    ok(pa.send(cfd, new Uint8Array([4, 5]), 2, MSG_MORE), 'send MSG_MORE');
    assert.equal(pa.ioctl(cfd, SIOCOUTQNSD), 5, 'corked: five bytes never sent');
    assert.equal(pa.ioctl(cfd, SIOCOUTQ), 5);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pb.ioctl(sfd, SIOCINQ), 0, 'nothing arrived while corked');
    ok(pa.setsockopt(cfd, IPPROTO_TCP, TCP_CORK, 0), 'uncork');
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_CORK), 0);
    // MSG_MORE still holds the tail until a send without it.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pb.ioctl(sfd, SIOCINQ), 0, 'MSG_MORE holds the tail');
    ok(pa.write(cfd, new Uint8Array([6])), 'write without MSG_MORE');
    const buf = new Uint8Array(16);
    // MSG_PEEK leaves the bytes; SIOCINQ counts them.
    for (let i = 0; i < 300 && pb.ioctl(sfd, SIOCINQ) < 6; i++) await new Promise((r) => setTimeout(r, 10));
    const peek = new Uint8Array(6);
    assert.equal(pb.recv(sfd, peek, 6, MSG_PEEK), 6);
    assert.deepEqual([...peek], [1, 2, 3, 4, 5, 6]);
    assert.equal(pb.ioctl(sfd, SIOCINQ), 6, 'MSG_PEEK consumed nothing');
    assert.equal(pb.read(sfd, peek), 6);
    assert.equal(pa.ioctl(cfd, SIOCOUTQ) >= 0, true);

    // TCP_INFO: Linux's struct tcp_info layout.
    const info = new Uint8Array(TCP_INFO_SIZE);
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_INFO, info), TCP_INFO_SIZE);
    const v = new DataView(info.buffer);
    assert.equal(info[0], 1, 'tcpi_state TCP_ESTABLISHED');
    assert.equal(info[5]! & 7, 7, 'tcpi_options: timestamps, SACK, window scaling');
    assert.equal(v.getUint32(16, true), 988, 'tcpi_snd_mss');
    assert.ok(v.getUint32(68, true) > 0, 'tcpi_rtt in µs');
    assert.equal(Number(v.getBigUint64(120, true)), 6, 'tcpi_bytes_acked');
    assert.ok(v.getUint32(136, true) >= 3, 'tcpi_segs_out');
    assert.equal(Number(v.getBigUint64(200, true)), 6, 'tcpi_bytes_sent');
    assert.equal(pa.getsockopt(cfd, IPPROTO_TCP, TCP_INFO), -Errno.EFAULT, 'TCP_INFO needs a buffer');
    ok(pb.setsockopt(sfd, IPPROTO_TCP, TCP_INQ, 1), 'TCP_INQ');
    assert.equal(pb.getsockopt(sfd, IPPROTO_TCP, TCP_INQ), 1);

    // SO_LINGER { on, 0 }: close() resets the connection.
    ok(pa.setsockopt(cfd, SOL_SOCKET, SO_LINGER, { onoff: 1, linger: 0 }), 'SO_LINGER');
    const lg = new Uint8Array(8);
    assert.equal(pa.getsockopt(cfd, SOL_SOCKET, SO_LINGER, lg), 8);
    assert.deepEqual([...lg], [1, 0, 0, 0, 0, 0, 0, 0]);
    ok(pa.close(cfd), 'close');
    assert.equal(await pb.readAsync(sfd, buf, 16, { timeoutMs: 3000 }), -ECONNRESET, 'the peer sees a reset, not a FIN');
    for (const fd of [sfd, lfd]) ok(pb.close(fd), 'close');
  });

  test('the module-level functions use the default instance (setDefaultInstance) and share its table', () => {
    setDefaultInstance(instA, { stopOnExit: false });
    try {
      const fd = ok(socket(AF_INET, SOCK_DGRAM, 0), 'socket');
      ok(bind(fd, { addr: A, port: 5399 }), 'bind');
      const me: SockAddr = { addr: '', port: 0 };
      ok(pa.getsockname(fd, me), 'the same descriptor through posix({ stack })');
      assert.deepEqual(me, { family: AF_INET, addr: A, port: 5399 });
      ok(close(fd), 'close');
      assert.equal(close(fd), -EBADF);
    } finally {
      setDefaultInstance(null);
    }
  });
});
