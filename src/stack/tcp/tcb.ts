// The transmission control block (RFC 9293 §3.3.1), with the RFC's names for the variables.
import { Timer, type TimerWheel } from '../../base/time.js';
import { NO_ADDR6, Path } from '../ip/path.js';
import { AF_INET } from './ends.js';
import { RecvBuffer, SendBuffer, type RingStore } from './buffers.js';
import type { CongestionControl } from './congestion/types.js';
import { RttEstimator } from './rtt.js';
import type { Rack } from './rack.js';
import { SackScoreboard } from './sack.js';
import { seqDiff } from './seq.js';
import type { TcbStats } from './stats.js';
import type { TcpSocket } from './socket.js';
import type { Tcp } from './tcp.js';
import type { TcpListener } from './listen.js';
import type { TfoState } from './fastopen.js';

export const TcpState = {
  CLOSED: 0,
  LISTEN: 1,
  SYN_SENT: 2,
  SYN_RECEIVED: 3,
  ESTABLISHED: 4,
  FIN_WAIT_1: 5,
  FIN_WAIT_2: 6,
  CLOSE_WAIT: 7,
  CLOSING: 8,
  LAST_ACK: 9,
  TIME_WAIT: 10,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

export const TCP_STATE_NAMES = ['CLOSED', 'LISTEN', 'SYN_SENT', 'SYN_RECEIVED', 'ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2',
  'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT'] as const;

export { AF_INET, AF_INET6 } from './ends.js';

/**
 * ECN state bits (RFC 3168), Linux's ecn_flags: Ok — negotiated (on an active open, from the
 * ECN-setup SYN until the SYN-ACK says otherwise); QueueCwr — the next new data segment carries
 * CWR; DemandCwr — our segments carry ECE until the peer's CWR; Seen — an ECT or CE segment arrived.
 */
export const EcnFlag = { Ok: 1, QueueCwr: 2, DemandCwr: 4, Seen: 8 } as const;

/** What the keep timer is currently timing (it is shared: keepalive, FIN_WAIT_2; TIME_WAIT has its own table). */
export const KeepMode = { None: 0, Keepalive: 1, FinWait2: 2, TimeWait: 3 } as const;

export class Tcb {
  /** @internal The arena chunk holding this TCB's numeric and boolean fields (see TcbArena). */
  _c: TcbChunk;
  /** @internal This TCB's row in `_c`. */
  _i: number;
  /** @internal The rarely set references (TcbExtras), once one is set. */
  _x: TcbExtras | null = null;
  /** Where this connection's segments go: resolved at SYN sent/received, revalidated per use. */
  readonly path = new Path();
  /** Written only by setState() (lifecycle.ts). */
  declare readonly state: TcpState;
  /** AF_INET (4): laddr/raddr are the addresses; AF_INET6 (6): laddr6/raddr6 are, laddr = raddr = 0 (ends.ts). */
  declare family: number;
  declare laddr: number;
  declare lport: number;
  declare raddr: number;
  declare rport: number;
  laddr6: Uint8Array = NO_ADDR6;
  raddr6: Uint8Array = NO_ADDR6;
  /** An IPv4 connection accepted by a dual-stack (IPv6 wildcard) listener: the API shows ::ffff:a.b.c.d. */
  declare v4mapped: boolean;
  /** Next TCB in the same 4-tuple hash chain. */
  hashNext: Tcb | null = null;
  declare inTable: boolean;

  // Send sequence space (RFC 9293 §3.3.1, figure 4), plus SND.MAX (highest sequence sent).
  declare iss: number;
  declare sndUna: number;
  declare sndNxt: number;
  declare sndMax: number;
  /** Send window in bytes (scaled). */
  declare sndWnd: number;
  declare sndWl1: number;
  declare sndWl2: number;
  /** Largest window the peer has offered: sender SWS avoidance (RFC 9293 §3.8.6.2.1). */
  declare maxSndWnd: number;
  /** Sequence number of the first byte in the send buffer. */
  declare sndBase: number;

  // Receive sequence space.
  declare irs: number;
  declare rcvNxt: number;
  /** Right edge of the window last advertised (RCV.NXT + RCV.WND when sent). */
  declare rcvAdv: number;
  /** Last ACK number sent (RFC 7323 §4.3 Last.ACK.sent). */
  declare lastAckSent: number;
  /** Sequence number of a FIN that arrived out of order, or -1. */
  declare rcvFinSeq: number;

  // Options negotiated.
  /** Effective send MSS (peer's MSS clamped to the route), without options. */
  declare mss: number;
  /** MSS we advertised. */
  declare rcvMss: number;
  declare sndWscale: number;
  declare rcvWscale: number;
  declare wsOk: boolean;
  declare tsOk: boolean;
  declare sackOk: boolean;
  declare tsRecent: number;
  declare tsRecentAge: number;
  /** Random offset added to our TSval (RFC 7323 §5.4). */
  declare tsOffset: number;
  /** Options the peer's SYN offered (for the SYN-ACK we build). */
  declare peerWscale: number;

  // Flags.
  /** The application asked for a FIN after the queued data (shutdown/close). */
  declare finQueued: boolean;
  /** A FIN has been sent (its sequence number is finSeq). */
  declare finSent: boolean;
  declare finSeq: number;
  /** The FIN left in a segment of its own (a FIN-only tail, probed alone by RFC 8985 §7.3). */
  declare finAlone: boolean;
  /** Peer's FIN received (no more data will arrive). */
  declare finRcvd: boolean;
  /** The application closed the socket fully: it will read no more (orphaned connection). */
  declare userClosed: boolean;
  declare ackNow: boolean;
  /** Receive-side: bytes received since the last ACK we sent (ACK every second full segment). */
  declare unackedBytes: number;
  /**
   * Linux's quick-ACK budget (icsk_ack.quick): while above zero and not in ping-pong mode, every
   * segment of new data is acknowledged at once; each such ACK spends one.
   */
  declare quickAcks: number;
  /** A quick ACK is owed at the next deferred-output flush. */
  declare quickAckPending: boolean;
  /** Time the last in-order data arrived, or -1 before any (Linux's icsk_ack.lrcvtime). */
  declare lastDataRecvTime: number;
  /**
   * Interactive (ping-pong) mode as Linux's: we sent data soon after receiving some, so ACKs are
   * delayed to ride on the reply; left when the delayed-ACK timer fires.
   */
  declare pingpong: boolean;
  declare noDelay: boolean;
  /** TCP_CORK: only full segments leave until uncorked (or a FIN). */
  declare cork: boolean;
  /** Uncorked: the next output pushes what is queued past Nagle (Linux's TCP_NAGLE_PUSH), once. */
  declare push: boolean;
  /** MSG_MORE on the last write: like a cork until the next write without it. */
  declare more: boolean;
  /** TCP_NOTSENT_LOWAT: writable only while fewer unsent bytes are queued (0 = no limit). */
  declare notsentLowat: number;
  /** TCP_MAXSEG set by the application (0 = none): caps the MSS we offer and the one we use. */
  declare userMss: number;
  /** IP_TOS / IPV6_TCLASS on outgoing segments (the ECN bits are the stack's). */
  declare tos: number;
  /** ECN state (EcnFlag bits); 0 when ECN is not in use. */
  declare ecn: number;
  /** SND.MAX at the last ECE cwnd reduction: none again until it is acknowledged (once per window). */
  declare ecnHigh: number;
  /** TCP Fast Open handshake state (RFC 7413); null unless this connection does TFO. */
  declare tfo: TfoState | null;
  /** The application read since our last ACK: a window update may be due. */
  declare readSinceAck: boolean;
  /** Passive open (SYN_RECEIVED returns to LISTEN on RST). */
  declare passive: boolean;
  /** Forces one byte out past a zero window (persist probe). */
  declare forceOne: boolean;

  // Retransmission and congestion state.
  readonly rtt: RttEstimator;
  cc: CongestionControl;
  /** Sequence being timed for an RTT sample without timestamps (Karn), or -1. */
  declare rttSeq: number;
  declare rttStart: number;
  declare rexmtCount: number;
  /** Time of the first persist probe without progress (persist's user timeout), or -1. */
  declare firstRexmtTime: number;
  /**
   * When the oldest unacknowledged data was sent (RFC 5482's user timeout runs from here): the
   * start of the flight, moved to the time of each ACK that advances SND.UNA. -1 when none.
   */
  declare unaSentAt: number;
  declare dupAcks: number;
  declare inRecovery: boolean;
  /** RFC 6582 "recover". */
  declare recover: number;
  /** RFC 6675 HighRxt. */
  declare highRxt: number;
  // RFC 6937 proportional rate reduction, during fast recovery.
  /** prr_delivered: bytes the receiver got (cumulatively or by SACK) since recovery began. */
  declare prrDelivered: number;
  /** prr_out: bytes sent (new or retransmitted) since recovery began. */
  declare prrOut: number;
  /** RecoverFS: the flight size when recovery began. */
  declare recoverFs: number;
  /**
   * Between a retransmission timeout and the ACK of everything sent before it (`recover`): the
   * slow-start retransmission skips what the receiver SACKs meanwhile (RFC 6675 §5.1).
   */
  declare rtoRecovery: boolean;
  /** The retransmission timer is armed as RFC 8985's tail loss probe timeout (PTO), not the RTO. */
  declare tlpArmed: boolean;
  /** RFC 8985 TLP.end_seq: SND.MAX when the outstanding loss probe was sent; -1 when none. */
  declare tlpHigh: number;
  /** First sequence number the outstanding probe carried. */
  declare tlpStart: number;
  private declare sb: SackScoreboard | null;
  /** RFC 8985 RACK: transmit records and state; created at the first data sent on a SACK connection. */
  declare rack: Rack | null;
  /** Zero-window probes sent since entering persist (reset when the window opens). */
  declare persistBackoff: number;
  /** Zero-window probes the peer has not answered (reset by every acceptable segment). */
  declare persistProbes: number;
  declare keepMode: number;
  declare keepProbes: number;
  declare lastRecvTime: number;
  declare lastSendTime: number;
  declare keepIdle: number;
  declare keepIntvl: number;
  declare keepCnt: number;
  declare keepalive: boolean;
  /**
   * The last soft error (RFC 1122 §4.2.3.9), reported instead of ETIMEDOUT if the connection
   * times out: 'EHOSTUNREACH' when the neighbour could not be resolved. Cleared by the peer's
   * next acceptable segment.
   */
  declare softError: string;
  /** Neighbour resolution failed while the handshake was under way: the timer ends the attempt. */
  declare hostUnreach: boolean;
  /** User timeout (RFC 9293 §3.8.4), ms; 0 = none beyond the retry limit. */
  declare userTimeout: number;

  readonly sndBuf: SendBuffer;
  readonly rcvBuf: RecvBuffer;
  /** Autotuning limits (0: the buffer keeps its size — autotuning off or SO_SNDBUF/SO_RCVBUF set). */
  declare sndBufMax: number;
  declare rcvBufMax: number;

  readonly rexmtTimer: Timer;
  // The other timers are created at first use (an idle connection needs none of them); check
  // them with the *Armed getters, which never create one.
  private declare persistT: TcbTimer | null;
  private declare keepT: TcbTimer | null;
  private declare delackT: TcbTimer | null;
  private declare reoT: TcbTimer | null;

  sock: TcpSocket | null = null;
  /** For a passive open: the listener until the connection is accepted. */
  declare listener: TcpListener | null;
  /** Established but not yet accepted (in the listener's accept queue). */
  declare inAcceptQueue: boolean;
  /** Pending application events (bits of TcbEvent), delivered after input processing. */
  declare events: number;
  /** Error to report on close (a TcpErrorCode string) or ''. */
  error = '';
  /** On Tcp's ready list (events to deliver). */
  declare ready: boolean;
  /** Waiting in Tcp's deferred-output queue (application writes, reads, shutdown). */
  declare outPending: boolean;

  declare bytesAcked: number;
  declare bytesReceived: number;
  // Per-connection statistics for TCP_INFO (Linux's tcp_info names); the rest, kept only once
  // data moves, in `stats`, so an idle connection costs no more than it did without them.
  declare segsOut: number;
  declare segsIn: number;
  declare stats: TcbStats | null;

  /**
   * Once in TIME_WAIT the TCB is out of the connection table and its resources are freed; the
   * connection lives on as this slot of the TIME_WAIT table (while its generation matches).
   */
  declare tw: number;
  declare twGen: number;

  constructor(readonly tcp: Tcp, store: RingStore, sendSpace: number, recvSpace: number, reassMax: number, cc: CongestionControl, rtt: RttEstimator) {
    this._i = tcp.tcbArena.alloc();
    this._c = tcp.tcbArena.chunk; // after alloc(), which may have moved to another chunk
    this.sndBuf = new SendBuffer(sendSpace, store);
    this.rcvBuf = new RecvBuffer(recvSpace, reassMax, store);
    this.cc = cc;
    this.rtt = rtt;
    this.rexmtTimer = new TcbTimer(this, rexmtFired);
  }

  get persistTimer(): Timer { return this.persistT ??= new TcbTimer(this, persistFired); }
  get keepTimer(): Timer { return this.keepT ??= new TcbTimer(this, keepFired); }
  get delackTimer(): Timer { return this.delackT ??= new TcbTimer(this, delackFired); }
  /** RFC 8985 §6.2 step 5's reordering timer ("RACK timer"). */
  get reoTimer(): Timer { return this.reoT ??= new TcbTimer(this, reoFired); }
  get persistArmed(): boolean { return this.persistT !== null && this.persistT.deadline >= 0; }
  get keepArmed(): boolean { return this.keepT !== null && this.keepT.deadline >= 0; }
  get delackArmed(): boolean { return this.delackT !== null && this.delackT.deadline >= 0; }
  get reoArmed(): boolean { return this.reoT !== null && this.reoT.deadline >= 0; }

  /** Disarms every timer this connection has. */
  disarmTimers(wheel: TimerWheel): void {
    wheel.disarm(this.rexmtTimer);
    if (this.persistT !== null) wheel.disarm(this.persistT);
    if (this.keepT !== null) wheel.disarm(this.keepT);
    if (this.delackT !== null) wheel.disarm(this.delackT);
    if (this.reoT !== null) wheel.disarm(this.reoT);
  }

  /** RFC 6675 scoreboard, created on first use (only SACK connections that see loss need one). */
  get scoreboard(): SackScoreboard {
    if (this.sb === null) this.sb = new SackScoreboard();
    return this.sb;
  }
  get hasScoreboard(): boolean { return this.sb !== null; }
  /** Clears SACK state without creating a scoreboard. */
  resetScoreboard(): void { if (this.sb !== null) this.sb.reset(); }

  /**
   * Gives the arena row back (freeTcb, once the connection is over): the fields move to a row in
   * a chunk for closed TCBs, never reused, so the socket can still read them, and the row serves
   * a new connection.
   */
  detach(): void {
    if (this._c.closed) return;
    const arena = this.tcp.tcbArena;
    const i = arena.allocClosed();
    const c = arena.closedChunk;
    c.copyRow(i, this._c, this._i);
    arena.free(this._c, this._i);
    this._c = c;
    this._i = i;
  }

  /** The state, with a TIME_WAIT that has since run out (or was reset) reported as CLOSED. */
  get liveState(): TcpState {
    if (this.state !== TcpState.TIME_WAIT) return this.state;
    return this.tcp.timeWait.isLive(this.tw, this.twGen) ? TcpState.TIME_WAIT : TcpState.CLOSED;
  }
  get stateName(): string { return TCP_STATE_NAMES[this.liveState]; }
  /** Bytes sent and not yet acknowledged. */
  get flightSize(): number { return (this.sndMax - this.sndUna) >>> 0; }
  /** True once the connection is synchronized (SYN exchanged). */
  get synchronized(): boolean { return this.state >= TcpState.ESTABLISHED; }
  /** Bytes queued and never sent (Linux's notsent_bytes). */
  get notSent(): number {
    const n = seqDiff((this.sndBase + this.sndBuf.length) >>> 0, this.sndMax);
    return n > 0 ? n : 0;
  }
  /** Largest payload per segment given the options we put on data segments. */
  get maxSeg(): number { return this.tsOk ? this.mss - 12 : this.mss; }
}

/** What a TCB's timers run when they fire; the TCP module hands them in (timers.ts, rack.ts). */
export interface TcbTimerHandlers {
  readonly rexmt: (tcb: Tcb, now: number) => void;
  readonly persist: (tcb: Tcb, now: number) => void;
  readonly keep: (tcb: Tcb, now: number) => void;
  readonly delack: (tcb: Tcb, now: number) => void;
  readonly reo: (tcb: Tcb, now: number) => void;
}

/**
 * A TCB's timer: it knows its TCB, and its callback is one module-level function per kind that
 * finds the handler on the TCB's Tcp (no closure, no handler field per timer).
 */
class TcbTimer extends Timer {
  constructor(readonly tcb: Tcb, fired: (this: TcbTimer, now: number) => void) { super(fired as (now: number) => void); }
}
// The wheel calls `timer.callback(now)`, so `this` is the timer.
function rexmtFired(this: TcbTimer, now: number): void { this.tcb.tcp.timerHandlers.rexmt(this.tcb, now); }
function persistFired(this: TcbTimer, now: number): void { this.tcb.tcp.timerHandlers.persist(this.tcb, now); }
function keepFired(this: TcbTimer, now: number): void { this.tcb.tcp.timerHandlers.keep(this.tcb, now); }
function delackFired(this: TcbTimer, now: number): void { this.tcb.tcp.timerHandlers.delack(this.tcb, now); }
function reoFired(this: TcbTimer, now: number): void { this.tcb.tcp.timerHandlers.reo(this.tcb, now); }

/** Event bits delivered to the socket. */
export const TcbEvent = {
  Connect: 1,
  Data: 2,
  End: 4,
  Drain: 8,
  Close: 16,
  /** A new connection is ready on the listener (set on the child). */
  Accept: 32,
} as const;

// The TCB's numbers and flags live in typed arrays, one row per TCB, instead of as ~100 object
// fields: on 64-bit Node every field is an 8-byte slot and every field that ever holds a
// non-small-integer (a sequence number above 2^31, a fractional time) points to its own 16-byte
// boxed number, ~1.3 KB per connection in all. In rows they take 1 byte (flags, small enums),
// 4 (sequence numbers, small counts) or 8 (times, byte counters): ~380 bytes. The fields stay
// properties of Tcb (accessors on the prototype), so the code reads and writes them as before.

/**
 * A TCB's references that most connections never set, or set only for a while (TFO, SACK
 * scoreboard, RACK, the timers other than the retransmission one, TCP_INFO statistics, the soft
 * error, the listener until accepted): one object, created when the first is set, instead of ten
 * fields on every TCB. Tcb's accessors of the same names read null ('' for softError) without it.
 */
class TcbExtras {
  tfo: TfoState | null = null;
  sb: SackScoreboard | null = null;
  rack: Rack | null = null;
  softError = '';
  persistT: TcbTimer | null = null;
  keepT: TcbTimer | null = null;
  delackT: TcbTimer | null = null;
  reoT: TcbTimer | null = null;
  listener: TcpListener | null = null;
  stats: TcbStats | null = null;
}
type ExtraName = keyof TcbExtras;
function extrasEmpty(x: TcbExtras): boolean {
  return x.tfo === null && x.sb === null && x.rack === null && x.softError === '' && x.persistT === null && x.keepT === null &&
    x.delackT === null && x.reoT === null && x.listener === null && x.stats === null;
}
const EXTRAS: readonly ExtraName[] = ['tfo', 'sb', 'rack', 'softError', 'persistT', 'keepT', 'delackT', 'reoT', 'listener', 'stats'];

/** Columns: flags (u8 0/1), small enums (u8), sequence numbers and IPv4 addresses (u32, mod 2^32), small ints (i32), the rest (f64). */
const LAYOUT = {
  b: ['v4mapped', 'inTable', 'wsOk', 'tsOk', 'sackOk', 'finQueued', 'finSent', 'finAlone', 'finRcvd', 'userClosed', 'ackNow',
    'quickAckPending', 'pingpong', 'noDelay', 'cork', 'push', 'more', 'readSinceAck', 'passive', 'forceOne', 'inRecovery',
    'rtoRecovery', 'tlpArmed', 'keepalive', 'hostUnreach', 'inAcceptQueue', 'ready', 'outPending'],
  u8: ['state', 'family', 'keepMode', 'ecn', 'sndWscale', 'rcvWscale'],
  u32: ['iss', 'sndUna', 'sndNxt', 'sndMax', 'sndWl1', 'sndWl2', 'sndBase', 'irs', 'rcvNxt', 'rcvAdv', 'lastAckSent', 'finSeq',
    'recover', 'highRxt', 'ecnHigh', 'tlpStart', 'tsRecent', 'tsOffset', 'laddr', 'raddr'],
  i32: ['lport', 'rport', 'mss', 'rcvMss', 'peerWscale', 'quickAcks', 'dupAcks', 'rexmtCount', 'persistBackoff', 'persistProbes',
    'keepProbes', 'keepCnt', 'notsentLowat', 'userMss', 'tos', 'sndWnd', 'maxSndWnd', 'unackedBytes', 'events', 'tw'],
  f64: ['rcvFinSeq', 'tsRecentAge', 'rttSeq', 'rttStart', 'firstRexmtTime', 'unaSentAt', 'prrDelivered', 'prrOut',
    'recoverFs', 'tlpHigh', 'lastDataRecvTime', 'lastRecvTime', 'lastSendTime', 'keepIdle', 'keepIntvl', 'userTimeout',
    'bytesAcked', 'bytesReceived', 'segsOut', 'segsIn', 'twGen', 'sndBufMax', 'rcvBufMax'],
} as const;
/** Initial values other than 0 / false. */
const INITIAL: Record<string, number> = {
  family: AF_INET, mss: 536, rcvMss: 536, peerWscale: -1, tw: -1,
  rcvFinSeq: -1, rttSeq: -1, firstRexmtTime: -1, unaSentAt: -1, tlpHigh: -1, lastDataRecvTime: -1,
};
const W8 = LAYOUT.b.length + LAYOUT.u8.length, WU = LAYOUT.u32.length, WI = LAYOUT.i32.length, WF = LAYOUT.f64.length;

/** Rows of TCB fields; a TCB refers to its chunk and row. */
export class TcbChunk {
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  /** `closed`: rows of freed TCBs, handed out once each (the chunk goes when they all have). */
  constructor(readonly size: number, readonly closed = false) {
    this.u8 = new Uint8Array(size * W8);
    this.u32 = new Uint32Array(size * WU);
    this.i32 = new Int32Array(size * WI);
    this.f64 = new Float64Array(size * WF);
  }
  /** Sets row `i` to the initial values (plain loops: a row is short, and subarray() would allocate). */
  initRow(i: number): void {
    const t = TEMPLATE;
    for (let k = 0, o = i * W8; k < W8; k++) this.u8[o + k] = t.u8[k]!;
    for (let k = 0, o = i * WU; k < WU; k++) this.u32[o + k] = 0;
    for (let k = 0, o = i * WI; k < WI; k++) this.i32[o + k] = t.i32[k]!;
    for (let k = 0, o = i * WF; k < WF; k++) this.f64[o + k] = t.f64[k]!;
  }
  copyRow(i: number, from: TcbChunk, j: number): void {
    for (let k = 0, o = i * W8, p = j * W8; k < W8; k++) this.u8[o + k] = from.u8[p + k]!;
    for (let k = 0, o = i * WU, p = j * WU; k < WU; k++) this.u32[o + k] = from.u32[p + k]!;
    for (let k = 0, o = i * WI, p = j * WI; k < WI; k++) this.i32[o + k] = from.i32[p + k]!;
    for (let k = 0, o = i * WF, p = j * WF; k < WF; k++) this.f64[o + k] = from.f64[p + k]!;
  }
}
const TEMPLATE = new TcbChunk(1);
const CLOSED_ROWS = 64;

/**
 * One per Tcp: the chunk new TCBs get rows in (a new chunk, twice as large up to 4,096 rows, when
 * it is full), and the rows freed TCBs gave back (reused first, newest chunk's before older ones').
 */
export class TcbArena {
  chunk = new TcbChunk(16);
  private next = 0;
  private readonly freeRows = new Map<TcbChunk, number[]>();
  /** Where freed TCBs' fields go (one allocation per 64 closes, not four per close). */
  closedChunk: TcbChunk = TEMPLATE;
  private closedNext = CLOSED_ROWS;

  /** A row of closedChunk (a new chunk when it is used up; the old one lives while its TCBs do). */
  allocClosed(): number {
    if (this.closedNext === CLOSED_ROWS) { this.closedChunk = new TcbChunk(CLOSED_ROWS, true); this.closedNext = 0; }
    return this.closedNext++;
  }

  alloc(): number {
    for (;;) {
      const list = this.freeRows.get(this.chunk);
      if (list !== undefined && list.length > 0) { const i = list.pop()!; this.chunk.initRow(i); return i; }
      if (this.next < this.chunk.size) { const i = this.next++; this.chunk.initRow(i); return i; }
      this.grow();
    }
  }

  free(c: TcbChunk, i: number): void {
    let list = this.freeRows.get(c);
    if (list === undefined) this.freeRows.set(c, list = []);
    list.push(i);
  }

  /** Moves to a chunk with a free row: an older one with rows given back, else a new one. */
  private grow(): void {
    for (const [c, list] of this.freeRows) {
      if (list.length > 0 && c !== this.chunk) { this.chunk = c; this.next = c.size; return; }
    }
    this.chunk = new TcbChunk(Math.min(this.chunk.size * 2, 4096));
    this.next = 0;
  }
}

{
  const p = Tcb.prototype;
  for (const name of EXTRAS) {
    const none = name === 'softError' ? '' : null;
    Object.defineProperty(p, name, {
      get(this: Tcb) { return this._x === null ? none : this._x[name]; },
      set(this: Tcb, v: never) {
        const x = this._x;
        if (x !== null) {
          x[name] = v;
          // The last one cleared (a passive open's listener once accepted): the object goes.
          if (v === none && extrasEmpty(x)) this._x = null;
        } else if (v !== none) {
          (this._x = new TcbExtras())[name] = v;
        }
      },
      enumerable: true, configurable: true,
    });
  }
  const def = (name: string, get: (this: Tcb) => unknown, set: (this: Tcb, v: never) => void) =>
    Object.defineProperty(p, name, { get, set, enumerable: true, configurable: true });
  LAYOUT.b.forEach((name, k) => {
    def(name, function () { return this._c.u8[this._i * W8 + k] !== 0; }, function (v: boolean) { this._c.u8[this._i * W8 + k] = v ? 1 : 0; });
  });
  LAYOUT.u8.forEach((name, j) => {
    const k = LAYOUT.b.length + j;
    TEMPLATE.u8[k] = INITIAL[name] ?? 0;
    def(name, function () { return this._c.u8[this._i * W8 + k]; }, function (v: number) { this._c.u8[this._i * W8 + k] = v; });
  });
  LAYOUT.u32.forEach((name, k) => {
    def(name, function () { return this._c.u32[this._i * WU + k]; }, function (v: number) { this._c.u32[this._i * WU + k] = v; });
  });
  LAYOUT.i32.forEach((name, k) => {
    TEMPLATE.i32[k] = INITIAL[name] ?? 0;
    def(name, function () { return this._c.i32[this._i * WI + k]; }, function (v: number) { this._c.i32[this._i * WI + k] = v; });
  });
  LAYOUT.f64.forEach((name, k) => {
    TEMPLATE.f64[k] = INITIAL[name] ?? 0;
    def(name, function () { return this._c.f64[this._i * WF + k]; }, function (v: number) { this._c.f64[this._i * WF + k] = v; });
  });
}
