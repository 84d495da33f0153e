// IPv6 address configuration of a host: the link-local address from the MAC, configured
// addresses, duplicate address detection and stateless autoconfiguration (RFC 4862), and
// router discovery from Router Advertisements (RFC 4861 §6.3: default routers, on-link
// prefixes, link MTU, hop limit, reachable time).
import type { PacketBuffer } from '../../base/pktbuf.js';
import { formatIpv6 } from '../../wire/addr.js';
import { WireError } from '../../wire/errors.js';
import { IPV6_MIN_MTU, isIpv6LinkLocal, type Ipv6View } from '../../wire/ipv6.js';
import {
  NDP_HOP_LIMIT, NdpOption, NdpOptionIter, PrefixInfoView, RouterAdvertView, readMtuOption, writeRouterSolicit, writeSolicitedNodeMulticast,
} from '../../wire/ndp.js';
import { copyAddr6, prefixMatch } from '../ip/addr6.js';
import type { Ip6Services } from '../ip/ipv6-context.js';
import { ADDR6_ORIGIN_NAMES, ADDR6_STATE_NAMES, Addr6Origin, Addr6State, If6Addr, type Ipv6Link } from '../ip/ipv6-link.js';
import type { Mld } from '../ip/mld.js';
import { Route6Flags, type RouteTable6 } from '../ip/route6.js';
import type { Sysctl } from '../sysctl.js';
import { siphash24Bytes, siphashHi, sipKeyFromRandom, type SipKey } from '../tcp/siphash.js';
import { ALL_NODES, type Ndp } from './ndp.js';

export function defineAddrconfSysctls(s: Sysctl): void {
  s.define({ name: 'net.inet6.ip6.dad_count', type: 'int', default: 1, min: 0, max: 10, description: 'neighbour solicitations sent for duplicate address detection (RFC 4862 DupAddrDetectTransmits; 0 = none)' });
  s.define({ name: 'net.inet6.ip6.use_stableaddr', type: 'bool', default: false, description: 'SLAAC interface identifiers from RFC 7217 (stable, opaque) instead of the EUI-64 of the MAC' });
  s.define({ name: 'net.inet6.ip6.rtsol_count', type: 'int', default: 3, min: 0, max: 10, description: 'router solicitations sent when SLAAC starts (RFC 4861 MAX_RTR_SOLICITATIONS)' });
}

/** RFC 4861 §10 host constants (ms). */
const MAX_RTR_SOLICITATION_DELAY = 1000;
const RTR_SOLICITATION_INTERVAL = 4000;
const MAX_REACHABLE_TIME = 3_600_000;
const MIN_RETRANS_TIMER = 10;
const MAX_RETRANS_TIMER = 60_000;
/** RFC 4862 §5.5.3(e): the two hours that shield a valid lifetime from unauthenticated RAs. */
const TWO_HOURS = 7_200_000;
/** RFC 7217 §6: IDGEN_RETRIES. */
const IDGEN_RETRIES = 3;
const INFINITE = 0xffffffff;
/** ff02::2, the all-routers group. */
const ALL_ROUTERS = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);
const UNSPECIFIED = new Uint8Array(16);

export interface If6AddrInfo { addr: string; prefixLen: number; state: string; origin: string; preferredMs: number | null; validMs: number | null; }

export class Addrconf {
  private readonly ra = new RouterAdvertView();
  private readonly pi = new PrefixInfoView();
  private readonly it = new NdpOptionIter();
  private readonly tmp = new Uint8Array(16);
  private readonly ridMsg = new Uint8Array(32);
  private readonly onAddrTimer = (a: If6Addr, now: number) => this.addrTimer(a, now);
  private readonly secret: SipKey;
  /** DAD counters of stable SLAAC addresses (RFC 7217 DAD_Counter), by prefix text. */
  private readonly dadCounters = new Map<string, number>();
  /** A configured address was found to be a duplicate. */
  onDuplicate: ((ifIndex: number, addr: string) => void) | null = null;
  stats = { dadStarted: 0, dadSucceeded: 0, dadFailed: 0, rsSent: 0, raReceived: 0, raIgnored: 0, slaacAddresses: 0 };

  constructor(private readonly host: Ip6Services, private readonly ndp: Ndp, private readonly mld: Mld, private readonly routes: RouteTable6) {
    this.secret = sipKeyFromRandom(() => host.random32());
    ndp.onDadConflict = (link, a) => this.dadFailed(link, a);
    ndp.onRouterLost = (ifIndex, addr) => this.routerLost(ifIndex, addr);
  }

  /** An interface starts IPv6: all-nodes group, link-local address from the MAC (RFC 4862 §5.3), router solicitation if SLAAC is on. */
  start(link: Ipv6Link): void {
    this.mld.join(link, ALL_NODES, 0);
    const ll = this.tmp;
    ll.fill(0); ll[0] = 0xfe; ll[1] = 0x80;
    writeEui64(ll, 8, link.mac);
    this.addAddress(link, ll, 0, 64, Addr6Origin.LinkLocal, INFINITE, INFINITE);
    if (link.slaac) this.startSolicit(link);
  }

  /** Stops an interface: timers, addresses and groups go (routes are the IP layer's). */
  stop(link: Ipv6Link): void {
    for (const a of [...link.addrs]) this.removeAddress(link, a);
    this.host.wheel.disarm(link.rsTimer);
    link.rsLeft = 0;
    this.mld.leave(link, ALL_NODES, 0);
  }

  /**
   * Adds an address, tentative until DAD passes (RFC 4862 §5.4). Lifetimes in seconds
   * (0xffffffff = infinite). Returns the entry, or the existing one.
   */
  addAddress(link: Ipv6Link, addr: Uint8Array, off: number, prefixLen: number, origin: Addr6Origin, preferred: number, valid: number): If6Addr {
    const old = link.findAddress(addr, off);
    if (old) return old;
    const a = new If6Addr(addr, off, prefixLen, origin, link.ifIndex, this.onAddrTimer);
    const now = this.host.clock.now();
    a.preferredUntil = lifetimeEnd(now, preferred);
    a.validUntil = lifetimeEnd(now, valid);
    link.addrs.push(a);
    const probes = this.host.sysctl.int('net.inet6.ip6.dad_count');
    // §5.4.2: join the solicited-node group (MLD report) before the first probe.
    writeSolicitedNodeMulticast(this.tmp, 0, a.addr, 0);
    this.mld.join(link, this.tmp, 0);
    if (probes === 0) { this.assign(link, a); return a; }
    a.dadProbesLeft = probes;
    for (let i = 0; i < 6; i++) a.dadNonce[i] = this.host.random32() & 0xff;
    this.stats.dadStarted++;
    // §5.4.2: "the node SHOULD delay joining ... by a random delay between 0 and MAX_RTR_SOLICITATION_DELAY"; the first probe waits for it.
    this.host.wheel.arm(a.timer, now + (this.host.random32() % MAX_RTR_SOLICITATION_DELAY));
    return a;
  }

  removeAddress(link: Ipv6Link, a: If6Addr): void {
    const i = link.addrs.indexOf(a);
    if (i < 0) return;
    link.addrs.splice(i, 1);
    this.host.wheel.disarm(a.timer);
    if (a.state !== Addr6State.Duplicated) {
      writeSolicitedNodeMulticast(this.tmp, 0, a.addr, 0);
      this.mld.leave(link, this.tmp, 0);
    }
  }

  listAddresses(link: Ipv6Link): If6AddrInfo[] {
    const now = this.host.clock.now();
    return link.addrs.map((a) => ({
      addr: formatIpv6(a.addr), prefixLen: a.prefixLen, state: ADDR6_STATE_NAMES[a.state]!, origin: ADDR6_ORIGIN_NAMES[a.origin]!,
      preferredMs: a.preferredUntil === Infinity ? null : Math.max(0, a.preferredUntil - now),
      validMs: a.validUntil === Infinity ? null : Math.max(0, a.validUntil - now),
    }));
  }

  // ---- DAD and lifetimes -------------------------------------------------------------------

  private addrTimer(a: If6Addr, now: number): void {
    const link = this.linkOf(a);
    if (!link) return;
    if (a.state === Addr6State.Tentative) {
      if (a.dadProbesLeft > 0) {
        a.dadProbesLeft--;
        this.ndp.sendDadProbe(link, a);
        this.host.wheel.arm(a.timer, now + link.retransTimer);
        return;
      }
      // §5.4: no conflict within RetransTimer after the last probe: the address is unique.
      this.stats.dadSucceeded++;
      this.assign(link, a);
      return;
    }
    if (a.validUntil <= now) { this.removeAddress(link, a); return; }
    if (a.state === Addr6State.Preferred && a.preferredUntil <= now) a.state = Addr6State.Deprecated;
    this.armLifetime(a);
  }

  private assign(link: Ipv6Link, a: If6Addr): void {
    const now = this.host.clock.now();
    a.state = a.preferredUntil > now ? Addr6State.Preferred : Addr6State.Deprecated;
    this.armLifetime(a);
    // A link-local address that just became usable lets router solicitations carry a source.
    if (isIpv6LinkLocal(a.addr, 0) && link.slaac && link.rsLeft > 0 && !link.rsTimer.armed) this.host.wheel.arm(link.rsTimer, now);
  }

  private armLifetime(a: If6Addr): void {
    const next = a.state === Addr6State.Preferred ? Math.min(a.preferredUntil, a.validUntil) : a.validUntil;
    if (next === Infinity) this.host.wheel.disarm(a.timer); else this.host.wheel.arm(a.timer, next);
  }

  /** RFC 4862 §5.4.5: a duplicate is never used; a stable SLAAC identifier is tried again with the next DAD counter (RFC 7217 §6). */
  private dadFailed(link: Ipv6Link, a: If6Addr): void {
    if (a.state !== Addr6State.Tentative) return;
    a.state = Addr6State.Duplicated;
    this.host.wheel.disarm(a.timer);
    writeSolicitedNodeMulticast(this.tmp, 0, a.addr, 0);
    this.mld.leave(link, this.tmp, 0);
    this.stats.dadFailed++;
    this.host.drop('nd6_dad_duplicate');
    this.onDuplicate?.(link.ifIndex, formatIpv6(a.addr));
    if (a.origin === Addr6Origin.Slaac && this.host.sysctl.bool('net.inet6.ip6.use_stableaddr')) {
      const key = `${link.ifIndex}/${formatIpv6(prefixOf(a.addr))}`;
      const n = (this.dadCounters.get(key) ?? 0) + 1;
      if (n <= IDGEN_RETRIES) {
        this.dadCounters.set(key, n);
        const now = this.host.clock.now();
        this.tmp.set(a.addr.subarray(0, 8), 0);
        this.stableIid(link, this.tmp, n);
        this.addAddress(link, this.tmp, 0, a.prefixLen, Addr6Origin.Slaac, remaining(a.preferredUntil, now), remaining(a.validUntil, now));
        this.stats.slaacAddresses++;
      }
    }
  }

  // ---- router discovery --------------------------------------------------------------------

  /** §6.3.7: up to MAX_RTR_SOLICITATIONS, the first after a random delay, then every RTR_SOLICITATION_INTERVAL. */
  private startSolicit(link: Ipv6Link): void {
    link.rsLeft = this.host.sysctl.int('net.inet6.ip6.rtsol_count');
    if (link.rsLeft > 0) this.host.wheel.arm(link.rsTimer, this.host.clock.now() + (this.host.random32() % MAX_RTR_SOLICITATION_DELAY));
  }

  /** The link's RS timer fired. */
  rsTimer(link: Ipv6Link, now: number): void {
    if (link.rsLeft <= 0) return;
    link.rsLeft--;
    const ll = link.linkLocal();
    const buf = this.host.pool.alloc();
    const off = buf.append(0);
    // §6.3.7: from the link-local address with our link-layer address, or from :: without it.
    buf.append(writeRouterSolicit(buf.data, off, ll ? link.mac : null));
    this.stats.rsSent++;
    this.host.sendIcmpv6(buf, ll ? ll.addr : UNSPECIFIED, 0, ALL_ROUTERS, 0, NDP_HOP_LIMIT, link.ifIndex);
    if (link.rsLeft > 0) this.host.wheel.arm(link.rsTimer, now + RTR_SOLICITATION_INTERVAL);
  }

  /** A Router Advertisement (checksum verified) at buf.data[off, off+len); does not take ownership. */
  inputRa(link: Ipv6Link, ip: Ipv6View, buf: PacketBuffer, off: number, len: number): void {
    const v = this.ra;
    if (v.wrap(buf.data, off, len) !== WireError.Ok || v.checkIp(ip) !== WireError.Ok) { this.host.drop('nd6_ra_invalid'); return; }
    if (!link.slaac) { this.stats.raIgnored++; this.host.drop('nd6_ra_ignored'); return; }
    this.stats.raReceived++;
    link.rsLeft = 0;
    this.host.wheel.disarm(link.rsTimer);
    const b = buf.data, now = this.host.clock.now();
    // §6.3.4: "If the received Cur Hop Limit value is non-zero, the host SHOULD set its CurHopLimit variable to the received value."
    if (v.curHopLimit !== 0) link.curHopLimit = v.curHopLimit;
    // §10: MAX_REACHABLE_TIME is 3,600,000 ms; a larger value is not one a router may send.
    if (v.reachableTime !== 0 && v.reachableTime <= MAX_REACHABLE_TIME && v.reachableTime !== link.baseReachableTime) {
      link.baseReachableTime = v.reachableTime;
      // §6.3.2: ReachableTime is "a uniformly distributed random value between MIN_RANDOM_FACTOR and MAX_RANDOM_FACTOR times BaseReachableTime".
      link.reachableTime = Math.floor(v.reachableTime * (0.5 + (this.host.random32() % 1000) / 1000));
    }
    // RetransTimer has no upper bound in the RFC; one minute keeps a rogue advertisement from
    // parking held packets for days (Linux likewise floors it at 10 ms).
    if (v.retransTimer !== 0) link.retransTimer = Math.min(MAX_RETRANS_TIMER, Math.max(MIN_RETRANS_TIMER, v.retransTimer));
    // The sender is a router; its link-layer address may come along.
    const slla = v.linkLayerAddrOff(NdpOption.SourceLinkLayer);
    this.ndp.routerSeen(link, b, ip.srcOff, slla >= 0 ? b : null, slla);
    // Default router list: lifetime 0 removes the router (§6.3.4).
    const existing = this.routes.find(ANY, 0, gatewayFrom(b, ip.srcOff, this.tmp), link.ifIndex);
    if (v.routerLifetime === 0) { if (existing) this.routes.remove(existing); }
    else this.routes.add(ANY, 0, 0, gatewayFrom(b, ip.srcOff, this.tmp), link.ifIndex, Route6Flags.Ra, 1024, now + v.routerLifetime * 1000);
    const it = v.options(this.it);
    while (it.next()) {
      if (it.type === NdpOption.Mtu) {
        const mtu = readMtuOption(b, it.off, it.len);
        // §6.3.4: an MTU option outside [minimum link MTU, the link's maximum] is ignored.
        if (mtu >= IPV6_MIN_MTU && mtu <= link.deviceMtu) link.mtu = mtu;
      } else if (it.type === NdpOption.PrefixInfo) {
        if (this.pi.wrap(b, it.off, it.len) === WireError.Ok) this.prefixInfo(link, this.pi, now);
      }
    }
  }

  /** One Prefix Information option: on-link determination (RFC 4861 §6.3.4) and SLAAC (RFC 4862 §5.5.3). */
  private prefixInfo(link: Ipv6Link, p: PrefixInfoView, now: number): void {
    const b = p.bytes, po = p.prefixOff, len = p.prefixLength;
    const valid = p.validLifetime, preferred = p.preferredLifetime;
    // "If the prefix is the link-local prefix, silently ignore the Prefix Information option."
    if (isIpv6LinkLocal(b, po)) return;
    if (p.onLink) {
      const r = this.routes.find(maskedCopy(b, po, len, this.tmp), len, null, link.ifIndex);
      if (valid === 0) { if (r) this.routes.remove(r); }
      else this.routes.add(b, po, len, null, link.ifIndex, Route6Flags.Connected | Route6Flags.Ra, 256, lifetimeEnd(now, valid));
    }
    if (!p.autonomous) return;
    // §5.5.3 (c): "If the preferred lifetime is greater than the valid lifetime, silently ignore the Prefix Information option."
    if (preferred > valid) return;
    let found: If6Addr | undefined;
    for (const a of link.addrs) if (a.origin === Addr6Origin.Slaac && a.state !== Addr6State.Duplicated && prefixMatch(a.addr, 0, b, po, len)) { found = a; break; }
    if (!found) {
      // (d): a new prefix forms an address when the lifetime is non-zero and the prefix plus a 64-bit identifier make 128 bits.
      if (valid === 0) return;
      if (len !== 64) { this.host.drop('nd6_slaac_prefix_len'); return; }
      const addr = this.tmp;
      addr.fill(0);
      for (let i = 0; i < 8; i++) addr[i] = b[po + i]!;
      if (this.host.sysctl.bool('net.inet6.ip6.use_stableaddr')) this.stableIid(link, addr, this.dadCounters.get(`${link.ifIndex}/${formatIpv6(prefixOf(addr))}`) ?? 0);
      else writeEui64(addr, 8, link.mac);
      this.addAddress(link, addr, 0, 64, Addr6Origin.Slaac, preferred, valid);
      this.stats.slaacAddresses++;
      return;
    }
    // (e): preferred lifetime is always reset; the valid lifetime follows the two-hour rule.
    found.preferredUntil = lifetimeEnd(now, preferred);
    const remainingMs = found.validUntil - now;
    const validMs = valid === INFINITE ? Infinity : valid * 1000;
    if (validMs > TWO_HOURS || validMs > remainingMs) found.validUntil = now + validMs;
    else if (remainingMs > TWO_HOURS) found.validUntil = now + TWO_HOURS;
    // else "ignore the Prefix Information option with regard to the valid lifetime".
    if (found.state === Addr6State.Deprecated && found.preferredUntil > now) found.state = Addr6State.Preferred;
    if (found.state === Addr6State.Preferred && found.preferredUntil <= now) found.state = Addr6State.Deprecated;
    if (found.state !== Addr6State.Tentative) this.armLifetime(found);
  }

  private routerLost(ifIndex: number, addr: Uint8Array): void {
    const r = this.routes.find(ANY, 0, addr, ifIndex);
    if (r && (r.flags & Route6Flags.Ra) !== 0) this.routes.remove(r);
  }

  /** RFC 7217 §5: RID = F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), here SipHash-2-4 keyed by a per-stack secret. */
  private stableIid(link: Ipv6Link, addr: Uint8Array, dadCounter: number): void {
    const m = this.ridMsg;
    for (let i = 0; i < 8; i++) m[i] = addr[i]!;
    for (let i = 0; i < 6; i++) m[8 + i] = link.mac[i]!;
    m[14] = link.ifIndex & 0xff; m[15] = dadCounter & 0xff;
    const lo = siphash24Bytes(this.secret, m, 0, 16);
    const hi = siphashHi();
    addr[8] = hi >>> 24; addr[9] = (hi >>> 16) & 0xff; addr[10] = (hi >>> 8) & 0xff; addr[11] = hi & 0xff;
    addr[12] = lo >>> 24; addr[13] = (lo >>> 16) & 0xff; addr[14] = (lo >>> 8) & 0xff; addr[15] = lo & 0xff;
    // RFC 7136: no bit of an interface identifier is special; avoid the reserved ones of RFC 5453 (all zero).
    if ((addr[8]! | addr[9]! | addr[10]! | addr[11]! | addr[12]! | addr[13]! | addr[14]! | addr[15]!) === 0) addr[15] = 1;
  }

  private linkOf(a: If6Addr): Ipv6Link | undefined {
    const l = this.host.link(a.ifIndex);
    return l && l.addrs.includes(a) ? l : undefined;
  }
}

/** The modified EUI-64 interface identifier of a MAC (RFC 4291 Appendix A) at out[off..off+8). */
export function writeEui64(out: Uint8Array, off: number, mac: Uint8Array): void {
  out[off] = mac[0]! ^ 0x02; out[off + 1] = mac[1]!; out[off + 2] = mac[2]!;
  out[off + 3] = 0xff; out[off + 4] = 0xfe;
  out[off + 5] = mac[3]!; out[off + 6] = mac[4]!; out[off + 7] = mac[5]!;
}

const ANY = new Uint8Array(16);

function lifetimeEnd(now: number, seconds: number): number { return seconds === INFINITE ? Infinity : now + seconds * 1000; }
function remaining(until: number, now: number): number { return until === Infinity ? INFINITE : Math.max(0, Math.floor((until - now) / 1000)); }
function gatewayFrom(b: Uint8Array, off: number, out: Uint8Array): Uint8Array { copyAddr6(out, 0, b, off); return out; }
function maskedCopy(b: Uint8Array, off: number, len: number, out: Uint8Array): Uint8Array {
  for (let i = 0; i < 16; i++) { const bits = len - 8 * i; out[i] = bits >= 8 ? b[off + i]! : bits <= 0 ? 0 : b[off + i]! & ((0xff << (8 - bits)) & 0xff); }
  return out;
}
function prefixOf(a: Uint8Array): Uint8Array { const p = new Uint8Array(16); p.set(a.subarray(0, 8)); return p; }
