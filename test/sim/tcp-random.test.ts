// A small seeded matrix over the back-to-back wire (the full >=500-run matrix lives in
// tcp-matrix.test.ts): random loss, reordering, duplication, corruption and delay; random
// sizes both ways; several concurrent connections; the client half-closes first or last.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackToBack, LOCAL, filler, fmt, prng } from '../helpers/tcp-harness.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

function equalBytes(chunks: Uint8Array[], want: Uint8Array): boolean {
  let off = 0;
  for (const c of chunks) {
    for (let i = 0; i < c.length; i++) if (c[i] !== want[off + i]) return false;
    off += c.length;
  }
  return off === want.length;
}

function endpoint(s: TcpSocket, out: Uint8Array, halfCloseFirst: boolean) {
  const st = { chunks: [] as Uint8Array[], ended: false, closed: false, err: '' };
  let off = 0;
  const pump = () => {
    while (off < out.length) { const n = s.write(out.subarray(off, off + 16384)); off += n; if (n === 0) return; }
    if (halfCloseFirst || st.ended) s.shutdown();
  };
  s.onData = () => { for (let d = s.read(); d; d = s.read()) st.chunks.push(d); };
  s.onEnd = () => { st.ended = true; if (off >= out.length) s.shutdown(); };
  s.onDrain = pump;
  s.onClose = (e) => { st.closed = true; st.err = e?.code ?? ''; };
  return { st, pump };
}

const RUNS = Number(process.env.TCP_RANDOM_RUNS ?? 40);
for (let run = 0; run < RUNS; run++) {
  test(`random run ${run}: every byte arrives in order, both ends finish with nothing left`, () => {
    const r = prng(run * 2654435761);
    const u = () => r() / 4294967296;
    const faults = {
      loss: u() < 0.3 ? 0 : u() * 0.2,
      reorder: u() * 0.1,
      duplicate: u() * 0.05,
      corrupt: u() * 0.03,
      delayMs: Math.floor(u() * 200),
      jitterMs: Math.floor(u() * 10),
    };
    const sysctls: Record<string, string | number> = {
      'net.inet.tcp.sack.enable': u() < 0.7 ? 1 : 0,
      'net.inet.tcp.rfc1323': u() < 0.8 ? 1 : 0,
      'net.inet.tcp.cc.algorithm': u() < 0.5 ? 'cubic' : 'newreno',
      'net.inet.tcp.msl': 2000,
    };
    const w = new BackToBack(faults, run + 100, sysctls);
    const log: string[] = [];
    if (process.env.TCP_TRACE) w.trace = (from, seg, fate) => { log.push(`${w.clock.now().toFixed(1)} ${from} ${fate} ${seg.sport}>${seg.dport} ${fmt(seg)}`); if (log.length > 200000) log.shift(); };
    const l = w.b.listen({ port: 80 });
    const conns = 1 + Math.floor(u() * 3);
    const maxSize = u() < 0.2 ? 0 : Math.floor(u() * (256 << 10));
    const ends: { st: { chunks: Uint8Array[]; ended: boolean; closed: boolean; err: string }; want: Uint8Array }[] = [];
    l.onConnection = (s) => {
      const i = ends.length;
      const size = Math.floor(u() * maxSize);
      const data = filler(size, i + 50);
      // The server half-closes as soon as its data is queued; the client sometimes waits for it.
      const e = endpoint(s, data, true);
      ends.push({ st: e.st, want: data });
      // record what the client of this index must receive
      wantByServerPort.set(s.remotePort, data);
      e.pump();
    };
    const wantByServerPort = new Map<number, Uint8Array>();
    const clients: { s: TcpSocket; st: ReturnType<typeof endpoint>['st']; sent: Uint8Array }[] = [];
    for (let i = 0; i < conns; i++) {
      const s = w.a.connect({ raddr: LOCAL, rport: 80 });
      const sent = filler(Math.floor(u() * maxSize), i + 7);
      const e = endpoint(s, sent, u() < 0.5);
      s.onConnect = e.pump;
      clients.push({ s, st: e.st, sent });
    }
    const allClosed = () => clients.every((c) => c.st.closed) && ends.length === conns && ends.every((e) => e.st.closed);
    const trace: string[] = [];
    for (const c of clients) {
      const prev = c.s.onClose;
      const t = c.s.tcb;
      c.s.onClose = (e) => {
        if (e) trace.push(`client ${c.s.localPort} ${e.code} at ${w.clock.now()}: una=${t.sndUna - t.iss} nxt=${t.sndNxt - t.iss} max=${t.sndMax - t.iss} wnd=${t.sndWnd} cwnd=${t.cc.cwnd} rcvNxt=${t.rcvNxt - t.irs} rto=${t.rtt.rto} fin=${t.finSent} rec=${t.inRecovery}`);
        prev?.(e);
      };
    }
    const ok = w.run(allClosed, 24 * 3600_000);
    if (trace.length) console.log(trace.join('\n'), JSON.stringify(faults), JSON.stringify(sysctls));
    if (trace.length && process.env.TCP_TRACE) (globalThis as { __log?: string[] }).__log = log;
    if (trace.length && process.env.TCP_TRACE) console.log(log.slice(-Number(process.env.TCP_TRACE)).join('\n'));
    assert.ok(ok, `finished (faults ${JSON.stringify(faults)})`);
    for (const c of clients) {
      assert.equal(c.st.err, '', 'client closed cleanly');
      assert.ok(c.st.ended);
      assert.ok(equalBytes(c.st.chunks, wantByServerPort.get(c.s.localPort)!), 'client received the server bytes');
    }
    for (const e of ends) {
      assert.equal(e.st.err, '');
      assert.ok(e.st.ended);
    }
    // Each server endpoint received what its client sent.
    for (const c of clients) {
      const idx = [...wantByServerPort.keys()].indexOf(c.s.localPort);
      assert.ok(equalBytes(ends[idx]!.st.chunks, c.sent), 'server received the client bytes');
    }
    w.run(() => w.a.activeTcbs === 0 && w.b.activeTcbs === 0 && w.inFlight === 0, 3600_000);
    l.close();
    assert.equal(w.a.activeTcbs + w.b.activeTcbs, 0, 'no TCB left after TIME_WAIT');
    assert.equal(w.hostA.wheel.size + w.hostB.wheel.size, 0, 'no timer left');
    assert.equal(w.hostA.pool.inUse + w.hostB.pool.inUse, 0, 'no packet buffer left');
  });
}
