// tstack/register's patches in one process, without privileges: stack A (198.18.31.2) is the
// one the patched node:net/node:dgram put sockets on; stack B (198.18.31.3), on the same
// memory wire, plays the network peer through tstack/net and tstack/dgram directly. Kernel
// sockets on 127.0.0.1 show what the policy leaves on the kernel.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as netNamed from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import dgram from 'node:dgram';
import { once } from 'node:events';
import * as tnet from '../../src/api/net.js';
import * as tdgram from '../../src/api/dgram.js';
import { StackTcpHandle } from '../../src/api/stack-handle.js';
import { installPatches, uninstallPatches, patchesInstalled } from '../../src/api/patch-node.js';
import { RoutingPolicy, type Placement } from '../../src/api/register-policy.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';

const A = '198.18.31.2';
const B = '198.18.31.3';

function instance(wire: MemoryWire, addr: string): Instance {
  return startInstance(parseConfig(`[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\naddr = "${addr}/24"\n`, 'register.toml'), { memoryWire: wire });
}

let wire: MemoryWire;
let instA: Instance;
let instB: Instance;
const decisions: string[] = [];
const original = { socketConnect: net.Socket.prototype.connect, getpeername: (net.Socket.prototype as unknown as { _getpeername: unknown })._getpeername, connect: net.connect, createServer: net.createServer, listen: net.Server.prototype.listen, agent: http.Agent.prototype.createConnection, tls: tls.connect, createSocket: dgram.createSocket };

/** Whether a net.Socket runs on the stack (its handle is a StackTcpHandle). */
function onStack(s: net.Socket): boolean {
  return (s as unknown as { _handle: unknown })._handle instanceof StackTcpHandle;
}

/** A kernel socket as another process of the host would have (Node's own Socket.connect). */
function kernelConnect(port: number, host: string): net.Socket {
  const c = new net.Socket();
  (original.socketConnect as (...a: unknown[]) => net.Socket).call(c, port, host);
  return c;
}

/** GET http://host:port/ through a tstack/net socket on stack B; resolves with the body. */
function getFromB(port: number, host = A): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: '/', createConnection: () => tnet.connect({ port, host, stack: instB }) as unknown as net.Socket }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('tstack/register patches (memory wire)', () => {
  before(() => {
    wire = new MemoryWire({ clock: realClock });
    instA = instance(wire, A);
    instB = instance(wire, B);
    installPatches({
      stack: instA,
      policy: new RoutingPolicy(instA.stack, { kernelFallback: 'auto' }),
      onDecision: (what: string, target: string, where: Placement) => { decisions.push(`${what} ${target} ${where}`); },
    });
  });

  after(() => {
    uninstallPatches();
    instA?.stop();
    instB?.stop();
  });

  test('an unmodified http.Server listens on the stack and serves a peer on the network', async () => {
    const server = http.createServer((req, res) => { res.end(`hello ${req.socket.remoteAddress}`); });
    server.listen(0);
    await once(server, 'listening');
    const a = server.address() as net.AddressInfo;
    // As on Node: no host means `::` (dual-stack), and IPv4 peers appear IPv4-mapped.
    assert.equal(a.address, '::');
    assert.equal(a.family, 'IPv6');
    assert.ok(a.port > 0);
    assert.equal(server.listening, true);
    assert.equal(await getFromB(a.port), `hello ::ffff:${B}`);
    await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    assert.equal(server.listening, false);
    assert.equal(server.address(), null);
  });

  test('ESM named imports of node:net see the patched connect', () => {
    assert.notEqual(net.connect, original.connect);
    assert.equal(netNamed.connect, net.connect);
    assert.equal(netNamed.createConnection, net.connect);
    // http.Agent keeps Node's own createConnection: it makes a net.Socket whose connect is patched.
    assert.equal(http.Agent.prototype.createConnection, original.agent);
    assert.notEqual(net.Socket.prototype.connect, original.socketConnect);
    assert.notEqual(tls.connect, original.tls);
  });

  test('a second listen on the same stack port fails with EADDRINUSE, as on Node', async () => {
    const s1 = net.createServer().listen(0);
    await once(s1, 'listening');
    const port = (s1.address() as net.AddressInfo).port;
    const s2 = net.createServer().listen(port);
    const [err] = await once(s2, 'error') as [NodeJS.ErrnoException];
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.syscall, 'listen');
    assert.equal(s2.listening, false);
    const closedErr = await new Promise<Error | undefined>((resolve) => s2.close(resolve));
    assert.equal((closedErr as NodeJS.ErrnoException | undefined)?.code, 'ERR_SERVER_NOT_RUNNING');
    await new Promise((resolve) => s1.close(resolve));
  });

  test('a net.Server\'s connection listener gets a tstack socket (not a net.Socket: TLS must not take it for one)', async () => {
    const got = new Promise<net.Socket>((resolve) => {
      const s = net.createServer((sock) => { resolve(sock); sock.end('bye'); });
      s.listen(0, () => {
        const port = (s.address() as net.AddressInfo).port;
        const c = tnet.connect({ port, host: A, stack: instB });
        c.resume();
        c.on('close', () => s.close());
      });
    });
    const sock = await got;
    assert.ok(sock instanceof tnet.Socket);
    assert.equal(sock instanceof net.Socket, false);
    assert.equal(sock.remoteAddress, `::ffff:${B}`);
    assert.equal(sock.remoteFamily, 'IPv6');
  });

  test('maxConnections set on the program\'s server drops the extra connection with a \'drop\' event', async () => {
    const server = net.createServer((sock) => { sock.on('error', () => {}); });
    server.maxConnections = 1;
    server.listen(0);
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const first = tnet.connect({ port, host: A, stack: instB });
    await once(first, 'connect');
    await once(server, 'connection');
    const dropped = once(server, 'drop');
    const second = tnet.connect({ port, host: A, stack: instB });
    second.on('error', () => {});
    second.resume();
    const [info] = await dropped as [{ remoteAddress: string; localPort: number }];
    assert.equal(info.remoteAddress, `::ffff:${B}`);
    assert.equal(info.localPort, port);
    await once(second, 'close');
    first.destroy();
    server.close();
  });

  test('outgoing: a routed destination goes through the stack, a loopback port no stack listener owns through the kernel', async () => {
    // The peer on stack B.
    const peer = tnet.createServer({ stack: instB }, (s) => { s.end(`from B to ${s.remoteAddress}`); });
    peer.listen(7001);
    await once(peer, 'listening');
    // A kernel server on loopback (the host's database, say): Node's own listen.
    const kernel = original.createServer((s) => { s.end(`from kernel to ${s.remoteAddress}`); });
    (original.listen as (...a: unknown[]) => unknown).call(kernel, 0, '127.0.0.1');
    await once(kernel, 'listening');
    const kport = (kernel.address() as net.AddressInfo).port;

    const read = (s: net.Socket) => new Promise<string>((resolve, reject) => {
      let b = '';
      s.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b)).on('error', reject);
    });
    const viaStack = net.connect(7001, B);
    // The program's own net.Socket, on a handle backed by the stack.
    assert.ok(viaStack instanceof net.Socket && onStack(viaStack), 'a net.Socket on the stack');
    assert.equal(await read(viaStack), `from B to ::ffff:${A}`); // B listens on "any": `::` as in Node
    const viaKernel = net.createConnection({ port: kport, host: '127.0.0.1' });
    assert.equal(onStack(viaKernel), false);
    assert.equal(await read(viaKernel), 'from kernel to 127.0.0.1');
    assert.ok(decisions.includes(`connect ${B}:7001 stack`), decisions.join('\n'));
    assert.ok(decisions.includes(`connect 127.0.0.1:${kport} kernel`), decisions.join('\n'));
    peer.close();
    kernel.close();
  });

  test('http.get through the patched Agent reaches a server on the stack\'s network', async () => {
    // The program's http.get (default Agent) goes to B's server through stack A.
    const bServer = tnet.createServer({ stack: instB }, (s) => { new http.Server((_req, res) => res.end('B says hi')).emit('connection', s); });
    bServer.listen(7002);
    await once(bServer, 'listening');
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`http://${B}:7002/`, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.equal(body, 'B says hi');
    bServer.close();
  });

  test('https: the program\'s https server and https.get (tls.connect) both run over the stack', async (t) => {
    // A throwaway certificate for both stack addresses.
    const dir = mkdtempSync(join(tmpdir(), 'tstack-register-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', '/CN=tstack-test', '-addext', `subjectAltName=IP:${A},IP:${B}`,
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    } catch {
      if (process.env.CI) throw new Error('openssl is needed to make a test certificate');
      t.skip('needs openssl to make a test certificate');
      return;
    }
    const key = readFileSync(join(dir, 'key.pem'));
    const cert = readFileSync(join(dir, 'cert.pem'));

    // The program's https server (tls.Server inherits the patched net.Server.listen) …
    const server = https.createServer({ key, cert }, (req, res) => res.end(`secure hello ${req.socket.remoteAddress}`));
    server.listen(0);
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    // … reached from B with TLS over a tstack/net socket.
    const fromB = await new Promise<string>((resolve, reject) => {
      const raw = tnet.connect({ port, host: A, stack: instB }) as unknown as net.Socket;
      const c = original.tls({ socket: raw, ca: cert, servername: undefined as unknown as string, checkServerIdentity: () => undefined });
      c.on('secureConnect', () => c.end(`GET / HTTP/1.1\r\nHost: ${A}\r\nConnection: close\r\n\r\n`));
      let b = '';
      c.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b)).on('error', reject);
    });
    // remoteAddress through TLS comes from the tstack socket underneath (Node has none for a Duplex).
    assert.match(fromB, /^HTTP\/1\.1 200 OK\r\n[\s\S]*secure hello ::ffff:198\.18\.31\.3$/);

    // B's TLS server, reached by the program's https.get (https.Agent -> tls.connect, patched).
    const bTls = tls.createServer({ key, cert });
    const bHttps = new http.Server((_req, res) => res.end('B over TLS'));
    bTls.on('secureConnection', (s) => bHttps.emit('connection', s));
    const bServer = tnet.createServer({ stack: instB }, (s) => { bTls.emit('connection', s); });
    bServer.listen(7443);
    await once(bServer, 'listening');
    const body = await new Promise<string>((resolve, reject) => {
      https.get(`https://${B}:7443/`, { ca: cert }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.equal(body, 'B over TLS');
    assert.ok(decisions.includes(`tls.connect ${B}:7443 stack`), decisions.join('\n'));

    // pg's way: a net.Socket of its own, connected, then upgraded with tls.connect({ socket }).
    const viaOwnSocket = await new Promise<string>((resolve, reject) => {
      const raw = new net.Socket();
      raw.connect(7443, B);
      const c = tls.connect({ socket: raw, ca: cert, checkServerIdentity: () => undefined });
      c.on('secureConnect', () => c.end(`GET / HTTP/1.1\r\nHost: ${B}\r\nConnection: close\r\n\r\n`));
      let b = '';
      c.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b)).on('error', reject);
    });
    assert.match(viaOwnSocket, /B over TLS$/);
    assert.ok(decisions.includes(`socket.connect ${B}:7443 stack`), decisions.join('\n'));

    // The program's https server from the host's loopback, through the kernel mirror.
    const fromHost = await new Promise<string>((resolve, reject) => {
      const c = original.tls({ port, host: '127.0.0.1', ca: cert, checkServerIdentity: () => undefined });
      c.on('secureConnect', () => c.end(`GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`));
      let b = '';
      c.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b)).on('error', reject);
    });
    assert.match(fromHost, /secure hello ::ffff:127\.0\.0\.1$/);

    // A host name with the program's own lookup (https, wss and undici take one): the stack
    // dials the address that lookup gives. (A name goes to the stack once the policy routes
    // names there: "loopback" here, a gateway in a real configuration.)
    installPatches({ stack: instA, policy: new RoutingPolicy(instA.stack, { kernelFallback: 'loopback' }) });
    const looked: string[] = [];
    try {
      const viaName = await new Promise<string>((resolve, reject) => {
        const lookup = (host: string, _o: unknown, cb: (e: Error | null, a: string, f: number) => void) => { looked.push(host); cb(null, B, 4); };
        https.get('https://b.tstack.test:7443/', { ca: cert, checkServerIdentity: () => undefined, lookup } as https.RequestOptions, (res) => {
          let b = '';
          res.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b));
        }).on('error', reject);
      });
      assert.equal(viaName, 'B over TLS');
      assert.deepEqual(looked, ['b.tstack.test']);
    } finally {
      installPatches({
        stack: instA,
        policy: new RoutingPolicy(instA.stack, { kernelFallback: 'auto' }),
        onDecision: (what: string, target: string, where: Placement) => { decisions.push(`${what} ${target} ${where}`); },
      });
    }
    bServer.close();
    server.close();
    server.closeAllConnections();
  });

  test('listening on 127.0.0.1 is on the stack\'s lo0, and the host reaches it through the kernel mirror', async () => {
    const s = net.createServer((sock) => sock.end(`hello ${sock.remoteAddress} on ${sock instanceof tnet.Socket ? 'stack' : 'kernel'}`));
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as net.AddressInfo).port;
    assert.deepEqual(s.address(), { address: '127.0.0.1', family: 'IPv4', port });
    assert.ok(decisions.includes(`listen 127.0.0.1:0 stack`), decisions.join('\n'));
    const read = (c: net.Socket) => new Promise<string>((resolve) => {
      let b = '';
      c.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b));
    });
    // Another process of the host (here: a kernel socket) …
    assert.equal(await read(kernelConnect(port, '127.0.0.1')), 'hello 127.0.0.1 on kernel');
    // … and the program itself, inside the stack over lo0.
    const own = net.connect(port, '127.0.0.1');
    assert.ok(onStack(own));
    assert.equal(await read(own), 'hello 127.0.0.1 on stack');
    await new Promise((resolve) => s.close(resolve));
  });

  test('same-host reach: one server to the program — one listening, connections from both sides, close() closes both', async () => {
    const seen: string[] = [];
    let listenings = 0;
    const s = net.createServer((sock) => { seen.push(sock instanceof tnet.Socket ? 'stack' : 'kernel'); sock.end('x'); });
    s.on('listening', () => listenings++);
    s.listen(0);
    await once(s, 'listening');
    const { port } = s.address() as net.AddressInfo;
    assert.deepEqual(s.address(), { address: '::', family: 'IPv6', port });
    const ended = (c: net.Socket) => new Promise<void>((resolve, reject) => { c.on('error', reject); c.resume().on('end', resolve); });
    await ended(kernelConnect(port, '127.0.0.1'));
    await ended(net.connect(port));
    assert.deepEqual(seen.sort(), ['kernel', 'stack']);
    let count = -1;
    s.getConnections((_e, n) => { count = n; });
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(count >= 0);
    const closed = once(s, 'close');
    s.close();
    await closed;
    assert.equal(listenings, 1);
    assert.equal(s.listening, false);
    const refused = kernelConnect(port, '127.0.0.1');
    const [err] = await once(refused, 'error') as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('same-host reach: a port the host\'s kernel already holds is not mirrored; the stack listener still serves', async () => {
    const holder = original.createServer((c) => c.end('holder'));
    (original.listen as (...a: unknown[]) => unknown).call(holder, 0, '127.0.0.1');
    await once(holder, 'listening');
    const { port } = holder.address() as net.AddressInfo;
    const s = net.createServer((c) => c.end('stack'));
    let errors = 0;
    s.on('error', () => { errors++; });
    s.listen(port);
    await once(s, 'listening');
    assert.equal((s.address() as net.AddressInfo).port, port);
    // The host's loopback still reaches the process that holds the port there.
    const viaHost = kernelConnect(port, '127.0.0.1');
    let got = '';
    viaHost.setEncoding('utf8').on('data', (d: string) => { got += d; });
    await once(viaHost, 'end');
    assert.equal(got, 'holder');
    await new Promise((resolve) => s.close(resolve));
    await new Promise((resolve) => holder.close(resolve));
    assert.equal(errors, 0);
  });

  test('new net.Socket().connect() to a routed destination runs on the stack, as the program\'s own net.Socket', async () => {
    const peer = tnet.createServer({ stack: instB }, (c) => { c.end(`B sees ${c.remoteAddress}`); });
    peer.listen(7004);
    await once(peer, 'listening');
    const sock = new net.Socket();
    assert.equal(sock.connect(7004, B), sock);
    await once(sock, 'connect');
    assert.ok(sock instanceof net.Socket);
    assert.equal(sock.remoteAddress, B);
    assert.equal(sock.remotePort, 7004);
    assert.equal(sock.localAddress, A);
    let b = '';
    sock.setEncoding('utf8').on('data', (d: string) => { b += d; });
    sock.write('hello');
    await once(sock, 'end');
    assert.equal(b, `B sees ::ffff:${A}`);
    assert.ok(decisions.includes(`socket.connect ${B}:7004 stack`), decisions.join('\n'));
    await once(sock, 'close');
    // Refused as Node reports it.
    const refused = new net.Socket().connect(7999, B);
    const [err] = await once(refused, 'error') as [NodeJS.ErrnoException & { address: string; port: number }];
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.message, `connect ECONNREFUSED ${B}:7999`);
    assert.equal(err.address, B);
    assert.equal(err.port, 7999);
    // Node's own validation is untouched.
    assert.throws(() => new net.Socket().connect({ port: -1, host: B }), { code: 'ERR_SOCKET_BAD_PORT' });
    peer.close();
  });

  test('dgram: a bound udp4 socket lives on the stack; one that only sends to loopback on the kernel', async () => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => echo.bind(7003, () => resolve()));
    assert.deepEqual(echo.address(), { address: '0.0.0.0', family: 'IPv4', port: 7003 });

    const peer = tdgram.createSocket({ type: 'udp4', stack: instB });
    await new Promise<void>((resolve) => peer.bind(0, () => resolve()));
    const reply = once(peer, 'message');
    peer.send('ping over the stack', 7003, A);
    const [msg, rinfo] = await reply as [Buffer, dgram.RemoteInfo];
    assert.equal(msg.toString(), 'ping over the stack');
    assert.equal(rinfo.address, A);

    const kernelRx = original.createSocket('udp4');
    await new Promise<void>((resolve) => kernelRx.bind(0, '127.0.0.1', () => resolve()));
    const got = once(kernelRx, 'message');
    const sender = dgram.createSocket('udp4');
    sender.send('to loopback', (kernelRx.address()).port, '127.0.0.1');
    const [m2] = await got as [Buffer];
    assert.equal(m2.toString(), 'to loopback');
    assert.ok(decisions.includes(`udp send 127.0.0.1:${kernelRx.address().port} kernel`), decisions.join('\n'));
    assert.ok(decisions.includes('udp bind *:7003 stack'), decisions.join('\n'));
    for (const s of [echo, peer, kernelRx, sender]) s.close();
  });

  test('dgram bind({ fd }) goes to the kernel, as listen({ fd }) does', async () => {
    const k = original.createSocket('udp4');
    await new Promise<void>((resolve) => k.bind(0, '127.0.0.1', () => resolve()));
    const fd = (k as unknown as { _handle: { fd: number } })._handle.fd;
    assert.ok(fd > 0);
    // libuv refuses a descriptor another handle of this process owns (EEXIST): Node's own
    // dgram answers, the same way it does without tstack — the call reached the kernel's dgram.
    const plain = original.createSocket('udp4');
    assert.throws(() => plain.bind({ fd }), { code: 'EEXIST', syscall: 'open' });
    const s = dgram.createSocket('udp4');
    assert.throws(() => s.bind({ fd }), { code: 'EEXIST', syscall: 'open' });
    assert.ok(decisions.includes('udp bind fd kernel'), decisions.join('\n'));
    for (const x of [s, plain, k]) { try { x.close(); } catch { /* never bound */ } }
  });

  test('kernel_fallback "loopback": an unrouted destination fails on the stack with ENETUNREACH instead of leaving via the kernel', async () => {
    installPatches({ stack: instA, policy: new RoutingPolicy(instA.stack, { kernelFallback: 'loopback' }) });
    try {
      const s = net.connect(80, '192.0.2.1');
      assert.ok(onStack(s));
      const [err] = await once(s, 'error') as [NodeJS.ErrnoException & { address: string; port: number }];
      assert.equal(err.code, 'ENETUNREACH');
      assert.equal(err.syscall, 'connect');
      // As Node words a connect that fails at once on a kernel socket (its unbound name).
      assert.equal(err.message, 'connect ENETUNREACH 192.0.2.1:80 - Local (0.0.0.0:0)');
    } finally {
      installPatches({ stack: instA, policy: new RoutingPolicy(instA.stack, { kernelFallback: 'auto' }) });
    }
  });

  test('uninstallPatches restores every original', () => {
    uninstallPatches();
    assert.equal(patchesInstalled(), false);
    assert.equal(net.connect, original.connect);
    assert.equal(netNamed.connect, original.connect);
    assert.equal(net.Server.prototype.listen, original.listen);
    assert.equal(http.Agent.prototype.createConnection, original.agent);
    assert.equal(tls.connect, original.tls);
    assert.equal(dgram.createSocket, original.createSocket);
    assert.equal((net.Socket.prototype as unknown as { _getpeername: unknown })._getpeername, original.getpeername);
    assert.equal(net.Socket.prototype.connect, original.socketConnect);
  });
});
