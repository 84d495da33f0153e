// Multicast Listener Discovery version 2 (RFC 3810), the listener half: the groups an interface
// joins (its solicited-node groups above all, so that snooping switches deliver Neighbor
// Solicitations) are announced to ff02::16 with state-change reports, and queries from a router
// are answered with current-state reports.
import type { PacketBuffer } from '../../base/pktbuf.js';
import { Icmpv6Type } from '../../wire/icmpv6.js';
import { isIpv6LinkLocal, isIpv6Unspecified, type Ipv6View } from '../../wire/ipv6.js';
import { Timer } from '../../base/time.js';
import { addr6Equals, copyAddr6 } from './addr6.js';
import type { Ip6Services } from './ipv6-context.js';
import { Group6, type Ipv6Link } from './ipv6-link.js';

/** Multicast Address Record types (RFC 3810 §5.2.12). */
export const MldRecord = { IsInclude: 1, IsExclude: 2, ToInclude: 3, ToExclude: 4 } as const;
/** ff02::16, where MLDv2 reports go (RFC 3810 §5.2.14). */
export const ALL_MLDV2_ROUTERS = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16);
const UNSPECIFIED = new Uint8Array(16);
/** RFC 3810 §9.1, §9.11: Robustness Variable 2, Unsolicited Report Interval 1 s. */
const ROBUSTNESS = 2;
const UNSOLICITED_REPORT_INTERVAL = 1000;
const RECORD_LEN = 20;
const MLD_QUERY_V1_LEN = 24;

class PendingChange { constructor(readonly group: Uint8Array, public type: number, public left: number) {} }

class MldLink {
  readonly changes: PendingChange[] = [];
  readonly changeTimer: Timer;
  readonly queryTimer: Timer;
  constructor(readonly ifIndex: number, change: (m: MldLink) => void, query: (m: MldLink) => void) {
    this.changeTimer = new Timer(() => change(this));
    this.queryTimer = new Timer(() => query(this));
  }
}

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

export class Mld {
  private readonly links: (MldLink | undefined)[] = [];
  stats = { reportsSent: 0, queriesReceived: 0 };

  constructor(private readonly host: Ip6Services) {}

  /** Joins group[off..] on `link` (reference counted); a new reportable group is announced at once. */
  join(link: Ipv6Link, group: Uint8Array, off: number): void {
    for (const g of link.groups) if (addr6Equals(g.addr, 0, group, off)) { g.refs++; return; }
    const g = new Group6(group, off);
    link.groups.push(g);
    if (isReportable(g.addr, 0)) this.stateChange(link, g.addr, MldRecord.ToExclude);
  }

  /** Drops one reference to group[off..]; the last one leaves the group (and says so). */
  leave(link: Ipv6Link, group: Uint8Array, off: number): void {
    const i = link.groups.findIndex((g) => addr6Equals(g.addr, 0, group, off));
    if (i < 0) return;
    const g = link.groups[i]!;
    if (--g.refs > 0) return;
    link.groups.splice(i, 1);
    if (isReportable(g.addr, 0)) this.stateChange(link, g.addr, MldRecord.ToInclude);
  }

  /**
   * A Multicast Listener Query (checksum verified) at buf.data[off, off+len). RFC 3810 §6.2: a
   * General Query is answered for every reportable group after a random delay up to Maximum
   * Response Delay; a Group-Specific Query only when we listen to that group.
   */
  inputQuery(link: Ipv6Link, ip: Ipv6View, buf: PacketBuffer, off: number, len: number): void {
    const b = buf.data;
    // §5.1.14: queries come from a link-local source with hop limit 1.
    if (len < MLD_QUERY_V1_LEN || !isIpv6LinkLocal(b, ip.srcOff) || ip.hopLimit !== 1) { this.host.drop('mld_query_invalid'); return; }
    this.stats.queriesReceived++;
    const groupOff = off + 8;
    if (!isIpv6Unspecified(b, groupOff) && !link.hasGroup(b, groupOff)) return;
    // Maximum Response Code (§5.1.3): below 32768 it is the delay in ms; above, a float.
    const code = (b[off + 4]! << 8) | b[off + 5]!;
    const maxDelay = code < 32768 ? code : ((code & 0x0fff) | 0x1000) << (((code >> 12) & 7) + 3);
    const m = this.state(link.ifIndex);
    const at = this.host.clock.now() + (maxDelay > 0 ? this.host.random32() % maxDelay : 0);
    if (!m.queryTimer.armed || m.queryTimer.deadline > at) this.host.wheel.arm(m.queryTimer, at);
  }

  /** Forgets an interface's pending reports. */
  flushInterface(ifIndex: number): void {
    const m = this.links[ifIndex];
    if (!m) return;
    this.host.wheel.disarm(m.changeTimer);
    this.host.wheel.disarm(m.queryTimer);
    m.changes.length = 0;
  }

  private state(ifIndex: number): MldLink {
    let m = this.links[ifIndex];
    if (!m) {
      m = new MldLink(ifIndex, (x) => this.sendChanges(x), (x) => this.sendCurrentState(x));
      this.links[ifIndex] = m;
    }
    return m;
  }

  /** §6.1: send the state-change record now, and Robustness Variable - 1 more times at random intervals. */
  private stateChange(link: Ipv6Link, group: Uint8Array, type: number): void {
    const m = this.state(link.ifIndex);
    const p = m.changes.find((c) => addr6Equals(c.group, 0, group, 0));
    if (p) { p.type = type; p.left = ROBUSTNESS; } else m.changes.push(new PendingChange(copyOf(group), type, ROBUSTNESS));
    this.sendChanges(m);
  }

  private sendChanges(m: MldLink): void {
    const link = this.host.link(m.ifIndex);
    if (!link || m.changes.length === 0) return;
    const buf = this.begin(m.changes.length);
    let o = buf.start + 8;
    for (const c of m.changes) { o = writeRecord(buf.data, o, c.type, c.group); c.left--; }
    this.send(link, buf);
    for (let i = m.changes.length - 1; i >= 0; i--) if (m.changes[i]!.left <= 0) m.changes.splice(i, 1);
    if (m.changes.length) this.host.wheel.arm(m.changeTimer, this.host.clock.now() + 1 + (this.host.random32() % UNSOLICITED_REPORT_INTERVAL));
  }

  private sendCurrentState(m: MldLink): void {
    const link = this.host.link(m.ifIndex);
    if (!link) return;
    let n = 0;
    for (const g of link.groups) if (isReportable(g.addr, 0)) n++;
    if (n === 0) return;
    const buf = this.begin(n);
    let o = buf.start + 8;
    for (const g of link.groups) if (isReportable(g.addr, 0)) o = writeRecord(buf.data, o, MldRecord.IsExclude, g.addr);
    this.send(link, buf);
  }

  private begin(records: number): PacketBuffer {
    const buf = this.host.pool.alloc(8 + records * RECORD_LEN + 256);
    const off = buf.append(8 + records * RECORD_LEN);
    const b = buf.data;
    b[off] = Icmpv6Type.MldV2Report; b[off + 1] = 0; b[off + 2] = 0; b[off + 3] = 0;
    b[off + 4] = 0; b[off + 5] = 0; b[off + 6] = records >> 8; b[off + 7] = records & 0xff;
    return buf;
  }

  /** §5.2.13: from a link-local source, or :: before the interface has one; hop limit 1; Router Alert. */
  private send(link: Ipv6Link, buf: PacketBuffer): void {
    const ll = link.linkLocal();
    this.stats.reportsSent++;
    this.host.sendIcmpv6(buf, ll ? ll.addr : UNSPECIFIED, 0, ALL_MLDV2_ROUTERS, 0, 1, link.ifIndex, true);
  }
}

function writeRecord(b: Uint8Array, o: number, type: number, group: Uint8Array): number {
  b[o] = type; b[o + 1] = 0; b[o + 2] = 0; b[o + 3] = 0;
  copyAddr6(b, o + 4, group, 0);
  return o + RECORD_LEN;
}

function copyOf(a: Uint8Array): Uint8Array { const c = new Uint8Array(16); copyAddr6(c, 0, a, 0); return c; }
