// A user-space link emulator: two TAP devices, each with its kernel side in a network namespace
// of the caller's, and this process forwarding every frame from one to the other through a
// model of a slow, long link. Made for kernels without sch_netem (no `tc qdisc ... netem`), so
// that two Linux sockets can talk over the same kind of link the memory wire gives two stacks.
//
//   namespace A: TAP kernel side (addr A) ==fd==> this process ==fd==> TAP kernel side (addr B): namespace B
//                                         <==fd== (the same, reversed) <==fd==
//
// The frames cross verbatim (Ethernet, ARP included), so both ends are on one L2 segment and
// one subnet. Each direction is the memory wire's rate stage (src/driver/fault.ts), the same
// arithmetic: a frame of `len` bytes (Ethernet header to the end of the payload, no preamble or
// FCS) arriving at time t when the link is busy until `free` finds a backlog of
// (max(free, t) - t) * rate bytes; beyond `queueLimitBytes` it is tail-dropped, else it leaves
// the link at max(free, t) + len * 8 / rate and reaches the other side `oneWayDelayMs` later.
//
// Offloads: by default the TAPs are opened with TUNSETOFFLOAD 0, so the kernel segments its
// TCP super-segments and completes checksums before handing frames over: every frame on the
// emulated link is at most MTU-sized, as on a wire (one read and one write per frame). With
// `offloads: true` the kernel hands over GSO super-frames (TSO4/TSO6, partial checksums) and
// they cross whole with their virtio_net_hdr; each is accounted at its wire size (the headers
// repeated once per segment) but is queued and dropped as a unit, which a real link would not
// do: cheaper, less faithful.
//
// Timing comes from Node timers (1 ms granularity): a frame is delivered at or after its due
// time, never before, so the emulated delay is a floor; stats() reports how late deliveries
// were. The process must keep up with the link (one read and one write system call per frame,
// about 25,000 frames/s at 200 Mbit/s with ACKs); on a loaded machine check `late` and `maxLateMs`.
// Memory: a ring of fixed-size slots per direction (frames in the queue and on the delay line);
// a frame that finds the ring full is dropped and counted (`ringFull`), which means the ring is
// too small for the link, not link loss.
//
// Root only (TAP devices in namespaces). close() removes both devices (they go away with their
// descriptors); the namespaces are the caller's.
import { performance } from 'node:perf_hooks';
import { TapDriver } from '../src/driver/tap.js';
import * as libc from '../src/driver/sys/libc.js';
import { VNET_HDR_LEN } from '../src/driver/vnet.js';

export interface LinkModel {
  /** Link rate, bits per second. */
  rateBps: number;
  /** One-way propagation delay, ms (the round trip is twice this, plus serialization). */
  oneWayDelayMs: number;
  /** Bytes the link may hold waiting for serialization; beyond that, tail drop. */
  queueLimitBytes: number;
}

export interface LinkEnd {
  /** Namespace holding this end's kernel side (created by the caller). */
  netns: string;
  /** TAP device name (at most 15 bytes, unique on the machine while open). */
  ifname: string;
  /** CIDR of the kernel side, e.g. "198.18.230.1/24"; both ends share the subnet. */
  addr: string;
}

export interface LinkEmulatorOptions extends LinkModel {
  a: LinkEnd;
  b: LinkEnd;
  /** IP MTU of both devices; default 1500. */
  mtu?: number;
  /** Pass GSO super-frames through (see the header); default false: the kernel segments. */
  offloads?: boolean;
  /** Frames each direction can hold at once (queue + delay line); default 8192 (512 with offloads). */
  slots?: number;
}

export interface LinkDirectionStats {
  /** Frames read from the source TAP. */
  rxFrames: number;
  /** Frames written to the destination TAP. */
  txFrames: number;
  /** Frames read that were GSO super-frames (only with offloads). */
  gsoFrames: number;
  /** Wire bytes delivered (super-frames at their segmented size). */
  txWireBytes: number;
  /** Tail drops: the queue was over queueLimitBytes. */
  queueDropped: number;
  /** Drops because every slot was in use (the emulator's limit, not the link's). */
  ringFull: number;
  /** Frames as large as a slot, dropped because they may have been cut (a larger MTU or GSO size than configured). */
  rxTruncated: number;
  /** Writes the destination refused (its queue full, or an error). */
  txErrors: number;
  /** Deliveries more than 1 ms after their due time, and the worst lateness (ms). */
  late: number;
  maxLateMs: number;
  /** Sum of lateness over all deliveries (ms); divide by txFrames for the mean. */
  sumLateMs: number;
  /** Largest backlog seen at the queue, bytes. */
  maxBacklogBytes: number;
  /**
   * Frames held now (queued or on the delay line). Every frame read is accounted for:
   * rxFrames = txFrames + txErrors + rxTruncated + queueDropped + ringFull + inFlight.
   */
  inFlight: number;
}

function emptyStats(): LinkDirectionStats {
  return { rxFrames: 0, rxTruncated: 0, gsoFrames: 0, txFrames: 0, txWireBytes: 0, queueDropped: 0, ringFull: 0, txErrors: 0, late: 0, maxLateMs: 0, sumLateMs: 0, maxBacklogBytes: 0, inFlight: 0 };
}

/** Frames read per readable report before the other direction gets a turn. */
const READ_BUDGET = 256;
const ETH_HDR = 14;
const ETH_P_8021Q = 0x8100;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
const VIRTIO_NET_HDR_GSO_UDP = 3;
const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;

/**
 * The bytes a frame occupies on the wire once segmented. `data[off]` is its virtio_net_hdr; the
 * frame follows (len bytes). A GSO super-frame becomes ceil(payload / gso_size) segments, each
 * carrying the Ethernet, IP and L4 headers.
 */
export function wireBytes(data: Uint8Array, off: number, len: number): number {
  const gsoType = data[off + 1]! & 0x7f;
  if (gsoType === 0) return len;
  const gsoSize = data[off + 4]! | (data[off + 5]! << 8);
  const f = off + VNET_HDR_LEN;
  // Headers: Ethernet (+ one VLAN tag), IPv4/IPv6, TCP (data offset) or UDP.
  let l3 = ETH_HDR;
  let type = (data[f + 12]! << 8) | data[f + 13]!;
  if (type === ETH_P_8021Q) { type = (data[f + 16]! << 8) | data[f + 17]!; l3 += 4; }
  let l4: number;
  if (type === ETH_P_IP) l4 = l3 + (data[f + l3]! & 0x0f) * 4;
  else if (type === ETH_P_IPV6) l4 = l3 + 40;
  else l4 = -1;
  let hdr: number;
  if (l4 < 0 || l4 + 20 > len) hdr = data[off + 2]! | (data[off + 3]! << 8); // the kernel's hdr_len
  else if (gsoType === VIRTIO_NET_HDR_GSO_TCPV4 || gsoType === VIRTIO_NET_HDR_GSO_TCPV6) hdr = l4 + (data[f + l4 + 12]! >> 4) * 4;
  else if (gsoType === VIRTIO_NET_HDR_GSO_UDP || gsoType === VIRTIO_NET_HDR_GSO_UDP_L4) hdr = l4 + 8;
  else hdr = data[off + 2]! | (data[off + 3]! << 8);
  if (gsoSize <= 0 || hdr <= 0 || hdr >= len) return len;
  const segs = Math.ceil((len - hdr) / gsoSize);
  return len + (segs - 1) * hdr;
}

/** One direction: a FIFO ring of slots holding frames with their due times. */
class Direction {
  readonly st = emptyStats();
  private readonly ring: Uint8Array;
  private readonly lens: Int32Array;
  private readonly due: Float64Array;
  private head = 0;
  private count = 0;
  /** When the link finishes serializing what it holds (ms, performance.now()). */
  private linkFreeAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private readonly onTimer = (): void => { this.timer = null; this.timerAt = Infinity; this.deliver(); };

  constructor(
    private readonly src: TapDriver,
    private readonly dst: TapDriver,
    private readonly model: LinkModel,
    private readonly slots: number,
    private readonly slotSize: number,
  ) {
    // One slot more than `slots`: the last is the scratch a frame is read into when the ring is full.
    this.ring = new Uint8Array((slots + 1) * slotSize);
    this.lens = new Int32Array(slots);
    this.due = new Float64Array(slots);
  }

  /** Reads what the source TAP holds (up to a budget), queueing or dropping each frame. */
  read(): void {
    const fd = this.src.fileDescriptor;
    if (fd < 0) return;
    const bytesPerMs = this.model.rateBps / 8000;
    for (let i = 0; i < READ_BUDGET; i++) {
      const full = this.count === this.slots;
      const slot = full ? this.slots : (this.head + this.count) % this.slots;
      const off = slot * this.slotSize;
      const r = libc.readAt(fd, this.ring, off, this.slotSize);
      if (r < 0) break; // EAGAIN (or the device went away): wait for the next readable report
      if (r <= VNET_HDR_LEN + ETH_HDR) continue;
      this.st.rxFrames++;
      // A frame that filled the slot may have been cut (the kernel truncates silently).
      if (r === this.slotSize) { this.st.rxTruncated++; continue; }
      if (full) { this.st.ringFull++; continue; }
      const now = performance.now();
      if (this.ring[off + 1] !== 0) this.st.gsoFrames++;
      const len = wireBytes(this.ring, off, r - VNET_HDR_LEN);
      const free = this.linkFreeAt > now ? this.linkFreeAt : now;
      const backlog = (free - now) * bytesPerMs;
      if (backlog + len > this.model.queueLimitBytes) { this.st.queueDropped++; continue; }
      if (backlog + len > this.st.maxBacklogBytes) this.st.maxBacklogBytes = backlog + len;
      this.linkFreeAt = free + len / bytesPerMs;
      this.lens[slot] = r;
      this.due[slot] = this.linkFreeAt + this.model.oneWayDelayMs;
      this.count++;
    }
    this.deliver();
  }

  /** Writes every frame that is due to the destination, then arms the timer for the next. */
  deliver(): void {
    const fd = this.dst.fileDescriptor;
    const now = performance.now();
    while (this.count > 0) {
      const slot = this.head;
      const lateMs = now - this.due[slot]!;
      if (lateMs < 0) break;
      const off = slot * this.slotSize;
      const len = this.lens[slot]!;
      if (fd >= 0 && libc.writeAt(fd, this.ring, off, len) === len) {
        this.st.txFrames++;
        this.st.txWireBytes += wireBytes(this.ring, off, len - VNET_HDR_LEN);
      } else {
        this.st.txErrors++;
      }
      this.st.sumLateMs += lateMs;
      if (lateMs > 1) this.st.late++;
      if (lateMs > this.st.maxLateMs) this.st.maxLateMs = lateMs;
      this.head = (this.head + 1) % this.slots;
      this.count--;
    }
    if (this.count === 0) return;
    const at = this.due[this.head]!;
    if (this.timer !== null && this.timerAt <= at) return;
    if (this.timer !== null) clearTimeout(this.timer);
    // Node timers have 1 ms granularity and may fire a little early relative to
    // performance.now(): the callback re-checks and re-arms, so nothing leaves before it is due.
    this.timerAt = at;
    this.timer = setTimeout(this.onTimer, Math.max(1, Math.ceil(at - now)));
  }

  stats(): LinkDirectionStats { return { ...this.st, inFlight: this.count }; }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.count = 0;
  }
}

export class LinkEmulator {
  readonly model: LinkModel;
  private readonly tapA: TapDriver;
  private readonly tapB: TapDriver;
  private readonly aToB: Direction;
  private readonly bToA: Direction;
  private watchA: libc.PollWatcher | null = null;
  private watchB: libc.PollWatcher | null = null;

  private constructor(tapA: TapDriver, tapB: TapDriver, opts: LinkEmulatorOptions) {
    this.tapA = tapA;
    this.tapB = tapB;
    this.model = { rateBps: opts.rateBps, oneWayDelayMs: opts.oneWayDelayMs, queueLimitBytes: opts.queueLimitBytes };
    const offloads = opts.offloads === true;
    const mtu = opts.mtu ?? 1500;
    // A slot holds the virtio header and the largest frame the kernel may hand over.
    const slotSize = offloads ? VNET_HDR_LEN + 65536 + 18 : (VNET_HDR_LEN + mtu + 18 + 63) & ~63;
    const slots = opts.slots ?? (offloads ? 512 : 8192);
    this.aToB = new Direction(tapA, tapB, this.model, slots, slotSize);
    this.bToA = new Direction(tapB, tapA, this.model, slots, slotSize);
  }

  /**
   * Creates both TAP devices in their namespaces, addresses and brings up their kernel sides,
   * and starts forwarding. Throws (after removing what it created) on error.
   */
  static open(opts: LinkEmulatorOptions): LinkEmulator {
    if (!(opts.rateBps > 0) || !(opts.oneWayDelayMs >= 0) || !(opts.queueLimitBytes > 0)) {
      throw new Error(`LinkEmulator: rateBps, queueLimitBytes must be > 0 and oneWayDelayMs >= 0 (got ${opts.rateBps}, ${opts.queueLimitBytes}, ${opts.oneWayDelayMs})`);
    }
    // csumOffload false = TUNSETOFFLOAD 0: the kernel completes checksums and segments
    // super-segments before they reach us. With offloads, TSO4/TSO6 and partial checksums,
    // passed through untouched in the virtio header.
    const tapOpts = { mtu: opts.mtu, csumOffload: opts.offloads === true, tso: opts.offloads === true };
    let tapA: TapDriver | null = null;
    let tapB: TapDriver | null = null;
    try {
      tapA = TapDriver.open({ ...tapOpts, ifname: opts.a.ifname, netns: opts.a.netns, hostAddr: opts.a.addr });
      tapB = TapDriver.open({ ...tapOpts, ifname: opts.b.ifname, netns: opts.b.netns, hostAddr: opts.b.addr });
      const emu = new LinkEmulator(tapA, tapB, opts);
      emu.start();
      return emu;
    } catch (e) {
      tapB?.close();
      tapA?.close();
      throw e;
    }
  }

  private start(): void {
    // Our own watchers on the drivers' descriptors: the frames are forwarded raw (virtio
    // header included), never through the drivers' rxBurst/transmit.
    this.watchA = libc.pollReadable(this.tapA.fileDescriptor, (status) => { if (status >= 0) this.aToB.read(); });
    this.watchB = libc.pollReadable(this.tapB.fileDescriptor, (status) => { if (status >= 0) this.bToA.read(); });
  }

  /** Counters per direction (copies). */
  stats(): { aToB: LinkDirectionStats; bToA: LinkDirectionStats } {
    return { aToB: this.aToB.stats(), bToA: this.bToA.stats() };
  }

  /** Stops forwarding and removes both devices. Idempotent. */
  close(): void {
    this.watchA?.close();
    this.watchB?.close();
    this.watchA = this.watchB = null;
    this.aToB.stop();
    this.bToA.stop();
    this.tapA.close();
    this.tapB.close();
  }
}
