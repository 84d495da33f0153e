// IGMPv3 host side (RFC 3376) and multicast UDP delivery, on two stacks back to back and a
// virtual clock: reports on join and leave with their retransmission, answers to queries,
// v2 querier compatibility, source filters, the MAC filter, multicast loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair } from '../helpers/stack-pair.js';
import { parseIpv4, readIpv4 } from '../../src/wire/addr.js';
import { internetChecksum } from '../../src/wire/checksum.js';
import { IgmpRecord, IgmpType, IgmpView, writeIpv4RaHeader, writeV3Query, finishIgmp } from '../../src/wire/igmp.js';
import { WireError } from '../../src/wire/errors.js';
import type { Stack } from '../../src/stack/stack.js';
import type { PipeDevice } from '../helpers/stack-pair.js';

const G = parseIpv4('239.1.2.3')!;
const A = parseIpv4('198.18.0.1')!;
const A2 = parseIpv4('198.18.0.3')!;

interface Report { at: number; dst: number; ttl: number; ra: boolean; type: number; records: { type: number; group: number; sources: number[] }[]; group: number; }

/** Records the IGMP messages `dev` transmits. */
function captureIgmp(dev: PipeDevice, clock: { now(): number }): Report[] {
  const out: Report[] = [];
  const orig = dev.transmit.bind(dev);
  dev.transmit = (buf) => {
    const b = buf.data, o = buf.start;
    if (b[o + 12] === 0x08 && b[o + 13] === 0 && b[o + 14 + 9] === 2) {
      const ip = o + 14, ihl = (b[ip]! & 15) * 4, ig = ip + ihl;
      const total = (b[ip + 2]! << 8) | b[ip + 3]!;
      assert.equal(internetChecksum(b, ig, total - ihl), 0, 'IGMP checksum');
      const r: Report = { at: clock.now(), dst: readIpv4(b, ip + 16), ttl: b[ip + 8]!, ra: ihl === 24 && b[ip + 20] === 0x94, type: b[ig]!, records: [], group: readIpv4(b, ig + 4) };
      if (r.type === IgmpType.V3Report) {
        let p = ig + 8;
        for (let n = (b[ig + 6]! << 8) | b[ig + 7]!; n > 0; n--) {
          const ns = (b[p + 2]! << 8) | b[p + 3]!;
          const sources = [];
          for (let i = 0; i < ns; i++) sources.push(readIpv4(b, p + 8 + 4 * i));
          r.records.push({ type: b[p]!, group: readIpv4(b, p + 4), sources });
          p += 8 + 4 * ns;
        }
      }
      out.push(r);
    }
    orig(buf);
  };
  return out;
}

/** Delivers an IGMP message (as from router 198.18.0.1) to stack `st` on interface 1. */
function injectIgmp(st: Stack, dst: number, igmp: (b: Uint8Array, o: number) => number): void {
  const buf = st.pool.alloc();
  const o = buf.append(14 + 24 + 64);
  const b = buf.data;
  b.set([0x01, 0x00, 0x5e, (dst >>> 16) & 0x7f, (dst >>> 8) & 0xff, dst & 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x00], o);
  const len = igmp(b, o + 14 + 24);
  writeIpv4RaHeader(b, o + 14, 24 + len, 1, A, dst);
  buf.end = o + 14 + 24 + len;
  st.input(1, buf);
}

function setup() {
  const p = pair();
  const reports = captureIgmp(p.db, p.clock);
  return { ...p, reports };
}

test('IGMP codec: a v3 query round-trips; the float Max Resp Code and a bad checksum', () => {
  const b = new Uint8Array(64);
  const n = writeV3Query(b, 0, 0x8a, G, [A, A2], 3, 60);
  const v = new IgmpView();
  assert.equal(v.wrap(b, 0, n), WireError.Ok);
  assert.equal(v.queryVersion, 3);
  assert.equal(v.group, G);
  assert.equal(v.sourceCount, 2);
  assert.equal(v.source(1), A2);
  assert.equal(v.qrv, 3);
  assert.equal(v.qqi, 60);
  // 0x8a: exp 0, mant 0xa → (0x1a << 3) = 208 tenths.
  assert.equal(v.maxResponseMs, 20800);
  b[5] ^= 1;
  assert.equal(v.wrap(b, 0, n), WireError.BadChecksum);
  const q2 = new Uint8Array(8); q2[0] = IgmpType.Query; q2[1] = 100; finishIgmp(q2, 0, 8);
  assert.equal(v.wrap(q2, 0, 8), WireError.Ok);
  assert.equal(v.queryVersion, 2);
  assert.equal(v.maxResponseMs, 10000);
});

test('a join sends TO_EX({}) to 224.0.0.22 with TTL 1 and Router Alert, twice; a leave TO_IN({}), twice', () => {
  const { a, b, run, reports } = setup();
  run(10);
  const s = b.udp.open();
  s.bind(0, 5000);
  s.addMembership(G);
  run(0);
  assert.equal(reports.length, 1);
  const r = reports[0]!;
  assert.deepEqual([r.dst, r.ttl, r.ra, r.type], [parseIpv4('224.0.0.22'), 1, true, IgmpType.V3Report]);
  assert.deepEqual(r.records, [{ type: IgmpRecord.ToExclude, group: G, sources: [] }]);
  run(3000);
  assert.equal(reports.length, 2, 'one retransmission (Robustness Variable 2)');
  assert.ok(reports[1]!.at - reports[0]!.at <= 1001, 'within the Unsolicited Report Interval');
  assert.deepEqual(b.ipv4.igmp.groups(1), [{ group: G, mode: 'exclude', sources: [] }]);
  // A datagram to the group arrives; then the leave.
  const got: number[] = [];
  s.onMessage = (d) => got.push(d[0]!);
  const tx = a.udp.open();
  tx.send(Uint8Array.of(1), G, 5000);
  run(0);
  assert.deepEqual(got, [1]);
  s.dropMembership(G);
  run(3000);
  assert.equal(reports.length, 4);
  assert.deepEqual(reports[2]!.records, [{ type: IgmpRecord.ToInclude, group: G, sources: [] }]);
  assert.deepEqual(reports[3]!.records, reports[2]!.records);
  assert.deepEqual(b.ipv4.igmp.groups(1), []);
  const before = b.drops['eth_mcast_not_joined'] ?? 0;
  tx.send(Uint8Array.of(2), G, 5000);
  run(0);
  assert.deepEqual(got, [1], 'nothing after the leave');
  assert.equal(b.drops['eth_mcast_not_joined'], before + 1, 'dropped by the MAC filter, counted');
});

test('two reuseAddr sockets joined to a group both receive; a socket not joined does not', () => {
  const { a, b, run } = setup();
  const got: string[] = [];
  const mk = (name: string, join: boolean) => {
    const s = b.udp.open(); s.reuseAddr = true; s.bind(0, 6000);
    if (join) s.addMembership(G);
    s.onMessage = () => got.push(name);
    return s;
  };
  mk('x', true); mk('y', true); mk('z', false);
  run(0);
  a.udp.open().send(Uint8Array.of(9), G, 6000);
  run(0);
  assert.deepEqual(got.sort(), ['x', 'y']);
});

test('a source-specific join reports ALLOW(S) and receives only from S; BLOCK on drop', () => {
  const { a, b, run, reports } = setup();
  a.addAddress(1, '198.18.0.3/32');
  run(10);
  const s = b.udp.open();
  s.bind(0, 5001);
  s.addSourceMembership(G, A);
  run(0);
  assert.deepEqual(reports.at(-1)!.records, [{ type: IgmpRecord.AllowNew, group: G, sources: [A] }]);
  assert.throws(() => s.addMembership(G), /EADDRINUSE/);
  run(3000); // the ALLOW's retransmission is over
  const got: number[] = [];
  s.onMessage = (_d, src) => got.push(src);
  const from = (addr: number) => { const t = a.udp.open(); t.bind(addr, 0); t.send(Uint8Array.of(1), G, 5001); t.close(); };
  from(A); from(A2);
  run(0);
  assert.deepEqual(got, [A]);
  assert.ok((b.drops['ip_mcast_not_member'] ?? 0) >= 1, 'the other source is filtered at IP');
  s.addSourceMembership(G, A2);
  run(0);
  assert.deepEqual(reports.at(-1)!.records, [{ type: IgmpRecord.AllowNew, group: G, sources: [A2] }]);
  run(3000);
  s.dropSourceMembership(G, A);
  run(0);
  assert.deepEqual(reports.at(-1)!.records, [{ type: IgmpRecord.BlockOld, group: G, sources: [A] }]);
  run(3000);
  got.length = 0;
  from(A); from(A2);
  run(0);
  assert.deepEqual(got, [A2]);
  // An any-source join beside it on another socket: EXCLUDE({}) wins the merge (§3.2).
  const t = b.udp.open(); t.reuseAddr = true; t.bind(0, 5002); t.addMembership(G);
  run(0);
  assert.deepEqual(reports.at(-1)!.records, [{ type: IgmpRecord.ToExclude, group: G, sources: [] }]);
  assert.deepEqual(b.ipv4.igmp.groups(1), [{ group: G, mode: 'exclude', sources: [] }]);
});

test('queries: a general query is answered with IS_EX within Max Resp Time; a group-and-source query with IS_IN(Q - A)', () => {
  const { b, run, reports, clock } = setup();
  const s = b.udp.open(); s.bind(0, 5000); s.addMembership(G);
  const G2 = parseIpv4('239.9.9.9')!;
  s.addSourceMembership(G2, A);
  run(5000);
  const n = reports.length;
  const t0 = clock.now();
  injectIgmp(b, parseIpv4('224.0.0.1')!, (buf, o) => writeV3Query(buf, o, 20, 0, []));
  run(3000);
  assert.equal(reports.length, n + 1);
  const r = reports[n]!;
  assert.ok(r.at - t0 <= 2000, `answered within 2 s (${r.at - t0} ms)`);
  assert.deepEqual(r.records.sort((x, y) => x.group - y.group), [
    { type: IgmpRecord.IsExclude, group: G, sources: [] },
    { type: IgmpRecord.IsInclude, group: G2, sources: [A] },
  ].sort((x, y) => x.group - y.group));
  injectIgmp(b, G, (buf, o) => writeV3Query(buf, o, 10, G, [A, A2]));
  run(2000);
  assert.deepEqual(reports[n + 1]!.records, [{ type: IgmpRecord.IsInclude, group: G, sources: [A, A2] }]);
  injectIgmp(b, G2, (buf, o) => writeV3Query(buf, o, 10, G2, [A, A2]));
  run(2000);
  assert.deepEqual(reports[n + 2]!.records, [{ type: IgmpRecord.IsInclude, group: G2, sources: [A] }]);
  // A query for a group we are not in goes unanswered.
  injectIgmp(b, parseIpv4('239.7.7.7')!, (buf, o) => writeV3Query(buf, o, 10, parseIpv4('239.7.7.7')!, []));
  run(2000);
  assert.equal(reports.length, n + 3);
});

test('an IGMPv2 querier switches the host to v2: v2 reports to the group and a Leave to 224.0.0.2', () => {
  const { b, run, reports } = setup();
  injectIgmp(b, parseIpv4('224.0.0.1')!, (buf, o) => { buf.set([IgmpType.Query, 100, 0, 0, 0, 0, 0, 0], o); finishIgmp(buf, o, 8); return 8; });
  run(0);
  assert.equal(b.ipv4.igmp.version(1), 2);
  const s = b.udp.open(); s.bind(0, 5000); s.addMembership(G);
  run(0);
  const r = reports.at(-1)!;
  assert.deepEqual([r.type, r.dst, r.group], [IgmpType.V2Report, G, G]);
  s.dropMembership(G);
  run(0);
  const l = reports.at(-1)!;
  assert.deepEqual([l.type, l.dst, l.group], [IgmpType.V2Leave, parseIpv4('224.0.0.2'), G]);
});

test('multicast loopback: a member socket on the sending stack gets a copy unless loopback is off; TTL from setMulticastTTL', () => {
  const { b, da, run } = setup();
  const rx = b.udp.open(); rx.reuseAddr = true; rx.bind(0, 7000); rx.addMembership(G);
  const got: number[] = [];
  rx.onMessage = (d) => got.push(d[0]!);
  let ttl = -1;
  const orig = da.inbox.push.bind(da.inbox);
  da.inbox.push = (...bufs) => { for (const x of bufs) if (x.data[x.start + 23] === 17) ttl = x.data[x.start + 22]!; return orig(...bufs); };
  const tx = b.udp.open();
  tx.mcastTtl = 7;
  tx.send(Uint8Array.of(1), G, 7000);
  run(0);
  assert.deepEqual(got, [1]);
  assert.equal(ttl, 7);
  tx.mcastLoop = false;
  tx.send(Uint8Array.of(2), G, 7000);
  run(0);
  assert.deepEqual(got, [1]);
  // TTL 0 stays on the host (RFC 1112 §6.1): looped back, never on the wire.
  ttl = -1;
  tx.mcastLoop = true; tx.mcastTtl = 0;
  tx.send(Uint8Array.of(3), G, 7000);
  run(0);
  assert.deepEqual(got, [1, 3]);
  assert.equal(ttl, -1, 'nothing left on the wire');
});
