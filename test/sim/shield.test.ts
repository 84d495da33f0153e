// The shield on the memory wire: allow/deny rules by source prefix, protocol and port; per-source
// limits on concurrent TCP connections and on the SYN rate; counters for each; changeable at run
// time. Legitimate sources are untouched by another source's limits.
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseIpv4Cidr } from '../../src/wire/addr.js';
import type { ShieldConfig, ShieldRule } from '../../src/stack/shield.js';
import { Simulation } from '../helpers/sim.js';

const SERVER = parseIpv4('198.18.9.1')!;

function rule(action: 'allow' | 'deny', from: string, proto: ShieldRule['proto'] = 'any', port = -1): ShieldRule {
  const c = parseIpv4Cidr(from)!;
  return { action, from: c.addr, fromLen: c.prefixLen, proto, port };
}
const cfg = (o: Partial<ShieldConfig>): ShieldConfig => ({ default: 'allow', rules: [], maxConnPerSource: 0, synRatePerSource: 0, ...o });

function setup() {
  const sim = new Simulation({ seed: 'shield' });
  const server = sim.addHost({ name: 'server', addr: '198.18.9.1/24' }).stack;
  const bad = sim.addHost({ name: 'bad', addr: '198.18.9.66/24' }).stack;
  const good = sim.addHost({ name: 'good', addr: '198.18.9.7/24' }).stack;
  sim.run(10);
  return { sim, server, bad, good };
}

test('deny and allow rules by source prefix, protocol and port; the first match decides; hits are counted', () => {
  const { sim, server, bad, good } = setup();
  server.configureShield(cfg({ rules: [rule('allow', '198.18.9.66/32', 'udp', 53), rule('deny', '198.18.9.64/26', 'udp'), rule('deny', '198.18.9.64/26', 'icmp')] }));
  const got: string[] = [];
  for (const port of [53, 5000]) {
    const s = server.udp.open(); s.bind(0, port);
    s.onMessage = (_d, addr) => got.push(`${addr === SERVER ? 'self' : addr & 255}:${port}`);
  }
  for (const [from, port] of [[bad, 53], [bad, 5000], [good, 5000]] as const) from.udp.open().send(new Uint8Array(4), SERVER, port);
  let echoed = 0;
  bad.icmp.onEchoReply = () => { echoed++; };
  bad.icmp.sendEcho(SERVER, 1, 1, new Uint8Array(8));
  sim.run(100);
  assert.deepEqual(got.sort(), ['66:53', '7:5000']);
  assert.equal(echoed, 0, 'ping from the denied prefix dropped');
  assert.deepEqual(server.shield.stats.ruleHits, [1, 1, 1]);
  assert.equal(server.shield.stats.denied, 2);
  assert.equal(server.drops['shield_deny'], 2);
  // Changed at run time: with no rules, the ping goes through.
  server.configureShield(cfg({}));
  bad.icmp.sendEcho(SERVER, 1, 2, new Uint8Array(8));
  sim.run(100);
  assert.equal(echoed, 1);
  sim.close();
});

test('default deny with an allow rule lets only the allowed prefix in', () => {
  const { sim, server, bad, good } = setup();
  server.configureShield(cfg({ default: 'deny', rules: [rule('allow', '198.18.9.0/29')] }));
  const l = server.tcp.listen({ port: 80 });
  l.onConnection = () => {};
  const g = good.tcp.connect({ raddr: SERVER, rport: 80 });
  const b = bad.tcp.connect({ raddr: SERVER, rport: 80 });
  sim.run(500);
  assert.equal(g.state, 'ESTABLISHED');
  assert.equal(b.state, 'SYN_SENT', 'the denied source is not answered');
  sim.close();
});

test('max_conn_per_source: a source holds at most N connections; another source is not affected', () => {
  const { sim, server, bad, good } = setup();
  server.configureShield(cfg({ maxConnPerSource: 5 }));
  const l = server.tcp.listen({ port: 80, backlog: 100 });
  l.onConnection = () => {};
  const socks = Array.from({ length: 8 }, () => bad.tcp.connect({ raddr: SERVER, rport: 80 }));
  sim.run(500);
  assert.equal(socks.filter((s) => s.state === 'ESTABLISHED').length, 5);
  assert.equal(server.tcp.connectionsFrom(parseIpv4('198.18.9.66')!), 5);
  assert.ok(server.shield.stats.connLimited >= 3);
  assert.equal(good.tcp.connect({ raddr: SERVER, rport: 80 }) && (sim.run(200), server.tcp.connectionsFrom(parseIpv4('198.18.9.7')!)), 1);
  // One closes: the source may open another.
  socks.find((s) => s.state === 'ESTABLISHED')!.abort();
  sim.run(10);
  const again = bad.tcp.connect({ raddr: SERVER, rport: 80 });
  sim.run(200);
  assert.equal(again.state, 'ESTABLISHED');
  sim.close();
});

test('syn_rate_per_source: SYNs past the rate are dropped, the bucket refills with time', () => {
  const { sim, server, bad } = setup();
  server.configureShield(cfg({ synRatePerSource: 10 }));
  const l = server.tcp.listen({ port: 80, backlog: 1000 });
  l.onConnection = () => {};
  bad.icmp.sendEcho(SERVER, 1, 1, new Uint8Array(8)); // resolve ARP first: 30 SYNs would overflow its hold queue
  sim.run(10);
  const first = Array.from({ length: 30 }, () => bad.tcp.connect({ raddr: SERVER, rport: 80 }));
  sim.run(100);
  assert.equal(first.filter((s) => s.state === 'ESTABLISHED').length, 10, 'a burst of 10');
  assert.equal(server.shield.stats.synLimited, 20);
  assert.equal(server.drops['shield_syn_limit'], 20);
  // The SYN retransmissions (after 1 s) find a refilled bucket: ten more.
  sim.run(1000);
  assert.equal(first.filter((s) => s.state === 'ESTABLISHED').length, 20);
  assert.equal(server.shield.stats.synLimited, 30);
  sim.close();
});
