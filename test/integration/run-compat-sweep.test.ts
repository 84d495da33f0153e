// Compatibility sweep: unmodified Node programs (test/fixtures/apps/compat-*.mjs) under
// `tstack run`, driven by real clients on the kernel's sockets in the test namespace: curl, ab,
// wrk, python3 raw sockets, a ws client under plain node, scapy. Each test asserts bytes
// (SHA-256) and counts, not "no crash".
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot } from '../helpers/netns.js';
import { runIn, startApp, stopAllApps, type RunningApp, type AppOptions } from '../helpers/run-app.js';

after(stopAllApps);

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/** The fixture's /big body (same LCG as compat-http.mjs). */
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = 12345;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

/** Frames the kernel side of the app's TAP device dropped on their way to the stack (its TX
 *  "dropped": the device queue, txqueuelen, was full). */
function tapDrops(app: RunningApp): number {
  const out = execFileSync('ip', ['-n', app.ns, '-s', '-j', 'link', 'show', 'dev', app.ifname], { encoding: 'utf8' });
  return (JSON.parse(out) as { stats64: { tx: { dropped: number } } }[])[0]!.stats64.tx.dropped;
}

/** One app per describe block (call it in the block), started by the first test that needs
 *  it and stopped when the block ends. */
function lazyApp(o: AppOptions): (t: { skip(m?: string): void }, commands?: string[]) => Promise<RunningApp | null> {
  let p: Promise<RunningApp> | null = null;
  after(async () => { if (p) await (await p.catch(() => null))?.stop(); });
  return async (t, commands = ['ip']) => {
    if (!requireRoot(t, commands)) return null;
    p ??= startApp(o);
    return p;
  };
}

/** Runs a python3 program in ns (argv after the script), failing with its stderr and the app's output. */
async function py(app: RunningApp, script: string, args: string[], timeoutMs = 30_000, python = 'python3'): Promise<string> {
  const r = await runIn(app.ns, python, ['-c', script, ...args], { timeoutMs });
  assert.equal(r.code, 0, `python exited ${r.code}: ${r.stderr}${r.stdout}\n--- app output:\n${app.output().slice(-3000)}`);
  return r.stdout;
}

async function sh(app: RunningApp, script: string, timeoutMs = 30_000): Promise<string> {
  const r = await runIn(app.ns, 'sh', ['-c', script], { timeoutMs });
  assert.equal(r.code, 0, `sh exited ${r.code}: ${r.stderr}${r.stdout}\n--- app output:\n${app.output().slice(-3000)}`);
  return r.stdout;
}

/** A GET of /stats on the http fixture. */
async function httpStats(app: RunningApp): Promise<Record<string, number>> {
  return JSON.parse(await sh(app, `curl -sS --max-time 5 http://${app.stackIp}:8080/stats`)) as Record<string, number>;
}

// ---- 1. node:http ------------------------------------------------------------------------

const PIPELINE = `
import re, socket, sys
s = socket.create_connection((sys.argv[1], 8080), timeout=10)
req = b''.join(b'GET /hello?i=%d HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' % i for i in range(10))
s.sendall(req)
buf = b''
while buf.count(b'HTTP/1.1 200 OK') < 10 or not buf.endswith(b'hello 9\\n'):
    d = s.recv(65536)
    if not d:
        break
    buf += d
bodies = re.findall(rb'hello \\d+', buf)
print(buf.count(b'HTTP/1.1 200 OK'), ' '.join(b.decode().strip() for b in bodies))
`;

// A reader slower than the sender with a small receive buffer: the kernel advertises a zero
// window again and again, so the stack's persist/window-update path carries the body.
const SLOW_READER = `
import hashlib, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(10)
s.connect((sys.argv[1], 8080))
s.sendall(b'GET /big?bytes=%d HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' % int(sys.argv[2]))
buf = b''
while True:
    d = s.recv(8192)
    if not d:
        break
    buf += d
    time.sleep(0.004)
head, _, body = buf.partition(b'\\r\\n\\r\\n')
print(len(body), hashlib.sha256(body).hexdigest())
`;

/** A POST that promises 1,000,000 bytes, sends 100,000, then closes with SO_LINGER 0 (a RST). */
const RESET_UPLOAD = `
import socket, struct, sys, time
s = socket.create_connection((sys.argv[1], 8080), timeout=5)
s.sendall(b'POST /sha HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1000000\\r\\n\\r\\n' + b'z' * 100000)
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
print('reset sent')
`;

/** Asks for argv[2] bytes, does not read for argv[3] seconds (the window closes, the stack
 *  probes it), then reads everything. */
const STALLED_READER = `
import hashlib, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.settimeout(10)
s.connect((sys.argv[1], 8080))
s.sendall(b'GET /big?bytes=%d HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' % int(sys.argv[2]))
time.sleep(float(sys.argv[3]))
buf = b''
while True:
    d = s.recv(65536)
    if not d:
        break
    buf += d
head, _, body = buf.partition(b'\\r\\n\\r\\n')
print(len(body), hashlib.sha256(body).hexdigest())
`;

const KEEPALIVE_IDLE = `
import socket, sys, time
s = socket.create_connection((sys.argv[1], 8080), timeout=5)
s.sendall(b'GET /hello HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
buf = b''
while not buf.endswith(b'hello \\n'):
    buf += s.recv(4096)
t0 = time.monotonic()
d = s.recv(4096)
print(repr(d), round(time.monotonic() - t0, 2))
`;

const MANY_CONNS = `
import socket, sys, selectors
N = int(sys.argv[2])
socks = []
for i in range(N):
    s = socket.create_connection((sys.argv[1], 8080), timeout=20)
    socks.append(s)
for i, s in enumerate(socks):
    s.sendall(b'GET /hello?i=%d HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' % i)
ok = 0
for i, s in enumerate(socks):
    buf = b''
    while True:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    if buf.startswith(b'HTTP/1.1 200 OK') and buf.endswith(b'hello %d\\n' % i):
        ok += 1
    s.close()
print(ok)
`;

describe('node:http server (compat-http.mjs) under tstack run', () => {
  const getApp = lazyApp({
    prefix: 'cmp-http', subnet: 160, app: 'test/fixtures/apps/compat-http.mjs', env: { PORT: '8080' },
    ready: /compat-http: listening on :::8080/,
  });

  test('curl fetches a 10 MB body whose SHA-256 equals the server\'s', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const out = await sh(app, `curl -sS --max-time 20 -D /dev/stderr 'http://${app.stackIp}:8080/big?bytes=10000000' 2>/tmp/cmp-h-$$ | sha256sum; grep -i x-sha256 /tmp/cmp-h-$$; rm -f /tmp/cmp-h-$$`);
    const expected = sha256(pattern(10_000_000));
    assert.match(out, new RegExp(`^${expected}  -\\n`), out);
    assert.match(out, new RegExp(`x-sha256: ${expected}`, 'i'));
  });

  test('a chunked response written with backpressure (write() false, then drain) arrives whole', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const chunks = 640; // 10 MiB in 16 KiB writes
    const out = await sh(app, `curl -sS --max-time 20 -D /dev/stderr 'http://${app.stackIp}:8080/stream?chunks=${chunks}' 2>/tmp/cmp-s-$$ | sha256sum; grep -i transfer-encoding /tmp/cmp-s-$$; rm -f /tmp/cmp-s-$$`);
    const h = createHash('sha256');
    for (let i = 0; i < chunks; i++) h.update(Buffer.alloc(16384, i & 0xff));
    const expected = h.digest('hex');
    assert.match(out, new RegExp(`^${expected}  -\\n`), out);
    assert.match(out, /transfer-encoding: chunked/i);
    const m = await app.waitForOutput(new RegExp(`stream done chunks=${chunks} drains=(\\d+) sha=${expected}`));
    assert.ok(Number(m[1]) > 0, 'the server saw write() return false at least once');
    t.diagnostic(`drain waits: ${m[1]}`);
  });

  test('a 20 MB POST upload (curl --data-binary @file) is hashed by the server to the same SHA-256', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const out = await sh(app, `f=$(mktemp); head -c 20000000 /dev/urandom > $f; sha256sum < $f; curl -sS --max-time 30 -H 'content-type: application/octet-stream' --data-binary @$f http://${app.stackIp}:8080/sha; rm -f $f`, 40_000);
    const [local, remote] = out.trim().split('\n');
    assert.equal(remote, `20000000 ${local!.split(' ')[0]}`);
  });

  test('ab -k -n 20000 -c 50 (keep-alive): 20000 complete, 0 failed', async (t) => {
    const app = await getApp(t, ['ip', 'ab']);
    if (!app) return;
    const r = await runIn(app.ns, 'ab', ['-q', '-k', '-n', '20000', '-c', '50', '-s', '10', `http://${app.stackIp}:8081/hello`], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Complete requests:\s+20000\n/, r.stdout);
    assert.match(r.stdout, /Failed requests:\s+0\n/, r.stdout);
    assert.match(r.stdout, /Keep-Alive requests:\s+20000\n/, r.stdout);
    assert.doesNotMatch(r.stdout, /Non-2xx/, r.stdout);
    t.diagnostic(`ab -k: ${/Requests per second:\s+([\d.]+)/.exec(r.stdout)?.[1]} requests/s`);
  });

  for (const close of [false, true]) {
    test(`wrk -t1 -c100 -d3s${close ? ' with Connection: close' : ' (keep-alive)'}: no socket errors, no non-2xx`, async (t) => {
      const app = await getApp(t, ['ip', 'wrk']);
      if (!app) return;
      const r = await runIn(app.ns, 'wrk', ['-t1', '-c100', '-d3s', '--timeout', '5s', ...(close ? ['-H', 'Connection: close'] : []), `http://${app.stackIp}:8081/hello`], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.doesNotMatch(r.stdout, /Socket errors/, r.stdout);
      assert.doesNotMatch(r.stdout, /Non-2xx/, r.stdout);
      const n = Number(/(\d+) requests in/.exec(r.stdout)?.[1]);
      assert.ok(n > 100, r.stdout);
      t.diagnostic(`wrk${close ? ' close' : ''}: ${n} requests, ${/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]} requests/s`);
    });
  }

  test('ten pipelined requests in one write get ten responses, in order', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, PIPELINE, [app.stackIp]);
    assert.equal(out.trim(), `10 ${Array.from({ length: 10 }, (_, i) => `hello ${i}`).join(' ')}`);
  });

  // curl 7.88 (this machine's) hardly throttles a body that arrives this fast, against the
  // kernel too; the python reader below is the one that really reads slowly.
  test('a slow reader (curl --limit-rate 200k) gets a 2 MB body complete and equal', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const out = await sh(app, `curl -sS --max-time 20 --limit-rate 200k 'http://${app.stackIp}:8080/big?bytes=2000000' | sha256sum`);
    assert.equal(out.trim(), `${sha256(pattern(2_000_000))}  -`);
  });

  test('a python reader with a 4 KiB receive buffer reading 8 KiB per 4 ms gets 1 MB complete and equal', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const t0 = Date.now();
    const out = await py(app, SLOW_READER, [app.stackIp, '1000000']);
    assert.equal(out.trim(), `1000000 ${sha256(pattern(1_000_000))}`);
    t.diagnostic(`slow reader took ${Date.now() - t0} ms`);
  });

  test('a client that aborts mid-response: the server sees close before finish and keeps serving', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const before = await httpStats(app);
    const r = await runIn(app.ns, 'curl', ['-sS', '--max-time', '0.5', `http://${app.stackIp}:8080/slow`]);
    assert.equal(r.code, 28, `curl timed out (28): ${r.stderr}`);
    assert.match(r.stdout, /^tick 0\n/);
    // The server notices the FIN from curl's close.
    const deadline = Date.now() + 3000;
    let after = await httpStats(app);
    while (after['slowClosedEarly']! === before['slowClosedEarly']! && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      after = await httpStats(app);
    }
    assert.equal(after['slowClosedEarly'], before['slowClosedEarly']! + 1, JSON.stringify(after));
    assert.equal(after['slowFinished'], before['slowFinished']);
    const hello = await sh(app, `curl -sS --max-time 5 http://${app.stackIp}:8080/hello`);
    assert.equal(hello, 'hello \n');
  });

  test('a reader that stops for 3 s (zero window) then reads gets 2 MB complete and equal', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, STALLED_READER, [app.stackIp, '2000000', '3']);
    assert.equal(out.trim(), `2000000 ${sha256(pattern(2_000_000))}`);
  });

  test('an upload reset by the client mid-body: req gets error ECONNRESET "aborted", the server keeps serving', async (t) => {
    const app = await getApp(t, ['ip', 'python3', 'curl']);
    if (!app) return;
    const before = await httpStats(app);
    assert.equal((await py(app, RESET_UPLOAD, [app.stackIp])).trim(), 'reset sent');
    await app.waitForOutput(/upload error ECONNRESET aborted after 100000 bytes\n/);
    const after = await httpStats(app);
    assert.equal(after['uploadErrors'], before['uploadErrors']! + 1);
    assert.equal(after['uploadsIncomplete'], before['uploadsIncomplete']! + 1);
    assert.equal(await sh(app, `curl -sS --max-time 5 http://${app.stackIp}:8080/hello`), 'hello \n');
  });

  test('res.destroy() mid-body: curl sees the transfer cut short (exit 18, 65536 of 1000000 bytes)', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const r = await runIn(app.ns, 'curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `http://${app.stackIp}:8080/destroy`]);
    assert.equal(r.code, 18, r.stderr);
    assert.equal(r.stdout, '200 65536');
  });

  test('wrk -t2 -c1000 -d4s (keep-alive): no socket errors', async (t) => {
    const app = await getApp(t, ['ip', 'wrk']);
    if (!app) return;
    const before = tapDrops(app);
    // Port 8081: the app's server with Node's default keepAliveTimeout (see compat-http.mjs).
    const r = await runIn(app.ns, 'wrk', ['-t2', '-c1000', '-d4s', '--timeout', '5s', `http://${app.stackIp}:8081/hello`], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    t.diagnostic(r.stdout.split('\n').filter((l) => /requests in|Socket errors/.test(l)).join('; '));
    assert.equal(tapDrops(app) - before, 0, 'frames dropped by the kernel side of the TAP device');
    assert.doesNotMatch(r.stdout, /Socket errors/, r.stdout);
  });

  test('keepAliveTimeout 1 s: an idle keep-alive connection is closed by the server within ~2 s', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, KEEPALIVE_IDLE, [app.stackIp]);
    const [data, secs] = out.trim().split(' ');
    assert.equal(data, "b''", 'EOF, no data');
    assert.ok(Number(secs) >= 0.8 && Number(secs) < 3, `closed after ${secs} s`);
  });

  test('500 concurrent connections, one request each: all 500 answered', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, MANY_CONNS, [app.stackIp, '500'], 60_000);
    assert.equal(out.trim(), '500');
  });
});

describe('node:https server (compat-https.mjs) under tstack run', () => {
  test('curl -k fetches 10 MB over TLS (SHA-256 equal) and ab -n 2000 -c 20 over TLS has 0 failed', async (t) => {
    if (!requireRoot(t, ['ip', 'curl', 'ab', 'openssl'])) return;
    const dir = mkdtempSync(join(tmpdir(), 'cmp-tls-'));
    try {
      const key = join(dir, 'key.pem'), cert = join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=tstack'], { stdio: 'ignore' });
      const app = await startApp({
        prefix: 'cmp-tls', subnet: 168, app: 'test/fixtures/apps/compat-https.mjs', env: { PORT: '8443', TLS_KEY: key, TLS_CERT: cert },
        ready: /compat-https: listening on 8443/,
      });
      try {
        assert.equal(await sh(app, `curl -sSk --max-time 5 https://${app.stackIp}:8443/`), 'hello tls\n');
        const out = await sh(app, `curl -sSk --max-time 20 'https://${app.stackIp}:8443/big?bytes=10000000' | sha256sum`);
        assert.equal(out.trim(), `${sha256(pattern(10_000_000))}  -`);
        const r = await runIn(app.ns, 'ab', ['-q', '-n', '2000', '-c', '20', '-s', '10', `https://${app.stackIp}:8443/`], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /Complete requests:\s+2000\n/, r.stdout);
        assert.match(r.stdout, /Failed requests:\s+0\n/, r.stdout);
        t.diagnostic(`ab over TLS: ${/Requests per second:\s+([\d.]+)/.exec(r.stdout)?.[1]} requests/s`);
      } finally {
        await app.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('node:http2 server (compat-http2.mjs) under tstack run', () => {
  test('curl --http2-prior-knowledge: a 5 MB body (SHA-256 equal) and 20 parallel requests, all HTTP/2 200', async (t) => {
    if (!requireRoot(t, ['ip', 'curl'])) return;
    const app = await startApp({
      prefix: 'cmp-h2', subnet: 171, app: 'test/fixtures/apps/compat-http2.mjs', env: { PORT: '8080', BYTES: '5000000' },
      ready: /compat-http2: listening on 8080/,
    });
    try {
      const url = `http://${app.stackIp}:8080`;
      assert.equal(await sh(app, `curl -sS --max-time 5 --http2-prior-knowledge ${url}/`), 'h2 hello\n');
      const out = await sh(app, `curl -sS --max-time 20 --http2-prior-knowledge ${url}/big | sha256sum`);
      assert.equal(out.trim(), `${sha256(pattern(5_000_000))}  -`);
      const codes = await sh(app, `for i in $(seq 20); do curl -sS --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_version}:%{http_code}\\n' ${url}/ & done; wait`);
      assert.deepEqual(codes.trim().split('\n'), Array(20).fill('2:200'));
    } finally {
      await app.stop();
    }
  });
});

// ---- 2. frameworks -----------------------------------------------------------------------

describe('express.static (compat-express-static.mjs) under tstack run', () => {
  const getApp = lazyApp({
    prefix: 'cmp-expr', subnet: 161, app: 'test/fixtures/apps/compat-express-static.mjs', env: { PORT: '3000' },
    ready: /compat-express-static: listening on 3000/,
  });

  test('serves a 1 MiB file whole and as byte ranges (curl -r): 206, Content-Range, bytes equal', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const dir = mkdtempSync(join(tmpdir(), 'cmp-expr-'));
    try {
      const url = `http://${app.stackIp}:3000/blob.bin`;
      const code = await sh(app, `curl -sS --max-time 10 -o ${dir}/whole -w '%{http_code}' ${url}`);
      assert.equal(code, '200');
      const whole = readFileSync(join(dir, 'whole'));
      assert.equal(whole.length, 1 << 20);
      for (const [range, start, end] of [['0-99', 0, 99], ['500000-599999', 500000, 599999], ['-100', (1 << 20) - 100, (1 << 20) - 1], ['1048000-', 1048000, (1 << 20) - 1]] as const) {
        const out = await sh(app, `curl -sS --max-time 10 -r ${range} -D ${dir}/h -o ${dir}/part -w '%{http_code}' ${url}`);
        assert.equal(out, '206', `range ${range}`);
        assert.match(readFileSync(join(dir, 'h'), 'utf8'), new RegExp(`content-range: bytes ${start}-${end}/${1 << 20}`, 'i'));
        assert.ok(readFileSync(join(dir, 'part')).equals(whole.subarray(start, end + 1)), `range ${range} bytes`);
      }
      // A conditional GET with the ETag: 304 and no body.
      const etag = /etag: (\S+)/i.exec(readFileSync(join(dir, 'h'), 'utf8'))![1]!;
      const cond = await sh(app, `curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{size_download}' -H 'If-None-Match: ${etag}' ${url}`);
      assert.equal(cond, '304 0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fastify (compat-fastify-json.mjs) under tstack run', () => {
  const getApp = lazyApp({
    prefix: 'cmp-fast', subnet: 162, app: 'test/fixtures/apps/compat-fastify-json.mjs', env: { PORT: '3000' },
    ready: /compat-fastify-json: listening on 3000/,
  });

  test('a 1 MB JSON body goes in and comes back out equal', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app) return;
    const dir = mkdtempSync(join(tmpdir(), 'cmp-fast-'));
    try {
      const items = Array.from({ length: 20000 }, (_, i) => ({ i, name: `item-${i}`, tags: ['a', 'b', String(i % 7)] }));
      const body = JSON.stringify({ items });
      assert.ok(body.length > 1_000_000, `${body.length} bytes`);
      writeFileSync(join(dir, 'in.json'), body);
      const code = await sh(app, `curl -sS --max-time 10 -H 'content-type: application/json' --data-binary @${dir}/in.json -o ${dir}/out.json -w '%{http_code}' http://${app.stackIp}:3000/json`);
      assert.equal(code, '200');
      const got = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as { count: number; items: unknown[] };
      assert.equal(got.count, 20000);
      assert.equal(sha256(JSON.stringify(got.items)), sha256(JSON.stringify(items)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ws (compat-ws.mjs) under tstack run', () => {
  const getApp = lazyApp({
    prefix: 'cmp-ws', subnet: 163, app: 'test/fixtures/apps/compat-ws.mjs', env: { PORT: '8080' },
    ready: /compat-ws: listening on 8080/,
  });

  test('1 MiB binary messages both ways, 1,000 small ones in order, ping/pong, close 4000 with its reason', async (t) => {
    const app = await getApp(t, ['ip']);
    if (!app) return;
    const r = await runIn(app.ns, process.execPath, ['test/fixtures/apps/compat-ws-client.mjs', `ws://${app.stackIp}:8080/`], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n--- app:\n${app.output()}`);
    assert.equal(r.stdout, 'big 3x1MiB ok\nsmall 1000 ok\npong ok, server says pings 1\nclose 4000 bye from tstack\n');
  });

  test('100 clients at once, 10 echoes each: all in order', async (t) => {
    const app = await getApp(t, ['ip']);
    if (!app) return;
    const r = await runIn(app.ns, process.execPath, ['test/fixtures/apps/compat-ws-many.mjs', `ws://${app.stackIp}:8080/`, '100'], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok 100 fail 0 /, r.stdout + r.stderr);
    t.diagnostic(r.stdout.trim());
  });

  test('300 clients at once, 10 echoes each: all in order, and no frame dropped on the way to the stack', async (t) => {
    const app = await getApp(t, ['ip']);
    if (!app) return;
    const before = tapDrops(app);
    const r = await runIn(app.ns, process.execPath, ['test/fixtures/apps/compat-ws-many.mjs', `ws://${app.stackIp}:8080/`, '300'], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok 300 fail 0 /, r.stdout + r.stderr);
    t.diagnostic(r.stdout.trim());
    assert.equal(tapDrops(app) - before, 0, 'frames dropped by the kernel side of the TAP device');
  });
});

// ---- 3. node:net -------------------------------------------------------------------------

const NET_ECHO = `
import hashlib, os, socket, sys, threading
n = int(sys.argv[2])
block = os.urandom(1 << 20)
s = socket.create_connection((sys.argv[1], 7001), timeout=20)
sent = hashlib.sha256()
def send():
    left = n
    while left > 0:
        c = block[:min(left, len(block))]
        s.sendall(c)
        sent.update(c)
        left -= len(c)
    s.shutdown(socket.SHUT_WR)
th = threading.Thread(target=send)
th.start()
got = hashlib.sha256()
total = 0
while True:
    d = s.recv(1 << 16)
    if not d:
        break
    total += len(d)
    got.update(d)
th.join()
print(total, got.hexdigest() == sent.hexdigest())
`;

/** connect, send argv[3] bytes, shutdown(SHUT_WR), read to EOF: prints what came back (repr) and the time. */
const HALF_CLOSE = `
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b'x' * int(sys.argv[3]))
t0 = time.monotonic()
if int(sys.argv[3]) >= 0:
    s.shutdown(socket.SHUT_WR)
buf = b''
while True:
    d = s.recv(4096)
    if not d:
        break
    buf += d
print(repr(buf), round(time.monotonic() - t0, 2))
`;

const INFO = `
import json, socket, sys, time
def ask(s):
    s.sendall(b'info\\n')
    buf = b''
    while not buf.endswith(b'\\n'):
        buf += s.recv(4096)
    return json.loads(buf)
socks = [socket.create_connection((sys.argv[1], 7005), timeout=5) for _ in range(3)]
a = ask(socks[2])
me = socks[2].getsockname()
print(json.dumps({'first': a, 'me': [me[0], me[1]]}))
socks[0].close(); socks[1].close()
time.sleep(0.5)
print(json.dumps(ask(socks[2])))
`;

/** argv: ip port n. Sends n bytes, shuts down, prints the reply, the send time and the total time. */
const PAUSED_PEER = `
import socket, sys, time
n = int(sys.argv[3])
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
t0 = time.monotonic()
s.sendall(b'\\x5a' * n)
t1 = time.monotonic()
s.shutdown(socket.SHUT_WR)
buf = b''
while True:
    d = s.recv(100)
    if not d:
        break
    buf += d
print(buf.strip().decode(), round(t1 - t0, 2), round(time.monotonic() - t0, 2))
`;

const SINK = `
import socket, sys, time
n = int(sys.argv[2])
block = b'\\xa5' * (1 << 20)
s = socket.create_connection((sys.argv[1], 7006), timeout=20)
t0 = time.monotonic()
left = n
while left > 0:
    c = block if left >= len(block) else block[:left]
    s.sendall(c)
    left -= len(c)
s.shutdown(socket.SHUT_WR)
buf = b''
while True:
    d = s.recv(4096)
    if not d:
        break
    buf += d
dt = time.monotonic() - t0
print(buf.decode().strip(), round(n / dt / 1048576, 1))
`;

const SOURCE = `
import hashlib, socket, sys, time
n = int(sys.argv[2])
s = socket.create_connection((sys.argv[1], 7007), timeout=20)
t0 = time.monotonic()
s.sendall(b'%d\\n' % n)
h = hashlib.sha256()
total = 0
while True:
    d = s.recv(1 << 18)
    if not d:
        break
    total += len(d)
    h.update(d)
dt = time.monotonic() - t0
print(total, h.hexdigest(), round(total / dt / 1048576, 1))
`;

// /usr/bin/python3 has scapy (the python3 on PATH may not).
const SCAPY = '/usr/bin/python3';

/** argv: iface stackIp hostIp port mode. A hand-made TCP client (scapy) against an echo
 *  server: out-of-order segments, one overlapping queued data (mode "same": with the same
 *  bytes; "differ": with other bytes), an old duplicate, data beyond the window, then a FIN.
 *  Prints the echoed stream, whether the server's FIN came, and the ACK numbers seen. The
 *  kernel's RSTs for this port range are dropped by nftables (it knows nothing of the flow). */
const HANDMADE_TCP = `
import sys, time, random
from scapy.all import Ether, IP, TCP, Raw, sendp, get_if_hwaddr, getmacbyip, conf, AsyncSniffer
conf.verb = 0
iface, dst, me, dport, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
dmac = getmacbyip(dst)
eth = Ether(src=get_if_hwaddr(iface), dst=dmac)
sport = random.randint(20000, 30000)
got = []
def seen(p):
    if TCP in p and p[IP].src == dst and p[TCP].dport == sport:
        got.append(p)
sn = AsyncSniffer(iface=iface, filter='tcp and src host %s and dst port %d' % (dst, sport), prn=seen, store=False)
sn.start()
time.sleep(0.3)
ip = IP(src=me, dst=dst)
isn = 1000
sendp(eth / ip / TCP(sport=sport, dport=dport, flags='S', seq=isn, window=65535, options=[('MSS', 1460)]), iface=iface)
t0 = time.time()
while not any(p[TCP].flags == 'SA' for p in got) and time.time() - t0 < 2:
    time.sleep(0.01)
sa = [p for p in got if p[TCP].flags == 'SA'][0]
irs = sa[TCP].seq
base = isn + 1
ack = irs + 1
def seg(off, data, flags='PA'):
    sendp(eth / ip / TCP(sport=sport, dport=dport, flags=flags, seq=base + off, ack=ack, window=65535) / Raw(data), iface=iface)
sendp(eth / ip / TCP(sport=sport, dport=dport, flags='A', seq=base, ack=ack, window=65535), iface=iface)
time.sleep(0.1)
seg(4, b'BBBB')            # out of order: a hole at 0..3
seg(8, b'CCCCCC')          # more out of order
seg(12, b'XXDDDD' if mode == 'differ' else b'CCDDDD')  # overlaps the queued CCCCCC at 12..13
seg(0, b'AAAA')            # fills the hole: 0..17 now contiguous
time.sleep(0.2)
seg(0, b'AAAA')            # an old duplicate: ACKed, not delivered twice
seg(16, b'DDEE')           # overlaps the received tail, adds EE at 18..19
seg(100000, b'far')        # beyond the window: dropped (and ACKed)
time.sleep(0.3)
# Reassemble what the stack echoed; ACK it all with our FIN.
data = {}
for p in got:
    n = p[IP].len - p[IP].ihl * 4 - p[TCP].dataofs * 4  # not bytes(payload): that has the Ethernet padding
    if n > 0:
        data[(p[TCP].seq - irs - 1) & 0xffffffff] = bytes(p[TCP].payload)[:n]
stream = bytearray()
for off in sorted(data):
    d = data[off]
    if off <= len(stream):
        stream[off:off + len(d)] = d
nxt = (irs + 1 + len(stream)) & 0xffffffff
sendp(eth / ip / TCP(sport=sport, dport=dport, flags='FA', seq=base + 20, ack=nxt, window=65535), iface=iface)
time.sleep(0.4)
fin = [p for p in got if p[TCP].flags & 0x01]
acks = sorted(set((p[TCP].ack - base) & 0xffffffff for p in got if p[TCP].flags & 0x10))
if fin:
    sendp(eth / ip / TCP(sport=sport, dport=dport, flags='A', seq=base + 21, ack=fin[0][TCP].seq + 1, window=65535), iface=iface)
sn.stop()
print(bytes(stream).decode(), 'fin' if fin else 'nofin', 'acks', ','.join(map(str, acks)))
`;

/** Like requireRoot for scapy: skips without it, but fails under CI. */
function requireScapy(t: { skip(m?: string): void }): boolean {
  if (existsSync(SCAPY)) return true;
  if (process.env['CI']) throw new Error(`integration test cannot run under CI: needs ${SCAPY} with scapy`);
  t.skip(`needs ${SCAPY} with scapy`);
  return false;
}

async function withKernelRstsDropped<T>(app: RunningApp, fn: () => Promise<T>): Promise<T> {
  await sh(app, `nft add table inet cmpnorst && nft add chain inet cmpnorst out '{ type filter hook output priority 0; }' && nft add rule inet cmpnorst out tcp flags rst tcp sport 20000-30000 drop`);
  try { return await fn(); } finally { await runIn(app.ns, 'nft', ['delete', 'table', 'inet', 'cmpnorst']); }
}

describe('node:net servers (compat-net.mjs) under tstack run', () => {
  const getApp = lazyApp({
    prefix: 'cmp-net', subnet: 164, app: 'test/fixtures/apps/compat-net.mjs', env: { BASE: '7000', STACK_IP: '198.18.164.2' },
    ready: /compat-net: ready/,
  });

  test('an echo server returns 50 MB unchanged (SHA-256) to a python client sending and reading at once', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, NET_ECHO, [app.stackIp, String(50 << 20)], 60_000);
    assert.equal(out.trim(), `${50 << 20} True`);
  });

  test('half-close with allowHalfOpen: the server sees end, replies, then ends; the client reads reply + EOF', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, HALF_CLOSE, [app.stackIp, '7002', '1000']);
    assert.match(out, /^b'got 1000\\n' /);
    await app.waitForOutput(/half-open end after 1000 bytes, writable=true\n/);
    await app.waitForOutput(/half-open close\n/);
  });

  test('without allowHalfOpen the peer\'s FIN ends the server\'s side too: the client reads EOF at once', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, HALF_CLOSE, [app.stackIp, '7003', '10']);
    const [data, secs] = out.trim().split(' ');
    assert.equal(data, "b''");
    assert.ok(Number(secs) < 0.5, `EOF after ${secs} s`);
    await app.waitForOutput(/no-half-open end\ncompat-net: no-half-open finish\ncompat-net: no-half-open close hadError=false\n/);
  });

  test('socket.setTimeout(300) fires on an idle connection (the server then ends it)', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    // -1: no bytes, no shutdown: the connection is idle until the server's timeout.
    const out = await py(app, HALF_CLOSE, [app.stackIp, '7004', '-1']);
    const [, data, secs] = /^(.*) ([\d.]+)$/.exec(out.trim())!;
    assert.equal(data, "b'idle timeout\\n'");
    assert.ok(Number(secs) >= 0.25 && Number(secs) < 1.5, `${secs} s`);
    const m = await app.waitForOutput(/timeout fired after (\d+) ms/);
    assert.ok(Number(m[1]) >= 295, m[0]);
  });

  test('a second listen on a port in use emits EADDRINUSE, as Node words it', async (t) => {
    const app = await getApp(t, ['ip']);
    if (!app) return;
    await app.waitForOutput(/second listen: EADDRINUSE listen listen EADDRINUSE: address already in use :::7001\n/);
  });

  test('listen(0): address().port is the real port, and a kernel client connects to it', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const port = Number((await app.waitForOutput(/listen\(0\) port=(\d+)/))[1]);
    assert.ok(port >= 1024 && port <= 65535, String(port));
    const out = await py(app, HALF_CLOSE, [app.stackIp, String(port), '0']);
    assert.match(out, /^b'zero\\n' /);
  });

  test('listen on "::", "0.0.0.0", the stack\'s IP and no host all accept IPv4 clients', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    for (const [port, name] of [[7010, 'any6'], [7011, 'any4'], [7012, 'own'], [7013, 'nohost']] as const) {
      const out = await py(app, HALF_CLOSE, [app.stackIp, String(port), '0']);
      assert.match(out, new RegExp(`^b'${name}\\\\n' `), `port ${port}`);
    }
  });

  test('getConnections counts open connections; remote/local address and port are what the client sees', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const [l1, l2] = (await py(app, INFO, [app.stackIp])).trim().split('\n');
    const { first, me } = JSON.parse(l1!) as { first: Record<string, unknown>; me: [string, number] };
    // A server listening without a host is Node's dual-stack `::`: IPv4 peers appear IPv4-mapped.
    assert.deepEqual(first, { err: null, count: 3, remoteAddress: `::ffff:${me[0]}`, remotePort: me[1], remoteFamily: 'IPv6', localAddress: `::ffff:${app.stackIp}`, localPort: 7005 });
    assert.equal(me[0], app.hostIp);
    assert.equal((JSON.parse(l2!) as { count: number }).count, 1);
  });

  test('a server that pauses 1.5 s before reading (its receive window closes) then gets all 20 MB, soon after resuming', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const [count, , total] = (await py(app, PAUSED_PEER, [app.stackIp, '7008', String(20_000_000)])).trim().split(' ');
    assert.equal(count, '20000000');
    // The stack must announce the reopened window itself: waiting for the client's
    // zero-window probes (exponential back-off) would take seconds longer.
    assert.ok(Number(total) >= 1.4 && Number(total) < 4, `done after ${total} s`);
    await app.waitForOutput(/paused reader resumes with \d+ bytes buffered/);
  });

  test('a hand-made TCP peer (scapy): out-of-order and overlapping segments are reassembled, a duplicate is not delivered twice, data beyond the window is dropped, FIN answered', async (t) => {
    const app = await getApp(t, ['ip', 'nft']);
    if (!app || !requireScapy(t)) return;
    const out = await withKernelRstsDropped(app, () => py(app, HANDMADE_TCP, [app.ifname, app.stackIp, app.hostIp, '7001', 'same'], 30_000, SCAPY));
    const m = /^(\S+) (fin|nofin) acks ([\d,]+)$/.exec(out.trim());
    assert.ok(m, out);
    assert.equal(m[1], 'AAAABBBBCCCCCCDDDDEE');
    assert.equal(m[2], 'fin', 'the echo server ended after our FIN');
    const acks = m[3]!.split(',').map(Number);
    for (const a of [18, 20, 21]) assert.ok(acks.includes(a), `ACK ${a} in ${acks}`);
    assert.ok(Math.max(...acks) === 21, `nothing beyond the window or past the FIN was acknowledged: ${acks}`);
  });

  test('overlapping out-of-order data with different bytes: the bytes queued first are kept, as Linux keeps them', async (t) => {
    const app = await getApp(t, ['ip', 'nft']);
    if (!app || !requireScapy(t)) return;
    const out = await withKernelRstsDropped(app, () => py(app, HANDMADE_TCP, [app.ifname, app.stackIp, app.hostIp, '7001', 'differ'], 30_000, SCAPY));
    assert.match(out.trim(), /^AAAABBBBCCCCCCDDDDEE fin /);
  });

  // ---- 5. iperf-style ----

  test('a Node TCP sink receives all of 200 MB from a python client (byte count equal)', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const n = 200 << 20;
    const [got, mibs] = (await py(app, SINK, [app.stackIp, String(n)], 60_000)).trim().split(' ');
    assert.equal(Number(got), n);
    t.diagnostic(`python -> node sink: ${mibs} MiB/s`);
  });

  test('a Node TCP source sends 200 MB to a python sink (count and SHA-256 equal)', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const n = 200 << 20;
    const [got, hash, mibs] = (await py(app, SOURCE, [app.stackIp, String(n)], 60_000)).trim().split(' ');
    assert.equal(Number(got), n);
    await app.waitForOutput(new RegExp(`source sent ${n} bytes sha256=${hash}`));
    t.diagnostic(`node source -> python: ${mibs} MiB/s`);
  });
});

/** A kernel-side echo server (argv: ip port): echoes each connection until its FIN, then
 *  closes; serves argv[3] connections, then exits. */
const UPSTREAM_ECHO = `
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(16)
print('ready', flush=True)
def serve(c):
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    c.close()
ths = []
for i in range(int(sys.argv[3])):
    c, _ = srv.accept()
    th = threading.Thread(target=serve, args=(c,))
    th.start()
    ths.append(th)
for th in ths:
    th.join()
`;

describe('an L4 proxy (compat-proxy.mjs): a server and a client on the stack at once', () => {
  test('20 MB through the proxy to a kernel-side echo server and back (SHA-256), with the half-close passed along', async (t) => {
    if (!requireRoot(t, ['ip', 'python3'])) return;
    const app = await startApp({
      prefix: 'cmp-proxy', subnet: 169, app: 'test/fixtures/apps/compat-proxy.mjs',
      env: { PORT: '7000', UPSTREAM_HOST: '198.18.169.1', UPSTREAM_PORT: '9100' },
      ready: /compat-proxy: listening on 7000/,
    });
    try {
      const upstream = runIn(app.ns, 'python3', ['-u', '-c', UPSTREAM_ECHO, app.hostIp, '9100', '2'], { timeoutMs: 60_000 });
      await new Promise((res) => setTimeout(res, 500));
      const NET_ECHO_7000 = NET_ECHO.replace('7001', '7000');
      const [a, b] = await Promise.all([
        py(app, NET_ECHO_7000, [app.stackIp, String(20 << 20)], 60_000),
        py(app, NET_ECHO_7000, [app.stackIp, String(3 << 20)], 60_000),
      ]);
      assert.equal(a.trim(), `${20 << 20} True`);
      assert.equal(b.trim(), `${3 << 20} True`);
      const up = await upstream;
      assert.equal(up.code, 0, up.stderr);
      await app.waitForOutput(new RegExp(`compat-proxy: connected 2 via ${app.stackIp.replace(/\./g, '\\.')}:\\d+`));
    } finally {
      await app.stop();
    }
  });
});

// ---- 4. node:dgram -----------------------------------------------------------------------

const UDP_BURST = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.settimeout(3)
dst = (sys.argv[1], 9000)
ok = bad = lost = 0
# 10 windows of 100 datagrams (sizes 1..1400): send the window, then read its echoes.
for w in range(10):
    sent = {}
    for i in range(100):
        k = w * 100 + i
        msg = b'%05d' % k + os.urandom((k * 131) % 1396)
        sent[k] = msg
        s.sendto(msg, dst)
    for i in range(100):
        try:
            d, peer = s.recvfrom(65536)
        except socket.timeout:
            break
        k = int(d[:5])
        if sent.pop(k, None) == d and peer == dst:
            ok += 1
        else:
            bad += 1
    lost += len(sent)
print(ok, bad, lost)
`;

/** argv: ip count size. Sends count datagrams back to back, then counts distinct echoes. */
const UDP_BLAST = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
s.settimeout(2)
n, size = int(sys.argv[2]), int(sys.argv[3])
for k in range(n):
    s.sendto(b'%05d' % k + b'x' * (size - 5), (sys.argv[1], 9000))
got = set()
try:
    while len(got) < n:
        got.add(int(s.recvfrom(65536)[0][:5]))
except socket.timeout:
    pass
print(len(got))
`;

/** argv: ip n size. Asks the program's control socket to send n datagrams, counts them. */
const UDP_BLAST_RX = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
s.settimeout(3)
s.sendto(('blast %s %s' % (sys.argv[2], sys.argv[3])).encode(), (sys.argv[1], 9001))
got = set()
try:
    while True:
        d = s.recvfrom(65536)[0]
        if d == b'done':
            break
        got.add(int(d[:6]))
except socket.timeout:
    pass
print(len(got))
`;

const UDP_BIG = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
res = []
for n in [int(a) for a in sys.argv[2:]]:
    msg = os.urandom(n)
    s.sendto(msg, (sys.argv[1], 9000))
    try:
        d, _ = s.recvfrom(65536)
        res.append('%d:%s' % (n, d == msg))
    except socket.timeout:
        res.append('%d:timeout' % n)
print(' '.join(res))
`;

const UDP_CTL = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(sys.argv[2].encode(), (sys.argv[1], 9001))
print(s.recvfrom(1024)[0].decode())
`;

describe('node:dgram (compat-udp.mjs) under tstack run', () => {
  const getApp = lazyApp({
    prefix: 'cmp-udp', subnet: 165, app: 'test/fixtures/apps/compat-udp.mjs', env: { PORT: '9000' },
    ready: /compat-udp: listening on 9000/,
  });

  test('1,000 datagrams (1-1400 bytes) are all echoed, unchanged, from the address they were sent to', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, UDP_BURST, [app.stackIp]);
    assert.equal(out.trim(), '1000 0 0', 'ok bad lost');
  });

  test('8,000- and 30,000-byte datagrams (IP fragments) are reassembled and echoed, fragmented, both ways', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, UDP_BIG, [app.stackIp, '8000', '30000', '1472', '1473']);
    assert.equal(out.trim(), '8000:True 30000:True 1472:True 1473:True');
  });

  test('a connect()ed socket sending to a closed kernel port gets \'error\' ECONNREFUSED (recvmsg) per ICMP, as on Node', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, UDP_CTL, [app.stackIp, `probe ${app.hostIp} 9`]);
    assert.equal(out.trim(), 'errors 2');
    await app.waitForOutput(/probe error ECONNREFUSED recvmsg errno=-111\n/);
    await app.waitForOutput(/probe send1 cb ok\n/);
    await app.waitForOutput(/probe send2 cb ok\n/);
  });

  test('5,000 back-to-back 100-byte datagrams (no windowing) are all echoed', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, UDP_BLAST, [app.stackIp, '5000', '100']);
    assert.equal(out.trim(), '5000');
  });

  test('5,000 datagrams sent back to back by the program (100 and 1400 bytes) all reach a kernel socket', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    for (const size of [100, 1400]) {
      const out = await py(app, UDP_BLAST_RX, [app.stackIp, '5000', String(size)]);
      assert.equal(out.trim(), '5000', `size ${size}`);
    }
  });

  test('an unconnected socket sending to a closed kernel port gets no error, as on Node', async (t) => {
    const app = await getApp(t, ['ip', 'python3']);
    if (!app) return;
    const out = await py(app, UDP_CTL, [app.stackIp, `probeu ${app.hostIp} 9`]);
    assert.equal(out.trim(), 'errors 0');
  });
});

// ---- 6. hostile input (scapy) ------------------------------------------------------------

/** argv: iface stackIp hostIp count. 5,000 SYNs from random ports (a tenth of them from random
 *  addresses in the /24) with a few garbage option blocks, sent as fast as scapy can. */
const SYN_FLOOD = `
import random, sys
from scapy.all import Ether, IP, TCP, sendp, get_if_hwaddr, getmacbyip, conf
conf.verb = 0
iface, dst, me, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
net = dst.rsplit('.', 1)[0]
dmac = getmacbyip(dst)
eth = Ether(src=get_if_hwaddr(iface), dst=dmac)
pkts = []
for i in range(n):
    src = me if i % 10 else '%s.%d' % (net, random.randint(50, 250))
    opts = [('MSS', 1460), ('SAckOK', b''), ('WScale', 7)]
    t = TCP(sport=random.randint(1024, 65535), dport=8080, flags='S', seq=random.getrandbits(32), options=opts)
    if i % 500 == 7:
        t = TCP(sport=random.randint(1024, 65535), dport=8080, flags='S', seq=random.getrandbits(32), dataofs=15) / bytes(random.getrandbits(8) for _ in range(40))
    pkts.append(eth / IP(src=src, dst=dst) / t)
sendp(pkts, iface=iface)
print('sent', len(pkts))
`;

/** argv: iface stackIp bytes. Downloads /big slowly on a kernel socket while a second thread
 *  injects, into that connection: data segments with a bad TCP checksum, a bad IP checksum, an
 *  in-window RST with a wrong sequence number (RFC 5961 section 3.2), an in-window SYN (RFC 5961
 *  section 4.2), and an ACK whose option block is garbage. Prints body length, its SHA-256, and
 *  what was injected. */
const INJECT = `
import hashlib, socket, sys, threading, time
from scapy.all import Ether, IP, TCP, Raw, sendp, get_if_hwaddr, getmacbyip, conf, AsyncSniffer
conf.verb = 0
iface, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
dmac = getmacbyip(dst)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.settimeout(10)
s.connect((dst, 8080))
me, cport = s.getsockname()
last = {}
def seen(p):
    if TCP in p and p[IP].src == dst and p[TCP].dport == cport:
        last['ack'] = p[TCP].ack
        last['seq'] = p[TCP].seq + len(p[TCP].payload)
        # The stack only sends data here: a bare ACK is a challenge ACK (RFC 5961).
        if p[TCP].flags == 'A' and len(p[TCP].payload) == 0 and injected:
            last['bare'] = last.get('bare', 0) + 1
injected = []
sn = AsyncSniffer(iface=iface, filter='tcp and host %s and port %d' % (dst, cport), prn=seen, store=False)
sn.start()
time.sleep(0.3)
s.sendall(b'GET /big?bytes=%d HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' % n)
def inject():
    while 'ack' not in last:
        time.sleep(0.01)
    time.sleep(0.2)
    eth = Ether(src=get_if_hwaddr(iface), dst=dmac)
    for k in range(3):
        rn, sn_ = last['ack'], last['seq']
        base = IP(src=me, dst=dst)
        # Data at exactly rcv.nxt with a wrong TCP checksum: must be dropped, else it would
        # corrupt the request stream (the server would answer 400 / close).
        sendp(eth / base / TCP(sport=cport, dport=8080, flags='PA', seq=rn, ack=sn_, chksum=0xdead) / Raw(b'GARBAGE ' * 8), iface=iface)
        # The same with a wrong IP header checksum.
        sendp(eth / IP(src=me, dst=dst, chksum=0xbeef) / TCP(sport=cport, dport=8080, flags='PA', seq=rn, ack=sn_) / Raw(b'GARBAGE ' * 8), iface=iface)
        # RST in the window but not at rcv.nxt: a challenge ACK, not a reset.
        sendp(eth / base / TCP(sport=cport, dport=8080, flags='R', seq=rn + 1000 + k), iface=iface)
        sendp(eth / base / TCP(sport=cport, dport=8080, flags='RA', seq=rn + 20000, ack=sn_), iface=iface)
        # SYN on an established connection: a challenge ACK too.
        sendp(eth / base / TCP(sport=cport, dport=8080, flags='S', seq=rn + 5), iface=iface)
        # An ACK with a garbage option block (kinds 0xfe/0x22, lengths that overrun the header).
        sendp(eth / base / TCP(sport=cport, dport=8080, flags='A', seq=rn, ack=sn_, dataofs=8) / Raw(b''), iface=iface)
        sendp(eth / base / TCP(sport=cport, dport=8080, flags='A', seq=rn, ack=sn_, options=[(0xfe, b'\\x00' * 2), (34, b'\\xff' * 6)]), iface=iface)
        raw = bytes(eth / base / TCP(sport=cport, dport=8080, flags='A', seq=rn, ack=sn_, dataofs=8))
        sendp(Ether(raw[:14 + 20 + 20] + b'\\x08\\xff\\x03\\x00\\x02\\x01\\x05\\x0a\\x00\\x00\\x00\\x00'), iface=iface)
        injected.append(k)
        time.sleep(0.15)
th = threading.Thread(target=inject)
th.start()
buf = bytearray()
while True:
    d = s.recv(32768)
    if not d:
        break
    buf += d
    time.sleep(0.003)
th.join()
sn.stop()
head, _, body = bytes(buf).partition(b'\\r\\n\\r\\n')
print(head.split(b'\\r\\n')[0].decode(), len(body), hashlib.sha256(body).hexdigest(), 'rounds', len(injected), 'bare-acks', last.get('bare', 0))
`;

/** argv: iface stackIp hostIp. Well-defined probes (answers asserted), then a volley of malformed
 *  frames (Xmas/SYN+FIN/SYN+RST flags, a land packet, bad data offsets and IHLs, lying IP
 *  lengths, IP options, unknown protocols, absurd TCP options, short UDP lengths, ICMP errors
 *  quoting nothing, martian sources, overlapping and oversize fragments, truncated IPv4 and
 *  ARP), then a ping that must still be answered. */
const BATTERY = `
import random, sys
from scapy.all import Ether, IP, TCP, UDP, ICMP, Raw, sendp, srp1, get_if_hwaddr, getmacbyip, conf, fragment
conf.verb = 0
iface, dst, me = sys.argv[1], sys.argv[2], sys.argv[3]
dmac = getmacbyip(dst)
eth = Ether(src=get_if_hwaddr(iface), dst=dmac)
res = []
def ask(name, pkt, timeout=1):
    r = srp1(eth / pkt, iface=iface, timeout=timeout)
    if r is None:
        res.append('%s:none' % name); return None
    if TCP in r:
        res.append('%s:%s,seq=%d,ack=%d' % (name, r[TCP].flags, r[TCP].seq, r[TCP].ack))
    elif ICMP in r:
        res.append('%s:icmp%d/%d' % (name, r[ICMP].type, r[ICMP].code))
    else:
        res.append('%s:%s' % (name, r.summary()))
    return r
ask('syn-closed', IP(src=me, dst=dst) / TCP(sport=40001, dport=9, flags='S', seq=1000))
ask('ack-closed', IP(src=me, dst=dst) / TCP(sport=40002, dport=9, flags='A', seq=1000, ack=5555))
ask('ack-listen', IP(src=me, dst=dst) / TCP(sport=40003, dport=8080, flags='A', seq=1000, ack=7777))
ask('null-listen', IP(src=me, dst=dst) / TCP(sport=40004, dport=8080, flags='', seq=1000), 0.5)
ask('fin-listen', IP(src=me, dst=dst) / TCP(sport=40005, dport=8080, flags='F', seq=1000), 0.5)
ask('udp-closed', IP(src=me, dst=dst) / UDP(sport=40006, dport=9) / Raw(b'x'))
ask('ping', IP(src=me, dst=dst) / ICMP(id=7, seq=1) / Raw(b'abc'))
# Bad checksums: no answer at all (verified in software: TAP hands these over with flags 0).
ask('syn-badsum', IP(src=me, dst=dst) / TCP(sport=40007, dport=8080, flags='S', seq=1000, chksum=0xdead), 0.5)
ask('syn-badipsum', IP(src=me, dst=dst, chksum=0xbeef) / TCP(sport=40008, dport=8080, flags='S', seq=1000), 0.5)
ask('ping-badsum', IP(src=me, dst=dst) / ICMP(id=7, seq=2, chksum=0xbeef) / Raw(b'abc'), 0.5)
ask('udp-badsum', IP(src=me, dst=dst) / UDP(sport=40009, dport=9, chksum=0xbeef) / Raw(b'x'), 0.5)
# survival: malformed things, no answer expected or asserted
junk = [
    IP(src=me, dst=dst) / TCP(sport=40010, dport=8080, flags='SF', seq=1),
    IP(src=me, dst=dst) / TCP(sport=40011, dport=8080, flags='SR', seq=1),
    IP(src=me, dst=dst) / TCP(sport=40012, dport=8080, flags='FSRPAUEC', seq=1),
    IP(src=dst, dst=dst) / TCP(sport=8080, dport=8080, flags='S', seq=1),  # land
    IP(src=me, dst=dst) / TCP(sport=40013, dport=8080, flags='S', dataofs=2),
    IP(src=me, dst=dst) / TCP(sport=40014, dport=8080, flags='S', dataofs=15),
    IP(src=me, dst=dst, ihl=15) / TCP(sport=40015, dport=8080, flags='S'),
    IP(src=me, dst=dst, ihl=3) / TCP(sport=40016, dport=8080, flags='S'),
    IP(src=me, dst=dst, len=10) / TCP(sport=40017, dport=8080, flags='S'),
    IP(src=me, dst=dst, len=2000) / TCP(sport=40018, dport=8080, flags='S'),
    IP(src=me, dst=dst, options=b'\\x07\\x27\\x04' + b'\\x00' * 37) / TCP(sport=40019, dport=8080, flags='S'),
    IP(src=me, dst=dst, options=b'\\x44\\xff\\x05\\x00') / TCP(sport=40020, dport=8080, flags='S'),
    IP(src=me, dst=dst, proto=200) / Raw(b'zz'),
    IP(src=me, dst=dst) / TCP(sport=40021, dport=8080, flags='S', options=[('MSS', 0)]),
    IP(src=me, dst=dst) / TCP(sport=40022, dport=8080, flags='S', options=[('WScale', 200)]),
    IP(src=me, dst=dst) / TCP(sport=40023, dport=8080, flags='S', options=[('SAck', (1, 2, 3))]),
    IP(src=me, dst=dst) / TCP(sport=40024, dport=8080, flags='S') / Raw(b'data in syn'),
    IP(src=me, dst=dst) / UDP(sport=40025, dport=9000, len=3),
    IP(src=me, dst=dst) / UDP(sport=40026, dport=9000, len=5000) / Raw(b'x'),
    IP(src=me, dst=dst) / ICMP(type=3, code=3) / Raw(b'\\x45'),
    IP(src=me, dst=dst) / ICMP(type=3, code=4) / IP(src=dst, dst=me) / TCP(sport=8080, dport=40001),
    IP(src=me, dst=dst) / ICMP(type=8) / Raw(b'x' * 1400),
    IP(src='255.255.255.255', dst=dst) / ICMP(type=8),
    IP(src='0.0.0.0', dst=dst) / TCP(sport=40027, dport=8080, flags='S'),
    IP(src='224.0.0.1', dst=dst) / TCP(sport=40028, dport=8080, flags='S'),
]
for p in junk:
    sendp(eth / p, iface=iface)
# overlapping and oversize fragments
big = IP(src=me, dst=dst, id=4242) / ICMP(type=8, id=9) / Raw(b'y' * 4000)
frags = fragment(big, fragsize=1000)
sendp([eth / f for f in frags + frags[::-1]], iface=iface)
pod = IP(src=me, dst=dst, id=4343, flags='MF', frag=0) / ICMP(type=8) / Raw(b'p' * 1400)
last = IP(src=me, dst=dst, id=4343, proto=1, frag=8189) / Raw(b'q' * 1400)  # offset*8 + len > 65535
sendp([eth / pod, eth / last], iface=iface)
sendp([eth / IP(src=me, dst=dst, id=4444, proto=1, flags='MF', frag=0) / Raw(b'\\x08\\x00' + b'a' * 6), eth / IP(src=me, dst=dst, id=4444, proto=1, frag=0) / Raw(b'b' * 16)], iface=iface)
sendp(Ether(src=get_if_hwaddr(iface), dst=dmac, type=0x0800) / Raw(b'\\x45\\x00'), iface=iface)
sendp(Ether(src=get_if_hwaddr(iface), dst=dmac, type=0x0806) / Raw(b'\\x00\\x01\\x08\\x00\\x06'), iface=iface)
ask('ping-after', IP(src=me, dst=dst) / ICMP(id=8, seq=2) / Raw(b'def'))
print(' '.join(res))`;

describe('hostile input from scapy against compat-http.mjs under tstack run', () => {
  const getApp = lazyApp({
    prefix: 'cmp-hostile', subnet: 166, app: 'test/fixtures/apps/compat-http.mjs', env: { PORT: '8080' },
    ready: /compat-http: listening on :::8080/,
  });

  test('RFC 9293 answers to probes (RST forms, ICMP port unreachable, echo), silence for bad checksums, and a volley of malformed frames leaves the stack answering', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app || !requireScapy(t)) return;
    const out = await py(app, BATTERY, [app.ifname, app.stackIp, app.hostIp], 60_000, SCAPY);
    assert.equal(out.trim(), [
      // §3.10.7.1: no ACK -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; ACK -> <SEQ=SEG.ACK><CTL=RST>
      'syn-closed:RA,seq=0,ack=1001', 'ack-closed:R,seq=5555,ack=0',
      // §3.10.7.2: an ACK to a listener gets <SEQ=SEG.ACK><CTL=RST>; no SYN, no ACK: dropped
      'ack-listen:R,seq=7777,ack=0', 'null-listen:none', 'fin-listen:none',
      'udp-closed:icmp3/3', 'ping:icmp0/0',
      'syn-badsum:none', 'syn-badipsum:none', 'ping-badsum:none', 'udp-badsum:none',
      'ping-after:icmp0/0',
    ].join(' '));
    assert.equal(await sh(app, `curl -sS --max-time 5 http://${app.stackIp}:8080/hello`), 'hello \n');
    assert.equal(app.child.exitCode, null, 'the program is still running');
  });

  test('a burst of 5,000 SYNs (random ports, some random sources, some garbage options): curl is answered during and after', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app || !requireScapy(t)) return;
    const flood = runIn(app.ns, SCAPY, ['-c', SYN_FLOOD, app.ifname, app.stackIp, app.hostIp, '5000'], { timeoutMs: 60_000 });
    // While the flood runs: curl keeps getting answers.
    let during = 0;
    const floodDone = flood.then((r) => { assert.equal(r.code, 0, r.stderr); return r; });
    let finished = false;
    void floodDone.finally(() => { finished = true; });
    while (!finished) {
      const r = await runIn(app.ns, 'curl', ['-sS', '--max-time', '5', `http://${app.stackIp}:8080/hello?i=${during}`]);
      assert.equal(r.code, 0, `curl during the flood: ${r.stderr}`);
      assert.equal(r.stdout, `hello ${during}\n`);
      during++;
      await new Promise((res) => setTimeout(res, 50));
    }
    const r = await floodDone;
    assert.match(r.stdout, /sent 5000/);
    for (let i = 0; i < 5; i++) {
      assert.equal(await sh(app, `curl -sS --max-time 5 http://${app.stackIp}:8080/hello?i=after${i}`), `hello after${i}\n`);
    }
    t.diagnostic(`${during} curl requests answered during the flood`);
  });

  test('bad checksums, an in-window RST with a wrong sequence number, a SYN and garbage options do not break an established transfer', async (t) => {
    const app = await getApp(t, ['ip', 'curl']);
    if (!app || !requireScapy(t)) return;
    const n = 8_000_000;
    const out = await py(app, INJECT, [app.ifname, app.stackIp, String(n)], 60_000, SCAPY);
    const m = /^(.*) bare-acks (\d+)$/.exec(out.trim());
    assert.ok(m, out);
    assert.equal(m[1], `HTTP/1.1 200 OK ${n} ${sha256(pattern(n))} rounds 3`);
    t.diagnostic(`bare ACKs from the stack after the injections began: ${m[2]}`);
    assert.ok(Number(m[2]) >= 1, 'the stack answered the in-window RST/SYN with a challenge ACK');
    assert.equal(await sh(app, `curl -sS --max-time 5 http://${app.stackIp}:8080/hello`), 'hello \n');
  });
});

// ---- random loss (nftables in the test namespace) ------------------------------------------

describe('node:http under 3% random loss each way (nftables numgen in the namespace)', () => {
  const getApp = lazyApp({
    prefix: 'cmp-loss', subnet: 167, app: 'test/fixtures/apps/compat-http.mjs', env: { PORT: '8080' },
    ready: /compat-http: listening on :::8080/,
  });

  test('a 10 MB download and a 10 MB upload arrive whole (SHA-256 equal) through loss on both directions', async (t) => {
    const app = await getApp(t, ['ip', 'curl', 'nft']);
    if (!app) return;
    await sh(app, `nft -f - <<'EOF'
table inet cmploss {
  chain in { type filter hook input priority 0; tcp sport 8080 numgen random mod 100 < 3 counter drop; }
  chain out { type filter hook output priority 0; tcp dport 8080 numgen random mod 100 < 3 counter drop; }
}
EOF`);
    try {
      let t0 = Date.now();
      const down = await sh(app, `curl -sS --max-time 30 'http://${app.stackIp}:8080/big?bytes=10000000' | sha256sum`, 40_000);
      assert.equal(down.trim(), `${sha256(pattern(10_000_000))}  -`);
      const downMs = Date.now() - t0;
      t0 = Date.now();
      const up = await sh(app, `f=$(mktemp); head -c 10000000 /dev/urandom > $f; sha256sum < $f; curl -sS --max-time 30 --data-binary @$f http://${app.stackIp}:8080/sha; rm -f $f`, 40_000);
      const [local, remote] = up.trim().split('\n');
      assert.equal(remote, `10000000 ${local!.split(' ')[0]}`);
      const drops = (await sh(app, 'nft list table inet cmploss')).match(/packets (\d+)/g)?.join(', ');
      t.diagnostic(`download ${downMs} ms, upload ${Date.now() - t0} ms; dropped ${drops}`);
    } finally {
      await runIn(app.ns, 'nft', ['delete', 'table', 'inet', 'cmploss']);
    }
  });
});
