// What TCP needs from the rest of the stack. The Stack implements it; TCP tests hand in a
// fake that captures emitted segments. TCP reaches nothing else outside src/stack/tcp/.
import type { BufferPool, PacketBuffer } from '../../base/pktbuf.js';
import type { Sysctl } from '../sysctl.js';
import type { Clock, TimerWheel } from '../../base/time.js';

export interface TcpHost {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  /** Uniform 32-bit unsigned random number (seeded in simulations). */
  random32(): number;
  /**
   * Sends one L4 segment. `buf` holds the TCP header and payload at start..end, with at least
   * DEFAULT_HEADROOM bytes of headroom; its checksum is complete, or buf.csum = Csum.Partial with
   * csumStart/csumOffset set when the route's device offloads it (see `txCsumOffload`).
   * Takes ownership. Returns false (and releases buf) when there is no route.
   */
  ipv4Output(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean;
  /** IP MTU of the route to `dst`; 0 when there is no route. */
  routeMtu(dst: number): number;
  /** The source address the stack would use towards `dst`; 0 when there is no route. */
  sourceAddress(dst: number): number;
  /** True when `addr` is one of this stack's IPv4 addresses (or a broadcast/multicast we must not answer with TCP). */
  isLocalAddress(addr: number): boolean;
  /** True when the device on the route to `dst` completes L4 checksums (buf.csum = Partial allowed). */
  txCsumOffload(dst: number): boolean;
  /**
   * Optional TCP segmentation offload: the most TCP payload bytes one super-segment to `dst` may
   * carry (buf.gso = Gso.Tcp4, buf.gsoSize = the MSS; the device or the far side segments it), or
   * 0 when the route's device cannot take super-segments. Hosts without it never get one.
   */
  gsoMaxPayload?(dst: number): number;
  /**
   * Optional: TCP has deferred output queued (Tcp.deferOutput) and needs `Tcp.flushOutput()`
   * soon; the owner of the run loop schedules it.
   */
  outputPending?(): void;
  /**
   * Optional: a local TCP port went from unused to used (a listener, a connection or a
   * TIME_WAIT entry holds it) or back. Called on the transitions only, never per segment.
   */
  portChanged?(proto: number, port: number, inUse: boolean): void;
}
