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
};

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
