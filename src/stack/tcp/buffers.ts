// Send and receive buffers: byte rings allocated on first use (a connect+close that moves no
// data allocates none) and handed back to a small free list when the connection ends.
// Payload is copied once: application -> send ring -> outgoing packet buffer, and
// incoming packet buffer -> receive ring -> application.
import { seqDiff } from './seq.js';

const EMPTY = new Uint8Array(0);
const EMPTY32 = new Uint32Array(0);

/** Recycles ring storage between connections (per Tcp instance, never shared across stacks). */
export class RingStore {
  private readonly free = new Map<number, Uint8Array[]>();
  private cachedBytes = 0;
  /**
   * Freed ring storage is kept for reuse up to `maxBytes` in all (64 MiB: both rings of 128
   * connections at the default 256 KiB), so a busy server does not allocate and zero-fill
   * fresh rings for every connection, and an idle one does not pin more than that.
   */
  constructor(private readonly maxBytes = 64 << 20) {}
  take(size: number): Uint8Array {
    const b = this.free.get(size)?.pop();
    if (!b) return new Uint8Array(size);
    this.cachedBytes -= size;
    return b;
  }
  give(b: Uint8Array): void {
    if (b.length === 0 || this.cachedBytes + b.length > this.maxBytes) return;
    let l = this.free.get(b.length);
    if (!l) { l = []; this.free.set(b.length, l); }
    l.push(b);
    this.cachedBytes += b.length;
  }
}

/** A ring's whole content, from `head` round to just before it, at the start of a new ring of `size` bytes. */
function relocate(store: RingStore, old: Uint8Array, head: number, size: number): Uint8Array {
  const b = store.take(size);
  b.set(old.subarray(head), 0);
  if (head > 0) b.set(old.subarray(0, head), old.length - head);
  store.give(old);
  return b;
}

/** The send buffer: bytes from SND.UNA's data onwards (acknowledged bytes are dropped). */
export class SendBuffer {
  data: Uint8Array = EMPTY;
  head = 0;
  /** Bytes queued (sent-unacknowledged and unsent). */
  length = 0;
  constructor(public capacity: number, private readonly store: RingStore) {}

  get free(): number { return this.capacity - this.length; }

  /** Copies up to n bytes in; returns how many fitted. */
  write(src: Uint8Array, off: number, n: number): number {
    if (n > this.capacity - this.length) n = this.capacity - this.length;
    if (n <= 0) return 0;
    if (this.data.length === 0) this.data = this.store.take(this.capacity);
    const cap = this.data.length;
    let tail = this.head + this.length;
    if (tail >= cap) tail -= cap;
    const first = Math.min(n, cap - tail);
    this.data.set(first === src.length && off === 0 ? src : src.subarray(off, off + first), tail);
    if (first < n) this.data.set(src.subarray(off + first, off + n), 0);
    this.length += n;
    return n;
  }

  /** Copies n bytes starting `offset` bytes past the head into dst[dstOff]. */
  copyOut(offset: number, dst: Uint8Array, dstOff: number, n: number): void {
    const cap = this.data.length;
    let p = this.head + offset;
    if (p >= cap) p -= cap;
    const first = Math.min(n, cap - p);
    dst.set(this.data.subarray(p, p + first), dstOff);
    if (first < n) dst.set(this.data.subarray(0, n - first), dstOff + first);
  }

  /** Autotuning: a larger capacity; an allocated ring is copied into a larger one, head first. */
  grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    this.capacity = capacity;
    if (this.data.length === 0) return;
    this.data = relocate(this.store, this.data, this.head, capacity);
    this.head = 0;
  }

  /** Drops n acknowledged bytes from the front. */
  drop(n: number): void {
    if (n <= 0) return;
    this.length -= n;
    this.head += n;
    if (this.head >= this.data.length) this.head -= this.data.length;
    if (this.length === 0) this.head = 0;
  }

  release(): void {
    this.store.give(this.data);
    this.data = EMPTY; this.head = 0; this.length = 0;
  }
}

/**
 * The receive buffer: in-order bytes waiting for the application, followed by room for the
 * window. Out-of-order segments are copied straight to their place in the ring; their
 * sequence ranges are kept in a bounded sorted list so in-order arrival can absorb them.
 */
export class RecvBuffer {
  data: Uint8Array = EMPTY;
  head = 0;
  /** In-order bytes ready for the application. */
  length = 0;
  /**
   * Out-of-order ranges [oooStart[i], oooEnd[i]) sorted by sequence, with a recency stamp.
   * Allocated at the first out-of-order segment: most connections never see one.
   */
  oooStart: Uint32Array = EMPTY32;
  oooEnd: Uint32Array = EMPTY32;
  oooStamp: Uint32Array = EMPTY32;
  oooCount = 0;
  private stamp = 0;

  constructor(public capacity: number, readonly maxRanges: number, private readonly store: RingStore) {}

  /** Room for new data beyond what the application has not read yet. */
  get space(): number { return this.capacity - this.length; }

  /**
   * Autotuning: a larger capacity. An allocated ring is copied into a larger one starting at
   * its head, so in-order bytes and out-of-order ranges keep their offsets from the head.
   */
  grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    this.capacity = capacity;
    if (this.data.length === 0) return;
    this.data = relocate(this.store, this.data, this.head, capacity);
    this.head = 0;
  }

  /**
   * Stores n bytes for sequence `seq` (already trimmed to [rcvNxt, rcvNxt + space)).
   * Returns how far RCV.NXT advances (0 for an out-of-order segment), or -1 when an
   * out-of-order segment was dropped because the range list is full.
   */
  insert(rcvNxt: number, seq: number, src: Uint8Array, off: number, n: number): number {
    if (this.data.length === 0) this.data = this.store.take(this.capacity);
    const rel = seqDiff(seq, rcvNxt);
    if (rel > 0) {
      // Out of order: bytes already queued for these sequence numbers stay (as Linux keeps
      // them); only the parts no queued range covers are copied.
      this.copyUncovered(rcvNxt, seq, src, off, n);
      return this.addRange(seq, (seq + n) >>> 0) ? 0 : -1;
    }
    this.copyIn(this.length, src, off, n);
    // In order: absorb any out-of-order ranges now contiguous.
    let end = (rcvNxt + n) >>> 0;
    let i = 0;
    while (i < this.oooCount && seqDiff(this.oooStart[i]!, end) <= 0) {
      if (seqDiff(this.oooEnd[i]!, end) > 0) end = this.oooEnd[i]!;
      i++;
    }
    if (i > 0) this.removeFront(i);
    const adv = seqDiff(end, rcvNxt);
    this.length += adv;
    return adv;
  }

  /** Copies up to max in-order bytes out (allocates the result: API path, not per packet). */
  read(max: number): Uint8Array | null {
    const n = Math.min(max, this.length);
    if (n <= 0) return null;
    const out = new Uint8Array(n);
    this.readInto(out, 0, n);
    return out;
  }

  /** Copies up to n in-order bytes out without consuming them (MSG_PEEK). */
  peekInto(dst: Uint8Array, dstOff: number, n: number): number {
    if (n > this.length) n = this.length;
    const cap = this.data.length;
    const first = Math.min(n, cap - this.head);
    dst.set(this.data.subarray(this.head, this.head + first), dstOff);
    if (first < n) dst.set(this.data.subarray(0, n - first), dstOff + first);
    return n;
  }

  readInto(dst: Uint8Array, dstOff: number, n: number): number {
    n = this.peekInto(dst, dstOff, n);
    const cap = this.data.length;
    this.head += n;
    if (this.head >= cap) this.head -= cap;
    this.length -= n;
    if (this.length === 0 && this.oooCount === 0) this.head = 0;
    return n;
  }

  /** Writes up to `max` SACK blocks, most recently changed first (RFC 2018 §4). Returns the count. */
  sackBlocks(out: Uint32Array, max: number): number {
    let n = 0;
    let lastStamp = 0xffffffff;
    // Selection by descending stamp; range counts are small, so a few linear passes are cheap.
    while (n < max) {
      let best = -1;
      let bestStamp = -1;
      for (let i = 0; i < this.oooCount; i++) {
        const s = this.oooStamp[i]!;
        if (s < lastStamp && s > bestStamp) { best = i; bestStamp = s; }
      }
      if (best < 0) break;
      out[2 * n] = this.oooStart[best]!; out[2 * n + 1] = this.oooEnd[best]!;
      lastStamp = bestStamp;
      n++;
    }
    return n;
  }

  release(): void {
    this.store.give(this.data);
    this.data = EMPTY; this.head = 0; this.length = 0; this.oooCount = 0;
  }

  private copyIn(offset: number, src: Uint8Array, off: number, n: number): void {
    const cap = this.data.length;
    let p = this.head + offset;
    if (p >= cap) p -= cap;
    const first = Math.min(n, cap - p);
    this.data.set(src.subarray(off, off + first), p);
    if (first < n) this.data.set(src.subarray(off + first, off + n), 0);
  }

  /** Copies the parts of [seq, seq + n) that no out-of-order range holds yet. */
  private copyUncovered(rcvNxt: number, seq: number, src: Uint8Array, off: number, n: number): void {
    let s = seq >>> 0;
    const e = (seq + n) >>> 0;
    for (let i = 0; i < this.oooCount && seqDiff(e, s) > 0; i++) {
      const rs = this.oooStart[i]!, re = this.oooEnd[i]!;
      if (seqDiff(re, s) <= 0) continue;
      if (seqDiff(rs, e) >= 0) break;
      if (seqDiff(rs, s) > 0) this.copyIn(this.length + seqDiff(s, rcvNxt), src, off + seqDiff(s, seq), seqDiff(rs, s));
      s = re;
    }
    if (seqDiff(e, s) > 0) this.copyIn(this.length + seqDiff(s, rcvNxt), src, off + seqDiff(s, seq), seqDiff(e, s));
  }

  /** Inserts/merges [s, e) into the sorted range list; false when the list is full. */
  private addRange(s: number, e: number): boolean {
    if (this.oooStart.length === 0) {
      this.oooStart = new Uint32Array(this.maxRanges);
      this.oooEnd = new Uint32Array(this.maxRanges);
      this.oooStamp = new Uint32Array(this.maxRanges);
    }
    const st = this.oooStart, en = this.oooEnd, stamp = ++this.stamp;
    let i = 0;
    while (i < this.oooCount && seqDiff(en[i]!, s) < 0) i++;
    // Ranges i.. that overlap or touch [s, e) merge into one.
    let j = i;
    while (j < this.oooCount && seqDiff(st[j]!, e) <= 0) {
      if (seqDiff(st[j]!, s) < 0) s = st[j]!;
      if (seqDiff(en[j]!, e) > 0) e = en[j]!;
      j++;
    }
    const merged = j - i;
    if (merged === 0) {
      if (this.oooCount === this.maxRanges) return false;
      st.copyWithin(i + 1, i, this.oooCount); en.copyWithin(i + 1, i, this.oooCount); this.oooStamp.copyWithin(i + 1, i, this.oooCount);
      this.oooCount++;
    } else if (merged > 1) {
      st.copyWithin(i + 1, j, this.oooCount); en.copyWithin(i + 1, j, this.oooCount); this.oooStamp.copyWithin(i + 1, j, this.oooCount);
      this.oooCount -= merged - 1;
    }
    st[i] = s; en[i] = e; this.oooStamp[i] = stamp;
    return true;
  }

  private removeFront(k: number): void {
    this.oooStart.copyWithin(0, k, this.oooCount);
    this.oooEnd.copyWithin(0, k, this.oooCount);
    this.oooStamp.copyWithin(0, k, this.oooCount);
    this.oooCount -= k;
  }
}
