// 100,000 random and mutated frames into the engine: nothing throws, every frame is accounted
// for (a drop counted by reason, or a protocol counter moved), and memory stays flat.
import test from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { NO_OFFLOADS, type NetDevice } from '../../src/base/device.js';
import { Stack } from '../../src/stack/stack.js';
import { VirtualClock } from '../../src/base/time.js';
import { Prng } from '../../src/base/prng.js';
import { parseIpv4 } from '../../src/wire/addr.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

class Sink implements NetDevice {
  readonly offloads = NO_OFFLOADS;
  readonly frames: Uint8Array[] = [];
  keep = true;
  constructor(readonly name: string, readonly mac: Uint8Array, readonly mtu = 1500) {}
  transmit(buf: PacketBuffer): void { if (this.keep) this.frames.push(buf.bytes().slice()); buf.release(); }
}

const A = parseIpv4('198.18.7.1')!, B = parseIpv4('198.18.7.2')!;

/** Real frames for the target to chew on, produced by a second stack talking to it. */
function templates(): Uint8Array[] {
  const clock = new VirtualClock(0);
  const dev = new Sink('b0', Uint8Array.of(2, 0, 0, 0, 7, 2));
  const b = new Stack({ clock, name: 'b' });
  b.addInterface(dev, { addr: '198.18.7.2/24' });
  b.arp.addStatic(1, A, Uint8Array.of(2, 0, 0, 0, 7, 1));
  b.icmp.sendEcho(A, 1, 1, new Uint8Array(56).fill(0x61));
  b.icmp.sendEcho(parseIpv4('198.18.7.255')!, 1, 2, new Uint8Array(8));
  const u = b.udp.open();
  u.send(new Uint8Array(100).fill(1), A, 7);
  u.send(new Uint8Array(100).fill(2), A, 9999);
  u.send(new Uint8Array(3000).fill(3), A, 7); // three fragments
  b.icmp.sendEcho(parseIpv4('198.18.7.3')!, 1, 3, new Uint8Array(8)); // an ARP request for .3
  const out = dev.frames.slice();
  // A TCP SYN and a frame of an unknown EtherType, by hand.
  const syn = new Uint8Array(out[0]!.length);
  syn.set(out[0]!);
  syn[23] = 6; // protocol TCP (the IP checksum is now wrong: a drop to count too)
  out.push(syn);
  const odd = out[0]!.slice(); odd[12] = 0x88; odd[13] = 0xb5; out.push(odd);
  return out;
}

test('100,000 random and mutated frames: no exception, every frame accounted, heap flat', () => {
  const seed = Number(process.env.FUZZ_SEED ?? 4242);
  const rnd = new Prng(seed);
  const clock = new VirtualClock(0);
  const pool = new BufferPool();
  const dev = new Sink('a0', Uint8Array.of(2, 0, 0, 0, 7, 1));
  dev.keep = false;
  const a = new Stack({ clock, pool, name: 'a', random: () => rnd.next() });
  a.addInterface(dev, { addr: '198.18.7.1/24' });
  const echo = a.udp.open(); echo.bind(0, 7); echo.onMessage = (d, ad, p) => echo.send(d, ad, p);
  const tpl = templates();
  assert.ok(tpl.length >= 9);

  const accepted = () => a.arp.stats.requestsReceived + a.arp.stats.repliesReceived + a.ipStats.delivered + a.ipStats.fragmentsReceived;
  const dropped = () => { let n = 0; for (const k in a.drops) n += a.drops[k]!; return n; };
  const N = 100_000;
  const failures: string[] = [];
  let unaccounted = 0;
  let heapAfterWarmup = 0;
  for (let i = 0; i < N; i++) {
    const buf = pool.alloc();
    const kind = rnd.int(0, 9);
    let frame: Uint8Array;
    if (kind === 0) {
      frame = new Uint8Array(rnd.int(0, 1514));
      for (let j = 0; j < frame.length; j++) frame[j] = rnd.int(0, 255);
    } else {
      frame = tpl[rnd.int(0, tpl.length - 1)]!.slice();
      const flips = rnd.int(0, 4);
      for (let f = 0; f < flips; f++) frame[rnd.int(0, frame.length - 1)] ^= 1 << rnd.int(0, 7);
      if (rnd.chance(0.2)) frame = frame.subarray(0, rnd.int(0, frame.length));
      if (frame.length >= 6 && rnd.chance(0.05)) {
        // Point the destination at us so mutated frames get past the MAC filter more often.
        frame.set(dev.mac, 0);
      }
    }
    buf.appendBytes(frame);
    const before = accepted() + dropped();
    try {
      a.input(1, buf);
    } catch (e) {
      if (failures.length < 5) failures.push(`frame ${i} (FUZZ_SEED=${seed}): ${(e as Error).stack} bytes=${Buffer.from(frame).toString('hex')}`);
    }
    if (accepted() + dropped() === before) unaccounted++;
    if (i % 1000 === 0) { clock.advance(50); a.poll(); }
    if (i === 20_000) { gc(); heapAfterWarmup = process.memoryUsage().heapUsed; }
  }
  clock.advance(120_000); a.poll();
  gc();
  const heapEnd = process.memoryUsage().heapUsed;
  assert.deepEqual(failures, []);
  assert.equal(unaccounted, 0, 'every frame is counted as a drop (by reason) or by a protocol counter');
  assert.ok(a.interfaces[0]!.counters.rxPackets === N);
  // Held packets (ARP queues, reassembly) drain once their timers run.
  assert.equal(a.reass.inProgress, 0);
  assert.ok(pool.inUse <= 64, `buffers still held: ${pool.inUse}`);
  const growth = heapEnd - heapAfterWarmup;
  assert.ok(growth < 8 * 1024 * 1024, `heap grew by ${(growth / 1048576).toFixed(1)} MiB`);
  if (process.env.FUZZ_VERBOSE) console.log(a.drops, a.ipStats, a.udp.stats, a.icmp.stats);
  // The drop reasons seen are named, not a catch-all.
  assert.ok(Object.keys(a.drops).length >= 8, `reasons: ${Object.keys(a.drops).join(', ')}`);
});
