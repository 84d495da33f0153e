// Engine frames/s: two Stacks on the memory wire, one thread, ICMP echo with a window of
// requests in flight. Reference: Node dgram UDP ping-pong over the kernel's loopback with the
// same window and payload, measured in the same run.
//
// Rounds alternate (tstack, reference, tstack, ...) and each side reports its median round, so
// a burst of load from elsewhere on the machine hits both sides alike instead of one.
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { PacketBuffer } from '../src/base/pktbuf.js';
import { MemoryWire, type MemoryPort } from '../src/driver/memory.js';
import { realClock } from '../src/runtime/loop.js';
import { Stack } from '../src/stack/stack.js';
import { parseIpv4 } from '../src/wire/addr.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

/** Echo requests kept in flight. */
const WINDOW = 32;
/** ping's default: 56 bytes of data, a 64-byte ICMP message (98-byte frame). */
const PAYLOAD = 56;
const BURST = 64;
const A_ADDR = '198.18.0.1/24';
const B_ADDR = '198.18.0.2/24';

interface Plan { rounds: number; roundMs: number; warmMs: number }

// The engine runs ~20x slower for its first ~150 ms (before the optimizing compiler has the
// per-frame path), so even --quick warms up for 300 ms before measuring.
function plan(quick: boolean): Plan {
  return quick ? { rounds: 1, roundMs: 300, warmMs: 300 } : { rounds: 3, roundMs: 800, warmMs: 500 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Two stacks joined by a zero-latency memory wire, driven by a synchronous loop. */
class EchoPair {
  readonly a: Stack;
  readonly b: Stack;
  private readonly pa: MemoryPort;
  private readonly pb: MemoryPort;
  private readonly rx = new Array<PacketBuffer>(BURST);
  private readonly payload = new Uint8Array(PAYLOAD);
  private readonly dst = parseIpv4(B_ADDR.split('/')[0]!)!;
  private sent = 0;
  private replies = 0;

  constructor() {
    // realtime: false - nothing arms event-loop timers; the loop below polls the wire itself.
    const wire = new MemoryWire({ clock: realClock, realtime: false });
    this.pa = wire.createPort({ name: 'a' });
    this.pb = wire.createPort({ name: 'b' });
    this.a = new Stack({ clock: realClock, name: 'a' });
    this.b = new Stack({ clock: realClock, name: 'b' });
    this.a.addInterface(this.pa, { addr: A_ADDR });
    this.b.addInterface(this.pb, { addr: B_ADDR });
    for (let i = 0; i < PAYLOAD; i++) this.payload[i] = i;
    this.a.icmp.onEchoReply = () => { this.replies++; };
  }

  /** Frames handled so far by either stack: requests B answered plus replies A took. */
  frames(): number { return this.b.icmp.stats.echoRequests + this.replies; }

  private pump(stack: Stack, port: MemoryPort): void {
    const rx = this.rx;
    let n: number;
    do {
      n = port.rxBurst(rx, BURST);
      for (let i = 0; i < n; i++) stack.input(1, rx[i]!);
    } while (n === BURST);
    stack.poll(realClock.now());
    port.flush();
  }

  /** Tops up the window: the next request goes out as soon as a reply comes back. */
  private fill(): void {
    const a = this.a.icmp;
    while (this.sent - this.replies < WINDOW) {
      if (!a.sendEcho(this.dst, 0x7473, this.sent & 0xffff, this.payload)) throw new Error('icmp-echo-memory: no route to B');
      this.sent++;
    }
  }

  /** Runs the echo loop for `ms` of wall time; returns frames handled per second. */
  run(ms: number): number {
    const f0 = this.frames();
    const t0 = realClock.now();
    const end = t0 + ms;
    let t = t0;
    while (t < end) {
      this.fill();
      this.pump(this.b, this.pb);
      this.pump(this.a, this.pa);
      t = realClock.now();
    }
    return (this.frames() - f0) / ((t - t0) / 1000);
  }

  /**
   * Resolves ARP with a single ping first (a full window would overflow ARP's hold queue and
   * lose requests the window then waits for forever), then runs the window in 50 ms slices
   * until the rate settles: at least `minMs`, then until three slices in a row agree within
   * 15% (the optimizing compiler has the per-frame path), at most 3 s. ARP frames are not
   * counted: they all happen here. Returns the time spent (ms).
   */
  warm(minMs: number): number {
    const t0 = realClock.now();
    this.a.icmp.sendEcho(this.dst, 0x7473, 0xffff, this.payload);
    while (this.replies === 0 && realClock.now() < t0 + 1000) {
      this.pump(this.b, this.pb);
      this.pump(this.a, this.pa);
    }
    if (this.replies === 0) throw new Error(`icmp-echo-memory: no echo reply (ARP?) within 1 s (drops a: ${JSON.stringify(this.a.drops)}, b: ${JSON.stringify(this.b.drops)})`);
    this.sent = this.replies = 0;
    const rates: number[] = [];
    for (;;) {
      rates.push(this.run(50));
      const spent = realClock.now() - t0;
      if (spent >= 3000) return spent;
      if (spent < minMs || rates.length < 3) continue;
      const last = rates.slice(-3);
      if (Math.min(...last) >= 0.85 * Math.max(...last)) return spent;
    }
  }

  close(): void {
    this.a.close();
    this.b.close();
    this.pa.close();
    this.pb.close();
  }
}

/** Node dgram ping-pong over 127.0.0.1: both sockets in this process, connected, window in flight. */
class DgramPair {
  private readonly client: Socket = createSocket('udp4');
  private readonly server: Socket = createSocket('udp4');
  private readonly payload = Buffer.alloc(PAYLOAD, 0x5a);
  private clientRx = 0;
  private serverRx = 0;
  private running = false;

  async open(): Promise<void> {
    this.server.bind(0, '127.0.0.1');
    this.client.bind(0, '127.0.0.1');
    await Promise.all([once(this.server, 'listening'), once(this.client, 'listening')]);
    this.client.connect((this.server.address() as AddressInfo).port, '127.0.0.1');
    this.server.connect((this.client.address() as AddressInfo).port, '127.0.0.1');
    await Promise.all([once(this.client, 'connect'), once(this.server, 'connect')]);
    this.server.on('message', (m) => { this.serverRx++; this.server.send(m); });
    this.client.on('message', () => { this.clientRx++; if (this.running) this.client.send(this.payload); });
  }

  private handled(): number { return this.clientRx + this.serverRx; }

  /** Runs the ping-pong for warmMs, then measures `ms`; returns datagrams handled per second. */
  async run(warmMs: number, ms: number): Promise<number> {
    this.running = true;
    for (let i = 0; i < WINDOW; i++) this.client.send(this.payload);
    await sleep(warmMs);
    const c0 = this.handled(), t0 = performance.now();
    await sleep(ms);
    const c1 = this.handled(), t1 = performance.now();
    this.running = false;
    await sleep(20); // let the window drain so the next round starts from zero in flight
    return (c1 - c0) / ((t1 - t0) / 1000);
  }

  close(): void {
    this.client.close();
    this.server.close();
  }
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

export const icmpEchoMemory: Benchmark = {
  name: 'icmp-echo-memory',
  description: `engine frames/s, ICMP echo (${PAYLOAD + 8}-byte messages, ${WINDOW} in flight) between two stacks on the memory wire, one thread; ` +
    'reference: Node dgram UDP ping-pong on kernel loopback, same window and payload',
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const p = plan(opts.quick);
    const pair = new EchoPair();
    const ref = new DgramPair();
    const ours: number[] = [];
    const theirs: number[] = [];
    try {
      await ref.open();
      const warmed = pair.warm(p.warmMs);
      opts.log(`icmp-echo-memory: warmed up for ${Math.round(warmed)} ms`);
      for (let r = 0; r < p.rounds; r++) {
        ours.push(pair.run(p.roundMs));
        // The synchronous loop starves the event loop; let it breathe before the reference runs.
        await sleep(10);
        theirs.push(await ref.run(r === 0 ? p.warmMs : 100, p.roundMs));
        opts.log(`icmp-echo-memory round ${r + 1}/${p.rounds}: tstack ${Math.round(ours[r]!)} frames/s, dgram ${Math.round(theirs[r]!)} datagrams/s`);
      }
      const dropsA = Object.keys(pair.a.drops).length, dropsB = Object.keys(pair.b.drops).length;
      if (dropsA || dropsB) opts.log(`icmp-echo-memory: drops a ${JSON.stringify(pair.a.drops)} b ${JSON.stringify(pair.b.drops)}`);
    } finally {
      pair.close();
      ref.close();
    }
    return [result({
      bench: 'icmp-echo-memory',
      metric: 'echo-frames',
      value: median(ours),
      unit: 'frames/s',
      reference: median(theirs),
      referenceLabel: 'node dgram UDP ping-pong on kernel loopback, datagrams/s',
      better: 'higher',
      note: `${PAYLOAD + 8}-byte ICMP messages, window ${WINDOW}, median of ${p.rounds} alternating ${p.roundMs} ms round(s); requests + replies, ARP excluded`,
    })];
  },
};
