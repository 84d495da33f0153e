// Bonding on the memory wire: a stack with a bond over two ports talks to a plain host; the
// active member loses carrier (and its wire) in the middle of a TCP transfer; the bond fails over
// to the backup, announces its address there, and the transfer finishes with no byte lost.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Simulation } from '../helpers/sim.js';
import { filler } from '../helpers/tcp-harness.js';
import { Stack } from '../../src/stack/stack.js';
import { createRandom } from '../../src/base/prng.js';
import type { NetDevice, Offloads } from '../../src/base/device.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import type { MemoryPort } from '../../src/driver/memory.js';
import type { BondDevice, BondMode } from '../../src/stack/l2/bond.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { interfaces } from '../../src/stack/stats.js';

/** A device with a carrier the test switches (what a TAP device reports through SIOCGIFFLAGS). */
class CarrierDevice implements NetDevice {
  carrier = true;
  constructor(private readonly inner: NetDevice) {}
  get name(): string { return this.inner.name; }
  get mac(): Uint8Array { return this.inner.mac; }
  get mtu(): number { return this.inner.mtu; }
  get offloads(): Offloads { return this.inner.offloads; }
  transmit(buf: PacketBuffer): void { this.inner.transmit(buf); }
  linkUp(): boolean { return this.carrier; }
}

function bonded(seed: string, mode: BondMode, arp = false) {
  const sim = new Simulation({ seed, latencyMs: 1 });
  const b = sim.addHost({ name: 'b', addr: '198.18.170.2/24' }).stack;
  const a = new Stack({ clock: sim.clock, random: createRandom(7), name: 'a' });
  const devs: CarrierDevice[] = [];
  const ports: MemoryPort[] = [];
  for (const name of ['a1', 'a2']) {
    const node = sim.attach({ name }, (dev) => {
      const d = new CarrierDevice(dev);
      devs.push(d);
      return { host: a, ifIndex: a.addInterface(d, { announce: false }) };
    });
    ports.push(node.port);
  }
  const bi = a.addBond([1, 2], {
    name: 'bond0', mode, addr: '198.18.170.1/24', addr6: '2001:db8:170::1/64',
    ...(arp && { arpInterval: 200, arpTargets: [parseIpv4('198.18.170.2')!] }),
  });
  sim.run(3000); // DAD of the IPv6 address
  return { sim, a, b, bi, devs, ports, bond: a.interfaceByIndex(bi)!.dev as BondDevice };
}

function transfer(sim: Simulation, from: Stack, to: Stack, dst: string, size: number, midway: () => void): string {
  const data = filler(size, 5);
  const got: Uint8Array[] = [];
  let n = 0, done = false, fired = false;
  const l = to.tcp.listen({ port: 7 });
  l.onConnection = (s) => {
    s.onData = () => {
      for (let x = s.read(); x; x = s.read()) { got.push(x); n += x.length; }
      if (!fired && n > size / 3) { fired = true; midway(); }
    };
    s.onEnd = () => { done = true; s.shutdown(); };
  };
  const c = from.tcp.connect({ raddr: parseIpv4(dst)!, rport: 7 });
  let off = 0;
  const pump = () => { while (off < data.length) { const k = c.write(data.subarray(off, off + 65536)); off += k; if (k === 0) return; } c.shutdown(); };
  c.onConnect = pump; c.onDrain = pump;
  assert.ok(sim.runUntil(() => done, { maxMs: 300_000 }), `transfer finished (${n} of ${size})`);
  assert.ok(fired);
  const h = createHash('sha256'); for (const g of got) h.update(g);
  assert.equal(h.digest('hex'), createHash('sha256').update(data).digest('hex'));
  l.close();
  return `${n}`;
}

test('active-backup: the active member loses carrier mid-transfer; the bond fails over, announces, and TCP finishes intact', () => {
  const { sim, a, b, devs, ports, bond } = bonded('bond-ab', 'active-backup');
  assert.equal(bond.activeName, 'a1');
  let garpsOnA2 = 0;
  a.frameTap = (ifIndex, buf, tx) => {
    // Gratuitous ARP (sender = target = our address) sent while a2 is active.
    const d = buf.data, s = buf.start;
    if (tx && bond.activeName === 'a2' && d[s + 12] === 0x08 && d[s + 13] === 0x06 && d[s + 28] === 198 && d[s + 31] === 1 && d[s + 38] === 198 && d[s + 41] === 1) garpsOnA2++;
    void ifIndex;
  };
  const unsolicitedNa: number[] = [];
  const before = a.ip6.ndp.stats.naSent;
  transfer(sim, b, a, '198.18.170.1', 2 << 20, () => {
    devs[0]!.carrier = false;
    ports[0]!.setFaults({ loss: 1 }, { loss: 1 });
  });
  unsolicitedNa.push(a.ip6.ndp.stats.naSent - before);
  assert.equal(bond.activeName, 'a2');
  assert.equal(bond.failovers, 1);
  assert.ok(garpsOnA2 >= 1, 'a gratuitous ARP left by the new active member');
  assert.ok(unsolicitedNa[0]! >= 1, 'an unsolicited NA for the IPv6 address');
  assert.ok(a.interfaceByIndex(2)!.counters.txPackets > 0 && a.interfaceByIndex(2)!.counters.rxPackets > 0);
  assert.ok((a.drops['bond_inactive_member'] ?? 0) > 0, 'frames on the backup member were not taken twice');
  const snap = interfaces(a).find((i) => i.name === 'bond0')!;
  assert.deepEqual(snap.bond, { mode: 'active-backup', members: ['a1', 'a2'], active: 'a2', failovers: 1 });
  assert.equal(interfaces(a)[0]!.master, 'bond0');
  // Carrier back on a1: a2 stays active (no flapping back).
  devs[0]!.carrier = true;
  ports[0]!.setFaults({ loss: 0 }, { loss: 0 });
  sim.run(500);
  assert.equal(bond.activeName, 'a2');
  a.close();
  sim.close();
});

test('ARP monitoring: the wire of the active member goes silent (carrier still up); the bond fails over after two probe intervals and TCP finishes', () => {
  const { sim, a, b, ports, bond } = bonded('bond-arp', 'active-backup', true);
  sim.run(2000);
  assert.equal(bond.activeName, 'a1', 'probes answered: a1 stays active');
  assert.equal(bond.failovers, 0);
  let cutAt = 0;
  transfer(sim, b, a, '198.18.170.1', 1 << 20, () => {
    cutAt = sim.now;
    ports[0]!.setFaults({ loss: 1 }, { loss: 1 });
  });
  assert.equal(bond.activeName, 'a2');
  assert.equal(bond.failovers, 1);
  // Both sides were silent for two intervals at most (+ one for the tick's phase).
  assert.ok(a.arp.stats.requestsSent > 10, 'probes were sent every interval');
  assert.ok(cutAt > 0);
  // The backup stays up while it hears the flooded probes: no flapping.
  sim.run(3000);
  assert.equal(bond.failovers, 1);
  a.close();
  sim.close();
});

test('ARP monitoring: when no member hears anything, members are tried in turn', () => {
  const { sim, a, ports, bond } = bonded('bond-arp-dark', 'active-backup', true);
  sim.run(1000);
  ports[0]!.setFaults({ loss: 1 }, { loss: 1 });
  ports[1]!.setFaults({ loss: 1 }, { loss: 1 });
  sim.run(3000);
  assert.ok(bond.failovers >= 3, `members tried in turn (${bond.failovers} changes)`);
  // The wire of a2 comes back: the bond settles on it.
  ports[1]!.setFaults({ loss: 0 }, { loss: 0 });
  sim.run(3000);
  assert.equal(bond.activeName, 'a2');
  const settled = bond.failovers;
  sim.run(3000);
  assert.equal(bond.failovers, settled, 'it stays on a2');
  a.close();
  sim.close();
});

test('balance-xor: flows are spread over both members and all finish', () => {
  const { sim, a, b } = bonded('bond-xor', 'balance-xor');
  const lis = b.tcp.listen({ port: 9 });
  const sums: number[] = [];
  lis.onConnection = (s) => { let n = 0; s.onData = () => { for (let x = s.read(); x; x = s.read()) n += x.length; }; s.onEnd = () => { sums.push(n); s.shutdown(); }; };
  for (let i = 0; i < 16; i++) {
    const c = a.tcp.connect({ raddr: parseIpv4('198.18.170.2')!, rport: 9 });
    c.onConnect = () => { c.write(new Uint8Array(20_000)); c.shutdown(); };
  }
  assert.ok(sim.runUntil(() => sums.length === 16, { maxMs: 60_000 }), sim.describe());
  assert.deepEqual(sums, new Array(16).fill(20_000));
  const t1 = a.interfaceByIndex(1)!.counters.txPackets, t2 = a.interfaceByIndex(2)!.counters.txPackets;
  assert.ok(t1 > 20 && t2 > 20, `both members sent (${t1}, ${t2})`);
  a.close();
  sim.close();
});

test('addBond refuses ports that have addresses or are already bonded', () => {
  const sim = new Simulation({ seed: 'bond-bad' });
  const a = sim.addHost({ name: 'x', addr: '198.18.171.1/24' }).stack;
  assert.throws(() => a.addBond([1]), /not a free port/);
  assert.throws(() => a.addBond([5]), /not a free port/);
  sim.close();
});
