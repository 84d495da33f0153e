// The congestion-control boundary. The TCP sender owns loss detection and recovery (fast
// retransmit, NewReno partial ACKs, RFC 6675 pipe); an algorithm only decides cwnd and
// ssthresh at the events below. All windows are in bytes, all times in ms.
//
// Division of labour during fast recovery: `onCongestion` sets ssthresh and cwnd = ssthresh
// (RFC 6675 §5 step (4.2) / RFC 9438 §4.6). A sender doing RFC 6582 NewReno recovery without
// SACK adds the 3*SMSS inflation and the per-duplicate-ACK SMSS itself (cwnd is writable);
// `onRecoveryExit` then deflates to ssthresh (RFC 6582 §3.2 step 3, option 2). `onAck` is
// only called outside recovery.

export interface CongestionControl {
  readonly name: string;
  /** Congestion window, bytes. */
  cwnd: number;
  /** Slow-start threshold, bytes. */
  ssthresh: number;
  /**
   * Connection established; mss = effective send MSS. Sets the initial window
   * IW = min(n*MSS, max(2*MSS, n*1460)) for n = initialWindowSegments, which is RFC 6928's
   * min(10*MSS, max(2*MSS, 14600)) for n = 10.
   */
  init(mss: number, now: number, initialWindowSegments: number): void;
  /** The effective send MSS changed (PMTU, options). cwnd stays in bytes. */
  setMss(mss: number): void;
  /**
   * New data acknowledged outside recovery. `acked` bytes, `rttMs` the latest RTT sample
   * (-1 if none), `inFlight` bytes outstanding before this ACK (used to avoid growing cwnd
   * while the application, not cwnd, limits sending: RFC 7661's idea, Linux's
   * "cwnd-limited" test `2 * inFlight >= cwnd`).
   */
  onAck(acked: number, now: number, rttMs: number, inFlight: number): void;
  /** Loss detected by duplicate ACKs / SACK: entering fast recovery. Sets ssthresh and cwnd (RFC 5681 §3.2 / RFC 6582 / RFC 9438 §4.6). */
  onCongestion(now: number, inFlight: number): void;
  /** Fast recovery finished (full ACK): cwnd = ssthresh. */
  onRecoveryExit(now: number): void;
  /** Retransmission timeout: ssthresh per RFC 5681 eq. 4 (held on a repeated RTO), cwnd = 1 MSS (loss window). */
  onRto(now: number, inFlight: number): void;
  /** Restart after an idle period longer than RTO (RFC 5681 §4.1): cwnd = min(cwnd, restart window). */
  onIdle(now: number, rto: number): void;
  /**
   * The last reduction (RTO or fast retransmit) turned out spurious (e.g. RFC 4015 Eifel /
   * DSACK / timestamps): restore the window state saved at that reduction. Optional.
   */
  onUndo?(now: number): void;
}

/** RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high". */
export const INFINITE_SSTHRESH = 0x7fffffff;

/** RFC 6928 IW generalised to n segments (see `CongestionControl.init`). */
export function initialWindow(mss: number, segments: number): number {
  const a = segments * mss;
  const b = Math.max(2 * mss, segments * 1460);
  return a < b ? a : b;
}
