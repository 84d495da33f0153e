// Send and receive buffer autotuning (Linux's tcp_rcv_space_adjust() and tcp_sndbuf_expand(),
// with FreeBSD's sysctl names sendbuf_auto/recvbuf_auto and _max). A connection starts with
// sendspace/recvspace; a buffer grows only when the path asks for more — the receive buffer
// to twice what arrived in one round trip, the send buffer to twice cwnd while the buffer, not
// cwnd, limits the flight — up to the _max sysctl. Buffers never shrink: an idle or slow
// connection simply never grows (and an idle one has no rings at all, see buffers.ts).
import type { RecvBuffer, SendBuffer } from './buffers.js';
import type { CongestionControl } from './congestion/types.js';
import type { RttEstimator } from './rtt.js';
import { TcbStats } from './stats.js';

/** What autotuning reads and changes of a TCB (a narrow view: this module stays out of the TCB's import ring). */
export interface AutotuneTcb {
  rcvBufMax: number;
  sndBufMax: number;
  stats: TcbStats | null;
  readonly bytesReceived: number;
  readonly rtt: RttEstimator;
  readonly rcvMss: number;
  readonly rcvBuf: RecvBuffer;
  readonly sndBuf: SendBuffer;
  readonly cc: CongestionControl;
  readonly flightSize: number;
  readonly maxSndWnd: number;
}

/** The shortest round trip autotuning measures over (ms). */
const MIN_RTT_MS = 0.05;
/** The shortest interval the receive side counts arrivals over (ms): see rcvAutotune. */
const MIN_INTERVAL_MS = 1;
/** Measurements at one size before a sub-millisecond path may grow the receive ring again. */
const SUB_MS_MEASURES = 4;

/**
 * Receive side, after in-order data arrived: once per round trip, make room for twice that
 * round trip's data. `rttSample` is this segment's receiver-side RTT sample (ms, from its
 * TSecr; -1: none).
 */
export function rcvAutotune(tcb: AutotuneTcb, rttSample: number, now: number): void {
  if (tcb.rcvBufMax === 0) return;
  const st = tcb.stats ??= new TcbStats();
  // The receiver's RTT (Linux tcp_rcv_rtt_measure_ts()): a connection that only receives has
  // no RTT samples of its own after the handshake, and a handshake timed while the process
  // was busy (a cold start, a loaded loop) would size the buffer for milliseconds forever.
  // Timestamp samples are whole milliseconds, but a path's RTT falls on either side of a
  // clock tick at random, so their average tracks a sub-millisecond RTT.
  if (rttSample >= 0 && rttSample < 0x7fffffff) st.rcvRtt = st.rcvRtt < 0 ? rttSample : st.rcvRtt + (rttSample - st.rcvRtt) / 8;
  if (st.rcvSpaceTime < 0) { st.rcvSpaceTime = now; st.rcvSpaceBase = tcb.bytesReceived; return; }
  let rtt = st.rcvRtt >= 0 ? st.rcvRtt : tcb.rtt.hasSample ? tcb.rtt.srtt : 1;
  if (rtt < MIN_RTT_MS) rtt = MIN_RTT_MS;
  // Below a millisecond, count over a millisecond and scale to one round trip. Data arrives
  // in bursts (a driver's receive batch, one loop iteration), and a burst carries as much as
  // the window allowed: counted per sub-millisecond round trip, each burst looked like a
  // round trip's worth, so every growth of the window made the next burst bigger and both
  // rings grew to their maximum on a path that needs a fraction of that. Rings of megabytes
  // cycle through the CPU cache: on the memory wire one pair moved a fifth less, and two
  // pairs on two cores scaled 1.5x instead of 2x (docs/benchmarks.md, workers-memory).
  const elapsed = now - st.rcvSpaceTime;
  if (elapsed < (rtt > MIN_INTERVAL_MS ? rtt : MIN_INTERVAL_MS)) return;
  const received = tcb.bytesReceived - st.rcvSpaceBase;
  const perRtt = rtt < MIN_INTERVAL_MS ? received * rtt / elapsed : received;
  st.rcvSpaceTime = now;
  st.rcvSpaceBase = tcb.bytesReceived;
  // Linux: "rcvwin = copied << 1 + 16 * advmss" — the sender in slow start doubles its flight
  // each round trip, and the window must not be what stops it.
  const want = 2 * perRtt + 16 * tcb.rcvMss;
  const cap = tcb.rcvBuf.capacity;
  const rate = received / elapsed;
  if (rate > st.rcvRateMax) st.rcvRateMax = rate;
  st.rcvRateCount++;
  if (want <= cap || cap >= tcb.rcvBufMax) return;
  // Below a millisecond, a size is judged over SUB_MS_MEASURES measurements (the sender's slow
  // start takes a fraction of one there; the rate it ends at, not its ramp, is the size's).
  if (rtt < MIN_INTERVAL_MS && st.rcvRateCount < SUB_MS_MEASURES) return;
  // Grow only while growing pays: the delivery rate beats by a quarter the best rate measured
  // at the previous size (a window-limited sender doubles its rate with the window; a full
  // path or a busy CPU does not, and a larger ring only holds a longer queue; the best, not
  // the last, so a measurement that caught a pause does not let the next one grow the ring).
  // And twofold at most per measurement: more than a window per round trip cannot arrive, so
  // a bigger `want` means the RTT was overestimated (a millisecond timestamp tick, a handshake
  // timed on a cold start).
  if (st.rcvGrowRate > 0 && rate < 1.25 * st.rcvGrowRate) return;
  st.rcvGrowRate = st.rcvRateMax;
  st.rcvRateMax = 0;
  st.rcvRateCount = 0;
  tcb.rcvBuf.grow(2 * cap < tcb.rcvBufMax ? 2 * cap : tcb.rcvBufMax);
}

/** Send side, on an ACK: a send buffer smaller than twice cwnd while cwnd is not full grows to that. */
export function sndAutotune(tcb: AutotuneTcb): void {
  if (tcb.sndBufMax === 0) return;
  const cwnd = tcb.cc.cwnd;
  // Linux tcp_should_expand_sndbuf(): "if (tcp_packets_in_flight(tp) >= tcp_snd_cwnd(tp)) return false".
  if (tcb.flightSize >= cwnd) return;
  // Twice what may be in flight: cwnd, but never more than the largest window the peer offered
  // (the flight cannot exceed it; a cwnd grown past it on a fast path asked for rings of
  // megabytes that only cycled through the cache). A peer that opens its window further lets
  // the buffer grow again.
  const flightMax = tcb.maxSndWnd > 0 && tcb.maxSndWnd < cwnd ? tcb.maxSndWnd : cwnd;
  const want = 2 * flightMax;
  if (want <= tcb.sndBuf.capacity) return;
  tcb.sndBuf.grow(nextSize(tcb.sndBuf.capacity, want, tcb.sndBufMax));
}

/**
 * A buffer grows at least twofold (each growth may copy an allocated ring: a few copies in a
 * connection's life, not one per ACK as cwnd creeps up), to `want` if more, at most `max`.
 */
function nextSize(cap: number, want: number, max: number): number {
  const n = want > 2 * cap ? want : 2 * cap;
  return n < max ? n : max;
}
