// Node's own modules under `--import tstack/register` behave as on plain Node: each scenario is
// one program run both ways (test/helpers/compat-program.ts, assertSameOnNodeAndRegister: a
// memory port, the default policy) that must print the same events and exit by itself. These
// are the cases Node's own test/parallel files found (scripts/node-compat.js, docs/compat.md).
import { test, describe, before, after } from 'node:test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertSameOnNodeAndRegister, removePrograms } from '../helpers/compat-program.js';

let dir: string;
let haveOpenssl = true;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tstack-register-compat-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  } catch {
    haveOpenssl = false;
  }
});
after(() => { removePrograms(); rmSync(dir, { recursive: true, force: true }); });

/** `key`, `cert` and a TLS server `tlsServer(onSecure)` of the program's own. */
const TLS = () => `
import tls from 'node:tls';
import fs from 'node:fs';
const key = fs.readFileSync(${JSON.stringify(join(dir ?? '', 'key.pem'))}), cert = fs.readFileSync(${JSON.stringify(join(dir ?? '', 'cert.pem'))});
`;

const tlsScenarios: Record<string, string> = {
  'a TLS client whose handshake cannot start (conflicting versions): one error, one close, no late connect error': `
    const srv = tls.createServer({ key, cert }, (s) => log('server: secure'));
    srv.listen(0, () => {
      const c = tls.connect({ port: srv.address().port, host: 'localhost', ca: cert, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' });
      c.on('error', (e) => log('client: error ' + e.code));
      c.once('close', () => { log('client: close'); srv.close(() => log('server: close')); });
    });`,

  'a tls.connect that throws (secureProtocol with minVersion) has connected nothing: no late error once the server is gone': `
    const srv = tls.createServer({ key, cert }, (s) => log('server: secure'));
    srv.listen(0, () => {
      try {
        tls.connect({ port: srv.address().port, host: 'localhost', ca: cert, secureProtocol: 'TLSv1_2_method', minVersion: 'TLSv1.2' });
      } catch (e) { log('client: throws ' + e.code); }
      srv.close(() => log('server: close'));
    });`,

  'tls.connect with an aborted signal: one AbortError, one close, and nothing after (the server closes at once)': `
    const srv = tls.createServer({ key, cert }, (s) => log('server: secure'));
    srv.listen(0, () => {
      const ac = new AbortController();
      ac.abort();
      const c = tls.connect({ port: srv.address().port, host: 'localhost', ca: cert, signal: ac.signal });
      c.on('error', (e) => log('client: error ' + e.name));
      c.once('close', () => { log('client: close'); srv.close(() => log('server: close')); });
    });`,

  'tls.connect aborted while connecting: one AbortError, and nothing after': `
    const srv = tls.createServer({ key, cert }, (s) => log('server: secure'));
    srv.listen(0, () => {
      const ac = new AbortController();
      const c = tls.connect({ port: srv.address().port, host: 'localhost', ca: cert, signal: ac.signal });
      c.on('error', (e) => log('client: error ' + e.name));
      c.once('close', () => { log('client: close'); srv.close(() => log('server: close')); });
      ac.abort();
    });`,
  'tls.connect({ allowHalfOpen: true }): the client writes after the server ended, the server reads it': `
    const srv = tls.createServer({ key, cert }, (s) => {
      srv.close();
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d) => { got += d; if (got === 'Hello') { s.end(got); got = ''; } });
      s.on('end', () => log('server: end ' + got));
    });
    srv.listen(0, () => {
      const c = tls.connect({ port: srv.address().port, ca: cert, servername: 'localhost', allowHalfOpen: true }, () => {
        let got = '';
        c.on('data', (d) => { got += d; });
        c.on('end', () => { log('client: end ' + got); setTimeout(() => { log('client: writable ' + c.writable); c.write('Bye'); c.end(); }, 50); });
        c.write('Hello');
      });
      c.setEncoding('utf8');
    });`,

  'a TLS client reset before its handshake: ECONNRESET names the options as given (no host made up)': `
    import net from 'node:net';
    const srv = net.createServer((c) => c.end());
    srv.listen(0, () => {
      const port = srv.address().port;
      tls.connect({ port, family: 4, localAddress: '127.0.0.1' }).once('error', (e) => {
        log('client: error ' + e.code + ' host=' + e.host + ' port=' + (e.port === port) + ' localAddress=' + e.localAddress);
        srv.close();
      }).on('close', () => log('client: close'));
    });`,

  'tls.connect without servername sends no SNI (as Node: only https.Agent makes one up)': `
    const srv = tls.createServer({ key, cert, SNICallback: (name, cb) => { log('server: sni ' + name); cb(null, null); } }, (s) => s.end());
    srv.listen(0, () => {
      const c = tls.connect({ port: srv.address().port, host: 'localhost', ca: cert, checkServerIdentity: () => undefined }, () => { log('client: secure ' + c.servername); c.end(); });
      c.on('close', () => srv.close());
    });`,

  'tls.connect emits \'connect\' when its TCP connection is up, then \'secureConnect\'': `
    const srv = tls.createServer({ key, cert }, (s) => s.end());
    srv.listen(0, () => {
      const c = tls.connect({ port: srv.address().port, ca: cert, servername: 'localhost' });
      log('client: connecting ' + c.connecting);
      c.on('connect', () => log('client: connect'));
      c.on('secureConnect', () => log('client: secureConnect'));
      c.on('close', () => { log('client: close'); srv.close(); });
      c.resume();
    });`,
};

const netScenarios: Record<string, string> = {
  'listen({ signal }): aborting closes the program\'s server, once': `
    import net from 'node:net';
    try { net.createServer().listen({ port: 0, signal: 'x' }); } catch (e) { log('server: throws ' + e.code + ' ' + e.message); }
    const a = net.createServer();
    const ac = new AbortController();
    a.on('listening', () => log('server: a listening'));
    a.on('close', () => {
      log('server: a close');
      const b = net.createServer();
      b.on('listening', () => log('server: b listening'));
      b.on('close', () => {
        log('server: b close');
        const c = net.createServer();
        c.on('close', () => log('server: c close'));
        c.listen({ port: 0, signal: new AbortController().signal }, () => { log('server: c listening ' + c._connectionKey); c.close(); });
      });
      b.listen({ port: 0, signal: AbortSignal.abort() });
    });
    a.listen({ port: 0, signal: ac.signal });
    ac.abort();`,

  'socket.connect() with an array that is not Node\'s normalized form throws ERR_MISSING_ARGS': `
    import net from 'node:net';
    const srv = net.createServer((c) => { log('server: connection'); c.end(); srv.close(); });
    srv.listen(() => {
      const port = srv.address().port;
      try { new net.Socket().connect([{ port }, () => {}]); } catch (e) { log('client: throws ' + e.code); }
      const s = new net.Socket();
      s.connect(net._normalizeArgs([{ port }, () => { log('client: connect'); s.end(); }]));
    });`,

  'net.connect() gives the program\'s own net.Socket: instanceof, byte counts, and a write after its handle closed fails with EBADF': `
    import net from 'node:net';
    const srv = net.createServer((c) => { srv.close(); c.on('data', (d) => log('server: data ' + d)); c.on('end', () => c.end()); });
    srv.listen(() => {
      const c = net.connect({ port: srv.address().port }, () => {
        log('client: connect ' + (c instanceof net.Socket) + ' ' + typeof c._handle.setNoDelay);
        c.write('abc', () => {
          log('client: written ' + c.bytesWritten);
          c.on('error', (e) => log('client: error ' + e.message));
          c._handle.close();
          c.write('foo');
        });
      });
    });`,

  'http keep-alive through an Agent: the socket goes back to the pool and is reused': `
    import http from 'node:http';
    const agent = new http.Agent({ keepAlive: true });
    const srv = http.createServer((req, res) => res.end('ok ' + req.url));
    srv.listen(0, () => {
      const get = (path, cb) => http.get({ port: srv.address().port, path, agent }, (res) => {
        let b = '';
        res.on('data', (d) => { b += d; }).on('end', () => { log('client: ' + b + ' reused ' + req.reusedSocket); cb(); });
      });
      let req = get('/1', () => { req = get('/2', () => { agent.destroy(); srv.close(); }); });
    });`,

  'node:http is not loaded before the program loads it (programs may replace its parser binding first)': `
    log('client: http loaded ' + process.moduleLoadList.some((m) => /^NativeModule (http|_http_common)$/.test(m)));`,

  'a client that ends its request at once and never reads the reply does not keep the process alive (the server is unref\'d)': `
    import http from 'node:http';
    import net from 'node:net';
    const server = http.createServer((req, res) => { req.on('end', () => log('server: end')); req.resume(); res.end('hello world'); });
    server.unref();
    server.listen(0, () => {
      const client = net.connect(server.address().port);
      client.end('POST / HTTP/1.1\\r\\nHost: x\\r\\nConnection: keep-alive\\r\\nContent-Length: 11\\r\\n\\r\\nhello world');
    });`,

  'net.connect({ onread }): the bytes land in the program\'s buffer; resetAndDestroy() resets; a client bind on a listener\'s port is EADDRINUSE': `
    import net from 'node:net';
    let closes = 0;
    const srv = net.createServer((c) => { c.on('error', (e) => log('server: error ' + e.code)); c.on('close', () => { if (++closes === 2) srv.close(); }); c.end('hello world'); });
    srv.listen(0, '127.0.0.1', () => {
      const port = srv.address().port;
      const buf = Buffer.alloc(64);
      const c = net.connect({ port, host: '127.0.0.1', onread: { buffer: buf, callback: (n, b) => { log('client: onread ' + b.toString('utf8', 0, n) + ' same ' + (b === buf)); } } });
      c.on('data', () => log('client: data event'));
      c.on('end', () => {
        const b = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1', localPort: port });
        b.on('error', (e) => {
          log('client: bind ' + e.code);
          const r = net.connect({ port, host: '127.0.0.1' }, () => r.resetAndDestroy());
          r.on('close', () => log('client: reset close'));
        });
      });
    });`,

  'listen() with options Node rejects throws Node\'s errors (a host that is not a string included)': `
    import net from 'node:net';
    for (const o of [{}, { host: 'localhost' }, { host: { port: 3000 } }, { port: true }, { exclusive: true }]) {
      try { net.createServer().listen(o, () => log('server: listening?')); } catch (e) { log('server: ' + e.code + ' ' + e.message); }
    }`,
};

describe('net under the register: the same events as on plain Node', () => {
  for (const [name, body] of Object.entries(netScenarios)) {
    test(name, async () => { await assertSameOnNodeAndRegister(body); });
  }
});

const dgramScenarios: Record<string, string> = {
  'a udp4 socket bound on any address is reached by another process of the host over 127.0.0.1, and its reply comes from its port': `
    import dgram from 'node:dgram';
    import { spawn } from 'node:child_process';
    const s = dgram.createSocket('udp4');
    s.on('message', (m, r) => { log('server: got ' + m + ' from ' + r.address); s.send('pong ' + m, r.port, r.address); });
    s.bind(0, () => {
      const port = s.address().port;
      const child = 'const d = require("dgram").createSocket("udp4"); d.on("message", (m, r) => { console.log("client: " + m + " from port " + (r.port === ' + port + ')); d.close(); }); d.send("ping", ' + port + ', "127.0.0.1");';
      const c = spawn(process.execPath, ['-e', child], { stdio: ['ignore', 'inherit', 'inherit'] });
      c.on('exit', (code) => { log('server: child exit ' + code); s.close(); });
    });`,

  'a udp4 client connected to the program\'s own socket sends without naming a port': `
    import dgram from 'node:dgram';
    const server = dgram.createSocket('udp4');
    const client = dgram.createSocket('udp4');
    server.on('message', (m) => { log('server: got ' + m); client.close(); server.close(); });
    server.bind(0, () => client.connect(server.address().port, () => { client.send('hello'); log('client: sent'); }));`,

  'dgram buffer sizes: Node\'s SystemError before bind, Linux\'s doubled sizes after, EINVAL past an int': `
    import dgram from 'node:dgram';
    import { inspect } from 'node:util';
    const s = dgram.createSocket('udp4');
    try { s.setSendBufferSize(8192); } catch (e) { log('client: ' + inspect(e).split('\\n').filter((l) => !/^ +at /.test(l)).join(' | ')); }
    s.bind(0, '127.0.0.1', () => {
      s.setRecvBufferSize(10000);
      s.setSendBufferSize(10000);
      log('client: sizes ' + s.getRecvBufferSize() + ' ' + s.getSendBufferSize());
      try { s.setRecvBufferSize(2147483648); } catch (e) { log('client: ' + e.code + ' ' + e.message); }
      s.close();
    });`,

  'a bound udp4 client connected to the program\'s own socket sends with offsets and a callback': `
    import dgram from 'node:dgram';
    const server = dgram.createSocket('udp4');
    const client = dgram.createSocket('udp4');
    server.on('message', (m) => { log('server: got ' + m); client.close(); server.close(); });
    server.bind(0, () => client.bind(0, () => client.connect(server.address().port, () => {
      const b = Buffer.from('xhellox');
      client.send(b, 1, 5, (err, n) => log('client: sent ' + err + ' ' + n));
    })));`,
};

describe('dgram under the register: the same events as on plain Node', () => {
  for (const [name, body] of Object.entries(dgramScenarios)) {
    test(name, async () => { await assertSameOnNodeAndRegister(body); });
  }
});

describe('tls under the register: the same events as on plain Node', () => {
  for (const [name, body] of Object.entries(tlsScenarios)) {
    test(name, async (t) => {
      if (!haveOpenssl) {
        if (process.env['CI']) throw new Error('openssl is needed to make a test certificate');
        t.skip('needs openssl to make a test certificate');
        return;
      }
      await assertSameOnNodeAndRegister(TLS() + body);
    });
  }
});
