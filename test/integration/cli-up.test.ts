// `tstack up --config FILE` as a user runs it: a bad config exits non-zero naming the key; a
// good one brings a TAP device up in a test namespace, answers the kernel's ping and
// closed-port UDP, and on SIGTERM/SIGINT exits 0 with the device gone.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNetns, destroyAllNetns, requireRoot, spawnIn, run } from '../helpers/netns.js';

// dist/test/integration/ -> the package root.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'tstack.js');
const dir = mkdtempSync(join(tmpdir(), 'tstack-cli-up-'));
const children = new Set<ChildProcessWithoutNullStreams>();

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  destroyAllNetns();
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startCli(args: string[]): Running {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let out = '', err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, out: () => out, err: () => err, exit };
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

function deviceExists(ns: string, ifname: string): boolean {
  try { run('ip', ['-n', ns, 'link', 'show', 'dev', ifname]); return true; } catch { return false; }
}

function goodConfig(ns: string, ifname: string, net: number, poll: string, extra = ''): string {
  const file = join(dir, `${ifname}.toml`);
  writeFileSync(file, `# written by cli-up.test
[stack]
poll = "${poll}"

[[port]]
driver = "tap"
ifname = "${ifname}"
addr = "198.18.${net}.2/24"
host_addr = "198.18.${net}.1/24"
netns = "${ns}"
${extra}`);
  return file;
}

/** Starts `tstack up` on a fresh namespace and waits until it says it is up. */
async function bringUp(prefix: string, ifname: string, net: number, poll = 'adaptive', extra = '') {
  const ns = createNetns(prefix);
  const cli = startCli(['up', '--config', goodConfig(ns, ifname, net, poll, extra)]);
  await Promise.race([
    waitFor(() => /tstack: up/.test(cli.out()), 15_000, `"tstack: up" (stdout: ${cli.out()} stderr: ${cli.err()})`),
    cli.exit.then((r) => { throw new Error(`tstack up exited early (${r.code ?? r.signal}): ${cli.err()}`); }),
  ]);
  return { ns, cli };
}

describe('tstack up', () => {
  test('a bad config exits 2 with a message naming the file, the line and the key', async () => {
    const file = join(dir, 'bad.toml');
    writeFileSync(file, '[[port]]\ndriver = "tap"\nmtu = "abc"\n');
    const cli = startCli(['up', '--config', file]);
    const r = await cli.exit;
    assert.equal(r.code, 2, cli.err());
    assert.equal(cli.err().trim(), `tstack: ${file}:3: key 'port[0].mtu': must be an integer between 68 and 65535 (got "abc")`);
  });

  test('a missing config file exits 2 naming the file', async () => {
    const file = join(dir, 'nope.toml');
    const cli = startCli(['up', '--config', file]);
    const r = await cli.exit;
    assert.equal(r.code, 2);
    assert.match(cli.err(), new RegExp(`${file}: cannot read the file`));
  });

  test('tstack --version prints the package version', async () => {
    const cli = startCli(['--version']);
    const r = await cli.exit;
    assert.equal(r.code, 0);
    assert.match(cli.out().trim(), /^\d+\.\d+\.\d+/);
  });

  test('a good config answers 3 pings from the namespace; SIGTERM exits 0 and removes the TAP device', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t, ['ip', 'ping'])) return;
    const ifname = `tstup${process.pid % 10000}`;
    const { ns, cli } = await bringUp('cliup', ifname, 77);
    // The port line: name, driver, MAC, address.
    assert.match(cli.out(), new RegExp(`^${ifname}\\s+tap\\s+([0-9a-f]{2}:){5}[0-9a-f]{2}\\s+198\\.18\\.77\\.2/24`, 'm'));
    assert.ok(deviceExists(ns, ifname), 'the TAP device is in the namespace');
    assert.match(run('ip', ['-n', ns, 'link', 'show', 'dev', ifname]), /state (UP|UNKNOWN)/);

    const ping = await spawnIn(ns, 'ping', ['-c', '3', '-W', '1', '-i', '0.2', '198.18.77.2'], 15_000);
    assert.match(ping.stdout, /3 packets transmitted, 3 received/, ping.stdout + ping.stderr);

    cli.child.kill('SIGTERM');
    const r = await cli.exit;
    assert.equal(r.code, 0, `exit ${r.code ?? r.signal}; stderr: ${cli.err()}`);
    assert.match(cli.out(), /stopped \(SIGTERM\)/);
    await waitFor(() => !deviceExists(ns, ifname), 3_000, `${ifname} to disappear`);
  });

  test('with addr6 and host_addr6 the stack answers ping6 from the namespace, on its address and its link-local one', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t, ['ip', 'ping'])) return;
    const ifname = `tstu6${process.pid % 10000}`;
    const { ns, cli } = await bringUp('cliup6', ifname, 79, 'interrupt', 'addr6 = "2001:db8:79::2/64"\nhost_addr6 = "2001:db8:79::1/64"\n');
    assert.match(cli.out(), /2001:db8:79::2\/64/);
    // DAD takes the stack one to two seconds: ping until three replies came back.
    const ping = await spawnIn(ns, 'ping', ['-6', '-c', '3', '-w', '15', '-i', '0.3', '2001:db8:79::2'], 20_000);
    assert.ok(Number(/(\d+) received/.exec(ping.stdout)?.[1]) >= 3, ping.stdout + ping.stderr);
    const mac = /\s(([0-9a-f]{2}:){5}[0-9a-f]{2})\s/.exec(cli.out())![1]!.split(':').map((x) => parseInt(x, 16));
    const ll = `fe80::${(((mac[0]! ^ 2) << 8) | mac[1]!).toString(16)}:${mac[2]!.toString(16)}ff:fe${mac[3]!.toString(16).padStart(2, '0')}:${((mac[4]! << 8) | mac[5]!).toString(16)}`;
    const ping2 = await spawnIn(ns, 'ping', ['-6', '-c', '3', '-w', '10', '-i', '0.2', `${ll}%${ifname}`], 15_000);
    assert.ok(Number(/(\d+) received/.exec(ping2.stdout)?.[1]) >= 3, `${ll}: ${ping2.stdout}${ping2.stderr}`);
    cli.child.kill('SIGTERM');
    assert.equal((await cli.exit).code, 0);
  });

  test('closed-port UDP gets ICMP port unreachable; SIGINT also exits 0 and removes the device', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t, ['ip', 'python3'])) return;
    const ifname = `tstui${process.pid % 10000}`;
    const { ns, cli } = await bringUp('cliudp', ifname, 78, 'interrupt');
    // A connected UDP socket reports the ICMP port unreachable as ECONNREFUSED on recv.
    const py = [
      'import socket',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      's.settimeout(3)',
      "s.connect(('198.18.78.2', 9))",
      "s.send(b'hello')",
      'try:',
      '    s.recv(100)',
      "    print('reply')",
      'except ConnectionRefusedError:',
      "    print('refused')",
      'except socket.timeout:',
      "    print('timeout')",
    ].join('\n');
    const r1 = await spawnIn(ns, 'python3', ['-c', py], 15_000);
    assert.equal(r1.stdout.trim(), 'refused', r1.stdout + r1.stderr);

    cli.child.kill('SIGINT');
    const r = await cli.exit;
    assert.equal(r.code, 0, `exit ${r.code ?? r.signal}; stderr: ${cli.err()}`);
    await waitFor(() => !deviceExists(ns, ifname), 3_000, `${ifname} to disappear`);
  });
});
