// Which of a program's sockets `tstack/register` puts on the stack and which it leaves on the
// kernel. Pure: decides from an address (or host name) and the stack's routing table, so it
// can be tested without patching anything.
//
// Listening sockets go to the stack (that is the point), loopback included: the stack has its
// own lo0 (127.0.0.0/8), and a listener on any address or on loopback is mirrored on the
// kernel's loopback (patch-node.ts) so other processes of the host reach it too. Sockets bound
// to an address the stack does not own stay with the kernel, where that address exists.
// Outgoing connections go where the destination is: to loopback, the stack when one of its
// listeners owns the port (the program reaching itself), else the kernel (its local database);
// destinations the stack has no route for use the kernel, the rest the stack.
// `[api] kernel_fallback`, `[api] kernel` and `[api] same_host` change that (docs/compat.md).
import { isIPv4, isIPv6 } from 'node:net';
import { parseIpv4, parseIpv4Cidr, parseIpv6, prefixMask } from '../wire/addr.js';
import { LOOPBACK_ADDR } from '../stack/loopback.js';
import type { Stack } from '../stack/stack.js';
import type { ApiConfig, KernelFallback } from '../runtime/config.js';

export type Placement = 'stack' | 'kernel';

export interface PolicyOptions {
  kernelFallback?: KernelFallback;
  /** IPv4 prefixes ("10.0.0.0/8") whose destinations always use the kernel. */
  kernel?: readonly string[];
  /** Mirror stack listeners on the kernel's loopback (default true). */
  sameHost?: boolean;
}

interface Prefix { net: number; mask: number }

/** A host string as Node's APIs accept it, classified. */
type Host =
  | { kind: 'any' }
  | { kind: 'loopback'; addr: number }
  | { kind: 'loopback6' }
  | { kind: 'v4'; addr: number }
  | { kind: 'v6'; addr6: Uint8Array }
  | { kind: 'name' };

function classify(host: string | null | undefined, emptyIs: 'any' | 'loopback'): Host {
  if (host === undefined || host === null || host === '') return emptyIs === 'any' ? { kind: 'any' } : { kind: 'loopback', addr: LOOPBACK_ADDR };
  const h = host.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return { kind: 'loopback', addr: LOOPBACK_ADDR };
  let v4 = h;
  // An IPv4-mapped IPv6 address is an IPv4 destination.
  if (h.startsWith('::ffff:') && isIPv4(h.slice(7))) v4 = h.slice(7);
  if (isIPv4(v4)) {
    const addr = parseIpv4(v4)!;
    if (addr >>> 24 === 127) return { kind: 'loopback', addr };
    if (addr === 0) return { kind: 'any' };
    return { kind: 'v4', addr };
  }
  if (isIPv6(h)) {
    if (h === '::1') return { kind: 'loopback6' };
    if (h === '::') return { kind: 'any' };
    return { kind: 'v6', addr6: parseIpv6(h)! };
  }
  return { kind: 'name' };
}

const LOOPBACK6 = parseIpv6('::1')!;

function formatLoopback(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

export class RoutingPolicy {
  readonly kernelFallback: KernelFallback;
  readonly sameHost: boolean;
  private readonly kernelPrefixes: Prefix[];

  constructor(private readonly stack: Stack, opts: PolicyOptions | ApiConfig = {}) {
    this.kernelFallback = opts.kernelFallback ?? 'auto';
    this.sameHost = opts.sameHost ?? true;
    this.kernelPrefixes = (opts.kernel ?? []).map((c) => {
      const p = c.includes('/') ? parseIpv4Cidr(c) : null;
      if (!p) throw new TypeError(`RoutingPolicy: not an IPv4 prefix: ${JSON.stringify(c)}`);
      const mask = prefixMask(p.prefixLen);
      return { net: (p.addr & mask) >>> 0, mask };
    });
  }

  /**
   * Where an outgoing TCP connection to `host`:`port` goes. An absent host means Node's
   * default, 'localhost'.
   */
  outgoing(host: string | null | undefined, port?: unknown): Placement {
    return this.#outgoing(host, port, 'tcp');
  }

  /** Where a UDP socket whose first act is a send or connect to `host`:`port` goes. */
  outgoingUdp(host: string | null | undefined, port?: unknown): Placement {
    return this.#outgoing(host, port, 'udp');
  }

  #outgoing(host: string | null | undefined, port: unknown, proto: 'tcp' | 'udp'): Placement {
    if (this.kernelFallback === 'never') return 'stack';
    const h = classify(host, 'loopback');
    switch (h.kind) {
      case 'loopback':
        // The program reaching its own stack listener stays inside the stack (over lo0); any
        // other loopback port is the host's (a local database), on the kernel.
        return this.stackOwnsLoopbackPort(h.addr, port, proto) ? 'stack' : 'kernel';
      case 'loopback6':
        // ::1 is lo0's too: the program reaching its own stack socket stays in the stack.
        return this.stackOwnsLoopback6Port(port, proto) ? 'stack' : 'kernel';
      case 'any':
        // Node connects to 0.0.0.0 / :: as to the local host (a stack listener is mirrored there).
        return 'kernel';
      case 'v4':
        if (this.inKernelPrefix(h.addr)) return 'kernel';
        if (this.stack.sourceAddress(h.addr) !== 0) return 'stack';
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
      case 'v6':
        // TCP and UDP over IPv6 go to the stack where it has a route, also while duplicate
        // address detection runs (the kernel's routes would carry it off into another network).
        if (this.stack.ip6.routesTo(h.addr6)) return 'stack';
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
      case 'name':
        // The name resolves later (dns.lookup) but the socket must be chosen now: a name is
        // routed via the stack when the stack could reach any address, i.e. has a default route.
        if (this.kernelFallback === 'auto' && !this.hasDefaultRoute()) return 'kernel';
        return 'stack';
    }
  }

  /** Where a listening TCP socket or a bound UDP socket (proto 'udp') on `host` goes (absent = any address). */
  listen(host: string | null | undefined, proto: 'tcp' | 'udp' = 'tcp'): Placement {
    if (this.kernelFallback === 'never') return 'stack';
    const h = classify(host, 'any');
    switch (h.kind) {
      case 'any':
      case 'name':
        return 'stack';
      case 'loopback':
        // 127/8 is lo0's (mirrored on the kernel's loopback for the rest of the host).
        return this.stack.loopbackInterface() ? 'stack' : 'kernel';
      case 'loopback6':
        // ::1 is lo0's (mirrored on the kernel's ::1 for the rest of the host).
        return this.stack.loopbackInterface() ? 'stack' : 'kernel';
      case 'v4':
        if (this.stack.isLocalAddress(h.addr)) return 'stack';
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
      case 'v6': {
        if (this.stack.isLocalAddress6(h.addr6)) return 'stack';
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
      }
    }
  }

  /**
   * The kernel loopback addresses a stack listener on `host` is also opened on, so that other
   * processes of the host reach it (same-host reach): `::` or no host → 127.0.0.1 and ::1 (as
   * Node's dual-stack listen; IPv4 as ::ffff:127.0.0.1 so its peers are named as Node names
   * them there), 0.0.0.0 → 127.0.0.1, a 127/8 address or localhost → itself, the stack's own
   * address → none (the host reaches it through the device).
   */
  mirrorAddresses(host: string | null | undefined): string[] {
    if (!this.sameHost) return [];
    const h = classify(host, 'any');
    switch (h.kind) {
      case 'any': return host === '0.0.0.0' ? ['127.0.0.1'] : ['::ffff:127.0.0.1', '::1'];
      case 'loopback': return [formatLoopback(h.addr)];
      case 'loopback6': return ['::1'];
      default: return [];
    }
  }

  private stackOwnsLoopbackPort(addr: number, port: unknown, proto: 'tcp' | 'udp'): boolean {
    if (!this.stack.loopbackInterface()) return false;
    const p = typeof port === 'string' ? Number(port) : port;
    if (typeof p !== 'number' || !Number.isInteger(p) || p <= 0 || p > 65535) return false;
    return proto === 'tcp' ? this.stack.tcp.findListener(addr, p) !== null : this.stack.udp.hasSocket(addr, p);
  }

  /** A stack listener (TCP) or socket (UDP) holds `port` on ::1. */
  private stackOwnsLoopback6Port(port: unknown, proto: 'tcp' | 'udp'): boolean {
    if (!this.stack.loopbackInterface()) return false;
    const p = typeof port === 'string' ? Number(port) : port;
    if (typeof p !== 'number' || !Number.isInteger(p) || p <= 0 || p > 65535) return false;
    return proto === 'tcp' ? this.stack.tcp.demux.findListener6(LOOPBACK6, p) !== null : this.stack.udp.hasSocket6(LOOPBACK6, 0, p);
  }

  private inKernelPrefix(addr: number): boolean {
    for (const p of this.kernelPrefixes) if (((addr & p.mask) >>> 0) === p.net) return true;
    return false;
  }

  private hasDefaultRoute(): boolean {
    return this.stack.routes.list().some((r) => r.prefixLen === 0);
  }
}
