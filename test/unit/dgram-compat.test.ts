// The dgram scenario suite: each scenario runs against Node's own node:dgram (kernel sockets on
// 127.0.0.1) and against tstack/dgram (two stacks joined by the memory wire in this process,
// real clock), records the events it sees (names and salient fields, addresses and ports
// replaced by role names), and the two recordings must be equal.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeDgram from 'node:dgram';
import * as tstackDgram from '../../src/api/dgram.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';

/** The part of a dgram socket the scenarios use (Node's and ours both have it). */
type Sock = nodeDgram.Socket;

interface Env {
  name: string;
  /** A socket on host A (the "client" side). */
  a(listener?: (m: Buffer, r: nodeDgram.RemoteInfo) => void): Sock;
  /** A socket on host B (the "server" side). */
  b(listener?: (m: Buffer, r: nodeDgram.RemoteInfo) => void): Sock;
  hostA: string;
  hostB: string;
  /** A broadcast address A can reach (kernel: the loopback broadcast; tstack: A's subnet). */
  bcast: string;
  createSocket(type: unknown): unknown;
}

/** Records events, replacing addresses and ports with stable names so runs can be compared. */
class Recorder {
  readonly events: string[] = [];
  private readonly ports = new Map<number, string>();
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];
  constructor(private readonly env: Env) {}

  /** Names a port ('P1', 'SERVER'…) so it prints the same in both runs. */
  port(p: number, name: string): void { this.ports.set(p, name); }

  text(s: string): string {
    const e = this.env;
    let out = s.split(e.bcast).join('BCAST').split(e.hostA).join('A').split(e.hostB).join('B');
    out = out.replace(/\b\d{2,5}\b/g, (m) => this.ports.get(Number(m)) ?? (Number(m) >= 1024 ? 'EPH' : m));
    return out;
  }

  addr(info: { address: string; family: string; port: number }): string {
    return this.text(`${info.address}:${info.port} ${info.family}`);
  }

  err(e: unknown): string {
    const x = e as NodeJS.ErrnoException & { address?: string; port?: number };
    const fields = [x.name, x.code, x.errno, x.syscall, x.address, x.port].map((v) => v === undefined ? '-' : String(v)).join(' ');
    return this.text(`${fields} | ${x.message}`);
  }

  push(ev: string): void {
    this.events.push(this.text(ev));
    this.waiters = this.waiters.filter((w) => { if (w.pred()) { w.resolve(); return false; } return true; });
  }

  /** Resolves once an event containing `needle` has been recorded (or fails after ms). */
  until(needle: string, ms = 3000): Promise<void> {
    const pred = () => this.events.some((e) => e.includes(needle));
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.env.name}: no '${needle}' after ${ms} ms; got ${JSON.stringify(this.events)}`)), ms);
      this.waiters.push({ pred, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }

  /** Runs f, recording what it throws (or that it returned). */
  sync(label: string, f: () => unknown): void {
    try { const r = f(); this.push(`${label} -> ${r === undefined ? 'ok' : typeof r === 'object' ? 'object' : String(r)}`); } catch (e) { this.push(`${label} throws ${this.err(e)}`); }
  }

  /** Records the usual socket events under a label. */
  watch(s: Sock, label: string): void {
    s.on('listening', () => this.push(`${label} listening ${this.addr(s.address())}`));
    s.on('connect', () => this.push(`${label} connect ${this.addr(s.remoteAddress())}`));
    s.on('message', (m, r) => this.push(`${label} message '${m.toString()}' from ${this.addr(r)} size ${r.size}`));
    s.on('error', (e) => this.push(`${label} error ${this.err(e)}`));
    s.on('close', () => this.push(`${label} close`));
  }

  sendCb(label: string): (err: Error | null, n?: number) => void {
    return (err, n) => this.push(err ? `${label} send-cb ${this.err(err)}` : `${label} send-cb null ${n}`);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 20));

async function bound(s: Sock, host: string, port = 0): Promise<number> {
  await new Promise<void>((resolve) => s.bind(port, host, resolve));
  return s.address().port;
}

async function closed(...socks: Sock[]): Promise<void> {
  await Promise.all(socks.map((s) => new Promise<void>((r) => { try { s.close(r); } catch { r(); } })));
}

type Scenario = (env: Env, rec: Recorder) => Promise<void>;

const scenarios: Record<string, Scenario> = {
  async 'bind: listening, the bind callback, address(); address() before bind throws getsockname EBADF'(env, rec) {
    const s = env.a();
    rec.watch(s, 's');
    rec.sync('address() unbound', () => s.address());
    s.bind(0, env.hostA, () => rec.push('s bind-cb'));
    rec.push('after bind() returned');
    await rec.until('bind-cb');
    rec.sync('bind() again', () => s.bind(0));
    s.close(() => rec.push('s close-cb'));
    await rec.until('close-cb');
  },

  async 'echo: a message arrives with rinfo { address, family, port, size } and the reply comes back'(env, rec) {
    const server = env.b();
    const client = env.a();
    rec.watch(server, 'server');
    rec.watch(client, 'client');
    server.on('message', (m, r) => server.send(m, r.port, r.address, rec.sendCb('server')));
    rec.port(await bound(server, env.hostB), 'SERVER');
    rec.port(await bound(client, env.hostA), 'CLIENT');
    client.send('hello', 0, 5, server.address().port, env.hostB, rec.sendCb('client'));
    await rec.until("client message 'hello'");
    await closed(server, client);
  },

  async 'a second bind to the same address and port fails with an EADDRINUSE error event'(env, rec) {
    const s1 = env.a();
    const s2 = env.a();
    rec.watch(s2, 's2');
    rec.port(await bound(s1, env.hostA), 'PORT');
    s2.bind(s1.address().port, env.hostA);
    await rec.until('s2 error');
    // The failed bind left a descriptor behind (libuv creates it before bind(2)): getsockname works.
    rec.sync('s2.address() after the failed bind', () => JSON.stringify(s2.address()));
    await closed(s1, s2);
  },

  async 'connect, then send to a closed port: the send succeeds, then error recvmsg ECONNREFUSED'(env, rec) {
    const probe = env.b();
    const port = await bound(probe, env.hostB);
    await closed(probe);
    rec.port(port, 'CLOSED');
    const c = env.a();
    rec.watch(c, 'c');
    rec.sync('remoteAddress() before connect', () => c.remoteAddress());
    c.connect(port, env.hostB, () => {
      rec.push('c connect-cb');
      rec.sync('send with a port while connected', () => c.send('x', 0, 1, port, env.hostB));
      c.send('x', rec.sendCb('c'));
    });
    await rec.until('c error');
    c.disconnect();
    rec.sync('remoteAddress() after disconnect', () => c.remoteAddress());
    rec.sync('disconnect() again', () => c.disconnect());
    await closed(c);
  },

  async 'after close: close event once, send/close/address throw ERR_SOCKET_DGRAM_NOT_RUNNING, ref() returns the socket'(env, rec) {
    const s = env.a();
    rec.watch(s, 's');
    await bound(s, env.hostA);
    s.close();
    rec.sync('send after close', () => s.send('x', 9, env.hostB));
    rec.sync('close again', () => s.close());
    rec.sync('address after close', () => s.address());
    rec.sync('ref after close is the socket', () => s.ref() === s);
    await rec.until('s close');
    await tick();
  },

  async 'send on an unbound socket binds it implicitly (listening on 0.0.0.0) before sending'(env, rec) {
    const server = env.b();
    rec.watch(server, 'server');
    rec.port(await bound(server, env.hostB), 'SERVER');
    const c = env.a();
    rec.watch(c, 'c');
    c.send([Buffer.from('ab'), 'cd', new Uint8Array([0x65])], server.address().port, env.hostB, rec.sendCb('c'));
    rec.push('after send() returned');
    await rec.until("server message 'abcde'");
    await closed(server, c);
  },

  async 'broadcast without setBroadcast fails with send EACCES; after setBroadcast(true) it is delivered'(env, rec) {
    const server = env.b();
    rec.watch(server, 'server');
    rec.port(await bound(server, '0.0.0.0'), 'SERVER');
    const c = env.a();
    rec.watch(c, 'c');
    await bound(c, '0.0.0.0');
    c.send('no', server.address().port, env.bcast, rec.sendCb('c'));
    await rec.until('c send-cb');
    c.setBroadcast(true);
    c.send('yes', server.address().port, env.bcast, rec.sendCb('c'));
    await rec.until("server message 'yes'");
    await closed(server, c);
  },

  async 'connect() on an unbound socket: listening, then connect, then the connect callback'(env, rec) {
    const server = env.b();
    rec.watch(server, 'server');
    rec.port(await bound(server, env.hostB), 'SERVER');
    const c = env.a();
    rec.watch(c, 'c');
    c.connect(server.address().port, env.hostB, () => rec.push('c connect-cb'));
    await rec.until('c connect-cb');
    c.send(Buffer.from('0123456789'), 2, 3, rec.sendCb('c'));
    await rec.until("server message '234'");
    rec.sync('connect() again', () => c.connect(1, env.hostB));
    await closed(server, c);
  },

  async 'argument and state errors match Node (codes, classes and messages)'(env, rec) {
    const s = env.a();
    rec.sync("createSocket('udp5')", () => env.createSocket('udp5'));
    rec.sync('send(5)', () => s.send(5 as never, 9, env.hostB));
    rec.sync('send to port 0', () => s.send('x', 0, env.hostB));
    rec.sync('send without a port', () => s.send('x'));
    rec.sync('send offset out of bounds', () => s.send(Buffer.alloc(3), 5, 1, 9, env.hostB));
    rec.sync('send length out of bounds', () => s.send(Buffer.alloc(3), 1, 5, 9, env.hostB));
    rec.sync('send a bad list', () => s.send([Buffer.alloc(1), 5] as never, 9, env.hostB));
    rec.sync('connect to port 0', () => s.connect(0, env.hostB));
    rec.sync('connect to a number address', () => s.connect(9, 5 as never));
    rec.sync('setBroadcast before bind', () => s.setBroadcast(true));
    rec.sync('setTTL before bind', () => s.setTTL(5));
    rec.sync("setTTL('x')", () => s.setTTL('x' as never));
    rec.sync('getRecvBufferSize before bind', () => s.getRecvBufferSize());
    rec.sync('setRecvBufferSize(-1)', () => s.setRecvBufferSize(-1));
    rec.sync('addMembership()', () => s.addMembership(undefined as never));
    await bound(s, env.hostA);
    rec.sync('setTTL(0)', () => s.setTTL(0));
    rec.sync('setTTL(64)', () => s.setTTL(64));
    rec.sync('setMulticastTTL(300)', () => s.setMulticastTTL(300));
    // Groups are joined on A's own interface (lo for the kernel), so no IGMP leaves the host.
    rec.sync("addMembership('198.18.0.1')", () => s.addMembership('198.18.0.1', env.hostA));
    rec.sync("addMembership('239.1.2.3')", () => s.addMembership('239.1.2.3', env.hostA));
    rec.sync("addMembership('239.1.2.3') again", () => s.addMembership('239.1.2.3', env.hostA));
    rec.sync("dropMembership('239.1.2.4')", () => s.dropMembership('239.1.2.4', env.hostA));
    rec.sync("dropMembership('239.1.2.3')", () => s.dropMembership('239.1.2.3', env.hostA));
    rec.sync('unref() returns the socket', () => s.unref() === s);
    rec.sync('ref() returns the socket', () => s.ref() === s);
    await closed(s);
  },
};

// ---- the two environments -----------------------------------------------------------------

const kernel: Env = {
  name: 'kernel',
  a: (l) => nodeDgram.createSocket('udp4', l),
  b: (l) => nodeDgram.createSocket('udp4', l),
  // Two loopback addresses, so A and B print differently (127.0.0.0/8 is all local on lo).
  hostA: '127.0.0.1',
  hostB: '127.0.0.2',
  // The loopback broadcast route (127.255.255.255 on lo) never leaves the host.
  bcast: '127.255.255.255',
  createSocket: (t) => nodeDgram.createSocket(t as 'udp4'),
};

let instA: Instance;
let instB: Instance;

function instance(wire: MemoryWire, addr: string): Instance {
  return startInstance(parseConfig(`[[port]]\ndriver = "memory"\naddr = "${addr}"\n`, 'dgram-compat.toml'), { memoryWire: wire });
}

const tstack: Env = {
  name: 'tstack',
  a: (l) => tstackDgram.createSocket({ type: 'udp4', stack: instA }, l) as unknown as Sock,
  b: (l) => tstackDgram.createSocket({ type: 'udp4', stack: instB }, l) as unknown as Sock,
  hostA: '198.18.20.1',
  hostB: '198.18.20.2',
  bcast: '198.18.20.255',
  createSocket: (t) => tstackDgram.createSocket(t as 'udp4'),
};

// What the suite must see on both sides for the key scenarios: guards against two equal but
// wrong recordings (for example both empty).
const expected: Record<string, string[]> = {
  'connect, then send to a closed port: the send succeeds, then error recvmsg ECONNREFUSED': [
    'remoteAddress() before connect throws Error ERR_SOCKET_DGRAM_NOT_CONNECTED - - - - | Not connected',
    'c listening 0.0.0.0:EPH IPv4',
    'c connect B:CLOSED IPv4',
    'c connect-cb',
    'send with a port while connected throws Error ERR_SOCKET_DGRAM_IS_CONNECTED - - - - | Already connected',
    'c send-cb null 1',
    'c error Error ECONNREFUSED -111 recvmsg - - | recvmsg ECONNREFUSED',
    'remoteAddress() after disconnect throws Error ERR_SOCKET_DGRAM_NOT_CONNECTED - - - - | Not connected',
    'disconnect() again throws Error ERR_SOCKET_DGRAM_NOT_CONNECTED - - - - | Not connected',
    'c close',
  ],
  'a second bind to the same address and port fails with an EADDRINUSE error event': [
    's2 error Error EADDRINUSE -98 bind A PORT | bind EADDRINUSE A:PORT',
    `s2.address() after the failed bind -> {"address":"0.0.0.0","family":"IPv4","port":0}`,
    's2 close',
  ],
};

describe('dgram scenarios: node:dgram on kernel sockets and tstack/dgram record the same events', () => {
  const results = new Map<string, { kernel?: string[]; tstack?: string[] }>();
  let wire: MemoryWire;

  before(() => {
    wire = new MemoryWire({ clock: realClock });
    instA = instance(wire, '198.18.20.1/24');
    instB = instance(wire, '198.18.20.2/24');
  });
  after(() => { instA.stop(); instB.stop(); });

  for (const [name, run] of Object.entries(scenarios)) {
    test(name, async () => {
      const r: { kernel?: string[]; tstack?: string[] } = {};
      for (const env of [kernel, tstack]) {
        const rec = new Recorder(env);
        await run(env, rec);
        r[env.name as 'kernel' | 'tstack'] = rec.events;
      }
      results.set(name, r);
      if (process.env.DGRAM_COMPAT_PRINT) console.log(`${name}\n  ${r.kernel!.join("\n  ")}`);
      assert.ok(r.kernel!.length > 0, 'the scenario recorded something');
      assert.deepEqual(r.tstack, r.kernel, `tstack (actual) vs kernel (expected):\n${r.tstack!.join('\n')}`);
      if (expected[name]) assert.deepEqual(r.kernel, expected[name]);
    });
  }
});

// ---- udp6: the same scenarios on ::1 (kernel: lo; tstack: the instance's lo0) ---------------

const UDP6_SCENARIOS = [
  'bind: listening, the bind callback, address(); address() before bind throws getsockname EBADF',
  'echo: a message arrives with rinfo { address, family, port, size } and the reply comes back',
  'a second bind to the same address and port fails with an EADDRINUSE error event',
  'connect, then send to a closed port: the send succeeds, then error recvmsg ECONNREFUSED',
  'after close: close event once, send/close/address throw ERR_SOCKET_DGRAM_NOT_RUNNING, ref() returns the socket',
  'send on an unbound socket binds it implicitly (listening on 0.0.0.0) before sending',
  'connect() on an unbound socket: listening, then connect, then the connect callback',
];

const kernel6: Env = {
  name: 'kernel',
  a: (l) => nodeDgram.createSocket('udp6', l),
  b: (l) => nodeDgram.createSocket('udp6', l),
  hostA: '::1',
  hostB: '::1',
  bcast: '(none)',
  createSocket: (t) => nodeDgram.createSocket(t as 'udp6'),
};

const tstack6: Env = {
  name: 'tstack',
  a: (l) => tstackDgram.createSocket({ type: 'udp6', stack: instA }, l) as unknown as Sock,
  b: (l) => tstackDgram.createSocket({ type: 'udp6', stack: instA }, l) as unknown as Sock,
  hostA: '::1',
  hostB: '::1',
  bcast: '(none)',
  createSocket: (t) => tstackDgram.createSocket({ ...(typeof t === 'object' ? t as tstackDgram.SocketOptions : { type: t as 'udp6' }), stack: instA }),
};

/** Dual-stack scenarios (udp6 environments only; createSocket makes the other family's socket). */
const dualScenarios: Record<string, Scenario> = {
  async 'a udp6 socket on :: hears a udp4 client as ::ffff:127.0.0.1 and its reply goes back over IPv4'(env, rec) {
    const server = env.b();
    rec.watch(server, 'server');
    server.on('message', (m, r) => server.send(m, r.port, r.address, rec.sendCb('server')));
    rec.port(await bound(server, '::'), 'SERVER');
    const c4 = env.createSocket('udp4') as Sock;
    rec.watch(c4, 'c4');
    rec.port(await bound(c4, '127.0.0.1'), 'C4');
    c4.send('hi', server.address().port, '127.0.0.1', rec.sendCb('c4'));
    await rec.until("c4 message 'hi'");
    await closed(server, c4);
  },

  async 'ipv6Only: the port stays free for a udp4 socket; without it the udp4 bind fails with EADDRINUSE'(env, rec) {
    const only = env.createSocket({ type: 'udp6', ipv6Only: true }) as Sock;
    rec.port(await bound(only, '::'), 'PORT');
    const c4 = env.createSocket('udp4') as Sock;
    rec.watch(c4, 'c4');
    c4.bind(only.address().port, '0.0.0.0');
    await rec.until('c4 listening');
    await closed(only, c4);
    const dual = env.b();
    rec.port(await bound(dual, '::'), 'PORT2');
    const d4 = env.createSocket('udp4') as Sock;
    rec.watch(d4, 'd4');
    d4.bind(dual.address().port, '0.0.0.0');
    await rec.until('d4 error');
    await closed(dual, d4);
  },
};

const expected6: Record<string, string[]> = {
  'connect, then send to a closed port: the send succeeds, then error recvmsg ECONNREFUSED': [
    'remoteAddress() before connect throws Error ERR_SOCKET_DGRAM_NOT_CONNECTED - - - - | Not connected',
    'c listening :::EPH IPv6',
    'c connect A:CLOSED IPv6',
    'c connect-cb',
    'send with a port while connected throws Error ERR_SOCKET_DGRAM_IS_CONNECTED - - - - | Already connected',
    'c send-cb null 1',
    'c error Error ECONNREFUSED -111 recvmsg - - | recvmsg ECONNREFUSED',
    'remoteAddress() after disconnect throws Error ERR_SOCKET_DGRAM_NOT_CONNECTED - - - - | Not connected',
    'disconnect() again throws Error ERR_SOCKET_DGRAM_NOT_CONNECTED - - - - | Not connected',
    'c close',
  ],
  'a second bind to the same address and port fails with an EADDRINUSE error event': [
    's2 error Error EADDRINUSE -98 bind A PORT | bind EADDRINUSE A:PORT',
    `s2.address() after the failed bind -> {"address":"::","family":"IPv6","port":0}`,
    's2 close',
  ],
};

/** Whether this host's kernel has ::1 (IPv6 may be disabled in a container). */
async function kernelHasIpv6Loopback(): Promise<boolean> {
  const s = nodeDgram.createSocket('udp6');
  const ok = await new Promise<boolean>((resolve) => { s.once('error', () => resolve(false)); s.bind(0, '::1', () => resolve(true)); });
  try { s.close(); } catch { /* never bound */ }
  return ok;
}

describe('udp6 dgram scenarios on ::1: node:dgram on kernel sockets and tstack/dgram record the same events', () => {
  let wire: MemoryWire;
  let kernelV6 = true;

  before(async () => {
    wire = new MemoryWire({ clock: realClock });
    instA = instance(wire, '198.18.20.1/24');
    kernelV6 = await kernelHasIpv6Loopback();
  });
  after(() => { instA.stop(); });

  for (const name of [...UDP6_SCENARIOS, ...Object.keys(dualScenarios)]) {
    const run = scenarios[name] ?? dualScenarios[name]!;
    test(name, async (t) => {
      const r: { kernel?: string[]; tstack?: string[] } = {};
      for (const env of kernelV6 ? [kernel6, tstack6] : [tstack6]) {
        const rec = new Recorder(env);
        await run(env, rec);
        r[env.name as 'kernel' | 'tstack'] = rec.events;
      }
      if (process.env.DGRAM_COMPAT_PRINT) console.log(`${name}\n  ${(r.kernel ?? r.tstack)!.join('\n  ')}`);
      if (expected6[name]) assert.deepEqual(r.tstack, expected6[name]);
      if (!kernelV6) { t.diagnostic('the kernel has no ::1 here: compared with the recorded expectations only'); return; }
      assert.ok(r.kernel!.length > 0, 'the scenario recorded something');
      assert.deepEqual(r.tstack, r.kernel, `tstack (actual) vs kernel (expected):\n${r.tstack!.join('\n')}`);
    });
  }
});
