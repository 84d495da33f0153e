// Scripted segment tests for ECN (RFC 3168) as Linux does it: negotiation (tcp_ecn 0/1/2),
// ECT(0) on new data only, CE -> ECE until CWR, and the sender's once-per-window reduction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, LOCAL, PEER_ISN, REMOTE, SYN, TcpFlag, TcpHarness, filler, type Seg } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const { ECE, CWR } = TcpFlag;
const P = PEER_ISN;
const ECT0 = 2, CE = 3;

const has = (s: Seg, f: number): boolean => (s.flags & f) === f;
const ecnField = (s: Seg): number => (s.tos ?? 0) & 3;

/** Active open with net.inet.tcp.ecn = 1; the SYN-ACK carries `synAckFlags` besides SYN|ACK. */
function openEcn(h: TcpHarness, synAckFlags: number = ECE, mss = 1000): { s: TcpSocket; d0: number; sport: number; syn: Seg } {
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  h.peerPort = 80;
  h.advance(50);
  h.inject({ sport: 80, dport: syn.sport, seq: P, ack: syn.seq + 1, flags: SYN | ACK | synAckFlags, wnd: 65535, mss });
  h.one();
  assert.equal(s.state, 'ESTABLISHED');
  h.peerAck = syn.seq + 1;
  return { s, d0: syn.seq + 1, sport: syn.sport, syn };
}

test('Linux tcp_ecn=2 (the default): a SYN does not ask for ECN, and an ECN-setup SYN is answered with ECE alone (RFC 3168 §6.1.1)', () => {
  const h = new TcpHarness();
  assert.equal(h.host.sysctl.get('net.inet.tcp.ecn'), 2);
  h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  assert.ok(!(syn.flags & (ECE | CWR)), `no ECN-setup SYN by default: ${syn.flagNames}`);

  const srv = new TcpHarness();
  srv.tcp.listen({ port: 80 });
  srv.inject({ seq: 100, flags: SYN | ECE | CWR, mss: 1460 });
  const sa = srv.one();
  assert.equal(sa.flagNames, 'SYN|ACK|ECE', 'ECN-setup SYN-ACK: ECE without CWR');
  assert.equal(ecnField(sa), 0, 'the SYN-ACK is not ECT');
});

test('net.inet.tcp.ecn=0: an ECN-setup SYN is answered without ECE; a SYN that is itself ECT is not taken as ECN setup (Linux)', () => {
  const off = new TcpHarness({ 'net.inet.tcp.ecn': 0 });
  off.tcp.listen({ port: 80 });
  off.inject({ seq: 100, flags: SYN | ECE | CWR, mss: 1460 });
  assert.equal(off.one().flagNames, 'SYN|ACK');

  const h = new TcpHarness();
  h.tcp.listen({ port: 80 });
  h.inject({ seq: 100, flags: SYN | ECE | CWR, mss: 1460, ecn: ECT0 });
  assert.equal(h.one().flagNames, 'SYN|ACK', 'tcp_ecn_create_request(): an ECT SYN means a broken path');
});

test('net.inet.tcp.ecn=1: the SYN carries ECE and CWR and is not ECT; its retransmission carries neither (Linux tcp_ecn_clear_syn)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.ecn': 1 });
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  assert.equal(syn.flagNames, 'SYN|ECE|CWR');
  assert.equal(ecnField(syn), 0);
  h.advanceToNextTimer();
  const again = h.one();
  assert.equal(again.flagNames, 'SYN', 'the retransmitted SYN falls back to no ECN');
  h.inject({ sport: 80, dport: syn.sport, seq: P, ack: syn.seq + 1, flags: SYN | ACK | ECE, mss: 1000 });
  h.take();
  s.write(filler(100));
  assert.equal(ecnField(h.one()), 0, 'ECN stays off: data is Not-ECT');
  assert.equal(s.info().options & 8, 0);
});

test('RFC 3168 §6.1.1: a SYN-ACK without ECE (or with ECE and CWR) leaves ECN off', () => {
  for (const extra of [0, ECE | CWR] as number[]) {
    const h = new TcpHarness({ 'net.inet.tcp.ecn': 1 });
    const { s } = openEcn(h, extra);
    s.write(filler(100));
    const d = h.one();
    assert.equal(ecnField(d), 0, `SYN-ACK extra flags ${extra}: data not ECT`);
    assert.equal(h.tcp.counters.ecnNegotiated, 0);
  }
});

test('Linux tcp_ecn_send(): with ECN negotiated, new data is ECT(0); pure ACKs and retransmissions are Not-ECT; TCP_INFO says TCPI_OPT_ECN', () => {
  const h = new TcpHarness({ 'net.inet.tcp.ecn': 1 });
  const { s, d0, sport } = openEcn(h);
  assert.equal(h.tcp.counters.ecnNegotiated, 1);
  assert.equal(s.info().options & 8, 8);
  s.write(filler(2000));
  const segs = h.take();
  assert.equal(segs.length, 2);
  for (const d of segs) assert.equal(ecnField(d), ECT0, 'new data: ECT(0)');
  // A pure ACK of the peer's data.
  h.inject({ sport: 80, dport: sport, seq: P + 1, ack: d0, flags: ACK, data: 3000 });
  const a = h.take().find((x) => x.data.length === 0)!;
  assert.ok(a, 'an ACK for 3000 bytes');
  assert.equal(ecnField(a), 0, 'pure ACK: Not-ECT');
  // The retransmission timeout resends the first segment.
  h.advanceToNextTimer(); // tail-loss probe or RTO
  let r = h.take();
  while (r.length === 0) { h.advanceToNextTimer(); r = h.take(); }
  for (const x of r) {
    assert.ok(x.seq - d0 < 2000, 'a retransmission');
    assert.equal(ecnField(x), 0, 'retransmission: Not-ECT');
  }
});

test('RFC 3168 §6.1.3: a CE-marked data segment is acknowledged at once with ECE, and every segment carries ECE until data with CWR arrives', () => {
  const h = new TcpHarness({ 'net.inet.tcp.ecn': 1 });
  const { s, d0, sport } = openEcn(h);
  // Leave quick-ACK mode so that ordinary data is acknowledged late.
  let q = P + 1;
  do { h.inject({ sport: 80, dport: sport, seq: q, ack: d0, flags: ACK, data: 100 }); q += 100; h.take(); } while (s.tcb.quickAcks > 0);
  s.read();
  h.inject({ sport: 80, dport: sport, seq: q, ack: d0, flags: ACK, data: 100, ecn: CE }); q += 100;
  const a = h.one();
  assert.equal(a.ack, q, 'the CE mark is acknowledged at once');
  assert.ok(has(a, ECE), `ECE set: ${a.flagNames}`);
  assert.equal(h.tcp.counters.ecnCeReceived, 1);
  assert.equal(s.info().options & 16, 16, 'TCPI_OPT_ECN_SEEN');
  // ECE goes on: the next (unmarked) data's ACK and our own data carry it.
  h.inject({ sport: 80, dport: sport, seq: q, ack: d0, flags: ACK, data: 1000, ecn: ECT0 }); q += 1000;
  h.inject({ sport: 80, dport: sport, seq: q, ack: d0, flags: ACK, data: 1000, ecn: ECT0 }); q += 1000;
  h.advance(50);
  const b = h.take();
  assert.ok(b.length >= 1 && b.every((x) => has(x, ECE)), 'ECE repeated until CWR');
  s.write(filler(10));
  const d = h.one();
  assert.ok(has(d, ECE) && d.data.length === 10, 'our data carries ECE too');
  // Data with CWR ends the echo; the ACKs after it carry no ECE.
  h.inject({ sport: 80, dport: sport, seq: q, ack: d0 + 10, flags: ACK | CWR, data: 1000, ecn: ECT0 }); q += 1000;
  h.inject({ sport: 80, dport: sport, seq: q, ack: d0 + 10, flags: ACK, data: 1000, ecn: ECT0 }); q += 1000;
  h.advance(200);
  const c = h.take();
  assert.ok(c.length >= 1, 'acknowledged');
  for (const x of c) assert.ok(!has(x, ECE), `no ECE after CWR: ${x.flagNames}`);
});

test('RFC 3168 §6.1.2, Linux tcp_enter_cwr(): ECE halves cwnd once per window of data, and the next new data segment carries CWR', () => {
  const h = new TcpHarness({ 'net.inet.tcp.ecn': 1 });
  const { s, d0, sport } = openEcn(h, ECE, 1000);
  const cc = s.tcb.cc;
  const cw0 = cc.cwnd;
  assert.equal(cw0, 10_000, 'IW10');
  s.write(filler(40_000));
  let segs = h.take();
  assert.equal(segs.length, 10);
  assert.ok(segs.every((x) => !has(x, CWR)));
  // The first ACK echoes congestion: cwnd = max(cwnd / 2, 2 segments) (Reno), ssthresh the same.
  h.inject({ sport: 80, dport: sport, seq: P + 1, ack: d0 + 1000, flags: ACK | ECE });
  assert.equal(h.tcp.counters.ecnCwndReductions, 1);
  const cwAfter = cc.cwnd;
  assert.ok(cwAfter <= (cw0 + 1000) / 2 + 1000 && cwAfter >= 4000, `cwnd about halved: ${cw0} -> ${cwAfter}`);
  assert.equal(cc.ssthresh, cwAfter);
  assert.equal(h.take().length, 0, 'cwnd 5 segments, 9 in flight: nothing new');
  h.inject({ sport: 80, dport: sport, seq: P + 1, ack: d0 + 6000, flags: ACK });
  segs = h.take();
  assert.ok(segs.length >= 1, 'new data once the flight is below cwnd');
  assert.ok(has(segs[0]!, CWR), 'CWR on the first new data after the reduction');
  assert.ok(segs.slice(1).every((x) => !has(x, CWR)), 'only once');
  const high = s.tcb.ecnHigh;
  assert.equal(high, d0 + 10_000, 'the window: SND.MAX at the reduction');
  // More ECEs for data sent before the reduction, up to and including its end: ignored.
  for (let k = 7; k <= 10; k++) {
    h.inject({ sport: 80, dport: sport, seq: P + 1, ack: d0 + k * 1000, flags: ACK | ECE });
    h.take();
  }
  assert.equal(h.tcp.counters.ecnCwndReductions, 1, 'no second reduction within the window');
  // Once everything sent at the reduction is acknowledged, a new ECE reduces again.
  const cwBefore = cc.cwnd;
  h.inject({ sport: 80, dport: sport, seq: P + 1, ack: s.tcb.sndMax, flags: ACK | ECE });
  assert.equal(h.tcp.counters.ecnCwndReductions, 2, 'a new window: a new reduction');
  assert.ok(cc.cwnd < cwBefore, `reduced: ${cwBefore} -> ${cc.cwnd}`);
  const more = h.take();
  assert.ok(more.length >= 1 && has(more[0]!, CWR), 'CWR again');
});

test('ECN between two tstack engines: a stack that asks (tcp_ecn=1) and one that accepts (the default) negotiate ECN both ways', () => {
  // Passive side answers an ECN-setup SYN; its data is ECT(0) too.
  const h = new TcpHarness();
  const l = h.tcp.listen({ port: 80 });
  h.inject({ seq: 100, flags: SYN | ECE | CWR, mss: 1000 });
  const sa = h.one();
  h.inject({ seq: 101, ack: sa.seq + 1, flags: ACK });
  assert.equal(l.pending, 1);
  let sock: TcpSocket | null = null;
  l.onConnection = (x) => { sock = x; };
  l.deliver();
  assert.ok(sock);
  const srv = sock as TcpSocket;
  assert.equal(srv.info().options & 8, 8);
  srv.write(filler(500));
  const d = h.one();
  assert.equal(ecnField(d), ECT0);
  assert.equal(d.src, LOCAL);
});
