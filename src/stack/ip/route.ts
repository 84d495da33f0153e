// The IPv4 routing table: longest-prefix match over connected, static and default routes.
import { formatIpv4, prefixMask } from '../../wire/addr.js';

export const RouteFlags = { Up: 1, Gateway: 2, Host: 4, Static: 8, Connected: 16 } as const;

export interface Route {
  dst: number;
  prefixLen: number;
  mask: number;
  /** Next hop; 0 for a directly connected destination. */
  gateway: number;
  ifIndex: number;
  metric: number;
  flags: number;
}

export class RouteTable {
  /** Sorted by prefix length (longest first), then metric. */
  private routes: Route[] = [];
  private cacheDst = -1;
  private cacheRoute: Route | null = null;
  /** Bumped by every change of the table (and of local addresses, via touch()): paths revalidate against it. */
  generation = 0;

  /** Something routing depends on changed outside the table (an address was added): paths resolve again. */
  touch(): void { this.invalidate(); }

  add(dst: number, prefixLen: number, gateway: number, ifIndex: number, metric = 0, flags: number = RouteFlags.Static): Route {
    const mask = prefixMask(prefixLen);
    const r: Route = { dst: (dst & mask) >>> 0, prefixLen, mask, gateway, ifIndex, metric, flags: flags | RouteFlags.Up | (gateway ? RouteFlags.Gateway : 0) | (prefixLen === 32 ? RouteFlags.Host : 0) };
    if (this.routes.some((x) => x.dst === r.dst && x.prefixLen === prefixLen && x.metric === metric && x.ifIndex === ifIndex)) {
      throw new Error(`route ${formatIpv4(r.dst)}/${prefixLen} already exists`);
    }
    this.routes.push(r);
    this.routes.sort((a, b) => b.prefixLen - a.prefixLen || a.metric - b.metric);
    this.invalidate();
    return r;
  }

  delete(dst: number, prefixLen: number, ifIndex?: number): boolean {
    const mask = prefixMask(prefixLen);
    const d = (dst & mask) >>> 0;
    const i = this.routes.findIndex((r) => r.dst === d && r.prefixLen === prefixLen && (ifIndex === undefined || r.ifIndex === ifIndex));
    if (i < 0) return false;
    this.routes.splice(i, 1);
    this.invalidate();
    return true;
  }

  /** Removes every route through an interface (when it goes away). */
  deleteInterface(ifIndex: number): void {
    this.routes = this.routes.filter((r) => r.ifIndex !== ifIndex);
    this.invalidate();
  }

  lookup(dst: number): Route | null {
    if (dst === this.cacheDst) return this.cacheRoute;
    let found: Route | null = null;
    for (const r of this.routes) {
      if (((dst & r.mask) >>> 0) === r.dst) { found = r; break; }
    }
    this.cacheDst = dst;
    this.cacheRoute = found;
    return found;
  }

  list(): readonly Route[] { return this.routes; }

  private invalidate(): void { this.cacheDst = -1; this.cacheRoute = null; this.generation++; }
}
