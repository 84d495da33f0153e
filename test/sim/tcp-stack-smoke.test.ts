// Full-stack TCP between two stacks on the memory wire (ARP, IPv4, TCP): a transfer both ways
// and a clean close, with and without loss.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Simulation } from '../helpers/sim.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { Prng } from '../../src/base/prng.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const B = parseIpv4('198.18.2.2')!;

function payload(n: number, seed: number): Uint8Array {
  const p = new Prng(seed); const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) { const v = p.u32(); b[i] = v; b[i + 1] = v >>> 8; b[i + 2] = v >>> 16; b[i + 3] = v >>> 24; }
  return b;
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Writes all of data, then FIN, feeding the socket as the send buffer drains. */
function pump(s: TcpSocket, data: Uint8Array): void {
  let off = 0;
  const go = () => {
    while (off < data.length) { const n = s.write(data.subarray(off)); if (n === 0) return; off += n; }
    s.onDrain = null; s.shutdown();
  };
  s.onDrain = go;
  go();
}
function collect(s: TcpSocket, into: Uint8Array[], done: () => void): void {
  s.onData = () => { for (let c = s.read(); c; c = s.read()) into.push(c.slice()); };
  s.onEnd = done;
}

for (const [label, loss] of [['clean', 0], ['2% loss', 0.02]] as const) {
  test(`1 MiB each way between two stacks, ${label}: bytes equal, both ends close`, () => {
    const sim = new Simulation({ seed: `smoke-${label}`, latencyMs: 1 });
    const faults = loss ? { loss } : undefined;
    const a = sim.addHost({ name: 'a', addr: '198.18.2.1/24', ...(faults && { faults }) }).stack;
    const b = sim.addHost({ name: 'b', addr: '198.18.2.2/24', ...(faults && { faults }) }).stack;
    const up = payload(1 << 20, 1), down = payload(1 << 20, 2);
    const gotB: Uint8Array[] = [], gotA: Uint8Array[] = [];
    let endA = false, endB = false, closedA = false, closedB = false;
    const l = b.tcp.listen({ port: 80 });
    l.onConnection = (s) => { collect(s, gotB, () => { endB = true; }); pump(s, down); s.onClose = () => { closedB = true; }; };
    const c = a.tcp.connect({ raddr: B, rport: 80 });
    c.onConnect = () => pump(c, up);
    collect(c, gotA, () => { endA = true; });
    c.onClose = () => { closedA = true; };
    const ok = sim.runUntil(() => endA && endB && closedA && closedB, { maxMs: 120_000 });
    assert.ok(ok, `${sim.describe()} endA=${endA} endB=${endB} closedA=${closedA} closedB=${closedB} a=${c.state}`);
    assert.equal(sha(Buffer.concat(gotB)), sha(up));
    assert.equal(sha(Buffer.concat(gotA)), sha(down));
    l.close();
    sim.run(70_000); // TIME_WAIT (2*MSL) ends
    assert.equal(a.tcp.activeTcbs, 0);
    assert.equal(b.tcp.activeTcbs, 0);
    sim.close();
  });
}
