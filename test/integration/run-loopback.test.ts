// Loopback and same-host reach for an unmodified program under `tstack run`
// (test/fixtures/apps/loopback-app.js, an HTTP server on an ephemeral port):
// - `curl http://localhost:PORT/` from this process's namespace (the host's, where `tstack
//   run` runs) reaches it through the kernel mirror of its stack listener;
// - its own fetch('http://localhost:PORT/') reaches itself inside the stack (lo0);
// - a `pg`-style client (`new net.Socket()` then `.connect(port, host)`) to a kernel server in
//   the peer namespace is carried by the stack: tshark on the TAP sees its SYN from the stack's
//   address (the root namespace has no route to 198.18.173.0/24: the kernel could not send it).
// Then, once it has closed its server, the program exits by itself.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { requireRoot } from '../helpers/netns.js';
import { startApp, stopAllApps, waitUntil, startLiveCapture, type LiveCapture } from '../helpers/run-app.js';

const children = new Set<ChildProcess>();
const captures = new Set<LiveCapture>();
after(async () => {
  for (const c of captures) c.stop();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await stopAllApps();
});

/** Runs `cmd` in this (the host's) namespace; resolves with stdout, rejects with stderr. */
function local(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

describe('tstack run test/fixtures/apps/loopback-app.js', () => {
  test('curl localhost from the host reaches the app; the app reaches itself over localhost; new net.Socket().connect() goes through the stack', async (t) => {
    if (!requireRoot(t, ['ip', 'curl', 'socat', 'tshark'])) return;
    const subnet = 173;
    const peerPort = 7373;
    const app = await startApp({
      prefix: 'run-loop', subnet, app: 'test/fixtures/apps/loopback-app.js', stdin: true,
      env: { PEER_HOST: `198.18.${subnet}.1`, PEER_PORT: String(peerPort) },
      ready: /loopback-app: listening (\d+)/,
    });
    const port = Number((await app.waitForOutput(/loopback-app: listening (\d+)/))[1]);

    // 1. Same-host reach: plain curl, in the namespace `tstack run` runs in.
    const body = await local('curl', ['-sS', '--max-time', '5', `http://localhost:${port}/from-host`]);
    assert.match(body, /^app says hi to (::ffff:127\.0\.0\.1|::1) \(\/from-host\)\n$/);
    const body4 = await local('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/v4`]);
    assert.equal(body4, 'app says hi to ::ffff:127.0.0.1 (/v4)\n');

    // 2. The kernel server in the peer namespace, and tshark on the TAP watching for SYNs to it.
    const srv = spawn('ip', ['netns', 'exec', app.ns, 'socat', `TCP-LISTEN:${peerPort},bind=${app.hostIp},reuseaddr`, 'SYSTEM:echo pong'], { stdio: 'ignore' });
    children.add(srv);
    // Live only once it has shown a probe ping to the stack (see startLiveCapture).
    const shark = await startLiveCapture(app.ns, app.ifname, `tcp port ${peerPort}`, app.stackIp, ['tcp.flags.syn', 'tcp.flags.ack']);
    captures.add(shark);

    app.child.stdin!.write('go\n');
    const m = await app.waitForOutput(/loopback-app: result (.*)\n/, 15_000);
    const result = JSON.parse(m[1]!) as Record<string, unknown>;
    assert.equal(result['listenings'], 1, 'one listening event for the stack listener and its mirrors');
    assert.deepEqual(result['address'], { address: '::', family: 'IPv6', port });
    // 3. Its own localhost, inside the stack (lo0): the peer is the stack's loopback.
    assert.deepEqual(result['self'], { status: 200, body: 'app says hi to ::ffff:127.0.0.1 (/self)\n' });
    // 4. The pg-style client, through the stack.
    assert.deepEqual(result['pg'], { reply: 'pong\n', local: app.stackIp, instanceofNetSocket: true });
    // tshark gets packets in blocks (libpcap's ring), so the capture may show the SYN a moment
    // after the exchange: the program stays up (its server listening) until it has.
    await waitUntil(() => shark.lines().some((l) => l.startsWith(`TCP\t${app.stackIp}\t${app.hostIp}\t1\t0`)), 15_000,
      `a SYN from the stack in the capture:\n${shark.lines().join('\n')}`);
    t.diagnostic(`capture:\n${shark.lines().join('\n')}`);

    // Once it closes its server (on the next line of stdin),
    // nothing keeps it alive.
    app.child.stdin!.end('bye\n');
    const exit = await Promise.race([app.exited, new Promise((r) => setTimeout(r, 10_000, 'still running').unref())]);
    assert.deepEqual(exit, { code: 0, signal: null }, app.output());
    shark.stop();
    srv.kill('SIGTERM');
    await app.stop();
  });
});
