import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import {
  TcpFlag, TcpHeader, TcpOptions, parseTcpOptions, tcpOptionsLength, writeTcpHeader, writeTcpOptions, type TcpOptionsSpec,
} from '../../src/wire/tcp.js';

function spec(p: Partial<TcpOptionsSpec>): TcpOptionsSpec {
  return { mss: -1, wscale: -1, sackPermitted: false, timestamps: false, tsVal: 0, tsEcr: 0, sackCount: 0, sackBlocks: new Uint32Array(8), ...p };
}

test('header round trip: every field written is read back', () => {
  const b = new Uint8Array(64);
  writeTcpHeader(b, 4, 49152, 80, 0xdeadbeef, 0x01020304, TcpFlag.SYN | TcpFlag.ACK, 65535, 24, 7);
  const h = new TcpHeader();
  assert.equal(h.wrap(b, 4, 30), WireError.Ok);
  assert.equal(h.srcPort, 49152);
  assert.equal(h.dstPort, 80);
  assert.equal(h.seq, 0xdeadbeef);
  assert.equal(h.ack, 0x01020304);
  assert.equal(h.headerLength, 24);
  assert.equal(h.flags, TcpFlag.SYN | TcpFlag.ACK);
  assert.equal(h.window, 65535);
  assert.equal(h.checksum, 0);
  assert.equal(h.urgentPointer, 7);
  assert.equal(h.payloadOffset, 28);
  assert.equal(h.payloadLength, 6);
  h.checksum = 0xabcd; h.seq = 1; h.window = 3; h.srcPort = 1; h.dstPort = 2; h.ack = 0xffffffff;
  assert.deepEqual([...b.subarray(4, 24)], [0, 1, 0, 2, 0, 0, 0, 1, 255, 255, 255, 255, 0x60, 0x12, 0, 3, 0xab, 0xcd, 0, 7]);
});

test('every truncation of a header is rejected without throwing', () => {
  const b = new Uint8Array(40);
  writeTcpHeader(b, 0, 1, 2, 3, 4, TcpFlag.ACK, 5, 32);
  const h = new TcpHeader();
  for (let len = 0; len < 32; len++) assert.equal(h.wrap(b, 0, len), WireError.Truncated, `len ${len}`);
  assert.equal(h.wrap(b, 0, 32), WireError.Ok);
  assert.equal(h.wrap(b, 30, 20), WireError.Truncated, 'past the end of the bytes');
});

test('data offset below 5 words is a bad header length', () => {
  const b = new Uint8Array(20);
  writeTcpHeader(b, 0, 1, 2, 3, 4, 0, 0);
  b[12] = 4 << 4;
  assert.equal(new TcpHeader().wrap(b, 0, 20), WireError.BadHeaderLength);
});

test('SYN options round trip with the usual layout (MSS, SACK-OK+TS, NOP WS)', () => {
  const b = new Uint8Array(40);
  const s = spec({ mss: 1460, wscale: 7, sackPermitted: true, timestamps: true, tsVal: 100, tsEcr: 0 });
  const n = writeTcpOptions(b, 0, s);
  assert.equal(n, 20);
  assert.equal(tcpOptionsLength(s), 20);
  assert.deepEqual([...b.subarray(0, 20)], [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0, 1, 3, 3, 7]);
  const o = new TcpOptions();
  assert.equal(parseTcpOptions(b, 0, n, o), WireError.Ok);
  assert.equal(o.mss, 1460); assert.equal(o.wscale, 7); assert.equal(o.sackPermitted, true);
  assert.equal(o.timestamps, true); assert.equal(o.tsVal, 100); assert.equal(o.tsEcr, 0);
});

test('SACK blocks: at most 3 fit beside timestamps, 4 without; padded to 4 bytes', () => {
  const blocks = new Uint32Array([10, 20, 30, 40, 50, 60, 70, 80]);
  const b = new Uint8Array(40);
  const o = new TcpOptions();
  let n = writeTcpOptions(b, 0, spec({ timestamps: true, tsVal: 1, tsEcr: 2, sackCount: 4, sackBlocks: blocks }));
  assert.equal(n, 40);
  assert.equal(parseTcpOptions(b, 0, n, o), WireError.Ok);
  assert.equal(o.sackCount, 3);
  assert.deepEqual([...o.sackBlocks.subarray(0, 6)], [10, 20, 30, 40, 50, 60]);
  n = writeTcpOptions(b, 0, spec({ sackCount: 4, sackBlocks: blocks }));
  assert.equal(n, 36);
  assert.equal(parseTcpOptions(b, 0, n, o), WireError.Ok);
  assert.equal(o.sackCount, 4);
  assert.equal(o.timestamps, false);
  assert.deepEqual([...o.sackBlocks], [10, 20, 30, 40, 50, 60, 70, 80]);
  n = writeTcpOptions(b, 0, spec({ sackPermitted: true }));
  assert.deepEqual([...b.subarray(0, n)], [1, 1, 4, 2]);
});

test('option walker: unknown options skipped by length, EOL stops, NOPs ignored', () => {
  const o = new TcpOptions();
  const b = new Uint8Array([1, 30, 4, 0xaa, 0xbb, 2, 4, 0x05, 0xb4, 0, 99, 99]);
  assert.equal(parseTcpOptions(b, 0, b.length, o), WireError.Ok);
  assert.equal(o.mss, 1460);
  assert.equal(o.wscale, -1);
});

test('option walker: malformed lengths are errors, never exceptions', () => {
  const o = new TcpOptions();
  const bad: number[][] = [
    [30, 0], // length 0
    [30, 1], // length 1
    [30, 5, 0], // past the end
    [2], // kind without length
    [2, 3, 0, 0], // MSS with wrong length
    [3, 4, 7, 0], // WS with wrong length
    [8, 9, 0, 0, 0, 0, 0, 0, 0], // TS with wrong length
    [5, 9, 0, 0, 0, 0, 0, 0, 0], // SACK not a multiple of 8
    [5, 2], // SACK with no block
    [4, 3, 0], // SACK-permitted wrong length
  ];
  for (const bytes of bad) {
    assert.equal(parseTcpOptions(new Uint8Array(bytes), 0, bytes.length, o), WireError.BadOption, JSON.stringify(bytes));
  }
});

test('window scale above 14 is read as 14 (RFC 7323 §2.3)', () => {
  const o = new TcpOptions();
  assert.equal(parseTcpOptions(new Uint8Array([3, 3, 15, 0]), 0, 4, o), WireError.Ok);
  assert.equal(o.wscale, 14);
});

test('the walker never reads outside the given range', () => {
  // Random bytes: the walker either succeeds or returns BadOption, and never throws.
  let x = 12345;
  const o = new TcpOptions();
  for (let r = 0; r < 2000; r++) {
    const len = r % 41;
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = (x >>> 16) % 12; }
    const e = parseTcpOptions(b, 0, len, o);
    assert.ok(e === WireError.Ok || e === WireError.BadOption);
  }
});
