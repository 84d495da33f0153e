// Scripted segment tests for TCP Fast Open (RFC 7413) as Linux does it: cookies (request, grant,
// validation, rotation), data in the SYN delivered to the accepted socket, the TFO queue, the
// client's cookie cache, and the fallbacks (data not acknowledged, SYN with data lost).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK, BackToBack, PEER_ISN, REMOTE, LOCAL, SYN, TcpHarness, filler, type Seg } from '../helpers/tcp-harness.js';
import { TcpOptions, parseTcpOptions, tcpOptionsLength, writeTcpOptions, TcpOpt } from '../../src/wire/tcp.js';
import { WireError } from '../../src/wire/errors.js';
import { TFO_KEY_PERIOD_MS } from '../../src/stack/tcp/fastopen.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const P = PEER_ISN;
const SERVER = { 'net.inet.tcp.fastopen': 3 };

/** The TFO option of an emitted segment: -1 absent, else the cookie (possibly empty). */
function tfoOf(s: Seg): number[] | null {
  // The harness decodes the standard options only: parse the header's option bytes again.
  return s.tfo ?? null;
}

test('RFC 7413 §4.1.1 option: a cookie request (kind 34, length 2) and an 8-byte cookie round-trip; bad lengths are ignored', () => {
  const o = new TcpOptions();
  const b = new Uint8Array(40);
  const spec = { mss: 1460, wscale: 7, sackPermitted: true, timestamps: true, tsVal: 1, tsEcr: 0, sackCount: 0, sackBlocks: new Uint32Array(8), fastOpen: 0 };
  let n = writeTcpOptions(b, 0, spec);
  assert.equal(n, tcpOptionsLength(spec));
  assert.equal(n % 4, 0);
  assert.equal(parseTcpOptions(b, 0, n, o), WireError.Ok);
  assert.equal(o.fastOpen, 0);
  assert.equal(o.mss, 1460);
  const cookie = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  n = writeTcpOptions(b, 0, { ...spec, fastOpen: 8, fastOpenCookie: cookie });
  assert.equal(n, 20 + 12);
  parseTcpOptions(b, 0, n, o);
  assert.equal(o.fastOpen, 8);
  assert.deepEqual([...o.fastOpenCookie.subarray(0, 8)], [...cookie]);
  // A 3-byte cookie (odd, below 4) is not a cookie.
  const bad = Uint8Array.of(TcpOpt.FASTOPEN, 5, 1, 2, 3, 1, 1, 1);
  assert.equal(parseTcpOptions(bad, 0, 8, o), WireError.Ok);
  assert.equal(o.fastOpen, -1);
});

/** A listener on port 80 with TFO queue `qlen`. */
function server(sysctls: Record<string, number> = SERVER, qlen = 16): { h: TcpHarness; accepted: TcpSocket[]; l: ReturnType<TcpHarness['tcp']['listen']> } {
  const h = new TcpHarness(sysctls);
  const l = h.tcp.listen({ port: 80, fastOpen: qlen });
  const accepted: TcpSocket[] = [];
  l.onConnection = (s) => accepted.push(s);
  return { h, accepted, l };
}

/** Asks the server for a cookie (SYN with an empty TFO option) and returns it. */
function getCookie(h: TcpHarness, port = 40000): number[] {
  h.inject({ sport: port, seq: 100, flags: SYN, mss: 1460, tfo: [] });
  const sa = h.one();
  const c = tfoOf(sa);
  assert.ok(c && c.length === 8, `the SYN-ACK carries an 8-byte cookie: ${JSON.stringify(c)}`);
  assert.equal(sa.ack, 101, 'a cookie request acknowledges the SYN only');
  h.inject({ sport: port, seq: 101, ack: sa.seq + 1, flags: ACK });
  return c!;
}

test('RFC 7413 §4.2.1: a cookie request is answered with a cookie on the SYN-ACK; the handshake is an ordinary one', () => {
  const { h, accepted } = server();
  getCookie(h);
  assert.equal(h.tcp.counters.tfoCookieReqd, 1);
  assert.equal(accepted.length, 1);
  assert.equal(accepted[0]!.state, 'ESTABLISHED');
});

test('RFC 7413 §4.2.2: a SYN with a valid cookie and data — the data is acknowledged by the SYN-ACK, readable on the accepted socket, and answered, before the handshake completes', () => {
  const { h, accepted } = server();
  const cookie = getCookie(h, 40000);
  const req = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  h.inject({ sport: 40001, seq: 1000, flags: SYN, mss: 1460, tfo: cookie, data: req });
  const sa = h.one();
  assert.equal(sa.flagNames, 'SYN|ACK');
  assert.equal(sa.ack, 1001 + req.length, 'the SYN-ACK acknowledges the SYN data');
  assert.equal(tfoOf(sa), null, 'no new cookie for a valid one');
  assert.equal(h.tcp.counters.tfoPassive, 1);
  assert.equal(accepted.length, 2, 'accepted at once (RFC 7413 §4.2.2: the data goes to the application)');
  const s = accepted[1]!;
  assert.equal(s.state, 'SYN_RECEIVED');
  assert.deepEqual(s.read(), req);
  // The application answers before the handshake completes: as Linux, the reply leaves at once.
  s.write(filler(300));
  const d = h.one();
  assert.equal(d.data.length, 300);
  assert.equal(d.seq, sa.seq + 1);
  assert.equal(d.ack, 1001 + req.length);
  assert.equal(s.state, 'SYN_RECEIVED');
  // The client's ACK of the SYN-ACK and the reply completes the handshake.
  h.inject({ sport: 40001, seq: 1001 + req.length, ack: sa.seq + 301, flags: ACK });
  assert.equal(s.state, 'ESTABLISHED');
  assert.equal(s.sendBufferLength, 0, 'the reply is acknowledged');
  h.none();
});

test('RFC 7413 §4.2.2: a SYN with a bad cookie — its data is not acknowledged and the SYN-ACK carries a fresh cookie', () => {
  const { h, accepted } = server();
  h.inject({ sport: 40001, seq: 1000, flags: SYN, mss: 1460, tfo: [1, 2, 3, 4, 5, 6, 7, 8], data: 50 });
  const sa = h.one();
  assert.equal(sa.ack, 1001, 'SYN only');
  assert.equal(tfoOf(sa)?.length, 8);
  assert.equal(h.tcp.counters.tfoPassiveFail, 1);
  assert.equal(accepted.length, 0, 'not accepted before the handshake');
  // The client sends the data again after the handshake.
  h.inject({ sport: 40001, seq: 1001, ack: sa.seq + 1, flags: ACK, data: 50 });
  assert.equal(accepted.length, 1);
  assert.equal(accepted[0]!.read()!.length, 50);
});

test('RFC 7413 §5.1, Linux TCP_FASTOPEN qlen: beyond the TFO queue length a SYN with data is an ordinary SYN', () => {
  const { h, accepted } = server(SERVER, 1);
  const cookie = getCookie(h, 40000);
  h.inject({ sport: 40001, seq: 1000, flags: SYN, mss: 1460, tfo: cookie, data: 10 });
  assert.equal(h.one().ack, 1011);
  h.inject({ sport: 40002, seq: 2000, flags: SYN, mss: 1460, tfo: cookie, data: 10 });
  const sa2 = h.one();
  assert.equal(sa2.ack, 2001, 'the second pending TFO request: data not taken');
  assert.equal(h.tcp.counters.tfoListenOverflow, 1);
  assert.equal(accepted.length, 2, 'the cookie connection and the first TFO one');
});

test('Linux tcp_fastopen bits: without 0x2 or without the listener option a TFO option is ignored; 0x400 enables every listener; 0x200 takes data without a cookie', () => {
  const a = new TcpHarness({ 'net.inet.tcp.fastopen': 1 });
  a.tcp.listen({ port: 80, fastOpen: 16 });
  a.inject({ seq: 100, flags: SYN, mss: 1460, tfo: [] });
  assert.equal(tfoOf(a.one()), null, 'server bit off: no cookie');

  const b = new TcpHarness({ 'net.inet.tcp.fastopen': 3 });
  b.tcp.listen({ port: 80 });
  b.inject({ seq: 100, flags: SYN, mss: 1460, tfo: [] });
  assert.equal(tfoOf(b.one()), null, 'listener without TCP_FASTOPEN: no cookie');

  const c = new TcpHarness({ 'net.inet.tcp.fastopen': 0x403 });
  c.tcp.listen({ port: 80 });
  c.inject({ seq: 100, flags: SYN, mss: 1460, tfo: [] });
  assert.equal(tfoOf(c.one())?.length, 8, '0x400: every listener');

  const d = new TcpHarness({ 'net.inet.tcp.fastopen': 0x603 });
  d.tcp.listen({ port: 80 });
  d.inject({ seq: 100, flags: SYN, mss: 1460, data: 20 });
  assert.equal(d.one().ack, 121, '0x200: data without a cookie is taken');
});

test('cookies rotate: valid in their key period and the next, refused (and replaced) after that', () => {
  const { h } = server();
  const cookie = getCookie(h, 40000);
  h.advance(TFO_KEY_PERIOD_MS);
  h.inject({ sport: 40001, seq: 1000, flags: SYN, mss: 1460, tfo: cookie, data: 10 });
  assert.equal(h.one().ack, 1011, 'one period later: still valid');
  h.advance(2 * TFO_KEY_PERIOD_MS);
  h.take(); // the unanswered SYN-ACKs of the connection above
  h.inject({ sport: 40002, seq: 2000, flags: SYN, mss: 1460, tfo: cookie, data: 10 });
  const sa = h.one();
  assert.equal(sa.ack, 2001, 'expired');
  const fresh = tfoOf(sa)!;
  assert.notDeepEqual(fresh, cookie, 'a fresh cookie');
  h.inject({ sport: 40003, seq: 3000, flags: SYN, mss: 1460, tfo: fresh, data: 10 });
  assert.equal(h.one().ack, 3011, 'the fresh cookie works');
});

test('client, RFC 7413 §4.1: no cookie yet — the SYN asks for one and carries no data; the cookie is cached; the next SYN carries cookie and data, which the SYN-ACK acknowledges', () => {
  const h = new TcpHarness();
  const req = filler(200);
  const s1 = h.tcp.connect({ raddr: REMOTE, rport: 80, fastOpen: true, synData: req });
  assert.equal(s1.fastOpenLength, 0, 'no cookie: nothing taken (sendto says EINPROGRESS)');
  const syn1 = h.one();
  assert.deepEqual(tfoOf(syn1), [], 'a cookie request');
  assert.equal(syn1.data.length, 0);
  const cookie = [9, 8, 7, 6, 5, 4, 3, 2];
  h.inject({ sport: 80, dport: syn1.sport, seq: P, ack: syn1.seq + 1, flags: SYN | ACK, mss: 1460, tfo: cookie });
  h.take();
  assert.equal(s1.state, 'ESTABLISHED');
  assert.equal(h.tcp.tfoCache.size, 1);

  const s2 = h.tcp.connect({ raddr: REMOTE, rport: 80, fastOpen: true, synData: req });
  assert.equal(s2.fastOpenLength, 200);
  const syn2 = h.one();
  assert.deepEqual(tfoOf(syn2), cookie, 'the cached cookie');
  assert.deepEqual(syn2.data, req, 'the data rides in the SYN');
  assert.equal(h.tcp.counters.tfoActive, 1);
  h.inject({ sport: 80, dport: syn2.sport, seq: P, ack: syn2.seq + 201, flags: SYN | ACK, mss: 1460 });
  const a = h.one();
  assert.equal(a.flagNames, 'ACK');
  assert.equal(a.data.length, 0, 'nothing to send again');
  assert.equal(s2.sendBufferLength, 0, 'acknowledged data left the buffer');
  assert.equal(s2.bytesWritten, 200);
  assert.equal(h.tcp.counters.tfoActiveFail, 0);
});

/** A client harness with a cookie for REMOTE cached. */
function clientWithCookie(sysctls: Record<string, number> = {}): TcpHarness {
  const h = new TcpHarness(sysctls);
  h.tcp.tfoCache.set(REMOTE >>> 0, Uint8Array.of(1, 1, 2, 2, 3, 3, 4, 4), 8);
  return h;
}

test('client fallback, Linux tcp_rcv_fastopen_synack(): SYN data the SYN-ACK does not acknowledge is sent again right after the handshake', () => {
  const h = clientWithCookie();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80, fastOpen: true, synData: filler(300) });
  const syn = h.one();
  assert.equal(syn.data.length, 300);
  h.inject({ sport: 80, dport: syn.sport, seq: P, ack: syn.seq + 1, flags: SYN | ACK, mss: 1460 });
  const out = h.take();
  assert.equal(s.state, 'ESTABLISHED');
  assert.equal(h.tcp.counters.tfoActiveFail, 1);
  const d = out.find((x) => x.data.length > 0);
  assert.ok(d, `data sent again: ${out.length} segments`);
  assert.equal(d!.seq, syn.seq + 1);
  assert.equal(d!.data.length, 300);
});

test('client fallback, Linux: a SYN with data that times out is retransmitted without data or option, and SYNs to that destination carry no data for a while', () => {
  const h = clientWithCookie();
  const s = h.tcp.connect({ raddr: REMOTE, rport: 80, fastOpen: true, synData: filler(100) });
  const syn = h.one();
  assert.equal(syn.data.length, 100);
  h.advanceToNextTimer();
  const again = h.one();
  assert.equal(again.flagNames, 'SYN');
  assert.equal(again.data.length, 0, 'no data in the retransmitted SYN');
  assert.equal(tfoOf(again), null, 'nor the option');
  assert.equal(h.tcp.counters.tfoSynLoss, 1);
  h.inject({ sport: 80, dport: syn.sport, seq: P, ack: syn.seq + 1, flags: SYN | ACK, mss: 1460 });
  const d = h.take().find((x) => x.data.length > 0);
  assert.equal(d?.data.length, 100, 'the data follows the handshake');
  assert.equal(s.state, 'ESTABLISHED');
  // The next connection to the same destination: the SYN has the cookie but no data.
  const s2 = h.tcp.connect({ raddr: REMOTE, rport: 80, fastOpen: true, synData: filler(100) });
  assert.equal(s2.fastOpenLength, 0);
  const syn2 = h.one();
  assert.equal(syn2.data.length, 0);
});

test('TFO between two tstack engines: the second connection delivers its request in the SYN; every byte arrives', () => {
  const w = new BackToBack({ delayMs: 20 }, 3, { 'net.inet.tcp.fastopen': 3 });
  const l = w.b.listen({ port: 80, fastOpen: 8 });
  const got: string[] = [];
  l.onConnection = (s) => {
    s.onData = () => { const d = s.read(); if (d) { got.push(new TextDecoder().decode(d)); s.write(new TextEncoder().encode('ok')); s.shutdown(); } };
  };
  for (let i = 0; i < 2; i++) {
    const c = w.a.connect({ raddr: LOCAL, rport: 80, fastOpen: true, synData: new TextEncoder().encode(`req${i}`) });
    if (c.fastOpenLength === 0) { assert.equal(i, 0, 'only the first lacks a cookie'); c.write(new TextEncoder().encode(`req${i}`)); }
    let reply = '';
    c.onData = () => { const d = c.read(); if (d) reply += new TextDecoder().decode(d); };
    c.onEnd = () => c.close();
    assert.ok(w.run(() => reply === 'ok', 10_000), `reply ${i}`);
  }
  assert.deepEqual(got, ['req0', 'req1']);
  assert.equal(w.b.counters.tfoPassive, 1, 'the second request came in the SYN');
  assert.equal(w.a.counters.tfoActive, 1);
});
