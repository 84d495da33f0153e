import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { VirtualClock } from '../../src/base/time.js';
import { WireError } from '../../src/wire/errors.js';
import {
  PcapReader, readPcap, writePcapGlobalHeader, writePcapRecordHeader,
  LINKTYPE_ETHERNET, PCAP_SNAPLEN,
} from '../../src/wire/pcap.js';
import { PcapWriter, PcapDriver, capture } from '../../src/driver/pcap.js';
import { MemoryWire } from '../../src/driver/memory.js';

function frameBytes(seq: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6);
  f.set([2, 0, 0, 0, 0, seq & 0xff], 6);
  f[12] = 0x88; f[13] = 0xb5;
  for (let i = 14; i < len; i++) f[i] = (seq * 31 + i) & 0xff;
  return f;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}

test('the global header is the classic little-endian pcap header (magic a1b2c3d4, v2.4, snaplen 262144, Ethernet)', () => {
  const b = new Uint8Array(24);
  assert.equal(writePcapGlobalHeader(b, 0), 24);
  assert.deepEqual([...b], [
    0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x00, 0x04, 0x00, 1, 0, 0, 0,
  ]);
});

test('a record header carries seconds, microseconds, captured and original lengths', () => {
  const b = new Uint8Array(16);
  writePcapRecordHeader(b, 0, 1_700_000_123_456.789, 60, 64);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 1_700_000_123);
  assert.equal(v.getUint32(4, true), 456_789);
  assert.equal(v.getUint32(8, true), 60);
  assert.equal(v.getUint32(12, true), 64);
  writePcapRecordHeader(b, 0, 1999.9999, 1, 1); // rounds up into the next second
  assert.equal(v.getUint32(0, true), 2);
  assert.equal(v.getUint32(4, true), 0);
});

test('frames written through PcapWriter read back identical, with their timestamps', () => {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c), { bufferSize: 100 }); // tiny buffer: forces several flushes
  const frames = [frameBytes(1, 60), frameBytes(2, 1514), frameBytes(3, 42)];
  frames.forEach((f, i) => w.write(f, 0, f.length, 1000 + i * 0.25));
  w.close();
  const file = concat(chunks);
  const r = readPcap(file);
  assert.equal(r.error, WireError.Ok);
  assert.equal(r.linktype, LINKTYPE_ETHERNET);
  assert.equal(r.records.length, 3);
  r.records.forEach((rec, i) => {
    assert.deepEqual(rec.data, frames[i]);
    assert.equal(rec.originalLen, frames[i]!.length);
    assert.ok(Math.abs(rec.timestampMs - (1000 + i * 0.25)) < 0.001);
  });
});

test('a file cut short anywhere reads the whole records before the cut and reports Truncated, never throwing', () => {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c));
  for (let i = 0; i < 4; i++) { const f = frameBytes(i, 100); w.write(f, 0, f.length, i); }
  w.close();
  const file = concat(chunks);
  assert.equal(file.length, 24 + 4 * 116);
  for (let cut = 0; cut < file.length; cut++) {
    const r = new PcapReader();
    const e = r.wrap(file, 0, cut);
    if (cut < 24) { assert.equal(e, WireError.Truncated); assert.equal(r.next(), false); continue; }
    let n = 0;
    while (r.next()) n++;
    const whole = Math.floor((cut - 24) / 116);
    assert.equal(n, whole, `cut at ${cut}`);
    assert.equal(r.error, (cut - 24) % 116 === 0 ? WireError.Ok : WireError.Truncated, `cut at ${cut}`);
  }
});

test('garbage and absurd lengths are errors, not exceptions', () => {
  const r = new PcapReader();
  assert.equal(r.wrap(new Uint8Array(40).fill(7)), WireError.Malformed);
  const b = new Uint8Array(24 + 16 + 8);
  writePcapGlobalHeader(b, 0);
  writePcapRecordHeader(b, 24, 0, 0x7fffffff, 0x7fffffff);
  assert.equal(r.wrap(b), WireError.Ok);
  assert.equal(r.next(), false);
  assert.equal(r.error, WireError.BadLength);
});

test('the reader accepts big-endian nanosecond files', () => {
  const b = new Uint8Array(24 + 16 + 4);
  const v = new DataView(b.buffer);
  v.setUint32(0, 0xa1b23c4d); v.setUint16(4, 2); v.setUint16(6, 4); v.setUint32(16, 65535); v.setUint32(20, 1);
  v.setUint32(24, 10); v.setUint32(28, 500_000_000); v.setUint32(32, 4); v.setUint32(36, 4);
  b.set([1, 2, 3, 4], 40);
  const r = new PcapReader();
  assert.equal(r.wrap(b), WireError.Ok);
  assert.equal(r.next(), true);
  assert.equal(r.timestampMs, 10_500);
  assert.deepEqual([...b.subarray(r.dataOffset, r.dataOffset + r.capturedLen)], [1, 2, 3, 4]);
});

test('capture() records every frame a driver transmits and receives, at the clock\'s time', () => {
  const clock = new VirtualClock(1000);
  const wire = new MemoryWire({ clock, latencyMs: 2 });
  const a = wire.createPort(), b = wire.createPort();
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c));
  const ca = capture(a, w, clock);
  const pool = new BufferPool();
  const sent = frameBytes(1, 64);
  const f = pool.alloc(); f.appendBytes(sent);
  ca.transmit(f);
  clock.set(1001);
  const reply = pool.alloc(); reply.appendBytes(frameBytes(2, 80));
  b.transmit(reply);
  clock.set(1003);
  const out: PacketBuffer[] = [];
  assert.equal(ca.rxBurst(out, 8), 1);
  out[0]!.release();
  w.close();
  const r = readPcap(concat(chunks));
  assert.deepEqual(r.records.map((x) => x.timestampMs), [1000, 1003]);
  assert.deepEqual(r.records[0]!.data, sent);
  assert.deepEqual(r.records[1]!.data, frameBytes(2, 80));
});

test('PcapDriver replays a file as received frames (paced by the clock) and writes transmitted frames', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tstack-pcap-'));
  try {
    const inPath = join(dir, 'in.pcap'), outPath = join(dir, 'out.pcap');
    const w = new PcapWriter(inPath);
    for (let i = 0; i < 3; i++) { const f = frameBytes(i, 60 + i); w.write(f, 0, f.length, 5000 + i * 10); }
    w.write(new Uint8Array(5), 0, 5, 5030); // a runt: skipped, counted as rxDropped
    w.close();
    const clock = new VirtualClock(100);
    const d = new PcapDriver({ input: inPath, output: outPath, clock });
    const out: PacketBuffer[] = [];
    assert.equal(d.rxBurst(out, 8), 1, 'first record at once');
    assert.deepEqual(out[0]!.bytes(), frameBytes(0, 60));
    out[0]!.release();
    assert.equal(d.nextEventTime(), 110);
    clock.set(120);
    assert.equal(d.rxBurst(out, 8), 2);
    assert.deepEqual(out[1]!.bytes(), frameBytes(2, 62));
    out[0]!.release(); out[1]!.release();
    assert.equal(d.remaining, false);
    assert.equal(d.stats().rxDropped, 1);
    const t = d.pool.alloc(); t.appendBytes(frameBytes(9, 70));
    d.transmit(t);
    d.close();
    const r = readPcap(new Uint8Array(readFileSync(outPath)));
    assert.equal(r.records.length, 1);
    assert.deepEqual(r.records[0]!.data, frameBytes(9, 70));
    assert.equal(r.records[0]!.timestampMs, 120);
    assert.equal(d.pool.stats().inUse, 0);
    assert.equal(readPcap(readFileSync(inPath)).records.length, 4);
    assert.equal(PCAP_SNAPLEN, 262144);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PcapDriver reports a truncated input through inputError after replaying what was whole', () => {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c));
  for (let i = 0; i < 2; i++) { const f = frameBytes(i, 60); w.write(f, 0, f.length, i); }
  w.close();
  const file = concat(chunks);
  const d = new PcapDriver({ input: file.subarray(0, file.length - 10) });
  const out: PacketBuffer[] = [];
  assert.equal(d.rxBurst(out, 8), 1);
  out[0]!.release();
  assert.equal(d.inputError, WireError.Truncated);
  d.close();
});
