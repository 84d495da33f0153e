import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRandom32 } from '../../src/base/prng.js';
import { COOKIE_PERIOD_MS, MSS_TABLE, SynCookies } from '../../src/stack/tcp/syncookie.js';
import { parseIpv4 } from '../../src/wire/addr.js';


const L = parseIpv4('198.18.0.2')!;
const R = parseIpv4('198.18.0.1')!;
const LP = 80, RP = 51234, PEER_ISN = 0x12345678;
const T0 = 10 * COOKIE_PERIOD_MS + 5000;

test('round-trips MSS, window scale and SACK-permitted', () => {
  const c = new SynCookies(createRandom32(7));
  const cases: [number, number, boolean][] = [
    [1460, 7, true], [1460, -1, false], [536, 0, true], [1400, 14, false], [1220, 3, true],
  ];
  for (const [mss, ws, sack] of cases) {
    const isn = c.encode(T0, L, LP, R, RP, PEER_ISN, mss, ws, sack);
    const d = c.decode(T0 + 1000, L, LP, R, RP, PEER_ISN, isn);
    assert.ok(d, `${mss}/${ws}/${sack}`);
    assert.deepEqual({ ...d }, { mss, wscale: ws, sackOk: sack });
  }
});

test('preserves window scale 0..14 and "not offered", clamping offers above 14', () => {
  const c = new SynCookies(createRandom32(8));
  for (let ws = -1; ws <= 14; ws++) {
    const isn = c.encode(T0, L, LP, R, RP, PEER_ISN, 1460, ws, false);
    assert.equal(c.decode(T0, L, LP, R, RP, PEER_ISN, isn)!.wscale, ws);
  }
  const isn = c.encode(T0, L, LP, R, RP, PEER_ISN, 1460, 15, false);
  assert.equal(c.decode(T0, L, LP, R, RP, PEER_ISN, isn)!.wscale, 14);
});

test('MSS decodes to the largest table value not above the offer', () => {
  const c = new SynCookies(createRandom32(9));
  const want = (m: number) => MSS_TABLE.filter((v) => v <= m).at(-1) ?? 536;
  for (const offered of [100, 535, 536, 1000, 1219, 1220, 1299, 1300, 1359, 1360, 1439, 1440, 1451, 1452, 1459, 1460, 8960, 65495]) {
    const isn = c.encode(T0, L, LP, R, RP, PEER_ISN, offered, 7, true);
    assert.equal(c.decode(T0, L, LP, R, RP, PEER_ISN, isn)!.mss, want(offered), `offered ${offered}`);
  }
});

test('rejects a cookie with any one bit flipped', () => {
  const c = new SynCookies(createRandom32(10));
  const isn = c.encode(T0, L, LP, R, RP, PEER_ISN, 1460, 7, true);
  for (let bit = 0; bit < 32; bit++) {
    assert.equal(c.decode(T0, L, LP, R, RP, PEER_ISN, (isn ^ (1 << bit)) >>> 0), null, `bit ${bit}`);
  }
});

test('rejects a cookie presented for another 4-tuple or peer ISN, or made with another secret', () => {
  const c = new SynCookies(createRandom32(11));
  const isn = c.encode(T0, L, LP, R, RP, PEER_ISN, 1460, 7, true);
  assert.equal(c.decode(T0, L, LP, R, RP + 1, PEER_ISN, isn), null);
  assert.equal(c.decode(T0, L, LP + 1, R, RP, PEER_ISN, isn), null);
  assert.equal(c.decode(T0, L, LP, R + 1, RP, PEER_ISN, isn), null);
  assert.equal(c.decode(T0, L + 1, LP, R, RP, PEER_ISN, isn), null);
  assert.equal(c.decode(T0, L, LP, R, RP, PEER_ISN + 1, isn), null);
  assert.equal(new SynCookies(createRandom32(12)).decode(T0, L, LP, R, RP, PEER_ISN, isn), null);
});

test('accepts a cookie in its own and the next 64 s period, not 2 or 3 periods later', () => {
  const c = new SynCookies(createRandom32(13));
  const start = 10 * COOKIE_PERIOD_MS; // start of a period
  const isn = c.encode(start + 63_000, L, LP, R, RP, PEER_ISN, 1460, 7, true);
  assert.ok(c.decode(start + 63_999, L, LP, R, RP, PEER_ISN, isn));
  assert.ok(c.decode(start + COOKIE_PERIOD_MS, L, LP, R, RP, PEER_ISN, isn));
  assert.ok(c.decode(start + 2 * COOKIE_PERIOD_MS - 1, L, LP, R, RP, PEER_ISN, isn));
  assert.equal(c.decode(start + 2 * COOKIE_PERIOD_MS, L, LP, R, RP, PEER_ISN, isn), null);
  assert.equal(c.decode(start + 3 * COOKIE_PERIOD_MS, L, LP, R, RP, PEER_ISN, isn), null);
  // Four periods later the 2-bit counter matches again; the MAC over the full period does not.
  assert.equal(c.decode(start + 4 * COOKIE_PERIOD_MS, L, LP, R, RP, PEER_ISN, isn), null);
});

test('random guesses are rejected (22-bit MAC)', () => {
  const c = new SynCookies(createRandom32(14));
  const rnd = createRandom32(99);
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) if (c.decode(T0, L, LP, R, RP, PEER_ISN, rnd())) accepted++;
  assert.ok(accepted <= 1, `${accepted} forged cookies accepted`);
});
