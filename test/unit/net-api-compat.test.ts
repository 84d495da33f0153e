// Parts of node:net's API beyond the basic conversation, compared with kernel sockets: each
// scenario is one program run on node:net and on tstack/net (test/helpers/compat-program.ts)
// that must print the same events and exit by itself.
import { test, describe, after } from 'node:test';
import { assertSameOnKernelAndTstack, removePrograms } from '../helpers/compat-program.js';

after(removePrograms);

const scenarios: Record<string, string> = {
  "connect's onread option: bytes go to the program's buffer and callback, never to 'data'; false pauses until resume()": `
    const msg = 'hello world, in pieces';
    const srv = net.createServer((s) => { srv.close(); s.end(msg); });
    srv.listen(0, host, () => {
      const sizes = [];
      let text = '';
      let calls = 0;
      const pool = [Buffer.alloc(4), Buffer.alloc(4)];
      const c = net.connect({ port: srv.address().port, host, onread: {
        buffer: () => pool[calls % 2],
        callback(n, buf) {
          calls++;
          text += buf.toString('utf8', 0, n);
          if (calls === 2) { log('client: callback returns false'); setTimeout(() => { log('client: resume'); c.resume(); }, 50); return false; }
        },
      } });
      c.on('data', () => log('client: data event'));
      c.on('end', () => log('client: end text=' + JSON.stringify(text) + ' bytesRead=' + c.bytesRead));
      c.on('close', () => log('client: close'));
    });`,

  'a listen on a host, aborted by its signal before it resolves, never listens': `
    const ac = new AbortController();
    const srv = net.createServer();
    srv.on('listening', () => log('server: listening'));
    srv.on('close', () => log('server: close'));
    srv.listen({ port: 0, host, signal: ac.signal });
    ac.abort();
    const srv2 = net.createServer();
    srv2.on('listening', () => log('server: listening 2'));
    srv2.on('close', () => log('server: close 2'));
    srv2.listen({ port: 0, host, signal: AbortSignal.abort() });`,

  "connecting and Node's legacy _connecting follow the connection": `
    const srv = net.createServer((s) => { s.end(); srv.close(); });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host }, () => { log('client: connected connecting=' + c.connecting + ' _connecting=' + c._connecting); c.end(); });
      log('client: after connect() connecting=' + c.connecting + ' _connecting=' + c._connecting);
    });`,
};

describe('node:net API surface on tstack/net: the same events as on kernel sockets', () => {
  for (const [name, body] of Object.entries(scenarios)) {
    test(name, async () => { await assertSameOnKernelAndTstack(body); });
    test(`${name} (over IPv6: the kernel's ::1, the stacks' 2001:db8:31::/64)`, async () => { await assertSameOnKernelAndTstack(body, { ipv6: true }); });
  }
});
