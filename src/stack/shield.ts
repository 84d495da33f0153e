// The shield (F-Stack ships ipfw for the same job): an allow/deny filter on IPv4 input by source
// prefix, protocol and destination port, and per-source limits on TCP — concurrent connections
// and the rate of new connection attempts (SYNs). Everything it refuses is dropped silently and
// counted. Configured from tstack.toml's [shield] table and changeable at run time
// (Shield.configure). Sans-I/O: the caller passes the time.
import { IpProto } from '../wire/ipv4.js';
import { prefixMask } from '../wire/addr.js';

export type ShieldProto = 'any' | 'tcp' | 'udp' | 'icmp';

export interface ShieldRule {
  action: 'allow' | 'deny';
  /** Source prefix: address and length (0/0 matches every source). */
  from: number;
  fromLen: number;
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
const MAX_TRACKED = 65536;

const PROTO: Record<ShieldProto, number> = { any: -1, tcp: IpProto.TCP, udp: IpProto.UDP, icmp: IpProto.ICMP };

interface Bucket { tokens: number; at: number }

export class Shield {
  private cfg: ShieldConfig = { ...SHIELD_OFF, rules: [] };
  private masks: number[] = [];
  private protos: number[] = [];
  private readonly buckets = new Map<number, Bucket>();
  readonly stats = new ShieldStats();

  /** True when anything is configured (otherwise input skips the shield entirely). */
  active = false;

  configure(cfg: ShieldConfig): void {
    for (const r of cfg.rules) {
      if (r.fromLen < 0 || r.fromLen > 32) throw new RangeError(`shield rule: prefix length ${r.fromLen}`);
      if (r.port < -1 || r.port > 65535) throw new RangeError(`shield rule: port ${r.port}`);
    }
    this.cfg = { ...cfg, rules: cfg.rules.map((r) => ({ ...r })) };
    this.masks = cfg.rules.map((r) => prefixMask(r.fromLen));
    this.protos = cfg.rules.map((r) => PROTO[r.proto]);
    this.stats.ruleHits = cfg.rules.map(() => 0);
    this.buckets.clear();
    this.active = cfg.rules.length > 0 || cfg.default === 'deny' || cfg.maxConnPerSource > 0 || cfg.synRatePerSource > 0;
  }

  get config(): Readonly<ShieldConfig> { return this.cfg; }

  /**
   * The filter: may a datagram of `proto` from `src` to destination port `dport` (-1 when the
   * protocol has no ports) come in?
   */
  allows(src: number, proto: number, dport: number): boolean {
    const rules = this.cfg.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (((src & this.masks[i]!) >>> 0) !== ((r.from & this.masks[i]!) >>> 0)) continue;
      const p = this.protos[i]!;
      if (p !== -1 && p !== proto) continue;
      if (r.port !== -1 && r.port !== dport) continue;
      this.stats.ruleHits[i]!++;
      if (r.action === 'deny') { this.stats.denied++; return false; }
      return true;
    }
    if (this.cfg.default === 'deny') { this.stats.denied++; return false; }
    return true;
  }

  /**
   * A SYN (a new connection attempt) from `src`, which holds `conns` connections with us now:
   * within the per-source limits?
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
