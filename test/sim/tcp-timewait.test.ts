// TIME_WAIT as a compact entry (src/stack/tcp/timewait.ts): the TCB is freed on entry and the
// entry answers segments on its own. Scripted peer, exact segments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, FIN, REMOTE, RST, SYN, TcpHarness, fmt } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const PEER_ISN = 1000;
const MSL = 1000;

/**
 * Passive open with timestamps, then we close first and the peer's FIN arrives: the socket is
 * in TIME_WAIT. Returns the socket, our ISS, the last ACK we sent and the peer's last TSval.
 */
function intoTimeWait(h: TcpHarness, ts = true) {
  const l = h.tcp.listen({ port: 80 });
  let sock: TcpSocket | null = null;
  l.onConnection = (s) => { sock = s; };
  h.inject({ seq: PEER_ISN, flags: SYN, wnd: 65535, mss: 1460, wscale: 7, sackOk: true, ts: ts ? [100, 0] : undefined });
  const synAck = h.one();
  const iss = synAck.seq;
  h.inject({ seq: PEER_ISN + 1, ack: iss + 1, flags: ACK, wnd: 1000, ts: ts ? [101, synAck.ts![0]] : undefined });
  assert.ok(sock);
  const s = sock as TcpSocket;
  s.close();
  const fin = h.one();
  assert.equal(fin.flags, FIN | ACK);
  h.inject({ seq: PEER_ISN + 1, ack: iss + 2, flags: FIN | ACK, wnd: 1000, ts: ts ? [102, fin.ts![0]] : undefined });
  const last = h.one();
  assert.equal(last.flags, ACK);
  assert.equal(s.state, 'TIME_WAIT');
  return { l, sock: s, iss, last, peerTs: 102 };
}

test('entering TIME_WAIT frees the TCB: no connection, timer or buffer left but one entry and one shared timer', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock } = intoTimeWait(h);
  assert.equal(h.tcp.connections().length, 0, 'no full TCB in the table');
  assert.equal(h.tcp.timeWaitCount, 1);
  assert.equal(h.tcp.activeTcbs, 1, 'activeTcbs counts TIME_WAIT entries');
  assert.equal(h.host.wheel.size, 1, 'only the TIME_WAIT table timer is armed');
  assert.equal(sock.tcb.sndBuf.data.length + sock.tcb.rcvBuf.data.length, 0, 'rings returned');
  const [info] = h.tcp.connectionInfo();
  assert.deepEqual([info!.lport, info!.rport, info!.raddr, info!.stateName], [80, 40000, REMOTE, 'TIME_WAIT']);
  assert.equal(h.tcp.timeWaitEntries()[0]!.expires, h.now + 2 * MSL);
});

test('a retransmitted FIN is ACKed like the first time (SND.NXT, RCV.NXT, window, TS.Recent echoed) and restarts 2*MSL', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock, iss, last, peerTs } = intoTimeWait(h);
  h.advance(1500);
  h.inject({ seq: PEER_ISN + 1, ack: iss + 2, flags: FIN | ACK, wnd: 1000, ts: [150, last.ts![0]] });
  const a = h.one();
  assert.equal(a.flags, ACK);
  assert.equal(a.seq, iss + 2);
  assert.equal(a.ack, PEER_ISN + 2);
  assert.equal(a.wnd, last.wnd, 'the window of the last ACK');
  // The old FIN lies below RCV.NXT, so it does not update TS.Recent (RFC 7323 §4.3; Linux
  // echoes tw_ts_recent the same way).
  assert.deepEqual(a.ts, [last.ts![0] + 1500, peerTs], 'TSval keeps the connection offset; TSecr is TS.Recent');
  h.advance(1999);
  assert.equal(sock.state, 'TIME_WAIT', 'restarted: 2*MSL from the retransmitted FIN');
  h.advance(1);
  assert.equal(sock.state, 'CLOSED');
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('RST in TIME_WAIT (Linux behaviour): at RCV.NXT it ends the entry; elsewhere in the window a challenge ACK; outside it nothing', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock, iss } = intoTimeWait(h);
  h.inject({ seq: PEER_ISN + 1000, flags: RST });
  const c = h.one();
  assert.equal(c.flags, ACK); assert.equal(c.seq, iss + 2); assert.equal(c.ack, PEER_ISN + 2);
  assert.equal(h.tcp.counters.sndChallengeAcks, 1);
  h.inject({ seq: PEER_ISN + 50_000_000, flags: RST });
  h.none();
  assert.equal(sock.state, 'TIME_WAIT');
  h.inject({ seq: PEER_ISN + 2, flags: RST });
  h.none();
  assert.equal(sock.state, 'CLOSED');
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('PAWS in TIME_WAIT: a segment with an older timestamp is ACKed and dropped', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock, iss } = intoTimeWait(h);
  h.inject({ seq: PEER_ISN + 2, ack: iss + 2, flags: FIN | ACK, ts: [90, 0] });
  const a = h.one();
  assert.equal(a.ack, PEER_ISN + 2);
  assert.deepEqual(a.ts![1], 102, 'TSecr still the newest timestamp seen');
  assert.equal(h.tcp.counters.rcvPawsDropped, 1);
  // Not a restart: the entry still ends 2*MSL after the FIN that started it.
  h.advance(2 * MSL);
  assert.equal(sock.state, 'CLOSED');
});

test('data arriving in TIME_WAIT is acknowledged, not taken', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock, iss } = intoTimeWait(h);
  h.inject({ seq: PEER_ISN + 2, ack: iss + 2, flags: ACK, data: 10, ts: [103, 0] });
  const a = h.one();
  assert.equal(a.flags, ACK); assert.equal(a.ack, PEER_ISN + 2, 'RCV.NXT does not move');
  assert.equal(sock.readableLength, 0);
  // A bare ACK needs no answer.
  h.inject({ seq: PEER_ISN + 2, ack: iss + 2, flags: ACK, ts: [104, 0] });
  h.none();
});

test('an ACK for data never sent draws a challenge ACK in TIME_WAIT (RFC 5961 §5.2)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { iss } = intoTimeWait(h);
  h.inject({ seq: PEER_ISN + 2, ack: iss + 100, flags: ACK, ts: [103, 0] });
  assert.equal(h.one().ack, PEER_ISN + 2);
  assert.equal(h.tcp.counters.rcvAckTooMuch, 1);
});

test('a SYN with a newer timestamp reopens the 4-tuple through the listener, with an ISN above the old SND.NXT (RFC 6191)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { l, sock, iss } = intoTimeWait(h);
  let second: TcpSocket | null = null;
  l.onConnection = (s) => { second = s; };
  h.inject({ seq: PEER_ISN + 5, flags: SYN, wnd: 65535, mss: 1460, ts: [200, 0] });
  const sa = h.one();
  assert.equal(sa.flags, SYN | ACK, fmt(sa));
  assert.equal(sa.ack, PEER_ISN + 6);
  assert.ok(((sa.seq - (iss + 2)) | 0) > 0, `new ISN ${sa.seq} above the old SND.NXT ${iss + 2}`);
  assert.equal(sock.state, 'CLOSED', 'the old incarnation is gone');
  assert.equal(h.tcp.timeWaitCount, 0);
  h.inject({ seq: PEER_ISN + 6, ack: sa.seq + 1, flags: ACK, ts: [201, sa.ts![0]] });
  assert.ok(second);
  assert.equal((second as TcpSocket).state, 'ESTABLISHED');
});

test('a SYN with the same timestamp reopens only when its sequence number is higher (RFC 6191 §2)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { l, sock } = intoTimeWait(h);
  l.onConnection = () => {};
  // TS.Recent is 102 (the peer's FIN). Same timestamp, sequence number not beyond RCV.NXT: no.
  h.inject({ seq: PEER_ISN + 1, flags: SYN, wnd: 65535, mss: 1460, ts: [102, 0] });
  assert.equal(h.one().flags, ACK);
  assert.equal(sock.state, 'TIME_WAIT');
  // Same timestamp, higher sequence number: a new incarnation.
  h.inject({ seq: PEER_ISN + 50_000, flags: SYN, wnd: 65535, mss: 1460, ts: [102, 0] });
  const sa = h.one();
  assert.equal(sa.flags, SYN | ACK, fmt(sa));
  assert.equal(sock.state, 'CLOSED');
});

test('an old SYN (older timestamp) does not reopen: it is ACKed as PAWS-rejected and TIME_WAIT stays', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock, iss } = intoTimeWait(h);
  h.inject({ seq: PEER_ISN + 5, flags: SYN, wnd: 65535, mss: 1460, ts: [50, 0] });
  const a = h.one();
  assert.equal(a.flags, ACK); assert.equal(a.seq, iss + 2); assert.equal(a.ack, PEER_ISN + 2);
  assert.equal(sock.state, 'TIME_WAIT');
});

test('without timestamps a SYN reopens only when its sequence number is beyond RCV.NXT', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock, iss } = intoTimeWait(h, false);
  h.inject({ seq: PEER_ISN + 1, flags: SYN, wnd: 65535, mss: 1460 });
  const a = h.one();
  assert.equal(a.flags, ACK, 'an old SYN is answered with an ACK');
  assert.equal(sock.state, 'TIME_WAIT');
  h.inject({ seq: PEER_ISN + 100_000, flags: SYN, wnd: 65535, mss: 1460 });
  const sa = h.one();
  assert.equal(sa.flags, SYN | ACK);
  assert.ok(((sa.seq - (iss + 2 + 65536)) | 0) > 0, 'ISN beyond the old sequence space');
  assert.equal(sock.state, 'CLOSED');
});

test('abort() on a socket in TIME_WAIT ends the entry without a segment', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const { sock } = intoTimeWait(h);
  sock.abort();
  h.none();
  assert.equal(sock.state, 'CLOSED');
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

test('many entries expire in order, each 2*MSL after it started, from one timer', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  const socks: TcpSocket[] = [];
  for (let i = 0; i < 3; i++) {
    h.peerPort = 41000 + i;
    const l = h.tcp.listen({ port: 80 + i });
    let s: TcpSocket | null = null;
    l.onConnection = (x) => { s = x; };
    h.inject({ dport: 80 + i, seq: PEER_ISN, flags: SYN, mss: 1460 });
    const sa = h.one();
    h.inject({ dport: 80 + i, seq: PEER_ISN + 1, ack: sa.seq + 1, flags: ACK });
    (s as unknown as TcpSocket).close();
    h.one();
    h.inject({ dport: 80 + i, seq: PEER_ISN + 1, ack: sa.seq + 2, flags: FIN | ACK });
    h.one();
    socks.push(s as unknown as TcpSocket);
    l.close();
    h.advance(100);
  }
  assert.equal(h.tcp.timeWaitCount, 3);
  assert.equal(h.host.wheel.size, 1);
  h.advance(2 * MSL - 300);
  assert.deepEqual(socks.map((s) => s.state), ['CLOSED', 'TIME_WAIT', 'TIME_WAIT']);
  h.advance(100);
  assert.deepEqual(socks.map((s) => s.state), ['CLOSED', 'CLOSED', 'TIME_WAIT']);
  h.advance(100);
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});

/** Active open from a one-port range, data-less close from our side first: TIME_WAIT on 50000. */
function activeIntoTimeWait(h: TcpHarness) {
  h.tcp.ports.setRange(50000, 50000);
  h.peerPort = 80;
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  h.inject({ sport: 80, dport: syn.sport, seq: PEER_ISN, ack: syn.seq + 1, flags: SYN | ACK, mss: 1460, ts: [500, syn.ts![0]] });
  h.one();
  s.close();
  const fin = h.one();
  h.inject({ sport: 80, dport: syn.sport, seq: PEER_ISN + 1, ack: fin.seq + 1, flags: FIN | ACK, ts: [501, fin.ts![0]] });
  const last = h.one();
  assert.equal(s.state, 'TIME_WAIT');
  return { s, syn, last };
}

test('the ephemeral port of a 4-tuple in TIME_WAIT is not chosen again (net.inet.tcp.tw_reuse off by default)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': MSL });
  activeIntoTimeWait(h);
  h.advance(1500);
  assert.throws(() => h.tcp.connect({ raddr: REMOTE, rport: 80 }), { code: 'EADDRINUSE' });
  assert.throws(() => h.tcp.connect({ raddr: REMOTE, rport: 80, lport: 50000 }), { code: 'EADDRINUSE' });
  // Another destination port is a different 4-tuple.
  h.tcp.connect({ raddr: REMOTE, rport: 81 });
  assert.equal(h.one().sport, 50000);
});

test('tw_reuse: after a quiet second an outgoing connection takes the 4-tuple over, ISN and TSval above the old ones', () => {
  const h = new TcpHarness({ 'net.inet.tcp.msl': 60_000, 'net.inet.tcp.tw_reuse': true });
  const { s, syn, last } = activeIntoTimeWait(h);
  h.advance(500);
  assert.throws(() => h.tcp.connect({ raddr: REMOTE, rport: 80 }), { code: 'EADDRINUSE' }, 'within a second of the last segment');
  h.advance(500);
  const s2 = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn2 = h.one();
  assert.equal(syn2.flags, SYN);
  assert.equal(syn2.sport, syn.sport);
  assert.ok(((syn2.seq - last.seq) | 0) > 65535, `ISN ${syn2.seq} above the old SND.NXT ${last.seq} + 64 KiB`);
  assert.ok(((syn2.ts![0] - last.ts![0]) | 0) >= 1000, 'TSval keeps rising across incarnations');
  assert.equal(s.state, 'CLOSED');
  assert.equal(s2.state, 'SYN_SENT');
  assert.equal(h.tcp.counters.timeWaitReused, 1);
  assert.equal(h.tcp.activeTcbs, 1);
});
