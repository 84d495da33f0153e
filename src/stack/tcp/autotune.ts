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

/** Receive side, after in-order data arrived: once per round trip, make room for twice that round trip's data. */
export function rcvAutotune(tcb: AutotuneTcb, now: number): void {
  if (tcb.rcvBufMax === 0) return;
  const st = tcb.stats ??= new TcbStats();
  if (st.rcvSpaceTime < 0) { st.rcvSpaceTime = now; st.rcvSpaceBase = tcb.bytesReceived; return; }
  // The round trip: SRTT as it is, below 1 ms too. Timestamp samples are whole milliseconds,
  // but a path's RTT falls on either side of a clock tick at random, so their average tracks a
  // sub-millisecond RTT; flooring it at 1 ms counted many round trips' data as one on a fast
  // path and grew both rings to their maximum for nothing (a 4-6 MiB ring cycles through the
  // CPU cache: bulk throughput on the memory wire fell by a quarter).
  let rtt = tcb.rtt.hasSample ? tcb.rtt.srtt : 1;
  if (rtt < MIN_RTT_MS) rtt = MIN_RTT_MS;
  if (now - st.rcvSpaceTime < rtt) return;
  const perRtt = tcb.bytesReceived - st.rcvSpaceBase;
  st.rcvSpaceTime = now;
  st.rcvSpaceBase = tcb.bytesReceived;
  // Linux: "rcvwin = copied << 1 + 16 * advmss" — the sender in slow start doubles its flight
  // each round trip, and the window must not be what stops it.
  const want = 2 * perRtt + 16 * tcb.rcvMss;
  if (want <= tcb.rcvBuf.capacity) return;
  tcb.rcvBuf.grow(nextSize(tcb.rcvBuf.capacity, want, tcb.rcvBufMax));
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
