// The tools' side of the control socket (docs/control.md): finding the instance (-N NAME,
// --socket PATH, or the only one running), one request at a time or a stream of events, and
// errors an operator can act on (permission denied, no instance running, stale socket).
import { lstatSync, readdirSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { PROTOCOL_VERSION, controlDirs } from '../runtime/control.js';

/** A failure the tool reports as `tstack: <message>` with exit code 1 (2 for usage). */
export class ToolError extends Error {
  constructor(message: string, readonly exitCode = 1, readonly code?: string) { super(message); this.name = 'ToolError'; }
}

export interface InstanceOptions { instance?: string; socket?: string; json?: boolean; worker?: string }

/**
 * Adds -N/--instance, --socket, -w/--worker and --json to a tool (`worker` is the flag for the
 * worker option: capture keeps tcpdump's -w FILE and takes --worker alone).
 */
export function instanceOptions(cmd: Command, json = true, worker = '-w, --worker <n>'): Command {
  cmd.option('-N, --instance <name>', 'the instance to talk to (default: the only one running)')
    .option('--socket <path>', 'the control socket to talk to (instead of -N)')
    .option(worker, 'only this worker\'s stack (default: the whole instance, every worker)');
  if (json) cmd.option('--json', 'print one JSON document (fields in docs/tools.md)');
  return cmd;
}

interface Reply { v: number; id: unknown; ok?: boolean; result?: unknown; error?: { code: string; message: string }; event?: string; [k: string]: unknown }

function connectError(path: string, e: NodeJS.ErrnoException): ToolError {
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return new ToolError(`permission denied on the control socket ${path}: it is for root and its group (run as root, or give your group access with [control] group)`, 1, 'EACCES');
    case 'ENOENT':
      return new ToolError(`no instance at ${path} (no such socket)`, 1, 'ENOENT');
    case 'ECONNREFUSED':
      return new ToolError(`no instance answers at ${path} (a stale socket: the instance that made it is gone)`, 1, 'ECONNREFUSED');
    default:
      return new ToolError(`cannot connect to ${path}: ${e.message}`, 1, e.code);
  }
}

/** -w N as a number (undefined: the whole instance); a usage error when it is not a worker number. */
export function parseWorker(w: string | undefined): number | undefined {
  if (w === undefined) return undefined;
  if (!/^\d{1,4}$/.test(w)) throw new ToolError(`-w ${w}: a worker is a number (0, 1, …)`, 2);
  return Number(w);
}

export class ControlClient {
  private nextId = 1;
  /** Sent with every request when set: the worker the request is about (docs/control.md). */
  worker: number | undefined = undefined;
  private buf = '';
  private readonly waiting = new Map<unknown, { resolve: (r: unknown) => void; reject: (e: Error) => void; onEvent?: (ev: Reply) => void }>();
  private closedError: Error | null = null;

  private constructor(readonly path: string, private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    const end = (err?: Error) => {
      this.closedError = err ?? new ToolError(`the instance at ${path} closed the connection`);
      for (const w of this.waiting.values()) w.reject(this.closedError);
      this.waiting.clear();
    };
    sock.on('error', (e) => end(new ToolError(`control socket ${path}: ${e.message}`)));
    sock.on('close', () => end());
  }

  static connect(path: string, worker?: number): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      sock.once('connect', () => {
        sock.removeAllListeners('error');
        const c = new ControlClient(path, sock);
        c.worker = worker;
        resolve(c);
      });
      sock.once('error', (e: NodeJS.ErrnoException) => reject(connectError(path, e)));
    });
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let msg: Reply;
      try { msg = JSON.parse(line) as Reply; } catch { continue; }
      const w = this.waiting.get(msg.id);
      if (!w) continue;
      if (msg.event !== undefined) { w.onEvent?.(msg); continue; }
      this.waiting.delete(msg.id);
      if (msg.ok) w.resolve(msg.result);
      else w.reject(new ToolError(msg.error?.message ?? 'the instance refused the request', 1, msg.error?.code));
    }
  }

  /** Sends one command; resolves with its result (events, if any, go to onEvent). */
  request<T = unknown>(cmd: string, args: Record<string, unknown> = {}, onEvent?: (ev: Reply) => void): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: unknown) => void, reject, ...(onEvent && { onEvent }) });
      this.sock.write(JSON.stringify({ v: PROTOCOL_VERSION, id, cmd, args, ...(this.worker !== undefined && { worker: this.worker }) }) + '\n');
    });
  }

  /** The id the next request will carry (to stop a stream later). */
  get lastId(): number { return this.nextId - 1; }

  close(): void { this.sock.end(); this.sock.destroy(); }
}

/** Every control socket in the usual directories, with whether something answers on it. */
export async function listSockets(): Promise<{ path: string; live: boolean; error?: ToolError }[]> {
  const out: { path: string; live: boolean; error?: ToolError }[] = [];
  for (const dir of controlDirs()) {
    let names: string[];
    try { names = readdirSync(dir); } catch { continue; }
    for (const n of names.filter((x) => x.endsWith('.sock')).sort(byWorker)) {
      const path = join(dir, n);
      try {
        const c = await ControlClient.connect(path);
        c.close();
        out.push({ path, live: true });
      } catch (e) {
        out.push({ path, live: false, error: e as ToolError });
      }
    }
  }
  return out;
}

/** A worker's socket under `tstack run` with several workers: `<name>.w<i>.sock` (src/api/runtime.ts). */
const WORKER_SOCKET = /^(.*)\.w(\d{1,4})\.sock$/;

/** The instance a socket belongs to (its path without `.sock`, or without `.w<i>.sock`) and its worker number (null: a one-stack instance's). */
export function socketInstance(path: string): { instance: string; worker: number | null } {
  const m = WORKER_SOCKET.exec(path);
  if (m) return { instance: m[1]!, worker: Number(m[2]) };
  return { instance: path.replace(/\.sock$/, ''), worker: null };
}

/** Orders socket names so that a.w2.sock comes before a.w10.sock. */
function byWorker(a: string, b: string): number {
  const x = socketInstance(a), y = socketInstance(b);
  if (x.instance !== y.instance) return x.instance < y.instance ? -1 : 1;
  return (x.worker ?? -1) - (y.worker ?? -1);
}

/**
 * What a tool talks to: one instance, through one control socket (one stack), or through one
 * socket per worker (`tstack run` with `[stack] workers` > 1, `split`).
 */
export interface Target {
  /** The instance's name (the socket's base name, without `.sock` or `.w<i>.sock`). */
  name: string;
  /** Its sockets, by worker number; one (worker 0 or null) for a one-stack instance. */
  sockets: { worker: number | null; path: string }[];
  /** One socket per worker. */
  split: boolean;
}

const baseName = (p: string) => p.replace(/^.*\//, '');

/** The worker sockets next to `base` (a path without `.sock`), in worker order. */
function workerSockets(base: string): { worker: number; path: string }[] {
  const dir = dirname(base), prefix = `${baseName(base)}.w`;
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  return names.filter((n) => n.startsWith(prefix) && WORKER_SOCKET.test(n) && socketInstance(n).instance === baseName(base))
    .sort(byWorker).map((n) => ({ worker: socketInstance(n).worker!, path: join(dir, n) }));
}

function targetOfPath(path: string): Target {
  return { name: baseName(path).replace(/\.sock$/, ''), sockets: [{ worker: null, path }], split: false };
}

function exists(path: string): boolean {
  try { lstatSync(path); return true; } catch { return false; }
}

/** The instance a tool should talk to (see instanceOptions): NAME.sock, or NAME.w0.sock, NAME.w1.sock, … */
export async function resolveTarget(opts: InstanceOptions): Promise<Target> {
  if (opts.socket) {
    // `--socket DIR/ctl.sock` of an instance whose workers made DIR/ctl.w0.sock, ctl.w1.sock…
    if (!exists(opts.socket)) {
      const ws = workerSockets(opts.socket.replace(/\.sock$/, ''));
      if (ws.length > 0) return { name: baseName(opts.socket).replace(/\.sock$/, ''), sockets: ws, split: true };
    }
    return targetOfPath(opts.socket);
  }
  if (opts.instance) {
    const name = opts.instance.replace(/\.sock$/, '');
    let denied: ToolError | null = null;
    for (const dir of controlDirs()) {
      const path = join(dir, `${name}.sock`);
      try {
        lstatSync(path);
        return targetOfPath(path);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EACCES') denied ??= connectError(path, err);
      }
      const ws = workerSockets(join(dir, name));
      if (ws.length > 0) return { name, sockets: ws, split: true };
    }
    if (denied) throw denied;
    throw new ToolError(`no instance named '${opts.instance}' is running (looked in ${controlDirs().join(', ')})`);
  }
  const all = await listSockets();
  const live = all.filter((s) => s.live);
  // The workers of one instance are one instance.
  const groups = new Map<string, { worker: number | null; path: string }[]>();
  for (const s of live) {
    const { instance, worker } = socketInstance(s.path);
    const g = groups.get(instance) ?? [];
    g.push({ worker, path: s.path });
    groups.set(instance, g);
  }
  if (groups.size === 1) {
    const [instance, sockets] = [...groups][0]!;
    if (sockets.length === 1 && sockets[0]!.worker === null) return targetOfPath(sockets[0]!.path);
    return { name: baseName(instance), sockets, split: true };
  }
  const denied = all.find((s) => s.error?.code === 'EACCES');
  if (live.length === 0 && denied) throw denied.error!;
  if (live.length === 0) throw new ToolError(`no tstack instance is running (no control socket answers in ${controlDirs().join(', ')})`);
  throw new ToolError(`${groups.size} instances are running (${[...groups.keys()].map(baseName).join(', ')}): pick one with -N NAME`);
}

/** The socket path a tool should use: the instance's, or its worker 0's (see resolveTarget). */
export async function resolveSocket(opts: InstanceOptions): Promise<string> {
  const t = await resolveTarget(opts);
  return t.sockets[0]!.path;
}

/**
 * The control clients of an instance: one per worker (in worker order) when the instance has a
 * socket per worker and no -w picked one, else one. Tools ask them all and merge (src/cli/aggregate.ts).
 */
export class Workers {
  constructor(readonly target: Target, readonly clients: ControlClient[], readonly indices: number[]) {}
  /** Several workers answer: the tool merges their answers. */
  get many(): boolean { return this.clients.length > 1; }
  /** Worker 0's client (or the only one): for what every worker shares (routes, sysctl) and for changes, which a worker passes on to the others. */
  get first(): ControlClient { return this.clients[0]!; }
  /** Sends `cmd` to every worker; resolves with their results in worker order. */
  all<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T[]> {
    return Promise.all(this.clients.map((c) => c.request<T>(cmd, args)));
  }
  close(): void { for (const c of this.clients) c.close(); }
}

/** Connects to the chosen instance's workers: all of them, or -w's one. */
export async function connectWorkers(opts: InstanceOptions, firstOnly = false): Promise<Workers> {
  const worker = parseWorker(opts.worker);
  const t = await resolveTarget(opts);
  if (!t.split) return new Workers(t, [await ControlClient.connect(t.sockets[0]!.path, worker)], [worker ?? 0]);
  if (worker !== undefined) {
    const s = t.sockets.find((x) => x.worker === worker);
    if (!s) {
      // How many workers the instance runs (a socket may be missing while its worker is replaced).
      let n = t.sockets.length;
      try {
        const c = await ControlClient.connect(t.sockets[0]!.path);
        try { n = (await c.request<{ workers: number }>('info')).workers; } finally { c.close(); }
      } catch { /* counted from the sockets */ }
      if (worker < n) throw new ToolError(`worker ${worker} of instance '${t.name}' has no control socket (${t.name}.w${worker}.sock): it may be restarting`, 1, 'ENOENT');
      throw new ToolError(`no worker ${worker}: instance '${t.name}' runs ${n} worker${n === 1 ? '' : 's'} (${n === 1 ? '0' : `0..${n - 1}`})`, 1, 'ENXIO');
    }
    return new Workers(t, [await ControlClient.connect(s.path, worker)], [worker]);
  }
  const clients: ControlClient[] = [];
  const indices: number[] = [];
  let first: ToolError | null = null;
  for (const s of t.sockets) {
    // firstOnly: the first worker that answers (worker 0 unless it is being replaced).
    if (firstOnly && clients.length > 0) break;
    try {
      clients.push(await ControlClient.connect(s.path));
      indices.push(s.worker!);
    } catch (e) {
      const err = e as ToolError;
      // A worker being replaced (its socket stale or gone): the others still answer.
      if (err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT') { for (const c of clients) c.close(); throw e; }
      first ??= err;
      if (!firstOnly) process.stderr.write(`tstack: worker ${s.worker} does not answer (${err.message}); its numbers are left out\n`);
    }
  }
  if (clients.length === 0) throw first!;
  return new Workers(t, clients, indices);
}

/** Connects to the chosen instance (its worker 0 when it has several and no -w picked one); requests carry -w's worker. */
export async function connectInstance(opts: InstanceOptions): Promise<ControlClient> {
  return (await connectWorkers(opts, true)).first;
}

/** Connects to the chosen instance, runs `fn`, closes. */
export async function withInstance<T>(opts: InstanceOptions, fn: (c: ControlClient) => Promise<T>): Promise<T> {
  const c = await connectInstance(opts);
  try { return await fn(c); } finally { c.close(); }
}

/** Connects to every worker of the chosen instance (or -w's one), runs `fn`, closes. */
export async function withWorkers<T>(opts: InstanceOptions, fn: (w: Workers) => Promise<T>): Promise<T> {
  const w = await connectWorkers(opts);
  try { return await fn(w); } finally { w.close(); }
}

/** Runs a tool's body: ToolErrors become `tstack: message` and an exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (!(e instanceof ToolError)) throw e;
      process.stderr.write(`tstack: ${e.message}\n`);
      process.exitCode = e.exitCode;
    }
  };
}

export const out = (s: string) => { process.stdout.write(s); };
export const printJson = (v: unknown) => out(JSON.stringify(v, null, 2) + '\n');

/** Left-aligned columns (right-aligned where `right[i]`), two spaces apart. */
export function table(rows: (string | number)[][], right: boolean[] = []): string {
  const cells = rows.map((r) => r.map(String));
  const widths: number[] = [];
  for (const r of cells) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 && !right[i] ? c : right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}
