// Exit semantics: a program exits exactly when it would on kernel sockets. Each scenario is one
// small program run on node:net and on tstack/net (test/helpers/compat-program.ts): both runs
// must print the same events and exit by themselves; a hang is a failure, reported with what
// the program printed.
import { test, describe, after } from 'node:test';
import { assertSameOnKernelAndTstack, removePrograms } from '../helpers/compat-program.js';

after(removePrograms);

const scenarios: Record<string, string> = {
  'a client paused before it connects does not keep the process alive': `
    const srv = net.createServer((c) => { log('server: connection'); c.unref(); });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host });
      c.pause();
      c.on('connect', () => log('client: connect'));
      srv.unref();
    });`,

  'an accepted socket paused on connect (pauseOnConnect) does not keep the process alive': `
    const srv = net.createServer({ pauseOnConnect: true }, (c) => { log('server: connection paused=' + c.isPaused()); srv.close(); });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host }, () => { log('client: connect'); c.unref(); });
    });`,

  'a half-closed client with unread data lets the process exit without end': `
    const srv = net.createServer((c) => { c.end('bye', () => log('server: finish')); c.unref(); srv.unref(); });
    srv.listen(0, host, () => {
      // Not flowing (no 'data' listener): 'bye' and the FIN wait in the stream's buffer.
      const c = net.connect({ port: srv.address().port, host }, () => log('client: connect'));
      c.on('end', () => log('client: end'));
      c.on('close', () => log('client: close'));
    });`,

  'an unref()d open connection does not keep the process alive': `
    const srv = net.createServer((c) => { log('server: connection'); c.unref(); srv.close(); });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host }, () => { log('client: connect'); c.unref(); });
    });`,

  'a socket destroyed with unread data closes, and the process exits': `
    const srv = net.createServer((c) => {
      c.write('x'.repeat(1000));
      c.on('error', (e) => log('server: error ' + e.code));
      c.on('close', () => { log('server: close'); srv.close(); });
    });
    srv.listen(0, host, () => {
      const c = net.connect({ port: srv.address().port, host });
      c.pause();
      c.once('readable', () => { log('client: readable'); setTimeout(() => c.destroy(), 50); });
      c.on('close', (hadError) => log('client: close ' + hadError));
    });`,

  'net.connect({ port: -1 }) throws ERR_SOCKET_BAD_PORT and leaves nothing running': `
    try {
      net.connect({ port: -1, host });
    } catch (e) {
      log('throws ' + e.code + ': ' + e.message);
    }`,

  'a connect() to a bad localAddress throws and leaves nothing running': `
    try {
      net.connect({ port: 80, host, localAddress: 'not-an-ip' });
    } catch (e) {
      log('throws ' + e.code + ': ' + e.message);
    }`,
};

describe('exit semantics: a program on tstack/net exits when the same program on node:net does', () => {
  for (const [name, body] of Object.entries(scenarios)) {
    test(name, async () => { await assertSameOnKernelAndTstack(body); });
    test(`${name} (over IPv6: the kernel's ::1, the stacks' 2001:db8:31::/64)`, async () => { await assertSameOnKernelAndTstack(body, { ipv6: true }); });
  }
});
