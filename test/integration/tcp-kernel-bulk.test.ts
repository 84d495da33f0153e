// Bulk TCP against the Linux kernel over TAP, in a namespace this file creates: 64 MiB each
// way (both directions of one connection at once), kernel client to tstack server and tstack
// client to kernel server, SHA-256 checked end to end; on a clean link, then with 3% random
// loss each way on the kernel side (nftables) plus reordering and duplication from a
// FaultInjector around the TAP driver.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { destroyAllNetns, requireRoot } from '../helpers/netns.js';
import {
  addKernelLoss, drain, kernelLossCounters, openKernelLink, pump, sha256, startPeer, within, type KernelLink,
} from '../helpers/kernel-peer.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const MIB = 1 << 20;
const SIZE = Number(process.env.TSTACK_KERNEL_BULK_MIB ?? 64) * MIB;
const NEEDS = ['ip', 'python3', 'nft'];

after(destroyAllNetns);

const ourData = randomBytes(SIZE);
const ourSha = sha256(ourData);

function mbps(bytes: number, ms: number): string { return (bytes / MIB / (ms / 1000)).toFixed(1); }

/** One line of figures: total time, and each direction's own completion time and rate. */
function figures(label: string, o: Outcome): string {
  const outMs = Number(o.peer['recvSeconds']) * 1000;
  return `${label}: ${SIZE / MIB} MiB each way at once in ${(o.ms / 1000).toFixed(2)} s; `
    + `tstack->kernel ${mbps(SIZE, outMs)} MiB/s (${(outMs / 1000).toFixed(2)} s), kernel->tstack ${mbps(SIZE, o.inMs)} MiB/s (${(o.inMs / 1000).toFixed(2)} s)`;
}

interface Outcome {
  ms: number;
  /** Time until the stack had received everything (kernel -> tstack direction). */
  inMs: number;
  peer: Record<string, unknown>;
  got: { bytes: number; sha: string };
}

/** drain() plus the time (performance.now()) its promise resolved. */
function timedDrain(s: TcpSocket): Promise<{ bytes: number; sha: string; at: number }> {
  return drain(s).then((r) => ({ ...r, at: performance.now() }));
}

/** Kernel connects; the stack accepts, sends SIZE bytes and hashes what it receives. */
async function kernelClient(link: KernelLink, port: number, timeoutMs: number): Promise<Outcome> {
  const l = link.stack.tcp.listen({ port });
  const accepted = new Promise<TcpSocket>((resolve) => { l.onConnection = resolve; });
  const peer = startPeer(link.ns, ['stream', 'client', link.us, port, SIZE, 11], timeoutMs);
  try {
    const s = await within(accepted, 10_000, 'accept');
    const t0 = performance.now();
    l.close();
    const [got, , res] = await within(Promise.all([timedDrain(s), pump(s, ourData), peer.result]), timeoutMs, 'transfer');
    return { ms: performance.now() - t0, inMs: got.at - t0, peer: res, got };
  } finally { peer.kill(); l.close(); }
}

/** The stack connects to a kernel server; both send SIZE bytes. */
async function stackClient(link: KernelLink, port: number, timeoutMs: number): Promise<Outcome> {
  const peer = startPeer(link.ns, ['stream', 'server', port, SIZE, 12], timeoutMs);
  try {
    await within(peer.ready, 10_000, 'kernel server ready');
    const t0 = performance.now();
    const s = link.stack.tcp.connect({ raddr: link.hostAddr, rport: port });
    const got = timedDrain(s);
    await within(new Promise<void>((resolve, reject) => {
      s.onConnect = resolve;
      const prev = s.onClose; s.onClose = (e) => { prev?.(e); reject(e ?? new Error('closed before connecting')); };
    }), 10_000, 'connect');
    const [g, , res] = await within(Promise.all([got, pump(s, ourData), peer.result]), timeoutMs, 'transfer');
    return { ms: performance.now() - t0, inMs: g.at - t0, peer: res, got: g };
  } finally { peer.kill(); }
}

function check(o: Outcome): void {
  assert.equal(o.peer['recvError'], undefined, `kernel receive error: ${JSON.stringify(o.peer)}`);
  assert.equal(o.peer['sendError'], undefined, `kernel send error: ${JSON.stringify(o.peer)}`);
  assert.equal(o.peer['recvBytes'], SIZE, 'bytes the kernel received');
  assert.equal(o.peer['recvSha'], ourSha, 'SHA-256 of what the kernel received');
  assert.equal(o.got.bytes, SIZE, 'bytes the stack received');
  assert.equal(o.got.sha, o.peer['sentSha'], 'SHA-256 of what the stack received');
}

for (const lossy of [false, true]) {
  const label = lossy ? '3% loss each way + 1% reorder/duplicate' : 'clean link';
  const timeoutMs = lossy ? 90_000 : 45_000;
  test(`TCP with the kernel over TAP, ${label}: ${SIZE / MIB} MiB each way, SHA-256 equal`, { timeout: 4 * timeoutMs }, async (t) => {
    if (!requireRoot(t, NEEDS)) return;
    const link = openKernelLink({
      name: lossy ? 'kbl' : 'kbc', subnet: lossy ? 71 : 70, sysctl: { 'net.inet.tcp.msl': 100 },
      faults: lossy ? { seed: 'kernel-bulk', tx: { reorder: 0.01, duplicate: 0.01, reorderDelayMs: 2 }, rx: { reorder: 0.01, duplicate: 0.01, reorderDelayMs: 2 } } : undefined,
    });
    try {
      if (lossy) addKernelLoss(link.ns, 3);
      await t.test('kernel client -> tstack server', async (st) => {
        const o = await kernelClient(link, 5001, timeoutMs);
        st.diagnostic(figures(`${label}, kernel client -> tstack server`, o));
        check(o);
      });
      await t.test('tstack client -> kernel server', async (st) => {
        const o = await stackClient(link, 5002, timeoutMs);
        st.diagnostic(figures(`${label}, tstack client -> kernel server`, o));
        check(o);
      });
      if (!lossy) {
        // TSO both ways over TAP (the virtio header's gso TCPV4): frames far above the MTU.
        const st = link.tap.stats();
        const rxAvg = st.rxBytes / st.rxPackets, txAvg = st.txBytes / st.txPackets;
        t.diagnostic(`TAP frames: received ${st.rxPackets} (avg ${rxAvg.toFixed(0)} B), sent ${st.txPackets} (avg ${txAvg.toFixed(0)} B)`);
        assert.ok(rxAvg > 3000 && txAvg > 3000, `super-segments both ways: rx avg ${rxAvg.toFixed(0)} B, tx avg ${txAvg.toFixed(0)} B`);
      }
      if (lossy) {
        const c = kernelLossCounters(link.ns);
        const f = link.faults!.stats().faults;
        t.diagnostic(`nftables drops: in ${c.in}, out ${c.out}; injector tx reorder ${f.tx.reordered} dup ${f.tx.duplicated}, rx reorder ${f.rx.reordered} dup ${f.rx.duplicated}`);
        assert.ok(c.in > 100 && c.out > 100, `nftables dropped too little to matter: ${JSON.stringify(c)}`);
        assert.ok(f.tx.reordered > 0 && f.tx.duplicated > 0 && f.rx.reordered > 0 && f.rx.duplicated > 0, JSON.stringify(f));
      }
      assert.equal(await waitForIdle(link), 0, 'connections left after the transfers');
    } finally {
      link.close();
    }
  });
}

/** Connections still in the table once TIME_WAIT (2*MSL, MSL 100 ms here) is over. */
async function waitForIdle(link: KernelLink): Promise<number> {
  const end = Date.now() + 3000;
  while (link.stack.tcp.activeTcbs > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return link.stack.tcp.activeTcbs;
}
