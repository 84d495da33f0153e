// TCP Fast Open (RFC 7413): the server's keyed, rotating cookies, the client's cookie cache per
// destination, and the per-connection state a TFO handshake needs (allocated only for one).
//
// Cookie (server, §4.1.2): the first 8 bytes of SipHash-2-4 keyed by a secret, over the local
// and peer addresses and the key period (floor(now / TFO_KEY_PERIOD_MS)). A cookie is accepted
// during its own period and the next one, so keys rotate without state: after two periods a
// client's cookie fails, the server answers with a fresh one and the data is sent again after
// the handshake (§4.2.2).
import { TFO_COOKIE_MAX } from '../../wire/tcp.js';
import { type SipKey, siphash24Words, siphashHi } from './siphash.js';
import type { Tcb } from './tcb.js';
import type { TcpListener } from './listen.js';

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
 * The peer's key for cookies and the cache: its address. One function, so an IPv6 TCB (its
 * 16-byte address) extends it in one place.
 */
export function tfoPeerKey(tcb: Tcb): number { return tcb.raddr >>> 0; }
/** The local address a server cookie is bound to (see tfoPeerKey). */
export function tfoLocalKey(tcb: Tcb): number { return tcb.laddr >>> 0; }

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
