// Per-connection statistics kept once a connection moves data (TCP_INFO, receive autotuning).
/** What a connection that moves data keeps for TCP_INFO and receive autotuning (created at its first data). */
export class TcbStats {
  dataSegsOut = 0;
  dataSegsIn = 0;
  totalRetrans = 0;
  bytesSent = 0;
  bytesRetrans = 0;
  lastDataSentTime = 0;
  lastAckRecvTime = 0;
  /** Delivery rate (bytes/s) over the last round trip or more, and where that interval began. */
  deliveryRate = 0;
  rateStart = -1;
  rateBase = 0;
  /** Receive autotuning: start of the current measurement (-1: none yet) and bytesReceived then. */
  rcvSpaceTime = -1;
  rcvSpaceBase = 0;
  /** The receiver's RTT estimate (ms, -1: no sample yet), from the TSecr of arriving data. */
  rcvRtt = -1;
  /** Receive autotuning: the best delivery rate (bytes/ms) measured at the size before the last growth (0: no growth yet), and at this size. */
  rcvGrowRate = 0;
  rcvRateMax = 0;
  rcvRateCount = 0;
}
