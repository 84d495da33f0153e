// The randomized TCP matrix: a scenario generator (everything derived from one seed) and a
// runner that plays a scenario between two stacks on the simulated memory wire and returns
// every broken promise it observed. Used by test/sim/tcp-matrix.test.ts (the >= 500-run
// matrix) and test/sim/tcp-hostile.test.ts (named, hand-picked scenarios).
//
// What a run promises, per connection and direction: the bytes the reader got are the bytes
// the writer wrote, in order (compared against the source as they arrive, and by SHA-256);
// both sockets saw end-of-stream and a close without error, finishing in CLOSED or TIME_WAIT.
// After 2*MSL: no connection left, no timer left beyond the ARP cache's, no packet buffer in
// use, no send/receive ring held.
import { createHash, type Hash } from 'node:crypto';
import { Prng } from '../../src/base/prng.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/addr.js';
import type { FaultConfig } from '../../src/driver/fault.js';
import type { SysctlValue } from '../../src/stack/sysctl.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import type { TcpListener } from '../../src/stack/tcp/listen.js';
import { Simulation, type StackNode } from './sim.js';

export const MIB = 1 << 20;
export const MAX_TRANSFER = 8 * MIB;
export const ADDR_A = '198.18.7.1';
export const ADDR_B = '198.18.7.2';
export const ADDR6_A = '2001:db8:7::1';
export const ADDR6_B = '2001:db8:7::2';

/**
 * Half the seeds run over IPv6 (seeds 2, 3, 6, 7, ...: a parity rule on the second bit, so IPv6
 * and IPv4 each meet deferred and immediate output, and no seed's scenario changes).
 */
export function overIpv6(seed: number): boolean { return (Math.floor(seed / 2) & 1) === 1; }
const PREFIX = 24;
export const SERVER_PORT = 80;
/** Maximum segment lifetime used by every run (TIME_WAIT lasts 2*MSL). */
export const MATRIX_MSL = 1000;

export type Side = 'a' | 'b';

/**
 * How a connection ends (i = the side that connected, p = the side that accepted):
 * - eager: both write everything, then shut down at once (FINs may cross).
 * - i-half / p-half: that side writes and half-closes; the other only starts writing once it
 *   has seen the FIN (so it sends into a FIN_WAIT_2 peer), then closes.
 * - i-first / p-first: both write at once; the other side shuts down only after the FIN (a
 *   clean active/passive close).
 * - simultaneous: both shut down in the same instant once both have queued all their data.
 */
export type ClosePattern = 'eager' | 'i-half' | 'p-half' | 'i-first' | 'p-first' | 'simultaneous';
export const CLOSE_PATTERNS: readonly ClosePattern[] = ['eager', 'i-half', 'p-half', 'i-first', 'p-first', 'simultaneous'];

export interface EndPlan {
  /** Bytes this end writes. */
  bytes: number;
  /** Largest single write() call. */
  writeChunk: number;
  /** Stop reading at this virtual time (ms from start) for `pauseMs`; -1: never. */
  pauseAtMs: number;
  pauseMs: number;
  /** Finish with close() (a full close) once everything is read, instead of only shutdown(). */
  finalClose: boolean;
}

export interface ConnPlan {
  id: number;
  /** The side that calls connect(). */
  initiator: Side;
  /** Virtual time (ms from start) of the connect() call. */
  startMs: number;
  close: ClosePattern;
  /** Per-socket congestion control on the initiator (undefined: the sysctl default). */
  cc?: 'newreno' | 'cubic';
  noDelay: boolean;
  /** The initiator's end and the acceptor's end. */
  i: EndPlan;
  p: EndPlan;
  /** Where in the shared pattern each direction's payload starts. */
  offI: number;
  offP: number;
}

export interface HostPlan {
  faults: FaultConfig;
  rxFaults: FaultConfig;
  sysctl: Record<string, SysctlValue>;
  mtu: number;
  /** Probability that an ECT-marked IPv4 packet this host sends is marked CE on the way (RFC 3168 §5). */
  ceMark?: number;
}

export interface Scenario {
  seed: number;
  latencyMs: number;
  a: HostPlan;
  b: HostPlan;
  conns: ConnPlan[];
  /** TCP Fast Open: listeners with a TFO queue, connects with fastOpen (net.inet.tcp.fastopen = 3 on both). */
  tfo?: boolean;
}

// ---- payload -----------------------------------------------------------------------------

const PATTERN_SLACK = MIB;
let pattern: Uint8Array | null = null;

/**
 * One seeded random pattern every payload is a window of (generated once, 9 MiB): no per-run
 * generation cost, and a different offset per direction so crossed streams cannot match.
 */
export function payloadPattern(): Uint8Array {
  if (pattern) return pattern;
  const p = new Prng('tcp-matrix-pattern');
  const b = new Uint8Array(MAX_TRANSFER + PATTERN_SLACK);
  const w = new Uint32Array(b.buffer);
  for (let i = 0; i < w.length; i++) w[i] = p.u32();
  pattern = b;
  return b;
}

export function payload(off: number, len: number): Uint8Array {
  return payloadPattern().subarray(off, off + len);
}

// ---- scenario generation -----------------------------------------------------------------

/** A transfer size: mostly small, some medium, a few large, and sometimes exactly 8 MiB. */
function drawSize(r: Prng): number {
  const u = r.next();
  if (u < 0.10) return 0;
  if (u < 0.40) return r.int(1, 2048);
  if (u < 0.65) return r.int(2049, 64 * 1024);
  if (u < 0.85) return r.int(64 * 1024 + 1, MIB);
  if (u < 0.95) return r.int(MIB + 1, 4 * MIB);
  return r.chance(0.5) ? MAX_TRANSFER : r.int(4 * MIB + 1, MAX_TRANSFER);
}

function drawEnd(r: Prng): EndPlan {
  const bytes = drawSize(r);
  const chunks = [1, 100, 1460, 4096, 16384, 65536, 1 << 30];
  const writeChunk = chunks[r.int(0, chunks.length - 1)]!;
  const pause = r.chance(0.08);
  return {
    bytes,
    // One-byte writes of a megabyte would only measure the test's own loop.
    writeChunk: bytes > 256 * 1024 && writeChunk < 1460 ? 16384 : writeChunk,
    pauseAtMs: pause ? r.int(0, 3000) : -1,
    pauseMs: pause ? r.int(500, 10_000) : 0,
    finalClose: r.chance(0.5),
  };
}

function drawHost(r: Prng, hostile: number): HostPlan {
  const f: FaultConfig = {};
  // Loss 0-20% (skewed low: most runs should still move their bytes quickly).
  if (r.chance(0.6)) f.loss = Math.round(r.next() ** 1.5 * 0.2 * hostile * 1000) / 1000;
  if (r.chance(0.3)) f.duplicate = Math.round(r.next() * 0.1 * 1000) / 1000;
  if (r.chance(0.3)) { f.reorder = Math.round(r.next() * 0.3 * 1000) / 1000; f.reorderDelayMs = r.int(1, 60); }
  // Past the IPv4 header: ARP has no checksum, so a flipped bit there is a wrong neighbour
  // entry, not a TCP matter (the hostile test corrupts IP headers too, after ARP).
  if (r.chance(0.2)) { f.corrupt = Math.round(r.next() * 0.05 * 1000) / 1000; f.corruptFrom = 34; }
  if (r.chance(0.25)) f.delayMs = r.int(0, 100);
  if (r.chance(0.2)) f.jitterMs = r.int(1, 30);
  if (r.chance(0.2)) {
    // 1 Mbit/s .. 1 Gbit/s, log-uniform; sometimes a shallow queue that tail-drops.
    f.rateBps = Math.round(10 ** (6 + r.next() * 3));
    if (r.chance(0.5)) f.queueLimitBytes = r.int(8, 120) * 1514;
  }
  const rx: FaultConfig = {};
  if (r.chance(0.15)) rx.loss = Math.round(r.next() * 0.05 * hostile * 1000) / 1000;
  if (r.chance(0.1)) rx.duplicate = Math.round(r.next() * 0.05 * 1000) / 1000;

  const sysctl: Record<string, SysctlValue> = {
    'net.inet.tcp.msl': MATRIX_MSL,
    // The matrix proves delivery under loss, not giving up: at 20% loss each way a handshake
    // fails 7 times running about once in 1,200 connects, a legitimate ETIMEDOUT with the
    // defaults. Give-up is covered by tcp-hostile ("peer vanishes").
    'net.inet.tcp.syn_retries': 12,
    'net.inet.tcp.rexmit_count': 20,
    'net.inet.tcp.cc.algorithm': r.chance(0.5) ? 'newreno' : 'cubic',
    'net.inet.tcp.sack.enable': r.chance(0.8),
    'net.inet.tcp.rfc1323': r.chance(0.8),
    'net.inet.tcp.delayed_ack': r.chance(0.7),
  };
  if (r.chance(0.3)) sysctl['net.inet.tcp.delacktime'] = r.int(1, 40);
  if (r.chance(0.2)) sysctl['net.inet.tcp.sendspace'] = r.int(2048, 32768);
  if (r.chance(0.2)) sysctl['net.inet.tcp.recvspace'] = r.int(2048, 32768);
  if (r.chance(0.1)) sysctl['net.inet.tcp.reass.maxsegments'] = r.int(1, 8);
  if (r.chance(0.1)) sysctl['net.inet.tcp.initcwnd_segments'] = r.int(1, 4);
  const mtus = [1500, 1500, 1500, 1500, 1280, 576, 9000];
  return { faults: f, rxFaults: rx, sysctl, mtu: mtus[r.int(0, mtus.length - 1)]! };
}

/** Everything about run `seed`, derived from the seed alone. */
export function makeScenario(seed: number): Scenario {
  const r = new Prng(`tcp-matrix/${seed}`);
  // A third of the runs are clean or nearly so; the rest get the full fault range.
  const hostile = r.chance(0.33) ? 0.25 : 1;
  const u = r.next();
  const latencyMs = u < 0.2 ? 0 : Math.round(u * u * 200);
  const a = drawHost(r, hostile);
  const b = drawHost(r, hostile);
  // Keep the total one-way delay within 0-200 ms.
  for (const h of [a, b]) {
    if (h.faults.delayMs !== undefined && latencyMs + h.faults.delayMs > 200) h.faults.delayMs = 200 - latencyMs;
  }
  const n = r.int(1, 4);
  const conns: ConnPlan[] = [];
  for (let id = 0; id < n; id++) {
    const i = drawEnd(r), p = drawEnd(r);
    conns.push({
      id,
      initiator: r.chance(0.7) ? 'a' : 'b',
      startMs: id === 0 ? 0 : r.int(0, 500),
      close: CLOSE_PATTERNS[r.int(0, CLOSE_PATTERNS.length - 1)]!,
      ...(r.chance(0.2) && { cc: r.chance(0.5) ? 'newreno' as const : 'cubic' as const }),
      noDelay: r.chance(0.3),
      i, p,
      offI: r.int(0, PATTERN_SLACK - 1),
      offP: r.int(0, PATTERN_SLACK - 1),
    });
  }
  // Large transfers under the heaviest faults cost minutes of CPU (every segment retransmitted
  // several times); cap the total so the whole matrix fits its time budget.
  // Under ~15% loss or more each way an RTO backed off to a minute is common (an ACK echoing
  // an old timestamp after lost ACKs inflates SRTT, RFC 7323 §4.3), so megabytes take hours of
  // virtual time there.
  const lossy = Math.max(a.faults.loss ?? 0, b.faults.loss ?? 0) + Math.max(a.faults.reorder ?? 0, b.faults.reorder ?? 0) / 3;
  const budget = lossy >= 0.15 ? 4 * MIB : lossy > 0.1 ? 16 * MIB : 48 * MIB;
  let total = conns.reduce((s, c) => s + c.i.bytes + c.p.bytes, 0);
  for (const c of conns) {
    for (const e of [c.i, c.p]) {
      if (total <= budget) break;
      if (e.bytes > MIB) { total -= e.bytes - MIB; e.bytes = MIB; }
    }
  }
  // TFO and ECN come from a PRNG of their own, so every other draw of a seed is what it was.
  const x = new Prng(`tcp-matrix-ext/${seed}`);
  const tfo = x.chance(0.25);
  for (const h of [a, b]) {
    if (tfo) h.sysctl['net.inet.tcp.fastopen'] = 3;
    if (x.chance(0.3)) h.sysctl['net.inet.tcp.ecn'] = 1;
    if (x.chance(0.2)) h.ceMark = Math.round(x.next() * 0.1 * 1000) / 1000;
  }
  return { seed, latencyMs, a, b, conns, tfo };
}

/**
 * A fault filter that marks ECT(0)/ECT(1) IPv4 packets CE with probability p (as an AQM router
 * would, RFC 3168 §5), fixing the header checksum; then runs `next`, if any.
 */
function ceMarker(seed: number, p: number, next: FaultConfig['filter']): NonNullable<FaultConfig['filter']> {
  const r = new Prng(`tcp-matrix-ce/${seed}`);
  return (frame, dir) => {
    if (frame.length >= 34 && frame[12] === 0x08 && frame[13] === 0x00 && (frame[15]! & 3) !== 0 && (frame[15]! & 3) !== 3 && r.next() < p) {
      frame[15] = frame[15]! | 3;
      const hl = (frame[14]! & 15) * 4;
      frame[24] = 0; frame[25] = 0;
      let sum = 0;
      for (let i = 14; i < 14 + hl; i += 2) sum += (frame[i]! << 8) | frame[i + 1]!;
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      const c = ~sum & 0xffff;
      frame[24] = c >>> 8; frame[25] = c & 255;
    }
    return next ? next(frame, dir) : 'pass';
  };
}

export interface CustomConn {
  up: number;
  down: number;
  initiator?: Side;
  close?: ClosePattern;
  startMs?: number;
  /** Overrides for the initiator's and the acceptor's end. */
  i?: Partial<EndPlan>;
  p?: Partial<EndPlan>;
}

export interface CustomScenario {
  seed: number;
  latencyMs?: number;
  a?: Partial<HostPlan>;
  b?: Partial<HostPlan>;
  conns: CustomConn[];
}

/** A hand-written scenario (for named tests) with the matrix's defaults filled in. */
export function customScenario(c: CustomScenario): Scenario {
  const host = (h: Partial<HostPlan> = {}): HostPlan => ({
    faults: h.faults ?? {}, rxFaults: h.rxFaults ?? {}, mtu: h.mtu ?? 1500,
    sysctl: { 'net.inet.tcp.msl': MATRIX_MSL, ...h.sysctl },
  });
  const end = (bytes: number, e: Partial<EndPlan> = {}): EndPlan => ({
    bytes, writeChunk: 65536, pauseAtMs: -1, pauseMs: 0, finalClose: true, ...e,
  });
  return {
    seed: c.seed,
    latencyMs: c.latencyMs ?? 1,
    a: host(c.a),
    b: host(c.b),
    conns: c.conns.map((x, id) => ({
      id, initiator: x.initiator ?? 'a', startMs: x.startMs ?? 0, close: x.close ?? 'eager', noDelay: false,
      i: end(x.up, x.i), p: end(x.down, x.p), offI: (id * 2 + 1) * 4099, offP: (id * 2 + 2) * 4099,
    })),
  };
}

function fmtFaults(f: FaultConfig): string {
  const parts: string[] = [];
  if (f.loss) parts.push(`loss=${f.loss}`);
  if (f.duplicate) parts.push(`dup=${f.duplicate}`);
  if (f.reorder) parts.push(`reorder=${f.reorder}/${f.reorderDelayMs}ms`);
  if (f.corrupt) parts.push(`corrupt=${f.corrupt}`);
  if (f.delayMs) parts.push(`delay=${f.delayMs}ms`);
  if (f.jitterMs) parts.push(`jitter=${f.jitterMs}ms`);
  if (f.rateBps) parts.push(`rate=${(f.rateBps / 1e6).toFixed(2)}Mb/s${f.queueLimitBytes ? `,q=${f.queueLimitBytes}B` : ''}`);
  return parts.length ? parts.join(',') : 'none';
}

function fmtSysctl(s: Record<string, SysctlValue>): string {
  return Object.entries(s)
    .filter(([k]) => !['net.inet.tcp.msl', 'net.inet.tcp.syn_retries', 'net.inet.tcp.rexmit_count'].includes(k))
    .map(([k, v]) => `${k.replace('net.inet.tcp.', '')}=${String(v)}`).join(',');
}

/** One line per host and per connection: enough to understand a failing seed. */
export function describeScenario(s: Scenario): string {
  const host = (n: string, h: HostPlan) =>
    `  ${n}: mtu=${h.mtu} tx[${fmtFaults(h.faults)}${h.ceMark ? `,ce=${h.ceMark}` : ''}] rx[${fmtFaults(h.rxFaults)}] ${fmtSysctl(h.sysctl)}`;
  const end = (e: EndPlan) =>
    `${e.bytes}B/w${e.writeChunk}${e.pauseAtMs >= 0 ? ` pause@${e.pauseAtMs}+${e.pauseMs}ms` : ''}${e.finalClose ? ' close()' : ''}`;
  const lines = [`seed=${s.seed} latency=${s.latencyMs}ms conns=${s.conns.length}${s.tfo ? ' tfo' : ''}`, host('a', s.a), host('b', s.b)];
  for (const c of s.conns) {
    lines.push(`  c${c.id}: ${c.initiator}->${c.initiator === 'a' ? 'b' : 'a'} @${c.startMs}ms ${c.close}${c.cc ? ` cc=${c.cc}` : ''}${c.noDelay ? ' nodelay' : ''} i=${end(c.i)} p=${end(c.p)}`);
  }
  return lines.join('\n');
}

export function totalBytes(s: Scenario): number {
  return s.conns.reduce((t, c) => t + c.i.bytes + c.p.bytes, 0);
}

// ---- one end of a connection ---------------------------------------------------------------

const scratch = new Uint8Array(256 * 1024);

/** Drives one socket: writes its payload, reads and checks the peer's, closes as planned. */
export class Endpoint {
  sock: TcpSocket | null = null;
  partner: Endpoint | null = null;
  written = 0;
  received = 0;
  /** First offset where received bytes differed from the sent ones (-1: none). */
  mismatchAt = -1;
  ended = false;
  closed = false;
  closeError: string | undefined;
  stateAtClose = '';
  shutdownDone = false;
  closeCalled = false;
  paused = false;
  writeAllowed: boolean;
  /** Shut down only once the peer's FIN has arrived. */
  readonly afterPeerEnd: boolean;
  readonly simultaneous: boolean;
  readonly errors: string[] = [];
  private readonly hash: Hash = createHash('sha256');

  constructor(
    readonly label: string,
    readonly plan: EndPlan,
    readonly out: Uint8Array,
    readonly expect: Uint8Array,
    pattern: ClosePattern,
    role: 'i' | 'p',
  ) {
    const other = role === 'i' ? 'p' : 'i';
    // The side that waits for the other's FIN before writing (half-close patterns).
    this.writeAllowed = pattern !== `${other}-half`;
    this.afterPeerEnd = pattern === `${other}-half` || pattern === `${other}-first`;
    this.simultaneous = pattern === 'simultaneous';
  }

  get done(): boolean { return this.ended && this.closed; }

  attach(s: TcpSocket): void {
    this.sock = s;
    s.onData = () => this.drain();
    s.onEnd = () => this.onEnd();
    s.onDrain = () => this.pump();
    s.onClose = (err) => {
      this.closed = true;
      this.closeError = err?.code;
      this.stateAtClose = s.state;
    };
    this.drain();
    this.pump();
    if (s.ended && !this.ended) this.onEnd();
  }

  pump(): void {
    const s = this.sock;
    if (!s || !this.writeAllowed || this.closed) return;
    const out = this.out;
    try {
      while (this.written < out.length) {
        const end = Math.min(out.length, this.written + this.plan.writeChunk);
        const n = s.write(out.subarray(this.written, end));
        if (n === 0) break;
        this.written += n;
      }
    } catch (e) {
      this.errors.push(`${this.label}: write threw ${(e as Error).message} at ${this.written}/${out.length} in ${s.state}`);
      return;
    }
    this.maybeShutdown();
  }

  drain(): void {
    const s = this.sock;
    if (!s || this.paused) return;
    for (;;) {
      const n = s.readInto(scratch, 0, scratch.length);
      if (n === 0) break;
      const chunk = scratch.subarray(0, n);
      this.hash.update(chunk);
      if (this.mismatchAt < 0) {
        const at = this.received;
        if (at + n > this.expect.length) this.mismatchAt = Math.max(at, this.expect.length);
        else if (!Buffer.from(chunk.buffer, chunk.byteOffset, n).equals(Buffer.from(this.expect.buffer, this.expect.byteOffset + at, n))) {
          let i = 0;
          while (chunk[i] === this.expect[at + i]) i++;
          this.mismatchAt = at + i;
        }
      }
      this.received += n;
    }
    this.maybeFinish();
  }

  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; this.drain(); }

  private onEnd(): void {
    this.ended = true;
    this.drain();
    if (!this.writeAllowed) { this.writeAllowed = true; this.pump(); }
    this.maybeShutdown();
    this.maybeFinish();
  }

  maybeShutdown(): void {
    const s = this.sock;
    if (!s || this.shutdownDone || this.closed || this.written < this.out.length || !this.writeAllowed) return;
    if (this.afterPeerEnd && !this.ended) return;
    if (this.simultaneous) {
      // Both FINs leave in the same instant, once both ends have queued all their data.
      const p = this.partner;
      if (!p || !p.sock || p.written < p.out.length) return;
      if (!p.shutdownDone) { p.shutdownDone = true; p.sock.shutdown(); p.maybeFinish(); }
    }
    this.shutdownDone = true;
    s.shutdown();
    this.maybeFinish();
  }

  /** The full close(): only with nothing unread, or it would (rightly) reset the connection. */
  maybeFinish(): void {
    const s = this.sock;
    if (!s || !this.plan.finalClose || this.closeCalled || !this.shutdownDone || !this.ended || this.paused) return;
    if (s.readableLength > 0) return;
    this.closeCalled = true;
    s.close();
  }

  digest(): string { return this.hash.copy().digest('hex'); }

  /** What is wrong with this end after the run (empty when all is well). */
  check(): string[] {
    const out = [...this.errors];
    const exp = this.expect.length;
    if (this.mismatchAt >= 0) out.push(`${this.label}: received bytes differ from sent at offset ${this.mismatchAt} (received ${this.received}/${exp})`);
    else if (this.received !== exp) out.push(`${this.label}: received ${this.received}/${exp} bytes`);
    else {
      const want = createHash('sha256').update(this.expect).digest('hex');
      const got = this.digest();
      if (got !== want) out.push(`${this.label}: SHA-256 ${got.slice(0, 16)} != sent ${want.slice(0, 16)}`);
    }
    if (this.written !== this.out.length) out.push(`${this.label}: wrote ${this.written}/${this.out.length}`);
    if (!this.ended) out.push(`${this.label}: no end-of-stream (state ${this.sock?.state ?? 'not accepted'})`);
    if (!this.closed) out.push(`${this.label}: not closed (state ${this.sock?.state ?? 'not accepted'})`);
    else {
      if (this.closeError) out.push(`${this.label}: closed with ${this.closeError}`);
      if (this.stateAtClose !== 'CLOSED' && this.stateAtClose !== 'TIME_WAIT') out.push(`${this.label}: closed in ${this.stateAtClose}`);
    }
    return out;
  }

  /** One-line progress for a failure report. */
  status(): string {
    const s = this.sock;
    const t = s?.tcb;
    const extra = t ? ` una=${t.sndUna} nxt=${t.sndNxt} max=${t.sndMax} wnd=${t.sndWnd} rcvNxt=${t.rcvNxt} sndBuf=${t.sndBuf.length} rcvBuf=${t.rcvBuf.length}` : '';
    return `${this.label}: ${s?.state ?? 'not accepted'} wrote=${this.written}/${this.out.length} got=${this.received}/${this.expect.length} ended=${this.ended} closed=${this.closed}${this.closeError ? `(${this.closeError})` : ''}${extra}`;
  }
}

// ---- the run -----------------------------------------------------------------------------

export interface RunResult {
  scenario: Scenario;
  failures: string[];
  /** Virtual time the transfers took (ms). */
  virtualMs: number;
  steps: number;
  bytes: number;
  endpoints: Endpoint[];
  a: StackNode;
  b: StackNode;
  sim: Simulation;
}

export interface RunOptions {
  /** Virtual time allowed for the transfers (default: from the sizes and faults). */
  maxMs?: number;
  maxSteps?: number;
  /** Called once the hosts exist, before anything is connected (install filters, captures). */
  setup?: (sim: Simulation, a: StackNode, b: StackNode) => void;
  /** Keep the simulation open (the caller closes it): for extra assertions. */
  keepOpen?: boolean;
  /** Run the connections over IPv6 (dual-stack listeners, both hosts with addr6). Default false. */
  ipv6?: boolean;
}

export function replayCommand(seed: number): string {
  return `TSTACK_SEED=${seed} node --test dist/test/sim/tcp-matrix.test.js`;
}

interface Action { at: number; run: () => void }

/** Plays a scenario; never throws for a TCP misbehaviour, it reports it in `failures`. */
export function runScenario(sc: Scenario, opts: RunOptions = {}): RunResult {
  const sim = new Simulation({ seed: `tcp-matrix-sim/${sc.seed}`, latencyMs: sc.latencyMs });
  // Odd seeds run both hosts with deferred output, as a run loop does (Stack.setDeferOutput):
  // writes, reads and shutdowns leave once per round. A parity rule, not a draw, so every
  // seed's scenario stays what it was.
  const deferOutput = sc.seed % 2 === 1;
  const v6 = opts.ipv6 ?? false;
  // IPv6 links carry at least 1280 bytes (RFC 8200 §5); the addresses skip DAD so that the
  // scenario's timing is the same as over IPv4.
  // The matrix proves TCP, not neighbour discovery: with up to 20% loss each way, three ARP
  // requests or neighbour solicitations all going unanswered (Linux's default, after which a
  // connect fails with EHOSTUNREACH, as it should) happens in a few seeds in a hundred. Both
  // hosts try ten times; resolutions that succeed within three behave exactly as before.
  const nd = { 'net.link.ether.inet.maxtries': 10, 'net.inet6.icmp6.nd6_mmaxtries': 10, 'net.inet6.icmp6.nd6_umaxtries': 10 };
  const mk = (name: Side, addr: string, addr6: string, h: HostPlan) => sim.addHost({
    name, addr: `${addr}/${PREFIX}`, mtu: v6 ? Math.max(h.mtu, 1280) : h.mtu, rxFaults: h.rxFaults,
    faults: h.ceMark ? { ...h.faults, filter: ceMarker(sc.seed * 2 + (name === 'a' ? 0 : 1), h.ceMark, h.faults.filter) } : h.faults,
    sysctl: v6 ? { ...nd, 'net.inet6.ip6.dad_count': 0, ...h.sysctl } : { ...nd, ...h.sysctl }, deferOutput,
    ...(v6 && { addr6: `${addr6}/64` }),
  });
  const a = mk('a', ADDR_A, ADDR6_A, sc.a);
  const b = mk('b', ADDR_B, ADDR6_B, sc.b);
  opts.setup?.(sim, a, b);
  const stacks: Record<Side, Stack> = { a: a.stack, b: b.stack };
  const addrs: Record<Side, number> = { a: parseIpv4(ADDR_A)!, b: parseIpv4(ADDR_B)! };
  const addrs6: Record<Side, Uint8Array> = { a: parseIpv6(ADDR6_A)!, b: parseIpv6(ADDR6_B)! };
  const failures: string[] = [];
  const endpoints: Endpoint[] = [];
  // Acceptor ends waiting for their connection, keyed by "<acceptor side>:<initiator's port>".
  const waiting = new Map<string, Endpoint>();
  const listeners: TcpListener[] = [];
  for (const side of ['a', 'b'] as const) {
    const l = stacks[side].tcp.listen({ ...(v6 ? { port: SERVER_PORT, addr6: new Uint8Array(16) } : { port: SERVER_PORT }), ...(sc.tfo && { fastOpen: 16 }) });
    l.onConnection = (s) => {
      const e = waiting.get(`${side}:${s.remotePort}`);
      if (!e) { failures.push(`${side}: unexpected connection from port ${s.remotePort}`); s.abort(); return; }
      waiting.delete(`${side}:${s.remotePort}`);
      e.attach(s);
    };
    listeners.push(l);
  }

  const actions: Action[] = [];
  for (const c of sc.conns) {
    const peer: Side = c.initiator === 'a' ? 'b' : 'a';
    const ei = new Endpoint(`c${c.id}.${c.initiator}(connect)`, c.i, payload(c.offI, c.i.bytes), payload(c.offP, c.p.bytes), c.close, 'i');
    const ep = new Endpoint(`c${c.id}.${peer}(accept)`, c.p, payload(c.offP, c.p.bytes), payload(c.offI, c.i.bytes), c.close, 'p');
    ei.partner = ep; ep.partner = ei;
    endpoints.push(ei, ep);
    actions.push({
      at: c.startMs,
      run: () => {
        let s: TcpSocket;
        try {
          s = stacks[c.initiator].tcp.connect({
            raddr: addrs[peer], ...(v6 && { raddr6: addrs6[peer] }), rport: SERVER_PORT, noDelay: c.noDelay, ...(c.cc && { congestionControl: c.cc }),
            ...(sc.tfo && { fastOpen: true }),
          });
        } catch (e) {
          failures.push(`c${c.id}: connect threw ${(e as Error).message}`);
          return;
        }
        waiting.set(`${peer}:${s.localPort}`, ep);
        // Attach at once: events before the handshake completes are delivered later.
        ei.attach(s);
      },
    });
    for (const e of [ei, ep]) {
      if (e.plan.pauseAtMs < 0) continue;
      actions.push({ at: e.plan.pauseAtMs, run: () => e.pause() });
      actions.push({ at: e.plan.pauseAtMs + e.plan.pauseMs, run: () => e.resume() });
    }
  }
  actions.sort((x, y) => x.at - y.at);

  const bytes = totalBytes(sc);
  const slowest = Math.min(sc.a.faults.rateBps ?? Infinity, sc.b.faults.rateBps ?? Infinity);
  // Generous: virtual time is nearly free (a stalled connection only wakes for its timers),
  // and under 20% loss each way a backed-off RTO of a minute can persist for a long time: a
  // few MiB may legitimately need hours.
  const maxMs = opts.maxMs ?? 12 * 3_600_000 + (slowest === Infinity ? 0 : bytes * 8 * 1000 / slowest * 20);
  const maxSteps = opts.maxSteps ?? 400_000 + Math.ceil(bytes / 40);
  const allDone = () => endpoints.every((e) => e.done);

  const t0 = sim.now;
  const deadline = t0 + maxMs;
  let ok = true;
  let ai = 0;
  for (;;) {
    while (ai < actions.length && actions[ai]!.at <= sim.now - t0) actions[ai++]!.run();
    if (allDone() && ai >= actions.length) break;
    const until = ai < actions.length ? Math.min(deadline, t0 + actions[ai]!.at) : deadline;
    const left = maxSteps - sim.steps;
    if (left <= 0) { ok = false; sim.lastStop = 'steps'; break; }
    const reached = sim.runUntil(() => allDone() && ai >= actions.length, { maxMs: until - sim.now, maxSteps: left });
    if (reached) break;
    if (sim.lastStop !== 'timeout' || sim.now >= deadline) { ok = false; break; }
  }
  const virtualMs = sim.now - t0;
  if (!ok) failures.push(`transfers did not finish: t=${sim.now}ms steps=${sim.steps} stop=${sim.lastStop}`);
  for (const e of endpoints) failures.push(...e.check());
  if (failures.length > 0) for (const e of endpoints) failures.push(`  ${e.status()}`);

  // Teardown: listeners go, TIME_WAIT runs out, in-flight frames land.
  for (const l of listeners) l.close();
  sim.runUntil(() => a.stack.tcp.activeTcbs === 0 && b.stack.tcp.activeTcbs === 0, { maxMs: 2 * MATRIX_MSL + 60_000 });
  sim.run(1000);
  // Neighbour unreachability detection (RFC 4861 §7.3) may still be probing: let the frames land.
  if (v6) sim.runUntil(() => sim.wire.nextEventTime() === Infinity, { maxMs: 30_000 });
  for (const [name, node] of [['a', a], ['b', b]] as const) failures.push(...leftovers(name, node));
  for (const e of endpoints) {
    const t = e.sock?.tcb;
    if (t && t.family !== (v6 ? 6 : 4)) failures.push(`${e.label}: connection of family ${t.family}, expected ${v6 ? 6 : 4}`);
    if (t && (t.sndBuf.data.length > 0 || t.rcvBuf.data.length > 0)) {
      failures.push(`${e.label}: rings still held after close (send ${t.sndBuf.data.length} B, receive ${t.rcvBuf.data.length} B)`);
    }
  }
  const res: RunResult = { scenario: sc, failures, virtualMs, steps: sim.steps, bytes, endpoints, a, b, sim };
  if (!opts.keepOpen) sim.close();
  return res;
}

/** Connections, timers and buffers a stack still holds (empty when it is clean). */
export function leftovers(name: string, node: StackNode): string[] {
  const st = node.stack;
  const out: string[] = [];
  if (st.tcp.activeTcbs !== 0) {
    const list = st.tcp.connections().map((t) => `${t.lport}->${t.rport}:${['CLOSED', 'LISTEN', 'SYN_SENT', 'SYN_RECEIVED', 'ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2', 'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT'][t.state]}`);
    out.push(`${name}: ${st.tcp.activeTcbs} connections left after 2*MSL (${list.join(' ')})`);
  }
  // ARP entries keep their ageing timer (permanent ones none); so does a reassembly in
  // progress. Anything beyond that is a timer someone forgot.
  const arpEntries = st.arp.list();
  let arpTimers = 0;
  for (const e of arpEntries) if (st.arp.lookup(e.ifIndex, parseIpv4(e.ip)!)?.timer.armed) arpTimers++;
  // The same for IPv6: neighbour entries and reassemblies.
  const ndEntries = st.ip6.ndp.list();
  let ndTimers = 0;
  for (const e of ndEntries) if (st.ip6.ndp.lookup(e.ifIndex, parseIpv6(e.addr)!)?.timer.armed) ndTimers++;
  const expected = arpTimers + st.reass.inProgress + ndTimers + st.ip6.reass.inProgress;
  if (st.wheel.size !== expected) {
    out.push(`${name}: ${st.wheel.size} timers armed, expected ${expected} (ARP ${arpTimers}, reassembly ${st.reass.inProgress}, ND ${ndTimers}, reassembly6 ${st.ip6.reass.inProgress})`);
  }
  const arpHeld = arpEntries.reduce((s, e) => s + e.queued, 0) + ndEntries.reduce((s, e) => s + e.queued, 0);
  if (st.pool.inUse !== arpHeld) out.push(`${name}: stack pool has ${st.pool.inUse} buffers in use (ARP holds ${arpHeld})`);
  if (node.port.pool.inUse !== 0 && node.port.pool !== st.pool) out.push(`${name}: port pool has ${node.port.pool.inUse} buffers in use`);
  return out;
}

/** The failure text a test asserts with: the seed, the replay command, the scenario, what broke. */
export function failureReport(res: RunResult, replay = replayCommand(res.scenario.seed)): string {
  return `TCP matrix run failed (seed ${res.scenario.seed}); replay: ${replay}\n${describeScenario(res.scenario)}\n${res.failures.join('\n')}`;
}
