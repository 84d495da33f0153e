import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RttEstimator } from '../../src/stack/tcp/rtt.js';

const opts = { minRto: 200, maxRto: 60_000, initialRto: 1000 };

test('starts at the initial RTO of 1 s with no sample (RFC 6298 2.1)', () => {
  const r = new RttEstimator(opts);
  assert.equal(r.rto, 1000);
  assert.equal(r.hasSample, false);
  assert.equal(r.srtt, 0);
});

test('first sample sets SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR (RFC 6298 2.2)', () => {
  const r = new RttEstimator(opts);
  r.sample(100);
  assert.equal(r.hasSample, true);
  assert.equal(r.srtt, 100);
  assert.equal(r.rttvar, 50);
  assert.equal(r.rto, 300);
});

test('later samples use alpha = 1/8 and beta = 1/4, RTTVAR from the old SRTT (RFC 6298 2.3)', () => {
  const r = new RttEstimator(opts);
  r.sample(100);
  r.sample(200);
  // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5
  assert.equal(r.rttvar, 62.5);
  assert.equal(r.srtt, 112.5);
  assert.equal(r.rto, 112.5 + 4 * 62.5);
});

test('uses the clock granularity when 4*RTTVAR is smaller', () => {
  const r = new RttEstimator({ minRto: 0, maxRto: 60_000, initialRto: 1000, granularity: 10 });
  r.sample(40);
  for (let i = 0; i < 50; i++) r.sample(40); // RTTVAR decays towards 0
  assert.ok(4 * r.rttvar < 10);
  assert.equal(r.rto, r.srtt + 10);
});

test('minRto floors the variance term (Linux: RTO = SRTT + max(4*RTTVAR, rto_min)); maxRto caps the RTO', () => {
  const r = new RttEstimator({ minRto: 1000, maxRto: 60_000, initialRto: 1000 });
  r.sample(10);
  assert.equal(r.rto, 1010);
  const big = new RttEstimator({ minRto: 200, maxRto: 5000, initialRto: 1000 });
  big.sample(4000);
  assert.equal(big.rto, 5000);
});

test('backoff doubles the RTO up to maxRto, and a new sample ends the backoff (RFC 6298 5.5)', () => {
  const r = new RttEstimator({ minRto: 200, maxRto: 10_000, initialRto: 1000 });
  r.backoff();
  assert.equal(r.rto, 2000);
  r.backoff();
  assert.equal(r.rto, 4000);
  r.backoff();
  assert.equal(r.rto, 8000);
  r.backoff();
  assert.equal(r.rto, 10_000);
  assert.equal(r.backoffs, 4);
  r.sample(100);
  assert.equal(r.rto, 300);
  assert.equal(r.backoffs, 0);
});

test('resetBackoff returns to the estimated RTO; reset forgets the samples', () => {
  const r = new RttEstimator(opts);
  r.sample(100);
  r.backoff();
  assert.equal(r.rto, 600);
  r.resetBackoff();
  assert.equal(r.rto, 300);
  r.reset();
  assert.equal(r.hasSample, false);
  assert.equal(r.rto, 1000);
  r.sample(50);
  assert.equal(r.srtt, 50); // first-sample rule again
  assert.equal(r.rttvar, 25);
});
