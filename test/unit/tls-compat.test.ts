// TLS over tstack/net sockets (Node wraps them in a JSStreamSocket) behaves as TLS over kernel
// sockets: each scenario is one program run on node:net and on tstack/net
// (test/helpers/compat-program.ts) that must print the same events and exit by itself.
import { test, describe, before, after } from 'node:test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertSameOnKernelAndTstack, removePrograms } from '../helpers/compat-program.js';

let dir: string;
let haveOpenssl = true;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tstack-tls-compat-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=tstack.test',
      '-addext', 'subjectAltName=DNS:tstack.test', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  } catch {
    haveOpenssl = false;
  }
});
after(() => { removePrograms(); rmSync(dir, { recursive: true, force: true }); });

/** A TLS server on the program's net server (`onSecure(s)`), and `connectTls(cb)` to it. */
const tlsPrologue = () => `
const tls = await import('node:tls');
const fs = await import('node:fs');
const key = fs.readFileSync(${JSON.stringify(join(dir, 'key.pem'))}), cert = fs.readFileSync(${JSON.stringify(join(dir, 'cert.pem'))});
function tlsServer(onSecure) {
  const ts = tls.createServer({ key, cert }, (s) => {
    s.on('error', (e) => log('server: error ' + e.code + ' ' + e.message));
    s.on('end', () => log('server: end'));
    s.on('close', () => log('server: close'));
    onSecure(s);
  });
  const srv = net.createServer((sock) => ts.emit('connection', sock));
  return srv;
}
function connectTls(port, cb) {
  const c = tls.connect({ socket: net.connect({ port, host }), ca: cert, servername: 'tstack.test' }, cb);
  c.on('error', (e) => log('client: error ' + e.code + ' ' + e.message));
  c.on('end', () => log('client: end'));
  c.on('close', () => log('client: close'));
  return c;
}
`;

const scenarios: Record<string, string> = {
  "the server's FIN reaches a TLS client that is not reading: its data and 'end' wait for resume()": `
    const srv = tlsServer((s) => { log('server: secure'); s.resume(); s.end('bye'); s.on('close', () => srv.close()); });
    srv.listen(0, host, () => {
      const c = connectTls(srv.address().port, () => {
        log('client: secureConnect');
        c.pause();
        setTimeout(() => { log('client: resume'); c.resume(); }, 200);
      });
      c.on('data', (d) => log('client: data ' + d));
    });`,

  'a paused TLS client writes after the server ended: the write goes out, no error': `
    const srv = tlsServer((s) => {
      log('server: secure');
      s.on('data', (d) => log('server: data ' + d));
      s.end('bye');
      s.on('close', () => srv.close());
    });
    srv.listen(0, host, () => {
      const c = connectTls(srv.address().port, () => {
        log('client: secureConnect');
        c.pause();
        setTimeout(() => { c.write('late', (e) => log('client: write-cb ' + (e ? e.code : 'ok'))); c.end(); c.resume(); }, 200);
      });
      c.on('data', (d) => log('client: data ' + d));
    });`,

  'the TLS client ends first: the server reads its last bytes, answers, and both close': `
    const srv = tlsServer((s) => {
      log('server: secure');
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('end', () => { log('server: got ' + got); s.end('ack'); });
      s.on('close', () => srv.close());
    });
    srv.listen(0, host, () => {
      const c = connectTls(srv.address().port, () => { log('client: secureConnect'); c.end('request'); });
      c.on('data', (d) => log('client: data ' + d));
    });`,
};

describe('TLS over tstack/net: the same events as TLS over kernel sockets', () => {
  for (const [name, body] of Object.entries(scenarios)) {
    test(name, async (t) => {
      if (!haveOpenssl) {
        if (process.env['CI']) throw new Error('openssl is needed to make a test certificate');
        t.skip('needs openssl to make a test certificate');
        return;
      }
      await assertSameOnKernelAndTstack(tlsPrologue() + body);
    });
  }
});
