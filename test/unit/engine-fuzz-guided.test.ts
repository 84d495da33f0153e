// The coverage-guided fuzzer (test/fuzz/guided.ts; `npm run fuzz` runs it for minutes) at a small
// budget: a fixed seed and number of executions, so the run is the same every time. Nothing
// escapes the engine, every buffer and reassembly goes back once the timers run, and the
// guidance works: mutated inputs reach blocks of src/ the templates alone do not.
import test from 'node:test';
import assert from 'node:assert/strict';
import { guidedFuzz } from '../fuzz/guided.js';

test('2,000 coverage-guided inputs: no finding, and new blocks reached beyond the templates', { timeout: 120_000 }, (t) => {
  const r = guidedFuzz({ seed: 'npm-test', execs: 2000, settleEvery: 1000 });
  t.diagnostic(`${r.execs} executions in ${r.seconds.toFixed(1)} s, corpus ${r.corpus.length}, blocks ${r.blocks} (templates ${r.seedBlocks})`);
  assert.deepEqual(r.findings.map((f) => f.error), []);
  assert.equal(r.execs, 2000);
  assert.ok(r.blocks > r.seedBlocks, `coverage grew past the templates' ${r.seedBlocks} blocks`);
});
