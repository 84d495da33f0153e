// The TCP module the Stack instantiates: segment input (checksum, options, demux, resets for
// closed ports), ICMP errors, connect/listen, deferred output and event delivery to sockets.
// The rooms it composes: demux.ts (tables), tunables.ts, counters.ts, lifecycle.ts, ports.ts.
import { icmpErrorV4 } from './icmperr.js';
import { Csum, type PacketBuffer } from '../../base/pktbuf.js';
import { pseudoHeaderV4, sum16, fold } from '../../wire/checksum.js';
import { WireError } from '../../wire/errors.js';
import { TcpFlag, TcpHeader, TcpOptions, parseTcpOptions } from '../../wire/tcp.js';
import { createCongestionControl } from './congestion/index.js';
import { TcpCounters, type TcpConnectionInfo } from './counters.js';
import { TcpDemux } from './demux.js';
import { TcpTunables } from './tunables.js';
import type { TcpHost } from './host.js';
import { segmentArrives } from './input.js';
import { IsnGenerator } from './isn.js';
import { listenerInput, TcpListener, type ListenOptions } from './listen.js';
import { Rack, onRackTimer } from './rack.js';
import { sendRst, tcpOutput } from './output.js';
import { seqInRange } from './seq.js';
import { EphemeralPorts, TcpBinding, TcpPortTable } from './ports.js';
import { RttEstimator } from './rtt.js';
import { Path } from '../ip/path.js';
import { RingStore } from './buffers.js';
import { SynCookies } from './syncookie.js';
import { TfoCache, TfoCookies, fastOpenConnect, tfoKeyFrom } from './fastopen.js';
import { Tcb, TcpState, type TcbTimerHandlers } from './tcb.js';
import { onDelackTimer, onKeepTimer, onPersistTimer, onRexmtTimer } from './timers.js';
import { TcpSocket, TcpError, type ConnectOptions, deliverTcbEvents } from './socket.js';
import { ReadyList } from '../ready.js';
import { dropConnection, freeTcb, pathMss, startConnect } from './lifecycle.js';
import { TimeWaitTable, type TimeWaitInfo } from './timewait.js';
import { AF_INET, AF_INET6, EndsPrf } from './ends.js';
import { tcp6Bind, tcp6Connect, tcp6IcmpError, tcp6Input, tcp6Listen } from './inet6.js';
import { sipKeyFromRandom } from './siphash.js';
import { SourceCounts } from './sources.js';

export { TcpCounters, type TcpConnectionInfo } from './counters.js';
export { Segment } from './segment.js';
import { Segment } from './segment.js';

export const IPPROTO_TCP = 6;


/** A listening socket as netstat shows it. */
export interface TcpListenerInfo {
  readonly laddr: number;
  /** An IPv6 listener's address (:: for a dual-stack or ipv6Only wildcard). */
  readonly laddr6?: Uint8Array;
  readonly lport: number;
  /** Established connections waiting for accept(). */
  readonly acceptQueue: number;
  /** Half-open connections (SYN_RECEIVED). */
  readonly synQueue: number;
  readonly backlog: number;
}

export class Tcp {
  readonly counters = new TcpCounters();
  readonly tun: TcpTunables;
  readonly isnGen: IsnGenerator;
  private readonly sources: SourceCounts;
  readonly cookies: SynCookies;
  /** TCP Fast Open: the server's cookies and the client's cookie cache (fastopen.ts). */
  readonly tfoCookies: TfoCookies;
  readonly tfoCache = new TfoCache();
  readonly ports: EphemeralPorts;
  /** Bound ports (bind, listen, connect after bind): one table for the engine and the POSIX layer. */
  readonly bindings = new TcpPortTable();
  /**
   * Flow ownership of active opens (F-Stack's ff_rss_check): when set, an ephemeral port is
   * chosen only if this says the return traffic of (laddr, lport) <- (raddr, rport) comes to
   * this stack's queue. Null (one worker) checks nothing.
   */
  portFilter: ((laddr: number, lport: number, raddr: number, rport: number) => boolean) | null = null;
  /** portFilter for IPv6 active opens (16-byte addresses). */
  portFilter6: ((laddr6: Uint8Array, lport: number, raddr6: Uint8Array, rport: number) => boolean) | null = null;
  readonly store = new RingStore();
  /** @internal what each TCB's timers run. */
  readonly timerHandlers: TcbTimerHandlers = {
    rexmt: onRexmtTimer, persist: onPersistTimer, keep: onKeepTimer, delack: onDelackTimer, reo: onRackTimer,
  };
  /** Connections and listeners by address and port. */
  readonly demux: TcpDemux;
  /** Connections in TIME_WAIT, as compact records (timewait.ts). */
  readonly timeWait: TimeWaitTable;
  readonly hdr = new TcpHeader();
  /** @internal a path resolved per use: connect()'s check, stateless replies (RST, SYN cookie, TIME_WAIT ACK). */
  readonly scratchPath = new Path();
  /** @internal the same for IPv6 replies (a path keeps its family for life). */
  readonly scratchPath6 = new Path();
  /** What IPv6 addresses enter the ISN, SYN-cookie and port PRFs as (ends.ts). */
  readonly prf: EndsPrf;
  readonly seg = new Segment();
  /** Sockets with events to deliver (ready.ts). */
  private readonly ready = new ReadyList<Tcb>(deliverTcbEvents);
  /**
   * The host delivers the events that input and timers raise (deliverEvents()) once per pass
   * over a receive burst, instead of dispatch() delivering them at the end of each segment.
   * The Stack sets it (Stack.poll delivers); a Tcp driven alone (unit harnesses) keeps it off.
   */
  batchEvents = false;
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

  constructor(readonly host: TcpHost) {
    this.tun = new TcpTunables(host.sysctl);
    const r = () => host.random32();
    this.isnGen = new IsnGenerator(r);
    // The table's hash key comes from the ISN secret (a keyed PRF of a fixed tuple), so seeded
    // simulations draw exactly the random numbers they drew before.
    this.demux = new TcpDemux(this.isnGen.isn(0, 0x74737461, 0, 0x636b0000, 0) | 1);
    // Derived from the ISN secret too, not drawn: seeded runs keep their random sequence.
    let k = 0;
    this.prf = new EndsPrf(sipKeyFromRandom(() => this.isnGen.isn(0, 0x36, ++k, 0x36, k)));
    let j = 0;
    this.sources = new SourceCounts(this.isnGen.isn(0, 0x70657273, 0, 0x72630000, 0), sipKeyFromRandom(() => this.isnGen.isn(0, 0x53, ++j, 0x53, j)));
    // The exception path (AF_XDP) follows which local ports the stack holds.
    const changed = host.portChanged;
    if (changed) this.demux.onPortChange = (port, inUse) => changed.call(host, 6, port, inUse);
    this.cookies = new SynCookies(r);
    // The TFO key, like the table's hash key, comes from the ISN secret (no extra random draws).
    this.tfoCookies = new TfoCookies(tfoKeyFrom((l, r) => this.isnGen.isn(0, l, 0, r, 0)));
    this.ports = new EphemeralPorts(r, this.tun.portFirst.value, this.tun.portLast.value);
    this.timeWait = new TimeWaitTable(this);
  }

  /** Connections that still hold state (including TIME_WAIT and not-yet-accepted ones). */
  get activeTcbs(): number { return this.demux.count + this.timeWait.count; }
  /** Connections in TIME_WAIT (compact records, no TCB). */
  get timeWaitCount(): number { return this.timeWait.count; }
  get listenerCount(): number { return this.demux.listenerCount; }

  /**
   * Connections with a full TCB: every state but TIME_WAIT (for tests and tools that look
   * inside; allocates). TIME_WAIT entries are in `timeWaitEntries()`; `connectionInfo()` lists both.
   */
  connections(): Tcb[] { return this.demux.connections(); }

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
    for (const l of this.demux.allListeners()) {
      out.push({ laddr: l.laddr, ...(l.family === AF_INET6 && { laddr6: l.laddr6 }), lport: l.localPort, acceptQueue: l.pending, synQueue: l.synQueueLen, backlog: l.backlog });
    }
    return out;
  }

  /** Connections in ESTABLISHED or CLOSE_WAIT (FreeBSD's tcps_curr_estab gauge; walks the table). */
  currentEstablished(): number {
    let n = 0;
    for (const t of this.demux.connections()) if (t.state === TcpState.ESTABLISHED || t.state === TcpState.CLOSE_WAIT) n++;
    return n;
  }

  /** @internal the connection table's hash of a 4-tuple */
  hash(laddr: number, lport: number, raddr: number, rport: number): number {
    return this.demux.hash(laddr, lport, raddr, rport);
  }

  /** Local ports a listener, connection or TIME_WAIT entry holds (allocates: for subscribers). */
  portsInUse(): number[] {
    const out: number[] = [];
    for (let p = 1; p < 65536; p++) if (this.demux.portRefs[p] !== 0 || this.demux.hasListener(p)) out.push(p);
    return out;
  }

  /** @internal moves a connection into TIME_WAIT (its TCB just left the table); returns the slot. */
  addTimeWait(tcb: Tcb, expires: number, wndField: number, rcvWnd: number): number {
    this.demux.refPort(tcb.lport);
    return this.timeWait.add(tcb, this.demux.hashOf(tcb), expires, wndField, rcvWnd);
  }

  /** @internal a TIME_WAIT entry was freed */
  timeWaitGone(lport: number): void { this.demux.unrefPort(lport); }

  /** The TIME_WAIT slot of a 4-tuple, or -1. */
  lookupTimeWait(laddr: number, lport: number, raddr: number, rport: number): number {
    if (this.timeWait.count === 0) return -1;
    return this.timeWait.lookup(this.demux.hash(laddr, lport, raddr, rport), laddr, lport, raddr, rport);
  }

  /**
   * True when a TIME_WAIT entry does not stop a new outgoing connection on its 4-tuple:
   * net.inet.tcp.tw_reuse, both incarnations with timestamps (RFC 6191: the peer's PAWS then
   * rejects the old one's duplicates; our TSvals keep rising because the new connection inherits
   * the old TSval offset), and like Linux, at least a second since the last segment arrived.
   */
  timeWaitReusable(slot: number, now: number): boolean {
    return this.tun.twReuse.value && this.tun.rfc1323.value && this.timeWait.reusable(slot, now);
  }

  // ---- Receive path ----

  /**
   * One TCP segment: buf.start is the TCP header, buf.end the segment end. buf.csum tells whether
   * to verify the checksum (None = verify). `ecn`: the IP header's ECN field (the low two bits
   * of the TOS / traffic class). Takes ownership of buf.
   */
  input(buf: PacketBuffer, src: number, dst: number, ecn = 0): void {
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
    seg.buf = buf; seg.bytes = buf.data; seg.family = AF_INET; seg.src = src; seg.dst = dst;
    seg.sport = h.srcPort; seg.dport = h.dstPort;
    seg.seq = h.seq; seg.ack = h.ack; seg.flags = h.flags; seg.wnd = h.window; seg.up = h.urgentPointer;
    seg.dataOff = buf.start + hl; seg.dataLen = len - hl; seg.ecn = ecn & 3;
    if (seg.dport === 0 || seg.sport === 0) { c.rcvBadHeader++; buf.release(); return; }

    const demux = this.demux;
    const hh = demux.hash(dst, seg.dport, src, seg.sport);
    const tcb = demux.lookupHashed(hh, dst, seg.dport, src, seg.sport);
    if (tcb !== null) {
      segmentArrives(this, tcb, seg);
    } else {
      const tw = this.timeWait.count > 0 ? this.timeWait.lookup(hh, dst, seg.dport, src, seg.sport) : -1;
      if (tw >= 0) this.timeWait.input(tw, seg);
      else {
        const l = demux.findListener(dst, seg.dport);
        if (l) listenerInput(this, l, seg);
        else this.respondClosed(seg);
      }
    }
    buf.release();
    this.dispatch();
  }

  /** One TCP segment over IPv6 (inet6.ts). Takes ownership of buf. */
  input6(buf: PacketBuffer, bytes: Uint8Array, srcOff: number, dstOff: number, ecn = 0): void { tcp6Input(this, buf, bytes, srcOff, dstOff, ecn); }

  /** ICMPv6 error about a segment we sent (inet6.ts). */
  icmpError6(type: number, code: number, l6: Uint8Array, lport: number, r6: Uint8Array, rport: number, seq: number, word: number): void {
    tcp6IcmpError(this, type, code, l6, lport, r6, rport, seq, word);
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

  /** ICMP error about a segment we sent (icmperr.ts: PMTU, hard and soft errors). */
  icmpError(type: number, code: number, laddr: number, lport: number, raddr: number, rport: number, seq: number, mtu = 0): void {
    const tcb = this.lookup(laddr, lport, raddr, rport);
    if (tcb) icmpErrorV4(this, tcb, type, code, seq, mtu);
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
      sendRst(this, seg.dst, seg.dport, seg.src, seg.sport, seg.ack, 0, TcpFlag.RST, seg);
    } else {
      // "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"
      sendRst(this, seg.dst, seg.dport, seg.src, seg.sport, 0, (seg.seq + seg.len) >>> 0, TcpFlag.RST | TcpFlag.ACK, seg);
    }
  }

  /** RFC 5961 §7: at most challenge_ack_limit challenge ACKs per second. */
  challengeAllowed(now: number): boolean {
    if (this.challengeWindowStart < 0 || now - this.challengeWindowStart >= 1000) {
      this.challengeWindowStart = now; this.challengeCount = 0;
    }
    if (this.challengeCount >= this.tun.challengeAckLimit.value) { this.counters.challengeAckLimited++; return false; }
    this.challengeCount++;
    return true;
  }

  // ---- Connection table (demux.ts) ----

  lookup(laddr: number, lport: number, raddr: number, rport: number): Tcb | null { return this.demux.lookup(laddr, lport, raddr, rport); }

  /** How many connections a source holds with us: an IPv4 address, or sourceKey6() of an IPv6 one. */
  connectionsFrom(k: number): number { return this.sources.count(k); }
  /** The shield's name for the IPv6 source at b[off..]: its /64 as a keyed hash. */
  sourceKey6(b: Uint8Array, off: number): number { return this.sources.key6(b, off); }

  insert(tcb: Tcb): void {
    this.sources.add(tcb);
    this.demux.insert(tcb);
  }

  remove(tcb: Tcb): void {
    if (!tcb.inTable) return;
    this.demux.remove(tcb);
    this.sources.remove(tcb);
  }

  findListener(laddr: number, lport: number): TcpListener | null { return this.demux.findListener(laddr, lport); }

  /** The listener for a received segment's destination, either family. */
  findListenerFor(seg: Segment): TcpListener | null {
    return seg.family === AF_INET6 ? this.demux.findListener6(seg.laddr6, seg.dport) : this.demux.findListener(seg.dst, seg.dport);
  }

  /** The connection of an IPv6 4-tuple, or null. */
  lookup6(l6: Uint8Array, lport: number, r6: Uint8Array, rport: number): Tcb | null { return this.demux.lookup6(l6, lport, r6, rport); }

  /** Creates a TCB with this stack's defaults (buffers, CC, RTO bounds). */
  newTcb(laddr: number, lport: number, raddr: number, rport: number, ccName?: string): Tcb {
    const tun = this.tun;
    const rtt = new RttEstimator(tun.rttOpts);
    const cc = createCongestionControl(ccName ?? tun.ccAlgorithm.value);
    const t = new Tcb(this, this.store, tun.sendSpace.value, tun.recvSpace.value, tun.reassMax.value, cc, rtt);
    t.laddr = laddr; t.lport = lport; t.raddr = raddr; t.rport = rport;
    t.noDelay = false;
    t.keepIdle = tun.keepIdle.value;
    t.keepIntvl = tun.keepIntvl.value;
    t.keepCnt = tun.keepCnt.value;
    t.tsOffset = this.host.random32();
    // Autotuning may grow a buffer up to its max (never below the starting size).
    t.sndBufMax = tun.sendBufAuto.value && tun.sendBufMax.value > tun.sendSpace.value ? tun.sendBufMax.value : 0;
    t.rcvBufMax = tun.recvBufAuto.value && tun.recvBufMax.value > tun.recvSpace.value ? tun.recvBufMax.value : 0;
    return t;
  }

  /** True when another connection may be created (net.inet.tcp.maxconn). */
  canCreate(): boolean {
    if (this.demux.count + this.timeWait.count >= this.tun.maxConn.value) { this.counters.maxConnDrops++; return false; }
    return true;
  }

  // ---- Application API ----

  /**
   * bind(): takes addr:port for a socket (port 0: chosen at listen or connect). Throws TcpError
   * EADDRNOTAVAIL for an address that is not ours, EADDRINUSE on a conflict (Linux's rules:
   * overlapping addresses conflict unless both set SO_REUSEADDR and neither listens).
   */
  bind(addr: number, port: number, reuseAddr = false): TcpBinding {
    if (addr !== 0 && !this.host.isLocalAddress(addr)) throw new TcpError('EADDRNOTAVAIL', `bind: ${addr >>> 0} is not a local address`);
    if (!(port >= 0 && port < 65536 && Number.isInteger(port))) throw new TcpError('EINVAL', `bind: bad port ${port}`);
    const b = new TcpBinding(addr, port, reuseAddr);
    if (port !== 0) {
      if (this.bindings.conflicts(addr, port, reuseAddr)) throw new TcpError('EADDRINUSE', `bind: port ${port} is in use`);
      this.bindings.hold(b, port);
    }
    return b;
  }

  /** Gives a binding's port back (close of a socket that bound). */
  unbind(b: TcpBinding): void { this.bindings.release(b); }

  /** A port nobody holds and no connection uses, from the ephemeral range; -1 when none is left. */
  /** @internal */
  freePort(addr: number): number {
    return this.ports.select(addr, 0, 0, (p) => this.bindings.has(p) || this.demux.portRefs[p] !== 0);
  }

  /** Opens a listener. Throws TcpError EADDRINUSE when the port is taken, EADDRNOTAVAIL for a foreign address. */
  listen(opts: ListenOptions): TcpListener {
    const own = opts.binding;
    if (own ? own.addr6 !== null : opts.addr6 !== undefined) return tcp6Listen(this, opts);
    const addr = own ? own.addr : opts.addr ?? 0;
    if (addr !== 0 && !this.host.isLocalAddress(addr)) throw new TcpError('EADDRNOTAVAIL', `listen: ${addr >>> 0} is not a local address`);
    let port = own ? own.port : opts.port;
    // Node's servers set SO_REUSEADDR (libuv does, on every TCP bind), so a listener opened here does too.
    const b = own ?? new TcpBinding(addr, port, opts.reuseAddr ?? true);
    if (port === 0) {
      port = this.freePort(addr);
      if (port < 0) throw new TcpError('EADDRINUSE', 'listen: no free ephemeral port');
    } else if (this.bindings.conflicts(addr, port, b.reuseAddr, b)) {
      throw new TcpError('EADDRINUSE', `listen: port ${port} is in use`);
    }
    this.bindings.hold(b, port);
    b.listening = true;
    const backlog = opts.backlog ?? 511;
    const l = new TcpListener(this, addr, port, backlog, b);
    if (opts.mss !== undefined && opts.mss > 0) l.mss = opts.mss;
    if (opts.fastOpen !== undefined && opts.fastOpen > 0) l.tfoQlen = opts.fastOpen;
    this.demux.addListener(l);
    return l;
  }

  /** bind() of an IPv6 socket: `addr6` (:: = any; ::ffff:a.b.c.d = that IPv4 address), IPV6_V6ONLY when `v6Only`. */
  bind6(addr6: Uint8Array, port: number, reuseAddr = false, v6Only = false): TcpBinding { return tcp6Bind(this, addr6, port, reuseAddr, v6Only); }

  /** @internal called by TcpListener.close() */
  unlisten(l: TcpListener): void {
    this.demux.removeListener(l);
    l.binding.listening = false;
    this.bindings.release(l.binding);
  }

  /**
   * Active open: sends the SYN and returns the socket at once (await `socket.connected()` or use
   * onConnect). Throws TcpError: EADDRINUSE (4-tuple taken / no ephemeral port), ENETUNREACH (no
   * route), EINVAL (bad port), EAGAIN (net.inet.tcp.maxconn reached).
   */
  connect(opts: ConnectOptions): TcpSocket {
    if (opts.raddr6 !== undefined) return tcp6Connect(this, opts, opts.raddr6);
    const { raddr, rport } = opts;
    if (!(rport > 0 && rport < 65536)) throw new TcpError('EINVAL', `connect: bad port ${rport}`);
    const own = opts.binding;
    const path = this.scratchPath;
    if (!this.host.resolvePath(path, (own ? own.addr : opts.laddr) || 0, raddr)) throw new TcpError('ENETUNREACH', 'connect: no route to host');
    const laddr = path.src;
    let lport = (own ? own.port : opts.lport) ?? 0;
    const now = this.timeWait.count > 0 && this.tun.twReuse.value ? this.host.clock.now() : 0;
    if (lport !== 0) {
      const tw = this.lookupTimeWait(laddr, lport, raddr, rport);
      if (this.lookup(laddr, lport, raddr, rport) || (tw >= 0 && !this.timeWaitReusable(tw, now))) {
        throw new TcpError('EADDRINUSE', `connect: ${lport} -> ${rport} is in use`);
      }
    } else {
      // RFC 6056 check_suitable_port(): not a listener's, not a live 4-tuple, not one in
      // TIME_WAIT (unless tw_reuse allows it).
      const mine = this.portFilter;
      lport = this.ports.select(laddr, raddr, rport, (p) => {
        if (mine !== null && !mine(laddr, p, raddr, rport)) return true;
        if (this.bindings.has(p) || this.lookup(laddr, p, raddr, rport) !== null) return true;
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
    if (own && !own.held) this.bindings.hold(own, lport);
    const sock = new TcpSocket(tcb);
    if (opts.noDelay) tcb.noDelay = true;
    if (opts.mss !== undefined && opts.mss > 0) tcb.userMss = opts.mss;
    if (opts.tos !== undefined) tcb.tos = opts.tos & 0xfc;
    this.insert(tcb);
    this.counters.connAttempts++;
    // RFC 7413: a TFO SYN may wait for the end of this run-loop iteration (fastopen.ts).
    const defer = opts.fastOpen === true && fastOpenConnect(this, tcb, opts.synData, pathMss(this, tcb.path, tcb));
    startConnect(this, tcb, isnFloor, defer);
    this.deliverEvents();
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
      this.deliverEvents();
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
    this.deliverEvents();
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
    this.ready.mark(tcb);
  }

  /** True when events wait for delivery (the run loop then comes back at once). */
  get eventsPending(): boolean { return this.ready.pending; }

  /**
   * A delivery point of the engine (the end of a segment's input, an ICMP error, a timer):
   * delivers the queued events now, unless the host batches them (batchEvents).
   */
  dispatch(): void {
    if (!this.batchEvents) this.ready.deliver();
  }

  /**
   * Delivers queued events, each socket's once (socket.ts: deliverTcbEvents). Callbacks may
   * re-enter the API; the events they raise join this pass. What the application itself does
   * (close, connect, immediate output) delivers through here at once.
   */
  deliverEvents(): void { this.ready.deliver(); }

  /** Drops every connection and listener (stack shutdown): no timers or buffers left. */
  destroy(): void {
    for (const t of this.connections()) freeTcb(this, t);
    this.timeWait.clear();
    for (const l of this.demux.allListeners()) l.close();
    this.ready.clear();
  }
}
