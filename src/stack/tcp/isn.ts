// Initial sequence numbers, RFC 6528 §3:
//   "ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//    where M is the 4 microsecond timer, and F() is a pseudorandom function (PRF) of the
//    connection-id."
// F is SipHash-2-4 keyed by a 128-bit secret drawn once (RFC 6528 §3: "SHOULD be ... a
// cryptographic hash function ... the secretkey ... SHOULD be of at least 128 bits").
// For one 4-tuple ISNs therefore advance by exactly 250 per ms, like the RFC 793 clock,
// while an off-path attacker cannot predict the offset of another tuple.
import { type SipKey, siphash24, sipKeyFromRandom } from './siphash.js';

/** M ticks every 4 µs: 250 per ms. */
const TICKS_PER_MS = 250;

export class IsnGenerator {
  private readonly key: SipKey;

  constructor(random32: () => number) {
    this.key = sipKeyFromRandom(random32);
  }

  /** ISN for the connection (laddr:lport -> raddr:rport) at time `nowMs`; u32. */
  isn(nowMs: number, laddr: number, lport: number, raddr: number, rport: number): number {
    const m = Math.floor(nowMs * TICKS_PER_MS) % 4294967296;
    const f = siphash24(this.key, laddr, raddr, ((lport & 0xffff) << 16) | (rport & 0xffff));
    return (m + f) >>> 0;
  }
}
