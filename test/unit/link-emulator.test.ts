// bench/link-emulator.ts's wire-size accounting: a GSO super-frame costs the link what its
// segments would (the headers repeated per segment), a plain frame its own length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { wireBytes } from '../../bench/link-emulator.js';

/** A virtio_net_hdr (gso type, hdr_len, gso_size) followed by Ethernet + IPv4 (+ options) + TCP/UDP headers, zero payload bytes. */
function frame(opts: { gsoType: number; gsoSize: number; hdrLen?: number; ipv6?: boolean; vlan?: boolean; ipOptions?: number; tcpOptions?: number; udp?: boolean; len: number }): Uint8Array {
  const d = new Uint8Array(10 + opts.len);
  d[1] = opts.gsoType;
  d[2] = (opts.hdrLen ?? 0) & 0xff; d[3] = (opts.hdrLen ?? 0) >> 8;
  d[4] = opts.gsoSize & 0xff; d[5] = opts.gsoSize >> 8;
  let f = 10 + 12;
  if (opts.vlan) { d[f] = 0x81; d[f + 1] = 0x00; f += 4; }
  d[f] = opts.ipv6 ? 0x86 : 0x08; d[f + 1] = opts.ipv6 ? 0xdd : 0x00;
  f += 2;
  if (opts.ipv6) { d[f] = 0x60; f += 40; } else { d[f] = 0x40 | (5 + (opts.ipOptions ?? 0) / 4); f += 20 + (opts.ipOptions ?? 0); }
  if (!opts.udp) d[f + 12] = (5 + (opts.tcpOptions ?? 0) / 4) << 4;
  return d;
}

test('a plain frame costs its own length', () => {
  const d = frame({ gsoType: 0, gsoSize: 0, len: 1514 });
  assert.equal(wireBytes(d, 0, 1514), 1514);
});

test('a TCP/IPv4 super-frame costs one set of headers per segment', () => {
  // Ethernet 14 + IPv4 20 + TCP 20 + 12 (timestamps) = 66 bytes of headers, 10 segments of 1448.
  const len = 66 + 10 * 1448;
  assert.equal(wireBytes(frame({ gsoType: 1, gsoSize: 1448, tcpOptions: 12, len }), 0, len), len + 9 * 66);
  // The last segment short: still one header each (11 segments).
  const len2 = 66 + 10 * 1448 + 100;
  assert.equal(wireBytes(frame({ gsoType: 1, gsoSize: 1448, tcpOptions: 12, len: len2 }), 0, len2), len2 + 10 * 66);
});

test('TCP/IPv6 behind a VLAN tag, IPv4 options, the ECN bit and UDP segmentation count their own headers', () => {
  const h6 = 14 + 4 + 40 + 32;
  assert.equal(wireBytes(frame({ gsoType: 4 | 0x80, gsoSize: 1000, ipv6: true, vlan: true, tcpOptions: 12, len: h6 + 3000 }), 0, h6 + 3000), h6 + 3000 + 2 * h6);
  const h4 = 14 + 28 + 20;
  assert.equal(wireBytes(frame({ gsoType: 1, gsoSize: 500, ipOptions: 8, len: h4 + 1500 }), 0, h4 + 1500), h4 + 1500 + 2 * h4);
  const hu = 14 + 20 + 8;
  assert.equal(wireBytes(frame({ gsoType: 5, gsoSize: 1200, udp: true, len: hu + 2400 }), 0, hu + 2400), hu + 2400 + hu);
});

test('an unknown network protocol falls back to the kernel\'s hdr_len; nonsense costs the frame length', () => {
  const d = frame({ gsoType: 1, gsoSize: 1000, hdrLen: 54, len: 54 + 2000 });
  d[10 + 12] = 0x88; d[10 + 13] = 0x47; // MPLS: not parsed
  assert.equal(wireBytes(d, 0, 54 + 2000), 54 + 2000 + 54);
  assert.equal(wireBytes(frame({ gsoType: 1, gsoSize: 0, len: 3000 }), 0, 3000), 3000);
});
