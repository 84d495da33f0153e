// RACK time-based loss detection (RFC 8985 §6), packetdrill-style on the virtual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpHarness, filler, openActive, peerAckTo, type Seg } from '../helpers/tcp-harness.js';
import { Rack } from '../../src/stack/tcp/rack.js';
import { SackScoreboard } from '../../src/stack/tcp/sack.js';

const seqs = (segs: Seg[]) => segs.map((s) => s.seq);

test('a fast retransmission lost again is retransmitted again one RACK.rtt later, without an RTO', () => {
  for (const rack of [true, false]) {
    const h = new TcpHarness({ 'net.inet.tcp.rack': rack });
    const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true, rttMs: 50 });
    const S = (k: number) => d0 + k * 1000;
    s.write(filler(20000));
    assert.deepEqual(seqs(h.take()), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(S));
    h.advance(50);
    // Segment 0 is lost; 1..9 arrive. The third SACK starts recovery: 0 is resent.
    const sent: Seg[] = [];
    for (let k = 1; k <= 9; k++) { peerAckTo(h, sport, d0, { sack: [[S(1), S(k + 1)]] }); sent.push(...h.take()); }
    const rx = sent.findIndex((x) => x.seq === S(0));
    assert.ok(rx >= 0, 'the fast retransmission');
    assert.equal(sent.filter((x) => x.seq === S(0)).length, 1);
    assert.ok(sent.slice(rx + 1).some((x) => x.seq >= S(10)), 'new data leaves after the retransmission');
    // The retransmission is lost too. One RTT later the data sent after it is SACKed, 0 still missing:
    // it was sent before a delivered segment and RACK.rtt (+ reo_wnd 0 in recovery) ago.
    const top = Math.max(...sent.map((x) => x.seq)) + 1000;
    h.advance(50);
    peerAckTo(h, sport, d0, { sack: [[S(1), top]] });
    const again = h.take();
    if (rack) {
      assert.equal(again[0]?.seq, S(0), 'retransmitted again at once');
      assert.equal(again[0]?.time, h.now);
      assert.equal(h.tcp.counters.rackLost >= 1, true);
      peerAckTo(h, sport, top);
      h.take();
      assert.equal(h.tcp.counters.rexmtTimeouts, 0, 'no retransmission timeout');
      assert.equal(h.tcp.counters.fastRetransmits, 1, 'one recovery, one congestion response');
    } else {
      assert.equal(again.filter((x) => x.seq === S(0)).length, 0, 'without RACK the lost retransmission waits for the RTO');
      h.advance(300);
      assert.equal(h.tcp.counters.rexmtTimeouts, 1);
    }
  }
});

test('reordering within reo_wnd (min_RTT/4) does not trigger a retransmission', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true, rttMs: 40 });
  const S = (k: number) => d0 + k * 1000;
  s.write(filler(10000));
  h.take();
  h.advance(40);
  peerAckTo(h, sport, d0, { sack: [[S(1), S(2)]] }); // segment 0 is late, not lost
  h.advance(9); // reo_wnd = 40 / 4 = 10 ms
  peerAckTo(h, sport, S(2)); // it arrives
  h.advance(30);
  peerAckTo(h, sport, S(10));
  assert.equal(h.tcp.counters.sndRexmtPackets, 0, 'nothing retransmitted');
  assert.equal(h.tcp.counters.fastRetransmits, 0);
  assert.equal(s.tcb.rack!.reorderingSeen, true, 'the late segment was seen as reordering');
  assert.equal(s.tcb.reoTimer.armed, false);
});

test('the reordering timer fires after RACK.rtt + reo_wnd and retransmits, starting recovery', () => {
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true, rttMs: 40 });
  const S = (k: number) => d0 + k * 1000;
  s.write(filler(10000));
  h.take();
  h.advance(40);
  peerAckTo(h, sport, d0, { sack: [[S(1), S(2)]] }); // one SACK: below DupThresh
  assert.equal(h.take().length, 0, 'no retransmission yet');
  assert.equal(s.tcb.reoTimer.armed, true);
  h.advance(9); h.none();
  h.advance(1); // 40 ms after segment 0 was delivered late by reo_wnd = 10 ms
  const r = h.take();
  assert.deepEqual(seqs(r), [S(0)]);
  assert.equal(h.tcp.counters.rackTimeouts, 1);
  assert.equal(s.tcb.inRecovery, true);
  assert.equal(h.tcp.counters.fastRetransmits, 1);
  peerAckTo(h, sport, S(10));
  assert.equal(s.tcb.inRecovery, false);
  assert.equal(h.tcp.counters.rexmtTimeouts, 0);
});

test('a retransmission acknowledged sooner than min_RTT (the original was late) does not advance RACK.xmit_ts', () => {
  for (const ts of [false, true]) {
    const h = new TcpHarness();
    const { s, d0, sport } = openActive(h, { mss: 1000, sackOk: true, rttMs: 50, ts });
    const S = (k: number) => d0 + k * 1000;
    s.write(filler(10000));
    h.take();
    const t0 = h.now;
    h.advance(50);
    const sentTs = s.tcb.tsOffset + t0; // TSval of the first flight
    const tsOpt = (): [number, number] | undefined => (ts ? [2, sentTs >>> 0] : undefined);
    for (const k of [1, 2, 3]) peerAckTo(h, sport, d0, { sack: [[S(1), S(k + 1)]], ts: tsOpt() });
    assert.deepEqual(seqs(h.take()), [S(0)], 'fast retransmission');
    assert.equal(s.tcb.rack!.xmitTs, t0);
    const lostBefore = h.tcp.counters.rackLost;
    // 5 ms later the original segment 0 arrives: its ACK looks like the retransmission's.
    h.advance(5);
    peerAckTo(h, sport, S(4), { ts: tsOpt() });
    assert.equal(s.tcb.rack!.xmitTs, t0, 'RACK.xmit_ts stays at the first flight');
    h.advance(20);
    // Believing it would have declared 4..9 (sent before the retransmission) lost.
    assert.deepEqual(seqs(h.take()), [], 'nothing retransmitted spuriously');
    assert.equal(h.tcp.counters.rackLost, lostBefore, 'nothing more declared lost');
    peerAckTo(h, sport, S(10), { ts: tsOpt() });
    assert.equal(h.tcp.counters.sndRexmtPackets, 1);
  }
});

test('transmit records: a super-segment is one record, split by a partial SACK; retransmissions supersede', () => {
  const r = new Rack();
  const sb = new SackScoreboard();
  const blocks = new Uint32Array(8);
  r.onSend(1000, 11000, 0, false); // one TSO emit
  r.onSend(11000, 12000, 1, false);
  assert.equal(r.size, 2);
  blocks[0] = 4000; blocks[1] = 11000;
  sb.update(1000, 12000, blocks, 1);
  r.onAck(1000, sb, blocks, 1, 30, -1, 0);
  assert.equal(r.xmitTs, 0);
  assert.equal(r.rtt, 30);
  // [1000, 4000) is unSACKed, sent with the delivered [4000, 11000): lost after rtt + reo_wnd.
  const out = new Float64Array(1);
  assert.equal(r.detectLoss(30, 5, out), 0);
  assert.equal(out[0], 5);
  assert.equal(r.detectLoss(35, 5, out), 1);
  const seg = new Int32Array(2);
  assert.equal(r.nextLost(sb, 1000, seg), 1000);
  assert.equal(seg[0], 1000);
  // Retransmitting [1000, 2000) supersedes that piece; [2000, 4000) stays lost.
  r.onSend(1000, 2000, 36, true);
  assert.equal(r.lostCount, 1);
  assert.equal(r.nextLost(sb, 1000, seg), 2000);
  r.onSend(2000, 3000, 36, true);
  r.onSend(3000, 4000, 36, true);
  assert.equal(r.lostCount, 0);
  // Everything acknowledged: no record is left.
  sb.update(12000, 12000, blocks, 0);
  r.onAck(12000, sb, blocks, 0, 80, -1, 0);
  assert.equal(r.size, 0);
  // The ring grows past its initial 64 records.
  for (let i = 0; i < 200; i++) r.onSend(12000 + i * 100, 12100 + i * 100, 100 + i, false);
  assert.equal(r.size, 200);
  r.onAck(12000 + 150 * 100, null, blocks, 0, 400, -1, 0);
  assert.equal(r.size, 50);
  assert.equal(r.recordStart(0), 12000 + 150 * 100);
});

test('net.inet.tcp.rack=0 keeps no transmit records', () => {
  const h = new TcpHarness({ 'net.inet.tcp.rack': false });
  const { s } = openActive(h, { mss: 1000, sackOk: true });
  s.write(filler(5000));
  h.take();
  assert.equal(s.tcb.rack, null);
});
