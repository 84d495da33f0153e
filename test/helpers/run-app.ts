// Runs an unmodified Node program under `tstack run` in a test namespace: a TAP port whose
// kernel side (198.18.X.1/24) lives in a fresh namespace, the stack on 198.18.X.2/24. The
// kernel-side peers (curl, ab, socat, python, a node client) run in that namespace. stop()
// (and stopAllApps() in after()) ends the process group this started and removes the namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNetns, destroyNetns, run } from './netns.js';

/** The package root (dist/test/helpers/ -> ../../../). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'tstack.js');

export interface AppOptions {
  /** Namespace name prefix (1-12 of [a-z0-9-]). */
  prefix: string;
  /** X in 198.18.X.0/24. */
  subnet: number;
  /** The program, relative to the package root. */
  app: string;
  args?: string[];
  /** Options for node itself (`tstack run --node-option`), say --expose-gc. */
  nodeOptions?: string[];
  env?: Record<string, string>;
  /** Extra TOML appended to the generated config (say, an [api] table). */
  extraConfig?: string;
  /** Output that means the program is ready (listening). */
  ready: RegExp;
  /** How long to wait for `ready` (ms). */
  readyTimeoutMs?: number;
  /** `[stack] workers` (default: not written, one stack). */
  workers?: number;
  /** Keep stdin open (a pipe) for programs that wait for input. */
  stdin?: boolean;
  /** The port's driver (default "tap"; "afpacket" and "afxdp" create a veth pair in the namespace). */
  driver?: 'tap' | 'afpacket' | 'afxdp';
  /**
   * Replaces the generated [[port]] table: called once the namespace exists (set up devices in
   * it here), returns the table's TOML. Default: `driver` with host_addr on 198.18.X.0/24.
   */
  port?: (ns: string, ifname: string) => string;
}

export interface RunningApp {
  ns: string;
  /** The stack's address (198.18.X.2) and the kernel side's (198.18.X.1). */
  stackIp: string;
  hostIp: string;
  ifname: string;
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the first match of `re` in the output (waiting up to ms). */
  waitForOutput(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Resolves when the process exits (with its code or signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (then SIGKILL to the group after ms), then removes the namespace. */
  stop(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<RunningApp>();
let counter = 0;

export async function startApp(o: AppOptions): Promise<RunningApp> {
  const ns = createNetns(o.prefix);
  const dir = mkdtempSync(join(tmpdir(), `tstack-run-${o.prefix}-`));
  // Unique among concurrently running tests: the device exists in the root namespace briefly.
  const ifname = `tr${process.pid % 100000}x${counter++}`;
  const stackIp = `198.18.${o.subnet}.2`;
  const hostIp = `198.18.${o.subnet}.1`;
  const config = join(dir, 'tstack.toml');
  writeFileSync(config, `# written by test/helpers/run-app.ts
[stack]
poll = "adaptive"${o.workers !== undefined ? `\nworkers = ${o.workers}` : ''}

${o.port ? o.port(ns, ifname) : `[[port]]
driver = "${o.driver ?? 'tap'}"
ifname = "${ifname}"
addr = "${stackIp}/24"
host_addr = "${hostIp}/24"
netns = "${ns}"`}
${o.extraConfig ?? ''}
`);
  // detached: the program and its `tstack run` parent form their own process group, so a
  // hung test can end exactly the processes it started.
  const child = spawn(process.execPath, [BIN, 'run', '--config', config,
    ...(o.nodeOptions ?? []).flatMap((x) => ['--node-option', x]), o.app, ...(o.args ?? [])], {
    cwd: ROOT, detached: true, stdio: [o.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...o.env },
  });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: string) => { out += d; for (const w of waiters) w(); };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => { for (const w of waiters) w(); resolve({ code, signal }); });
  });
  let exitedNow = false;
  void exited.then(() => { exitedNow = true; });

  const waitForOutput = (re: RegExp, ms = 10_000): Promise<RegExpMatchArray> => new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(out);
      if (m) { done(); resolve(m); return; }
      if (exitedNow || child.exitCode !== null) { done(); reject(new Error(`the program exited before printing ${re}; output:\n${out}`)); }
    };
    const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${ms} ms waiting for ${re}; output:\n${out}`)); }, ms);
    const done = () => { clearTimeout(timer); waiters.delete(check); };
    waiters.add(check);
    check();
  });

  let stopped: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  const app: RunningApp = {
    ns, stackIp, hostIp, ifname, child, exited, waitForOutput,
    output: () => out,
    stop(ms = 5000) {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, ms);
          const r = await exited;
          clearTimeout(t);
          finish();
          return r;
        }
        const r = await exited;
        finish();
        return r;
      })();
      return stopped;
    },
  };
  const finish = () => {
    // Whatever is left of the group (a program that ignored its parent's death).
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
    running.delete(app);
    destroyNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  };
  running.add(app);
  try {
    await app.waitForOutput(o.ready, o.readyTimeoutMs ?? 15_000);
  } catch (e) {
    await app.stop(1000);
    throw e;
  }
  return app;
}

/** Stops every program started here and removes their namespaces. Use in after(). */
export async function stopAllApps(): Promise<void> {
  await Promise.all([...running].map((a) => a.stop(2000)));
}

export interface CommandResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export interface CommandOptions {
  /** Killed with SIGKILL after this long (default 20 s). */
  timeoutMs?: number;
  /** Written to stdin, which is then closed (default: closed at once). */
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Called once the process is spawned: a way to signal it and to read its stdout so far. */
  onSpawn?: (kill: (s: NodeJS.Signals) => void, stdout: () => string) => void;
}

/** Runs `cmd args` from the package root without blocking this process; resolves with its output, code and signal. */
export function runCommand(cmd: string, args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT, env: opts.env ?? process.env });
    let stdout = '', stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
    // A command that exits at once (a namespace being torn down) closes its stdin first: the
    // EPIPE that writing to it then raises says nothing its exit code does not.
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input ?? '');
    opts.onSpawn?.((s) => p.kill(s), () => stdout);
  });
}

/** Runs `cmd args` in ns without blocking this process; resolves with its output and code. */
export function runIn(ns: string, cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
  return runCommand('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/** curl in ns; resolves with the body (throws with curl's stderr on failure). */
export async function curl(ns: string, args: string[]): Promise<string> {
  const r = await runIn(ns, 'curl', ['-sS', '--max-time', '5', ...args]);
  if (r.code !== 0) throw new Error(`curl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

export interface AbResult { complete: number; failed: number; non2xx: number; rps: number; raw: string }

/** ApacheBench in ns against url; parses the summary. */
export async function ab(ns: string, url: string, n: number, c: number, timeoutMs = 120_000): Promise<AbResult> {
  const r = await runIn(ns, 'ab', ['-q', '-n', String(n), '-c', String(c), '-s', '10', url], { timeoutMs });
  const num = (re: RegExp) => { const m = re.exec(r.stdout); return m ? Number(m[1]) : NaN; };
  if (r.code !== 0) throw new Error(`ab failed (${r.code}): ${r.stderr}\n${r.stdout}`);
  return {
    complete: num(/Complete requests:\s+(\d+)/),
    failed: num(/Failed requests:\s+(\d+)/),
    non2xx: /Non-2xx responses:\s+(\d+)/.test(r.stdout) ? num(/Non-2xx responses:\s+(\d+)/) : 0,
    rps: num(/Requests per second:\s+([\d.]+)/),
    raw: r.stdout,
  };
}

/** Waits until cond() holds (polling), or throws naming what. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** True while `ifname` exists in ns. */
export function deviceExists(ns: string, ifname: string): boolean {
  try { run('ip', ['-n', ns, 'link', 'show', 'dev', ifname]); return true; } catch { return false; }
}

/** A tshark running in a namespace, printing one tab-separated line of fields per packet. */
export interface LiveCapture {
  /** Every line tshark has printed so far. */
  lines(): string[];
  stop(): void;
}

/**
 * Starts tshark on `ifname` in `ns` with the capture filter `(filter) or icmp`, and returns only
 * once the capture is known to be live: "Capturing on" can be printed before packets are being
 * read, so it pings `probeIp` from the namespace until tshark prints the echo (field lines for
 * ICMP start with "icmp"). The caller's fields follow `ip.src ip.dst`.
 */
export async function startLiveCapture(ns: string, ifname: string, filter: string, probeIp: string, fields: string[]): Promise<LiveCapture> {
  const shark = spawn('ip', ['netns', 'exec', ns, 'tshark', '-l', '-n', '-i', ifname, '-f', `(${filter}) or icmp`,
    '-T', 'fields', '-e', '_ws.col.Protocol', '-e', 'ip.src', '-e', 'ip.dst', ...fields.flatMap((f) => ['-e', f])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  shark.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  shark.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const cap: LiveCapture = {
    lines: () => out.split('\n').filter((l) => l !== ''),
    stop: () => { if (shark.exitCode === null && shark.signalCode === null) shark.kill('SIGKILL'); },
  };
  try {
    await waitUntil(() => /Capturing on/.test(err) || shark.exitCode !== null, 20_000, 'tshark to start');
    if (shark.exitCode !== null) throw new Error(`tshark exited ${shark.exitCode}: ${err}`);
    for (let i = 0; i < 30 && !cap.lines().some((l) => l.startsWith('ICMP')); i++) {
      await runIn(ns, 'ping', ['-c', '1', '-W', '1', probeIp], { timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!cap.lines().some((l) => l.startsWith('ICMP'))) throw new Error(`tshark never showed the probe ping to ${probeIp}: ${err}`);
  } catch (e) {
    cap.stop();
    throw e;
  }
  return cap;
}
