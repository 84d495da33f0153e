// `tstack run` with [stack] workers = 2 (issue 11; docs/architecture.md "Workers"): an
// unmodified node:http app runs once per worker process, each on its own stack and its own
// AF_PACKET fanout queue. Kernel-side peers in the test namespace (198.18.211.0/24).
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, destroyNetns, requireRoot } from '../helpers/netns.js';
import { parseWrk } from '../../bench/http.js';
import { BIN, ROOT, ab, curl, runIn, startApp, stopAllApps, waitUntil, type RunningApp } from '../helpers/run-app.js';


after(stopAllApps);

const SUBNET = 211;

interface Workers { app: RunningApp; dir: string; sock: (i: number) => string }

async function startWorkers(prefix: string, driver: 'afpacket' | 'tap' = 'afpacket', env?: Record<string, string>): Promise<Workers> {
  const dir = mkdtempSync(join(tmpdir(), 'tstack-workers-'));
  const app = await startApp({
    prefix, subnet: SUBNET, app: 'test/fixtures/apps/workers-http.js', args: ['8080'], driver, workers: 2, ...(env && { env }),
    extraConfig: `[control]\nsocket = "${dir}/ctl.sock"\n`,
    ready: /listening pid \d+[\s\S]*listening pid \d+/, readyTimeoutMs: 60_000,
  });
  return { app, dir, sock: (i) => join(dir, `ctl.w${i}.sock`) };
}

/** A tool's JSON from worker i's control socket. */
function tool(w: Workers, i: number, args: string[]): unknown {
  return JSON.parse(execFileSync(process.execPath, [BIN, ...args, '--json', '--socket', w.sock(i)], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 }));
}

/** Connections each worker's TCP accepted so far (netstat -s). */
function accepts(w: Workers, i: number): number {
  const s = tool(w, i, ['netstat', '-s', '-p', 'tcp']) as Record<string, Record<string, number>>;
  const tcp = (s['tcp'] ?? s) as Record<string, number>;
  return tcp['connAccepts'] ?? NaN;
}

const step = (s: string) => { if (process.env['TSTACK_TEST_DEBUG']) process.stderr.write(`# ${s}\n`); };

const pidsIn = (text: string) => new Set([...text.matchAll(/from (\d+)/g)].map((m) => m[1]!));

test('2 workers: both serve an unmodified node:http app; ab and wrk, with and without keep-alive, get every response', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ab', 'curl', 'wrk'])) return;
  const w = await startWorkers('wk-serve');
  try {
    const url = `http://${w.app.stackIp}:8080/`;
    let seen = new Set<string>();
    for (let k = 0; k < 40 && seen.size < 2; k++) seen = new Set([...seen, ...pidsIn(await curl(w.app.ns, ['-s', '-m', '10', url]))]);
    assert.equal(seen.size, 2, `both workers answered: ${[...seen]}`);
    const close = await ab(w.app.ns, url, 2000, 20);
    assert.equal(close.complete, 2000); assert.equal(close.failed, 0, close.raw);
    const r = await runIn(w.app.ns, 'ab', ['-q', '-k', '-n', '2000', '-c', '20', url], { timeoutMs: 120_000 });
    assert.match(r.stdout, /Complete requests:\s+2000/);
    assert.match(r.stdout, /Failed requests:\s+0/);
    // wrk, keep-alive and `Connection: close`: every response a 2xx, no socket error.
    for (const extra of [[], ['-H', 'Connection: close']]) {
      const wr = await runIn(w.app.ns, 'wrk', ['-t1', '-c20', '-d3s', ...extra, url], { timeoutMs: 60_000 });
      const parsed = parseWrk(wr.stdout);
      assert.ok(parsed && parsed.requests > 100, `wrk ${extra.join(' ')}: ${wr.stdout}${wr.stderr}`);
      assert.equal(parsed.socketErrors, 0, wr.stdout);
      assert.equal(parsed.non2xx, 0, wr.stdout);
      t.diagnostic(`wrk ${extra.length ? 'Connection: close' : 'keep-alive'}: ${parsed.rps} req/s`);
    }
    // Each worker's own counters (its control socket) show it served.
    const a0 = accepts(w, 0), a1 = accepts(w, 1);
    assert.ok(a0 > 100 && a1 > 100, `accepted per worker: ${a0}, ${a1}`);
    t.diagnostic(`accepted per worker: ${a0} / ${a1}; ab close ${close.rps} req/s`);
    // A change made through worker 0's control socket reaches worker 1.
    execFileSync(process.execPath, [BIN, 'sysctl', 'net.inet.tcp.msl=15000', '--socket', w.sock(0)], { cwd: ROOT, timeout: 20_000 });
    const msl = () => JSON.stringify(tool(w, 1, ['sysctl', 'net.inet.tcp.msl']));
    await waitUntil(() => msl().includes('15000'), 20_000, 'worker 1 has the new msl');
  } finally {
    await w.app.stop();
    rmSync(w.dir, { recursive: true, force: true });
  }
});

test('2 workers: 1,000 outgoing connections from each worker to a kernel server all succeed; ARP learned by one worker is used by the other without a request', { timeout: 300_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl', 'socat', 'tshark'])) return;
  const w = await startWorkers('wk-dial');
  const echo = spawn('ip', ['netns', 'exec', w.app.ns, 'socat', 'TCP-LISTEN:7000,fork,reuseaddr,backlog=2048', 'EXEC:cat'], { stdio: 'ignore' });
  try {
    // The kernel pings the stack: its ARP request reaches worker 0 (ARP is not hashed), which
    // learns the kernel's MAC and passes it on; wait until worker 1 has it.
    await runIn(w.app.ns, 'ping', ['-c', '1', '-W', '5', w.app.stackIp]);
    const hasHost = (i: number) => JSON.stringify(tool(w, i, ['arp', '-a'])).includes(`"${w.app.hostIp}"`);
    await waitUntil(() => hasHost(0) && hasHost(1), 20_000, 'both workers know the kernel side');
    const cap = spawn('ip', ['netns', 'exec', w.app.ns, 'tshark', '-l', '-n', '-i', `${w.app.ifname}h`, '-f', 'arp', '-T', 'fields', '-e', 'arp.opcode', '-e', 'arp.src.proto_ipv4', '-e', 'arp.dst.proto_ipv4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let arpLines = '';
    cap.stdout.setEncoding('utf8').on('data', (d: string) => { arpLines += d; });
    let capErr = '';
    cap.stderr.setEncoding('utf8').on('data', (d: string) => { capErr += d; });
    await waitUntil(() => /Capturing on/.test(capErr), 30_000, 'tshark is capturing');
    try {
      const results = new Map<string, string>();
      const url = `http://${w.app.stackIp}:8080/dial?host=${w.app.hostIp}&port=7000&n=1000`;
      for (let k = 0; k < 20 && results.size < 2; k++) {
        const out = await curl(w.app.ns, ['-s', '-m', '200', url]);
        const m = /ok (\d+)\/(\d+) pid (\d+)/.exec(out);
        assert.ok(m, `dial answered: ${out}`);
        if (!results.has(m[3]!)) results.set(m[3]!, `${m[1]}/${m[2]}`);
      }
      assert.equal(results.size, 2, 'both workers dialled');
      for (const [pid, r] of results) assert.equal(r, '1000/1000', `worker ${pid}: ${r}`);
    } finally {
      // Let tshark flush its last block (a probe the stack answers), then stop it.
      await runIn(w.app.ns, 'ping', ['-c', '2', '-i', '0.2', w.app.stackIp]);
      cap.kill('SIGINT');
      await new Promise((r) => cap.on('close', r));
    }
    const requests = arpLines.split('\n').filter((l) => l.startsWith('1\t') && l.split('\t')[1] === w.app.stackIp && l.split('\t')[2] !== w.app.stackIp);
    assert.deepEqual(requests, [], 'no ARP request from the stack while both workers dialled');
  } finally {
    echo.kill();
    await w.app.stop();
    rmSync(w.dir, { recursive: true, force: true });
  }
});

test('2 workers: kill -9 of one during ab: a replacement serves, the survivor\'s keep-alive connection carries on, errors bounded; a handler that throws is replaced too', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ab', 'curl'])) return;
  const w = await startWorkers('wk-kill');
  try {
    const url = `http://${w.app.stackIp}:8080/`;
    const pidsOfWorkers = () => execFileSync('pgrep', ['-P', String(w.app.child.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    // A keep-alive client on one connection: its worker must not notice the other's death.
    const client = spawn('ip', ['netns', 'exec', w.app.ns, process.execPath, '-e', `
      const http = require('node:http');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let n = 0, errors = 0; const end = Date.now() + 8000;
      (function go() {
        if (Date.now() > end) { console.log('done ' + n + ' errors ' + errors); process.exit(0); }
        http.get({ host: '${w.app.stackIp}', port: 8080, path: '/', agent }, (res) => {
          let b = ''; res.on('data', (d) => b += d); res.on('end', () => { n++; if (n === 1) console.log('first ' + b.trim()); setTimeout(go, 20); });
        }).on('error', (e) => { errors++; console.log('error ' + e.message); setTimeout(go, 20); });
      })();`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let cout = '';
    client.stdout.setEncoding('utf8').on('data', (d: string) => { cout += d; });
    await waitUntil(() => /first hello from \d+/.test(cout), 20_000, 'the keep-alive client got its first answer');
    const survivor = /first hello from (\d+)/.exec(cout)![1]!;
    const victim = pidsOfWorkers().find((p) => p !== survivor)!;
    assert.ok(victim, 'the other worker exists');
    step(`survivor ${survivor}, victim ${victim}`);
    const load = runIn(w.app.ns, 'ab', ['-r', '-q', '-n', '3000', '-c', '10', url], { timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = performance.now();
    process.kill(Number(victim), 'SIGKILL');
    const before = (w.app.output().match(/listening pid/g) ?? []).length;
    await waitUntil(() => (w.app.output().match(/listening pid/g) ?? []).length > before, 20_000, 'a replacement listens');
    const upMs = performance.now() - killedAt;
    step(`replacement listening after ${Math.round(upMs)} ms`);
    // The replacement serves: new connections reach it.
    const fresh = [...w.app.output().matchAll(/listening pid (\d+)/g)].at(-1)![1]!;
    let served = false;
    for (let k = 0; k < 60 && !served; k++) served = pidsIn(await curl(w.app.ns, ['-s', '-m', '5', url])).has(fresh);
    const servedMs = performance.now() - killedAt;
    assert.ok(served, 'the replacement answered');
    step(`replacement served after ${Math.round(performance.now() - killedAt)} ms`);
    const r = await load;
    step('ab done');
    const failed = Number(/Failed requests:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
    const complete = Number(/Complete requests:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
    assert.equal(complete, 3000, r.stdout + r.stderr);
    // At most the connections the dead worker held (ab keeps 10 in flight), each counted once per way it failed.
    assert.ok(failed <= 30, `ab failures ${failed}: ${r.stdout}`);
    if (client.exitCode === null) await new Promise((res) => client.on('close', res));
    step('keep-alive client done');
    assert.match(cout, /done \d+ errors 0/, `the survivor's keep-alive client: ${cout}`);
    assert.match(w.app.output(), new RegExp(`worker \\d \\(pid ${victim}\\) killed by SIGKILL; starting a replacement \\(restart 1\\)`));
    t.diagnostic(`replacement listening ${Math.round(upMs)} ms after kill -9, serving by ${Math.round(servedMs)} ms; ab failed ${failed}/3000`);

    // A handler that throws kills its process (as it would without tstack): replaced as well.
    for (let k = 0; k < 10 && !/exited with code 1; starting a replacement/.test(w.app.output()); k++) {
      await curl(w.app.ns, ['-s', '-m', '5', `${url}crash`]).catch(() => '');
    }
    await w.app.waitForOutput(/exited with code 1; starting a replacement \(restart 2\)/, 20_000);
    await waitUntil(() => (w.app.output().match(/listening pid/g) ?? []).length >= 4, 20_000, 'the second replacement listens');
    let both = new Set<string>();
    for (let k = 0; k < 60 && both.size < 2; k++) both = new Set([...both, ...pidsIn(await curl(w.app.ns, ['-s', '-m', '5', url]))]);
    assert.equal(both.size, 2, 'two workers serve again');

    // A worker whose loop stops (a handler that never returns) is killed by the watchdog and replaced.
    void curl(w.app.ns, ['-s', '-m', '3', `${url}stall`]).catch(() => '');
    await w.app.waitForOutput(/stalled \(its loop did not run for \d+ ms\); starting a replacement \(restart 3\)/, 30_000);
    await waitUntil(() => (w.app.output().match(/listening pid/g) ?? []).length >= 5, 20_000, 'the third replacement listens');
    both = new Set<string>();
    for (let k = 0; k < 60 && both.size < 2; k++) both = new Set([...both, ...pidsIn(await curl(w.app.ns, ['-s', '-m', '5', url]))]);
    assert.equal(both.size, 2, 'two workers serve after the stall');
  } finally {
    const r = await w.app.stop();
    // SIGTERM stops every worker; the run dies of it, as one program would.
    assert.ok(r.signal === 'SIGTERM' || r.code === 143, `exit ${JSON.stringify(r)}`);
    rmSync(w.dir, { recursive: true, force: true });
  }
});

test('2 workers on a multi-queue TAP: both serve, every dial succeeds, SYNs the kernel queued on the wrong worker are steered to their owner', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ab', 'curl', 'socat'])) return;
  const w = await startWorkers('wk-tap', 'tap', { TSTACK_DEBUG: '1' });
  const echo = spawn('ip', ['netns', 'exec', w.app.ns, 'socat', 'TCP-LISTEN:7000,fork,reuseaddr,backlog=2048', 'EXEC:cat'], { stdio: 'ignore' });
  try {
    const url = `http://${w.app.stackIp}:8080/`;
    const r = await ab(w.app.ns, url, 1000, 10);
    assert.equal(r.complete, 1000); assert.equal(r.failed, 0, r.raw);
    const a0 = accepts(w, 0), a1 = accepts(w, 1);
    assert.ok(a0 > 50 && a1 > 50, `accepted per worker: ${a0}, ${a1}`);
    const results = new Map<string, string>();
    for (let k = 0; k < 20 && results.size < 2; k++) {
      const m = /ok (\d+)\/(\d+) pid (\d+)/.exec(await curl(w.app.ns, ['-s', '-m', '120', `${url}dial?host=${w.app.hostIp}&port=7000&n=300`]));
      if (m && !results.has(m[3]!)) results.set(m[3]!, `${m[1]}/${m[2]}`);
    }
    assert.equal(results.size, 2);
    for (const [pid, res] of results) assert.equal(res, '300/300', `worker ${pid}`);
  } finally {
    echo.kill();
    await w.app.stop();
    rmSync(w.dir, { recursive: true, force: true });
  }
  const m = /frames steered (\d+)/.exec(w.app.output());
  assert.ok(m && Number(m[1]) > 0, `the steering fallback carried frames: ${m?.[0]}`);
});

test('node --import tstack/register with workers = 2 supervises like tstack run: the program runs once per worker', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl'])) return;
  const ns = createNetns('wk-reg');
  const dir = mkdtempSync(join(tmpdir(), 'tstack-workers-reg-'));
  const ifname = `wr${process.pid % 100000}`;
  const config = join(dir, 'tstack.toml');
  writeFileSync(config, `[stack]\nworkers = 2\n[control]\nsocket = "${dir}/ctl.sock"\n[[port]]\ndriver = "afpacket"\nifname = "${ifname}"\naddr = "198.18.${SUBNET}.2/24"\nhost_addr = "198.18.${SUBNET}.1/24"\nnetns = "${ns}"\n`);
  const child = spawn(process.execPath, ['--import', join(ROOT, 'dist', 'src', 'api', 'register.js'), 'test/fixtures/apps/workers-http.js', '8080'], {
    cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSTACK_CONFIG: config },
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('close', (code, signal) => r({ code, signal })));
  try {
    await waitUntil(() => (out.match(/listening pid/g) ?? []).length === 2, 60_000, `two workers listen (output: ${out})`);
    let seen = new Set<string>();
    for (let k = 0; k < 40 && seen.size < 2; k++) seen = new Set([...seen, ...pidsIn(await curl(ns, ['-s', '-m', '10', `http://198.18.${SUBNET}.2:8080/`]))]);
    assert.equal(seen.size, 2, `both workers answered: ${[...seen]}`);
    assert.ok(!seen.has(String(child.pid)), 'the supervisor does not run the program');
    child.kill('SIGTERM');
    const r = await exited;
    assert.ok(r.signal === 'SIGTERM' || r.code === 143, `exit ${JSON.stringify(r)}`);
  } finally {
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
    destroyNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});
