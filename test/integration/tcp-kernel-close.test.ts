// TCP against the Linux kernel over TAP: 100 concurrent connections from kernel clients to a
// tstack echo server, and the RST and FIN paths both ways (refused connections, aborts, a
// kernel SO_LINGER-0 reset, half-close in each direction with data after the other side's FIN,
// graceful close from either side down to an empty connection table after TIME_WAIT).
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { destroyAllNetns, requireRoot } from '../helpers/netns.js';
import {
  closed, drain, openKernelLink, pump, sha256, startPeer, waitFor, within, type KernelLink,
} from '../helpers/kernel-peer.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const NEEDS = ['ip', 'python3'];
const MSL = 100;
let link: KernelLink | null = null;

before(() => {
  if (!requireRoot({ skip: () => {} }, NEEDS)) return;
  link = openKernelLink({ name: 'kcl', subnet: 72, sysctl: { 'net.inet.tcp.msl': MSL } });
});
after(() => { link?.close(); destroyAllNetns(); });

/** The shared link, or null after skipping (or failing under CI) for a missing requirement. */
function ready(t: { skip(msg?: string): void }): KernelLink | null {
  if (link) return link;
  requireRoot(t, NEEDS);
  return null;
}

/** The connection table drains once TIME_WAIT (2*MSL) is over. */
async function assertIdle(l: KernelLink, what: string): Promise<void> {
  const ok = await waitFor(() => l.stack.tcp.activeTcbs === 0, 2 * MSL + 2000);
  assert.ok(ok, `${what}: ${l.stack.tcp.activeTcbs} connections left: ${l.stack.tcp.connections().map((c) => c.state).join(',')}`);
}

/** Echoes everything back, then half-closes once the peer has (handles a full send buffer). */
function echo(s: TcpSocket): void {
  const pending: Uint8Array[] = [];
  let ended = false;
  const flush = (): void => {
    while (pending.length > 0) {
      const c = pending[0]!;
      const n = s.write(c);
      if (n < c.length) { pending[0] = c.subarray(n); return; }
      pending.shift();
    }
    if (ended) s.shutdown();
  };
  s.onData = () => { for (let c = s.read(); c; c = s.read()) pending.push(c); flush(); };
  s.onDrain = flush;
  s.onEnd = () => { ended = true; flush(); };
}

function connected(s: TcpSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.onConnect = resolve;
    const prev = s.onClose;
    s.onClose = (e) => { prev?.(e); reject(e ?? new Error('closed before connecting')); };
  });
}

test('100 kernel clients connect at once to a tstack echo server: every 64 KiB echo comes back intact', { timeout: 60_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  const accepts = l.stack.tcp.counters.connAccepts;
  const listener = l.stack.tcp.listen({ port: 7000, backlog: 128 });
  let peak = 0;
  listener.onConnection = (s) => { echo(s); peak = Math.max(peak, l.stack.tcp.activeTcbs); };
  try {
    const peer = startPeer(l.ns, ['echo-clients', l.us, 7000, 100, 65536], 50_000);
    const r = await peer.result;
    t.diagnostic(`100 x 64 KiB echoed in ${Number(r['seconds']).toFixed(2)} s; at most ${peak} connections open at once`);
    assert.equal(r['ok'], 100, `failures: ${JSON.stringify(r['failures'])}`);
    assert.equal(l.stack.tcp.counters.connAccepts - accepts, 100);
    assert.ok(peak >= 50, `the connections were concurrent (peak ${peak})`);
  } finally { listener.close(); }
  await assertIdle(l, 'after the echo clients closed');
});

test('kernel connects to a closed tstack port: we answer RST, the kernel reports ECONNREFUSED', { timeout: 20_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  const rst = l.stack.tcp.counters.sndRst;
  const r = await startPeer(l.ns, ['connect-closed', l.us, 7001], 15_000).result;
  assert.equal(r['result'], 'ECONNREFUSED');
  assert.ok(l.stack.tcp.counters.sndRst - rst >= 1, 'a RST went out');
});

test('tstack connects to a closed kernel port: onClose reports ECONNREFUSED', { timeout: 20_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  const s = l.stack.tcp.connect({ raddr: l.hostAddr, rport: 7002 });
  const code = await within(closed(s), 10_000, 'refused connect');
  assert.equal(code, 'ECONNREFUSED');
  assert.equal(s.state, 'CLOSED');
  await assertIdle(l, 'after the refused connect');
});

test('tstack abort() sends RST: the kernel reader gets ECONNRESET', { timeout: 20_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  const peer = startPeer(l.ns, ['expect-reset', 'server', 7003], 15_000);
  await within(peer.ready, 10_000, 'kernel server ready');
  const s = l.stack.tcp.connect({ raddr: l.hostAddr, rport: 7003 });
  await within(connected(s), 10_000, 'connect');
  s.write(new Uint8Array(1000).fill(0x61));
  assert.ok(await waitFor(() => s.bytesWritten === 1000, 5000), 'the kernel acknowledged the 1000 bytes');
  let closeErr: string | null | undefined;
  s.onClose = (e) => { closeErr = e ? String(e.code) : null; };
  s.abort();
  const r = await peer.result;
  assert.equal(r['result'], 'ECONNRESET', JSON.stringify(r));
  assert.equal(r['bytes'], 1000);
  assert.equal(closeErr, null, 'abort() closes our side without an error');
  assert.equal(s.state, 'CLOSED');
  assert.equal(l.stack.tcp.activeTcbs, 0, 'no TIME_WAIT after an abort');
});

test('the kernel closes with SO_LINGER 0 (RST): our onClose reports ECONNRESET', { timeout: 20_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  const peer = startPeer(l.ns, ['linger0', 'server', 7004], 15_000);
  await within(peer.ready, 10_000, 'kernel server ready');
  const s = l.stack.tcp.connect({ raddr: l.hostAddr, rport: 7004 });
  const code = closed(s);
  await within(connected(s), 10_000, 'connect');
  s.write(new TextEncoder().encode('hello'));
  const r = await peer.result;
  assert.equal(r['greeting'], 'hello');
  assert.equal(await within(code, 5000, 'reset'), 'ECONNRESET');
  assert.equal(s.state, 'CLOSED');
  assert.equal(l.stack.tcp.activeTcbs, 0);
});

test('half-close, tstack first: we shut down writing, keep reading what the kernel sends after our FIN, end in TIME_WAIT then CLOSED', { timeout: 20_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  const peer = startPeer(l.ns, ['halfclose', 'server', 7005, 300_000], 15_000);
  await within(peer.ready, 10_000, 'kernel server ready');
  const s = l.stack.tcp.connect({ raddr: l.hostAddr, rport: 7005 });
  const states: string[] = [];
  const closeState = new Promise<string>((resolve) => { s.onClose = (e) => resolve(e ? `error ${e.code}` : s.state); });
  const got = drain(s);
  await within(connected(s), 10_000, 'connect');
  const up = randomBytes(200_000);
  await pump(s, up); // ends with shutdown(): FIN after the data
  states.push(s.state);
  const r = await within(peer.result, 10_000, 'kernel result');
  const g = await within(got, 10_000, 'data after our FIN');
  assert.equal(r['recvBytes'], up.length);
  assert.equal(r['recvSha'], sha256(up));
  assert.equal(g.bytes, 300_000, 'bytes the kernel sent after our FIN');
  assert.equal(g.sha, r['sentSha']);
  assert.equal(states[0], 'FIN_WAIT_1');
  assert.equal(await within(closeState, 5000, 'close'), 'TIME_WAIT', 'the side that closed first waits in TIME_WAIT');
  await assertIdle(l, 'after TIME_WAIT');
  assert.equal(s.state, 'CLOSED');
});

test('half-close, kernel first: the kernel shuts down writing, we send after its FIN, then close from CLOSE_WAIT', { timeout: 20_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  const peer = startPeer(l.ns, ['halfclose-first', 'server', 7006, 250_000], 15_000);
  await within(peer.ready, 10_000, 'kernel server ready');
  const s = l.stack.tcp.connect({ raddr: l.hostAddr, rport: 7006 });
  const code = closed(s);
  const got = drain(s);
  await within(connected(s), 10_000, 'connect');
  const g = await within(got, 10_000, 'kernel data up to its FIN');
  assert.equal(s.state, 'CLOSE_WAIT');
  assert.equal(g.bytes, 250_000);
  const down = randomBytes(400_000);
  await pump(s, down); // writes after the peer's FIN, then our FIN: LAST_ACK
  const r = await within(peer.result, 10_000, 'kernel result');
  assert.equal(g.sha, r['sentSha']);
  assert.equal(r['recvBytes'], down.length);
  assert.equal(r['recvSha'], sha256(down));
  assert.equal(await within(code, 5000, 'close'), null);
  assert.equal(s.state, 'CLOSED', 'the side that closed last does not wait in TIME_WAIT');
  assert.equal(l.stack.tcp.activeTcbs, 0);
});

test('graceful close, kernel first: onEnd, then our close() finishes without error; kernel client: whichever side closed first holds TIME_WAIT, then the table is empty', { timeout: 20_000 }, async (t) => {
  const l = ready(t); if (!l) return;
  // The kernel (server) closes at once after accepting.
  const peer = startPeer(l.ns, ['close-first', 'server', 7007], 15_000);
  await within(peer.ready, 10_000, 'kernel server ready');
  const s = l.stack.tcp.connect({ raddr: l.hostAddr, rport: 7007 });
  const code = closed(s);
  let ended = false;
  s.onEnd = () => { ended = true; };
  await within(connected(s), 10_000, 'connect');
  await peer.result;
  assert.ok(await waitFor(() => ended, 5000), 'onEnd after the kernel FIN');
  assert.equal(s.state, 'CLOSE_WAIT');
  s.close();
  assert.equal(await within(code, 5000, 'close'), null);
  assert.equal(s.state, 'CLOSED');
  assert.equal(l.stack.tcp.activeTcbs, 0);

  // A kernel client; the tstack server closes after reading the request. The client shuts
  // down writing right after its request: when its FIN comes in the same receive burst (one
  // event delivery) we close from CLOSE_WAIT, last, and keep no TIME_WAIT; otherwise we close
  // first and wait in TIME_WAIT.
  const listener = l.stack.tcp.listen({ port: 7008 });
  let finWithRequest = false;
  const server = new Promise<{ state: string; err: string | null }>((resolve) => {
    listener.onConnection = (c) => {
      c.onData = () => {
        while (c.read()) { /* the request */ }
        finWithRequest = c.state === 'CLOSE_WAIT';
        c.write(new TextEncoder().encode('bye'));
        c.close();
      };
      c.onClose = (e) => resolve({ state: c.state, err: e ? String(e.code) : null });
    };
  });
  try {
    const r = await startPeer(l.ns, ['stream', 'client', l.us, 7008, 10, 1], 15_000).result;
    assert.equal(r['recvBytes'], 3, JSON.stringify(r));
    const sv = await within(server, 5000, 'server close');
    assert.deepEqual(sv, { state: finWithRequest ? 'CLOSED' : 'TIME_WAIT', err: null }, finWithRequest ? 'the client closed first' : 'we closed first');
  } finally { listener.close(); }
  await assertIdle(l, 'after TIME_WAIT');
});
