// ICMPv4: echo replies, error generation (rate limited, with RFC 1122 §3.2.2 exclusions), and
// delivery of received errors to the transport that sent the offending datagram.
import { Csum, type PacketBuffer } from '../../base/pktbuf.js';
import { IcmpType, IcmpV4View, finishIcmpChecksum, isIcmpError, writeIcmpHeader, ICMP_HLEN } from '../../wire/icmpv4.js';
import { IpProto, Ipv4View, IPV4_HLEN } from '../../wire/ipv4.js';
import { WireError } from '../../wire/errors.js';
import { isIpv4Multicast, isIpv4Loopback } from '../../wire/addr.js';
import type { BufferPool } from '../../base/pktbuf.js';
import type { Clock } from '../../base/time.js';
import type { Interface } from '../iface.js';
import type { Sysctl } from '../sysctl.js';

/** What ICMP needs from the stack (IPv4 implements it). */
export interface IcmpContext {
  readonly clock: Clock;
  readonly sysctl: Sysctl;
  readonly pool: BufferPool;
  /** net.inet.ip.ttl */
  readonly defaultTtl: number;
  drop(reason: string): void;
  interfaceByIndex(ifIndex: number): Interface | undefined;
  isLocalAddress(addr: number): boolean;
  isBroadcastAddress(addr: number): boolean;
  /** Sends an L4 payload as an IPv4 datagram. Takes ownership; false when there is no route. */
  ipOutput(buf: PacketBuffer, src: number, dst: number, proto: number, tos: number, ttl: number, df: boolean): boolean;
}

export function defineIcmpSysctls(s: Sysctl): void {
  s.define({ name: 'net.inet.icmp.icmplim', type: 'int', default: 200, min: 0, max: 1_000_000, description: 'ICMP error messages sent per second at most (0 = unlimited)' });
  s.define({ name: 'net.inet.icmp.bmcastecho', type: 'bool', default: false, description: 'answer echo requests sent to broadcast or multicast addresses' });
  s.define({ name: 'net.inet.icmp.echo_enable', type: 'bool', default: true, description: 'answer echo requests' });
}

/** Hands a received ICMP error to a transport: the quoted datagram's header is in `inner`, its first bytes at innerPayloadOff. */
export type IcmpErrorHandler = (type: number, code: number, info: number, inner: Ipv4View, l4Off: number, l4Len: number) => void;

export class Icmp {
  private readonly view = new IcmpV4View();
  private readonly inner = new Ipv4View();
  private tokens = 0;
  private lastRefill = 0;
  readonly handlers = new Map<number, IcmpErrorHandler>();
  /** Echo replies addressed to us (the ping API): source, identifier, sequence, payload view (valid during the call). */
  onEchoReply: ((src: number, id: number, seq: number, payload: Uint8Array) => void) | null = null;
  stats = { received: 0, echoRequests: 0, echoReplies: 0, errorsSent: 0, errorsRateLimited: 0, errorsReceived: 0 };

  constructor(private readonly ctx: IcmpContext) {}

  /**
   * An ICMP message for us; `ip` is wrapped over buf. `toBroadcast` when the IP destination was a
   * broadcast or multicast address. Takes ownership.
   */
  input(ip: Ipv4View, buf: PacketBuffer, toBroadcast: boolean): void {
    const v = this.view;
    const err = v.wrap(buf.data, ip.payloadOff, ip.payloadLen, true);
    if (err !== WireError.Ok) { buf.release(); this.ctx.drop(err === WireError.BadChecksum ? 'icmp_bad_checksum' : 'icmp_truncated'); return; }
    this.stats.received++;
    const type = v.type;
    if (type === IcmpType.Echo) {
      this.stats.echoRequests++;
      const s = this.ctx.sysctl;
      if (!s.bool('net.inet.icmp.echo_enable')) { buf.release(); this.ctx.drop('icmp_echo_disabled'); return; }
      if (toBroadcast && !s.bool('net.inet.icmp.bmcastecho')) { buf.release(); this.ctx.drop('icmp_bmcast_echo'); return; }
      this.echoReply(ip, buf, toBroadcast);
      return;
    }
    if (isIcmpError(type)) {
      this.stats.errorsReceived++;
      this.deliverError(v, buf);
      buf.release();
      return;
    }
    if (type === IcmpType.EchoReply && this.onEchoReply) {
      this.onEchoReply(ip.src, v.echoId, v.echoSeq, buf.data.subarray(v.payloadOff, v.payloadOff + v.payloadLen));
    }
    // Timestamps, router messages: nothing for a host without sockets for them.
    buf.release();
  }

  /** Sends an echo request (ping). Returns false when there is no route. */
  sendEcho(dst: number, id: number, seq: number, payload: Uint8Array, src = 0, ttl = this.ctx.defaultTtl): boolean {
    const buf = this.ctx.pool.alloc(ICMP_HLEN + payload.length + 200);
    const off = buf.append(ICMP_HLEN + payload.length);
    writeIcmpHeader(buf.data, off, IcmpType.Echo, 0, ((id & 0xffff) << 16) | (seq & 0xffff));
    buf.data.set(payload, off + ICMP_HLEN);
    finishIcmpChecksum(buf.data, off, ICMP_HLEN + payload.length);
    return this.ctx.ipOutput(buf, src, dst, IpProto.ICMP, 0, ttl, false);
  }

  /** Turns the request into the reply in place (RFC 792: swap addresses, type 0) and sends it. */
  private echoReply(ip: Ipv4View, buf: PacketBuffer, toBroadcast: boolean): void {
    const src = ip.src;
    const iface = this.ctx.interfaceByIndex(buf.ifIndex);
    const from = toBroadcast ? (iface?.sourceFor(src) ?? 0) : ip.dst;
    const tos = ip.tos;
    const icmpOff = ip.payloadOff, icmpLen = ip.payloadLen;
    buf.start = icmpOff;
    buf.end = icmpOff + icmpLen;
    const d = buf.data;
    // Type 8 -> 0 changes one 16-bit word by 0x0800: patch the checksum incrementally (RFC 1624).
    d[icmpOff] = IcmpType.EchoReply;
    let sum = ((d[icmpOff + 2]! << 8) | d[icmpOff + 3]!) + 0x0800;
    sum = (sum & 0xffff) + (sum >>> 16);
    d[icmpOff + 2] = sum >> 8; d[icmpOff + 3] = sum & 0xff;
    buf.csum = Csum.None; buf.gso = 0;
    this.stats.echoReplies++;
    this.ctx.ipOutput(buf, from, src, IpProto.ICMP, tos, this.ctx.defaultTtl, false);
  }

  private deliverError(v: IcmpV4View, buf: PacketBuffer): void {
    const inner = this.inner;
    // The quoted header must be complete; at least 8 bytes of its payload follow (RFC 792).
    if (inner.wrapQuoted(buf.data, v.payloadOff, v.payloadLen) !== WireError.Ok || v.payloadLen < inner.headerLength + 8) {
      this.ctx.drop('icmp_bad_quote'); return;
    }
    // Only errors about datagrams we sent are of interest.
    if (!this.ctx.isLocalAddress(inner.src)) { this.ctx.drop('icmp_not_ours'); return; }
    const h = this.handlers.get(inner.protocol);
    if (!h) return;
    const l4Off = inner.payloadOff;
    const l4Len = Math.min(v.payloadLen - inner.headerLength, Math.max(0, inner.totalLength - inner.headerLength));
    h(v.type, v.code, v.nextHopMtu, inner, l4Off, l4Len);
  }

  /**
   * Sends an ICMP error about the datagram in `orig` (wrapped over origBuf). Does not take ownership.
   * RFC 1122 §3.2.2: never about an ICMP error, a broadcast/multicast destination (`toBroadcast`),
   * a non-initial fragment, or a source that is not a unicast host; rate limited (icmplim).
   */
  sendError(orig: Ipv4View, origBuf: PacketBuffer, type: number, code: number, toBroadcast: boolean, info = 0): void {
    if (toBroadcast || orig.fragOffset !== 0) return;
    const src = orig.src;
    if (src === 0 || src === 0xffffffff || isIpv4Multicast(src) || isIpv4Loopback(src) || this.ctx.isBroadcastAddress(src)) return;
    if (orig.protocol === IpProto.ICMP) {
      const t = origBuf.data[orig.payloadOff];
      if (orig.payloadLen < 1 || t === undefined || isIcmpError(t) || t === IcmpType.Redirect) return;
    }
    if (!this.allow()) { this.stats.errorsRateLimited++; this.ctx.drop('icmp_ratelimited'); return; }
    // Quote the header and as much payload as keeps the error within 576 bytes (RFC 1812 §4.3.2.3).
    const quote = Math.min(orig.totalLength, 576 - IPV4_HLEN - ICMP_HLEN);
    const buf = this.ctx.pool.alloc();
    const off = buf.append(ICMP_HLEN + quote);
    writeIcmpHeader(buf.data, off, type, code, info & 0xffff);
    buf.data.set(origBuf.data.subarray(orig.off, orig.off + quote), off + ICMP_HLEN);
    finishIcmpChecksum(buf.data, off, ICMP_HLEN + quote);
    const iface = this.ctx.interfaceByIndex(origBuf.ifIndex);
    const from = this.ctx.isLocalAddress(orig.dst) ? orig.dst : (iface?.sourceFor(src) ?? 0);
    this.stats.errorsSent++;
    this.ctx.ipOutput(buf, from, src, IpProto.ICMP, 0, this.ctx.defaultTtl, false);
  }

  /** Token bucket of icmplim tokens per second. */
  private allow(): boolean {
    const lim = this.ctx.sysctl.int('net.inet.icmp.icmplim');
    if (lim === 0) return true;
    const now = this.ctx.clock.now();
    this.tokens = Math.min(lim, this.tokens + ((now - this.lastRefill) * lim) / 1000);
    this.lastRefill = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
