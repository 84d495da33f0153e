// An unmodified client program under `tstack run` (test/fixtures/apps/client-app.js): its
// http.get, undici.request and fetch to a kernel HTTP server in the namespace (198.18.X.1, on
// the stack's connected network) go through the stack, and its http.get to a server on the
// host's 127.0.0.1 goes through the kernel. The program then exits by itself.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { requireRoot } from '../helpers/netns.js';
import { curl, startApp, stopAllApps, waitUntil } from '../helpers/run-app.js';

const children = new Set<ChildProcess>();
const dirs: string[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await stopAllApps();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('tstack run test/fixtures/apps/client-app.js', () => {
  test('requests to the stack\'s network go through the stack, to 127.0.0.1 through the kernel', async (t) => {
    if (!requireRoot(t, ['ip', 'python3', 'curl'])) return;
    // The host's loopback server: only the kernel can deliver to it.
    const seen: string[] = [];
    const loop = http.createServer((req, res) => { seen.push(`${req.socket.remoteAddress} ${req.url}`); res.end('loopback says hi\n'); });
    loop.listen(0, '127.0.0.1');
    await once(loop, 'listening');
    t.after(() => { loop.close(); });
    const loopPort = (loop.address() as AddressInfo).port;

    const subnet = 145;
    const app = await startApp({
      prefix: 'run-client', subnet, app: 'test/fixtures/apps/client-app.js', stdin: true,
      env: { STACK_URL: `http://198.18.${subnet}.1:8000/hello.txt`, LOOPBACK_URL: `http://127.0.0.1:${loopPort}/loop` },
      ready: /client-app: ready/,
    });

    // The kernel-side server in the namespace, on the TAP device's address (which exists now).
    const dir = mkdtempSync(join(tmpdir(), 'tstack-run-client-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'hello.txt'), 'hello from the kernel side\n');
    const py = spawn('ip', ['netns', 'exec', app.ns, 'python3', '-u', '-m', 'http.server', '8000', '--bind', app.hostIp, '--directory', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(py);
    let pyLog = '';
    py.stdout.setEncoding('utf8').on('data', (d: string) => { pyLog += d; });
    py.stderr.setEncoding('utf8').on('data', (d: string) => { pyLog += d; });
    await waitUntil(() => /Serving HTTP/.test(pyLog), 5000, 'python3 -m http.server');
    // From inside the namespace (kernel to kernel): the server answers.
    assert.equal(await curl(app.ns, [`http://${app.hostIp}:8000/hello.txt`]), 'hello from the kernel side\n');
    const localRequests = pyLog.split('\n').filter((l) => l.includes('GET /hello.txt')).length;

    const tGo = Date.now();
    app.child.stdin!.end('go\n');
    const m = await app.waitForOutput(/client-app: result (.*)\n/, 15_000);
    t.diagnostic(`requests took ${Date.now() - tGo} ms`);
    const result = JSON.parse(m[1]!) as Record<string, { status?: number; body?: string; error?: string }>;
    const want = { status: 200, body: 'hello from the kernel side\n' };
    assert.deepEqual(result['httpGet'], want, `http.get: ${JSON.stringify(result)}`);
    assert.deepEqual(result['undici'], want, `undici.request: ${JSON.stringify(result)}`);
    assert.deepEqual(result['fetch'], want, `fetch: ${JSON.stringify(result)}`);
    assert.deepEqual(result['loopback'], { status: 200, body: 'loopback says hi\n' });

    // The three stack requests reached the namespace's server from the stack's address (the
    // root namespace has no route to 198.18.145.0/24 at all: the kernel could not have sent them).
    await waitUntil(() => pyLog.split('\n').filter((l) => l.includes('GET /hello.txt')).length >= localRequests + 3, 2000, 'the server log');
    const fromStack = pyLog.split('\n').filter((l) => l.startsWith(`${app.stackIp} `) && l.includes('GET /hello.txt'));
    assert.equal(fromStack.length, 3, pyLog);
    assert.deepEqual(seen, ['127.0.0.1 /loop']);

    // Nothing keeps it alive once its sockets are closed: it exits by itself, with 0.
    const t0 = Date.now();
    const exit = await Promise.race([app.exited, new Promise((r) => setTimeout(r, 10_000, 'still running').unref())]);
    assert.deepEqual(exit, { code: 0, signal: null }, app.output());
    t.diagnostic(`exited ${Date.now() - t0} ms after its last request`);
    py.kill('SIGTERM');
    await app.stop();
  });
});
