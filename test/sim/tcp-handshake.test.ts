import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, FIN, LOCAL, PSH, REMOTE, RST, SYN, TcpHarness, filler } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const PEER_ISN = 1000;

/** Passive open with a full-featured SYN; returns the accepted socket and our ISS. */
function passiveOpen(h: TcpHarness, synOpts: { mss?: number; wscale?: number; sackOk?: boolean; ts?: [number, number] } = { mss: 1460, wscale: 7, sackOk: true, ts: [100, 0] }) {
  const l = h.tcp.listen({ port: 80 });
  let sock: TcpSocket | null = null;
  l.onConnection = (s) => { sock = s; };
  h.inject({ seq: PEER_ISN, flags: SYN, wnd: 65535, ...synOpts });
  const synAck = h.one();
  const tsAck: [number, number] | undefined = synOpts.ts && synAck.ts ? [101, synAck.ts[0]] : undefined;
  h.inject({ seq: PEER_ISN + 1, ack: synAck.seq + 1, flags: ACK, wnd: 1000, ts: tsAck });
  h.none();
  assert.ok(sock, 'connection accepted');
  return { l, sock: sock as TcpSocket, iss: synAck.seq, synAck };
}

test('passive open: SYN-ACK carries MSS, WS, SACK-OK and TS when the SYN offered them', () => {
  const h = new TcpHarness();
  const { synAck, sock, iss } = passiveOpen(h);
  assert.equal(synAck.flags, SYN | ACK);
  assert.equal(synAck.ack, PEER_ISN + 1);
  assert.equal(synAck.src, LOCAL); assert.equal(synAck.dst, REMOTE);
  assert.equal(synAck.sport, 80); assert.equal(synAck.dport, 40000);
  assert.equal(synAck.mss, 1460);
  assert.equal(synAck.wscale, 7, 'a receive buffer autotuned up to recvbuf_max (6 MiB) needs a shift of 7, as Linux offers');
  assert.equal(synAck.sackOk, true);
  assert.ok(synAck.ts);
  assert.equal(synAck.ts![1], 100, 'TSecr echoes the SYN TSval');
  assert.equal(synAck.csumOk, true);
  assert.equal(sock.state, 'ESTABLISHED');
  assert.equal(sock.tcb.iss, iss);
});

test('no options in the SYN-ACK that the SYN did not offer', () => {
  const h = new TcpHarness();
  h.tcp.listen({ port: 80 });
  h.inject({ seq: PEER_ISN, flags: SYN, mss: 1200 });
  const s = h.one();
  assert.equal(s.flags, SYN | ACK);
  assert.equal(s.mss, 1460, 'MSS is always sent');
  assert.equal(s.wscale, -1);
  assert.equal(s.sackOk, false);
  assert.equal(s.ts, null);
  assert.equal(s.hl, 24);
  assert.ok(s.wnd <= 65535);
});

test('MSS is clamped to the route MTU', () => {
  const h = new TcpHarness();
  h.host.mtu = 1280;
  h.tcp.listen({ port: 80 });
  h.inject({ seq: PEER_ISN, flags: SYN, mss: 1460 });
  assert.equal(h.one().mss, 1240);
  const conn = h.tcp.connections()[0]!;
  assert.equal(conn.mss, 1240, 'our send MSS is the smaller of the peer MSS and the route');
});

test('active open: SYN offers MSS, WS, SACK-OK and TS; the ACK completes the handshake', async () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  let connected = 0;
  s.onConnect = () => connected++;
  const syn = h.one();
  assert.equal(syn.flags, SYN);
  assert.equal(syn.ack, 0);
  assert.equal(syn.dport, 80);
  assert.ok(syn.sport >= 49152);
  assert.equal(syn.mss, 1460);
  assert.equal(syn.wscale, 7);
  assert.equal(syn.sackOk, true);
  assert.ok(syn.ts && syn.ts[1] === 0);
  assert.equal(s.state, 'SYN_SENT');
  h.peerPort = 80;
  h.inject({ sport: 80, dport: syn.sport, seq: 5000, ack: syn.seq + 1, flags: SYN | ACK, mss: 1000, wscale: 2, sackOk: true, ts: [77, syn.ts![0]] });
  const ack = h.one();
  assert.equal(ack.flags, ACK);
  assert.equal(ack.seq, syn.seq + 1);
  assert.equal(ack.ack, 5001);
  assert.deepEqual(ack.ts![1], 77);
  assert.equal(s.state, 'ESTABLISHED');
  assert.equal(connected, 1);
  assert.equal(s.tcb.mss, 1000);
  assert.equal(s.tcb.sndWscale, 2);
  await s.connected();
});

test('window scale is used only when both SYNs carried it', () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  h.inject({ sport: 80, dport: syn.sport, seq: 5000, ack: syn.seq + 1, flags: SYN | ACK, mss: 1460 });
  const ack = h.one();
  assert.equal(s.tcb.wsOk, false);
  assert.equal(s.tcb.rcvWscale, 0);
  assert.equal(ack.ts, null, 'no timestamps when the SYN-ACK had none');
  assert.ok(ack.wnd > 0 && ack.wnd <= 65535);
});

test('retransmits the SYN after 1 s, then 2 s, then gives up with ETIMEDOUT', () => {
  const h = new TcpHarness({ 'net.inet.tcp.syn_retries': 3 });
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  let err: string | undefined;
  s.onClose = (e) => { err = e?.code; };
  const t0 = h.now;
  const syn = h.one();
  h.advance(999); h.none();
  h.advance(1);
  const r1 = h.one();
  assert.equal(r1.flags, SYN); assert.equal(r1.seq, syn.seq); assert.equal(r1.time - t0, 1000);
  h.advance(1999); h.none();
  h.advance(1);
  assert.equal(h.one().time - t0, 3000);
  h.advance(4000);
  assert.equal(h.one().time - t0, 7000);
  h.advance(8000);
  h.none();
  assert.equal(err, 'ETIMEDOUT');
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('connect to a closed port: RST,ACK gives ECONNREFUSED', async () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 81 });
  const syn = h.one();
  h.inject({ sport: 81, dport: syn.sport, seq: 0, ack: syn.seq + 1, flags: RST | ACK, wnd: 0 });
  await assert.rejects(s.connected(), { code: 'ECONNREFUSED' });
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('SYN-SENT: an ACK for something never sent draws <SEQ=SEG.ACK><CTL=RST>', () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  h.inject({ sport: 80, dport: syn.sport, seq: 9, ack: syn.seq + 100, flags: SYN | ACK });
  const r = h.one();
  assert.equal(r.flags, RST); assert.equal(r.seq, syn.seq + 100);
  assert.equal(s.state, 'SYN_SENT');
});

test('RST to a closed port, both RFC 9293 §3.10.7.1 forms', () => {
  const h = new TcpHarness();
  // ACK bit off: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
  h.inject({ dport: 9, seq: 500, flags: SYN });
  let r = h.one();
  assert.equal(r.flags, RST | ACK); assert.equal(r.seq, 0); assert.equal(r.ack, 501);
  h.inject({ dport: 9, seq: 500, flags: FIN, data: 10 });
  r = h.one();
  assert.equal(r.flags, RST | ACK); assert.equal(r.ack, 511);
  // ACK bit on: <SEQ=SEG.ACK><CTL=RST>
  h.inject({ dport: 9, seq: 500, ack: 12345, flags: ACK, data: 5 });
  r = h.one();
  assert.equal(r.flags, RST); assert.equal(r.seq, 12345); assert.equal(r.ack, 0);
  // and never a reset for a reset
  h.inject({ dport: 9, seq: 500, flags: RST });
  h.none();
  assert.equal(h.tcp.counters.rcvNoSocket, 4);
});

test('segments with a bad checksum, data offset or options are counted and dropped', () => {
  const h = new TcpHarness();
  h.tcp.listen({ port: 80 });
  h.inject({ seq: 1, flags: SYN, badChecksum: true });
  h.inject({ seq: 1, flags: SYN, rawOptions: [2, 4, 5, 180, 30, 1, 0, 0] });
  h.none();
  assert.equal(h.tcp.counters.rcvBadChecksum, 1);
  assert.equal(h.tcp.counters.rcvBadOptions, 1);
  assert.equal(h.tcp.activeTcbs, 0);
});

test('LISTEN: an ACK draws a reset, a RST is ignored', () => {
  const h = new TcpHarness({ 'net.inet.tcp.syncookies': 0 });
  h.tcp.listen({ port: 80 });
  h.inject({ seq: 1, ack: 777, flags: ACK });
  const r = h.one();
  assert.equal(r.flags, RST); assert.equal(r.seq, 777);
  h.inject({ seq: 1, flags: RST });
  h.none();
});

test('simultaneous open: SYN crosses SYN, both go through SYN_RECEIVED', () => {
  const h = new TcpHarness();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80, lport: 5555 });
  const syn = h.one();
  h.inject({ sport: 80, dport: 5555, seq: 7000, flags: SYN, mss: 1460 });
  const synAck = h.one();
  assert.equal(synAck.flags, SYN | ACK);
  assert.equal(synAck.seq, syn.seq);
  assert.equal(synAck.ack, 7001);
  assert.equal(s.state, 'SYN_RECEIVED');
  h.inject({ sport: 80, dport: 5555, seq: 7000, ack: syn.seq + 1, flags: SYN | ACK, mss: 1460 });
  // Our SYN,ACK crossed theirs: their SYN,ACK is a duplicate SYN for us; their ACK establishes.
  h.take();
  h.inject({ sport: 80, dport: 5555, seq: 7001, ack: syn.seq + 1, flags: ACK });
  assert.equal(s.state, 'ESTABLISHED');
});

test('data both ways, then half-close from us; the peer keeps sending until its FIN', () => {
  const h = new TcpHarness({ 'net.inet.tcp.delayed_ack': 0 });
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  const got: number[] = [];
  let ended = false;
  sock.onData = () => { const d = sock.read(); if (d) got.push(...d); };
  sock.onEnd = () => { ended = true; };
  h.inject({ seq: PEER_ISN + 1, ack: iss + 1, flags: ACK | 8, data: filler(100), wnd: 1000 });
  const a = h.one();
  assert.equal(a.flags, ACK); assert.equal(a.ack, PEER_ISN + 101);
  assert.equal(got.length, 100);
  assert.equal(sock.write(new Uint8Array([1, 2, 3])), 3);
  const d = h.one();
  assert.equal(d.flags, ACK | 8); assert.deepEqual([...d.data], [1, 2, 3]); assert.equal(d.seq, iss + 1);
  sock.shutdown();
  const f = h.one();
  assert.equal(f.flags, FIN | ACK); assert.equal(f.seq, iss + 4);
  assert.equal(sock.state, 'FIN_WAIT_1');
  h.inject({ seq: PEER_ISN + 101, ack: iss + 5, flags: ACK, data: filler(10), wnd: 1000 });
  assert.equal(sock.state, 'FIN_WAIT_2');
  assert.equal(h.one().ack, PEER_ISN + 111);
  assert.throws(() => sock.write(new Uint8Array(1)), { code: 'EPIPE' });
  h.inject({ seq: PEER_ISN + 111, ack: iss + 5, flags: FIN | ACK, wnd: 1000 });
  const last = h.one();
  assert.equal(last.flags, ACK); assert.equal(last.ack, PEER_ISN + 112);
  assert.equal(sock.state, 'TIME_WAIT');
  assert.equal(ended, true);
  assert.equal(got.length, 110);
});

test('TIME_WAIT lasts 2*MSL, then the connection is gone with no timers left', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': 1000 });
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  let closed = 0;
  sock.onClose = () => closed++;
  sock.close();
  const f = h.one();
  assert.equal(f.flags, FIN | ACK);
  h.inject({ seq: PEER_ISN + 1, ack: iss + 2, flags: FIN | ACK });
  assert.equal(h.one().ack, PEER_ISN + 2);
  assert.equal(sock.state, 'TIME_WAIT');
  assert.equal(closed, 1);
  h.advance(1999);
  assert.equal(h.tcp.activeTcbs, 1);
  // A retransmitted FIN in TIME_WAIT is acknowledged and restarts the 2*MSL timer.
  h.inject({ seq: PEER_ISN + 1, ack: iss + 2, flags: FIN | ACK });
  assert.equal(h.one().ack, PEER_ISN + 2);
  h.advance(1999);
  assert.equal(h.tcp.activeTcbs, 1);
  h.advance(1);
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(sock.state, 'CLOSED');
  assert.equal(h.host.wheel.size, 0);
});

test('passive close: CLOSE_WAIT -> LAST_ACK -> CLOSED', () => {
  const h = new TcpHarness();
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  let ended = 0; let closed = 0;
  sock.onEnd = () => ended++;
  sock.onClose = (e) => { assert.equal(e, undefined); closed++; };
  h.inject({ seq: PEER_ISN + 1, ack: iss + 1, flags: FIN | ACK });
  assert.equal(h.one().ack, PEER_ISN + 2);
  assert.equal(sock.state, 'CLOSE_WAIT');
  assert.equal(ended, 1);
  sock.close();
  const f = h.one();
  assert.equal(f.flags, FIN | ACK);
  assert.equal(sock.state, 'LAST_ACK');
  h.inject({ seq: PEER_ISN + 2, ack: iss + 2, flags: ACK });
  assert.equal(sock.state, 'CLOSED');
  assert.equal(closed, 1);
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('simultaneous close: FIN crosses FIN, CLOSING -> TIME_WAIT', () => {
  const h = new TcpHarness();
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  sock.shutdown();
  assert.equal(h.one().flags, FIN | ACK);
  h.inject({ seq: PEER_ISN + 1, ack: iss + 1, flags: FIN | ACK });
  assert.equal(sock.state, 'CLOSING');
  assert.equal(h.one().ack, PEER_ISN + 2);
  h.inject({ seq: PEER_ISN + 2, ack: iss + 2, flags: ACK });
  assert.equal(sock.state, 'TIME_WAIT');
});

test('close() with unread data sends RST (Linux/FreeBSD behaviour)', () => {
  const h = new TcpHarness();
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  h.inject({ seq: PEER_ISN + 1, ack: iss + 1, flags: ACK, data: 10 });
  h.take();
  sock.close();
  const r = h.one();
  assert.equal(r.flags, RST); assert.equal(r.seq, iss + 1);
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('abort() sends <SEQ=SND.NXT><CTL=RST> and frees everything', () => {
  const h = new TcpHarness();
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  sock.write(filler(50));
  h.take();
  sock.abort();
  const r = h.one();
  assert.equal(r.flags, RST); assert.equal(r.seq, iss + 51);
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('an exact RST resets the connection with ECONNRESET', () => {
  const h = new TcpHarness();
  const { sock } = passiveOpen(h, { mss: 1460 });
  let err: string | undefined;
  sock.onClose = (e) => { err = e?.code; };
  h.inject({ seq: PEER_ISN + 1, flags: RST });
  h.none();
  assert.equal(err, 'ECONNRESET');
  assert.equal(h.tcp.activeTcbs, 0);
});

test('challenge ACK for an in-window RST and for a SYN (RFC 5961); out-of-window RST ignored', () => {
  const h = new TcpHarness();
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  h.inject({ seq: PEER_ISN + 100, flags: RST });
  const c = h.one();
  assert.equal(c.flags, ACK); assert.equal(c.seq, iss + 1); assert.equal(c.ack, PEER_ISN + 1);
  assert.equal(sock.state, 'ESTABLISHED');
  h.inject({ seq: PEER_ISN + 10_000_000, flags: RST });
  h.none();
  h.inject({ seq: PEER_ISN + 50, flags: SYN });
  const c2 = h.one();
  assert.equal(c2.flags, ACK); assert.equal(c2.ack, PEER_ISN + 1);
  assert.equal(sock.state, 'ESTABLISHED');
  assert.equal(h.tcp.counters.sndChallengeAcks, 2);
});

test('challenge ACKs are rate limited per second', () => {
  const h = new TcpHarness({ 'net.inet.tcp.challenge_ack_limit': 2 });
  passiveOpen(h, { mss: 1460 });
  for (let i = 0; i < 5; i++) h.inject({ seq: PEER_ISN + 100 + i, flags: RST });
  assert.equal(h.take().length, 2);
  h.advance(1000);
  h.inject({ seq: PEER_ISN + 100, flags: RST });
  assert.equal(h.take().length, 1);
  assert.equal(h.tcp.counters.challengeAckLimited, 3);
});

test('an ACK for data never sent draws a challenge ACK and is dropped (RFC 5961 §5)', () => {
  const h = new TcpHarness();
  const { sock, iss } = passiveOpen(h, { mss: 1460 });
  h.inject({ seq: PEER_ISN + 1, ack: iss + 1000, flags: ACK, data: 5 });
  const c = h.one();
  assert.equal(c.ack, PEER_ISN + 1, 'the data was not taken');
  assert.equal(sock.readableLength, 0);
});

test('PAWS: a segment with an old timestamp is dropped and acknowledged', () => {
  const h = new TcpHarness();
  const { sock, iss } = passiveOpen(h);
  h.inject({ seq: PEER_ISN + 1, ack: iss + 1, flags: ACK, data: 10, ts: [200, 0] });
  h.take();
  assert.equal(sock.readableLength, 10);
  h.inject({ seq: PEER_ISN + 11, ack: iss + 1, flags: ACK, data: 10, ts: [150, 0] });
  const a = h.one();
  assert.equal(a.ack, PEER_ISN + 11);
  assert.equal(sock.readableLength, 10);
  assert.equal(h.tcp.counters.rcvPawsDropped, 1);
});

test('a retransmitted SYN in SYN_RECEIVED gets the same SYN-ACK again', () => {
  const h = new TcpHarness();
  h.tcp.listen({ port: 80 });
  h.inject({ seq: PEER_ISN, flags: SYN, mss: 1460 });
  const a = h.one();
  h.inject({ seq: PEER_ISN, flags: SYN, mss: 1460 });
  const b = h.one();
  assert.equal(b.flags, SYN | ACK); assert.equal(b.seq, a.seq); assert.equal(b.ack, a.ack);
  assert.equal(h.tcp.activeTcbs, 1);
});

test('the SYN-ACK is retransmitted with backoff, and the half-open connection expires', () => {
  const h = new TcpHarness({ 'net.inet.tcp.syn_retries': 2, 'net.inet.tcp.syncookies': 0 });
  h.tcp.listen({ port: 80 });
  h.inject({ seq: PEER_ISN, flags: SYN, mss: 1460 });
  const t0 = h.now;
  h.one();
  h.advance(1000); assert.equal(h.one().time - t0, 1000);
  h.advance(2000); assert.equal(h.one().time - t0, 3000);
  h.advance(4000); h.none();
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('accept() resolves with queued connections; listener close resets the unaccepted', async () => {
  const h = new TcpHarness();
  const l = h.tcp.listen({ port: 80, backlog: 4 });
  for (let i = 0; i < 2; i++) {
    h.peerPort = 41000 + i;
    h.inject({ seq: PEER_ISN, flags: SYN, mss: 1460 });
    const sa = h.one();
    h.inject({ seq: PEER_ISN + 1, ack: sa.seq + 1, flags: ACK });
  }
  assert.equal(l.pending, 2);
  const s = await l.accept();
  assert.equal(s.remotePort, 41000);
  assert.equal(s.state, 'ESTABLISHED');
  l.close();
  const rst = h.one();
  assert.equal(rst.flags, RST); assert.equal(rst.dport, 41001);
  assert.equal(h.tcp.activeTcbs, 1);
  await assert.rejects(l.accept(), { code: 'ECONNABORTED' });
});

test('a full accept queue drops the handshake ACK and keeps the connection in SYN_RECEIVED (Linux tcp_abort_on_overflow = 0): no RST; the SYN-ACK is retransmitted and the next ACK gets in once there is room', async () => {
  const h = new TcpHarness();
  const l = h.tcp.listen({ port: 80, backlog: 1 });
  // Two SYNs while the queue is empty (both answered), then both handshakes complete.
  const synAcks: number[] = [];
  for (let i = 0; i < 2; i++) {
    h.peerPort = 42000 + i;
    h.inject({ seq: PEER_ISN, flags: SYN, mss: 1460 });
    synAcks.push(h.one().seq);
  }
  for (let i = 0; i < 2; i++) {
    h.peerPort = 42000 + i;
    h.inject({ seq: PEER_ISN + 1, ack: synAcks[i]! + 1, flags: ACK });
  }
  h.none(); // no RST for the second
  assert.equal(l.pending, 1);
  assert.equal(h.tcp.counters.listenOverflows, 1);
  // Its request arrives: still no room, dropped without an answer.
  h.inject({ seq: PEER_ISN + 1, ack: synAcks[1]! + 1, flags: ACK | PSH, data: new Uint8Array(10) });
  h.none();
  assert.equal(l.pending, 1);
  // The application accepts the first: room. The SYN-ACK retransmission comes; the peer's ACK gets in.
  const first = await l.accept();
  assert.equal(first.remotePort, 42000);
  h.advance(1500);
  const again = h.one();
  assert.equal(again.flags, SYN | ACK, 'the SYN-ACK retransmitted');
  assert.equal(again.seq, synAcks[1]);
  h.inject({ seq: PEER_ISN + 1, ack: synAcks[1]! + 1, flags: ACK });
  assert.equal(l.pending, 1);
  const second = await l.accept();
  assert.equal(second.remotePort, 42001);
  assert.equal(second.state, 'ESTABLISHED');
});
