// Pooled packet buffers with headroom, so each layer prepends its header in place,
// and the offload metadata that travels with every frame (DESIGN.md, "Offload metadata").
//
// Ownership rule: exactly one owner at a time. Whoever holds a buffer either hands it on
// (stack.input, device.transmit, a queue) or calls release(). Nothing else frees it.

/** Checksum state of the L4 payload. */
export const Csum = {
  /** Nothing known: the receiver verifies it. */
  None: 0,
  /** Sender left the pseudo-header sum at csumStart+csumOffset for the device to complete. */
  Partial: 1,
  /** Already verified (by the device, or the frame never left this host). */
  Valid: 2,
} as const;
export type CsumState = (typeof Csum)[keyof typeof Csum];

/** Segmentation offload of an oversized frame. */
export const Gso = { None: 0, Tcp4: 1, Tcp6: 2, Udp: 3 } as const;
export type GsoType = (typeof Gso)[keyof typeof Gso];

/** Headroom reserved in every buffer: virtio_net_hdr(10) + Ethernet(14) + VLAN(4) + IPv6(40) + TCP(60), rounded. */
export const DEFAULT_HEADROOM = 160;
export const SMALL_BUF_SIZE = 2048;
/** Large enough for a 64 KiB GSO super-segment plus headers. */
export const LARGE_BUF_SIZE = 65536 + 512;

export class PacketBuffer {
  readonly data: Uint8Array;
  readonly view: DataView;
  /** Offset of the first valid byte. */
  start = 0;
  /** Offset one past the last valid byte. */
  end = 0;
  csum: CsumState = Csum.None;
  /** With Csum.Partial: where the checksummed region starts (absolute offset into data)... */
  csumStart = 0;
  /** ...and the checksum field's offset from csumStart. */
  csumOffset = 0;
  gso: GsoType = Gso.None;
  /** With gso: payload bytes per segment. */
  gsoSize = 0;
  /** Offsets of the L3 and L4 headers once parsed (absolute into data); -1 when unknown. */
  l3 = -1;
  l4 = -1;
  /** Index of the interface the frame arrived on or leaves by. */
  ifIndex = 0;
  /** Free-list link (owned by the pool). */
  nextFree: PacketBuffer | null = null;
  readonly pool: BufferPool | null;

  constructor(size: number, pool: BufferPool | null = null) {
    this.data = new Uint8Array(size);
    this.view = new DataView(this.data.buffer, this.data.byteOffset, size);
    this.pool = pool;
  }

  get length(): number { return this.end - this.start; }
  get headroom(): number { return this.start; }
  get tailroom(): number { return this.data.length - this.end; }

  /** Empties the buffer, leaving `headroom` bytes before the start, and clears the metadata. */
  reset(headroom = DEFAULT_HEADROOM): this {
    this.start = this.end = Math.min(headroom, this.data.length);
    this.csum = Csum.None; this.csumStart = 0; this.csumOffset = 0;
    this.gso = Gso.None; this.gsoSize = 0;
    this.l3 = -1; this.l4 = -1; this.ifIndex = 0;
    return this;
  }

  /** Grows the front by n bytes (a header) and returns the new start offset. */
  prepend(n: number): number {
    if (n > this.start) throw new RangeError(`PacketBuffer: no headroom for ${n} bytes (have ${this.start})`);
    this.start -= n;
    return this.start;
  }

  /** Grows the back by n bytes and returns the offset where they begin. */
  append(n: number): number {
    const at = this.end;
    if (at + n > this.data.length) throw new RangeError(`PacketBuffer: no tailroom for ${n} bytes (have ${this.data.length - at})`);
    this.end = at + n;
    return at;
  }

  /** Drops n bytes from the front (a consumed header). */
  pull(n: number): void { this.start = Math.min(this.start + n, this.end); }

  /** Cuts the buffer to n bytes (e.g. Ethernet padding beyond the IP total length). */
  truncate(n: number): void { if (n < this.length) this.end = this.start + n; }

  /** Copies bytes in at the end. */
  appendBytes(src: Uint8Array, off = 0, len = src.length - off): number {
    const at = this.append(len);
    this.data.set(len === src.length && off === 0 ? src : src.subarray(off, off + len), at);
    return at;
  }

  /** A view of the valid bytes (allocates a view object: not for the per-packet path). */
  bytes(): Uint8Array { return this.data.subarray(this.start, this.end); }

  /** Copies the valid bytes and metadata into a fresh buffer from the same pool (or a new one). */
  clone(): PacketBuffer {
    const c = this.pool ? this.pool.alloc(this.data.length) : new PacketBuffer(this.data.length);
    c.data.set(this.data.subarray(this.start, this.end), this.start);
    c.start = this.start; c.end = this.end;
    c.csum = this.csum; c.csumStart = this.csumStart; c.csumOffset = this.csumOffset;
    c.gso = this.gso; c.gsoSize = this.gsoSize; c.l3 = this.l3; c.l4 = this.l4; c.ifIndex = this.ifIndex;
    return c;
  }

  /** Returns the buffer to its pool. The caller must not touch it afterwards. */
  release(): void { this.pool?.free(this); }
}

export interface PoolStats { small: number; large: number; inUse: number; allocated: number; }

/**
 * Two size classes with free lists. alloc() hands out a reset buffer; free() takes it back.
 * Buffers beyond `maxCached` per class are left to the GC, so a burst does not pin memory.
 */
export class BufferPool {
  private smallFree: PacketBuffer | null = null;
  private largeFree: PacketBuffer | null = null;
  private smallCount = 0;
  private largeCount = 0;
  inUse = 0;
  allocated = 0;

  constructor(readonly headroom = DEFAULT_HEADROOM, readonly maxCached = 4096) {}

  /** A buffer whose capacity is at least `size` bytes (headroom included). */
  alloc(size = SMALL_BUF_SIZE): PacketBuffer {
    let b: PacketBuffer | null;
    if (size <= SMALL_BUF_SIZE) {
      b = this.smallFree;
      if (b) { this.smallFree = b.nextFree; this.smallCount--; } else { b = new PacketBuffer(SMALL_BUF_SIZE, this); this.allocated++; }
    } else if (size <= LARGE_BUF_SIZE) {
      b = this.largeFree;
      if (b) { this.largeFree = b.nextFree; this.largeCount--; } else { b = new PacketBuffer(LARGE_BUF_SIZE, this); this.allocated++; }
    } else {
      b = new PacketBuffer(size, this); this.allocated++;
    }
    b.nextFree = null;
    this.inUse++;
    return b.reset(this.headroom);
  }

  free(b: PacketBuffer): void {
    this.inUse--;
    const cap = b.data.length;
    if (cap === SMALL_BUF_SIZE && this.smallCount < this.maxCached) {
      b.nextFree = this.smallFree; this.smallFree = b; this.smallCount++;
    } else if (cap === LARGE_BUF_SIZE && this.largeCount < this.maxCached / 16) {
      b.nextFree = this.largeFree; this.largeFree = b; this.largeCount++;
    }
  }

  stats(): PoolStats { return { small: this.smallCount, large: this.largeCount, inUse: this.inUse, allocated: this.allocated }; }
}
