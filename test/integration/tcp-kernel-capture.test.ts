// A capture of TCP with the Linux kernel over TAP, under 3% loss each way (nftables) plus
// reordering and duplication (FaultInjector): tshark finds no malformed segment, no bad IP or
// TCP checksum and no error-level expert finding in what the stack sent, and no segment of
// ours beyond the kernel's advertised window.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { destroyAllNetns, requireRoot } from '../helpers/netns.js';
import { addKernelLoss, drain, kernelLossCounters, openKernelLink, pump, sha256, startPeer, within } from '../helpers/kernel-peer.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { Prng } from '../../src/base/prng.js';

const SIZE = 4 << 20;
after(destroyAllNetns);

const PORT = 5003;

function seeded(n: number, seed: string): Uint8Array {
  const p = new Prng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) { const v = p.u32(); b[i] = v; b[i + 1] = v >>> 8; b[i + 2] = v >>> 16; b[i + 3] = v >>> 24; }
  return b;
}

/**
 * Runs tshark with checksum validation on. The payload is random bytes: decoded as plain
 * data, with no stream reassembly, so no port-guessing or heuristic dissector reads a
 * protocol into it and reports its own reassembly errors (seen: "New fragment overlaps old
 * data" on a retransmission, from whatever claimed the stream).
 */
function tshark(path: string, filter: string, fields: string[] = []): string {
  const out = fields.length ? ['-T', 'fields', ...fields.flatMap((f) => ['-e', f])] : [];
  return execFileSync('tshark', ['-r', path, '-n', '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE',
    '-o', 'tcp.desegment_tcp_streams:FALSE', '-d', `tcp.port==${PORT},data`, '-Y', filter, ...out],
    { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
}

test('tshark over a lossy 4 MiB exchange with the kernel: nothing malformed, no bad checksum, no error from our side', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'python3', 'nft', 'tshark'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'tstack-kcap-'));
  const pcapPath = join(dir, 'kernel-tcp.pcap');
  // No checksum offload on the kernel side: its frames carry complete checksums too.
  const link = openKernelLink({
    name: 'kcp', subnet: 73, pcapPath, csumOffload: false,
    faults: { seed: 'kernel-capture', tx: { reorder: 0.01, duplicate: 0.01, reorderDelayMs: 2 }, rx: { reorder: 0.01, duplicate: 0.01, reorderDelayMs: 2 } },
  });
  try {
    addKernelLoss(link.ns, 3);
    const ours = seeded(SIZE, 'kernel-capture'); // the same bytes every run: a failure replays
    const l = link.stack.tcp.listen({ port: PORT });
    const accepted = new Promise<TcpSocket>((resolve) => { l.onConnection = resolve; });
    const peer = startPeer(link.ns, ['stream', 'client', link.us, PORT, SIZE, 21], 90_000);
    const s = await within(accepted, 10_000, 'accept');
    l.close();
    const [got, , r] = await within(Promise.all([drain(s), pump(s, ours), peer.result]), 90_000, 'transfer');
    assert.equal(r['recvSha'], sha256(ours));
    assert.equal(got.sha, r['sentSha']);
    const drops = kernelLossCounters(link.ns);
    assert.ok(drops.in > 0 && drops.out > 0, `nftables dropped nothing: ${JSON.stringify(drops)}`);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  } finally {
    link.close(); // flushes the capture
  }
  try {
    const us = link.us;
    const frames = tshark(pcapPath, `ip.src == ${us} && tcp`, ['frame.number']).trim().split('\n').length;
    t.diagnostic(`${frames} TCP frames from ${us} in the capture`);
    assert.ok(frames > SIZE / 1460, `the capture holds at least our data segments (${frames})`);
    const bad = tshark(pcapPath, `ip.src == ${us} && (_ws.malformed || tcp.checksum.status == "Bad" || ip.checksum.status == "Bad")`);
    assert.equal(bad.trim(), '', `malformed or bad checksums from our side:\n${bad.slice(0, 4000)}`);
    const errors = tshark(pcapPath, `ip.src == ${us} && _ws.expert.severity >= "Error"`);
    assert.equal(errors.trim(), '', `error-level expert findings from our side:\n${errors.slice(0, 4000)}`);
    // Sending beyond the receiver's window is a sender bug, whatever the loss. This tshark has
    // no window_exceeded field, so check it here: every data segment of ours must end at or
    // before the right edge (ACK + scaled window) the kernel had advertised when it left.
    const rows = tshark(pcapPath, 'tcp && tcp.flags.syn == 0', ['ip.src', 'tcp.seq', 'tcp.len', 'tcp.ack', 'tcp.window_size'])
      .trim().split('\n').map((line) => line.split('\t'));
    let rightEdge = -1, beyond = 0, checked = 0, firstBeyond = '';
    for (const [src, seq, len, ack, win] of rows) {
      if (src !== us) { rightEdge = Math.max(rightEdge, Number(ack) + Number(win)); continue; }
      if (Number(len) === 0 || rightEdge < 0) continue;
      checked++;
      if (Number(seq) + Number(len) > rightEdge) { beyond++; firstBeyond ||= `seq ${seq} len ${len} > right edge ${rightEdge}`; }
    }
    assert.ok(checked > SIZE / 1460, `window check covered ${checked} segments`);
    assert.equal(beyond, 0, `segments beyond the kernel's advertised window, first: ${firstBeyond}`);
    // What tshark noticed (loss, retransmissions, reordering): expected here, reported for the record.
    const notes = tshark(pcapPath, `ip.src == ${us} && tcp.analysis.flags`, ['_ws.expert.message']).trim().split('\n').filter(Boolean);
    const counts = new Map<string, number>();
    for (const n of notes) for (const raw of n.split(',')) { const m = raw.replace(/ \(\\?#\d+\)$/, ''); counts.set(m, (counts.get(m) ?? 0) + 1); }
    t.diagnostic(`tshark analysis of our segments: ${[...counts].map(([m, c]) => `${m}: ${c}`).join('; ') || 'none'}`);
  } catch (e) {
    t.diagnostic(`capture kept for inspection: ${pcapPath}`);
    throw e;
  }
  rmSync(dir, { recursive: true, force: true });
});
