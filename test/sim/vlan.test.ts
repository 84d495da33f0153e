// VLAN interfaces on the memory wire: two stacks whose ports carry no untagged address talk
// only through their 802.1Q (and Q-in-Q) children; every frame on the wire is tagged.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Simulation } from '../helpers/sim.js';
import { filler } from '../helpers/tcp-harness.js';
import { sha } from '../helpers/stream.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

/** Every frame a stack receives on its port (index 1), as "tpid/vid[,tpid/vid]>type". */
function tagLog(stack: Stack): string[] {
  const log: string[] = [];
  stack.frameTap = (ifIndex, buf) => {
    if (ifIndex !== 1) return;
    const d = buf.data; let o = buf.start + 12; const parts: string[] = [];
    let t = (d[o]! << 8) | d[o + 1]!;
    while (t === 0x8100 || t === 0x88a8) { parts.push(`${t.toString(16)}/${((d[o + 2]! & 15) << 8) | d[o + 3]!}`); o += 4; t = (d[o]! << 8) | d[o + 1]!; }
    log.push(`${parts.join(',')}>${t.toString(16)}`);
  };
  return log;
}

test('TCP over an 802.1Q VLAN: 1 MiB each way with 1% loss, no byte lost, every frame tagged 100', () => {
  const sim = new Simulation({ seed: 'vlan-tcp', latencyMs: 1 });
  const a = sim.addHost({ name: 'a', faults: { loss: 0.01 } }).stack;
  const b = sim.addHost({ name: 'b', faults: { loss: 0.01 } }).stack;
  const ia = a.addVlan(1, 100, { addr: '198.18.100.1/24' });
  const ib = b.addVlan(1, 100, { addr: '198.18.100.2/24' });
  const seenA = tagLog(a), seenB = tagLog(b);
  const l = b.tcp.listen({ port: 80 });
  const up = filler(1 << 20, 1), down = filler(1 << 20, 2);
  const got = { a: [] as Uint8Array[], b: [] as Uint8Array[], aEnd: false, bEnd: false };
  const pump = (s: TcpSocket, data: Uint8Array) => {
    let off = 0;
    const go = () => { while (off < data.length) { const n = s.write(data.subarray(off, off + 65536)); off += n; if (n === 0) return; } s.shutdown(); };
    s.onDrain = go; go();
  };
  l.onConnection = (s) => {
    s.onData = () => { for (let d = s.read(); d; d = s.read()) got.b.push(d); };
    s.onEnd = () => { got.bEnd = true; };
    pump(s, down);
  };
  const c = a.tcp.connect({ raddr: parseIpv4('198.18.100.2')!, rport: 80 });
  c.onData = () => { for (let d = c.read(); d; d = c.read()) got.a.push(d); };
  c.onEnd = () => { got.aEnd = true; };
  c.onConnect = () => pump(c, up);
  assert.ok(sim.runUntil(() => got.aEnd && got.bEnd, { maxMs: 600_000 }), sim.describe());
  assert.equal(sha(got.b), sha([up]));
  assert.equal(sha(got.a), sha([down]));
  assert.ok(seenA.length > 500 && seenB.length > 500);
  for (const s of [...seenA, ...seenB]) assert.match(s, /^8100\/100>(800|806)$/, `untagged or mistagged frame on the wire: ${s}`);
  // Counters: the VLAN interfaces carried the traffic; the port counted it too.
  const va = a.interfaceByIndex(ia)!, vb = b.interfaceByIndex(ib)!;
  assert.equal(va.name, 'a.100');
  assert.ok(va.counters.txBytes > 1 << 20 && vb.counters.rxBytes > 1 << 20);
  assert.ok(a.interfaceByIndex(1)!.counters.txPackets >= va.counters.txPackets);
  sim.close();
});

test('Q-in-Q: outer S-tag 200 (0x88a8) then C-tag 100 (0x8100); ping and UDP round trip', () => {
  const sim = new Simulation({ seed: 'qinq', latencyMs: 1 });
  const a = sim.addHost({ name: 'a' }).stack;
  const b = sim.addHost({ name: 'b' }).stack;
  a.addVlan(1, 100, { outer: 200, addr: '198.18.101.1/24' });
  b.addVlan(1, 100, { outer: 200, addr: '198.18.101.2/24' });
  // Same inner VID without the outer tag: a different interface, not reached.
  b.addVlan(1, 100, { addr: '198.18.102.2/24' });
  const seen = tagLog(b);
  const B = parseIpv4('198.18.101.2')!;
  const replies: number[] = [];
  a.icmp.onEchoReply = (src, _id, seq) => { assert.equal(src, B); replies.push(seq); };
  for (let i = 1; i <= 3; i++) a.icmp.sendEcho(B, 7, i, new Uint8Array(56));
  assert.ok(sim.runUntil(() => replies.length === 3, { maxMs: 5000 }), sim.describe());
  const sa = a.udp.open(); sa.bind(0, 4000);
  const sb = b.udp.open(); sb.bind(0, 5000);
  const atA: string[] = [];
  sa.onMessage = (d) => atA.push(Buffer.from(d).toString());
  sb.onMessage = (d, addr, port) => sb.send(Buffer.from(`echo ${Buffer.from(d)}`), addr, port);
  sa.send(Buffer.from('qinq'), B, 5000);
  assert.ok(sim.runUntil(() => atA.length === 1, { maxMs: 1000 }), sim.describe());
  assert.deepEqual(atA, ['echo qinq']);
  assert.ok(seen.length > 0);
  for (const s of seen) assert.match(s, /^88a8\/200,8100\/100>(800|806)$/);
  assert.equal(b.interfaceByIndex(3)!.counters.rxPackets, 0, 'the single-tagged VLAN 100 saw nothing');
  sim.close();
});

test('frames for an unknown VID are dropped and counted on the port', () => {
  const sim = new Simulation({ seed: 'vlan-unknown', latencyMs: 1 });
  const a = sim.addHost({ name: 'a' }).stack;
  const b = sim.addHost({ name: 'b' }).stack;
  a.addVlan(1, 300, { addr: '198.18.103.1/24' });
  b.addVlan(1, 100, { addr: '198.18.103.2/24' });
  const B = parseIpv4('198.18.103.2')!;
  let replies = 0;
  a.icmp.onEchoReply = () => { replies++; };
  a.icmp.sendEcho(B, 1, 1, new Uint8Array(8));
  sim.run(5000);
  assert.equal(replies, 0);
  assert.ok((b.drops['vlan_unknown_vid'] ?? 0) >= 1, JSON.stringify(b.drops));
  assert.ok(b.interfaceByIndex(1)!.counters.rxDropped >= 1);
  sim.close();
});

test('two VLANs on one port keep their own addresses, neighbours and counters', () => {
  const sim = new Simulation({ seed: 'vlan-two', latencyMs: 1 });
  const a = sim.addHost({ name: 'a' }).stack;
  const b = sim.addHost({ name: 'b' }).stack;
  const a100 = a.addVlan(1, 100, { addr: '198.18.104.1/24' }), a200 = a.addVlan(1, 200, { addr: '198.18.105.1/24' });
  const b100 = b.addVlan(1, 100, { addr: '198.18.104.2/24' }), b200 = b.addVlan(1, 200, { addr: '198.18.105.2/24', mac: Uint8Array.of(2, 0, 0, 0, 2, 0) });
  const replies: string[] = [];
  a.icmp.onEchoReply = (src) => replies.push(`${src >>> 8 & 255}`);
  a.icmp.sendEcho(parseIpv4('198.18.104.2')!, 1, 1, new Uint8Array(8));
  a.icmp.sendEcho(parseIpv4('198.18.105.2')!, 1, 2, new Uint8Array(8));
  assert.ok(sim.runUntil(() => replies.length === 2, { maxMs: 5000 }), sim.describe());
  assert.deepEqual(replies.sort(), ['104', '105']);
  assert.equal(a.arp.lookup(a100, parseIpv4('198.18.104.2')!)?.state, 1);
  const e200 = a.arp.lookup(a200, parseIpv4('198.18.105.2')!);
  assert.deepEqual([...e200!.mac], [2, 0, 0, 0, 2, 0], 'VLAN 200 answers with its own MAC');
  assert.equal(a.arp.lookup(a100, parseIpv4('198.18.105.2')!), undefined);
  assert.ok(b.interfaceByIndex(b100)!.counters.rxPackets >= 2 && b.interfaceByIndex(b200)!.counters.rxPackets >= 2);
  sim.close();
});

test('malformed tagged frames are dropped and counted, never answered or thrown on', () => {
  const sim = new Simulation({ seed: 'vlan-bad', latencyMs: 1 });
  const b = sim.addHost({ name: 'b' }).stack;
  b.addVlan(1, 100, { addr: '198.18.106.2/24' });
  b.addVlan(1, 100, { outer: 200, addr: '198.18.107.2/24' });
  const mac = b.interfaceByIndex(1)!.mac;
  const frame = (bytes: number[]) => {
    const buf = b.pool.alloc();
    const o = buf.append(bytes.length + 12);
    buf.data.set(mac, o); buf.data.set([2, 0, 0, 0, 0, 9], o + 6);
    buf.data.set(bytes, o + 12);
    b.input(1, buf);
  };
  const before = { ...b.drops };
  frame([0x81, 0x00]);                                        // a TPID and nothing else
  frame([0x81, 0x00, 0x00, 0x64]);                            // no inner EtherType
  frame([0x81, 0x00, 0x0f, 0xff, 0x08, 0x00, 0x45]);          // VID 0xFFF is reserved
  frame([0x81, 0x00, 0x00, 0x64, 0x00, 0x40, 1, 2, 3]);       // an 802.3 length inside the tag
  frame([0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00]);          // Q-in-Q cut in the inner tag
  frame([0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0x01, 0x08, 0x00]); // three tags
  frame([0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45, 0x00]);    // VLAN 100, truncated IPv4
  frame([0x81, 0x00, 0x00, 0x00, 0x08, 0x06, 0, 1]);          // priority-tagged (VID 0) truncated ARP, for the port
  const delta = Object.fromEntries(Object.entries(b.drops).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0));
  assert.deepEqual(delta, { vlan_truncated: 3, vlan_malformed: 2, vlan_too_many_tags: 1, ip_truncated: 1, arp_malformed: 1 });
  assert.equal(b.pool.inUse, 0, 'every buffer released');
  sim.close();
});
