// Every TCP state that waits on the peer ends: a peer that vanishes (or holds its window shut
// for ever on a connection no one owns) cannot pin a connection, its timers or its buffers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, FIN, RST, SYN, PEER_ISN, TcpHarness, filler, openActive, type Seg } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const P = PEER_ISN;

function ackFrom(h: TcpHarness, sport: number, ack: number, wnd = 65535, flags: number = ACK, seq = P + 1): void {
  h.inject({ sport: 80, dport: sport, seq, ack, flags, wnd });
}

/** Fires timers until the connection is gone (or `limit` timers); returns every segment sent meanwhile. */
function runTimers(h: TcpHarness, gone: () => boolean, limit = 200): Seg[] {
  const out: Seg[] = [];
  for (let i = 0; i < limit && !gone() && h.host.wheel.size > 0; i++) {
    h.advanceToNextTimer();
    out.push(...h.take());
  }
  return out;
}

/** The connection is gone and holds nothing: no table entry, no timer, no ring storage. */
function assertFreed(h: TcpHarness, s: TcpSocket): void {
  assert.equal(h.tcp.activeTcbs, 0, 'no connection left');
  assert.equal(h.host.wheel.size, 0, 'no timer left armed');
  assert.equal(s.tcb.sndBuf.data.length, 0, 'send ring returned to the pool');
}

/** Established, 2 KB in flight acknowledged with a zero window, 3 KB still queued: persist. */
function intoPersist(h: TcpHarness): { s: TcpSocket; d0: number; sport: number; err: () => string | undefined } {
  const { s, d0, sport } = openActive(h, { mss: 1000, wnd: 2000 });
  let err: string | undefined;
  s.onClose = (e) => { err = e?.code; };
  s.write(filler(5000));
  h.take();
  ackFrom(h, sport, d0 + 2000, 0);
  h.none();
  return { s, d0, sport, err: () => err };
}

test('persist: a peer that stops answering zero-window probes is dropped after persist_probes probes (ETIMEDOUT, RST)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.persist_probes': 6 });
  const { s, d0, err } = intoPersist(h);
  const segs = runTimers(h, () => s.state === 'CLOSED');
  const probes = segs.filter((x) => x.data.length === 1 && x.seq === d0 + 2000);
  assert.equal(probes.length, 6, 'six unanswered probes, then no more');
  assert.equal(segs.at(-1)!.flags, RST, 'the peer is told with a RST');
  assert.equal(err(), 'ETIMEDOUT');
  assert.equal(h.tcp.counters.persistDrops, 1);
  assertFreed(h, s);
});

test('persist: a peer that keeps answering its zero window keeps the connection (RFC 1122 §4.2.2.17)', () => {
  const h = new TcpHarness({ 'net.inet.tcp.persist_probes': 3 });
  const { s, d0, sport } = intoPersist(h);
  for (let i = 0; i < 20; i++) {
    h.advanceToNextTimer();
    const p = h.one();
    assert.equal(p.data.length, 1);
    ackFrom(h, sport, d0 + 2000, 0);
    h.none();
  }
  assert.equal(s.state, 'ESTABLISHED', 'twenty answered probes, still open');
  ackFrom(h, sport, d0 + 2000, 65535);
  assert.equal(h.take().reduce((n, x) => n + x.data.length, 0), 3000, 'the window opens and the rest goes');
});

test('persist: maxpersistidle bounds the time without a segment from the peer, however few probes that is', () => {
  const h = new TcpHarness({ 'net.inet.tcp.maxpersistidle': 20_000 });
  const { s, err } = intoPersist(h);
  const t0 = h.now;
  runTimers(h, () => s.state === 'CLOSED');
  assert.equal(s.state, 'CLOSED');
  const took = h.now - t0;
  assert.ok(took >= 20_000 && took < 20_000 + 60_000, `dropped at the first probe after 20 s idle (${took} ms)`);
  assert.equal(err(), 'ETIMEDOUT');
  assertFreed(h, s);
});

test('persist, default sysctls: a vanished peer is dropped in bounded time (15 probes, backoff to persmax)', () => {
  const h = new TcpHarness();
  const { s } = intoPersist(h);
  const t0 = h.now;
  runTimers(h, () => s.state === 'CLOSED', 1000);
  assert.equal(s.state, 'CLOSED');
  const took = h.now - t0;
  assert.ok(took < 20 * 60_000, `gone within 20 minutes (${Math.round(took / 1000)} s)`);
  assertFreed(h, s);
});

test('FIN_WAIT_1 (orphan, zero window): dropped after persist_probes probes even while the peer answers them', () => {
  const h = new TcpHarness({ 'net.inet.tcp.persist_probes': 4 });
  const { s, d0, sport } = intoPersist(h);
  s.close();
  h.take();
  assert.equal(s.state, 'FIN_WAIT_1');
  let probes = 0;
  const closed = () => (s.state as string) === 'CLOSED';
  for (let i = 0; i < 50 && !closed(); i++) {
    h.advanceToNextTimer();
    for (const x of h.take()) if (x.data.length === 1) probes++;
    if (!closed()) ackFrom(h, sport, d0 + 2000, 0);
  }
  assert.equal(s.state, 'CLOSED');
  assert.equal(probes, 4);
  assertFreed(h, s);
});

test('FIN_WAIT_1: an unacknowledged FIN is retransmitted rexmit_count times, then the connection is dropped', () => {
  const h = new TcpHarness({ 'net.inet.tcp.rexmit_count': 4 });
  const { s, d0 } = openActive(h, { mss: 1000 });
  s.close();
  assert.equal(h.one().flags, FIN | ACK);
  assert.equal(s.state, 'FIN_WAIT_1');
  const segs = runTimers(h, () => s.state === 'CLOSED');
  assert.equal(segs.filter((x) => x.flags === (FIN | ACK) && x.seq === d0).length, 4);
  assert.equal(segs.at(-1)!.flags, RST);
  assertFreed(h, s);
});

test('FIN_WAIT_2 (orphan): dropped after finwait2_timeout even if the peer keeps sending', () => {
  const h = new TcpHarness({ 'net.inet.tcp.finwait2_timeout': 60_000 });
  const { s, d0, sport } = openActive(h, { mss: 1000 });
  s.close();
  h.take();
  ackFrom(h, sport, d0 + 1);
  assert.equal(s.state, 'FIN_WAIT_2');
  // Pure ACKs (keep-alives of a kind) from a peer that never sends its FIN.
  for (let i = 0; i < 5; i++) { h.advance(10_000); ackFrom(h, sport, d0 + 1); }
  h.take();
  h.advance(10_000);
  assert.equal(s.state, 'CLOSED', 'gone 60 s after entering FIN_WAIT_2');
  assertFreed(h, s);
});

test('CLOSING: a FIN that is never acknowledged is retransmitted, then the connection is dropped', () => {
  const h = new TcpHarness({ 'net.inet.tcp.rexmit_count': 3 });
  const { s, d0, sport } = openActive(h, { mss: 1000 });
  s.shutdown();
  assert.equal(h.one().flags, FIN | ACK);
  // The peer's FIN crosses ours and does not acknowledge it.
  ackFrom(h, sport, d0, 65535, FIN | ACK);
  assert.equal(s.state, 'CLOSING');
  h.take();
  const segs = runTimers(h, () => s.state === 'CLOSED');
  assert.equal(segs.filter((x) => (x.flags & FIN) !== 0).length, 3);
  assert.equal(s.state, 'CLOSED');
  assertFreed(h, s);
});

test('LAST_ACK: a FIN that is never acknowledged is retransmitted, then the connection is dropped', () => {
  const h = new TcpHarness({ 'net.inet.tcp.rexmit_count': 3 });
  const { s, d0, sport } = openActive(h, { mss: 1000 });
  ackFrom(h, sport, d0, 65535, FIN | ACK);
  h.take();
  assert.equal(s.state, 'CLOSE_WAIT');
  s.close();
  assert.equal(h.one().flags, FIN | ACK);
  assert.equal(s.state, 'LAST_ACK');
  const segs = runTimers(h, () => s.state === 'CLOSED');
  assert.equal(segs.filter((x) => (x.flags & FIN) !== 0).length, 3);
  assert.equal(s.state, 'CLOSED');
  assertFreed(h, s);
});

test('LAST_ACK with a zero window: the orphan stops probing after persist_probes and is freed', () => {
  const h = new TcpHarness({ 'net.inet.tcp.persist_probes': 5 });
  const { s, d0, sport } = intoPersist(h);
  ackFrom(h, sport, d0 + 2000, 0, FIN | ACK);
  h.take();
  assert.equal(s.state, 'CLOSE_WAIT');
  s.close();
  h.take();
  assert.equal(s.state, 'LAST_ACK');
  runTimers(h, () => s.state === 'CLOSED');
  assert.equal(s.state, 'CLOSED');
  assertFreed(h, s);
});

test('SYN_RECEIVED: the SYN-ACK is retransmitted syn_retries times, then the half-open connection is freed', () => {
  const h = new TcpHarness({ 'net.inet.tcp.syn_retries': 3 });
  h.tcp.listen({ port: 80 });
  h.inject({ seq: P, flags: SYN, mss: 1460 });
  assert.equal(h.one().flags, SYN | ACK);
  assert.equal(h.tcp.activeTcbs, 1);
  const segs: Seg[] = [];
  for (let i = 0; i < 20 && h.tcp.activeTcbs > 0; i++) { h.advanceToNextTimer(); segs.push(...h.take()); }
  assert.equal(segs.filter((x) => x.flags === (SYN | ACK)).length, 3);
  assert.equal(h.tcp.activeTcbs, 0);
  assert.equal(h.host.wheel.size, 0);
});
