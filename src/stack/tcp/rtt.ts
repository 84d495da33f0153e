// Retransmission timer computation: RFC 6298's estimator with Linux's RTO formula,
// RTO = SRTT + max(4*RTTVAR, rto_min), and RFC 6298's backoff.
//
// Karn's rule (RFC 6298 §3) is the caller's job: "RTT samples MUST NOT be made using segments
// that were retransmitted (and thus for which it is ambiguous whether the reply was for the
// first instance of the packet or a later instance)." With timestamps (RFC 7323 §4) every
// ACK that carries a valid TSecr is an unambiguous sample. A backed-off RTO is kept until the
// next valid sample arrives, which is what `sample()` resetting the backoff implements.

export interface RttOptions {
  /**
   * Floor of the variance term in ms (Linux's rto_min, 200 ms): RTO = SRTT + max(4*RTTVAR,
   * minRto), so also the lowest RTO. RFC 6298 (2.4) would floor the sum at 1 s.
   */
  minRto: number;
  /** Upper bound in ms, also the cap for exponential backoff (RFC 6298 (2.5): at least 60 s). */
  maxRto: number;
  /** RTO before the first sample, ms (RFC 6298 (2.1): 1 s). */
  initialRto: number;
  /** Clock granularity G in ms (default 1). */
  granularity?: number;
}

/** RFC 6298 (2.3): alpha = 1/8, beta = 1/4; K = 4. */
const ALPHA = 1 / 8;
const BETA = 1 / 4;
const K = 4;

export class RttEstimator {
  private readonly minRto: number;
  private readonly maxRto: number;
  private readonly initialRto: number;
  private readonly g: number;
  private _srtt = 0;
  private _rttvar = 0;
  /** RTO from the estimator, before backoff, clamped. */
  private baseRto: number;
  private _backoffs = 0;
  private _rto: number;
  private _hasSample = false;

  constructor(o: RttOptions) {
    this.minRto = o.minRto;
    this.maxRto = o.maxRto;
    this.initialRto = o.initialRto;
    this.g = o.granularity ?? 1;
    this.baseRto = this.clamp(o.initialRto);
    this._rto = this.baseRto;
  }

  /** Smoothed RTT in ms (0 before the first sample). */
  get srtt(): number { return this._srtt; }
  /** RTT variation in ms (0 before the first sample). */
  get rttvar(): number { return this._rttvar; }
  /** Current retransmission timeout in ms, including backoff. */
  get rto(): number { return this._rto; }
  get hasSample(): boolean { return this._hasSample; }
  /** Number of times the timer has been backed off since the last sample / reset. */
  get backoffs(): number { return this._backoffs; }

  /** Feeds one RTT measurement R (ms) from a segment that was not retransmitted. */
  sample(rttMs: number): void {
    const r = rttMs > 0 ? rttMs : 0;
    if (!this._hasSample) {
      // (2.2) "When the first RTT measurement R is made, the host MUST set
      //   SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max (G, K*RTTVAR)"
      this._srtt = r;
      this._rttvar = r / 2;
      this._hasSample = true;
    } else {
      // (2.3) "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
      //        SRTT <- (1 - alpha) * SRTT + alpha * R'"  (RTTVAR first, with the old SRTT)
      const d = this._srtt - r;
      this._rttvar = (1 - BETA) * this._rttvar + BETA * (d < 0 ? -d : d);
      this._srtt = (1 - ALPHA) * this._srtt + ALPHA * r;
    }
    // Linux's __tcp_set_rto(): RTO = SRTT + max(K*RTTVAR, rto_min) — the floor bounds the
    // variance term, not the sum, so a path's RTT always sits below its RTO with rto_min to
    // spare (RFC 6298's max(SRTT + K*RTTVAR, floor) would fire a jittery 150 ms path's timer
    // 50 ms early). G is RFC 6298's clock granularity.
    let kv = K * this._rttvar;
    if (kv < this.g) kv = this.g;
    if (kv < this.minRto) kv = this.minRto;
    this.baseRto = this.clamp(this._srtt + kv);
    this._backoffs = 0;
    this._rto = this.baseRto;
  }

  /** (5.5) "The host MUST set RTO <- RTO * 2 ("back off the timer")", capped at maxRto. */
  backoff(): void {
    this._backoffs++;
    const r = this._rto * 2;
    this._rto = r < this.maxRto ? r : this.maxRto;
  }

  /** Drops the backoff and returns to the estimator's RTO (e.g. after a new connection phase). */
  resetBackoff(): void {
    this._backoffs = 0;
    this._rto = this.baseRto;
  }

  /** Forgets all samples: back to the initial RTO (RFC 6298 (2.1)). */
  reset(): void {
    this._srtt = 0;
    this._rttvar = 0;
    this._hasSample = false;
    this._backoffs = 0;
    this.baseRto = this.clamp(this.initialRto);
    this._rto = this.baseRto;
  }

  private clamp(rto: number): number {
    // (2.4) "Whenever RTO is computed, if it is less than 1 second, then the RTO SHOULD be
    // rounded up to 1 second." — the floor is minRto here; (2.5) "A maximum value MAY be placed".
    if (rto < this.minRto) return this.minRto;
    if (rto > this.maxRto) return this.maxRto;
    return rto;
  }
}
