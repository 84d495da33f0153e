// The control socket: every running instance listens on a Unix socket that the `tstack` tools
// talk to (docs/control.md). One JSON request per line, one JSON reply per line, matched by id;
// several clients at once. Commands run between run-loop iterations (RunLoop.post) on the thread
// that owns the stack. A client never stalls the stack: replies go into a bounded output buffer
// and a client that lets it fill is disconnected; live captures drop (and count) frames instead.
// The socket, and the optional Prometheus endpoint, do not keep the process alive.
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import type { PacketBuffer } from '../base/pktbuf.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv4Cidr, parseIpv6, parseMac } from '../wire/addr.js';
import { isIpv6LinkLocal, isIpv6Multicast, isIpv6Unspecified } from '../wire/ipv6.js';
import { RouteFlags } from '../stack/ip/route.js';
import { Route6Flags } from '../stack/ip/route6.js';
import { counters, gauges, interfaces, ndpEntries, routes, routes6, snapshot, type Route6Snapshot, type RouteSnapshot } from '../stack/stats.js';
import { SysctlError, type SysctlValue } from '../stack/sysctl.js';
import { compileFilter, FilterError, type FramePredicate } from './capture-filter.js';
import type { TstackConfig } from './config.js';
import type { Instance } from './instance.js';
import { formatMetrics, startMetricsServer, type MetricsInput } from './metrics.js';

export const PROTOCOL_VERSION = 1;
/** A request line longer than this is refused and the connection closed. */
export const MAX_REQUEST_BYTES = 1 << 20;
/** Reply bytes a client may leave unread before it is disconnected. */
export const MAX_PENDING_OUTPUT = 8 << 20;
/** Unread reply bytes past which a client's next requests wait (the stack does no work for a client that does not read). */
export const OUTPUT_HIGH_WATER = 1 << 20;
/** How long a client may stay past OUTPUT_HIGH_WATER without reading before it is disconnected. */
export const STALL_MS = 5000;
/** Unread bytes past which a capture drops frames for that client (counted). */
export const CAPTURE_HIGH_WATER = 1 << 20;

/** Where instances put their sockets: /run/tstack for root, else $XDG_RUNTIME_DIR/tstack or the temp dir. */
export function defaultControlDir(): string {
  if (process.getuid?.() === 0) return '/run/tstack';
  const xdg = process.env['XDG_RUNTIME_DIR'];
  if (xdg) return join(xdg, 'tstack');
  return join(tmpdir(), `tstack-${process.getuid?.() ?? 'user'}`);
}

/** The directories `tstack ps` and the tools look in: the user's own, then root's. */
export function controlDirs(): string[] {
  return [...new Set([defaultControlDir(), '/run/tstack'])];
}

/** The configured socket path, or `<dir>/<name>.sock`. */
export function controlSocketPath(config: TstackConfig): string {
  return config.control.socket !== '' ? config.control.socket : join(defaultControlDir(), `${config.control.name}.sock`);
}

/** An error a command answers with: `code` is errno-like (EINVAL, ENOENT, EACCES…). */
export class CommandError extends Error {
  constructor(readonly code: string, message: string) { super(message); this.name = 'CommandError'; }
}

interface Conn { sock: Socket; captures: Set<CaptureSession>; inflight: number; pending: string; stall: NodeJS.Timeout | null }

/** Requests a client may have waiting; past this its socket is not read until replies go out. */
const MAX_INFLIGHT = 32;

interface CaptureSession {
  conn: Conn;
  id: unknown;
  ifIndex: number;
  match: FramePredicate;
  count: number;
  snaplen: number;
  captured: number;
  dropped: number;
}

type Args = Record<string, unknown>;
type Handler = (args: Args, conn: Conn, id: unknown) => unknown;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch { return 'unknown'; }
}

const str = (args: Args, key: string, required = true): string | undefined => {
  const v = args[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw new CommandError('EINVAL', `argument '${key}' must be a non-empty string`);
  return v;
};

/** Commands that change the stack: with several workers, what one worker is told reaches all (src/runtime/worker.ts). */
export const CHANGING_COMMANDS: ReadonlySet<string> = new Set(['sysctl.set', 'ifconfig.set', 'route.add', 'route.delete', 'arp.set', 'arp.delete', 'ndp.delete']);

export interface ControlOptions {
  /** Warnings (socket in use, metrics port taken…); default: stderr. */
  onWarning?: (message: string) => void;
  /**
   * Which worker of how many this instance's stack is (`tstack run` with `[stack] workers` > 1);
   * default: from the supervisor's environment (TSTACK_WORKER, TSTACK_WORKERS), else 0 of 1.
   */
  worker?: { index: number; count: number };
}

/** The worker identity the supervisor put in the environment (src/runtime/worker.ts), or 0 of 1. */
export function workerOfEnv(env: NodeJS.ProcessEnv = process.env): { index: number; count: number } {
  const i = Number(env['TSTACK_WORKER']), n = Number(env['TSTACK_WORKERS']);
  if (env['TSTACK_WORKER'] === undefined || !Number.isInteger(i) || !Number.isInteger(n) || i < 0 || i >= n) return { index: 0, count: 1 };
  return { index: i, count: n };
}

/**
 * The control socket and metrics endpoint of one instance. start() is asynchronous (a stale
 * socket is probed first); `ready` resolves with the socket's path (or null when it could not
 * be created: the instance runs on, without tools).
 */
export class ControlServer {
  /** The instance's name: `[control] name`, or `<name>-<pid>` when another live instance holds it. */
  name: string;
  path: string;
  readonly ready: Promise<string | null>;
  readonly startedAt = Date.now();
  /** Called after a CHANGING_COMMANDS command succeeded (a worker passes it on to the others). */
  onChange: ((cmd: string, args: Record<string, unknown>) => void) | null = null;
  /** Clients disconnected because they left too much output unread. */
  slowDisconnects = 0;
  private server: Server | null = null;
  private metrics: HttpServer | null = null;
  private ownsPath = false;
  private closed = false;
  private readonly conns = new Set<Conn>();
  private readonly captures = new Set<CaptureSession>();
  private readonly handlers: Record<string, Handler>;
  private readonly warn: (m: string) => void;
  private readonly version = packageVersion();
  /** This stack's worker number and the instance's worker count (each worker has its own socket). */
  readonly worker: { index: number; count: number };

  constructor(readonly inst: Instance, opts: ControlOptions = {}) {
    this.warn = opts.onWarning ?? ((m) => process.stderr.write(`tstack: ${m}\n`));
    this.worker = opts.worker ?? workerOfEnv();
    const cfg = inst.config;
    this.name = cfg.control.name;
    this.path = controlSocketPath(cfg);
    this.handlers = this.commands();
    const listen = cfg.metrics.listen;
    // With several workers, worker 0 serves the endpoint for all (it asks the others' sockets).
    if (listen !== undefined && this.worker.index === 0) {
      // Synchronously, before tstack/register patches node:net: this listener is the kernel's.
      this.metrics = startMetricsServer(listen, () => (this.worker.count > 1 ? this.instanceMetricsText() : this.run(() => this.metricsText())),
        (e) => this.warn(`metrics endpoint ${listen}: ${e.message}`));
    }
    // `[control] enabled = false` with metrics on: the endpoint alone.
    this.ready = !cfg.control.enabled ? Promise.resolve(null) : this.start().catch((e: Error) => { this.warn(`control socket ${this.path}: ${e.message}; tools cannot reach this instance`); return null; });
  }

  private async start(): Promise<string | null> {
    const explicit = this.inst.config.control.socket !== '';
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    const state = await probe(this.path);
    if (this.closed) return null;
    if (state === 'live') {
      if (explicit) throw new Error('another running instance answers on it (set [control] socket or name to another value)');
      // Several instances started from files with the same name: keep them apart by pid.
      this.name = `${this.name}-${process.pid}`;
      this.path = join(dirname(this.path), `${this.name}.sock`);
      if (await probe(this.path) === 'stale') unlinkSync(this.path);
    } else if (state === 'stale') {
      unlinkSync(this.path);
    } else if (state === 'not-socket') {
      throw new Error('the path exists and is not a socket (refusing to replace it)');
    }
    const server = createServer((sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => { server.removeListener('error', reject); resolve(); });
    });
    this.ownsPath = true;
    server.unref();
    server.on('error', (e) => this.warn(`control socket ${this.path}: ${e.message}`));
    chmodSync(this.path, 0o660);
    const group = this.inst.config.control.group;
    if (group !== undefined) chownSync(this.path, -1, resolveGroup(group));
    if (this.closed) { this.close(); return null; }
    return this.path;
  }

  /** Stops listening, disconnects every client, removes the socket file. Idempotent. */
  close(): void {
    if (this.closed && !this.server && !this.metrics) return;
    this.closed = true;
    for (const s of [...this.captures]) this.endCapture(s);
    for (const c of this.conns) c.sock.destroy();
    this.conns.clear();
    this.server?.close();
    this.server = null;
    this.metrics?.closeAllConnections?.();
    this.metrics?.close();
    this.metrics = null;
    if (this.ownsPath) {
      this.ownsPath = false;
      try { unlinkSync(this.path); } catch { /* already gone */ }
    }
  }

  // ---- connections -------------------------------------------------------------------------

  private accept(sock: Socket): void {
    // A connected tool must not keep a program alive that would otherwise exit.
    sock.unref();
    const conn: Conn = { sock, captures: new Set(), inflight: 0, pending: '', stall: null };
    this.conns.add(conn);
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      conn.pending += chunk;
      if (conn.pending.length > MAX_REQUEST_BYTES && conn.pending.indexOf('\n') < 0) {
        this.send(conn, { v: PROTOCOL_VERSION, id: null, ok: false, error: { code: 'E2BIG', message: `request longer than ${MAX_REQUEST_BYTES} bytes` } });
        sock.end();
        conn.pending = '';
        return;
      }
      this.drain(conn);
    });
    sock.on('error', () => { /* the client went away */ });
    // It read its replies: the requests that waited go on.
    sock.on('drain', () => { if (conn.stall) { clearTimeout(conn.stall); conn.stall = null; } this.drain(conn); });
    sock.on('close', () => {
      if (conn.stall) { clearTimeout(conn.stall); conn.stall = null; }
      this.conns.delete(conn);
      for (const s of [...conn.captures]) this.endCapture(s, false);
    });
  }

  /**
   * Starts the client's waiting requests, up to MAX_INFLIGHT at a time (the rest wait unread),
   * and none while more than OUTPUT_HIGH_WATER of its replies are unread: a client that does
   * not read costs the stack no more work, and is disconnected after STALL_MS (unless it is
   * capturing: a capture drops frames for a slow reader instead).
   */
  private drain(conn: Conn): void {
    if (conn.sock.writableLength > OUTPUT_HIGH_WATER) {
      conn.sock.pause();
      if (conn.stall === null && conn.captures.size === 0) {
        conn.stall = setTimeout(() => {
          conn.stall = null;
          if (conn.sock.writableLength > OUTPUT_HIGH_WATER && conn.captures.size === 0) { this.slowDisconnects++; conn.sock.destroy(); }
        }, STALL_MS);
        conn.stall.unref();
      }
      return;
    }
    let nl: number;
    while (conn.inflight < MAX_INFLIGHT && !conn.sock.destroyed && (nl = conn.pending.indexOf('\n')) >= 0) {
      const line = conn.pending.slice(0, nl);
      conn.pending = conn.pending.slice(nl + 1);
      if (line.trim() !== '') this.request(conn, line);
    }
    if (conn.inflight >= MAX_INFLIGHT || conn.pending.length > MAX_REQUEST_BYTES) conn.sock.pause();
    else conn.sock.resume();
  }

  /** Queues one line for the client; disconnects it when its unread output passes the bound. */
  private send(conn: Conn, msg: unknown): boolean {
    const sock = conn.sock;
    if (sock.destroyed) return false;
    const line = JSON.stringify(msg) + '\n';
    if (sock.writableLength + line.length > MAX_PENDING_OUTPUT) {
      this.slowDisconnects++;
      sock.destroy();
      return false;
    }
    sock.write(line);
    return true;
  }

  private request(conn: Conn, line: string): void {
    let req: unknown;
    try { req = JSON.parse(line); } catch (e) {
      this.send(conn, { v: PROTOCOL_VERSION, id: null, ok: false, error: { code: 'EPROTO', message: `malformed request (not JSON): ${(e as Error).message}` } });
      return;
    }
    const r = req as { v?: unknown; id?: unknown; cmd?: unknown; args?: unknown; worker?: unknown };
    const id = typeof r === 'object' && r !== null && (typeof r.id === 'number' || typeof r.id === 'string') ? r.id : null;
    const fail = (code: string, message: string) => this.send(conn, { v: PROTOCOL_VERSION, id, ok: false, error: { code, message } });
    if (typeof r !== 'object' || r === null || Array.isArray(r)) { fail('EPROTO', 'malformed request: want a JSON object {"v":1,"id":…,"cmd":…,"args":{…}}'); return; }
    if (r.v !== PROTOCOL_VERSION) { fail('EPROTO', `unsupported protocol version ${JSON.stringify(r.v)} (this instance speaks ${PROTOCOL_VERSION})`); return; }
    if (typeof r.cmd !== 'string') { fail('EPROTO', 'malformed request: "cmd" must be a string'); return; }
    if (r.args !== undefined && (typeof r.args !== 'object' || r.args === null || Array.isArray(r.args))) { fail('EPROTO', 'malformed request: "args" must be an object'); return; }
    // "worker": the request is about one worker's stack (absent: the whole instance).
    if (r.worker !== undefined && r.worker !== null) {
      if (typeof r.worker !== 'number' || !Number.isInteger(r.worker) || r.worker < 0) { fail('EPROTO', 'malformed request: "worker" must be a worker number (0, 1, …)'); return; }
      const n = this.workerCount();
      if (r.worker >= n) { fail('ENXIO', `no worker ${r.worker}: this instance runs ${n} worker${n === 1 ? '' : 's'} (${n === 1 ? '0' : `0..${n - 1}`})`); return; }
      // Each worker answers for its own stack only; the others have sockets of their own.
      if (r.worker !== this.worker.index) {
        fail('ENXIO', `this is worker ${this.worker.index}'s control socket (${this.path}); worker ${r.worker} has its own (${this.path.replace(/\.w\d+\.sock$/, '')}.w${r.worker}.sock)`);
        return;
      }
    }
    const handler = Object.prototype.hasOwnProperty.call(this.handlers, r.cmd) ? this.handlers[r.cmd] : undefined;
    if (!handler) { fail('ENOSYS', `unknown command '${r.cmd}' (try 'help')`); return; }
    const args = (r.args ?? {}) as Args;
    conn.inflight++;
    const settle = () => { conn.inflight--; if (!conn.sock.destroyed) this.drain(conn); };
    this.run(() => (conn.sock.destroyed ? GONE : handler(args, conn, id))).then((result) => {
      settle();
      if (this.onChange !== null && result !== GONE && CHANGING_COMMANDS.has(r.cmd as string)) this.onChange(r.cmd as string, args);
      if (result !== STREAMING && result !== GONE) this.send(conn, { v: PROTOCOL_VERSION, id, ok: true, result });
    }, (e: unknown) => {
      settle();
      if (e instanceof CommandError) fail(e.code, e.message);
      else fail('EIO', e instanceof Error ? e.message : String(e));
    });
  }

  /** Workers (one stack each) this instance runs. */
  private workerCount(): number { return this.worker.count; }

  /**
   * Runs one of CHANGING_COMMANDS without a client (another worker's change, passed on);
   * rejects with its CommandError.
   */
  apply(cmd: string, args: Record<string, unknown>): Promise<unknown> {
    const handler = CHANGING_COMMANDS.has(cmd) ? this.handlers[cmd] : undefined;
    if (!handler) return Promise.reject(new CommandError('ENOSYS', `'${cmd}' is not a change to apply`));
    return this.run(() => handler(args, null as unknown as Conn, null));
  }

  /** Runs `fn` between loop iterations, on the stack's thread. */
  private run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.inst.loop.post(() => { try { resolve(fn()); } catch (e) { reject(e); } });
    });
  }

  // ---- commands ----------------------------------------------------------------------------

  private info(): Record<string, unknown> {
    const inst = this.inst;
    return {
      protocol: PROTOCOL_VERSION, version: this.version, name: this.name, pid: process.pid, socket: this.path,
      config: inst.config.file, workers: this.workerCount(), worker: this.worker.index,
      ...(this.worker.count > 1 && { instance: this.name.replace(/\.w\d+(-\d+)?$/, ''), supervisor: process.ppid }), poll: inst.loop.mode, startedAt: new Date(this.startedAt).toISOString(),
      uptime: (Date.now() - this.startedAt) / 1000, metrics: inst.config.metrics.listen ?? null,
      clients: this.conns.size, slowDisconnects: this.slowDisconnects,
      ports: inst.ports.map((p) => {
        const i = inst.stack.interfaceByIndex(p.ifIndex);
        return { name: p.config.ifname, driver: p.config.driver, inet: i ? i.addrs.map((a) => `${formatIpv4(a.addr)}/${a.prefixLen}`) : [] };
      }),
    };
  }

  private devices(): MetricsInput['devices'] {
    return this.inst.ports.map((p) => ({ port: p.config.ifname, driver: p.config.driver, stats: p.driver.stats() }));
  }

  private counters(): Record<string, unknown> {
    const stack = this.inst.stack;
    return {
      worker: this.worker.index, time: stack.clock.now(), interfaces: interfaces(stack), counters: counters(stack), gauges: gauges(stack),
      loop: this.inst.loop.stats(), devices: this.devices(),
    };
  }

  private metricsText(): string {
    return formatMetrics([this.metricsInput()]);
  }

  /**
   * The exposition for every worker of the instance (worker 0's endpoint): its own numbers and
   * each other worker's, asked over that worker's control socket (`<name>.w<i>.sock`). A worker
   * that does not answer within a second (being replaced) is left out of this scrape.
   */
  private async instanceMetricsText(): Promise<string> {
    const own = await this.run(() => this.metricsInput());
    const others = await Promise.all(Array.from({ length: this.worker.count - 1 }, (_, k) => {
      const path = this.path.replace(/\.w\d+\.sock$/, `.w${k + 1}.sock`);
      return path === this.path ? Promise.resolve(null) : askSocket(path, 'metrics', { raw: true }, 1000)
        .then((r) => (r as { input: MetricsInput }).input, () => null);
    }));
    return formatMetrics([own, ...others.filter((x): x is MetricsInput => x !== null)]);
  }

  /** What formatMetrics needs of this stack (the tools merge several workers' with it). */
  private metricsInput(): MetricsInput {
    const stack = this.inst.stack;
    return {
      worker: this.worker.index, snapshot: snapshot(stack, { tables: false }), loop: this.inst.loop.stats(), devices: this.devices(),
      startTimeSeconds: this.startedAt / 1000,
    };
  }

  private portIndex(name: string): number {
    const p = this.inst.ports.find((x) => x.config.ifname === name);
    const iface = p ? undefined : this.inst.stack.interfaces.find((i) => i.name === name);
    const idx = p?.ifIndex ?? iface?.index;
    if (idx === undefined) throw new CommandError('ENXIO', `no port '${name}' (ports: ${this.inst.stack.interfaces.map((i) => i.name).join(', ')})`);
    return idx;
  }

  /** The interface whose subnet holds `addr` (a connected route), or 0. */
  private connectedIf(addr: number): number {
    for (const i of this.inst.stack.interfaces) for (const a of i.addrs) if (((addr & a.mask) >>> 0) === a.network) return i.index;
    return 0;
  }

  private commands(): Record<string, Handler> {
    const stack = this.inst.stack;
    const sys = stack.sysctl;
    const host = (args: Args, key: string): number => {
      const s = str(args, key)!;
      const a = parseIpv4(s);
      if (a === null) throw new CommandError('EINVAL', `'${s}' is not an IPv4 address`);
      return a;
    };
    const destination = (s: string): { addr: number; prefixLen: number } => {
      if (s === 'default') return { addr: 0, prefixLen: 0 };
      const c = parseIpv4Cidr(s) ?? (parseIpv4(s) !== null ? { addr: parseIpv4(s)!, prefixLen: 32 } : null);
      if (!c) throw new CommandError('EINVAL', `'${s}' is not a destination (want default, A.B.C.D or A.B.C.D/LEN)`);
      return c;
    };
    return {
      help: () => ({ commands: Object.keys(this.handlers).sort() }),
      info: () => this.info(),
      counters: () => this.counters(),
      snapshot: (args) => ({
        ...snapshot(stack, { sockets: args['sockets'] === true, sysctl: args['sysctl'] === true }),
        worker: this.worker.index, loop: this.inst.loop.stats(), devices: this.devices(),
        drivers: Object.fromEntries(this.inst.ports.map((p) => [p.config.ifname, p.config.driver])),
      }),
      // `raw`: the numbers behind the text, for a tool that merges several workers' (src/cli/metrics.ts).
      metrics: (args) => (args['raw'] === true ? { input: this.metricsInput() } : { text: this.metricsText() }),

      'sysctl.list': (args) => {
        const prefix = str(args, 'prefix', false) ?? '';
        return sys.list(prefix).map(({ name, value, def }) => ({ name, value, type: def.type, default: def.default, description: def.description,
          readonly: def.readonly === true, ...(def.min !== undefined && { min: def.min }), ...(def.max !== undefined && { max: def.max }),
          ...(def.choices && { choices: def.choices }) }));
      },
      'sysctl.get': (args) => {
        const name = str(args, 'name')!;
        try { return { name, value: sys.get(name) }; } catch (e) {
          if (e instanceof SysctlError) throw new CommandError('ENOENT', `unknown sysctl '${name}'`);
          throw e;
        }
      },
      'sysctl.set': (args) => {
        const name = str(args, 'name')!;
        const raw = args['value'];
        if (typeof raw !== 'number' && typeof raw !== 'string' && typeof raw !== 'boolean') throw new CommandError('EINVAL', `sysctl '${name}': a value must be a number, a string or a boolean`);
        let old: SysctlValue;
        try { old = sys.get(name); } catch { throw new CommandError('ENOENT', `unknown sysctl '${name}'`); }
        try {
          return { name, old, value: sys.set(name, raw) };
        } catch (e) {
          if (!(e instanceof SysctlError)) {
            // A module refused the value after it was stored: put the old one back.
            try { sys.set(name, old, true); } catch { /* it was valid before */ }
          }
          throw new CommandError('EINVAL', (e as Error).message.startsWith(`sysctl '${name}'`) ? (e as Error).message : `sysctl '${name}': ${(e as Error).message}`);
        }
      },

      'ifconfig.set': (args) => {
        const port = str(args, 'port')!;
        const idx = this.portIndex(port);
        const iface = stack.interfaceByIndex(idx)!;
        // Validate everything first: a refused request changes nothing.
        const mtu = args['mtu'];
        if (mtu !== undefined && (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > iface.dev.mtu)) {
          throw new CommandError('EINVAL', `${port}: mtu ${JSON.stringify(mtu)} is out of range (576..${iface.dev.mtu}, the device's)`);
        }
        const up = args['up'];
        if (up !== undefined && typeof up !== 'boolean') throw new CommandError('EINVAL', `'up' must be true or false`);
        const add = str(args, 'add', false), del = str(args, 'delete', false);
        // IPv6 (an address with a colon): FreeBSD's `ifconfig PORT inet6 CIDR [-alias]`.
        const add6 = add?.includes(':') ? cidr6(add, 64) : undefined;
        const del6 = del?.includes(':') ? cidr6(del, 128) : undefined;
        if (add6) {
          if (isIpv6Multicast(add6.addr, 0) || isIpv6Unspecified(add6.addr, 0)) throw new CommandError('EINVAL', `'${add}' is not a unicast IPv6 address`);
          if (stack.ip6.link(idx)?.findAddress(add6.addr, 0)) throw new CommandError('EEXIST', `${port} already has ${formatIpv6(add6.addr)}`);
        }
        if (del6 && !stack.ip6.link(idx)?.findAddress(del6.addr, 0)) throw new CommandError('EADDRNOTAVAIL', `${port} has no address ${formatIpv6(del6.addr)}`);
        if (add !== undefined && !add6) {
          const c = parseIpv4Cidr(add);
          if (!c) throw new CommandError('EINVAL', `'${add}' is not an IPv4 address with a prefix length (A.B.C.D/LEN)`);
          if (iface.hasAddress(c.addr)) throw new CommandError('EEXIST', `${port} already has ${formatIpv4(c.addr)}`);
        }
        if (del !== undefined && !del6) {
          const c = parseIpv4Cidr(del) ?? (parseIpv4(del) !== null ? { addr: parseIpv4(del)! } : null);
          if (!c) throw new CommandError('EINVAL', `'${del}' is not an IPv4 address`);
          if (!iface.hasAddress(c.addr)) throw new CommandError('EADDRNOTAVAIL', `${port} has no address ${formatIpv4(c.addr)}`);
        }
        if (mtu !== undefined) stack.setInterfaceMtu(idx, mtu as number);
        if (up !== undefined) stack.setInterfaceUp(idx, up);
        if (del6) stack.ip6.removeAddress(idx, del6.addr);
        else if (del !== undefined) stack.removeAddress(idx, del);
        if (add6) {
          const text = `${formatIpv6(add6.addr)}/${add6.prefixLen}`;
          try {
            // A port without IPv6 gets it (link-local address, DAD) with its first inet6 address.
            if (stack.ip6.link(idx)) stack.ip6.addAddress(idx, text); else stack.ip6.attach(iface, { addr6: text });
          } catch (e) { throw new CommandError('EINVAL', `${port}: ${(e as Error).message}`); }
        } else if (add !== undefined) stack.addAddress(idx, add);
        return interfaces(stack).find((i) => i.index === idx);
      },

      'vlan.create': (args) => {
        const port = str(args, 'port')!;
        const idx = this.portIndex(port);
        const id = args['id'], outer = args['outer'] ?? 0;
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 4094) throw new CommandError('EINVAL', `VLAN id ${JSON.stringify(id)} is out of range (1..4094)`);
        if (typeof outer !== 'number' || !Number.isInteger(outer) || outer < 0 || outer > 4094) throw new CommandError('EINVAL', `outer VLAN id ${JSON.stringify(outer)} is out of range (1..4094)`);
        const name = str(args, 'name', false);
        if (name !== undefined && stack.interfaces.some((i) => i.name === name)) throw new CommandError('EEXIST', `an interface '${name}' exists`);
        let vi: number;
        try {
          vi = stack.addVlan(idx, id, { ...(name !== undefined && { name }), ...(outer !== 0 && { outer }) });
        } catch (e) {
          throw new CommandError(/already exists/.test((e as Error).message) ? 'EEXIST' : 'EINVAL', (e as Error).message);
        }
        return interfaces(stack).find((i) => i.index === vi);
      },

      'route.add': (args) => {
        if (isV6(args)) return this.routeAdd6(args);
        const d = destination(str(args, 'destination')!);
        const gwText = str(args, 'gateway', false);
        const gw = gwText === undefined ? 0 : host(args, 'gateway');
        const portName = str(args, 'port', false);
        let idx = portName !== undefined ? this.portIndex(portName) : 0;
        if (idx === 0) {
          if (gw === 0) throw new CommandError('EINVAL', 'a route needs a gateway or a port (interface)');
          idx = this.connectedIf(gw);
          if (idx === 0) throw new CommandError('ENETUNREACH', `gateway ${gwText} is not on a connected network`);
        }
        const metric = args['metric'] === undefined ? 0 : Number(args['metric']);
        if (!Number.isInteger(metric) || metric < 0) throw new CommandError('EINVAL', `metric ${JSON.stringify(args['metric'])} must be a non-negative integer`);
        try {
          stack.routes.add(d.addr, d.prefixLen, gw, idx, metric, RouteFlags.Static);
        } catch (e) { throw new CommandError('EEXIST', (e as Error).message); }
        return routes(stack);
      },
      'route.delete': (args) => {
        if (isV6(args)) return this.routeDelete6(args);
        const text = str(args, 'destination')!;
        const d = destination(text);
        const portName = str(args, 'port', false);
        if (!stack.routes.delete(d.addr, d.prefixLen, portName !== undefined ? this.portIndex(portName) : undefined)) {
          throw new CommandError('ESRCH', `no route to ${text}${portName ? ` on ${portName}` : ''}`);
        }
        return routes(stack);
      },
      'route.get': (args): { destination: string; route: RouteSnapshot | Route6Snapshot; source: string; nexthop: string } => {
        if (isV6(args)) return this.routeGet6(args);
        const dst = host(args, 'destination');
        const r = stack.routes.lookup(dst);
        if (!r) throw new CommandError('ENETUNREACH', `no route to ${formatIpv4(dst)}`);
        const snap = routes(stack).find((x) => x.destination === formatIpv4(r.dst) && x.prefixLen === r.prefixLen && x.metric === r.metric)!;
        return { destination: formatIpv4(dst), route: snap, source: formatIpv4(stack.sourceAddress(dst)), nexthop: formatIpv4(r.gateway || dst) };
      },

      'arp.delete': (args) => {
        const ip = host(args, 'host');
        let n = 0;
        for (const i of stack.interfaces) if (stack.arp.delete(i.index, ip)) n++;
        if (n === 0) throw new CommandError('ENOENT', `${formatIpv4(ip)}: no ARP entry`);
        return { deleted: formatIpv4(ip) };
      },
      'arp.set': (args) => {
        const ip = host(args, 'host');
        const macText = str(args, 'mac')!;
        const mac = parseMac(macText);
        if (!mac) throw new CommandError('EINVAL', `'${macText}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
        const portName = str(args, 'port', false);
        const idx = portName !== undefined ? this.portIndex(portName) : this.connectedIf(ip);
        if (idx === 0) throw new CommandError('ENETUNREACH', `${formatIpv4(ip)} is not on a connected network`);
        stack.arp.addStatic(idx, ip, mac);
        return { ip: formatIpv4(ip), mac: macText.toLowerCase(), state: 'permanent' };
      },
      'ndp.list': () => {
        return {
          ndp: stack.ip6.ndp.list().map((e) => ({ ...e, ifname: stack.interfaceByIndex(e.ifIndex)?.name ?? `if${e.ifIndex}` })),
          addresses: stack.interfaces.filter((i) => !i.loopback && stack.ip6.link(i.index)).map((i) => ({ ifname: i.name, addrs: stack.ip6.addresses(i.index) })),
        };
      },
      'ndp.delete': (args) => {
        const text = str(args, 'host')!;
        const addr = parseIpv6(text);
        if (!addr) throw new CommandError('EINVAL', `'${text}' is not an IPv6 address`);
        let n = 0;
        for (const i of stack.interfaces) if (stack.ip6.ndp.delete(i.index, addr)) n++;
        if (n === 0) throw new CommandError('ENOENT', `${text}: no neighbor entry`);
        return { deleted: text };
      },

      capture: (args, conn, id) => this.startCapture(args, conn, id),
      'capture.stop': (args, conn) => {
        for (const s of conn.captures) if (s.id === args['id']) { this.endCapture(s); return { stopped: true }; }
        throw new CommandError('ESRCH', `no capture with id ${JSON.stringify(args['id'])} on this connection`);
      },
    };
  }

  // ---- IPv6 routes -------------------------------------------------------------------------

  private routeAdd6(args: Args): Route6Snapshot[] {
    const stack = this.inst.stack;
    const d = dest6(str(args, 'destination')!);
    const gwText = str(args, 'gateway', false);
    const gw = gwText === undefined ? null : parseIpv6(gwText);
    if (gwText !== undefined && (!gw || isIpv6Multicast(gw, 0) || isIpv6Unspecified(gw, 0))) throw new CommandError('EINVAL', `'${gwText}' is not a unicast IPv6 gateway`);
    const portName = str(args, 'port', false);
    let idx = portName !== undefined ? this.portIndex(portName) : 0;
    if (idx !== 0 && !stack.ip6.link(idx)) throw new CommandError('EINVAL', `${portName} has no IPv6 (give it an address: ifconfig ${portName} inet6 CIDR)`);
    if (idx === 0) {
      if (!gw) throw new CommandError('EINVAL', 'a route needs a gateway or a port (interface)');
      const links = stack.interfaces.filter((i) => !i.loopback && stack.ip6.link(i.index)).map((i) => i.index);
      if (isIpv6LinkLocal(gw, 0)) {
        // A link-local next hop names no link by itself: only a single IPv6 port is unambiguous.
        if (links.length !== 1) throw new CommandError('EINVAL', `gateway ${gwText} is link-local: name the port (-interface PORT)`);
        idx = links[0]!;
      } else {
        const r = stack.ip6.routes.lookup(gw, 0, stack.clock.now());
        if (!r || r.hasGateway) throw new CommandError('ENETUNREACH', `gateway ${gwText} is not on a connected network`);
        idx = r.ifIndex;
      }
    }
    const metric = args['metric'] === undefined ? 0 : Number(args['metric']);
    if (!Number.isInteger(metric) || metric < 0) throw new CommandError('EINVAL', `metric ${JSON.stringify(args['metric'])} must be a non-negative integer`);
    if (stack.ip6.routes.find(d.addr, d.prefixLen, gw, idx)) throw new CommandError('EEXIST', `a route to ${formatIpv6(d.addr)}/${d.prefixLen} through that next hop exists`);
    stack.ip6.routes.add(d.addr, 0, d.prefixLen, gw, idx, Route6Flags.Static, metric);
    return routes6(stack);
  }

  private routeDelete6(args: Args): Route6Snapshot[] {
    const stack = this.inst.stack;
    const text = str(args, 'destination')!;
    const d = dest6(text);
    const portName = str(args, 'port', false);
    if (!stack.ip6.routes.delete(d.addr, d.prefixLen, portName !== undefined ? this.portIndex(portName) : undefined)) {
      throw new CommandError('ESRCH', `no route to ${text}${portName ? ` on ${portName}` : ''}`);
    }
    return routes6(stack);
  }

  private routeGet6(args: Args): { destination: string; route: Route6Snapshot; source: string; nexthop: string } {
    const stack = this.inst.stack;
    const text = str(args, 'destination')!;
    const dst = text === 'default' ? new Uint8Array(16) : parseIpv6(text);
    if (!dst) throw new CommandError('EINVAL', `'${text}' is not an IPv6 address`);
    const r = stack.ip6.routes.lookup(dst, 0, stack.clock.now());
    if (!r) throw new CommandError('ENETUNREACH', `no route to ${formatIpv6(dst)}`);
    const prefix = formatIpv6(r.prefix), gateway = r.hasGateway ? formatIpv6(r.gateway) : '';
    const ifname = stack.interfaceByIndex(r.ifIndex)?.name;
    const snap = routes6(stack).find((x) => x.destination === prefix && x.prefixLen === r.prefixLen && x.gateway === gateway && x.ifname === ifname && x.metric === r.metric)!;
    const src = stack.ip6.link(r.ifIndex)?.sourceFor(dst, 0);
    return { destination: formatIpv6(dst), route: snap, source: src ? formatIpv6(src.addr) : '', nexthop: gateway || formatIpv6(dst) };
  }

  // ---- live capture ------------------------------------------------------------------------

  private startCapture(args: Args, conn: Conn, id: unknown): typeof STREAMING {
    const portName = str(args, 'port', false);
    const ifIndex = portName !== undefined ? this.portIndex(portName) : 0;
    let match: FramePredicate;
    try { match = compileFilter(typeof args['filter'] === 'string' ? args['filter'] : ''); } catch (e) {
      if (e instanceof FilterError) throw new CommandError('EINVAL', e.message);
      throw e;
    }
    const count = args['count'] === undefined ? 0 : Number(args['count']);
    if (!Number.isInteger(count) || count < 0) throw new CommandError('EINVAL', `count ${JSON.stringify(args['count'])} must be a non-negative integer`);
    const snaplen = args['snaplen'] === undefined ? 262144 : Number(args['snaplen']);
    if (!Number.isInteger(snaplen) || snaplen < 14) throw new CommandError('EINVAL', `snaplen ${JSON.stringify(args['snaplen'])} must be an integer >= 14`);
    const s: CaptureSession = { conn, id, ifIndex, match, count, snaplen, captured: 0, dropped: 0 };
    this.captures.add(s);
    conn.captures.add(s);
    this.inst.stack.frameTap = this.tap;
    this.send(conn, { v: PROTOCOL_VERSION, id, event: 'started', linktype: 1, snaplen });
    return STREAMING;
  }

  private endCapture(s: CaptureSession, reply = true): void {
    if (!this.captures.delete(s)) return;
    s.conn.captures.delete(s);
    if (this.captures.size === 0) this.inst.stack.frameTap = null;
    if (reply) this.send(s.conn, { v: PROTOCOL_VERSION, id: s.id, ok: true, result: { captured: s.captured, dropped: s.dropped } });
  }

  private readonly tap = (ifIndex: number, buf: PacketBuffer, tx: boolean): void => {
    for (const s of this.captures) {
      if (s.ifIndex !== 0 && s.ifIndex !== ifIndex) continue;
      if (!s.match(buf.data, buf.start, buf.length)) continue;
      const sock = s.conn.sock;
      if (sock.destroyed) continue;
      // A slow reader loses frames, never the stack's time.
      if (sock.writableLength > CAPTURE_HIGH_WATER) { s.dropped++; continue; }
      const caplen = Math.min(buf.length, s.snaplen);
      const data = Buffer.from(buf.data.buffer, buf.data.byteOffset + buf.start, caplen).toString('base64');
      this.send(s.conn, {
        v: PROTOCOL_VERSION, id: s.id, event: 'frame', t: performance.timeOrigin + performance.now(),
        port: this.inst.stack.interfaceByIndex(ifIndex)?.name ?? `if${ifIndex}`, dir: tx ? 'out' : 'in', len: buf.length, data,
      });
      s.captured++;
      if (s.count !== 0 && s.captured >= s.count) this.endCapture(s);
    }
  };
}

/** An IPv6 request: `"inet6": true`, or an address with a colon in destination or gateway. */
function isV6(args: Args): boolean {
  return args['inet6'] === true || [args['destination'], args['gateway']].some((v) => typeof v === 'string' && v.includes(':'));
}

/** "ADDR/LEN" or "ADDR" (prefix length `defaultLen`) as an IPv6 address and prefix length. */
function cidr6(text: string, defaultLen: number): { addr: Uint8Array; prefixLen: number } {
  const [a, l, ...rest] = text.split('/');
  const addr = a ? parseIpv6(a) : null;
  const prefixLen = l === undefined ? defaultLen : /^\d{1,3}$/.test(l) ? Number(l) : -1;
  if (!addr || rest.length > 0 || prefixLen < 0 || prefixLen > 128) throw new CommandError('EINVAL', `'${text}' is not an IPv6 address with a prefix length (2001:db8::2/64)`);
  return { addr, prefixLen };
}

/** A route destination: `default` (::/0), an address (/128) or ADDR/LEN. */
function dest6(text: string): { addr: Uint8Array; prefixLen: number } {
  if (text === 'default') return { addr: new Uint8Array(16), prefixLen: 0 };
  return cidr6(text, 128);
}

/** A command that answers with events, then a final reply of its own. */
const STREAMING = Symbol('streaming');
/** The client left before its command ran: nothing was done. */
const GONE = Symbol('gone');

/** One request to another instance's (worker's) control socket; rejects on an error reply, a timeout or no answer. */
function askSocket(path: string, cmd: string, args: Args, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    const done = (e: Error | null, v?: unknown) => { clearTimeout(t); s.destroy(); if (e) reject(e); else resolve(v); };
    const t = setTimeout(() => done(new Error(`${path}: no answer within ${timeoutMs} ms`)), timeoutMs);
    s.unref();
    s.setEncoding('utf8');
    s.on('connect', () => s.write(JSON.stringify({ v: PROTOCOL_VERSION, id: 1, cmd, args }) + '\n'));
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const r = JSON.parse(buf.slice(0, nl)) as { ok?: boolean; result?: unknown; error?: { message: string } };
        if (r.ok) done(null, r.result); else done(new Error(r.error?.message ?? 'refused'));
      } catch (e) { done(e as Error); }
    });
    s.on('error', (e) => done(e));
    s.on('close', () => done(new Error(`${path}: closed`)));
  });
}

/** What is at a socket path: nothing, a live instance, a stale socket, or something else. */
async function probe(path: string): Promise<'free' | 'live' | 'stale' | 'not-socket'> {
  let st;
  try { st = lstatSync(path); } catch { return 'free'; }
  if (!st.isSocket()) return 'not-socket';
  return await new Promise((resolve) => {
    const s = createConnection(path);
    const t = setTimeout(() => { s.destroy(); resolve('live'); }, 1000);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve('live'); });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      // Nobody accepts: the instance that made it died without removing it.
      resolve(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? 'stale' : 'live');
    });
  });
}

function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[0] === group);
  if (!line) throw new Error(`[control] group '${group}' does not exist`);
  return Number(line.split(':')[2]);
}

/** Starts the control socket (and metrics endpoint) of `inst`, unless `[control] enabled = false`. */
export function startControl(inst: Instance, opts: ControlOptions = {}): ControlServer | null {
  if (!inst.config.control.enabled && inst.config.metrics.listen === undefined) return null;
  return new ControlServer(inst, opts);
}
