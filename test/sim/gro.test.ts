// Receive coalescing (src/stack/ip/gro.ts): what merges within a burst and what does not, the
// headers of a super-segment, and end to end on the memory wire that the byte stream, the ACKs
// and TCP's segment counts are those of the same run without coalescing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BufferPool, Csum, Gso, type PacketBuffer } from '../../src/base/pktbuf.js';
import { Gro } from '../../src/stack/ip/gro.js';
import { completeChecksum } from '../../src/base/offload.js';
import { finish, fold, pseudoHeaderV4, pseudoHeaderV6, sum16 } from '../../src/wire/checksum.js';
import { Simulation } from '../helpers/sim.js';
import { filler } from '../helpers/tcp-harness.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import type { Stack } from '../../src/stack/stack.js';

const ACK = 0x10, PSH = 0x08, FIN = 0x01;
const pool = new BufferPool();

interface SegSpec {
  seq: number; len: number; flags?: number; ack?: number; wnd?: number;
  /** [TSval, TSecr]: NOP NOP TS options. */
  ts?: [number, number];
  /** Extra option bytes after the timestamps (e.g. a SACK block). */
  extraOpts?: number[];
  sport?: number; v6?: boolean; tos?: number; badCsum?: boolean; valid?: boolean;
}

/** An Ethernet + IPv4/IPv6 + TCP frame with correct checksums, payload bytes = (seq + i) & 0xff. */
function frame(s: SegSpec): PacketBuffer {
  const opts: number[] = [];
  if (s.ts) opts.push(1, 1, 8, 10, ...u32(s.ts[0]), ...u32(s.ts[1]));
  if (s.extraOpts) opts.push(...s.extraOpts);
  while (opts.length % 4) opts.push(1);
  const thl = 20 + opts.length, v6 = s.v6 === true, iphl = v6 ? 40 : 20;
  const b = pool.alloc(pool.headroom + 14 + iphl + thl + s.len);
  const at = b.append(14 + iphl + thl + s.len);
  const d = b.data;
  d.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, v6 ? 0x86 : 0x08, v6 ? 0xdd : 0x00], at);
  const ip = at + 14, tcp = ip + iphl;
  if (v6) {
    d.set([0x60 | ((s.tos ?? 0) >> 4), ((s.tos ?? 0) & 0xf) << 4, 0, 0, (thl + s.len) >> 8, (thl + s.len) & 0xff, 6, 64], ip);
    d.set([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1], ip + 8);
    d.set([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 2], ip + 24);
  } else {
    const total = 20 + thl + s.len;
    d.set([0x45, s.tos ?? 0, total >> 8, total & 0xff, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2], ip);
    const c = finish(sum16(d, ip, 20));
    d[ip + 10] = c >> 8; d[ip + 11] = c & 0xff;
  }
  const sport = s.sport ?? 5000;
  d.set([sport >> 8, sport & 0xff, 0x1f, 0x90, ...u32(s.seq), ...u32(s.ack ?? 777), (thl / 4) << 4, s.flags ?? ACK, (s.wnd ?? 1000) >> 8, (s.wnd ?? 1000) & 0xff, 0, 0, 0, 0], tcp);
  d.set(opts, tcp + 20);
  for (let i = 0; i < s.len; i++) d[tcp + thl + i] = (s.seq + i) & 0xff;
  const tl = thl + s.len;
  const pseudo = v6 ? pseudoHeaderV6(d, ip + 8, d, ip + 24, 6, tl) : pseudoHeaderV4(0xc6120001, 0xc6120002, 6, tl);
  const c = finish(sum16(d, tcp, tl, pseudo));
  d[tcp + 16] = c >> 8; d[tcp + 17] = (c & 0xff) ^ (s.badCsum ? 1 : 0);
  if (s.valid) b.csum = Csum.Valid;
  return b;
}

function u32(x: number): number[] { return [x >>> 24, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff]; }

interface Out { seq: number; len: number; flags: number; wnd: number; tsval: number; buf: PacketBuffer }

/** Runs one burst through a Gro and describes what came out, in order. */
function coalesce(specs: SegSpec[]): Out[] {
  const out: Out[] = [];
  const gro = new Gro(pool, (_i, b) => {
    const d = b.data, ip = b.start + 14, v6 = d[b.start + 12] === 0x86;
    const tcp = ip + (v6 ? 40 : 20), thl = (d[tcp + 12]! >> 4) * 4;
    const ipLen = v6 ? ((d[ip + 4]! << 8) | d[ip + 5]!) + 40 : (d[ip + 2]! << 8) | d[ip + 3]!;
    assert.equal(b.end - ip, ipLen, 'the IP length covers the frame');
    if (!v6) assert.equal(fold(sum16(d, ip, 20)), 0xffff, 'the IPv4 header checksum holds');
    const seq = ((d[tcp + 4]! << 24) | (d[tcp + 5]! << 16) | (d[tcp + 6]! << 8) | d[tcp + 7]!) >>> 0;
    const len = b.end - tcp - thl;
    for (let i = 0; i < len; i++) if (d[tcp + thl + i] !== ((seq + i) & 0xff)) assert.fail(`payload byte ${i} of seq ${seq}`);
    const tsval = thl >= 32 ? ((d[tcp + 24]! << 24) | (d[tcp + 25]! << 16) | (d[tcp + 26]! << 8) | d[tcp + 27]!) >>> 0 : -1;
    out.push({ seq, len, flags: d[tcp + 13]!, wnd: (d[tcp + 14]! << 8) | d[tcp + 15]!, tsval, buf: b });
  });
  const bufs = specs.map(frame);
  gro.burst(1, bufs, bufs.length);
  return out;
}

const run = (n: number, mss: number, o: Partial<SegSpec> = {}, seq0 = 1000): SegSpec[] =>
  Array.from({ length: n }, (_, i) => ({ seq: seq0 + i * mss, len: mss, ...o }));

test('four in-order segments of one flow become one super-segment with the last window and PSH', () => {
  const specs = run(4, 1448);
  specs[3]!.flags = ACK | PSH; specs[3]!.wnd = 2000;
  const out = coalesce(specs);
  assert.equal(out.length, 1);
  assert.deepEqual({ seq: out[0]!.seq, len: out[0]!.len, flags: out[0]!.flags, wnd: out[0]!.wnd }, { seq: 1000, len: 4 * 1448, flags: ACK | PSH, wnd: 2000 });
  const b = out[0]!.buf;
  assert.equal(b.csum, Csum.Valid);
  assert.equal(b.gso, Gso.Tcp4);
  assert.equal(b.gsoSize, 1448);
  // The checksum field holds the pseudo-header sum (as a device's partial one): completing it
  // over the whole super-segment gives a valid TCP checksum (what forwarding to a TSO device needs).
  b.csum = Csum.Partial;
  completeChecksum(b);
  const tcp = b.start + 14 + 20, tl = b.end - tcp;
  assert.equal(fold(sum16(b.data, tcp, tl, pseudoHeaderV4(0xc6120001, 0xc6120002, 6, tl))), 0xffff);
});

test('with IPv6 forwarding on (merge6 false) IPv6 segments pass as they are; IPv4 still merges', () => {
  const out: number[] = [];
  const gro = new Gro(pool, (_i, b) => out.push(b.end - b.start));
  const bufs = [...run(2, 100, { v6: true }), ...run(2, 100, { sport: 7000 })].map(frame);
  gro.burst(1, bufs, 4, false);
  assert.deepEqual(out, [174, 174, 254]);
});

test('IPv6 segments merge the same way (payload length rewritten)', () => {
  const out = coalesce(run(3, 1000, { v6: true, ts: [5, 9] }));
  assert.deepEqual(out.map((o) => [o.seq, o.len]), [[1000, 3000]]);
  assert.equal(out[0]!.buf.gso, Gso.Tcp6);
});

test('a hole ends the super-segment: the segment after it starts a new one', () => {
  const specs = [...run(2, 1000), ...run(2, 1000, {}, 1000 + 3000)];
  assert.deepEqual(coalesce(specs).map((o) => [o.seq, o.len]), [[1000, 2000], [4000, 2000]]);
});

test('no merge across flags: FIN is delivered alone after what was held; PSH ends the merge', () => {
  const a = coalesce([...run(2, 500), { seq: 2000, len: 500, flags: ACK | FIN }]);
  assert.deepEqual(a.map((o) => [o.seq, o.len, o.flags]), [[1000, 1000, ACK], [2000, 500, ACK | FIN]]);
  const b = coalesce([{ seq: 1000, len: 500, flags: ACK | PSH }, { seq: 1500, len: 500 }]);
  assert.deepEqual(b.map((o) => [o.seq, o.len]), [[1000, 500], [1500, 500]]);
});

test('a device super-frame (already coalesced by the kernel) is passed on whole, after what its flow held', () => {
  const out: number[][] = [];
  const gro = new Gro(pool, (_i, b) => out.push([b.end - b.start, b.gso]));
  const bufs = [frame({ seq: 1000, len: 1000 }), frame({ seq: 2000, len: 3000 }), frame({ seq: 5000, len: 1000 })];
  bufs[1]!.gso = Gso.Tcp4; bufs[1]!.gsoSize = 1000; bufs[1]!.csum = Csum.Valid;
  gro.burst(1, bufs, 3);
  assert.deepEqual(out, [[1054, 0], [3054, Gso.Tcp4], [1054, 0]]);
});

test('no merge across option changes: another TS echo, a SACK block, a falling TS value; a rising one merges', () => {
  assert.equal(coalesce([{ seq: 1000, len: 100, ts: [5, 9] }, { seq: 1100, len: 100, ts: [5, 10] }]).length, 2);
  assert.equal(coalesce([{ seq: 1000, len: 100, ts: [5, 9] }, { seq: 1100, len: 100, ts: [5, 9], extraOpts: [5, 10, ...u32(1), ...u32(2)] }]).length, 2);
  assert.equal(coalesce([{ seq: 1000, len: 100, ts: [6, 9] }, { seq: 1100, len: 100, ts: [5, 9] }]).length, 2);
  const up = coalesce([{ seq: 1000, len: 100, ts: [5, 9] }, { seq: 1100, len: 100, ts: [7, 9] }]);
  assert.deepEqual(up.map((o) => [o.len, o.tsval]), [[200, 7]], 'the newest TS value is kept');
});

test('no merge across another ACK number, TOS/ECN, a longer segment, or a bad checksum', () => {
  assert.equal(coalesce([{ seq: 1000, len: 100 }, { seq: 1100, len: 100, ack: 778 }]).length, 2);
  assert.equal(coalesce([{ seq: 1000, len: 100 }, { seq: 1100, len: 100, tos: 3 }]).length, 2);
  assert.equal(coalesce([{ seq: 1000, len: 100 }, { seq: 1100, len: 200 }]).length, 2);
  const bad = coalesce([{ seq: 1000, len: 100 }, { seq: 1100, len: 100, badCsum: true }, { seq: 1200, len: 100 }]);
  assert.deepEqual(bad.map((o) => o.seq), [1000, 1100, 1200], 'the bad one is passed on alone, in order');
  assert.notEqual(bad[1]!.buf.csum, Csum.Valid, 'TCP still verifies (and counts) it');
  // A shorter segment is merged and ends the super-segment.
  assert.deepEqual(coalesce([...run(2, 100), { seq: 1200, len: 50 }, { seq: 1250, len: 100 }]).map((o) => [o.seq, o.len]), [[1000, 250], [1250, 100]]);
});

test('interleaved flows coalesce separately; pure ACKs and other frames pass in order', () => {
  const specs: SegSpec[] = [];
  for (let i = 0; i < 3; i++) { specs.push({ seq: 1000 + i * 100, len: 100 }, { seq: 9000 + i * 100, len: 100, sport: 6000 }); }
  specs.push({ seq: 1300, len: 0 });
  const out = coalesce(specs);
  assert.deepEqual(out.map((o) => [o.seq, o.len]), [[1000, 300], [1300, 0], [9000, 300]]);
});

/** A 4 MiB transfer from a to b on the memory wire; b's view of it. */
function bulk(coalesceOn: boolean, seed: string) {
  const sim = new Simulation({ seed, latencyMs: 1, coalesce: coalesceOn });
  const a = sim.addHost({ name: 'a', addr: '198.18.140.1/24' }).stack;
  const b = sim.addHost({ name: 'b', addr: '198.18.140.2/24' }).stack;
  const size = 4 << 20;
  const data = filler(size, 11);
  const h = createHash('sha256');
  let n = 0, done = false;
  const acks: number[] = [];
  b.frameTap = (_i, buf, tx) => {
    const d = buf.data, s = buf.start;
    if (tx && d[s + 12] === 0x08 && d[s + 23] === 6) {
      const tcp = s + 14 + (d[s + 14]! & 15) * 4, thl = (d[tcp + 12]! >> 4) * 4;
      if (buf.end - tcp === thl) acks.push(((d[tcp + 8]! << 24) | (d[tcp + 9]! << 16) | (d[tcp + 10]! << 8) | d[tcp + 11]!) >>> 0);
    }
  };
  let info: { segsIn: number; dataSegsIn: number } | null = null;
  const l = b.tcp.listen({ port: 7 });
  l.onConnection = (s) => {
    s.onData = () => { for (let x = s.read(); x; x = s.read()) { h.update(x); n += x.length; } };
    s.onEnd = () => { const i = s.info(); info = { segsIn: i.segsIn, dataSegsIn: i.dataSegsIn }; done = true; s.shutdown(); };
  };
  const c = a.tcp.connect({ raddr: parseIpv4('198.18.140.2')!, rport: 7 });
  let off = 0;
  const pump = () => { while (off < size) { const k = c.write(data.subarray(off, off + 65536)); off += k; if (k === 0) return; } c.shutdown(); };
  c.onConnect = pump; c.onDrain = pump;
  assert.ok(sim.runUntil(() => done, { maxMs: 120_000 }), `transfer finished (${n} of ${size})`);
  const digest = h.digest('hex');
  assert.equal(digest, createHash('sha256').update(data).digest('hex'));
  const gro = (b as Stack).groStats;
  sim.close();
  return { n, acks, info: info!, merged: gro.merged, supers: gro.superSegments };
}

test('end to end: a 4 MiB transfer with coalescing delivers the same bytes, counts the same segments, ACKs every 2+ segments', () => {
  const off = bulk(false, 'gro-bulk');
  const on = bulk(true, 'gro-bulk');
  assert.equal(on.n, off.n);
  assert.equal(off.merged, 0);
  assert.ok(on.supers > 0 && on.merged > on.supers, `segments were coalesced (${on.merged} into ${on.supers})`);
  // TCP counts a super-segment as the segments it holds (Linux's gso_segs): the totals agree.
  assert.equal(on.info.dataSegsIn, off.info.dataSegsIn);
  // The receiver ACKs at least every second full segment in both runs, never more often with
  // coalescing; its ACK numbers only rise and end at the last byte + FIN.
  assert.ok(on.acks.length <= off.acks.length, `ACKs: ${on.acks.length} with, ${off.acks.length} without`);
  assert.ok(on.acks.length >= 10);
  for (let i = 1; i < on.acks.length; i++) assert.ok(((on.acks[i]! - on.acks[i - 1]!) | 0) >= 0, 'ACK numbers never fall');
  assert.equal(on.acks.at(-1)! - on.acks[0]!, off.acks.at(-1)! - off.acks[0]!);
});
