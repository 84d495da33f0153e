// Capture filters for `tstack capture`: a small subset of tcpdump's language, compiled once into
// a predicate over a frame's bytes. Primitives: `host A`, `src host A`, `dst host A`, `net A/N`,
// `port N`, `src port N`, `dst port N`, `portrange A-B`, and the protocols `ip`, `ip6`, `arp`,
// `tcp`, `udp`, `icmp`; combined with `and`/`&&`, `or`/`||`, `not`/`!` and parentheses. A bare
// host (`198.18.0.1`) or a protocol followed by `port N` (`tcp port 80`) read as in tcpdump.
import { parseIpv4, parseIpv4Cidr, prefixMask } from '../wire/addr.js';

/** Returns true when the frame (Ethernet, bytes[off..off+len)) matches. Never throws. */
export type FramePredicate = (bytes: Uint8Array, off: number, len: number) => boolean;

export class FilterError extends Error {
  constructor(message: string) { super(message); this.name = 'FilterError'; }
}

const ETH_IPV4 = 0x0800, ETH_ARP = 0x0806, ETH_IPV6 = 0x86dd, ETH_VLAN = 0x8100;
const PROTO: Record<string, number> = { icmp: 1, tcp: 6, udp: 17 };

/** The fields a predicate looks at, decoded once per frame into a reused object. */
interface Fields { etherType: number; proto: number; src: number; dst: number; sport: number; dport: number; hasPorts: boolean }

function decode(b: Uint8Array, off: number, len: number, f: Fields): void {
  f.etherType = 0; f.proto = -1; f.src = 0; f.dst = 0; f.sport = -1; f.dport = -1; f.hasPorts = false;
  if (len < 14) return;
  let l3 = off + 14;
  let type = (b[off + 12]! << 8) | b[off + 13]!;
  if (type === ETH_VLAN && len >= 18) { type = (b[off + 16]! << 8) | b[off + 17]!; l3 += 4; }
  f.etherType = type;
  if (type === ETH_IPV4 && off + len >= l3 + 20) {
    const ihl = (b[l3]! & 0x0f) * 4;
    f.proto = b[l3 + 9]!;
    f.src = ((b[l3 + 12]! << 24) | (b[l3 + 13]! << 16) | (b[l3 + 14]! << 8) | b[l3 + 15]!) >>> 0;
    f.dst = ((b[l3 + 16]! << 24) | (b[l3 + 17]! << 16) | (b[l3 + 18]! << 8) | b[l3 + 19]!) >>> 0;
    const fragOff = ((b[l3 + 6]! & 0x1f) << 8) | b[l3 + 7]!;
    const l4 = l3 + ihl;
    if ((f.proto === 6 || f.proto === 17) && fragOff === 0 && off + len >= l4 + 4) {
      f.sport = (b[l4]! << 8) | b[l4 + 1]!; f.dport = (b[l4 + 2]! << 8) | b[l4 + 3]!; f.hasPorts = true;
    }
  } else if (type === ETH_ARP && off + len >= l3 + 28) {
    f.src = ((b[l3 + 14]! << 24) | (b[l3 + 15]! << 16) | (b[l3 + 16]! << 8) | b[l3 + 17]!) >>> 0;
    f.dst = ((b[l3 + 24]! << 24) | (b[l3 + 25]! << 16) | (b[l3 + 26]! << 8) | b[l3 + 27]!) >>> 0;
  }
}

type Node = (f: Fields) => boolean;

/** Compiles `expr` (empty: everything). Throws FilterError naming the bad token. */
export function compileFilter(expr: string): FramePredicate {
  const tokens = expr.replace(/([()!])/g, ' $1 ').replace(/&&/g, ' and ').replace(/\|\|/g, ' or ').trim().split(/\s+/).filter(Boolean);
  if (tokens.length === 0) return () => true;
  let i = 0;
  const peek = () => tokens[i];
  const next = () => tokens[i++];
  const fail = (why: string): never => { throw new FilterError(`capture filter "${expr}": ${why}`); };

  const num = (what: string, max: number): number => {
    const t = next();
    if (t === undefined || !/^\d+$/.test(t) || Number(t) > max) fail(`expected ${what} after "${tokens[i - 2] ?? ''}" (got ${t === undefined ? 'the end' : `"${t}"`})`);
    return Number(t);
  };
  const addr = (): number => {
    const t = next();
    const a = t === undefined ? null : parseIpv4(t);
    if (a === null) fail(`expected an IPv4 address (got ${t === undefined ? 'the end' : `"${t}"`})`);
    return a!;
  };
  const dirPick = (dir: string, srcTest: Node, dstTest: Node): Node =>
    dir === 'src' ? srcTest : dir === 'dst' ? dstTest : (f) => srcTest(f) || dstTest(f);

  const primitive = (): Node => {
    let t = next();
    if (t === undefined) return fail('unexpected end');
    let dir = '';
    if (t === 'src' || t === 'dst') { dir = t; t = next(); if (t === undefined) return fail(`expected host or port after "${dir}"`); }
    if (t === 'host') { const a = addr(); return dirPick(dir, (f) => f.etherType !== 0 && f.src === a, (f) => f.etherType !== 0 && f.dst === a); }
    if (t === 'net') {
      const c = next();
      const n = c === undefined ? null : parseIpv4Cidr(c);
      if (!n) return fail(`expected a network like 198.18.0.0/24 (got ${c === undefined ? 'the end' : `"${c}"`})`);
      const mask = prefixMask(n.prefixLen), net = (n.addr & mask) >>> 0;
      return dirPick(dir, (f) => f.etherType === ETH_IPV4 && ((f.src & mask) >>> 0) === net, (f) => f.etherType === ETH_IPV4 && ((f.dst & mask) >>> 0) === net);
    }
    if (t === 'port') { const p = num('a port number', 65535); return dirPick(dir, (f) => f.hasPorts && f.sport === p, (f) => f.hasPorts && f.dport === p); }
    if (t === 'portrange') {
      const r = next();
      const m = r === undefined ? null : /^(\d+)-(\d+)$/.exec(r);
      if (!m) return fail(`expected a port range like 8000-8080 (got ${r === undefined ? 'the end' : `"${r}"`})`);
      const lo = Number(m[1]), hi = Number(m[2]);
      return dirPick(dir, (f) => f.hasPorts && f.sport >= lo && f.sport <= hi, (f) => f.hasPorts && f.dport >= lo && f.dport <= hi);
    }
    if (dir) return fail(`expected host or port after "${dir}" (got "${t}")`);
    if (t === 'ip') return (f) => f.etherType === ETH_IPV4;
    if (t === 'ip6') return (f) => f.etherType === ETH_IPV6;
    if (t === 'arp') return (f) => f.etherType === ETH_ARP;
    const proto = PROTO[t];
    if (proto !== undefined) {
      const isProto: Node = (f) => f.etherType === ETH_IPV4 && f.proto === proto;
      // "tcp port 80", "udp src port 53": the protocol qualifies the port that follows.
      if (peek() === 'port' || peek() === 'src' || peek() === 'dst' || peek() === 'portrange') {
        const p = primitive();
        return (f) => isProto(f) && p(f);
      }
      return isProto;
    }
    if (parseIpv4(t) !== null) { i--; const a = addr(); return (f) => f.etherType !== 0 && (f.src === a || f.dst === a); }
    return fail(`unknown word "${t}" (expected host, net, port, portrange, src, dst, ip, ip6, arp, tcp, udp, icmp, and, or, not)`);
  };
  const factor = (): Node => {
    const t = peek();
    if (t === 'not' || t === '!') { next(); const n = factor(); return (f) => !n(f); }
    if (t === '(') {
      next();
      const n = orExpr();
      if (next() !== ')') fail('missing ")"');
      return n;
    }
    return primitive();
  };
  const andExpr = (): Node => {
    let n = factor();
    while (peek() === 'and') { next(); const a = n, b = factor(); n = (f) => a(f) && b(f); }
    return n;
  };
  const orExpr = (): Node => {
    let n = andExpr();
    while (peek() === 'or') { next(); const a = n, b = andExpr(); n = (f) => a(f) || b(f); }
    return n;
  };
  const root = orExpr();
  if (i < tokens.length) fail(`unexpected "${tokens[i]}"`);
  const fields: Fields = { etherType: 0, proto: -1, src: 0, dst: 0, sport: -1, dport: -1, hasPorts: false };
  return (bytes, off, len) => { decode(bytes, off, len, fields); return root(fields); };
}
