#!/usr/bin/env node
// `npm run fuzz [-- --seconds N] [-- --seed S]`: the coverage-guided fuzzer for the engine's input
// path (test/fuzz/guided.ts on test/fuzz/engine-target.ts) for N seconds (default 600). Prints
// progress every 10 s and a summary; every finding (an exception out of the engine, or buffers
// or reassembly state still held once all timers ran) is written to fuzz-findings/ as the input
// bytes (.bin) and the error (.txt), and the run exits 1. The seed is printed: the same seed and
// number of executions replay a run. npm test runs the same fuzzer for a few seconds
// (test/unit/engine-fuzz-guided.test.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { guidedFuzz } from '../dist/test/fuzz/guided.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const seconds = Number(arg('seconds', process.env.FUZZ_SECONDS ?? 600));
const seed = arg('seed', process.env.FUZZ_SEED ?? `fuzz-${Date.now()}`);
if (!(seconds > 0)) { console.error(`--seconds ${seconds}: want a number of seconds > 0`); process.exit(2); }
console.log(`fuzz: seed=${seed}, ${seconds} s`);
const r = guidedFuzz({ seed, seconds, log: (l) => console.log(l) });
console.log(`fuzz: ${r.execs} executions in ${r.seconds.toFixed(0)} s (${Math.round(r.execs / r.seconds)}/s), corpus ${r.corpus.length}, ` +
  `blocks of src/ run ${r.blocks} (the templates alone ${r.seedBlocks}), findings ${r.findings.length}`);
if (r.findings.length > 0) {
  mkdirSync('fuzz-findings', { recursive: true });
  for (const f of r.findings) {
    const name = `fuzz-findings/${createHash('sha256').update(f.input).update(f.error).digest('hex').slice(0, 16)}`;
    writeFileSync(`${name}.bin`, f.input);
    writeFileSync(`${name}.txt`, `seed ${seed}\n${f.error}\n`);
    console.error(`finding: ${name}.bin: ${f.error.split('\n')[0]}`);
  }
  process.exit(1);
}
