// What the IPv6 layer's parts (ICMPv6, NDP, address configuration, MLD) need from it, and what
// the IPv6 layer needs from the stack around it. Narrow on purpose: a test hands in a fake.
import type { BufferPool, PacketBuffer } from '../../base/pktbuf.js';
import type { Sysctl } from '../sysctl.js';
import type { Offloads } from '../../base/device.js';
import type { Clock, TimerWheel } from '../../base/time.js';
import type { Ipv6Link } from './ipv6-link.js';

/** The interface as IPv6 sees it (the stack's Interface fits this shape). */
export interface Ipv6Iface {
  readonly index: number;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly up: boolean;
  /** Its addresses are reached only by packets received on it (VLANs: Interface.separateLink). */
  readonly separateLink?: boolean;
  /** The device's offloads (checksum, TSO6 for TCP paths); none when absent. */
  readonly dev?: { readonly offloads: Offloads };
}

/** What the IPv6 layer needs from the stack. */
export interface Ipv6Context {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  interfaceByIndex(ifIndex: number): Ipv6Iface | undefined;
  /** Prepends an Ethernet header (dst MAC at dstMac[dstOff..]) and transmits on `iface`. Takes ownership. */
  ethOutput(iface: Ipv6Iface, dstMac: Uint8Array, dstOff: number, etherType: number, buf: PacketBuffer): void;
  drop(reason: string): void;
  random32(): number;
  /** A packet to one of our own addresses waits for pollLoopback(): the run loop should poll soon. */
  outputPending(): void;
}

/** What ICMPv6, NDP, address configuration and MLD need from the IPv6 layer. */
export interface Ip6Services {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  drop(reason: string): void;
  random32(): number;
  link(ifIndex: number): Ipv6Link | undefined;
  /**
   * Sends the ICMPv6 message in buf (start = ICMPv6 header, length = message): writes the
   * checksum for the chosen source and transmits. `src` null chooses a source (fails when
   * there is none); `ifIndex` 0 routes. `routerAlert` puts a Hop-by-Hop Router Alert option in
   * front (MLD, RFC 3810 §5). Takes ownership. False when nothing could be sent.
   */
  sendIcmpv6(buf: PacketBuffer, src: Uint8Array | null, srcOff: number, dst: Uint8Array, dstOff: number,
    hopLimit: number, ifIndex: number, routerAlert?: boolean): boolean;
  /** Transmits a complete IPv6 packet (start = IPv6 header) to dstMac on a link. Takes ownership. */
  linkOutput(ifIndex: number, dstMac: Uint8Array, dstOff: number, buf: PacketBuffer): void;
  /**
   * An ICMPv6 error about the packet in `orig` (start at its IPv6 header, end at its end),
   * subject to RFC 4443 §2.4(e) and the rate limit. Does not take ownership.
   */
  icmpError(orig: PacketBuffer, type: number, code: number, word: number, ifIndex: number): void;
}
