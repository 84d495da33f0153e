import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CC_ALGORITHMS, createCongestionControl, Cubic, CUBIC_ALPHA, cubicK, cubicWindow, initialWindow, NewReno,
  type CongestionControl,
} from '../../src/stack/tcp/congestion/index.js';

const MSS = 1000;

/**
 * One round trip of a cwnd-limited sender: a full window in flight, acknowledged one MSS per
 * ACK, ACKs spread evenly over the RTT. Returns the time at the end of the round.
 */
function roundTrip(cc: CongestionControl, now: number, rttMs: number, ackBytes = MSS): number {
  const flight = cc.cwnd;
  const acks = Math.max(1, Math.floor(flight / ackBytes));
  for (let i = 1; i <= acks; i++) cc.onAck(ackBytes, now + (rttMs * i) / acks, rttMs, flight);
  return now + rttMs;
}

test('initial window is min(10*MSS, max(2*MSS, 14600)) (RFC 6928)', () => {
  assert.equal(initialWindow(1460, 10), 14600);
  assert.equal(initialWindow(536, 10), 5360);
  assert.equal(initialWindow(9000, 10), 18000);
  for (const name of CC_ALGORITHMS) {
    const cc = createCongestionControl(name);
    cc.init(1460, 0, 10);
    assert.equal(cc.cwnd, 14600, name);
    assert.ok(cc.ssthresh >= 0x7fffffff, name);
  }
});

test('createCongestionControl knows newreno and cubic and throws on other names', () => {
  assert.deepEqual([...CC_ALGORITHMS], ['newreno', 'cubic']);
  assert.equal(createCongestionControl('newreno').name, 'newreno');
  assert.equal(createCongestionControl('cubic').name, 'cubic');
  assert.throws(() => createCongestionControl('vegas'), /vegas/);
});

test('NewReno slow start doubles cwnd every round trip', () => {
  const cc = new NewReno();
  cc.init(MSS, 0, 10);
  let now = 0;
  for (const expected of [20_000, 40_000, 80_000]) {
    now = roundTrip(cc, now, 100);
    assert.equal(cc.cwnd, expected);
  }
});

test('NewReno slow start counts at most 2*SMSS per ACK (RFC 3465 L = 2)', () => {
  const cc = new NewReno();
  cc.init(MSS, 0, 10);
  cc.onAck(8 * MSS, 1, 10, cc.cwnd); // one stretch ACK for 8 segments
  assert.equal(cc.cwnd, 12_000);
  // Delayed ACKs (2 segments each) still double the window per RTT.
  roundTrip(cc, 10, 100, 2 * MSS);
  assert.equal(cc.cwnd, 24_000);
});

test('NewReno halves on congestion: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = ssthresh', () => {
  const cc = new NewReno();
  cc.init(MSS, 0, 10);
  cc.onCongestion(0, 40_000);
  assert.equal(cc.ssthresh, 20_000);
  assert.equal(cc.cwnd, 20_000);
  cc.onCongestion(0, 3000);
  assert.equal(cc.ssthresh, 2000);
  cc.onRecoveryExit(0);
  assert.equal(cc.cwnd, 2000);
});

test('NewReno congestion avoidance adds one MSS per round trip', () => {
  const cc = new NewReno();
  cc.init(MSS, 0, 10);
  cc.onCongestion(0, 40_000);
  cc.onRecoveryExit(0);
  let now = 0;
  for (const expected of [21_000, 22_000, 23_000, 24_000]) {
    now = roundTrip(cc, now, 100);
    assert.equal(cc.cwnd, expected);
  }
});

test('NewReno slow start stops at ssthresh', () => {
  const cc = new NewReno();
  cc.init(MSS, 0, 10);
  cc.ssthresh = 15_000;
  roundTrip(cc, 0, 100);
  assert.equal(cc.cwnd, 15_000);
});

test('does not grow cwnd while the application, not cwnd, limits the flight', () => {
  for (const name of CC_ALGORITHMS) {
    const cc = createCongestionControl(name);
    cc.init(MSS, 0, 10);
    for (let i = 0; i < 20; i++) cc.onAck(MSS, i, 10, 2000); // only 2 segments ever in flight
    assert.equal(cc.cwnd, 10_000, name);
  }
});

test('RTO: cwnd = 1 MSS, ssthresh halved once and held on a repeated RTO (RFC 5681 3.1)', () => {
  const cc = new NewReno();
  cc.init(MSS, 0, 10);
  cc.cwnd = 50_000;
  cc.onRto(0, 50_000);
  assert.equal(cc.cwnd, MSS);
  assert.equal(cc.ssthresh, 25_000);
  cc.onRto(1000, 1000); // the retransmission timed out again
  assert.equal(cc.ssthresh, 25_000);
  assert.equal(cc.cwnd, MSS);
  cc.onAck(MSS, 3000, 10, MSS);
  assert.equal(cc.cwnd, 2 * MSS); // slow start again
});

test('idle restart shrinks cwnd to the initial window but never grows it (RFC 5681 4.1)', () => {
  const cc = new NewReno();
  cc.init(MSS, 0, 10);
  cc.cwnd = 80_000;
  cc.onIdle(5000, 1000);
  assert.equal(cc.cwnd, 10_000);
  cc.cwnd = 4000;
  cc.onIdle(9000, 1000);
  assert.equal(cc.cwnd, 4000);
});

test('undo restores the window saved at the last reduction', () => {
  for (const name of CC_ALGORITHMS) {
    const cc = createCongestionControl(name);
    cc.init(MSS, 0, 10);
    cc.cwnd = 60_000;
    cc.ssthresh = 90_000;
    cc.onRto(0, 60_000);
    assert.equal(cc.cwnd, MSS, name);
    cc.onUndo!(10);
    assert.equal(cc.cwnd, 60_000, name);
    assert.equal(cc.ssthresh, 90_000, name);
  }
});

test('CUBIC K and W(t) for W_max = 100, cwnd_epoch = 70 segments', () => {
  const k = cubicK(100, 70);
  assert.ok(Math.abs(k - Math.cbrt(75)) < 1e-12);
  assert.ok(Math.abs(k - 4.2172) < 1e-4);
  assert.ok(Math.abs(cubicWindow(0, k, 100) - 70) < 1e-9);
  assert.equal(cubicWindow(k, k, 100), 100);
  assert.ok(Math.abs(cubicWindow(k + 1, k, 100) - 100.4) < 1e-9);
  assert.ok(Math.abs(cubicWindow(1, k, 100) - (100 - 0.4 * (k - 1) ** 3)) < 1e-9);
  assert.equal(cubicK(50, 70), 0);
  assert.ok(Math.abs(CUBIC_ALPHA - 0.9 / 1.7) < 1e-12);
});

test('CUBIC reduces to 0.7 of the flight on congestion and remembers W_max', () => {
  const cc = new Cubic();
  cc.init(MSS, 0, 10);
  cc.cwnd = 100_000;
  cc.onCongestion(0, 100_000);
  assert.equal(cc.ssthresh, 70_000);
  assert.equal(cc.cwnd, 70_000);
  assert.equal(cc.wMax, 100);
});

test('CUBIC fast convergence lowers W_max when losing below the previous W_max (RFC 9438 4.7)', () => {
  const cc = new Cubic();
  cc.init(MSS, 0, 10);
  cc.cwnd = 100_000;
  cc.onCongestion(0, 100_000);
  cc.cwnd = 80_000;
  cc.onCongestion(1000, 80_000);
  assert.ok(Math.abs(cc.wMax - 80 * 0.85) < 1e-9);
  assert.equal(cc.cwnd, 56_000);
  cc.fastConvergence = false;
  cc.cwnd = 60_000;
  cc.onCongestion(2000, 60_000);
  assert.equal(cc.wMax, 60);
});

test('CUBIC grows concavely back to W_max at t = K, then convexly beyond', () => {
  const cc = new Cubic();
  cc.init(MSS, 0, 10);
  cc.cwnd = 100_000;
  cc.onCongestion(0, 100_000);
  cc.onRecoveryExit(0);
  const rtt = 100;
  const samples: number[] = []; // cwnd in segments at the end of each second
  let now = 0;
  for (let round = 1; round <= 70; round++) {
    now = roundTrip(cc, now, rtt);
    if (round % 10 === 0) samples.push(cc.cwnd / MSS);
  }
  const k = cc.k;
  assert.ok(Math.abs(k - Math.cbrt(75)) < 0.01, `K = ${k}`);
  // Concave: each second adds less than the one before while below W_max.
  const gains = samples.map((w, i) => w - (i === 0 ? 70 : samples[i - 1]!));
  assert.ok(gains[0]! > gains[1]! && gains[1]! > gains[2]! && gains[2]! > gains[3]!, `gains ${gains}`);
  // Follows W_cubic(t + RTT) closely.
  for (let s = 1; s <= 4; s++) {
    const expect = cubicWindow(s + rtt / 1000, k, 100);
    assert.ok(Math.abs(samples[s - 1]! - expect) < 2, `t=${s}s cwnd ${samples[s - 1]} vs W ${expect}`);
  }
  assert.ok(samples[3]! < 100.5, 'plateau below W_max before K');
  // Convex after K: growth speeds up again.
  assert.ok(samples[6]! - samples[5]! > samples[5]! - samples[4]!);
  assert.ok(samples[6]! > 100);
});

test('CUBIC follows the Reno-friendly estimate when the RTT is short (RFC 9438 4.3)', () => {
  const cc = new Cubic();
  cc.init(MSS, 0, 10);
  cc.cwnd = 100_000;
  cc.onCongestion(0, 100_000);
  cc.onRecoveryExit(0);
  let now = 0;
  for (let round = 0; round < 40; round++) now = roundTrip(cc, now, 1);
  // W_cubic(0.04 s) is barely above 70, while Reno would have added ~0.53 MSS per RTT.
  assert.ok(cubicWindow(0.04, cc.k, 100) < 71);
  const w = cc.cwnd / MSS;
  assert.ok(Math.abs(w - cc.renoEstimate) < 0.01, `cwnd ${w} vs W_est ${cc.renoEstimate}`);
  assert.ok(w > 88 && w < 93, `cwnd ${w}`);
});

test('CUBIC after an RTO: ssthresh = 0.7 * flight, cwnd = 1 MSS, then K = 0 from cwnd_epoch (RFC 9438 4.8)', () => {
  const cc = new Cubic();
  cc.init(MSS, 0, 10);
  cc.cwnd = 100_000;
  cc.onRto(0, 100_000);
  assert.equal(cc.ssthresh, 70_000);
  assert.equal(cc.cwnd, MSS);
  let now = 0;
  // Slow start reaches ssthresh; the ACKs after that start the congestion-avoidance epoch.
  while (cc.cwnd < cc.ssthresh) now = roundTrip(cc, now, 100);
  assert.equal(cc.k, 0);
  assert.equal(cc.wMax, 70);
  const start = cc.cwnd;
  now = roundTrip(cc, now, 100);
  assert.ok(cc.cwnd > start);
});
