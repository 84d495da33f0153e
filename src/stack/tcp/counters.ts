// TCP's counters (what `netstat -s` shows) and the connection listing the tools print.
import type { TcpState } from './tcb.js';

/** Counters by reason, printed by the tools. Plain numbers: incrementing allocates nothing. */
export class TcpCounters {
  rcvTotal = 0;
  /** ICMP errors: about data not in flight (ignored), path MTU updates, hard and soft errors. */
  icmpIgnored = 0;
  pmtuUpdates = 0;
  icmpHardErrors = 0;
  icmpSoftErrors = 0;
  rcvBadChecksum = 0;
  rcvBadHeader = 0;
  rcvBadOptions = 0;
  rcvBadAddress = 0;
  rcvNoSocket = 0;
  rcvDupAck = 0;
  rcvAckTooMuch = 0;
  rcvOutOfWindow = 0;
  rcvPawsDropped = 0;
  rcvOutOfOrder = 0;
  rcvReassFull = 0;
  rcvAfterClose = 0;
  rcvUrgent = 0;
  sndTotal = 0;
  sndData = 0;
  sndRexmtPackets = 0;
  sndAcks = 0;
  sndRst = 0;
  sndProbes = 0;
  sndKeepProbes = 0;
  sndChallengeAcks = 0;
  challengeAckLimited = 0;
  noRoute = 0;
  connAttempts = 0;
  connAccepts = 0;
  connEstablished = 0;
  connDrops = 0;
  connRefused = 0;
  connResets = 0;
  timeoutDrops = 0;
  keepDrops = 0;
  rexmtTimeouts = 0;
  persistTimeouts = 0;
  /** Segments that could not be sent because neighbour resolution failed. */
  hostUnreachable = 0;
  /** Connections dropped in persist: the peer stopped answering zero-window probes, or an orphan ran out of probes. */
  persistDrops = 0;
  fastRetransmits = 0;
  /** Tail loss probes sent (RFC 8985 §7). */
  tlpProbes = 0;
  /** Losses a probe revealed: SACK recovery entered, or a repaired tail answered by a cwnd reduction. */
  tlpRecoveries = 0;
  /** Reordering-timer expiries that found losses (RFC 8985 §6.2 step 5). */
  rackTimeouts = 0;
  /** Ranges RACK declared lost (RFC 8985 §6.2), lost retransmissions included. */
  rackLost = 0;
  sackRecoveries = 0;
  limitedTransmits = 0;
  synCookiesSent = 0;
  synCookiesReceived = 0;
  synCookiesFailed = 0;
  listenOverflows = 0;
  synQueueDrops = 0;
  maxConnDrops = 0;
  /** Outgoing connections that took over a 4-tuple in TIME_WAIT (net.inet.tcp.tw_reuse). */
  timeWaitReused = 0;
  /** ECN (RFC 3168): connections that negotiated it, CE-marked data segments received, ACKs with ECE, cwnd reductions for an ECE. */
  ecnNegotiated = 0;
  ecnCeReceived = 0;
  ecnEceReceived = 0;
  ecnCwndReductions = 0;
  /**
   * TCP Fast Open (Linux's TCPFastOpen* names): SYNs sent with data (and a cookie or a cookie
   * request), SYN data the peer acknowledged or not, SYNs with data accepted as a server, cookies
   * requested of us, bad cookies, requests over the TFO queue length, and SYN-with-data timeouts.
   */
  tfoActive = 0;
  tfoActiveFail = 0;
  tfoPassive = 0;
  tfoCookieReqd = 0;
  tfoPassiveFail = 0;
  tfoListenOverflow = 0;
  tfoSynLoss = 0;
}

/** What netstat-like views show of a connection (a Tcb, or a TIME_WAIT record). */
export interface TcpConnectionInfo {
  readonly laddr: number;
  readonly lport: number;
  readonly raddr: number;
  readonly rport: number;
  readonly state: TcpState;
  readonly stateName: string;
}
