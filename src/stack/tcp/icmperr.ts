// ICMP errors about TCP segments we sent over IPv4 (RFC 5927 checks, RFC 1191 PMTU, RFC 1122
// hard and soft errors). The IPv6 counterpart is in inet6.ts.
import { dropConnection } from './lifecycle.js';
import { tcpOutput } from './output.js';
import { seqInRange } from './seq.js';
import { TcpState, type Tcb } from './tcb.js';
import type { Tcp } from './tcp.js';

const ICMP_UNREACH = 3;
const UNREACH_NEEDFRAG = 4;

/** An ICMP error of `type`/`code` quoting a segment of `tcb` with sequence number `seq`. */
export function icmpErrorV4(tcp: Tcp, tcb: Tcb, type: number, code: number, seq: number, mtu: number): void {
  // RFC 5927 §4.1: believe an error only about a segment we have in flight
  // (SND.UNA <= SEG.SEQ < SND.MAX); anything else may be spoofed.
  if (!seqInRange(seq, tcb.sndUna, tcb.sndMax)) { tcp.counters.icmpIgnored++; return; }
  if (type === ICMP_UNREACH && code === UNREACH_NEEDFRAG) {
    // RFC 1191 §6.4 path MTU discovery: our segments carry DF, so a smaller hop says how big
    // they may be. MTUs below 68 (or the 0 of an old router) are not believed.
    if (mtu < 68 || mtu >= tcb.mss + 40) { tcp.counters.icmpIgnored++; return; }
    const mss = Math.max(mtu - 40, 88);
    if (mss >= tcb.mss) return;
    shrinkMss(tcp, tcb, mss);
    return;
  }
  // RFC 1122 §4.2.3.9: protocol and port unreachable are hard errors; while the connection is
  // still being opened they end it (as Linux does: connect() fails with ECONNREFUSED). Every
  // other error is soft: the connection goes on and retransmission decides (RFC 5461).
  if (type === ICMP_UNREACH && (code === 2 || code === 3) && tcb.state === TcpState.SYN_SENT) {
    hardError(tcp, tcb, 'ECONNREFUSED');
    return;
  }
  tcp.counters.icmpSoftErrors++;
}

/**
 * Path MTU discovery (RFC 1191 §6.4, RFC 8201) lowered the MSS of `tcb` to `mss` (smaller than
 * today's): the dropped segment is sent again at the new size now rather than after an RTO.
 */
export function shrinkMss(tcp: Tcp, tcb: Tcb, mss: number): void {
  tcp.counters.pmtuUpdates++;
  tcb.mss = mss;
  tcb.cc.setMss(tcb.maxSeg);
  if (tcb.state !== TcpState.SYN_SENT && tcb.state !== TcpState.SYN_RECEIVED) {
    tcb.sndNxt = tcb.sndUna;
    tcpOutput(tcp, tcb);
  }
  tcp.dispatch();
}

/** A hard ICMP error while the connection is being opened: it ends with `err` (RFC 1122 §4.2.3.9). */
export function hardError(tcp: Tcp, tcb: Tcb, err: string): void {
  tcp.counters.icmpHardErrors++;
  dropConnection(tcp, tcb, err);
  tcp.dispatch();
}
