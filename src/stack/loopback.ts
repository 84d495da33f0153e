// The loopback interface (FreeBSD's and F-Stack's lo0): owns 127.0.0.0/8 and ::1, so a program
// on the stack reaches its own listeners over 127.0.0.1 without leaving the stack. Datagrams to
// a local address never reach a device (Ipv4.l2Output loops them back through input on the
// next poll), so this device only exists to give the interface a name, an MTU and counters.
import type { PacketBuffer } from '../base/pktbuf.js';
import type { NetDevice, Offloads } from '../base/device.js';

/** FreeBSD's lo0 MTU. */
export const LOOPBACK_MTU = 16384;
export const LOOPBACK_NAME = 'lo0';
/** 127.0.0.1 */
export const LOOPBACK_ADDR = 0x7f000001;

const LOOPBACK_OFFLOADS: Offloads = Object.freeze({ rxCsum: true, txCsum: true, tso4: false, tso6: false });

export class LoopbackDevice implements NetDevice {
  readonly name = LOOPBACK_NAME;
  readonly mac = new Uint8Array(6);
  readonly mtu = LOOPBACK_MTU;
  readonly offloads = LOOPBACK_OFFLOADS;
  /** Frames handed to the device itself (a broadcast or ARP on lo0): nothing listens, dropped. */
  dropped = 0;

  transmit(buf: PacketBuffer): void {
    this.dropped++;
    buf.release();
  }
}

/** RFC 1122 §3.2.1.3(g): 127/8 is the host's own and never appears on a wire. */
export function isLoopbackAddress(addr: number): boolean { return (addr >>> 24) === 127; }
