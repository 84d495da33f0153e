// A connect to an on-link host that never answers ARP fails with EHOSTUNREACH within Linux's
// time (3 requests 1 s apart), through tstack/net ('error' with code EHOSTUNREACH, as Node
// reports it on kernel sockets) and through the POSIX API (connectAsync returns -EHOSTUNREACH).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';
import * as tstackNet from '../../src/api/net.js';
import { posix, Errno, AF_INET, SOCK_STREAM } from '../../src/api/posix.js';

let inst: Instance;
before(() => {
  const wire = new MemoryWire({ clock: realClock });
  inst = startInstance(parseConfig('[[port]]\ndriver = "memory"\naddr = "198.18.22.1/24"\n', 'hostunreach.toml'), { memoryWire: wire });
});
after(() => inst.stop());

test('tstack/net: connect to a silent on-link host emits error EHOSTUNREACH in about 3 s, then close(true)', async () => {
  const t0 = Date.now();
  const sock = tstackNet.connect({ host: '198.18.22.99', port: 80, stack: inst } as tstackNet.TcpSocketConnectOpts);
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => sock.once('error', resolve));
  const ms = Date.now() - t0;
  assert.equal(err.code, 'EHOSTUNREACH');
  assert.equal(err.syscall, 'connect');
  assert.equal(err.message, 'connect EHOSTUNREACH 198.18.22.99:80');
  assert.ok(ms >= 2500 && ms < 5000, `failed after ${ms} ms`);
  const hadError = await new Promise<boolean>((resolve) => sock.once('close', resolve));
  assert.equal(hadError, true);
});

test('posix: connectAsync to a silent on-link host returns -EHOSTUNREACH in under 5 s', async () => {
  const p = posix({ stack: inst });
  const fd = p.socket(AF_INET, SOCK_STREAM, 0);
  assert.ok(fd >= 0);
  const t0 = Date.now();
  assert.equal(await p.connectAsync(fd, { addr: '198.18.22.98', port: 80 }, { timeoutMs: 10_000 }), -Errno.EHOSTUNREACH);
  assert.ok(Date.now() - t0 < 5000);
  p.close(fd);
});
