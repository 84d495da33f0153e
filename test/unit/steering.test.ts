// Steering hash choices (issue 11; docs/architecture.md "Workers"): fragments by (addresses,
// proto, id), ICMP errors by the datagram they quote, and the AF_PACKET fanout program run
// through a classic BPF interpreter against the one hash in src/wire/rss.ts, frame by frame.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../src/base/prng.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/addr.js';
import {
  FlowKey, FlowKind, rssClassify, rssHash4, rssHash6, rssHashFragment4, rssHashFrame, rssQueueOfFrame,
} from '../../src/wire/rss.js';
import { fanoutProgram } from '../../src/driver/fanout.js';

const C = parseIpv4('198.18.211.1')!, S = parseIpv4('198.18.211.2')!, R = parseIpv4('198.18.212.1')!;
const C6 = parseIpv6('2001:db8:211::1')!, S6 = parseIpv6('2001:db8:211::2')!;

// ---- frame builders ----------------------------------------------------------------------

function eth(type: number, ip: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + ip.length);
  f[12] = type >> 8; f[13] = type & 0xff;
  f.set(ip, 14);
  return f;
}

/** An IPv4 packet: header (ihl 5, or 6 with a NOP option word), then payload. */
function ip4(src: number, dst: number, proto: number, payload: Uint8Array, o: { id?: number; frag?: number; options?: boolean } = {}): Uint8Array {
  const hl = o.options ? 24 : 20;
  const p = new Uint8Array(hl + payload.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x40 | (hl / 4); dv.setUint16(2, p.length); dv.setUint16(4, o.id ?? 0); dv.setUint16(6, o.frag ?? 0);
  p[8] = 64; p[9] = proto; dv.setUint32(12, src); dv.setUint32(16, dst);
  if (o.options) p.fill(1, 20, 24);
  p.set(payload, hl);
  return p;
}

function ports(sport: number, dport: number, len = 8): Uint8Array {
  const l4 = new Uint8Array(len);
  l4[0] = sport >> 8; l4[1] = sport & 0xff; l4[2] = dport >> 8; l4[3] = dport & 0xff;
  return l4;
}

function ip6(src: Uint8Array, dst: Uint8Array, next: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  p[0] = 0x60; p[4] = payload.length >> 8; p[5] = payload.length & 0xff; p[6] = next; p[7] = 64;
  p.set(src, 8); p.set(dst, 24); p.set(payload, 40);
  return p;
}

function frag6(next: number, id: number, offset: number, more: boolean, data: Uint8Array): Uint8Array {
  const h = new Uint8Array(8 + data.length);
  const dv = new DataView(h.buffer);
  h[0] = next; dv.setUint16(2, (offset << 3) | (more ? 1 : 0)); dv.setUint32(4, id);
  h.set(data, 8);
  return h;
}

/** An ICMP (v4) error of `type`/`code` quoting `quoted` (its header and 8 bytes). */
function icmp4Error(type: number, code: number, quoted: Uint8Array, from = R, to = S): Uint8Array {
  const ihl = (quoted[0]! & 0x0f) * 4;
  const body = new Uint8Array(8 + Math.min(quoted.length, ihl + 8));
  body[0] = type; body[1] = code;
  body.set(quoted.subarray(0, body.length - 8), 8);
  return eth(0x0800, ip4(from, to, 1, body));
}

function icmp6Error(type: number, quoted: Uint8Array): Uint8Array {
  const body = new Uint8Array(8 + Math.min(quoted.length, 1232));
  body[0] = type;
  body.set(quoted.subarray(0, body.length - 8), 8);
  return eth(0x86dd, ip6(C6, S6, 58, body));
}

// ---- a classic BPF interpreter for the fanout program (packet = the frame's network header) ----

function runCbpf(prog: Uint8Array, frame: Uint8Array): number {
  const dv = new DataView(prog.buffer, prog.byteOffset, prog.length);
  const proto = (frame[12]! << 8) | frame[13]!;
  const pkt = frame.subarray(14);
  const M = new Array<number | undefined>(16).fill(undefined);
  let A = 0, X = 0, pc = 0;
  const NET = -0x100000, AD_PROTOCOL = -0x1000;
  const load = (k: number, size: number): number | null => {
    if (k === AD_PROTOCOL) return proto;
    const off = k - NET;
    if (k >= 0 || off < 0 || off + size > pkt.length) return null;
    let v = 0;
    for (let i = 0; i < size; i++) v = (v * 256) + pkt[off + i]!;
    return v >>> 0;
  };
  for (let steps = 0; steps < 10_000; steps++) {
    const code = dv.getUint16(pc * 8, true), jt = dv.getUint8(pc * 8 + 2), jf = dv.getUint8(pc * 8 + 3);
    const k = dv.getInt32(pc * 8 + 4, true), ku = k >>> 0;
    pc++;
    const cls = code & 0x07, size = code & 0x18, mode = code & 0xe0;
    const bytes = size === 0x00 ? 4 : size === 0x08 ? 2 : 1;
    if (cls === 0x00) { // LD
      let v: number | null;
      if (mode === 0x20) v = load(k, bytes);
      else if (mode === 0x40) v = load((X | 0) + k, bytes);
      else if (mode === 0x60) { const m = M[k]; assert.notEqual(m, undefined, `M[${k}] read before written`); v = m!; }
      else throw new Error(`LD mode ${mode}`);
      if (v === null) return 0;
      A = v >>> 0;
    } else if (cls === 0x01) { // LDX
      if (mode === 0xa0) { const v = load(k, 1); if (v === null) return 0; X = (v & 0x0f) * 4; }
      else if (mode === 0x60) { const m = M[k]; assert.notEqual(m, undefined, `M[${k}] read before written`); X = m!; }
      else throw new Error(`LDX mode ${mode}`);
    } else if (cls === 0x02) { M[k] = A; }
    else if (cls === 0x04) { // ALU
      const op = code & 0xf0, src = code & 0x08 ? X : ku;
      switch (op) {
        case 0x00: A = (A + src) >>> 0; break;
        case 0x20: A = Math.imul(A, src) >>> 0; break;
        case 0x40: A = (A | src) >>> 0; break;
        case 0x50: A = (A & src) >>> 0; break;
        case 0x60: A = (A << src) >>> 0; break;
        case 0x70: A = A >>> src; break;
        case 0x90: A = A % src; break;
        case 0xa0: A = (A ^ src) >>> 0; break;
        default: throw new Error(`ALU op ${op}`);
      }
    } else if (cls === 0x05) { // JMP
      const op = code & 0xf0;
      if (op === 0x00) { pc += ku; continue; }
      const src = code & 0x08 ? X : ku;
      const c = op === 0x10 ? A === src : op === 0x20 ? A > src : op === 0x30 ? A >= src : op === 0x40 ? (A & src) !== 0 : (() => { throw new Error(`JMP op ${op}`); })();
      pc += c ? jt : jf;
    } else if (cls === 0x06) { return code & 0x10 ? A : ku; }
    else if (cls === 0x07) { if ((code & 0xf8) === 0x00) X = A; else A = X; }
  }
  throw new Error('program did not end');
}

function sampleFrames(rng: Prng): Uint8Array[] {
  const r32 = () => (rng.next() * 2 ** 32) >>> 0, r16 = () => Math.floor(rng.next() * 65536);
  const out: Uint8Array[] = [];
  const a = r32(), b = r32(), sp = r16(), dp = r16(), id = r16();
  const opt = rng.next() < 0.5;
  const tcp = ip4(a, b, 6, ports(sp, dp, 20), { options: opt });
  const udp = ip4(a, b, 17, ports(sp, dp, 8), { options: opt });
  out.push(eth(0x0800, tcp), eth(0x0800, udp));
  out.push(eth(0x0800, ip4(a, b, 17, ports(sp, dp, 8), { id, frag: 0x2000 })));                  // first fragment
  out.push(eth(0x0800, ip4(a, b, 17, new Uint8Array(64), { id, frag: 0x00b9 })));                // last fragment
  out.push(eth(0x0800, ip4(a, b, 1, Uint8Array.of(8, 0, 0, 0, 0, 1, 0, 1))));                     // echo request
  for (const t of [3, 4, 11, 12]) out.push(icmp4Error(t, 4, tcp, r32(), b), icmp4Error(t, 3, udp, r32(), b));
  out.push(icmp4Error(3, 4, ip4(a, b, 17, ports(sp, dp, 8), { id, frag: 0x2000 })));              // quotes a first fragment
  out.push(icmp4Error(11, 1, ip4(a, b, 17, new Uint8Array(8), { id, frag: 0x0010 })));            // quotes a later one
  out.push(icmp4Error(5, 0, tcp));                                                                // a redirect: not an error we steer
  out.push(eth(0x0806, new Uint8Array(28)));
  const x = new Uint8Array(16), y = new Uint8Array(16);
  for (let i = 0; i < 16; i++) { x[i] = r16() & 0xff; y[i] = r16() & 0xff; }
  const tcp6 = ip6(x, y, 6, ports(sp, dp, 20)), udp6 = ip6(x, y, 17, ports(sp, dp, 8));
  out.push(eth(0x86dd, tcp6), eth(0x86dd, udp6));
  out.push(eth(0x86dd, ip6(x, y, 44, frag6(17, r32(), 0, true, ports(sp, dp, 16)))));
  out.push(eth(0x86dd, ip6(x, y, 44, frag6(17, r32(), 185, false, new Uint8Array(40)))));
  for (const t of [1, 2, 3, 4]) out.push(icmp6Error(t, tcp6), icmp6Error(t, udp6));
  out.push(icmp6Error(128, tcp6));
  out.push(eth(0x86dd, ip6(x, y, 58, Uint8Array.of(128, 0, 0, 0, 0, 1, 0, 1))));
  // Truncated: both sides must agree on a failed read too.
  out.push(icmp4Error(3, 3, tcp).subarray(0, 14 + 20 + 8 + 10));
  return out;
}

test('the fanout program computes the same queue as rssQueueOfFrame for every kind of frame', () => {
  const rng = new Prng(11);
  for (const n of [2, 3, 4]) {
    const prog = fanoutProgram(n);
    for (let i = 0; i < 150; i++) {
      for (const f of sampleFrames(rng)) {
        assert.equal(runCbpf(prog, f), rssQueueOfFrame(f, 0, f.length, n), `n=${n}, frame ${Buffer.from(f).toString('hex')}`);
        // rssHashFrame's fast path and the steering's classification agree.
        const key = new FlowKey();
        rssClassify(f, 0, f.length, key);
        assert.equal(rssHashFrame(f, 0, f.length), key.hash);
      }
    }
    // A permuted slot map sends each queue to its slot (a failed read ends in slot 0, not queue 0's: the truncated sample is left out).
    const perm = Array.from({ length: n }, (_, q) => (q + 1) % n);
    const p2 = fanoutProgram(n, perm);
    for (const f of sampleFrames(rng).slice(0, -1)) assert.equal(runCbpf(p2, f), perm[rssQueueOfFrame(f, 0, f.length, n)]);
  }
});

test('every fragment of a datagram hashes alike; different datagrams of one flow spread over workers', () => {
  const first = eth(0x0800, ip4(C, S, 17, ports(53, 40000, 8), { id: 77, frag: 0x2000 }));
  const middle = eth(0x0800, ip4(C, S, 17, new Uint8Array(1480), { id: 77, frag: 0x2000 | 185 }));
  const last = eth(0x0800, ip4(C, S, 17, new Uint8Array(40), { id: 77, frag: 370 }));
  const h = rssHashFragment4(C, S, 17, 77);
  for (const f of [first, middle, last]) assert.equal(rssHashFrame(f, 0, f.length), h);
  const key = new FlowKey();
  assert.equal(rssClassify(first, 0, first.length, key), FlowKind.Fragment);
  // One flow's datagrams (ids 0..999) are reassembled on both of 2 workers, not on one.
  const perQueue = [0, 0];
  for (let id = 0; id < 1000; id++) perQueue[rssHashFragment4(C, S, 17, id) % 2]!++;
  assert.ok(perQueue[0]! > 400 && perQueue[1]! > 400, `spread ${perQueue}`);
  // IPv6: the Fragment header's id, every fragment alike.
  const a = eth(0x86dd, ip6(C6, S6, 44, frag6(17, 0x01020304, 0, true, ports(53, 40000, 16))));
  const b = eth(0x86dd, ip6(C6, S6, 44, frag6(17, 0x01020304, 100, false, new Uint8Array(24))));
  assert.equal(rssHashFrame(a, 0, a.length), rssHashFrame(b, 0, b.length));
  assert.equal(rssClassify(b, 0, b.length, key), FlowKind.Fragment);
});

test('an ICMP error hashes as the flow it quotes: our port, our address, the flow\'s worker', () => {
  const key = new FlowKey();
  // Our UDP datagram S:40001 -> C:9 drew a port unreachable from C; a TCP segment S:50000 -> R:80 a frag-needed from a router.
  const udpOut = ip4(S, C, 17, ports(40001, 9, 8));
  const unreach = icmp4Error(3, 3, udpOut, C, S);
  assert.equal(rssClassify(unreach, 0, unreach.length, key), FlowKind.Udp);
  assert.ok(key.icmpError);
  assert.equal(key.hash, rssHash4(C, S, 9, 40001), 'the hash of the flow, either direction');
  assert.equal(key.localPort, 40001);
  assert.equal(key.localAddr, S);
  const tcpOut = ip4(S, R, 6, ports(50000, 80, 20), { options: true });
  const needFrag = icmp4Error(3, 4, tcpOut, C, S);
  assert.equal(rssClassify(needFrag, 0, needFrag.length, key), FlowKind.Tcp);
  assert.equal(key.hash, rssHash4(R, S, 80, 50000));
  const ttl = icmp4Error(11, 0, tcpOut, C, S);
  assert.equal(rssHashFrame(ttl, 0, ttl.length), rssHash4(R, S, 80, 50000));
  // ICMPv6 Packet Too Big about our TCP segment, Destination Unreachable about our UDP datagram.
  const ptb = icmp6Error(2, ip6(S6, C6, 6, ports(50001, 443, 20)));
  assert.equal(rssClassify(ptb, 0, ptb.length, key), FlowKind.Tcp);
  assert.equal(key.hash, rssHash6(C6, 0, S6, 0, 443, 50001));
  assert.equal(key.localPort, 50001);
  assert.equal(Buffer.from(ptb.subarray(key.localOff6, key.localOff6 + 16)).toString('hex'), Buffer.from(S6).toString('hex'));
  const u6 = icmp6Error(1, ip6(S6, C6, 17, ports(50002, 53, 8)));
  assert.equal(rssClassify(u6, 0, u6.length, key), FlowKind.Udp);
  assert.equal(key.hash, rssHash6(S6, 0, C6, 0, 50002, 53));
  // Echo is nobody's: any worker answers it.
  const echo = eth(0x0800, ip4(C, S, 1, Uint8Array.of(8, 0, 0, 0, 0, 1, 0, 1)));
  assert.equal(rssClassify(echo, 0, echo.length, key), FlowKind.None);
  assert.equal(key.icmpError, false);
});

// ---- two worker stacks on a 2-queue memory port, with the software steering between them ----

import { MemoryWire } from '../../src/driver/memory.js';
import { VirtualClock } from '../../src/base/time.js';
import { Stack } from '../../src/stack/stack.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import { virtualRunner } from '../helpers/virtual-run.js';
import { flowOwner, ownsTuple, ownsTuple6, ownsUdpPort, type WorkerIdentity } from '../../src/runtime/worker.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import type { NetError } from '../../src/base/errors.js';

/** A kernel-like peer (198.18.211.1) and 2 workers (198.18.211.2) steered as src/runtime/worker.ts does. */
function steeredRig() {
  const clock = new VirtualClock(0);
  const wire = new MemoryWire({ clock, seed: 5, realtime: false });
  const cport = wire.createPort({ name: 'c0' });
  const queues = wire.createQueues(2, { name: 's0' });
  const peer = new Stack({ clock, random: (() => { const r = new Prng(1); return () => r.next(); })() });
  peer.addInterface(cport, { addr: '198.18.211.1/24', addr6: '2001:db8:211::1/64' });
  peer.sysctl.set('net.inet.icmp.icmplim', 0);
  const steered = { frames: 0, reassembled: 0 };
  const workers = queues.map((q, i) => {
    const s = new Stack({ clock, random: (() => { const r = new Prng(20 + i); return () => r.next(); })() });
    s.addInterface(q, { addr: '198.18.211.2/24', addr6: '2001:db8:211::2/64' });
    const id = { index: i, count: 2, seed: 1, slots: [0, 1] } as WorkerIdentity;
    s.tcp.portFilter = ownsTuple(id);
    s.tcp.portFilter6 = ownsTuple6(id);
    s.udp.portFilter = ownsUdpPort(id);
    return s;
  });
  const owners = workers.map((s, i) => flowOwner(s, i, 2));
  workers.forEach((s, i) => {
    const hook = (v6: boolean) => (ifIndex: number, buf: PacketBuffer): boolean => {
      const to = owners[i]!.packet(buf.data, buf.start, buf.end - buf.start, v6);
      if (to === i) return false;
      steered.reassembled++;
      // The owner gets it framed again (what the IPC message carries).
      const b = queues[to]!.pool.alloc(queues[to]!.pool.headroom + 14 + buf.length);
      b.data.set(s.interfaceByIndex(ifIndex)!.mac, b.start);
      b.data[b.start + 12] = v6 ? 0x86 : 0x08; b.data[b.start + 13] = v6 ? 0xdd : 0x00;
      b.data.set(buf.data.subarray(buf.start, buf.end), b.start + 14);
      b.end = b.start + 14 + buf.length;
      buf.release();
      workers[to]!.input(1, b);
      return true;
    };
    s.ipv4.onReassembled = hook(false);
    s.ip6.onReassembled = hook(true);
    // ARP replies reach queue 0: what one worker learns, all learn (the supervisor's relay).
    s.arp.onLearned = (ifIndex, ip, mac, off) => { for (const o of workers) if (o !== s) o.arp.learn(ifIndex, ip, mac.slice(off, off + 6)); };
    s.ip6.ndp.onLearned = (ifIndex, addr, addrOff, mac, macOff) => {
      for (const o of workers) if (o !== s) o.ip6.ndp.learnShared(ifIndex, addr.slice(addrOff, addrOff + 16), mac.slice(macOff, macOff + 6));
    };
  });
  const nodes: [Stack, typeof cport, number][] = [[peer, cport, -1], [workers[0]!, queues[0]!, 0], [workers[1]!, queues[1]!, 1]];
  const rx: PacketBuffer[] = [];
  const step = () => {
    let moved = false;
    for (const [s, p, qi] of nodes) {
      const k = p.rxBurst(rx, 64);
      for (let i = 0; i < k; i++) {
        const b = rx[i]!;
        moved = true;
        if (qi >= 0) {
          const to = owners[qi]!.frame(b.data, b.start, b.end - b.start);
          if (to !== qi) { steered.frames++; workers[to]!.input(1, b); continue; }
        }
        s.input(1, b);
      }
      s.poll(clock.now());
    }
    return moved;
  };
  const runUntil = virtualRunner(clock, wire, nodes, step, 5_000);
  // Let every worker learn the peer's MAC (and the peer theirs) before the test's traffic.
  for (const w of workers) { const u = w.udp.open(); u.send(new Uint8Array(1), C, 9); u.close(); }
  runUntil(() => false, 3_000); // DAD and the first neighbour exchanges
  return { peer, workers, steered, runUntil };
}

/** A UDP echo on the peer at `port` answering with `size` bytes (default: the request). */
function echo(peer: Stack, port: number, size = 0) {
  const u = peer.udp.open();
  u.bind(0, port);
  u.onMessage = (data, addr, p) => u.send(size ? new Uint8Array(size).fill(7) : data, addr, p);
  return u;
}

test('steered workers: a UDP client on each worker gets the replies of its first peer and of another one, small and fragmented (3000 bytes)', () => {
  const { peer, workers, steered, runUntil } = steeredRig();
  echo(peer, 7001); echo(peer, 7002, 3000);
  let got = 0;
  const sizes: number[][] = [[], []];
  for (const [i, w] of workers.entries()) {
    for (let k = 0; k < 20; k++) {
      const u = w.udp.open();
      u.onMessage = (data) => { sizes[i]!.push(data.length); got++; };
      u.send(new Uint8Array([1, 2, 3]), C, 7001);      // the port is chosen knowing this peer
      assert.equal(u.localPort % 2, i, 'an ephemeral UDP port of worker i is i mod 2');
      assert.equal(rssHash4(S, C, u.localPort, 7001) % 2, i, 'and its first peer\'s replies hash to worker i');
      u.send(new Uint8Array([4]), C, 7002);            // replies: 3000 bytes, fragmented, hashed by (addresses, id)
    }
  }
  assert.ok(runUntil(() => got === 80), `replies ${got}/80`);
  for (const s of sizes) { assert.equal(s.filter((n) => n === 3).length, 20); assert.equal(s.filter((n) => n === 3000).length, 20); }
  for (const w of workers) assert.equal(w.udp.stats.noPort, 0, 'no datagram found no socket');
  assert.ok(steered.reassembled > 0, 'some reassembled datagrams went on to their owner');
});

test('steered workers: a port unreachable about a connected UDP socket reaches that socket on its worker (ECONNREFUSED)', () => {
  const { workers, runUntil, peer } = steeredRig();
  const errors: string[][] = [[], []];
  for (const [i, w] of workers.entries()) {
    for (let k = 0; k < 10; k++) {
      const u = w.udp.open();
      u.bind(0, 0);                                    // bound before connect, as node:dgram does
      u.connect(C, 9 + k);
      u.onError = (e: NetError) => { errors[i]!.push(e.code); };
      u.send(new Uint8Array([1]));
    }
  }
  const ok = runUntil(() => errors[0]!.length === 10 && errors[1]!.length === 10);
  assert.ok(ok, `errors ${errors.map((e) => e.length)}; ${JSON.stringify([peer.ipv4.icmp.stats, peer.drops, ...workers.map((w) => [w.ipv4.icmp.stats, w.drops])])}`);
  for (const e of errors) assert.ok(e.every((c) => c === 'ECONNREFUSED'));
  void peer;
});

test('steered workers: a UDP server port every worker bound is served by whichever worker the datagram reaches', () => {
  const { peer, workers, steered, runUntil } = steeredRig();
  const served = [0, 0];
  workers.forEach((w, i) => { const u = w.udp.open(); u.bind(0, 5353); u.onMessage = (d, a, p) => { served[i]!++; u.send(d, a, p); }; });
  let answers = 0;
  for (let k = 0; k < 40; k++) { const u = peer.udp.open(); u.onMessage = () => { answers++; }; u.send(new Uint8Array(k === 0 ? 3000 : 10), S, 5353); }
  assert.ok(runUntil(() => answers === 40), `answers ${answers}`);
  assert.ok(served[0]! > 5 && served[1]! > 5, `both serve: ${served}`);
  assert.equal(steered.frames, 0, 'nothing needed a hop');
});

test('steered workers: IPv6 active opens of each worker choose ports whose return traffic hashes back to it (no reset)', () => {
  const { peer, workers, steered, runUntil } = steeredRig();
  const l = peer.tcp.listen({ port: 7000, addr6: new Uint8Array(16) } as Parameters<Stack['tcp']['listen']>[0]);
  l.onConnection = (s: TcpSocket) => { s.onData = () => { s.read(); s.write(new Uint8Array([1])); }; };
  let ok = 0;
  for (const [i, w] of workers.entries()) {
    for (let k = 0; k < 50; k++) {
      const s = w.tcp.connect({ raddr: 0, rport: 7000, raddr6: C6 });
      assert.equal(rssHash6(S6, 0, C6, 0, s.localPort, 7000) % 2, i);
      s.onConnect = () => s.write(new Uint8Array([2]));
      s.onData = () => { s.read(); ok++; s.close(); };
    }
  }
  assert.ok(runUntil(() => ok === 100), `${ok}/100 answered`);
  for (const w of workers) assert.equal(w.tcp.counters.sndRst, 0);
  assert.equal(steered.frames, 0);
});
