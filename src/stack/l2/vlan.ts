// VLAN interfaces (IEEE 802.1Q C-tags, 802.1ad S-tags for Q-in-Q) as children of a port.
//
// A VLAN interface is an ordinary Interface whose device is a VlanDevice: the stack builds the
// untagged Ethernet frame as for any port, and the device inserts the tag(s) in the headroom
// (the MAC addresses move 4 bytes towards the front, wire/vlan.ts pushVlanTag) before handing
// the frame to the port's device. On receive, l2/ethernet.ts reads the tags, finds the child
// by (outer VID, VID) with vlanChild() and demultiplexes the payload for it.
import type { NetDevice, Offloads } from '../../base/device.js';
import type { PacketBuffer } from '../../base/pktbuf.js';
import { VLAN_TAG_LEN, VlanTpid, makeTci, pushVlanTag } from '../../wire/vlan.js';
import type { Interface } from '../iface.js';

/** The device under a VLAN interface: tags what it transmits and sends it on the port's device. */
export class VlanDevice implements NetDevice {
  readonly name: string;
  readonly mac: Uint8Array;
  /**
   * Tags are inserted in software after the stack built the frame, so the port's checksum
   * offload still applies (its offsets are absolute in the buffer) but segmentation offload
   * does not: a device would have to know about the tag.
   */
  readonly offloads: Offloads;
  /** 802.1p priority code point written in every tag (0 unless configured). */
  pcp = 0;

  constructor(readonly lower: Interface, readonly vid: number, readonly outer: number, name: string, mac?: Uint8Array) {
    this.name = name;
    this.mac = mac ?? lower.mac;
    const o = lower.dev.offloads;
    this.offloads = Object.freeze({ rxCsum: o.rxCsum, txCsum: o.txCsum, tso4: false, tso6: false });
  }

  /** The port's device MTU: the tag travels outside the IP MTU, as on Linux. */
  get mtu(): number { return this.lower.dev.mtu; }

  transmit(buf: PacketBuffer): void {
    const lower = this.lower;
    if (!lower.up || buf.headroom < VLAN_TAG_LEN * 2) { lower.counters.txDropped++; buf.release(); return; }
    const d = buf.data;
    let s = buf.start;
    buf.prepend(VLAN_TAG_LEN);
    pushVlanTag(d, s, VlanTpid.CTag, makeTci(this.pcp, false, this.vid));
    if (this.outer !== 0) {
      // Q-in-Q: the service tag goes in front of the customer tag.
      s = buf.start;
      buf.prepend(VLAN_TAG_LEN);
      pushVlanTag(d, s, VlanTpid.STag, makeTci(this.pcp, false, this.outer));
    }
    const c = lower.counters;
    c.txPackets++; c.txBytes += buf.length;
    lower.dev.transmit(buf);
  }
}

/** The VLAN child of `port` for (outer, vid), or null. A handful of children: a linear scan. */
export function vlanChild(port: Interface, outer: number, vid: number): Interface | null {
  const vs = port.vlans;
  for (let i = 0; i < vs.length; i++) {
    const v = vs[i]!;
    if (v.vlanId === vid && v.vlanOuter === outer) return v;
  }
  return null;
}
