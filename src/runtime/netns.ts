// Network namespaces for the demo, tests and benchmarks that touch real devices (DESIGN.md,
// "Networks in tests and benchmarks"): every namespace this process creates is registered and
// removed in after() hooks (call destroyAllNetns), on exit, and on SIGINT/SIGTERM.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { run } from '../driver/sys/netns.js';

export { run };

const created = new Set<string>();
let counter = 0;
let hooksInstalled = false;

/** Runs `cmd args` inside namespace ns (ip netns exec) and returns stdout. */
export function exec(ns: string, cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/** `ip -n ns args...` and returns stdout. */
export function ipIn(ns: string, args: string[]): string {
  return run('ip', ['-n', ns, ...args]);
}

export interface ProcResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; }

/**
 * Runs `cmd args` inside ns without blocking the event loop (so a driver in this process keeps
 * answering while, say, ping runs). Killed after timeoutMs.
 */
export function spawnIn(ns: string, cmd: string, args: string[], timeoutMs = 10_000): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', destroyAllNetns);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      destroyAllNetns();
      process.off(sig, onSignal);
      process.kill(process.pid, sig); // die of the same signal, as without the handler
    };
    process.on(sig, onSignal);
  }
}

/**
 * Creates a fresh namespace `tst-<prefix>-<pid>-<n>` with its loopback up and registers it
 * for removal. Names are at most 32 characters so they stay readable in `ip netns`.
 */
export function createNetns(prefix: string): string {
  if (!/^[a-z0-9-]{1,12}$/.test(prefix)) throw new Error(`createNetns: prefix must be 1-12 of [a-z0-9-], got ${JSON.stringify(prefix)}`);
  installHooks();
  const name = `tst-${prefix}-${process.pid}-${counter++}`;
  run('ip', ['netns', 'add', name]);
  created.add(name);
  run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/** Removes a namespace (and with it the devices inside). Never throws. */
export function destroyNetns(name: string): void {
  created.delete(name);
  try { execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 }); } catch { /* already gone */ }
}

/** Removes every namespace this process created and has not removed yet. Use in after(). */
export function destroyAllNetns(): void {
  for (const name of [...created]) destroyNetns(name);
}

/** Namespaces this process created and still holds. */
export function liveNetns(): string[] { return [...created]; }

export function isRoot(): boolean { return typeof process.getuid === 'function' && process.getuid() === 0; }

/** True when an executable `name` is on PATH. */
export function hasCommand(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try { accessSync(join(dir, name), constants.X_OK); return true; } catch { /* next */ }
  }
  return false;
}
