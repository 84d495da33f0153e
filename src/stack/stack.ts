// The engine: one independent stack per worker. Sans-I/O: it is fed frames (input) and
// time (poll), and transmits on its interfaces' NetDevices. No node:* imports here.
import { BufferPool, type PacketBuffer } from '../buf/pktbuf.js';
import type { NetDevice } from './device.js';
import { Sysctl } from './sysctl.js';
import { TimerWheel, type Clock } from './time.js';

export interface StackOptions {
  /** Source of time for everything the stack does between polls. */
  clock: Clock;
  sysctl?: Sysctl;
  pool?: BufferPool;
  /** Seeded randomness for simulations; defaults to Math.random. Returns [0, 1). */
  random?: () => number;
  name?: string;
}

export interface InterfaceConfig {
  /** "a.b.c.d/len" */
  addr?: string;
  gateway?: string;
  /** Overrides the device MTU (must not exceed it). */
  mtu?: number;
  /** "2001:db8::2/64" (IPv6 addresses are recorded; IPv6 behaviour comes later) */
  addr6?: string;
}

export class Stack {
  readonly clock: Clock;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  readonly wheel: TimerWheel;
  readonly random: () => number;
  readonly name: string;

  constructor(opts: StackOptions) {
    this.clock = opts.clock;
    this.sysctl = opts.sysctl ?? new Sysctl();
    this.pool = opts.pool ?? new BufferPool();
    this.random = opts.random ?? Math.random;
    this.name = opts.name ?? 'tstack';
    this.wheel = new TimerWheel(1, 4096, this.clock.now());
  }

  /** Attaches a device; returns its interface index (1-based). */
  addInterface(dev: NetDevice, cfg: InterfaceConfig = {}): number {
    void dev; void cfg;
    throw new Error('not yet');
  }

  /** One received Ethernet frame from interface `ifIndex`. Takes ownership of buf. */
  input(ifIndex: number, buf: PacketBuffer): void {
    void ifIndex; buf.release();
  }

  /** Runs due timers; returns when the stack next needs to run (ms), Infinity when idle. */
  poll(now = this.clock.now()): number {
    this.wheel.advance(now);
    return this.wheel.nextDeadline();
  }
}
