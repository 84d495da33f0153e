// The shield (F-Stack ships ipfw for the same job): an allow/deny filter on IPv4 and IPv6 input
// by source prefix, protocol and destination port, and per-source limits on TCP — concurrent
// connections and the rate of new connection attempts (SYNs). Everything it refuses is dropped
// silently and counted. Configured from tstack.toml's [shield] table and changeable at run time
// (Shield.configure). Sans-I/O: the caller passes the time.
//
// A source is an IPv4 address, or an IPv6 /64 (SOURCE_PREFIX6): one host picks any address of
// its /64 at will (SLAAC, privacy addresses, RFC 7707), so per-address limits would not limit
// it. The TCP layer names a /64 by a keyed 52-bit hash above the IPv4 range (Tcp.sourceKey6), so
// the limit tables take both families' sources as numbers.
import { IpProto } from '../wire/ipv4.js';
import { prefixMask } from '../wire/addr.js';
import { prefixMatch } from './ip/addr6.js';

/** How many leading bits of an IPv6 source name the source for the per-source limits. */
export const SOURCE_PREFIX6 = 64;

export type ShieldProto = 'any' | 'tcp' | 'udp' | 'icmp';

export interface ShieldRule {
  action: 'allow' | 'deny';
  /**
   * Source prefix: an IPv4 address in `from`, or with `family` 6 an IPv6 one in `from6`, and its
   * length. Without `family`, a length of 0 matches every source of both families, any other an
   * IPv4 prefix.
   */
  from: number;
  fromLen: number;
  family?: 4 | 6;
  from6?: Uint8Array;
  proto: ShieldProto;
  /** Destination port (TCP and UDP), or -1 for any. */
  port: number;
}

export interface ShieldConfig {
  /** What a datagram matching no rule gets. */
  default: 'allow' | 'deny';
  /** First matching rule decides. */
  rules: ShieldRule[];
  /** Concurrent TCP connections one source address may hold with us (0 = unlimited). */
  maxConnPerSource: number;
  /** New TCP connection attempts (SYNs) per second per source address (0 = unlimited); the burst is the same. */
  synRatePerSource: number;
}

export const SHIELD_OFF: Readonly<ShieldConfig> = Object.freeze({ default: 'allow', rules: [], maxConnPerSource: 0, synRatePerSource: 0 });

export class ShieldStats {
  /** Datagrams dropped by a deny rule (or the default policy). */
  denied = 0;
  /** SYNs dropped because their source already holds maxConnPerSource connections. */
  connLimited = 0;
  /** SYNs dropped because their source exceeded synRatePerSource. */
  synLimited = 0;
  /** Hits per rule, in rule order. */
  ruleHits: number[] = [];
}

/** How many sources the SYN-rate table remembers (the oldest is forgotten first). */
export const MAX_TRACKED = 65536;

const PROTO: Record<ShieldProto, number> = { any: -1, tcp: IpProto.TCP, udp: IpProto.UDP, icmp: IpProto.ICMP };
/** Over IPv6, 'icmp' is ICMPv6. */
const PROTO6: Record<ShieldProto, number> = { any: -1, tcp: IpProto.TCP, udp: IpProto.UDP, icmp: 58 };
/** Which sources a rule can match: 4, 6, or 0 = both (no prefix). */
function ruleFamily(r: ShieldRule): number { return r.family ?? (r.fromLen === 0 ? 0 : 4); }

interface Bucket { tokens: number; at: number }

export class Shield {
  private cfg: ShieldConfig = { ...SHIELD_OFF, rules: [] };
  private masks: number[] = [];
  private protos: number[] = [];
  private protos6: number[] = [];
  private families: number[] = [];
  private readonly buckets = new Map<number, Bucket>();
  readonly stats = new ShieldStats();

  /** True when anything is configured (otherwise input skips the shield entirely). */
  active = false;

  configure(cfg: ShieldConfig): void {
    for (const r of cfg.rules) {
      if (r.family === 6 && (!(r.from6 instanceof Uint8Array) || r.from6.length !== 16)) throw new RangeError('shield rule: family 6 needs a 16-byte from6');
      if (r.fromLen < 0 || r.fromLen > (r.family === 6 ? 128 : 32)) throw new RangeError(`shield rule: prefix length ${r.fromLen}`);
      if (r.port < -1 || r.port > 65535) throw new RangeError(`shield rule: port ${r.port}`);
    }
    this.cfg = { ...cfg, rules: cfg.rules.map((r) => ({ ...r, ...(r.from6 && { from6: Uint8Array.from(r.from6) }) })) };
    this.masks = cfg.rules.map((r) => (r.family === 6 ? 0 : prefixMask(r.fromLen)));
    this.protos = cfg.rules.map((r) => PROTO[r.proto]);
    this.protos6 = cfg.rules.map((r) => PROTO6[r.proto]);
    this.families = cfg.rules.map(ruleFamily);
    this.stats.ruleHits = cfg.rules.map(() => 0);
    this.buckets.clear();
    this.active = cfg.rules.length > 0 || cfg.default === 'deny' || cfg.maxConnPerSource > 0 || cfg.synRatePerSource > 0;
  }

  get config(): Readonly<ShieldConfig> { return this.cfg; }

  /** Sources whose SYN rate the shield remembers now (at most MAX_TRACKED). */
  get trackedSources(): number { return this.buckets.size; }

  /**
   * The filter: may a datagram of `proto` from `src` to destination port `dport` (-1 when the
   * protocol has no ports) come in?
   */
  allows(src: number, proto: number, dport: number): boolean {
    const rules = this.cfg.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (this.families[i] === 6) continue;
      if (((src & this.masks[i]!) >>> 0) !== ((r.from & this.masks[i]!) >>> 0)) continue;
      const p = this.protos[i]!;
      if (p !== -1 && p !== proto) continue;
      if (r.port !== -1 && r.port !== dport) continue;
      return this.hit(i);
    }
    return this.miss();
  }

  /**
   * The filter for IPv6: may a packet whose upper layer is `proto` (after the extension
   * headers), from the source at b[srcOff..+16), to destination port `dport` (-1: none) come in?
   */
  allows6(b: Uint8Array, srcOff: number, proto: number, dport: number): boolean {
    const rules = this.cfg.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      const f = this.families[i]!;
      if (f === 4) continue;
      if (f === 6 && !prefixMatch(r.from6!, 0, b, srcOff, r.fromLen)) continue;
      const p = this.protos6[i]!;
      if (p !== -1 && p !== proto) continue;
      if (r.port !== -1 && r.port !== dport) continue;
      return this.hit(i);
    }
    return this.miss();
  }

  private hit(i: number): boolean {
    this.stats.ruleHits[i]!++;
    if (this.cfg.rules[i]!.action === 'deny') { this.stats.denied++; return false; }
    return true;
  }

  private miss(): boolean {
    if (this.cfg.default === 'deny') { this.stats.denied++; return false; }
    return true;
  }

  /**
   * A SYN (a new connection attempt) from `src` (an IPv4 address, or Tcp.sourceKey6 of an IPv6
   * source), which holds `conns` connections with us now: within the per-source limits? The
   * table of rates stays bounded (MAX_TRACKED sources, the oldest forgotten first), whatever
   * number of sources a flood forges.
   */
  admitsSyn(src: number, conns: number, now: number): boolean {
    const max = this.cfg.maxConnPerSource;
    if (max > 0 && conns >= max) { this.stats.connLimited++; return false; }
    const rate = this.cfg.synRatePerSource;
    if (rate <= 0) return true;
    let b = this.buckets.get(src);
    if (b === undefined) {
      if (this.buckets.size >= MAX_TRACKED) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: rate, at: now };
      this.buckets.set(src, b);
    } else {
      const elapsed = now - b.at;
      if (elapsed > 0) { b.tokens = Math.min(rate, b.tokens + (elapsed * rate) / 1000); b.at = now; }
    }
    if (b.tokens < 1) { this.stats.synLimited++; return false; }
    b.tokens--;
    return true;
  }
}
