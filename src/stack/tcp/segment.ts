// The per-segment facts TCP input fills in place for every received segment (either family).
import type { PacketBuffer } from '../../base/pktbuf.js';
import { TcpFlag, TcpOptions } from '../../wire/tcp.js';
import { AF_INET, type TcpEnds } from './ends.js';

/** The per-segment facts input processing needs, filled in place for every segment. */
export class Segment implements TcpEnds {
  buf!: PacketBuffer;
  bytes!: Uint8Array;
  /** AF_INET: src/dst are the addresses; AF_INET6: raddr6 (source) and laddr6 (destination) are, src = dst = 0. */
  family = AF_INET;
  src = 0;
  dst = 0;
  readonly laddr6 = new Uint8Array(16);
  readonly raddr6 = new Uint8Array(16);
  /** TcpEnds: the segment's destination is our end. */
  get laddr(): number { return this.dst; }
  get raddr(): number { return this.src; }
  sport = 0;
  dport = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  wnd = 0;
  up = 0;
  /** Absolute offset of the payload in bytes. */
  dataOff = 0;
  dataLen = 0;
  /** The IP header's ECN field (RFC 3168 §5): 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE. */
  ecn = 0;
  readonly opts = new TcpOptions();
  /** SEG.LEN: payload plus one each for SYN and FIN. */
  get len(): number { return this.dataLen + (this.flags & TcpFlag.SYN ? 1 : 0) + (this.flags & TcpFlag.FIN ? 1 : 0); }
}
