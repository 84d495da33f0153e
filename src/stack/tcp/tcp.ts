// The TCP module the Stack instantiates: demultiplexing by 4-tuple, then listener; resets for
// closed ports; the connection table; sysctls; counters; event delivery to sockets.
import { Csum, type PacketBuffer } from '../../base/pktbuf.js';
import { pseudoHeaderV4, sum16, fold } from '../../wire/checksum.js';
import { WireError } from '../../wire/errors.js';
import { TcpFlag, TcpHeader, TcpOptions, parseTcpOptions } from '../../wire/tcp.js';
import { CC_ALGORITHMS, createCongestionControl } from './congestion/index.js';
import type { TcpHost } from './host.js';
import { segmentArrives } from './input.js';
import { IsnGenerator } from './isn.js';
import { listenerInput, TcpListener, type ListenOptions } from './listen.js';
import { Rack } from './rack.js';
import { sendRst, tcpOutput } from './output.js';
import { seqInRange } from './seq.js';
import { EphemeralPorts } from './ports.js';
import { RttEstimator, type RttOptions } from './rtt.js';
import { RingStore } from './buffers.js';
import { SynCookies } from './syncookie.js';
import { Tcb, TcpState } from './tcb.js';
import { TcpSocket, TcpError, type ConnectOptions, dispatchEvents } from './socket.js';
import { dropConnection, startConnect, freeTcb } from './timers.js';
import { TimeWaitTable, type TimeWaitInfo } from './timewait.js';

export const IPPROTO_TCP = 6;
const ICMP_UNREACH = 3;
const UNREACH_NEEDFRAG = 4;

/** Counters by reason, printed by the tools. Plain numbers: incrementing allocates nothing. */
export class TcpCounters {
  rcvTotal = 0;
  /** ICMP errors: about data not in flight (ignored), path MTU updates, hard and soft errors. */
  icmpIgnored = 0;
  pmtuUpdates = 0;
  icmpHardErrors = 0;
  icmpSoftErrors = 0;
  rcvBadChecksum = 0;
  rcvBadHeader = 0;
  rcvBadOptions = 0;
  rcvBadAddress = 0;
  rcvNoSocket = 0;
  rcvDupAck = 0;
  rcvAckTooMuch = 0;
  rcvOutOfWindow = 0;
  rcvPawsDropped = 0;
  rcvOutOfOrder = 0;
  rcvReassFull = 0;
  rcvAfterClose = 0;
  rcvUrgent = 0;
  sndTotal = 0;
  sndData = 0;
  sndRexmtPackets = 0;
  sndAcks = 0;
  sndRst = 0;
  sndProbes = 0;
  sndKeepProbes = 0;
  sndChallengeAcks = 0;
  challengeAckLimited = 0;
  noRoute = 0;
  connAttempts = 0;
  connAccepts = 0;
  connEstablished = 0;
  connDrops = 0;
  connRefused = 0;
  connResets = 0;
  timeoutDrops = 0;
  keepDrops = 0;
  rexmtTimeouts = 0;
  persistTimeouts = 0;
  /** Segments that could not be sent because neighbour resolution failed. */
  hostUnreachable = 0;
  /** Connections dropped in persist: the peer stopped answering zero-window probes, or an orphan ran out of probes. */
  persistDrops = 0;
  fastRetransmits = 0;
  /** Tail loss probes sent (RFC 8985 §7). */
  tlpProbes = 0;
  /** Losses a probe revealed: SACK recovery entered, or a repaired tail answered by a cwnd reduction. */
  tlpRecoveries = 0;
  /** Reordering-timer expiries that found losses (RFC 8985 §6.2 step 5). */
  rackTimeouts = 0;
  /** Ranges RACK declared lost (RFC 8985 §6.2), lost retransmissions included. */
  rackLost = 0;
  sackRecoveries = 0;
  limitedTransmits = 0;
  synCookiesSent = 0;
  synCookiesReceived = 0;
  synCookiesFailed = 0;
  listenOverflows = 0;
  synQueueDrops = 0;
  maxConnDrops = 0;
  /** Outgoing connections that took over a 4-tuple in TIME_WAIT (net.inet.tcp.tw_reuse). */
  timeWaitReused = 0;
}

/** What netstat-like views show of a connection (a Tcb, or a TIME_WAIT record). */
export interface TcpConnectionInfo {
  readonly laddr: number;
  readonly lport: number;
  readonly raddr: number;
  readonly rport: number;
  readonly state: TcpState;
  readonly stateName: string;
}

/** A listening socket as netstat shows it. */
export interface TcpListenerInfo {
  readonly laddr: number;
  readonly lport: number;
  /** Established connections waiting for accept(). */
  readonly acceptQueue: number;
  /** Half-open connections (SYN_RECEIVED). */
  readonly synQueue: number;
  readonly backlog: number;
}

/** The per-segment facts input processing needs, filled in place for every segment. */
export class Segment {
  buf!: PacketBuffer;
  bytes!: Uint8Array;
  src = 0;
  dst = 0;
  sport = 0;
  dport = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  wnd = 0;
  up = 0;
  /** Absolute offset of the payload in bytes. */
  dataOff = 0;
  dataLen = 0;
  readonly opts = new TcpOptions();
  /** SEG.LEN: payload plus one each for SYN and FIN. */
  get len(): number { return this.dataLen + (this.flags & TcpFlag.SYN ? 1 : 0) + (this.flags & TcpFlag.FIN ? 1 : 0); }
}

export class Tcp {
  readonly counters = new TcpCounters();
  readonly isnGen: IsnGenerator;
  readonly cookies: SynCookies;
  readonly ports: EphemeralPorts;
  readonly store = new RingStore();
  /**
   * Connections in a chained hash table over the 4-tuple (a keyed 32-bit mix, so a peer cannot
   * aim at one chain), chained through Tcb.hashNext; it doubles when the load passes 1. No Map:
   * numeric 48-bit keys would each cost a boxed number, and inserts would allocate.
   */
  private buckets: (Tcb | null)[] = new Array<Tcb | null>(256).fill(null);
  private bucketMask = 255;
  private readonly hashKey: number;
  private readonly listeners = new Map<number, TcpListener>();
  /** Connections using each local port (listeners are in `listeners`). */
  private readonly portRefs = new Uint32Array(65536);
  private connCount = 0;
  /** Connections in TIME_WAIT, as compact records (timewait.ts). */
  readonly timeWait: TimeWaitTable;
  readonly hdr = new TcpHeader();
  readonly seg = new Segment();
  /** Sockets with events to deliver. */
  private readonly eventQueue: (Tcb | null)[] = [];
  /** Entries used in eventQueue (the array keeps its storage between deliveries). */
  private eventCount = 0;
  private dispatching = false;
  /**
   * Deferred output (like Linux's autocorking, but for a whole run-loop iteration): when set,
   * what the application does — write, read (window updates), shutdown — only marks the
   * connection, and flushOutput() sends for each marked connection once. A response and the
   * FIN that follows it a few callbacks later then leave as one segment, with the window
   * update the read made room for. The run loop sets this and flushes at the end of each
   * iteration; without a loop (tests, embedders driving the stack by hand) output is immediate.
   */
  deferOutput = false;
  private readonly outQueue: Tcb[] = [];
  // Challenge ACK rate limit (RFC 5961 §7): a budget per second for the whole stack.
  private challengeWindowStart = -1;
  private challengeCount = 0;

  // Hot sysctls, cached via watch().
  delayedAck = true;
  delAckTime = 40;
  msl = 30000;
  rfc1323 = true;
  sackEnable = true;
  challengeAckLimit = 1000;
  twReuse = false;
  /** RFC 8985 tail loss probes (net.inet.tcp.tlp). */
  tlp = true;
  /** RFC 8985 RACK loss detection (net.inet.tcp.rack). */
  rack = true;
  // Per-connection defaults, cached via watch() too: newTcb() runs for every connection.
  private readonly rttOpts: RttOptions = { minRto: 200, maxRto: 60000, initialRto: 1000 };
  private sendSpace = 0;
  private recvSpace = 0;
  private reassMax = 0;
  private ccAlgorithm = 'newreno';
  private keepIdle = 0;
  private keepIntvl = 0;
  private keepCnt = 0;
  private maxConn = 0;
  initCwndSegments = 10;

  constructor(readonly host: TcpHost) {
    defineTcpSysctls(host);
    const s = host.sysctl;
    s.watch('net.inet.tcp.delayed_ack', (v) => { this.delayedAck = v as boolean; });
    s.watch('net.inet.tcp.delacktime', (v) => { this.delAckTime = v as number; });
    s.watch('net.inet.tcp.msl', (v) => { this.msl = v as number; });
    s.watch('net.inet.tcp.rfc1323', (v) => { this.rfc1323 = v as boolean; });
    s.watch('net.inet.tcp.sack.enable', (v) => { this.sackEnable = v as boolean; });
    s.watch('net.inet.tcp.challenge_ack_limit', (v) => { this.challengeAckLimit = v as number; });
    s.watch('net.inet.tcp.tw_reuse', (v) => { this.twReuse = v as boolean; });
    s.watch('net.inet.tcp.tlp', (v) => { this.tlp = v as boolean; });
    s.watch('net.inet.tcp.rack', (v) => { this.rack = v as boolean; });
    s.watch('net.inet.tcp.rexmit_min', (v) => { this.rttOpts.minRto = v as number; });
    s.watch('net.inet.tcp.rexmit_max', (v) => { this.rttOpts.maxRto = v as number; });
    s.watch('net.inet.tcp.rexmit_initial', (v) => { this.rttOpts.initialRto = v as number; });
    s.watch('net.inet.tcp.sendspace', (v) => { this.sendSpace = v as number; });
    s.watch('net.inet.tcp.recvspace', (v) => { this.recvSpace = v as number; });
    s.watch('net.inet.tcp.reass.maxsegments', (v) => { this.reassMax = v as number; });
    s.watch('net.inet.tcp.cc.algorithm', (v) => { this.ccAlgorithm = v as string; });
    s.watch('net.inet.tcp.keepidle', (v) => { this.keepIdle = v as number; });
    s.watch('net.inet.tcp.keepintvl', (v) => { this.keepIntvl = v as number; });
    s.watch('net.inet.tcp.keepcnt', (v) => { this.keepCnt = v as number; });
    s.watch('net.inet.tcp.maxconn', (v) => { this.maxConn = v as number; });
    s.watch('net.inet.tcp.initcwnd_segments', (v) => { this.initCwndSegments = v as number; });
    const r = () => host.random32();
    this.isnGen = new IsnGenerator(r);
    // The table's hash key comes from the ISN secret (a keyed PRF of a fixed tuple), so seeded
    // simulations draw exactly the random numbers they drew before.
    this.hashKey = this.isnGen.isn(0, 0x74737461, 0, 0x636b0000, 0) | 1;
    this.cookies = new SynCookies(r);
    this.ports = new EphemeralPorts(r, s.int('net.inet.ip.portrange.first'), s.int('net.inet.ip.portrange.last'));
    this.timeWait = new TimeWaitTable(this);
  }

  /** Connections that still hold state (including TIME_WAIT and not-yet-accepted ones). */
  get activeTcbs(): number { return this.connCount + this.timeWait.count; }
  /** Connections in TIME_WAIT (compact records, no TCB). */
  get timeWaitCount(): number { return this.timeWait.count; }
  get listenerCount(): number { return this.listeners.size; }

  /**
   * Connections with a full TCB: every state but TIME_WAIT (for tests and tools that look
   * inside; allocates). TIME_WAIT entries are in `timeWaitEntries()`; `connectionInfo()` lists both.
   */
  connections(): Tcb[] {
    const out: Tcb[] = [];
    for (const head of this.buckets) for (let t: Tcb | null = head; t; t = t.hashNext) out.push(t);
    return out;
  }

  /** Connections in TIME_WAIT, oldest first (snapshots; allocates). */
  timeWaitEntries(): TimeWaitInfo[] { return this.timeWait.entries(); }

  /** Every connection, TIME_WAIT included, as the netstat-like views need it (allocates). */
  connectionInfo(): TcpConnectionInfo[] {
    const out: TcpConnectionInfo[] = this.connections();
    for (const t of this.timeWait.entries()) out.push(t);
    return out;
  }

  /** Listening sockets, as netstat shows them (allocates: tools). */
  listenerInfo(): TcpListenerInfo[] {
    const out: TcpListenerInfo[] = [];
    for (const l of this.listeners.values()) {
      out.push({ laddr: l.laddr, lport: l.localPort, acceptQueue: l.pending, synQueue: l.synQueueLen, backlog: l.backlog });
    }
    return out;
  }

  /** Connections in ESTABLISHED or CLOSE_WAIT (FreeBSD's tcps_curr_estab gauge; walks the table). */
  currentEstablished(): number {
    let n = 0;
    for (const head of this.buckets) {
      for (let t: Tcb | null = head; t; t = t.hashNext) if (t.state === TcpState.ESTABLISHED || t.state === TcpState.CLOSE_WAIT) n++;
    }
    return n;
  }

  /** @internal the connection table's hash of a 4-tuple */
  hash(laddr: number, lport: number, raddr: number, rport: number): number {
    return connHash(this.hashKey, laddr, lport, raddr, rport);
  }

  /** A connection or TIME_WAIT entry took `port`; tells the host when the port was free. */
  private portRef(port: number): void {
    if (this.portRefs[port]!++ === 0 && !this.listeners.has(port)) this.host.portChanged?.(6, port, true);
  }

  /** A connection or TIME_WAIT entry let `port` go; tells the host when nothing holds it now. */
  private portUnref(port: number): void {
    if (--this.portRefs[port]! === 0 && !this.listeners.has(port)) this.host.portChanged?.(6, port, false);
  }

  /** Local ports a listener, connection or TIME_WAIT entry holds (allocates: for subscribers). */
  portsInUse(): number[] {
    const out: number[] = [];
    for (let p = 1; p < 65536; p++) if (this.portRefs[p] !== 0 || this.listeners.has(p)) out.push(p);
    return out;
  }

  /** @internal moves a connection into TIME_WAIT (its TCB just left the table); returns the slot. */
  addTimeWait(tcb: Tcb, expires: number, wndField: number, rcvWnd: number): number {
    this.portRef(tcb.lport);
    return this.timeWait.add(tcb, connHash(this.hashKey, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport), expires, wndField, rcvWnd);
  }

  /** @internal a TIME_WAIT entry was freed */
  timeWaitGone(lport: number): void { this.portUnref(lport); }

  /** The TIME_WAIT slot of a 4-tuple, or -1. */
  lookupTimeWait(laddr: number, lport: number, raddr: number, rport: number): number {
    if (this.timeWait.count === 0) return -1;
    return this.timeWait.lookup(connHash(this.hashKey, laddr, lport, raddr, rport), laddr, lport, raddr, rport);
  }

  /**
   * True when a TIME_WAIT entry does not stop a new outgoing connection on its 4-tuple:
   * net.inet.tcp.tw_reuse, both incarnations with timestamps (RFC 6191: the peer's PAWS then
   * rejects the old one's duplicates; our TSvals keep rising because the new connection inherits
   * the old TSval offset), and like Linux, at least a second since the last segment arrived.
   */
  timeWaitReusable(slot: number, now: number): boolean {
    return this.twReuse && this.rfc1323 && this.timeWait.reusable(slot, now);
  }

  // ---- Receive path ----

  /**
   * One TCP segment: buf.start is the TCP header, buf.end the segment end. buf.csum tells whether
   * to verify the checksum (None = verify). Takes ownership of buf.
   */
  input(buf: PacketBuffer, src: number, dst: number): void {
    const c = this.counters;
    c.rcvTotal++;
    const h = this.hdr;
    const len = buf.end - buf.start;
    const err = h.wrap(buf.data, buf.start, len);
    if (err !== WireError.Ok) { c.rcvBadHeader++; buf.release(); return; }
    if (buf.csum === Csum.None) {
      const sum = sum16(buf.data, buf.start, len, pseudoHeaderV4(src, dst, IPPROTO_TCP, len));
      if (fold(sum) !== 0xffff) { c.rcvBadChecksum++; buf.release(); return; }
    }
    const seg = this.seg;
    const hl = h.headerLength;
    if (hl > 20 && parseTcpOptions(buf.data, buf.start + 20, hl - 20, seg.opts) !== WireError.Ok) {
      c.rcvBadOptions++; buf.release(); return;
    }
    if (hl === 20) seg.opts.clear();
    // RFC 1122 §4.2.3.10: a SYN to a broadcast or multicast address must be dropped; so must
    // anything from such a source.
    if (src === 0 || src >>> 28 >= 14 || dst >>> 28 >= 14 || src === 0xffffffff) { c.rcvBadAddress++; buf.release(); return; }
    seg.buf = buf; seg.bytes = buf.data; seg.src = src; seg.dst = dst;
    seg.sport = h.srcPort; seg.dport = h.dstPort;
    seg.seq = h.seq; seg.ack = h.ack; seg.flags = h.flags; seg.wnd = h.window; seg.up = h.urgentPointer;
    seg.dataOff = buf.start + hl; seg.dataLen = len - hl;
    if (seg.dport === 0 || seg.sport === 0) { c.rcvBadHeader++; buf.release(); return; }

    const hh = connHash(this.hashKey, dst, seg.dport, src, seg.sport);
    let tcb: Tcb | null = this.buckets[hh & this.bucketMask]!;
    while (tcb !== null && (tcb.lport !== seg.dport || tcb.rport !== seg.sport || tcb.raddr !== src || tcb.laddr !== dst)) tcb = tcb.hashNext;
    if (tcb !== null) {
      segmentArrives(this, tcb, seg);
    } else {
      const tw = this.timeWait.count > 0 ? this.timeWait.lookup(hh, dst, seg.dport, src, seg.sport) : -1;
      if (tw >= 0) this.timeWait.input(tw, seg);
      else {
        const l = this.findListener(dst, seg.dport);
        if (l) listenerInput(this, l, seg);
        else this.respondClosed(seg);
      }
    }
    buf.release();
    this.dispatch();
  }

  /**
   * A segment of this connection could not be sent: neighbour resolution for its next hop
   * failed (the stack's equivalent of a local ICMP host unreachable, as Linux's
   * ip_link_failure). A connection being opened ends with EHOSTUNREACH — through its timer, as
   * this may be called from inside our own output; an established one keeps it as a soft error.
   */
  hostUnreachable(laddr: number, lport: number, raddr: number, rport: number): void {
    const tcb = this.lookup(laddr, lport, raddr, rport);
    if (!tcb) return;
    this.counters.hostUnreachable++;
    tcb.softError = 'EHOSTUNREACH';
    if (tcb.state === TcpState.SYN_SENT || tcb.state === TcpState.SYN_RECEIVED) {
      tcb.hostUnreach = true;
      this.host.wheel.arm(tcb.rexmtTimer, this.host.clock.now());
    }
  }

  /** ICMP error about a segment we sent (hook for the ICMP layer; PMTU and soft errors later). */
  icmpError(type: number, code: number, laddr: number, lport: number, raddr: number, rport: number, seq: number, mtu = 0): void {
    const tcb = this.lookup(laddr, lport, raddr, rport);
    if (!tcb) return;
    // RFC 5927 §4.1: believe an error only about a segment we have in flight
    // (SND.UNA <= SEG.SEQ < SND.MAX); anything else may be spoofed.
    if (!seqInRange(seq, tcb.sndUna, tcb.sndMax)) { this.counters.icmpIgnored++; return; }
    if (type === ICMP_UNREACH && code === UNREACH_NEEDFRAG) {
      // RFC 1191 §6.4 path MTU discovery: our segments carry DF, so a smaller hop says how big
      // they may be. MTUs below 68 (or the 0 of an old router) are not believed.
      if (mtu < 68 || mtu >= tcb.mss + 40) { this.counters.icmpIgnored++; return; }
      const mss = Math.max(mtu - 40, 88);
      if (mss >= tcb.mss) return;
      this.counters.pmtuUpdates++;
      tcb.mss = mss;
      tcb.cc.setMss(tcb.maxSeg);
      // The segment was dropped: send it again at the new size now rather than after an RTO.
      if (tcb.state !== TcpState.SYN_SENT && tcb.state !== TcpState.SYN_RECEIVED) {
        tcb.sndNxt = tcb.sndUna;
        tcpOutput(this, tcb);
      }
      this.dispatch();
      return;
    }
    // RFC 1122 §4.2.3.9: protocol and port unreachable are hard errors; while the connection is
    // still being opened they end it (as Linux does: connect() fails with ECONNREFUSED). Every
    // other error is soft: the connection goes on and retransmission decides (RFC 5461).
    if (type === ICMP_UNREACH && (code === 2 || code === 3) && tcb.state === TcpState.SYN_SENT) {
      this.counters.icmpHardErrors++;
      dropConnection(this, tcb, 'ECONNREFUSED');
      this.dispatch();
      return;
    }
    this.counters.icmpSoftErrors++;
  }

  /**
   * RFC 9293 §3.10.7.1: "If the state is CLOSED (i.e., TCB does not exist), then all data in the
   * incoming segment is discarded. An incoming segment containing a RST is discarded. An incoming
   * segment not containing a RST causes a RST to be sent in response."
   */
  respondClosed(seg: Segment): void {
    this.counters.rcvNoSocket++;
    if (seg.flags & TcpFlag.RST) return;
    if (seg.flags & TcpFlag.ACK) {
      // "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>"
      sendRst(this, seg.dst, seg.dport, seg.src, seg.sport, seg.ack, 0, TcpFlag.RST);
    } else {
      // "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"
      sendRst(this, seg.dst, seg.dport, seg.src, seg.sport, 0, (seg.seq + seg.len) >>> 0, TcpFlag.RST | TcpFlag.ACK);
    }
  }

  /** RFC 5961 §7: at most challenge_ack_limit challenge ACKs per second. */
  challengeAllowed(now: number): boolean {
    if (this.challengeWindowStart < 0 || now - this.challengeWindowStart >= 1000) {
      this.challengeWindowStart = now; this.challengeCount = 0;
    }
    if (this.challengeCount >= this.challengeAckLimit) { this.counters.challengeAckLimited++; return false; }
    this.challengeCount++;
    return true;
  }

  // ---- Connection table ----

  lookup(laddr: number, lport: number, raddr: number, rport: number): Tcb | null {
    let t: Tcb | null = this.buckets[connHash(this.hashKey, laddr, lport, raddr, rport) & this.bucketMask]!;
    while (t !== null && (t.lport !== lport || t.rport !== rport || t.raddr !== raddr || t.laddr !== laddr)) t = t.hashNext;
    return t;
  }

  /** Connections (in the table, any state but TIME_WAIT) with each remote address: the shield's per-source limit. */
  private readonly perSource = new Map<number, number>();

  /** How many connections `raddr` holds with us. */
  connectionsFrom(raddr: number): number { return this.perSource.get(raddr) ?? 0; }

  insert(tcb: Tcb): void {
    this.perSource.set(tcb.raddr, (this.perSource.get(tcb.raddr) ?? 0) + 1);
    if (this.connCount >= this.buckets.length) this.grow();
    const i = connHash(this.hashKey, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport) & this.bucketMask;
    tcb.hashNext = this.buckets[i]!;
    this.buckets[i] = tcb;
    tcb.inTable = true;
    this.connCount++;
    this.portRef(tcb.lport);
  }

  remove(tcb: Tcb): void {
    if (!tcb.inTable) return;
    const i = connHash(this.hashKey, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport) & this.bucketMask;
    let t: Tcb | null = this.buckets[i]!;
    if (t === tcb) {
      this.buckets[i] = tcb.hashNext;
    } else {
      while (t && t.hashNext !== tcb) t = t.hashNext;
      if (t) t.hashNext = tcb.hashNext;
    }
    tcb.hashNext = null;
    tcb.inTable = false;
    this.connCount--;
    this.portUnref(tcb.lport);
    const n = this.perSource.get(tcb.raddr) ?? 0;
    if (n <= 1) this.perSource.delete(tcb.raddr); else this.perSource.set(tcb.raddr, n - 1);
  }

  /** Doubles the bucket array and rehashes every chain (amortised: load stays at most 1). */
  private grow(): void {
    const old = this.buckets;
    const n = old.length * 2;
    const b = new Array<Tcb | null>(n).fill(null);
    const mask = n - 1;
    for (let head of old) {
      while (head !== null) {
        const next: Tcb | null = head.hashNext;
        const i = connHash(this.hashKey, head.laddr, head.lport, head.raddr, head.rport) & mask;
        head.hashNext = b[i]!;
        b[i] = head;
        head = next;
      }
    }
    this.buckets = b;
    this.bucketMask = mask;
  }

  findListener(laddr: number, lport: number): TcpListener | null {
    const l = this.listeners.get(lport);
    if (!l || l.closed) return null;
    if (l.laddr !== 0 && l.laddr !== laddr) return null;
    return l;
  }

  /** Creates a TCB with this stack's defaults (buffers, CC, RTO bounds). */
  newTcb(laddr: number, lport: number, raddr: number, rport: number, ccName?: string): Tcb {
    const rtt = new RttEstimator(this.rttOpts);
    const cc = createCongestionControl(ccName ?? this.ccAlgorithm);
    const t = new Tcb(this, this.store, this.sendSpace, this.recvSpace, this.reassMax, cc, rtt);
    t.laddr = laddr; t.lport = lport; t.raddr = raddr; t.rport = rport;
    t.noDelay = false;
    t.keepIdle = this.keepIdle;
    t.keepIntvl = this.keepIntvl;
    t.keepCnt = this.keepCnt;
    t.tsOffset = this.host.random32();
    return t;
  }

  /** True when another connection may be created (net.inet.tcp.maxconn). */
  canCreate(): boolean {
    if (this.connCount + this.timeWait.count >= this.maxConn) { this.counters.maxConnDrops++; return false; }
    return true;
  }

  // ---- Application API ----

  /** Opens a listener. Throws TcpError EADDRINUSE when the port is taken, EADDRNOTAVAIL for a foreign address. */
  listen(opts: ListenOptions): TcpListener {
    const addr = opts.addr ?? 0;
    if (addr !== 0 && !this.host.isLocalAddress(addr)) throw new TcpError('EADDRNOTAVAIL', `listen: ${addr >>> 0} is not a local address`);
    let port = opts.port;
    if (port === 0) {
      port = this.ports.select(addr, 0, 0, (p) => this.listeners.has(p) || this.portRefs[p] !== 0);
      if (port < 0) throw new TcpError('EADDRINUSE', 'listen: no free ephemeral port');
    } else if (this.listeners.has(port)) {
      throw new TcpError('EADDRINUSE', `listen: port ${port} is in use`);
    }
    const backlog = opts.backlog ?? 511;
    const l = new TcpListener(this, addr, port, backlog);
    if (opts.mss !== undefined && opts.mss > 0) l.mss = opts.mss;
    this.listeners.set(port, l);
    if (this.portRefs[port] === 0) this.host.portChanged?.(6, port, true);
    return l;
  }

  /** @internal called by TcpListener.close() */
  unlisten(l: TcpListener): void {
    if (this.listeners.get(l.localPort) !== l) return;
    this.listeners.delete(l.localPort);
    if (this.portRefs[l.localPort] === 0) this.host.portChanged?.(6, l.localPort, false);
  }

  /**
   * Active open: sends the SYN and returns the socket at once (await `socket.connected()` or use
   * onConnect). Throws TcpError: EADDRINUSE (4-tuple taken / no ephemeral port), ENETUNREACH (no
   * route), EINVAL (bad port), EAGAIN (net.inet.tcp.maxconn reached).
   */
  connect(opts: ConnectOptions): TcpSocket {
    const { raddr, rport } = opts;
    if (!(rport > 0 && rport < 65536)) throw new TcpError('EINVAL', `connect: bad port ${rport}`);
    const mtu = this.host.routeMtu(raddr);
    if (mtu === 0) throw new TcpError('ENETUNREACH', 'connect: no route to host');
    const laddr = opts.laddr || this.host.sourceAddress(raddr);
    if (laddr === 0) throw new TcpError('ENETUNREACH', 'connect: no source address');
    let lport = opts.lport ?? 0;
    const now = this.timeWait.count > 0 && this.twReuse ? this.host.clock.now() : 0;
    if (lport !== 0) {
      const tw = this.lookupTimeWait(laddr, lport, raddr, rport);
      if (this.lookup(laddr, lport, raddr, rport) || (tw >= 0 && !this.timeWaitReusable(tw, now))) {
        throw new TcpError('EADDRINUSE', `connect: ${lport} -> ${rport} is in use`);
      }
    } else {
      // RFC 6056 check_suitable_port(): not a listener's, not a live 4-tuple, not one in
      // TIME_WAIT (unless tw_reuse allows it).
      lport = this.ports.select(laddr, raddr, rport, (p) => {
        if (this.listeners.has(p) || this.lookup(laddr, p, raddr, rport) !== null) return true;
        const tw = this.lookupTimeWait(laddr, p, raddr, rport);
        return tw >= 0 && !this.timeWaitReusable(tw, now);
      });
      if (lport < 0) throw new TcpError('EADDRINUSE', 'connect: no free ephemeral port');
    }
    if (!this.canCreate()) throw new TcpError('EAGAIN', 'connect: net.inet.tcp.maxconn reached');
    const tcb = this.newTcb(laddr, lport, raddr, rport, opts.congestionControl);
    // Taking over a 4-tuple from TIME_WAIT (tw_reuse): sequence numbers start above the old
    // incarnation's (RFC 1122 §4.2.2.13) and TSvals go on rising from its offset (RFC 6191).
    let isnFloor = -1;
    const old = this.lookupTimeWait(laddr, lport, raddr, rport);
    if (old >= 0) {
      isnFloor = (this.timeWait.sndNxtOf(old) + 65537) >>> 0;
      tcb.tsOffset = this.timeWait.tsOffsetOf(old);
      this.counters.timeWaitReused++;
      this.timeWait.remove(old);
    }
    const sock = new TcpSocket(tcb);
    if (opts.noDelay) tcb.noDelay = true;
    if (opts.mss !== undefined && opts.mss > 0) tcb.userMss = opts.mss;
    if (opts.tos !== undefined) tcb.tos = opts.tos & 0xfc;
    this.insert(tcb);
    this.counters.connAttempts++;
    startConnect(this, tcb, mtu, isnFloor);
    this.dispatch();
    return sock;
  }

  // ---- RACK state, reused: its record rings are typed arrays, too dear to allocate per connection ----

  private readonly rackPool: Rack[] = [];

  /** @internal a RACK state for a connection's first data. */
  takeRack(): Rack {
    const r = this.rackPool.pop();
    return r ?? new Rack();
  }

  /** @internal a freed connection's RACK state back to the pool (bounded). */
  giveRack(r: Rack): void {
    r.reset();
    if (this.rackPool.length < 1024) this.rackPool.push(r);
  }

  // ---- Application-driven output ----

  /** @internal the application changed what `tcb` may send (write, read, shutdown). */
  requestOutput(tcb: Tcb): void {
    if (!this.deferOutput) {
      tcpOutput(this, tcb);
      this.dispatch();
      return;
    }
    if (tcb.outPending) return;
    tcb.outPending = true;
    this.outQueue.push(tcb);
    if (this.outQueue.length === 1) this.host.outputPending?.();
  }

  /** Sends what the connections marked by requestOutput() may send now (each once). */
  flushOutput(): void {
    const q = this.outQueue;
    if (q.length === 0) return;
    const now = this.host.clock.now();
    // Callbacks during dispatch may mark more connections: they join this flush.
    for (let i = 0; i < q.length; i++) {
      const t = q[i]!;
      t.outPending = false;
      tcpOutput(this, t, now);
    }
    q.length = 0;
    this.dispatch();
    if (q.length) this.flushOutput();
  }

  /** Output deferred so far goes now, and later output is immediate (the run loop stopped). */
  setDeferOutput(on: boolean): void {
    this.deferOutput = on;
    if (!on) this.flushOutput();
  }

  // ---- Event delivery ----

  /** @internal marks events for delivery after the current input/timer processing. */
  post(tcb: Tcb, ev: number): void {
    tcb.events |= ev;
    if (!tcb.queued) { tcb.queued = true; this.eventQueue[this.eventCount++] = tcb; }
  }

  /** Delivers queued events (callbacks may re-enter the API; their events are picked up here). */
  dispatch(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    const q = this.eventQueue;
    let i = 0;
    try {
      for (; i < this.eventCount; i++) {
        const t = q[i]!;
        q[i] = null;
        t.queued = false;
        const ev = t.events;
        t.events = 0;
        if (ev !== 0) dispatchEvents(t, ev);
      }
    } finally {
      // When a callback threw, what was not delivered yet waits for the next dispatch.
      const rest = i < this.eventCount ? this.eventCount - i - 1 : 0;
      for (let k = 0; k < rest; k++) { q[k] = q[i + 1 + k]!; q[i + 1 + k] = null; }
      this.eventCount = rest;
      this.dispatching = false;
    }
  }

  /** Drops every connection and listener (stack shutdown): no timers or buffers left. */
  destroy(): void {
    for (const t of this.connections()) freeTcb(this, t);
    this.timeWait.clear();
    for (const l of [...this.listeners.values()]) l.close();
    this.eventQueue.length = 0;
    this.eventCount = 0;
  }
}

/**
 * The connection table's hash of a 4-tuple under a random key (multiply-xorshift rounds, all in
 * 32-bit integers): many connections from one client to one port, or from many clients to one
 * listener, spread over the buckets.
 */
function connHash(key: number, laddr: number, lport: number, raddr: number, rport: number): number {
  let h = Math.imul(raddr ^ key, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ laddr, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 13) ^ ((lport << 16) | rport), 0xc2b2ae3d);
  return (h ^ (h >>> 16)) >>> 0;
}

function defineTcpSysctls(host: TcpHost): void {
  const s = host.sysctl;
  const int = (name: string, def: number, description: string, min = 0, max = 0x7fffffff) => s.define({ name, type: 'int', default: def, description, min, max });
  const bool = (name: string, def: boolean, description: string) => s.define({ name, type: 'bool', default: def, description });
  int('net.inet.tcp.msl', 30000, 'Maximum segment lifetime in ms (TIME_WAIT lasts 2*MSL)', 1);
  bool('net.inet.tcp.tw_reuse', false, 'Let an outgoing connection take over a 4-tuple in TIME_WAIT when both incarnations use timestamps and the last segment is over 1 s old (RFC 6191; Linux tcp_tw_reuse)');
  int('net.inet.tcp.rexmit_min', 200, 'Minimum retransmission timeout and floor of its variance term (ms): RTO = SRTT + max(4*RTTVAR, rexmit_min), as Linux\'s rto_min', 1);
  int('net.inet.tcp.rexmit_max', 60000, 'Maximum retransmission timeout (ms)', 1);
  int('net.inet.tcp.rexmit_initial', 1000, 'Initial retransmission timeout before an RTT sample (ms, RFC 6298)', 1);
  bool('net.inet.tcp.delayed_ack', true, 'Delay ACKs (RFC 1122 §4.2.3.2): ACK every second full segment or after delacktime');
  int('net.inet.tcp.delacktime', 40, 'Delayed ACK timeout (ms)', 1, 40);
  int('net.inet.tcp.syncookies', 1, 'SYN cookies: 0 off, 1 when the SYN queue overflows, 2 always', 0, 2);
  s.define({ name: 'net.inet.tcp.cc.algorithm', type: 'string', default: 'newreno', description: 'Default congestion control', choices: CC_ALGORITHMS });
  int('net.inet.tcp.sendspace', 262144, 'Send buffer size (bytes)', 1024, 1 << 30);
  int('net.inet.tcp.recvspace', 262144, 'Receive buffer size (bytes)', 1024, 1 << 30);
  int('net.inet.tcp.mssdflt', 536, 'Send MSS when the peer offers none (RFC 9293 §3.7.1)', 88, 65495);
  bool('net.inet.tcp.rfc1323', true, 'Offer window scaling and timestamps (RFC 7323)');
  bool('net.inet.tcp.sack.enable', true, 'Offer and use SACK (RFC 2018, RFC 6675)');
  bool('net.inet.tcp.tlp', true, 'Tail loss probes (RFC 8985 §7): with SACK, retransmit the last segment after ~2 RTTs without an ACK, so a lost tail is repaired by SACK recovery instead of a retransmission timeout');
  bool('net.inet.tcp.rack', true, 'RACK loss detection (RFC 8985 §6): with SACK, a segment is lost once one sent after it was delivered a reordering window later; finds lost retransmissions without a retransmission timeout');
  int('net.inet.tcp.keepidle', 7200000, 'Idle time before keepalive probes (ms)', 1);
  int('net.inet.tcp.keepintvl', 75000, 'Interval between keepalive probes (ms)', 1);
  int('net.inet.tcp.keepcnt', 8, 'Unanswered keepalive probes before the connection is dropped', 1);
  int('net.inet.tcp.maxconn', 65536, 'Maximum connections (all states)', 1);
  int('net.inet.tcp.syn_backlog', 1024, 'Maximum SYN_RECEIVED connections per listener before SYN cookies / drops', 1);
  int('net.inet.tcp.reass.maxsegments', 64, 'Out-of-order ranges kept per connection', 1, 4096);
  int('net.inet.tcp.challenge_ack_limit', 1000, 'Challenge ACKs per second (RFC 5961 §7)', 1);
  int('net.inet.tcp.initcwnd_segments', 10, 'Initial congestion window in segments (RFC 6928)', 1, 100);
  int('net.inet.tcp.rexmit_count', 12, 'Retransmissions of data before the connection is dropped (ETIMEDOUT)', 1, 100);
  int('net.inet.tcp.syn_retries', 6, 'SYN retransmissions before connect fails with ETIMEDOUT', 1, 100);
  int('net.inet.tcp.finwait2_timeout', 60000, 'How long an orphaned connection may stay in FIN_WAIT_2 (ms)', 1);
  int('net.inet.tcp.persmin', 200, 'Minimum persist (zero-window probe) interval (ms)', 1);
  int('net.inet.tcp.persmax', 60000, 'Maximum persist interval (ms)', 1);
  int('net.inet.tcp.persist_probes', 15, 'Unanswered zero-window probes before the connection is dropped (ETIMEDOUT); also the most probes an orphaned connection gets, answered or not (Linux tcp_retries2 / tcp_orphan_retries)', 1, 1000);
  int('net.inet.tcp.maxpersistidle', 7200000, 'Longest a connection in persist may go without hearing from the peer before it is dropped (ms; FreeBSD tcp_maxpersistidle)', 1);
  int('net.inet.ip.portrange.first', 49152, 'First ephemeral port (RFC 6056)', 1, 65535);
  int('net.inet.ip.portrange.last', 65535, 'Last ephemeral port', 1, 65535);
}
