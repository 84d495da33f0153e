// Ethernet II (IEEE 802.3 framing as Linux and the BSDs use it): receive filtering by
// destination MAC, demultiplexing by EtherType to the protocols registered for it, and
// output (header, padding to the 60-byte minimum, device queue).
import type { PacketBuffer } from '../../base/pktbuf.js';
import { isMacBroadcast, isMacMulticast, macEquals } from '../../wire/addr.js';
import { ETH_HLEN, ETH_MIN_FRAME, EtherType, EthernetView, writeEthernetHeader } from '../../wire/ethernet.js';
import { WireError } from '../../wire/errors.js';
import { VLAN_TAG_LEN, VlanView, isVlanTpid } from '../../wire/vlan.js';
import type { Interface } from '../iface.js';
import type { BondDevice } from './bond.js';
import { vlanChild } from './vlan.js';

/** What Ethernet needs from the stack. */
export interface EthernetContext {
  drop(reason: string): void;
  /** A frame was queued on a device: the run loop should flush soon. */
  outputPending(): void;
  /** Live capture hook (Stack.frameTap): sees each transmitted frame; null when nobody captures. */
  readonly frameTap: ((ifIndex: number, buf: PacketBuffer, tx: boolean) => void) | null;
  /** The multicast MAC filter: does `iface` listen to the group MAC at b[off..off+6)? */
  acceptsMulticastMac(iface: Interface, b: Uint8Array, off: number): boolean;
}

/**
 * A protocol above Ethernet: the payload is buf.data[off, off + len). `l2Bcast` when the frame
 * was sent to the broadcast address. Takes ownership of buf.
 */
export type EtherInput = (iface: Interface, buf: PacketBuffer, off: number, len: number, l2Bcast: boolean) => void;

export class Ethernet {
  private readonly view = new EthernetView();
  private readonly tag = new VlanView();
  private readonly protocols = new Map<number, EtherInput>();

  constructor(private readonly ctx: EthernetContext) {}

  /** Hands frames of `etherType` to `fn` (IPv4, ARP, IPv6, ...). */
  register(etherType: number, fn: EtherInput): void { this.protocols.set(etherType, fn); }

  /** One received frame on an up interface. Takes ownership of buf. */
  input(iface: Interface, buf: PacketBuffer): void {
    if (iface.master !== null) {
      // A bond member: the frame is the bond's, if the bond takes it from this member.
      const bond = iface.master;
      if (!(bond.dev as BondDevice).accepts(iface)) { iface.counters.rxDropped++; buf.release(); this.ctx.drop('bond_inactive_member'); return; }
      if (!bond.up) { bond.counters.rxDropped++; buf.release(); this.ctx.drop('interface_down'); return; }
      bond.counters.rxPackets++; bond.counters.rxBytes += buf.length;
      buf.ifIndex = bond.index;
      iface = bond;
    }
    const c = iface.counters;
    const eth = this.view;
    const d = buf.data;
    const err = eth.wrap(d, buf.start, buf.length);
    if (err !== WireError.Ok) { c.rxErrors++; buf.release(); this.ctx.drop(err === WireError.Unsupported ? 'eth_not_ethernet2' : 'eth_truncated'); return; }
    const type = eth.etherType;
    if (isVlanTpid(type)) { this.vlanInput(iface, buf); return; }
    this.deliver(iface, buf, type, eth.payloadOff, eth.payloadLen);
  }

  /** MAC filter on the interface the frame belongs to, then the protocol for its EtherType. */
  private deliver(iface: Interface, buf: PacketBuffer, type: number, off: number, len: number): void {
    const c = iface.counters;
    const d = buf.data, dOff = buf.start;
    const l2Bcast = isMacBroadcast(d, dOff);
    if (!l2Bcast) {
      if (isMacMulticast(d, dOff)) {
        c.rxMulticast++;
        // Frames for groups nobody joined stop here (what a NIC's multicast filter does).
        if (!this.ctx.acceptsMulticastMac(iface, d, dOff)) { c.rxDropped++; buf.release(); this.ctx.drop('eth_mcast_not_joined'); return; }
      } else if (!macEquals(d, dOff, iface.mac, 0)) { c.rxDropped++; buf.release(); this.ctx.drop('eth_not_for_us'); return; }
    }
    const fn = this.protocols.get(type);
    if (fn !== undefined) { fn(iface, buf, off, len, l2Bcast); return; }
    c.rxDropped++;
    buf.release();
    this.ctx.drop(type === EtherType.IPv6 ? 'ipv6_not_implemented' : isVlanTpid(type) ? 'vlan_too_many_tags' : 'eth_unknown_type');
  }

  /**
   * A tagged frame on a port: one tag (802.1Q) or two (Q-in-Q, the outer one usually an
   * 802.1ad S-tag) select the VLAN child; VID 0 (priority-tagged, 802.1Q §9.6) is the port's
   * own untagged traffic. Unknown VIDs are dropped and counted on the port.
   */
  private vlanInput(port: Interface, buf: PacketBuffer): void {
    const c = port.counters;
    const tag = this.tag;
    const frameLen = buf.length;
    let err = tag.wrap(buf.data, buf.start + ETH_HLEN - 2, frameLen - ETH_HLEN + 2);
    if (err !== WireError.Ok) { c.rxErrors++; buf.release(); this.ctx.drop(err === WireError.Truncated ? 'vlan_truncated' : 'vlan_malformed'); return; }
    let outer = 0, vid = tag.vid;
    if (isVlanTpid(tag.innerEtherType)) {
      outer = vid;
      err = tag.wrap(buf.data, tag.nextTagOff, tag.len - VLAN_TAG_LEN);
      if (err !== WireError.Ok) { c.rxErrors++; buf.release(); this.ctx.drop(err === WireError.Truncated ? 'vlan_truncated' : 'vlan_malformed'); return; }
      vid = tag.vid;
    }
    let iface: Interface | null = port;
    if (outer !== 0 || vid !== 0) {
      iface = port.vlans.length === 0 ? null : vlanChild(port, outer, vid);
      if (iface === null) { c.rxDropped++; buf.release(); this.ctx.drop('vlan_unknown_vid'); return; }
      if (!iface.up) { iface.counters.rxDropped++; buf.release(); this.ctx.drop('interface_down'); return; }
      const vc = iface.counters;
      vc.rxPackets++; vc.rxBytes += frameLen;
      buf.ifIndex = iface.index;
    }
    this.deliver(iface, buf, tag.innerEtherType, tag.payloadOff, tag.payloadLen);
  }

  /** Prepends the Ethernet header (destination at dstMac[dstOff..]) and queues the frame on the device. Takes ownership. */
  output(iface: Interface, dstMac: Uint8Array, dstOff: number, etherType: number, buf: PacketBuffer): void {
    const off = buf.prepend(ETH_HLEN);
    writeEthernetHeader(buf.data, off, dstMac, dstOff, iface.mac, etherType);
    if (buf.length < ETH_MIN_FRAME) {
      const pad = ETH_MIN_FRAME - buf.length;
      buf.data.fill(0, buf.end, buf.end + pad);
      buf.append(pad);
    }
    const c = iface.counters;
    c.txPackets++; c.txBytes += buf.length;
    const tap = this.ctx.frameTap;
    if (tap !== null) tap(iface.index, buf, true);
    iface.dev.transmit(buf);
    this.ctx.outputPending();
  }
}
