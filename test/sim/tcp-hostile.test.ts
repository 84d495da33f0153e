// Named hostile-network scenarios the random matrix reaches only rarely: each runs two stacks on
// the simulated memory wire under one deterministic fault mix and checks both the delivery
// promise (every byte, in order, both ends closed, nothing left) and the evidence that the
// hostile mechanism really was exercised (drops counted, probes sent, backoff observed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4 } from '../../src/wire/addr.js';
import type { FaultDirection, FilterVerdict } from '../../src/driver/fault.js';
import type { Stack } from '../../src/stack/stack.js';
import { Simulation, type StackNode } from '../helpers/sim.js';
import {
  customScenario, runScenario, failureReport, leftovers, payload, Endpoint, MIB, ADDR_A, ADDR_B, SERVER_PORT,
  type RunResult,
} from '../helpers/tcp-matrix.js';

const IP_A = parseIpv4(ADDR_A)!;
const IP_B = parseIpv4(ADDR_B)!;
const replay = 'node --test dist/test/sim/tcp-hostile.test.js';

/** The TCP facts of an Ethernet/IPv4/TCP frame (null for anything else). */
interface TcpFacts { seq: number; ack: number; flags: number; window: number; payload: number }
function tcpOf(f: Uint8Array): TcpFacts | null {
  if (f.length < 54 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 6) return null;
  const ihl = (f[14]! & 15) * 4;
  const t = 14 + ihl;
  const total = (f[16]! << 8) | f[17]!;
  const doff = (f[t + 12]! >>> 4) * 4;
  const u32 = (o: number) => ((f[o]! << 24) | (f[o + 1]! << 16) | (f[o + 2]! << 8) | f[o + 3]!) >>> 0;
  return { seq: u32(t + 4), ack: u32(t + 8), flags: f[t + 13]!, window: (f[t + 14]! << 8) | f[t + 15]!, payload: total - ihl - doff };
}
const FIN = 1, SYN = 2, RST = 4;

function assertClean(res: RunResult): void {
  assert.ok(res.failures.length === 0, failureReport(res, replay));
}

/** Sum of drops that a damaged frame can land in: IPv4 validation and TCP header/checksum. */
function corruptionDrops(st: Stack): number {
  let n = st.tcp.counters.rcvBadChecksum + st.tcp.counters.rcvBadHeader;
  for (const [k, v] of Object.entries(st.drops)) if (k.startsWith('ip_')) n += v;
  return n;
}

test('20% loss each way and 200 ms one-way delay: 1 MiB each way arrives intact', () => {
  const sc = customScenario({
    seed: 9001, latencyMs: 200,
    a: { faults: { loss: 0.2 } }, b: { faults: { loss: 0.2 } },
    conns: [{ up: MIB, down: MIB }],
  });
  const res = runScenario(sc, { keepOpen: true });
  try {
    assertClean(res);
    const a = res.a.stack.tcp.counters, b = res.b.stack.tcp.counters;
    assert.ok(res.a.port.stats().faults.tx.dropped > 100 && res.b.port.stats().faults.tx.dropped > 100, 'the wire really lost frames');
    assert.ok(a.sndRexmtPackets > 50 && b.sndRexmtPackets > 50, `both ends retransmitted (a ${a.sndRexmtPackets}, b ${b.sndRexmtPackets})`);
    assert.ok(a.rexmtTimeouts + a.fastRetransmits > 0);
  } finally { res.sim.close(); }
});

test('30% reordering and 10% duplication each way: 1 MiB each way arrives intact and in order', () => {
  const f = { reorder: 0.3, reorderDelayMs: 15, duplicate: 0.1 };
  const sc = customScenario({
    seed: 9002, latencyMs: 5, a: { faults: f }, b: { faults: f },
    conns: [{ up: MIB, down: MIB }, { up: 300_000, down: 0, initiator: 'b', close: 'i-half' }],
  });
  const res = runScenario(sc, { keepOpen: true });
  try {
    assertClean(res);
    for (const n of [res.a, res.b]) {
      const fs = n.port.stats().faults.tx;
      assert.ok(fs.reordered > 100 && fs.duplicated > 50, `${n.name}: reordered ${fs.reordered}, duplicated ${fs.duplicated}`);
      assert.ok(n.stack.tcp.counters.rcvOutOfOrder > 0, `${n.name} queued out-of-order segments`);
    }
  } finally { res.sim.close(); }
});

test('5% corruption each way: every damaged frame is dropped by a checksum and counted, the data arrives intact', () => {
  const sc = customScenario({ seed: 9003, latencyMs: 2, conns: [{ up: MIB, down: MIB }] });
  const res = runScenario(sc, {
    keepOpen: true,
    // ARP has no checksum, so resolve statically and only then start damaging frames: every
    // damaged frame is then IPv4 (header checksum) carrying TCP (checksum over everything).
    setup: (_sim, a, b) => {
      a.stack.arp.addStatic(a.ifIndex, IP_B, b.port.mac);
      b.stack.arp.addStatic(b.ifIndex, IP_A, a.port.mac);
      a.port.setFaults({ corrupt: 0.05 });
      b.port.setFaults({ corrupt: 0.05 });
    },
  });
  try {
    assertClean(res);
    const corrupted = res.a.port.stats().faults.tx.corrupted + res.b.port.stats().faults.tx.corrupted;
    const dropped = corruptionDrops(res.a.stack) + corruptionDrops(res.b.stack);
    const badSum = res.a.stack.tcp.counters.rcvBadChecksum + res.b.stack.tcp.counters.rcvBadChecksum;
    assert.ok(corrupted > 50, `frames were corrupted (${corrupted})`);
    // Timestamps make every TCP frame longer than the 60-byte minimum, so no flipped bit can
    // land in Ethernet padding: each corrupted frame must show up as exactly one drop.
    assert.equal(dropped, corrupted, `corrupted ${corrupted}, dropped ${dropped} (TCP bad checksum ${badSum}, drops a ${JSON.stringify(res.a.stack.drops)} b ${JSON.stringify(res.b.stack.drops)})`);
    assert.ok(badSum > corrupted / 2, `most damage is caught by the TCP checksum (${badSum}/${corrupted})`);
  } finally { res.sim.close(); }
});

test('1 Mbit/s with a 12 KB queue: tail drops, and 512 KiB + 64 KiB still arrive intact', () => {
  const link = { rateBps: 1_000_000, queueLimitBytes: 8 * 1514 };
  const sc = customScenario({
    seed: 9004, latencyMs: 10, a: { faults: link }, b: { faults: link },
    conns: [{ up: 512 * 1024, down: 64 * 1024 }],
  });
  const res = runScenario(sc, { keepOpen: true });
  try {
    assertClean(res);
    const drops = res.a.port.stats().faults.tx.rateDropped;
    assert.ok(drops > 0, 'slow start overran the shallow queue and was tail-dropped');
    // 512 KiB cannot cross a 1 Mbit/s link in less than 4.19 s.
    assert.ok(res.virtualMs >= 512 * 1024 * 8 / 1000, `took ${res.virtualMs} ms`);
  } finally { res.sim.close(); }
});

test('a receiver that stops reading for 10 s: the window closes, probes back off, no byte is lost', () => {
  let zeroWindows = 0;
  const probeTimes: number[] = [];
  let sim: Simulation | null = null;
  // The reader stops 5 ms in (1 MiB over a 1 ms wire is done in ~10 ms otherwise).
  const PAUSE_AT = 5, PAUSE = 10_000;
  const watchB = (f: Uint8Array, dir: FaultDirection): FilterVerdict => {
    const t = dir === 'tx' ? tcpOf(f) : null;
    if (t && t.window === 0 && !(t.flags & RST)) zeroWindows++;
    return 'pass';
  };
  const watchA = (f: Uint8Array, dir: FaultDirection): FilterVerdict => {
    const t = dir === 'tx' ? tcpOf(f) : null;
    const now = sim ? sim.now : 0;
    if (t && t.payload === 1 && now > PAUSE_AT && now < PAUSE_AT + PAUSE) probeTimes.push(now);
    return 'pass';
  };
  const sc = customScenario({
    seed: 9005, latencyMs: 1,
    a: { faults: { filter: watchA } },
    // A whole number of 1448-byte segments, so the sender can fill the window to exactly zero
    // (with 256 KiB a 56-byte remainder is left, which sender SWS avoidance rightly withholds).
    b: { faults: { filter: watchB }, sysctl: { 'net.inet.tcp.recvspace': 64 * 1448, 'net.inet.tcp.recvbuf_auto': false } },
    conns: [{ up: MIB, down: 0, p: { pauseAtMs: PAUSE_AT, pauseMs: PAUSE } }],
  });
  const res = runScenario(sc, {
    keepOpen: true,
    setup: (s) => { sim = s; },
  });
  try {
    assertClean(res);
    assert.ok(zeroWindows > 0, 'the receiver advertised a zero window');
    assert.ok(res.virtualMs >= PAUSE_AT + PAUSE, `nothing completes before the reader resumes (${res.virtualMs} ms)`);
    const c = res.a.stack.tcp.counters;
    assert.ok(c.sndProbes >= 3, `zero-window probes were sent (${c.sndProbes})`);
    // 10 s of probing from a 200 ms floor with doubling is a handful of probes, not hundreds.
    assert.ok(c.sndProbes <= 15, `probes back off (${c.sndProbes} in 10 s)`);
    const gaps = probeTimes.slice(1).map((t, i) => t - probeTimes[i]!);
    assert.ok(gaps.length >= 2, `probes seen on the wire: ${probeTimes.join(', ')}`);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! >= gaps[i - 1]!, `probe gaps never shrink: ${gaps.join(', ')}`);
    assert.ok(gaps[gaps.length - 1]! >= 4 * gaps[0]!, `probe gaps grow: ${gaps.join(', ')}`);
  } finally { res.sim.close(); }
});

test('the peer vanishes mid-transfer: the sender backs off, gives up with ETIMEDOUT, and leaves nothing behind', () => {
  const sim = new Simulation({ seed: 'hostile-vanish', latencyMs: 5 });
  let vanished = false;
  const sent: { t: number; seq: number; flags: number; len: number; again: boolean }[] = [];
  // Sequence numbers a's data segments started at: a segment sent after the peer vanished may
  // still be a first transmission (the flight in progress), not a retransmission.
  const seen = new Set<number>();
  const filterA = (f: Uint8Array): FilterVerdict => {
    const t = tcpOf(f);
    const again = t !== null && seen.has(t.seq);
    if (t && t.payload > 0) seen.add(t.seq);
    if (!vanished) return 'pass';
    if (t) sent.push({ t: sim.now, seq: t.seq, flags: t.flags, len: t.payload, again });
    return 'drop';
  };
  const filterB = (): FilterVerdict => (vanished ? 'drop' : 'pass');
  const a = sim.addHost({ name: 'a', addr: `${ADDR_A}/24`, faults: { filter: filterA }, sysctl: { 'net.inet.tcp.msl': 1000 } });
  const b = sim.addHost({ name: 'b', addr: `${ADDR_B}/24`, faults: { filter: filterB }, sysctl: { 'net.inet.tcp.msl': 1000 } });
  const data = payload(0, 4 * MIB);
  const ea = new Endpoint('a(connect)', { bytes: data.length, writeChunk: 65536, pauseAtMs: -1, pauseMs: 0, finalClose: false }, data, new Uint8Array(0), 'eager', 'i');
  const eb = new Endpoint('b(accept)', { bytes: 0, writeChunk: 65536, pauseAtMs: -1, pauseMs: 0, finalClose: false }, new Uint8Array(0), data, 'eager', 'p');
  const l = b.stack.tcp.listen({ port: SERVER_PORT });
  l.onConnection = (s) => eb.attach(s);
  ea.attach(a.stack.tcp.connect({ raddr: IP_B, rport: SERVER_PORT }));
  try {
    assert.ok(sim.runUntil(() => eb.received >= 256 * 1024, { maxMs: 10_000 }), sim.describe());
    vanished = true;
    const limit = a.stack.sysctl.int('net.inet.tcp.rexmit_count');
    const before = a.stack.tcp.counters.rexmtTimeouts;
    assert.ok(sim.runUntil(() => ea.closed, { maxMs: 3_600_000 }), `${sim.describe()} ${ea.status()}`);
    assert.equal(ea.closeError, 'ETIMEDOUT');
    assert.equal(a.stack.tcp.counters.timeoutDrops, 1);
    assert.equal(a.stack.tcp.counters.rexmtTimeouts - before, limit + 1, `${limit} retransmission timeouts, then the one that gives up`);
    // The RTO retransmissions all resend SND.UNA, each after twice the previous wait (RFC 6298
    // §5.5) until the 60 s ceiling; the very last segment is the RST of RFC 9293 §3.10.8.
    const una = ea.sock!.tcb.sndUna;
    const rexmits = sent.filter((s) => s.seq === una && s.len > 0 && s.again && !(s.flags & (SYN | FIN | RST)));
    assert.equal(rexmits.length, limit, `${limit} retransmissions of SND.UNA (saw ${rexmits.length})`);
    const gaps = rexmits.slice(1).map((s, i) => s.t - rexmits[i]!.t);
    for (let i = 1; i < gaps.length; i++) {
      const want = Math.min(gaps[i - 1]! * 2, 60_000);
      assert.ok(Math.abs(gaps[i]! - want) <= 2, `gap ${i} is ${gaps[i]} ms after ${gaps[i - 1]} ms (want ${want})`);
    }
    assert.ok(sent[sent.length - 1]!.flags & RST, 'the sender gives up with a RST');
    // The vanished peer never hears; end it locally, then neither stack may hold anything.
    eb.sock!.abort();
    l.close();
    sim.run(5000);
    const left = [...leftovers('a', a as StackNode), ...leftovers('b', b as StackNode)];
    assert.deepEqual(left, []);
    assert.equal(ea.sock!.tcb.sndBuf.data.length + ea.sock!.tcb.rcvBuf.data.length, 0, 'the sender released its rings');
  } finally { sim.close(); }
});

test('a lost window update does not stall a sender facing a window smaller than one segment (SWS override)', () => {
  // Reduced from matrix seeds 51, 156, 219, 251, 289, 291, 302, 397, 402, 473, 492. b has a
  // 2412-byte buffer and an MSS of 524 (MTU 576, timestamps). The wire drops a's 10th data
  // segment; the retransmission fills the hole, and b ACKs the four in-order segments at once,
  // before its application has read them: window 316, less than one segment and less than half
  // the largest window (RFC 9293 §3.8.6.2.1), so a rightly withholds its next segment. b's
  // application then reads, and the window update that reopens the window to 2412 is dropped.
  // a must not wait forever: "the sender should ... send ... if the override timeout occurs",
  // and its persist timer has to provoke a fresh window (§3.8.6.1) when nothing is in flight.
  let dataSegs = 0, lastWin = -1, lastAck = -1;
  let droppedData = 0, droppedUpdate = 0;
  const dropTenthSegment = (f: Uint8Array, dir: FaultDirection): FilterVerdict => {
    const t = dir === 'tx' ? tcpOf(f) : null;
    if (t && t.payload > 0 && ++dataSegs === 10) { droppedData++; return 'drop'; }
    return 'pass';
  };
  const dropWindowUpdate = (f: Uint8Array, dir: FaultDirection): FilterVerdict => {
    const t = dir === 'tx' ? tcpOf(f) : null;
    if (!t || t.payload !== 0 || (t.flags & (SYN | FIN | RST))) return 'pass';
    const isUpdate = t.ack === lastAck && t.window > lastWin;
    lastWin = t.window; lastAck = t.ack;
    if (isUpdate && droppedData > 0 && droppedUpdate === 0) { droppedUpdate++; return 'drop'; }
    return 'pass';
  };
  const sc = customScenario({
    seed: 9007, latencyMs: 1,
    a: { mtu: 576, faults: { filter: dropTenthSegment } },
    b: { mtu: 576, faults: { filter: dropWindowUpdate }, sysctl: { 'net.inet.tcp.recvspace': 2412, 'net.inet.tcp.recvbuf_auto': false } },
    conns: [{ up: 64 * 1024, down: 0 }],
  });
  const res = runScenario(sc, { maxMs: 120_000 });
  assert.equal(droppedData, 1, 'a data segment was dropped');
  assert.equal(droppedUpdate, 1, 'the window update was dropped');
  assertClean(res);
});
