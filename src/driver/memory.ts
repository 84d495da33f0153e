// The memory driver: an in-process Ethernet switch linking N stacks, with seeded fault
// injection, driven by a Clock (virtual in simulations, real for two stacks in one process).
//
// A frame transmitted on a port goes through that port's transmit faults (which include its
// rate limiter), the wire latency, then is copied into each destination port's own pool
// (so stacks never share buffers), goes through that port's receive faults, and waits in the
// port's receive queue until its delivery time. rxBurst only yields frames that are due.
import { BufferPool, Csum, Gso, type PacketBuffer } from '../base/pktbuf.js';
import { Prng } from '../base/prng.js';
import type { Clock } from '../base/time.js';
import type { Offloads } from '../base/device.js';
import { parseMac, isMacMulticast } from '../wire/addr.js';
import type { Driver, DriverStats } from './types.js';
import { completeChecksum, copyBytes, segmentTcp4, segmentTcp6 } from '../base/offload.js';
import { FaultStage, type FaultConfig, type FaultStats } from './fault.js';
import { TimedQueue, WakeUp, isRealtimeClock } from './timed.js';
import { rssHashFrame } from '../wire/rss.js';

const ETH_HEADER = 14;
/** Room for an 802.1Q tag beyond the MTU + Ethernet header. */
const VLAN_TAG = 4;
/** Largest super-frame a TSO port takes: an IPv4 datagram of 65535 bytes plus Ethernet and a tag. */
const GSO_MAX_FRAME = 65535 + ETH_HEADER + VLAN_TAG;

export interface MemoryWireOptions {
  clock: Clock;
  /** Seed for every fault decision on this wire (default 1). */
  seed?: number | string;
  /** Or a generator to fork the wire's streams from. */
  random?: Prng;
  /** One-way propagation delay added to every frame (ms, default 0). */
  latencyMs?: number;
  /** Default link rate of every port's uplink (bits/s, default unlimited); a port's faults.rateBps overrides. */
  bandwidthBps?: number;
  /** Frames a port's receive queue holds before dropping (default 4096). */
  rxQueueLimit?: number;
  /** Arm event-loop timers so onReadable fires when frames come due; default: unless the clock is a VirtualClock. */
  realtime?: boolean;
}

export interface MemoryPortOptions {
  name?: string;
  /** "02:00:00:00:00:01" or 6 bytes; default a locally administered address unique on this wire. */
  mac?: string | Uint8Array;
  mtu?: number;
  /** Faults on frames this port transmits (into the switch). */
  faults?: FaultConfig;
  /** Faults on frames delivered to this port. */
  rxFaults?: FaultConfig;
  /**
   * txCsum: the port takes Csum.Partial frames. rxCsum: frames for this port may arrive with the
   * checksum still partial, marked Csum.Valid (as a Linux veth hands over a CHECKSUM_PARTIAL skb);
   * otherwise the wire completes the checksum in software, as a NIC would. tso4 (needs txCsum):
   * the port takes TCP/IPv4 super-frames (buf.gso = Gso.Tcp4, up to 64 KiB) and hands them whole
   * to a tso4 port (GRO-equivalent), or segments them in software for any other port; tso6 the
   * same for TCP/IPv6 (Gso.Tcp6). Frames cross whole only when neither end has faults configured
   * (faults act on real frames).
   */
  offloads?: Partial<Offloads>;
  /** Pool for received frames (default: the port's own). */
  pool?: BufferPool;
}

export interface MemoryPortStats extends DriverStats {
  /** Decisions of this port's transmit and receive fault stages. */
  faults: { tx: FaultStats; rx: FaultStats };
  /** Frames waiting in the receive queue (due or not). */
  queued: number;
}

export interface MemoryWireStats {
  /** Frames forwarded to one learned port. */
  unicast: number;
  /** Frames flooded (broadcast, multicast, or unknown destination). */
  flooded: number;
  /** Frames whose destination was learned on the port they came from. */
  filtered: number;
  /** MAC addresses in the learning table. */
  learned: number;
}

/**
 * The switch's learning table: MAC address -> port, keyed by the address's first two bytes and
 * then its last four as an int32. Both keys are small integers, which V8 hashes without
 * allocating (one 48-bit number would be a heap number on every frame).
 */
const macHi = (b: Uint8Array, off: number) => (b[off]! << 8) | b[off + 1]!;
const macLo = (b: Uint8Array, off: number) => (b[off + 2]! << 24) | (b[off + 3]! << 16) | (b[off + 4]! << 8) | b[off + 5]!;

class MacTable {
  private readonly byHi = new Map<number, Map<number, MemoryPort>>();

  get(b: Uint8Array, off: number): MemoryPort | undefined {
    return this.byHi.get(macHi(b, off))?.get(macLo(b, off));
  }

  set(b: Uint8Array, off: number, port: MemoryPort): void {
    const hi = macHi(b, off);
    let m = this.byHi.get(hi);
    if (m === undefined) this.byHi.set(hi, m = new Map());
    m.set(macLo(b, off), port);
  }

  get size(): number {
    let n = 0;
    for (const m of this.byHi.values()) n += m.size;
    return n;
  }

  clear(): void { this.byHi.clear(); }

  /** Forgets every address learned on `port`. */
  forget(port: MemoryPort): void {
    for (const m of this.byHi.values()) for (const [k, p] of m) if (p === port) m.delete(k);
  }
}

export class MemoryWire {
  readonly clock: Clock;
  readonly latencyMs: number;
  readonly bandwidthBps: number;
  readonly realtime: boolean;
  private readonly rng: Prng;
  private readonly rxQueueLimit: number;
  private readonly ports: MemoryPort[] = [];
  private readonly table = new MacTable();
  private portSeq = 0;
  /** Scratch for software segmentation (reused: send() is not re-entered while it is in use). */
  private readonly segments: PacketBuffer[] = [];
  private readonly counters: MemoryWireStats = { unicast: 0, flooded: 0, filtered: 0, learned: 0 };

  constructor(opts: MemoryWireOptions) {
    this.clock = opts.clock;
    this.rng = opts.random ? opts.random.fork() : new Prng(opts.seed ?? 1);
    this.latencyMs = opts.latencyMs ?? 0;
    this.bandwidthBps = opts.bandwidthBps ?? Infinity;
    this.rxQueueLimit = opts.rxQueueLimit ?? 4096;
    this.realtime = opts.realtime ?? isRealtimeClock(this.clock);
  }

  /** Plugs a new port into the switch. Ports get their fault streams in creation order. */
  createPort(opts: MemoryPortOptions = {}): MemoryPort {
    const index = ++this.portSeq;
    let mac: Uint8Array;
    if (typeof opts.mac === 'string') {
      const m = parseMac(opts.mac);
      if (!m) throw new Error(`MemoryWire: bad MAC address "${opts.mac}"`);
      mac = m;
    } else if (opts.mac) {
      if (opts.mac.length !== 6) throw new Error('MemoryWire: a MAC address is 6 bytes');
      mac = Uint8Array.from(opts.mac);
    } else {
      // 02:... is locally administered unicast; "ts" then the port number.
      mac = new Uint8Array([0x02, 0x74, 0x73, 0x00, (index >>> 8) & 0xff, index & 0xff]);
    }
    const port = new MemoryPort(this, index, opts.name ?? `mem${index}`, mac, opts, this.rng.fork(), this.rng.fork());
    this.ports.push(port);
    return port;
  }

  /**
   * A multi-queue port (a NIC with RSS, one queue per worker): n ports sharing one MAC. A frame
   * for that MAC goes to the queue its flow hash picks (src/wire/rss.ts: the same hash the
   * AF_PACKET fanout program and the workers' port choice use); broadcast and multicast frames,
   * and anything that is not IP, go to queue 0. Each queue transmits on its own.
   */
  createQueues(n: number, opts: MemoryPortOptions = {}): MemoryPort[] {
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`MemoryWire: bad queue count ${n}`);
    const first = this.createPort(opts);
    const group = [first];
    for (let i = 1; i < n; i++) group.push(this.createPort({ ...opts, name: `${first.name}q${i}`, mac: first.mac }));
    for (const q of group) q.group = group;
    return group;
  }

  /** Earliest time any port has a frame waiting (Infinity when none): where a simulation jumps the clock. */
  nextEventTime(): number {
    let t = Infinity;
    for (const p of this.ports) {
      const q = p.nextEventTime();
      if (q < t) t = q;
    }
    return t;
  }

  stats(): MemoryWireStats {
    return { ...this.counters, learned: this.table.size };
  }

  /** Forgets every learned address (as after a switch reboot). */
  flushTable(): void { this.table.clear(); }

  /** @internal called by MemoryPort.transmit; takes ownership of buf. */
  send(from: MemoryPort, buf: PacketBuffer, txStage: FaultStage): void {
    const len = buf.end - buf.start;
    const data = buf.data;
    const s = buf.start;
    const gso = buf.gso !== Gso.None;
    // A super-frame needs the port's segmentation offload; anything else must fit the MTU.
    const tso = buf.gso === Gso.Tcp4 ? from.offloads.tso4 : buf.gso === Gso.Tcp6 && from.offloads.tso6;
    if (len < ETH_HEADER || (gso ? !tso || len > GSO_MAX_FRAME : len > from.mtu + ETH_HEADER + VLAN_TAG)) {
      from.counters.txErrors++;
      buf.release();
      return;
    }

    // Learn where the source lives (multicast sources are bogus; never learn them). A
    // multi-queue port is learned as its queue 0, which stands for the group.
    const fromPort = from.group !== null ? from.group[0]! : from;
    if (!isMacMulticast(data, s + 6)) {
      if (this.table.get(data, s + 6) !== fromPort) this.table.set(data, s + 6, fromPort);
    }
    // Offloaded work crosses untouched only to one known port that offloads it too, with no
    // faults on the way; otherwise the wire does the device's work here.
    let direct: MemoryPort | undefined;
    if ((gso || buf.csum === Csum.Partial) && !txStage.isActive && !isMacMulticast(data, s)) {
      const d = this.table.get(data, s);
      if (d !== undefined && d !== fromPort && d.group === null && !d.rxFaultsActive) direct = d;
    }
    if (gso && (direct === undefined || !(buf.gso === Gso.Tcp4 ? direct.offloads.tso4 : direct.offloads.tso6))) {
      const out = this.segments;
      const n = buf.gso === Gso.Tcp4 ? segmentTcp4(buf, from.pool, out) : segmentTcp6(buf, from.pool, out);
      if (n === 0) from.counters.txErrors++;
      buf.release();
      for (let i = 0; i < n; i++) { const f = out[i]!; out[i] = null!; this.send(from, f, txStage); }
      return;
    }
    if (buf.csum === Csum.Partial && (direct === undefined || !direct.offloads.rxCsum)) completeChecksum(buf);
    from.counters.txPackets++;
    from.counters.txBytes += len;

    const now = this.clock.now();
    let t = txStage.decide(buf, now);
    if (t < 0) { buf.release(); return; }
    const copies = txStage.duplicate ? 2 : 1;
    t += this.latencyMs;

    if (!isMacMulticast(data, s)) {
      let dst = this.table.get(data, s);
      if (dst !== undefined) {
        if (dst === fromPort) this.counters.filtered++;
        else {
          const g = dst.group;
          if (g !== null) dst = g[rssHashFrame(data, s, len) % g.length]!;
          this.counters.unicast++; dst.enqueue(buf, t, copies);
        }
        buf.release();
        return;
      }
    }
    this.counters.flooded++;
    const ports = this.ports;
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i]!;
      // Queue 0 of a multi-queue port takes its group's share of the flood.
      if (p !== from && (p.group === null || (p.group[0] === p && p.group !== from.group))) p.enqueue(buf, t, copies);
    }
    buf.release();
  }

  /** @internal */
  get queueLimit(): number { return this.rxQueueLimit; }

  /** @internal */
  detach(port: MemoryPort): void {
    const i = this.ports.indexOf(port);
    if (i >= 0) this.ports.splice(i, 1);
    this.table.forget(port);
  }
}

export class MemoryPort implements Driver {
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly offloads: Offloads;
  readonly pool: BufferPool;
  /** @internal */
  readonly counters: DriverStats = {
    rxPackets: 0, rxBytes: 0, rxDropped: 0, txPackets: 0, txBytes: 0, txDropped: 0, txErrors: 0,
  };
  /** @internal The queues of a multi-queue port (createQueues), this one among them; else null. */
  group: MemoryPort[] | null = null;
  private readonly txStage: FaultStage;
  private readonly rxStage: FaultStage;
  private readonly rxQueue = new TimedQueue();
  private readonly wake: WakeUp;
  private closed = false;

  constructor(
    private readonly wire: MemoryWire,
    /** 1-based, in creation order. */
    readonly index: number,
    readonly name: string,
    mac: Uint8Array,
    opts: MemoryPortOptions,
    txRng: Prng,
    rxRng: Prng,
  ) {
    this.mac = mac;
    this.mtu = opts.mtu ?? 1500;
    const o = opts.offloads ?? {};
    if (o.tso4 && !o.txCsum) throw new Error('MemoryWire: tso4 needs txCsum (a super-frame\'s checksums are the device\'s job)');
    if (o.tso6 && !o.txCsum) throw new Error('MemoryWire: tso6 needs txCsum (a super-frame\'s checksums are the device\'s job)');
    this.offloads = Object.freeze({ rxCsum: o.rxCsum ?? false, txCsum: o.txCsum ?? false, tso4: o.tso4 ?? false, tso6: o.tso6 ?? false });
    this.pool = opts.pool ?? new BufferPool();
    this.txStage = new FaultStage(txRng, 'tx', this.withWireRate(opts.faults ?? {}));
    this.rxStage = new FaultStage(rxRng, 'rx', opts.rxFaults ?? {});
    this.wake = new WakeUp(wire.clock, () => this.rxQueue.peekTime(), wire.realtime);
  }

  /** Replaces the faults on transmit and/or receive (e.g. partition, then heal). */
  setFaults(tx?: FaultConfig, rx?: FaultConfig): void {
    if (tx) this.txStage.configure(this.withWireRate(tx));
    if (rx) this.rxStage.configure(rx);
  }

  get faults(): { tx: Readonly<FaultConfig>; rx: Readonly<FaultConfig> } {
    return { tx: this.txStage.config, rx: this.rxStage.config };
  }

  transmit(buf: PacketBuffer): void {
    if (this.closed) { this.counters.txDropped++; buf.release(); return; }
    this.wire.send(this, buf, this.txStage);
  }

  /** Frames leave on transmit(); there is nothing to batch in memory. */
  flush(): void {}

  rxBurst(out: PacketBuffer[], max: number): number {
    const now = this.wire.clock.now();
    const q = this.rxQueue;
    let n = 0;
    while (n < max && q.peekTime() <= now) {
      const b = q.pop();
      this.counters.rxPackets++;
      this.counters.rxBytes += b.end - b.start;
      out[n++] = b;
    }
    this.wake.arm();
    return n;
  }

  onReadable(cb: (() => void) | null): void { this.wake.set(cb); }

  rxReady(): boolean { return this.rxQueue.size > 0 && this.rxQueue.peekTime() <= this.wire.clock.now(); }

  /** @internal true when frames delivered here go through receive faults. */
  get rxFaultsActive(): boolean { return this.rxStage.isActive; }

  /** When the next queued frame is due (Infinity when none). */
  nextEventTime(): number { return this.rxQueue.peekTime(); }

  stats(): MemoryPortStats {
    return { ...this.counters, faults: { tx: { ...this.txStage.stats }, rx: { ...this.rxStage.stats } }, queued: this.rxQueue.size };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake.cancel();
    this.rxQueue.clear();
    this.wire.detach(this);
  }

  /** @internal Copies `src` into this port's pool `copies` times, due at `at` before receive faults. */
  enqueue(src: PacketBuffer, at: number, copies: number): void {
    const len = src.end - src.start;
    if (len > this.mtu + ETH_HEADER + VLAN_TAG && src.gso === Gso.None) { this.counters.rxDropped += copies; return; }
    for (let c = 0; c < copies; c++) {
      if (this.rxQueue.size >= this.wire.queueLimit) { this.counters.rxDropped++; continue; }
      const b = this.pool.alloc(len + this.pool.headroom);
      copyBytes(b.data, b.start, src.data, src.start, len);
      b.end = b.start + len;
      // Still partial only when sent straight to a port with rxCsum: it never left this host.
      if (src.csum === Csum.Partial) b.csum = Csum.Valid;
      b.gso = src.gso; b.gsoSize = src.gsoSize;
      const t = this.rxStage.decide(b, at);
      if (t < 0) { b.release(); continue; }
      this.rxQueue.push(t, b);
      if (this.rxStage.duplicate && this.rxQueue.size < this.wire.queueLimit) this.rxQueue.push(t, b.clone());
    }
    this.wake.arm();
  }

  private withWireRate(cfg: FaultConfig): FaultConfig {
    return cfg.rateBps === undefined && this.wire.bandwidthBps !== Infinity ? { ...cfg, rateBps: this.wire.bandwidthBps } : cfg;
  }
}
