// CUBIC congestion control, RFC 9438. The RFC states its formulas in segments and seconds;
// this module keeps cwnd/ssthresh in bytes (the interface) and converts: W values below are
// in segments (cwnd / mss, fractional) and t in seconds ((now - epochStart) / 1000).
// Slow start is RFC 5681's with RFC 3465 byte counting (RFC 9438 §4.10; no HyStart++).
import { type CongestionControl, INFINITE_SSTHRESH, initialWindow } from './types.js';

/** RFC 9438 §5.1: C = 0.4. */
export const CUBIC_C = 0.4;
/** RFC 9438 §4.6: beta_cubic = 0.7. */
export const CUBIC_BETA = 0.7;
/** RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic). */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

const ABC_LIMIT_SEGMENTS = 2;

/** RFC 9438 §4.2 Figure 2: K = cubic_root((W_max - cwnd_epoch) / C), seconds. */
export function cubicK(wMax: number, cwndEpoch: number): number {
  const d = wMax - cwndEpoch;
  return d > 0 ? Math.cbrt(d / CUBIC_C) : 0;
}

/** RFC 9438 §4.2 Figure 1: W_cubic(t) = C * (t - K)^3 + W_max, segments. */
export function cubicWindow(t: number, k: number, wMax: number): number {
  const x = t - k;
  return CUBIC_C * x * x * x + wMax;
}

export class Cubic implements CongestionControl {
  readonly name = 'cubic';
  cwnd = 0;
  ssthresh = INFINITE_SSTHRESH;
  /** RFC 9438 §4.7 fast convergence (on by default). */
  fastConvergence = true;

  private mss = 536;
  private iw = 0;
  /** Window before the last reduction (segments); 0 = no congestion event yet. */
  private _wMax = 0;
  /** cwnd just before the last reduction (segments), for §4.3's alpha switch. */
  private cwndPrior = 0;
  private _k = 0;
  /** Start of the current congestion-avoidance stage (ms); -1 = not started. */
  private epochStart = -1;
  private cwndEpoch = 0;
  /** RFC 9438 §4.3 Reno-friendly estimate, segments. */
  private wEst = 0;
  /** Fraction of a byte of cwnd growth not yet applied (cwnd stays an integer). */
  private frac = 0;
  /** Smoothed RTT (ms) for W_cubic(t + RTT); 0 until the first sample. */
  private srtt = 0;
  /** The stage after an RTO follows §4.8 (K = 0, W_max = cwnd_epoch). */
  private afterRto = false;
  private rtoPending = false;
  private priorCwnd = -1;
  private priorSsthresh = 0;
  private priorWMax = 0;
  private priorCwndPrior = 0;

  /** W_max in segments (0 before the first congestion event). */
  get wMax(): number { return this._wMax; }
  /** K of the current congestion-avoidance stage, seconds. */
  get k(): number { return this._k; }
  /** W_est of the current congestion-avoidance stage, segments. */
  get renoEstimate(): number { return this.wEst; }

  init(mss: number, _now: number, initialWindowSegments: number): void {
    this.mss = mss;
    this.iw = initialWindow(mss, initialWindowSegments);
    this.cwnd = this.iw;
    this.ssthresh = INFINITE_SSTHRESH;
    this._wMax = 0;
    this.cwndPrior = 0;
    this._k = 0;
    this.epochStart = -1;
    this.wEst = 0;
    this.frac = 0;
    this.srtt = 0;
    this.afterRto = false;
    this.rtoPending = false;
    this.priorCwnd = -1;
  }

  setMss(mss: number): void {
    // W values are in segments of the old MSS; restart the stage so they are recomputed.
    if (mss !== this.mss) this.epochStart = -1;
    this.mss = mss;
  }

  onAck(acked: number, now: number, rttMs: number, inFlight: number): void {
    this.rtoPending = false;
    if (rttMs >= 0) this.srtt = this.srtt === 0 ? rttMs : this.srtt + (rttMs - this.srtt) / 8;
    if (acked <= 0) return;
    if (2 * inFlight < this.cwnd) return; // not cwnd-limited: do not grow (see types.ts)
    if (this.cwnd < this.ssthresh) {
      const lim = ABC_LIMIT_SEGMENTS * this.mss;
      const next = this.cwnd + (acked < lim ? acked : lim);
      this.cwnd = next < this.ssthresh ? next : this.ssthresh;
      return;
    }
    const mss = this.mss;
    const cw = (this.cwnd + this.frac) / mss;
    if (this.epochStart < 0) this.startEpoch(now, cw);
    const t = (now - this.epochStart) / 1000;
    const segAcked = acked / mss;

    // §4.3: "W_est = W_est + alpha_cubic * segments_acked / cwnd"; "Once W_est has grown to
    // reach the cwnd at the time of most recently setting ssthresh ... set alpha_cubic to 1".
    const alpha = this.wEst >= this.cwndPrior ? 1 : CUBIC_ALPHA;
    this.wEst += (alpha * segAcked) / cw;

    let next: number;
    if (cubicWindow(t, this._k, this._wMax) < this.wEst) {
      // §4.3: "If W_cubic(t) is less than W_est, then CUBIC is in the Reno-friendly region
      // and cwnd SHOULD be set to W_est at each reception of a new ACK."
      next = this.wEst > cw ? this.wEst : cw;
    } else {
      // §4.4/§4.5 (concave below W_max, convex above; one formula): target is
      // W_cubic(t + RTT) bounded to [cwnd, 1.5 * cwnd], and "cwnd MUST be incremented by
      // (target - cwnd) / cwnd for each received ACK" (per SMSS acknowledged, in bytes here).
      const w = cubicWindow(t + this.srtt / 1000, this._k, this._wMax);
      const target = w < cw ? cw : w > 1.5 * cw ? 1.5 * cw : w;
      next = cw + ((target - cw) / cw) * segAcked;
    }
    const bytes = next * mss;
    const whole = Math.floor(bytes);
    this.cwnd = whole;
    this.frac = bytes - whole;
  }

  onCongestion(_now: number, inFlight: number): void {
    this.save();
    const cw = this.cwnd / this.mss;
    // §4.7 fast convergence: "if (cwnd < W_max AND fast_convergence enabled)
    // W_max = cwnd * (1 + beta_cubic) / 2 else W_max = cwnd".
    this._wMax = this.fastConvergence && cw < this._wMax ? (cw * (1 + CUBIC_BETA)) / 2 : cw;
    this.cwndPrior = cw;
    // §4.6: "ssthresh = flight_size * beta_cubic"; "cwnd = max(ssthresh, 2)" in segments.
    this.ssthresh = this.reduced(inFlight);
    this.cwnd = this.ssthresh;
    this.frac = 0;
    this.epochStart = -1;
    this.afterRto = false;
  }

  onRecoveryExit(_now: number): void {
    this.cwnd = this.ssthresh;
    this.frac = 0;
    this.epochStart = -1;
  }

  onRto(_now: number, inFlight: number): void {
    // §4.8: "CUBIC follows Reno to reduce cwnd [RFC5681] but sets ssthresh using beta_cubic".
    // A repeated RTO holds ssthresh (RFC 5681 §3.1).
    if (!this.rtoPending) {
      this.save();
      this.cwndPrior = this.cwnd / this.mss;
      this.ssthresh = this.reduced(inFlight);
    }
    this.rtoPending = true;
    this.cwnd = this.mss;
    this.frac = 0;
    this.epochStart = -1;
    this.afterRto = true;
  }

  onIdle(_now: number, _rto: number): void {
    // RFC 5681 §4.1 restart window; the cubic clock must not count the idle time, so the
    // congestion-avoidance stage restarts at the next ACK.
    if (this.cwnd > this.iw) this.cwnd = this.iw;
    this.frac = 0;
    this.epochStart = -1;
  }

  onUndo(_now: number): void {
    // §4.9: a spurious congestion event restores the state saved before the reduction.
    if (this.priorCwnd < 0) return;
    if (this.cwnd < this.priorCwnd) this.cwnd = this.priorCwnd;
    if (this.ssthresh < this.priorSsthresh) this.ssthresh = this.priorSsthresh;
    this._wMax = this.priorWMax;
    this.cwndPrior = this.priorCwndPrior;
    this.priorCwnd = -1;
    this.epochStart = -1;
    this.afterRto = false;
    this.rtoPending = false;
  }

  private startEpoch(now: number, cw: number): void {
    this.epochStart = now;
    this.cwndEpoch = cw;
    // §4.3: W_est starts at cwnd_epoch (also after an RTO, §4.8).
    this.wEst = cw;
    if (this.afterRto || this._wMax <= cw) {
      // §4.8: after a timeout "K is set to 0, and W_max is set to the congestion window size
      // at the beginning of the current congestion avoidance stage". The same applies when
      // the stage starts at or above W_max (no congestion event yet, or grown past it).
      this._wMax = cw;
      this._k = 0;
    } else {
      this._k = cubicK(this._wMax, cw);
    }
    this.afterRto = false;
  }

  private reduced(inFlight: number): number {
    const s = Math.floor(inFlight * CUBIC_BETA);
    const min = 2 * this.mss;
    return s > min ? s : min;
  }

  private save(): void {
    this.priorCwnd = this.cwnd;
    this.priorSsthresh = this.ssthresh;
    this.priorWMax = this._wMax;
    this.priorCwndPrior = this.cwndPrior;
  }
}
