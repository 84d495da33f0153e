// TCP Fast Open through tstack/net on two memory-wire stacks (real clock, run loops): a server
// listening with `tfo`, clients connecting with `tfo: true` and writing in the same tick — the
// first connection fetches the cookie, the second delivers its request in the SYN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tstackNet from '../../src/api/net.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';

const S = '198.18.77.1';
const C = '198.18.77.2';

function instance(wire: MemoryWire, addr: string): Instance {
  return startInstance(parseConfig(`[[port]]\ndriver = "memory"\naddr = "${addr}/24"\n[sysctl]\n"net.inet.tcp.fastopen" = 3\n`, 'tfo.toml'), { memoryWire: wire });
}

test('net TCP Fast Open: listen({ tfo: true }) and connect({ tfo: true }) — the second request rides in the SYN, every reply arrives', async () => {
  const wire = new MemoryWire({ clock: realClock });
  const s = instance(wire, S), c = instance(wire, C);
  try {
    const server = tstackNet.createServer({ stack: s }, (sock) => {
      sock.on('data', (d) => { sock.end(`echo:${d.toString()}`); });
    });
    await new Promise<void>((resolve) => server.listen({ port: 8081, host: S, tfo: true }, resolve));
    for (let i = 0; i < 2; i++) {
      const reply = await new Promise<string>((resolve, reject) => {
        const sock = tstackNet.connect({ port: 8081, host: S, tfo: true, stack: c });
        sock.write(`req${i}`);
        let got = '';
        sock.on('data', (d) => { got += d.toString(); });
        sock.on('end', () => resolve(got));
        sock.on('error', reject);
        setTimeout(() => reject(new Error(`no reply ${i} within 10 s`)), 10_000).unref();
      });
      assert.equal(reply, `echo:req${i}`);
    }
    assert.equal(s.stack.tcp.counters.tfoCookieReqd, 1, 'the first connection fetched a cookie');
    assert.equal(s.stack.tcp.counters.tfoPassive, 1, 'the second request came in the SYN');
    assert.equal(c.stack.tcp.counters.tfoActive, 1);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  } finally {
    c.stop(); s.stop();
  }
});
