import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SackScoreboard } from '../../src/stack/tcp/sack.js';

const MSS = 1000;

function blocks(...pairs: number[]): Uint32Array {
  return Uint32Array.from(pairs.map((x) => x >>> 0));
}

function ranges(sb: SackScoreboard): [number, number][] {
  const r: [number, number][] = [];
  for (let i = 0; i < sb.count; i++) r.push([sb.rangeStart(i), sb.rangeEnd(i)]);
  return r;
}

test('merges overlapping and adjacent SACK blocks and reports newly SACKed bytes', () => {
  const sb = new SackScoreboard();
  assert.equal(sb.update(1000, 11000, blocks(3000, 4000, 5000, 6000), 2), 2000);
  assert.deepEqual(ranges(sb), [[3000, 4000], [5000, 6000]]);
  assert.equal(sb.update(1000, 11000, blocks(4000, 5000), 1), 1000); // fills the gap exactly
  assert.deepEqual(ranges(sb), [[3000, 6000]]);
  assert.equal(sb.update(1000, 11000, blocks(2500, 3500, 3000, 6000), 2), 500);
  assert.deepEqual(ranges(sb), [[2500, 6000]]);
  assert.equal(sb.update(1000, 11000, blocks(8000, 9000, 1500, 2500, 7000, 8000), 3), 3000);
  assert.deepEqual(ranges(sb), [[1500, 6000], [7000, 9000]]);
  assert.equal(sb.sackedBytes, 6500);
  assert.equal(sb.highestSacked, 9000);
});

test('a block spanning several ranges swallows them', () => {
  const sb = new SackScoreboard();
  sb.update(0, 20000, blocks(1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000), 4);
  assert.equal(sb.count, 4);
  assert.equal(sb.update(0, 20000, blocks(1500, 7500), 1), 3000);
  assert.deepEqual(ranges(sb), [[1000, 8000]]);
  assert.equal(sb.sackedBytes, 7000);
});

test('drops and trims ranges as SND.UNA advances', () => {
  const sb = new SackScoreboard();
  sb.update(1000, 11000, blocks(2000, 4000, 6000, 7000), 2);
  assert.equal(sb.update(3000, 11000, blocks(), 0), 0);
  assert.deepEqual(ranges(sb), [[3000, 4000], [6000, 7000]]);
  assert.equal(sb.sackedBytes, 2000);
  sb.update(6500, 11000, blocks(), 0);
  assert.deepEqual(ranges(sb), [[6500, 7000]]);
  sb.update(7000, 11000, blocks(), 0);
  assert.equal(sb.count, 0);
  assert.equal(sb.sackedBytes, 0);
  assert.equal(sb.highestSacked, 7000);
});

test('ignores D-SACK and stale blocks below SND.UNA, blocks beyond SND.MAX and empty ones', () => {
  const sb = new SackScoreboard();
  const n = sb.update(5000, 10000, blocks(1000, 2000, 4000, 5000, 9000, 10001, 7000, 7000, 8000, 7000), 5);
  assert.equal(n, 0);
  assert.equal(sb.count, 0);
  // A block straddling SND.UNA counts only above it.
  assert.equal(sb.update(5000, 10000, blocks(4000, 6000), 1), 1000);
  assert.deepEqual(ranges(sb), [[5000, 6000]]);
});

test('works across the 2^32 sequence wrap', () => {
  const sb = new SackScoreboard();
  const una = 0xfffff000;
  sb.update(una, 0x3000, blocks(0xfffff800, 0x800, 0x1000, 0x1800), 2);
  assert.deepEqual(ranges(sb), [[0xfffff800, 0x800], [0x1000, 0x1800]]);
  assert.equal(sb.sackedBytes, 0x1000 + 0x800);
  assert.equal(sb.isSacked(0xffffffff), true);
  assert.equal(sb.isSacked(0x0), true);
  assert.equal(sb.isSacked(0x800), false);
  assert.equal(sb.highestSacked, 0x1800);
  sb.update(0x0, 0x3000, blocks(), 0);
  assert.deepEqual(ranges(sb), [[0x0, 0x800], [0x1000, 0x1800]]);
});

test('stays within capacity, keeping the lowest ranges', () => {
  const sb = new SackScoreboard(4);
  for (let i = 1; i <= 4; i++) sb.update(0, 100_000, blocks(i * 2000, i * 2000 + 1000), 1);
  assert.equal(sb.count, 4);
  assert.equal(sb.update(0, 100_000, blocks(20_000, 21_000), 1), 0); // above all: not kept
  assert.equal(sb.count, 4);
  sb.update(0, 100_000, blocks(500, 600), 1); // below: kept, highest range dropped
  assert.deepEqual(ranges(sb), [[500, 600], [2000, 3000], [4000, 5000], [6000, 7000]]);
  assert.equal(sb.sackedBytes, 3100);
});

test('IsLost: three discontiguous SACKed ranges or more than 2*SMSS SACKed above (RFC 6675)', () => {
  const sb = new SackScoreboard();
  sb.update(1000, 11000, blocks(2000, 3000), 1);
  assert.equal(sb.isLost(1000, MSS), false);
  sb.update(1000, 11000, blocks(4000, 5000), 1);
  assert.equal(sb.isLost(1000, MSS), false); // 2 ranges, exactly 2*SMSS bytes
  sb.update(1000, 11000, blocks(6000, 7000), 1);
  assert.equal(sb.isLost(1000, MSS), true); // 3 ranges above
  assert.equal(sb.isLost(3000, MSS), false); // only 2 ranges above 3000
  sb.reset();
  sb.update(1000, 11000, blocks(2000, 4000), 1);
  assert.equal(sb.isLost(1000, MSS), false); // 2000 bytes is not more than 2*SMSS
  sb.update(1000, 11000, blocks(4000, 4001), 1);
  assert.equal(sb.isLost(1000, MSS), true); // 2001 bytes
});

test('NextSeg rule 1 retransmits the first lost hole, one SMSS at most', () => {
  const sb = new SackScoreboard();
  const out = new Int32Array(2);
  // Segments of 1000 bytes from 1000 to 10999 sent; the first is lost, the next three SACKed.
  sb.update(1000, 11000, blocks(2000, 5000), 1);
  assert.equal(sb.nextSeg(1000, 11000, 1000, MSS, out), 1000);
  assert.deepEqual([...out], [1000, 1]);
  // A lost hole of 500 bytes is sent as 500 bytes.
  sb.reset();
  sb.update(1000, 11000, blocks(1500, 5000), 1);
  assert.equal(sb.nextSeg(1000, 11000, 1000, MSS, out), 1000);
  assert.deepEqual([...out], [500, 1]);
});

test('NextSeg skips what was already retransmitted (HighRxt) and SACKed data', () => {
  const sb = new SackScoreboard();
  const out = new Int32Array(2);
  // Lost: 1000-1999 and 3000-4999; SACKed: 2000-2999 and 5000-7999.
  sb.update(1000, 11000, blocks(2000, 3000, 5000, 8000), 2);
  assert.equal(sb.nextSeg(1000, 11000, 2000, MSS, out), 3000);
  assert.deepEqual([...out], [1000, 1]);
  assert.equal(sb.nextSeg(1000, 11000, 4000, MSS, out), 4000);
  // Everything below the highest SACK retransmitted: rule 2 (new data) if allowed, else none.
  assert.equal(sb.nextSeg(1000, 11000, 5000, MSS, out), -1);
  assert.equal(sb.nextSeg(1000, 11000, 5000, MSS, out, 300), 11000);
  assert.deepEqual([...out], [300, 2]);
});

test('NextSeg prefers new data (rule 2) over a hole not yet lost, then falls back to rule 3', () => {
  const sb = new SackScoreboard();
  const out = new Int32Array(2);
  sb.update(1000, 11000, blocks(3000, 4000), 1); // one SACKed segment: nothing is lost yet
  assert.equal(sb.nextSeg(1000, 11000, 1000, MSS, out, 5000), 11000);
  assert.deepEqual([...out], [1000, 2]);
  assert.equal(sb.nextSeg(1000, 11000, 1000, MSS, out, 0), 1000);
  assert.deepEqual([...out], [1000, 3]);
  // A one-element out array gets the length only.
  const one = new Int32Array(1);
  assert.equal(sb.nextSeg(1000, 11000, 1000, MSS, one), 1000);
  assert.equal(one[0], 1000);
});

test('SetPipe counts unSACKed bytes not lost, plus retransmitted ones (RFC 6675)', () => {
  const sb = new SackScoreboard();
  assert.equal(sb.pipe(1000, 11000, 1000, MSS), 10_000); // no SACK: the whole flight
  sb.update(1000, 11000, blocks(2000, 5000), 1);
  // 1000-1999 lost and not retransmitted: 0; 5000-10999 not lost: 6000.
  assert.equal(sb.pipe(1000, 11000, 1000, MSS), 6000);
  // After retransmitting 1000-1999 it counts once (lost original, retransmission in flight).
  assert.equal(sb.pipe(1000, 11000, 2000, MSS), 7000);
});

/** Byte-by-byte model of RFC 6675's definitions, to check the range arithmetic. */
test('matches a byte-by-byte model of IsLost, SetPipe and NextSeg on random scoreboards', () => {
  let x = 12345;
  const rnd = (n: number) => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x % n;
  };
  const mss = 10;
  const out = new Int32Array(2);
  for (let iter = 0; iter < 300; iter++) {
    const base = rnd(2) ? 0xffffff00 + rnd(200) : rnd(100_000); // half the runs wrap
    const span = 50 + rnd(300);
    const una = base >>> 0, nxt = (base + span) >>> 0;
    const sb = new SackScoreboard(64);
    const model = new Uint8Array(span);
    const nb = 1 + rnd(6);
    const b = new Uint32Array(2 * nb);
    let expectNew = 0;
    for (let k = 0; k < nb; k++) {
      const s = rnd(span), len = 1 + rnd(40);
      const e = Math.min(span, s + len);
      b[2 * k] = (una + s) >>> 0;
      b[2 * k + 1] = (una + e) >>> 0;
      for (let o = s; o < e; o++) if (!model[o]) { model[o] = 1; expectNew++; }
    }
    assert.equal(sb.update(una, nxt, b, nb), expectNew);
    let sacked = 0, top = -1;
    for (let o = 0; o < span; o++) if (model[o]) { sacked++; top = o; }
    assert.equal(sb.sackedBytes, sacked);
    const lost = (o: number) => {
      let bytes = 0, rs = 0;
      for (let p = o + 1; p < span; p++) if (model[p]) { bytes++; if (!model[p - 1] || p - 1 === o) rs++; }
      return rs >= 3 || bytes > 2 * mss;
    };
    for (let o = 0; o < span; o++) {
      assert.equal(sb.isSacked((una + o) >>> 0), model[o] === 1);
      if (!model[o]) assert.equal(sb.isLost((una + o) >>> 0, mss), lost(o), `iter ${iter} off ${o}`);
    }
    const rxt = rnd(span + 1);
    let pipe = 0;
    for (let o = 0; o < span; o++) {
      if (model[o]) continue;
      if (!lost(o)) pipe++;
      if (o < rxt) pipe++;
    }
    assert.equal(sb.pipe(una, nxt, (una + rxt) >>> 0, mss), pipe, `iter ${iter}`);
    // NextSeg rules 1 and 3 (no unsent data).
    let s2 = -1;
    for (let o = rxt; o < span && o < top; o++) if (!model[o]) { s2 = o; break; }
    const got = sb.nextSeg(una, nxt, (una + rxt) >>> 0, mss, out);
    if (s2 < 0) {
      assert.equal(got, -1, `iter ${iter}`);
    } else {
      let end = s2;
      while (end < span && !model[end] && end - s2 < mss) end++;
      assert.equal(got, (una + s2) >>> 0, `iter ${iter}`);
      assert.equal(out[0], end - s2);
      assert.equal(out[1], lost(s2) ? 1 : 3);
    }
  }
});
