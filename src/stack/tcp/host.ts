// What TCP needs from the rest of the stack. The Stack implements it; TCP tests hand in a
// fake that captures emitted segments. TCP reaches nothing else outside src/stack/tcp/.
import type { BufferPool, PacketBuffer } from '../../base/pktbuf.js';
import type { Sysctl } from '../sysctl.js';
import type { Clock, TimerWheel } from '../../base/time.js';
import type { Path } from '../ip/path.js';

export interface TcpHost {
  readonly clock: Clock;
  readonly wheel: TimerWheel;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  /** Uniform 32-bit unsigned random number (seeded in simulations). */
  random32(): number;
  /**
   * Resolves `path` (a connection's, or a scratch one for a stateless reply) from `src` (0: the
   * route's source address) to `dst`, or revalidates it cheaply; false when there is no route.
   * TCP calls it before each use of the path's facts (MTU, checksum offload, GSO limit).
   */
  resolvePath(path: Path, src: number, dst: number): boolean;
  /** The same for IPv6 (16-byte addresses; src all zero: the source RFC 6724 picks). */
  resolvePath6(path: Path, src: Uint8Array, dst: Uint8Array): boolean;
  /**
   * Sends one L4 segment along `path`. `buf` holds the TCP header and payload at start..end, with
   * at least DEFAULT_HEADROOM bytes of headroom; its checksum is complete, or buf.csum =
   * Csum.Partial with csumStart/csumOffset set when path.txCsum. Takes ownership. Returns false
   * (and releases buf) when there is no route.
   */
  pathOutput(path: Path, buf: PacketBuffer, proto: number, tos: number, ttl: number, df: boolean): boolean;
  /** True when `addr` is one of this stack's addresses. */
  isLocalAddress(addr: number): boolean;
  /** True when the 16 bytes at `addr` are one of this stack's IPv6 addresses. */
  isLocalAddress6(addr: Uint8Array): boolean;
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
