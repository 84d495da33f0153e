// The supervisor of `tstack run` with `[stack] workers = N > 1` (docs/architecture.md,
// "Workers"): it makes the devices, runs the unmodified program once per worker (each a process
// with its own stack on its own queue: src/runtime/worker.ts), relays what workers must share
// (ARP entries), replaces a worker that dies or stalls, and makes the whole behave as one
// program for signals and the exit code.
//
// Workers start one at a time (each waits for the previous one's `ready`): their AF_PACKET
// sockets then join the fanout group in worker order, and the supervisor can follow the
// kernel's slot of every worker (src/driver/fanout.ts) through deaths and replacements.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { TstackConfig } from './config.js';
import { WORKER_ENV } from './worker.js';
import { createVethPair, deleteOwnDevice } from '../driver/ownership.js';
import { kernelEndName } from '../driver/afpacket.js';
import { attachXdpShared } from '../driver/afxdp.js';
import { TapDriver } from '../driver/tap.js';

export interface ClusterOptions {
  config: TstackConfig;
  configPath: string;
  app: string;
  args: string[];
  nodeOptions: string[];
  /** The compiled tstack/register module. */
  preload: string;
  /** Log lines (default: stderr with a `tstack: ` prefix). */
  log?: (line: string) => void;
  /** Signals passed on to every worker. */
  forwarded: NodeJS.Signals[];
  /** Signals a terminal already sent to the whole group (not passed on again when stdin is a TTY). */
  fromTerminal: NodeJS.Signals[];
}

interface Slot {
  index: number;
  child: ChildProcess | null;
  pid: number;
  ready: boolean;
  startedAt: number;
  lastBeat: number;
  /** Exited for good (the program ended, or a signal we passed on). */
  finished: boolean;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Why the supervisor killed it (the watchdog), for the log. */
  killedFor: string | null;
}

export interface ClusterStats { restarts: number; causes: string[]; steered: number; steerDropped: number }

/** How long a new worker may take to come up before it is counted as stalled. */
const START_TIMEOUT_MS = 30_000;
const WATCHDOG_TICK_MS = 50;

export class Cluster {
  readonly stats: ClusterStats = { restarts: 0, causes: [], steered: 0, steerDropped: 0 };
  private readonly slots: Slot[];
  /** Fanout group members in the kernel's slot order (worker indices). */
  private readonly order: number[] = [];
  /** Workers waiting to start, in order; one starts at a time. */
  private readonly pending: number[] = [];
  private starting = -1;
  private stopping = false;
  private forwardedSignal: NodeJS.Signals | null = null;
  private readonly seed: number;
  private readonly log: (line: string) => void;
  private readonly devices: { name: string; netns?: string }[] = [];
  /** AF_XDP ports: the XDP program the supervisor attached (workers' sockets join its XSKMAP), by port index. */
  private readonly xdp = new Map<number, { xskMapId: number; close(): void }>();
  private watchdog: ReturnType<typeof setInterval> | null = null;
  private lastCheck = performance.now();
  private done!: (code: number) => void;
  private failure: number | null = null;
  private resolved = false;
  private unhook = (): void => {};
  /** Changes made through a worker's control socket, replayed to every worker that starts later. */
  private readonly changes: object[] = [];

  constructor(private readonly o: ClusterOptions) {
    const n = o.config.stack.workers;
    this.slots = Array.from({ length: n }, (_, index) => ({
      index, child: null, pid: 0, ready: false, startedAt: 0, lastBeat: 0, finished: false, exit: null, killedFor: null,
    }));
    this.seed = process.pid & 0xffff;
    this.log = o.log ?? ((l) => process.stderr.write(`tstack: ${l}\n`));
  }

  /** Runs the workers until the program is over; resolves with the exit code (a signal death re-raises it). */
  run(): Promise<number> {
    const result = new Promise<number>((resolve) => { this.done = resolve; });
    try {
      this.makeDevices();
    } catch (e) {
      this.log((e as Error).message);
      this.removeDevices();
      return Promise.resolve(1);
    }
    const forward = (sig: NodeJS.Signals) => this.signal(sig);
    for (const s of this.o.forwarded) process.on(s, forward);
    this.unhook = () => { for (const s of this.o.forwarded) process.removeListener(s, forward); };
    this.watchdog = setInterval(() => this.check(), WATCHDOG_TICK_MS);
    for (let i = 0; i < this.slots.length; i++) this.pending.push(i);
    this.next();
    return result;
  }

  /** The supervisor creates the veth pairs (workers attach to them) and deletes them at the end. */
  private makeDevices(): void {
    for (const p of this.o.config.ports) {
      if (p.driver === 'tap') {
        // A persistent multi-queue TAP: every worker attaches a queue of its own.
        TapDriver.createMultiQueue({ ifname: p.ifname, mtu: p.mtu, ...(p.netns !== undefined && { netns: p.netns }),
          ...(p.hostAddr !== undefined && { hostAddr: p.hostAddr }), ...(p.hostAddr6 !== undefined && { hostAddr6: p.hostAddr6 }) });
        this.devices.push({ name: p.ifname, ...(p.netns !== undefined && { netns: p.netns }) });
        continue;
      }
      if (p.driver !== 'afpacket' && p.driver !== 'afxdp') throw new Error(`port[${p.index}]: driver "${p.driver}" has no per-worker queues yet; with workers > 1 use afpacket, afxdp or tap`);
      if (p.driver === 'afxdp' && p.exception) throw new Error(`port[${p.index}]: the AF_XDP exception path runs with one worker only (its port table is one stack's)`);
      if (p.hostAddr !== undefined || p.hostAddr6 !== undefined) {
        // AF_XDP: a queue per worker on both ends (worker i binds queue i).
        createVethPair({ name: p.ifname, kernelEnd: kernelEndName(p.ifname), ...(p.netns !== undefined && { netns: p.netns }), mtu: p.mtu,
          ...(p.hostAddr !== undefined && { hostAddr: p.hostAddr }), ...(p.hostAddr6 !== undefined && { hostAddr6: p.hostAddr6 }),
          ...(p.driver === 'afxdp' && { queues: this.slots.length }) });
        this.devices.push({ name: p.ifname, ...(p.netns !== undefined && { netns: p.netns }) });
      }
      // One XDP program per interface: the supervisor attaches it and keeps it while the run lasts.
      if (p.driver === 'afxdp') this.xdp.set(p.index, attachXdpShared({ ifname: p.ifname, ...(p.netns !== undefined && { netns: p.netns }) }));
    }
  }

  private removeDevices(): void {
    for (const x of this.xdp.values()) { try { x.close(); } catch { /* best effort */ } }
    this.xdp.clear();
    for (const d of this.devices.splice(0)) deleteOwnDevice(d.name, d.netns);
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.o.fromTerminal.includes(sig) && process.stdin.isTTY) {
      // The terminal sent it to every worker already.
    } else {
      for (const s of this.slots) if (s.child && s.exit === null) { try { s.child.kill(sig); } catch { /* gone */ } }
    }
    this.forwardedSignal = sig;
    if (sig === 'SIGINT' || sig === 'SIGTERM') {
      this.stopping = true;
      this.pending.length = 0;
      // Nobody may be left to exit (all dead, or not started yet).
      this.finishIfDone();
    }
  }

  /** Starts the next waiting worker, unless one is starting. */
  private next(): void {
    if (this.starting >= 0 || this.stopping) return;
    const i = this.pending.shift();
    if (i === undefined) return;
    this.start(i);
  }

  /** The fanout slot of each queue once worker i has joined (and the others waiting after it). */
  private predictSlots(i: number): number[] {
    const members = [...this.order, i, ...this.pending.filter((k) => k !== i && !this.order.includes(k))];
    for (let k = 0; k < this.slots.length; k++) if (!members.includes(k)) members.push(k);
    return Array.from({ length: this.slots.length }, (_, q) => members.indexOf(q));
  }

  private start(i: number): void {
    const s = this.slots[i]!;
    this.starting = i;
    const env: NodeJS.ProcessEnv = {
      ...process.env, TSTACK_CONFIG: this.o.configPath, TSTACK_RUN_PID: String(process.pid),
      [WORKER_ENV.index]: String(i), [WORKER_ENV.count]: String(this.slots.length), [WORKER_ENV.seed]: String(this.seed),
      [WORKER_ENV.slots]: this.predictSlots(i).join(','),
      [WORKER_ENV.xskMaps]: [...this.xdp].map(([port, x]) => `${port}:${x.xskMapId}`).join(','),
    };
    delete env['TSTACK_REGISTER_PID'];
    const child = spawn(process.execPath, [
      ...this.o.nodeOptions, '--import', pathToFileURL(this.o.preload).href, this.o.app, ...this.o.args,
    ], { stdio: [i === 0 ? 'inherit' : 'ignore', 'inherit', 'inherit', 'ipc'], env, serialization: 'advanced' });
    Object.assign(s, { child, pid: child.pid ?? 0, ready: false, startedAt: performance.now(), lastBeat: performance.now(), exit: null, killedFor: null, finished: false });
    child.on('message', (m: { t?: string }) => this.message(s, child, m));
    child.on('error', (e) => { this.log(`worker ${i}: cannot start ${process.execPath}: ${e.message}`); });
    child.on('exit', (code, signal) => this.exited(s, child, code, signal));
  }

  private message(s: Slot, child: ChildProcess, m: { t?: string }): void {
    if (s.child !== child || !m || typeof m !== 'object') return;
    s.lastBeat = performance.now();
    if (m.t === 'ready' && !s.ready) {
      s.ready = true;
      // Its socket joined the fanout group: it is the last member now.
      if (!this.order.includes(s.index)) this.order.push(s.index);
      if (this.starting === s.index) this.starting = -1;
      for (const c of this.changes) { try { child.send(c); } catch { /* dying */ } }
      this.next();
    } else if (m.t === 'frame') {
      // Steered to its flow's owner; dropped while the owner is down (the sender retransmits).
      const to = this.slots[(m as { to: number }).to];
      if (to && to.child && to.exit === null && to.ready) { try { to.child.send(m); this.stats.steered++; } catch { /* dying */ } } else this.stats.steerDropped++;
    } else if (m.t === 'change') {
      if (this.changes.length < 10_000) this.changes.push(m);
      for (const o of this.slots) if (o !== s && o.child && o.exit === null && o.ready) { try { o.child.send(m); } catch { /* dying */ } }
    } else if (m.t === 'arp' || m.t === 'ndp') {
      // One worker heard a neighbour: every other worker learns it without asking the wire.
      for (const o of this.slots) if (o !== s && o.child && o.exit === null && o.ready) { try { o.child.send(m); } catch { /* dying */ } }
    }
  }

  private exited(s: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (s.child !== child) return;
    s.exit = { code, signal };
    // The kernel moved the group's last socket into the dead one's slot.
    const at = this.order.indexOf(s.index);
    if (at >= 0) { const last = this.order.pop()!; if (at < this.order.length) this.order[at] = last; }
    const wasStarting = this.starting === s.index;
    if (wasStarting) this.starting = -1;
    const cause = s.killedFor ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
    const chosen = signal !== null && signal === this.forwardedSignal;
    if (this.stopping || chosen || (signal === null && code === 0)) {
      s.finished = true;
    } else if (!s.ready && s.killedFor === null) {
      // It failed before its stack came up (a bad device, a program that exits at once with an
      // error): what a single run would do is fail, so the whole run does.
      s.finished = true;
      this.failure ??= code ?? 1;
      this.log(`worker ${s.index} (pid ${s.pid}) ${cause} before its stack was up; stopping`);
      this.stopAll();
    } else {
      this.stats.restarts++;
      this.stats.causes.push(cause);
      this.log(`worker ${s.index} (pid ${s.pid}) ${cause}; starting a replacement (restart ${this.stats.restarts})`);
      this.pending.unshift(s.index);
    }
    if (!this.finishIfDone()) this.next();
  }

  private stopAll(): void {
    this.stopping = true;
    this.pending.length = 0;
    for (const o of this.slots) if (o.child && o.exit === null) { try { o.child.kill('SIGTERM'); } catch { /* gone */ } }
  }

  /** A worker that will not run again: finished, or (stopping) never started or already exited. */
  private over(s: Slot): boolean {
    return s.finished || (this.stopping && (s.child === null || s.exit !== null));
  }

  /** Every worker finished and none waits: the run is over. */
  private finishIfDone(): boolean {
    if (this.resolved || this.pending.length > 0 || this.slots.some((s) => !this.over(s))) return false;
    this.resolved = true;
    if (this.watchdog) { clearInterval(this.watchdog); this.watchdog = null; }
    this.unhook();
    this.removeDevices();
    if (process.env['TSTACK_DEBUG']) {
      const st = this.stats;
      this.log(`workers: ${this.slots.length}, restarts ${st.restarts}, frames steered ${st.steered}, steered frames dropped ${st.steerDropped}`);
    }
    let code = this.failure ?? 0;
    let sig: NodeJS.Signals | null = null;
    for (const s of this.slots) {
      if (!s.exit) continue;
      if (s.exit.signal && sig === null) sig = s.exit.signal;
      if (this.failure === null && code === 0 && s.exit.code) code = s.exit.code;
    }
    if (this.failure === null && code === 0 && sig !== null) {
      // Die of the same signal, as one program would.
      try { process.kill(process.pid, sig); } catch { /* keep going */ }
      code = 128 + (constants.signals[sig] ?? 0);
    }
    this.done(code);
    return true;
  }

  /** The watchdog: a worker whose event loop has not turned for watchdogMs is replaced. */
  private check(): void {
    const now = performance.now();
    const limit = this.o.config.stack.watchdogMs;
    // The supervisor itself did not run for a while (stopped with its workers, a suspended
    // machine): the workers' silence says nothing; start counting again.
    const gap = now - this.lastCheck;
    this.lastCheck = now;
    if (gap > Math.max(4 * WATCHDOG_TICK_MS, limit / 2)) {
      for (const s of this.slots) { s.lastBeat = Math.max(s.lastBeat, now); s.startedAt = Math.max(s.startedAt, now - 1); }
      return;
    }
    for (const s of this.slots) {
      if (!s.child || s.exit !== null || s.killedFor !== null) continue;
      const stalled = s.ready ? now - s.lastBeat > limit : now - s.startedAt > START_TIMEOUT_MS;
      if (!stalled) continue;
      s.killedFor = s.ready ? `stalled (its loop did not run for ${Math.round(now - s.lastBeat)} ms)` : `did not come up within ${START_TIMEOUT_MS} ms`;
      try { s.child.kill('SIGKILL'); } catch { /* gone */ }
    }
  }
}
