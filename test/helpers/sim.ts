// Deterministic network simulation: hosts (stacks, or anything with input/poll) joined by a
// MemoryWire, all on one VirtualClock, all randomness derived from one seed. Time jumps
// straight to the next thing that can happen (a frame coming due or a host's timer), so a
// minute of simulated TCP runs in milliseconds and the same seed replays the same run.
//
//   const sim = new Simulation({ seed });
//   const a = sim.addHost({ name: 'a', addr: '198.18.0.1/24' });
//   const b = sim.addHost({ name: 'b', addr: '198.18.0.2/24', faults: { loss: 0.05 } });
//   assert.ok(sim.runUntil(() => done, { maxMs: 30_000 }), sim.describe());
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import { VirtualClock } from '../../src/base/time.js';
import { Prng, createRandom } from '../../src/base/prng.js';
import { Stack, type InterfaceConfig } from '../../src/stack/stack.js';
import type { SysctlValue } from '../../src/stack/sysctl.js';
import type { Offloads } from '../../src/base/device.js';
import type { BufferPool } from '../../src/base/pktbuf.js';
import type { Driver, DriverStats } from '../../src/driver/types.js';
import { MemoryWire, type MemoryPort } from '../../src/driver/memory.js';
import type { FaultConfig } from '../../src/driver/fault.js';
import { PcapWriter, capture } from '../../src/driver/pcap.js';

/** What the simulation drives: the Stack, or a scripted host written in a test. */
export interface SimHost {
  input(ifIndex: number, buf: PacketBuffer): void;
  /** A whole receive burst (Stack.inputBurst: receive coalescing), as the run loop hands it. */
  inputBurst?(ifIndex: number, bufs: PacketBuffer[], n: number): void;
  /** Runs due work at `now`; returns when it next needs to run (ms; Infinity when idle). */
  poll(now: number): number;
  /** Sends output the host deferred (Stack.setDeferOutput); the simulation calls it each round. */
  flushOutput?(): void;
  /** When the host next needs poll(), without running anything (after flushOutput armed timers). */
  nextDeadline?(): number;
}

export interface PortOptions {
  name: string;
  mac?: string | Uint8Array;
  mtu?: number;
  /** Faults on frames this host transmits. */
  faults?: FaultConfig;
  /** Faults on frames delivered to this host. */
  rxFaults?: FaultConfig;
  offloads?: Partial<Offloads>;
}

export interface HostOptions extends PortOptions {
  addr?: string;
  gateway?: string;
  addr6?: string;
  gateway6?: string;
  /** Accept router advertisements (SLAAC). */
  slaac?: boolean;
  /** Sysctl values set on the new stack ("net.inet.tcp.syncookies": 1). */
  sysctl?: Record<string, SysctlValue>;
  /**
   * Deferred output, as under a run loop (Stack.setDeferOutput): application writes, reads and
   * shutdowns are sent once per round, after the host's input and timers.
   */
  deferOutput?: boolean;
}

export interface SimNode<H extends SimHost = SimHost> {
  readonly name: string;
  readonly host: H;
  /** The wire port (faults, stats). */
  readonly port: MemoryPort;
  /** What the host transmits on (the port, possibly behind a capture). */
  readonly device: Driver;
  readonly ifIndex: number;
}

export interface StackNode extends SimNode<Stack> {
  readonly stack: Stack;
}

export interface SimulationOptions {
  seed?: number | string;
  /** Wire one-way latency (ms, default 0). */
  latencyMs?: number;
  /** Default rate of every port (bits/s, default unlimited). */
  bandwidthBps?: number;
  /** Virtual time at the start (ms, default 0). */
  startMs?: number;
  /** Frames taken per rxBurst (default 64). */
  burst?: number;
  /**
   * Hand each rxBurst to the host's inputBurst (receive coalescing) as the run loop does; default
   * true (TSTACK_SIM_GRO=0 turns it off everywhere). False: input() frame by frame.
   */
  coalesce?: boolean;
}

export interface RunOptions {
  /** Simulated time allowed (default 60 s). */
  maxMs?: number;
  /** Steps allowed (default 1,000,000): a busy-looping host cannot hang the test. */
  maxSteps?: number;
}

export type StopReason = 'predicate' | 'timeout' | 'steps' | 'stalled';

/** A Driver forwarding to a target that can be swapped (to put a capture in front later). */
class SwitchableDevice implements Driver {
  constructor(public target: Driver) {}
  get name(): string { return this.target.name; }
  get mac(): Uint8Array { return this.target.mac; }
  get mtu(): number { return this.target.mtu; }
  get offloads(): Offloads { return this.target.offloads; }
  get pool(): BufferPool { return this.target.pool; }
  transmit(buf: PacketBuffer): void { this.target.transmit(buf); }
  rxBurst(out: PacketBuffer[], max: number): number { return this.target.rxBurst(out, max); }
  flush(): void { this.target.flush(); }
  onReadable(cb: (() => void) | null): void { this.target.onReadable(cb); }
  stats(): DriverStats { return this.target.stats(); }
  close(): void { this.target.close(); }
}

interface Entry {
  node: SimNode;
  dev: SwitchableDevice;
  /** The host's last poll() answer. */
  deadline: number;
}

interface CaptureSpec { writer: PcapWriter; hosts: string[] | null; rx: boolean; tx: boolean }

/** Hard stop when this many consecutive steps make no progress in time. */
const STALL_STEPS = 100_000;

export class Simulation {
  readonly seed: number | string;
  readonly clock: VirtualClock;
  readonly wire: MemoryWire;
  /** Root generator: hosts and the wire fork from it in creation order. */
  readonly rng: Prng;
  /** Why the last runUntil stopped. */
  lastStop: StopReason = 'predicate';
  /** Steps taken since the simulation started. */
  steps = 0;
  private readonly entries: Entry[] = [];
  private readonly captures: CaptureSpec[] = [];
  private readonly scratch: PacketBuffer[];
  private readonly burst: number;
  private readonly coalesce: boolean;

  constructor(opts: SimulationOptions = {}) {
    this.seed = opts.seed ?? 1;
    this.rng = new Prng(this.seed);
    this.clock = new VirtualClock(opts.startMs ?? 0);
    this.wire = new MemoryWire({
      clock: this.clock, random: this.rng.fork(), latencyMs: opts.latencyMs,
      bandwidthBps: opts.bandwidthBps, realtime: false,
    });
    this.burst = opts.burst ?? 64;
    this.coalesce = opts.coalesce ?? process.env['TSTACK_SIM_GRO'] !== '0';
    this.scratch = new Array<PacketBuffer>(this.burst);
  }

  /**
   * Seeds for a randomized matrix: `count` seeds from `base`, or only the one in the
   * environment variable TSTACK_SEED when set (to replay a printed failure).
   */
  static seeds(count: number, base = 1): number[] {
    const env = process.env['TSTACK_SEED'];
    if (env !== undefined && env !== '') return [Number(env)];
    return Array.from({ length: count }, (_, i) => base + i);
  }

  get now(): number { return this.clock.now(); }

  /** A new Stack on its own port: `new Stack({clock, random})` + `addInterface(port, {addr, ...})`. */
  addHost(opts: HostOptions): StackNode {
    const random = createRandom(this.rng.u32());
    const stack = new Stack({ clock: this.clock, random, name: opts.name });
    if (opts.sysctl) for (const [k, v] of Object.entries(opts.sysctl)) stack.sysctl.set(k, v);
    if (opts.deferOutput) stack.setDeferOutput(true);
    const cfg: InterfaceConfig = {};
    if (opts.addr !== undefined) cfg.addr = opts.addr;
    if (opts.gateway !== undefined) cfg.gateway = opts.gateway;
    if (opts.addr6 !== undefined) cfg.addr6 = opts.addr6;
    if (opts.gateway6 !== undefined) cfg.gateway6 = opts.gateway6;
    if (opts.slaac !== undefined) cfg.slaac = opts.slaac;
    if (opts.mtu !== undefined) cfg.mtu = opts.mtu;
    const node = this.attach(opts, (dev) => ({ host: stack, ifIndex: stack.addInterface(dev, cfg) }));
    return Object.assign(node, { stack });
  }

  /**
   * Plugs any host into the wire. `make` receives the device the host transmits on and returns
   * the host and the interface index its input() expects.
   */
  attach<H extends SimHost>(opts: PortOptions, make: (device: Driver) => { host: H; ifIndex?: number }): SimNode<H> {
    if (this.entries.some((e) => e.node.name === opts.name)) throw new Error(`Simulation: host "${opts.name}" exists`);
    const port = this.wire.createPort({
      name: opts.name, mac: opts.mac, mtu: opts.mtu, faults: opts.faults, rxFaults: opts.rxFaults, offloads: opts.offloads,
    });
    const dev = new SwitchableDevice(port);
    for (const c of this.captures) this.wrap(dev, opts.name, c);
    const made = make(dev);
    const node: SimNode<H> = { name: opts.name, host: made.host, port, device: dev, ifIndex: made.ifIndex ?? 1 };
    this.entries.push({ node, dev, deadline: this.clock.now() });
    return node;
  }

  host(name: string): SimNode {
    const e = this.entries.find((x) => x.node.name === name);
    if (!e) throw new Error(`Simulation: no host "${name}"`);
    return e.node;
  }

  /**
   * Records frames into a pcap file (a path, or a function receiving the file's bytes). By default every host's transmitted frames (so each frame
   * appears once, as sent, before wire faults); with `hosts`, those hosts' frames both ways
   * (like tcpdump on their interface). Hosts added later are included when `hosts` is omitted.
   */
  capture(target: string | ((chunk: Uint8Array) => void), opts: { hosts?: string[]; rx?: boolean; tx?: boolean; timeOffsetMs?: number } = {}): PcapWriter {
    const writer = new PcapWriter(target, { timeOffsetMs: opts.timeOffsetMs });
    const spec: CaptureSpec = {
      writer, hosts: opts.hosts ?? null, rx: opts.rx ?? opts.hosts !== undefined, tx: opts.tx ?? true,
    };
    this.captures.push(spec);
    for (const e of this.entries) this.wrap(e.dev, e.node.name, spec);
    return writer;
  }

  /** One round: each host, in creation order, takes its due frames, runs its timers, flushes. */
  step(): void {
    const now = this.clock.now();
    const out = this.scratch;
    for (const e of this.entries) {
      const { host, ifIndex } = e.node;
      let n: number;
      do {
        n = e.dev.rxBurst(out, this.burst);
        if (this.coalesce && host.inputBurst) host.inputBurst(ifIndex, out, n);
        else for (let i = 0; i < n; i++) host.input(ifIndex, out[i]!);
      } while (n === this.burst);
      e.deadline = host.poll(now);
      if (host.flushOutput) {
        host.flushOutput();
        if (host.nextDeadline) e.deadline = Math.min(e.deadline, host.nextDeadline());
      }
      e.dev.flush();
    }
    this.steps++;
  }

  /** The earliest time anything can happen: a frame coming due or a host's timer. */
  nextEventTime(): number {
    let t = this.wire.nextEventTime();
    for (const e of this.entries) if (e.deadline < t) t = e.deadline;
    return t;
  }

  /**
   * Steps and jumps the clock to each next event until `predicate` holds (true) or the time or
   * step budget runs out (false; `lastStop` says which). Never hangs.
   */
  runUntil(predicate: () => boolean, opts: RunOptions = {}): boolean {
    const end = this.clock.now() + (opts.maxMs ?? 60_000);
    const maxSteps = opts.maxSteps ?? 1_000_000;
    let steps = 0;
    let stalled = 0;
    for (;;) {
      const before = this.clock.now();
      this.step();
      steps++;
      if (predicate()) { this.lastStop = 'predicate'; return true; }
      if (steps >= maxSteps) { this.lastStop = 'steps'; return false; }
      const next = this.nextEventTime();
      if (next > end) {
        if (before >= end) { this.lastStop = 'timeout'; return false; }
        this.clock.set(end);
        continue;
      }
      if (next > before) { this.clock.set(next); stalled = 0; }
      else if (++stalled >= STALL_STEPS) { this.lastStop = 'stalled'; return false; }
    }
  }

  /** Runs everything that happens in the next `ms` of simulated time; the clock ends at now + ms. */
  run(ms: number): void {
    this.runUntil(() => false, { maxMs: ms });
  }

  /** "seed=7 t=1234.5ms steps=99 stop=timeout": put it in assertion messages so a failure can be replayed. */
  describe(): string {
    return `seed=${String(this.seed)} t=${this.clock.now()}ms steps=${this.steps} stop=${this.lastStop} (replay: TSTACK_SEED=${String(this.seed)})`;
  }

  /** Flushes and closes captures, closes ports. */
  close(): void {
    for (const c of this.captures) c.writer.close();
    for (const e of this.entries) e.node.port.close();
  }

  private wrap(dev: SwitchableDevice, name: string, c: CaptureSpec): void {
    if (c.hosts !== null && !c.hosts.includes(name)) return;
    dev.target = capture(dev.target, c.writer, this.clock, { rx: c.rx, tx: c.tx });
  }
}
