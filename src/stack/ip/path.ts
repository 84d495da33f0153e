// A path: where one connection's (or connected socket's) datagrams go, resolved once when the
// endpoint is fixed and kept on it — source address, next hop, interface, MTU, IP header
// length, checksum offload, GSO kind and limit — as gVisor's stack.Route is. Revalidation is
// one comparison: the route table's generation (bumped by every route or address change) and
// the interface being up. The transport asks the path, never the route table, per segment.
import { Gso, type GsoType } from '../../base/pktbuf.js';
import { pseudoHeaderV4, pseudoHeaderV6 } from '../../wire/checksum.js';
import type { Interface } from '../iface.js';

/** Address families of a path (IPv4 today; an IPv6 path sets 6 and its own header length). */
export const PathFamily = { V4: 4, V6: 6 } as const;
export type PathFamily = (typeof PathFamily)[keyof typeof PathFamily];

/** The placeholder an IPv4 path's (or TCB's) IPv6 address fields hold: never written. */
export const NO_ADDR6 = new Uint8Array(16);

export class Path {
  family: PathFamily = PathFamily.V4;
  /** Source and destination (IPv4: u32). */
  src = 0;
  dst = 0;
  /** The neighbour the datagrams go to: the gateway, or dst on a connected network. */
  nexthop = 0;
  /**
   * IPv6 paths: source, destination and next hop as 16 bytes each (allocated by the first v6
   * resolution; IPv4 paths share the empty placeholder and never touch them).
   */
  src6: Uint8Array = NO_ADDR6;
  dst6: Uint8Array = NO_ADDR6;
  nexthop6: Uint8Array = NO_ADDR6;
  /** The facts below hold (a route was found and its interface is up at the last check). */
  ok = false;
  /** The interface the datagrams leave by (set by the IP layer that resolved the path). */
  iface: Interface | null = null;
  /** IP MTU towards dst. */
  mtu = 0;
  /** IP header bytes in front of the transport header. */
  headerLen = 20;
  /** The device completes transport checksums: buf.csum = Csum.Partial is allowed. */
  txCsum = false;
  /** The segmentation the device does for this path (Gso.None: none). */
  gsoKind: GsoType = Gso.None;
  /** Most transport payload bytes one super-segment may carry (with the largest TCP header); 0 = no GSO. */
  gsoMax = 0;
  /** dst is one of our own addresses: datagrams loop back without touching a device. */
  local = false;
  /** RouteTable.generation at resolution; -1 = never resolved. */
  generation = -1;

  get resolved(): boolean { return this.ok; }

  /** Forgets the resolution (the next use resolves again). */
  reset(): void { this.ok = false; this.iface = null; this.generation = -1; }

  /** The transport checksum's pseudo-header sum (unfolded) for `len` bytes of protocol `proto`. */
  pseudoSum(proto: number, len: number): number {
    if (this.family === PathFamily.V6) return pseudoHeaderV6(this.src6, 0, this.dst6, 0, proto, len);
    return pseudoHeaderV4(this.src, this.dst, proto, len);
  }

  /** Makes this an IPv6 path with its own address storage (once per path). */
  makeV6(): void {
    this.family = PathFamily.V6;
    if (this.src6 === NO_ADDR6) { this.src6 = new Uint8Array(16); this.dst6 = new Uint8Array(16); this.nexthop6 = new Uint8Array(16); }
  }
}
