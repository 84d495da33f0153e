import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, FIN, RST, SYN, URG, PEER_ISN, REMOTE, TcpHarness, filler, openActive, type Seg } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const P = PEER_ISN;

/** Active open against the scripted peer on port 80; returns the socket and SND.UNA's first data seq. */
const open = openActive;

function ackFrom(h: TcpHarness, sport: number, ack: number, extra: { wnd?: number; sack?: [number, number][]; seq?: number; data?: number; flags?: number } = {}): void {
  h.inject({ sport: 80, dport: sport, seq: extra.seq ?? P + 1, ack, flags: extra.flags ?? ACK, wnd: extra.wnd ?? 65535, sack: extra.sack, data: extra.data });
}

const seqs = (segs: Seg[]) => segs.map((s) => s.seq);

test('delayed ACK: once the quick-ACK budget is spent, one segment is acknowledged after 40 ms, two full segments at once', () => {
  const h = new TcpHarness();
  const { s, sport } = open(h, { mss: 1460 });
  // The connection starts in quick-ACK mode (tcp-linux.test.ts): spend the budget first.
  let q = P + 1;
  for (let i = 0; s.tcb.quickAcks > 0 || i === 0; i++) { h.inject({ sport: 80, dport: sport, seq: q, flags: ACK, data: 100 }); q += 100; h.one(); }
  h.inject({ sport: 80, dport: sport, seq: q, flags: ACK, data: 1460 });
  h.none();
  h.advance(39); h.none();
  h.advance(1);
  const a = h.one();
  assert.equal(a.ack, q + 1460);
  q += 1460;
  h.inject({ sport: 80, dport: sport, seq: q, flags: ACK, data: 1460 });
  h.none();
  h.inject({ sport: 80, dport: sport, seq: q + 1460, flags: ACK, data: 1460 });
  assert.equal(h.one().ack, q + 2920, 'every second full-sized segment is acknowledged at once');
  assert.equal(h.host.wheel.size, 0, 'no delayed-ACK timer left armed');
});

test('delacktime is a sysctl capped at 40 ms; delayed_ack=0 acknowledges every segment', () => {
  const h = new TcpHarness({ 'net.inet.tcp.delacktime': 10 });
  assert.throws(() => h.host.sysctl.set('net.inet.tcp.delacktime', 41), /<= 40/);
  const { sport } = open(h, { mss: 1460 });
  h.inject({ sport: 80, dport: sport, seq: P + 1, flags: ACK, data: 100 });
  h.advance(10);
  assert.equal(h.one().ack, P + 101);
  h.host.sysctl.set('net.inet.tcp.delayed_ack', 0);
  h.inject({ sport: 80, dport: sport, seq: P + 101, flags: ACK, data: 100 });
  assert.equal(h.one().ack, P + 201);
});

test('out-of-order data is acknowledged at once with SACK blocks, the most recent first', () => {
  const h = new TcpHarness();
  const { s, sport } = open(h, { mss: 1000, sackOk: true });
  h.inject({ sport: 80, dport: sport, seq: P + 1001, flags: ACK, data: 1000 });
  let a = h.one();
  assert.equal(a.ack, P + 1);
  assert.deepEqual(a.sack, [[P + 1001, P + 2001]]);
  h.inject({ sport: 80, dport: sport, seq: P + 3001, flags: ACK, data: 1000 });
  a = h.one();
  assert.deepEqual(a.sack, [[P + 3001, P + 4001], [P + 1001, P + 2001]]);
  h.inject({ sport: 80, dport: sport, seq: P + 2001, flags: ACK, data: 500 });
  a = h.one();
  assert.deepEqual(a.sack, [[P + 1001, P + 2501], [P + 3001, P + 4001]]);
  // Filling the first hole delivers everything up to the next one and ACKs at once.
  h.inject({ sport: 80, dport: sport, seq: P + 1, flags: ACK, data: 1000 });
  a = h.one();
  assert.equal(a.ack, P + 2501);
  assert.deepEqual(a.sack, [[P + 3001, P + 4001]]);
  assert.equal(s.readableLength, 2500);
});

test('the out-of-order queue is bounded by net.inet.tcp.reass.maxsegments', () => {
  const h = new TcpHarness({ 'net.inet.tcp.reass.maxsegments': 2 });
  const { s, sport } = open(h, { mss: 1000, sackOk: true });
  for (const k of [1, 3, 5]) h.inject({ sport: 80, dport: sport, seq: P + 1 + k * 1000, flags: ACK, data: 1000 });
  const acks = h.take();
  assert.equal(acks.length, 3);
  assert.deepEqual(acks[2]!.sack.length, 2);
  assert.equal(h.tcp.counters.rcvReassFull, 1);
  h.inject({ sport: 80, dport: sport, seq: P + 1, flags: ACK, data: 1000 });
  h.inject({ sport: 80, dport: sport, seq: P + 2001, flags: ACK, data: 1000 });
  assert.equal(s.readableLength, 4000, 'the dropped range (5) is not delivered');
  assert.equal(h.take().at(-1)!.ack, P + 4001);
});

test('urgent data is delivered in-band, in order', () => {
  const h = new TcpHarness({ 'net.inet.tcp.delayed_ack': 0 });
  const { s, sport } = open(h);
  h.inject({ sport: 80, dport: sport, seq: P + 1, flags: ACK | URG, urg: 3, data: new Uint8Array([1, 2, 3, 4]) });
  h.inject({ sport: 80, dport: sport, seq: P + 5, flags: ACK, data: new Uint8Array([5]) });
  assert.deepEqual([...s.read()!], [1, 2, 3, 4, 5]);
  assert.equal(h.tcp.counters.rcvUrgent, 1);
});

test('a full receive buffer advertises a zero window; reading sends a window update', () => {
  const h = new TcpHarness({ 'net.inet.tcp.recvspace': 4096, 'net.inet.tcp.delayed_ack': 0 });
  const { s, sport } = open(h, { mss: 1000 });
  for (let i = 0; i < 4; i++) h.inject({ sport: 80, dport: sport, seq: P + 1 + i * 1000, flags: ACK, data: 1000 });
  h.inject({ sport: 80, dport: sport, seq: P + 4001, flags: ACK, data: 96 });
  const acks = h.take();
  assert.equal(acks.at(-1)!.wnd, 0);
  // A zero-window probe is answered with the zero window and its byte is not taken.
  h.inject({ sport: 80, dport: sport, seq: P + 4097, flags: ACK, data: 1 });
  const pr = h.one();
  assert.equal(pr.ack, P + 4097); assert.equal(pr.wnd, 0);
  // Receiver SWS avoidance: reading 100 bytes does not reopen the window...
  s.read(100);
  h.none();
  // ...reading most of the buffer does.
  s.read(3000);
  const up = h.one();
  assert.equal(up.ack, P + 4097);
  assert.equal(up.wnd, 3100);
});

test('a read that frees a little of a large buffer sends no window update; a quarter of it, or a nearly closed window, does (FreeBSD rule)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.recvspace': 60_000, 'net.inet.tcp.delayed_ack': 0 });
  const { s, sport } = open(h, { mss: 1000 });
  const mss = s.tcb.rcvMss;
  let q = P + 1;
  const fill = (n: number) => { for (let i = 0; i < n; i += 1000) { h.inject({ sport: 80, dport: sport, seq: q, flags: ACK, data: 1000 }); q += 1000; } h.take(); };
  fill(40_000);
  assert.ok(4000 >= 2 * mss, `two of our segments (${mss} bytes) fit the first read`);
  // 20,000 left of the window: freeing 4,000 of a 60,000-byte buffer waits for the next ACK.
  s.read(4000);
  h.none();
  // A quarter of the buffer (15,000) freed since the last advertisement: worth a segment.
  s.read(12_000);
  const up = h.one();
  assert.equal(up.ack, q);
  assert.equal(up.wnd, 36_000);
  // The window nearly closed (3,000 left): a read of two segments that leaves it under an
  // eighth of the buffer (7,500) is announced at once, the sender being about to stall.
  fill(33_000);
  s.read(3000);
  const small = h.one();
  assert.equal(small.ack, q);
  assert.equal(small.wnd, 6000);
});

test('Nagle holds a small segment until the outstanding data is acknowledged; NODELAY sends at once', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  s.write(filler(100));
  assert.equal(h.one().data.length, 100);
  s.write(filler(50));
  h.none();
  ackFrom(h, sport, d0 + 100);
  const d = h.one();
  assert.equal(d.seq, d0 + 100); assert.equal(d.data.length, 50);
  s.setNoDelay(true);
  s.write(filler(10));
  assert.equal(h.one().data.length, 10);
});

test('sends no more than the initial window (10 segments), then grows on ACKs', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h, { mss: 1000 });
  s.write(filler(30000));
  const first = h.take();
  assert.equal(first.length, 10);
  assert.deepEqual(first.map((x) => x.data.length), Array(10).fill(1000));
  ackFrom(h, sport, d0 + 2000);
  assert.equal(h.take().length, 4, 'slow start: two segments acknowledged, four sent');
});

test('respects the peer window and probes a zero window with backoff', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h, { mss: 1000, wnd: 2000 });
  s.write(filler(5000));
  assert.deepEqual(seqs(h.take()), [d0, d0 + 1000]);
  ackFrom(h, sport, d0 + 2000, { wnd: 0 });
  h.none();
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    h.advanceToNextTimer();
    const p = h.one();
    assert.equal(p.seq, d0 + 2000); assert.equal(p.data.length, 1, 'one byte past the window');
    times.push(p.time);
    ackFrom(h, sport, d0 + 2000, { wnd: 0 });
    h.none();
  }
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  assert.ok(gaps[1]! >= 2 * gaps[0]! - 1 && gaps[2]! >= 2 * gaps[1]! - 1, `probe intervals double: ${gaps}`);
  ackFrom(h, sport, d0 + 2000, { wnd: 10000 });
  const burst = h.take();
  assert.equal(burst[0]!.seq, d0 + 2000);
  assert.equal(burst.reduce((n, x) => n + x.data.length, 0), 3000);
});

test('RTO: retransmits after the RTO and backs off exponentially; Karn keeps the backoff', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h, { mss: 1000, rttMs: 50 });
  const rto = s.tcb.rtt.rto;
  assert.equal(rto, 250, "Linux's RTO = SRTT 50 + max(4*RTTVAR 100, rexmit_min 200)");
  s.write(filler(1000));
  const t0 = h.one().time;
  const at: number[] = [];
  for (let i = 0; i < 3; i++) { h.advance(250 * (1 << i)); const r = h.one(); assert.equal(r.seq, d0); at.push(r.time - t0); }
  assert.deepEqual(at, [250, 750, 1750]);
  assert.equal(s.tcb.cc.cwnd, 1000, 'loss window after RTO');
  ackFrom(h, sport, d0 + 1000);
  assert.equal(s.tcb.rtt.rto, 2000, 'no RTT sample from a retransmitted segment; the backed-off RTO stays');
  s.write(filler(1000));
  const t1 = h.one().time;
  h.advance(1999); h.none();
  h.advance(1);
  assert.equal(h.one().time - t1, 2000);
});

test('fast retransmit on the third duplicate ACK, then NewReno partial ACK and recovery exit', () => {
  const h = new TcpHarness({ 'net.inet.tcp.sack.enable': 0 });
  const { s, d0, sport } = open(h, { mss: 1000 });
  s.write(filler(10000));
  assert.equal(h.take().length, 10);
  // Segments 0 and 3 lost: the peer acknowledges nothing new.
  ackFrom(h, sport, d0); ackFrom(h, sport, d0);
  h.none();
  ackFrom(h, sport, d0);
  const fr = h.one();
  assert.equal(fr.seq, d0); assert.equal(fr.data.length, 1000);
  assert.equal(s.tcb.cc.ssthresh, 5000);
  assert.equal(s.tcb.inRecovery, true);
  // Partial ACK (segment 0 repaired, 3 still missing): retransmit segment 3 at once.
  ackFrom(h, sport, d0 + 3000);
  const pr = h.one();
  assert.equal(pr.seq, d0 + 3000);
  assert.equal(s.tcb.inRecovery, true);
  ackFrom(h, sport, d0 + 10000);
  assert.equal(s.tcb.inRecovery, false);
  assert.equal(s.tcb.cc.cwnd, 5000, 'cwnd deflated to ssthresh');
  assert.equal(h.tcp.counters.fastRetransmits, 1);
});

test('limited transmit sends one new segment for each of the first two duplicate ACKs', () => {
  const h = new TcpHarness({ 'net.inet.tcp.sack.enable': 0 });
  const { s, d0, sport } = open(h, { mss: 1000 });
  s.write(filler(12000));
  assert.equal(h.take().length, 10);
  ackFrom(h, sport, d0);
  assert.deepEqual(seqs(h.take()), [d0 + 10000]);
  ackFrom(h, sport, d0);
  assert.deepEqual(seqs(h.take()), [d0 + 11000]);
});

test('SACK recovery retransmits exactly the holes, never SACKed data', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h, { mss: 1000, sackOk: true });
  s.write(filler(10000));
  assert.equal(h.take().length, 10);
  const S = (k: number) => d0 + k * 1000;
  const rexmits: number[] = [];
  // Segments 0 and 4 lost; 1-3 then 5-9 arrive.
  for (const k of [1, 2, 3]) {
    ackFrom(h, sport, d0, { sack: [[S(1), S(k + 1)]] });
    for (const x of h.take()) rexmits.push(x.seq);
  }
  assert.deepEqual(rexmits, [S(0)]);
  assert.equal(h.tcp.counters.sackRecoveries, 1);
  for (const k of [5, 6, 7, 8, 9]) {
    ackFrom(h, sport, d0, { sack: [[S(5), S(k + 1)], [S(1), S(4)]] });
    for (const x of h.take()) rexmits.push(x.seq);
  }
  assert.deepEqual(rexmits, [S(0), S(4)]);
  ackFrom(h, sport, S(4), { sack: [[S(5), S(10)]] });
  ackFrom(h, sport, S(10));
  assert.equal(s.tcb.inRecovery, false);
  assert.equal(s.tcb.sndUna, S(10));
});

test('keepalive: probes after the idle time, then every interval, then ETIMEDOUT with a RST', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  let err: string | undefined;
  s.onClose = (e) => { err = e?.code; };
  s.setKeepAlive(true, 10_000, 1_000, 3);
  h.advance(9_999); h.none();
  h.advance(1);
  const p = h.one();
  assert.equal(p.seq, d0 - 1); assert.equal(p.data.length, 0); assert.equal(p.flags, ACK);
  // An answer resets the count and the idle time.
  ackFrom(h, sport, d0);
  h.advance(9_999); h.none();
  h.advance(1); h.one();
  h.advance(1000); h.one();
  h.advance(1000); h.one();
  h.advance(1000);
  const r = h.one();
  assert.equal(r.flags, RST);
  assert.equal(err, 'ETIMEDOUT');
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('user timeout: unacknowledged data for longer than the limit ends with ETIMEDOUT', () => {
  const h = new TcpHarness();
  const { s } = open(h);
  let err: string | undefined;
  s.onClose = (e) => { err = e?.code; };
  s.setUserTimeout(3000);
  s.write(filler(10));
  h.take();
  h.advance(2000);
  assert.equal(err, undefined);
  h.advance(10_000);
  assert.equal(err, 'ETIMEDOUT');
  assert.equal(h.host.wheel.size, 0);
});

test('data after close() is answered with a reset', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  s.close();
  assert.equal(h.one().flags, FIN | ACK);
  ackFrom(h, sport, d0 + 1, { data: 10 });
  const r = h.one();
  assert.equal(r.flags, RST);
  assert.equal(h.tcp.activeTcbs, 0);
});

test('an orphaned FIN_WAIT_2 connection times out (net.inet.tcp.finwait2_timeout)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.finwait2_timeout': 5000 });
  const { s, d0, sport } = open(h);
  s.close();
  h.take();
  ackFrom(h, sport, d0 + 1);
  assert.equal(s.state, 'FIN_WAIT_2');
  h.advance(5000);
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('SYN cookies when the SYN queue overflows: the final ACK creates the connection with WS and SACK preserved', () => {
  const h = new TcpHarness({ 'net.inet.tcp.syn_backlog': 1 });
  const l = h.tcp.listen({ port: 80 });
  h.peerPort = 1111;
  h.inject({ seq: 100, flags: SYN, mss: 1460 });
  h.one();
  assert.equal(h.tcp.activeTcbs, 1);
  h.peerPort = 2222;
  h.inject({ seq: 900, flags: SYN, mss: 1400, wscale: 5, sackOk: true });
  const c = h.one();
  assert.equal(c.flags, SYN | ACK);
  assert.equal(c.ack, 901);
  assert.equal(c.wscale, 7); assert.equal(c.sackOk, true); assert.equal(c.mss, 1460);
  assert.equal(h.tcp.activeTcbs, 1, 'no state kept for the cookie SYN');
  assert.equal(h.tcp.counters.synCookiesSent, 1);
  let sock: TcpSocket | null = null;
  l.onConnection = (x) => { sock = x; };
  h.inject({ seq: 901, ack: c.seq + 1, flags: ACK, wnd: 100, data: filler(5) });
  assert.ok(sock);
  const t = (sock as TcpSocket).tcb;
  assert.equal(t.state, 4);
  assert.equal(t.sndWscale, 5);
  assert.equal(t.sndWnd, 100 << 5);
  assert.equal(t.sackOk, true);
  assert.equal(t.mss, 1400);
  assert.equal((sock as TcpSocket).readableLength, 5);
  assert.equal(h.tcp.counters.synCookiesReceived, 1);
});

test('syncookies=2 answers every SYN with a cookie; a forged cookie ACK draws a reset', () => {
  const h = new TcpHarness({ 'net.inet.tcp.syncookies': 2 });
  h.tcp.listen({ port: 80 });
  h.inject({ seq: 900, flags: SYN, mss: 1460 });
  const c = h.one();
  assert.equal(h.tcp.activeTcbs, 0);
  h.inject({ seq: 901, ack: c.seq + 2, flags: ACK });
  const r = h.one();
  assert.equal(r.flags, RST);
  assert.equal(h.tcp.counters.synCookiesFailed, 1);
  h.inject({ seq: 901, ack: c.seq + 1, flags: ACK });
  assert.equal(h.tcp.activeTcbs, 1);
});

test('ephemeral ports: two connections to the same peer get different local ports', () => {
  const h = new TcpHarness();
  const a = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const b = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  assert.notEqual(a.localPort, b.localPort);
  assert.throws(() => h.tcp.connect({ raddr: REMOTE, rport: 80, lport: a.localPort }), { code: 'EADDRINUSE' });
  assert.throws(() => { h.tcp.listen({ port: 80 }); h.tcp.listen({ port: 80 }); }, { code: 'EADDRINUSE' });
});

test('checksum offload leaves the pseudo-header sum for the device (Csum.Partial)', () => {
  const h = new TcpHarness();
  h.host.offload = true;
  h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  assert.equal(syn.csumPartial, true);
  assert.equal(syn.csumOk, true);
});

test('tail loss probe (RFC 8985): the last segments lost -> the last one probed at 2*SRTT, its SACK starts recovery, no RTO', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h, { mss: 1000, sackOk: true, rttMs: 50 });
  const S = (k: number) => d0 + k * 1000;
  s.write(filler(5000));
  assert.deepEqual(seqs(h.take()), [S(0), S(1), S(2), S(3), S(4)]);
  h.advance(50);
  ackFrom(h, sport, S(3)); // 3 and 4 are lost
  h.take();
  h.advance(99); h.none();
  h.advance(1);
  const probe = h.one();
  assert.equal(probe.seq, S(4), 'the most recently sent segment');
  assert.equal(probe.data.length, 1000);
  assert.equal(h.tcp.counters.tlpProbes, 1);
  // The probe's SACK: segment 3, sent before it a probe timeout ago, is lost.
  h.advance(50);
  ackFrom(h, sport, S(3), { sack: [[S(4), S(5)]] });
  assert.deepEqual(seqs(h.take()), [S(3)]);
  assert.equal(h.tcp.counters.tlpRecoveries, 1);
  ackFrom(h, sport, S(5));
  assert.equal(s.tcb.sndUna, S(5));
  assert.equal(s.tcb.inRecovery, false);
  assert.equal(h.tcp.counters.rexmtTimeouts, 0, 'no retransmission timeout');
});

test('tail loss probe: when the originals were only late, the D-SACK of the probe leaves cwnd alone', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h, { mss: 1000, sackOk: true, rttMs: 50 });
  const S = (k: number) => d0 + k * 1000;
  s.write(filler(5000));
  h.take();
  h.advance(50);
  ackFrom(h, sport, S(3));
  const cwnd = s.tcb.cc.cwnd;
  h.advance(100);
  assert.equal(h.one().seq, S(4), 'the probe');
  ackFrom(h, sport, S(5)); // the late originals
  ackFrom(h, sport, S(5), { sack: [[S(4), S(5)]] }); // the probe, reported as a duplicate
  assert.ok(s.tcb.cc.cwnd >= cwnd, `cwnd ${s.tcb.cc.cwnd} not reduced from ${cwnd}`);
  assert.equal(h.tcp.counters.tlpRecoveries, 0);
  assert.equal(s.tcb.tlpHigh, -1);
});

test('tail loss probe: a probe that repaired the tail (no D-SACK) reduces cwnd once; tlp=0 waits for the RTO', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h, { mss: 1000, sackOk: true, rttMs: 50 });
  const S = (k: number) => d0 + k * 1000;
  s.write(filler(5000));
  h.take();
  h.advance(50);
  ackFrom(h, sport, S(3)); // segment 4 is lost
  const cwnd = s.tcb.cc.cwnd;
  h.advance(100);
  assert.equal(h.one().seq, S(4));
  ackFrom(h, sport, S(5)); // segment 3 and the probe: exactly the probe's end, wait for more
  assert.equal(h.tcp.counters.tlpRecoveries, 0);
  s.write(filler(1000));
  assert.deepEqual(seqs(h.take()), [S(5)]);
  ackFrom(h, sport, S(6)); // past the probe, no D-SACK: the probe repaired a loss
  assert.equal(h.tcp.counters.tlpRecoveries, 1);
  assert.ok(s.tcb.cc.cwnd < cwnd, `cwnd ${s.tcb.cc.cwnd} reduced from ${cwnd}`);

  const h2 = new TcpHarness({ 'net.inet.tcp.tlp': false });
  const o2 = open(h2, { mss: 1000, sackOk: true, rttMs: 50 });
  o2.s.write(filler(3000));
  h2.take();
  h2.advance(50);
  ackFrom(h2, o2.sport, o2.d0 + 1000);
  h2.advance(249); h2.none();
  h2.advance(1);
  assert.equal(h2.one().seq, o2.d0 + 1000);
  assert.equal(h2.tcp.counters.rexmtTimeouts, 1);
  assert.equal(h2.tcp.counters.tlpProbes, 0);
});
