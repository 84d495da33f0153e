// packetdrill-style harness for the TCP engine: a fake TcpHost on a virtual clock that records
// every emitted segment (decoded for field-by-field assertions) and injects crafted segments;
// plus a back-to-back wire joining two Tcp instances through a lossy fake IP layer.
import { BufferPool, Csum, Gso, type PacketBuffer } from '../../src/base/pktbuf.js';
import type { Path } from '../../src/stack/ip/path.js';
import { finish, pseudoHeaderV4, sum16 } from '../../src/wire/checksum.js';
import { WireError } from '../../src/wire/errors.js';
import { TcpFlag, TcpHeader, TcpOptions, parseTcpOptions, tcpFlagsToString, tcpOptionsLength, writeTcpHeader, writeTcpOptions } from '../../src/wire/tcp.js';
import type { TcpHost } from '../../src/stack/tcp/host.js';
import { Tcp } from '../../src/stack/tcp/tcp.js';
import { Sysctl, type SysctlValue } from '../../src/stack/sysctl.js';
import { TimerWheel, VirtualClock } from '../../src/base/time.js';

export const LOCAL = 0xc6120002; // 198.18.0.2 (the stack under test)
export const REMOTE = 0xc6120001; // 198.18.0.1 (the scripted peer)
export { TcpFlag };
export const { SYN, ACK, FIN, RST, PSH, URG } = TcpFlag;

/** A deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0);
  };
}

/** A decoded segment as emitted by the stack. */
export interface Seg {
  src: number; dst: number;
  sport: number; dport: number;
  seq: number; ack: number;
  flags: number; flagNames: string;
  wnd: number; hl: number; urg: number;
  mss: number; wscale: number; sackOk: boolean;
  ts: [number, number] | null;
  sack: [number, number][];
  data: Uint8Array;
  csumOk: boolean;
  csumPartial: boolean;
  time: number;
  /** The IP TOS / traffic class the stack asked for (set by FakeHost). */
  tos?: number;
  /** The TCP Fast Open option's cookie ([] for a cookie request); absent without the option. */
  tfo?: number[];
}

export function decode(buf: PacketBuffer, src: number, dst: number, time: number): Seg {
  const h = new TcpHeader();
  const len = buf.end - buf.start;
  if (h.wrap(buf.data, buf.start, len) !== WireError.Ok) throw new Error('emitted a malformed TCP header');
  const o = new TcpOptions();
  if (parseTcpOptions(buf.data, buf.start + 20, h.headerLength - 20, o) !== WireError.Ok) throw new Error('emitted malformed TCP options');
  let csumOk: boolean;
  const partial = buf.csum === Csum.Partial;
  if (partial) {
    // The field holds the pseudo-header sum; completing it must give a valid checksum.
    const copy = buf.data.slice(buf.start, buf.end);
    copy[16] = 0; copy[17] = 0;
    const c = finish(sum16(copy, 0, len, pseudoHeaderV4(src, dst, 6, len)));
    copy[16] = c >>> 8; copy[17] = c & 255;
    csumOk = finish(sum16(copy, 0, len, pseudoHeaderV4(src, dst, 6, len))) === 0;
  } else {
    csumOk = finish(sum16(buf.data, buf.start, len, pseudoHeaderV4(src, dst, 6, len))) === 0;
  }
  const sack: [number, number][] = [];
  for (let i = 0; i < o.sackCount; i++) sack.push([o.sackBlocks[2 * i]!, o.sackBlocks[2 * i + 1]!]);
  return {
    src, dst, sport: h.srcPort, dport: h.dstPort, seq: h.seq, ack: h.ack, flags: h.flags, flagNames: tcpFlagsToString(h.flags),
    wnd: h.window, hl: h.headerLength, urg: h.urgentPointer,
    mss: o.mss, wscale: o.wscale, sackOk: o.sackPermitted, ts: o.timestamps ? [o.tsVal, o.tsEcr] : null, sack,
    data: buf.data.slice(buf.start + h.headerLength, buf.end), csumOk, csumPartial: partial, time,
    ...(o.fastOpen >= 0 ? { tfo: [...o.fastOpenCookie.subarray(0, o.fastOpen)] } : {}),
  };
}

export class FakeHost implements TcpHost {
  readonly clock: VirtualClock;
  readonly wheel: TimerWheel;
  readonly sysctl = new Sysctl();
  readonly pool = new BufferPool();
  readonly random32: () => number;
  /** Decoded copies of everything sent (when `record`). */
  sent: Seg[] = [];
  record = true;
  mtu = 1500;
  offload = false;
  /** When set, emitted buffers are handed here (ownership passes); otherwise released. */
  deliver: ((buf: PacketBuffer, src: number, dst: number) => void) | null = null;

  constructor(readonly addr: number, clock: VirtualClock, seed = 1) {
    this.clock = clock;
    this.wheel = new TimerWheel(1, 4096, clock.now());
    this.random32 = prng(seed);
  }

  ipv4Output(buf: PacketBuffer, src: number, dst: number, proto: number, tos = 0): boolean {
    if (proto !== 6) throw new Error('TCP sent a non-TCP packet');
    if (this.record) { const seg = decode(buf, src, dst, this.clock.now()); seg.tos = tos; this.sent.push(seg); }
    if (this.deliver) this.deliver(buf, src, dst); else buf.release();
    return true;
  }
  /** Every use re-reads mtu and offload, so a test may change them mid-connection. */
  resolvePath(path: Path, src: number, dst: number): boolean {
    path.src = src || this.addr; path.dst = dst; path.nexthop = dst;
    path.ok = true; path.mtu = this.mtu; path.headerLen = 20; path.txCsum = this.offload;
    path.gsoMax = 0; path.gsoKind = Gso.None; path.local = false;
    return true;
  }
  pathOutput(path: Path, buf: PacketBuffer, proto: number, tos = 0): boolean {
    return this.ipv4Output(buf, path.src, path.dst, proto, tos);
  }
  isLocalAddress(a: number): boolean { return a === this.addr; }
  /** The harness speaks IPv4 only. */
  resolvePath6(): boolean { return false; }
  isLocalAddress6(): boolean { return false; }
}

export interface InjectSpec {
  sport?: number; dport?: number;
  seq: number; ack?: number;
  flags: number;
  wnd?: number;
  urg?: number;
  mss?: number; wscale?: number; sackOk?: boolean;
  ts?: [number, number];
  sack?: [number, number][];
  data?: Uint8Array | number; // bytes, or a length of filler bytes
  badChecksum?: boolean;
  /** Raw option bytes instead of the encoded ones. */
  rawOptions?: number[];
  /** The IP header's ECN field the segment arrives with (RFC 3168: 2 ECT(0), 3 CE). */
  ecn?: number;
  /** A TCP Fast Open option: the cookie bytes ([] = a cookie request). */
  tfo?: number[];
}

/** One Tcp under test with a scripted peer at REMOTE. */
export class TcpHarness {
  readonly clock = new VirtualClock(1_000_000);
  readonly host: FakeHost;
  readonly tcp: Tcp;
  peerPort = 40000;
  /** ACK number used by inject() when the spec gives none. */
  peerAck = 0;

  constructor(sysctls: Record<string, SysctlValue> = {}, seed = 1) {
    this.host = new FakeHost(LOCAL, this.clock, seed);
    this.tcp = new Tcp(this.host);
    for (const [k, v] of Object.entries(sysctls)) this.host.sysctl.set(k, v);
  }

  get now(): number { return this.clock.now(); }

  /** Moves time forward by ms, firing timers in deadline order. */
  advance(ms: number): void {
    const target = this.clock.now() + ms;
    for (;;) {
      const next = this.host.wheel.nextDeadline();
      if (next > target) break;
      this.clock.set(next);
      this.host.wheel.advance(next);
    }
    this.clock.set(target);
    this.host.wheel.advance(target);
  }

  /** Advances to the next timer deadline; returns the time moved. */
  advanceToNextTimer(): number {
    const d = this.host.wheel.nextDeadline() - this.clock.now();
    this.advance(d);
    return d;
  }

  /** Takes and clears the recorded segments. */
  take(): Seg[] {
    const s = this.host.sent;
    this.host.sent = [];
    return s;
  }

  /** Exactly one segment must have been sent. */
  one(): Seg {
    const s = this.take();
    if (s.length !== 1) throw new Error(`expected one segment, got ${s.length}: ${s.map(fmt).join(' ; ')}`);
    return s[0]!;
  }

  none(): void {
    const s = this.take();
    if (s.length !== 0) throw new Error(`expected no segment, got ${s.length}: ${s.map(fmt).join(' ; ')}`);
  }

  /** Builds a segment from the peer and feeds it to tcp.input(). */
  inject(s: InjectSpec): void {
    const data = typeof s.data === 'number' ? filler(s.data) : s.data ?? new Uint8Array(0);
    const spec = {
      mss: s.mss ?? -1, wscale: s.wscale ?? -1, sackPermitted: !!s.sackOk, timestamps: !!s.ts,
      tsVal: s.ts?.[0] ?? 0, tsEcr: s.ts?.[1] ?? 0, sackCount: s.sack?.length ?? 0, sackBlocks: new Uint32Array(8),
      fastOpen: s.tfo ? s.tfo.length : -1, fastOpenCookie: Uint8Array.from(s.tfo ?? []),
    };
    (s.sack ?? []).forEach(([l, r], i) => { spec.sackBlocks[2 * i] = l >>> 0; spec.sackBlocks[2 * i + 1] = r >>> 0; });
    let optLen = s.rawOptions ? s.rawOptions.length : tcpOptionsLength(spec);
    optLen = (optLen + 3) & ~3;
    const hl = 20 + optLen;
    const buf = this.host.pool.alloc(160 + hl + data.length);
    const off = buf.append(hl + data.length);
    writeTcpHeader(buf.data, off, s.sport ?? this.peerPort, s.dport ?? 80, s.seq >>> 0, (s.ack ?? this.peerAck) >>> 0, s.flags, s.wnd ?? 65535, hl, s.urg ?? 0);
    if (s.rawOptions) { buf.data.fill(0, off + 20, off + hl); buf.data.set(s.rawOptions, off + 20); } else writeTcpOptions(buf.data, off + 20, spec);
    buf.data.set(data, off + hl);
    const c = finish(sum16(buf.data, off, hl + data.length, pseudoHeaderV4(REMOTE, LOCAL, 6, hl + data.length)));
    buf.data[off + 16] = c >>> 8; buf.data[off + 17] = s.badChecksum ? (c & 255) ^ 1 : c & 255;
    this.tcp.input(buf, REMOTE, LOCAL, s.ecn ?? 0);
  }
}

export function filler(n: number, seed = 7): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 255;
  return b;
}

export function fmt(s: Seg): string {
  return `${s.flagNames} seq=${s.seq} ack=${s.ack} win=${s.wnd} len=${s.data.length}${s.mss >= 0 ? ` mss=${s.mss}` : ''}${s.wscale >= 0 ? ` ws=${s.wscale}` : ''}${s.sackOk ? ' sackOK' : ''}${s.ts ? ` ts=${s.ts[0]},${s.ts[1]}` : ''}${s.sack.length ? ` sack=${JSON.stringify(s.sack)}` : ''}`;
}

// ---- Two Tcp instances back to back ----

export interface WireFaults {
  loss?: number; // probability 0..1
  duplicate?: number;
  reorder?: number; // probability a packet gets extra delay
  corrupt?: number;
  delayMs?: number; // one-way base delay
  jitterMs?: number;
  /** Like a memory wire between two stacks: a checksum left to the device arrives as Valid. */
  trustCsum?: boolean;
}

interface InFlight { at: number; seq: number; buf: PacketBuffer; src: number; dst: number; to: Tcp }

/** Joins two Tcp instances (A at 198.18.0.1, B at 198.18.0.2) through a faulty fake IP layer. */
export class BackToBack {
  readonly clock = new VirtualClock(1_000_000);
  readonly hostA: FakeHost;
  readonly hostB: FakeHost;
  readonly a: Tcp;
  readonly b: Tcp;
  private queue: InFlight[] = [];
  private counter = 0;
  private readonly rnd: () => number;
  delivered = 0;
  dropped = 0;
  /** Debugging aid: sees every packet as it is sent ('A' or 'B' = sender) and its fate. */
  trace: ((from: string, seg: Seg, fate: string) => void) | null = null;

  constructor(readonly faults: WireFaults = {}, seed = 1, sysctls: Record<string, SysctlValue> = {}) {
    this.rnd = prng(seed * 7919 + 1);
    this.hostA = new FakeHost(REMOTE, this.clock, seed * 2 + 1);
    this.hostB = new FakeHost(LOCAL, this.clock, seed * 2 + 2);
    this.hostA.record = false; this.hostB.record = false;
    this.a = new Tcp(this.hostA);
    this.b = new Tcp(this.hostB);
    for (const [k, v] of Object.entries(sysctls)) { this.hostA.sysctl.set(k, v); this.hostB.sysctl.set(k, v); }
    this.hostA.deliver = (buf, src, dst) => this.send(buf, src, dst, this.b);
    this.hostB.deliver = (buf, src, dst) => this.send(buf, src, dst, this.a);
  }

  private r(): number { return this.rnd() / 4294967296; }

  private send(buf: PacketBuffer, src: number, dst: number, to: Tcp): void {
    const f = this.faults;
    const tr = this.trace ? decode(buf, src, dst, this.clock.now()) : null;
    if (f.loss && this.r() < f.loss) { this.dropped++; if (tr) this.trace!(to === this.b ? 'A' : 'B', tr, 'lost'); buf.release(); return; }
    if (tr) this.trace!(to === this.b ? 'A' : 'B', tr, 'sent');
    const copies = f.duplicate && this.r() < f.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const b = i === 0 ? buf : buf.clone();
      b.csum = f.trustCsum && b.csum === Csum.Partial ? Csum.Valid : Csum.None;
      if (f.corrupt && this.r() < f.corrupt) {
        const at = b.start + Math.floor(this.r() * (b.end - b.start));
        b.data[at]! ^= 1 << Math.floor(this.r() * 8);
      }
      let delay = (f.delayMs ?? 0) + (f.jitterMs ? this.r() * f.jitterMs : 0);
      if (f.reorder && this.r() < f.reorder) delay += 1 + this.r() * Math.max(5, (f.delayMs ?? 0));
      const item: InFlight = { at: this.clock.now() + delay, seq: this.counter++, buf: b, src, dst, to };
      // Keep the queue sorted by (at, seq).
      let k = this.queue.length;
      while (k > 0 && (this.queue[k - 1]!.at > item.at)) k--;
      this.queue.splice(k, 0, item);
    }
  }

  /** Runs until `done()` is true or `limitMs` of virtual time passes. Returns true when done. */
  run(done: () => boolean, limitMs = 600_000): boolean {
    const end = this.clock.now() + limitMs;
    for (;;) {
      if (done()) return true;
      // Deliver everything due now.
      while (this.queue.length > 0 && this.queue[0]!.at <= this.clock.now()) {
        const p = this.queue.shift()!;
        this.delivered++;
        p.to.input(p.buf, p.src, p.dst);
        if (done()) return true;
      }
      const next = Math.min(this.queue.length ? this.queue[0]!.at : Infinity, this.hostA.wheel.nextDeadline(), this.hostB.wheel.nextDeadline());
      if (next === Infinity || next > end) return done();
      if (next > this.clock.now()) this.clock.set(next);
      this.hostA.wheel.advance(this.clock.now());
      this.hostB.wheel.advance(this.clock.now());
    }
  }

  get inFlight(): number { return this.queue.length; }
}

// ---- Scripted-peer helpers for data tests (the peer at REMOTE:80, ISN PEER_ISN) ----

export const PEER_ISN = 5000;

export interface OpenActiveOpts { mss?: number; sackOk?: boolean; ts?: boolean; wnd?: number; rttMs?: number; wscale?: number }

/**
 * Active open from the stack to the scripted peer on port 80, the SYN-ACK arriving rttMs after
 * the SYN; returns the socket, the first data sequence number and the local port.
 */
export function openActive(h: TcpHarness, o: OpenActiveOpts = {}): { s: ReturnType<Tcp['connect']>; d0: number; sport: number } {
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80 });
  const syn = h.one();
  h.peerPort = 80;
  h.advance(o.rttMs ?? 50);
  h.inject({
    sport: 80, dport: syn.sport, seq: PEER_ISN, ack: syn.seq + 1, flags: SYN | ACK, wnd: o.wnd ?? 65535,
    mss: o.mss ?? 1000, sackOk: o.sackOk, wscale: o.wscale, ts: o.ts ? [1, syn.ts![0]] : undefined,
  });
  h.one();
  if (s.state !== 'ESTABLISHED') throw new Error(`expected ESTABLISHED, got ${s.state}`);
  h.peerAck = syn.seq + 1;
  return { s, d0: syn.seq + 1, sport: syn.sport };
}

/** A pure ACK (optionally with SACK blocks or a timestamp) from the scripted peer. */
export function peerAckTo(h: TcpHarness, sport: number, ack: number, extra: { wnd?: number; sack?: [number, number][]; ts?: [number, number] } = {}): void {
  h.inject({ sport: 80, dport: sport, seq: PEER_ISN + 1, ack, flags: ACK, wnd: extra.wnd ?? 65535, sack: extra.sack, ts: extra.ts });
}
