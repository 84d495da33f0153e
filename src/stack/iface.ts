// A network interface: a device plus its addresses, MTU, state and counters.
import type { NetDevice } from '../base/device.js';
import { prefixMask } from '../wire/addr.js';

export interface Ipv4IfAddr {
  addr: number;
  prefixLen: number;
  mask: number;
  network: number;
  /** Subnet-directed broadcast address. */
  broadcast: number;
}

export interface Ipv6IfAddr { addr: Uint8Array; prefixLen: number; }

export class IfCounters {
  rxPackets = 0; rxBytes = 0; rxErrors = 0; rxDropped = 0;
  txPackets = 0; txBytes = 0; txErrors = 0; txDropped = 0;
  rxMulticast = 0;
}

export class Interface {
  readonly addrs: Ipv4IfAddr[] = [];
  readonly addrs6: Ipv6IfAddr[] = [];
  readonly counters = new IfCounters();
  up = true;
  mtu: number;

  /**
   * A loopback interface (lo0): every address of its prefixes is local (127.0.0.0/8 as on
   * FreeBSD and Linux), it has no link layer and no broadcast.
   */
  readonly loopback: boolean;

  /**
   * The interface this one sends through: the port under a VLAN interface. null for a port (a
   * device of its own), lo0 and tunnels (their device encapsulates and sends through IP, so the
   * underlay interface is the route's to the remote, per packet: tunnel/tunnels.ts).
   */
  lower: Interface | null = null;
  /** VLAN interfaces: the VID (1..4094) and the outer (802.1ad service) VID, 0 without Q-in-Q. 0 for others. */
  vlanId = 0;
  vlanOuter = 0;
  /** A port's VLAN children (l2/vlan.ts), looked up by VID on receive. */
  readonly vlans: Interface[] = [];
  /** A bond member (a port): the bond interface its frames belong to (l2/bond.ts). */
  master: Interface | null = null;

  /**
   * VLAN interfaces and ports that carry VLANs are separate links: their addresses are reached
   * only by frames received on them (the strong host model, RFC 1122 §3.3.4.2), so a frame on
   * one VLAN (or untagged) never gets an answer from another VLAN's address.
   */
  get separateLink(): boolean { return this.vlanId !== 0 || this.vlans.length !== 0; }

  constructor(readonly index: number, readonly name: string, readonly dev: NetDevice, mtu?: number, loopback = false) {
    this.mtu = Math.min(mtu ?? dev.mtu, dev.mtu);
    this.loopback = loopback;
  }

  get mac(): Uint8Array { return this.dev.mac; }

  addAddress(addr: number, prefixLen: number): Ipv4IfAddr {
    const mask = prefixMask(prefixLen);
    const network = (addr & mask) >>> 0;
    const a: Ipv4IfAddr = { addr, prefixLen, mask, network, broadcast: prefixLen >= 31 ? 0xffffffff : (network | ~mask) >>> 0 };
    this.addrs.push(a);
    return a;
  }

  removeAddress(addr: number): boolean {
    const i = this.addrs.findIndex((a) => a.addr === addr);
    if (i < 0) return false;
    this.addrs.splice(i, 1);
    return true;
  }

  /** The primary IPv4 address (0 when none). */
  get primary(): number { return this.addrs[0]?.addr ?? 0; }

  hasAddress(addr: number): boolean {
    if (this.loopback) {
      for (const a of this.addrs) if (((addr & a.mask) >>> 0) === a.network) return true;
      return false;
    }
    for (const a of this.addrs) if (a.addr === addr) return true;
    return false;
  }

  /** True for 255.255.255.255 or one of this interface's subnet-directed broadcasts. */
  isBroadcast(addr: number): boolean {
    if (addr === 0xffffffff) return true;
    if (this.loopback) return false;
    for (const a of this.addrs) if (a.broadcast === addr && a.prefixLen < 31) return true;
    return false;
  }

  /** The address on this interface in the same subnet as `peer`, else the primary. */
  sourceFor(peer: number): number {
    for (const a of this.addrs) if (((peer & a.mask) >>> 0) === a.network) return a.addr;
    return this.primary;
  }
}
