#!/usr/bin/env node
// Node-compatibility harness: runs Node's own test/parallel files (net, dgram, http, tls, https)
// on plain Node and with `--import tstack/register`, and the `ws` package's own suite the same
// way, and prints how many pass each way and which files pass plain but fail on tstack.
//
//   npm run compat:node -- --node-test DIR [--ws DIR] [options]
//
// Neither test tree is part of this repository. Node's (test/common, test/parallel,
// test/fixtures) comes from the public copy denoland/node_test: take the commit that vendors
// the Node release nearest to `node --version` (v20.11.1 for Node 20) and extract its `test/`
// folder, so that DIR/test/parallel exists:
//   git -C node_test archive <commit> test/common test/parallel | tar -x -C DIR
//   (and test/fixtures; a few large fixture files may be missing from a copy: no test here needs them)
// ws's comes from websockets/ws at the tag of node_modules/ws (or the nearest): extract the
// whole tree (lib/, test/, package.json) into a folder and pass it as --ws. Its tests run
// with mocha when `mocha` resolves from this package, else with the small mocha-style shim at
// the end of this file over node:test (the same shim for both runs, so the comparison holds).
//
// Options (environment variables in brackets):
//   --node-test DIR     Node's test tree [NODE_TEST_DIR]
//   --ws DIR            the ws source tree [WS_SRC_DIR]
//   --filter RE         which test/parallel files (default ^test-(net|dgram|http|tls|https)[-.])
//   --files a,b         exactly these files (names in test/parallel)
//   --sample N          a seeded random sample of N of the selected files (--seed S, default 1)
//   --jobs N            files run at once (default 2)
//   --timeout S         per file and mode, seconds (default 30)
//   --plain-cache FILE  reuse plain-Node results from FILE (JSON, written when absent)
//   --json FILE         write every result as JSON
//   --verbose           print each failure as it happens (instead of one mark per file)
//   --tstack DIR        the tstack package whose dist/ to test (default: this one); a copy
//                       keeps a long run steady while this tree is rebuilt
//   --config FILE       extra TOML appended to the generated tstack.toml (say, an [api] table)
//
// Under tstack each run gets the configuration a new user writes first: one TAP port, the
// stack at 198.18.X.2/24 and the kernel side at 198.18.X.1/24 inside a namespace this script
// creates (one per job slot, named with the pid; removed at the end), and no [api] table, so
// the default routing policy. Opening a TAP device needs root.
//
// A file passes when it exits with status 0 within the timeout. Each file's `// Flags:` line
// is passed to node, as Node's own test runner does.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** The tstack package under test (--tstack): its built dist/ provides the register. */
let REGISTER = pathToFileURL(join(ROOT, 'dist/src/api/register.js')).href;

// ---- arguments ---------------------------------------------------------------------------

function parseArgs(argv) {
  const o = {
    nodeTest: process.env.NODE_TEST_DIR ?? null, ws: process.env.WS_SRC_DIR ?? null,
    filter: '^test-(net|dgram|http|tls|https)[-.]', files: null, sample: 0, seed: 1,
    jobs: 2, timeout: 30, plainCache: null, json: null, config: null, verbose: false, tstack: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { if (i + 1 >= argv.length) die(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--node-test': o.nodeTest = v(); break;
      case '--ws': o.ws = v(); break;
      case '--filter': o.filter = v(); break;
      case '--files': o.files = v().split(',').filter(Boolean); break;
      case '--sample': o.sample = Number(v()); break;
      case '--seed': o.seed = Number(v()); break;
      case '--jobs': o.jobs = Math.max(1, Number(v())); break;
      case '--timeout': o.timeout = Number(v()); break;
      case '--plain-cache': o.plainCache = v(); break;
      case '--json': o.json = v(); break;
      case '--config': o.config = v(); break;
      case '--tstack': o.tstack = v(); break;
      case '-v': case '--verbose': o.verbose = true; break;
      case '-h': case '--help':
        process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 40).filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
        process.exit(0);
      default: die(`unknown argument ${a} (--help)`);
    }
  }
  if (!o.nodeTest && !o.ws) die('nothing to run: pass --node-test DIR (Node\'s test tree) and/or --ws DIR (ws source); --help says how to get them');
  return o;
}

function die(msg) { process.stderr.write(`node-compat: ${msg}\n`); process.exit(2); }

// ---- running one program -----------------------------------------------------------------

/** Runs node with args in cwd; resolves { code, signal, timedOut, stdout, stderr, ms }. */
function runNode(args, { cwd, env, timeoutMs }) {
  return new Promise((done) => {
    const t0 = Date.now();
    // detached: its own process group, so a timeout ends the test and every child it made.
    const p = spawn(process.execPath, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', timedOut = false;
    const cap = (s, d) => (s.length < 1 << 20 ? s + d : s);
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout = cap(stdout, d); });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr = cap(stderr, d); });
    const kill = () => { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } };
    const timer = setTimeout(() => { timedOut = true; kill(); }, timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      kill(); // whatever the test left running in its group
      done({ code, signal, timedOut, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** The line that best says why a run failed. */
function firstErrorLine(r) {
  if (r.timedOut) return `timeout (${Math.round(r.ms / 1000)} s)`;
  const lines = (r.stderr + '\n' + r.stdout).split('\n').map((l) => l.trim()).filter(Boolean);
  // An error's own first line ("TypeError [ERR_X]: …"), not the source line printed above it.
  const pick = lines.find((l) => /^(Uncaught )?([A-Z]\w*)?(Error|Exception)\b( \[\w+\])?:?/.test(l))
    ?? lines.find((l) => /^not ok /.test(l))
    ?? lines.find((l) => !/^(at |node:|file:|\^|Node\.js v)/.test(l) && !/\bthrow\b/.test(l));
  const what = pick ? pick.slice(0, 200) : '(no output)';
  return r.signal ? `${what} [signal ${r.signal}]` : `${what} [exit ${r.code}]`;
}

/** The `// Flags:` of a Node test file (test/common/index.js reads the same line). */
function testFlags(file) {
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(1500);
  const n = readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  const m = /\/\/ Flags:\s+(--[^\r\n]*)/.exec(buf.toString('utf8', 0, n));
  return m ? m[1].split(/\s+/).filter(Boolean) : [];
}

// ---- the stack's side: one namespace and config per job slot ----------------------------

let netns = null; // dist/src/runtime/netns.js, loaded only when tstack runs are needed

async function makeSlots(n, extraConfig) {
  netns = await import(pathToFileURL(join(ROOT, 'dist/src/runtime/netns.js')).href);
  if (!netns.isRoot()) die('the tstack runs need root (TAP devices, network namespaces)');
  const dir = mkdtempSync(join(tmpdir(), 'tstack-node-compat-'));
  const slots = [];
  for (let i = 0; i < n; i++) {
    const ns = netns.createNetns(`nc${i}`);
    slots.push({ index: i, ns, dir, runs: 0, extraConfig });
  }
  const cleanup = () => { for (const s of slots) netns.destroyNetns(s.ns); rmSync(dir, { recursive: true, force: true }); };
  return { slots, cleanup };
}

/** A fresh config for one run: a new TAP name each time (a killed run's device may linger). */
function slotConfig(slot) {
  const ifname = `nc${process.pid % 10000}s${slot.index}r${slot.runs++ % 100}`;
  const file = join(slot.dir, `slot${slot.index}.toml`);
  writeFileSync(file, `# written by scripts/node-compat.js: the first configuration a user writes
[[port]]
driver = "tap"
ifname = "${ifname}"
addr = "198.18.${200 + slot.index}.2/24"
host_addr = "198.18.${200 + slot.index}.1/24"
netns = "${slot.ns}"
${slot.extraConfig ?? ''}
`);
  return file;
}

// ---- a pool of job slots -----------------------------------------------------------------

async function pool(items, slots, work, onDone) {
  let next = 0;
  await Promise.all(slots.map(async (slot) => {
    while (next < items.length) {
      const i = next++;
      onDone(i, await work(items[i], slot));
    }
  }));
}

function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- Node's test/parallel ----------------------------------------------------------------

async function nodeSuite(o, slots) {
  const root = resolve(o.nodeTest);
  const par = join(root, 'test', 'parallel');
  if (!existsSync(par)) die(`${par} does not exist (--node-test names the folder that holds test/)`);
  let files = o.files ?? readdirSync(par).filter((f) => new RegExp(o.filter).test(f) && /\.m?js$/.test(f)).sort();
  if (o.sample > 0 && o.sample < files.length) {
    const rnd = mulberry32(o.seed);
    const a = [...files];
    for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; }
    files = a.slice(0, o.sample).sort();
  }
  const cache = o.plainCache && existsSync(o.plainCache) ? JSON.parse(readFileSync(o.plainCache, 'utf8')) : {};
  const baseEnv = { ...process.env, NODE_TEST_KNOWN_GLOBALS: process.env.NODE_TEST_KNOWN_GLOBALS ?? '' };
  delete baseEnv.TSTACK_CONFIG; delete baseEnv.TSTACK_REGISTER_PID; delete baseEnv.NODE_OPTIONS;
  if (baseEnv.NODE_TEST_KNOWN_GLOBALS === '') delete baseEnv.NODE_TEST_KNOWN_GLOBALS;
  const timeoutMs = o.timeout * 1000;
  const results = new Array(files.length);
  let finished = 0;
  process.stderr.write(`node-compat: ${files.length} files from ${par}, ${slots.length} at a time, ${o.timeout} s each\n`);
  await pool(files, slots, async (f, slot) => {
    const file = join(par, f);
    const flags = testFlags(file);
    // test/common/tmpdir.js: one temporary folder per slot.
    const env = { ...baseEnv, TEST_THREAD_ID: String(slot.index) };
    let plain = cache[f];
    if (!plain) {
      const r = await runNode([...flags, file], { cwd: root, env, timeoutMs });
      plain = { pass: r.code === 0 && !r.timedOut, error: r.code === 0 && !r.timedOut ? null : firstErrorLine(r), ms: r.ms };
      cache[f] = plain;
      if (o.plainCache) writeFileSync(o.plainCache, JSON.stringify(cache, null, 1));
    }
    const r = await runNode([...flags, '--import', REGISTER, file], { cwd: root, env: { ...env, TSTACK_CONFIG: slotConfig(slot) }, timeoutMs });
    const tstack = { pass: r.code === 0 && !r.timedOut, error: r.code === 0 && !r.timedOut ? null : firstErrorLine(r), ms: r.ms };
    return { file: f, plain, tstack };
  }, (i, res) => {
    results[i] = res;
    finished++;
    if (o.verbose) {
      if (res.plain.pass && !res.tstack.pass) process.stderr.write(`FAIL ${res.file}: ${res.tstack.error}\n`);
    } else {
      const mark = res.plain.pass ? (res.tstack.pass ? '.' : 'F') : (res.tstack.pass ? '+' : 'x');
      process.stderr.write(mark + (finished % 80 === 0 ? ` ${finished}\n` : ''));
    }
  });
  process.stderr.write('\n');
  if (o.plainCache) writeFileSync(o.plainCache, JSON.stringify(cache, null, 1));

  const plainPass = results.filter((r) => r.plain.pass);
  const both = plainPass.filter((r) => r.tstack.pass);
  const fails = plainPass.filter((r) => !r.tstack.pass);
  const ratio = plainPass.length ? both.length / plainPass.length : 0;
  const out = [];
  out.push('Node test/parallel (' + o.filter + (o.sample ? `, sample ${o.sample} seed ${o.seed}` : '') + ')');
  if (fails.length) {
    out.push(`pass on plain Node, fail under tstack (${fails.length}):`);
    for (const r of fails) out.push(`  ${r.file}: ${r.tstack.error}`);
  }
  const plainFail = results.filter((r) => !r.plain.pass);
  if (plainFail.length) {
    out.push(`fail on plain Node too (not counted, ${plainFail.length}):`);
    for (const r of plainFail) out.push(`  ${r.file}: ${r.plain.error}`);
  }
  out.push(`total ${results.length}  pass plain ${plainPass.length}  pass tstack ${both.length} (of those)  ratio ${(ratio * 100).toFixed(1)}%`);
  process.stdout.write(out.join('\n') + '\n');
  return { suite: 'node', total: results.length, plainPass: plainPass.length, tstackPass: both.length, ratio, results };
}

// ---- ws's own suite ----------------------------------------------------------------------

const require = createRequire(import.meta.url);

function mochaBin() {
  try { return require.resolve('mocha/bin/mocha.js'); } catch { return null; }
}

/** Test titles and outcomes from mocha's or node:test's TAP output. */
function parseTap(text) {
  const tests = new Map();
  const stack = [];
  for (const line of text.split('\n')) {
    // node:test nests subtests by indentation ("# Subtest: name" then "ok N - name").
    // mocha's TAP reporter writes "ok 1 title" (no dash), node:test's "ok 1 - title".
    const m = /^(\s*)(not ok|ok) \d+ (?:- )?(.*?)(\s+# (SKIP|TODO).*)?$/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    stack.length = depth;
    const name = [...stack, m[3]].join(' > ');
    stack[depth] = m[3];
    if (m[5] === 'SKIP' || m[5] === 'TODO') tests.set(name, 'skip');
    else tests.set(name, m[2] === 'ok' ? 'pass' : 'fail');
  }
  // Parents (describe blocks) are reported too in node:test: keep the leaves only.
  for (const k of [...tests.keys()]) for (const j of tests.keys()) if (j !== k && j.startsWith(k + ' > ')) { tests.delete(k); break; }
  return tests;
}

async function wsSuite(o, slots) {
  const root = resolve(o.ws);
  const testDir = join(root, 'test');
  if (!existsSync(join(testDir, 'websocket.test.js'))) die(`${testDir}/websocket.test.js does not exist (--ws names the ws source tree)`);
  const files = readdirSync(testDir).filter((f) => f.endsWith('.test.js')).sort();
  const mocha = mochaBin();
  let shim = null;
  if (!mocha) {
    shim = join(mkdtempSync(join(tmpdir(), 'tstack-ws-shim-')), 'mocha-shim.cjs');
    writeFileSync(shim, MOCHA_SHIM);
  }
  const env = { ...process.env };
  delete env.TSTACK_CONFIG; delete env.TSTACK_REGISTER_PID; delete env.NODE_OPTIONS;
  const timeoutMs = Math.max(o.timeout, 120) * 1000;
  const argsFor = (f) => mocha
    ? [mocha, '--reporter', 'tap', '--throw-deprecation', join('test', f)]
    : ['--throw-deprecation', '--test-reporter=tap', shim, join('test', f)];
  const results = new Array(files.length);
  process.stderr.write(`node-compat: ws suite, ${files.length} files from ${testDir} with ${mocha ? 'mocha' : 'the mocha-style shim over node:test (mocha is not installed)'}\n`);
  await pool(files, slots, async (f, slot) => {
    const plain = await runNode(argsFor(f), { cwd: root, env, timeoutMs });
    const ts = await runNode(['--import', REGISTER, ...argsFor(f)], { cwd: root, env: { ...env, TSTACK_CONFIG: slotConfig(slot) }, timeoutMs });
    return { file: f, plain, tstack: ts };
  }, (i, r) => { results[i] = r; process.stderr.write('.'); });
  process.stderr.write('\n');
  let plainPass = 0, tstackPass = 0;
  const regress = [];
  const out = [`ws suite (${o.ws}, ${mocha ? 'mocha' : 'mocha-style shim over node:test'})`];
  for (const r of results) {
    const p = parseTap(r.plain.stdout), t = parseTap(r.tstack.stdout);
    let pp = 0, tp = 0;
    for (const [name, s] of p) {
      if (s !== 'pass') continue;
      pp++;
      if (t.get(name) === 'pass') tp++;
      else regress.push(`  ${r.file}: ${name}: ${t.get(name) ?? 'did not run'}`);
    }
    plainPass += pp; tstackPass += tp;
    const exitNote = (x) => (x.timedOut ? 'did not exit (timeout)' : x.signal ? `signal ${x.signal}` : `exit ${x.code}`);
    out.push(`  ${r.file}: plain ${pp} pass (${exitNote(r.plain)}), tstack ${tp} of those (${exitNote(r.tstack)})` +
      (r.tstack.code !== 0 || r.tstack.timedOut ? ` — ${firstErrorLine(r.tstack)}` : ''));
  }
  if (regress.length) out.push(`pass plain, not under tstack (${regress.length}):`, ...regress.slice(0, 100));
  out.push(`ws: pass plain ${plainPass}  pass tstack ${tstackPass} (of those)  ratio ${plainPass ? ((tstackPass / plainPass) * 100).toFixed(1) : '0'}%`);
  process.stdout.write(out.join('\n') + '\n');
  if (shim) rmSync(join(shim, '..'), { recursive: true, force: true });
  return { suite: 'ws', plainPass, tstackPass, files: results.map((r) => ({ file: r.file, plain: { code: r.plain.code, timedOut: r.plain.timedOut }, tstack: { code: r.tstack.code, timedOut: r.tstack.timedOut, error: firstErrorLine(r.tstack) } })) };
}

// mocha's BDD interface (describe/it/before/after/beforeEach/afterEach, `done` callbacks,
// this.skip(), this.timeout()) over node:test, for when mocha is not installed. Loaded as the
// main module with the test file as its argument.
const MOCHA_SHIM = String.raw`'use strict';
const t = require('node:test');
const path = require('node:path');
const SKIP = Symbol('skip');
function ctx(tc) {
  return {
    skip() { if (tc && tc.skip) tc.skip(); throw SKIP; },
    timeout() { return this; }, slow() { return this; }, retries() { return this; },
  };
}
function wrap(fn) {
  if (!fn) return undefined;
  if (fn.length > 0) {
    return function (tc, done) {
      let called = false;
      const once = (err) => { if (called) return; called = true; done(err); };
      try { fn.call(ctx(tc), once); } catch (e) { if (e === SKIP) once(); else once(e); }
    };
  }
  return async function (tc) {
    try { await fn.call(ctx(tc)); } catch (e) { if (e !== SKIP) throw e; }
  };
}
function suite(name, fn) { return t.describe(name, function () { return fn.call(ctx(null)); }); }
suite.skip = (name, fn) => t.describe(name, { skip: true }, () => {});
suite.only = suite;
global.describe = suite;
global.context = suite;
function test(name, fn) { return fn ? t.it(name, wrap(fn)) : t.it(name, { todo: true }); }
test.skip = (name) => t.it(name, { skip: true }, () => {});
test.only = test;
global.it = test;
global.specify = test;
global.before = (fn) => t.before(wrap(fn));
global.after = (fn) => t.after(wrap(fn));
global.beforeEach = (fn) => t.beforeEach(wrap(fn));
global.afterEach = (fn) => t.afterEach(wrap(fn));
require(path.resolve(process.argv[2]));
`;

// ---- main --------------------------------------------------------------------------------

const o = parseArgs(process.argv.slice(2));
if (o.tstack) REGISTER = pathToFileURL(join(resolve(o.tstack), 'dist/src/api/register.js')).href;
if (!existsSync(fileURLToPath(REGISTER))) die('dist/ is not built: run `npm run build` (npm run compat:node does)');
const { slots, cleanup } = await makeSlots(o.jobs, o.config ? readFileSync(o.config, 'utf8') : null);
const report = {};
try {
  if (o.nodeTest) report.node = await nodeSuite(o, slots);
  if (o.ws) report.ws = await wsSuite(o, slots);
} finally {
  cleanup();
}
if (o.json) writeFileSync(o.json, JSON.stringify(report, null, 1));
