// TCP segmentation offload on the memory wire: super-segments cross whole between ports that
// offload (GRO-equivalent), are segmented in software for ports that do not or when faults are
// configured, and a sender whose device lacks tso4 never builds one. Virtual clock throughout.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BufferPool, Csum, Gso, type PacketBuffer } from '../../src/base/pktbuf.js';
import { MemoryWire, type MemoryPort, type MemoryPortOptions } from '../../src/driver/memory.js';
import { segmentTcp4 } from '../../src/base/offload.js';
import { Stack } from '../../src/stack/stack.js';
import { VirtualClock } from '../../src/base/time.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { TcpState } from '../../src/stack/tcp/tcb.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { fold, pseudoHeaderV4, sum16 } from '../../src/wire/checksum.js';

const B = parseIpv4('198.18.5.2')!;
const ETH_MAX = 1514;

interface Seen { frames: number; maxLen: number; gsoFrames: number; gsoSizes: Set<number>; partialsLeft: number; badMultiple: number }
const seen = (): Seen => ({ frames: 0, maxLen: 0, gsoFrames: 0, gsoSizes: new Set(), partialsLeft: 0, badMultiple: 0 });

/** Two stacks on one wire; the test drives the loop and inspects every frame B (or A) receives. */
class Pair {
  readonly clock = new VirtualClock(0);
  readonly wire: MemoryWire;
  readonly pa: MemoryPort;
  readonly pb: MemoryPort;
  readonly a: Stack;
  readonly b: Stack;
  readonly atB = seen();
  readonly atA = seen();
  /** Every frame A's device is given to send (length, gso). */
  readonly sentByA: { len: number; gso: number }[] = [];
  private readonly rx: PacketBuffer[] = [];

  constructor(aPort: MemoryPortOptions, bPort: MemoryPortOptions) {
    this.wire = new MemoryWire({ clock: this.clock, seed: 7 });
    this.pa = this.wire.createPort({ name: 'a', ...aPort });
    this.pb = this.wire.createPort({ name: 'b', ...bPort });
    const tx = this.pa.transmit.bind(this.pa);
    this.pa.transmit = (buf: PacketBuffer) => { this.sentByA.push({ len: buf.length, gso: buf.gso }); tx(buf); };
    this.a = new Stack({ clock: this.clock, name: 'a', random: seeded(1) });
    this.b = new Stack({ clock: this.clock, name: 'b', random: seeded(2) });
    this.a.addInterface(this.pa, { addr: '198.18.5.1/24' });
    this.b.addInterface(this.pb, { addr: '198.18.5.2/24' });
  }

  private pump(stack: Stack, port: MemoryPort, s: Seen): number {
    let n: number, total = 0;
    do {
      n = port.rxBurst(this.rx, 32);
      for (let i = 0; i < n; i++) {
        const f = this.rx[i]!;
        const len = f.length;
        s.frames++;
        if (len > s.maxLen) s.maxLen = len;
        if (f.csum === Csum.Partial) s.partialsLeft++;
        if (f.gso !== Gso.None) {
          s.gsoFrames++;
          s.gsoSizes.add(f.gsoSize);
          // Headers: Ethernet 14, IPv4 20, TCP from its data offset.
          const payload = len - 14 - 20 - (f.data[f.start + 14 + 20 + 12]! >> 4) * 4;
          if (payload % f.gsoSize !== 0) s.badMultiple++;
        }
        stack.input(1, f);
      }
      total += n;
    } while (n === 32);
    stack.poll(this.clock.now());
    return total;
  }

  /** Delivers everything due; when nothing moves, jumps the clock to the next event. */
  step(): void {
    const moved = this.pump(this.b, this.pb, this.atB) + this.pump(this.a, this.pa, this.atA);
    if (moved === 0) {
      const next = Math.min(this.wire.nextEventTime(), this.a.wheel.nextDeadline(), this.b.wheel.nextDeadline());
      if (next === Infinity) throw new Error('simulation idle');
      this.clock.set(next);
    }
  }

  runUntil(done: () => boolean, maxMs = 60_000): boolean {
    while (!done()) {
      if (this.clock.now() > maxMs) return false;
      this.step();
    }
    return true;
  }
}

function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

function payload(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24;
  return b;
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Transfer { client: TcpSocket; server: () => TcpSocket | null; got: () => Uint8Array; done: () => boolean }

/** A streams `data` to B, then closes; B reads everything and closes on end. */
function transfer(p: Pair, data: Uint8Array): Transfer {
  const chunks: Uint8Array[] = [];
  let srv: TcpSocket | null = null;
  let ended = false;
  const l = p.b.tcp.listen({ port: 80 });
  l.onConnection = (s) => {
    srv = s;
    s.onData = () => { for (let c = s.read(); c; c = s.read()) chunks.push(c); };
    s.onEnd = () => { ended = true; s.close(); };
  };
  const c = p.a.tcp.connect({ raddr: B, rport: 80 });
  let off = 0;
  const go = () => {
    while (off < data.length) { const n = c.write(data.subarray(off)); if (n === 0) return; off += n; }
    c.onDrain = null;
    c.close();
  };
  c.onConnect = go;
  c.onDrain = go;
  return {
    client: c,
    server: () => srv,
    got: () => Buffer.concat(chunks),
    done: () => ended,
  };
}

const TSO = { txCsum: true, rxCsum: true, tso4: true };

test('between two TSO ports a 64 KiB super-segment crosses the wire whole, in whole MSS units, and every byte arrives in order', () => {
  const p = new Pair({ offloads: TSO }, { offloads: TSO });
  const data = payload(2 << 20);
  const t = transfer(p, data);
  assert.ok(p.runUntil(t.done), `transfer stalled: client ${t.client.state}`);
  assert.equal(sha(t.got()), sha(data));
  assert.ok(p.atB.gsoFrames > 0, 'no super-segment reached B');
  assert.ok(p.atB.maxLen > ETH_MAX && p.atB.maxLen <= 65535 + 14, `largest frame ${p.atB.maxLen}`);
  // MSS 1460 less 12 bytes of timestamps: every super-segment is made of full 1448-byte segments.
  assert.deepEqual([...p.atB.gsoSizes], [1448]);
  assert.equal(p.atB.badMultiple, 0);
  // Checksums were never computed on the way (CHECKSUM_PARTIAL crosses like a veth), and none
  // failed: the receiver took them as verified.
  assert.equal(p.b.tcp.counters.rcvBadChecksum, 0);
  assert.equal(p.atB.partialsLeft, 0);
  // Far fewer segments than MSS-sized frames would need: 2 MiB / 1448 = 1449.
  assert.ok(p.a.tcp.counters.sndData < 300, `data segments sent: ${p.a.tcp.counters.sndData}`);
  assert.equal(p.a.tcp.counters.sndRexmtPackets, 0);
});

test('a super-segment of two or more full segments is ACKed at once (it counts as that many segments for delayed ACK)', () => {
  const p = new Pair({ offloads: TSO }, { offloads: TSO });
  const data = payload(256 << 10);
  const t = transfer(p, data);
  assert.ok(p.runUntil(() => t.server() !== null));
  // From here on, watch each super-segment B takes and whether B answers before time moves.
  let checked = 0;
  while (!t.done()) {
    const before = p.atB.gsoFrames, acks = p.b.tcp.counters.sndAcks, now = p.clock.now();
    p.step();
    if (p.atB.gsoFrames > before && p.clock.now() === now) {
      assert.ok(p.b.tcp.counters.sndAcks > acks, 'a super-segment waited for the delayed-ACK timer');
      checked++;
    }
  }
  assert.ok(checked > 0);
  assert.equal(sha(t.got()), sha(data));
});

test('the sender never has more in flight than the peer\'s window with super-segments', () => {
  const p = new Pair({ offloads: TSO }, { offloads: TSO });
  p.b.sysctl.set('net.inet.tcp.recvspace', 50_000);
  const data = payload(1 << 20);
  const t = transfer(p, data);
  // A 50,000-byte receive buffer: the peer's window, not cwnd, is what limits A.
  let worst = 0;
  while (!t.done()) {
    p.step();
    const tcb = t.client.tcb;
    if (tcb.state === TcpState.ESTABLISHED) worst = Math.max(worst, tcb.flightSize - tcb.sndWnd);
    if (p.clock.now() > 60_000) break;
  }
  assert.ok(t.done());
  assert.ok(worst <= 0, `flight exceeded the window by ${worst} bytes`);
  assert.equal(sha(t.got()), sha(data));
});

test('a window-limited TSO sender with more buffered than the window waits for whole super-segments (Linux tcp_tso_should_defer) instead of answering every ACK with the sliver it freed', () => {
  const p = new Pair({ offloads: TSO }, { offloads: TSO });
  // A send buffer four times the peer's window: the window, not the application, limits A.
  for (const st of [p.a, p.b]) {
    st.sysctl.set('net.inet.tcp.sendbuf_auto', false);
    st.sysctl.set('net.inet.tcp.recvbuf_auto', false);
  }
  p.a.sysctl.set('net.inet.tcp.sendspace', 1 << 20);
  p.b.sysctl.set('net.inet.tcp.recvspace', 256 << 10);
  const data = payload(16 << 20);
  const t = transfer(p, data);
  assert.ok(p.runUntil(t.done), `transfer stalled: client ${t.client.state}`);
  assert.equal(sha(t.got()), sha(data));
  const dataFrames = p.sentByA.filter((f) => f.len > 100).length;
  // Whole 64 KiB super-segments would be 16 MiB / 62,264 bytes = 270 frames; every ACK
  // answered with what it freed cut the flight into 4-20 KiB pieces (about 1,000 frames).
  assert.ok(dataFrames < 400, `data frames from A: ${dataFrames}`);
  // Nothing waited for a timer: ACKs of the flight always came back to release what was held.
  assert.equal(p.a.tcp.counters.sndRexmtPackets, 0);
  assert.ok(p.clock.now() < 1000, `virtual time ${p.clock.now()} ms`);
});

test('a TSO sender towards a port without tso4: the wire segments in software, no frame above the MTU arrives, checksums verify', () => {
  const p = new Pair({ offloads: TSO }, { offloads: { txCsum: true } });
  const data = payload(1 << 20);
  const t = transfer(p, data);
  assert.ok(p.runUntil(t.done));
  assert.equal(sha(t.got()), sha(data));
  assert.ok(p.sentByA.some((f) => f.gso === Gso.Tcp4), 'A should still build super-segments');
  assert.ok(p.atB.maxLen <= ETH_MAX, `B received a ${p.atB.maxLen}-byte frame`);
  assert.equal(p.atB.gsoFrames, 0);
  assert.equal(p.b.tcp.counters.rcvBadChecksum, 0);
  assert.ok(p.b.tcp.counters.rcvTotal > 700, `segments B took: ${p.b.tcp.counters.rcvTotal}`);
});

test('a sender whose device lacks tso4 never builds a frame larger than the MTU', () => {
  const p = new Pair({ offloads: { txCsum: true } }, { offloads: TSO });
  const data = payload(1 << 20);
  const t = transfer(p, data);
  assert.ok(p.runUntil(t.done));
  assert.equal(sha(t.got()), sha(data));
  assert.ok(p.sentByA.length > 700);
  assert.ok(p.sentByA.every((f) => f.len <= ETH_MAX && f.gso === Gso.None), `largest ${Math.max(...p.sentByA.map((f) => f.len))}`);
});

test('with loss configured on the path, super-frames are segmented before the faults: a loss costs one segment, not 45', () => {
  const p = new Pair({ offloads: TSO, faults: { loss: 0.02 } }, { offloads: TSO });
  const data = payload(1 << 20);
  const t = transfer(p, data);
  assert.ok(p.runUntil(t.done, 600_000), `stalled: ${t.client.state}`);
  assert.equal(sha(t.got()), sha(data));
  assert.ok(p.atB.maxLen <= ETH_MAX, `B received a ${p.atB.maxLen}-byte frame`);
  assert.ok(p.pa.stats().faults.tx.dropped > 0);
});

test('segmentTcp4 splits a super-frame into valid frames: lengths, ids, sequence numbers, flags and checksums', () => {
  const pool = new BufferPool();
  const mss = 1000, n = 3500;
  const f = pool.alloc(pool.headroom + 14 + 20 + 32 + n);
  const o = f.append(14 + 20 + 32 + n);
  const d = f.data;
  d.fill(0xee, o, o + 12);
  d[o + 12] = 0x08; d[o + 13] = 0x00;
  const ip = o + 14;
  d[ip] = 0x45; d[ip + 2] = (20 + 32 + n) >> 8; d[ip + 3] = (20 + 32 + n) & 0xff; d[ip + 4] = 0x12; d[ip + 5] = 0x34;
  d[ip + 6] = 0x40; d[ip + 8] = 64; d[ip + 9] = 6;
  d.set([198, 18, 5, 1], ip + 12); d.set([198, 18, 5, 2], ip + 16);
  const tcp = ip + 20;
  d[tcp] = 0x30; d[tcp + 1] = 0x39; d[tcp + 2] = 0; d[tcp + 3] = 80;
  d.set([0xff, 0xff, 0xfc, 0x18], tcp + 4); // seq near the wrap
  d[tcp + 12] = 8 << 4; d[tcp + 13] = 0x19; // ACK|PSH|FIN
  d[tcp + 14] = 0x10;
  for (let i = 0; i < n; i++) d[tcp + 32 + i] = i & 0xff;
  f.gso = Gso.Tcp4; f.gsoSize = mss;
  const out: PacketBuffer[] = [];
  const k = segmentTcp4(f, pool, out);
  assert.equal(k, 4);
  let seq = 0xfffffc18;
  for (let i = 0; i < k; i++) {
    const s = out[i]!, sd = s.data, si = s.start + 14, st = si + 20;
    const len = i < 3 ? mss : n - 3 * mss;
    assert.equal(s.length, 14 + 20 + 32 + len);
    assert.equal((sd[si + 2]! << 8) | sd[si + 3]!, 20 + 32 + len);
    assert.equal((sd[si + 4]! << 8) | sd[si + 5]!, 0x1234 + i);
    assert.equal(fold(sum16(sd, si, 20)), 0xffff, 'IPv4 header checksum');
    assert.equal(((sd[st + 4]! << 24) | (sd[st + 5]! << 16) | (sd[st + 6]! << 8) | sd[st + 7]!) >>> 0, seq);
    assert.equal(sd[st + 13], i === k - 1 ? 0x19 : 0x10, `flags of segment ${i}`);
    const ph = pseudoHeaderV4(0xc6120501, 0xc6120502, 6, 32 + len);
    assert.equal(fold(sum16(sd, st, 32 + len, ph)), 0xffff, 'TCP checksum');
    assert.equal(sd[st + 32], (i * mss) & 0xff, 'payload continues where the previous segment ended');
    assert.equal(s.gso, Gso.None);
    seq = (seq + len) >>> 0;
    s.release();
  }
  f.release();
  assert.equal(pool.inUse, 0);
});
