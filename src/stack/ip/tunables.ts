// IP-level tunables, spelled once: the default TTL of everything this host sends (TCP, UDP,
// ICMP), forwarding (off), and the ephemeral port range TCP and UDP share.
import type { Sysctl, SysctlHandle } from '../sysctl.js';

export interface IpTunables {
  readonly ttl: SysctlHandle<number>;
  readonly forwarding: SysctlHandle<number>;
  readonly checkInterface: SysctlHandle<number>;
}

export function defineIpSysctls(s: Sysctl): IpTunables {
  return {
    ttl: s.define({ name: 'net.inet.ip.ttl', type: 'int', default: 64, min: 1, max: 255, description: 'default TTL of sent datagrams (TCP, UDP, ICMP)' }),
    checkInterface: s.define({ name: 'net.inet.ip.check_interface', type: 'int', default: 0, min: 0, max: 1, description: 'strong host model: accept a datagram only on the interface that has its destination address (0: any interface, except across VLANs; ignored while forwarding)' }),
    forwarding: s.define({ name: 'net.inet.ip.forwarding', type: 'int', default: 0, min: 0, max: 1, description: 'forward IPv4 datagrams between interfaces (RFC 1812: TTL decremented, ICMP time exceeded / unreachable / fragmentation needed; link-local, martian and broadcast destinations never forwarded)' }),
  };
}

/** The port range shared by TCP and UDP (RFC 6056 §3.2: IANA's dynamic ports by default). */
export function definePortRangeSysctls(s: Sysctl): { first: SysctlHandle<number>; last: SysctlHandle<number> } {
  return {
    first: s.define({ name: 'net.inet.ip.portrange.first', type: 'int', default: 49152, min: 1024, max: 65535, description: 'first ephemeral port' }),
    last: s.define({ name: 'net.inet.ip.portrange.last', type: 'int', default: 65535, min: 1024, max: 65535, description: 'last ephemeral port' }),
  };
}
