import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, Csum, Gso } from '../../src/base/pktbuf.js';
import { decodeVnetHeader, encodeVnetHeader, randomLocalMac, VNET_HDR_LEN } from '../../src/driver/vnet.js';

const pool = new BufferPool();

/** A TCP/IPv4 frame of `payload` bytes at buf.start with a 20-byte TCP header (data offset 5). */
function tcp4Frame(payload: number) {
  const b = pool.alloc(70000);
  const at = b.append(14 + 20 + 20 + payload);
  b.l3 = at + 14;
  b.l4 = at + 34;
  b.data[b.l4 + 12] = 5 << 4;
  return b;
}

test('encodes Csum.Partial as NEEDS_CSUM with csum_start relative to the frame', () => {
  const b = tcp4Frame(100);
  b.csum = Csum.Partial;
  b.csumStart = b.l4;
  b.csumOffset = 16;
  const off = b.start - VNET_HDR_LEN;
  assert.equal(encodeVnetHeader(b.data, off, b), true);
  assert.deepEqual([...b.data.subarray(off, b.start)], [1, 0, 0, 0, 0, 0, 34, 0, 16, 0]);
});

test('encodes a TCPv4 super-segment with gso_type 1, gso_size and hdr_len up to the TCP payload', () => {
  const b = tcp4Frame(3000);
  b.csum = Csum.Partial; b.csumStart = b.l4; b.csumOffset = 16;
  b.gso = Gso.Tcp4; b.gsoSize = 1448;
  const off = b.start - VNET_HDR_LEN;
  assert.equal(encodeVnetHeader(b.data, off, b), true);
  // flags 1, gso TCPV4, hdr_len 54, gso_size 1448 (0x05a8), csum_start 34, csum_offset 16
  assert.deepEqual([...b.data.subarray(off, b.start)], [1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0]);
});

test('encodes TCPv6 as gso_type 4 and UDP segmentation as GSO_UDP_L4 (5) with an 8-byte L4 header', () => {
  const b = tcp4Frame(3000);
  b.csum = Csum.Partial; b.csumStart = b.l4; b.csumOffset = 16;
  b.gso = Gso.Tcp6; b.gsoSize = 1000;
  const off = b.start - VNET_HDR_LEN;
  encodeVnetHeader(b.data, off, b);
  assert.equal(b.data[off + 1], 4);
  b.gso = Gso.Udp; b.csumOffset = 6;
  encodeVnetHeader(b.data, off, b);
  assert.equal(b.data[off + 1], 5);
  assert.equal(b.data[off + 2], 34 + 8);
});

test('encodes a plain frame as an all-zero header', () => {
  const b = tcp4Frame(10);
  const off = b.start - VNET_HDR_LEN;
  b.data.fill(0xee, off, b.start);
  assert.equal(encodeVnetHeader(b.data, off, b), true);
  assert.deepEqual([...b.data.subarray(off, b.start)], new Array(10).fill(0));
});

test('refuses metadata it cannot express: csum_start before the frame, gso without a size', () => {
  const b = tcp4Frame(10);
  const off = b.start - VNET_HDR_LEN;
  b.csum = Csum.Partial; b.csumStart = b.start - 1; b.csumOffset = 16;
  assert.equal(encodeVnetHeader(b.data, off, b), false);
  b.csumStart = b.l4; b.gso = Gso.Tcp4; b.gsoSize = 0;
  assert.equal(encodeVnetHeader(b.data, off, b), false);
});

test('decodes NEEDS_CSUM as Csum.Valid and keeps where the partial sum sits', () => {
  const b = pool.alloc();
  const hdr = new Uint8Array([1, 0, 0, 0, 0, 0, 34, 0, 16, 0]);
  decodeVnetHeader(hdr, 0, b, 200);
  assert.equal(b.csum, Csum.Valid);
  assert.equal(b.csumStart, 234);
  assert.equal(b.csumOffset, 16);
  assert.equal(b.gso, Gso.None);
});

test('decodes DATA_VALID as Csum.Valid and flags 0 as Csum.None (verify in software)', () => {
  const b = pool.alloc();
  decodeVnetHeader(new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0, b, 0);
  assert.equal(b.csum, Csum.Valid);
  decodeVnetHeader(new Uint8Array(10), 0, b, 0);
  assert.equal(b.csum, Csum.None);
});

test('decodes GRO segments (TCPV4 with the ECN bit, TCPV6) into gso and gsoSize', () => {
  const b = pool.alloc();
  decodeVnetHeader(new Uint8Array([1, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]), 0, b, 0);
  assert.equal(b.gso, Gso.Tcp4);
  assert.equal(b.gsoSize, 1448);
  decodeVnetHeader(new Uint8Array([1, 4, 86, 0, 0x94, 0x05, 54, 0, 16, 0]), 0, b, 0);
  assert.equal(b.gso, Gso.Tcp6);
  assert.equal(b.gsoSize, 1428);
});

test('random MACs are unicast and locally administered', () => {
  for (let i = 0; i < 32; i++) {
    const m = randomLocalMac();
    assert.equal(m.length, 6);
    assert.equal(m[0]! & 0x03, 0x02);
  }
});
