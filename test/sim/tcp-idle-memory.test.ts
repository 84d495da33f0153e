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
