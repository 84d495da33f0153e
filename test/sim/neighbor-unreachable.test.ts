// Failed neighbour resolution reaches the socket: a connect to an on-link address nobody
// answers ARP for fails with EHOSTUNREACH once ARP gives up (3 requests 1 s apart, as Linux's
// mcast_solicit), not ETIMEDOUT two minutes later; while the neighbour is marked down, a new
// connect fails at once.
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4 } from '../../src/wire/addr.js';
import { Simulation } from '../helpers/sim.js';

const SILENT = parseIpv4('198.18.6.99')!;

test('connect to a silent on-link host fails with EHOSTUNREACH after 3 unanswered ARP requests (3 s)', () => {
  const sim = new Simulation({ seed: 'unreach' });
  const a = sim.addHost({ name: 'a', addr: '198.18.6.1/24' }).stack;
  sim.run(10);
  const t0 = sim.clock.now();
  const s = a.tcp.connect({ raddr: SILENT, rport: 80 });
  let err = '';
  let at = -1;
  s.onClose = (e) => { err = e?.code ?? 'none'; at = sim.clock.now() - t0; };
  assert.ok(sim.runUntil(() => at >= 0, { maxMs: 10_000 }), sim.describe());
  assert.equal(err, 'EHOSTUNREACH');
  assert.ok(at >= 2900 && at < 3100, `failed after ${at} ms`);
  assert.equal(a.arp.stats.requestsSent, 3, 'three ARP requests');
  assert.equal(a.tcp.activeTcbs, 0);

  // The neighbour is now marked down (net.link.ether.inet.wait): the next attempt fails at once.
  const t1 = sim.clock.now();
  const s2 = a.tcp.connect({ raddr: SILENT, rport: 81 });
  let err2 = '';
  let at2 = -1;
  s2.onClose = (e) => { err2 = e?.code ?? 'none'; at2 = sim.clock.now() - t1; };
  assert.ok(sim.runUntil(() => at2 >= 0, { maxMs: 10_000 }), sim.describe());
  assert.equal(err2, 'EHOSTUNREACH');
  assert.ok(at2 < 10, `failed after ${at2} ms`);
  sim.close();
});

test('an established connection whose neighbour stops answering times out reporting EHOSTUNREACH', () => {
  const sim = new Simulation({ seed: 'unreach2' });
  const a = sim.addHost({ name: 'a', addr: '198.18.6.1/24', sysctl: { 'net.inet.tcp.rexmit_count': 7, 'net.link.ether.inet.max_age': 1 } }).stack;
  const bNode = sim.addHost({ name: 'b', addr: '198.18.6.2/24' });
  const l = bNode.stack.tcp.listen({ port: 80 });
  l.onConnection = () => {};
  const s = a.tcp.connect({ raddr: parseIpv4('198.18.6.2')!, rport: 80 });
  assert.ok(sim.runUntil(() => s.state === 'ESTABLISHED', { maxMs: 5000 }));
  // b vanishes from the wire: nothing it sent or would send arrives any more.
  bNode.port.setFaults({ loss: 1 }, { loss: 1 });
  let err = '';
  s.onClose = (e) => { err = e?.code ?? 'none'; };
  s.write(new Uint8Array(1000));
  assert.ok(sim.runUntil(() => err !== '', { maxMs: 600_000 }), sim.describe());
  assert.equal(err, 'EHOSTUNREACH');
  sim.close();
});
