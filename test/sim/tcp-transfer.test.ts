import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackToBack, LOCAL, filler, type WireFaults } from '../helpers/tcp-harness.js';
import { collect, pump, sha, type Collected } from '../helpers/stream.js';

function transfer(faults: WireFaults, seed: number, sizeAB: number, sizeBA: number, sysctls = {}) {
  const w = new BackToBack(faults, seed, sysctls);
  const l = w.b.listen({ port: 80 });
  const dataAB = filler(sizeAB, seed);
  const dataBA = filler(sizeBA, seed + 1);
  let server: Collected | null = null;
  l.onConnection = (s) => { server = collect(s); pump(s, dataBA); };
  const c = w.a.connect({ raddr: LOCAL, rport: 80 });
  const client = collect(c);
  c.onConnect = () => pump(c, dataAB);
  const ok = w.run(() => client.closed && server !== null && server.closed, 3_600_000);
  assert.equal(client.err, undefined, `client closed with ${client.err?.code}`);
  assert.equal((server as Collected | null)?.err, undefined);
  assert.ok(ok, `transfer finished (client ${client.bytes}/${sizeBA}, server ${(server as Collected | null)?.bytes ?? -1}/${sizeAB}; ${c.state})`);
  assert.equal(client.bytes, sizeBA);
  assert.equal((server as unknown as Collected).bytes, sizeAB);
  assert.equal(sha(client.chunks), sha([dataBA]));
  assert.equal(sha((server as unknown as Collected).chunks), sha([dataAB]));
  assert.ok(client.ended && (server as unknown as Collected).ended);
  // Let TIME_WAIT run out: nothing may be left behind.
  w.run(() => w.a.activeTcbs === 0 && w.b.activeTcbs === 0 && w.inFlight === 0, 600_000);
  l.close();
  assert.equal(w.a.activeTcbs, 0);
  assert.equal(w.b.activeTcbs, 0);
  assert.equal(w.hostA.wheel.size, 0);
  assert.equal(w.hostB.wheel.size, 0);
  assert.equal(w.hostA.pool.inUse + w.hostB.pool.inUse, 0, 'every packet buffer returned');
  return w;
}

test('clean wire: 2 MiB each way, SHA-256 equal, both ends finish with no state left', () => {
  transfer({ delayMs: 1 }, 1, 2 << 20, 2 << 20);
});

test('zero bytes each way: handshake and close only', () => {
  transfer({ delayMs: 5 }, 2, 0, 0);
});

test('2% loss with 10 ms delay: 1 MiB each way arrives intact', () => {
  const w = transfer({ delayMs: 10, loss: 0.02 }, 3, 1 << 20, 1 << 20);
  assert.ok(w.dropped > 0);
});

test('loss, reordering, duplication and corruption together: 512 KiB each way', () => {
  transfer({ delayMs: 20, jitterMs: 5, loss: 0.05, reorder: 0.05, duplicate: 0.03, corrupt: 0.02 }, 4, 512 << 10, 512 << 10);
});

test('SACK off and timestamps off: 512 KiB with 3% loss', () => {
  transfer({ delayMs: 10, loss: 0.03 }, 5, 512 << 10, 100, { 'net.inet.tcp.sack.enable': 0, 'net.inet.tcp.rfc1323': 0 });
});

test('CUBIC: 1 MiB with 1% loss', () => {
  transfer({ delayMs: 10, loss: 0.01 }, 6, 1 << 20, 0, { 'net.inet.tcp.cc.algorithm': 'cubic' });
});
