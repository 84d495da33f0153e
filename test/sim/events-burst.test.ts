// Application events once per receive burst (Stack.poll delivers what Stack.input marked):
// N segments of one connection arriving together are one readable callback with all their
// bytes; data comes before end and close; callbacks may write, close and connect; UDP
// delivers a burst's datagrams to a socket in one delivery, one message each.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, type StackNode } from '../helpers/sim.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import type { UdpSocket } from '../../src/stack/udp.js';
import { createSocket } from '../../src/api/dgram.js';

const A = parseIpv4('198.18.9.1')!, B = parseIpv4('198.18.9.2')!;

/** Where the stack is while a callback runs: inside input(), inside poll(), or outside both. */
function tracePhase(stack: Stack): { readonly phase: string } {
  const t = { phase: 'outside' };
  const input = stack.input.bind(stack), poll = stack.poll.bind(stack);
  stack.input = (i: number, b: PacketBuffer) => { t.phase = 'input'; try { input(i, b); } finally { t.phase = 'outside'; } };
  stack.poll = (now?: number) => { t.phase = 'poll'; try { return poll(now); } finally { t.phase = 'outside'; } };
  return t;
}

/** TCP data segments `node` transmits (payload lengths). */
function dataSegments(node: StackNode): number[] {
  const out: number[] = [];
  const tx = node.port.transmit.bind(node.port);
  node.port.transmit = (buf: PacketBuffer) => {
    const d = buf.data, f = buf.start;
    if (((d[f + 12]! << 8) | d[f + 13]!) === 0x0800 && d[f + 23] === 6) {
      const ip = f + 14, ihl = (d[ip]! & 15) * 4;
      const len = ((d[ip + 2]! << 8) | d[ip + 3]!) - ihl - (d[ip + ihl + 12]! >> 4) * 4;
      if (len > 0) out.push(len);
    }
    tx(buf);
  };
  return out;
}

function pair(seed: string) {
  const sim = new Simulation({ seed, latencyMs: 1 });
  const a = sim.addHost({ name: 'a', addr: '198.18.9.1/24' });
  const b = sim.addHost({ name: 'b', addr: '198.18.9.2/24' });
  return { sim, a, b };
}

/** A connection a -> b:80, established; the server side is what b's listener accepted. */
function connected(sim: Simulation, a: StackNode, b: StackNode, port = 80): { client: TcpSocket; server: () => TcpSocket } {
  let server: TcpSocket | null = null;
  const l = b.stack.tcp.listen({ port });
  l.onConnection = (s) => { server = s; };
  const client = a.stack.tcp.connect({ raddr: B, rport: port, noDelay: true }); // no Nagle: a write leaves whole
  assert.ok(sim.runUntil(() => server !== null && client.state === 'ESTABLISHED', { maxMs: 5000 }), sim.describe());
  return { client, server: () => server! };
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 255);

test('a burst of N segments for one connection is one readable callback with all the bytes, delivered from poll', () => {
  const { sim, a, b } = pair('burst-read');
  const { client, server } = connected(sim, a, b);
  const s = server();
  const phase = tracePhase(b.stack);
  const calls: { readable: number; phase: string; step: number }[] = [];
  s.onData = () => calls.push({ readable: s.readableLength, phase: phase.phase, step: sim.steps });
  const segs = dataSegments(a);
  const data = bytes(8000);
  client.write(data); // within the initial window: every segment leaves now, and they arrive together
  assert.ok(sim.runUntil(() => calls.length > 0, { maxMs: 1000 }), sim.describe());
  sim.run(50);
  assert.ok(segs.length >= 5, `the write left as ${segs.length} segments`);
  assert.deepEqual(calls, [{ readable: 8000, phase: 'poll', step: calls[0]!.step }], 'one readable callback, with every byte of the burst');
  assert.deepEqual(s.read(), data);
  sim.close();
});

test('data, end and close of one burst come in that order: data before end, and data before a reset', () => {
  for (const ending of ['close', 'abort'] as const) {
    const { sim, a, b } = pair(`burst-order-${ending}`);
    const { client, server } = connected(sim, a, b);
    const s = server();
    const log: string[] = [];
    let got = 0;
    s.onData = () => { for (let c = s.read(); c; c = s.read()) got += c.length; log.push(`data ${got}`); };
    s.onEnd = () => { log.push('end'); s.close(); }; // a close from a callback
    s.onClose = (err) => log.push(`close${err ? ` ${err.code}` : ''}`);
    client.write(bytes(6000));
    if (ending === 'close') client.close(); else client.abort();
    assert.ok(sim.runUntil(() => log.includes('close') || log.some((x) => x.startsWith('close ')), { maxMs: 5000 }), `${ending}: ${sim.describe()} ${log}`);
    assert.deepEqual(log, ending === 'close' ? ['data 6000', 'end', 'close'] : ['data 6000', 'close ECONNRESET'], ending);
    sim.close();
  }
});

test('callbacks write, close other sockets and connect during the delivery; nothing is lost, a closed socket hears nothing more', () => {
  const { sim, a, b } = pair('burst-reentrant');
  const c1 = connected(sim, a, b, 80);
  const c2 = connected(sim, a, b, 81);
  const s1 = c1.server(), s2 = c2.server();
  const log: string[] = [];
  let echoed = 0, opened: TcpSocket | null = null, openedUp = false;
  const back = b.stack.tcp.listen({ port: 82 });
  void back;
  const aListen = a.stack.tcp.listen({ port: 9000 });
  aListen.onConnection = (x) => { x.onData = () => { x.read(); }; };
  c1.client.onData = () => { for (let c = c1.client.read(); c; c = c1.client.read()) echoed += c.length; };
  s1.onData = () => {
    log.push('s1 data');
    const d = s1.read()!;
    s1.write(d); // echo from the callback
    s2.abort(); // close another socket whose events of this burst wait
    opened = b.stack.tcp.connect({ raddr: A, rport: 9000 }); // open a new one
    opened.onConnect = () => { openedUp = true; opened!.write(bytes(10)); };
  };
  s2.onData = () => log.push('s2 data');
  s2.onClose = (err) => log.push(`s2 close${err ? ` ${err.code}` : ''}`);
  // Both connections' data in one burst at b.
  c1.client.write(bytes(1000));
  c2.client.write(bytes(1000));
  assert.ok(sim.runUntil(() => echoed === 1000 && openedUp, { maxMs: 5000 }), `${sim.describe()} echoed ${echoed} ${log}`);
  sim.run(100);
  assert.deepEqual(log, ['s1 data', 's2 close'], 'the aborted socket hears its close once and no data after it');
  assert.equal(c2.client.state, 'CLOSED', 'the peer of the aborted socket got its reset');
  sim.close();
});

test('UDP: a burst of datagrams to a socket is one delivery, one message each, in order; a socket closed during it hears nothing', () => {
  const { sim, a, b } = pair('burst-udp');
  const phase = tracePhase(b.stack);
  const s1 = b.stack.udp.open(), s2 = b.stack.udp.open(), s3 = b.stack.udp.open();
  s1.bind(0, 7001); s2.bind(0, 7002); s3.bind(0, 7003);
  const got: string[] = [];
  let step = -1;
  s1.onMessage = (data, addr, port) => {
    got.push(`s1 ${new TextDecoder().decode(data)} ${phase.phase}`);
    if (step < 0) step = sim.steps;
    assert.equal(sim.steps, step, 'all in the same round');
    s2.close(); // freed during the delivery: its datagrams are not delivered
    s1.send(data, addr, port); // a reply from the callback
  };
  s2.onMessage = (data) => got.push(`s2 ${new TextDecoder().decode(data)}`);
  // Mode 2 (recv): one onReadable for the burst, the datagrams kept apart.
  let readable = 0;
  s3.onReadable = () => { readable++; };
  const c = a.stack.udp.open();
  c.bind(0, 5000);
  const replies: string[] = [];
  c.onMessage = (data) => replies.push(new TextDecoder().decode(data));
  sim.run(10); // ARP
  for (let i = 0; i < 3; i++) c.send(new TextEncoder().encode(`m${i}`), B, 7001);
  for (let i = 0; i < 2; i++) c.send(new TextEncoder().encode(`x${i}`), B, 7002);
  for (let i = 0; i < 4; i++) c.send(new TextEncoder().encode(`r${i}`), B, 7003);
  assert.ok(sim.runUntil(() => replies.length === 3, { maxMs: 1000 }), sim.describe());
  assert.deepEqual(got, ['s1 m0 poll', 's1 m1 poll', 's1 m2 poll']);
  assert.deepEqual(replies, ['m0', 'm1', 'm2']);
  assert.equal(readable, 1, 'one readable callback for the burst');
  const msgs: string[] = [];
  for (let m = s3.recv(); m; m = s3.recv()) msgs.push(new TextDecoder().decode(m.data));
  assert.deepEqual(msgs, ['r0', 'r1', 'r2', 'r3']);
  s1.close(); s3.close(); c.close();
  sim.close();
});

test('tstack/dgram: one \'message\' per datagram, emitted by the burst\'s delivery (not a tick later)', async () => {
  const { sim, a, b } = pair('burst-dgram');
  const phase = tracePhase(b.stack);
  const server = createSocket({ type: 'udp4', stack: b.stack });
  const got: string[] = [];
  server.on('message', (m, r) => got.push(`${m} ${r.port} ${phase.phase}`));
  await new Promise<void>((res) => server.bind(6000, res));
  const c: UdpSocket = a.stack.udp.open();
  c.bind(0, 5001);
  sim.run(10);
  for (let i = 0; i < 4; i++) c.send(new TextEncoder().encode(`d${i}`), B, 6000);
  sim.run(10); // synchronous: no tick runs in between
  assert.deepEqual(got, ['d0 5001 poll', 'd1 5001 poll', 'd2 5001 poll', 'd3 5001 poll']);
  server.close();
  c.close();
  sim.close();
});

test('a connection established and reset in one burst is still accepted, then closes with ECONNRESET', () => {
  const { sim, a, b } = pair('burst-accept-reset');
  const log: string[] = [];
  const l = b.stack.tcp.listen({ port: 80 });
  l.onConnection = (s) => {
    log.push(`connection ${s.state}`);
    s.onClose = (err) => log.push(`close ${err?.code}`);
  };
  const c = a.stack.tcp.connect({ raddr: B, rport: 80 });
  c.onConnect = () => c.abort(); // the RST follows the handshake's ACK in the same round
  assert.ok(sim.runUntil(() => log.length === 2, { maxMs: 5000 }), `${sim.describe()} ${log}`);
  assert.deepEqual(log, ['connection CLOSED', 'close ECONNRESET']);
  assert.equal(l.pending, 0, 'nothing left in the accept queue');
  sim.run(100);
  assert.equal(b.stack.tcp.activeTcbs, 0);
  l.close();
  sim.close();
});
