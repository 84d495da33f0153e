// The benchmark harness end to end: `run.js icmp-echo-memory --quick --json` prints result lines a
// script can read (the fields the issue names), with figures that make sense. Not a speed test.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatJson, formatTable, parseArgs } from '../../bench/run.js';
import { result } from '../../bench/types.js';

// dist/test/unit/ -> dist/bench/run.js
const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

function runBench(args: string[]) {
  return spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', timeout: 60_000 });
}

test('icmp-echo-memory --quick --json prints one parsable result line with sane figures', { timeout: 60_000 }, () => {
  const r = runBench(['icmp-echo-memory', '--quick', '--json']);
  assert.equal(r.status, 0, `exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length >= 1, `no result lines; stderr:\n${r.stderr}`);
  for (const line of lines) {
    const o = JSON.parse(line) as Record<string, unknown>;
    assert.deepEqual(Object.keys(o), ['bench', 'metric', 'value', 'unit', 'reference', 'ratio', 'better', 'referenceLabel']);
    assert.equal(o.bench, 'icmp-echo-memory');
    assert.equal(o.metric, 'echo-frames');
    assert.equal(o.unit, 'frames/s');
    assert.equal(o.better, 'higher');
    assert.equal(typeof o.referenceLabel, 'string');
    assert.match(o.referenceLabel as string, /dgram/);
    const value = o.value as number, reference = o.reference as number, ratio = o.ratio as number;
    // Even a slow, loaded machine moves more than 1,000 echo frames per second in memory.
    assert.ok(Number.isFinite(value) && value > 1000, `value ${value}`);
    assert.ok(Number.isFinite(reference) && reference > 1000, `reference ${reference}`);
    assert.ok(Math.abs(ratio - value / reference) <= 1e-3 * (value / reference), `ratio ${ratio} vs ${value}/${reference}`);
  }
  // stdout carries only results; the machine line goes to stderr.
  assert.match(r.stderr, /machine: .+ \(\d+ cores\), node v\d+/);
});

test('the table shows the figure, the reference with what it is, the ratio and the machine', { timeout: 60_000 }, () => {
  const r = runBench(['icmp-echo-memory', '--quick']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const head = lines.find((l) => l.startsWith('| bench'));
  assert.ok(head, r.stdout);
  assert.deepEqual(head.split('|').map((c) => c.trim()).filter(Boolean), ['bench', 'metric', 'tstack', 'reference (what it is)', 'ratio', 'unit']);
  const row = lines.find((l) => l.startsWith('| icmp-echo-memory'));
  assert.ok(row, r.stdout);
  const cells = row.split('|').map((c) => c.trim());
  assert.match(cells[4]!, /\(node dgram/);
  assert.match(cells[5]!, /^\d+\.\d\dx \(higher is better\)$/);
  assert.equal(cells[6], 'frames/s');
  assert.ok(lines.some((l) => /^machine: .+ \(\d+ cores\), node v\d+.*, Linux /.test(l)), r.stdout);
});

test('tcp-bulk-memory and tcp-connect-close-memory --quick --json print their result lines with sane figures', { timeout: 120_000 }, () => {
  const r = runBench(['tcp-bulk-memory', 'tcp-connect-close-memory', '--quick', '--json']);
  assert.equal(r.status, 0, `exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const rows = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(rows.map((o) => [o.bench, o.metric, o.unit, o.better]), [
    ['tcp-bulk-memory', 'bulk', 'MB/s', 'higher'],
    ['tcp-connect-close-memory', 'connect-close', 'µs', 'lower'],
  ]);
  for (const o of rows) {
    assert.deepEqual(Object.keys(o), ['bench', 'metric', 'value', 'unit', 'reference', 'ratio', 'better', 'referenceLabel']);
    assert.match(o.referenceLabel as string, /node net on kernel loopback/);
    const value = o.value as number, reference = o.reference as number, ratio = o.ratio as number;
    assert.ok(Number.isFinite(value) && value > 0, `value ${value}`);
    assert.ok(Number.isFinite(reference) && reference > 0, `reference ${reference}`);
    assert.ok(Math.abs(ratio - value / reference) <= 1e-3 * (value / reference), `ratio ${ratio} vs ${value}/${reference}`);
  }
  // Loose floors a loaded CI machine still clears: 20 MB/s in memory, a cycle within 5 ms.
  assert.ok((rows[0]!.value as number) > 20, `bulk ${rows[0]!.value} MB/s`);
  assert.ok((rows[1]!.value as number) < 5000, `connect+close ${rows[1]!.value} µs`);
});

test('workers-memory --quick --json: N pair processes in the same windows, wall and per-CPU-second figures', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [RUN, 'workers-memory', '--quick', '--json'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, `exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const rows = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const n = Number(/^bulk-(\d+)w$/.exec(rows[0]!.metric as string)?.[1]);
  assert.ok(n >= 2, `metric ${rows[0]!.metric}`);
  assert.deepEqual(rows.map((o) => [o.metric, o.unit]), [
    [`bulk-${n}w`, 'MB/s'], [`connect-close-${n}w`, 'cycles/s'], [`bulk-per-cpu-${n}w`, 'MB/CPU-s'], [`connect-close-per-cpu-${n}w`, 'cycles/CPU-s'],
  ]);
  for (const o of rows) {
    assert.equal(o.bench, 'workers-memory');
    assert.match(o.referenceLabel as string, /one pair/);
    assert.ok(Number.isFinite(o.value) && (o.value as number) > 0 && Number.isFinite(o.reference) && (o.reference as number) > 0, JSON.stringify(o));
  }
  // The pair processes report how they warmed up and what the control loop gave.
  assert.match(r.stderr, /workers-memory: \d+ warm-up round\(s\)/);
  assert.match(r.stderr, /control \(compute loop, same windows\)/);
});

test('an unknown benchmark name exits 2 and lists the available ones', () => {
  const r = runBench(['no-such-bench', '--json']);
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /unknown benchmark\(s\): no-such-bench; available: .*icmp-echo-memory.*tap-ping/);
});

test('result() rounds to 4 significant digits and derives the ratio from the rounded figures', () => {
  const x = result({ bench: 'b', metric: 'm', value: 123456.7, unit: 'frames/s', reference: 98765.4, referenceLabel: 'ref', better: 'higher' });
  assert.equal(x.value, 123500);
  assert.equal(x.reference, 98770);
  assert.equal(x.ratio, Number((123500 / 98770).toFixed(4)));
  const none = result({ bench: 'b', metric: 'm', value: 5, unit: 'µs', reference: null, referenceLabel: 'none', better: 'lower' });
  assert.equal(none.ratio, null);
  assert.match(formatTable([none]), /\| b +\| m +\| 5\.00 +\| - \(none\) +\| - +\| µs +\|/);
  assert.equal(formatJson(none), '{"bench":"b","metric":"m","value":5,"unit":"µs","reference":null,"ratio":null,"better":"lower","referenceLabel":"none"}');
});

test('parseArgs separates names from flags and refuses unknown options', () => {
  assert.deepEqual(parseArgs(['a', '--json', 'b', '--quick']), { names: ['a', 'b'], json: true, quick: true, list: false, help: false });
  assert.throws(() => parseArgs(['--fast']), /unknown option --fast/);
});
