// TCP sender behaviours found by the kernel interop suite (test/integration/tcp-kernel-*.test.ts)
// under 3% random loss, reduced to scripted-peer tests. Each is a `todo` until the TCP engine
// fixes it; flip it to a plain test then.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, REMOTE, SYN, TcpHarness, filler, fmt, type Seg } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const P = 5000; // peer ISN
const MSS = 1000;

function open(h: TcpHarness): { s: TcpSocket; d0: number; sport: number } {
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  h.peerPort = 80;
  h.advance(10);
  h.inject({ sport: 80, dport: syn.sport, seq: P, ack: syn.seq + 1, flags: SYN | ACK, wnd: 65535, mss: MSS, sackOk: true });
  h.one();
  h.peerAck = syn.seq + 1;
  return { s, d0: syn.seq + 1, sport: syn.sport };
}

function ack(h: TcpHarness, sport: number, a: number, sack?: [number, number][]): Seg[] {
  h.inject({ sport: 80, dport: sport, seq: P + 1, ack: a, flags: ACK, wnd: 65535, sack });
  return h.take();
}

test('SACK: a loss of the first segment sent after a recovery ended is fast-retransmitted, not left to the RTO', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  const S = (k: number) => (d0 + k * MSS) >>> 0;
  s.write(filler(40 * MSS));
  assert.equal(h.take().length, 10, 'initial window: 10 segments');
  // Segment 0 lost: three duplicate ACKs with SACK start recovery.
  const sent: Seg[] = [];
  for (const k of [1, 2, 3]) sent.push(...ack(h, sport, d0, [[S(1), S(k + 1)]]));
  assert.ok(sent.some((x) => x.seq === d0), `fast retransmit of segment 0: ${sent.map(fmt).join(' ; ')}`);
  assert.equal(h.tcp.counters.sackRecoveries, 1);
  const R = s.tcb.recover; // RFC 6582 "recover" (here: SND.MAX when recovery began)
  // Everything below R arrives; the retransmission fills the hole: the cumulative ACK reaches R.
  for (let k = 4; S(k) !== R; k++) sent.push(...ack(h, sport, d0, [[S(1), S(k + 1)]]));
  sent.push(...ack(h, sport, R));
  assert.equal(s.tcb.inRecovery, false, 'the ACK of everything sent before recovery ends it');
  // Of what went out from R on, the first segment (at R) is lost and the next three arrive.
  const fromR = sent.filter((x) => x.data.length > 0 && ((x.seq - R) | 0) >= 0).map((x) => ((x.seq - R) | 0) / MSS);
  assert.ok([0, 1, 2, 3].every((k) => fromR.includes(k)), `segments sent from R: ${fromR}`);
  const at = (k: number) => (R + k * MSS) >>> 0;
  const after: Seg[] = [];
  for (const k of [1, 2, 3]) after.push(...ack(h, sport, R, [[at(1), at(k + 1)]]));
  const rexmit = after.filter((x) => x.seq === R);
  assert.equal(rexmit.length, 1, `three duplicate ACKs with SACK must fast-retransmit the segment at R; sent instead: ${after.map(fmt).join(' ; ') || 'nothing'}`);
  assert.equal(h.tcp.counters.sackRecoveries, 2);
});

// RFC 6675 §5.1: "a SACK TCP sender SHOULD utilize all SACK information made available during
// the slow start phase of loss recovery following an RTO".
test('after an RTO, slow-start retransmission skips segments the peer has SACKed', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = open(h);
  const S = (k: number) => (d0 + k * MSS) >>> 0;
  s.write(filler(10 * MSS));
  assert.equal(h.take().length, 10);
  // Segments 0 and 1 lost; 2..9 arrive, but only two duplicate ACKs make it back (the others
  // are lost too): not enough for fast retransmit, so the RTO fires.
  ack(h, sport, d0, [[S(2), S(3)]]);
  ack(h, sport, d0, [[S(2), S(10)]]);
  h.take();
  h.advanceToNextTimer();
  const first = h.take().filter((x) => x.data.length > 0);
  assert.equal(first[0]?.seq, d0, 'the RTO retransmits segment 0');
  // Segment 0 arrives: the peer acknowledges S(1) and still SACKs 2..9.
  const next = ack(h, sport, S(1), [[S(2), S(10)]]).filter((x) => x.data.length > 0);
  h.advance(1);
  next.push(...h.take().filter((x) => x.data.length > 0));
  const resent = next.map((x) => (x.seq - d0) / MSS);
  assert.deepEqual(resent, [1], `only the hole (segment 1) should be resent; resent: ${resent}`);
});
