// bench/link-emulator.ts between two namespaces (root only): kernel pings cross it no sooner
// than its delay and serialization allow, a burst faster than its rate overflows its queue, and
// TCP crosses it with offloads off (the kernel segments) and on (super-frames cross whole).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../bench/http.js';
import { LinkEmulator, type LinkModel } from '../../bench/link-emulator.js';
import { parsePing } from '../../bench/driver-ping.js';
import { createNetns, destroyAllNetns, requireRoot, spawnIn } from '../helpers/netns.js';

after(destroyAllNetns);

const FIXTURE = join(fileURLToPath(new URL('../../../', import.meta.url)), 'bench', 'fixtures', 'timed-bulk.js');

/** A fresh emulated link between two new namespaces, 198.18.231.1 (A) and .2 (B). */
function link(model: LinkModel, offloads = false): { emu: LinkEmulator; nsA: string; nsB: string } {
  const tag = process.pid % 100000;
  const nsA = createNetns('lemu-a');
  const nsB = createNetns('lemu-b');
  const emu = LinkEmulator.open({
    ...model,
    a: { netns: nsA, ifname: `tlta${tag}`, addr: '198.18.231.1/24' },
    b: { netns: nsB, ifname: `tltb${tag}`, addr: '198.18.231.2/24' },
    offloads,
  });
  return { emu, nsA, nsB };
}

test('a ping across the emulated link takes at least the round trip of its delay and serialization', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ping'])) return;
  // 20 ms each way (40 ms RTT, as tcp-autotune-memory's link), and a slow rate so serialization
  // shows too: a 1514-byte frame takes 12.1 ms at 1 Mbit/s, each way.
  const { emu, nsA } = link({ rateBps: 1e6, oneWayDelayMs: 20, queueLimitBytes: 64 * 1024 });
  try {
    // -s 1472: a 1500-byte IP packet, a 1514-byte frame.
    const r = await spawnIn(nsA, 'ping', ['-q', '-n', '-c', '5', '-i', '0.2', '-W', '5', '-s', '1472', '198.18.231.2'], 40_000);
    const s = parsePing(r.stdout);
    assert.ok(s, `ping printed no statistics (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    assert.equal(s.received, 5, `every ping is answered:\n${r.stdout}`);
    const floor = 2 * 20 + 2 * (1514 * 8 / 1e6) * 1000;
    assert.ok(s.min >= floor, `min RTT ${s.min} ms >= ${floor.toFixed(1)} ms (delay + serialization, both ways)`);
    const st = emu.stats();
    for (const d of [st.aToB, st.bToA]) {
      assert.equal(d.queueDropped + d.ringFull + d.txErrors + d.rxTruncated, 0, `nothing dropped at 5 pings/s: ${JSON.stringify(d)}`);
      assert.equal(d.txFrames + d.inFlight, d.rxFrames, 'every frame read was delivered or is on its way');
    }
  } finally {
    emu.close();
  }
});

test('a burst above the link rate is tail-dropped at the queue limit and counted', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ping'])) return;
  // 0.5 Mbit/s (41 full frames/s) and room for two full frames: 40 pings 2 ms apart cannot fit
  // (even if the loaded machine sends them 20 ms apart, 50/s is more than the link carries).
  const { emu, nsA } = link({ rateBps: 0.5e6, oneWayDelayMs: 1, queueLimitBytes: 2 * 1514 });
  try {
    const r = await spawnIn(nsA, 'ping', ['-q', '-n', '-c', '40', '-i', '0.002', '-W', '3', '-s', '1472', '198.18.231.2'], 40_000);
    const s = parsePing(r.stdout);
    assert.ok(s, `ping printed no statistics (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    const a = emu.stats().aToB;
    assert.ok(a.queueDropped > 0, `the queue overflowed: ${JSON.stringify(a)}`);
    assert.ok(s.received < s.sent, `some pings were lost (${s.received}/${s.sent})`);
    assert.ok(a.maxBacklogBytes <= 2 * 1514, `the backlog never exceeded the limit (${a.maxBacklogBytes})`);
    assert.equal(a.txFrames + a.txErrors + a.rxTruncated + a.queueDropped + a.ringFull + a.inFlight, a.rxFrames, 'every frame read is accounted for');
  } finally {
    emu.close();
  }
});

/** Sends `bytes` over TCP from A to B with bench/fixtures/timed-bulk.js; returns what B received. */
async function tcpTransfer(nsA: string, nsB: string, bytes: number): Promise<number> {
  const server = await startServer('ip', ['netns', 'exec', nsB, process.execPath, FIXTURE, 'server', '5001', String(bytes)],
    process.env, 'timed-bulk server', /timed-bulk: listening/);
  try {
    const c = await spawnIn(nsA, process.execPath, [FIXTURE, 'client', '198.18.231.2', '5001', String(bytes)], 120_000);
    assert.equal(c.code, 0, `client: ${c.stdout}${c.stderr}`);
    const line = server.output().split('\n').find((l) => l.startsWith('{'));
    assert.ok(line, `server result:\n${server.output()}`);
    return (JSON.parse(line) as { bytes: number }).bytes;
  } finally {
    await server.stop();
  }
}

for (const offloads of [false, true]) {
  test(`TCP crosses the link ${offloads ? 'as GSO super-frames with partial checksums (offloads on)' : 'as MTU-sized frames the kernel segmented (offloads off)'}`, { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t, ['ip'])) return;
    const bytes = 4 << 20;
    const { emu, nsA, nsB } = link({ rateBps: 200e6, oneWayDelayMs: 5, queueLimitBytes: 250_000 }, offloads);
    try {
      assert.equal(await tcpTransfer(nsA, nsB, bytes), bytes, 'every byte arrived');
      const a = emu.stats().aToB;
      assert.ok(a.txWireBytes > bytes, `the link carried the payload and its headers (${a.txWireBytes} wire bytes)`);
      if (offloads) assert.ok(a.gsoFrames > 0, `super-frames crossed whole: ${JSON.stringify(a)}`);
      else assert.equal(a.gsoFrames, 0, 'no super-frame reached the link');
      assert.equal(a.rxTruncated + a.txErrors + a.ringFull, 0, `nothing lost but to the queue: ${JSON.stringify(a)}`);
    } finally {
      emu.close();
    }
  });
}
