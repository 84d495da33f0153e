// Software RSS: the flow hash that spreads frames over workers (docs/architecture.md, "Workers").
//
// One definition, used in places that must agree bit for bit:
//   - the memory wire's multi-queue ports pick a queue with it (src/driver/memory.ts);
//   - the AF_PACKET driver installs it in the kernel as a classic BPF fanout program
//     (src/driver/fanout.ts), so the kernel picks the same socket;
//   - a worker choosing the local port of an active open (F-Stack's ff_rss_check) keeps only
//     ports whose return traffic hashes to its own queue (rssQueueOfTuple4);
//   - a worker's software steering (src/runtime/worker.ts) reads the same key (rssClassify).
//
//   h = saddr ^ daddr                     (IPv6: the XOR of the eight 32-bit address words)
//   TCP/UDP, not a fragment:  h ^= sport ^ dport
//   a fragment:               h ^= (proto << 16) | id   (IPv6: the Fragment header's 32-bit id,
//                                                         when it follows the fixed header)
//   an ICMP error (v4 types 3, 4, 11, 12; v6 types 1-4): h is the hash of the quoted datagram,
//                             computed as above from its header (and ports, when quoted)
//   queue = ((h * 0x9e3779b1) mod 2^32 >>> 16) mod N
//
// XOR makes it symmetric: both directions of a flow land on the same queue, and an ICMP error
// about a datagram we sent (which quotes our header: source us, destination the peer) lands on
// that flow's queue. Every fragment of a datagram carries (addresses, proto, id), so all of
// them reach one worker, which reassembles and hands the whole datagram to its flow's owner
// (src/runtime/worker.ts). Frames that are not IPv4/IPv6 (ARP, LLDP…) go to queue 0.

const GOLDEN = 0x9e3779b1 | 0;

/** The mixed hash of an already-combined value (addresses XOR ports). */
export function rssMix(h: number): number {
  return Math.imul(h | 0, GOLDEN) >>> 16;
}

/** The 16-bit flow hash of an IPv4 4-tuple (either direction). */
export function rssHash4(saddr: number, daddr: number, sport: number, dport: number): number {
  return rssMix((saddr ^ daddr ^ ((sport ^ dport) & 0xffff)) | 0);
}

/** The queue (of n) of the IPv4 TCP/UDP flow; symmetric in (saddr, sport) and (daddr, dport). */
export function rssQueueOfTuple4(saddr: number, daddr: number, sport: number, dport: number, n: number): number {
  return n <= 1 ? 0 : rssHash4(saddr, daddr, sport, dport) % n;
}

/** The 16-bit flow hash of an IPv6 TCP/UDP flow: addresses at a[ao..ao+16) and b[bo..bo+16). */
export function rssHash6(a: Uint8Array, ao: number, b: Uint8Array, bo: number, sport: number, dport: number): number {
  let h = 0;
  for (let i = 0; i < 16; i += 4) h ^= be32(a, ao + i) ^ be32(b, bo + i);
  return rssMix(h ^ ((sport ^ dport) & 0xffff));
}

/** The 16-bit hash of an IPv4 fragment of datagram `id` (every fragment of it alike). */
export function rssHashFragment4(saddr: number, daddr: number, proto: number, id: number): number {
  return rssMix((saddr ^ daddr ^ (((proto & 0xff) << 16) | (id & 0xffff))) | 0);
}

const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) | 0;
const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

/** What a frame is to the steering: whose it is decides where it goes. */
export const FlowKind = {
  /** Not IP, or IP nobody owns (ICMP echo, IGMP…): any worker. */
  None: 0,
  Tcp: 1,
  Udp: 2,
  /** A fragment: the worker its (addresses, proto, id) hash picks reassembles it. */
  Fragment: 3,
} as const;
export type FlowKind = (typeof FlowKind)[keyof typeof FlowKind];

/**
 * The steering key of one frame, filled by rssClassify (reused: nothing allocated per frame).
 * For an ICMP error, kind/ports/addresses describe the quoted datagram seen from our side.
 */
export class FlowKey {
  kind: FlowKind = FlowKind.None;
  /** The 16-bit hash (the queue is hash % N). */
  hash = 0;
  v6 = false;
  /** The frame is an ICMP/ICMPv6 error about the flow described. */
  icmpError = false;
  /** Our end: the destination of a received datagram, the source of one an ICMP error quotes. */
  localPort = 0;
  /** IPv4: our address; IPv6: the offset of our 16-byte address in the frame's bytes. */
  localAddr = 0;
  localOff6 = 0;
}

const scratch = new FlowKey();

/** Reads the IP header at b[ip, ip+len) (IPv4 when !v6) into key; `quoted`: inside an ICMP error. */
function classifyIp(b: Uint8Array, ip: number, len: number, v6: boolean, key: FlowKey, quoted: boolean): void {
  key.v6 = v6;
  if (!v6) {
    if (len < 20) { key.hash = 0; return; }
    const src = be32(b, ip + 12), dst = be32(b, ip + 16);
    let h = src ^ dst;
    const frag = be16(b, ip + 6);
    const proto = b[ip + 9]!;
    const ihl = (b[ip]! & 0x0f) * 4;
    // A quoted datagram is one we sent (its first 8 bytes of payload): only its offset matters.
    if ((quoted ? frag & 0x1fff : frag & 0x3fff) !== 0) {
      key.kind = FlowKind.Fragment;
      key.hash = rssMix(h ^ ((proto << 16) | be16(b, ip + 4)));
      return;
    }
    if (quoted && (proto === 6 || proto === 17) && len < ihl + 4) { key.hash = 0; return; }
    if ((proto === 6 || proto === 17) && len >= ihl + 4) {
      const sport = be16(b, ip + ihl), dport = be16(b, ip + ihl + 2);
      h ^= sport ^ dport;
      key.kind = proto === 6 ? FlowKind.Tcp : FlowKind.Udp;
      key.localPort = quoted ? sport : dport;
      key.localAddr = (quoted ? src : dst) >>> 0;
    } else if (proto === 1 && !quoted && len >= ihl + 8) {
      const t = b[ip + ihl]!;
      if (t === 3 || t === 4 || t === 11 || t === 12) {
        key.icmpError = true;
        // Too short to quote a header: hash 0, as the fanout program's failed load gives.
        if (len < ihl + 8 + 20) { key.hash = 0; return; }
        classifyIp(b, ip + ihl + 8, len - ihl - 8, false, key, true);
        return;
      }
    }
    key.hash = rssMix(h);
    return;
  }
  if (len < 40) { key.hash = 0; return; }
  let h = 0;
  for (let i = 8; i < 40; i += 4) h ^= be32(b, ip + i);
  const next = b[ip + 6]!;
  if (quoted && (next === 6 || next === 17) && len < 44) { key.hash = 0; return; }
  if ((next === 6 || next === 17) && len >= 44) {
    const sport = be16(b, ip + 40), dport = be16(b, ip + 42);
    h ^= sport ^ dport;
    key.kind = next === 6 ? FlowKind.Tcp : FlowKind.Udp;
    key.localPort = quoted ? sport : dport;
    key.localOff6 = quoted ? ip + 8 : ip + 24;
  } else if (next === 44 && len >= 48) {
    // A Fragment header right after the fixed one (the usual place); fragments behind other
    // extension headers repeat those headers in every fragment, so they hash alike anyway.
    key.kind = FlowKind.Fragment;
    h ^= be32(b, ip + 44);
  } else if (next === 58 && !quoted && len >= 48) {
    const t = b[ip + 40]!;
    if (t >= 1 && t <= 4) {
      key.icmpError = true;
      if (len < 48 + 40) { key.hash = 0; return; }
      classifyIp(b, ip + 48, len - 48, true, key, true);
      return;
    }
  }
  key.hash = rssMix(h);
}

/**
 * Classifies the IP packet at b[ip, ip+len) (IPv4 when !v6) into key: its kind, hash and our
 * end. Reads bytes only, allocates nothing, never throws.
 */
export function rssClassifyIp(b: Uint8Array, ip: number, len: number, v6: boolean, key: FlowKey): FlowKind {
  key.kind = FlowKind.None; key.hash = 0; key.icmpError = false; key.localPort = 0; key.localAddr = 0; key.localOff6 = 0;
  classifyIp(b, ip, len, v6, key, false);
  return key.kind;
}

/** rssClassifyIp for the Ethernet frame at b[off, off+len) (kind None, hash 0 for non-IP). */
export function rssClassify(b: Uint8Array, off: number, len: number, key: FlowKey): FlowKind {
  key.kind = FlowKind.None; key.hash = 0; key.icmpError = false; key.localPort = 0; key.localAddr = 0; key.localOff6 = 0;
  if (len < 14) return FlowKind.None;
  const type = be16(b, off + 12);
  if (type === 0x0800) classifyIp(b, off + 14, len - 14, false, key, false);
  else if (type === 0x86dd) classifyIp(b, off + 14, len - 14, true, key, false);
  return key.kind;
}

/**
 * The 16-bit flow hash of the Ethernet frame at b[off, off+len); 0 for anything that is not
 * IPv4/IPv6 or too short to say. Reads bytes only, allocates nothing.
 */
export function rssHashFrame(b: Uint8Array, off: number, len: number): number {
  if (len < 14) return 0;
  const type = be16(b, off + 12);
  const ip = off + 14;
  // The common case without the key (the memory wire hashes every frame): TCP/UDP, not a
  // fragment. Everything else takes rssClassify (test/unit/steering.test.ts checks they agree).
  if (type === 0x0800 && len >= 34 + 4) {
    const proto = b[ip + 9]!;
    const ihl = (b[ip]! & 0x0f) * 4;
    if ((proto === 6 || proto === 17) && (be16(b, ip + 6) & 0x3fff) === 0 && len >= 14 + ihl + 4) {
      return rssMix(be32(b, ip + 12) ^ be32(b, ip + 16) ^ be16(b, ip + ihl) ^ be16(b, ip + ihl + 2));
    }
  }
  rssClassify(b, off, len, scratch);
  return scratch.hash;
}

/** The queue (of n) the frame belongs to. */
export function rssQueueOfFrame(b: Uint8Array, off: number, len: number, n: number): number {
  return n <= 1 ? 0 : rssHashFrame(b, off, len) % n;
}

/**
 * The flow hash of a frame some worker owns — TCP or UDP, a fragment, an ICMP error about a
 * flow — or -1 for anything else (ARP, ICMP echo…: any worker may take those).
 */
export function rssFlowHashOfFrame(b: Uint8Array, off: number, len: number): number {
  return rssClassify(b, off, len, scratch) === FlowKind.None ? -1 : scratch.hash;
}
