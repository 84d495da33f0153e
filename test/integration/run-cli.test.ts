// `tstack run` itself, without privileges (a memory-driver port needs no device): the program
// gets its arguments, the patched modules (ESM named imports and CommonJS require alike), the
// exit code it chose, and the signal that killed it; a bad config stops before the program runs.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runCommand, waitUntil, type CommandResult } from '../helpers/run-app.js';

const dir = mkdtempSync(join(tmpdir(), 'tstack-run-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = join(dir, 'memory.toml');
writeFileSync(CONFIG, '[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\naddr = "198.18.148.2/24"\n');

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

type Result = CommandResult;

function tstackRun(args: string[], opts: { env?: Record<string, string>; onSpawn?: (kill: (s: NodeJS.Signals) => void, out: () => string) => void } = {}): Promise<Result> {
  return runCommand(process.execPath, [BIN, 'run', ...args], { timeoutMs: 15_000, env: { ...process.env, ...opts.env }, onSpawn: opts.onSpawn });
}

describe('tstack run', () => {
  test('passes node its --node-option and the program its arguments (options included), and exits with its exit code', async () => {
    const app = file('args.mjs', 'process.stdout.write(JSON.stringify([process.execArgv.includes("--no-warnings"), process.argv.slice(2)])); process.exitCode = 3;\n');
    const r = await tstackRun(['--config', CONFIG, '--node-option', '--no-warnings', app, '--port', '80', '-v', 'x']);
    assert.equal(r.stdout, '[true,["--port","80","-v","x"]]', r.stderr);
    assert.equal(r.code, 3);
  });

  test('an ESM program\'s named imports of node:net and node:dgram are on the stack', async () => {
    const app = file('esm.mjs', `
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
const server = createServer().listen(0, () => {
  const u = createSocket('udp4');
  u.bind(0, () => {
    console.log(JSON.stringify({ tcp: server.address() }));
    u.close();
    server.close();
  });
});
`);
    const r = await tstackRun(['--config', CONFIG, app], { env: { TSTACK_DEBUG: '1' } });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { tcp: { address: string; family: string } };
    // As on the kernel, listen(0) without a host reports '::' (dual-stack; the stack listens
    // for IPv4 underneath).
    assert.equal(out.tcp.address, '::');
    assert.equal(out.tcp.family, 'IPv6');
    assert.match(r.stderr, /^tstack: listen \*:0 -> stack$/m);
    assert.match(r.stderr, /^tstack: udp bind \*:0 -> stack$/m);
  });

  test('a CommonJS program\'s http server is on the stack, and the program exits once it closes', async () => {
    const app = file('cjs.cjs', `
const http = require('http');
const s = http.createServer().listen(0, () => { console.log(JSON.stringify(s.address())); s.close(); });
`);
    const r = await tstackRun(['--config', CONFIG, app]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { address: string }).address, '::');
  });

  test('passes SIGTERM on, and dies of the signal that killed the program', async () => {
    const app = file('wait.mjs', "import net from 'node:net';\nnet.createServer().listen(0, () => console.log('waiting'));\n");
    const r = await tstackRun(['--config', CONFIG, app], {
      onSpawn: (kill, out) => { void waitUntil(() => out().includes('waiting'), 10_000, 'the program').then(() => kill('SIGTERM')); },
    });
    assert.equal(r.stdout, 'waiting\n');
    assert.equal(r.signal, 'SIGTERM');
  });

  test('a config error exits 2 naming the key, before the program runs', async () => {
    const bad = file('bad.toml', '[[port]]\ndriver = "memory"\nmtu = "big"\n');
    const app = file('never.mjs', "console.log('ran');\n");
    const r = await tstackRun(['--config', bad, app]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /bad\.toml:3: key 'port\[0\]\.mtu': must be an integer/);
    const none = await tstackRun(['--config', file('empty.toml', ''), app]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no \[\[port\]\] configured/);
  });

  test('node --import tstack/register without TSTACK_CONFIG says what to set and exits 2', async () => {
    const app = file('plain.mjs', "console.log('ran');\n");
    const env = { ...process.env };
    delete env['TSTACK_CONFIG'];
    delete env['TSTACK_REGISTER_PID'];
    const r = await runCommand(process.execPath, ['--import', 'tstack/register', app], { env });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /TSTACK_CONFIG/);
  });
});
