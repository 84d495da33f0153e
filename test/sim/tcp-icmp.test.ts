// ICMP errors about TCP segments: path MTU discovery (RFC 1191), hard errors while opening
// (RFC 1122 §4.2.3.9), and errors about data not in flight are not believed (RFC 5927).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, LOCAL, REMOTE, SYN, TcpHarness } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const P = 7000; // peer ISN

function open(h: TcpHarness): { s: TcpSocket; d0: number; sport: number } {
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  h.peerPort = 80;
  h.inject({ sport: 80, dport: syn.sport, seq: P, ack: syn.seq + 1, flags: SYN | ACK, wnd: 65535, mss: 1460 });
  h.one();
  h.peerAck = syn.seq + 1;
  return { s, d0: syn.seq + 1, sport: syn.sport };
}

test('fragmentation needed lowers the MSS to the next-hop MTU and resends the dropped data at once', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  s.write(new Uint8Array(4000));
  const first = h.take();
  assert.deepEqual(first.map((x) => x.data.length), [1460, 1460]); // Nagle holds the 1080-byte tail
  // A router with a 1280-byte next hop drops the first segment and says so.
  h.tcp.icmpError(3, 4, LOCAL, sport, REMOTE, 80, d0, 1280);
  const again = h.take();
  assert.ok(again.length >= 1);
  assert.equal(again[0]!.seq, d0);
  for (const seg of again) assert.ok(seg.data.length <= 1240, `segment of ${seg.data.length} bytes`);
  assert.equal(h.tcp.counters.pmtuUpdates, 1);
});

test('an ICMP error about a sequence number not in flight is ignored (RFC 5927 §4.1)', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  s.write(new Uint8Array(1000));
  h.take();
  h.tcp.icmpError(3, 4, LOCAL, sport, REMOTE, 80, d0 + 50_000, 576);
  h.tcp.icmpError(3, 3, LOCAL, sport, REMOTE, 80, d0 - 10, 0);
  h.none();
  assert.equal(h.tcp.counters.icmpIgnored, 2);
  assert.equal(s.state, 'ESTABLISHED');
});

test('a larger or implausible MTU in fragmentation needed changes nothing', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  s.write(new Uint8Array(1000));
  h.take();
  h.tcp.icmpError(3, 4, LOCAL, sport, REMOTE, 80, d0, 9000);
  h.tcp.icmpError(3, 4, LOCAL, sport, REMOTE, 80, d0, 0);
  h.none();
  assert.equal(h.tcp.counters.pmtuUpdates, 0);
});

test('port unreachable while connecting fails the connect with ECONNREFUSED; once established it is a soft error', () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 81 });
  const syn = h.one();
  let err = '';
  s.onClose = (e) => { err = e?.code ?? 'none'; };
  h.tcp.icmpError(3, 3, LOCAL, syn.sport, REMOTE, 81, syn.seq, 0);
  assert.equal(err, 'ECONNREFUSED');
  assert.equal(h.tcp.activeTcbs, 0);

  const h2 = new TcpHarness();
  const o = open(h2);
  o.s.write(new Uint8Array(100));
  h2.take();
  h2.tcp.icmpError(3, 3, LOCAL, o.sport, REMOTE, 80, o.d0, 0);
  assert.equal(o.s.state, 'ESTABLISHED');
  assert.equal(h2.tcp.counters.icmpSoftErrors, 1);
  void ACK;
});
