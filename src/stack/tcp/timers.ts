// The per-TCB timers (each a Timer on host.wheel allocated once per TCB): retransmission
// (RFC 6298), persist (RFC 9293 §3.8.6.1), keep (keepalive RFC 9293 §3.8.4 / RFC 1122
// §4.2.3.6, FIN_WAIT_2 timeout), delayed ACK. TIME_WAIT's 2*MSL belongs to the compact
// TIME_WAIT table (timewait.ts), which outlives the TCB. The lifecycle is in lifecycle.ts.
import { TcpFlag } from '../../wire/tcp.js';
import { armPersist, emit, sendLossProbe, sendRst, tcpOutput } from './output.js';
import { seqDiff, seqGt } from './seq.js';
import { KeepMode, TcbEvent, TcpState, type Tcb } from './tcb.js';
import type { Tcp } from './tcp.js';
import { armKeepalive, dropConnection, freeTcb, setState } from './lifecycle.js';
import { tfoChild } from './fastopen.js';

export function onRexmtTimer(tcb: Tcb, now: number): void {
  const tcp = tcb.tcp;
  if (tcb.state === TcpState.CLOSED) return;
  if (tcb.hostUnreach && (tcb.state === TcpState.SYN_SENT || tcb.state === TcpState.SYN_RECEIVED)) {
    // The neighbour did not answer ARP: like Linux, a connection being opened ends at once
    // (connect() fails with EHOSTUNREACH; a half-open passive one is forgotten).
    tcp.counters.timeoutDrops++;
    if (tcb.passive && !tfoChild(tcb)) freeTcb(tcp, tcb);
    else dropConnection(tcp, tcb, 'EHOSTUNREACH');
    tcp.dispatch();
    return;
  }
  // RFC 5482 / RFC 9293 §3.8.4: data unacknowledged for the user timeout ends the connection
  // (Linux measures from the oldest unacknowledged send; rtoDeadline() timed this timer for it).
  if (tcb.userTimeout > 0 && tcb.unaSentAt >= 0 && now - tcb.unaSentAt >= tcb.userTimeout) {
    giveUp(tcp, tcb);
    return;
  }
  if (tcb.tlpArmed) {
    sendLossProbe(tcp, tcb, now);
    tcp.dispatch();
    return;
  }
  tcb.tlpHigh = -1;
  tcb.rexmtCount++;
  tcp.counters.rexmtTimeouts++;
  const synState = tcb.state === TcpState.SYN_SENT || tcb.state === TcpState.SYN_RECEIVED;
  const limit = synState ? tcp.tun.synRetries.value : tcp.tun.rexmitCount.value;
  if (tcb.rexmtCount > limit) {
    giveUp(tcp, tcb);
    return;
  }
  // RFC 6298 §5.5: back off; §5.4: retransmit the earliest unacknowledged segment.
  tcb.rtt.backoff();
  tcb.rttSeq = -1;
  if (synState) {
    tcb.sndNxt = tcb.iss;
  } else {
    tcb.cc.onRto(now, seqDiff(tcb.sndMax, tcb.sndUna));
    // RFC 6582 §3.2 step 4: "recover" is set to the highest sequence sent; recovery ends.
    tcb.recover = tcb.sndMax;
    tcb.inRecovery = false;
    tcb.dupAcks = 0;
    // RFC 2018 §8: after a timeout the sender "MUST ignore prior SACK information in determining
    // which data to retransmit" (the receiver may have reneged); but RFC 6675 §5.1: "a SACK TCP
    // sender SHOULD utilize all SACK information made available during the slow start phase of
    // loss recovery following an RTO". So the scoreboard starts empty and what the receiver
    // SACKs from now on steers the go-back-N retransmission (output.ts skips those ranges).
    tcb.resetScoreboard();
    // RACK's records go too: the go-back-N resend records each range again as it leaves.
    if (tcb.rack !== null) tcb.rack.clear();
    if (tcb.reoArmed) tcp.host.wheel.disarm(tcb.reoTimer);
    tcb.rtoRecovery = tcb.sackOk;
    tcb.highRxt = tcb.sndUna;
    tcb.sndNxt = tcb.sndUna;
  }
  tcpOutput(tcp, tcb, now);
  tcp.dispatch();
}

/** RFC 9293 §3.8.3 R2 / user timeout §3.10.8: give up on the peer and tell the user ETIMEDOUT. */
function giveUp(tcp: Tcp, tcb: Tcb): void {
  tcp.counters.timeoutDrops++;
  if (tcb.state === TcpState.SYN_RECEIVED && tcb.passive && !tfoChild(tcb)) freeTcb(tcp, tcb);
  else {
    if (tcb.synchronized) sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST, tcb);
    dropConnection(tcp, tcb, tcb.softError || 'ETIMEDOUT');
  }
  tcp.dispatch();
}

export function onPersistTimer(tcb: Tcb, now: number): void {
  const tcp = tcb.tcp;
  if (tcb.state === TcpState.CLOSED) return;
  tcp.counters.persistTimeouts++;
  if (tcb.userTimeout > 0) {
    if (tcb.firstRexmtTime < 0) tcb.firstRexmtTime = now;
    else if (now - tcb.firstRexmtTime >= tcb.userTimeout) { dropConnection(tcp, tcb, 'ETIMEDOUT'); tcp.dispatch(); return; }
  }
  // RFC 1122 §4.2.2.17: "As long as the receiving TCP continues to send acknowledgments in
  // response to the probe segments, the sending TCP MUST allow the connection to stay open."
  // A peer that stopped answering is gone: after persist_probes unanswered probes or
  // maxpersistidle without a segment (Linux tcp_retries2, FreeBSD tcp_maxpersistidle) the
  // connection is dropped and its buffers freed. An orphan (the application closed it) gets
  // persist_probes in all, answered or not, as Linux's tcp_orphan_retries bounds it: no one
  // will ever read what a peer that holds its window shut makes it keep.
  const maxProbes = tcp.tun.persistProbes.value;
  // The idle bound needs two unanswered probes too (FreeBSD wants a full backoff as well): a
  // peer silent for hours before the window closed is asked before it is judged.
  if (tcb.persistProbes >= maxProbes || (tcb.persistProbes >= 2 && now - tcb.lastRecvTime >= tcp.tun.maxPersistIdle.value)
      || (tcb.userClosed && tcb.persistBackoff >= maxProbes)) {
    tcp.counters.persistDrops++;
    sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST, tcb);
    dropConnection(tcp, tcb, 'ETIMEDOUT');
    tcp.dispatch();
    return;
  }
  tcb.persistProbes++;
  // Probe with one byte past the window (RFC 9293 §3.8.6.1 "send at least one octet of new
  // data"); the interval doubles up to persmax.
  tcb.persistBackoff++;
  // With a zero window this forces a one-byte probe; with a small one, what the window allows.
  tcb.forceOne = true;
  if (tcb.sndWnd === 0) {
    tcb.sndNxt = tcb.sndUna;
    tcp.counters.sndProbes++;
  }
  tcpOutput(tcp, tcb, now);
  tcb.forceOne = false;
  if (!tcb.persistArmed && !tcb.rexmtTimer.armed && tcb.sndBuf.length > 0) armPersist(tcp, tcb, now);
  tcp.dispatch();
}

export function onKeepTimer(tcb: Tcb, now: number): void {
  const tcp = tcb.tcp;
  switch (tcb.keepMode) {
    case KeepMode.FinWait2:
      if (tcb.state === TcpState.FIN_WAIT_2) dropConnection(tcp, tcb, '');
      break;
    case KeepMode.Keepalive: {
      if (!tcb.keepalive || (tcb.state !== TcpState.ESTABLISHED && tcb.state !== TcpState.CLOSE_WAIT)) { tcb.keepMode = KeepMode.None; break; }
      const idle = now - tcb.lastRecvTime;
      if (tcb.keepProbes === 0 && idle < tcb.keepIdle) {
        tcp.host.wheel.arm(tcb.keepTimer, tcb.lastRecvTime + tcb.keepIdle);
        break;
      }
      if (tcb.keepProbes >= tcb.keepCnt) {
        tcp.counters.keepDrops++;
        sendRst(tcp, tcb.laddr, tcb.lport, tcb.raddr, tcb.rport, tcb.sndNxt, 0, TcpFlag.RST, tcb);
        dropConnection(tcp, tcb, 'ETIMEDOUT');
        break;
      }
      // RFC 9293 §3.8.4: a probe is a segment with SEG.SEQ = SND.NXT-1 and no data.
      tcp.counters.sndKeepProbes++;
      tcb.keepProbes++;
      emit(tcp, tcb, (tcb.sndUna - 1) >>> 0, 0, TcpFlag.ACK, now);
      tcp.host.wheel.arm(tcb.keepTimer, now + tcb.keepIntvl);
      break;
    }
  }
  tcp.dispatch();
}

export function onDelackTimer(tcb: Tcb, now: number): void {
  void now;
  const tcp = tcb.tcp;
  if (tcb.state === TcpState.CLOSED) return;
  // Linux: a delayed ACK that had to fire was not picked up by a reply; leave ping-pong mode.
  tcb.pingpong = false;
  tcb.ackNow = true;
  tcpOutput(tcp, tcb, now);
  tcp.dispatch();
}
