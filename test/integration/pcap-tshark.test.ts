// A pcap written through the capture wrapper opens in tshark with no malformed frames and no
// bad checksums. Reads a file only: no devices, no namespaces, no root needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BufferPool, Csum, type PacketBuffer } from '../../src/base/pktbuf.js';
import { VirtualClock } from '../../src/base/time.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { PcapWriter, capture } from '../../src/driver/pcap.js';
import { internetChecksum, pseudoHeaderV4, fold } from '../../src/wire/checksum.js';
import { parseIpv4, parseMac } from '../../src/wire/addr.js';
import { hasCommand } from '../helpers/netns.js';

const MAC_A = parseMac('02:00:00:00:00:0a')!;
const MAC_B = parseMac('02:00:00:00:00:0b')!;
const IP_A = parseIpv4('198.18.0.1')!;
const IP_B = parseIpv4('198.18.0.2')!;

const EXPERT_FILTER = '_ws.malformed || _ws.expert.severity >= warning';

function tshark(args: string[]): string {
  return execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
}

function skipUnlessTshark(t: { skip(m: string): void }): boolean {
  if (hasCommand('tshark')) return true;
  if (process.env['CI']) throw new Error('tshark is required under CI (apt-get install tshark)');
  t.skip('tshark is not installed');
  return false;
}

/** Ethernet + IPv4 header for `l4Len` bytes of protocol `proto`; returns the L4 offset. */
function ipv4Frame(b: PacketBuffer, proto: number, l4Len: number, id: number): number {
  const o = b.append(14 + 20 + l4Len);
  b.data.set(MAC_B, o); b.data.set(MAC_A, o + 6); b.view.setUint16(o + 12, 0x0800);
  const ip = o + 14;
  const v = b.view;
  v.setUint8(ip, 0x45); v.setUint8(ip + 1, 0); v.setUint16(ip + 2, 20 + l4Len);
  v.setUint16(ip + 4, id); v.setUint16(ip + 6, 0x4000); // DF
  v.setUint8(ip + 8, 64); v.setUint8(ip + 9, proto); v.setUint16(ip + 10, 0);
  v.setUint32(ip + 12, IP_A); v.setUint32(ip + 16, IP_B);
  v.setUint16(ip + 10, internetChecksum(b.data, ip, 20));
  return ip + 20;
}

function udpFrame(pool: BufferPool, payload: number, id: number, partial = false): PacketBuffer {
  const b = pool.alloc();
  const len = 8 + payload;
  const u = ipv4Frame(b, 17, len, id);
  const v = b.view;
  v.setUint16(u, 40000 + id); v.setUint16(u + 2, 9); v.setUint16(u + 4, len); v.setUint16(u + 6, 0);
  for (let i = 0; i < payload; i++) b.data[u + 8 + i] = (i * 13 + id) & 0xff;
  const pseudo = pseudoHeaderV4(IP_A, IP_B, 17, len);
  if (partial) {
    // What a stack leaves for a txCsum device: the folded pseudo-header sum, not inverted.
    v.setUint16(u + 6, fold(pseudo));
    b.csum = Csum.Partial; b.csumStart = u; b.csumOffset = 6;
  } else {
    const c = internetChecksum(b.data, u, len, pseudo);
    v.setUint16(u + 6, c === 0 ? 0xffff : c);
  }
  return b;
}

function icmpEcho(pool: BufferPool, seq: number): PacketBuffer {
  const b = pool.alloc();
  const len = 8 + 56;
  const c = ipv4Frame(b, 1, len, 100 + seq);
  const v = b.view;
  v.setUint8(c, 8); v.setUint8(c + 1, 0); v.setUint16(c + 2, 0); v.setUint16(c + 4, 0x1234); v.setUint16(c + 6, seq);
  for (let i = 0; i < 56; i++) b.data[c + 8 + i] = i;
  v.setUint16(c + 2, internetChecksum(b.data, c, len));
  return b;
}

function tcpSyn(pool: BufferPool): PacketBuffer {
  const b = pool.alloc();
  const len = 20 + 4;
  const t = ipv4Frame(b, 6, len, 200);
  const v = b.view;
  v.setUint16(t, 45000); v.setUint16(t + 2, 80); v.setUint32(t + 4, 0x01020304); v.setUint32(t + 8, 0);
  v.setUint8(t + 12, (6 << 4)); v.setUint8(t + 13, 0x02); v.setUint16(t + 14, 65535); v.setUint16(t + 16, 0); v.setUint16(t + 18, 0);
  v.setUint8(t + 20, 2); v.setUint8(t + 21, 4); v.setUint16(t + 22, 1460); // MSS option
  v.setUint16(t + 16, internetChecksum(b.data, t, len, pseudoHeaderV4(IP_A, IP_B, 6, len)));
  return b;
}

function arpRequest(pool: BufferPool): PacketBuffer {
  const b = pool.alloc();
  const o = b.append(14 + 28);
  b.data.fill(0xff, o, o + 6); b.data.set(MAC_A, o + 6); b.view.setUint16(o + 12, 0x0806);
  const a = o + 14;
  b.view.setUint16(a, 1); b.view.setUint16(a + 2, 0x0800); b.data[a + 4] = 6; b.data[a + 5] = 4; b.view.setUint16(a + 6, 1);
  b.data.set(MAC_A, a + 8); b.view.setUint32(a + 14, IP_A);
  b.view.setUint32(a + 24, IP_B);
  return b;
}

test('a capture of valid Ethernet/IPv4/UDP, ICMP, TCP and ARP frames has no malformed frames or bad checksums in tshark', (t) => {
  if (!skipUnlessTshark(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tstack-tshark-'));
  try {
    const path = join(dir, 'valid.pcap');
    const clock = new VirtualClock(1_700_000_000_000);
    const wire = new MemoryWire({ clock, latencyMs: 0.1 });
    const a = wire.createPort({ mac: MAC_A, offloads: { txCsum: true } });
    const b = wire.createPort({ mac: MAC_B });
    const writer = new PcapWriter(path);
    const ca = capture(a, writer, clock);
    const cb = capture(b, writer, clock);
    const pool = new BufferPool();
    const frames = [arpRequest(pool), icmpEcho(pool, 1), udpFrame(pool, 0, 1), udpFrame(pool, 100, 2),
      udpFrame(pool, 1472, 3), udpFrame(pool, 333, 4, true), tcpSyn(pool)];
    for (const f of frames) { ca.transmit(f); clock.advance(1); }
    const out: PacketBuffer[] = [];
    const n = cb.rxBurst(out, 32);
    assert.equal(n, frames.length);
    for (let i = 0; i < n; i++) out[i]!.release();
    writer.close();

    assert.equal(tshark(['-r', path]).trim().split('\n').length, 2 * frames.length);
    const complaints = tshark(['-r', path, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE',
      '-o', 'tcp.check_checksum:TRUE', '-Y', EXPERT_FILTER]);
    assert.equal(complaints.trim(), '', `tshark flagged:\n${complaints}`);
    const protos = tshark(['-r', path, '-T', 'fields', '-e', '_ws.col.Protocol']).trim().split('\n');
    assert.deepEqual(protos.slice(0, frames.length), ['ARP', 'ICMP', 'UDP', 'UDP', 'UDP', 'UDP', 'TCP']);
    // Not merely "no complaint": every IP, UDP, TCP and ICMP checksum was verified Good (1).
    const status = tshark(['-r', path, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE',
      '-T', 'fields', '-E', 'separator=,', '-e', 'ip.checksum.status', '-e', 'udp.checksum.status', '-e', 'tcp.checksum.status',
      '-e', 'icmp.checksum.status']).trim().split('\n');
    assert.deepEqual(status.slice(0, frames.length), [',,,', '1,,,1', '1,1,,', '1,1,,', '1,1,,', '1,1,,', '1,,1,']);
    assert.deepEqual(status.slice(frames.length), status.slice(0, frames.length));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the same tshark check does flag a frame with a broken UDP checksum (the check has teeth)', (t) => {
  if (!skipUnlessTshark(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tstack-tshark-'));
  try {
    const path = join(dir, 'bad.pcap');
    const writer = new PcapWriter(path);
    const pool = new BufferPool();
    const f = udpFrame(pool, 20, 9);
    f.data[f.end - 1] ^= 0x40;
    writer.writeBuffer(f, 0);
    writer.close();
    f.release();
    const complaints = tshark(['-r', path, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-Y', EXPERT_FILTER]);
    assert.equal(complaints.trim().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
