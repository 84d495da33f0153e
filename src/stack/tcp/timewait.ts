// Compact TIME_WAIT (the idea of Linux's tcp_timewait_sock and FreeBSD's tcptw): when a
// connection enters TIME_WAIT its full TCB (buffers, timers, congestion control, RTT estimator)
// is freed and only what TIME_WAIT needs stays, as one slot in typed arrays: 4-tuple, SND.NXT,
// RCV.NXT, the window, TS.Recent and its age, the TSval offset, the expiry time. Slots are
// chained in their own 4-tuple hash table and in one list ordered by expiry, which a single wheel
// timer drains, and are recycled through a free list. A record is therefore no object at all:
// nothing for the garbage collector to trace or copy however many connections wait (numbers
// above 2^31, as sequence numbers are, would each cost a heap box in an object field), expiry is
// O(1) per record, and a steady connect/close load allocates nothing here.
//
// A TCB that entered TIME_WAIT keeps (slot, generation); the generation changes when the slot is
// freed, so its socket reports TIME_WAIT, then CLOSED. The table never refers to TCBs.
import { TcpFlag, type TcpOptionsSpec } from '../../wire/tcp.js';
import { Timer } from '../../base/time.js';
import { listenerInput } from './listen.js';
import { sendRaw } from './output.js';
import { seqGe, seqGt, seqInRange, seqLe, seqLt } from './seq.js';
import { TCP_STATE_NAMES, TcpState, type Tcb } from './tcb.js';
import type { Segment, Tcp } from './tcp.js';
import { addr6Equals, copyAddr6 } from '../ip/addr6.js';
import { AF_INET, AF_INET6, Ends } from './ends.js';

/** RFC 7323 §5.5: TS.Recent older than 24 days is invalid. */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;
const NIL = -1;
/** flags bit of an IPv6 entry. */
const V6 = 4;

/** A snapshot of one TIME_WAIT entry (for tools and tests; allocated on request). */
export interface TimeWaitInfo {
  readonly laddr: number;
  readonly lport: number;
  readonly raddr: number;
  readonly rport: number;
  /** 4 or 6; an IPv6 entry's addresses are laddr6/raddr6 (laddr = raddr = 0). */
  readonly family: number;
  readonly laddr6?: Uint8Array;
  readonly raddr6?: Uint8Array;
  readonly state: TcpState;
  readonly stateName: string;
  readonly sndNxt: number;
  readonly rcvNxt: number;
  /** Window field our ACKs carry (scaled). */
  readonly window: number;
  readonly tsOk: boolean;
  readonly tsRecent: number;
  /** When 2*MSL runs out (ms, engine clock). */
  readonly expires: number;
}

/** The TIME_WAIT entries of one Tcp. Slots are indices into the arrays below. */
export class TimeWaitTable {
  private cap = 0;
  private laddr = new Uint32Array(0);
  private raddr = new Uint32Array(0);
  /** lport << 16 | rport */
  private ports = new Uint32Array(0);
  private sndNxt = new Uint32Array(0);
  private rcvNxt = new Uint32Array(0);
  /** Receive window (bytes) for the acceptability test: the right edge last advertised. */
  private rcvWnd = new Uint32Array(0);
  /** The window field our ACKs carry (already scaled). */
  private wndField = new Uint32Array(0);
  /** Largest window the peer offered (RFC 5961 §5.2 ACK acceptability). */
  private maxSndWnd = new Uint32Array(0);
  private tsRecent = new Uint32Array(0);
  /** Our TSval offset (RFC 7323 §5.4), so our ACKs' TSvals keep rising. */
  private tsOffset = new Uint32Array(0);
  /** Bumped each time the slot is freed. */
  private gens = new Uint32Array(0);
  /** 1 live without timestamps, 3 live with timestamps, 0 free; | V6 for an IPv6 entry. */
  private flags = new Uint8Array(0);
  /** IPv6 entries: local then remote address, 32 bytes per slot. */
  private addr6 = new Uint8Array(0);
  private readonly ends = new Ends();
  private tsRecentAge = new Float64Array(0);
  private expiry = new Float64Array(0);
  private hashNext = new Int32Array(0);
  /** Expiry list (the free list reuses `next`). */
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  private buckets = new Int32Array(256).fill(NIL);
  private mask = 255;
  private n = 0;
  private head = NIL;
  private tail = NIL;
  private free = NIL;
  private readonly timer: Timer;

  constructor(private readonly tcp: Tcp) {
    const table = this;
    this.timer = new Timer(function (this: Timer, now: number) { table.expire(now); });
  }

  get count(): number { return this.n; }

  /** The slot for a 4-tuple whose connection hash is `h`, or -1. */
  lookup(h: number, laddr: number, lport: number, raddr: number, rport: number): number {
    const ports = ((lport << 16) | rport) >>> 0;
    let i = this.buckets[h & this.mask]!;
    while (i !== NIL && (this.ports[i] !== ports || this.raddr[i] !== raddr >>> 0 || this.laddr[i] !== laddr >>> 0)) i = this.hashNext[i]!;
    return i;
  }

  /** The slot for an IPv6 4-tuple whose connection hash is `h`, or -1. */
  lookup6(h: number, l6: Uint8Array, lport: number, r6: Uint8Array, rport: number): number {
    const ports = ((lport << 16) | rport) >>> 0;
    let i = this.buckets[h & this.mask]!;
    while (i !== NIL && (this.ports[i] !== ports || (this.flags[i]! & V6) === 0
      || !addr6Equals(this.addr6, 32 * i, l6, 0) || !addr6Equals(this.addr6, 32 * i + 16, r6, 0))) i = this.hashNext[i]!;
    return i;
  }

  /** Records `tcb` (just freed) as in TIME_WAIT until `expires`; returns its slot. */
  add(tcb: Tcb, h: number, expires: number, wndField: number, rcvWnd: number): number {
    if (this.free === NIL) this.enlarge();
    const i = this.free;
    this.free = this.next[i]!;
    this.laddr[i] = tcb.laddr; this.raddr[i] = tcb.raddr; this.ports[i] = (tcb.lport << 16) | tcb.rport;
    this.sndNxt[i] = tcb.sndMax; this.rcvNxt[i] = tcb.rcvNxt;
    this.rcvWnd[i] = rcvWnd; this.wndField[i] = wndField; this.maxSndWnd[i] = tcb.maxSndWnd;
    this.tsRecent[i] = tcb.tsRecent; this.tsRecentAge[i] = tcb.tsRecentAge; this.tsOffset[i] = tcb.tsOffset;
    this.flags[i] = tcb.tsOk ? 3 : 1;
    if (tcb.family === AF_INET6) {
      this.flags[i]! |= V6;
      copyAddr6(this.addr6, 32 * i, tcb.laddr6, 0);
      copyAddr6(this.addr6, 32 * i + 16, tcb.raddr6, 0);
    }
    if (this.n >= this.buckets.length) this.rehash(this.buckets.length * 2);
    const b = h & this.mask;
    this.hashNext[i] = this.buckets[b]!;
    this.buckets[b] = i;
    this.n++;
    this.schedule(i, expires);
    return i;
  }

  /** True when slot `i` still holds the entry of generation `gen`. */
  isLive(i: number, gen: number): boolean { return i >= 0 && i < this.cap && this.flags[i] !== 0 && this.gens[i] === gen; }
  gen(i: number): number { return this.gens[i]!; }
  localPort(i: number): number { return this.ports[i]! >>> 16; }
  sndNxtOf(i: number): number { return this.sndNxt[i]!; }
  tsOffsetOf(i: number): number { return this.tsOffset[i]!; }
  /** RFC 6191 reuse needs timestamps on the old incarnation, and (like Linux) a quiet second. */
  reusable(i: number, now: number): boolean { return (this.flags[i]! & 3) === 3 && now - this.tsRecentAge[i]! >= 1000; }

  /** Restarts the 2*MSL wait (RFC 9293 §3.10.7.4). */
  restart(i: number, expires: number): void {
    this.unlinkList(i);
    this.schedule(i, expires);
  }

  /** Forgets an entry (expired, reset, reopened or taken over). */
  remove(i: number): void {
    if (this.flags[i] === 0) return;
    const b = this.hashOf(i) & this.mask;
    let p = this.buckets[b]!;
    if (p === i) this.buckets[b] = this.hashNext[i]!;
    else {
      while (p !== NIL && this.hashNext[p] !== i) p = this.hashNext[p]!;
      if (p !== NIL) this.hashNext[p] = this.hashNext[i]!;
    }
    this.unlinkList(i);
    this.n--;
    this.flags[i] = 0;
    this.gens[i] = (this.gens[i]! + 1) >>> 0;
    this.tcp.timeWaitGone(this.ports[i]! >>> 16);
    this.next[i] = this.free;
    this.free = i;
    if (this.head === NIL && this.timer.armed) this.tcp.host.wheel.disarm(this.timer);
  }

  /** Every entry, oldest first (allocates: tools and tests). */
  entries(): TimeWaitInfo[] {
    const out: TimeWaitInfo[] = [];
    for (let i = this.head; i !== NIL; i = this.next[i]!) {
      const v6 = (this.flags[i]! & V6) !== 0;
      out.push({
        laddr: this.laddr[i]!, lport: this.ports[i]! >>> 16, raddr: this.raddr[i]!, rport: this.ports[i]! & 0xffff,
        family: v6 ? AF_INET6 : AF_INET,
        ...(v6 && { laddr6: this.addr6.slice(32 * i, 32 * i + 16), raddr6: this.addr6.slice(32 * i + 16, 32 * i + 32) }),
        state: TcpState.TIME_WAIT, stateName: TCP_STATE_NAMES[TcpState.TIME_WAIT],
        sndNxt: this.sndNxt[i]!, rcvNxt: this.rcvNxt[i]!, window: this.wndField[i]!, tsOk: (this.flags[i]! & 3) === 3,
        tsRecent: this.tsRecent[i]!, expires: this.expiry[i]!,
      });
    }
    return out;
  }

  /** Drops every entry (stack shutdown). */
  clear(): void {
    while (this.head !== NIL) this.remove(this.head);
  }

  // ---- Answering segments ----

  /**
   * SEGMENT ARRIVES for a connection in TIME_WAIT (RFC 9293 §3.10.7.4 with RFC 5961, RFC 7323
   * PAWS and RFC 6191), entry `i`.
   */
  input(i: number, seg: Segment): void {
    const tcp = this.tcp;
    const now = tcp.host.clock.now();
    const flags = seg.flags;
    const opts = seg.opts;
    const tsOk = (this.flags[i]! & 3) === 3;
    const rcvNxt = this.rcvNxt[i]!;

    // RFC 1122 §4.2.2.13 / RFC 6191: a new SYN may reopen the connection when it cannot be an
    // old duplicate: its timestamp is newer than TS.Recent (RFC 6191 §2), or, without
    // timestamps, its sequence number is beyond the old connection's. The new ISN is chosen
    // above what the old incarnation used ("assigns its initial sequence number for the new
    // connection to be larger than the largest sequence number it used on the previous
    // connection incarnation").
    if ((flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN) {
      // RFC 6191 §2 also honours an equal timestamp when the sequence number is higher (a
      // client reusing the port within one timestamp tick, as Linux does).
      const tsNow = tsOk && opts.timestamps;
      const newer = tsNow
        ? seqGt(opts.tsVal, this.tsRecent[i]!) || (opts.tsVal === this.tsRecent[i] && seqGt(seg.seq, rcvNxt))
        : seqGt(seg.seq, rcvNxt);
      const l = newer ? tcp.findListenerFor(seg) : null;
      if (l !== null) {
        const isnFloor = (this.sndNxt[i]! + 65537) >>> 0;
        this.remove(i);
        listenerInput(tcp, l, seg, isnFloor);
        return;
      }
    }

    // RFC 7323 §5.3 PAWS: an old timestamp makes the segment unacceptable: ACK and drop.
    if (tsOk && opts.timestamps && !(flags & TcpFlag.RST) && seqLt(opts.tsVal, this.tsRecent[i]!)) {
      if (now - this.tsRecentAge[i]! > PAWS_IDLE_MS) {
        this.tsRecent[i] = opts.tsVal;
      } else {
        tcp.counters.rcvPawsDropped++;
        this.sendAck(i, now);
        return;
      }
    }

    // The acceptability test (§3.10.7.4, "first check sequence number").
    const seq = seg.seq;
    const segLen = seg.len;
    const wnd = this.rcvWnd[i]!;
    let acceptable: boolean;
    if (segLen === 0) acceptable = wnd === 0 ? seq === rcvNxt : seqInRange(seq, rcvNxt, (rcvNxt + wnd) >>> 0);
    else if (wnd === 0) acceptable = false;
    else {
      const end = (rcvNxt + wnd) >>> 0;
      acceptable = seqInRange(seq, rcvNxt, end) || seqInRange((seq + segLen - 1) >>> 0, rcvNxt, end);
    }
    const fin = (flags & TcpFlag.FIN) !== 0;
    if (!acceptable) {
      // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply
      // (unless the RST bit is set, if so drop the segment and return)". A retransmitted FIN
      // lands here (it sits just below RCV.NXT): "The only thing that can arrive in this state
      // is a retransmission of the remote FIN. Acknowledge it, and restart the 2 MSL timeout."
      tcp.counters.rcvOutOfWindow++;
      if (flags & TcpFlag.RST) return;
      if (fin) this.restart(i, now + 2 * tcp.tun.msl.value);
      this.sendAck(i, now);
      return;
    }

    // RST (§3.10.7.4 "second check the RST bit", RFC 5961 §3.2). Linux's choice (its default,
    // net.ipv4.tcp_rfc1337 = 0): a RST at exactly RCV.NXT ends TIME_WAIT ("enter the CLOSED
    // state, delete the TCB, and return"); FreeBSD ignores RSTs here (RFC 1337). Any other RST
    // in the window draws a (rate-limited) challenge ACK.
    if (flags & TcpFlag.RST) {
      if (seq !== rcvNxt) { this.challengeAck(i, now); return; }
      this.remove(i);
      return;
    }

    // RFC 7323 §4.3: "If SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent then SEG.TSval is
    // copied to TS.Recent" (Last.ACK.sent is RCV.NXT here).
    if (tsOk && opts.timestamps && seqGe(opts.tsVal, this.tsRecent[i]!) && seqLe(seq, rcvNxt)) {
      this.tsRecent[i] = opts.tsVal; this.tsRecentAge[i] = now;
    }

    // RFC 5961 §4.2: a SYN "irrespective of the sequence number" gets a challenge ACK.
    if (flags & TcpFlag.SYN) { this.challengeAck(i, now); return; }
    // "if the ACK bit is off, drop the segment and return"
    if (!(flags & TcpFlag.ACK)) return;
    // RFC 5961 §5.2: an ACK of data never sent, or too far below SND.UNA, draws a challenge ACK.
    const ack = seg.ack;
    const sndNxt = this.sndNxt[i]!;
    if (seqGt(ack, sndNxt)) { tcp.counters.rcvAckTooMuch++; this.challengeAck(i, now); return; }
    if (seqLt(ack, (sndNxt - Math.max(this.maxSndWnd[i]!, 1)) >>> 0)) { this.challengeAck(i, now); return; }
    // A FIN or data in the window is acknowledged (the data is not taken: the peer has closed);
    // a FIN also restarts the 2*MSL wait.
    if (fin) this.restart(i, now + 2 * tcp.tun.msl.value);
    if (fin || seg.dataLen > 0) this.sendAck(i, now);
  }

  /** <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, with a timestamp when the connection used them. */
  private sendAck(i: number, now: number): void {
    let spec: TcpOptionsSpec | null = null;
    if ((this.flags[i]! & 3) === 3) {
      spec = twSpec;
      spec.timestamps = true;
      spec.tsVal = (Math.floor(now) + this.tsOffset[i]!) >>> 0;
      spec.tsEcr = this.tsRecent[i]!;
    }
    const p = this.ports[i]!;
    const e = this.ends;
    e.family = AF_INET;
    if ((this.flags[i]! & V6) !== 0) {
      e.family = AF_INET6;
      copyAddr6(e.laddr6, 0, this.addr6, 32 * i);
      copyAddr6(e.raddr6, 0, this.addr6, 32 * i + 16);
    }
    sendRaw(this.tcp, this.laddr[i]!, p >>> 16, this.raddr[i]!, p & 0xffff, this.sndNxt[i]!, this.rcvNxt[i]!, TcpFlag.ACK,
      this.wndField[i]!, spec, null, 0, 0, 0, 0, e);
  }

  private challengeAck(i: number, now: number): void {
    if (!this.tcp.challengeAllowed(now)) return;
    this.tcp.counters.sndChallengeAcks++;
    this.sendAck(i, now);
  }

  // ---- Bookkeeping ----

  private hashOf(i: number): number {
    const p = this.ports[i]!;
    if ((this.flags[i]! & V6) !== 0) return this.tcp.demux.hash6(this.addr6, 32 * i, p >>> 16, this.addr6, 32 * i + 16, p & 0xffff);
    return this.tcp.hash(this.laddr[i]!, p >>> 16, this.raddr[i]!, p & 0xffff);
  }

  /** The timer: frees every entry whose 2*MSL is over, then waits for the next one. */
  private expire(now: number): void {
    while (this.head !== NIL && this.expiry[this.head]! <= now) this.remove(this.head);
    if (this.head !== NIL) this.tcp.host.wheel.arm(this.timer, this.expiry[this.head]!);
  }

  /** Links slot i into the expiry list (at the tail unless net.inet.tcp.tun.msl.value was shortened). */
  private schedule(i: number, expires: number): void {
    this.expiry[i] = expires;
    let p = this.tail;
    while (p !== NIL && this.expiry[p]! > expires) p = this.prev[p]!;
    const nx = p === NIL ? this.head : this.next[p]!;
    this.prev[i] = p;
    this.next[i] = nx;
    if (nx !== NIL) this.prev[nx] = i; else this.tail = i;
    if (p === NIL) this.head = i; else this.next[p] = i;
    const first = this.expiry[this.head]!;
    if (!this.timer.armed || first < this.timer.deadline) this.tcp.host.wheel.arm(this.timer, first);
  }

  private unlinkList(i: number): void {
    const p = this.prev[i]!, nx = this.next[i]!;
    if (p !== NIL) this.next[p] = nx; else this.head = nx;
    if (nx !== NIL) this.prev[nx] = p; else this.tail = p;
    this.prev[i] = this.next[i] = NIL;
  }

  /** Doubles the slot arrays (amortised O(1) per entry) and threads the new slots on the free list. */
  private enlarge(): void {
    const old = this.cap;
    const cap = old === 0 ? 256 : old * 2;
    const u32 = (a: Uint32Array) => { const b = new Uint32Array(cap); b.set(a); return b; };
    const i32 = (a: Int32Array) => { const b = new Int32Array(cap); b.set(a); return b; };
    const f64 = (a: Float64Array) => { const b = new Float64Array(cap); b.set(a); return b; };
    this.laddr = u32(this.laddr); this.raddr = u32(this.raddr); this.ports = u32(this.ports);
    this.sndNxt = u32(this.sndNxt); this.rcvNxt = u32(this.rcvNxt); this.rcvWnd = u32(this.rcvWnd);
    this.wndField = u32(this.wndField); this.maxSndWnd = u32(this.maxSndWnd); this.tsRecent = u32(this.tsRecent);
    this.tsOffset = u32(this.tsOffset); this.gens = u32(this.gens);
    const fl = new Uint8Array(cap); fl.set(this.flags); this.flags = fl;
    const a6 = new Uint8Array(32 * cap); a6.set(this.addr6); this.addr6 = a6;
    this.tsRecentAge = f64(this.tsRecentAge); this.expiry = f64(this.expiry);
    this.hashNext = i32(this.hashNext); this.prev = i32(this.prev); this.next = i32(this.next);
    for (let i = cap - 1; i >= old; i--) { this.next[i] = this.free; this.free = i; }
    this.cap = cap;
  }

  /** Rebuilds the hash chains over `size` buckets (load stays at most 1). */
  private rehash(size: number): void {
    this.buckets = new Int32Array(size).fill(NIL);
    this.mask = size - 1;
    for (let i = this.head; i !== NIL; i = this.next[i]!) {
      const b = this.hashOf(i) & this.mask;
      this.hashNext[i] = this.buckets[b]!;
      this.buckets[b] = i;
    }
  }
}

const twSpec: TcpOptionsSpec = {
  mss: -1, wscale: -1, sackPermitted: false, timestamps: false, tsVal: 0, tsEcr: 0, sackCount: 0, sackBlocks: new Uint32Array(8),
};
