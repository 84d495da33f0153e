// A neighbour flood cannot lock out a new neighbour: 120,000 ARP requests for the stack from
// random MACs and random on-link addresses (forged, on the memory wire), then — and while the
// flood goes on — a new host reaches the stack at once. The table stays bounded, evicting
// instead of refusing (net.link.ether.inet.max_entries, unsolicited_max, unsolicited_rate).
import test from 'node:test';
import assert from 'node:assert/strict';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import type { Driver } from '../../src/driver/types.js';
import { ARP_LEN, ArpOp, writeArp } from '../../src/wire/arp.js';
import { MAC_BROADCAST, MAC_ZERO, parseIpv4 } from '../../src/wire/addr.js';
import { EtherType, writeEthernetHeader } from '../../src/wire/ethernet.js';
import { prng } from '../helpers/tcp-harness.js';
import { Simulation, type StackNode } from '../helpers/sim.js';

const VICTIM = parseIpv4('198.18.0.2')!;
const NEWCOMER = parseIpv4('198.18.1.77')!;
const NET = parseIpv4('198.18.0.0')!;

/** A host that only transmits forged ARP requests for `target` (198.18.0.0/15 senders). */
class ArpForger {
  private readonly rnd: () => number;
  private readonly mac = new Uint8Array(6);
  sent = 0;
  constructor(private readonly dev: Driver, seed: number, private readonly target: number) { this.rnd = prng(seed); }
  input(_ifIndex: number, buf: PacketBuffer): void { buf.release(); }
  poll(): number { return Infinity; }
  send(n: number): void {
    for (let i = 0; i < n; i++) {
      const r = this.rnd();
      // A unicast, locally administered MAC; a sender address anywhere in the /15 but the ends.
      this.mac[0] = 0x02; this.mac[1] = r & 0xff; this.mac[2] = (r >>> 8) & 0xff;
      this.mac[3] = (r >>> 16) & 0xff; this.mac[4] = r >>> 24; this.mac[5] = this.sent & 0xff;
      let spa = (NET + 1 + (this.rnd() % 131070)) >>> 0;
      if (spa === this.target) spa++;
      const buf = this.dev.pool.alloc();
      const off = buf.append(14 + ARP_LEN);
      writeEthernetHeader(buf.data, off, MAC_BROADCAST, 0, this.mac, EtherType.ARP);
      writeArp(buf.data, off + 14, ArpOp.Request, this.mac, spa, MAC_ZERO, this.target);
      this.dev.transmit(buf);
      this.sent++;
    }
  }
}

function setup(): { sim: Simulation; victim: StackNode; newcomer: StackNode; forger: ArpForger } {
  const sim = new Simulation({ seed: 'arp-flood' });
  const victim = sim.addHost({ name: 'victim', addr: '198.18.0.2/15' });
  const newcomer = sim.addHost({ name: 'newcomer', addr: '198.18.1.77/15' });
  const forger = sim.attach({ name: 'forger' }, (dev) => ({ host: new ArpForger(dev, 42, VICTIM) })).host;
  sim.run(10);
  return { sim, victim, newcomer, forger };
}

/** Pings the victim from the newcomer; returns the virtual ms until the reply (or -1 within maxMs). */
function pingTime(sim: Simulation, from: StackNode, seq: number, during?: () => void, maxMs = 5000): number {
  let got = -1;
  const t0 = sim.clock.now();
  from.stack.icmp.onEchoReply = (src, _id, s) => { if (src === VICTIM && s === seq) got = sim.clock.now() - t0; };
  from.stack.icmp.sendEcho(VICTIM, 9, seq, new Uint8Array(32));
  sim.runUntil(() => { during?.(); return got >= 0; }, { maxMs });
  return got;
}

test('after 120,000 forged ARP requests from random MACs a new host reaches the stack at once; the table stays bounded', () => {
  const { sim, victim, newcomer, forger } = setup();
  const arp = victim.stack.arp;
  const max = victim.stack.sysctl.int('net.link.ether.inet.max_entries');
  // 120,000 requests over 1.2 s of virtual time (100,000 per second).
  for (let i = 0; i < 120; i++) { forger.send(1000); sim.run(10); }
  assert.equal(forger.sent, 120_000);
  assert.ok(arp.stats.requestsReceived >= 120_000, `received ${arp.stats.requestsReceived}`);
  assert.ok(arp.size <= max, `${arp.size} entries, at most ${max}`);
  assert.ok(arp.size <= victim.stack.sysctl.int('net.link.ether.inet.unsolicited_max') + 8, 'the forged entries stay within their own budget');
  assert.ok(arp.stats.unsolicitedLimited > 100_000, `most forged requests were answered, not remembered (${arp.stats.unsolicitedLimited})`);
  assert.equal(arp.stats.repliesSent, forger.sent, 'every forged request was answered');

  const ms = pingTime(sim, newcomer, 1);
  assert.ok(ms >= 0 && ms < 50, `the newcomer's ping was answered in ${ms} ms (no ARP retry timer involved)`);
  assert.equal(arp.lookup(1, NEWCOMER)?.state, 1, 'the newcomer is a reachable neighbour');
  sim.close();
});

test('during a flood of forged requests, a new host still reaches the stack at once', () => {
  const { sim, victim, newcomer, forger } = setup();
  for (let i = 0; i < 20; i++) { forger.send(1000); sim.run(10); }
  // The flood goes on while the newcomer pings: 1000 forged requests per ms.
  const ms = pingTime(sim, newcomer, 2, () => forger.send(1000));
  assert.ok(ms >= 0 && ms < 50, `answered in ${ms} ms`);
  const ms2 = pingTime(sim, newcomer, 3, () => forger.send(1000));
  assert.ok(ms2 >= 0 && ms2 < 50, `and again in ${ms2} ms: its entry survived the flood`);
  assert.ok(victim.stack.arp.size <= victim.stack.sysctl.int('net.link.ether.inet.max_entries'));
  sim.close();
});

test('a full table evicts the oldest unsolicited entry, then the oldest non-permanent one, instead of refusing', () => {
  const { sim, victim, forger } = setup();
  const s = victim.stack.sysctl;
  s.set('net.link.ether.inet.max_entries', 16);
  s.set('net.link.ether.inet.unsolicited_max', 8);
  s.set('net.link.ether.inet.unsolicited_rate', 1000);
  const arp = victim.stack.arp;
  forger.send(100);
  sim.run(1);
  assert.equal(arp.size, 8, 'unsolicited entries are held to their budget');
  // Our own resolutions (to silent addresses) fill the rest, then keep evicting.
  for (let i = 0; i < 20; i++) victim.stack.icmp.sendEcho((NET + 1000 + i) >>> 0, 1, i, new Uint8Array(8));
  sim.run(1);
  assert.equal(arp.size, 16);
  assert.equal(arp.lookup(1, (NET + 1019) >>> 0)?.state, 0, 'the newest resolution is in the table (incomplete)');
  assert.equal(victim.stack.drops['arp_table_full'] ?? 0, 0, 'nothing refused');
  assert.ok(arp.stats.evicted >= 12);
  // Unused unsolicited entries are forgotten after unsolicited_age.
  sim.run(61_000);
  assert.equal(arp.list().filter((e) => e.state === 'reachable').length, 0);
  sim.close();
});
