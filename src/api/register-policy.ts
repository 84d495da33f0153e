// Which of a program's sockets `tstack/register` puts on the stack and which it leaves on the
// kernel. Pure: decides from an address (or host name) and the stack's routing table, so it
// can be tested without patching anything.
//
// Listening sockets go to the stack (that is the point); sockets bound to loopback or to an
// address the stack does not own stay with the kernel, where that address exists. Outgoing
// connections go where the destination is: loopback and destinations the stack has no route
// for use the kernel (a program under `tstack run` can still reach its local database), the
// rest the stack. `[api] kernel_fallback` and `[api] kernel` change that (docs/run.md).
import { isIPv4, isIPv6 } from 'node:net';
import { parseIpv4, parseIpv4Cidr, prefixMask } from '../wire/addr.js';
import type { Stack } from '../stack/stack.js';
import type { ApiConfig, KernelFallback } from '../runtime/config.js';

export type Placement = 'stack' | 'kernel';

export interface PolicyOptions {
  kernelFallback?: KernelFallback;
  /** IPv4 prefixes ("10.0.0.0/8") whose destinations always use the kernel. */
  kernel?: readonly string[];
}

interface Prefix { net: number; mask: number }

/** A host string as Node's APIs accept it, classified. */
type Host =
  | { kind: 'any' }
  | { kind: 'loopback' }
  | { kind: 'v4'; addr: number }
  | { kind: 'v6' }
  | { kind: 'name' };

function classify(host: string | null | undefined, emptyIs: 'any' | 'loopback'): Host {
  if (host === undefined || host === null || host === '') return { kind: emptyIs };
  const h = host.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return { kind: 'loopback' };
  let v4 = h;
  // An IPv4-mapped IPv6 address is an IPv4 destination.
  if (h.startsWith('::ffff:') && isIPv4(h.slice(7))) v4 = h.slice(7);
  if (isIPv4(v4)) {
    const addr = parseIpv4(v4)!;
    if (addr >>> 24 === 127) return { kind: 'loopback' };
    if (addr === 0) return { kind: 'any' };
    return { kind: 'v4', addr };
  }
  if (isIPv6(h)) {
    if (h === '::1') return { kind: 'loopback' };
    if (h === '::') return { kind: 'any' };
    return { kind: 'v6' };
  }
  return { kind: 'name' };
}

export class RoutingPolicy {
  readonly kernelFallback: KernelFallback;
  private readonly kernelPrefixes: Prefix[];

  constructor(private readonly stack: Stack, opts: PolicyOptions | ApiConfig = {}) {
    this.kernelFallback = opts.kernelFallback ?? 'auto';
    this.kernelPrefixes = (opts.kernel ?? []).map((c) => {
      const p = c.includes('/') ? parseIpv4Cidr(c) : null;
      if (!p) throw new TypeError(`RoutingPolicy: not an IPv4 prefix: ${JSON.stringify(c)}`);
      const mask = prefixMask(p.prefixLen);
      return { net: (p.addr & mask) >>> 0, mask };
    });
  }

  /**
   * Where an outgoing TCP connection (or a UDP socket's first send/connect) to `host` goes.
   * An absent host means Node's default, 'localhost'.
   */
  outgoing(host: string | null | undefined): Placement {
    if (this.kernelFallback === 'never') return 'stack';
    const h = classify(host, 'loopback');
    switch (h.kind) {
      case 'any':
      case 'loopback':
        // Node connects to 0.0.0.0 / :: as to the local host.
        return 'kernel';
      case 'v4':
        if (this.inKernelPrefix(h.addr)) return 'kernel';
        if (this.stack.sourceAddress(h.addr) !== 0) return 'stack';
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
      case 'v6':
        // The stack has no IPv6 transport yet: under "auto" an IPv6 destination is unrouted.
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
      case 'name':
        // The name resolves later (dns.lookup) but the socket must be chosen now: a name is
        // routed via the stack when the stack could reach any address, i.e. has a default route.
        if (this.kernelFallback === 'auto' && !this.hasDefaultRoute()) return 'kernel';
        return 'stack';
    }
  }

  /** Where a listening TCP socket or a bound UDP socket on `host` goes (absent = any address). */
  listen(host: string | null | undefined): Placement {
    if (this.kernelFallback === 'never') return 'stack';
    const h = classify(host, 'any');
    switch (h.kind) {
      case 'any':
      case 'name':
        return 'stack';
      case 'loopback':
        // The stack has no loopback interface: 127.0.0.1 exists on the kernel only.
        return 'kernel';
      case 'v4':
        if (this.stack.isLocalAddress(h.addr)) return 'stack';
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
      case 'v6':
        return this.kernelFallback === 'auto' ? 'kernel' : 'stack';
    }
  }

  private inKernelPrefix(addr: number): boolean {
    for (const p of this.kernelPrefixes) if (((addr & p.mask) >>> 0) === p.net) return true;
    return false;
  }

  private hasDefaultRoute(): boolean {
    return this.stack.routes.list().some((r) => r.prefixLen === 0);
  }
}
