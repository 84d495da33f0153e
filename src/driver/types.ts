// The driver contract: a NetDevice the engine transmits on, plus the receive side the
// run loop pulls from. Every driver (memory, tap, afpacket, afxdp, pcap) implements it.
import type { PacketBuffer, BufferPool } from '../base/pktbuf.js';
import type { NetDevice } from '../base/device.js';

export interface DriverStats {
  rxPackets: number; rxBytes: number; rxDropped: number;
  txPackets: number; txBytes: number; txDropped: number; txErrors: number;
}

export interface Driver extends NetDevice {
  /**
   * Moves up to `max` received frames into out[0..n) and returns n. Never blocks.
   * Buffers come from the driver's pool; the caller owns them afterwards.
   */
  rxBurst(out: PacketBuffer[], max: number): number;
  /** Pushes queued transmit frames to the device. */
  flush(): void;
  /**
   * Registers the wake-up for interrupt/adaptive polling: `cb` runs (from the event loop)
   * when frames may be ready. One callback per driver; null unregisters.
   */
  onReadable(cb: (() => void) | null): void;
  /**
   * Optional: true when rxBurst() would return a frame now. It must be cheap and never make a
   * system call or allocate (a look at a shared ring's index or status word): the run loop
   * spins on it between iterations while it busy-polls (src/runtime/loop.ts). Drivers whose
   * receive needs a system call (TAP) omit it, and the loop spins by iterations instead.
   */
  rxReady?(): boolean;
  readonly pool: BufferPool;
  /**
   * Optional: stop (unref) or resume (ref) letting the readiness wake-up keep the process
   * alive, like a timer's unref(). Drivers whose wake-ups never hold the process omit them.
   */
  ref?(): void;
  unref?(): void;
  stats(): DriverStats;
  /** Releases the device (removes a TAP device, closes descriptors). Idempotent. */
  close(): void;
}

export function emptyDriverStats(): DriverStats {
  return { rxPackets: 0, rxBytes: 0, rxDropped: 0, txPackets: 0, txBytes: 0, txDropped: 0, txErrors: 0 };
}
