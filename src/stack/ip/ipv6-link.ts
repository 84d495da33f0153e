// The IPv6 side of one interface: its addresses with their RFC 4862 states and lifetimes, the
// multicast groups it listens to, and the link parameters routers advertise (RFC 4861 §6.3.2).
import { isIpv6LinkLocal, isIpv6Multicast } from '../../wire/ipv6.js';
import { Timer } from '../../base/time.js';
import { addr6Equals, copyAddr6, prefixMatch } from './addr6.js';

/** RFC 4862 §2: tentative (DAD running, not assigned), preferred, deprecated; duplicated: DAD failed, never used. */
export const Addr6State = { Tentative: 0, Preferred: 1, Deprecated: 2, Duplicated: 3 } as const;
export type Addr6State = (typeof Addr6State)[keyof typeof Addr6State];
export const ADDR6_STATE_NAMES = ['tentative', 'preferred', 'deprecated', 'duplicated'];

/** Where an address came from. */
export const Addr6Origin = { LinkLocal: 0, Manual: 1, Slaac: 2 } as const;
export type Addr6Origin = (typeof Addr6Origin)[keyof typeof Addr6Origin];
export const ADDR6_ORIGIN_NAMES = ['link-local', 'manual', 'slaac'];

export class If6Addr {
  readonly addr = new Uint8Array(16);
  state: Addr6State = Addr6State.Tentative;
  /** Absolute clock ms; Infinity for manual and link-local addresses. */
  preferredUntil = Infinity;
  validUntil = Infinity;
  /** DAD: solicitations still to send; and the nonce they carry (RFC 7527 §4.1), to recognise our own looped back. */
  dadProbesLeft = 0;
  readonly dadNonce = new Uint8Array(6);
  /** DAD probes and lifetime transitions. */
  readonly timer: Timer;
  constructor(addr: Uint8Array, addrOff: number, readonly prefixLen: number, readonly origin: Addr6Origin, readonly ifIndex: number, cb: (a: If6Addr, now: number) => void) {
    copyAddr6(this.addr, 0, addr, addrOff);
    this.timer = new Timer((now) => cb(this, now));
  }
  /** Usable as a source and accepted as a destination (RFC 4862 §5.4: a tentative address is not assigned). */
  get assigned(): boolean { return this.state === Addr6State.Preferred || this.state === Addr6State.Deprecated; }
}

/** A multicast group the interface listens to, with a reference count (several addresses may share a solicited-node group). */
export class Group6 {
  readonly addr = new Uint8Array(16);
  /** The stack's own joins (all-nodes, solicited-node): EXCLUDE({}) while above 0. */
  refs = 1;
  /**
   * The interface's source filter when sockets set one (RFC 3810 §4.2, kept by Mld): null is
   * EXCLUDE({}), every source.
   */
  filter: { include: boolean; sources: Uint8Array[] } | null = null;
  constructor(addr: Uint8Array, off: number) { copyAddr6(this.addr, 0, addr, off); }
}

export class Ipv6Link {
  readonly addrs: If6Addr[] = [];
  readonly groups: Group6[] = [];
  /** Link MTU for IPv6: the device MTU, lowered by an RA's MTU option (RFC 4861 §6.3.4). */
  mtu: number;
  /** RFC 4861 §6.3.2: CurHopLimit, BaseReachableTime, ReachableTime, RetransTimer (ms). */
  curHopLimit: number;
  baseReachableTime = 30_000;
  reachableTime = 30_000;
  retransTimer = 1_000;
  /** Accept router advertisements and configure addresses from their prefixes (SLAAC). */
  slaac = false;
  /** Router solicitations still to send, and their timer. */
  rsLeft = 0;
  readonly rsTimer: Timer;

  constructor(readonly ifIndex: number, readonly mac: Uint8Array, readonly deviceMtu: number, hopLimit: number, rsCb: (l: Ipv6Link, now: number) => void) {
    this.mtu = deviceMtu;
    this.curHopLimit = hopLimit;
    this.rsTimer = new Timer((now) => rsCb(this, now));
  }

  /** The address entry equal to b[off..], any state. */
  findAddress(b: Uint8Array, off: number): If6Addr | undefined {
    for (const a of this.addrs) if (addr6Equals(a.addr, 0, b, off)) return a;
    return undefined;
  }

  /** True when b[off..] is an assigned (not tentative, not duplicated) address of this link. */
  isAssigned(b: Uint8Array, off: number): boolean {
    for (const a of this.addrs) if (a.assigned && addr6Equals(a.addr, 0, b, off)) return true;
    return false;
  }

  hasGroup(b: Uint8Array, off: number): boolean {
    for (const g of this.groups) if (addr6Equals(g.addr, 0, b, off)) return true;
    return false;
  }

  /** The preferred link-local address, if one has passed DAD. */
  linkLocal(): If6Addr | undefined {
    for (const a of this.addrs) if (a.assigned && isIpv6LinkLocal(a.addr, 0)) return a;
    return undefined;
  }

  /**
   * Source address for `dst` on this link, after RFC 6724 §5 in brief: the same scope as the
   * destination (rule 2), preferred over deprecated (rule 3), then the longest matching prefix
   * (rule 8). Link-local and link-scope multicast destinations get the link-local address.
   */
  sourceFor(dst: Uint8Array, dstOff: number): If6Addr | undefined {
    const wantLinkLocal = isIpv6LinkLocal(dst, dstOff) || (isIpv6Multicast(dst, dstOff) && (dst[dstOff + 1]! & 0x0f) <= 2);
    let best: If6Addr | undefined;
    let bestScore = -1;
    for (const a of this.addrs) {
      if (!a.assigned) continue;
      const ll = isIpv6LinkLocal(a.addr, 0);
      let score = ll === wantLinkLocal ? 1000 : 0;
      if (a.state === Addr6State.Preferred) score += 500;
      score += commonPrefixLength(a.addr, dst, dstOff);
      if (score > bestScore) { best = a; bestScore = score; }
    }
    return best;
  }

  /** On-link by one of this link's own address prefixes. */
  onLinkByAddress(dst: Uint8Array, dstOff: number): boolean {
    for (const a of this.addrs) if (a.assigned && prefixMatch(a.addr, 0, dst, dstOff, a.prefixLen)) return true;
    return false;
  }
}

function commonPrefixLength(a: Uint8Array, b: Uint8Array, bOff: number): number {
  let n = 0;
  for (let i = 0; i < 16; i++) {
    const x = a[i]! ^ b[bOff + i]!;
    if (x === 0) { n += 8; continue; }
    return n + Math.clz32(x) - 24;
  }
  return n;
}
