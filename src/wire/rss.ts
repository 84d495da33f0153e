// Software RSS: the flow hash that spreads frames over workers (docs/architecture.md, "Workers").
//
// One definition, used in three places that must agree bit for bit:
//   - the memory wire's multi-queue ports pick a queue with it (src/driver/memory.ts);
//   - the AF_PACKET driver installs it in the kernel as a classic BPF fanout program
//     (src/driver/afpacket.ts, fanoutProgram), so the kernel picks the same socket;
//   - a worker choosing the local port of an active open (F-Stack's ff_rss_check) keeps only
//     ports whose return traffic hashes to its own queue (rssQueueOfTuple4).
//
//   h = saddr ^ daddr                     (IPv6: the XOR of the eight 32-bit address words)
//   h ^= sport ^ dport                    (TCP and UDP only, and never for a fragment)
//   queue = ((h * 0x9e3779b1) mod 2^32 >>> 16) mod N
//
// XOR makes it symmetric: both directions of a flow land on the same queue. Frames that are not
// IPv4/IPv6 (ARP, LLDP…) go to queue 0. Fragments hash on the addresses alone, so every
// fragment of a datagram reaches one worker (not necessarily the one owning its ports).

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

const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) | 0;
const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

/**
 * The 16-bit flow hash of the Ethernet frame at b[off, off+len); 0 for anything that is not
 * IPv4/IPv6 or too short to say. Reads bytes only, allocates nothing.
 */
export function rssHashFrame(b: Uint8Array, off: number, len: number): number {
  if (len < 14) return 0;
  const type = be16(b, off + 12);
  const ip = off + 14;
  const iplen = len - 14;
  if (type === 0x0800) {
    if (iplen < 20) return 0;
    let h = be32(b, ip + 12) ^ be32(b, ip + 16);
    const frag = be16(b, ip + 6) & 0x3fff;
    const proto = b[ip + 9]!;
    const ihl = (b[ip]! & 0x0f) * 4;
    if (frag === 0 && (proto === 6 || proto === 17) && iplen >= ihl + 4) {
      h ^= be16(b, ip + ihl) ^ be16(b, ip + ihl + 2);
    }
    return rssMix(h);
  }
  if (type === 0x86dd) {
    if (iplen < 40) return 0;
    let h = 0;
    for (let i = 8; i < 40; i += 4) h ^= be32(b, ip + i);
    const next = b[ip + 6]!;
    if ((next === 6 || next === 17) && iplen >= 44) h ^= be16(b, ip + 40) ^ be16(b, ip + 42);
    return rssMix(h);
  }
  return 0;
}

/** The queue (of n) the frame belongs to. */
export function rssQueueOfFrame(b: Uint8Array, off: number, len: number, n: number): number {
  return n <= 1 ? 0 : rssHashFrame(b, off, len) % n;
}

/**
 * The flow hash of a TCP or UDP frame that is not a fragment (the frames a flow owner must
 * get), or -1 for anything else (ARP, ICMP, fragments: any worker may take those).
 */
export function rssFlowHashOfFrame(b: Uint8Array, off: number, len: number): number {
  if (len < 14) return -1;
  const type = be16(b, off + 12);
  const ip = off + 14;
  if (type === 0x0800) {
    if (len < 34 || (be16(b, ip + 6) & 0x3fff) !== 0) return -1;
    const proto = b[ip + 9]!;
    if (proto !== 6 && proto !== 17) return -1;
  } else if (type === 0x86dd) {
    if (len < 58) return -1;
    const next = b[ip + 6]!;
    if (next !== 6 && next !== 17) return -1;
  } else {
    return -1;
  }
  return rssHashFrame(b, off, len);
}
