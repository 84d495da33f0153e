import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, ConfigError } from '../../src/runtime/config.js';
import { startInstance } from '../../src/runtime/instance.js';
import { PcapWriter } from '../../src/driver/pcap.js';
import { readPcap } from '../../src/wire/pcap.js';
import { VirtualClock } from '../../src/base/time.js';

const dir = mkdtempSync(join(tmpdir(), 'tstack-instance-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const OUR_MAC = [0x02, 0, 0, 0, 0, 0x02];
const PEER_MAC = [0x02, 0, 0, 0, 0, 0x01];

/** An ARP request from 198.18.5.1 (PEER_MAC) asking who has 198.18.5.2. */
function arpRequest(): Uint8Array {
  return Uint8Array.from([
    255, 255, 255, 255, 255, 255, ...PEER_MAC, 0x08, 0x06,
    0, 1, 0x08, 0, 6, 4, 0, 1, ...PEER_MAC, 198, 18, 5, 1, 0, 0, 0, 0, 0, 0, 198, 18, 5, 2,
    ...new Array<number>(18).fill(0),
  ]);
}

describe('startInstance', () => {
  test('a pcap port: the stack announces itself, answers the replayed ARP request, and the capture holds both directions', () => {
    const input = join(dir, 'in.pcap');
    const w = new PcapWriter(input);
    w.write(arpRequest(), 0, 60, 0);
    w.close();
    const output = join(dir, 'out.pcap');
    const cap = join(dir, 'cap.pcap');
    const cfg = parseConfig(`
[stack]
poll = "interrupt"
[[port]]
driver = "pcap"
ifname = "pc0"
addr = "198.18.5.2/24"
mac = "02:00:00:00:00:02"
input = "${input}"
output = "${output}"
pcap = "${cap}"
`, 'inst.toml');
    const clock = new VirtualClock(1000);
    const inst = startInstance(cfg, { clock, start: false });
    assert.equal(inst.ports.length, 1);
    assert.equal(inst.ports[0]!.ifIndex, 1);
    assert.deepEqual([...inst.ports[0]!.driver.mac], OUR_MAC);
    for (let i = 0; i < 3; i++) { inst.loop.iterate(); clock.advance(1); }
    inst.stop();
    inst.stop();

    const out = readPcap(readFileSync(output)).records.map((r) => r.data);
    // Gratuitous ARP first (RFC 5227 announcement), then the reply to 198.18.5.1.
    const arpOps = out.filter((f) => f[12] === 0x08 && f[13] === 0x06).map((f) => f[21]);
    assert.deepEqual(arpOps, [1, 2], `ARP opcodes sent: ${String(arpOps)}`);
    const reply = out.find((f) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2)!;
    assert.deepEqual([...reply.subarray(0, 6)], PEER_MAC, 'reply goes to the asker');
    assert.deepEqual([...reply.subarray(22, 28)], OUR_MAC, 'sender hardware address is ours');
    assert.deepEqual([...reply.subarray(28, 32)], [198, 18, 5, 2]);

    const captured = readPcap(readFileSync(cap)).records;
    assert.equal(captured.length, out.length + 1, 'the capture has every transmitted frame plus the received one');
    assert.ok(captured.some((r) => r.data[21] === 1 && r.data[6] === PEER_MAC[0] && r.data[11] === PEER_MAC[5]));
  });

  test('two memory ports on one wire get interface indexes 1 and 2; stop releases them', () => {
    const cfg = parseConfig('[[port]]\ndriver = "memory"\naddr = "198.18.6.2/24"\n[[port]]\ndriver = "memory"\naddr = "198.18.7.2/24"\n', 'm.toml');
    const inst = startInstance(cfg, { clock: new VirtualClock(), start: false });
    assert.deepEqual(inst.ports.map((p) => p.ifIndex), [1, 2]);
    assert.deepEqual(inst.ports.map((p) => p.driver.name), ['memory0', 'memory1']);
    inst.loop.iterate();
    inst.stop();
    assert.equal(inst.loop.isRunning, false);
  });

  test('more than one worker outside `tstack run` is refused, naming stack.workers and its line', () => {
    const cfg = parseConfig('[stack]\n\nworkers = 4\n', 'w.toml');
    assert.throws(() => startInstance(cfg, { clock: new VirtualClock(), start: false }),
      (e: Error) => e instanceof ConfigError && e.message.startsWith("w.toml:3: key 'stack.workers': 4 workers run under `tstack run`"));
  });

  test('a worker of several refuses a driver without per-worker queues', () => {
    const cfg = parseConfig('[stack]\nworkers = 2\n[[port]]\ndriver = "memory"\nifname = "m0"\naddr = "198.18.211.2/24"\n', 'w.toml');
    assert.throws(() => startInstance(cfg, { clock: new VirtualClock(), start: false, worker: { index: 0, count: 2, seed: 1, slots: [0, 1] } }),
      (e: Error) => e instanceof ConfigError && /port\[0\]\.driver.*no per-worker queues/.test(e.message));
  });

  test('workers = "auto" is the cores available', () => {
    assert.equal(parseConfig('[stack]\nworkers = "auto"\n', 'w.toml').stack.workers, availableParallelism());
  });
});

test('a production instance draws its secrets from node:crypto; a caller may inject a seeded source', async () => {
  const { cryptoRandom } = await import('../../src/runtime/random.js');
  const r = cryptoRandom(4);
  const xs = Array.from({ length: 10 }, () => r());
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.equal(new Set(xs).size, 10, 'refilled past the block, never repeating a block');
  const { Prng } = await import('../../src/base/prng.js');
  const seeded = () => { const p = new Prng(7); return () => p.next(); };
  const cfg = parseConfig('[[port]]\ndriver = "memory"\naddr = "198.18.50.1/24"\n', 'seeded.toml');
  const isns: number[] = [];
  for (let i = 0; i < 2; i++) {
    const inst = startInstance(cfg, { start: false, random: seeded() });
    isns.push(inst.stack.tcp.isnGen.isn(0, 1, 2, 3, 4));
    inst.stop();
  }
  assert.equal(isns[0], isns[1], 'the same seed gives the same ISN secret');
  const a = startInstance(cfg, { start: false });
  const b = startInstance(cfg, { start: false });
  assert.notEqual(a.stack.tcp.isnGen.isn(0, 1, 2, 3, 4), b.stack.tcp.isnGen.isn(0, 1, 2, 3, 4), 'two production instances do not share a secret');
  a.stop(); b.stop();
});
