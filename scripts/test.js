#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's built-in test runner.
// Usage: node scripts/test.js [unit|sim|integration ...] [--node-test-flags]   (default: all)
//
// A file with a failing test is run once more, on its own, after the whole run: integration
// tests drive real kernels, tshark and curl on a shared 2-core machine, and a test that fails
// from load (a capture that starts late) should not hide the rest. Every retry is reported by
// name at the end, and a file that fails twice fails the run. TSTACK_TEST_RETRY=0 turns it off.
import { readdirSync, statSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const reporter = new URL('./failed-files-reporter.js', import.meta.url).pathname;
const groups = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('-'));
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
}
for (const g of groups.length ? groups : ['unit', 'sim', 'integration']) {
  try { walk(join(root, g)); } catch { /* group may not exist yet */ }
}
if (files.length === 0) { console.error('no test files found under dist/test'); process.exit(1); }

const tmp = mkdtempSync(join(tmpdir(), 'tstack-test-'));
/** Runs `list` under node --test; returns its exit status and the files that had a failing test. */
function run(list, tag) {
  const failedList = join(tmp, `failed-${tag}.txt`);
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout',
    `--test-reporter=${reporter}`, `--test-reporter-destination=${failedList}`, ...extra, ...list], { stdio: 'inherit' });
  let failed = [];
  try { failed = readFileSync(failedList, 'utf8').split('\n').filter(Boolean); } catch { /* no report */ }
  return { status: r.status ?? 1, failed };
}

const first = run(files, 'first');
let status = first.status;
const retry = process.env.TSTACK_TEST_RETRY !== '0';
if (status !== 0 && retry && first.failed.length > 0 && first.failed.length <= 5) {
  const names = first.failed.map((f) => relative(process.cwd(), f));
  console.log(`\n== ${names.length} file(s) had a failing test; running each once more on its own:\n  ${names.join('\n  ')}\n`);
  let allPassed = true;
  for (const f of first.failed) {
    const again = run([f], 'again');
    console.log(`== retry of ${relative(process.cwd(), f)}: ${again.status === 0 ? 'passed' : 'FAILED again'}`);
    if (again.status !== 0) allPassed = false;
  }
  status = allPassed ? 0 : 1;
  console.log(allPassed ? `\n== RETRIED: ${names.join(', ')} failed once and passed on retry (see the first failure above)` : '\n== a retried file failed again');
}
rmSync(tmp, { recursive: true, force: true });
process.exit(status);
