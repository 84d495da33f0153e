// examples/echo-tcp and examples/echo-udp under `tstack run`: a Python client on the kernel's
// sockets in the namespace gets back every byte (TCP, 256 KiB plus a half-close) and every
// datagram (UDP, 50 of them, sizes up to 1400 bytes).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from '../helpers/netns.js';
import { runIn, startApp, stopAllApps } from '../helpers/run-app.js';

after(stopAllApps);

const TCP_CLIENT = `
import hashlib, os, socket, sys
data = os.urandom(256 * 1024)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print(len(got), hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest())
`;

const UDP_CLIENT = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
ok = 0
for i in range(50):
    msg = os.urandom(1 + (i * 131) % 1400)
    for attempt in range(3):
        s.sendto(msg, (sys.argv[1], int(sys.argv[2])))
        try:
            got, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        if got == msg and peer == (sys.argv[1], int(sys.argv[2])):
            ok += 1
        break
print(ok)
`;

describe('tstack run examples/echo-tcp/server.js', () => {
  test('echoes 256 KiB back to a kernel-side client, then closes after the client\'s FIN', async (t) => {
    if (!requireRoot(t, ['ip', 'python3'])) return;
    const app = await startApp({
      prefix: 'run-echotcp', subnet: 146, app: 'examples/echo-tcp/server.js', env: { PORT: '7000' },
      ready: /echo-tcp: listening on :::7000/,
    });
    const r = await runIn(app.ns, 'python3', ['-c', TCP_CLIENT, app.stackIp, '7000']);
    assert.equal(r.code, 0, r.stderr + app.output());
    assert.equal(r.stdout.trim(), `${256 * 1024} True`);
    app.child.kill('SIGTERM');
    assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
    await app.stop();
  });
});

describe('tstack run examples/echo-udp/server.js', () => {
  test('echoes 50 datagrams back to a kernel-side client, from the address they were sent to', async (t) => {
    if (!requireRoot(t, ['ip', 'python3'])) return;
    const app = await startApp({
      prefix: 'run-echoudp', subnet: 147, app: 'examples/echo-udp/server.js', env: { PORT: '7000' },
      ready: /echo-udp: listening on 0\.0\.0\.0:7000/,
    });
    const r = await runIn(app.ns, 'python3', ['-c', UDP_CLIENT, app.stackIp, '7000']);
    assert.equal(r.code, 0, r.stderr + app.output());
    assert.equal(r.stdout.trim(), '50');
    app.child.kill('SIGTERM');
    assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
    await app.stop();
  });
});
