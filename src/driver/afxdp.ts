// AF_XDP driver: an XDP socket (XSK) on one queue of an interface, with our own XDP program
// (src/driver/sys/bpf.ts) redirecting frames to it. Frames live in a UMEM (one anonymous
// mapping, 4 KiB frames: the first half for receive, the second half for transmit) and move
// through four single-producer/single-consumer rings shared with the kernel:
//   fill (we give the kernel empty RX frames) -> RX (the kernel hands back received frames);
//   TX (we queue frames to send) -> completion (the kernel gives sent frames back).
// Ring indices are free-running u32: entries = (producer - consumer) >>> 0, slot = index & mask.
// We read the kernel's index with Atomics.load and publish ours with Atomics.store after
// writing the descriptors. Received descriptors' addresses include the headroom offset.
//
// Copy mode (XDP_COPY, veth and any driver) costs one kernel copy each way; zero-copy
// (XDP_ZEROCOPY) needs a NIC driver that supports it. Either way this driver copies each frame
// once between the UMEM and a pool buffer (libc memcpy through koffi: no allocation), because
// PacketBuffer owns its bytes.
//
// Exception path (`exception: true`, F-Stack's KNI): the kernel keeps the interface and its
// address; the XDP program sends only TCP/UDP to ports the stack holds (a port table the driver
// keeps current through watchPorts) to the socket, and passes the rest to the kernel. ARP
// passes to the kernel, and a packet socket bound to ETH_P_ARP hands the driver a copy of every
// ARP frame the kernel receives, so the stack learns neighbours too (docs/drivers.md).
//
// Setup (veth pair, namespace, sysctl) shells out to iproute2 and sysctl: not per packet.
import { BufferPool, Csum, type PacketBuffer } from '../base/pktbuf.js';
import { NO_OFFLOADS, type Offloads } from '../base/device.js';
import { completeChecksum } from '../base/offload.js';
import { randomLocalMac } from './vnet.js';
import { inNetns, run as sh } from './sys/netns.js';
import { checkNetns, createVethPair, deleteOwnDevice } from './ownership.js';
import { emptyDriverStats, type Driver, type DriverStats } from './types.js';
import * as libc from './sys/libc.js';
import * as bpf from './sys/bpf.js';

// <linux/if_xdp.h>
const SOL_XDP = 283;
const XDP_MMAP_OFFSETS = 1;
const XDP_RX_RING = 2;
const XDP_TX_RING = 3;
const XDP_UMEM_REG = 4;
const XDP_UMEM_FILL_RING = 5;
const XDP_UMEM_COMPLETION_RING = 6;
const XDP_STATISTICS = 7;
const XDP_COPY = 1 << 1;
const XDP_ZEROCOPY = 1 << 2;
const XDP_PGOFF_RX_RING = 0;
const XDP_PGOFF_TX_RING = 0x80000000;
const XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
const XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;
const ETH_P_ARP = 0x0806;
const SOL_PACKET = 263;
const PACKET_IGNORE_OUTGOING = 23;

const IFNAMSIZ = 16;
const FRAME_SIZE = 4096;
/** Where copy mode puts a received frame in its UMEM frame (XDP_PACKET_HEADROOM). */
const XDP_HEADROOM = 256;
const L2_OVERHEAD = 18;
/**
 * Native XDP on veth takes a frame in one page: 4096 - 256 headroom - 320 (skb_shared_info)
 * - 14. Above that the kernel refuses the program; keep a margin.
 */
const MAX_MTU = 3490;
/** Copy-mode transmit handles 32 descriptors per kick (TX_BATCH_SIZE in net/xdp/xsk.c). */
const TX_KICK_BATCH = 32;

export interface AfXdpOptions {
  /**
   * The interface the socket binds to. With hostAddr/hostAddr6 the driver creates it as one
   * end of a veth pair (at most 14 bytes: the kernel end is `${ifname}h`); otherwise it must exist.
   */
  ifname: string;
  /** Existing network namespace holding the interface (and the veth pair the driver creates). */
  netns?: string;
  /** Creates a veth pair and gives its kernel end this IPv4 CIDR. */
  hostAddr?: string;
  /** Creates a veth pair and gives its kernel end this IPv6 CIDR (added without DAD). */
  hostAddr6?: string;
  /** IP MTU (applied to both veth ends when the driver creates them); default 1500, at most 3490. */
  mtu?: number;
  /** The stack's MAC. Default: random (a veth pair the driver makes), else the interface's own. */
  mac?: Uint8Array;
  pool?: BufferPool;
  /** The receive queue this socket serves (one socket per queue); default 0. */
  queue?: number;
  /** Bind with XDP_ZEROCOPY (fails where the NIC driver lacks it) instead of XDP_COPY; default false. */
  zeroCopy?: boolean;
  /** Attach the program in generic (skb) mode instead of the driver's native mode; default false. */
  genericXdp?: boolean;
  /**
   * Exception path: only traffic to the stack's ports goes to the socket; the rest (and a copy
   * of ARP) stays with the kernel. The interface keeps its addresses. Default false.
   */
  exception?: boolean;
  /**
   * Take received TCP/UDP checksums as valid without verifying them. Default: true on a veth
   * (the frames come from this host's kernel, which leaves offloaded checksums partial and
   * XDP cannot tell which), false elsewhere (the stack verifies).
   */
  trustRxChecksums?: boolean;
  /** Frames in the UMEM (half receive, half transmit), a power of two, 64-65536; default 4096 (16 MiB). */
  frames?: number;
  /** Frames queued by transmit() before it kicks the kernel by itself; default 64. */
  burst?: number;
  /**
   * One worker of several (`[stack] workers`): the id of the XSKMAP of the program another
   * process attached to the interface (attachXdpShared). The socket puts itself in slot `queue`
   * instead of loading a program of its own (an interface has one XDP program).
   */
  sharedXskMap?: number;
}

/**
 * Loads and attaches the redirect program to `ifname` for sockets that other processes will open
 * (the supervisor of several workers, src/runtime/cluster.ts): the program sends each frame to
 * the XSK in the XSKMAP slot of the queue it arrived on. Returns the map's id (what
 * AfXdpOptions.sharedXskMap takes) and a close() that detaches the program.
 */
export function attachXdpShared(o: { ifname: string; netns?: string; genericXdp?: boolean }): { xskMapId: number; close(): void } {
  checkNetns(o.netns);
  return inNetns(o.netns, () => {
    const ifindex = libc.ifNameToIndex(o.ifname);
    if (ifindex === 0) throw new libc.SysError(`if_nametoindex(${o.ifname})`, libc.errno());
    const att = attach(`shared:${o.netns ?? ''}/${ifindex}`, ifindex, false, o.genericXdp ?? false);
    return { xskMapId: bpf.mapIdOf(att.xskMapFd), close: () => closeAttachment(att) };
  });
}

/** The attachment of a socket that joins a program another process attached: the map only. */
function sharedAttachment(mapId: number): Attachment {
  return { key: `map:${mapId}`, refs: 1, exception: false, linkFd: -1, progFd: -1, xskMapFd: bpf.mapFdById(mapId), portsMapFd: -1, ports: null, portsU8: null };
}

/** The veth end the driver gives the addresses to: `${ifname}h`. */
export function kernelEndName(ifname: string): string { return `${ifname}h`; }

/** One of the four rings: its mapping and views of the producer/consumer words and descriptors. */
interface Ring {
  map: libc.Mapping;
  /** u32 view of the whole mapping. */
  u32: Uint32Array;
  i32: Int32Array;
  /** u32 index of the producer, consumer and first descriptor word. */
  prod: number;
  cons: number;
  desc: number;
  mask: number;
  size: number;
}

/**
 * The XDP program and maps of one interface, shared by the sockets of its queues (in this
 * thread). The program detaches when the link descriptor closes (last close, or process exit).
 */
interface Attachment {
  key: string;
  refs: number;
  exception: boolean;
  linkFd: number;
  progFd: number;
  xskMapFd: number;
  portsMapFd: number;
  /** The port table (exception path), mapped: byte 4 + port holds PORT_TCP | PORT_UDP. */
  ports: libc.Mapping | null;
  portsU8: Uint8Array | null;
}
const attachments = new Map<string, Attachment>();

function closeAttachment(a: Attachment): void {
  if (--a.refs > 0) return;
  attachments.delete(a.key);
  if (a.ports) libc.munmap(a.ports);
  for (const fd of [a.linkFd, a.progFd, a.xskMapFd, a.portsMapFd]) if (fd >= 0) libc.close(fd);
}

function attach(key: string, ifindex: number, exception: boolean, generic: boolean): Attachment {
  const have = attachments.get(key);
  if (have) {
    if (have.exception !== exception) throw new Error('AfXdpDriver: every queue of an interface must agree on exception');
    have.refs++;
    return have;
  }
  const a: Attachment = { key, refs: 1, exception, linkFd: -1, progFd: -1, xskMapFd: -1, portsMapFd: -1, ports: null, portsU8: null };
  try {
    a.xskMapFd = bpf.createXskMap(64);
    if (exception) {
      a.portsMapFd = bpf.createPortsMap();
      a.ports = libc.mmap(bpf.PORTS_MAP_BYTES, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, a.portsMapFd);
      a.portsU8 = new Uint8Array(a.ports.buffer);
    }
    const prog = exception ? bpf.exceptionProgram(a.xskMapFd, a.portsMapFd) : bpf.redirectAllProgram(a.xskMapFd);
    a.progFd = bpf.progLoadXdp(prog, exception ? 'tstack_except' : 'tstack_xsk');
    a.linkFd = bpf.linkCreateXdp(a.progFd, ifindex, generic ? bpf.XDP_FLAGS_SKB_MODE : bpf.XDP_FLAGS_DRV_MODE);
  } catch (e) {
    a.refs = 1;
    closeAttachment(a);
    if (e instanceof libc.SysError && e.call.startsWith('bpf(BPF_LINK_CREATE') && e.errno === libc.EBUSY) {
      throw new Error(`${e.message}: the interface already has an XDP program (another process's?)`, { cause: e });
    }
    throw e;
  }
  attachments.set(key, a);
  return a;
}

export class AfXdpDriver implements Driver {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  /** Copy mode on veth offers no offload: the stack checksums and segments in software. */
  readonly offloads: Offloads = NO_OFFLOADS;
  readonly pool: BufferPool;
  readonly netns: string | undefined;
  readonly queue: number;
  readonly zeroCopy: boolean;
  readonly exception: boolean;
  /** The veth end holding the kernel's addresses when the driver created the pair; else null. */
  readonly kernelEnd: string | null;
  readonly frames: number;
  /** Received frames are marked Csum.Valid (see AfXdpOptions.trustRxChecksums). */
  readonly trustRxChecksums: boolean;

  private fd: number;
  private arpFd: number;
  private umem: libc.Mapping | null;
  private readonly umemAddr: number;
  private readonly rx: Ring;
  private readonly tx: Ring;
  private readonly fill: Ring;
  private readonly comp: Ring;
  private readonly attachment: Attachment;
  /** Our cached indices: the RX and completion consumers, the fill and TX producers. */
  private rxCons = 0;
  private fillProd = 0;
  private txProd = 0;
  private compCons = 0;
  /** Free transmit frames (UMEM offsets), a stack. */
  private readonly txFree: Uint32Array;
  private txFreeCount = 0;
  /** Descriptors written to the TX ring and not yet published/kicked. */
  private txPending = 0;
  private readonly burst: number;
  private readonly st: DriverStats = emptyDriverStats();
  private readonly xdpStats = new Uint8Array(128);
  private kernelDropsSeen = 0;
  private kernelTxInvalidSeen = 0;
  private watcher: libc.PollWatcher | null = null;
  private arpWatcher: libc.PollWatcher | null = null;
  private arpReady = true;
  private arpSkip = 0;
  private readableCb: (() => void) | null = null;
  private refed = true;
  private readonly onPoll = (status: number): void => {
    if (status < 0) return;
    this.readableCb?.();
  };
  private readonly onArpPoll = (status: number): void => {
    if (status < 0) return;
    this.arpReady = true;
    this.readableCb?.();
  };

  private constructor(fd: number, arpFd: number, umem: libc.Mapping, rings: { rx: Ring; tx: Ring; fill: Ring; comp: Ring },
    frames: number, att: Attachment, opts: AfXdpOptions, mac: Uint8Array, kernelEnd: string | null, trust: boolean) {
    this.fd = fd;
    this.arpFd = arpFd;
    this.umem = umem;
    this.umemAddr = umem.address;
    this.rx = rings.rx; this.tx = rings.tx; this.fill = rings.fill; this.comp = rings.comp;
    this.frames = frames;
    this.attachment = att;
    this.name = opts.ifname;
    this.mtu = opts.mtu ?? 1500;
    this.mac = mac;
    this.pool = opts.pool ?? new BufferPool();
    this.netns = opts.netns;
    this.queue = opts.queue ?? 0;
    this.zeroCopy = opts.zeroCopy ?? false;
    this.exception = opts.exception ?? false;
    this.kernelEnd = kernelEnd;
    this.trustRxChecksums = trust;
    this.burst = Math.max(1, opts.burst ?? 64);
    const half = frames >>> 1;
    // Every receive frame starts in the fill ring (its size is the receive half).
    for (let i = 0; i < half; i++) this.putFill(i * FRAME_SIZE);
    Atomics.store(this.fill.i32, this.fill.prod, this.fillProd | 0);
    this.txFree = new Uint32Array(half);
    for (let i = 0; i < half; i++) this.txFree[this.txFreeCount++] = (half + i) * FRAME_SIZE;
  }

  /**
   * Creates the veth pair (with hostAddr/hostAddr6) or finds `ifname`, loads and attaches the
   * XDP program, and opens the socket on `queue`. Throws naming the failing step, after undoing
   * what it did; a kernel without AF_XDP gets an error that says so.
   */
  static open(opts: AfXdpOptions): AfXdpDriver {
    const name = opts.ifname;
    const createVeth = opts.hostAddr !== undefined || opts.hostAddr6 !== undefined;
    const maxName = createVeth ? IFNAMSIZ - 2 : IFNAMSIZ - 1;
    if (!name || Buffer.byteLength(name) > maxName || /[\s/]/.test(name)) {
      throw new Error(`AfXdpDriver: invalid interface name ${JSON.stringify(name)} (1-${maxName} bytes, no spaces or '/'${createVeth ? `; the kernel end is "${name}h"` : ''})`);
    }
    const mtu = opts.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > MAX_MTU) throw new Error(`AfXdpDriver: invalid mtu ${mtu} (68-${MAX_MTU}: a frame must fit one 4 KiB UMEM frame)`);
    if (opts.mac && opts.mac.length !== 6) throw new Error('AfXdpDriver: mac must be 6 bytes');
    const queue = opts.queue ?? 0;
    if (!Number.isInteger(queue) || queue < 0 || queue > 63) throw new Error(`AfXdpDriver: invalid queue ${queue} (0-63)`);
    const frames = opts.frames ?? 4096;
    if (!Number.isInteger(frames) || frames < 64 || frames > 65536 || (frames & (frames - 1)) !== 0) {
      throw new Error(`AfXdpDriver: invalid frames ${frames} (a power of two, 64-65536)`);
    }
    if (createVeth && opts.exception) throw new Error('AfXdpDriver: exception applies to an existing interface (ifname), not to a veth pair the driver creates');
    if (!bpf.bpfSupported()) throw new Error('AfXdpDriver: AF_XDP needs Linux on x86-64 or arm64 (little-endian)');

    checkNetns(opts.netns);
    const at = opts.netns !== undefined ? ['-n', opts.netns] : [];
    const kernelEnd = createVeth ? kernelEndName(name) : null;
    let fd = -1, arpFd = -1;
    let umem: libc.Mapping | null = null;
    const maps: libc.Mapping[] = [];
    let att: Attachment | null = null;
    try {
      if (kernelEnd !== null) createVethPair({ name, kernelEnd, netns: opts.netns, mtu, hostAddr: opts.hostAddr, hostAddr6: opts.hostAddr6 });
      // The stack answers for the interface's own MAC on an existing interface: a NIC filters
      // unicast frames for other MACs, and with the exception path the kernel and the stack
      // share the address, so they must share the MAC the peers learn by ARP.
      let mac: Uint8Array | null = opts.mac ? new Uint8Array(opts.mac) : null;
      let veth = createVeth;
      if (!createVeth) {
        const link = JSON.parse(sh('ip', [...at, '-d', '-j', 'link', 'show', 'dev', name])) as { address?: string; linkinfo?: { info_kind?: string } }[];
        const own = link[0]?.address;
        veth = link[0]?.linkinfo?.info_kind === 'veth';
        if (mac === null) {
          const bytes = own?.split(':').map((x) => parseInt(x, 16));
          if (!bytes || bytes.length !== 6 || bytes.some((b) => !(b >= 0 && b <= 255))) throw new Error(`AfXdpDriver: ${name} has no Ethernet address`);
          mac = Uint8Array.from(bytes);
        }
      }
      const stackMac: Uint8Array = mac ?? randomLocalMac();
      const half = frames >>> 1;
      umem = libc.mmap(frames * FRAME_SIZE, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_POPULATE, -1);
      const u = umem;
      const rings = inNetns(opts.netns, () => {
        const ifindex = libc.ifNameToIndex(name);
        if (ifindex === 0) throw new libc.SysError(`if_nametoindex(${name})`, libc.errno());
        fd = libc.socket(libc.AF_XDP, libc.SOCK_RAW | libc.SOCK_CLOEXEC, 0);
        if (fd < 0) {
          const e = libc.errno();
          if (e === 97 /* EAFNOSUPPORT */) throw new Error('AfXdpDriver: this kernel has no AF_XDP sockets (socket(AF_XDP): EAFNOSUPPORT; needs CONFIG_XDP_SOCKETS, Linux 4.18+)');
          throw new libc.SysError('socket(AF_XDP)', e);
        }
        const r = setupSocket(fd, u, frames, half, maps);
        const key = `${opts.netns ?? ''}/${ifindex}`;
        att = opts.sharedXskMap !== undefined ? sharedAttachment(opts.sharedXskMap) : attach(key, ifindex, opts.exception ?? false, opts.genericXdp ?? false);
        // struct sockaddr_xdp: family u16, flags u16, ifindex u32, queue_id u32, shared_umem_fd u32.
        const sxdp = new Uint8Array(16);
        const sv = new DataView(sxdp.buffer);
        sv.setUint16(0, libc.AF_XDP, true);
        sv.setUint16(2, opts.zeroCopy ? XDP_ZEROCOPY : XDP_COPY, true);
        sv.setUint32(4, ifindex, true);
        sv.setUint32(8, queue, true);
        if (libc.bind(fd, sxdp) < 0) {
          const e = libc.errno();
          const hint = opts.zeroCopy && (e === 95 || e === 22) ? ` (${name}'s driver does not do AF_XDP zero-copy on queue ${queue}; use copy mode)`
            : e === libc.EINVAL ? ` (${name} has no receive queue ${queue}?)`
            : e === libc.EBUSY ? ` (another AF_XDP socket already serves queue ${queue})` : '';
          throw new Error(`bind(AF_XDP ${name} queue ${queue}): ${libc.errnoName(e)}${hint}`);
        }
        bpf.mapUpdateU32(att.xskMapFd, queue, fd);
        if (opts.exception) arpFd = openArpSocket(ifindex);
        return r;
      });
      return new AfXdpDriver(fd, arpFd, umem, rings, frames, att!, opts, stackMac, kernelEnd, opts.trustRxChecksums ?? veth);
    } catch (e) {
      for (const m of maps) libc.munmap(m);
      if (fd >= 0) libc.close(fd);
      if (arpFd >= 0) libc.close(arpFd);
      if (att) closeAttachment(att);
      if (umem) libc.munmap(umem);
      // Deletes the pair only if this run created it (it carries our mark).
      if (kernelEnd !== null) deleteOwnDevice(name, opts.netns);
      throw e;
    }
  }

  private putFill(addr: number): void {
    const f = this.fill;
    const i = f.desc + ((this.fillProd & f.mask) << 1);
    f.u32[i] = addr;
    f.u32[i + 1] = 0;
    this.fillProd = (this.fillProd + 1) >>> 0;
  }

  rxReady(): boolean {
    return this.fd >= 0 && (this.arpReady || (Atomics.load(this.rx.i32, this.rx.prod) >>> 0) !== this.rxCons);
  }

  rxBurst(out: PacketBuffer[], max: number): number {
    if (this.fd < 0) return 0;
    let n = 0;
    if (this.arpFd >= 0 && max > 0) n = this.arpBurst(out, max);
    const rx = this.rx, u32 = rx.u32, pool = this.pool;
    const prod = Atomics.load(rx.i32, rx.prod) >>> 0;
    let cons = this.rxCons;
    if (prod === cons) return n;
    while (n < max && cons !== prod) {
      const d = rx.desc + ((cons & rx.mask) << 2);
      const addr = u32[d]!;
      const len = u32[d + 2]!;
      cons = (cons + 1) >>> 0;
      this.putFill(addr - (addr % FRAME_SIZE));
      if (len < 14 || len > FRAME_SIZE) { this.st.rxDropped++; continue; }
      const buf = pool.alloc(pool.headroom + len);
      libc.copyAt(libc.addressOf(buf.data) + buf.start, this.umemAddr + addr, len);
      buf.end = buf.start + len;
      if (this.trustRxChecksums) buf.csum = Csum.Valid;
      this.st.rxPackets++;
      this.st.rxBytes += len;
      out[n++] = buf;
    }
    // The frames are copied out: hand the slots and the frames back to the kernel.
    this.rxCons = cons;
    Atomics.store(rx.i32, rx.cons, cons | 0);
    Atomics.store(this.fill.i32, this.fill.prod, this.fillProd | 0);
    return n;
  }

  /** ARP copies from the packet socket (exception path): read when the watcher said so, or now and then without one. */
  private arpBurst(out: PacketBuffer[], max: number): number {
    if (!this.arpReady) {
      if (this.arpWatcher !== null || ++this.arpSkip < 64) return 0;
      this.arpSkip = 0;
    }
    let n = 0;
    while (n < max) {
      const buf = this.pool.alloc();
      const r = libc.readAt(this.arpFd, buf.data, buf.start, buf.data.length - buf.start);
      if (r < 0) {
        buf.release();
        const e = libc.errno();
        if (e === libc.EAGAIN) this.arpReady = false; else this.st.rxDropped++;
        break;
      }
      if (r < 14) { buf.release(); this.st.rxDropped++; continue; }
      buf.end = buf.start + r;
      this.st.rxPackets++;
      this.st.rxBytes += r;
      out[n++] = buf;
    }
    return n;
  }

  /** Returns sent frames from the completion ring to the free list. */
  private reap(): void {
    const c = this.comp;
    const prod = Atomics.load(c.i32, c.prod) >>> 0;
    let cons = this.compCons;
    if (prod === cons) return;
    while (cons !== prod) {
      this.txFree[this.txFreeCount++] = c.u32[c.desc + ((cons & c.mask) << 1)]!;
      cons = (cons + 1) >>> 0;
    }
    this.compCons = cons;
    Atomics.store(c.i32, c.cons, cons | 0);
  }

  transmit(buf: PacketBuffer): void {
    const len = buf.end - buf.start;
    if (this.fd < 0) { this.st.txDropped++; buf.release(); return; }
    if (len > FRAME_SIZE || buf.gso !== 0) { this.st.txErrors++; buf.release(); return; }
    // No checksum offload in copy mode: a wrapper that left one partial gets it done here.
    if (buf.csum === Csum.Partial) completeChecksum(buf);
    if (this.txFreeCount === 0) {
      this.reap();
      if (this.txFreeCount === 0 && this.txPending > 0) { this.flush(); this.reap(); }
      if (this.txFreeCount === 0) { this.st.txDropped++; buf.release(); return; }
    }
    const tx = this.tx;
    const used = (this.txProd - (Atomics.load(tx.i32, tx.cons) >>> 0)) >>> 0;
    if (used >= tx.size) { this.st.txDropped++; buf.release(); return; }
    const addr = this.txFree[--this.txFreeCount]!;
    libc.copyAt(this.umemAddr + addr, libc.addressOf(buf.data) + buf.start, len);
    const d = tx.desc + ((this.txProd & tx.mask) << 2);
    tx.u32[d] = addr;
    tx.u32[d + 1] = 0;
    tx.u32[d + 2] = len;
    tx.u32[d + 3] = 0;
    this.txProd = (this.txProd + 1) >>> 0;
    this.st.txPackets++;
    this.st.txBytes += len;
    buf.release();
    if (++this.txPending >= this.burst) this.flush();
  }

  flush(): void {
    if (this.fd < 0) return;
    if (this.txPending > 0) {
      const tx = this.tx;
      Atomics.store(tx.i32, tx.prod, this.txProd | 0);
      // Copy mode sends at most 32 descriptors per kick and answers EAGAIN while more wait:
      // kick until the kernel took them all, or stops making progress (EBUSY/ENOBUFS: the
      // device queue is full; the next flush kicks again).
      let kicks = Math.ceil(this.txPending / TX_KICK_BATCH) + 1;
      let cons = Atomics.load(tx.i32, tx.cons) >>> 0;
      while (kicks-- > 0) {
        const r = libc.sendtoAt(this.fd, 0, 0, libc.MSG_DONTWAIT);
        if (r < 0) {
          const e = libc.errno();
          if (e !== libc.EAGAIN && e !== libc.EBUSY && e !== libc.ENOBUFS && e !== libc.EINTR) { this.st.txErrors++; break; }
        }
        const now = Atomics.load(tx.i32, tx.cons) >>> 0;
        if (now === this.txProd || now === cons) break;
        cons = now;
      }
      this.txPending = ((this.txProd - (Atomics.load(tx.i32, tx.cons) >>> 0)) >>> 0);
    }
    this.reap();
  }

  onReadable(cb: (() => void) | null): void {
    this.readableCb = cb;
    if (this.fd < 0) return;
    if (cb === null) { this.watcher?.pause(); this.arpWatcher?.pause(); return; }
    // An XDP socket polls readable while its RX ring holds frames.
    this.watcher = libc.startWatcher(this.watcher, this.fd, this.onPoll, this.refed);
    if (this.arpFd >= 0) this.arpWatcher = libc.startWatcher(this.arpWatcher, this.arpFd, this.onArpPoll, this.refed);
  }

  ref(): void { this.refed = true; this.watcher?.ref(); this.arpWatcher?.ref(); }
  unref(): void { this.refed = false; this.watcher?.unref(); this.arpWatcher?.unref(); }

  /** The XDP socket's file descriptor (diagnostics); -1 after close(). */
  get fileDescriptor(): number { return this.fd; }

  /**
   * Exception path: marks `port` as the stack's (open) or not for TCP (6) or UDP (17). The
   * program reads the table on every frame; the write needs no system call.
   */
  setPort(proto: number, port: number, open: boolean): void {
    const t = this.attachment.portsU8;
    if (t === null || port < 0 || port > 65535) return;
    const bit = proto === 6 ? bpf.PORT_TCP : proto === 17 ? bpf.PORT_UDP : 0;
    if (bit === 0) return;
    const i = bpf.PORTS_TABLE_OFFSET + port;
    t[i] = open ? t[i]! | bit : t[i]! & ~bit;
  }

  /** A listener for Stack.watchPorts (exception path): keeps the program's port table current. */
  readonly portWatcher = (proto: number, port: number, open: boolean): void => { this.setPort(proto, port, open); };

  /**
   * Exception path: only frames for this IPv4 address (host order, e.g. parseIpv4's) count as
   * the stack's; 0 accepts any destination. The interface's other addresses stay the kernel's.
   */
  setLocalAddress(addr: number): void {
    const t = this.attachment.portsU8;
    if (t === null) return;
    const o = bpf.PORTS_ADDR_OFFSET;
    t[o] = addr >>> 24; t[o + 1] = (addr >>> 16) & 0xff; t[o + 2] = (addr >>> 8) & 0xff; t[o + 3] = addr & 0xff;
  }

  /**
   * Counters; rxDropped includes frames the kernel dropped for this socket (XDP_STATISTICS:
   * rx_dropped, rx_invalid_descs, rx_ring_full), txErrors the descriptors it found invalid.
   */
  stats(): DriverStats {
    if (this.fd >= 0) {
      // struct xdp_statistics: rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full,
      // rx_fill_ring_empty_descs, tx_ring_empty_descs (u64 each; older kernels return fewer).
      const got = libc.getsockopt(this.fd, SOL_XDP, XDP_STATISTICS, this.xdpStats);
      if (got >= 24) {
        const dv = new DataView(this.xdpStats.buffer);
        let drops = Number(dv.getBigUint64(0, true)) + Number(dv.getBigUint64(8, true));
        if (got >= 32) drops += Number(dv.getBigUint64(24, true));
        const invalidTx = Number(dv.getBigUint64(16, true));
        this.st.rxDropped += drops - this.kernelDropsSeen;
        this.st.txErrors += invalidTx - this.kernelTxInvalidSeen;
        this.kernelDropsSeen = drops;
        this.kernelTxInvalidSeen = invalidTx;
      }
    }
    return { ...this.st };
  }

  close(): void {
    if (this.fd < 0) return;
    this.stats();
    this.watcher?.close();
    this.arpWatcher?.close();
    this.watcher = this.arpWatcher = null;
    this.readableCb = null;
    this.st.txDropped += this.txPending;
    bpf.mapDeleteU32(this.attachment.xskMapFd, this.queue);
    // Closing the socket stops the kernel touching the rings and the UMEM; then unmap them.
    libc.close(this.fd);
    this.fd = -1;
    if (this.arpFd >= 0) { libc.close(this.arpFd); this.arpFd = -1; }
    for (const r of [this.rx, this.tx, this.fill, this.comp]) libc.munmap(r.map);
    if (this.umem) { libc.munmap(this.umem); this.umem = null; }
    closeAttachment(this.attachment);
    if (this.kernelEnd !== null) deleteOwnDevice(this.name, this.netns);
  }
}

/** UMEM registration, the four rings and their mappings (pushed onto `maps` for cleanup). */
function setupSocket(fd: number, umem: libc.Mapping, frames: number, half: number, maps: libc.Mapping[]): { rx: Ring; tx: Ring; fill: Ring; comp: Ring } {
  // struct xdp_umem_reg: addr u64, len u64, chunk_size u32, headroom u32, flags u32, tx_metadata_len u32.
  const reg = new Uint8Array(32);
  const rv = new DataView(reg.buffer);
  rv.setBigUint64(0, BigInt(umem.address), true);
  rv.setBigUint64(8, BigInt(frames * FRAME_SIZE), true);
  rv.setUint32(16, FRAME_SIZE, true);
  if (libc.setsockopt(fd, SOL_XDP, XDP_UMEM_REG, reg) < 0) throw new libc.SysError('setsockopt(XDP_UMEM_REG)', libc.errno());
  const size = (opt: number, n: number, what: string): void => {
    if (libc.setsockoptInt(fd, SOL_XDP, opt, n) < 0) throw new libc.SysError(`setsockopt(${what})`, libc.errno());
  };
  size(XDP_UMEM_FILL_RING, half, 'XDP_UMEM_FILL_RING');
  size(XDP_UMEM_COMPLETION_RING, half, 'XDP_UMEM_COMPLETION_RING');
  size(XDP_RX_RING, half, 'XDP_RX_RING');
  size(XDP_TX_RING, half, 'XDP_TX_RING');
  // struct xdp_mmap_offsets: rx, tx, fr, cr, each { producer, consumer, desc, flags } u64.
  const off = new Uint8Array(128);
  if (libc.getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, off) < 0) throw new libc.SysError('getsockopt(XDP_MMAP_OFFSETS)', libc.errno());
  const ov = new DataView(off.buffer);
  const ring = (base: number, pgoff: number, descSize: number, what: string): Ring => {
    const prod = Number(ov.getBigUint64(base, true));
    const cons = Number(ov.getBigUint64(base + 8, true));
    const desc = Number(ov.getBigUint64(base + 16, true));
    let map: libc.Mapping;
    try {
      map = libc.mmap(desc + half * descSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_POPULATE, fd, pgoff);
    } catch (e) {
      throw new libc.SysError(`mmap(${what} ring)`, (e as libc.SysError).errno);
    }
    maps.push(map);
    return { map, u32: new Uint32Array(map.buffer), i32: new Int32Array(map.buffer), prod: prod >> 2, cons: cons >> 2, desc: desc >> 2, mask: half - 1, size: half };
  };
  return {
    rx: ring(0, XDP_PGOFF_RX_RING, 16, 'RX'),
    tx: ring(32, XDP_PGOFF_TX_RING, 16, 'TX'),
    fill: ring(64, XDP_UMEM_PGOFF_FILL_RING, 8, 'fill'),
    comp: ring(96, XDP_UMEM_PGOFF_COMPLETION_RING, 8, 'completion'),
  };
}

/** Exception path: a packet socket that receives a copy of every ARP frame the kernel gets on ifindex. */
function openArpSocket(ifindex: number): number {
  const proto = ((ETH_P_ARP & 0xff) << 8) | (ETH_P_ARP >> 8);
  const s = libc.socket(libc.AF_PACKET, libc.SOCK_RAW | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, proto);
  if (s < 0) throw new libc.SysError('socket(AF_PACKET, ETH_P_ARP)', libc.errno());
  try {
    if (libc.setsockoptInt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) < 0) throw new libc.SysError('setsockopt(PACKET_IGNORE_OUTGOING)', libc.errno());
    const sll = new Uint8Array(20);
    const sv = new DataView(sll.buffer);
    sv.setUint16(0, libc.AF_PACKET, true);
    sv.setUint16(2, ETH_P_ARP, false);
    sv.setInt32(4, ifindex, true);
    if (libc.bind(s, sll) < 0) throw new libc.SysError('bind(AF_PACKET, ETH_P_ARP)', libc.errno());
    return s;
  } catch (e) {
    libc.close(s);
    throw e;
  }
}
