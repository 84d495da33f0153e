// Endpoint addresses of either family. IPv4 stays the fast path: a TCB, segment or TIME_WAIT
// record of family 4 keeps its addresses as u32 numbers (laddr, raddr) exactly as before; one
// of family 6 keeps them as 16 bytes (laddr6, raddr6) and leaves laddr = raddr = 0. No IPv4
// lookup can match a v6 entry (IPv4 input refuses source 0), so both families share the
// connection and TIME_WAIT hash chains and the IPv4 comparisons are unchanged.
import { addr6Equals } from '../ip/addr6.js';
import { NO_ADDR6, type Path } from '../ip/path.js';
import type { TcpHost } from './host.js';
import { type SipKey, siphash24, siphash24Words, siphashHi } from './siphash.js';

export { NO_ADDR6 };

export const AF_INET = 4;
export const AF_INET6 = 6;

/** Who a segment is between: a TCB, a received segment (local = its destination), a scratch record. */
export interface TcpEnds {
  readonly family: number;
  readonly laddr: number;
  readonly raddr: number;
  readonly laddr6: Uint8Array;
  readonly raddr6: Uint8Array;
}

/** A reusable TcpEnds (stateless replies, TIME_WAIT answers). */
export class Ends implements TcpEnds {
  family = AF_INET;
  laddr = 0;
  raddr = 0;
  readonly laddr6 = new Uint8Array(16);
  readonly raddr6 = new Uint8Array(16);
}

/** Reads word `i` of the address at b[off..] as an int32. */
function w(b: Uint8Array, off: number, i: number): number {
  const o = off + 4 * i;
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

/**
 * The connection table's hash of an IPv6 4-tuple under the table's random key (the IPv4 hash's
 * multiply-xorshift rounds over all eight address words), so a peer varying the low bits of its
 * address cannot aim at one chain.
 */
export function connHash6(key: number, l: Uint8Array, lOff: number, lport: number, r: Uint8Array, rOff: number, rport: number): number {
  let h = key;
  for (let i = 0; i < 4; i++) { h = Math.imul(h ^ w(r, rOff, i), 0x9e3779b1); h ^= h >>> 15; }
  for (let i = 0; i < 4; i++) { h = Math.imul(h ^ w(l, lOff, i), 0x85ebca77); h ^= h >>> 13; }
  h = Math.imul(h ^ ((lport << 16) | rport), 0xc2b2ae3d);
  return (h ^ (h >>> 16)) >>> 0;
}

const words = new Uint32Array(4);

/**
 * A keyed 32-bit digest of an IPv6 address (SipHash-2-4): what the ISN, SYN-cookie and port
 * selection PRFs take in place of an IPv4 address. Keyed, so nobody can pick two addresses
 * that collide. Per connection, never per segment.
 */
export function fold6(key: SipKey, a: Uint8Array, off = 0): number {
  for (let i = 0; i < 4; i++) words[i] = w(a, off, i);
  return siphash24Words(key, words, 4) >>> 0;
}

/**
 * The shield's name for an IPv6 source: its /64 (shield.ts SOURCE_PREFIX6) as a keyed 52-bit
 * hash in [2^52, 2^53) — never an IPv4 address's u32, and keyed so that nobody can pick two
 * prefixes that collide.
 */
export function prefixKey6(key: SipKey, b: Uint8Array, off: number): number {
  const lo = siphash24(key, w(b, off, 0), w(b, off, 1), 64);
  return 4503599627370496 + (siphashHi() & 0xfffff) * 4294967296 + lo;
}

/** The Ip4Map row of a per-source key: an IPv4 address in slot 1; a prefixKey6() hash (2^52 + hi·2^32 + lo) in slot 2 + hi (its lo is `k >>> 0`). */
export function sourceSlot(k: number): number { return k < 4294967296 ? 1 : 2 + Math.floor((k - 4503599627370496) / 4294967296); }

export function isZero6(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[off + i] !== 0) return false;
  return true;
}

/** ::ffff:a.b.c.d (RFC 4291 §2.5.5.2): the IPv4 address, else -1. */
export function v4Mapped(a: Uint8Array, off = 0): number {
  for (let i = 0; i < 10; i++) if (a[off + i] !== 0) return -1;
  if (a[off + 10] !== 0xff || a[off + 11] !== 0xff) return -1;
  return ((a[off + 12]! << 24) | (a[off + 13]! << 16) | (a[off + 14]! << 8) | a[off + 15]!) >>> 0;
}

export function eq6(a: Uint8Array, b: Uint8Array): boolean { return addr6Equals(a, 0, b, 0); }

/** Resolves or revalidates `path` for the ends' family (see TcpHost.resolvePath). */
export function resolveEndsPath(host: TcpHost, path: Path, e: TcpEnds): boolean {
  return e.family === AF_INET6 ? host.resolvePath6(path, e.laddr6, e.raddr6) : host.resolvePath(path, e.laddr, e.raddr);
}

/** What endpoint addresses enter the ISN, SYN-cookie and port PRFs as: IPv4 as is, IPv6 as a keyed digest. */
export class EndsPrf {
  constructor(private readonly key: SipKey) {}
  local(e: TcpEnds): number { return e.family === AF_INET6 ? fold6(this.key, e.laddr6) : e.laddr; }
  remote(e: TcpEnds): number { return e.family === AF_INET6 ? fold6(this.key, e.raddr6) : e.raddr; }
}
