// Scripted segment tests for the places where tstack's TCP does what the Linux peer at the other
// end does (docs/tcp-interop.md's table): quick ACKs, PSH placement, the RTO formula, TLP timing
// and probes, the user timeout, TS.Recent. Each names the Linux or RFC behaviour it proves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, FIN, PSH, PEER_ISN, RST, TcpHarness, filler, fmt, openActive, peerAckTo } from '../helpers/tcp-harness.js';

const P = PEER_ISN;

function data(h: TcpHarness, sport: number, seq: number, len: number, extra: { ts?: [number, number]; ack?: number } = {}): void {
  h.inject({ sport: 80, dport: sport, seq, flags: ACK, data: len, ts: extra.ts, ack: extra.ack });
}

test('Linux quick-ACK mode: the first 16 data segments of a connection are acknowledged at once, then ACKs are delayed', () => {
  const h = new TcpHarness();
  const { sport } = openActive(h, { mss: 1000 });
  // tcp_incr_quickack(): min(rcv_wnd / (2 * rcv_mss), 16) = 16 immediate ACKs for a 64 KiB window.
  let q = P + 1;
  for (let i = 0; i < 16; i++) {
    data(h, sport, q, 100); q += 100;
    const a = h.one();
    assert.equal(a.ack, q, `segment ${i} acknowledged at once`);
    assert.equal(a.time, h.now);
  }
  data(h, sport, q, 100); q += 100;
  h.none();
  h.advance(40);
  assert.equal(h.one().ack, q, 'the 17th segment waits for the delayed-ACK timer');
});

test('Linux quick-ACK mode again after idle: data after a silence longer than the RTO is acknowledged at once', () => {
  const h = new TcpHarness();
  const { s, sport } = openActive(h, { mss: 1000 });
  let q = P + 1;
  do { data(h, sport, q, 100); q += 100; h.one(); } while (s.tcb.quickAcks > 0);
  data(h, sport, q, 100); q += 100;
  h.none();
  h.advance(40); h.one();
  h.advance(s.tcb.rtt.rto + 1);
  data(h, sport, q, 100); q += 100;
  assert.equal(h.one().ack, q, 'quick ACK after idle (tcp_event_data_recv: gap > RTO)');
});

test('Linux quick-ACK mode when a hole is filled: the segments after the repair are acknowledged at once', () => {
  const h = new TcpHarness();
  const { s, sport } = openActive(h, { mss: 1000, sackOk: true });
  let q = P + 1;
  do { data(h, sport, q, 1000); q += 1000; h.take(); } while (s.tcb.quickAcks > 0);
  // One full segment leaves the ACK pending (delayed).
  data(h, sport, q, 1000); h.none();
  data(h, sport, q + 2000, 1000);
  assert.deepEqual(h.one().sack, [[q + 2000, q + 3000]], 'out-of-order: a duplicate ACK at once');
  data(h, sport, q + 1000, 1000);
  assert.equal(h.one().ack, q + 3000, 'the hole filled: ACK at once (RFC 5681 §4.2)');
  q += 3000;
  data(h, sport, q, 100);
  assert.equal(h.one().ack, q + 100, 'and the next segment too: quick-ACK mode');
});

test('Linux ping-pong mode: a reply sent within the delayed-ACK time carries the ACK of the next request', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000 });
  data(h, sport, P + 1, 50);
  assert.equal(h.one().ack, P + 51, 'first request: quick ACK');
  h.advance(1);
  s.write(filler(80));
  assert.equal(h.one().data.length, 80);
  h.inject({ sport: 80, dport: sport, seq: P + 51, ack: d0 + 80, flags: ACK });
  h.none();
  data(h, sport, P + 51, 50, { ack: d0 + 80 });
  h.none(); // interactive: the ACK waits for the reply
  h.advance(2);
  s.write(filler(80));
  const r = h.one();
  assert.equal(r.ack, P + 101, 'the reply acknowledges the request');
  assert.equal(r.data.length, 80);
});

test('Linux PSH placement: the last segment of each burst the window allows carries PSH, not only the end of a write', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000 });
  s.write(filler(15000)); // cwnd 10 segments: a burst of 10, then the rest as ACKs open room
  const burst = h.take();
  assert.equal(burst.length, 10);
  assert.deepEqual(burst.map((x) => (x.flags & PSH) !== 0), [false, false, false, false, false, false, false, false, false, true]);
  peerAckTo(h, sport, d0 + 2000);
  const next = h.take();
  assert.ok(next.length >= 2, next.map(fmt).join(' ; '));
  assert.ok((next.at(-1)!.flags & PSH) !== 0, 'the burst an ACK releases ends with PSH');
  assert.ok(next.slice(0, -1).every((x) => (x.flags & PSH) === 0), 'and only its last segment');
});

test('Linux RTO formula: RTO = SRTT + max(4*RTTVAR, rexmit_min), so a jittery path keeps rexmit_min of slack', () => {
  const h = new TcpHarness();
  const { s } = openActive(h, { mss: 1000, rttMs: 150 });
  // One sample of 150: SRTT 150, RTTVAR 75: RFC 6298 gives max(150 + 300, 200) = 450; Linux 150 + max(300, 200) = 450.
  assert.equal(s.tcb.rtt.rto, 450);
  s.tcb.rtt.sample(150); s.tcb.rtt.sample(150); s.tcb.rtt.sample(150); s.tcb.rtt.sample(150);
  // RTTVAR has decayed below 50: RFC 6298 would give max(150 + 4*RTTVAR, 200) = 200, only 50 ms of slack.
  assert.ok(4 * s.tcb.rtt.rttvar < 200);
  assert.equal(s.tcb.rtt.rto, 350, 'SRTT 150 + rexmit_min 200');
  h.host.sysctl.set('net.inet.tcp.rexmit_min', 50);
  const h2 = new TcpHarness({ 'net.inet.tcp.rexmit_min': 50 });
  const o2 = openActive(h2, { mss: 1000, rttMs: 20 });
  assert.equal(o2.s.tcb.rtt.rto, 20 + 50, 'rexmit_min floors the variance term (RTTVAR 10 -> 40 < 50)');
});

test('RFC 8985 §7.2 TLP timing: PTO = 2*SRTT (+ WCDelAckT for one segment), capped at the RTO expiration', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true, rttMs: 50 });
  s.write(filler(3000));
  const t0 = h.take()[0]!.time;
  h.advance(99); h.none();
  h.advance(1);
  const probe = h.one();
  assert.equal(probe.time - t0, 100, 'two segments or more in flight: PTO = 2*SRTT');
  assert.equal(probe.seq, d0 + 2000, 'the probe is the highest-sequence segment');
  assert.equal(h.tcp.counters.tlpProbes, 1);
  peerAckTo(h, sport, d0 + 3000, { sack: [[d0 + 2000, d0 + 3000]] }); // with the probe's D-SACK: nothing was lost
  // One segment in flight: 2*SRTT + 200 = 300 > RTO (250): the probe goes at the RTO expiration.
  s.write(filler(500));
  const t1 = h.one().time;
  h.advance(249); h.none();
  h.advance(1);
  const p2 = h.one();
  assert.equal(p2.time - t1, 250, 'PTO capped at TCP_RTO_expiration()');
  assert.equal(h.tcp.counters.tlpProbes, 2, 'it is a loss probe, not a retransmission timeout');
  assert.equal(h.tcp.counters.rexmtTimeouts, 0);
});

test('RFC 8985 §7.3: a probe sends new data when the window allows it', () => {
  const h = new TcpHarness();
  const { s, d0 } = openActive(h, { mss: 1000, sackOk: true, rttMs: 50, wnd: 3000 });
  s.write(filler(4000));
  assert.equal(h.take().length, 3, 'the peer window holds three segments');
  h.advance(100);
  // Nothing acknowledged, the window is full: the probe retransmits the last segment.
  assert.equal(h.one().seq, d0 + 2000);
  const h2 = new TcpHarness();
  const o = openActive(h2, { mss: 1000, sackOk: true, rttMs: 50 });
  o.s.write(filler(2000));
  h2.take();
  o.s.setNoDelay(true);
  h2.tcp.connections()[0]!.cc.cwnd = 2000; // cwnd-limited, window open
  o.s.write(filler(1000));
  h2.none();
  h2.advance(100);
  const pr = h2.one();
  assert.equal(pr.seq, o.d0 + 2000, 'the probe is the next new segment');
  assert.equal(pr.data.length, 1000);
});

test('RFC 8985 §7.3: a FIN-only tail is probed with the FIN alone', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true, rttMs: 50 });
  s.write(filler(2000));
  h.take();
  peerAckTo(h, sport, d0 + 1000);
  s.shutdown();
  const fin = h.one();
  assert.equal(fin.flags, ACK | FIN);
  assert.equal(fin.data.length, 0);
  h.advance(h.host.wheel.nextDeadline() - h.now);
  const probe = h.one();
  assert.equal(probe.flags & (FIN | PSH), FIN, fmt(probe));
  assert.equal(probe.seq, d0 + 2000, 'the FIN alone');
  assert.equal(probe.data.length, 0);
});

test('RFC 5482 user timeout: measured from the oldest unacknowledged send and enforced at its deadline, ETIMEDOUT', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, rttMs: 50 });
  s.setUserTimeout(3000);
  s.write(filler(24));
  const t0 = h.one().time;
  for (let t = 0; t < 20 && h.now - t0 < 3000; t++) h.advanceToNextTimer();
  assert.equal(h.now - t0, 3000, 'the connection fails exactly at the user timeout');
  const rst = h.take().at(-1)!;
  assert.equal(rst.flags & RST, RST);
  assert.equal(s.error?.code, 'ETIMEDOUT');
  assert.equal(s.state, 'CLOSED');
  void d0; void sport;
});

test('RFC 5482 user timeout: an ACK of progress restarts it; only data left unacknowledged that long ends the connection', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, rttMs: 50 });
  s.setUserTimeout(1000);
  s.write(filler(3000));
  h.take();
  h.advance(800);
  h.take();
  peerAckTo(h, sport, d0 + 1000);
  h.advance(900);
  assert.equal(s.state, 'ESTABLISHED', '1.7 s after the first send, but the rest was sent less than 1 s before');
  h.advance(200);
  assert.equal(s.state, 'CLOSED');
});

test('TS.Recent is not taken from a segment whose ACK is above SND.NXT (Linux; keeps PAWS strong)', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, ts: true });
  const before = s.tcb.tsRecent;
  h.inject({ sport: 80, dport: sport, seq: P + 1, ack: d0 + 50000, flags: ACK, ts: [1_000_000, 0] });
  assert.equal(s.tcb.tsRecent, before, 'the forged TSval is not recorded');
  h.take();
  // A genuine segment with a lower, honest TSval is still accepted (not PAWS-dropped).
  h.inject({ sport: 80, dport: sport, seq: P + 1, ack: d0, flags: ACK, ts: [5, 0], data: 10 });
  assert.equal(s.readableLength, 10);
  assert.equal(s.tcb.tsRecent, 5);
});

/** 20 segments in flight, the first lost; the peer SACKs one more segment per ACK. Returns segments sent per ACK. */
function sackLossScenario(h: TcpHarness): { sent: number[]; s: ReturnType<typeof openActive>['s']; d0: number; sport: number } {
  const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true });
  s.write(filler(60000));
  assert.equal(h.take().length, 20);
  h.advance(50);
  const sent: number[] = [];
  for (let k = 1; k <= 19; k++) {
    peerAckTo(h, sport, d0, { sack: [[d0 + 1000, d0 + 1000 + k * 1000]] });
    sent.push(h.take().length);
  }
  return { sent, s, d0, sport };
}

test('RFC 6675 entering SACK recovery: the third duplicate ACK sends the fast retransmit alone while the pipe exceeds ssthresh', () => {
  const h = new TcpHarness({ 'net.inet.tcp.initcwnd_segments': 20 });
  const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true });
  s.write(filler(60000));
  h.take();
  h.advance(50);
  peerAckTo(h, sport, d0, { sack: [[d0 + 1000, d0 + 2000]] });
  peerAckTo(h, sport, d0, { sack: [[d0 + 1000, d0 + 3000]] });
  assert.equal(h.take().length, 2, 'RFC 3042 limited transmit: one new segment per duplicate ACK');
  peerAckTo(h, sport, d0, { sack: [[d0 + 1000, d0 + 4000]] });
  const entry = h.take();
  // Pipe: 22 sent - 3 SACKed - 1 lost + 1 retransmitted = 19 segments > ssthresh 11: one segment.
  assert.deepEqual(entry.map((x) => [x.seq - d0, x.data.length]), [[0, 1000]], entry.map(fmt).join(' ; '));
  assert.equal(s.tcb.cc.ssthresh, 11000);
});

test('RFC 6937 PRR: in recovery one segment leaves per two delivered (ssthresh / RecoverFS = 11/22), not a stall then a burst', () => {
  const h = new TcpHarness({ 'net.inet.tcp.initcwnd_segments': 20 });
  const { sent, s, d0, sport } = sackLossScenario(h);
  // ACKs 1, 2: limited transmit; 3: the fast retransmit; then PRR's proportional part. RFC 6675's
  // cwnd - pipe rule sent 0 segments for the next 8 ACKs, then one per ACK.
  assert.deepEqual(sent.slice(0, 15), [1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  assert.ok(sent.every((n) => n <= 1), `never a burst: ${sent.join(',')}`);
  assert.equal(h.tcp.counters.sackRecoveries, 1);
  // The full ACK ends recovery with cwnd = ssthresh (RFC 6937 §3 "cwnd = ssthresh" on exit).
  peerAckTo(h, sport, s.tcb.sndMax);
  assert.equal(s.tcb.inRecovery, false);
  assert.equal(s.tcb.cc.cwnd, s.tcb.cc.ssthresh);
  void d0;
});

test('TCP_CORK (Linux): short segments wait for a full one; uncorking sends the rest at once', () => {
  const h = new TcpHarness();
  const { s } = openActive(h, { mss: 1000 });
  s.setCork(true);
  s.write(filler(300));
  h.none();
  s.write(filler(900));
  const full = h.one();
  assert.equal(full.data.length, 1000, 'a full segment leaves');
  s.write(filler(100));
  h.none();
  assert.equal(s.notSentLength, 300);
  s.setCork(false);
  const rest = h.one();
  assert.equal(rest.data.length, 300);
  assert.equal(rest.flags & PSH, PSH);
});

test('MSG_MORE (Linux): a write flagged "more" is held until the next write without it', () => {
  const h = new TcpHarness();
  const { s } = openActive(h, { mss: 1000 });
  s.setNoDelay(true);
  s.write(filler(40), true);
  s.write(filler(60), true);
  h.none();
  s.write(filler(10));
  const seg = h.one();
  assert.equal(seg.data.length, 110, 'the three writes leave as one segment');
});

test('TCP_NOTSENT_LOWAT (Linux): the socket is writable, and drains, only while fewer unsent bytes are queued', () => {
  const h = new TcpHarness({ 'net.inet.tcp.sendspace': 65536 });
  const { s, d0, sport } = openActive(h, { mss: 1000, wnd: 4000 });
  s.setNotSentLowat(5000);
  let drains = 0;
  s.onDrain = () => { drains++; };
  s.write(filler(20000));
  h.take(); // 4 segments fill the peer's window; 16000 bytes never sent
  assert.equal(s.notSentLength, 16000);
  assert.equal(s.writable, false, 'plenty of buffer space, but too much unsent');
  s.wantDrain = true; // what a poller (epoll EPOLLOUT, Node 'drain') asks for
  for (let acked = 4000; acked <= 16000; acked += 4000) {
    peerAckTo(h, sport, d0 + acked, { wnd: 4000 });
    h.take();
    if (s.notSentLength >= 5000) assert.equal(drains, 0, `no drain with ${s.notSentLength} unsent`);
  }
  assert.ok(s.notSentLength < 5000);
  assert.equal(drains, 1, 'drain once the unsent bytes fell below the mark');
  assert.equal(s.writable, true);
});

test('TCP_MAXSEG before connect (Linux user_mss): the SYN announces it and the connection uses no more', () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: 0xc6120001, rport: 80, mss: 800 });
  const syn = h.one();
  assert.equal(syn.mss, 800);
  h.inject({ sport: 80, dport: syn.sport, seq: PEER_ISN, ack: syn.seq + 1, flags: 0x12, mss: 1460 });
  h.take();
  assert.equal(s.maxSegment, 800);
  s.write(filler(2000));
  assert.deepEqual(h.take().map((x) => x.data.length), [800, 800], 'full segments of 800; Nagle holds the 400 left');
});

test('IP_TOS (Linux): every segment of the connection carries the TOS byte, the SYN included', () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: 0xc6120001, rport: 80, tos: 0xb8 });
  const syn = h.one();
  assert.equal(syn.tos, 0xb8);
  h.inject({ sport: 80, dport: syn.sport, seq: PEER_ISN, ack: syn.seq + 1, flags: 0x12, mss: 1000 });
  assert.equal(h.one().tos, 0xb8);
  s.setTos(0x23); // the ECN bits are not the application's
  s.write(filler(10));
  assert.equal(h.one().tos, 0x20);
});

test('TCP_INFO (Linux struct tcp_info): RTT, cwnd, retransmissions and byte counts are the connection\'s real values', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, rttMs: 40 });
  s.write(filler(3000));
  h.take();
  h.advance(40);
  peerAckTo(h, sport, d0 + 1000);
  h.advance(s.tcb.rtt.rto);
  const rx = h.take();
  assert.equal(rx[0]!.seq, d0 + 1000, 'a retransmission timeout');
  const i = s.info();
  assert.equal(i.state, 1);
  assert.equal(i.caState, 4, 'TCP_CA_Loss after the RTO');
  assert.equal(i.retransmits, 1);
  assert.equal(i.totalRetrans, 1);
  assert.equal(i.bytesRetrans, 1000);
  assert.equal(i.bytesSent, 3000);
  assert.equal(i.bytesAcked, 1000);
  assert.equal(i.rtt, 40_000, 'µs');
  assert.equal(i.sndCwnd, 1, 'the loss window, in segments');
  assert.equal(i.unacked, 2);
  assert.equal(i.sndMss, 1000);
  assert.equal(i.segsOut, 2 + 3 + 1, 'SYN, ACK, three data segments, one retransmission');
});
