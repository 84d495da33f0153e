// The IPv6 routing table: connected prefixes (configured addresses, on-link prefixes from router
// advertisements), static routes (gateway6) and default routers learned from RAs, each with an
// optional expiry. Longest prefix wins, then the lowest metric (RFC 4861 §5.2 next-hop
// determination: on-link prefixes first, else a default router).
import { formatIpv6 } from '../../wire/addr.js';
import { addr6Equals, copyAddr6, maskAddr6, prefixMatch } from './addr6.js';

export const Route6Flags = { Connected: 1, Static: 2, Gateway: 4, Ra: 8 } as const;

export class Route6 {
  readonly prefix = new Uint8Array(16);
  /** Next hop; all zero for an on-link destination. */
  readonly gateway = new Uint8Array(16);
  /** Absolute clock ms; Infinity when it does not expire. */
  expiresAt = Infinity;
  constructor(prefix: Uint8Array, prefixOff: number, readonly prefixLen: number, gateway: Uint8Array | null,
    readonly ifIndex: number, readonly flags: number, readonly metric: number) {
    maskAddr6(this.prefix, 0, prefix, prefixOff, prefixLen);
    if (gateway) copyAddr6(this.gateway, 0, gateway, 0);
  }
  get hasGateway(): boolean { return (this.flags & Route6Flags.Gateway) !== 0; }
}

export interface Route6Info { prefix: string; gateway: string | null; ifIndex: number; flags: string; metric: number; expiresInMs: number | null; }

export class RouteTable6 {
  /** Sorted by prefix length (longest first), then metric. */
  private routes: Route6[] = [];
  generation = 0;

  /** Adds a route, or refreshes the expiry of an identical one. Returns it. */
  add(prefix: Uint8Array, prefixOff: number, prefixLen: number, gateway: Uint8Array | null, ifIndex: number,
    flags: number, metric = 0, expiresAt = Infinity): Route6 {
    const r = new Route6(prefix, prefixOff, prefixLen, gateway, ifIndex, flags | (gateway ? Route6Flags.Gateway : 0), metric);
    const same = this.find(r.prefix, prefixLen, gateway, ifIndex);
    if (same) { same.expiresAt = expiresAt; return same; }
    r.expiresAt = expiresAt;
    this.routes.push(r);
    this.routes.sort((a, b) => b.prefixLen - a.prefixLen || a.metric - b.metric);
    this.generation++;
    return r;
  }

  find(prefix: Uint8Array, prefixLen: number, gateway: Uint8Array | null, ifIndex: number): Route6 | undefined {
    for (const r of this.routes) {
      if (r.prefixLen !== prefixLen || r.ifIndex !== ifIndex || !prefixMatch(r.prefix, 0, prefix, 0, prefixLen)) continue;
      if (gateway ? r.hasGateway && addr6Equals(r.gateway, 0, gateway, 0) : !r.hasGateway) return r;
    }
    return undefined;
  }

  remove(r: Route6): void {
    const i = this.routes.indexOf(r);
    if (i >= 0) { this.routes.splice(i, 1); this.generation++; }
  }

  /** Removes the first route to prefix/len (on `ifIndex` when given); false when there is none. */
  delete(prefix: Uint8Array, prefixLen: number, ifIndex?: number): boolean {
    const i = this.routes.findIndex((r) => r.prefixLen === prefixLen && (ifIndex === undefined || r.ifIndex === ifIndex)
      && prefixMatch(r.prefix, 0, prefix, 0, prefixLen));
    if (i < 0) return false;
    this.routes.splice(i, 1);
    this.generation++;
    return true;
  }

  deleteInterface(ifIndex: number): void {
    const n = this.routes.length;
    this.routes = this.routes.filter((r) => r.ifIndex !== ifIndex);
    if (this.routes.length !== n) this.generation++;
  }

  /**
   * The route for dst[off..] at `now` (expired routes are skipped and pruned), or null. With
   * `ifIndex` (a link-local or scoped destination), only that interface's routes count.
   */
  lookup(dst: Uint8Array, off: number, now: number, ifIndex = 0): Route6 | null {
    for (let i = 0; i < this.routes.length; i++) {
      const r = this.routes[i]!;
      if (ifIndex !== 0 && r.ifIndex !== ifIndex) continue;
      if (!prefixMatch(r.prefix, 0, dst, off, r.prefixLen)) continue;
      if (r.expiresAt <= now) { this.routes.splice(i--, 1); this.generation++; continue; }
      return r;
    }
    return null;
  }

  list(now: number): Route6Info[] {
    return this.routes.filter((r) => r.expiresAt > now).map((r) => ({
      prefix: `${formatIpv6(r.prefix)}/${r.prefixLen}`,
      gateway: r.hasGateway ? formatIpv6(r.gateway) : null,
      ifIndex: r.ifIndex,
      flags: [r.flags & Route6Flags.Connected ? 'C' : '', r.flags & Route6Flags.Static ? 'S' : '', r.flags & Route6Flags.Gateway ? 'G' : '', r.flags & Route6Flags.Ra ? 'R' : ''].join(''),
      metric: r.metric,
      expiresInMs: r.expiresAt === Infinity ? null : r.expiresAt - now,
    }));
  }
}
