// AF_PACKET driver: a Linux packet socket with memory-mapped TPACKET_V2 receive and transmit
// rings (packet_mmap). Receiving costs no system call: the kernel copies each frame into the
// RX ring in its softirq and flips the slot's status word to USER; rxBurst walks the ring.
// Transmitting costs one sendto() kick per flush, not one write() per frame.
//
// TPACKET_V3 is not used on purpose: its blocks retire on a timer, which adds ~1 ms to every
// round trip (DESIGN.md, "Packet I/O from Node").
//
// Offloads: the socket carries a 10-byte virtio_net_hdr in front of every frame both ways
// (PACKET_VNET_HDR, the same header the TAP driver uses), so the kernel can hand us 64 KB GSO
// frames with partial checksums and take ours (gso TCPV4/TCPV6). Ring slots are sized for them.
//
// Ring layout (one mmap, RX ring first, then TX), each slot FRAME_SIZE bytes:
//   tpacket2_hdr (32 bytes): status u32 @0 | len u32 @4 | snaplen u32 @8 | mac u16 @12 |
//     net u16 @14 | sec u32 @16 | nsec u32 @20 | vlan_tci u16 @24 | vlan_tpid u16 @26 | pad[4]
//   RX: virtio_net_hdr at slot + mac - 10, the frame at slot + mac.
//   TX: virtio_net_hdr at slot + 32, the frame right after it; tp_len counts both.
//
// Setup (veth pair, namespace, sysctl) shells out to iproute2 and sysctl: not per packet.
import { BufferPool, Csum, type PacketBuffer } from '../base/pktbuf.js';
import type { Offloads } from '../base/device.js';
import { VNET_HDR_LEN, decodeVnetHeader, encodeVnetHeader, randomLocalMac } from './vnet.js';
import { emptyDriverStats, type Driver, type DriverStats } from './types.js';
import * as libc from './sys/libc.js';
import { inNetns, run as sh } from './sys/netns.js';
import { checkNetns, createVethPair, deleteOwnDevice } from './ownership.js';
import { joinFanout } from './fanout.js';

// <linux/if_ether.h>, <linux/if_packet.h>
const ETH_P_ALL = 0x0003;
const SOL_PACKET = 263;
const PACKET_ADD_MEMBERSHIP = 1;
const PACKET_RX_RING = 5;
const PACKET_STATISTICS = 6;
const PACKET_VERSION = 10;
const PACKET_TX_RING = 13;
const PACKET_LOSS = 14;
const PACKET_VNET_HDR = 15;
const PACKET_QDISC_BYPASS = 20;
const PACKET_IGNORE_OUTGOING = 23;
const TPACKET_V2 = 1;
const PACKET_MR_PROMISC = 1;

// tp_status bits
const TP_STATUS_KERNEL = 0;
const TP_STATUS_USER = 1;
const TP_STATUS_CSUMNOTREADY = 0x8;
const TP_STATUS_VLAN_VALID = 0x10;
const TP_STATUS_VLAN_TPID_VALID = 0x40;
const TP_STATUS_CSUM_VALID = 0x80;
const TP_STATUS_AVAILABLE = 0;
const TP_STATUS_SEND_REQUEST = 1;
const TP_STATUS_SENDING = 2;
const TP_STATUS_WRONG_FORMAT = 4;

/** TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): where TX data starts in a slot. */
const TPACKET2_HDRLEN = 32;
const IFNAMSIZ = 16;
const PAGE_SIZE = 4096;
/**
 * A slot holds the largest GSO frame (IP total length 65535 + Ethernet + a VLAN tag) behind
 * the kernel's RX offset (TPACKET_ALIGN(32 + 20 + 16) + 10 = 90 bytes to the network header):
 * 17 pages; 15 slots fill a 255-page block (the kernel rounds a block up to 256 pages).
 */
const FRAME_SIZE = 17 * PAGE_SIZE;
const FRAMES_PER_BLOCK = 15;
const BLOCK_SIZE = FRAME_SIZE * FRAMES_PER_BLOCK;

/**
 * Receive slots on a veth pair the driver made: 2,048 (rounded up to 2,055, ~140 MiB), so a burst
 * from a thousand connections at once fits in the ring (with 1,024, `ab -c 1000` saw 3.5 times
 * the drops). They are whole 64 KB slots, like the others: 16 KiB slots with the kernel end's GSO
 * capped to fit cost a bulk receiver four times the frames, and half its throughput
 * (docs/drivers.md).
 */
const VETH_RX_FRAMES = 2048;
/** Largest frame (virtio header included) a TX slot takes. */
const TX_CAPACITY = FRAME_SIZE - TPACKET2_HDRLEN;
const L2_OVERHEAD = 18;

export interface AfPacketOptions {
  /**
   * The interface the socket binds to. With hostAddr/hostAddr6 the driver creates it as one
   * end of a veth pair (at most 14 bytes: the kernel end is named `${ifname}h`); otherwise it
   * must exist.
   */
  ifname: string;
  /** Existing network namespace holding the interface (and the veth pair the driver creates). */
  netns?: string;
  /** Creates a veth pair and gives its kernel end this IPv4 CIDR, e.g. "198.18.70.1/24". */
  hostAddr?: string;
  /** Creates a veth pair and gives its kernel end this IPv6 CIDR (added without DAD). */
  hostAddr6?: string;
  /** IP MTU of the link (applied to both veth ends when the driver creates them); default 1500. */
  mtu?: number;
  /** The stack's MAC on this link; default: random, locally administered. */
  mac?: Uint8Array;
  pool?: BufferPool;
  /** Frames queued by transmit() before it kicks the kernel by itself; default 64. */
  burst?: number;
  /** RX ring slots, 1-8192 (rounded up to a multiple of 15; 68 KiB of locked kernel memory each); default 256. */
  rxFrames?: number;
  /** TX ring slots, 1-8192 (rounded up to a multiple of 15); default 256. */
  txFrames?: number;
  /**
   * One queue of several (workers): the socket joins PACKET_FANOUT group `group`, whose
   * program spreads frames over `queues` sockets by tstack's flow hash (src/driver/fanout.ts);
   * `slots[q]` is the group slot of queue q's socket (default: join order = queue order).
   */
  fanout?: { group: number; queues: number; slots?: readonly number[] };
}

/** The veth end the driver gives the addresses to: `${ifname}h`. */
export function kernelEndName(ifname: string): string { return `${ifname}h`; }

export class AfPacketDriver implements Driver {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly offloads: Offloads;
  readonly pool: BufferPool;
  readonly netns: string | undefined;
  /** The veth end holding the kernel's addresses when the driver created the pair; else null. */
  readonly kernelEnd: string | null;
  readonly rxFrames: number;
  readonly txFrames: number;

  private fd: number;
  private ring: libc.Mapping | null;
  private readonly ringAddr: number;
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  /** Byte offset of the TX ring in the mapping. */
  private readonly txBase: number;
  private rxIdx = 0;
  private txIdx = 0;
  /** Frames marked SEND_REQUEST since the last kick. */
  private txPending = 0;
  private readonly burst: number;
  private readonly st: DriverStats = emptyDriverStats();
  private readonly sockStats = new Uint8Array(8);
  private watcher: libc.PollWatcher | null = null;
  private readableCb: (() => void) | null = null;
  private refed = true;
  private readonly onPoll = (status: number): void => {
    // A watcher error pauses it; rxBurst needs no readiness (the ring is the readiness).
    if (status < 0) return;
    this.readableCb?.();
  };

  private constructor(fd: number, ring: libc.Mapping, rxFrames: number, txFrames: number, opts: AfPacketOptions, kernelEnd: string | null) {
    this.fd = fd;
    this.ring = ring;
    this.ringAddr = ring.address;
    this.u8 = new Uint8Array(ring.buffer);
    this.u16 = new Uint16Array(ring.buffer);
    this.u32 = new Uint32Array(ring.buffer);
    this.i32 = new Int32Array(ring.buffer);
    this.rxFrames = rxFrames;
    this.txFrames = txFrames;
    this.txBase = rxFrames * FRAME_SIZE;
    this.name = opts.ifname;
    this.mtu = opts.mtu ?? 1500;
    this.mac = opts.mac ? new Uint8Array(opts.mac) : randomLocalMac();
    this.pool = opts.pool ?? new BufferPool();
    this.netns = opts.netns;
    this.kernelEnd = kernelEnd;
    this.burst = Math.max(1, opts.burst ?? 64);
    // The virtio header carries partial checksums and GSO both ways.
    this.offloads = Object.freeze({ rxCsum: true, txCsum: true, tso4: true, tso6: true });
  }

  /**
   * Creates the veth pair (with hostAddr/hostAddr6) or finds `ifname`, opens the packet socket
   * inside `netns` and maps its rings. Throws with the failing step, after undoing what it did.
   */
  static open(opts: AfPacketOptions): AfPacketDriver {
    const name = opts.ifname;
    const createVeth = opts.hostAddr !== undefined || opts.hostAddr6 !== undefined;
    const maxName = createVeth ? IFNAMSIZ - 2 : IFNAMSIZ - 1;
    if (!name || Buffer.byteLength(name) > maxName || /[\s/]/.test(name)) {
      throw new Error(`AfPacketDriver: invalid interface name ${JSON.stringify(name)} (1-${maxName} bytes, no spaces or '/'${createVeth ? `; the kernel end is "${name}h"` : ''})`);
    }
    const mtu = opts.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535 - L2_OVERHEAD) throw new Error(`AfPacketDriver: invalid mtu ${mtu}`);
    if (opts.mac && opts.mac.length !== 6) throw new Error('AfPacketDriver: mac must be 6 bytes');
    const blocks = (n: number | undefined, def: number, what: string): number => {
      const want = n ?? def;
      if (!Number.isInteger(want) || want < 1 || want > 16384) throw new Error(`AfPacketDriver: invalid ${what} ${want}`);
      return Math.ceil(want / FRAMES_PER_BLOCK);
    };
    const rxBlocks = blocks(opts.rxFrames, createVeth ? VETH_RX_FRAMES : 256, 'rxFrames');
    const txBlocks = blocks(opts.txFrames, 256, 'txFrames');

    checkNetns(opts.netns);
    const at = opts.netns !== undefined ? ['-n', opts.netns] : [];
    const kernelEnd = createVeth ? kernelEndName(name) : null;
    let fd = -1;
    let ring: libc.Mapping | null = null;
    try {
      if (kernelEnd !== null) {
        createVethPair({ name, kernelEnd, netns: opts.netns, mtu, hostAddr: opts.hostAddr, hostAddr6: opts.hostAddr6 });
      }
      // A socket stays in the namespace it was created in: create and bind it there.
      fd = inNetns(opts.netns, () => {
        // Protocol 0: the socket receives nothing until bind() names the device and ETH_P_ALL.
        const s = libc.socket(libc.AF_PACKET, libc.SOCK_RAW | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0);
        if (s < 0) throw new libc.SysError('socket(AF_PACKET)', libc.errno());
        try {
          const ifindex = libc.ifNameToIndex(name);
          if (ifindex === 0) {
            throw new Error(`AfPacketDriver: there is no interface ${name}${opts.netns !== undefined ? ` in network namespace ${opts.netns}` : ''}`
              + ' (without host_addr the driver attaches to an existing interface; with it, it creates a veth pair)');
          }
          setup(s, ifindex, rxBlocks, txBlocks);
          if (opts.fanout) joinFanout(s, opts.fanout.group, opts.fanout.queues, opts.fanout.slots);
          return s;
        } catch (e) {
          libc.close(s);
          throw e;
        }
      });
      ring = libc.mmap((rxBlocks + txBlocks) * BLOCK_SIZE, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd);
      return new AfPacketDriver(fd, ring, rxBlocks * FRAMES_PER_BLOCK, txBlocks * FRAMES_PER_BLOCK, opts, kernelEnd);
    } catch (e) {
      if (ring) libc.munmap(ring);
      if (fd >= 0) libc.close(fd);
      // Deletes the pair only if this run created it (it carries our mark).
      if (kernelEnd !== null) deleteOwnDevice(name, opts.netns);
      throw e;
    }
  }

  rxReady(): boolean {
    return this.fd >= 0 && (Atomics.load(this.i32, (this.rxIdx * FRAME_SIZE) >> 2) & TP_STATUS_USER) !== 0;
  }

  rxBurst(out: PacketBuffer[], max: number): number {
    if (this.fd < 0) return 0;
    const i32 = this.i32, u32 = this.u32, u16 = this.u16, u8 = this.u8, pool = this.pool;
    let n = 0;
    while (n < max) {
      const slot = this.rxIdx * FRAME_SIZE;
      const status = Atomics.load(i32, slot >> 2);
      if ((status & TP_STATUS_USER) === 0) break;
      if (++this.rxIdx === this.rxFrames) this.rxIdx = 0;
      const len = u32[(slot + 4) >> 2]!;
      const snap = u32[(slot + 8) >> 2]!;
      const mac = u16[(slot + 12) >> 1]!;
      // A cut frame (longer than the slot) or a runt is useless to the stack.
      if (snap < len || snap < 14) {
        Atomics.store(i32, slot >> 2, TP_STATUS_KERNEL);
        this.st.rxDropped++;
        continue;
      }
      const tagged = (status & TP_STATUS_VLAN_VALID) !== 0;
      const total = tagged ? snap + 4 : snap;
      const buf = pool.alloc(pool.headroom + total);
      const start = buf.start;
      const dst = libc.addressOf(buf.data) + start;
      const src = this.ringAddr + slot + mac;
      if (!tagged) {
        libc.copyAt(dst, src, snap);
      } else {
        // The kernel stripped the 802.1Q tag into the header (veth offloads it): put it back
        // after the MAC addresses so the stack sees the frame as it was sent.
        libc.copyAt(dst, src, 12);
        const tpid = (status & TP_STATUS_VLAN_TPID_VALID) !== 0 ? u16[(slot + 26) >> 1]! : 0x8100;
        const tci = u16[(slot + 24) >> 1]!;
        const d = buf.data;
        d[start + 12] = tpid >> 8; d[start + 13] = tpid & 0xff;
        d[start + 14] = tci >> 8; d[start + 15] = tci & 0xff;
        libc.copyAt(dst + 16, src + 12, snap - 12);
      }
      decodeVnetHeader(u8, slot + mac - VNET_HDR_LEN, buf, start);
      if (buf.csum === Csum.Valid && tagged && buf.csumStart > start) buf.csumStart += 4;
      else if (buf.csum === Csum.None && (status & (TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID)) !== 0) {
        // CSUMNOTREADY: the sending kernel left only the pseudo-header sum (CHECKSUM_PARTIAL);
        // the frame never crossed a wire, so trust it like the TAP driver trusts NEEDS_CSUM.
        buf.csum = Csum.Valid;
      }
      // Done with the slot's bytes: only now may the kernel reuse it.
      Atomics.store(i32, slot >> 2, TP_STATUS_KERNEL);
      buf.end = start + total;
      this.st.rxPackets++;
      this.st.rxBytes += total;
      out[n++] = buf;
    }
    return n;
  }

  transmit(buf: PacketBuffer): void {
    const len = buf.end - buf.start;
    if (this.fd < 0) { this.st.txDropped++; buf.release(); return; }
    const hdr = buf.start - VNET_HDR_LEN;
    // The virtio header goes into the headroom so header and frame are copied in one go.
    if (hdr < 0 || len + VNET_HDR_LEN > TX_CAPACITY || !encodeVnetHeader(buf.data, hdr, buf)) {
      this.st.txErrors++;
      buf.release();
      return;
    }
    const i32 = this.i32;
    let slot = this.txBase + this.txIdx * FRAME_SIZE;
    let status = Atomics.load(i32, slot >> 2);
    if ((status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) !== 0) {
      // Ring full: one kick may free slots (the kernel sends synchronously on veth); never wait.
      if (this.txPending > 0) this.flush();
      status = Atomics.load(i32, slot >> 2);
      if ((status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) !== 0) {
        this.st.txDropped++;
        buf.release();
        return;
      }
    }
    if ((status & TP_STATUS_WRONG_FORMAT) !== 0) this.st.txErrors++;
    libc.copyAt(this.ringAddr + slot + TPACKET2_HDRLEN, libc.addressOf(buf.data) + hdr, len + VNET_HDR_LEN);
    this.u32[(slot + 4) >> 2] = len + VNET_HDR_LEN;
    // The length and bytes are in place before the kernel may look (seq-cst store).
    Atomics.store(i32, slot >> 2, TP_STATUS_SEND_REQUEST);
    if (++this.txIdx === this.txFrames) this.txIdx = 0;
    this.st.txPackets++;
    this.st.txBytes += len;
    buf.release();
    if (++this.txPending >= this.burst) this.flush();
  }

  flush(): void {
    if (this.txPending === 0 || this.fd < 0) return;
    const r = libc.sendtoAt(this.fd, 0, 0, libc.MSG_DONTWAIT);
    if (r < 0) {
      const err = libc.errno();
      // The frames stay SEND_REQUEST in the ring: keep txPending so the next flush kicks again.
      if (err === libc.EAGAIN || err === libc.ENOBUFS || err === libc.EINTR) return;
      this.st.txErrors++;
    }
    this.txPending = 0;
  }

  onReadable(cb: (() => void) | null): void {
    this.readableCb = cb;
    if (this.fd < 0) return;
    if (cb === null) { this.watcher?.pause(); return; }
    // A packet socket with an RX ring polls readable while the kernel's last frame is ours.
    this.watcher = libc.startWatcher(this.watcher, this.fd, this.onPoll, this.refed);
  }

  /** The readiness watcher keeps the process alive (the default). */
  ref(): void { this.refed = true; this.watcher?.ref(); }

  /** The readiness watcher stops keeping the process alive. */
  unref(): void { this.refed = false; this.watcher?.unref(); }

  /** The socket's file descriptor (diagnostics); -1 after close(). */
  get fileDescriptor(): number { return this.fd; }

  /** Counters; rxDropped includes frames the kernel dropped because the RX ring was full. */
  stats(): DriverStats {
    if (this.fd >= 0) {
      // struct tpacket_stats {u32 tp_packets, tp_drops}: reading resets the kernel's counters.
      if (libc.getsockopt(this.fd, SOL_PACKET, PACKET_STATISTICS, this.sockStats) === 8) {
        this.st.rxDropped += new DataView(this.sockStats.buffer).getUint32(4, true);
      }
    }
    return { ...this.st };
  }

  close(): void {
    if (this.fd < 0) return;
    this.stats();
    this.watcher?.close();
    this.watcher = null;
    this.readableCb = null;
    // Closing the socket first stops the kernel writing into the rings; then unmap them.
    libc.close(this.fd);
    this.fd = -1;
    if (this.ring) { libc.munmap(this.ring); this.ring = null; }
    if (this.kernelEnd !== null) {
      // Deleting one end of a veth pair deletes both; only while it is still ours.
      deleteOwnDevice(this.name, this.netns);
    }
  }
}

/** Socket options, rings and bind, in the order the kernel requires (version and vnet before rings). */
function setup(fd: number, ifindex: number, rxBlocks: number, txBlocks: number): void {
  const opt = (name: number, value: number, what: string): void => {
    if (libc.setsockoptInt(fd, SOL_PACKET, name, value) < 0) throw new libc.SysError(`setsockopt(${what})`, libc.errno());
  };
  opt(PACKET_VERSION, TPACKET_V2, 'PACKET_VERSION');
  opt(PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
  opt(PACKET_QDISC_BYPASS, 1, 'PACKET_QDISC_BYPASS');
  opt(PACKET_IGNORE_OUTGOING, 1, 'PACKET_IGNORE_OUTGOING');
  // A malformed TX frame is skipped (slot back to AVAILABLE) instead of stopping the ring at it.
  opt(PACKET_LOSS, 1, 'PACKET_LOSS');
  // struct tpacket_req: block size, block count, frame size, frame count; both rings alike.
  const ring = (which: number, blocks: number, what: string): void => {
    const req = new Uint8Array(16);
    const dv = new DataView(req.buffer);
    dv.setUint32(0, BLOCK_SIZE, true);
    dv.setUint32(4, blocks, true);
    dv.setUint32(8, FRAME_SIZE, true);
    dv.setUint32(12, blocks * FRAMES_PER_BLOCK, true);
    if (libc.setsockopt(fd, SOL_PACKET, which, req) < 0) throw new libc.SysError(`setsockopt(${what})`, libc.errno());
  };
  ring(PACKET_RX_RING, rxBlocks, 'PACKET_RX_RING');
  ring(PACKET_TX_RING, txBlocks, 'PACKET_TX_RING');
  // struct sockaddr_ll: family u16, protocol u16 (network order), ifindex i32, hatype u16,
  // pkttype u8, halen u8, addr[8].
  const sll = new Uint8Array(20);
  const sv = new DataView(sll.buffer);
  sv.setUint16(0, libc.AF_PACKET, true);
  sv.setUint16(2, ETH_P_ALL, false);
  sv.setInt32(4, ifindex, true);
  if (libc.bind(fd, sll) < 0) throw new libc.SysError('bind(AF_PACKET)', libc.errno());
  // struct packet_mreq: ifindex i32, type u16, alen u16, address[8]. Frames for the stack's
  // MAC must arrive on any device, not only on veth (which does not filter).
  const mreq = new Uint8Array(16);
  const mv = new DataView(mreq.buffer);
  mv.setInt32(0, ifindex, true);
  mv.setUint16(4, PACKET_MR_PROMISC, true);
  if (libc.setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq) < 0) throw new libc.SysError('setsockopt(PACKET_ADD_MEMBERSHIP)', libc.errno());
}
