// IGMPv3 (RFC 3376), the host half, with IGMPv1/v2 querier compatibility (§7). Sockets set
// per-(interface, group) source filters; the interface state is their merge (§3.2); a change
// of it is announced with State-Change Reports (§5.1), sent Robustness Variable times, and
// queries are answered with Current-State Reports (§5.2). The engine's only IGMP state.
import type { BufferPool, PacketBuffer } from '../../base/pktbuf.js';
import { Timer, type Clock, type TimerWheel } from '../../base/time.js';
import { WireError } from '../../wire/errors.js';
import {
  ALL_IGMPV3_ROUTERS, ALL_ROUTERS, ALL_SYSTEMS, IGMP_RECORD_HLEN, IGMP_V3_REPORT_HLEN, IPV4_RA_HLEN, IgmpRecord, IgmpType, IgmpView,
  finishIgmp, writeGroupRecord, writeIgmpV2, writeIpv4RaHeader, writeV3ReportHeader,
} from '../../wire/igmp.js';
import type { Interface } from '../iface.js';

export const FilterMode = { Include: 1, Exclude: 2 } as const;

/** One socket's filter for a group on an interface (RFC 3376 §3.1's socket state). */
export interface SourceFilter { mode: number; sources: readonly number[]; }

/** What IGMP needs from IPv4. */
export interface IgmpContext {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly pool: BufferPool;
  readonly random: () => number;
  drop(reason: string): void;
  interfaceByIndex(ifIndex: number): Interface | undefined;
  /** The next IPv4 identification. */
  nextIpId(): number;
  /** Transmits a complete IPv4 datagram (buf.start = its header) to multicast `dst` on `iface`. Takes ownership. */
  multicastLinkOutput(iface: Interface, dst: number, buf: PacketBuffer): void;
}

/** §8: Robustness Variable 2, Query Interval 125 s, Unsolicited Report Interval 1 s (v3). */
const DEFAULT_ROBUSTNESS = 2;
const DEFAULT_QUERY_INTERVAL = 125000;
const UNSOLICITED_REPORT_INTERVAL = 1000;

class IgmpGroup {
  /** Socket filters by owner (a socket). */
  readonly owners = new Map<object, SourceFilter>();
  mode: number = FilterMode.Include;
  sources: number[] = [];
  /** Retransmissions left of a filter-mode change (TO_IN / TO_EX, or v1/v2 report/leave). */
  modeLeft = 0;
  /** Retransmissions left per source of ALLOW / BLOCK records. */
  readonly allow = new Map<number, number>();
  readonly block = new Map<number, number>();
  /** A group(-and-source)-specific query waits for its answer; querySources null = the whole group. */
  queryPending = false;
  querySources: Set<number> | null = null;
  constructor(readonly group: number) {}
  get member(): boolean { return this.mode === FilterMode.Exclude || this.sources.length > 0; }
  get idle(): boolean { return !this.member && this.modeLeft === 0 && this.allow.size === 0 && this.block.size === 0 && this.owners.size === 0; }
}

class IgmpIf {
  readonly groups = new Map<number, IgmpGroup>();
  readonly changeTimer: Timer;
  readonly generalTimer: Timer;
  readonly groupTimer: Timer;
  robustness = DEFAULT_ROBUSTNESS;
  queryInterval = DEFAULT_QUERY_INTERVAL;
  /** §7.2.1: Older Version Querier Present timeouts (clock ms). */
  v1Until = 0;
  v2Until = 0;
  constructor(readonly ifIndex: number, igmp: Igmp) {
    this.changeTimer = new Timer(() => igmp.sendChanges(this));
    this.generalTimer = new Timer(() => igmp.answerGeneral(this));
    this.groupTimer = new Timer(() => igmp.answerGroups(this));
  }
}

interface Rec { type: number; group: number; sources: number[]; }

export class Igmp {
  private readonly ifs: (IgmpIf | undefined)[] = [];
  private readonly view = new IgmpView();
  stats = { reportsSent: 0, leavesSent: 0, queriesReceived: 0, badMessages: 0 };
  /** The 01:00:5e MAC of a group joined (refcount by low 23 bits), per interface: the MAC filter. */
  private readonly macs: (Map<number, number> | undefined)[] = [];

  constructor(private readonly ctx: IgmpContext) {}

  // ---- membership --------------------------------------------------------------------------

  /**
   * Sets `owner`'s filter for `group` on interface `ifIndex`; null (or INCLUDE {}) removes it.
   * The interface state is recomputed and a change is reported.
   */
  setFilter(ifIndex: number, group: number, owner: object, filter: SourceFilter | null): void {
    const ifc = this.state(ifIndex);
    let g = ifc.groups.get(group);
    if (!g) {
      if (filter === null) return;
      g = new IgmpGroup(group);
      ifc.groups.set(group, g);
    }
    if (filter === null || (filter.mode === FilterMode.Include && filter.sources.length === 0)) g.owners.delete(owner);
    else g.owners.set(owner, { mode: filter.mode, sources: [...filter.sources] });
    this.recompute(ifc, g);
  }

  /** True when the interface listens to `group` from `src` (its merged filter admits src). */
  accepts(ifIndex: number, group: number, src: number): boolean {
    if (group === ALL_SYSTEMS) return true;
    const g = this.ifs[ifIndex]?.groups.get(group);
    if (!g) return false;
    const has = g.sources.includes(src);
    return g.mode === FilterMode.Exclude ? !has : has;
  }

  /** True when the interface is a member of group (any source). */
  isMember(ifIndex: number, group: number): boolean {
    if (group === ALL_SYSTEMS) return true;
    return this.ifs[ifIndex]?.groups.get(group)?.member ?? false;
  }

  /** The MAC filter: does the interface want frames to 01:00:5e:b[off+3..off+5]? */
  macJoined(ifIndex: number, b: Uint8Array, off: number): boolean {
    const key = ((b[off + 3]! & 0x7f) << 16) | (b[off + 4]! << 8) | b[off + 5]!;
    if (key === 1) return true; // 224.0.0.1
    const m = this.macs[ifIndex];
    return m !== undefined && (m.get(key) ?? 0) > 0;
  }

  /** The groups an interface is a member of, with their filters (tools, tests). */
  groups(ifIndex: number): { group: number; mode: 'include' | 'exclude'; sources: number[] }[] {
    const ifc = this.ifs[ifIndex];
    if (!ifc) return [];
    const out = [];
    for (const g of ifc.groups.values()) if (g.member) out.push({ group: g.group, mode: g.mode === FilterMode.Exclude ? 'exclude' as const : 'include' as const, sources: [...g.sources] });
    return out;
  }

  /** The version the interface speaks now (1, 2 or 3: §7.2.1). */
  version(ifIndex: number): number {
    const ifc = this.ifs[ifIndex];
    if (!ifc) return 3;
    const now = this.ctx.clock.now();
    return ifc.v1Until > now ? 1 : ifc.v2Until > now ? 2 : 3;
  }

  /** Forgets an interface (it went down): timers and pending reports; memberships stay. */
  flushInterface(ifIndex: number): void {
    const ifc = this.ifs[ifIndex];
    if (!ifc) return;
    const w = this.ctx.wheel;
    w.disarm(ifc.changeTimer); w.disarm(ifc.generalTimer); w.disarm(ifc.groupTimer);
    for (const [k, g] of ifc.groups) {
      g.modeLeft = 0; g.allow.clear(); g.block.clear(); g.queryPending = false; g.querySources = null;
      if (g.idle) ifc.groups.delete(k);
    }
  }

  private state(ifIndex: number): IgmpIf {
    let s = this.ifs[ifIndex];
    if (!s) { s = new IgmpIf(ifIndex, this); this.ifs[ifIndex] = s; }
    return s;
  }

  /** §3.2: the interface state is the merge of its sockets' states. */
  private recompute(ifc: IgmpIf, g: IgmpGroup): void {
    let exclude: Set<number> | null = null;
    const include = new Set<number>();
    for (const f of g.owners.values()) {
      if (f.mode === FilterMode.Exclude) {
        // EXCLUDE: the intersection of the exclude lists...
        if (exclude === null) exclude = new Set(f.sources);
        else for (const s of exclude) if (!f.sources.includes(s)) exclude.delete(s);
      } else for (const s of f.sources) include.add(s);
    }
    let mode: number, sources: number[];
    if (exclude !== null) {
      // ... minus the union of the include lists.
      for (const s of include) exclude.delete(s);
      mode = FilterMode.Exclude; sources = [...exclude];
    } else { mode = FilterMode.Include; sources = [...include]; }
    sources.sort((a, b) => a - b);
    const wasMember = g.member;
    const oldMode = g.mode, old = g.sources;
    if (oldMode === mode && old.length === sources.length && old.every((s, i) => s === sources[i])) { this.maybeForget(ifc, g); return; }
    g.mode = mode; g.sources = sources;
    if (g.member !== wasMember) this.macRef(ifc.ifIndex, g.group, g.member ? 1 : -1);
    if (g.group === ALL_SYSTEMS) return; // §5: 224.0.0.1 is never reported.
    // §5.1: the record that announces the change.
    if (oldMode !== mode) {
      g.modeLeft = ifc.robustness;
      g.allow.clear(); g.block.clear();
    } else {
      const inOld = (s: number) => old.includes(s), inNew = (s: number) => sources.includes(s);
      // INCLUDE: ALLOW(new - old), BLOCK(old - new); EXCLUDE: ALLOW(old - new), BLOCK(new - old).
      const added = sources.filter((s) => !inOld(s)), removed = old.filter((s) => !inNew(s));
      const allow = mode === FilterMode.Include ? added : removed, block = mode === FilterMode.Include ? removed : added;
      for (const s of allow) { g.allow.set(s, ifc.robustness); g.block.delete(s); }
      for (const s of block) { g.block.set(s, ifc.robustness); g.allow.delete(s); }
    }
    this.sendChanges(ifc);
  }

  private maybeForget(ifc: IgmpIf, g: IgmpGroup): void {
    if (g.idle) ifc.groups.delete(g.group);
  }

  private macRef(ifIndex: number, group: number, d: number): void {
    let m = this.macs[ifIndex];
    if (!m) { m = new Map(); this.macs[ifIndex] = m; }
    const key = group & 0x7fffff;
    const n = (m.get(key) ?? 0) + d;
    if (n > 0) m.set(key, n); else m.delete(key);
  }

  // ---- reports -----------------------------------------------------------------------------

  /** @internal Sends what state changes wait, and arms the next retransmission (§5.1). */
  sendChanges(ifc: IgmpIf): void {
    const iface = this.ctx.interfaceByIndex(ifc.ifIndex);
    const version = this.version(ifc.ifIndex);
    const recs: Rec[] = [];
    let more = false;
    for (const g of ifc.groups.values()) {
      if (g.modeLeft > 0) {
        g.modeLeft--;
        if (version < 3) {
          // §7.3.2: a v1/v2 querier hears a report for a joined group, a v2 one a leave.
          if (iface) {
            if (g.member) this.sendV2(iface, version === 1 ? IgmpType.V1Report : IgmpType.V2Report, g.group, g.group);
            else if (version === 2) this.sendV2(iface, IgmpType.V2Leave, g.group, ALL_ROUTERS);
          }
        } else recs.push({ type: g.mode === FilterMode.Exclude ? IgmpRecord.ToExclude : IgmpRecord.ToInclude, group: g.group, sources: g.sources });
      } else if (g.allow.size || g.block.size) {
        if (version === 3) {
          if (g.allow.size) recs.push({ type: IgmpRecord.AllowNew, group: g.group, sources: [...g.allow.keys()] });
          if (g.block.size) recs.push({ type: IgmpRecord.BlockOld, group: g.group, sources: [...g.block.keys()] });
        }
        for (const m of [g.allow, g.block]) for (const [s, n] of m) { if (n <= 1) m.delete(s); else m.set(s, n - 1); }
      }
      if (g.modeLeft > 0 || g.allow.size || g.block.size) more = true;
    }
    if (iface && recs.length) this.sendV3(iface, recs);
    for (const g of [...ifc.groups.values()]) this.maybeForget(ifc, g);
    if (more) this.ctx.wheel.arm(ifc.changeTimer, this.ctx.clock.now() + 1 + Math.floor(this.ctx.random() * UNSOLICITED_REPORT_INTERVAL));
    else this.ctx.wheel.disarm(ifc.changeTimer);
  }

  /** @internal §5.2: the answer to a General Query: the current state of every group. */
  answerGeneral(ifc: IgmpIf): void {
    const iface = this.ctx.interfaceByIndex(ifc.ifIndex);
    if (!iface) return;
    const version = this.version(ifc.ifIndex);
    const recs: Rec[] = [];
    for (const g of ifc.groups.values()) {
      if (!g.member || g.group === ALL_SYSTEMS) continue;
      if (version < 3) this.sendV2(iface, version === 1 ? IgmpType.V1Report : IgmpType.V2Report, g.group, g.group);
      else recs.push({ type: g.mode === FilterMode.Exclude ? IgmpRecord.IsExclude : IgmpRecord.IsInclude, group: g.group, sources: g.sources });
    }
    if (recs.length) this.sendV3(iface, recs);
  }

  /** @internal §5.2: answers to Group-Specific and Group-and-Source-Specific Queries. */
  answerGroups(ifc: IgmpIf): void {
    const iface = this.ctx.interfaceByIndex(ifc.ifIndex);
    const version = this.version(ifc.ifIndex);
    const recs: Rec[] = [];
    for (const g of ifc.groups.values()) {
      if (!g.queryPending) continue;
      const q = g.querySources;
      g.queryPending = false; g.querySources = null;
      if (!g.member || !iface) continue;
      if (version < 3) { this.sendV2(iface, version === 1 ? IgmpType.V1Report : IgmpType.V2Report, g.group, g.group); continue; }
      if (q === null) { recs.push({ type: g.mode === FilterMode.Exclude ? IgmpRecord.IsExclude : IgmpRecord.IsInclude, group: g.group, sources: g.sources }); continue; }
      // INCLUDE (A): IS_IN (A * Q); EXCLUDE (A): IS_IN (Q - A); nothing when empty.
      const srcs = g.mode === FilterMode.Include ? g.sources.filter((s) => q.has(s)) : [...q].filter((s) => !g.sources.includes(s));
      if (srcs.length) recs.push({ type: IgmpRecord.IsInclude, group: g.group, sources: srcs });
    }
    if (iface && recs.length) this.sendV3(iface, recs);
  }

  /** Version 3 reports to 224.0.0.22, as many as the MTU needs (§4.2.16). */
  private sendV3(iface: Interface, recs: Rec[]): void {
    const room = iface.mtu - IPV4_RA_HLEN - IGMP_V3_REPORT_HLEN;
    const maxSrc = Math.max(1, Math.floor((room - IGMP_RECORD_HLEN) / 4));
    // Records too long for one packet are split (an EXCLUDE list is cut short, §4.2.16).
    const flat: Rec[] = [];
    for (const r of recs) {
      if (r.sources.length <= maxSrc) { flat.push(r); continue; }
      const split = r.type !== IgmpRecord.IsExclude && r.type !== IgmpRecord.ToExclude;
      for (let i = 0; i < r.sources.length; i += maxSrc) { flat.push({ type: r.type, group: r.group, sources: r.sources.slice(i, i + maxSrc) }); if (!split) break; }
    }
    let i = 0;
    while (i < flat.length) {
      let len = 0, n = 0;
      while (i + n < flat.length && len + IGMP_RECORD_HLEN + flat[i + n]!.sources.length * 4 <= room) { len += IGMP_RECORD_HLEN + flat[i + n]!.sources.length * 4; n++; }
      const buf = this.ctx.pool.alloc(IPV4_RA_HLEN + IGMP_V3_REPORT_HLEN + len + 256);
      const total = IPV4_RA_HLEN + IGMP_V3_REPORT_HLEN + len;
      const o = buf.append(total);
      const b = buf.data;
      writeV3ReportHeader(b, o + IPV4_RA_HLEN, n);
      let p = o + IPV4_RA_HLEN + IGMP_V3_REPORT_HLEN;
      for (let k = 0; k < n; k++) { const r = flat[i + k]!; p = writeGroupRecord(b, p, r.type, r.group, r.sources); }
      finishIgmp(b, o + IPV4_RA_HLEN, IGMP_V3_REPORT_HLEN + len);
      writeIpv4RaHeader(b, o, total, this.ctx.nextIpId(), iface.primary, ALL_IGMPV3_ROUTERS);
      this.stats.reportsSent++;
      this.ctx.multicastLinkOutput(iface, ALL_IGMPV3_ROUTERS, buf);
      i += n;
    }
  }

  private sendV2(iface: Interface, type: number, group: number, dst: number): void {
    const buf = this.ctx.pool.alloc();
    const o = buf.append(IPV4_RA_HLEN + 8);
    writeIgmpV2(buf.data, o + IPV4_RA_HLEN, type, group);
    writeIpv4RaHeader(buf.data, o, IPV4_RA_HLEN + 8, this.ctx.nextIpId(), iface.primary, dst);
    if (type === IgmpType.V2Leave) this.stats.leavesSent++; else this.stats.reportsSent++;
    this.ctx.multicastLinkOutput(iface, dst, buf);
  }

  // ---- input -------------------------------------------------------------------------------

  /** An IGMP message at buf.data[off, off + len) received on `iface`. Does not take ownership. */
  input(iface: Interface, dst: number, b: Uint8Array, off: number, len: number): void {
    const v = this.view;
    if (v.wrap(b, off, len) !== WireError.Ok) { this.stats.badMessages++; this.ctx.drop('igmp_bad_message'); return; }
    if (v.type !== IgmpType.Query) return; // other hosts' reports: nothing for a host to do (v3 has no suppression)
    this.stats.queriesReceived++;
    const ifc = this.state(iface.index);
    const now = this.ctx.clock.now();
    const version = v.queryVersion;
    const maxResp = v.maxResponseMs;
    const group = v.group;
    if (version === 3) {
      // §4.1.12: a general query goes to 224.0.0.1; a group query to its group.
      if (group === 0 ? dst !== ALL_SYSTEMS : dst !== group && dst !== ALL_SYSTEMS) { this.ctx.drop('igmp_query_bad_destination'); return; }
      // §8.1, §8.2: adopt the querier's robustness and interval.
      if (v.qrv > 0) ifc.robustness = v.qrv;
      if (v.qqi > 0) ifc.queryInterval = v.qqi * 1000;
    } else {
      // §8.12: Older Version Querier Present Timeout = Robustness × Query Interval + Query Response Interval.
      const until = now + ifc.robustness * ifc.queryInterval + maxResp;
      if (version === 1) ifc.v1Until = until; else ifc.v2Until = until;
    }
    const at = now + (maxResp > 1 ? Math.floor(this.ctx.random() * maxResp) : 0);
    const w = this.ctx.wheel;
    // §5.2 (1): a pending general response sooner than this delay covers the query.
    if (ifc.generalTimer.armed && ifc.generalTimer.deadline <= at) return;
    if (group === 0) { w.arm(ifc.generalTimer, at); return; }
    const g = ifc.groups.get(group);
    if (!g || !g.member) return;
    const n = v.sourceCount;
    if (!g.queryPending) {
      g.queryPending = true;
      g.querySources = n > 0 && version === 3 ? new Set<number>() : null;
    } else if (n === 0 || g.querySources === null) g.querySources = null;
    if (g.querySources !== null) for (let i = 0; i < n; i++) g.querySources.add(v.source(i));
    if (!ifc.groupTimer.armed || ifc.groupTimer.deadline > at) w.arm(ifc.groupTimer, at);
  }
}
