// Multicast Listener Discovery version 2 (RFC 3810), the listener half: the groups an interface
// joins — its solicited-node groups above all, so that snooping switches deliver Neighbor
// Solicitations, and the groups sockets join with source filters (setFilter) — are announced to
// ff02::16 with state-change reports (TO_IN/TO_EX/ALLOW/BLOCK, sent Robustness Variable times),
// and queries from a router (general, group-specific, group-and-source-specific) are answered
// with current-state reports.
import type { PacketBuffer } from '../../base/pktbuf.js';
import { Icmpv6Type } from '../../wire/icmpv6.js';
import { isIpv6LinkLocal, isIpv6Unspecified, type Ipv6View } from '../../wire/ipv6.js';
import { Timer } from '../../base/time.js';
import { addr6Equals, copyAddr6 } from './addr6.js';
import type { Ip6Services } from './ipv6-context.js';
import { Group6, type Ipv6Link } from './ipv6-link.js';

/** Multicast Address Record types (RFC 3810 §5.2.12). */
export const MldRecord = { IsInclude: 1, IsExclude: 2, ToInclude: 3, ToExclude: 4, AllowNew: 5, BlockOld: 6 } as const;
export const FilterMode6 = { Include: 1, Exclude: 2 } as const;
/** One socket's filter for a group (RFC 3810 §3.1). */
export interface SourceFilter6 { mode: number; sources: readonly Uint8Array[]; }
/** ff02::16, where MLDv2 reports go (RFC 3810 §5.2.14). */
export const ALL_MLDV2_ROUTERS = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16);
const UNSPECIFIED = new Uint8Array(16);
/** RFC 3810 §9.1, §9.11: Robustness Variable 2, Unsolicited Report Interval 1 s. */
const ROBUSTNESS = 2;
const UNSOLICITED_REPORT_INTERVAL = 1000;
const RECORD_HLEN = 20;
const MLD_QUERY_V1_LEN = 24;
const MLD_QUERY_V2_LEN = 28;
/** IPv6 header + Hop-by-Hop Router Alert + report header. */
const REPORT_OVERHEAD = 40 + 8 + 8;

/** The MLD state of one group on one link. */
class GroupState {
  readonly owners = new Map<object, SourceFilter6>();
  mode: number = FilterMode6.Include;
  sources: Uint8Array[] = [];
  modeLeft = 0;
  readonly allow: { addr: Uint8Array; left: number }[] = [];
  readonly block: { addr: Uint8Array; left: number }[] = [];
  queryPending = false;
  querySources: Uint8Array[] | null = null;
  constructor(readonly group: Uint8Array) {}
  get member(): boolean { return this.mode === FilterMode6.Exclude || this.sources.length > 0; }
}

class MldLink {
  readonly states: GroupState[] = [];
  readonly changeTimer: Timer;
  readonly queryTimer: Timer;
  readonly groupTimer: Timer;
  constructor(readonly ifIndex: number, change: (m: MldLink) => void, query: (m: MldLink) => void, group: (m: MldLink) => void) {
    this.changeTimer = new Timer(() => change(this));
    this.queryTimer = new Timer(() => query(this));
    this.groupTimer = new Timer(() => group(this));
  }
  find(g: Uint8Array, off: number): GroupState | undefined {
    for (const s of this.states) if (addr6Equals(s.group, 0, g, off)) return s;
    return undefined;
  }
}

interface Rec { type: number; group: Uint8Array; sources: readonly Uint8Array[]; }

/**
 * RFC 3810 §6: "link-scope all-nodes address (FF02::1) is handled as a special case. It is
 * never reported"; neither are reserved, interface-local or node-local scopes (0, 1).
 */
export function isReportable(g: Uint8Array, off: number): boolean {
  const scope = g[off + 1]! & 0x0f;
  if (scope <= 1) return false;
  if (g[off + 1] === 0x02) {
    let allNodes = g[off + 15] === 1;
    for (let i = 2; i < 15 && allNodes; i++) if (g[off + i] !== 0) allNodes = false;
    if (allNodes) return false;
  }
  return true;
}

const has = (list: readonly Uint8Array[], a: Uint8Array, off = 0) => list.some((x) => addr6Equals(x, 0, a, off));

export class Mld {
  private readonly links: (MldLink | undefined)[] = [];
  stats = { reportsSent: 0, queriesReceived: 0 };

  constructor(private readonly host: Ip6Services) {}

  /** Joins group[off..] on `link` for the stack itself (reference counted, any source). */
  join(link: Ipv6Link, group: Uint8Array, off: number): void {
    const g = this.group6(link, group, off);
    if (g) { g.refs++; if (g.refs > 1) return; } else link.groups.push(new Group6(group, off));
    this.recompute(link, group, off);
  }

  /** Drops one of the stack's references to group[off..]; the last one leaves (and says so). */
  leave(link: Ipv6Link, group: Uint8Array, off: number): void {
    const g = this.group6(link, group, off);
    if (!g || g.refs <= 0) return;
    if (--g.refs > 0) return;
    this.recompute(link, group, off);
  }

  /**
   * Sets `owner`'s (a socket's) filter for group[off..] on `link`; null or INCLUDE({}) removes
   * it. The link's state is the merge (§4.2) and a change is reported.
   */
  setFilter(link: Ipv6Link, group: Uint8Array, off: number, owner: object, filter: SourceFilter6 | null): void {
    const m = this.state(link.ifIndex);
    let st = m.find(group, off);
    if (filter === null || (filter.mode === FilterMode6.Include && filter.sources.length === 0)) {
      if (!st || !st.owners.delete(owner)) return;
    } else {
      if (!st) { st = new GroupState(copyOf(group, off)); m.states.push(st); }
      st.owners.set(owner, { mode: filter.mode, sources: filter.sources.map((x) => copyOf(x, 0)) });
    }
    this.recompute(link, group, off);
  }

  /** Whether `link` listens to group b[groupOff..] from source b[srcOff..] (its merged filter). */
  accepts(link: Ipv6Link, b: Uint8Array, groupOff: number, srcOff: number): boolean {
    for (const g of link.groups) {
      if (!addr6Equals(g.addr, 0, b, groupOff)) continue;
      const f = g.filter;
      if (f === null) return true;
      return has(f.sources, b, srcOff) === f.include;
    }
    return false;
  }

  /**
   * A Multicast Listener Query (checksum verified) at buf.data[off, off+len). RFC 3810 §6.2: a
   * General Query is answered for every reportable group after a random delay up to Maximum
   * Response Delay; a Group-Specific Query only when we listen to that group, a
   * Group-and-Source-Specific one about the queried sources.
   */
  inputQuery(link: Ipv6Link, ip: Ipv6View, buf: PacketBuffer, off: number, len: number): void {
    const b = buf.data;
    // §5.1.14: queries come from a link-local source with hop limit 1.
    if (len < MLD_QUERY_V1_LEN || !isIpv6LinkLocal(b, ip.srcOff) || ip.hopLimit !== 1) { this.host.drop('mld_query_invalid'); return; }
    const n = len >= MLD_QUERY_V2_LEN ? (b[off + 26]! << 8) | b[off + 27]! : 0;
    if (MLD_QUERY_V2_LEN + n * 16 > len && n > 0) { this.host.drop('mld_query_invalid'); return; }
    this.stats.queriesReceived++;
    const groupOff = off + 8;
    // Maximum Response Code (§5.1.3): below 32768 it is the delay in ms; above, a float.
    const code = (b[off + 4]! << 8) | b[off + 5]!;
    const maxDelay = code < 32768 ? code : ((code & 0x0fff) | 0x1000) << (((code >> 12) & 7) + 3);
    const m = this.state(link.ifIndex);
    const at = this.host.clock.now() + (maxDelay > 0 ? this.host.random32() % maxDelay : 0);
    const w = this.host.wheel;
    // §6.2 (1): a pending answer to a general query sooner than this covers it.
    if (m.queryTimer.armed && m.queryTimer.deadline <= at) return;
    if (isIpv6Unspecified(b, groupOff)) { w.arm(m.queryTimer, at); return; }
    const st = m.find(b, groupOff);
    if (!st || !st.member || !link.hasGroup(b, groupOff)) return;
    if (!st.queryPending) { st.queryPending = true; st.querySources = n > 0 ? [] : null; } else if (n === 0) st.querySources = null;
    if (st.querySources !== null) for (let i = 0; i < n; i++) if (!has(st.querySources, b, off + 28 + 16 * i)) st.querySources.push(copyOf(b, off + 28 + 16 * i));
    if (!m.groupTimer.armed || m.groupTimer.deadline > at) w.arm(m.groupTimer, at);
  }

  /** The link's groups with their filters (tools, tests). */
  groups(ifIndex: number): { group: Uint8Array; mode: 'include' | 'exclude'; sources: Uint8Array[] }[] {
    const m = this.links[ifIndex];
    if (!m) return [];
    return m.states.filter((s) => s.member).map((s) => ({ group: s.group, mode: s.mode === FilterMode6.Exclude ? 'exclude' as const : 'include' as const, sources: [...s.sources] }));
  }

  /** Forgets an interface's pending reports. */
  flushInterface(ifIndex: number): void {
    const m = this.links[ifIndex];
    if (!m) return;
    this.host.wheel.disarm(m.changeTimer);
    this.host.wheel.disarm(m.queryTimer);
    this.host.wheel.disarm(m.groupTimer);
    for (const s of m.states) { s.modeLeft = 0; s.allow.length = 0; s.block.length = 0; s.queryPending = false; }
    this.prune(m);
  }

  private group6(link: Ipv6Link, group: Uint8Array, off: number): Group6 | undefined {
    for (const g of link.groups) if (addr6Equals(g.addr, 0, group, off)) return g;
    return undefined;
  }

  private state(ifIndex: number): MldLink {
    let m = this.links[ifIndex];
    if (!m) {
      m = new MldLink(ifIndex, (x) => this.sendChanges(x), (x) => this.sendCurrentState(x), (x) => this.answerGroups(x));
      this.links[ifIndex] = m;
    }
    return m;
  }

  /** §4.2: merge the stack's own joins (EXCLUDE {}) and the sockets' filters; report a change (§6.1). */
  private recompute(link: Ipv6Link, group: Uint8Array, off: number): void {
    const m = this.state(link.ifIndex);
    let st = m.find(group, off);
    if (!st) { st = new GroupState(copyOf(group, off)); m.states.push(st); }
    const g6 = this.group6(link, group, off);
    const refs = g6?.refs ?? 0;
    let exclude: Uint8Array[] | null = refs > 0 ? [] : null;
    const include: Uint8Array[] = [];
    for (const f of st.owners.values()) {
      if (f.mode === FilterMode6.Exclude) exclude = exclude === null ? [...f.sources] : exclude.filter((x) => has(f.sources, x));
      else for (const x of f.sources) if (!has(include, x)) include.push(x);
    }
    const mode = exclude !== null ? FilterMode6.Exclude : FilterMode6.Include;
    const sources = exclude !== null ? exclude.filter((x) => !has(include, x)) : include;
    const oldMode = st.mode, old = st.sources;
    const same = oldMode === mode && old.length === sources.length && old.every((x) => has(sources, x));
    if (!same) {
      st.mode = mode; st.sources = sources;
      // The link's group list (what IPv6 input and the MAC filter consult) follows membership.
      if (st.member) {
        let g = g6;
        if (!g) { g = new Group6(group, off); g.refs = 0; link.groups.push(g); }
        g.filter = mode === FilterMode6.Exclude && sources.length === 0 ? null : { include: mode === FilterMode6.Include, sources };
      } else if (g6 && refs === 0) link.groups.splice(link.groups.indexOf(g6), 1);
      if (isReportable(st.group, 0)) {
        if (oldMode !== mode) { st.modeLeft = ROBUSTNESS; st.allow.length = 0; st.block.length = 0; } else {
          const added = sources.filter((x) => !has(old, x)), removed = old.filter((x) => !has(sources, x));
          const [allow, block] = mode === FilterMode6.Include ? [added, removed] : [removed, added];
          for (const x of allow) { dropFrom(st.block, x); dropFrom(st.allow, x); st.allow.push({ addr: x, left: ROBUSTNESS }); }
          for (const x of block) { dropFrom(st.allow, x); dropFrom(st.block, x); st.block.push({ addr: x, left: ROBUSTNESS }); }
        }
        this.sendChanges(m);
        return;
      }
    } else if (g6 && refs === 0 && !st.member) link.groups.splice(link.groups.indexOf(g6), 1);
    this.prune(m);
  }

  private prune(m: MldLink): void {
    for (let i = m.states.length - 1; i >= 0; i--) {
      const s = m.states[i]!;
      if (!s.member && s.owners.size === 0 && s.modeLeft === 0 && s.allow.length === 0 && s.block.length === 0) {
        const link = this.host.link(m.ifIndex);
        const g = link ? this.group6(link, s.group, 0) : undefined;
        if (!g || g.refs === 0) m.states.splice(i, 1);
      }
    }
  }

  /** §6.1: the state-change records, now and Robustness Variable - 1 more times at random intervals. */
  private sendChanges(m: MldLink): void {
    const link = this.host.link(m.ifIndex);
    const recs: Rec[] = [];
    let more = false;
    for (const s of m.states) {
      if (s.modeLeft > 0) {
        s.modeLeft--;
        recs.push({ type: s.mode === FilterMode6.Exclude ? MldRecord.ToExclude : MldRecord.ToInclude, group: s.group, sources: s.sources });
      } else if (s.allow.length || s.block.length) {
        if (s.allow.length) recs.push({ type: MldRecord.AllowNew, group: s.group, sources: s.allow.map((x) => x.addr) });
        if (s.block.length) recs.push({ type: MldRecord.BlockOld, group: s.group, sources: s.block.map((x) => x.addr) });
        for (const l of [s.allow, s.block]) { for (const x of l) x.left--; for (let i = l.length - 1; i >= 0; i--) if (l[i]!.left <= 0) l.splice(i, 1); }
      }
      if (s.modeLeft > 0 || s.allow.length || s.block.length) more = true;
    }
    if (link && recs.length) this.send(link, recs);
    this.prune(m);
    if (more) this.host.wheel.arm(m.changeTimer, this.host.clock.now() + 1 + (this.host.random32() % UNSOLICITED_REPORT_INTERVAL));
    else this.host.wheel.disarm(m.changeTimer);
  }

  private sendCurrentState(m: MldLink): void {
    const link = this.host.link(m.ifIndex);
    if (!link) return;
    const recs: Rec[] = [];
    for (const g of link.groups) {
      if (!isReportable(g.addr, 0)) continue;
      const s = m.find(g.addr, 0);
      const ex = !s || s.mode === FilterMode6.Exclude;
      recs.push({ type: ex ? MldRecord.IsExclude : MldRecord.IsInclude, group: g.addr, sources: s ? s.sources : [] });
    }
    if (recs.length) this.send(link, recs);
  }

  private answerGroups(m: MldLink): void {
    const link = this.host.link(m.ifIndex);
    const recs: Rec[] = [];
    for (const s of m.states) {
      if (!s.queryPending) continue;
      const q = s.querySources;
      s.queryPending = false; s.querySources = null;
      if (!s.member) continue;
      if (q === null) { recs.push({ type: s.mode === FilterMode6.Exclude ? MldRecord.IsExclude : MldRecord.IsInclude, group: s.group, sources: s.sources }); continue; }
      // §6.3: INCLUDE (A): IS_IN (A*Q); EXCLUDE (A): IS_IN (Q-A); nothing when empty.
      const srcs = s.mode === FilterMode6.Include ? s.sources.filter((x) => has(q, x)) : q.filter((x) => !has(s.sources, x));
      if (srcs.length) recs.push({ type: MldRecord.IsInclude, group: s.group, sources: srcs });
    }
    if (link && recs.length) this.send(link, recs);
  }

  /** §5.2.13: from a link-local source, or :: before the interface has one; hop limit 1; Router Alert. As many reports as the MTU needs. */
  private send(link: Ipv6Link, recs: Rec[]): void {
    const room = Math.max(1280, link.mtu) - REPORT_OVERHEAD;
    const maxSrc = Math.max(1, Math.floor((room - RECORD_HLEN) / 16));
    const flat: Rec[] = [];
    for (const r of recs) {
      if (r.sources.length <= maxSrc) { flat.push(r); continue; }
      const split = r.type !== MldRecord.IsExclude && r.type !== MldRecord.ToExclude;
      for (let i = 0; i < r.sources.length; i += maxSrc) { flat.push({ type: r.type, group: r.group, sources: r.sources.slice(i, i + maxSrc) }); if (!split) break; }
    }
    const ll = link.linkLocal();
    let i = 0;
    while (i < flat.length) {
      let len = 0, n = 0;
      while (i + n < flat.length && len + RECORD_HLEN + flat[i + n]!.sources.length * 16 <= room) { len += RECORD_HLEN + flat[i + n]!.sources.length * 16; n++; }
      const buf = this.host.pool.alloc(8 + len + 256 <= 2048 ? 2048 : 8 + len + 256);
      const o = buf.append(8 + len);
      const b = buf.data;
      b[o] = Icmpv6Type.MldV2Report; b[o + 1] = 0; b[o + 2] = 0; b[o + 3] = 0;
      b[o + 4] = 0; b[o + 5] = 0; b[o + 6] = n >> 8; b[o + 7] = n & 0xff;
      let p = o + 8;
      for (let k = 0; k < n; k++) p = writeRecord(b, p, flat[i + k]!);
      this.stats.reportsSent++;
      this.host.sendIcmpv6(buf, ll ? ll.addr : UNSPECIFIED, 0, ALL_MLDV2_ROUTERS, 0, 1, link.ifIndex, true);
      i += n;
    }
  }
}

function writeRecord(b: Uint8Array, o: number, r: Rec): number {
  b[o] = r.type; b[o + 1] = 0; b[o + 2] = r.sources.length >> 8; b[o + 3] = r.sources.length & 0xff;
  copyAddr6(b, o + 4, r.group, 0);
  o += RECORD_HLEN;
  for (const s of r.sources) { copyAddr6(b, o, s, 0); o += 16; }
  return o;
}

function dropFrom(list: { addr: Uint8Array }[], a: Uint8Array): void {
  const i = list.findIndex((x) => addr6Equals(x.addr, 0, a, 0));
  if (i >= 0) list.splice(i, 1);
}

function copyOf(a: Uint8Array, off: number): Uint8Array { const c = new Uint8Array(16); copyAddr6(c, 0, a, off); return c; }
