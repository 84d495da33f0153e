// Workers (docs/architecture.md, "Workers"): the software RSS hash, the memory wire's
// multi-queue ports, flow ownership of active opens (the TCP port filter), the ARP relay hooks,
// the PACKET_FANOUT program's shape and the worker identity from the environment.
import test from 'node:test';
import assert from 'node:assert/strict';
import { MemoryWire, type MemoryPort } from '../../src/driver/memory.js';
import { VirtualClock } from '../../src/base/time.js';
import { Stack } from '../../src/stack/stack.js';
import { Prng } from '../../src/base/prng.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import { virtualRunner } from '../helpers/virtual-run.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/addr.js';
import { rssHash4, rssHashFragment4, rssHashFrame, rssQueueOfFrame, rssQueueOfTuple4, rssFlowHashOfFrame } from '../../src/wire/rss.js';
import { fanoutProgram } from '../../src/driver/fanout.js';
import { ownsTuple, workerFromEnv, type WorkerIdentity } from '../../src/runtime/worker.js';

const C = parseIpv4('198.18.211.1')!, S = parseIpv4('198.18.211.2')!;

/** An IPv4/TCP frame from (src, sport) to (dst, dport). */
function tcpFrame(src: number, dst: number, sport: number, dport: number, frag = 0): Uint8Array {
  const f = new Uint8Array(14 + 20 + 20);
  const dv = new DataView(f.buffer);
  dv.setUint16(12, 0x0800);
  f[14] = 0x45; dv.setUint16(14 + 6, frag); f[14 + 9] = 6;
  dv.setUint32(14 + 12, src); dv.setUint32(14 + 16, dst);
  dv.setUint16(34, sport); dv.setUint16(36, dport);
  return f;
}

test('the RSS hash is symmetric and the frame hash matches the tuple hash', () => {
  const rng = new Prng(7);
  for (let i = 0; i < 1000; i++) {
    const a = (rng.next() * 2 ** 32) >>> 0, b = (rng.next() * 2 ** 32) >>> 0;
    const p = Math.floor(rng.next() * 65536), q = Math.floor(rng.next() * 65536);
    assert.equal(rssHash4(a, b, p, q), rssHash4(b, a, q, p));
    const there = tcpFrame(a, b, p, q), back = tcpFrame(b, a, q, p);
    assert.equal(rssHashFrame(there, 0, there.length), rssHash4(a, b, p, q));
    assert.equal(rssQueueOfFrame(back, 0, back.length, 3), rssQueueOfTuple4(a, b, p, q, 3));
    assert.equal(rssFlowHashOfFrame(there, 0, there.length), rssHash4(a, b, p, q));
  }
  // Fragments hash on (addresses, proto, id) — test/unit/steering.test.ts; ARP goes to queue 0.
  const frag = tcpFrame(C, S, 1, 2, 0x2000);
  assert.equal(rssHashFrame(frag, 0, frag.length), rssHashFragment4(C, S, 6, 0));
  assert.equal(rssFlowHashOfFrame(frag, 0, frag.length), rssHashFragment4(C, S, 6, 0));
  const arp = new Uint8Array(42); arp[12] = 0x08; arp[13] = 0x06;
  assert.equal(rssHashFrame(arp, 0, arp.length), 0);
  assert.equal(rssFlowHashOfFrame(arp, 0, arp.length), -1);
  // Short or garbage frames: no crash, queue 0.
  assert.equal(rssHashFrame(new Uint8Array(3), 0, 3), 0);
});

test('the hash spreads flows over the queues', () => {
  const counts = [0, 0, 0, 0];
  for (let p = 40000; p < 44000; p++) counts[rssQueueOfTuple4(C, S, p, 80, 4)]!++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `uneven spread ${counts}`);
});

/** A client stack and N worker stacks on one multi-queue memory port, stepped on a virtual clock. */
function rig(n: number, relay = true, clientAddr6?: string) {
  const clock = new VirtualClock(0);
  const wire = new MemoryWire({ clock, seed: 3, realtime: false });
  const cport = wire.createPort({ name: 'c0' });
  const queues = wire.createQueues(n, { name: 's0' });
  const cr = new Prng(1);
  const client = new Stack({ clock, random: () => cr.next() });
  client.addInterface(cport, { addr: '198.18.211.1/24', ...(clientAddr6 && { addr6: `${clientAddr6}/64` }) });
  const workers = queues.map((q, i) => {
    const s = new Stack({ clock, random: (() => { const r = new Prng(10 + i); return () => r.next(); })() });
    s.addInterface(q, { addr: '198.18.211.2/24', ...(clientAddr6 && { addr6: '2001:db8:211::2/64' }) });
    s.tcp.portFilter = ownsTuple({ index: i, count: n, seed: 1, slots: [] } as WorkerIdentity);
    return s;
  });
  // What the supervisor does between worker processes: a neighbour one worker learns, all learn.
  if (relay) {
    workers.forEach((w) => {
      w.arp.onLearned = (ifIndex, ip, mac, off) => {
        for (const o of workers) if (o !== w) o.arp.learn(ifIndex, ip, mac.slice(off, off + 6));
      };
      w.ip6.ndp.onLearned = (ifIndex, addr, addrOff, mac, macOff) => {
        for (const o of workers) if (o !== w) o.ip6.ndp.learnShared(ifIndex, addr.slice(addrOff, addrOff + 16), mac.slice(macOff, macOff + 6));
      };
    });
  }
  const nodes: [Stack, MemoryPort][] = [[client, cport], ...workers.map((s, i) => [s, queues[i]!] as [Stack, MemoryPort])];
  const rx: PacketBuffer[] = [];
  const seen = new Array<number>(n).fill(0);
  const step = () => {
    let moved = false;
    for (const [s, p] of nodes) {
      const k = p.rxBurst(rx, 64);
      for (let i = 0; i < k; i++) {
        const qi = queues.indexOf(p);
        if (qi >= 0) seen[qi]!++;
        s.input(1, rx[i]!); moved = true;
      }
      s.poll(clock.now());
    }
    return moved;
  };
  const runUntil = virtualRunner(clock, wire, nodes, step, 10_000);
  return { clock, wire, client, workers, queues, seen, runUntil };
}

test('memory wire with 2 queues: connections spread over both workers, each accepted connection completes', () => {
  const { client, workers, runUntil, seen } = rig(2);
  const accepted = [0, 0];
  workers.forEach((w, i) => { const l = w.tcp.listen({ port: 80 }); l.onConnection = (s: TcpSocket) => { accepted[i]!++; s.onData = () => { s.write(new Uint8Array([1])); }; }; });
  const socks: TcpSocket[] = [];
  let replies = 0;
  for (let k = 0; k < 40; k++) {
    const s = client.tcp.connect({ raddr: S, rport: 80 });
    s.onConnect = () => s.write(new Uint8Array([9]));
    s.onData = () => { replies++; };
    socks.push(s);
  }
  assert.ok(runUntil(() => replies === 40), `replies ${replies}, accepted ${accepted}`);
  assert.ok(accepted[0]! > 5 && accepted[1]! > 5, `both workers accept: ${accepted}`);
  assert.equal(accepted[0]! + accepted[1]!, 40);
  assert.ok(seen[0]! > 0 && seen[1]! > 0);
});

test('memory wire with 2 queues: every active open of every worker gets its return traffic (ff_rss_check)', () => {
  const { client, workers, runUntil } = rig(2);
  const l = client.tcp.listen({ port: 7000 });
  l.onConnection = (s: TcpSocket) => { s.onData = () => { s.read(); s.write(new Uint8Array([1])); }; };
  let ok = 0;
  const per = 200;
  for (const w of workers) {
    for (let k = 0; k < per; k++) {
      const s = w.tcp.connect({ raddr: C, rport: 7000 });
      assert.equal(rssQueueOfTuple4(S, C, s.localPort, 7000, 2), workers.indexOf(w));
      s.onConnect = () => s.write(new Uint8Array([2]));
      s.onData = () => { s.read(); ok++; s.close(); };
    }
  }
  assert.ok(runUntil(() => ok === per * 2), `${ok}/${per * 2} connections answered`);
  // Nothing was answered with a reset: no frame reached a worker that did not own its flow.
  for (const w of workers) assert.equal(w.tcp.counters.sndRst, 0);
});

test('ARP: what one worker learns from a reply reaches another through learn() without a request', () => {
  const { client, workers, runUntil } = rig(2, false);
  const learned: [number, number, string][] = [];
  workers[0]!.arp.onLearned = (ifIndex, ip, mac, off) => learned.push([ifIndex, ip, Buffer.from(mac.subarray(off, off + 6)).toString('hex')]);
  // Worker 0 pings the client: its ARP request is answered to queue 0 (ARP is not hashed).
  let replies = 0;
  workers[0]!.icmp.onEchoReply = () => { replies++; };
  workers[0]!.icmp.sendEcho(C, 1, 1, new Uint8Array(8));
  assert.ok(runUntil(() => replies === 1));
  assert.ok(learned.some(([, ip]) => ip === C), 'worker 0 reported the client');
  const [ifIndex, ip, mac] = learned.find(([, x]) => x === C)!;
  const before = workers[1]!.arp.stats.requestsSent;
  workers[1]!.arp.learn(ifIndex, ip, Buffer.from(mac, 'hex'));
  assert.equal(workers[1]!.arp.lookup(1, C)?.state, 1 /* reachable */);
  // Worker 1 connects to the client: it owns the flow (port filter), so the answer comes to it.
  client.tcp.listen({ port: 9000 });
  const s = workers[1]!.tcp.connect({ raddr: C, rport: 9000 });
  let up = false;
  s.onConnect = () => { up = true; };
  assert.ok(runUntil(() => up));
  assert.equal(workers[1]!.arp.stats.requestsSent, before, 'worker 1 sent no ARP request');
});

test('the fanout program: whole instructions, ends in a return, maps queues to slots', () => {
  for (const n of [1, 2, 3, 8]) {
    const p = fanoutProgram(n);
    assert.equal(p.length % 8, 0);
    assert.ok(p.length / 8 < 4096);
    const dv = new DataView(p.buffer, p.byteOffset, p.length);
    assert.equal(dv.getUint16(p.length - 8, true) & 0x07, 0x06, 'last instruction is a return');
  }
  const perm = fanoutProgram(2, [1, 0]);
  const dv = new DataView(perm.buffer, perm.byteOffset, perm.length);
  assert.equal(dv.getUint32(perm.length - 4, true), 0, 'queue 1 -> slot 0');
  assert.throws(() => fanoutProgram(2, [0]));
});

test('worker identity from the environment: bad values are nobody', () => {
  assert.equal(workerFromEnv({}), null);
  assert.equal(workerFromEnv({ TSTACK_WORKER: '2', TSTACK_WORKERS: '2' }), null);
  assert.equal(workerFromEnv({ TSTACK_WORKER: 'x', TSTACK_WORKERS: '2' }), null);
  assert.deepEqual(workerFromEnv({ TSTACK_WORKER: '1', TSTACK_WORKERS: '2', TSTACK_WORKER_SEED: '5', TSTACK_FANOUT_SLOTS: '1,0' }), { index: 1, count: 2, seed: 5, slots: [1, 0] });
  assert.deepEqual(workerFromEnv({ TSTACK_WORKER: '0', TSTACK_WORKERS: '2', TSTACK_FANOUT_SLOTS: 'junk' })!.slots, [0, 1]);
});

/** An ICMPv6 frame between two addresses: what the hash sees of a neighbour advertisement. */
function icmp6Frame(src: Uint8Array, dst: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + 40 + 8);
  f[12] = 0x86; f[13] = 0xdd; f[14] = 0x60; f[14 + 6] = 58;
  f.set(src, 14 + 8); f.set(dst, 14 + 24);
  return f;
}

test('NDP: the answer to worker 1\'s solicitation lands on worker 0, which passes it on; worker 1 resolves', () => {
  // A client address whose NA to the workers' address hashes to queue 0.
  const S6 = parseIpv6('2001:db8:211::2')!;
  let client = '';
  for (let k = 1; k < 200 && !client; k++) {
    const c = parseIpv6(`2001:db8:211::${(k + 16).toString(16)}`)!;
    const f = icmp6Frame(c, S6);
    if (rssQueueOfFrame(f, 0, f.length, 2) === 0) client = `2001:db8:211::${(k + 16).toString(16)}`;
  }
  assert.ok(client);
  const C6 = parseIpv6(client)!;
  for (const relay of [false, true]) {
    const { workers, runUntil } = rig(2, relay, client);
    runUntil(() => false, 2000); // DAD and the first router solicitations settle
    workers[1]!.ip6.icmp.sendEcho(C6, 1, 1, new Uint8Array(8));
    const resolved = () => { const e = workers[1]!.ip6.ndp.lookup(1, C6); return !!e && e.state !== 0 /* incomplete */; };
    const ok = runUntil(resolved, 3000);
    assert.equal(ok, relay, relay ? 'with the relay, worker 1 resolves the client' : 'without it, the answer is lost on worker 0');
  }
});
