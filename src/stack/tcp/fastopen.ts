// TCP Fast Open (RFC 7413): the server's keyed, rotating cookies, the client's cookie cache per
// destination, and the per-connection state a TFO handshake needs (allocated only for one).
//
// Cookie (server, §4.1.2): the first 8 bytes of SipHash-2-4 keyed by a secret, over the local
// and peer addresses and the key period (floor(now / TFO_KEY_PERIOD_MS)). A cookie is accepted
// during its own period and the next one, so keys rotate without state: after two periods a
// client's cookie fails, the server answers with a fresh one and the data is sent again after
// the handshake (§4.2.2).
import { TFO_COOKIE_MAX } from '../../wire/tcp.js';
import { type SipKey, sipKeyFromBytes, siphash24Words, siphashHi } from './siphash.js';
import { seqDiff, seqLt } from './seq.js';
import type { Tcb } from './tcb.js';
import type { TcpListener } from './listen.js';
import type { Segment, Tcp } from './tcp.js';

/** net.inet.tcp.fastopen bits, Linux's TFO_* values. */
export const TfoBits = {
  /** Client: send data in the SYN when the application asks (MSG_FASTOPEN, the `tfo` option). */
  ClientEnable: 0x1,
  /** Server: accept data in the SYN on listeners that asked for TFO (TCP_FASTOPEN / the listen option). */
  ServerEnable: 0x2,
  /** Client: send data in the SYN even without a cookie. */
  ClientNoCookie: 0x4,
  /** Server: accept data in the SYN without a cookie. */
  ServerNoCookie: 0x200,
  /** Server: every listener does TFO, with the listen backlog as its TFO queue length. */
  ServerWithoutSockopt: 0x400,
} as const;

/** Cookie length we hand out (Linux's TCP_FASTOPEN_COOKIE_SIZE). */
export const TFO_COOKIE_LEN = 8;
/** How long one cookie key lasts; a cookie is valid in its period and the next. */
export const TFO_KEY_PERIOD_MS = 3_600_000;
/** Client cookie cache size (destinations); the oldest entry makes room. */
const CACHE_MAX = 1024;
/** After a SYN with data went unanswered, no data in SYNs to that destination for 60 s << (losses - 1) (Linux's tcp_fastopen_cache_get). */
const SYN_LOSS_BACKOFF_MS = 60_000;

/**
 * The peer's key for cookies and the cache: its address (IPv4 as is, IPv6 as the stack's keyed
 * 32-bit digest of its 16 bytes, as for ISNs and SYN cookies).
 */
export function tfoPeerKey(tcp: Tcp, tcb: Tcb): number { return tcp.prf.remote(tcb) >>> 0; }
/** The local address a server cookie is bound to (see tfoPeerKey). */
export function tfoLocalKey(tcp: Tcp, tcb: Tcb): number { return tcp.prf.local(tcb) >>> 0; }

/** A passive connection created from a SYN with data (in its listener's TFO queue until established). */
export function tfoChild(tcb: Tcb): boolean { return tcb.tfo !== null && tcb.tfo.listener !== null; }

/** What one connection doing a TFO handshake remembers (Tcb.tfo; null for every other connection). */
export class TfoState {
  /** Server: the listener whose TFO queue counts this connection until its handshake completes. */
  listener: TcpListener | null = null;
  /** Server: a cookie to put on the SYN-ACK (cookieLen bytes of cookie); client: the cookie the SYN carries. */
  cookieLen = -1;
  readonly cookie = new Uint8Array(TFO_COOKIE_MAX);
  /** Client: the application asked for data in the SYN. */
  wantData = false;
  /** Client: payload bytes the (first) SYN carried. */
  synData = 0;
}

export class TfoCookies {
  private readonly words = new Uint32Array(3);
  constructor(private readonly key: SipKey) {}

  /** Writes the cookie for (laddr, raddr) at time `now` into out[0..8). */
  generate(now: number, laddr: number, raddr: number, out: Uint8Array): number {
    this.write(Math.floor(now / TFO_KEY_PERIOD_MS), laddr, raddr, out, 0);
    return TFO_COOKIE_LEN;
  }

  /** True when `cookie` (len bytes) is this period's or the last period's cookie for the pair. */
  check(now: number, laddr: number, raddr: number, cookie: Uint8Array, len: number): boolean {
    if (len !== TFO_COOKIE_LEN) return false;
    const p = Math.floor(now / TFO_KEY_PERIOD_MS);
    return this.matches(p, laddr, raddr, cookie) || this.matches(p - 1, laddr, raddr, cookie);
  }

  private readonly tmp = new Uint8Array(TFO_COOKIE_LEN);
  private matches(period: number, laddr: number, raddr: number, cookie: Uint8Array): boolean {
    const t = this.tmp;
    this.write(period, laddr, raddr, t, 0);
    let diff = 0;
    for (let i = 0; i < TFO_COOKIE_LEN; i++) diff |= t[i]! ^ cookie[i]!;
    return diff === 0;
  }

  private write(period: number, laddr: number, raddr: number, out: Uint8Array, off: number): void {
    const w = this.words;
    w[0] = laddr; w[1] = raddr; w[2] = period;
    const lo = siphash24Words(this.key, w, 3);
    const hi = siphashHi();
    for (let i = 0; i < 4; i++) { out[off + i] = (lo >>> (8 * i)) & 255; out[off + 4 + i] = (hi >>> (8 * i)) & 255; }
  }
}

interface CacheEntry { cookie: Uint8Array; synLosses: number; lastLoss: number }

/** The client's cookies by destination (Linux keeps them in its TCP metrics cache). */
export class TfoCache {
  private readonly map = new Map<number, CacheEntry>();

  get size(): number { return this.map.size; }

  /** Copies the cookie for `peer` into out and returns its length; -1 when none is cached. */
  get(peer: number, out: Uint8Array): number {
    const e = this.map.get(peer);
    if (e === undefined || e.cookie.length === 0) return -1;
    out.set(e.cookie);
    return e.cookie.length;
  }

  /** Data may ride in a SYN to `peer` now (no recent unanswered SYN with data). */
  dataAllowed(peer: number, now: number): boolean {
    const e = this.map.get(peer);
    if (e === undefined || e.synLosses === 0) return true;
    return now >= e.lastLoss + SYN_LOSS_BACKOFF_MS * 2 ** Math.min(e.synLosses - 1, 10);
  }

  set(peer: number, cookie: Uint8Array, len: number): void {
    const e = this.entry(peer);
    e.cookie = cookie.slice(0, len);
  }

  /** A SYN carrying data to `peer` timed out: the path may drop SYNs with data (RFC 7413 §7.1). */
  synLost(peer: number, now: number): void {
    const e = this.entry(peer);
    e.synLosses++;
    e.lastLoss = now;
  }

  /** The SYN with data was answered: the path passes it. */
  synAnswered(peer: number): void {
    const e = this.map.get(peer);
    if (e !== undefined) e.synLosses = 0;
  }

  clear(): void { this.map.clear(); }

  private entry(peer: number): CacheEntry {
    let e = this.map.get(peer);
    if (e === undefined) {
      if (this.map.size >= CACHE_MAX) this.map.delete(this.map.keys().next().value!);
      e = { cookie: new Uint8Array(0), synLosses: 0, lastLoss: 0 };
      this.map.set(peer, e);
    }
    return e;
  }
}

// ---- The TFO handshake (called by output.ts, input.ts and listen.ts) ----

/** A SYN to tcb's peer may carry data now: a cached cookie (or 0x4), no recent SYN-with-data loss. */
export function tfoDataAllowed(tcp: Tcp, tcb: Tcb): boolean {
  const peer = tfoPeerKey(tcp, tcb);
  if (!tcp.tfoCache.dataAllowed(peer, tcp.host.clock.now())) return false;
  return (tcp.tun.fastOpen.value & TfoBits.ClientNoCookie) !== 0 || tcp.tfoCache.get(peer, scratchCookie) >= 0;
}
const scratchCookie = new Uint8Array(TFO_COOKIE_MAX);

/**
 * connect({ fastOpen }) with net.inet.tcp.fastopen bit 0x1: the TFO state of an active open.
 * With `data` (sendto(MSG_FASTOPEN)), queues as much as the SYN may carry (the path's `mss`, or
 * TCP_MAXSEG, less 40 bytes) when a cookie allows. Returns true when the SYN should wait for the
 * deferred-output flush, to carry what the application writes before it (no `data`).
 */
export function fastOpenConnect(tcp: Tcp, tcb: Tcb, data: Uint8Array | undefined, mss: number): boolean {
  if (!(tcp.tun.fastOpen.value & TfoBits.ClientEnable)) return false;
  const f = tcb.tfo = new TfoState();
  f.wantData = true;
  if (data === undefined || data.length === 0) return tcp.deferOutput;
  if (tfoDataAllowed(tcp, tcb)) {
    const m = tcb.userMss > 0 && tcb.userMss < mss ? tcb.userMss : mss;
    f.synData = tcb.sndBuf.write(data, 0, Math.min(data.length, m - 40));
  }
  return false;
}

/** The key of a Tcp's cookies, derived from its ISN secret (a keyed PRF: no extra random draws). */
export function tfoKeyFrom(isn: (laddr: number, raddr: number) => number): SipKey {
  const k = new Uint8Array(16);
  for (let i = 0; i < 4; i++) {
    const w = isn(0x74666f00 + i, 0x6b657900);
    k[4 * i] = w & 255; k[4 * i + 1] = (w >>> 8) & 255; k[4 * i + 2] = (w >>> 16) & 255; k[4 * i + 3] = w >>> 24;
  }
  return sipKeyFromBytes(k);
}

/**
 * RFC 7413 §4.1 on the client, as Linux's tcp_send_syn_data(): the first SYN carries the cached
 * cookie (or a cookie request) and, when the application asked and a cookie (or 0x4) allows, up
 * to one MSS less 40 bytes of data; returns the data length. A retransmitted SYN carries neither
 * option nor data (Linux): the path may be dropping SYNs with data, and the destination gets no
 * SYN data for a while (TfoCache.synLost).
 */
export function fastOpenSyn(tcp: Tcp, tcb: Tcb, now: number): number {
  const f = tcb.tfo!;
  if (tcb.rexmtCount > 0) {
    if (f.synData > 0) { tcp.counters.tfoSynLoss++; tcp.tfoCache.synLost(tfoPeerKey(tcp, tcb), now); }
    f.synData = 0;
    f.cookieLen = -1;
    return 0;
  }
  const cached = tcp.tfoCache.get(tfoPeerKey(tcp, tcb), f.cookie);
  f.cookieLen = cached >= 0 ? cached : 0;
  let len = 0;
  if (f.wantData && tcb.sndBuf.length > 0 && tfoDataAllowed(tcp, tcb)) {
    len = Math.min(tcb.sndBuf.length, tcb.rcvMss - 40);
    if (len < 0) len = 0;
  }
  f.synData = len;
  if (len > 0) tcp.counters.tfoActive++;
  return len;
}

/**
 * RFC 7413 §4.1.3 on the client, as Linux's tcp_rcv_fastopen_synack(): a cookie on the SYN-ACK
 * is cached for the destination; SYN data the SYN-ACK does not acknowledge is sent again at
 * once, as ordinary data, after the handshake; what it does acknowledge leaves the send buffer.
 */
export function fastOpenSynAck(tcp: Tcp, tcb: Tcb, seg: Segment): void {
  const f = tcb.tfo!;
  const peer = tfoPeerKey(tcp, tcb);
  const o = seg.opts;
  if (o.fastOpen > 0) tcp.tfoCache.set(peer, o.fastOpenCookie, o.fastOpen);
  if (f.synData > 0) {
    tcp.tfoCache.synAnswered(peer);
    if (seqLt(seg.ack, tcb.sndMax)) tcp.counters.tfoActiveFail++;
  }
  const acked = seqDiff(seg.ack, tcb.sndBase);
  if (acked > 0) {
    tcb.sndBuf.drop(acked);
    tcb.sndBase = seg.ack;
    tcb.bytesAcked += acked;
  }
  if (seqLt(seg.ack, tcb.sndNxt)) tcb.sndNxt = seg.ack;
  tcb.tfo = null;
}

/**
 * RFC 7413 §4.2 as Linux's tcp_try_fastopen(): a SYN with a TFO option (or data, with 0x200) on
 * a listener doing TFO. A cookie request, or a cookie that does not check, gets a fresh cookie on
 * the SYN-ACK (and its data is not acknowledged: the client sends it again after the handshake);
 * a valid cookie with data (or any data, with 0x200) makes the data readable now. Over the TFO
 * queue length (the TFO backlog) the SYN is an ordinary one. Returns true when the data was taken.
 */
export function fastOpenServer(tcp: Tcp, l: TcpListener, tcb: Tcb, seg: Segment, now: number): boolean {
  const bits = tcp.tun.fastOpen.value;
  const qlen = l.tfoQlen > 0 ? l.tfoQlen : (bits & TfoBits.ServerWithoutSockopt) ? l.backlog : 0;
  if (!(bits & TfoBits.ServerEnable) || qlen === 0) return false;
  const o = seg.opts;
  const noCookie = (bits & TfoBits.ServerNoCookie) !== 0 && seg.dataLen > 0;
  if (o.fastOpen < 0 && !noCookie) return false;
  if (l.tfoPending >= qlen) { tcp.counters.tfoListenOverflow++; return false; }
  const f = tcb.tfo = new TfoState();
  let take = noCookie;
  if (!take) {
    if (o.fastOpen === 0) tcp.counters.tfoCookieReqd++;
    else if (tcp.tfoCookies.check(now, tfoLocalKey(tcp, tcb), tfoPeerKey(tcp, tcb), o.fastOpenCookie, o.fastOpen)) take = seg.dataLen > 0;
    else tcp.counters.tfoPassiveFail++;
    if (!take) f.cookieLen = tcp.tfoCookies.generate(now, tfoLocalKey(tcp, tcb), tfoPeerKey(tcp, tcb), f.cookie);
  }
  if (!take || l.acceptQueue.length >= l.backlog) return false;
  const adv = tcb.rcvBuf.insert(tcb.rcvNxt, (seg.seq + 1) >>> 0, seg.bytes, seg.dataOff, Math.min(seg.dataLen, tcb.rcvBuf.space));
  if (adv > 0) {
    tcb.rcvNxt = (tcb.rcvNxt + adv) >>> 0;
    tcb.bytesReceived += adv;
    tcb.lastDataRecvTime = now;
  }
  f.listener = l;
  l.tfoPending++;
  // Its reply may leave before the handshake completes: congestion control starts now.
  tcb.cc.init(tcb.maxSeg, now, tcp.tun.initCwndSegments.value);
  tcp.counters.tfoPassive++;
  return true;
}
