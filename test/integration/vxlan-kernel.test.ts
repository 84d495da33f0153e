// VXLAN against the kernel (root, namespaces): a node:net program under `tstack run` with a
// [[tunnel]] kind = "vxlan" over its TAP port, and a kernel `vxlan` device (VNI 42, UDP 4789)
// in the namespace on the TAP's kernel side. The kernel pings the stack's inner address, then
// a 64 MiB TCP transfer runs each way at once through the tunnel, SHA-256 equal both ways.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, run } from '../helpers/netns.js';
import { runIn, startApp, stopAllApps } from '../helpers/run-app.js';

const dir = mkdtempSync(join(tmpdir(), 'tstack-vxlan-'));
after(async () => { await stopAllApps(); rmSync(dir, { recursive: true, force: true }); });

const MIB = 64;

const APP = `import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
const N = ${MIB} << 20;
const srv = net.createServer((s) => {
  const hin = createHash('sha256');
  let n = 0;
  s.on('data', (d) => { hin.update(d); n += d.length; });
  s.on('end', () => console.log('got ' + n + ' ' + hin.digest('hex')));
  s.on('error', (e) => console.log('error ' + e.code));
  const block = randomBytes(1 << 20);
  const hout = createHash('sha256');
  let sent = 0;
  const pump = () => {
    while (sent < N) {
      const b = Buffer.from(block);
      b.writeUInt32BE(sent >>> 20, 0);
      hout.update(b);
      sent += b.length;
      if (!s.write(b)) { s.once('drain', pump); return; }
    }
    s.end();
    console.log('sent ' + sent + ' ' + hout.digest('hex'));
  };
  pump();
});
srv.listen(5002, () => console.log('ready'));
`;

const CLIENT = `import socket, hashlib, os, sys, threading
N = ${MIB} << 20
s = socket.create_connection((sys.argv[1], 5002), timeout=120)
hin = hashlib.sha256()
got = 0
def rx():
    global got
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        hin.update(d)
        got += len(d)
t = threading.Thread(target=rx)
t.start()
block = os.urandom(1 << 20)
hout = hashlib.sha256()
sent = 0
while sent < N:
    b = bytearray(block)
    b[0:4] = (sent >> 20).to_bytes(4, 'big')
    hout.update(b)
    s.sendall(b)
    sent += len(b)
s.shutdown(socket.SHUT_WR)
t.join()
print('sent', sent, hout.hexdigest())
print('got', got, hin.hexdigest())
`;

test(`a kernel vxlan device and a tstack VXLAN interface: ping, and ${MIB} MiB of TCP each way with SHA-256 equal`, async (t) => {
  if (!requireRoot(t, ['ip', 'python3', 'ping'])) return;
  const appFile = join(dir, 'vxlan-app.mjs');
  writeFileSync(appFile, APP);
  const client = join(dir, 'client.py');
  writeFileSync(client, CLIENT);
  const app = await startApp({
    prefix: 'vxlan', subnet: 216, app: appFile, ready: /ready/, readyTimeoutMs: 30_000,
    extraConfig: '[[tunnel]]\nkind = "vxlan"\nifname = "vx0"\nvni = 42\nlocal = "198.18.216.2"\nremote = "198.18.216.1"\naddr = "198.18.217.2/24"\n',
  });
  const { ns } = app;
  try {
    run('ip', ['-n', ns, 'link', 'add', 'vxk0', 'type', 'vxlan', 'id', '42', 'local', '198.18.216.1', 'remote', '198.18.216.2', 'dstport', '4789']);
    run('ip', ['-n', ns, 'addr', 'add', '198.18.217.1/24', 'dev', 'vxk0']);
    run('ip', ['-n', ns, 'link', 'set', 'vxk0', 'up']);
    const ping = await runIn(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', '198.18.217.2'], { timeoutMs: 30_000 });
    assert.equal(ping.code, 0, `ping through the tunnel: ${ping.stdout}${ping.stderr}\n${app.output()}`);
    assert.match(ping.stdout, /3 received/);

    const r = await runIn(ns, 'python3', [client, '198.18.217.2'], { timeoutMs: 400_000 });
    assert.equal(r.code, 0, `client: ${r.stderr}\n${app.output()}`);
    const kSent = /sent (\d+) ([0-9a-f]{64})/.exec(r.stdout), kGot = /got (\d+) ([0-9a-f]{64})/.exec(r.stdout);
    const sGot = await app.waitForOutput(/got (\d+) ([0-9a-f]{64})/, 60_000);
    const sSent = await app.waitForOutput(/sent (\d+) ([0-9a-f]{64})/, 60_000);
    assert.ok(kSent && kGot, r.stdout);
    assert.equal(Number(kSent[1]), MIB << 20);
    assert.equal(Number(sGot[1]), MIB << 20, 'the stack received every byte');
    assert.equal(sGot[2], kSent[2], 'kernel → tstack SHA-256');
    assert.equal(Number(kGot[1]), MIB << 20, 'the kernel received every byte');
    assert.equal(kGot[2], sSent[2], 'tstack → kernel SHA-256');
    // The kernel device learned the stack's inner MAC behind its VTEP.
    const fdb = run('bridge', ['-n', ns, 'fdb', 'show', 'dev', 'vxk0']);
    assert.match(fdb, /dst 198\.18\.216\.2/);
  } finally {
    await app.stop();
  }
});
