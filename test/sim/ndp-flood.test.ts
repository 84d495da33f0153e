// A neighbour flood cannot lock out a new IPv6 neighbour: 120,000 forged Neighbor Solicitations
// for the stack's address from random on-link sources and random MACs (on the memory wire),
// then a new host reaches the stack, and the stack it, at once. The cache stays bounded,
// evicting instead of refusing (nd6_maxentries, nd6_unsolicited_max, nd6_unsolicited_rate);
// every solicitation is answered.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import type { Driver } from '../../src/driver/types.js';
import { parseIpv6 } from '../../src/wire/addr.js';
import { EtherType, writeEthernetHeader } from '../../src/wire/ethernet.js';
import { finishIcmpv6Checksum } from '../../src/wire/icmpv6.js';
import { IPV6_HLEN, Ipv6Next, writeIpv6Header } from '../../src/wire/ipv6.js';
import { writeNeighborSolicit, writeSolicitedNodeMulticast } from '../../src/wire/ndp.js';
import { prng } from '../helpers/tcp-harness.js';
import { Simulation, type StackNode } from '../helpers/sim.js';

const VICTIM = parseIpv6('2001:db8:30::2')!;
const NEWCOMER = parseIpv6('2001:db8:30::77')!;

/** A host that only transmits forged NS for `target` from random 2001:db8:30::/64 sources (with a Source Link-Layer option unless told not to). */
class NsForger {
  private readonly rnd: () => number;
  private readonly mac = new Uint8Array(6);
  private readonly src = new Uint8Array(16);
  private readonly group = new Uint8Array(16);
  private readonly groupMac = new Uint8Array(6);
  sent = 0;
  constructor(private readonly dev: Driver, seed: number, private readonly target: Uint8Array, private readonly withSlla = true) {
    this.rnd = prng(seed);
    this.src.set(target.subarray(0, 8));
    writeSolicitedNodeMulticast(this.group, 0, target, 0);
    this.groupMac.set([0x33, 0x33, this.group[12]!, this.group[13]!, this.group[14]!, this.group[15]!]);
  }
  input(_ifIndex: number, buf: PacketBuffer): void { buf.release(); }
  poll(): number { return Infinity; }
  send(n: number): void {
    for (let i = 0; i < n; i++) {
      const r = this.rnd(), r2 = this.rnd();
      this.mac[0] = 0x02; this.mac[1] = r & 0xff; this.mac[2] = (r >>> 8) & 0xff;
      this.mac[3] = (r >>> 16) & 0xff; this.mac[4] = r >>> 24; this.mac[5] = this.sent & 0xff;
      for (let k = 0; k < 4; k++) { this.src[8 + k] = (r2 >>> (8 * k)) & 0xff; this.src[12 + k] = (r >>> (8 * k)) & 0xff; }
      this.src[15] |= 0x80; // never ::2 (the victim) or ::77 (the newcomer)
      const buf = this.dev.pool.alloc();
      const off = buf.append(14 + IPV6_HLEN + 32);
      const b = buf.data;
      writeEthernetHeader(b, off, this.groupMac, 0, this.mac, EtherType.IPv6);
      const icmp = off + 14 + IPV6_HLEN;
      const n = writeNeighborSolicit(b, icmp, this.target, 0, this.withSlla ? this.mac : null);
      finishIcmpv6Checksum(b, icmp, n, this.src, 0, this.group, 0);
      writeIpv6Header(b, off + 14, 0, 0, n, Ipv6Next.ICMPv6, 255, this.src, 0, this.group, 0);
      buf.end = icmp + n;
      this.dev.transmit(buf);
      this.sent++;
    }
  }
}

function setup(withSlla = true): { sim: Simulation; victim: StackNode; newcomer: StackNode; forger: NsForger } {
  const sim = new Simulation({ seed: 'ndp-flood' });
  const victim = sim.addHost({ name: 'victim', addr6: '2001:db8:30::2/64' });
  const newcomer = sim.addHost({ name: 'newcomer', addr6: '2001:db8:30::77/64' });
  const forger = sim.attach({ name: 'forger' }, (dev) => ({ host: new NsForger(dev, 42, VICTIM, withSlla) })).host;
  sim.run(3000); // DAD
  return { sim, victim, newcomer, forger };
}

/** Pings `to` from `from` over IPv6; the virtual ms until the reply, or -1 within maxMs. */
function pingTime(sim: Simulation, from: StackNode, to: Uint8Array, seq: number, maxMs = 5000): number {
  let got = -1;
  const t0 = sim.clock.now();
  from.stack.ip6.icmp.onEchoReply = (_src, _id, s) => { if (s === seq) got = sim.clock.now() - t0; };
  from.stack.ip6.icmp.sendEcho(to, 9, seq, new Uint8Array(32));
  sim.runUntil(() => got >= 0, { maxMs });
  from.stack.ip6.icmp.onEchoReply = null;
  return got;
}

test('after 120,000 forged NS from random sources and MACs a new host reaches the stack, and the stack it, at once; the cache stays bounded', () => {
  const { sim, victim, newcomer, forger } = setup();
  const ndp = victim.stack.ip6.ndp;
  const s = victim.stack.sysctl;
  const naBefore = ndp.stats.naSent, nsBefore = ndp.stats.nsSent;
  // 120,000 solicitations over 1.2 s of virtual time (100,000 per second).
  for (let i = 0; i < 120; i++) { forger.send(1000); sim.run(10); }
  assert.equal(forger.sent, 120_000);
  assert.ok(ndp.stats.nsReceived >= 120_000, `received ${ndp.stats.nsReceived}`);
  assert.ok(ndp.size <= s.int('net.inet6.icmp6.nd6_maxentries'), `${ndp.size} entries`);
  assert.ok(ndp.unsolicitedCount <= s.int('net.inet6.icmp6.nd6_unsolicited_max'), `${ndp.unsolicitedCount} unsolicited entries`);
  assert.ok(ndp.size <= 300, `the forged entries stay within the creation rate (${ndp.size} entries after 1.2 s)`);
  assert.ok(ndp.stats.unsolicitedLimited > 110_000, `most forged senders were answered, not remembered (${ndp.stats.unsolicitedLimited})`);
  assert.equal(ndp.stats.naSent - naBefore, forger.sent, 'every solicitation was answered');
  // Answering is not using: the forged entries stay unsolicited (first to go, short-lived), and
  // none of them drew a DELAY/PROBE round of unicast solicitations.
  assert.equal(ndp.unsolicitedCount, ndp.size);
  assert.equal(ndp.stats.nsSent - nsBefore, 0, 'no solicitation sent to a forged sender');

  // The newcomer resolves the victim and is answered; the victim resolves the newcomer for its reply.
  const ms = pingTime(sim, newcomer, VICTIM, 1);
  assert.ok(ms >= 0 && ms < 50, `the newcomer's ping6 was answered in ${ms} ms (no NDP retry timer involved)`);
  assert.ok(victim.stack.ip6.ndp.lookup(1, NEWCOMER), 'the victim knows the newcomer');
  // And the other way, while the flood goes on.
  let t = -1;
  const t0 = sim.clock.now();
  victim.stack.ip6.icmp.onEchoReply = (_src, _id, seq) => { if (seq === 2) t = sim.clock.now() - t0; };
  victim.stack.ip6.icmp.sendEcho(NEWCOMER, 9, 2, new Uint8Array(8));
  sim.runUntil(() => { forger.send(200); return t >= 0; }, { maxMs: 5000 });
  assert.ok(t >= 0 && t < 50, `the victim's ping6 to the newcomer took ${t} ms during the flood`);
  sim.close();
});

test('with a small cache, flooding fills it and a new neighbour still gets an entry by evicting one (never refused)', () => {
  const sim = new Simulation({ seed: 'ndp-flood-small' });
  const victim = sim.addHost({ name: 'victim', addr6: '2001:db8:30::2/64', sysctl: {
    'net.inet6.icmp6.nd6_maxentries': 64, 'net.inet6.icmp6.nd6_unsolicited_rate': 100_000, 'net.inet6.icmp6.nd6_unsolicited_max': 100_000,
  } });
  const newcomer = sim.addHost({ name: 'newcomer', addr6: '2001:db8:30::77/64' });
  const forger = sim.attach({ name: 'forger' }, (dev) => ({ host: new NsForger(dev, 7, VICTIM) })).host;
  sim.run(3000);
  for (let i = 0; i < 20; i++) { forger.send(500); sim.run(5); }
  const ndp = victim.stack.ip6.ndp;
  assert.equal(ndp.size, 64, 'the cache is full of forged entries');
  assert.ok(ndp.stats.evicted >= 9000, `${ndp.stats.evicted} evicted`);
  const ms = pingTime(sim, victim, NEWCOMER, 3);
  assert.ok(ms >= 0 && ms < 50, `the victim resolved the newcomer in ${ms} ms with a full cache`);
  assert.equal(ndp.size, 64);
  sim.close();
});

test('forged NS without a link-layer address cannot make the stack resolve every sender: past the rate they are dropped and counted', () => {
  const { sim, victim, forger } = setup(false);
  const ndp = victim.stack.ip6.ndp;
  const before = ndp.stats.nsSent;
  for (let i = 0; i < 20; i++) { forger.send(1000); sim.run(10); }
  assert.ok(ndp.stats.nsLimited > 19_000, `${ndp.stats.nsLimited} dropped`);
  assert.equal(victim.stack.drops['nd6_ns_limited'], ndp.stats.nsLimited);
  assert.ok(ndp.stats.nsSent - before < 2000, `the stack solicited ${ndp.stats.nsSent - before} senders, not 20,000`);
  assert.ok(ndp.size <= 300, `${ndp.size} entries`);
  sim.close();
});
