// A minimal host for driver tests and benchmarks that need no stack: it answers ARP requests
// for one IPv4 address and ICMP echo requests to it, rewriting the received frame in place
// (swap addresses, fix the checksum incrementally) so the same buffer goes back out.
import { incrementalUpdate, sum16, finish } from '../../src/wire/checksum.js';
import { readIpv4, writeIpv4 } from '../../src/wire/addr.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;

export const Reply = { None: 0, Arp: 1, Echo: 2 } as const;
export type Reply = (typeof Reply)[keyof typeof Reply];

/**
 * Turns `buf` into the reply when it is an ARP request for `ip` or an ICMP echo request to
 * `ip`, and says which. Leaves it untouched (Reply.None) otherwise.
 */
export function respond(buf: PacketBuffer, mac: Uint8Array, ip: number): Reply {
  const d = buf.data, s = buf.start, len = buf.end - s;
  if (len < 42) return Reply.None;
  const type = (d[s + 12]! << 8) | d[s + 13]!;
  if (type === ETH_P_ARP) {
    const a = s + 14;
    // Ethernet/IPv4 request (op 1) whose target protocol address is ours.
    if (d[a + 1] !== 1 || d[a + 2] !== 8 || d[a + 3] !== 0 || d[a + 7] !== 1 || readIpv4(d, a + 24) !== ip) return Reply.None;
    const senderIp = readIpv4(d, a + 14);
    d.copyWithin(a + 18, a + 8, a + 14); // target hw = requester's hw
    writeIpv4(d, a + 24, senderIp);
    d.set(mac, a + 8);
    writeIpv4(d, a + 14, ip);
    d[a + 7] = 2; // reply
    d.copyWithin(s, s + 6, s + 12);
    d.set(mac, s + 6);
    return Reply.Arp;
  }
  if (type !== ETH_P_IP) return Reply.None;
  const i = s + 14;
  const ihl = (d[i]! & 0x0f) * 4;
  if ((d[i]! >> 4) !== 4 || ihl < 20 || d[i + 9] !== 1 || readIpv4(d, i + 16) !== ip) return Reply.None;
  const c = i + ihl;
  if (c + 8 > buf.end || d[c] !== 8 || d[c + 1] !== 0) return Reply.None;
  // Swapping source and destination leaves the IP header checksum unchanged.
  const src = readIpv4(d, i + 12);
  writeIpv4(d, i + 12, ip);
  writeIpv4(d, i + 16, src);
  // Type 8 -> 0 changes one 16-bit word (type, code): RFC 1624.
  const old = (d[c + 2]! << 8) | d[c + 3]!;
  const sum = incrementalUpdate(old, 0x0800, 0x0000);
  d[c] = 0;
  d[c + 2] = sum >> 8; d[c + 3] = sum & 0xff;
  d.copyWithin(s, s + 6, s + 12);
  d.set(mac, s + 6);
  return Reply.Echo;
}

/** Builds an ARP request "who has targetIp? tell senderIp" from senderMac, broadcast. */
export function writeArpRequest(buf: PacketBuffer, senderMac: Uint8Array, senderIp: number, targetIp: number): void {
  const at = buf.append(42);
  const d = buf.data;
  d.fill(0xff, at, at + 6);
  d.set(senderMac, at + 6);
  d[at + 12] = 0x08; d[at + 13] = 0x06;
  const a = at + 14;
  d.set([0, 1, 8, 0, 6, 4, 0, 1], a); // Ethernet, IPv4, hlen 6, plen 4, request
  d.set(senderMac, a + 8);
  writeIpv4(d, a + 14, senderIp);
  d.fill(0, a + 18, a + 24);
  writeIpv4(d, a + 24, targetIp);
}

/** True when the ICMP message in an IPv4 frame has a correct checksum. */
export function icmpChecksumOk(buf: PacketBuffer): boolean {
  const d = buf.data, i = buf.start + 14;
  const ihl = (d[i]! & 0x0f) * 4;
  const total = (d[i + 2]! << 8) | d[i + 3]!;
  return finish(sum16(d, i + ihl, total - ihl)) === 0;
}
