// An instance: one Stack, its ports' drivers, and the run loop between them, built from a
// TstackConfig. `tstack up` is startInstance + wait for a signal + stop.
import type { Driver } from '../driver/types.js';
import { TapDriver } from '../driver/tap.js';
import { AfPacketDriver } from '../driver/afpacket.js';
import { AfXdpDriver } from '../driver/afxdp.js';
import { parseIpv4, parseIpv4Cidr } from '../wire/addr.js';
import { MemoryWire } from '../driver/memory.js';
import { PcapDriver, PcapWriter, capture } from '../driver/pcap.js';
import { Stack } from '../stack/stack.js';
import { SysctlError } from '../stack/sysctl.js';
import type { Clock } from '../base/time.js';
import { ConfigError, type DriverKind, type PortConfig, type TstackConfig } from './config.js';
import { RunLoop, realClock } from './loop.js';
import { cryptoRandom } from './random.js';
import { ownsTuple, ownsTuple6, ownsUdpPort, workerMac, type WorkerIdentity } from './worker.js';
import { fanoutGroupId } from '../driver/fanout.js';

export interface InstanceOptions {
  /** Default: the real (performance.now) clock. */
  clock?: Clock;
  /** Randomness for the engine's secrets, ports and ids, in [0, 1); default: node:crypto (cryptoRandom). Simulations pass a seeded Prng. */
  random?: () => number;
  /** The wire `memory` ports plug into; default: one wire per instance. */
  memoryWire?: MemoryWire;
  /** Iteration errors (stack bugs); default: rethrow. */
  onError?: (err: unknown) => void;
  /** Start the loop (default true); false leaves it to the caller (tests drive loop.iterate()). */
  start?: boolean;
  /**
   * One worker of several (`tstack run` with `[stack] workers` > 1; src/runtime/worker.ts): the
   * instance opens its own queue of each port, which the supervisor created.
   */
  worker?: WorkerIdentity;
}

export interface InstancePort {
  config: PortConfig;
  /** What the stack transmits on (the capture wrapper when `pcap` is set). */
  driver: Driver;
  ifIndex: number;
}

export interface Instance {
  readonly config: TstackConfig;
  readonly stack: Stack;
  readonly loop: RunLoop;
  readonly drivers: Driver[];
  readonly ports: InstancePort[];
  /** Stops the loop and releases every driver (a TAP device disappears). Idempotent. */
  stop(): void;
}

/** A failure bringing a port up (the device could not be created, the stack refused it…). */
export class InstanceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) { super(message, options); this.name = 'InstanceError'; }
}

interface DriverContext { clock: Clock; memoryWire: () => MemoryWire; worker?: WorkerIdentity }
type DriverFactory = (port: PortConfig, ctx: DriverContext) => Driver;

/** The driver registry: one line per implemented driver kind. */
const DRIVERS: Partial<Record<DriverKind, DriverFactory>> = {
  tap: (p, ctx) => ctx.worker ? TapDriver.open({
    // One queue of the supervisor's multi-queue TAP (src/runtime/cluster.ts).
    ifname: p.ifname, mtu: p.mtu, mac: p.mac ?? workerMac(ctx.worker.seed, p.index), ...(p.netns && { netns: p.netns }), attachQueue: true,
  }) : TapDriver.open({
    ifname: p.ifname, mtu: p.mtu, ...(p.mac && { mac: p.mac }), ...(p.hostAddr && { hostAddr: p.hostAddr }),
    ...(p.hostAddr6 && { hostAddr6: p.hostAddr6 }), ...(p.netns && { netns: p.netns }),
  }),
  afpacket: (p, ctx) => ctx.worker ? AfPacketDriver.open({
    // One queue of several: the supervisor made the veth pair; this socket joins the fanout group.
    ifname: p.ifname, mtu: p.mtu, mac: p.mac ?? workerMac(ctx.worker.seed, p.index), ...(p.netns && { netns: p.netns }),
    fanout: { group: fanoutGroupId(ctx.worker.seed, p.index), queues: ctx.worker.count, slots: ctx.worker.slots },
  }) : AfPacketDriver.open({
    ifname: p.ifname, mtu: p.mtu, ...(p.mac && { mac: p.mac }), ...(p.hostAddr && { hostAddr: p.hostAddr }),
    ...(p.hostAddr6 && { hostAddr6: p.hostAddr6 }), ...(p.netns && { netns: p.netns }),
  }),
  afxdp: (p, ctx) => ctx.worker ? AfXdpDriver.open({
    // Queue `index` of the device the supervisor made, through the XSKMAP of its program.
    ifname: p.ifname, mtu: p.mtu, mac: p.mac ?? workerMac(ctx.worker.seed, p.index), ...(p.netns && { netns: p.netns }),
    queue: ctx.worker.index, ...(p.zeroCopy && { zeroCopy: true }),
    ...(ctx.worker.xskMaps?.[p.index] !== undefined && { sharedXskMap: ctx.worker.xskMaps[p.index] }),
  }) : AfXdpDriver.open({
    ifname: p.ifname, mtu: p.mtu, ...(p.mac && { mac: p.mac }), ...(p.hostAddr && { hostAddr: p.hostAddr }),
    ...(p.hostAddr6 && { hostAddr6: p.hostAddr6 }), ...(p.netns && { netns: p.netns }),
    ...(p.queue !== undefined && { queue: p.queue }), ...(p.zeroCopy && { zeroCopy: true }), ...(p.exception && { exception: true }),
  }),
  memory: (p, ctx) => ctx.memoryWire().createPort({ name: p.ifname, mtu: p.mtu, ...(p.mac && { mac: p.mac }) }),
  // Replays `input` at its recorded pace on the instance's clock; transmitted frames go to `output`.
  pcap: (p, ctx) => new PcapDriver({
    name: p.ifname, mtu: p.mtu, clock: ctx.clock, ...(p.mac && { mac: p.mac }),
    ...(p.input !== undefined && { input: p.input }), ...(p.output !== undefined && { output: p.output }),
  }),
};

export function startInstance(config: TstackConfig, opts: InstanceOptions = {}): Instance {
  const where = (key: string, detail: string) => new ConfigError(config.file, config.lineOf(key), key, detail);
  const worker = opts.worker && opts.worker.count > 1 ? opts.worker : undefined;
  if (config.stack.workers !== 1 && !worker) {
    throw where('stack.workers', `${config.stack.workers} workers run under \`tstack run\` (one process per worker); \`tstack up\` and embedders start one stack: use 1`);
  }
  if (worker) {
    for (const p of config.ports) {
      if (p.driver !== 'afpacket' && p.driver !== 'tap' && p.driver !== 'afxdp') throw where(`port[${p.index}].driver`, `driver "${p.driver}" has no per-worker queues yet; with workers > 1 use afpacket, afxdp or tap`);
    }
  }
  const clock = opts.clock ?? realClock;
  // The engine's secrets come from the OS CSPRNG unless the caller injects a (seeded) source.
  const stack = new Stack({ clock, random: opts.random ?? cryptoRandom() });
  for (const s of config.sysctl) {
    try {
      stack.sysctl.set(s.name, s.value);
    } catch (e) {
      if (!(e instanceof SysctlError)) throw e;
      throw new ConfigError(config.file, s.line, s.name, e.message.replace(/^sysctl '[^']*':\s*/, ''));
    }
  }

  stack.configureShield(config.shield);

  let wire: MemoryWire | undefined = opts.memoryWire;
  const ctx: DriverContext = { clock, memoryWire: () => (wire ??= new MemoryWire({ clock })), ...(worker && { worker }) };
  // Active opens choose local ports whose return traffic hashes to this worker's queue.
  if (worker) { stack.tcp.portFilter = ownsTuple(worker); stack.tcp.portFilter6 = ownsTuple6(worker); stack.udp.portFilter = ownsUdpPort(worker); }
  const drivers: Driver[] = [];
  const ports: InstancePort[] = [];
  const writers: PcapWriter[] = [];
  const unwatch: (() => void)[] = [];
  const closeWriters = () => { for (const w of writers) { try { w.close(); } catch { /* best effort */ } } };
  const release = () => {
    for (const u of unwatch) u();
    for (const d of [...drivers].reverse()) { try { d.close(); } catch { /* best effort */ } }
    closeWriters();
  };
  try {
    for (const p of config.ports) {
      const factory = DRIVERS[p.driver];
      if (!factory) throw where(`port[${p.index}].driver`, `driver "${p.driver}" is not implemented yet`);
      let driver: Driver;
      try {
        driver = factory(p, ctx);
      } catch (e) {
        throw new InstanceError(`port[${p.index}] (${p.driver} ${p.ifname}): ${(e as Error).message}`, { cause: e });
      }
      drivers.push(driver);
      const raw = driver;
      if (p.pcap !== undefined) {
        let writer: PcapWriter;
        try {
          // Timestamps in the file are wall-clock time: performance.now() counts from process start.
          writer = new PcapWriter(p.pcap, { timeOffsetMs: Date.now() - clock.now() });
        } catch (e) {
          throw new InstanceError(`port[${p.index}] (${p.driver} ${p.ifname}): cannot open the capture file ${p.pcap}: ${(e as Error).message}`, { cause: e });
        }
        writers.push(writer);
        driver = capture(driver, writer, clock);
      }
      let ifIndex: number;
      try {
        ifIndex = stack.addInterface(driver, {
          ...(p.addr && { addr: p.addr }), ...(p.gateway && { gateway: p.gateway }),
          ...(p.addr6 && { addr6: p.addr6 }), ...(p.gateway6 && { gateway6: p.gateway6 }), ...(p.slaac && { slaac: true }), mtu: p.mtu,
        });
      } catch (e) {
        throw new InstanceError(`port[${p.index}] (${p.driver} ${p.ifname}): the stack refused the interface: ${(e as Error).message}`, { cause: e });
      }
      try {
        for (const a of p.vips ?? []) stack.addAddress(ifIndex, a);
        if (p.vips6?.length && !stack.ip6.link(ifIndex)) stack.ip6.attach(stack.interfaceByIndex(ifIndex)!);
        for (const a of p.vips6 ?? []) stack.ip6.addAddress(ifIndex, a);
      } catch (e) {
        throw new InstanceError(`port[${p.index}] (${p.driver} ${p.ifname}): the stack refused a secondary address: ${(e as Error).message}`, { cause: e });
      }
      ports.push({ config: p, driver, ifIndex });
      if (p.exception && raw instanceof AfXdpDriver) {
        // The exception path: the XDP program hands the stack only its own ports' traffic.
        raw.setLocalAddress(parseIpv4Cidr(p.addr!)!.addr);
        unwatch.push(stack.watchPorts(raw.portWatcher));
      }
    }
    for (const tcfg of config.tunnels ?? []) {
      try {
        stack.addTunnel(tcfg);
      } catch (e) {
        throw new InstanceError(`tunnel[${tcfg.index}] (${tcfg.kind} ${tcfg.ifname}): ${(e as Error).message}`, { cause: e });
      }
    }
  } catch (e) {
    release();
    throw e;
  }
  // lo0 (127.0.0.0/8, ::1) in every instance, after the ports so they keep indices 1..n: the
  // program's own connections to 127.0.0.1 reach its stack listeners (docs/compat.md).
  stack.addLoopback();
  // VLAN interfaces after lo0, so ports keep indices 1..n.
  try {
    for (const p of ports) {
      for (const x of p.config.vlans ?? []) {
        try {
          const vi = stack.addVlan(p.ifIndex, x.id, {
            name: x.ifname, ...(x.outer !== undefined && { outer: x.outer }), ...(x.addr && { addr: x.addr }), ...(x.gateway && { gateway: x.gateway }),
            ...(x.addr6 && { addr6: x.addr6 }), ...(x.gateway6 && { gateway6: x.gateway6 }), ...(x.mtu !== undefined && { mtu: x.mtu }),
            ...(x.mac && { mac: x.mac }), ...(x.pcp !== undefined && { pcp: x.pcp }),
          });
          for (const a of x.vips ?? []) stack.addAddress(vi, a);
          if (x.vips6?.length && !stack.ip6.link(vi)) stack.ip6.attach(stack.interfaceByIndex(vi)!);
          for (const a of x.vips6 ?? []) stack.ip6.addAddress(vi, a);
        } catch (e) {
          throw new InstanceError(`port[${p.config.index}] (${p.config.ifname}) VLAN ${x.ifname}: the stack refused the interface: ${(e as Error).message}`, { cause: e });
        }
      }
    }
    for (const b of config.bonds ?? []) {
      try {
        const members = b.members.map((n) => ports.find((p) => p.config.ifname === n)!.ifIndex);
        const bi = stack.addBond(members, {
          name: b.ifname, mode: b.mode, miimon: b.miimon, ...(b.addr && { addr: b.addr }), ...(b.gateway && { gateway: b.gateway }),
          ...(b.addr6 && { addr6: b.addr6 }), ...(b.gateway6 && { gateway6: b.gateway6 }),
          ...(b.arpInterval !== undefined && { arpInterval: b.arpInterval, arpTargets: b.arpTargets!.map((x) => parseIpv4(x)!) }),
        });
        for (const a of b.vips ?? []) stack.addAddress(bi, a);
      } catch (e) {
        throw new InstanceError(`bond[${b.index}] (${b.ifname}): the stack refused the bond: ${(e as Error).message}`, { cause: e });
      }
    }
  } catch (e) {
    release();
    throw e;
  }

  const loop = new RunLoop({
    stack, clock, poll: config.stack.poll, busyPollUs: config.stack.busyPollUs, spinSliceUs: config.stack.pollSliceUs, ...(opts.onError && { onError: opts.onError }),
  });
  for (const p of ports) loop.addPort(p.driver, p.ifIndex);
  if (opts.start !== false) loop.start();
  let stopped = false;
  return {
    config, stack, loop, drivers, ports,
    stop() {
      if (stopped) return;
      stopped = true;
      for (const u of unwatch) u();
      try { loop.stop(); } finally { closeWriters(); }
    },
  };
}
