#!/usr/bin/env node
// `npm run soak [-- --minutes N] [-- --seed S]`: hostile traffic mixes against one stack on the
// memory wire for N minutes of wall time (default 10), in rounds of 10 s of virtual time:
// a SYN flood from random sources, forged ARP requests and IPv6 Neighbor Solicitations from
// random MACs and sources, a UDP flood to open and
// closed ports, never-completing fragments, random and mutated frames, and clients that stall a
// 1 MB response behind a zero window and vanish, all while a legitimate client keeps doing
// request/response exchanges. Every round samples the heap (after a GC), connections, armed
// timers, ARP and NDP entries, reassembly state and packet buffers in use; the run fails when a
// legitimate exchange fails, or when any sample keeps growing (the second half's peak above the
// first half's by more than 10% and a small slack), and prints a table either way. (The fuzz
// targets for the input path run in `npm test` at a small budget: test/unit/engine-fuzz.test.ts,
// seeded, and test/unit/engine-fuzz-guided.test.ts, coverage-guided; `npm run fuzz` runs the
// coverage-guided one for minutes.)
// Deterministic per seed (the virtual clock and every random choice); only the number of rounds
// depends on the machine's speed.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Simulation } from '../dist/test/helpers/sim.js';
import { prng } from '../dist/test/helpers/tcp-harness.js';
import { parseIpv4 } from '../dist/src/wire/addr.js';
import { ARP_LEN, ArpOp, writeArp } from '../dist/src/wire/arp.js';
import { MAC_BROADCAST, MAC_ZERO } from '../dist/src/wire/addr.js';
import { EtherType, writeEthernetHeader } from '../dist/src/wire/ethernet.js';
import { writeIpv4Header } from '../dist/src/wire/ipv4.js';
import { TcpFlag, writeTcpHeader } from '../dist/src/wire/tcp.js';
import { finishUdpChecksumV4, writeUdpHeader } from '../dist/src/wire/udp.js';
import { internetChecksum, pseudoHeaderV4 } from '../dist/src/wire/checksum.js';
import { parseIpv6 } from '../dist/src/wire/addr.js';
import { finishIcmpv6Checksum } from '../dist/src/wire/icmpv6.js';
import { Ipv6Next, writeIpv6Header } from '../dist/src/wire/ipv6.js';
import { writeNeighborSolicit, writeSolicitedNodeMulticast } from '../dist/src/wire/ndp.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const MINUTES = Number(arg('minutes', process.env.SOAK_MINUTES ?? 10));
const SEED = arg('seed', 'soak');
const ROUND_MS = 10_000;

const SERVER = parseIpv4('198.18.0.1');
const SERVER6 = parseIpv6('2001:db8:0:1::1');
const SERVER6_GROUP = new Uint8Array(16);
writeSolicitedNodeMulticast(SERVER6_GROUP, 0, SERVER6, 0);
const NET = parseIpv4('198.18.0.0');

const sim = new Simulation({ seed: SEED });
const serverNode = sim.addHost({
  name: 'server', addr: '198.18.0.1/15', addr6: '2001:db8:0:1::1/64',
  // Short give-up times so a round sees abandoned connections released.
  sysctl: { 'net.inet.tcp.maxpersistidle': 5000, 'net.inet.tcp.persmax': 1000, 'net.inet.tcp.msl': 1000 },
});
const server = serverNode.stack;
const client = sim.addHost({ name: 'client', addr: '198.18.0.2/15' }).stack;

/** A raw host transmitting hand-built frames. */
class Raw {
  constructor(dev, seed) { this.dev = dev; this.rnd = prng(seed); this.mac = new Uint8Array(6); }
  input(_i, buf) { buf.release(); }
  poll() { return Infinity; }
  r() { return this.rnd(); }
  randomMac() { const r = this.r(); this.mac.set([0x02, r & 255, (r >>> 8) & 255, (r >>> 16) & 255, r >>> 24, this.r() & 255]); return this.mac; }
  randomSrc() { return (NET + 3 + (this.r() % 131000)) >>> 0; }
  frame(len) { const b = this.dev.pool.alloc(); b.append(len); return b; }
  arp() {
    const mac = this.randomMac();
    const b = this.frame(14 + ARP_LEN);
    writeEthernetHeader(b.data, b.start, MAC_BROADCAST, 0, mac, EtherType.ARP);
    writeArp(b.data, b.start + 14, ArpOp.Request, mac, this.randomSrc(), MAC_ZERO, SERVER);
    this.dev.transmit(b);
  }
  /** A Neighbor Solicitation for the server's IPv6 address from a random on-link source and MAC. */
  ns() {
    const mac = this.randomMac();
    const src = SERVER6.slice();
    for (let i = 8; i < 16; i++) src[i] = this.r() & 255;
    const g = SERVER6_GROUP;
    const b = this.frame(14 + 40 + 32);
    writeEthernetHeader(b.data, b.start, Uint8Array.of(0x33, 0x33, g[12], g[13], g[14], g[15]), 0, mac, EtherType.IPv6);
    const icmp = b.start + 54;
    const n = writeNeighborSolicit(b.data, icmp, SERVER6, 0, mac);
    finishIcmpv6Checksum(b.data, icmp, n, src, 0, g, 0);
    writeIpv6Header(b.data, b.start + 14, 0, 0, n, Ipv6Next.ICMPv6, 255, src, 0, g, 0);
    b.end = icmp + n;
    this.dev.transmit(b);
  }
  ip(proto, l4len, fill, frag = 0x4000) {
    const src = this.randomSrc();
    const b = this.frame(34 + l4len);
    writeEthernetHeader(b.data, b.start, serverNode.device.mac, 0, this.randomMac(), EtherType.IPv4);
    writeIpv4Header(b.data, b.start + 14, 0, 20 + l4len, this.r() & 0xffff, frag, 64, proto, src, SERVER);
    fill(b.data, b.start + 34, src);
    this.dev.transmit(b);
  }
  syn() {
    this.ip(6, 20, (d, t, src) => {
      writeTcpHeader(d, t, 1024 + (this.r() % 60000), 80, this.r(), 0, TcpFlag.SYN, 65535);
      const c = internetChecksum(d, t, 20, pseudoHeaderV4(src, SERVER, 6, 20));
      d[t + 16] = c >> 8; d[t + 17] = c & 255;
    });
  }
  udp() {
    this.ip(17, 72, (d, t, src) => {
      writeUdpHeader(d, t, 4000, this.r() & 1 ? 9 : 7000, 72);
      finishUdpChecksumV4(d, t, 72, src, SERVER);
    });
  }
  fragment() {
    // A first fragment whose rest never comes (MF set, offset 0 or a middle piece).
    const off = this.r() & 1 ? 0 : (1 + (this.r() % 100));
    this.ip(17, 64, (d, t) => { for (let i = 0; i < 64; i++) d[t + i] = this.r() & 255; }, 0x2000 | off);
  }
  junk() {
    const len = 14 + (this.r() % 200);
    const b = this.frame(len);
    for (let i = 0; i < len; i++) b.data[b.start + i] = this.r() & 255;
    b.data.set(serverNode.device.mac, b.start);
    const kinds = [0x0800, 0x0806, 0x86dd, 0x8100];
    const k = kinds[this.r() % kinds.length];
    b.data[b.start + 12] = k >> 8; b.data[b.start + 13] = k & 255;
    if (k === 0x0800) b.data[b.start + 14] = 0x45;
    this.dev.transmit(b);
  }
}
const raw = sim.attach({ name: 'attacker' }, (dev) => ({ host: new Raw(dev, 7) })).host;

// The server: echoes requests; "big" asks for 1 MB.
const l = server.tcp.listen({ port: 80, backlog: 1024 });
const BIG = new Uint8Array(1 << 20);
l.onConnection = (s) => {
  s.onData = () => {
    const d = s.read();
    if (!d) return;
    if (d[0] === 0x42) {
      // 1 MB, more than the client's receive buffer: a client that does not read closes its
      // window and the rest waits in persist; then the server closes, as an HTTP server would.
      let off = 0;
      const more = () => {
        try { while (off < BIG.length) { const n = s.write(BIG.subarray(off)); if (n === 0) return; off += n; } } catch { return; }
        s.close();
      };
      s.onDrain = more;
      more();
      return;
    }
    s.write(d);
  };
  s.onEnd = () => s.close();
};
const udpOpen = server.udp.open(); udpOpen.bind(0, 7000); udpOpen.onMessage = () => {};

/** One legitimate exchange: connect, send 10 KB, read it back, close. Resolves true when byte-exact. */
function exchange(i) {
  return new Promise((resolve) => {
    const s = client.tcp.connect({ raddr: SERVER, rport: 80 });
    const msg = new Uint8Array(10_000).fill(1 + (i % 200));
    let got = 0; let ok = true;
    s.onConnect = () => s.write(msg);
    s.onData = () => { const d = s.read(); if (d) { for (const x of d) if (x !== msg[0]) ok = false; got += d.length; if (got >= msg.length) s.close(); } };
    s.onClose = (e) => resolve(ok && !e && got === msg.length);
  });
}

/**
 * Zero-window clients: hosts that ask for a big response, never read (their window closes),
 * then vanish from the wire; the same few hosts come back each round with new connections.
 */
const vanishers = Array.from({ length: 5 }, (_, i) => sim.addHost({ name: `zw${i}`, addr: `198.18.1.${10 + i}/15` }));
function zeroWindowClients() {
  for (const node of vanishers) {
    node.port.setFaults({ loss: 0 }, { loss: 0 });
    const s = node.stack.tcp.connect({ raddr: SERVER, rport: 80 });
    s.onConnect = () => s.write(Uint8Array.of(0x42));
    s.onData = () => {}; // never reads
    s.onClose = () => {};
    // Gone: off the wire, and its stack forgets the connection (the RST it sends is lost), so
    // when the host comes back next round it answers the server's probes with a RST at most.
    setTimeoutVirtual(2000, () => { node.port.setFaults({ loss: 1 }, { loss: 1 }); s.abort(); });
  }
}
const pending = [];
function setTimeoutVirtual(ms, fn) { pending.push({ at: sim.clock.now() + ms, fn }); }

const samples = [];
function sample(round, okCount, tries) {
  gc(); gc();
  const s = {
    round,
    heapMB: +(process.memoryUsage().heapUsed / 1048576).toFixed(1),
    conns: server.tcp.activeTcbs,
    timers: server.wheel.size,
    arp: server.arp.size,
    ndp: server.ip6.ndp.size,
    reass: server.ipv4.reass.inProgress,
    bufs: server.pool.inUse,
    legit: `${okCount}/${tries}`,
  };
  samples.push(s);
  return s;
}

const deadline = Date.now() + MINUTES * 60_000;
let round = 0; let failures = 0;
console.log(`soak: seed=${SEED}, ${MINUTES} min, rounds of ${ROUND_MS / 1000} s virtual`);
while (Date.now() < deadline || round < 4) {
  round++;
  zeroWindowClients();
  const results = [];
  const end = sim.clock.now() + ROUND_MS;
  let tick = 0;
  while (sim.clock.now() < end) {
    // Per 10 ms of virtual time: 20 SYNs, 10 ARP requests, 10 NS, 10 UDP, 5 fragments, 5 junk
    // frames (2,000, 1,000, 1,000, 1,000, 500, 500 per second), and a legitimate exchange every 100 ms.
    for (let i = 0; i < 20; i++) raw.syn();
    for (let i = 0; i < 10; i++) { raw.arp(); raw.ns(); raw.udp(); }
    for (let i = 0; i < 5; i++) { raw.fragment(); raw.junk(); }
    if (tick++ % 10 === 0) results.push(exchange(tick));
    for (let i = pending.length - 1; i >= 0; i--) if (pending[i].at <= sim.clock.now()) { pending[i].fn(); pending.splice(i, 1); }
    sim.run(10);
  }
  // Quiet time for the round's last exchanges and the abandoned connections' give-up.
  sim.run(8000);
  // The memory wire is a learning switch: the forged random MACs would fill its table (the
  // harness's memory, not the stack's).
  sim.wire.flushTable();
  const oks = (await Promise.all(results)).filter(Boolean).length;
  if (oks !== results.length) failures++;
  const s = sample(round, oks, results.length);
  console.log(JSON.stringify(s));
}

// The first half (warm-up included: bounded tables fill, pools grow) sets the level; the second
// half must not rise above it.
const rest = samples;
const half = Math.floor(rest.length / 2);
const grew = [];
for (const [key, slack] of [['heapMB', 8], ['conns', 50], ['timers', 200], ['arp', 100], ['ndp', 100], ['reass', 50], ['bufs', 100]]) {
  const a = Math.max(...rest.slice(0, half).map((x) => x[key]));
  const b = Math.max(...rest.slice(half).map((x) => x[key]));
  const verdict = half > 0 && b > a * 1.1 + slack ? 'GREW' : 'flat';
  if (verdict === 'GREW') grew.push(key);
  console.log(`${key.padEnd(7)} first half peak ${String(a).padStart(8)}  second half peak ${String(b).padStart(8)}  ${verdict}`);
}
console.log(`rounds ${round}, legitimate exchanges failed in ${failures} round(s), server drops: ${JSON.stringify(server.drops)}`);
sim.close();
if (failures > 0 || grew.length > 0) {
  console.error(`soak FAILED: ${failures ? `${failures} round(s) with failed legitimate exchanges; ` : ''}${grew.length ? `growth in ${grew.join(', ')}` : ''}`);
  process.exit(1);
}
console.log('soak passed');
