// Runs one small program twice in child processes, once on node:net (kernel sockets on
// 127.0.0.1) and once on tstack/net (two stacks on a memory wire in the child, their loops
// adopted so that socket handles decide whether they keep the process alive, as under
// `tstack run`), and compares what each printed. The program's body gets `net` (createServer
// and connect), `host` (the server's address) and `log`; lines starting with "client:" and
// "server:" are compared per side (how the sides interleave no network fixes), and `exit N`
// is printed at exit. A run that does not exit by itself within the timeout is reported.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIST = new URL('../../', import.meta.url).href; // dist/

/** The program's prologue: `net`, `host` and `log` for the scenario's body. */
export const PROLOGUE = `
const mode = process.argv[2];
const v6 = process.argv[3] === '6';
let net, host;
const log = (s) => process.stdout.write(s + '\\n');
process.on('exit', (code) => log('exit ' + code));
if (mode === 'kernel') {
  net = await import('node:net');
  host = v6 ? '::1' : '127.0.0.1';
} else {
  const t = await import('${DIST}src/api/net.js');
  const { MemoryWire } = await import('${DIST}src/driver/memory.js');
  const { parseConfig } = await import('${DIST}src/runtime/config.js');
  const { startInstance } = await import('${DIST}src/runtime/instance.js');
  const { realClock } = await import('${DIST}src/runtime/loop.js');
  const { adoptInstance } = await import('${DIST}src/api/runtime.js');
  const wire = new MemoryWire({ clock: realClock });
  const mk = (addr, addr6) => {
    const inst = startInstance(parseConfig('[stack]\\npoll = "interrupt"\\n[[port]]\\ndriver = "memory"\\naddr = "' + addr + '"\\n'
      + (v6 ? 'addr6 = "' + addr6 + '"\\n[sysctl]\\n"net.inet6.ip6.dad_count" = 0\\n' : ''), 'exit.toml'), { memoryWire: wire });
    adoptInstance(inst);
    process.on('exit', () => inst.stop());
    return inst;
  };
  const a = mk('198.18.31.1/24', '2001:db8:31::1/64'), b = mk('198.18.31.2/24', '2001:db8:31::2/64');
  host = v6 ? '2001:db8:31::2' : '198.18.31.2';
  net = {
    createServer: (o, l) => typeof o === 'function' ? t.createServer({ stack: b }, o) : t.createServer({ ...o, stack: b }, l),
    connect: (o, cb) => t.connect({ ...o, stack: a }, cb),
  };
}
`;

export interface Run { code: number | null; out: string; timedOut: boolean }

function runProgram(file: string, mode: string, timeoutMs = 15_000, ipv6 = false): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [file, mode, ...(ipv6 ? ['6'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let timedOut = false;
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const t = setTimeout(() => { timedOut = true; p.kill('SIGKILL'); }, timeoutMs);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out, timedOut }); });
  });
}


/** Each side's lines in its own order, then the rest; addresses replaced by HOST. */
export function normalize(out: string): string {
  const lines = out.replaceAll('2001:db8:31::2', 'HOST').replace(/(?<![0-9a-f:])::1(?![0-9a-f:])/g, 'HOST')
    .replaceAll('198.18.31.2', 'HOST').replaceAll('127.0.0.1', 'HOST').split('\n');
  const side = (p: string) => lines.filter((l) => l.startsWith(p));
  return [...side('client:'), ...side('server:'), ...lines.filter((l) => !/^(client|server):/.test(l))].join('\n');
}

let dir: string | null = null;
let n = 0;

/**
 * Runs `body` on the kernel and on tstack; asserts both exit by themselves and print the same.
 * `ipv6`: the server's address is IPv6 (the kernel's ::1; 2001:db8:31::2 on the stacks).
 */
export async function assertSameOnKernelAndTstack(body: string, opts: { timeoutMs?: number; ipv6?: boolean } = {}): Promise<{ kernel: Run; tstack: Run }> {
  dir ??= mkdtempSync(join(tmpdir(), 'tstack-compat-prog-'));
  const file = join(dir, `p${n++}.mjs`);
  writeFileSync(file, PROLOGUE + body + '\n');
  const [k, t] = await Promise.all([runProgram(file, 'kernel', opts.timeoutMs, opts.ipv6), runProgram(file, 'tstack', opts.timeoutMs, opts.ipv6)]);
  assert.ok(!k.timedOut, `the kernel run exits by itself:\n${k.out}`);
  assert.ok(!t.timedOut, `the tstack run exits by itself (it hung; printed so far):\n${t.out}`);
  assert.equal(normalize(t.out), normalize(k.out), 'tstack (actual) vs kernel (expected) output');
  assert.equal(t.code, k.code);
  return { kernel: k, tstack: t };
}

/** Removes the programs written so far (call in after()). */
export function removePrograms(): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
}
