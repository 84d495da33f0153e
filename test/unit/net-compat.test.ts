// The net scenario suite: each scenario runs against Node's own node:net (kernel sockets on
// 127.0.0.1) and against tstack/net (a client stack and a server stack joined by the memory
// wire in this process, real clock). Each side of the conversation records the events it sees
// (names and salient fields: error code/syscall/errno, hadError, byte counts; addresses and
// ports replaced by role names), and the recordings must be equal, side by side: the client's
// events in the client's order, the server's (server and accepted sockets) in the server's.
// Comparing per side keeps the test honest without depending on how the two halves interleave,
// which no real network fixes either.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeNet from 'node:net';
import * as http from 'node:http';
import * as tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tstackNet from '../../src/api/net.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';
import { resolveStack } from '../../src/api/runtime.js';

/** The part of a socket/server the scenarios use (Node's and ours both have it). */
type Sock = nodeNet.Socket;
type Server = nodeNet.Server;

interface Env {
  name: string;
  /** The server's address (clients connect to it; servers listen on it). */
  host: string;
  /** The client's own address, as the server sees it. */
  clientHost: string;
  createServer(opts?: nodeNet.ServerOpts | ((s: Sock) => void), listener?: (s: Sock) => void): Server;
  connect(opts: nodeNet.NetConnectOpts, cb?: () => void): Sock;
  /** A client on the server's own host (the program reaching itself over loopback). */
  connectLocal(opts: nodeNet.NetConnectOpts, cb?: () => void): Sock;
}

type Side = 'c' | 's';

/** Records events per side, replacing addresses and ports with stable names. */
class Recorder {
  readonly sides: Record<Side, string[]> = { c: [], s: [] };
  private readonly all: string[] = [];
  private readonly ports = new Map<number, string>();
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];
  constructor(private readonly env: Env) {}

  port(p: number, name: string): void { this.ports.set(p, name); }

  text(s: string): string {
    const e = this.env;
    const out = s.split(e.host).join('SRV').split(e.clientHost).join('CLI');
    return out.replace(/\b\d{2,5}\b/g, (m) => this.ports.get(Number(m)) ?? (Number(m) >= 1024 ? 'EPH' : m));
  }

  err(e: unknown): string {
    const x = e as NodeJS.ErrnoException & { address?: string; port?: number };
    const fields = [x.code, x.errno, x.syscall, x.address, x.port].map((v) => v === undefined ? '-' : String(v)).join(' ');
    return this.text(`${fields} | ${x.message}`);
  }

  push(side: Side, ev: string): void {
    const t = this.text(ev);
    this.sides[side].push(t);
    this.all.push(`${side} ${t}`);
    this.waiters = this.waiters.filter((w) => { if (w.pred()) { w.resolve(); return false; } return true; });
  }

  /** Resolves once an event containing `needle` has been recorded by `side` (or fails after ms). */
  until(side: Side, needle: string, ms = 5000): Promise<void> {
    const pred = () => this.sides[side].some((e) => e.includes(needle));
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.env.name}: no '${side} ${needle}' after ${ms} ms; got ${JSON.stringify(this.all)}`)), ms);
      this.waiters.push({ pred, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }

  /** Records a socket's events; data is summed and reported at 'end' (chunking differs by design). */
  watch(s: Sock, side: Side, label: string, opts: { data?: 'text' | 'count' } = {}): void {
    let bytes = 0;
    let text = '';
    s.on('connect', () => this.push(side, `${label} connect`));
    s.on('ready', () => this.push(side, `${label} ready`));
    if (opts.data !== undefined) {
      s.on('data', (d: Buffer) => { bytes += d.length; if (opts.data === 'text') text += d.toString(); });
    }
    s.on('end', () => this.push(side, `${label} end${opts.data === 'text' ? ` data='${text}'` : opts.data === 'count' ? ` bytes=${bytes}` : ''}`));
    s.on('finish', () => this.push(side, `${label} finish`));
    s.on('timeout', () => this.push(side, `${label} timeout`));
    s.on('error', (e) => this.push(side, `${label} error ${this.err(e)}`));
    s.on('close', (hadError: boolean) => this.push(side, `${label} close hadError=${hadError}`));
  }

  watchServer(srv: Server, label = 'server'): void {
    srv.on('listening', () => this.push('s', `${label} listening`));
    srv.on('error', (e) => this.push('s', `${label} error ${this.err(e)}`));
    srv.on('close', () => this.push('s', `${label} close`));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listening(srv: Server, host: string, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => { srv.removeListener('error', reject); resolve(); });
  });
  return (srv.address() as nodeNet.AddressInfo).port;
}

/** A port nothing listens on: a server's ephemeral port, after that server closed. */
async function closedPort(env: Env): Promise<number> {
  const srv = env.createServer();
  const port = await listening(srv, env.host);
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

type Scenario = (env: Env, rec: Recorder) => Promise<void>;

/** 127.0.0.1 as a name the Recorder leaves alone (it is the kernel environment's SRV). */
const lo = (a: string | undefined) => (a === '127.0.0.1' ? 'LOOPBACK' : String(a));

const scenarios: Record<string, Scenario> = {
  async 'the host reaching itself: a server on 127.0.0.1 and a client to localhost, both ends named 127.0.0.1 (lo0 on tstack)'(env, rec) {
    const srv = env.createServer((s) => {
      rec.watch(s, 's', 'conn', { data: 'text' });
      rec.push('s', `conn remote=${lo(s.remoteAddress)} family=${s.remoteFamily} local=${lo(s.localAddress)}`);
      s.end('pong');
    });
    rec.watchServer(srv);
    const port = await listening(srv, '127.0.0.1');
    rec.port(port, 'PORT');
    const a = srv.address() as nodeNet.AddressInfo;
    rec.push('s', `address=${lo(a.address)} ${a.family}`);
    const c = env.connectLocal({ host: 'localhost', port });
    rec.watch(c, 'c', 'c', { data: 'text' });
    c.on('connect', () => rec.push('c', `c remote=${lo(c.remoteAddress)}:${c.remotePort} local=${lo(c.localAddress)}`));
    c.end('ping');
    await rec.until('c', 'close');
    await rec.until('s', 'conn close');
    await new Promise<void>((r) => srv.close(() => r()));
  },
  async 'connect to a closed port: error connect ECONNREFUSED with address and port, then close(true)'(env, rec) {
    const port = await closedPort(env);
    rec.port(port, 'PORT');
    const c = env.connect({ host: env.host, port });
    rec.watch(c, 'c', 'c');
    rec.push('c', `pending=${c.pending} connecting=${c.connecting} readyState=${c.readyState}`);
    await rec.until('c', 'close');
    rec.push('c', `destroyed=${c.destroyed} readyState=${c.readyState}`);
  },

  async 'connect, write, end: the server echoes and both sides see end then close(false)'(env, rec) {
    const srv = env.createServer((s) => {
      rec.watch(s, 's', 's', { data: 'text' });
      rec.push('s', `connection remote=${s.remoteAddress} family=${s.remoteFamily}`);
      s.pipe(s);
    });
    rec.watchServer(srv);
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port }, () => rec.push('c', 'connect-cb'));
    rec.watch(c, 'c', 'c', { data: 'text' });
    c.on('connect', () => {
      rec.push('c', `addresses local=${c.localAddress} remote=${c.remoteAddress}:${c.remotePort} ${c.remoteFamily} readyState=${c.readyState}`);
      rec.push('c', `write -> ${c.write('hello ')}`);
      c.end('world');
    });
    await rec.until('c', 'close');
    await rec.until('s', 's close');
    rec.push('c', `bytesRead=${c.bytesRead} bytesWritten=${c.bytesWritten} readyState=${c.readyState} address()=${JSON.stringify(c.address())} local=${c.localAddress} remote=${c.remoteAddress}`);
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'reset by peer: the server resetAndDestroy()s, the client sees error read ECONNRESET then close(true)'(env, rec) {
    const srv = env.createServer((s) => {
      rec.watch(s, 's', 's');
      s.once('data', (d) => { rec.push('s', `data '${d}'`); s.resetAndDestroy(); });
    });
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port });
    rec.watch(c, 'c', 'c');
    c.on('connect', () => c.write('hi'));
    await rec.until('c', 'close');
    await rec.until('s', 'close');
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'half-close with allowHalfOpen: the client ends, the server still writes, the client reads it'(env, rec) {
    const srv = env.createServer({ allowHalfOpen: true }, (s) => {
      rec.watch(s, 's', 's', { data: 'text' });
      s.on('end', () => {
        rec.push('s', `after end: writable=${s.writable} readyState=${s.readyState}`);
        s.write('still ');
        setTimeout(() => s.end('here'), 30);
      });
    });
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port, allowHalfOpen: true });
    rec.watch(c, 'c', 'c', { data: 'text' });
    c.on('connect', () => c.end('ping'));
    c.on('finish', () => rec.push('c', `after finish: readable=${c.readable} writable=${c.writable} readyState=${c.readyState}`));
    c.on('end', () => c.end());
    await rec.until('c', 'close');
    await rec.until('s', 'close');
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'half-close without allowHalfOpen: the end is answered by an end, writes are refused after it'(env, rec) {
    const srv = env.createServer((s) => {
      rec.watch(s, 's', 's', { data: 'text' });
      s.on('end', () => {
        rec.push('s', `after end: writableEnded=${s.writableEnded} readyState=${s.readyState}`);
        setImmediate(() => {
          rec.push('s', `later: writableEnded=${s.writableEnded}`);
          rec.push('s', `write after end -> ${s.write('late', (e) => rec.push('s', `write-cb ${e ? rec.err(e) : 'ok'}`))}`);
        });
      });
    });
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port });
    rec.watch(c, 'c', 'c', { data: 'text' });
    c.on('connect', () => c.end('ping'));
    await rec.until('c', 'close');
    await rec.until('s', 'close');
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'backpressure: write() returns false while the server is paused, drain follows, every byte arrives'(env, rec) {
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    let resumeTimer: ReturnType<typeof setTimeout> | undefined;
    const srv = env.createServer({ pauseOnConnect: true }, (s) => {
      rec.watch(s, 's', 's', { data: 'count' });
      rec.push('s', `connection isPaused=${s.isPaused()}`);
      resumeTimer = setTimeout(() => { rec.push('s', 'resume'); s.resume(); }, 150);
    });
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port });
    rec.watch(c, 'c', 'c');
    let written = 0;
    let writes = 0;
    c.on('connect', () => {
      // Small writes until the stream says stop: the kernel (or tstack) buffers, the peer's
      // receive window and the stream's highWaterMark are all full by then.
      for (;;) {
        writes++;
        written += chunk.length;
        if (!c.write(chunk)) break;
        if (written > 64 * 1024 * 1024) { rec.push('c', 'write never returned false'); break; }
      }
      rec.push('c', `write -> false (writableLength>0: ${c.writableLength > 0}, writableNeedDrain=${c.writableNeedDrain})`);
      c.once('drain', () => {
        rec.push('c', `drain writableLength=${c.writableLength}`);
        c.end();
      });
    });
    await rec.until('s', 's close', 20000);
    await rec.until('c', 'close');
    clearTimeout(resumeTimer);
    assert.ok(writes > 1, `${env.name}: more than one write was accepted before backpressure (${writes})`);
    const end = rec.sides.s.find((e) => e.startsWith('s end'));
    assert.equal(end, `s end bytes=${written}`, `${env.name}: every byte written arrived (${written})`);
    rec.sides.s[rec.sides.s.indexOf(end!)] = 's end bytes=ALL';
    rec.push('c', `bytesWritten matches: ${c.bytesWritten === written}`);
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'idle timeout: setTimeout fires timeout once and leaves the socket open'(env, rec) {
    const srv = env.createServer((s) => { rec.watch(s, 's', 's', { data: 'text' }); });
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port });
    rec.watch(c, 'c', 'c');
    const t0 = performance.now();
    let firedAfter = 0;
    c.setTimeout(100, () => { firedAfter = performance.now() - t0; rec.push('c', 'timeout-cb'); });
    rec.push('c', `timeout=${c.timeout}`);
    await rec.until('c', 'timeout-cb');
    await sleep(250);
    rec.push('c', `still open: destroyed=${c.destroyed} readyState=${c.readyState}`);
    c.setTimeout(0);
    c.end('bye');
    await rec.until('c', 'close');
    await rec.until('s', 'close');
    assert.ok(firedAfter >= 95, `${env.name}: timeout fired after ${firedAfter} ms`);
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'EADDRINUSE: a second listen on the same port emits error listen EADDRINUSE'(env, rec) {
    const a = env.createServer();
    const b = env.createServer();
    rec.watchServer(b, 'second');
    const port = await listening(a, env.host);
    rec.port(port, 'PORT');
    b.listen(port, env.host, () => rec.push('s', 'second listen-cb'));
    rec.push('s', `after listen(): listening=${b.listening}`);
    await rec.until('s', 'second error');
    rec.push('s', `listening=${b.listening} address=${JSON.stringify(b.address())}`);
    b.close((e) => rec.push('s', `second close-cb ${e ? rec.err(e) : 'ok'}`));
    await rec.until('s', 'close-cb');
    await new Promise<void>((r) => a.close(() => r()));
  },

  async 'server.close() waits for open connections: close only after the last one ends'(env, rec) {
    const srv = env.createServer((s) => {
      rec.watch(s, 's', 's');
      rec.push('s', 'connection');
      srv.close((e) => rec.push('s', `close-cb ${e ? rec.err(e) : 'ok'}`));
      rec.push('s', `close() called: listening=${srv.listening}`);
      srv.getConnections((e, n) => rec.push('s', `getConnections ${e} ${n}`));
    });
    rec.watchServer(srv);
    const port = await listening(srv, env.host);
    rec.port(port, 'PORT');
    const c = env.connect({ host: env.host, port });
    rec.watch(c, 'c', 'c');
    await rec.until('s', 'getConnections');
    await sleep(100);
    rec.push('s', 'client ends now');
    c.end();
    await rec.until('s', 'close-cb');
    await rec.until('c', 'close');
    // A closed server refuses new connections.
    const c2 = env.connect({ host: env.host, port });
    rec.watch(c2, 'c', 'c2');
    await rec.until('c', 'c2 close');
  },

  async 'destroy(err): error then close(true) on our side, a plain end at the peer'(env, rec) {
    const srv = env.createServer((s) => { rec.watch(s, 's', 's'); s.resume(); });
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port });
    rec.watch(c, 'c', 'c');
    c.on('connect', () => {
      c.destroy(new Error('boom'));
      rec.push('c', `after destroy: destroyed=${c.destroyed} readyState=${c.readyState}`);
    });
    await rec.until('c', 'close');
    await rec.until('s', 'close');
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'destroy() right after connect(): close(false), no connect, nothing reaches the server'(env, rec) {
    const srv = env.createServer(() => rec.push('s', 'connection'));
    const port = await listening(srv, env.host);
    rec.port(port, 'PORT');
    const c = env.connect({ host: env.host, port });
    rec.watch(c, 'c', 'c');
    c.destroy();
    rec.push('c', `after destroy: connecting=${c.connecting} pending=${c.pending} readyState=${c.readyState}`);
    await rec.until('c', 'close');
    await sleep(50);
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'write and end before the connection is up: the data and the FIN follow the handshake'(env, rec) {
    const srv = env.createServer((s) => { rec.watch(s, 's', 's', { data: 'text' }); });
    rec.port(await listening(srv, env.host), 'PORT');
    const c = env.connect({ host: env.host, port: (srv.address() as nodeNet.AddressInfo).port });
    rec.watch(c, 'c', 'c', { data: 'text' });
    rec.push('c', `write -> ${c.write('early ', () => rec.push('c', 'write-cb'))}`);
    c.end('bird');
    rec.push('c', `readyState=${c.readyState} writableLength=${c.writableLength} bytesWritten=${c.bytesWritten}`);
    await rec.until('c', 'close');
    await rec.until('s', 'close');
    rec.push('c', `bytesWritten=${c.bytesWritten}`);
    await new Promise<void>((r) => srv.close(() => r()));
  },

  async 'listen forms: listen(0) with a callback, address(), a second listen() throws, close() twice'(env, rec) {
    const srv = env.createServer();
    rec.watchServer(srv);
    srv.listen({ port: 0, host: env.host }, () => rec.push('s', 'listen-cb'));
    rec.push('s', `sync: listening=${srv.listening}`);
    await rec.until('s', 'listen-cb');
    const a = srv.address() as nodeNet.AddressInfo;
    rec.port(a.port, 'PORT');
    rec.push('s', `address ${a.address} ${a.family} ${a.port}`);
    try { srv.listen(0, env.host); rec.push('s', 'second listen ok'); } catch (e) { rec.push('s', `second listen throws ${rec.err(e)}`); }
    srv.close(() => rec.push('s', 'close-cb 1'));
    srv.close((e) => rec.push('s', `close-cb 2 ${e ? rec.err(e) : 'ok'}`));
    await rec.until('s', 'close-cb 2');
    await rec.until('s', 'close-cb 1');
    rec.push('s', `after close: address=${srv.address()} listening=${srv.listening}`);
  },
};

// ---- the two environments -----------------------------------------------------------------

const kernel: Env = {
  name: 'kernel',
  host: '127.0.0.1',
  // Clients bind a second loopback address so the two ends print differently, as on tstack.
  clientHost: '127.0.0.2',
  createServer: (o, l) => typeof o === 'function' ? nodeNet.createServer(o) : nodeNet.createServer(o ?? {}, l),
  connect: (o, cb) => nodeNet.connect({ localAddress: '127.0.0.2', ...o } as nodeNet.NetConnectOpts, cb),
  connectLocal: (o, cb) => nodeNet.connect(o, cb),
};

let instC: Instance;
let instS: Instance;

function instance(wire: MemoryWire, addr: string): Instance {
  return startInstance(parseConfig(`[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\naddr = "${addr}"\n`, 'net-compat.toml'), { memoryWire: wire });
}

const tstack: Env = {
  name: 'tstack',
  host: '198.18.30.2',
  clientHost: '198.18.30.1',
  createServer: (o, l) => (typeof o === 'function'
    ? tstackNet.createServer({ stack: instS }, o as unknown as (s: tstackNet.Socket) => void)
    : tstackNet.createServer({ ...o, stack: instS }, l as unknown as (s: tstackNet.Socket) => void)) as unknown as Server,
  connect: (o, cb) => tstackNet.connect({ ...o, stack: instC } as tstackNet.TcpSocketConnectOpts, cb) as unknown as Sock,
  connectLocal: (o, cb) => tstackNet.connect({ ...o, stack: instS } as tstackNet.TcpSocketConnectOpts, cb) as unknown as Sock,
};

let wire: MemoryWire;
before(() => {
  wire = new MemoryWire({ clock: realClock });
  instC = instance(wire, '198.18.30.1/24');
  instS = instance(wire, '198.18.30.2/24');
});
after(() => { instC.stop(); instS.stop(); });

describe('net scenarios: node:net on kernel sockets and tstack/net record the same events', () => {
  for (const [name, run] of Object.entries(scenarios)) {
    test(name, async () => {
      const r: { kernel?: Record<Side, string[]>; tstack?: Record<Side, string[]> } = {};
      for (const env of [kernel, tstack]) {
        if (process.env['NET_COMPAT_ONLY'] && process.env['NET_COMPAT_ONLY'] !== env.name) continue;
        const rec = new Recorder(env);
        await run(env, rec);
        r[env.name as 'kernel' | 'tstack'] = rec.sides;
        if (process.env['NET_COMPAT_PRINT']) console.log(JSON.stringify({ env: env.name, name, sides: rec.sides }));
      }
      if (process.env['NET_COMPAT_ONLY']) return;
      assert.ok(r.kernel!.c.length + r.kernel!.s.length > 0, 'the scenario recorded something');
      assert.deepEqual(r.tstack!.c, r.kernel!.c, `client side, tstack (actual) vs kernel (expected):\n${r.tstack!.c.join('\n')}`);
      assert.deepEqual(r.tstack!.s, r.kernel!.s, `server side, tstack (actual) vs kernel (expected):\n${r.tstack!.s.join('\n')}`);
      if (expected[name]) assert.deepEqual(r.kernel, expected[name]);
    });
  }
});

// What the suite must see on both sides for the key scenarios (filled from Node 20 on Linux):
// guards against two equal but wrong recordings.
const expected: Record<string, Record<Side, string[]>> = {
  'connect to a closed port: error connect ECONNREFUSED with address and port, then close(true)': {
    c: [
      'pending=true connecting=true readyState=opening',
      'c error ECONNREFUSED -111 connect SRV PORT | connect ECONNREFUSED SRV:PORT',
      'c close hadError=true',
      'destroyed=true readyState=closed',
    ],
    s: [],
  },
  'connect, write, end: the server echoes and both sides see end then close(false)': {
    c: [
      'connect-cb',
      'c connect',
      'addresses local=CLI remote=SRV:PORT IPv4 readyState=open',
      'write -> true',
      'c ready',
      'c finish',
      'c end data=\'hello world\'',
      'c close hadError=false',
      'bytesRead=11 bytesWritten=11 readyState=closed address()={} local=undefined remote=SRV',
    ],
    s: [
      'server listening',
      'connection remote=CLI family=IPv4',
      's end data=\'hello world\'',
      's finish',
      's close hadError=false',
      'server close',
    ],
  },
  'reset by peer: the server resetAndDestroy()s, the client sees error read ECONNRESET then close(true)': {
    c: [
      'c connect',
      'c ready',
      'c error ECONNRESET -104 read - - | read ECONNRESET',
      'c close hadError=true',
    ],
    s: [
      'data \'hi\'',
      's close hadError=false',
    ],
  },
  'half-close with allowHalfOpen: the client ends, the server still writes, the client reads it': {
    c: [
      'c connect',
      'c ready',
      'c finish',
      'after finish: readable=true writable=false readyState=readOnly',
      'c end data=\'still here\'',
      'c close hadError=false',
    ],
    s: [
      's end data=\'ping\'',
      'after end: writable=true readyState=writeOnly',
      's finish',
      's close hadError=false',
    ],
  },
  'half-close without allowHalfOpen: the end is answered by an end, writes are refused after it': {
    c: [
      'c connect',
      'c ready',
      'c finish',
      'c end data=\'\'',
      'c close hadError=false',
    ],
    s: [
      's end data=\'ping\'',
      'after end: writableEnded=false readyState=writeOnly',
      's finish',
      'later: writableEnded=true',
      'write after end -> false',
      'write-cb EPIPE - - - - | This socket has been ended by the other party',
      's close hadError=false',
    ],
  },
  'backpressure: write() returns false while the server is paused, drain follows, every byte arrives': {
    c: [
      'c connect',
      'write -> false (writableLength>0: true, writableNeedDrain=true)',
      'c ready',
      'drain writableLength=0',
      'c finish',
      'c end',
      'c close hadError=false',
      'bytesWritten matches: true',
    ],
    s: [
      'connection isPaused=true',
      'resume',
      's end bytes=ALL',
      's finish',
      's close hadError=false',
    ],
  },
  'idle timeout: setTimeout fires timeout once and leaves the socket open': {
    c: [
      'timeout=100',
      'c connect',
      'c ready',
      'c timeout',
      'timeout-cb',
      'still open: destroyed=false readyState=open',
      'c finish',
      'c end',
      'c close hadError=false',
    ],
    s: [
      's end data=\'bye\'',
      's finish',
      's close hadError=false',
    ],
  },
  'EADDRINUSE: a second listen on the same port emits error listen EADDRINUSE': {
    c: [],
    s: [
      'after listen(): listening=false',
      'second error EADDRINUSE -98 listen SRV PORT | listen EADDRINUSE: address already in use SRV:PORT',
      'listening=false address=null',
      'second close',
      'second close-cb ERR_SERVER_NOT_RUNNING - - - - | Server is not running.',
    ],
  },
  'server.close() waits for open connections: close only after the last one ends': {
    c: [
      'c connect',
      'c ready',
      'c finish',
      'c end',
      'c close hadError=false',
      'c2 error ECONNREFUSED -111 connect SRV PORT | connect ECONNREFUSED SRV:PORT',
      'c2 close hadError=true',
    ],
    s: [
      'server listening',
      'connection',
      'close() called: listening=false',
      'getConnections null 1',
      'client ends now',
      's end',
      's finish',
      'server close',
      'close-cb ok',
      's close hadError=false',
    ],
  },
  'destroy(err): error then close(true) on our side, a plain end at the peer': {
    c: [
      'c connect',
      'after destroy: destroyed=true readyState=closed',
      'c ready',
      'c error - - - - - | boom',
      'c close hadError=true',
    ],
    s: [
      's end',
      's finish',
      's close hadError=false',
    ],
  },
  'destroy() right after connect(): close(false), no connect, nothing reaches the server': {
    c: [
      'after destroy: connecting=false pending=true readyState=closed',
      'c close hadError=false',
    ],
    s: [],
  },
  'write and end before the connection is up: the data and the FIN follow the handshake': {
    c: [
      'write -> true',
      'readyState=opening writableLength=10 bytesWritten=10',
      'c connect',
      'write-cb',
      'c ready',
      'c finish',
      'c end data=\'\'',
      'c close hadError=false',
      'bytesWritten=10',
    ],
    s: [
      's end data=\'early bird\'',
      's finish',
      's close hadError=false',
    ],
  },
  'listen forms: listen(0) with a callback, address(), a second listen() throws, close() twice': {
    c: [],
    s: [
      'sync: listening=false',
      'server listening',
      'listen-cb',
      'address SRV IPv4 PORT',
      'second listen throws ERR_SERVER_ALREADY_LISTEN - - - - | Listen method has been called more than once without closing.',
      'server close',
      'close-cb 1',
      'close-cb 2 ERR_SERVER_NOT_RUNNING - - - - | Server is not running.',
      'server close',
      'after close: address=null listening=false',
    ],
  },
};

// ---- tstack only: what the kernel comparison cannot show ------------------------------------

const SRV = '198.18.30.2';

function tServer(opts: tstackNet.ServerOpts = {}, l?: (s: tstackNet.Socket) => void): tstackNet.Server {
  return tstackNet.createServer({ ...opts, stack: instS }, l);
}
function tConnect(opts: Partial<tstackNet.TcpSocketConnectOpts> & { port: number }, cb?: () => void): tstackNet.Socket {
  return tstackNet.connect({ host: SRV, ...opts, stack: instC }, cb);
}
async function tListen(srv: tstackNet.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(port, SRV, () => resolve()); });
  return srv.address()!.port;
}
const closeServer = (srv: tstackNet.Server) => new Promise<void>((r) => srv.close(() => r()));
const closed = (s: tstackNet.Socket) => new Promise<boolean>((r) => s.once('close', r));
/** The engine's connection for a local port on a stack (white-box, for window checks). */
const tcbOf = (inst: Instance, lport: number) => inst.stack.tcp.connections().find((t) => t.lport === lport);

describe('tstack/net beyond the comparison', () => {
  test('node:http serves requests through tstack/net in both directions (http.Server on accepted sockets, http.request over connect())', async () => {
    const big = Buffer.alloc(300 * 1024, 0x62);
    const httpServer = http.createServer((req, res) => {
      let n = 0;
      req.on('data', (d: Buffer) => { n += d.length; });
      req.on('end', () => {
        res.setHeader('content-type', 'text/plain');
        res.end(`${req.method} ${req.url} got ${n} from ${req.socket.remoteAddress}\n${req.url === '/big' ? big.toString() : ''}`);
      });
    });
    const srv = tServer({}, (sock) => httpServer.emit('connection', sock));
    const port = await tListen(srv);
    const get = (method: string, path: string, body: Buffer | string) => new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = http.request({
        method, path, host: SRV, port,
        createConnection: () => tConnect({ port }) as unknown as nodeNet.Socket,
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    const a = await get('POST', '/echo', 'hello http');
    assert.equal(a.status, 200);
    assert.equal(a.headers['content-type'], 'text/plain');
    assert.equal(a.body, 'POST /echo got 10 from 198.18.30.1\n');
    // A body bigger than every buffer on the way, in both directions.
    const b = await get('PUT', '/big', big);
    assert.equal(b.status, 200);
    assert.equal(b.body, `PUT /big got ${big.length} from 198.18.30.1\n${big.toString()}`);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv._connections, 0, 'the server-side sockets were closed after Connection: close');
    httpServer.close();
    await closeServer(srv);
  });

  test('node:tls runs over tstack/net sockets in both directions (TLS server on an accepted socket, tls.connect({ socket }))', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tstack-net-tls-'));
    try {
      try {
        execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tstack.test',
          '-addext', 'subjectAltName=DNS:tstack.test', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      } catch {
        if (process.env['CI']) throw new Error('openssl is needed to make a test certificate');
        t.skip('needs openssl to make a test certificate');
        return;
      }
      const key = readFileSync(join(dir, 'key.pem'));
      const cert = readFileSync(join(dir, 'cert.pem'));
      const tlsServer = tls.createServer({ key, cert }, (s) => {
        s.on('data', (d: Buffer) => s.write(`secure echo: ${d}`));
        s.on('end', () => s.end());
      });
      const srv = tServer({}, (sock) => tlsServer.emit('connection', sock));
      const port = await tListen(srv);
      const got = await new Promise<string>((resolve, reject) => {
        const c = tls.connect({ socket: tConnect({ port }) as unknown as nodeNet.Socket, ca: cert, servername: 'tstack.test' }, () => {
          assert.equal(c.authorized, true);
          c.end('hello');
        });
        let text = '';
        c.setEncoding('utf8');
        c.on('data', (d: string) => { text += d; });
        c.on('end', () => resolve(text));
        c.on('error', reject);
      });
      assert.equal(got, 'secure echo: hello');
      await new Promise((r) => setTimeout(r, 50));
      await closeServer(srv);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a paused reader stops pulling from the stack: the data waits in the engine and the writer sees backpressure', async () => {
    let server: tstackNet.Socket | undefined;
    const srv = tServer({}, (s) => { server = s; s.pause(); });
    const port = await tListen(srv);
    const c = tConnect({ port });
    await new Promise((r) => c.once('connect', r));
    const chunk = Buffer.alloc(64 * 1024);
    let total = 0;
    for (let i = 0; i < 32; i++) { c.write(chunk); total += chunk.length; } // 2 MiB
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(server, 'connection accepted');
    // The stream holds at most a highWaterMark and a read's worth; the rest stays in the stack.
    assert.ok(server.readableLength <= 16 * 1024 + 64 * 1024, `readableLength ${server.readableLength}`);
    const rcv = tcbOf(instS, port)!;
    assert.ok(rcv.rcvBuf.length > 100 * 1024, `the engine's receive buffer holds the unread bytes (${rcv.rcvBuf.length})`);
    assert.ok(c.writableLength > 0, 'the writer still has data queued in its stream');
    let got = 0;
    server.on('data', (d: Buffer) => { got += d.length; });
    const ended = new Promise((r) => server!.once('end', r));
    server.resume();
    c.end();
    await ended;
    assert.equal(got, total);
    await closeServer(srv);
  });

  test('a hostname goes through the lookup option and emits lookup(err, address, family, host) before connect', async () => {
    const srv = tServer({}, (s) => s.end());
    const port = await tListen(srv);
    const events: string[] = [];
    const c = tConnect({
      port, host: 'server.test',
      lookup: (host, opts, cb) => { events.push(`lookup-fn ${host} family=${opts.family}`); setImmediate(cb, null, SRV, 4); },
    });
    c.on('lookup', (err, ip, family, host) => events.push(`lookup ${err} ${ip} ${family} ${host}`));
    c.on('connect', () => events.push(`connect ${c.remoteAddress}:${c.remotePort === port}`));
    c.resume();
    await closed(c);
    assert.deepEqual(events, ['lookup-fn server.test family=4', `lookup null ${SRV} 4 server.test`, `connect ${SRV}:true`]);
    await closeServer(srv);
  });

  test('writes before the connection is up are sent once it is', async () => {
    let got = '';
    const srv = tServer({}, (s) => { s.setEncoding('utf8'); s.on('data', (d: string) => { got += d; }); });
    const port = await tListen(srv);
    const c = tConnect({ port });
    assert.equal(c.write('early '), true);
    c.end('bird');
    assert.equal(c.readyState, 'opening');
    c.resume();
    await closed(c);
    assert.equal(got, 'early bird');
    await closeServer(srv);
  });

  test('corked writes leave through _writev: small chunks in order, and chunks larger than the send buffer wait for room and arrive whole', async () => {
    const chunks: Buffer[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => { done = r; });
    const srv = tServer({}, (s) => { s.on('data', (d: Buffer) => chunks.push(d)); s.on('end', () => { s.end(); done(); }); });
    const port = await tListen(srv);
    const c = tConnect({ port });
    await new Promise((r) => c.once('connect', r));
    c.cork(); c.write('a'); c.write(Buffer.from('bc')); c.write('d', 'utf8'); c.uncork();
    // Three 1 MiB chunks at once: more than the send buffer holds (256 KiB to start).
    const big = [0, 1, 2].map((i) => Buffer.alloc(1 << 20, 0x30 + i));
    c.cork(); for (const b of big) c.write(b); c.uncork();
    c.end();
    c.resume();
    await all;
    await closed(c);
    const got = Buffer.concat(chunks);
    assert.equal(got.subarray(0, 4).toString(), 'abcd');
    assert.equal(got.length, 4 + 3 * (1 << 20));
    for (let i = 0; i < 3; i++) assert.ok(got.subarray(4 + i * (1 << 20), 4 + (i + 1) * (1 << 20)).every((x) => x === 0x30 + i), `chunk ${i} intact`);
    assert.equal(c.bytesWritten, 4 + 3 * (1 << 20));
    await closeServer(srv);
  });

  test('IPv6 without a route or address fails as on Linux (ENETUNREACH, EADDRNOTAVAIL); paths and descriptors are ERR_TSTACK_NOT_SUPPORTED', async () => {
    const c = tConnect({ port: 80, host: '2001:db8::1' });
    const err = await new Promise<NodeJS.ErrnoException>((r) => c.once('error', r));
    assert.equal(err.code, 'ENETUNREACH');
    assert.equal(err.syscall, 'connect');
    assert.match(err.message, /^connect ENETUNREACH 2001:db8::1:80/);
    const srv = tServer();
    const lerr = await new Promise<NodeJS.ErrnoException>((r) => { srv.once('error', r); srv.listen(80, '2001:db8::2'); });
    assert.equal(lerr.code, 'EADDRNOTAVAIL');
    assert.equal(lerr.syscall, 'listen');
    assert.equal(lerr.message, 'listen EADDRNOTAVAIL: address not available 2001:db8::2:80');
    assert.throws(() => tServer().listen('/tmp/sock'), { code: 'ERR_TSTACK_NOT_SUPPORTED' });
    assert.throws(() => new tstackNet.Socket({ fd: 3 }), { code: 'ERR_TSTACK_NOT_SUPPORTED' });
    assert.throws(() => tConnect({ port: 70000 }), { code: 'ERR_SOCKET_BAD_PORT' });
  });

  test('127.0.0.1 is the instance\'s lo0: a closed port is refused, a listener on it answers', async () => {
    const c = tConnect({ port: 80, host: '127.0.0.1' });
    const err = await new Promise<NodeJS.ErrnoException>((r) => c.once('error', r));
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.message, 'connect ECONNREFUSED 127.0.0.1:80');
    const srv = tstackNet.createServer({ stack: instC }, (s) => s.end(`lo0 ${s.remoteAddress}`));
    srv.listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const port = srv.address()!.port;
    const d = tConnect({ port, host: '127.0.0.1' });
    let b = '';
    d.setEncoding('utf8').on('data', (x: string) => { b += x; });
    await new Promise((r) => d.once('end', r));
    assert.equal(b, 'lo0 127.0.0.1');
    if (!d.destroyed) await new Promise((r) => d.once('close', r));
    await new Promise((r) => srv.close(r));
  });

  test('handle counts: an open or listening, ref\'d handle holds the stack; unref, destroy and close release it', async () => {
    const ctxC = resolveStack({ stack: instC });
    const ctxS = resolveStack({ stack: instS });
    const c0 = ctxC.refs, s0 = ctxS.refs;
    const srv = tServer({}, (s) => s.resume());
    const port = await tListen(srv);
    assert.equal(ctxS.refs, s0 + 1, 'listening server');
    srv.unref();
    assert.equal(ctxS.refs, s0);
    srv.ref();
    const c = tConnect({ port });
    assert.equal(ctxC.refs, c0 + 1, 'connecting socket');
    await new Promise((r) => c.once('connect', r));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(ctxS.refs, s0 + 2, 'listening server + accepted socket');
    c.unref();
    assert.equal(ctxC.refs, c0);
    c.ref();
    assert.equal(ctxC.refs, c0 + 1);
    c.destroy();
    assert.equal(ctxC.refs, c0);
    await closeServer(srv);
    assert.equal(ctxS.refs, s0);
  });

  test('setNoDelay and setKeepAlive reach the engine (keepalive idle in whole seconds, as Node rounds it)', async () => {
    const srv = tServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 3000 }, (s) => s.resume());
    const port = await tListen(srv);
    const c = tConnect({ port, noDelay: true });
    await new Promise((r) => c.once('connect', r));
    await new Promise((r) => setTimeout(r, 20));
    const ct = tcbOf(instC, c.localPort!)!;
    const st = tcbOf(instS, port)!;
    assert.equal(ct.noDelay, true);
    assert.equal(st.noDelay, true, 'server noDelay option');
    assert.equal(st.keepalive, true, 'server keepAlive option');
    assert.equal(st.keepIdle, 3000);
    c.setNoDelay(false);
    assert.equal(ct.noDelay, false);
    c.setKeepAlive(true, 10_500);
    assert.equal(ct.keepalive, true);
    assert.equal(ct.keepIdle, 10_000);
    c.setKeepAlive(false);
    assert.equal(ct.keepalive, false);
    c.destroy();
    await closeServer(srv);
  });

  test('maxConnections: a connection beyond the limit is dropped with a drop event and the client sees it end', async () => {
    const drops: string[] = [];
    const srv = tServer({}, (s) => s.resume());
    srv.maxConnections = 1;
    srv.on('drop', (d: { remoteAddress: string; localPort: number }) => drops.push(`${d.remoteAddress} ${d.localPort}`));
    const port = await tListen(srv);
    const a = tConnect({ port });
    await new Promise((r) => a.once('connect', r));
    await new Promise((r) => setTimeout(r, 20));
    const b = tConnect({ port });
    b.resume();
    const ended = new Promise((r) => b.once('end', r));
    await ended;
    assert.deepEqual(drops, [`198.18.30.1 ${port}`]);
    a.destroy();
    b.destroy();
    await closeServer(srv);
  });

  test('an unanswered connect fails with connect ETIMEDOUT after the SYN retries', async () => {
    const s = instC.stack.sysctl;
    const saved = [s.int('net.inet.tcp.syn_retries'), s.int('net.inet.tcp.rexmit_initial')];
    s.set('net.inet.tcp.syn_retries', 1);
    s.set('net.inet.tcp.rexmit_initial', 50);
    try {
      // Nobody has this address on the wire: ARP goes unanswered, the SYN never leaves.
      const c = tConnect({ port: 80, host: '198.18.30.99' });
      const err = await new Promise<NodeJS.ErrnoException>((r) => c.once('error', r));
      assert.equal(err.code, 'ETIMEDOUT');
      assert.equal(err.syscall, 'connect');
      assert.equal(err.message, 'connect ETIMEDOUT 198.18.30.99:80');
      assert.equal(await closed(c), true);
    } finally {
      s.set('net.inet.tcp.syn_retries', saved[0]!);
      s.set('net.inet.tcp.rexmit_initial', saved[1]!);
    }
  });
});
