// Two stacks joined back to back by a minimal in-test link: ARP, ping, UDP, fragments, ICMP errors.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from '../../src/stack/stack.js';
import { VirtualClock } from '../../src/base/time.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import type { NetError } from '../../src/base/errors.js';
import { PipeDevice, pair } from '../helpers/stack-pair.js';


const A = parseIpv4('198.18.0.1')!, B = parseIpv4('198.18.0.2')!;

test('ARP resolves and ping gets an echo reply with the same payload', () => {
  const { a, run } = pair();
  const replies: [number, number, number, string][] = [];
  a.icmp.onEchoReply = (src, id, seq, p) => replies.push([src, id, seq, Buffer.from(p).toString()]);
  a.icmp.sendEcho(B, 7, 1, Buffer.from('hello'));
  run(10);
  assert.deepEqual(replies, [[B, 7, 1, 'hello']]);
  assert.equal(a.arp.list()[0]?.state, 'reachable');
  assert.equal(a.arp.stats.requestsSent, 1);
});

test('ARP retries resolve through lost requests; unresolved packets are dropped and counted', () => {
  const { a, da, db, run } = pair();
  const replies: number[] = [];
  a.icmp.onEchoReply = (_s, _i, seq) => replies.push(seq);
  run(0); // let the gratuitous ARPs sent at addInterface land first
  da.dropNext = 2; // lose the next two requests
  a.icmp.sendEcho(B, 1, 1, new Uint8Array(8));
  run(5000);
  assert.deepEqual(replies, [1]);
  assert.equal(a.arp.stats.requestsSent, 3);
  assert.equal(a.arp.stats.announcements, 1);
  // Now an address nobody owns: 5 tries, then the held packet is dropped.
  void db;
  a.icmp.sendEcho(parseIpv4('198.18.0.99')!, 1, 2, new Uint8Array(8));
  run(10000);
  assert.equal(a.drops['arp_unresolved'], 1);
});

test('UDP flows both ways; a closed port answers ICMP port unreachable, seen as ECONNREFUSED', () => {
  const { a, b, run, pool } = pair();
  const sb = b.udp.open();
  sb.bind(0, 7000);
  sb.onMessage = (data, addr, port) => sb.send(data, addr, port);
  const sa = a.udp.open();
  const got: string[] = [];
  sa.onMessage = (d, addr, port) => got.push(`${Buffer.from(d)}@${addr === B}:${port}`);
  sa.send(Buffer.from('ping1'), B, 7000);
  run(10);
  assert.deepEqual(got, ['ping1@true:7000']);
  const sc = a.udp.open();
  const errors: string[] = [];
  sc.onError = (e: NetError) => errors.push(e.code);
  sc.connect(B, 9);
  sc.send(Buffer.from('x'));
  run(10);
  assert.deepEqual(errors, ['ECONNREFUSED']);
  assert.equal(b.drops['udp_noport'], 1);
  assert.equal(b.icmp.stats.errorsSent, 1);
  sa.close(); sb.close(); sc.close();
  a.close(); b.close();
  assert.equal(pool.inUse, 0);
});

test('a 5000-byte datagram is fragmented and reassembled', () => {
  const { a, b, run } = pair();
  const sb = b.udp.open(); sb.bind(0, 5000);
  const sizes: number[] = [];
  sb.onMessage = (d) => { sizes.push(d.length); assert.equal(d[4999], 4999 & 255); };
  const data = new Uint8Array(5000).map((_, i) => i & 255);
  a.udp.open().send(data, B, 5000);
  run(10);
  assert.deepEqual(sizes, [5000]);
  assert.equal(a.ipStats.fragmentsCreated, 4);
  assert.equal(b.ipStats.reassembled, 1);
});

test('a full reassembly table evicts its oldest datagram: 1,000 never-completed datagrams do not shut out one whose fragments arrive together', () => {
  const { a, b, db, run } = pair();
  const sb = b.udp.open(); sb.bind(0, 5000);
  const sizes: number[] = [];
  sb.onMessage = (d) => sizes.push(d.length);
  const sa = a.udp.open();
  sa.send(new Uint8Array(8), B, 5000); // ARP first
  run(10);
  for (let i = 0; i < 1000; i++) sa.send(new Uint8Array(3000), B, 5000);
  // The flood: every datagram loses its last fragment (offset > 0, more-fragments clear).
  const isLast = (f: { data: Uint8Array; start: number }) => {
    const fw = (f.data[f.start + 20]! << 8) | f.data[f.start + 21]!;
    return (fw & 0x1fff) !== 0 && (fw & 0x2000) === 0;
  };
  const kept = db.inbox.filter((f) => { if (isLast(f)) { f.release(); return false; } return true; });
  db.inbox.length = 0; db.inbox.push(...kept);
  run(10);
  assert.deepEqual(sizes, [8]);
  assert.equal(b.ipStats.reassembled, 0);
  assert.equal(b.drops['frag_evicted'], 1000 - 256, 'the table holds maxfragpackets (256); older ones were evicted');
  sa.send(new Uint8Array(5000).fill(7), B, 5000);
  run(10);
  assert.deepEqual(sizes, [8, 5000], 'the legitimate datagram was reassembled');
  assert.equal(b.drops['frag_evicted'], 1000 - 256 + 1, 'it took the oldest slot');
});

test('echo to the broadcast address is ignored by default (bmcastecho=0)', () => {
  const { a, b, run } = pair();
  const replies: number[] = [];
  a.icmp.onEchoReply = (_s, _i, seq) => replies.push(seq);
  a.icmp.sendEcho(parseIpv4('198.18.0.255')!, 1, 1, new Uint8Array(4));
  run(10);
  assert.deepEqual(replies, []);
  assert.equal(b.drops['icmp_bmcast_echo'], 1);
  void A;
});

test('127/8 destinations never leave the stack, even with a default gateway (RFC 1122 §3.2.1.3)', () => {
  const clock = new VirtualClock(0);
  const dev = new PipeDevice('a0', Uint8Array.of(2, 0, 0, 0, 0, 1));
  dev.peer = new PipeDevice('x', Uint8Array.of(2, 0, 0, 0, 0, 9));
  const a = new Stack({ clock });
  a.addInterface(dev, { addr: '198.18.0.1/24', gateway: '198.18.0.254', announce: false });
  assert.equal(a.sourceAddress(parseIpv4('127.0.0.1')!), 0);
  assert.equal(a.icmp.sendEcho(parseIpv4('127.0.0.1')!, 1, 1, new Uint8Array(4)), false);
  assert.equal(a.drops['ip_loopback_destination'], 1);
  assert.equal(dev.sent, 0);
});
