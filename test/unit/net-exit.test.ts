// Exit semantics: a program exits exactly when it would on kernel sockets. Each scenario is one
// small program run twice in a child process, once on node:net (127.0.0.1) and once on
// tstack/net (two stacks on a memory wire, their loops adopted so that socket handles decide
// whether they keep the process alive, as under `tstack run`). Both runs must print the same
// events and exit by themselves; a hang is a failure, reported with what the program printed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIST = new URL('../../', import.meta.url).href; // dist/

/** The program's prologue: `net`, `host` and `log` for the scenario's body. */
const PROLOGUE = `
const mode = process.argv[2];
let net, host;
const log = (s) => process.stdout.write(s + '\\n');
process.on('exit', (code) => log('exit ' + code));
if (mode === 'kernel') {
  net = await import('node:net');
  host = '127.0.0.1';
} else {
  const t = await import('${DIST}src/api/net.js');
  const { MemoryWire } = await import('${DIST}src/driver/memory.js');
  const { parseConfig } = await import('${DIST}src/runtime/config.js');
  const { startInstance } = await import('${DIST}src/runtime/instance.js');
  const { realClock } = await import('${DIST}src/runtime/loop.js');
  const { adoptInstance } = await import('${DIST}src/api/runtime.js');
  const wire = new MemoryWire({ clock: realClock });
  const mk = (addr) => {
    const inst = startInstance(parseConfig('[stack]\\npoll = "interrupt"\\n[[port]]\\ndriver = "memory"\\naddr = "' + addr + '"\\n', 'exit.toml'), { memoryWire: wire });
    adoptInstance(inst);
    process.on('exit', () => inst.stop());
    return inst;
  };
  const a = mk('198.18.31.1/24'), b = mk('198.18.31.2/24');
  host = '198.18.31.2';
  net = {
    createServer: (o, l) => typeof o === 'function' ? t.createServer({ stack: b }, o) : t.createServer({ ...o, stack: b }, l),
    connect: (o, cb) => t.connect({ ...o, stack: a }, cb),
  };
}
`;

const scenarios: Record<string, string> = {
  'a client paused before it connects does not keep the process alive': `
    const srv = net.createServer((c) => { log('server: connection'); c.unref(); });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host });
      c.pause();
      c.on('connect', () => log('client: connect'));
      srv.unref();
    });`,

  'an accepted socket paused on connect (pauseOnConnect) does not keep the process alive': `
    const srv = net.createServer({ pauseOnConnect: true }, (c) => { log('server: connection paused=' + c.isPaused()); srv.close(); });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host }, () => { log('client: connect'); c.unref(); });
    });`,

  'a half-closed client with unread data lets the process exit without end': `
    const srv = net.createServer((c) => { c.end('bye', () => log('server: finish')); c.unref(); srv.unref(); });
    srv.listen(0, host, () => {
      // Not flowing (no 'data' listener): 'bye' and the FIN wait in the stream's buffer.
      const c = net.connect({ port: srv.address().port, host }, () => log('client: connect'));
      c.on('end', () => log('client: end'));
      c.on('close', () => log('client: close'));
    });`,

  'an unref()d open connection does not keep the process alive': `
    const srv = net.createServer((c) => { log('server: connection'); c.unref(); srv.close(); });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host }, () => { log('client: connect'); c.unref(); });
    });`,

  'a socket destroyed with unread data closes, and the process exits': `
    const srv = net.createServer((c) => {
      c.write('x'.repeat(1000));
      c.on('error', (e) => log('server: error ' + e.code));
      c.on('close', () => { log('server: close'); srv.close(); });
    });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host });
      c.pause();
      c.once('readable', () => { log('client: readable'); setTimeout(() => c.destroy(), 50); });
      c.on('close', (hadError) => log('client: close ' + hadError));
    });`,

  'net.connect({ port: -1 }) throws ERR_SOCKET_BAD_PORT and leaves nothing running': `
    try {
      net.connect({ port: -1, host });
    } catch (e) {
      log('throws ' + e.code + ': ' + e.message);
    }`,

  'a connect() to a bad localAddress throws and leaves nothing running': `
    try {
      net.connect({ port: 80, host, localAddress: 'not-an-ip' });
    } catch (e) {
      log('throws ' + e.code + ': ' + e.message);
    }`,
};

interface Run { code: number | null; out: string; timedOut: boolean }

function runProgram(file: string, mode: string): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [file, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let timedOut = false;
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const t = setTimeout(() => { timedOut = true; p.kill('SIGKILL'); }, 15_000);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out, timedOut }); });
  });
}

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'tstack-net-exit-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

describe('exit semantics: a program on tstack/net exits when the same program on node:net does', () => {
  let n = 0;
  for (const [name, body] of Object.entries(scenarios)) {
    test(name, async () => {
      const file = join(dir, `p${n++}.mjs`);
      writeFileSync(file, PROLOGUE + body + '\n');
      const [k, t] = await Promise.all([runProgram(file, 'kernel'), runProgram(file, 'tstack')]);
      assert.ok(!k.timedOut, `the kernel run exits by itself:\n${k.out}`);
      assert.ok(!t.timedOut, `the tstack run exits by itself (it hung; printed so far):\n${t.out}`);
      // Each side's events in its own order; how the two sides interleave no network fixes.
      const norm = (s: string) => {
        const lines = s.replaceAll('198.18.31.2', 'HOST').replaceAll('127.0.0.1', 'HOST').split('\n');
        const side = (p: string) => lines.filter((l) => l.startsWith(p));
        return [...side('client:'), ...side('server:'), ...lines.filter((l) => !/^(client|server):/.test(l))].join('\n');
      };
      assert.equal(norm(t.out), norm(k.out), `tstack (actual) vs kernel (expected) output`);
      assert.equal(t.code, k.code);
    });
  }
});

