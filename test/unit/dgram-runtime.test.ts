// The API runtime: the default stack from TSTACK_CONFIG, and process lifetime. A program on
// tstack/dgram must exit by itself once its sockets are closed or unref()'d, and stay alive
// while a bound, ref'd socket exists, exactly as on kernel sockets. Each case runs a small
// program in a child process (memory driver: no root needed).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createSocket } from '../../src/api/dgram.js';
import { RuntimeError, resolveStack, setDefaultInstance } from '../../src/api/runtime.js';
import { Simulation } from '../helpers/sim.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';
import { BufferPool } from '../../src/base/pktbuf.js';
import { emptyDriverStats, type Driver } from '../../src/driver/types.js';
import { NO_OFFLOADS } from '../../src/base/device.js';

const dir = mkdtempSync(join(tmpdir(), 'tstack-dgram-rt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const DGRAM_URL = pathToFileURL(join(import.meta.dirname, '../../src/api/dgram.js')).href;
const CONFIG = join(dir, 'tstack.toml');
writeFileSync(CONFIG, '[[port]]\ndriver = "memory"\naddr = "198.18.21.1/24"\n');

export interface ChildResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number; killed: boolean }

/** Runs `body` (an ES module using `dgram`) with TSTACK_CONFIG set; kills it after timeoutMs. */
function runProgram(name: string, body: string, timeoutMs: number, env: Record<string, string> = { TSTACK_CONFIG: CONFIG }): Promise<ChildResult> {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, `import dgram from ${JSON.stringify(DGRAM_URL)};\n${body}\n`);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', killed = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { killed = true; child.kill('SIGTERM'); }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0, killed });
    });
  });
}

describe('process lifetime follows the API sockets (TSTACK_CONFIG, memory driver)', () => {
  test('a program whose socket receives its own datagram and closes exits by itself', async () => {
    const r = await runProgram('close', `
const s = dgram.createSocket('udp4');
s.on('message', (m, r) => { console.log('message', String(m), r.address); s.close(() => console.log('closed')); });
s.bind(0, () => s.send('hi', s.address().port, '198.18.21.1'));
`, 5000);
    assert.equal(r.killed, false, `still running after 5 s: ${r.stdout} ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'message hi 198.18.21.1\nclosed\n');
  });

  test('a bound socket that is unref()\'d does not keep the program alive', async () => {
    const r = await runProgram('unref', `
const s = dgram.createSocket('udp4');
s.bind(0, () => { console.log('listening'); s.unref(); });
`, 5000);
    assert.equal(r.killed, false, 'still running after 5 s');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'listening\n');
  });

  test('a bound, ref\'d socket keeps the program alive; SIGTERM then ends it as it would without tstack', async () => {
    const r = await runProgram('stay', `
const s = dgram.createSocket('udp4');
s.bind(0, () => console.log('listening'));
`, 5000);
    assert.equal(r.killed, true, `exited on its own (code ${r.code}): ${r.stderr}`);
    assert.equal(r.stdout, 'listening\n');
    assert.equal(r.signal, 'SIGTERM', 'the default SIGTERM action still applies');
  });

  test('unref() then ref() again keeps the program alive', async () => {
    const r = await runProgram('reref', `
const s = dgram.createSocket('udp4');
s.bind(0, () => { s.unref(); s.ref(); console.log('listening'); });
`, 5000);
    assert.equal(r.killed, true, `exited on its own (code ${r.code}): ${r.stderr}`);
  });

  test('without TSTACK_CONFIG, createSocket throws an error that names it', async () => {
    const r = await runProgram('noconfig', `
try { dgram.createSocket('udp4'); console.log('created'); } catch (e) { console.log(e.name, e.code, e.message.includes('TSTACK_CONFIG')); }
`, 5000, { TSTACK_CONFIG: '' });
    assert.equal(r.stdout, 'RuntimeError ERR_TSTACK_NO_STACK true\n', r.stderr);
  });
});

describe('tstack/dgram on a bare Stack (virtual clock)', () => {
  test("'message' is emitted by the event delivery after the stack's input (poll), never inside input", async () => {
    const sim = new Simulation({ seed: 'dgram-async', latencyMs: 1 });
    const a = sim.addHost({ name: 'a', addr: '198.18.23.1/24' }).stack;
    const b = sim.addHost({ name: 'b', addr: '198.18.23.2/24' }).stack;
    let inInput = false;
    const input = b.input.bind(b);
    b.input = (i, buf) => { inInput = true; try { input(i, buf); } finally { inInput = false; } };
    const server = createSocket({ type: 'udp4', stack: b });
    const got: string[] = [];
    server.on('message', (m, r) => got.push(`${m} ${r.address}:${r.port} ${r.size}${inInput ? ' inside input' : ''}`));
    await new Promise<void>((res) => server.bind(5353, res));
    const client = createSocket({ type: 'udp4', stack: a });
    await new Promise<void>((res) => client.bind(4000, res));
    client.send('query', 5353, '198.18.23.2');
    await new Promise((res) => setImmediate(res)); // the lookup tick: the datagram is now queued
    sim.run(100);
    assert.deepEqual(got, ['query 198.18.23.1:4000 5']);
    client.close();
    server.close();
    assert.equal(b.udp.socketCount + a.udp.socketCount, 0, 'close() unbinds the engine sockets');
    sim.close();
  });

  test('127.0.0.1 (the default address) fails with send ENETUNREACH and is not routed to the gateway', async () => {
    const sim = new Simulation({ seed: 'dgram-lo' });
    const a = sim.addHost({ name: 'a', addr: '198.18.23.1/24', gateway: '198.18.23.254' }).stack;
    const s = createSocket({ type: 'udp4', stack: a });
    const err = await new Promise<NodeJS.ErrnoException | null>((res) => s.send('x', 9, (e) => res(e)));
    assert.equal(err?.message, 'send ENETUNREACH undefined:9', 'Node formats a missing address as "undefined"');
    assert.equal(err?.code, 'ENETUNREACH');
    sim.run(100);
    assert.equal(a.arp.size, 0, 'nothing was sent toward the gateway');
    s.close();
    sim.close();
  });

  test('udp6: a :: socket hears udp4 peers as ::ffff:a.b.c.d and udp6 peers as IPv6; ipv6Only keeps IPv4 out; errors name the IPv6 address', async () => {
    const sim = new Simulation({ seed: 1 });
    const a = sim.addHost({ name: 'a', addr: '198.18.23.1/24', addr6: '2001:db8:23::1/64' }).stack;
    const b = sim.addHost({ name: 'b', addr: '198.18.23.2/24', addr6: '2001:db8:23::2/64' }).stack;
    sim.run(3000); // DAD
    const settle = async (pred: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !pred(); i++) { sim.run(5); await new Promise((r) => setImmediate(r)); }
      assert.ok(pred());
    };
    const server = createSocket({ type: 'udp6', stack: b });
    const got: string[] = [];
    server.on('message', (m, r) => got.push(`${m} ${r.address} ${r.family} ${r.size}`));
    let listening = false;
    server.bind(5300, () => { listening = true; });
    await settle(() => listening);
    assert.deepEqual(server.address(), { address: '::', family: 'IPv6', port: 5300 });
    const c4 = createSocket({ type: 'udp4', stack: a });
    const c6 = createSocket({ type: 'udp6', stack: a });
    c4.send('four', 5300, '198.18.23.2');
    c6.send('six', 5300, '2001:db8:23::2');
    await settle(() => got.length === 2);
    assert.deepEqual(got.sort(), ['four ::ffff:198.18.23.1 IPv6 4', 'six 2001:db8:23::1 IPv6 3']);
    assert.equal(c6.address().family, 'IPv6');
    // A second :: socket on the port: bind EADDRINUSE with the address as Node prints it.
    const dup = createSocket({ type: 'udp6', stack: b });
    let err: NodeJS.ErrnoException | null = null;
    dup.on('error', (e) => { err = e; });
    dup.bind(5300);
    await settle(() => err !== null);
    assert.equal(err!.message, 'bind EADDRINUSE :::5300');
    server.close(); dup.close();
    // ipv6Only: IPv4 datagrams to the port are not for it (port unreachable), IPv6 ones are.
    const only = createSocket({ type: 'udp6', ipv6Only: true, stack: b });
    const got6: string[] = [];
    only.on('message', (m, r) => got6.push(`${m} ${r.address}`));
    listening = false;
    only.bind(5301, () => { listening = true; });
    await settle(() => listening);
    c4.send('four', 5301, '198.18.23.2');
    c6.send('six', 5301, '2001:db8:23::2');
    await settle(() => got6.length === 1 && (b.drops['udp_noport'] ?? 0) === 1);
    assert.deepEqual(got6, ['six 2001:db8:23::1']);
    // connect() and remoteAddress() with an IPv6 peer; a udp6 socket given an IPv4 literal fails with EINVAL.
    let connected = false;
    c6.connect(5301, '2001:db8:23::2', () => { connected = true; });
    await settle(() => connected);
    assert.deepEqual(c6.remoteAddress(), { address: '2001:db8:23::2', family: 'IPv6', port: 5301 });
    assert.equal(c6.address().address, '2001:db8:23::1');
    const bad = createSocket({ type: 'udp6', stack: a });
    let berr: NodeJS.ErrnoException | null = null;
    bad.on('error', (e) => { berr = e; });
    bad.bind(0, '198.18.23.1');
    await settle(() => berr !== null);
    assert.equal(berr!.code, 'EINVAL');
    for (const s of [only, c4, c6, bad]) s.close();
    sim.close();
  });

  test('resolveStack without a default and without TSTACK_CONFIG throws RuntimeError', () => {
    const saved = process.env['TSTACK_CONFIG'];
    delete process.env['TSTACK_CONFIG'];
    try {
      setDefaultInstance(null);
      assert.throws(() => resolveStack(), RuntimeError);
    } finally {
      if (saved !== undefined) process.env['TSTACK_CONFIG'] = saved;
    }
  });
});

describe('RunLoop.ref/unref (the hook the runtime uses)', () => {
  test('unref() unrefs every driver and flushes what is queued; ref() re-refs them; both are idempotent', () => {
    const calls: string[] = [];
    const driver: Driver = {
      name: 'fake0', mac: new Uint8Array(6), mtu: 1500, offloads: NO_OFFLOADS, pool: new BufferPool(),
      transmit: (b) => b.release(), rxBurst: () => 0, flush: () => calls.push('flush'), onReadable: () => {},
      stats: emptyDriverStats, close: () => {}, ref: () => calls.push('ref'), unref: () => calls.push('unref'),
    };
    const stack = { clock: realClock, input: () => {}, poll: () => Infinity, onOutput: null };
    const loop = new RunLoop({ stack, poll: 'interrupt' });
    loop.addPort(driver, 1);
    loop.start();
    calls.length = 0;
    loop.unref();
    loop.unref();
    assert.equal(loop.hasRef, false);
    assert.deepEqual(calls, ['unref', 'flush']);
    loop.ref();
    loop.ref();
    assert.equal(loop.hasRef, true);
    assert.deepEqual(calls, ['unref', 'flush', 'ref']);
    loop.stop();
  });
});
