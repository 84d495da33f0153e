// TAP driver: a Linux TAP device (/dev/net/tun, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) read and
// written with one syscall per frame, woken by a libuv readiness watcher.
//
// Every frame crosses the fd behind a 10-byte virtio_net_hdr (little-endian), which carries
// the checksum and segmentation offload state both ways (DESIGN.md, "Offload metadata"):
//   flags u8 | gso_type u8 | hdr_len u16 | gso_size u16 | csum_start u16 | csum_offset u16
// On receive the header is read into the buffer's headroom so the frame lands at buf.start;
// on transmit it is written into the headroom in front of the frame. No copies.
//
// Setup and teardown (MTU, up, addresses, namespace) shell out to iproute2: not per packet.
import { BufferPool, Csum, Gso, LARGE_BUF_SIZE, SMALL_BUF_SIZE, type PacketBuffer } from '../base/pktbuf.js';
import type { Offloads } from '../base/device.js';
import { emptyDriverStats, type Driver, type DriverStats } from './types.js';
import * as libc from './sys/libc.js';
import { inNetns, run } from './sys/netns.js';
import { VNET_HDR_LEN, decodeVnetHeader, encodeVnetHeader, randomLocalMac } from './vnet.js';
import { claimDeviceNames, ipBatch, ownerTag } from './ownership.js';

const EACCES = 13;

// <linux/if_tun.h>
const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETPERSIST = 0x400454cb;
const IFF_MULTI_QUEUE = 0x0100;
const TUNSETVNETHDRSZ = 0x400454d8;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUN_F_CSUM = 0x01;
const SIOCGIFFLAGS = 0x8913;
const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const IFNAMSIZ = 16;
/** sizeof(struct ifreq) on 64-bit Linux. */
const IFREQ_SIZE = 40;

/** Ethernet header + one VLAN tag: what a frame adds to the IP MTU. */
const L2_OVERHEAD = 18;

export interface TapOptions {
  /** Device name (at most 15 bytes). */
  ifname: string;
  /** IP MTU of the link; default 1500. */
  mtu?: number;
  /** The stack's MAC on this link (the kernel side has its own); default: random, locally administered. */
  mac?: Uint8Array;
  /** CIDR given to the kernel side, e.g. "198.18.0.1/24". */
  hostAddr?: string;
  /** IPv6 CIDR given to the kernel side, e.g. "2001:db8::1/64" (added without DAD). */
  hostAddr6?: string;
  /** Existing network namespace to move the device into; the kernel side is configured there. */
  netns?: string;
  /**
   * Checksum offload with the kernel (TUN_F_CSUM); default true. false makes the kernel
   * complete every checksum before handing a frame over (what a capture wants to see, or a
   * test checking our partial sums); transmit still accepts Csum.Partial either way.
   */
  csumOffload?: boolean;
  /**
   * TCP segmentation offload over IPv4, both ways (needs csumOffload); default true. We write
   * TCP super-segments of up to 64 KiB (gso TCPV4 in the virtio header; the kernel segments
   * them only if it must forward them), and the kernel hands us its own TCP's super-segments
   * unsegmented (TUN_F_TSO4, GRO's effect): one system call per 64 KiB instead of per 1.5 KB.
   */
  tso?: boolean;
  /** Frames the kernel may queue for us before it drops (the device's txqueuelen); default 10000. */
  queueLen?: number;
  pool?: BufferPool;
  /** Frames queued by transmit() before it flushes by itself; default 64. */
  burst?: number;
  /**
   * One queue of a multi-queue TAP that exists already (several workers: the supervisor made it
   * with createMultiQueue): the driver attaches a queue (IFF_MULTI_QUEUE) inside `netns` and
   * configures nothing. hostAddr/hostAddr6/queueLen are ignored.
   */
  attachQueue?: boolean;
}

/** Whether a TAP device with these options offloads TCP segmentation (tso needs checksum offload). */
function tapTso(opts: TapOptions): boolean {
  return opts.tso !== false && opts.csumOffload !== false;
}

function ip(args: string[]): string {
  return run('ip', args);
}

export class TapDriver implements Driver {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly offloads: Offloads;
  readonly pool: BufferPool;
  /** Namespace holding the device's kernel side, when one was given. */
  readonly netns: string | undefined;

  private fd: number;
  private readonly burst: number;
  private readonly rxBufSize: number;
  private readonly txQueue: (PacketBuffer | null)[];
  private txCount = 0;
  /** A buffer kept across rxBurst calls so the read that meets EAGAIN costs no alloc/free. */
  private spare: PacketBuffer | null = null;
  private readonly st: DriverStats = emptyDriverStats();
  // Strong reference to the readiness watcher (koffi's handle stops when collected).
  private watcher: libc.PollWatcher | null = null;
  private readableCb: (() => void) | null = null;
  /** False after unref(): the watcher (now or when created later) does not hold the process. */
  private refed = true;
  /**
   * Whether a read may find a frame. While the (level-triggered) watcher runs, a read that met
   * EAGAIN clears this and the next readable report sets it: rxBurst calls between the two
   * (the run loop's spins and kicks) skip the read(), a system call that could only fail.
   * Without a watcher (busy polling, or after a watcher error) every rxBurst reads.
   */
  private readable = true;
  /** The watcher reports readiness (it exists, has a callback, and has not failed). */
  private watching = false;
  private readonly onPoll = (status: number): void => {
    if (status < 0) {
      // The watcher paused itself; a new onReadable(cb) re-arms it. Until then read blindly.
      this.watching = false;
      this.readable = true;
      return;
    }
    this.readable = true;
    this.readableCb?.();
  };

  private constructor(fd: number, name: string, opts: TapOptions) {
    this.fd = fd;
    this.name = name;
    this.mtu = opts.mtu ?? 1500;
    this.mac = opts.mac ? new Uint8Array(opts.mac) : randomLocalMac();
    this.pool = opts.pool ?? new BufferPool();
    this.netns = opts.netns;
    const tso = tapTso(opts);
    this.offloads = Object.freeze({ rxCsum: opts.csumOffload !== false, txCsum: true, tso4: tso, tso6: tso });
    this.burst = Math.max(1, opts.burst ?? 64);
    this.txQueue = new Array<PacketBuffer | null>(this.burst).fill(null);
    // A read buffer smaller than the frame would truncate it silently, so size for the largest
    // one: a 64 KiB super-segment with TSO, else an MTU-sized frame.
    this.rxBufSize = !tso && this.pool.headroom + this.mtu + L2_OVERHEAD <= SMALL_BUF_SIZE ? SMALL_BUF_SIZE : LARGE_BUF_SIZE;
  }

  /**
   * Creates (or attaches to) the TAP device, applies MTU, moves it to `netns` if given,
   * brings it up and addresses the kernel side. Throws with the failing step on error, after
   * undoing what was done (the device goes away with its descriptor).
   */
  static open(opts: TapOptions): TapDriver {
    if (opts.attachQueue) return TapDriver.attach(opts);
    const name = opts.ifname;
    if (!name || Buffer.byteLength(name) >= IFNAMSIZ || /[\s/]/.test(name)) {
      throw new Error(`TapDriver: invalid interface name ${JSON.stringify(name)} (1-15 bytes, no spaces or '/')`);
    }
    const mtu = opts.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535 - L2_OVERHEAD) throw new Error(`TapDriver: invalid mtu ${mtu}`);
    if (opts.mac && opts.mac.length !== 6) throw new Error('TapDriver: mac must be 6 bytes');

    // The device is created in this namespace, then moved to netns: the name must be free (or
    // a dead tstack's leftover) in both. TUNSETIFF would otherwise attach to someone's
    // persistent TAP, or fail with a bare EBUSY / EINVAL.
    if (opts.netns !== undefined) claimDeviceNames([name], opts.netns);
    claimDeviceNames([name]);
    const fd = libc.open('/dev/net/tun', libc.O_RDWR | libc.O_NONBLOCK | libc.O_CLOEXEC);
    if (fd < 0) {
      const e = libc.errno();
      if (e === libc.ENOENT) throw new Error('TapDriver: /dev/net/tun does not exist (load the tun module: modprobe tun)');
      if (e === libc.EPERM || e === EACCES) throw new Error('TapDriver: opening /dev/net/tun needs root (CAP_NET_ADMIN)');
      throw new libc.SysError('open(/dev/net/tun)', e);
    }
    let drv: TapDriver | null = null;
    try {
      const ifr = new Uint8Array(IFREQ_SIZE);
      new TextEncoder().encodeInto(name, ifr.subarray(0, IFNAMSIZ - 1));
      const flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
      ifr[16] = flags & 0xff; ifr[17] = flags >> 8;
      if (libc.ioctlPtr(fd, TUNSETIFF, ifr) < 0) {
        const e = libc.errno();
        if (e === libc.EPERM) throw new Error(`TapDriver: creating ${name} needs root (CAP_NET_ADMIN)`);
        if (e === libc.EBUSY) throw new Error(`TapDriver: ${name} is in use by another process`);
        if (e === libc.EINVAL) throw new Error(`TapDriver: ${name} exists and is not a TAP device tstack can use`);
        throw new libc.SysError('ioctl(TUNSETIFF)', e);
      }
      const hdrSz = new Uint8Array(4);
      new DataView(hdrSz.buffer).setInt32(0, VNET_HDR_LEN, true);
      if (libc.ioctlPtr(fd, TUNSETVNETHDRSZ, hdrSz) < 0) throw new libc.SysError('ioctl(TUNSETVNETHDRSZ)', libc.errno());
      // CSUM: the kernel may give us frames with partial checksums and accepts ours. TSO4/TSO6:
      // it may give us TCP super-segments over IPv4 and IPv6.
      const offload = opts.csumOffload === false ? 0 : TUN_F_CSUM | (tapTso(opts) ? TUN_F_TSO4 | TUN_F_TSO6 : 0);
      if (libc.ioctlInt(fd, TUNSETOFFLOAD, offload) < 0) throw new libc.SysError('ioctl(TUNSETOFFLOAD)', libc.errno());

      drv = new TapDriver(fd, name, opts);
      // The device's queue (frames the kernel sent that we have not read yet) is 500-1000
      // frames by default: a burst from many connections at once (a thousand clients, a UDP
      // flood) overflows it between two reads, and every lost frame costs its sender a
      // retransmission timeout. A real NIC's receive ring is thousands of descriptors.
      // Two `ip` runs at most (a restart must serve within a second): the settings and the move
      // to the namespace in one request, then what is done inside the namespace in one batch.
      const inNs = [
        `link set dev ${name} up`,
        ...(opts.hostAddr ? [`addr add ${opts.hostAddr} dev ${name}`] : []),
        ...(opts.hostAddr6 ? [`addr add ${opts.hostAddr6} dev ${name} nodad`] : []),
      ];
      const settings = `link set dev ${name} mtu ${mtu} txqueuelen ${opts.queueLen ?? 10000} alias ${ownerTag()}`;
      if (opts.netns) {
        ip([...settings.split(' '), 'netns', opts.netns]);
        ipBatch(opts.netns, inNs);
      } else {
        ipBatch(undefined, [settings, ...inNs]);
      }
      return drv;
    } catch (e) {
      if (drv) drv.close(); else libc.close(fd);
      throw e;
    }
  }

  /**
   * Creates a persistent multi-queue TAP device (IFF_MULTI_QUEUE) for several workers, each of
   * which attaches its own queue (open with attachQueue). The kernel gives each flow the queue
   * it last transmitted on (its flow table, for 3 s after the last frame), else the queue of its
   * own symmetric flow hash. The device stays until deleteOwnDevice (it carries our mark).
   */
  static createMultiQueue(opts: TapOptions): void {
    const name = opts.ifname;
    if (!name || Buffer.byteLength(name) >= IFNAMSIZ || /[\s/]/.test(name)) {
      throw new Error(`TapDriver: invalid interface name ${JSON.stringify(name)} (1-15 bytes, no spaces or '/')`);
    }
    const mtu = opts.mtu ?? 1500;
    if (opts.netns !== undefined) claimDeviceNames([name], opts.netns);
    claimDeviceNames([name]);
    const fd = TapDriver.tunFd(name, true);
    try {
      if (libc.ioctlInt(fd, TUNSETPERSIST, 1) < 0) throw new libc.SysError('ioctl(TUNSETPERSIST)', libc.errno());
    } finally {
      libc.close(fd);
    }
    try {
      ip(['link', 'set', 'dev', name, 'mtu', String(mtu), 'txqueuelen', String(opts.queueLen ?? 10000), 'alias', ownerTag()]);
      const at = opts.netns ? ['-n', opts.netns] : [];
      if (opts.netns) ip(['link', 'set', 'dev', name, 'netns', opts.netns]);
      ip([...at, 'link', 'set', 'dev', name, 'up']);
      if (opts.hostAddr) ip([...at, 'addr', 'add', opts.hostAddr, 'dev', name]);
      if (opts.hostAddr6) ip([...at, '-6', 'addr', 'add', opts.hostAddr6, 'dev', name, 'nodad']);
    } catch (e) {
      try { ip([...(opts.netns ? ['-n', opts.netns] : []), 'link', 'del', name]); } catch { /* not there */ }
      try { ip(['link', 'del', name]); } catch { /* not there */ }
      throw e;
    }
  }

  /** Opens /dev/net/tun and binds it to `name` (a new device, or one more queue of a multi-queue one). */
  private static tunFd(name: string, multiQueue: boolean, opts: TapOptions = { ifname: name }): number {
    const fd = libc.open('/dev/net/tun', libc.O_RDWR | libc.O_NONBLOCK | libc.O_CLOEXEC);
    if (fd < 0) {
      const e = libc.errno();
      if (e === libc.ENOENT) throw new Error('TapDriver: /dev/net/tun does not exist (load the tun module: modprobe tun)');
      if (e === libc.EPERM || e === EACCES) throw new Error('TapDriver: opening /dev/net/tun needs root (CAP_NET_ADMIN)');
      throw new libc.SysError('open(/dev/net/tun)', e);
    }
    try {
      const ifr = new Uint8Array(IFREQ_SIZE);
      new TextEncoder().encodeInto(name, ifr.subarray(0, IFNAMSIZ - 1));
      const flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multiQueue ? IFF_MULTI_QUEUE : 0);
      ifr[16] = flags & 0xff; ifr[17] = flags >> 8;
      if (libc.ioctlPtr(fd, TUNSETIFF, ifr) < 0) {
        const e = libc.errno();
        if (e === libc.EPERM) throw new Error(`TapDriver: ${name} needs root (CAP_NET_ADMIN)`);
        if (e === libc.EBUSY) throw new Error(`TapDriver: ${name} is in use by another process`);
        if (e === libc.EINVAL) throw new Error(`TapDriver: ${name} exists and is not a multi-queue TAP device tstack can use`);
        throw new libc.SysError('ioctl(TUNSETIFF)', e);
      }
      const hdrSz = new Uint8Array(4);
      new DataView(hdrSz.buffer).setInt32(0, VNET_HDR_LEN, true);
      if (libc.ioctlPtr(fd, TUNSETVNETHDRSZ, hdrSz) < 0) throw new libc.SysError('ioctl(TUNSETVNETHDRSZ)', libc.errno());
      const offload = opts.csumOffload === false ? 0 : TUN_F_CSUM | (tapTso(opts) ? TUN_F_TSO4 : 0);
      if (libc.ioctlInt(fd, TUNSETOFFLOAD, offload) < 0) throw new libc.SysError('ioctl(TUNSETOFFLOAD)', libc.errno());
      return fd;
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /** One more queue of a multi-queue device made by createMultiQueue (in its namespace). */
  private static attach(opts: TapOptions): TapDriver {
    const fd = inNetns(opts.netns, () => TapDriver.tunFd(opts.ifname, true, opts));
    return new TapDriver(fd, opts.ifname, opts);
  }

  rxBurst(out: PacketBuffer[], max: number): number {
    const fd = this.fd;
    if (fd < 0 || (this.watching && !this.readable)) return 0;
    let n = 0;
    while (n < max) {
      let buf = this.spare;
      if (buf === null) buf = this.pool.alloc(this.rxBufSize);
      else this.spare = null;
      // Virtio header into the headroom so the frame lands at buf.start.
      const off = buf.start - VNET_HDR_LEN;
      const cap = buf.data.length - off;
      const r = libc.readAt(fd, buf.data, off, cap);
      if (r < 0) {
        this.spare = buf;
        const err = libc.errno();
        if (err === libc.EAGAIN) this.readable = false;
        else if (err !== libc.EINTR) this.st.rxDropped++;
        break;
      }
      // A runt (nothing after the header), or a frame that filled the buffer and may have
      // been cut: the kernel truncates silently (the MTU was raised behind our back).
      if (r <= VNET_HDR_LEN || r === cap) {
        this.st.rxDropped++;
        this.spare = buf;
        continue;
      }
      buf.end = buf.start + (r - VNET_HDR_LEN);
      decodeVnetHeader(buf.data, off, buf, buf.start);
      this.st.rxPackets++;
      this.st.rxBytes += r - VNET_HDR_LEN;
      out[n++] = buf;
    }
    return n;
  }

  transmit(buf: PacketBuffer): void {
    if (this.fd < 0) { this.st.txDropped++; buf.release(); return; }
    this.txQueue[this.txCount++] = buf;
    if (this.txCount === this.burst) this.flush();
  }

  flush(): void {
    const fd = this.fd;
    const q = this.txQueue;
    for (let i = 0; i < this.txCount; i++) {
      const buf = q[i]!;
      q[i] = null;
      const off = buf.start - VNET_HDR_LEN;
      if (fd < 0) {
        this.st.txDropped++;
      } else if (off < 0 || !encodeVnetHeader(buf.data, off, buf)) {
        this.st.txErrors++;
      } else {
        const len = buf.end - buf.start;
        const r = libc.writeAt(fd, buf.data, off, len + VNET_HDR_LEN);
        if (r >= 0) {
          this.st.txPackets++;
          this.st.txBytes += len;
        } else {
          const err = libc.errno();
          // A full device queue (txqueuelen) is loss, as on a wire; anything else is a bug
          // in the frame or the device (EINVAL: bad virtio header, EIO: device down).
          if (err === libc.EAGAIN || err === libc.ENOBUFS) this.st.txDropped++;
          else this.st.txErrors++;
        }
      }
      buf.release();
    }
    this.txCount = 0;
  }

  onReadable(cb: (() => void) | null): void {
    this.readableCb = cb;
    // Frames may have arrived while nobody watched: the next rxBurst reads.
    this.readable = true;
    this.watching = false;
    if (this.fd < 0) return;
    if (cb === null) { this.watcher?.pause(); return; }
    this.watcher = libc.startWatcher(this.watcher, this.fd, this.onPoll, this.refed);
    this.watching = true;
  }

  /** The readiness watcher keeps the process alive (the default). */
  ref(): void { this.refed = true; this.watcher?.ref(); }

  /** The readiness watcher stops keeping the process alive (uv_unref on the uv_poll handle). */
  unref(): void { this.refed = false; this.watcher?.unref(); }

  /** The file descriptor (for diagnostics and tools); -1 after close(). */
  get fileDescriptor(): number { return this.fd; }

  stats(): DriverStats { return { ...this.st }; }

  /** A socket in the device's namespace, for SIOCGIFFLAGS (opened on first use). */
  private ctlFd = -1;
  private readonly ifreq = new Uint8Array(40);

  /**
   * Carrier as the kernel sees the device: IFF_UP and IFF_RUNNING (`ip link set dev X down` on
   * the kernel side clears them). One ioctl; bonding calls it every monitor interval.
   */
  linkUp(): boolean {
    if (this.fd < 0) return false;
    if (this.ctlFd < 0) {
      this.ctlFd = inNetns(this.netns, () => libc.socket(libc.AF_INET, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0));
      if (this.ctlFd < 0) return true; // cannot tell: count as up
      this.ifreq.fill(0);
      this.ifreq.set(new TextEncoder().encode(this.name).subarray(0, 15), 0);
    }
    const r = this.ifreq;
    r[16] = 0; r[17] = 0;
    if (libc.ioctlPtr(this.ctlFd, SIOCGIFFLAGS, r) < 0) return false;
    const flags = r[16]! | (r[17]! << 8);
    return (flags & IFF_UP) !== 0 && (flags & IFF_RUNNING) !== 0;
  }

  close(): void {
    if (this.ctlFd >= 0) { libc.close(this.ctlFd); this.ctlFd = -1; }
    if (this.fd < 0) return;
    // Queued frames are dropped, not sent: close means the link is going away.
    for (let i = 0; i < this.txCount; i++) { this.txQueue[i]!.release(); this.txQueue[i] = null; this.st.txDropped++; }
    this.txCount = 0;
    // Stop the watcher before closing the fd: libuv must not poll a closed (or reused) fd.
    this.watcher?.close();
    this.watcher = null;
    this.watching = false;
    this.readableCb = null;
    this.spare?.release();
    this.spare = null;
    // A non-persistent TAP is removed with its last descriptor.
    libc.close(this.fd);
    this.fd = -1;
  }
}
