// node:http over tstack/net sockets behaves as over kernel sockets: each scenario is one
// program run on node:net and on tstack/net (test/helpers/compat-program.ts) that must print
// the same events and exit by itself. The HTTP server sits on the program's net server the
// way `tstack/register` puts it there (an allowHalfOpen listener emitting 'connection').
import { test, describe, after } from 'node:test';
import { assertSameOnKernelAndTstack, removePrograms } from '../helpers/compat-program.js';

after(removePrograms);

/** `serve(handler)`: an http.Server on the program's net server; `ask(port)`: a client that sends its request and half-closes at once, then logs the reply. */
const HTTP = `
const http = await import('node:http');
function serve(handler, cb) {
  const hs = http.createServer(handler);
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => hs.emit('connection', sock));
  srv.listen(0, host, () => cb(srv));
  return srv;
}
function ask(srv, path) {
  const c = net.connect({ port: srv.address().port, host, allowHalfOpen: true }, () => c.end('GET ' + path + ' HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));
  let got = '';
  c.on('data', (d) => { got += d; });
  c.on('end', () => { const [head, body] = got.split('\\r\\n\\r\\n'); log('client: reply ' + JSON.stringify((head ?? '').split('\\r\\n')[0]) + ' body ' + JSON.stringify(body ?? null)); c.end(); });
  c.on('close', () => { log('client: close'); srv.close(); });
}
`;

const scenarios: Record<string, string> = {
  'a request followed at once by the client\'s FIN gets the full response (answered synchronously)': `
    serve((req, res) => { log('server: request ' + req.url); res.end('sync'); }, (srv) => ask(srv, '/a'));`,

  'a request followed at once by the client\'s FIN gets the full response (answered from setImmediate)': `
    serve((req, res) => { log('server: request ' + req.url); setImmediate(() => res.end('immediate')); }, (srv) => ask(srv, '/b'));`,

  'a request followed at once by the client\'s FIN gets the full response (answered from a promise)': `
    serve((req, res) => { log('server: request ' + req.url); Promise.resolve().then(() => res.end('promise')); }, (srv) => ask(srv, '/c'));`,
};

describe('node:http on tstack/net: the same replies as on kernel sockets', () => {
  for (const [name, body] of Object.entries(scenarios)) {
    test(name, async () => { await assertSameOnKernelAndTstack(HTTP + body); });
    test(`${name} (over IPv6: the kernel's ::1, the stacks' 2001:db8:31::/64)`, async () => { await assertSameOnKernelAndTstack(HTTP + body, { ipv6: true }); });
  }
});
