// NewReno congestion control: RFC 5681 slow start and congestion avoidance with RFC 3465
// appropriate byte counting, the RFC 5681 / RFC 6582 reductions. Recovery itself (fast
// retransmit, partial ACKs) is the sender's job, see types.ts.
import { type CongestionControl, INFINITE_SSTHRESH, initialWindow } from './types.js';

/** RFC 3465 §2.3: "L ... SHOULD NOT be larger than 2*SMSS" during slow start. */
const ABC_LIMIT_SEGMENTS = 2;

export class NewReno implements CongestionControl {
  readonly name: string = 'newreno';
  cwnd = 0;
  ssthresh = INFINITE_SSTHRESH;
  protected mss = 536;
  protected iw = 0;
  /** RFC 3465 §2.1 bytes_acked, counted during congestion avoidance. */
  protected bytesAcked = 0;
  /** True after an RTO until new data is acknowledged (RFC 5681 §3.1 repeated-RTO rule). */
  protected rtoPending = false;
  private priorCwnd = -1;
  private priorSsthresh = 0;

  init(mss: number, _now: number, initialWindowSegments: number): void {
    this.mss = mss;
    this.iw = initialWindow(mss, initialWindowSegments);
    this.cwnd = this.iw;
    this.ssthresh = INFINITE_SSTHRESH;
    this.bytesAcked = 0;
    this.rtoPending = false;
    this.priorCwnd = -1;
  }

  setMss(mss: number): void {
    this.mss = mss;
  }

  onAck(acked: number, _now: number, _rttMs: number, inFlight: number): void {
    this.rtoPending = false;
    if (acked <= 0) return;
    // Only grow a window that is being used (RFC 7661's concern; Linux's cwnd-limited test).
    if (2 * inFlight < this.cwnd) return;
    if (this.cwnd < this.ssthresh) {
      // RFC 3465 §2.2 slow start: "cwnd = cwnd + min (N, L*SMSS)".
      const lim = ABC_LIMIT_SEGMENTS * this.mss;
      const next = this.cwnd + (acked < lim ? acked : lim);
      this.cwnd = next < this.ssthresh ? next : this.ssthresh;
      return;
    }
    // RFC 3465 §2.1 congestion avoidance: "When bytes_acked becomes greater than or equal to
    // the value of the congestion window, bytes_acked is reduced by the value of cwnd. Next,
    // cwnd is incremented by a full-sized segment (SMSS)."
    this.bytesAcked += acked;
    if (this.bytesAcked >= this.cwnd) {
      this.bytesAcked -= this.cwnd;
      this.cwnd += this.mss;
    }
  }

  onCongestion(_now: number, inFlight: number): void {
    this.save();
    // RFC 5681 §3.2 step 2 (eq. 4): "ssthresh = max (FlightSize / 2, 2*SMSS)".
    this.ssthresh = this.halfFlight(inFlight);
    this.cwnd = this.ssthresh;
    this.bytesAcked = 0;
  }

  onRecoveryExit(_now: number): void {
    // RFC 6582 §3.2 step 3 option (2): "Set cwnd to ... ssthresh".
    this.cwnd = this.ssthresh;
    this.bytesAcked = 0;
  }

  onRto(_now: number, inFlight: number): void {
    // RFC 5681 §3.1: "when a TCP sender detects segment loss using the retransmission timer
    // and the given segment has already been retransmitted by way of the retransmission timer
    // at least once, the value of ssthresh is held constant."
    if (!this.rtoPending) {
      this.save();
      this.ssthresh = this.halfFlight(inFlight);
    }
    this.rtoPending = true;
    // "cwnd MUST be set to no more than the loss window, LW, which equals 1 full-sized segment".
    this.cwnd = this.mss;
    this.bytesAcked = 0;
  }

  onIdle(_now: number, _rto: number): void {
    // RFC 5681 §4.1: "cwnd is reduced to the value of the restart window (RW) before
    // transmission begins", RW = min(IW, cwnd).
    if (this.cwnd > this.iw) this.cwnd = this.iw;
    this.bytesAcked = 0;
  }

  onUndo(_now: number): void {
    if (this.priorCwnd < 0) return;
    if (this.cwnd < this.priorCwnd) this.cwnd = this.priorCwnd;
    if (this.ssthresh < this.priorSsthresh) this.ssthresh = this.priorSsthresh;
    this.priorCwnd = -1;
    this.rtoPending = false;
  }

  protected save(): void {
    this.priorCwnd = this.cwnd;
    this.priorSsthresh = this.ssthresh;
  }

  protected halfFlight(inFlight: number): number {
    const half = Math.floor(inFlight / 2);
    const min = 2 * this.mss;
    return half > min ? half : min;
  }
}
