// The fuzz target for the engine's input path: one Stack (IPv4 and IPv6, a TCP echo server on
// :80, a UDP echo on :7) on the virtual clock, fed frames made from the fuzzer's bytes. Real
// frames are the starting points: a second stack's TCP conversation with it (SYN, data, FIN),
// pings, UDP, IPv4 and IPv6 fragments, ARP, NDP, router advertisements. An input is
//   [template, flags, truncate, (offsetHigh, offsetLow, value)…]
// — the template (or, for 255, the bytes themselves as a frame), cut to truncate/255 of its
// length (0: whole), with bytes overwritten — so a byte-level mutator reaches every header field.
// flags bit 0: a TCP segment for a live connection gets that connection's sequence and
// acknowledgement numbers (a peer in step, so mutations reach the states past the handshake);
// bit 1: the IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums are made right again (so
// mutations reach past the checksum checks).
// Used by test/fuzz/guided.ts (coverage-guided, `npm run fuzz`), and by the tests.
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { NO_OFFLOADS, type NetDevice } from '../../src/base/device.js';
import { Prng } from '../../src/base/prng.js';
import { VirtualClock } from '../../src/base/time.js';
import { Stack } from '../../src/stack/stack.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { internetChecksum, pseudoHeaderV4 } from '../../src/wire/checksum.js';
import { finishIcmpv6Checksum } from '../../src/wire/icmpv6.js';
import { Ipv6Next } from '../../src/wire/ipv6.js';
import { NaFlag } from '../../src/wire/ndp.js';
import {
  OUR, OUR_LL, OUR_MAC, PEER, PEER_LL, PEER_MAC, echoRequest, fragmentFrames, icmp6, ip6, ipv6Frame, naFrame, nsFrame, pingFrame, raFrame,
} from '../helpers/ipv6-harness.js';

class Queue implements NetDevice {
  readonly offloads = NO_OFFLOADS;
  readonly frames: Uint8Array[] = [];
  keep = true;
  constructor(readonly name: string, readonly mac: Uint8Array, readonly mtu = 1500) {}
  transmit(buf: PacketBuffer): void { if (this.keep) this.frames.push(buf.bytes().slice()); buf.release(); }
}

const A = parseIpv4('198.18.7.1')!;
const CONFIG = { addr: '198.18.7.1/24', addr6: '2001:db8::2/64' };

/** The target's stack: addresses usable at once (no duplicate address detection). */
function targetStack(clock: VirtualClock, dev: NetDevice, seed: string | number, pool?: BufferPool): Stack {
  const rnd = new Prng(seed);
  const s = new Stack({ clock, name: 'fuzz', random: () => rnd.next(), ...(pool && { pool }) });
  s.sysctl.set('net.inet6.ip6.dad_count', 0);
  s.addInterface(dev, CONFIG);
  serve(s);
  return s;
}

const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const put16 = (b: Uint8Array, o: number, v: number) => { b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff; };
const put32 = (b: Uint8Array, o: number, v: number) => { put16(b, o, v >>> 16); put16(b, o + 2, v & 0xffff); };

/** Echo servers. Their own errors (a reply to a source with no route back) are the application's, not findings. */
function serve(s: Stack): void {
  const l = s.tcp.listen({ port: 80, backlog: 64 });
  l.onConnection = (c) => {
    c.onData = () => { const d = c.read(); if (d) try { c.write(d); } catch { /* closed meanwhile */ } };
    c.onEnd = () => { try { c.close(); } catch { /* already closed */ } };
    c.onClose = () => {};
  };
  const u = s.udp.open(); u.bind(0, 7); u.onMessage = (d, a, p) => { try { u.send(d, a, p); } catch { /* no route back */ } };
}

/** Frames a peer sends the target in a short life: a TCP conversation, pings, UDP, ARP, IPv6. */
export function templates(): Uint8Array[] {
  const clock = new VirtualClock(0);
  const da = new Queue('a0', OUR_MAC), db = new Queue('b0', PEER_MAC);
  const a = targetStack(clock, da, 'templates');
  const b = new Stack({ clock, name: 'b' });
  b.addInterface(db, { addr: '198.18.7.2/24' });
  const out: Uint8Array[] = [];
  const run = (ms: number) => {
    const until = clock.now() + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      let moved = false;
      while (da.frames.length) { const f = da.frames.shift()!; const buf = b.pool.alloc(); buf.appendBytes(f); b.input(1, buf); moved = true; }
      while (db.frames.length) { const f = db.frames.shift()!; out.push(f); const buf = a.pool.alloc(); buf.appendBytes(f); a.input(1, buf); moved = true; }
      a.poll(clock.now()); b.poll(clock.now());
      if (moved) continue;
      const next = Math.min(a.poll(clock.now()), b.poll(clock.now()));
      if (next > until) break;
      clock.set(Math.max(next, clock.now()));
    }
    clock.set(until);
  };
  const c = b.tcp.connect({ raddr: A, rport: 80 });
  c.onConnect = () => { c.write(new Uint8Array(3000).fill(0x41)); };
  c.onData = () => { c.read(); c.close(); };
  c.onClose = () => {};
  b.icmp.sendEcho(A, 1, 1, new Uint8Array(56).fill(0x61));
  b.icmp.sendEcho(parseIpv4('198.18.7.255')!, 1, 2, new Uint8Array(8));
  const u = b.udp.open();
  u.send(new Uint8Array(100).fill(1), A, 7);
  u.send(new Uint8Array(100).fill(2), A, 9999);
  u.send(new Uint8Array(3000).fill(3), A, 7); // three fragments
  run(5000);
  a.close(); b.close();
  const all = ip6('ff02::1');
  const echo = icmp6(PEER, OUR, echoRequest(1, 1, new Uint8Array(2000).fill(7)));
  const mldQuery = new Uint8Array(28); mldQuery[0] = 130;
  const udp6 = new Uint8Array(20); udp6[1] = 9; udp6[3] = 7; udp6[5] = 20;
  out.push(
    pingFrame(OUR, new Uint8Array(56)), pingFrame(OUR_LL, new Uint8Array(8), { src: PEER_LL }), pingFrame(all, new Uint8Array(8), { src: PEER_LL }),
    ...fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 1000, 5),
    ipv6Frame(PEER, OUR, Ipv6Next.HopByHop, Uint8Array.of(Ipv6Next.ICMPv6, 0, 1, 4, 0, 0, 0, 0, ...icmp6(PEER, OUR, echoRequest(2, 2, new Uint8Array(8))))),
    nsFrame(PEER, OUR), nsFrame(ip6('::'), OUR, { slla: null }), naFrame(PEER, OUR, PEER, NaFlag.Solicited | NaFlag.Override),
    raFrame({ mtu: 1400, prefixes: [{ prefix: '2001:db8:1::', valid: 600, preferred: 300 }] }),
    ipv6Frame(PEER_LL, all, Ipv6Next.ICMPv6, icmp6(PEER_LL, all, mldQuery), { hopLimit: 1 }),
    ipv6Frame(PEER, OUR, Ipv6Next.UDP, udp6),
  );
  return out;
}

const TEMPLATES = templates();

/** The stack under test; `input(data)` feeds one fuzzer input, `settle()` checks what must hold. */
export class EngineTarget {
  readonly clock = new VirtualClock(0);
  readonly pool = new BufferPool();
  readonly dev = new Queue('a0', OUR_MAC);
  readonly stack: Stack;
  readonly templates = TEMPLATES;
  private inputs = 0;

  constructor(seed: string | number = 'fuzz') {
    this.dev.keep = false;
    this.stack = targetStack(this.clock, this.dev, seed, this.pool);
  }

  /** The frame an input stands for. */
  frame(data: Uint8Array): Uint8Array {
    if (data.length === 0) return data;
    if (data[0] === 255) return data.subarray(1, 1 + 1514);
    const t = this.templates[data[0]! % this.templates.length]!;
    let f = t.slice();
    const flags = data[1] ?? 0;
    if (data.length > 2 && data[2] !== 0) f = f.subarray(0, Math.floor((f.length * data[2]!) / 255));
    for (let i = 3; i + 2 < data.length && f.length > 0; i += 3) f[((data[i]! << 8) | data[i + 1]!) % f.length] = data[i + 2]!;
    if (flags & 1) this.inStep(f);
    if (flags & 2) fixChecksums(f);
    return f;
  }

  /** An IPv4 TCP segment of a connection the stack holds: its seq is rcvNxt and its ack sndNxt. */
  private inStep(f: Uint8Array): void {
    if (f.length < 54 || be16(f, 12) !== 0x0800 || f[23] !== 6) return;
    const t = 14 + (f[14]! & 0x0f) * 4;
    if (f.length < t + 20) return;
    const src = be32(f, 26), dst = be32(f, 30), sport = be16(f, t), dport = be16(f, t + 2);
    for (const c of this.stack.tcp.connections()) {
      if (c.raddr !== src || c.laddr !== dst || c.rport !== sport || c.lport !== dport) continue;
      put32(f, t + 4, c.rcvNxt);
      put32(f, t + 8, c.sndNxt);
      return;
    }
  }

  /** Feeds one input; an exception escaping the engine is a finding. */
  input(data: Uint8Array): void {
    const buf = this.pool.alloc();
    buf.appendBytes(this.frame(data));
    this.stack.input(1, buf);
    this.stack.poll();
    if (++this.inputs % 64 === 0) { this.clock.advance(25); this.stack.poll(); }
  }

  /** Lets every timer run out; throws when packet buffers or reassembly state are still held. */
  settle(): void {
    this.clock.advance(600_000); this.stack.poll();
    this.clock.advance(600_000); this.stack.poll();
    if (this.stack.reass.inProgress !== 0) throw new Error(`reassembly still holds ${this.stack.reass.inProgress} packets after every timer ran`);
    if (this.pool.inUse > 64) throw new Error(`${this.pool.inUse} packet buffers still held after every timer ran`);
  }
}

/** Makes the IPv4 header checksum and the TCP, UDP, ICMP (IPv4) and ICMPv6 checksums right. */
export function fixChecksums(f: Uint8Array): void {
  if (f.length < 34) return;
  const type = be16(f, 12);
  if (type === 0x0800) {
    const ihl = (f[14]! & 0x0f) * 4;
    if (ihl < 20 || f.length < 14 + ihl) return;
    put16(f, 24, 0);
    put16(f, 24, internetChecksum(f, 14, ihl));
    const total = Math.min(be16(f, 16), f.length - 14);
    const l4 = 14 + ihl, len = total - ihl;
    if (len < 8 || (be16(f, 20) & 0x3fff) !== 0) return; // a fragment's checksum covers the whole datagram
    const proto = f[23]!;
    const at = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 ? 2 : -1;
    if (at < 0 || len < at + 2) return;
    put16(f, l4 + at, 0);
    const sum = internetChecksum(f, l4, len, proto === 1 ? 0 : pseudoHeaderV4(be32(f, 26), be32(f, 30), proto, len));
    put16(f, l4 + at, proto === 17 && sum === 0 ? 0xffff : sum);
  } else if (type === 0x86dd && f.length >= 62 && f[20] === 58) {
    const len = Math.min(be16(f, 18), f.length - 54);
    if (len >= 4) finishIcmpv6Checksum(f, 54, len, f, 22, f, 38);
  }
}
