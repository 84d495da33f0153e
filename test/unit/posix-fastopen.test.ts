// TCP Fast Open through tstack/posix on two memory-wire stacks (real clock): TCP_FASTOPEN on the
// listener, sendto(MSG_FASTOPEN) on the client — EINPROGRESS while no cookie is cached (the data
// goes after the handshake), then the bytes carried by the SYN, which the server reads from the
// socket it accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryWire } from '../../src/driver/memory.js';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { realClock } from '../../src/runtime/loop.js';
import {
  posix, Errno, errnoName, AF_INET, SOCK_STREAM, SOCK_NONBLOCK, IPPROTO_TCP, TCP_FASTOPEN, MSG_FASTOPEN,
} from '../../src/api/posix.js';

const A = '198.18.76.1';
const B = '198.18.76.2';
const PORT = 8080;

function instance(wire: MemoryWire, addr: string): Instance {
  return startInstance(parseConfig(`[[port]]\ndriver = "memory"\naddr = "${addr}/24"\n[sysctl]\n"net.inet.tcp.fastopen" = 3\n`, 'tfo.toml'), { memoryWire: wire });
}

function ok(r: number, what: string): number {
  assert.ok(r >= 0, `${what} failed: ${r} (${r < 0 ? errnoName(r) : ''})`);
  return r;
}

test('posix TCP Fast Open: TCP_FASTOPEN listener, sendto(MSG_FASTOPEN) — EINPROGRESS without a cookie, then the request rides in the SYN', async () => {
  const wire = new MemoryWire({ clock: realClock });
  const a = instance(wire, A), b = instance(wire, B);
  try {
    const pa = posix({ stack: a }), pb = posix({ stack: b });
    const lfd = ok(pb.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
    ok(pb.bind(lfd, { addr: B, port: PORT }), 'bind');
    ok(pb.setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, 16), 'TCP_FASTOPEN');
    assert.equal(pb.getsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN), 16);
    ok(pb.listen(lfd, 16), 'listen');
    const req = new TextEncoder().encode('GET / HTTP/1.0\r\n\r\n');
    const buf = new Uint8Array(256);
    for (let i = 0; i < 2; i++) {
      const fd = ok(pa.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 'socket');
      const r = pa.sendto(fd, req, req.length, MSG_FASTOPEN, { addr: B, port: PORT });
      if (i === 0) {
        assert.equal(r, -Errno.EINPROGRESS, 'no cookie yet: the SYN asks for one');
        assert.equal(await pa.connectAsync(fd, { addr: B, port: PORT }, { timeoutMs: 10_000 }), 0);
        assert.equal(await pa.writeAsync(fd, req, req.length, { timeoutMs: 10_000 }), req.length);
      } else {
        assert.equal(r, req.length, 'the SYN carries the request');
        assert.equal(pa.sendto(fd, req, req.length, MSG_FASTOPEN, { addr: B, port: PORT }), -Errno.EALREADY);
      }
      const cfd = await pb.acceptAsync(lfd, null, { timeoutMs: 10_000 });
      ok(cfd, 'accept');
      const n = await pb.readAsync(cfd, buf, buf.length, { timeoutMs: 10_000 });
      assert.equal(n, req.length);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n)), 'GET / HTTP/1.0\r\n\r\n');
      pb.close(cfd);
      pa.close(fd);
    }
    assert.equal(b.stack.tcp.counters.tfoPassive, 1, 'the second request came in the SYN');
    assert.equal(b.stack.tcp.counters.tfoCookieReqd, 1);
    assert.equal(a.stack.tcp.counters.tfoActive, 1);
  } finally {
    a.stop(); b.stop();
  }
});
