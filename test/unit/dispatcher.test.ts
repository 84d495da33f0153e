// The packet dispatcher (docs/dispatcher.md, src/runtime/dispatcher.ts) with the example from
// examples/dispatcher/udp-echo.js: UDP echo answered before the stack, an allow-list for TCP 22.
import test from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { MemoryWire } from '../../src/driver/memory.js';
import { VirtualClock } from '../../src/base/time.js';
import { Stack } from '../../src/stack/stack.js';
import { Prng } from '../../src/base/prng.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance } from '../../src/runtime/instance.js';
import { dispatcherStats, installDispatcher, type PacketDispatcher } from '../../src/runtime/dispatcher.js';
import { parseIpv4 } from '../../src/wire/addr.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/dispatcher/udp-echo.js', import.meta.url));
const B = parseIpv4('198.18.0.2')!;

function rig(peerAddr: string) {
  const clock = new VirtualClock(0);
  const wire = new MemoryWire({ clock, seed: 5, realtime: false });
  const inst = startInstance(parseConfig('[[port]]\ndriver = "memory"\nifname = "m0"\naddr = "198.18.0.2/24"\n', 'd.toml'),
    { clock, memoryWire: wire, start: false, random: (() => { const r = new Prng(2); return () => r.next(); })() });
  const peerPort = wire.createPort({ name: 'peer' });
  const r = new Prng(3);
  const peer = new Stack({ clock, random: () => r.next() });
  peer.addInterface(peerPort, { addr: `${peerAddr}/24` });
  const rx: PacketBuffer[] = [];
  const run = (ms: number) => {
    const end = clock.now() + ms;
    while (clock.now() < end) {
      inst.loop.iterate();
      const n = peerPort.rxBurst(rx, 64);
      for (let i = 0; i < n; i++) peer.input(1, rx[i]!);
      peer.poll(clock.now());
      clock.advance(1);
    }
  };
  return { inst, peer, run, close: () => { inst.stop(); peerPort.close(); } };
}

test('the example dispatcher answers UDP echo itself: the stack never sees the datagrams', async () => {
  const { inst, peer, run, close } = rig('198.18.0.1');
  const fn = (await import(EXAMPLE)).default as PacketDispatcher;
  installDispatcher(inst, fn);
  const s = peer.udp.open(); s.bind(0, 4000);
  const got: string[] = [];
  s.onMessage = (d, addr, port) => got.push(`${Buffer.from(d)} ${addr === B} ${port}`);
  for (let i = 0; i < 3; i++) s.send(Buffer.from(`ping${i}`), B, 7);
  run(50);
  assert.deepEqual(got, ['ping0 true 7', 'ping1 true 7', 'ping2 true 7']);
  const st = dispatcherStats(inst)!;
  assert.equal(st.responded, 3);
  assert.equal(inst.stack.udp.socketCount, 0);
  assert.equal(Object.keys(inst.stack.drops).filter((k) => k.startsWith('udp')).length, 0, 'no UDP drop: the stack never saw port 7');
  close();
});

test('the allow-list: TCP to port 22 from an address not on it is dropped before the stack; port 80 is not touched', async () => {
  const { inst, peer, run, close } = rig('198.18.0.3');
  installDispatcher(inst, (await import(EXAMPLE)).default as PacketDispatcher);
  inst.stack.tcp.listen({ port: 22 });
  inst.stack.tcp.listen({ port: 80 });
  const ssh = peer.tcp.connect({ raddr: B, rport: 22 });
  const web = peer.tcp.connect({ raddr: B, rport: 80 });
  run(200);
  assert.equal(ssh.state, 'SYN_SENT');
  assert.equal(web.state, 'ESTABLISHED');
  assert.ok(dispatcherStats(inst)!.dropped >= 1);
  close();
});

test('a dispatcher that throws lets frames through; a worker index with one worker and no link drops; removal restores the stack', () => {
  const { inst, peer, run, close } = rig('198.18.0.1');
  inst.stack.tcp.listen({ port: 80 });
  let remove = installDispatcher(inst, () => { throw new Error('bug'); });
  const a = peer.tcp.connect({ raddr: B, rport: 80 });
  run(100);
  assert.equal(a.state, 'ESTABLISHED');
  assert.ok(dispatcherStats(inst)!.errors > 0);
  remove();
  remove = installDispatcher(inst, () => 3);
  const b = peer.tcp.connect({ raddr: B, rport: 80 });
  run(100);
  assert.equal(b.state, 'SYN_SENT');
  remove();
  assert.equal(inst.loop.steer, null);
  close();
});
