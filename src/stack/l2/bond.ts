// Bonding (Linux's bonding driver, FreeBSD's lagg): one interface over several ports.
//
// The bond is an Interface whose device is a BondDevice. Modes:
// - active-backup: one member carries everything; the others wait. The bond watches each
//   member's carrier (NetDevice.linkUp, every `miimon` ms); when the active member loses it, the
//   first member that has it takes over and the bond announces its addresses on it (gratuitous
//   ARP, unsolicited NA), so switches and neighbours move to the new port. Frames arriving on a
//   backup member are dropped (as Linux does), so a flooded frame is not taken twice.
// - balance-xor: every member with carrier sends, a flow's frames always on the same one (a hash
//   of the IP addresses and ports, Linux's layer3+4 policy); frames are taken from any member.
// The bond's MAC is its first member's; every member sends with it.
import type { NetDevice, Offloads } from '../../base/device.js';
import type { PacketBuffer } from '../../base/pktbuf.js';
import type { Interface } from '../iface.js';

export type BondMode = 'active-backup' | 'balance-xor';
export const BOND_MODES: readonly BondMode[] = ['active-backup', 'balance-xor'];

export class BondDevice implements NetDevice {
  readonly mac: Uint8Array;
  readonly offloads: Offloads;
  readonly mtu: number;
  /** Index in members of the active member (active-backup); -1 when no member has carrier. */
  active = 0;
  /** Carrier per member, as last seen by monitor(). */
  readonly carrier: boolean[];
  /** Failovers so far (the active member changed). */
  failovers = 0;
  /** The bond's own interface (set by Stack.addBond), for the counters. */
  iface: Interface | null = null;
  /** ARP monitoring: probe interval (ms, 0 = carrier only) and the IPv4 addresses probed. */
  arpInterval = 0;
  arpTargets: readonly number[] = [];
  /** Frames received per member (every frame, before the active-backup filter), and at the last monitor() run. */
  private readonly rxFrames: number[];
  private readonly rxSeen: number[];
  private readonly silent: number[];
  private readonly upList: number[] = [];

  constructor(readonly name: string, readonly mode: BondMode, readonly members: readonly Interface[]) {
    if (members.length === 0) throw new Error(`bond ${name}: no members`);
    this.mac = members[0]!.mac;
    this.mtu = Math.min(...members.map((m) => m.dev.mtu));
    const o = members.map((m) => m.dev.offloads);
    // What every member does: a frame may leave by any of them.
    this.offloads = Object.freeze({
      rxCsum: o.every((x) => x.rxCsum), txCsum: o.every((x) => x.txCsum), tso4: o.every((x) => x.tso4), tso6: o.every((x) => x.tso6),
    });
    this.carrier = members.map(() => true);
    this.rxFrames = members.map(() => 0);
    this.rxSeen = members.map(() => 0);
    this.silent = members.map(() => 0);
    for (let i = 0; i < members.length; i++) this.upList.push(i);
  }

  /** True when a frame received on `member` is the bond's (active-backup: only the active member's). */
  accepts(member: Interface): boolean {
    const ms = this.members;
    for (let i = 0; i < ms.length; i++) if (ms[i] === member) { this.rxFrames[i]!++; break; }
    if (this.mode === 'balance-xor') return true;
    return this.active >= 0 && this.members[this.active] === member;
  }

  transmit(buf: PacketBuffer): void {
    let m: Interface | undefined;
    if (this.mode === 'active-backup') {
      m = this.active >= 0 ? this.members[this.active] : undefined;
    } else {
      const up = this.upList;
      m = up.length === 0 ? undefined : this.members[up[up.length === 1 ? 0 : flowHash(buf) % up.length]!];
    }
    if (m === undefined || !m.up) {
      if (this.iface) this.iface.counters.txDropped++;
      buf.release();
      return;
    }
    const c = m.counters;
    c.txPackets++; c.txBytes += buf.length;
    m.dev.transmit(buf);
  }

  /**
   * Reads every member's carrier; returns true when the active member changed (the caller
   * announces the bond's addresses on the new one).
   */
  monitor(): boolean {
    const ms = this.members;
    const arp = this.arpInterval > 0;
    this.upList.length = 0;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i]!;
      const carrier = m.up && (m.dev.linkUp?.() ?? true);
      this.carrier[i] = carrier;
      let alive = carrier;
      if (arp) {
        if (this.rxFrames[i] !== this.rxSeen[i]) { this.rxSeen[i] = this.rxFrames[i]!; this.silent[i] = 0; } else this.silent[i]!++;
        alive = carrier && this.silent[i]! < 2;
      }
      if (alive) this.upList.push(i);
    }
    if (this.mode !== 'active-backup') return false;
    const cur = this.active;
    if (cur >= 0 && this.upList.includes(cur)) return false;
    let next = this.upList.length > 0 ? this.upList[0]! : -1;
    if (next < 0 && arp) {
      // Nobody heard anything: try the next member with carrier, with a fresh two intervals.
      for (let k = 1; k <= ms.length; k++) {
        const j = ((cur < 0 ? -1 : cur) + k) % ms.length;
        if (this.carrier[j]) { next = j; this.silent[j] = 0; break; }
      }
    }
    if (next === cur) return false;
    this.active = next;
    if (next < 0) return false;
    this.failovers++;
    return true;
  }

  /** The active member's name, or "" (for the tools). */
  get activeName(): string { return this.active >= 0 ? this.members[this.active]!.name : ''; }
}

/** Layer 3+4 hash of an Ethernet frame (IPv4/IPv6 addresses, TCP/UDP ports); 0 for others. */
function flowHash(buf: PacketBuffer): number {
  const d = buf.data, s = buf.start;
  if (buf.length < 14 + 20) return 0;
  const type = (d[s + 12]! << 8) | d[s + 13]!;
  let h = 0, l4 = -1, proto = 0;
  if (type === 0x0800) {
    const ip = s + 14;
    for (let i = 12; i < 20; i++) h = (h * 31 + d[ip + i]!) | 0;
    proto = d[ip + 9]!;
    // Only first fragments (and unfragmented datagrams) carry the ports.
    if ((((d[ip + 6]! & 0x3f) << 8) | d[ip + 7]!) === 0) l4 = ip + (d[ip]! & 15) * 4;
  } else if (type === 0x86dd && buf.length >= 14 + 40) {
    const ip = s + 14;
    for (let i = 8; i < 40; i++) h = (h * 31 + d[ip + i]!) | 0;
    proto = d[ip + 6]!;
    l4 = ip + 40;
  } else return 0;
  if ((proto === 6 || proto === 17) && l4 >= 0 && l4 + 4 <= buf.end) {
    h = (h * 31 + ((d[l4]! << 8) | d[l4 + 1]!)) | 0;
    h = (h * 31 + ((d[l4 + 2]! << 8) | d[l4 + 3]!)) | 0;
  }
  return (h ^ (h >>> 16)) >>> 0;
}
