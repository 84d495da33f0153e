// A tstack/dgram program on a TAP device exits by itself once its socket is closed: the run
// loop's keep-alive and the TAP readiness watcher (koffi's uv_poll handle) are unref()'d when
// no API socket needs them (root only; the device lives in a namespace of its own).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createNetns, destroyNetns, exec, requireRoot } from '../helpers/netns.js';

const dir = mkdtempSync(join(tmpdir(), 'tstack-dgram-tap-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const DGRAM_URL = pathToFileURL(join(import.meta.dirname, '../../src/api/dgram.js')).href;

function runProgram(body: string, config: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }> {
  const file = join(dir, `p${Math.random().toString(36).slice(2)}.mjs`);
  const cfg = `${file}.toml`;
  writeFileSync(cfg, config);
  writeFileSync(file, `import dgram from ${JSON.stringify(DGRAM_URL)};\n${body}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { env: { ...process.env, TSTACK_CONFIG: cfg }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', killed = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, killed }); });
  });
}

test('on a TAP device: send to the kernel side, receive its echo, close, and the process exits', async (t) => {
  if (!requireRoot(t, ['ip', 'socat'])) return;
  const ns = createNetns('h8dg');
  try {
    const config = `[stack]\npoll = "interrupt"\n[[port]]\ndriver = "tap"\nifname = "tsth8d0"\naddr = "198.18.24.2/24"\nhost_addr = "198.18.24.1/24"\nnetns = "${ns}"\n`;
    // A kernel UDP echo server inside the namespace (socat forks one echo per datagram; bound to any address because the TAP device appears only when the program starts).
    const echo = spawn('ip', ['netns', 'exec', ns, 'socat', 'UDP4-RECVFROM:7,fork', 'EXEC:cat'], { stdio: 'ignore' });
    try {
      const r = await runProgram(`
const s = dgram.createSocket('udp4');
s.on('message', (m, r) => { console.log('echo', String(m), r.address + ':' + r.port); s.close(); });
const ask = () => s.send('ping', 7, '198.18.24.1');
s.bind(0, () => { ask(); setTimeout(ask, 300).unref(); });
`, config, 8000);
      assert.equal(r.killed, false, `still running after 8 s: ${r.stdout} ${r.stderr}`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'echo ping 198.18.24.1:7\n');
      const links = exec(ns, 'ip', ['-o', 'link']);
      assert.ok(!links.includes('tsth8d0'), 'the TAP device went away with the process');
    } finally {
      echo.kill('SIGKILL');
    }
  } finally {
    destroyNetns(ns);
  }
});

test('on a TAP device: a bound but unref()\'d socket lets the process exit', async (t) => {
  if (!requireRoot(t)) return;
  const ns = createNetns('h8dg');
  try {
    const config = `[stack]\npoll = "interrupt"\n[[port]]\ndriver = "tap"\nifname = "tsth8d1"\naddr = "198.18.25.2/24"\nhost_addr = "198.18.25.1/24"\nnetns = "${ns}"\n`;
    const r = await runProgram(`
const s = dgram.createSocket('udp4');
s.bind(0, () => { console.log('listening'); s.unref(); });
`, config, 8000);
    assert.equal(r.killed, false, `still running after 8 s: ${r.stdout} ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'listening\n');
  } finally {
    destroyNetns(ns);
  }
});
