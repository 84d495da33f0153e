// pcap on the Node side: a buffered file writer, a wrapper that records every frame any
// driver receives and transmits, and the "pcap" driver that replays a capture file as
// received frames and writes what the stack transmits to another file (offline testing).
import { openSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { BufferPool, Csum, type PacketBuffer } from '../base/pktbuf.js';
import type { Clock } from '../base/time.js';
import { NO_OFFLOADS, type Offloads } from '../base/device.js';
import { parseMac } from '../wire/addr.js';
import { partialChecksum } from '../base/offload.js';
import { WireError } from '../wire/errors.js';
import {
  PcapReader, writePcapGlobalHeader, writePcapRecordHeader,
  LINKTYPE_ETHERNET, PCAP_SNAPLEN, PCAP_GLOBAL_HEADER_LEN, PCAP_RECORD_HEADER_LEN,
} from '../wire/pcap.js';
import { emptyDriverStats, type Driver, type DriverStats } from './types.js';

export interface PcapWriterOptions {
  snaplen?: number;
  linktype?: number;
  /** Bytes buffered before a write to the file (default 256 KiB). */
  bufferSize?: number;
  /** Added to every timestamp: a virtual clock starting at 0 then reads as this epoch time (ms). */
  timeOffsetMs?: number;
}

/**
 * Writes a pcap file. `target` is a path (created/truncated) or a function that receives each
 * chunk of file bytes (for in-memory captures). Records are buffered; flush() or close() pushes
 * them out, and a full buffer is written at once.
 */
export class PcapWriter {
  readonly snaplen: number;
  readonly timeOffsetMs: number;
  private fd = -1;
  private readonly sink: ((chunk: Uint8Array) => void) | null;
  private buf: Uint8Array;
  private used = 0;
  private closed = false;
  /** Records written so far. */
  records = 0;

  constructor(target: string | ((chunk: Uint8Array) => void), opts: PcapWriterOptions = {}) {
    this.snaplen = opts.snaplen ?? PCAP_SNAPLEN;
    this.timeOffsetMs = opts.timeOffsetMs ?? 0;
    this.buf = new Uint8Array(Math.max(opts.bufferSize ?? 256 * 1024, PCAP_GLOBAL_HEADER_LEN + PCAP_RECORD_HEADER_LEN));
    if (typeof target === 'string') { this.fd = openSync(target, 'w'); this.sink = null; } else this.sink = target;
    this.used = writePcapGlobalHeader(this.buf, 0, this.snaplen, opts.linktype ?? LINKTYPE_ETHERNET);
  }

  /** Records `len` bytes of `data` from `off`, seen at `timestampMs`. */
  write(data: Uint8Array, off: number, len: number, timestampMs: number): void {
    if (this.closed) return;
    const caplen = Math.min(len, this.snaplen);
    const need = PCAP_RECORD_HEADER_LEN + caplen;
    if (this.used + need > this.buf.length) {
      this.flush();
      if (need > this.buf.length) this.buf = new Uint8Array(need);
    }
    this.used += writePcapRecordHeader(this.buf, this.used, timestampMs + this.timeOffsetMs, caplen, len);
    this.buf.set(data.subarray(off, off + caplen), this.used);
    this.used += caplen;
    this.records++;
  }

  /** Records a frame (buf.start..end). */
  writeBuffer(b: PacketBuffer, timestampMs: number): void {
    this.write(b.data, b.start, b.end - b.start, timestampMs);
  }

  flush(): void {
    if (this.used === 0) return;
    if (this.sink) this.sink(this.buf.slice(0, this.used));
    else if (this.fd >= 0) {
      let off = 0;
      while (off < this.used) off += writeSync(this.fd, this.buf, off, this.used - off);
    }
    this.used = 0;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.fd >= 0) { closeSync(this.fd); this.fd = -1; }
  }
}

export interface CaptureOptions {
  /** Record received frames (default true). */
  rx?: boolean;
  /** Record transmitted frames (default true). */
  tx?: boolean;
}

/**
 * A Driver that records every frame `inner` receives (as handed to the caller) and every frame
 * transmitted through it (as handed to `inner`). A transmitted frame whose L4 checksum the
 * device would complete (Csum.Partial) is recorded with the checksum filled in, as it will
 * appear on the wire; the frame itself is passed on untouched.
 */
export class CaptureDriver implements Driver {
  private readonly rx: boolean;
  private readonly tx: boolean;
  private scratch = new Uint8Array(2048);

  constructor(readonly inner: Driver, readonly writer: PcapWriter, private readonly clock: Clock, opts: CaptureOptions = {}) {
    this.rx = opts.rx ?? true;
    this.tx = opts.tx ?? true;
  }

  get name(): string { return this.inner.name; }
  get mac(): Uint8Array { return this.inner.mac; }
  get mtu(): number { return this.inner.mtu; }
  get offloads(): Offloads { return this.inner.offloads; }
  linkUp(): boolean { return this.inner.linkUp?.() ?? true; }
  get pool(): BufferPool { return this.inner.pool; }

  transmit(buf: PacketBuffer): void {
    if (this.tx) this.record(buf);
    this.inner.transmit(buf);
  }

  rxBurst(out: PacketBuffer[], max: number): number {
    const n = this.inner.rxBurst(out, max);
    if (this.rx && n > 0) {
      const now = this.clock.now();
      for (let i = 0; i < n; i++) this.writer.writeBuffer(out[i]!, now);
    }
    return n;
  }

  flush(): void { this.inner.flush(); }
  onReadable(cb: (() => void) | null): void { this.inner.onReadable(cb); }
  /** The inner driver's; one without the check is always worth a look (the loop spins by iterations). */
  rxReady(): boolean { return this.inner.rxReady?.() ?? true; }
  ref(): void { this.inner.ref?.(); }
  unref(): void { this.inner.unref?.(); }
  stats(): DriverStats { return this.inner.stats(); }

  close(): void {
    this.inner.close();
    this.writer.flush();
  }

  private record(buf: PacketBuffer): void {
    const now = this.clock.now();
    const len = buf.end - buf.start;
    const cs = buf.csumStart;
    const at = cs + buf.csumOffset;
    if (buf.csum !== Csum.Partial || cs < buf.start || at + 2 > buf.end) { this.writer.writeBuffer(buf, now); return; }
    if (this.scratch.length < len) this.scratch = new Uint8Array(len);
    const s = this.scratch;
    s.set(buf.data.subarray(buf.start, buf.end), 0);
    // What the device puts on the wire, computed on the copy (the buffer itself is the device's).
    const c = partialChecksum(buf, s, buf.start);
    s[at - buf.start] = c >>> 8;
    s[at - buf.start + 1] = c & 0xff;
    this.writer.write(s, 0, len, now);
  }
}

/** Records every frame `driver` receives and transmits into `writer`, timestamped by `clock`. */
export function capture(driver: Driver, writer: PcapWriter, clock: Clock, opts?: CaptureOptions): CaptureDriver {
  return new CaptureDriver(driver, writer, clock, opts);
}

export interface PcapDriverOptions {
  /** Capture to replay as received frames: a path or the file's bytes. */
  input?: string | Uint8Array;
  /** Where transmitted frames go: a path or a writer. */
  output?: string | PcapWriter;
  /**
   * With a clock, frames are released at their recorded spacing: a record `d` ms after the
   * first becomes receivable once clock.now() >= (time of the first rxBurst) + d.
   * Without one, every frame is receivable at once.
   */
  clock?: Clock;
  name?: string;
  mac?: string | Uint8Array;
  mtu?: number;
  pool?: BufferPool;
}

/** The pcap-file driver: replays a capture as received traffic and records what is sent. */
export class PcapDriver implements Driver {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly offloads: Offloads = NO_OFFLOADS;
  readonly pool: BufferPool;
  private inErr: WireError = WireError.Ok;
  private readonly input: Uint8Array | null;
  private readonly reader = new PcapReader();
  private readonly writer: PcapWriter | null;
  private readonly ownsWriter: boolean;
  private readonly clock: Clock | null;
  private readonly counters = emptyDriverStats();
  private readonly pending: PacketBuffer[] = [];
  private firstTs = -1;
  private startAt = -1;
  private haveRecord = false;
  private cb: (() => void) | null = null;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(opts: PcapDriverOptions) {
    this.name = opts.name ?? 'pcap0';
    const mac = typeof opts.mac === 'string' ? parseMac(opts.mac) : opts.mac ?? new Uint8Array([0x02, 0x74, 0x73, 0x70, 0x00, 0x01]);
    if (!mac || mac.length !== 6) throw new Error(`PcapDriver: bad MAC address "${String(opts.mac)}"`);
    this.mac = mac;
    this.mtu = opts.mtu ?? 1500;
    this.pool = opts.pool ?? new BufferPool();
    this.clock = opts.clock ?? null;
    this.input = opts.input === undefined ? null : typeof opts.input === 'string' ? readFileSync(opts.input) : opts.input;
    if (this.input) {
      const e = this.reader.wrap(this.input);
      if (e !== WireError.Ok) this.inErr = e;
      else this.haveRecord = this.advance();
    }
    if (opts.output instanceof PcapWriter) { this.writer = opts.output; this.ownsWriter = false; }
    else { this.writer = opts.output ? new PcapWriter(opts.output) : null; this.ownsWriter = this.writer !== null; }
  }

  /** Why reading the input stopped early (Ok when it was read to its end, or is still being read). */
  get inputError(): WireError { return this.inErr; }

  /** Frames not yet handed out by rxBurst. */
  get remaining(): boolean { return this.haveRecord; }

  transmit(buf: PacketBuffer): void {
    if (this.closed) { this.counters.txDropped++; buf.release(); return; }
    this.counters.txPackets++;
    this.counters.txBytes += buf.end - buf.start;
    this.pending.push(buf);
  }

  flush(): void {
    const now = this.clock ? this.clock.now() : Date.now();
    for (let i = 0; i < this.pending.length; i++) {
      const b = this.pending[i]!;
      this.writer?.writeBuffer(b, now);
      b.release();
    }
    this.pending.length = 0;
    this.writer?.flush();
  }

  rxBurst(out: PacketBuffer[], max: number): number {
    if (this.closed) return 0;
    let n = 0;
    const r = this.reader;
    if (this.clock && this.startAt < 0 && this.haveRecord) this.startAt = this.clock.now();
    while (n < max && this.haveRecord) {
      if (this.clock && this.startAt + (r.timestampMs - this.firstTs) > this.clock.now()) break;
      const len = r.capturedLen;
      const b = this.pool.alloc(len + this.pool.headroom);
      b.data.set(this.input!.subarray(r.dataOffset, r.dataOffset + len), b.start);
      b.end = b.start + len;
      this.counters.rxPackets++;
      this.counters.rxBytes += len;
      out[n++] = b;
      this.haveRecord = this.advance();
    }
    this.armWake();
    return n;
  }

  /** When the next replayed frame becomes receivable (Infinity when none; 0 when unpaced). */
  nextEventTime(): number {
    if (!this.haveRecord) return Infinity;
    if (!this.clock) return 0;
    if (this.startAt < 0) return this.clock.now();
    return this.startAt + (this.reader.timestampMs - this.firstTs);
  }

  onReadable(cb: (() => void) | null): void {
    this.cb = cb;
    if (cb) this.armWake(); else this.cancelWake();
  }

  stats(): DriverStats { return { ...this.counters }; }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.cancelWake();
    if (this.ownsWriter) this.writer?.close();
  }

  private advance(): boolean {
    const r = this.reader;
    while (r.next()) {
      // Only Ethernet frames mean anything to the stack; skip anything shorter than a header.
      if (r.capturedLen < 14) { this.counters.rxDropped++; continue; }
      if (this.firstTs < 0) this.firstTs = r.timestampMs;
      return true;
    }
    if (r.error !== WireError.Ok) this.inErr = r.error;
    return false;
  }

  private armWake(): void {
    if (!this.cb || !this.haveRecord || this.immediate || this.timer) return;
    const t = this.nextEventTime();
    const now = this.clock ? this.clock.now() : 0;
    if (t <= now) this.immediate = setImmediate(this.fire);
    else this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(t - now)));
  }

  private cancelWake(): void {
    if (this.immediate) { clearImmediate(this.immediate); this.immediate = null; }
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
  }

  private readonly fire = (): void => {
    this.immediate = null;
    this.timer = null;
    // Edge-triggered: the next wake-up is armed by the rxBurst this callback makes.
    this.cb?.();
  };
}
