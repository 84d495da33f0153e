// The engine's rooms: one port table with Linux's bind rules, listeners keyed by address and
// port, net.inet.ip.ttl honoured by every sender, the one checksum completion (RFC 768).
import test from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from '../../src/base/pktbuf.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { Csum } from '../../src/base/pktbuf.js';
import { completeChecksum } from '../../src/base/offload.js';
import { Posix, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR } from '../../src/api/posix.js';
import { pair } from '../helpers/stack-pair.js';


const A = parseIpv4('198.18.0.1')!, B = parseIpv4('198.18.0.2')!, B2 = parseIpv4('198.18.0.3')!;

test('listeners on two addresses of one port each get their own connections; a specific address beats the wildcard', () => {
  const { b, a, run } = pair();
  b.addAddress(1, '198.18.0.3/32');
  const got: string[] = [];
  const l1 = b.tcp.listen({ addr: B, port: 80 });
  const l2 = b.tcp.listen({ addr: B2, port: 80 });
  l1.onConnection = () => got.push('B');
  l2.onConnection = () => got.push('B2');
  assert.throws(() => b.tcp.listen({ port: 80 }), { code: 'EADDRINUSE' }, 'a wildcard listener overlaps both');
  a.tcp.connect({ raddr: B2, rport: 80 });
  a.tcp.connect({ raddr: B, rport: 80 });
  run(100);
  assert.deepEqual(got.sort(), ['B', 'B2']);
  assert.equal(b.tcp.findListener(B2, 80), l2);
  l2.close();
  assert.equal(b.tcp.findListener(B2, 80), null, 'no wildcard listener to fall back to');
});

test('bind follows Linux: overlapping addresses conflict unless both set SO_REUSEADDR and none listens', () => {
  const { b } = pair();
  const x = b.tcp.bind(0, 5000);
  assert.throws(() => b.tcp.bind(B, 5000), { code: 'EADDRINUSE' });
  b.tcp.unbind(x);
  const r1 = b.tcp.bind(B, 5000, true);
  const r2 = b.tcp.bind(0, 5000, true);
  b.tcp.listen({ binding: r1, port: 5000 });
  assert.throws(() => b.tcp.listen({ binding: r2, port: 5000 }), { code: 'EADDRINUSE' }, 'the second listen conflicts with the listener');
  assert.throws(() => b.tcp.bind(B, 5000, true), { code: 'EADDRINUSE' }, 'a listener keeps the port even with SO_REUSEADDR');
  b.tcp.unbind(r2);
  assert.throws(() => b.tcp.bind(parseIpv4('198.18.9.9')!, 6000), { code: 'EADDRNOTAVAIL' });
});

test('the POSIX layer and the engine share one port table', () => {
  const { b } = pair();
  const px = new Posix({ stack: b, acquire() {}, release() {} } as never);
  b.tcp.listen({ port: 7000 });
  const fd = px.socket(AF_INET, SOCK_STREAM);
  assert.equal(px.bind(fd, { family: AF_INET, addr: '198.18.0.2', port: 7000 } as never), -98 /* EADDRINUSE */);
  const fd2 = px.socket(AF_INET, SOCK_STREAM);
  assert.equal(px.bind(fd2, { family: AF_INET, addr: '0.0.0.0', port: 7001 } as never), 0);
  assert.throws(() => b.tcp.listen({ port: 7001 }), { code: 'EADDRINUSE' }, 'a port bound through POSIX is taken for net listeners too');
  px.close(fd2);
  b.tcp.listen({ port: 7001 }).close();
  // Both with SO_REUSEADDR and the POSIX socket not listening: Linux lets the listener in.
  const fd3 = px.socket(AF_INET, SOCK_STREAM);
  assert.equal(px.setsockopt(fd3, SOL_SOCKET, SO_REUSEADDR, 1), 0);
  assert.equal(px.bind(fd3, { family: AF_INET, addr: '0.0.0.0', port: 7002 } as never), 0);
  const l = b.tcp.listen({ port: 7002 });
  assert.equal(px.listen(fd3), -98, 'and then the POSIX socket cannot listen on it');
  l.close();
});

test('net.inet.ip.ttl sets the TTL of TCP, UDP and ICMP datagrams', () => {
  const { a, b, da, run } = pair();
  a.sysctl.set('net.inet.ip.ttl', 33);
  const ttls = new Set<number>();
  const orig = da.transmit.bind(da);
  da.transmit = (buf) => { if (buf.data[buf.start + 12] === 0x08 && buf.data[buf.start + 13] === 0x00) ttls.add(buf.data[buf.start + 22]!); orig(buf); };
  b.tcp.listen({ port: 80 });
  a.tcp.connect({ raddr: B, rport: 80 });
  const u = a.udp.open();
  u.send(Uint8Array.of(1), B, 9);
  a.icmp.sendEcho(B, 1, 1, Uint8Array.of(1));
  run(100);
  assert.deepEqual([...ttls], [33]);
});

test('software checksum completion sends a computed UDP checksum of zero as 0xffff (RFC 768)', () => {
  const pool = new BufferPool();
  const buf = pool.alloc();
  // An 8-byte UDP header and 2 payload bytes; the checksum field holds the pseudo-header sum.
  const off = buf.append(10);
  const d = buf.data;
  d.fill(0, off, off + 10);
  // With every other word zero, a field of 0xffff sums to 0xffff, whose complement is 0.
  d[off + 6] = 0xff; d[off + 7] = 0xff;
  buf.csum = Csum.Partial; buf.csumStart = off; buf.csumOffset = 6;
  completeChecksum(buf);
  assert.equal((d[off + 6]! << 8) | d[off + 7]!, 0xffff);
  assert.equal(buf.csum, Csum.None);
  // TCP's field keeps a zero.
  d[off + 16 - 10] = 0;
  const t = pool.alloc();
  const o = t.append(20);
  t.data.fill(0, o, o + 20);
  t.data[o + 16] = 0xff; t.data[o + 17] = 0xff;
  t.csum = Csum.Partial; t.csumStart = o; t.csumOffset = 16;
  completeChecksum(t);
  assert.equal((t.data[o + 16]! << 8) | t.data[o + 17]!, 0);
});
