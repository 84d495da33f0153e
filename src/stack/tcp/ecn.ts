// ECN (RFC 3168) as Linux does it, the parts segment input runs: the sender's reaction to an
// ECE (one cwnd reduction per window, CWR queued) and the receiver's to CE and CWR. Negotiation
// is in listen.ts / input.ts (SYN, SYN-ACK), ECT and the ECE/CWR flags on output in output.ts.
import { TcpFlag } from '../../wire/tcp.js';
import { seqGt } from './seq.js';
import { EcnFlag, type Tcb } from './tcb.js';
import type { Tcp } from './tcp.js';

/**
 * RFC 3168 §6.1.2, as Linux's tcp_enter_cwr(): an ECE outside loss recovery, with everything
 * sent at the last reduction acknowledged (and more), sets ssthresh from cwnd and cwnd to it (Linux:
 * ssthresh = max(cwnd/2, 2 segments) for Reno) and queues CWR for the next new data segment.
 * Further ECEs within the same window of data are ignored.
 */
export function ecnEcho(tcp: Tcp, tcb: Tcb, now: number): void {
  tcp.counters.ecnEceReceived++;
  // Linux holds its CWR state until an ACK above high_seq (so the CWR reached the receiver).
  if (!tcb.synchronized || tcb.inRecovery || tcb.rtoRecovery || !seqGt(tcb.sndUna, tcb.ecnHigh)) return;
  tcp.counters.ecnCwndReductions++;
  tcb.cc.onCongestion(now, tcb.cc.cwnd);
  tcb.ecnHigh = tcb.sndMax;
  tcb.ecn |= EcnFlag.QueueCwr;
}

/**
 * RFC 3168 §6.1.3, as Linux's tcp_ecn_accept_cwr() and tcp_ecn_check_ce(): the peer's CWR ends
 * our ECE echo; a CE mark on a data segment starts it (and is acknowledged at once, so the
 * sender learns of it within the round trip).
 */
export function ecnOnData(tcp: Tcp, tcb: Tcb, flags: number, ecn: number): void {
  if (flags & TcpFlag.CWR) tcb.ecn &= ~EcnFlag.DemandCwr;
  if (ecn === 0) return;
  tcb.ecn |= EcnFlag.Seen;
  if (ecn !== 3) return;
  tcp.counters.ecnCeReceived++;
  if (!(tcb.ecn & EcnFlag.DemandCwr)) { tcb.ecn |= EcnFlag.DemandCwr; tcb.ackNow = true; }
}
