// ICMPv6 (RFC 4443): echo replies, error generation under the §2.4(e) exclusions and the
// §2.4(f) rate limit, and received errors handed to path MTU discovery and to transports.
// Neighbour Discovery and MLD messages are ICMPv6 too; the IPv6 layer routes them elsewhere.
import { Csum, type PacketBuffer } from '../../base/pktbuf.js';
import { WireError } from '../../wire/errors.js';
import {
  ICMPV6_HLEN, Icmpv6ParamProblemCode, Icmpv6Type, Icmpv6View, icmpv6ChecksumOk, isIcmpv6Error, writeIcmpv6Echo, writeIcmpv6Error,
} from '../../wire/icmpv6.js';
import { IPV6_HLEN, Ipv6ExtChain, Ipv6Next, Ipv6View, isIpv6Multicast, isIpv6Unspecified } from '../../wire/ipv6.js';
import type { Sysctl } from '../sysctl.js';
import { copyAddr6 } from './addr6.js';
import type { Ip6Services } from './ipv6-context.js';

export function defineIcmp6Sysctls(s: Sysctl): void {
  s.define({ name: 'net.inet6.icmp6.errppslimit', type: 'int', default: 100, min: 0, max: 1_000_000, description: 'ICMPv6 error messages sent per second at most (0 = unlimited; RFC 4443 §2.4(f))' });
  s.define({ name: 'net.inet6.icmp6.echo_enable', type: 'bool', default: true, description: 'answer ICMPv6 echo requests' });
  s.define({ name: 'net.inet6.icmp6.mcastecho', type: 'bool', default: true, description: 'answer ICMPv6 echo requests sent to a multicast group (as Linux and FreeBSD do)' });
}

/**
 * A received ICMPv6 error about a packet we sent, for the transport that sent it: the quoted
 * packet's IPv6 header is at `ipOff` in `bytes`, its upper-layer header (protocol `proto`) at
 * `l4Off` with `l4Len` bytes quoted. Valid during the call only.
 */
export type Icmpv6ErrorHandler = (type: number, code: number, word: number, bytes: Uint8Array, ipOff: number, l4Off: number, l4Len: number) => void;

export class Icmpv6 {
  private readonly view = new Icmpv6View();
  private readonly inner = new Ipv6View();
  private readonly chain = new Ipv6ExtChain();
  private readonly from = new Uint8Array(16);
  private readonly to = new Uint8Array(16);
  private tokens = 0;
  private lastRefill = -Infinity;
  /** Transport handlers by upper-layer protocol (TCP, UDP). */
  readonly handlers = new Map<number, Icmpv6ErrorHandler>();
  /** Packet Too Big (RFC 8201) quoting the packet whose IPv6 header is at quoted[ipOff..]. */
  onPacketTooBig: ((quoted: Uint8Array, ipOff: number, mtu: number) => void) | null = null;
  /** Echo replies addressed to us (the ping API): source (16 bytes, valid during the call), identifier, sequence, payload (valid during the call). */
  onEchoReply: ((src: Uint8Array, id: number, seq: number, payload: Uint8Array) => void) | null = null;
  stats = { received: 0, badChecksum: 0, echoRequests: 0, echoReplies: 0, errorsReceived: 0, errorsSent: 0, errorsRateLimited: 0, errorsSuppressed: 0 };

  constructor(private readonly host: Ip6Services) {}

  /** RFC 4443 §2.3: the checksum over the pseudo-header and the message. */
  checksumOk(buf: PacketBuffer, ip: Ipv6View, off: number, len: number): boolean {
    if (buf.csum === Csum.Valid) return true;
    if (icmpv6ChecksumOk(buf.data, off, len, ip.bytes, ip.srcOff, ip.bytes, ip.dstOff)) return true;
    this.stats.badChecksum++;
    return false;
  }

  /**
   * An ICMPv6 message (checksum verified) for us at buf.data[off, off+len), `ip` wrapped over
   * its packet. `toMulticast` when the destination was a group. Takes ownership.
   */
  input(ip: Ipv6View, buf: PacketBuffer, off: number, len: number, toMulticast: boolean, ifIndex: number): void {
    const v = this.view;
    if (v.wrap(buf.data, off, len) !== WireError.Ok) { buf.release(); this.host.drop('icmp6_truncated'); return; }
    this.stats.received++;
    const type = v.type;
    if (type === Icmpv6Type.EchoRequest) {
      this.stats.echoRequests++;
      const s = this.host.sysctl;
      if (!s.bool('net.inet6.icmp6.echo_enable')) { buf.release(); this.host.drop('icmp6_echo_disabled'); return; }
      if (toMulticast && !s.bool('net.inet6.icmp6.mcastecho')) { buf.release(); this.host.drop('icmp6_mcast_echo'); return; }
      // A request from :: (a node without an address yet) has nowhere to be answered.
      if (isIpv6Unspecified(ip.bytes, ip.srcOff)) { buf.release(); this.host.drop('icmp6_echo_from_unspecified'); return; }
      this.echoReply(ip, buf, off, len, toMulticast, ifIndex);
      return;
    }
    if (type === Icmpv6Type.EchoReply) {
      if (this.onEchoReply) {
        copyAddr6(this.from, 0, ip.bytes, ip.srcOff);
        this.onEchoReply(this.from, v.echoId, v.echoSeq, buf.data.subarray(off + ICMPV6_HLEN, off + len));
      }
      buf.release();
      return;
    }
    if (isIcmpv6Error(type)) {
      this.stats.errorsReceived++;
      this.deliverError(v, buf);
      buf.release();
      return;
    }
    // RFC 4443 §2.4(b): "An ICMPv6 informational message of unknown type MUST be silently discarded."
    buf.release();
    this.host.drop('icmp6_unknown_type');
  }

  /** Sends an echo request (ping). `src` null chooses one. False when there is no route or source. */
  sendEcho(dst: Uint8Array, id: number, seq: number, payload: Uint8Array, src: Uint8Array | null = null, hopLimit = -1, ifIndex = 0): boolean {
    const buf = this.host.pool.alloc(ICMPV6_HLEN + payload.length + 256);
    const off = buf.append(ICMPV6_HLEN + payload.length);
    writeIcmpv6Echo(buf.data, off, Icmpv6Type.EchoRequest, id, seq);
    buf.data.set(payload, off + ICMPV6_HLEN);
    return this.host.sendIcmpv6(buf, src, 0, dst, 0, hopLimit, ifIndex);
  }

  /** RFC 4443 §4.2: the reply carries the request's identifier, sequence and data; the request's buffer is reused. */
  private echoReply(ip: Ipv6View, buf: PacketBuffer, off: number, len: number, toMulticast: boolean, ifIndex: number): void {
    copyAddr6(this.to, 0, ip.bytes, ip.srcOff);
    // "If the Echo Request was sent to a multicast address, the source address of the reply
    // MUST be a unicast address belonging to the interface on which the Echo Request was received."
    const src = toMulticast ? null : this.from;
    if (!toMulticast) copyAddr6(this.from, 0, ip.bytes, ip.dstOff);
    buf.start = off; buf.end = off + len;
    buf.data[off] = Icmpv6Type.EchoReply;
    buf.csum = Csum.None; buf.gso = 0;
    this.stats.echoReplies++;
    this.host.sendIcmpv6(buf, src, 0, this.to, 0, -1, toMulticast ? ifIndex : 0);
  }

  private deliverError(v: Icmpv6View, buf: PacketBuffer): void {
    const inner = this.inner;
    if (inner.wrapQuoted(buf.data, v.payloadOff, v.payloadLen) !== WireError.Ok) { this.host.drop('icmp6_bad_quote'); return; }
    if (v.type === Icmpv6Type.PacketTooBig) {
      this.onPacketTooBig?.(inner.bytes, inner.off, v.mtu);
    }
    const end = v.payloadOff + v.payloadLen;
    const quotedEnd = Math.min(end, inner.off + IPV6_HLEN + inner.payloadLength);
    if (this.chain.walkFrom(inner.bytes, inner.payloadOff, quotedEnd, inner.nextHeader, inner.off + 6) !== WireError.Ok) return;
    const h = this.handlers.get(this.chain.protocol);
    if (h) h(v.type, v.code, v.word, buf.data, inner.off, this.chain.offset, this.chain.length);
  }

  /**
   * Sends an error about the packet in `orig` (start = its IPv6 header). Does not take ownership.
   * RFC 4443 §2.4(e): never about an ICMPv6 error or a Redirect, nor about a packet sent to a
   * multicast group or as link-layer multicast/broadcast — except Packet Too Big and Parameter
   * Problem code 2 for an option whose type says so (`allowMulticast`) — nor to a source that
   * does not identify one node (unspecified, multicast). §2.4(f): rate limited.
   */
  sendError(orig: PacketBuffer, type: number, code: number, word: number, ifIndex: number, l2Multicast: boolean, allowMulticast = false): void {
    const b = orig.data, o = orig.start;
    if (orig.length < IPV6_HLEN) return;
    const srcOff = o + 8, dstOff = o + 24;
    if (isIpv6Unspecified(b, srcOff) || isIpv6Multicast(b, srcOff)) { this.stats.errorsSuppressed++; return; }
    const mcast = isIpv6Multicast(b, dstOff) || l2Multicast;
    if (mcast && !(allowMulticast || type === Icmpv6Type.PacketTooBig)) { this.stats.errorsSuppressed++; return; }
    const inner = this.inner;
    if (inner.wrapQuoted(b, o, orig.length) === WireError.Ok) {
      const end = Math.min(orig.end, o + IPV6_HLEN + inner.payloadLength);
      if (this.chain.walkFrom(b, o + IPV6_HLEN, end, inner.nextHeader, o + 6) === WireError.Ok && this.chain.protocol === Ipv6Next.ICMPv6 && this.chain.length >= 1) {
        const t = b[this.chain.offset]!;
        if (isIcmpv6Error(t) || t === Icmpv6Type.Redirect) { this.stats.errorsSuppressed++; return; }
      }
    }
    if (!this.allow()) { this.stats.errorsRateLimited++; this.host.drop('icmp6_ratelimited'); return; }
    copyAddr6(this.to, 0, b, srcOff);
    const link = this.host.link(ifIndex);
    let src: Uint8Array | null = null;
    if (!mcast && link?.isAssigned(b, dstOff)) { copyAddr6(this.from, 0, b, dstOff); src = this.from; }
    const buf = this.host.pool.alloc();
    const off = buf.append(0);
    const n = writeIcmpv6Error(buf.data, off, type, code, word, b, o, orig.length);
    buf.append(n);
    this.stats.errorsSent++;
    this.host.sendIcmpv6(buf, src, 0, this.to, 0, -1, 0);
  }

  /** Parameter Problem pointing at byte `at` of `orig` (RFC 4443 §3.4). */
  paramProblem(orig: PacketBuffer, code: number, at: number, ifIndex: number, l2Multicast: boolean, allowMulticast = false): void {
    this.sendError(orig, Icmpv6Type.ParamProblem, code, at - orig.start, ifIndex, l2Multicast, allowMulticast && code === Icmpv6ParamProblemCode.Option);
  }

  /** Token bucket: errppslimit tokens per second, bursts up to that many. */
  private allow(): boolean {
    const lim = this.host.sysctl.int('net.inet6.icmp6.errppslimit');
    if (lim === 0) return true;
    const now = this.host.clock.now();
    this.tokens = Math.min(lim, this.tokens + ((now - this.lastRefill) * lim) / 1000);
    this.lastRefill = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
