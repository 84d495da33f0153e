// The randomized TCP matrix (acceptance: >= 500 seeded runs). Each run derives everything from
// its seed: faults on both hosts (loss 0-20%, reordering, duplication, corruption, delay
// 0-200 ms, jitter, rate limits with shallow queues), MTUs, sysctls (cc algorithm, SACK,
// RFC 1323, delayed ACK, small buffers and reassembly queues), 1-4 concurrent connections in
// either direction, 0 B to 8 MiB each way, half-closes, simultaneous closes, full closes and
// readers that stop reading for seconds; TCP Fast Open on a quarter of the runs and ECN (with
// CE marks on the way) on some hosts, drawn from a PRNG of their own (the other draws unchanged).
//
//   TCP_MATRIX_RUNS=5000 node --test dist/test/sim/tcp-matrix.test.js   (soak: npm run soak:tcp)
//   TSTACK_SEED=123 node --test dist/test/sim/tcp-matrix.test.js        (replay one seed)
//   TCP_MATRIX_BASE=10001                                               (start elsewhere)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation } from '../helpers/sim.js';
import {
  makeScenario, runScenario, failureReport, totalBytes, overIpv6, CLOSE_PATTERNS, MAX_TRANSFER, MIB, type Scenario,
} from '../helpers/tcp-matrix.js';

const RUNS = Number(process.env['TCP_MATRIX_RUNS'] ?? 500);
const BASE = Number(process.env['TCP_MATRIX_BASE'] ?? 1);
const seeds = Simulation.seeds(RUNS, BASE);
const replaying = (process.env['TSTACK_SEED'] ?? '') !== '';

function maxLoss(s: Scenario): number {
  return Math.max(s.a.faults.loss ?? 0, s.b.faults.loss ?? 0);
}
function oneWayDelay(s: Scenario): number {
  return s.latencyMs + Math.max(s.a.faults.delayMs ?? 0, s.b.faults.delayMs ?? 0);
}
function short(s: Scenario): string {
  const kb = totalBytes(s) / 1024;
  return `${s.conns.length} conn, ${kb < 1024 ? `${kb.toFixed(1)} KiB` : `${(kb / 1024).toFixed(2)} MiB`}, loss ${maxLoss(s)}, delay ${oneWayDelay(s)} ms`;
}

if (!replaying) {
  const skip = seeds.length < 500 ? `coverage is judged on >= 500 runs (TCP_MATRIX_RUNS=${seeds.length})` : false;
  test(`the ${seeds.length} generated scenarios span the acceptance ranges`, { skip }, () => {
    const sc = seeds.map(makeScenario);
    const ends = sc.flatMap((s) => s.conns.flatMap((c) => [c.i, c.p]));
    const faults = sc.flatMap((s) => [s.a.faults, s.b.faults]);
    assert.ok(seeds.length >= 500, `at least 500 runs (got ${seeds.length})`);
    assert.ok(ends.some((e) => e.bytes === 0), 'some direction sends 0 B');
    assert.ok(ends.some((e) => e.bytes === MAX_TRANSFER), 'some direction sends 8 MiB');
    assert.ok(sc.some((s) => s.conns.some((c) => c.i.bytes >= MIB && c.p.bytes >= MIB)), 'some connection moves >= 1 MiB both ways');
    assert.ok(ends.every((e) => e.bytes >= 0 && e.bytes <= MAX_TRANSFER));
    assert.ok(faults.some((f) => (f.loss ?? 0) >= 0.15), 'loss reaches 15-20%');
    assert.ok(faults.every((f) => (f.loss ?? 0) <= 0.2), 'loss stays within 20%');
    assert.ok(sc.filter((s) => maxLoss(s) === 0).length > 0, 'some runs have no loss');
    assert.ok(faults.some((f) => (f.reorder ?? 0) > 0.2), 'heavy reordering occurs');
    assert.ok(faults.some((f) => (f.duplicate ?? 0) > 0.05), 'duplication occurs');
    assert.ok(faults.some((f) => (f.corrupt ?? 0) > 0.03), 'corruption occurs');
    assert.ok(faults.some((f) => (f.rateBps ?? Infinity) < 2e6), 'a ~1 Mbit/s rate limit occurs');
    assert.ok(faults.some((f) => f.queueLimitBytes !== undefined && f.queueLimitBytes < 20 * 1514), 'a shallow rate-limiter queue occurs');
    assert.ok(sc.some((s) => oneWayDelay(s) >= 150) && sc.some((s) => oneWayDelay(s) === 0), 'delay spans 0 to >= 150 ms');
    assert.ok(sc.every((s) => oneWayDelay(s) <= 200), 'delay stays within 200 ms');
    for (let n = 1; n <= 4; n++) assert.ok(sc.some((s) => s.conns.length === n), `${n} concurrent connection(s)`);
    assert.ok(sc.some((s) => s.conns.some((c) => c.initiator === 'b')), 'connections in both directions');
    for (const p of CLOSE_PATTERNS) assert.ok(sc.some((s) => s.conns.some((c) => c.close === p)), `close pattern ${p}`);
    for (const cc of ['newreno', 'cubic']) assert.ok(sc.some((s) => s.a.sysctl['net.inet.tcp.cc.algorithm'] === cc), `cc ${cc}`);
    assert.ok(sc.some((s) => s.tfo) && sc.some((s) => !s.tfo), 'TCP Fast Open on some runs');
    assert.ok(sc.some((s) => s.a.sysctl['net.inet.tcp.ecn'] === 1 || s.b.sysctl['net.inet.tcp.ecn'] === 1), 'ECN requested on some runs');
    assert.ok(sc.some((s) => (s.a.sysctl['net.inet.tcp.ecn'] === 1 && (s.b.ceMark ?? 0) > 0) || (s.b.sysctl['net.inet.tcp.ecn'] === 1 && (s.a.ceMark ?? 0) > 0)), 'CE marks on some ECN runs');
    for (const k of ['sack.enable', 'rfc1323', 'delayed_ack']) {
      assert.ok(sc.some((s) => s.a.sysctl[`net.inet.tcp.${k}`] === false) && sc.some((s) => s.a.sysctl[`net.inet.tcp.${k}`] === true), `${k} on and off`);
    }
    assert.ok(sc.some((s) => (s.b.sysctl['net.inet.tcp.recvspace'] as number | undefined ?? Infinity) < 8192), 'a small receive buffer');
    assert.ok(ends.some((e) => e.pauseAtMs >= 0 && e.pauseMs >= 5000), 'a reader stops reading for seconds');
  });
}

test('half the seeds run over IPv6', () => {
  if (seeds.length < 4) return;
  const n = seeds.filter(overIpv6).length;
  assert.ok(Math.abs(n - seeds.length / 2) <= 2, `${n} of ${seeds.length} seeds over IPv6`);
});

const totals = { runs: 0, bytes: 0, virtualMs: 0, wallMs: 0, failed: [] as number[], slowest: { seed: 0, ms: 0 } };

for (const seed of seeds) {
  const sc = makeScenario(seed);
  const v6 = overIpv6(seed);
  test(`seed ${seed} (${v6 ? 'IPv6, ' : ''}${short(sc)}): every byte arrives in order, both ends close, nothing left`, () => {
    const t0 = performance.now();
    const res = runScenario(sc, { ipv6: v6 });
    const wall = performance.now() - t0;
    totals.runs++; totals.bytes += res.bytes; totals.virtualMs += res.virtualMs; totals.wallMs += wall;
    if (wall > totals.slowest.ms) totals.slowest = { seed, ms: wall };
    if (res.failures.length > 0) totals.failed.push(seed);
    assert.ok(res.failures.length === 0, failureReport(res));
  });
}

after(() => {
  if (totals.runs === 0) return;
  const mb = totals.bytes / MIB;
  console.log(`# tcp-matrix: ${totals.runs} runs, ${mb.toFixed(1)} MiB moved, ${(totals.virtualMs / 1000).toFixed(0)} s virtual, `
    + `${(totals.wallMs / 1000).toFixed(1)} s wall; slowest seed ${totals.slowest.seed} (${totals.slowest.ms.toFixed(0)} ms); `
    + `failed seeds: ${totals.failed.length ? totals.failed.join(' ') : 'none'}`);
});
