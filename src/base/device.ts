// What the engine needs from a network device. Drivers (src/driver/) implement it;
// the engine never knows which one it talks to.
import type { PacketBuffer } from './pktbuf.js';

export interface Offloads {
  /** The device verifies received L4 checksums and marks buffers Csum.Valid. */
  rxCsum: boolean;
  /** The device completes L4 checksums of buffers marked Csum.Partial. */
  txCsum: boolean;
  /** The device segments TCP/IPv4 (and TCP/IPv6) super-segments marked with gso. */
  tso4: boolean;
  tso6: boolean;
}

export const NO_OFFLOADS: Offloads = Object.freeze({ rxCsum: false, txCsum: false, tso4: false, tso6: false });

export interface NetDevice {
  readonly name: string;
  /** 6 bytes. */
  readonly mac: Uint8Array;
  /** IP MTU (payload of the Ethernet frame). */
  readonly mtu: number;
  readonly offloads: Offloads;
  /**
   * Queues one Ethernet frame (buf.start..buf.end) for transmission and takes ownership of it.
   * Drivers batch and push queued frames on flush(); they may push early when a batch fills.
   */
  transmit(buf: PacketBuffer): void;
  /**
   * Optional: the link's carrier as the device knows it (the kernel's IFF_UP and IFF_RUNNING for
   * a TAP device). Bonding monitors it; a device without it counts as up.
   */
  linkUp?(): boolean;
}
