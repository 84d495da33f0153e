// Devices tstack does not own, and restarts after a crash (TAP and AF_PACKET, examples/hello-http
// under `tstack run`): a config naming someone else's interface is refused and the interface
// survives; a second instance with the first one's config is refused while the first keeps
// serving; after `kill -9` of the program or of `tstack run`, the next start serves at once
// (a dead run's veth is replaced, the program dies with its `tstack run`).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AfPacketDriver, kernelEndName } from '../../src/driver/afpacket.js';
import { TapDriver } from '../../src/driver/tap.js';
import { DeviceOwnershipError } from '../../src/driver/ownership.js';
import { createNetns, destroyAllNetns, destroyNetns, ipIn, requireRoot, run } from '../helpers/netns.js';
import { BIN, ROOT, runIn } from '../helpers/run-app.js';

// A port of our own: under `tstack run` a server on '*' also listens on the kernel's loopback,
// where other test runs on this machine may hold the usual 8080.
const PORT = String(20000 + (process.pid % 20000));
const started = new Set<ChildProcess>();
const dirs: string[] = [];
after(() => {
  for (const c of started) { try { process.kill(-c.pid!, 'SIGKILL'); } catch { /* gone */ } }
  destroyAllNetns();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let counter = 0;
const uniq = (p: string) => `${p}${process.pid % 100000}x${counter++}`;
const exists = (ns: string | undefined, dev: string) => {
  try { run('ip', [...(ns ? ['-n', ns] : []), 'link', 'show', 'dev', dev]); return true; } catch { return false; }
};

interface Launched { child: ChildProcess; out: () => string; exited: Promise<number | string> }

/** `tstack run` of hello-http on `config`, in its own process group. */
function launch(config: string): Launched {
  const child = spawn(process.execPath, [BIN, 'run', '--config', config, 'examples/hello-http/server.js'], {
    cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORT },
  });
  started.add(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<number | string>((r) => child.on('close', (code, sig) => { started.delete(child); r(code ?? sig ?? -1); }));
  return { child, out: () => out, exited };
}

/** Polls an HTTP GET from ns until it answers; returns ms from `since`, or throws after `ms`. */
async function servesAfter(ns: string, ip: string, since: number, ms = 20_000): Promise<number> {
  while (Date.now() - since < ms) {
    const r = await runIn(ns, 'curl', ['-s', '--max-time', '0.5', `http://${ip}:${PORT}/`], { timeoutMs: 3000 });
    if (r.code === 0 && r.stdout === 'Hello from tstack\n') return Date.now() - since;
    await sleep(25);
  }
  throw new Error(`no answer from ${ip}:${PORT} within ${ms} ms`);
}

/** The program `tstack run` started (its only child). */
function programPid(runPid: number): number {
  for (let i = 0; i < 100; i++) {
    try {
      const kids = readFileSync(`/proc/${runPid}/task/${runPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      if (kids.length > 0) return kids[0]!;
    } catch { /* not yet */ }
  }
  throw new Error(`tstack run (pid ${runPid}) has no child`);
}

const alive = (pid: number) => { try { process.kill(pid, 0); return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };

function setup(driver: 'tap' | 'afpacket', subnet: number): { ns: string; ifname: string; config: string; ip: string } {
  const ns = createNetns(`own-${driver === 'tap' ? 't' : 'a'}`);
  const dir = mkdtempSync(join(tmpdir(), 'tstack-own-'));
  dirs.push(dir);
  const ifname = uniq(driver === 'tap' ? 'ot' : 'oa');
  const config = join(dir, 'tstack.toml');
  writeFileSync(config, `[[port]]
driver = "${driver}"
ifname = "${ifname}"
addr = "198.18.${subnet}.2/24"
host_addr = "198.18.${subnet}.1/24"
netns = "${ns}"
`);
  return { ns, ifname, config, ip: `198.18.${subnet}.2` };
}

describe('devices tstack does not own', () => {
  test('AF_PACKET: a veth (or its kernel end) that tstack did not create is refused by name and left alone', (t) => {
    if (!requireRoot(t, ['ip'])) return;
    const ns = createNetns('own-foreign');
    t.after(() => destroyNetns(ns));
    const name = uniq('of');
    ipIn(ns, ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
    assert.throws(() => AfPacketDriver.open({ ifname: name, netns: ns, hostAddr: '198.18.182.1/24' }),
      (e: Error) => e instanceof DeviceOwnershipError && new RegExp(`^${name} exists in network namespace ${ns} and was not created by tstack`).test(e.message));
    assert.ok(exists(ns, name) && exists(ns, `${name}p`), 'the foreign pair is still there');
    // Only the name the driver would give the kernel end is taken.
    const other = uniq('og');
    ipIn(ns, ['link', 'add', kernelEndName(other), 'type', 'veth', 'peer', 'name', `${other}q`]);
    assert.throws(() => AfPacketDriver.open({ ifname: other, netns: ns, hostAddr: '198.18.182.1/24' }), /was not created by tstack/);
    assert.ok(exists(ns, kernelEndName(other)));
    assert.equal(exists(ns, other), false, 'nothing created either');
  });

  test('TAP: "lo" and a foreign device are refused with a human message; a missing namespace says so', (t) => {
    if (!requireRoot(t, ['ip'])) return;
    const ns = createNetns('own-tapf');
    t.after(() => destroyNetns(ns));
    assert.throws(() => TapDriver.open({ ifname: 'lo', netns: ns }), /^DeviceOwnershipError|lo exists in network namespace .* and was not created by tstack/);
    const name = uniq('od');
    ipIn(ns, ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
    assert.throws(() => TapDriver.open({ ifname: name, netns: ns }), /was not created by tstack/);
    assert.ok(exists(ns, name));
    assert.throws(() => TapDriver.open({ ifname: uniq('om'), netns: `${ns}-missing` }), /network namespace "tst-.*-missing" does not exist/);
  });

  test('AF_PACKET: a missing interface or namespace is named in the error', (t) => {
    if (!requireRoot(t, ['ip'])) return;
    const ns = createNetns('own-afpm');
    t.after(() => destroyNetns(ns));
    assert.throws(() => AfPacketDriver.open({ ifname: 'nosuch0', netns: ns }), new RegExp(`there is no interface nosuch0 in network namespace ${ns}`));
    assert.throws(() => AfPacketDriver.open({ ifname: uniq('om'), netns: `${ns}-missing`, hostAddr: '198.18.182.1/24' }), /network namespace "tst-.*-missing" does not exist/);
  });
});

for (const [driver, subnet] of [['afpacket', 183], ['tap', 184]] as const) {
  describe(`${driver}: a second instance, and restarts after kill -9`, () => {
    test(`a second tstack run with the first one's config is refused; the first keeps serving (${driver})`, { timeout: 60_000 }, async (t) => {
      if (!requireRoot(t, ['ip', 'curl'])) return;
      const s = setup(driver, subnet);
      const first = launch(s.config);
      await servesAfter(s.ns, s.ip, Date.now());
      const pid = programPid(first.child.pid!);
      const second = launch(s.config);
      const code = await second.exited;
      assert.notEqual(code, 0);
      assert.match(second.out(), new RegExp(`${s.ifname} exists in network namespace ${s.ns} and belongs to running tstack pid ${pid}`));
      assert.ok((await servesAfter(s.ns, s.ip, Date.now(), 3000)) >= 0, 'the first instance still serves');
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0);
      assert.equal(exists(s.ns, s.ifname), false, 'the first instance removed its device on exit');
    });

    for (const victim of ['program', 'tstack run'] as const) {
      test(`after kill -9 of the ${victim}, a new start serves at once (${driver})`, { timeout: 120_000 }, async (t) => {
        if (!requireRoot(t, ['ip', 'curl'])) return;
        const s = setup(driver, subnet);
        let current = launch(s.config);
        const firstMs = await servesAfter(s.ns, s.ip, Date.now());
        // Three crashes and restarts: the figure reported is their median.
        const restarts: number[] = [];
        for (let round = 0; round < 3; round++) {
          const runPid = current.child.pid!;
          const pid = programPid(runPid);
          process.kill(victim === 'program' ? pid : runPid, 'SIGKILL');
          await current.exited;
          // The program does not outlive `tstack run` (parent-death signal).
          for (let i = 0; i < 50 && alive(pid); i++) await sleep(20);
          assert.equal(alive(pid), false, 'the program is gone');
          if (driver === 'afpacket') assert.ok(exists(s.ns, s.ifname), 'its veth is left behind (nobody ran its cleanup)');
          const t0 = Date.now();
          current = launch(s.config);
          const ms = await servesAfter(s.ns, s.ip, t0);
          restarts.push(ms);
          // Timings on a shared machine are noisy: the figures are reported, the bound is loose.
          assert.ok(ms < 10_000, `served after ${ms} ms`);
        }
        const median = [...restarts].sort((a, b) => a - b)[1]!;
        t.diagnostic(`${driver}, kill -9 of the ${victim}: new starts served after ${restarts.join(', ')} ms (median ${median}); first start ${firstMs} ms; loadavg ${loadavg()[0]!.toFixed(1)}`);
        current.child.kill('SIGTERM');
        assert.equal(await current.exited, 0, current.out());
      });
    }
  });
}
