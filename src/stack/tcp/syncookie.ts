// SYN cookies, RFC 4987 §3.6: when the SYN queue is full, the listener keeps no state and
// encodes what it must remember in the ISN of its SYN-ACK; the returning ACK (ack - 1)
// gives the cookie back.
//
// Cookie layout (32 bits, most significant first):
//
//    31 30 | 29 28 27 | 26 25 24 23 | 22  | 21 ........................ 0
//   counter|  MSS idx |   wscale    | SACK|            MAC (22 bits)
//
// - counter: floor(now / 64 s) mod 4. A cookie is accepted during its own period and the
//   next one (64-128 s of life); anything older decodes to another period and fails.
// - MSS idx: index of the largest MSS_TABLE entry <= the MSS the peer offered (entry 0 when
//   it offered less than 536: RFC 9293 §3.7.1's default, as Linux does).
// - wscale: the window-scale shift the peer offered (0..14, RFC 7323 §2.3 caps it at 14),
//   or 15 when the SYN carried no window-scale option.
// - SACK: the SYN carried SACK-permitted.
// - MAC: the low 22 bits of SipHash-2-4 keyed by a secret drawn once, over the 4-tuple, the
//   peer's ISN, the full (not mod 4) period number and the 8 option bits. Changing any bit
//   of the cookie changes either the period or the options, and so the expected MAC.
//
// The timestamp option is not encoded: the caller sends a cookie SYN-ACK without TSopt, and
// per RFC 7323 §3.2 the connection then runs without timestamps.
import { type SipKey, siphash24Words, sipKeyFromRandom } from './siphash.js';

/** MSS values a cookie can carry (common Ethernet/PPPoE/tunnel/IPv6 path MTUs). */
export const MSS_TABLE: readonly number[] = [536, 1220, 1300, 1360, 1400, 1440, 1452, 1460];

/** Length of one counter period, ms. */
export const COOKIE_PERIOD_MS = 64_000;

const MAC_BITS = 22;
const MAC_MASK = (1 << MAC_BITS) - 1;
const WSCALE_NONE = 15;

export interface SynCookieOptions {
  /** Decoded MSS (a MSS_TABLE value). */
  mss: number;
  /** Window-scale shift the peer offered, -1 when it offered none. */
  wscale: number;
  /** The peer offered SACK-permitted. */
  sackOk: boolean;
}

export class SynCookies {
  private readonly key: SipKey;
  private readonly words = new Uint32Array(6);
  /** Returned by `decode`; overwritten by the next call (no allocation per ACK). */
  private readonly result: SynCookieOptions = { mss: 0, wscale: -1, sackOk: false };

  constructor(random32: () => number) {
    this.key = sipKeyFromRandom(random32);
  }

  /**
   * Our ISN for the SYN-ACK answering a SYN (peer ISN `peerIsn`) that offered `mss`,
   * `wscale` (-1 = not offered) and SACK-permitted `sackOk`.
   */
  encode(nowMs: number, laddr: number, lport: number, raddr: number, rport: number,
    peerIsn: number, mss: number, wscale: number, sackOk: boolean): number {
    const period = Math.floor(nowMs / COOKIE_PERIOD_MS);
    let idx = MSS_TABLE.length - 1;
    while (idx > 0 && MSS_TABLE[idx]! > mss) idx--;
    const ws = wscale < 0 ? WSCALE_NONE : wscale > 14 ? 14 : wscale;
    const opts = (idx << 5) | (ws << 1) | (sackOk ? 1 : 0);
    const mac = this.mac(laddr, lport, raddr, rport, peerIsn, period, opts);
    return (((period & 3) << 30) | (opts << MAC_BITS) | mac) >>> 0;
  }

  /**
   * Checks the cookie `ourIsn` (= the ACK's ack number - 1) returned by the peer (its
   * `peerIsn` = the ACK's seq - 1). Returns the options encoded at `encode`, or null for a
   * forged, altered or expired cookie. The returned object is reused by the next call.
   */
  decode(nowMs: number, laddr: number, lport: number, raddr: number, rport: number,
    peerIsn: number, ourIsn: number): SynCookieOptions | null {
    const cookie = ourIsn >>> 0;
    const now = Math.floor(nowMs / COOKIE_PERIOD_MS);
    const bits = cookie >>> 30;
    // The period is the current one or the one before; the 2 bits tell which.
    let period: number;
    if ((now & 3) === bits) period = now;
    else if (((now - 1) & 3) === bits) period = now - 1;
    else return null;
    const opts = (cookie >>> MAC_BITS) & 0xff;
    if (this.mac(laddr, lport, raddr, rport, peerIsn, period, opts) !== (cookie & MAC_MASK)) return null;
    const ws = (opts >>> 1) & 0xf;
    const r = this.result;
    r.mss = MSS_TABLE[opts >>> 5]!;
    r.wscale = ws === WSCALE_NONE ? -1 : ws;
    r.sackOk = (opts & 1) === 1;
    return r;
  }

  private mac(laddr: number, lport: number, raddr: number, rport: number,
    peerIsn: number, period: number, opts: number): number {
    const w = this.words;
    w[0] = laddr;
    w[1] = raddr;
    w[2] = ((lport & 0xffff) << 16) | (rport & 0xffff);
    w[3] = peerIsn;
    w[4] = period;
    w[5] = opts;
    return siphash24Words(this.key, w, 6) & MAC_MASK;
  }
}
