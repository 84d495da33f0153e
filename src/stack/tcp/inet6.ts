// TCP over IPv6: segment input with the IPv6 pseudo-header, ICMPv6 errors, listen/bind on
// IPv6 addresses (dual-stack :: and IPV6_V6ONLY), and the active open. The connection itself
// is family-independent once its TCB exists (ends.ts: IPv6 TCBs carry 16-byte addresses, the
// path its IPv6 facts); only addressing differs, and it lives here.
import { hardError, shrinkMss } from './icmperr.js';
import { Csum, type PacketBuffer } from '../../base/pktbuf.js';
import { pseudoHeaderV6, sum16, fold } from '../../wire/checksum.js';
import { WireError } from '../../wire/errors.js';
import { parseTcpOptions } from '../../wire/tcp.js';
import { copyAddr6 } from '../ip/addr6.js';
import { AF_INET6, Ends, NO_ADDR6, isZero6, v4Mapped } from './ends.js';
import { segmentArrives } from './input.js';
import { listenerInput, TcpListener, type ListenOptions } from './listen.js';
import { newTcb6, startConnect } from './lifecycle.js';
import { NO_V4, binding6, type TcpBinding } from './ports.js';
import { seqInRange } from './seq.js';
import { TcpSocket, TcpError, type ConnectOptions } from './socket.js';
import { TcpState } from './tcb.js';
import type { Tcp } from './tcp.js';

const IPPROTO_TCP = 6;
const ICMP6_DST_UNREACH = 1;
const ICMP6_PACKET_TOO_BIG = 2;

  /**
 * One TCP segment over IPv6: as input(), with the addresses at bytes[srcOff..+16] and
 * bytes[dstOff..+16] (the IPv6 header, valid during the call). Takes ownership of buf.
 */
export function tcp6Input(tcp: Tcp, buf: PacketBuffer, bytes: Uint8Array, srcOff: number, dstOff: number, ecn = 0): void {
  const c = tcp.counters;
  c.rcvTotal++;
  const h = tcp.hdr;
  const len = buf.end - buf.start;
  const err = h.wrap(buf.data, buf.start, len);
  if (err !== WireError.Ok) { c.rcvBadHeader++; buf.release(); return; }
  if (buf.csum === Csum.None) {
    // RFC 8200 §8.1: the pseudo-header carries the 16-byte addresses and the upper-layer length.
    const sum = sum16(buf.data, buf.start, len, pseudoHeaderV6(bytes, srcOff, bytes, dstOff, IPPROTO_TCP, len));
    if (fold(sum) !== 0xffff) { c.rcvBadChecksum++; buf.release(); return; }
  }
  const seg = tcp.seg;
  const hl = h.headerLength;
  if (hl > 20 && parseTcpOptions(buf.data, buf.start + 20, hl - 20, seg.opts) !== WireError.Ok) {
    c.rcvBadOptions++; buf.release(); return;
  }
  if (hl === 20) seg.opts.clear();
  // The IPv6 layer refused multicast sources and delivers only our unicast addresses and
  // groups; TCP takes no multicast (RFC 1122 §4.2.3.10), no unspecified source, and no
  // IPv4-mapped address on the wire (RFC 4291 §2.5.5.2: they never leave a node).
  if (bytes[dstOff] === 0xff || isZero6(bytes, srcOff) || v4Mapped(bytes, srcOff) >= 0 || v4Mapped(bytes, dstOff) >= 0) {
    c.rcvBadAddress++; buf.release(); return;
  }
  copyAddr6(seg.raddr6, 0, bytes, srcOff);
  copyAddr6(seg.laddr6, 0, bytes, dstOff);
  seg.buf = buf; seg.bytes = buf.data; seg.family = AF_INET6; seg.src = 0; seg.dst = 0;
  seg.sport = h.srcPort; seg.dport = h.dstPort;
  seg.seq = h.seq; seg.ack = h.ack; seg.flags = h.flags; seg.wnd = h.window; seg.up = h.urgentPointer;
  seg.dataOff = buf.start + hl; seg.dataLen = len - hl; seg.ecn = ecn & 3;
  if (seg.dport === 0 || seg.sport === 0) { c.rcvBadHeader++; buf.release(); return; }

  const demux = tcp.demux;
  const hh = demux.hash6(seg.laddr6, 0, seg.dport, seg.raddr6, 0, seg.sport);
  const tcb = demux.lookup6Hashed(hh, seg.laddr6, seg.dport, seg.raddr6, seg.sport);
  if (tcb !== null) {
    segmentArrives(tcp, tcb, seg);
  } else {
    const tw = tcp.timeWait.count > 0 ? tcp.timeWait.lookup6(hh, seg.laddr6, seg.dport, seg.raddr6, seg.sport) : -1;
    if (tw >= 0) tcp.timeWait.input(tw, seg);
    else {
      const l = demux.findListener6(seg.laddr6, seg.dport);
      if (l) listenerInput(tcp, l, seg);
      else tcp.respondClosed(seg);
    }
  }
  buf.release();
  tcp.dispatch();
}

/**
 * ICMPv6 error about a segment we sent (RFC 4443; the quoted addresses and TCP header
 * were read by the caller): Packet Too Big lowers the MSS (RFC 8201), port unreachable and
 * administratively prohibited end a connection being opened (Linux's icmpv6_err_convert:
 * ECONNREFUSED, EACCES), the rest are soft errors.
 */
export function tcp6IcmpError(tcp: Tcp, type: number, code: number, l6: Uint8Array, lport: number, r6: Uint8Array, rport: number, seq: number, word: number): void {
  const tcb = tcp.demux.lookup6(l6, lport, r6, rport);
  if (!tcb) return;
  if (!seqInRange(seq, tcb.sndUna, tcb.sndMax)) { tcp.counters.icmpIgnored++; return; }
  if (type === ICMP6_PACKET_TOO_BIG) {
    // RFC 8201 §4: never below the IPv6 minimum MTU (the PMTU cache already refused smaller).
    const mtu = word < 1280 ? 1280 : word;
    const mss = mtu - 60;
    if (mss >= tcb.mss) { tcp.counters.icmpIgnored++; return; }
    shrinkMss(tcp, tcb, mss);
    return;
  }
  if (type === ICMP6_DST_UNREACH && (code === 4 || code === 1) && tcb.state === TcpState.SYN_SENT) {
    hardError(tcp, tcb, code === 4 ? 'ECONNREFUSED' : 'EACCES');
    return;
  }
  if (type === ICMP6_DST_UNREACH && code === 3 && (tcb.state === TcpState.SYN_SENT || tcb.state === TcpState.SYN_RECEIVED)) {
    // Address unreachable: neighbour discovery failed (ours, RFC 4861 §7.2.2, or a router's).
    // A connection being opened ends with EHOSTUNREACH, as Linux's tcp_v6_err does, through its
    // timer as for IPv4's local resolution failure (Tcp.hostUnreachable).
    tcp.counters.hostUnreachable++;
    tcb.softError = 'EHOSTUNREACH';
    tcb.hostUnreach = true;
    tcp.host.wheel.arm(tcb.rexmtTimer, tcp.host.clock.now());
    return;
  }
  if (type === ICMP6_DST_UNREACH) tcb.softError = code === 4 ? 'ECONNREFUSED' : 'EHOSTUNREACH';
  tcp.counters.icmpSoftErrors++;
}

/** An IPv6 listener (ListenOptions.addr6, or a binding from bind6()). */
export function tcp6Listen(tcp: Tcp, opts: ListenOptions): TcpListener {
  const own = opts.binding;
  const addr6 = own ? own.addr6! : opts.addr6!;
  checkLocal6(tcp, addr6, 'listen');
  let port = own ? own.port : opts.port;
  const b = own ?? binding6(addr6, port, opts.reuseAddr ?? true, !!opts.ipv6Only);
  if (port === 0) {
    port = tcp.freePort(b.addr === NO_V4 ? 0 : b.addr);
    if (port < 0) throw new TcpError('EADDRINUSE', 'listen: no free ephemeral port');
  } else if (tcp.bindings.conflicts(b.addr, port, b.reuseAddr, b, b.addr6)) {
    throw new TcpError('EADDRINUSE', `listen: port ${port} is in use`);
  }
  tcp.bindings.hold(b, port);
  b.listening = true;
  const l = new TcpListener(tcp, b.addr, port, opts.backlog ?? 511, b);
  l.family = AF_INET6;
  l.laddr6 = b.addr6!;
  l.ipv6Only = b.addr === NO_V4;
  if (opts.mss !== undefined && opts.mss > 0) l.mss = opts.mss;
  tcp.demux.addListener(l);
  return l;
}

/**
 * bind() of an IPv6 socket: `addr6` (:: = any; ::ffff:a.b.c.d = that IPv4 address), IPV6_V6ONLY
 * when `v6Only`. Throws as bind().
 */
export function tcp6Bind(tcp: Tcp, addr6: Uint8Array, port: number, reuseAddr = false, v6Only = false): TcpBinding {
  checkLocal6(tcp, addr6, 'bind');
  if (!(port >= 0 && port < 65536 && Number.isInteger(port))) throw new TcpError('EINVAL', `bind: bad port ${port}`);
  const b = binding6(addr6, port, reuseAddr, v6Only);
  if (port !== 0) {
    if (tcp.bindings.conflicts(b.addr, port, reuseAddr, null, b.addr6)) throw new TcpError('EADDRINUSE', `bind: port ${port} is in use`);
    tcp.bindings.hold(b, port);
  }
  return b;
}

function checkLocal6(tcp: Tcp, addr6: Uint8Array, what: string): void {
  const m = v4Mapped(addr6);
  const ok = m >= 0 ? m === 0 || tcp.host.isLocalAddress(m) : isZero6(addr6) || tcp.host.isLocalAddress6(addr6);
  if (!ok) throw new TcpError('EADDRNOTAVAIL', `${what}: not a local address`);
}

/** Active open over IPv6 (connect() with a raddr6 that is not IPv4-mapped). */
export function tcp6Connect(tcp: Tcp, opts: ConnectOptions, raddr6: Uint8Array): TcpSocket {
  // An IPv4-mapped destination is an IPv4 connection the application sees as IPv6.
  const m = v4Mapped(raddr6);
  if (m >= 0) {
    const own = opts.binding;
    const l6 = own ? own.addr6 : opts.laddr6;
    const lm = l6 ? v4Mapped(l6) : 0;
    if (lm < 0 && !isZero6(l6!)) throw new TcpError('ENETUNREACH', 'connect: an IPv6 source cannot reach an IPv4 address');
    const sock = tcp.connect({ ...opts, raddr6: undefined, laddr6: undefined, raddr: m, laddr: lm });
    sock.tcb.v4mapped = true;
    return sock;
  }
  const rport = opts.rport;
  if (!(rport > 0 && rport < 65536)) throw new TcpError('EINVAL', `connect: bad port ${rport}`);
  const own = opts.binding;
  if (own && own.addr6 === null) throw new TcpError('EAFNOSUPPORT', 'connect: an IPv4 socket cannot reach an IPv6 address');
  const want = own ? own.addr6! : opts.laddr6 ?? NO_ADDR6;
  if (v4Mapped(want) >= 0 && !isZero6(want)) throw new TcpError('ENETUNREACH', 'connect: an IPv4 source cannot reach an IPv6 address');
  const path = tcp.scratchPath6;
  if (!tcp.host.resolvePath6(path, want, raddr6)) throw new TcpError('ENETUNREACH', 'connect: no route to host');
  const laddr6 = path.src6;
  let lport = (own ? own.port : opts.lport) ?? 0;
  const now = tcp.timeWait.count > 0 && tcp.tun.twReuse.value ? tcp.host.clock.now() : 0;
  if (lport !== 0) {
    const tw = lookupTimeWait6(tcp, laddr6, lport, raddr6, rport);
    if (tcp.lookup6(laddr6, lport, raddr6, rport) || (tw >= 0 && !tcp.timeWaitReusable(tw, now))) {
      throw new TcpError('EADDRINUSE', `connect: ${lport} -> ${rport} is in use`);
    }
  } else {
    const key = scratchEnds;
    copyAddr6(key.laddr6, 0, laddr6, 0); copyAddr6(key.raddr6, 0, raddr6, 0);
    const mine = tcp.portFilter6;
    lport = tcp.ports.select(tcp.prf.local(key), tcp.prf.remote(key), rport, (p) => {
      if (mine !== null && !mine(laddr6, p, raddr6, rport)) return true;
      if (tcp.bindings.has(p) || tcp.lookup6(laddr6, p, raddr6, rport) !== null) return true;
      const tw = lookupTimeWait6(tcp, laddr6, p, raddr6, rport);
      return tw >= 0 && !tcp.timeWaitReusable(tw, now);
    });
    if (lport < 0) throw new TcpError('EADDRINUSE', 'connect: no free ephemeral port');
  }
  if (!tcp.canCreate()) throw new TcpError('EAGAIN', 'connect: net.inet.tcp.maxconn reached');
  const tcb = newTcb6(tcp, laddr6, lport, raddr6, rport, opts.congestionControl);
  let isnFloor = -1;
  const old = lookupTimeWait6(tcp, tcb.laddr6, lport, tcb.raddr6, rport);
  if (old >= 0) {
    isnFloor = (tcp.timeWait.sndNxtOf(old) + 65537) >>> 0;
    tcb.tsOffset = tcp.timeWait.tsOffsetOf(old);
    tcp.counters.timeWaitReused++;
    tcp.timeWait.remove(old);
  }
  if (own && !own.held) tcp.bindings.hold(own, lport);
  const sock = new TcpSocket(tcb);
  if (opts.noDelay) tcb.noDelay = true;
  if (opts.mss !== undefined && opts.mss > 0) tcb.userMss = opts.mss;
  if (opts.tos !== undefined) tcb.tos = opts.tos & 0xfc;
  tcp.insert(tcb);
  tcp.counters.connAttempts++;
  startConnect(tcp, tcb, isnFloor);
  tcp.deliverEvents();
  return sock;
}

const scratchEnds = new Ends();
scratchEnds.family = AF_INET6;


/** The TIME_WAIT slot of an IPv6 4-tuple, or -1. */
function lookupTimeWait6(tcp: Tcp, l6: Uint8Array, lport: number, r6: Uint8Array, rport: number): number {
  if (tcp.timeWait.count === 0) return -1;
  return tcp.timeWait.lookup6(tcp.demux.hash6(l6, 0, lport, r6, 0, rport), l6, lport, r6, rport);
}
