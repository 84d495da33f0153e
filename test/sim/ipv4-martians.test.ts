// Martian sources (RFC 1812 §5.3.7, RFC 1122 §3.2.1.3) arriving from the wire are dropped and
// counted by name: the stack's own address, limited and subnet broadcast, 0.0.0.0 (except a
// DHCP-style 0.0.0.0 -> 255.255.255.255), class E, 127/8, multicast. A SYN "from itself"
// creates no connection and draws no answer.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import type { Driver } from '../../src/driver/types.js';
import { MAC_BROADCAST, parseIpv4 } from '../../src/wire/addr.js';
import { pseudoHeaderV4, internetChecksum } from '../../src/wire/checksum.js';
import { EtherType, writeEthernetHeader } from '../../src/wire/ethernet.js';
import { writeIpv4Header } from '../../src/wire/ipv4.js';
import { TcpFlag, writeTcpHeader } from '../../src/wire/tcp.js';
import { finishUdpChecksumV4, writeUdpHeader } from '../../src/wire/udp.js';
import { Simulation, type StackNode } from '../helpers/sim.js';

const US = parseIpv4('198.18.5.2')!;
const PEER = parseIpv4('198.18.5.9')!;

/** A host that transmits hand-built IPv4 frames and counts what it receives. */
class Raw {
  received = 0;
  constructor(readonly dev: Driver) {}
  input(_i: number, buf: PacketBuffer): void { this.received++; buf.release(); }
  poll(): number { return Infinity; }
  send(dstMac: Uint8Array, src: number, dst: number, proto: 'udp' | 'syn', dport: number): void {
    const l4 = proto === 'udp' ? 8 + 4 : 20;
    const buf = this.dev.pool.alloc();
    const off = buf.append(14 + 20 + l4);
    const b = buf.data;
    writeEthernetHeader(b, off, dstMac, 0, this.dev.mac, EtherType.IPv4);
    writeIpv4Header(b, off + 14, 0, 20 + l4, 1, 0x4000, 64, proto === 'udp' ? 17 : 6, src, dst);
    const t = off + 34;
    if (proto === 'udp') {
      writeUdpHeader(b, t, 5555, dport, l4);
      b.set([1, 2, 3, 4], t + 8);
      finishUdpChecksumV4(b, t, l4, src, dst);
    } else {
      writeTcpHeader(b, t, 5555, dport, 1000, 0, TcpFlag.SYN, 65535);
      const c = internetChecksum(b, t, 20, pseudoHeaderV4(src, dst, 6, 20));
      b[t + 16] = c >> 8; b[t + 17] = c & 0xff;
    }
    this.dev.transmit(buf);
  }
}

function setup(): { sim: Simulation; us: StackNode; raw: Raw; got: string[] } {
  const sim = new Simulation({ seed: 'martians' });
  const us = sim.addHost({ name: 'us', addr: '198.18.5.2/24' });
  const raw = sim.attach({ name: 'raw' }, (dev) => ({ host: new Raw(dev) })).host;
  sim.run(10);
  const got: string[] = [];
  const sock = us.stack.udp.open();
  sock.bind(0, 7000);
  sock.onMessage = (_d, addr) => got.push(`${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`);
  return { sim, us, raw, got };
}

test('UDP from martian sources is dropped and counted under a named reason; a normal source is delivered', () => {
  const { sim, us, raw, got } = setup();
  const mac = us.device.mac;
  const cases: [string, number, number, Uint8Array, string][] = [
    ['own address', US, US, mac, 'ip_martian_own_source'],
    ['subnet broadcast', parseIpv4('198.18.5.255')!, US, mac, 'ip_martian_broadcast_source'],
    ['limited broadcast', 0xffffffff, US, mac, 'ip_martian_broadcast_source'],
    ['0.0.0.0 to a unicast address', 0, US, mac, 'ip_martian_zero_source'],
    ['0.1.2.3', parseIpv4('0.1.2.3')!, US, mac, 'ip_martian_zero_source'],
    ['class E', parseIpv4('240.0.0.1')!, US, mac, 'ip_martian_class_e_source'],
    ['loopback', parseIpv4('127.0.0.1')!, US, mac, 'ip_martian_loopback_source'],
    ['multicast', parseIpv4('224.0.0.5')!, US, mac, 'ip_martian_multicast_source'],
  ];
  for (const [what, src, dst, dmac, reason] of cases) {
    const before = us.stack.drops[reason] ?? 0;
    raw.send(dmac, src, dst, 'udp', 7000);
    sim.run(1);
    assert.equal(us.stack.drops[reason], before + 1, `${what}: counted as ${reason}`);
  }
  assert.deepEqual(got, [], 'no martian reached the socket');
  raw.send(mac, PEER, US, 'udp', 7000);
  sim.run(1);
  assert.deepEqual(got, ['198.18.5.9']);
  sim.close();
});

test('0.0.0.0 to the limited broadcast (a DHCP/BOOTP client) is still accepted', () => {
  const { sim, raw, got } = setup();
  raw.send(MAC_BROADCAST, 0, 0xffffffff, 'udp', 7000);
  sim.run(1);
  assert.deepEqual(got, ['0.0.0.0']);
  sim.close();
});

test('a SYN "from itself" creates no connection and draws no answer', () => {
  const { sim, us, raw } = setup();
  us.stack.tcp.listen({ port: 80 });
  const sentBefore = us.port.stats().txPackets;
  raw.send(us.device.mac, US, US, 'syn', 80);
  sim.run(10);
  assert.equal(us.stack.tcp.activeTcbs, 0);
  assert.equal(us.port.stats().txPackets, sentBefore, 'no SYN-ACK, no RST');
  assert.equal(us.stack.drops['ip_martian_own_source'], 1);
  // A SYN from a real neighbour does get its SYN-ACK (the setup is not what dropped it).
  raw.send(us.device.mac, PEER, US, 'syn', 80);
  sim.run(1000);
  assert.equal(us.stack.tcp.activeTcbs, 1);
  sim.close();
});
