// tstack/net over IPv6, as Node behaves on a dual-stack Linux host: the default listen is `::`
// and takes IPv6 and IPv4 clients (the latter named ::ffff:a.b.c.d), ipv6Only refuses IPv4,
// IPv6 ends are named as Node prints them, ::1 reaches the program's own listeners over lo0,
// and an unrouted IPv6 destination fails as on Linux. Two instances on a memory wire.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tstackNet from '../../src/api/net.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';

let wire: MemoryWire;
let instC: Instance;
let instS: Instance;

function instance(addr: string, addr6: string): Instance {
  return startInstance(parseConfig(`[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\naddr = "${addr}"\naddr6 = "${addr6}"\n`, 'net-ipv6.toml'), { memoryWire: wire });
}

/** Resolves once DAD has made the address usable (an IPv6 address is tentative for about a second). */
async function preferred(inst: Instance, addr: string): Promise<void> {
  const t0 = Date.now();
  while (!inst.stack.ip6.addresses(1).some((a) => a.addr === addr && a.state === 'preferred')) {
    if (Date.now() - t0 > 20_000) throw new Error(`${addr} never became preferred`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  wire = new MemoryWire({ clock: realClock });
  instC = instance('198.18.31.1/24', '2001:db8:31::1/64');
  instS = instance('198.18.31.2/24', '2001:db8:31::2/64');
  await Promise.all([preferred(instC, '2001:db8:31::1'), preferred(instS, '2001:db8:31::2')]);
});
after(() => { instC.stop(); instS.stop(); });

function listen(opts: tstackNet.ListenOptions, onConn: (s: tstackNet.Socket) => void, inst = instS): Promise<tstackNet.Server> {
  const srv = tstackNet.createServer({ stack: inst }, onConn);
  return new Promise((resolve, reject) => { srv.once('error', reject); srv.listen(opts, () => resolve(srv)); });
}

/** Connects, collects what the server says, resolves at 'close' with the client's view of the names. */
function talk(opts: tstackNet.TcpSocketConnectOpts): Promise<{ text: string; local: string; localFamily: string; remote: string; remoteFamily: string }> {
  return new Promise((resolve, reject) => {
    const c = tstackNet.connect(opts);
    let text = '';
    let names = { local: '', localFamily: '', remote: '', remoteFamily: '' };
    c.on('connect', () => { names = { local: c.localAddress!, localFamily: c.localFamily!, remote: c.remoteAddress!, remoteFamily: c.remoteFamily! }; });
    c.setEncoding('utf8').on('data', (d: string) => { text += d; });
    c.on('error', reject);
    c.on('close', () => resolve({ text, ...names }));
  });
}

const close = (srv: tstackNet.Server) => new Promise((r) => srv.close(r));

test('the default listen is :: dual-stack: an IPv6 client is named by its IPv6 address, an IPv4 one as ::ffff:a.b.c.d', async () => {
  const srv = await listen({ port: 0 }, (s) => s.end(`${s.remoteAddress} ${s.remoteFamily} ${s.localAddress} ${s.localFamily}`));
  const a = srv.address() as tstackNet.AddressInfo;
  assert.equal(a.address, '::');
  assert.equal(a.family, 'IPv6');
  const v6 = await talk({ port: a.port, host: '2001:db8:31::2', stack: instC });
  assert.equal(v6.text, '2001:db8:31::1 IPv6 2001:db8:31::2 IPv6');
  assert.deepEqual([v6.local, v6.localFamily, v6.remote, v6.remoteFamily], ['2001:db8:31::1', 'IPv6', '2001:db8:31::2', 'IPv6']);
  const v4 = await talk({ port: a.port, host: '198.18.31.2', stack: instC });
  assert.equal(v4.text, '::ffff:198.18.31.1 IPv6 ::ffff:198.18.31.2 IPv6');
  assert.deepEqual([v4.local, v4.localFamily, v4.remote, v4.remoteFamily], ['198.18.31.1', 'IPv4', '198.18.31.2', 'IPv4']);
  await close(srv);
});

test('ipv6Only takes IPv6 clients and refuses IPv4 ones (ECONNREFUSED); a listen on one IPv6 address reports it', async () => {
  const srv = await listen({ port: 0, ipv6Only: true }, (s) => s.end('hi'));
  const port = (srv.address() as tstackNet.AddressInfo).port;
  assert.equal((await talk({ port, host: '2001:db8:31::2', stack: instC })).text, 'hi');
  await assert.rejects(talk({ port, host: '198.18.31.2', stack: instC }), (e: NodeJS.ErrnoException) =>
    e.code === 'ECONNREFUSED' && e.message === `connect ECONNREFUSED 198.18.31.2:${port}`);
  await close(srv);
  const one = await listen({ port: 0, host: '2001:db8:31::2' }, (s) => s.end('one'));
  assert.deepEqual(one.address(), { address: '2001:db8:31::2', family: 'IPv6', port: (one.address() as tstackNet.AddressInfo).port });
  await close(one);
});

test('[::1] reaches the program\'s own listener over lo0; a closed port there is refused', async () => {
  const srv = await listen({ port: 0, host: '::1' }, (s) => s.end(`lo0 ${s.remoteAddress}`), instC);
  const port = (srv.address() as tstackNet.AddressInfo).port;
  const r = await talk({ port, host: '::1', stack: instC });
  assert.equal(r.text, 'lo0 ::1');
  await close(srv);
  await assert.rejects(talk({ port, host: '::1', stack: instC }), (e: NodeJS.ErrnoException) =>
    e.code === 'ECONNREFUSED' && e.message === `connect ECONNREFUSED ::1:${port}`);
});

test('an IPv6 destination without a route fails with ENETUNREACH, as on Linux', async () => {
  await assert.rejects(talk({ port: 80, host: '2001:db8:99::1', stack: instC }), (e: NodeJS.ErrnoException) =>
    e.code === 'ENETUNREACH' && e.syscall === 'connect' && e.message === 'connect ENETUNREACH 2001:db8:99::1:80');
});

test('a listener on :: and one on 0.0.0.0 conflict on the same port (EADDRINUSE), as Linux with bindv6only=0', async () => {
  const srv = await listen({ port: 0 }, (s) => s.end());
  const port = (srv.address() as tstackNet.AddressInfo).port;
  await assert.rejects(listen({ port, host: '0.0.0.0' }, () => {}), (e: NodeJS.ErrnoException) =>
    e.code === 'EADDRINUSE' && e.message === `listen EADDRINUSE: address already in use 0.0.0.0:${port}`);
  await close(srv);
});
