import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siphash24, siphash24Bytes, siphash24Words, siphashHi, sipKeyFromBytes } from '../../src/stack/tcp/siphash.js';

// SipHash-2-4 reference vectors (the paper's Appendix A key and the reference
// implementation's vectors.h): key = 00 01 .. 0f, message i = 00 01 .. (i-1), output as the
// 8 little-endian bytes of the 64-bit result.
const VECTORS = [
  '310e0edd47db6f72', 'fd67dc93c539f874', '5a4fa9d909806c0d', '2d7efbd796666785',
  'b7877127e09427cf', '8da699cd64557618', 'cee3fe586e46c9cb', '37d1018bf50002ab',
  '6224939a79f5f593', 'b0e4a90bdf82009e', 'f3b9dd94c5bb5d7a', 'a7ad6b22462fb3f4',
  'fbe50e86bc8f1e75', '903d84c02756ea14', 'eef27a8e90ca23f7', 'e545be4961ca29a1',
  'db9bc2577fcc2a3f', '9447be2cf5e99a69', '9cd38d96f0b3c14b', 'bd6179a71dc96dbb',
  '98eea21af25cd6be', 'c7673b2eb0cbf2d0', '883ea3e395675393', 'c8ce5ccd8c030ca8',
  '94af49f6c650adb8', 'eab8858ade92e1bc', 'f315bb5bb835d817', 'adcf6b0763612e2f',
  'a5c91da7acaa4dde', '716595876650a2a6', '28ef495c53a387ad', '42c341d8fa92d832',
  'ce7cf2722f512771', 'e37859f94623f3a7', '381205bb1ab0e012', 'ae97a10fd434e015',
  'b4a31508beff4d31', '81396229f0907902', '4d0cf49ee5d4dcca', '5c73336a76d8bf9a',
  'd0a704536ba93e0e', '925958fcd6420cad', 'a915c29bc8067318', '952b79f3bc0aa6d4',
  'f21df2e41d4535f9', '87577519048f53a9', '10a56cf5dfcd9adb', 'eb75095ccd986cd0',
  '51a9cb9ecba312e6', '96afadfc2ce666c7', '72fe52975a4364ee', '5a1645b276d592a1',
  'b274cb8ebf87870a', '6f9bb4203de7b381', 'eaecb2a30b22a87f', '9924a43cc1315724',
  'bd838d3aafbf8db7', '0b1a2a3265d51aea', '135079a3231ce660', '932b2846e4d70666',
  'e1915f5cb1eca46c', 'f325965ca16d629f', '575ff28e60381be5', '724506eb4c328a95',
];

const KEY = sipKeyFromBytes(Uint8Array.from({ length: 16 }, (_, i) => i));

function hexLe(lo: number, hi: number): string {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, lo, true);
  new DataView(b.buffer).setUint32(4, hi, true);
  return Buffer.from(b).toString('hex');
}

test('matches all 64 reference vectors for 0..63-byte messages with key 00..0f', () => {
  const msg = Uint8Array.from({ length: 64 }, (_, i) => i);
  for (let len = 0; len < 64; len++) {
    const lo = siphash24Bytes(KEY, msg, 0, len);
    assert.equal(hexLe(lo, siphashHi()), VECTORS[len], `message length ${len}`);
  }
});

test('hashes a message at a non-zero offset the same as at offset 0', () => {
  const buf = new Uint8Array(40);
  for (let i = 0; i < 15; i++) buf[7 + i] = i;
  const lo = siphash24Bytes(KEY, buf, 7, 15);
  assert.equal(hexLe(lo, siphashHi()), VECTORS[15]);
});

test('the word form hashes the little-endian bytes of its words (12 and 16 bytes)', () => {
  // Message 00..0b as words: 0x03020100, 0x07060504, 0x0b0a0908 (+ 0x0f0e0d0c for 16 bytes).
  const lo12 = siphash24(KEY, 0x03020100, 0x07060504, 0x0b0a0908);
  assert.equal(hexLe(lo12, siphashHi()), VECTORS[12]);
  const lo16 = siphash24(KEY, 0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c);
  assert.equal(hexLe(lo16, siphashHi()), VECTORS[16]);
  const words = Uint32Array.of(0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c, 0x13121110);
  for (let n = 0; n <= 5; n++) {
    const lo = siphash24Words(KEY, words, n);
    assert.equal(hexLe(lo, siphashHi()), VECTORS[4 * n], `${n} words`);
  }
});

test('returns u32 values and depends on the key', () => {
  const other = sipKeyFromBytes(Uint8Array.from({ length: 16 }, (_, i) => 15 - i));
  const a = siphash24(KEY, 1, 2, 3);
  const b = siphash24(other, 1, 2, 3);
  assert.notEqual(a, b);
  assert.ok(a >= 0 && a <= 0xffffffff && Number.isInteger(a));
});

test('long byte messages agree with the word form (16 words = 64 bytes) and grow past 71 bytes', () => {
  const bytes = Uint8Array.from({ length: 200 }, (_, i) => (i * 37 + 11) & 0xff);
  const words = new Uint32Array(16);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < 16; i++) words[i] = dv.getUint32(4 * i, true);
  const a = siphash24Words(KEY, words, 16);
  const aHi = siphashHi();
  assert.equal(siphash24Bytes(KEY, bytes, 0, 64), a);
  assert.equal(siphashHi(), aHi);
  const long1 = siphash24Bytes(KEY, bytes, 0, 200);
  const long2 = siphash24Bytes(KEY, bytes.slice(0, 200), 0, 200);
  assert.equal(long1, long2);
  assert.notEqual(siphash24Bytes(KEY, bytes, 0, 199), long1);
  // The short path still matches the reference after the scratch grew.
  const msg = Uint8Array.from({ length: 8 }, (_, i) => i);
  const lo = siphash24Bytes(KEY, msg, 0, 8);
  assert.equal(hexLe(lo, siphashHi()), VECTORS[8]);
  assert.throws(() => siphash24Words(KEY, new Uint32Array(17), 17), RangeError);
});
