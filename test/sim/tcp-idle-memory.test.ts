// What an idle established connection holds (issue 10: "10,000 idle connections' memory is no
// larger than today"): the retransmission timer it used for its handshake, and none of the
// objects created at first use — the persist, keepalive, delayed-ACK and RACK timers, RACK
// state, the TCP_INFO statistics, the TFO handshake state. And send-buffer autotuning asks for no
// ring larger than the flight the peer's window allows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackToBack, LOCAL } from '../helpers/tcp-harness.js';
import type { Tcb } from '../../src/stack/tcp/tcb.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

function lazyParts(t: Tcb): Record<string, unknown> {
  const o = t as unknown as Record<string, unknown>;
  return { persistT: o['persistT'], keepT: o['keepT'], delackT: o['delackT'], reoT: o['reoT'], rack: t.rack, stats: t.stats, tfo: t.tfo };
}

test('idle established connections (both ends) carry no timer but the retransmission one, no RACK, TCP_INFO or TFO state', () => {
  const w = new BackToBack({ delayMs: 1 }, 5, { 'net.inet.tcp.fastopen': 3, 'net.inet.tcp.ecn': 1 });
  const l = w.b.listen({ port: 80, fastOpen: 16 });
  const acc: TcpSocket[] = [];
  l.onConnection = (s) => acc.push(s);
  const cl: TcpSocket[] = [];
  for (let i = 0; i < 50; i++) cl.push(w.a.connect({ raddr: LOCAL, rport: 80, fastOpen: true }));
  assert.ok(w.run(() => acc.length === 50 && cl.every((s) => s.state === 'ESTABLISHED'), 10_000));
  w.run(() => false, 1000);
  const none = { persistT: null, keepT: null, delackT: null, reoT: null, rack: null, stats: null, tfo: null };
  for (const s of [...cl, ...acc]) {
    assert.equal(s.state, 'ESTABLISHED');
    assert.deepEqual(lazyParts(s.tcb), none);
    assert.equal(s.tcb.rexmtTimer.armed, false);
  }
  // The first data creates what it needs, and the connection still works.
  cl[0]!.write(new Uint8Array(5000));
  let got = 0;
  acc[0]!.onData = () => { got += acc[0]!.read()?.length ?? 0; };
  assert.ok(w.run(() => got === 5000, 10_000));
  assert.notEqual(cl[0]!.tcb.stats, null);
  // Once everything is acknowledged and read, neither end holds a ring; the next write takes one.
  assert.ok(w.run(() => cl[0]!.tcb.sndBuf.length === 0, 10_000));
  assert.equal(cl[0]!.tcb.sndBuf.data.length, 0);
  assert.equal(acc[0]!.tcb.rcvBuf.data.length, 0);
  const again = new Uint8Array(3000).map((_, i) => i & 255);
  const seen: number[] = [];
  acc[0]!.onData = () => { const b = acc[0]!.read(); if (b) { got += b.length; seen.push(...b); } };
  cl[0]!.write(again);
  assert.ok(w.run(() => got === 8000, 10_000));
  assert.deepEqual(seen, [...again]);
});

test('send buffer autotuning stops at twice the peer\'s largest window: a cwnd grown past a 64 KiB window asks for no bigger ring', async () => {
  const { TcpHarness, openActive, peerAckTo, filler } = await import('../helpers/tcp-harness.js');
  const h = new TcpHarness();
  const { s, d0, sport } = openActive(h, { mss: 1460, wnd: 65535 });
  const start = s.tcb.sndBuf.capacity;
  let acked = d0;
  let queued = 0;
  for (let round = 0; round < 200; round++) {
    queued += s.write(filler(65536));
    const segs = h.take();
    const end = segs.reduce((m, x) => Math.max(m, x.seq + x.data.length), acked);
    if (end === acked) continue;
    acked = end;
    peerAckTo(h, sport, acked, { wnd: 65535 });
  }
  assert.ok(s.tcb.cc.cwnd > 2 * 65535, `cwnd grew past the window: ${s.tcb.cc.cwnd}`);
  assert.ok(queued > 4 << 20, 'megabytes moved');
  assert.equal(s.tcb.sndBuf.capacity, Math.max(start, 2 * 65535), 'the send buffer stays at twice the window');
});

test('TCB fields live in arena rows: connections across chunk boundaries keep their own values; a closed connection keeps its figures while its row serves a new one', () => {
  const w = new BackToBack({ delayMs: 1 }, 6);
  const l = w.b.listen({ port: 80 });
  const acc: TcpSocket[] = [];
  l.onConnection = (s) => acc.push(s);
  const cl: TcpSocket[] = [];
  // 48 connections fill the first two chunks (16 and 32 rows): the next ones must take rows given back.
  for (let i = 0; i < 48; i++) cl.push(w.a.connect({ raddr: LOCAL, rport: 80 }));
  assert.ok(w.run(() => acc.length === 48 && cl.every((s) => s.state === 'ESTABLISHED'), 10_000));
  const rows = new Set<string>();
  const chunks = new Map<unknown, number>();
  const id = (t: Tcb) => { if (!chunks.has(t._c)) chunks.set(t._c, chunks.size); return `${chunks.get(t._c)}/${t._i}`; };
  for (const s of cl) {
    const t = s.tcb;
    rows.add(id(t));
    assert.equal(t.sndNxt, (t.iss + 1) >>> 0);
    assert.equal(t.sndUna, t.sndNxt);
    assert.equal(t.state, 4);
    assert.equal(t.sackOk && t.tsOk && t.wsOk, true);
    assert.equal(t.rttSeq, -1);
  }
  assert.equal(rows.size, 48);
  // Abort ten: their rows go back, and their TCBs keep what they said.
  const gone = cl.slice(0, 10);
  const was = gone.map((s) => ({ row: id(s.tcb), iss: s.tcb.iss, lport: s.tcb.lport }));
  for (const s of gone) s.abort();
  w.run(() => false, 50);
  gone.forEach((s, i) => {
    assert.equal(s.state, 'CLOSED');
    assert.equal(s.tcb.iss, was[i]!.iss);
    assert.equal(s.tcb.lport, was[i]!.lport);
    assert.equal(s.tcb._c.closed, true);
  });
  const more: TcpSocket[] = [];
  for (let i = 0; i < 10; i++) more.push(w.a.connect({ raddr: LOCAL, rport: 80 }));
  assert.ok(w.run(() => more.every((s) => s.state === 'ESTABLISHED'), 10_000));
  const reused = more.filter((s) => was.some((x) => x.row === id(s.tcb))).length;
  assert.equal(reused, 10);
  for (const s of more) assert.equal(s.tcb.sndNxt, (s.tcb.iss + 1) >>> 0);
  gone.forEach((s, i) => assert.equal(s.tcb.iss, was[i]!.iss));
});
