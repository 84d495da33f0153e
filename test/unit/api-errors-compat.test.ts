// Argument errors and API surface as Node's: each case calls node:net / node:dgram (kernel
// sockets) and tstack/net / tstack/dgram the same way and expects the same error class, code
// and message (or the same result). Nothing here needs privileges: the tstack side is a
// stack on a memory wire.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeNet from 'node:net';
import * as nodeDgram from 'node:dgram';
import * as tnet from '../../src/api/net.js';
import * as tdgram from '../../src/api/dgram.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';

let inst: Instance;
before(() => {
  inst = startInstance(parseConfig('[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\naddr = "198.18.32.1/24"\n', 'api-errors.toml'), { memoryWire: new MemoryWire({ clock: realClock }) });
});
after(() => inst.stop());

/** What a call did: returned (a summary) or threw (class, code, message). */
function outcome(fn: () => unknown): string {
  try {
    const r = fn();
    return `returned ${typeof r === 'object' && r !== null ? r.constructor.name : String(r)}`;
  } catch (e) {
    const x = e as Error & { code?: string };
    return `${x.name} ${x.code ?? '-'}: ${x.message}`;
  }
}

type Dg = typeof nodeDgram;
const kernelDgram = nodeDgram as unknown as Dg;
const tstackDgram = {
  createSocket: (t: unknown, l?: unknown) => tdgram.createSocket((typeof t === 'object' && t !== null ? { ...t, stack: inst } : { type: t, stack: inst }) as tdgram.SocketOptions, l as never),
} as unknown as Dg;

const dgramCases: Record<string, (d: Dg) => unknown> = {
  'createSocket with a lookup that is not a function': (d) => d.createSocket({ type: 'udp4', lookup: null as never }),
  'createSocket with lookup: "foo"': (d) => d.createSocket({ type: 'udp4', lookup: 'foo' as never }),
  'createSocket with a signal that is not an AbortSignal': (d) => d.createSocket({ type: 'udp4', signal: {} as never }),
  'createSocket with a bad type': (d) => d.createSocket('udp5' as never),
  'createSocket with a fractional recvBufferSize': (d) => d.createSocket({ type: 'udp4', recvBufferSize: 1.5 }),
  'createSocket with a negative sendBufferSize': (d) => d.createSocket({ type: 'udp4', sendBufferSize: -1 }),
  'sendto without an address': (d) => { const s = d.createSocket('udp4'); try { return (s as unknown as { sendto: (...a: unknown[]) => void }).sendto(Buffer.from('x'), 0, 1, 9); } finally { s.close(); } },
  'sendto with a string offset': (d) => { const s = d.createSocket('udp4'); try { return (s as unknown as { sendto: (...a: unknown[]) => void }).sendto(Buffer.from('x'), '0', 1, 9, '198.18.32.9'); } finally { s.close(); } },
  'addMembership without a group': (d) => { const s = d.createSocket('udp4'); try { return (s.addMembership as (...a: unknown[]) => void)(); } finally { s.close(); } },
  'addSourceSpecificMembership with a number source': (d) => { const s = d.createSocket('udp4'); try { return s.addSourceSpecificMembership(0 as never, '224.0.0.114'); } finally { s.close(); } },
  'addSourceSpecificMembership with a number group': (d) => { const s = d.createSocket('udp4'); try { return s.addSourceSpecificMembership('224.0.0.114', 0 as never); } finally { s.close(); } },
  'connect to port 0': (d) => { const s = d.createSocket('udp4'); try { return s.connect(0); } finally { s.close(); } },
  'getSendQueueSize and getSendQueueCount on a new socket': (d) => { const s = d.createSocket('udp4'); try { return `${s.getSendQueueSize()} ${s.getSendQueueCount()}`; } finally { s.close(); } },
  'getRecvBufferSize before bind': (d) => { const s = d.createSocket('udp4'); try { return s.getRecvBufferSize(); } finally { s.close(); } },
};

type Nt = Pick<typeof nodeNet, 'connect' | 'createServer'>;
const tstackNetApi: Nt = {
  connect: ((...a: unknown[]) => {
    const o = a[0] as Record<string, unknown>;
    return tnet.connect({ ...o, stack: inst } as tnet.TcpSocketConnectOpts);
  }) as unknown as Nt['connect'],
  createServer: ((o?: unknown) => tnet.createServer({ ...(o as object), stack: inst })) as unknown as Nt['createServer'],
};

const netCases: Record<string, (n: Nt) => unknown> = {
  'connect({ port: -1 })': (n) => n.connect({ port: -1, host: '198.18.32.9' }),
  'connect({ port: 65536 })': (n) => n.connect({ port: 65536, host: '198.18.32.9' }),
  'connect({ port: true })': (n) => n.connect({ port: true as never, host: '198.18.32.9' }),
  'connect with a localAddress that is not an IP': (n) => n.connect({ port: 80, host: '198.18.32.9', localAddress: 'nope' }),
  'connect with a string localPort': (n) => n.connect({ port: 80, host: '198.18.32.9', localAddress: '198.18.32.1', localPort: '1' as never }),
  'connect with a lookup that is not a function': (n) => n.connect({ port: 80, host: 'example.test', lookup: 1 as never }),
  'listen({ port: -1 })': (n) => n.createServer().listen({ port: -1 }),
  'listen with an options object lacking port and path': (n) => n.createServer().listen({ host: '198.18.32.1' } as never),
};

describe('argument errors and API surface: node:dgram vs tstack/dgram', () => {
  for (const [name, call] of Object.entries(dgramCases)) {
    test(name, () => { assert.equal(outcome(() => call(tstackDgram)), outcome(() => call(kernelDgram))); });
  }
});

describe('argument errors: node:net vs tstack/net', () => {
  for (const [name, call] of Object.entries(netCases)) {
    test(name, () => {
      const k = outcome(() => { const r = call(nodeNet as Nt); (r as { destroy?: () => void }).destroy?.(); return r; });
      const t = outcome(() => { const r = call(tstackNetApi); (r as { destroy?: () => void }).destroy?.(); return r; });
      assert.equal(t, k);
    });
  }
});
