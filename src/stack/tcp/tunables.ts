// TCP's tunables: every net.inet.tcp.* name is spelled here once, with its default, bounds and
// description, and read everywhere else through a typed handle (`tcp.tun.msl.value`).
import { defineIpSysctls, definePortRangeSysctls } from '../ip/tunables.js';
import type { SysctlHandle, Sysctl } from '../sysctl.js';
import { CC_ALGORITHMS } from './congestion/index.js';
import type { RttOptions } from './rtt.js';

export class TcpTunables {
  readonly msl: SysctlHandle<number>;
  readonly twReuse: SysctlHandle<boolean>;
  readonly rexmitMin: SysctlHandle<number>;
  readonly rexmitMax: SysctlHandle<number>;
  readonly rexmitInitial: SysctlHandle<number>;
  readonly delayedAck: SysctlHandle<boolean>;
  readonly delAckTime: SysctlHandle<number>;
  readonly syncookies: SysctlHandle<number>;
  readonly ccAlgorithm: SysctlHandle<string>;
  readonly sendSpace: SysctlHandle<number>;
  readonly recvSpace: SysctlHandle<number>;
  readonly sendBufAuto: SysctlHandle<boolean>;
  readonly sendBufMax: SysctlHandle<number>;
  readonly recvBufAuto: SysctlHandle<boolean>;
  readonly recvBufMax: SysctlHandle<number>;
  readonly mssDefault: SysctlHandle<number>;
  readonly rfc1323: SysctlHandle<boolean>;
  readonly sackEnable: SysctlHandle<boolean>;
  readonly tlp: SysctlHandle<boolean>;
  readonly rack: SysctlHandle<boolean>;
  readonly keepIdle: SysctlHandle<number>;
  readonly keepIntvl: SysctlHandle<number>;
  readonly keepCnt: SysctlHandle<number>;
  readonly maxConn: SysctlHandle<number>;
  readonly synBacklog: SysctlHandle<number>;
  readonly reassMax: SysctlHandle<number>;
  readonly challengeAckLimit: SysctlHandle<number>;
  readonly initCwndSegments: SysctlHandle<number>;
  readonly rexmitCount: SysctlHandle<number>;
  readonly synRetries: SysctlHandle<number>;
  readonly finWait2Timeout: SysctlHandle<number>;
  readonly persMin: SysctlHandle<number>;
  readonly persMax: SysctlHandle<number>;
  readonly persistProbes: SysctlHandle<number>;
  readonly maxPersistIdle: SysctlHandle<number>;
  readonly portFirst: SysctlHandle<number>;
  readonly portLast: SysctlHandle<number>;
  readonly ttl: SysctlHandle<number>;
  readonly ecn: SysctlHandle<number>;
  readonly fastOpen: SysctlHandle<number>;
  /** RTO bounds as RttEstimator reads them: live views of the rexmit_* tunables, shared by every connection. */
  readonly rttOpts: RttOptions;

  constructor(s: Sysctl) {
    const int = (name: string, def: number, description: string, min = 0, max = 0x7fffffff) => s.define({ name, type: 'int', default: def, description, min, max });
    const bool = (name: string, def: boolean, description: string) => s.define({ name, type: 'bool', default: def, description });
    this.msl = int('net.inet.tcp.msl', 30000, 'Maximum segment lifetime in ms (TIME_WAIT lasts 2*MSL)', 1);
    this.twReuse = bool('net.inet.tcp.tw_reuse', false, 'Let an outgoing connection take over a 4-tuple in TIME_WAIT when both incarnations use timestamps and the last segment is over 1 s old (RFC 6191; Linux tcp_tw_reuse)');
    this.rexmitMin = int('net.inet.tcp.rexmit_min', 200, 'Minimum retransmission timeout and floor of its variance term (ms): RTO = SRTT + max(4*RTTVAR, rexmit_min), as Linux\'s rto_min', 1);
    this.rexmitMax = int('net.inet.tcp.rexmit_max', 60000, 'Maximum retransmission timeout (ms)', 1);
    this.rexmitInitial = int('net.inet.tcp.rexmit_initial', 1000, 'Initial retransmission timeout before an RTT sample (ms, RFC 6298)', 1);
    this.delayedAck = bool('net.inet.tcp.delayed_ack', true, 'Delay ACKs (RFC 1122 §4.2.3.2): ACK every second full segment or after delacktime');
    this.delAckTime = int('net.inet.tcp.delacktime', 40, 'Delayed ACK timeout (ms)', 1, 40);
    this.syncookies = int('net.inet.tcp.syncookies', 1, 'SYN cookies: 0 off, 1 when the SYN queue overflows, 2 always', 0, 2);
    this.ccAlgorithm = s.define({ name: 'net.inet.tcp.cc.algorithm', type: 'string', default: 'newreno', description: 'Default congestion control', choices: CC_ALGORITHMS });
    this.sendSpace = int('net.inet.tcp.sendspace', 262144, 'Send buffer size (bytes)', 1024, 1 << 30);
    this.recvSpace = int('net.inet.tcp.recvspace', 262144, 'Receive buffer size (bytes)', 1024, 1 << 30);
    this.sendBufAuto = bool('net.inet.tcp.sendbuf_auto', true, 'Send buffer autotuning (FreeBSD\'s name): grow a connection\'s send buffer from sendspace towards sendbuf_max while the application keeps it full and cwnd could use more');
    this.sendBufMax = int('net.inet.tcp.sendbuf_max', 4194304, 'Largest autotuned send buffer (bytes; Linux tcp_wmem[2])', 1024, 1 << 30);
    this.recvBufAuto = bool('net.inet.tcp.recvbuf_auto', true, 'Receive buffer autotuning (FreeBSD\'s name): grow a connection\'s receive buffer from recvspace towards recvbuf_max so the window holds twice what arrives in one round trip, measured by the receiver, while growing still raises the delivery rate (Linux tcp_rcv_space_adjust)');
    this.recvBufMax = int('net.inet.tcp.recvbuf_max', 6291456, 'Largest autotuned receive buffer (bytes; Linux tcp_rmem[2])', 1024, 1 << 30);
    this.mssDefault = int('net.inet.tcp.mssdflt', 536, 'Send MSS when the peer offers none (RFC 9293 §3.7.1)', 88, 65495);
    this.rfc1323 = bool('net.inet.tcp.rfc1323', true, 'Offer window scaling and timestamps (RFC 7323)');
    this.sackEnable = bool('net.inet.tcp.sack.enable', true, 'Offer and use SACK (RFC 2018, RFC 6675)');
    this.tlp = bool('net.inet.tcp.tlp', true, 'Tail loss probes (RFC 8985 §7): with SACK, retransmit the last segment after ~2 RTTs without an ACK, so a lost tail is repaired by SACK recovery instead of a retransmission timeout');
    this.rack = bool('net.inet.tcp.rack', true, 'RACK loss detection (RFC 8985 §6): with SACK, a segment is lost once one sent after it was delivered a reordering window later; finds lost retransmissions without a retransmission timeout');
    this.keepIdle = int('net.inet.tcp.keepidle', 7200000, 'Idle time before keepalive probes (ms)', 1);
    this.keepIntvl = int('net.inet.tcp.keepintvl', 75000, 'Interval between keepalive probes (ms)', 1);
    this.keepCnt = int('net.inet.tcp.keepcnt', 8, 'Unanswered keepalive probes before the connection is dropped', 1);
    this.maxConn = int('net.inet.tcp.maxconn', 65536, 'Maximum connections (all states)', 1);
    this.synBacklog = int('net.inet.tcp.syn_backlog', 1024, 'Maximum SYN_RECEIVED connections per listener before SYN cookies / drops', 1);
    this.reassMax = int('net.inet.tcp.reass.maxsegments', 64, 'Out-of-order ranges kept per connection', 1, 4096);
    this.challengeAckLimit = int('net.inet.tcp.challenge_ack_limit', 1000, 'Challenge ACKs per second (RFC 5961 §7)', 1);
    this.initCwndSegments = int('net.inet.tcp.initcwnd_segments', 10, 'Initial congestion window in segments (RFC 6928)', 1, 100);
    this.rexmitCount = int('net.inet.tcp.rexmit_count', 12, 'Retransmissions of data before the connection is dropped (ETIMEDOUT)', 1, 100);
    this.synRetries = int('net.inet.tcp.syn_retries', 6, 'SYN retransmissions before connect fails with ETIMEDOUT', 1, 100);
    this.finWait2Timeout = int('net.inet.tcp.finwait2_timeout', 60000, 'How long an orphaned connection may stay in FIN_WAIT_2 (ms)', 1);
    this.persMin = int('net.inet.tcp.persmin', 200, 'Minimum persist (zero-window probe) interval (ms)', 1);
    this.persMax = int('net.inet.tcp.persmax', 60000, 'Maximum persist interval (ms)', 1);
    this.persistProbes = int('net.inet.tcp.persist_probes', 15, 'Unanswered zero-window probes before the connection is dropped (ETIMEDOUT); also the most probes an orphaned connection gets, answered or not (Linux tcp_retries2 / tcp_orphan_retries)', 1, 1000);
    this.maxPersistIdle = int('net.inet.tcp.maxpersistidle', 7200000, 'Longest a connection in persist may go without hearing from the peer before it is dropped (ms; FreeBSD tcp_maxpersistidle)', 1);
    this.ecn = int('net.inet.tcp.ecn', 2, 'Explicit Congestion Notification (RFC 3168), as Linux tcp_ecn: 0 off, 1 request it on outgoing connections and accept it on incoming ones, 2 only accept it when the peer asks', 0, 2);
    this.fastOpen = int('net.inet.tcp.fastopen', 1, 'TCP Fast Open (RFC 7413), Linux tcp_fastopen bits: 0x1 client (data in the SYN when the application asks), 0x2 server (listeners that ask accept data in the SYN), 0x4 client without a cookie, 0x200 server without a cookie, 0x400 server on every listener (queue = backlog)', 0, 0xffff);
    const range = definePortRangeSysctls(s);
    this.portFirst = range.first;
    this.portLast = range.last;
    this.ttl = defineIpSysctls(s).ttl;
    const min = this.rexmitMin, max = this.rexmitMax, initial = this.rexmitInitial;
    this.rttOpts = {
      get minRto() { return min.value; },
      get maxRto() { return max.value; },
      get initialRto() { return initial.value; },
    };
  }
}
