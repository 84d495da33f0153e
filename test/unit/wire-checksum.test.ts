import { test } from 'node:test';
import assert from 'node:assert/strict';
import { finish, fold, incrementalUpdate, internetChecksum, pseudoHeaderV4, pseudoHeaderV6, sum16 } from '../../src/wire/checksum.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/addr.js';
import { Prng } from '../../src/base/prng.js';
import { FRAMES } from '../fixtures/frames.js';
import { hexToBytes } from '../helpers/wire-dissect.js';

test('RFC 1071 §3 example: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded), checksum 220d', () => {
  const b = new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assert.equal(fold(sum16(b, 0, 8)), 0xddf2);
  assert.equal(internetChecksum(b, 0, 8), 0x220d);
});

test('an odd trailing byte is padded with zero on the right', () => {
  assert.equal(sum16(new Uint8Array([0x12, 0x34, 0x56]), 0, 3), 0x1234 + 0x5600);
  // Offsets and lengths select the range exactly, for every alignment the unrolled loop handles.
  const rng = new Prng('checksum-ranges');
  const b = new Uint8Array(64).map(() => rng.int(0, 255));
  for (let off = 0; off < 5; off++) {
    for (let len = 0; len <= 40; len++) {
      let s = 0;
      for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
      assert.equal(sum16(b, off, len), s, `off ${off} len ${len}`);
    }
  }
});

test('a range that includes its correct checksum verifies to 0; fold/finish are ones\' complement', () => {
  assert.equal(fold(0x1ffff), 1, 'end-around carry');
  assert.equal(fold(0xffff), 0xffff);
  assert.equal(finish(0xffff), 0);
  assert.equal(finish(0), 0xffff);
  const b = hexToBytes(FRAMES.find((f) => f.label === 'icmp4-echo-request')!.hex);
  assert.equal(internetChecksum(b, 14, 20), 0, 'IPv4 header');
  assert.equal(internetChecksum(b, 34, b.length - 34), 0, 'ICMP message');
});

test('RFC 1624 incremental update equals a full recomputation, for random headers and any field change', () => {
  const rng = new Prng('checksum-incremental');
  for (let i = 0; i < 2000; i++) {
    const h = new Uint8Array(20).map(() => rng.int(0, 255));
    // Sums near zero exercise the 0x0000/0xffff corner (RFC 1624 §3). Real headers are never all
    // zero (IPv4's version nibble; the pseudo-header's protocol), and for all-zero data eqn. 3
    // yields 0x0000 where recomputation gives 0xffff, so the first byte stays non-zero.
    if (i % 7 === 0) h.fill(0, 1, 18);
    h[0] = 0x45;
    h[10] = 0; h[11] = 0;
    const c = internetChecksum(h, 0, 20);
    h[10] = c >> 8; h[11] = c & 0xff;
    const at = 2 * rng.int(1, 9);
    if (at === 10) continue;
    const oldVal = (h[at]! << 8) | h[at + 1]!;
    const newVal = i % 5 === 0 ? 0 : rng.int(0, 0xffff);
    h[at] = newVal >> 8; h[at + 1] = newVal & 0xff;
    const inc = incrementalUpdate(c, oldVal, newVal);
    h[10] = inc >> 8; h[11] = inc & 0xff;
    assert.equal(internetChecksum(h, 0, 20), 0, `case ${i}: still verifies`);
  }
});

test('pseudo-headers: the captured UDP/IPv4 and UDP/IPv6 datagrams verify with them', () => {
  const u4 = hexToBytes(FRAMES.find((f) => f.label === 'udp4')!.hex);
  const len4 = (u4[38]! << 8) | u4[39]!;
  assert.equal(internetChecksum(u4, 34, len4, pseudoHeaderV4(parseIpv4('198.18.50.1')!, parseIpv4('198.18.50.2')!, 17, len4)), 0);
  assert.notEqual(internetChecksum(u4, 34, len4, pseudoHeaderV4(parseIpv4('198.18.50.1')!, parseIpv4('198.18.50.3')!, 17, len4)), 0);
  const u6 = hexToBytes(FRAMES.find((f) => f.label === 'udp6')!.hex);
  const len6 = (u6[58]! << 8) | u6[59]!;
  assert.equal(internetChecksum(u6, 54, len6, pseudoHeaderV6(u6, 22, u6, 38, 17, len6)), 0);
  // The v6 pseudo-header with the documented fields equals the sum of its 40 bytes laid out.
  const a = parseIpv6('2001:db8::1')!, z = parseIpv6('2001:db8::2')!;
  const ph = new Uint8Array(40);
  ph.set(a, 0); ph.set(z, 16); ph[34] = 0x12; ph[35] = 0x34; ph[39] = 58;
  assert.equal(fold(pseudoHeaderV6(a, 0, z, 0, 58, 0x1234)), fold(sum16(ph, 0, 40)));
});
