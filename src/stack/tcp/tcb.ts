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
  /** Where this connection's segments go: resolved at SYN sent/received, revalidated per use. */
  readonly path = new Path();
  /** Written only by setState() (lifecycle.ts). */
  readonly state: TcpState = TcpState.CLOSED;
  /** AF_INET (4): laddr/raddr are the addresses; AF_INET6 (6): laddr6/raddr6 are, laddr = raddr = 0 (ends.ts). */
  family = AF_INET;
  laddr = 0;
  lport = 0;
  raddr = 0;
  rport = 0;
  laddr6: Uint8Array = NO_ADDR6;
  raddr6: Uint8Array = NO_ADDR6;
  /** An IPv4 connection accepted by a dual-stack (IPv6 wildcard) listener: the API shows ::ffff:a.b.c.d. */
  v4mapped = false;
  /** Next TCB in the same 4-tuple hash chain. */
  hashNext: Tcb | null = null;
  inTable = false;

  // Send sequence space (RFC 9293 §3.3.1, figure 4), plus SND.MAX (highest sequence sent).
  iss = 0;
  sndUna = 0;
  sndNxt = 0;
  sndMax = 0;
  /** Send window in bytes (scaled). */
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  /** Largest window the peer has offered: sender SWS avoidance (RFC 9293 §3.8.6.2.1). */
  maxSndWnd = 0;
  /** Sequence number of the first byte in the send buffer. */
  sndBase = 0;

  // Receive sequence space.
  irs = 0;
  rcvNxt = 0;
  /** Right edge of the window last advertised (RCV.NXT + RCV.WND when sent). */
  rcvAdv = 0;
  /** Last ACK number sent (RFC 7323 §4.3 Last.ACK.sent). */
  lastAckSent = 0;
  /** Sequence number of a FIN that arrived out of order, or -1. */
  rcvFinSeq = -1;

  // Options negotiated.
  /** Effective send MSS (peer's MSS clamped to the route), without options. */
  mss = 536;
  /** MSS we advertised. */
  rcvMss = 536;
  sndWscale = 0;
  rcvWscale = 0;
  wsOk = false;
  tsOk = false;
  sackOk = false;
  tsRecent = 0;
  tsRecentAge = 0;
  /** Random offset added to our TSval (RFC 7323 §5.4). */
  tsOffset = 0;
  /** Options the peer's SYN offered (for the SYN-ACK we build). */
  peerWscale = -1;

  // Flags.
  /** The application asked for a FIN after the queued data (shutdown/close). */
  finQueued = false;
  /** A FIN has been sent (its sequence number is finSeq). */
  finSent = false;
  finSeq = 0;
  /** The FIN left in a segment of its own (a FIN-only tail, probed alone by RFC 8985 §7.3). */
  finAlone = false;
  /** Peer's FIN received (no more data will arrive). */
  finRcvd = false;
  /** The application closed the socket fully: it will read no more (orphaned connection). */
  userClosed = false;
  ackNow = false;
  /** Receive-side: bytes received since the last ACK we sent (ACK every second full segment). */
  unackedBytes = 0;
  /**
   * Linux's quick-ACK budget (icsk_ack.quick): while above zero and not in ping-pong mode, every
   * segment of new data is acknowledged at once; each such ACK spends one.
   */
  quickAcks = 0;
  /** A quick ACK is owed at the next deferred-output flush. */
  quickAckPending = false;
  /** Time the last in-order data arrived, or -1 before any (Linux's icsk_ack.lrcvtime). */
  lastDataRecvTime = -1;
  /**
   * Interactive (ping-pong) mode as Linux's: we sent data soon after receiving some, so ACKs are
   * delayed to ride on the reply; left when the delayed-ACK timer fires.
   */
  pingpong = false;
  noDelay = false;
  /** TCP_CORK: only full segments leave until uncorked (or a FIN). */
  cork = false;
  /** Uncorked: the next output pushes what is queued past Nagle (Linux's TCP_NAGLE_PUSH), once. */
  push = false;
  /** MSG_MORE on the last write: like a cork until the next write without it. */
  more = false;
  /** TCP_NOTSENT_LOWAT: writable only while fewer unsent bytes are queued (0 = no limit). */
  notsentLowat = 0;
  /** TCP_MAXSEG set by the application (0 = none): caps the MSS we offer and the one we use. */
  userMss = 0;
  /** IP_TOS / IPV6_TCLASS on outgoing segments (the ECN bits are the stack's). */
  tos = 0;
  /** ECN state (EcnFlag bits); 0 when ECN is not in use. */
  ecn = 0;
  /** SND.MAX at the last ECE cwnd reduction: none again until it is acknowledged (once per window). */
  ecnHigh = 0;
  /** TCP Fast Open handshake state (RFC 7413); null unless this connection does TFO. */
  tfo: TfoState | null = null;
  /** The application read since our last ACK: a window update may be due. */
  readSinceAck = false;
  /** Passive open (SYN_RECEIVED returns to LISTEN on RST). */
  passive = false;
  /** Forces one byte out past a zero window (persist probe). */
  forceOne = false;

  // Retransmission and congestion state.
  readonly rtt: RttEstimator;
  cc: CongestionControl;
  /** Sequence being timed for an RTT sample without timestamps (Karn), or -1. */
  rttSeq = -1;
  rttStart = 0;
  rexmtCount = 0;
  /** Time of the first persist probe without progress (persist's user timeout), or -1. */
  firstRexmtTime = -1;
  /**
   * When the oldest unacknowledged data was sent (RFC 5482's user timeout runs from here): the
   * start of the flight, moved to the time of each ACK that advances SND.UNA. -1 when none.
   */
  unaSentAt = -1;
  dupAcks = 0;
  inRecovery = false;
  /** RFC 6582 "recover". */
  recover = 0;
  /** RFC 6675 HighRxt. */
  highRxt = 0;
  // RFC 6937 proportional rate reduction, during fast recovery.
  /** prr_delivered: bytes the receiver got (cumulatively or by SACK) since recovery began. */
  prrDelivered = 0;
  /** prr_out: bytes sent (new or retransmitted) since recovery began. */
  prrOut = 0;
  /** RecoverFS: the flight size when recovery began. */
  recoverFs = 0;
  /**
   * Between a retransmission timeout and the ACK of everything sent before it (`recover`): the
   * slow-start retransmission skips what the receiver SACKs meanwhile (RFC 6675 §5.1).
   */
  rtoRecovery = false;
  /** The retransmission timer is armed as RFC 8985's tail loss probe timeout (PTO), not the RTO. */
  tlpArmed = false;
  /** RFC 8985 TLP.end_seq: SND.MAX when the outstanding loss probe was sent; -1 when none. */
  tlpHigh = -1;
  /** First sequence number the outstanding probe carried. */
  tlpStart = 0;
  private sb: SackScoreboard | null = null;
  /** RFC 8985 RACK: transmit records and state; created at the first data sent on a SACK connection. */
  rack: Rack | null = null;
  /** Zero-window probes sent since entering persist (reset when the window opens). */
  persistBackoff = 0;
  /** Zero-window probes the peer has not answered (reset by every acceptable segment). */
  persistProbes = 0;
  keepMode: number = KeepMode.None;
  keepProbes = 0;
  lastRecvTime = 0;
  lastSendTime = 0;
  keepIdle = 0;
  keepIntvl = 0;
  keepCnt = 0;
  keepalive = false;
  /**
   * The last soft error (RFC 1122 §4.2.3.9), reported instead of ETIMEDOUT if the connection
   * times out: 'EHOSTUNREACH' when the neighbour could not be resolved. Cleared by the peer's
   * next acceptable segment.
   */
  softError = '';
  /** Neighbour resolution failed while the handshake was under way: the timer ends the attempt. */
  hostUnreach = false;
  /** User timeout (RFC 9293 §3.8.4), ms; 0 = none beyond the retry limit. */
  userTimeout = 0;

  readonly sndBuf: SendBuffer;
  readonly rcvBuf: RecvBuffer;
  /** Autotuning limits (0: the buffer keeps its size — autotuning off or SO_SNDBUF/SO_RCVBUF set). */
  sndBufMax = 0;
  rcvBufMax = 0;

  readonly rexmtTimer: Timer;
  // The other timers are created at first use (an idle connection needs none of them); check
  // them with the *Armed getters, which never create one.
  private persistT: TcbTimer | null = null;
  private keepT: TcbTimer | null = null;
  private delackT: TcbTimer | null = null;
  private reoT: TcbTimer | null = null;

  sock: TcpSocket | null = null;
  /** For a passive open: the listener until the connection is accepted. */
  listener: TcpListener | null = null;
  /** Established but not yet accepted (in the listener's accept queue). */
  inAcceptQueue = false;
  /** Pending application events (bits of TcbEvent), delivered after input processing. */
  events = 0;
  /** Error to report on close (a TcpErrorCode string) or ''. */
  error = '';
  /** On Tcp's ready list (events to deliver). */
  ready = false;
  /** Waiting in Tcp's deferred-output queue (application writes, reads, shutdown). */
  outPending = false;

  bytesAcked = 0;
  bytesReceived = 0;
  // Per-connection statistics for TCP_INFO (Linux's tcp_info names); the rest, kept only once
  // data moves, in `stats`, so an idle connection costs no more than it did without them.
  segsOut = 0;
  segsIn = 0;
  stats: TcbStats | null = null;

  /**
   * Once in TIME_WAIT the TCB is out of the connection table and its resources are freed; the
   * connection lives on as this slot of the TIME_WAIT table (while its generation matches).
   */
  tw = -1;
  twGen = 0;

  constructor(readonly tcp: Tcp, store: RingStore, sendSpace: number, recvSpace: number, reassMax: number, cc: CongestionControl, rtt: RttEstimator) {
    this.sndBuf = new SendBuffer(sendSpace, store);
    this.rcvBuf = new RecvBuffer(recvSpace, reassMax, store);
    this.cc = cc;
    this.rtt = rtt;
    this.rexmtTimer = new TcbTimer(this, tcp.timerHandlers.rexmt);
  }

  get persistTimer(): Timer { return this.persistT ??= new TcbTimer(this, this.tcp.timerHandlers.persist); }
  get keepTimer(): Timer { return this.keepT ??= new TcbTimer(this, this.tcp.timerHandlers.keep); }
  get delackTimer(): Timer { return this.delackT ??= new TcbTimer(this, this.tcp.timerHandlers.delack); }
  /** RFC 8985 §6.2 step 5's reordering timer ("RACK timer"). */
  get reoTimer(): Timer { return this.reoT ??= new TcbTimer(this, this.tcp.timerHandlers.reo); }
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
 * A TCB's timer: it knows its TCB and its handler, so the timers share one module-level
 * callback instead of each holding a closure (fewer objects per connection).
 */
class TcbTimer extends Timer {
  constructor(readonly tcb: Tcb, readonly handler: (tcb: Tcb, now: number) => void) { super(tcbTimerFired); }
}
// The wheel calls `timer.callback(now)`, so `this` is the timer.
function tcbTimerFired(this: TcbTimer, now: number): void { this.handler(this.tcb, now); }

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
