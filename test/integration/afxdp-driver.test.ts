// AfXdpDriver against the Linux kernel (root only), mirroring afpacket-driver.test.ts: the driver
// creates a veth pair inside a namespace this file creates (kernel end 198.18.74.1, the stack
// 198.18.74.2), loads its own XDP program on our end and opens an AF_XDP socket in copy mode;
// a Stack and a RunLoop run on it in this process, and kernel tools talk to it. Then unmodified
// apps (examples/hello-http, an express app) run under `tstack run` with driver = "afxdp".
// Last, the exception path: an existing veth end whose kernel side carries the stack's address
// 198.18.76.1; the peer (198.18.76.9) in another namespace reaches tstack on port 80 and a
// kernel socat on another port of the same address, and the kernel still answers ping and ARP.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { AfXdpDriver, kernelEndName } from '../../src/driver/afxdp.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';
import { Stack } from '../../src/stack/stack.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { formatMac, parseIpv4, parseMac } from '../../src/wire/addr.js';
import { createNetns, destroyAllNetns, destroyNetns, exec, ipIn, liveNetns, requireRoot, spawnIn } from '../helpers/netns.js';
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { drain, pump, sha256, startPeer, within } from '../helpers/kernel-peer.js';
import { ab, curl, runIn, startApp, stopAllApps } from '../helpers/run-app.js';

after(async () => { await stopAllApps(); destroyAllNetns(); });

const MIB = 1 << 20;
const SIZE = 64 * MIB;
const HOST = '198.18.74.1';
const US = '198.18.74.2';
const OUR_MAC = parseMac('02:00:5e:00:4a:02')!;

interface PingStats { sent: number; received: number; avgMs: number; minMs: number }
function pingStats(out: string): PingStats {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out);
  return { sent: Number(m?.[1] ?? NaN), received: Number(m?.[2] ?? NaN), minMs: Number(rtt?.[1] ?? NaN), avgMs: Number(rtt?.[2] ?? NaN) };
}

function linkJson(ns: string, dev: string): { flags: string[]; address: string; mtu: number; xdp?: { mode?: number; prog?: { name?: string } } } {
  return (JSON.parse(ipIn(ns, ['-j', '-d', 'link', 'show', 'dev', dev])) as ReturnType<typeof linkJson>[])[0]!;
}

const mibps = (bytes: number, ms: number): string => (bytes / MIB / (ms / 1000)).toFixed(1);

test('AfXdpDriver carries a Stack\'s ICMP, ARP and TCP to the kernel over a veth pair it creates', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ping', 'python3', 'sysctl'])) return;
  const ns = createNetns('xdp');
  const ifname = `xdp${process.pid % 100000}`;
  const kend = kernelEndName(ifname);
  let drv: AfXdpDriver | null = null;
  let loop: RunLoop | null = null;
  let stack: Stack | null = null;
  t.after(() => {
    try { loop?.stop(); } catch { /* closing anyway */ }
    try { stack?.close(); } catch { /* idem */ }
    drv?.close();
    destroyNetns(ns);
  });

  drv = AfXdpDriver.open({ ifname, netns: ns, hostAddr: `${HOST}/24`, hostAddr6: '2001:db8:74::1/64', mac: OUR_MAC });
  stack = new Stack({ clock: realClock, name: 'xdp' });
  stack.sysctl.set('net.inet.tcp.msl', 100);
  const ifIndex = stack.addInterface(drv, { addr: `${US}/24` });
  loop = new RunLoop({ stack, poll: 'adaptive' });
  loop.addPort(drv, ifIndex);
  loop.start();
  const d = drv, s = stack;

  await t.test('creates the pair with our XDP program attached in native mode on our end; the kernel end has the address', () => {
    const k = linkJson(ns, kend), o = linkJson(ns, ifname);
    assert.ok(k.flags.includes('UP') && k.flags.includes('LOWER_UP'), `kernel end flags ${k.flags}`);
    assert.ok(o.flags.includes('UP') && o.flags.includes('NOARP'), `our end flags ${o.flags}`);
    assert.match(ipIn(ns, ['-4', 'addr', 'show', 'dev', kend]), /inet 198\.18\.74\.1\/24/);
    assert.doesNotMatch(ipIn(ns, ['addr', 'show', 'dev', ifname]), /inet/);
    assert.equal(o.xdp?.mode, 1, `XDP attached in driver (native) mode: ${JSON.stringify(o.xdp)}`);
    assert.equal(o.xdp?.prog?.name, 'tstack_xsk');
    assert.equal(k.xdp, undefined, 'nothing on the kernel end');
    assert.notEqual(o.address, formatMac(OUR_MAC));
    assert.deepEqual(d.offloads, { rxCsum: false, txCsum: false, tso4: false, tso6: false });
    assert.equal(d.trustRxChecksums, true, 'a veth: frames from this host\'s kernel');
  });

  await t.test('answers 20 kernel pings at 50 ms intervals, 20/20', async () => {
    const r = await spawnIn(ns, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', US], 15_000);
    const p = pingStats(r.stdout);
    assert.equal(p.received, 20, r.stdout + r.stderr);
    console.log(`afxdp: ping -i 0.05 RTT min ${p.minMs} ms avg ${p.avgMs} ms`);
  });

  await t.test('the kernel learned our MAC by ARP (its neighbor entry for the stack)', () => {
    assert.match(ipIn(ns, ['neigh', 'show', US, 'dev', kend]), new RegExp(formatMac(OUR_MAC)));
  });

  await t.test('answers full-size pings with DF set (-s 1472 -M do), 20/20, and fragmented ones (-s 3000), 5/5', async () => {
    const r = await spawnIn(ns, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', '-s', '1472', '-M', 'do', US], 15_000);
    assert.equal(pingStats(r.stdout).received, 20, r.stdout + r.stderr);
    const f = await spawnIn(ns, 'ping', ['-c', '5', '-i', '0.1', '-W', '2', '-s', '3000', US], 15_000);
    assert.equal(pingStats(f.stdout).received, 5, f.stdout + f.stderr);
  });

  const ourData = randomBytes(SIZE);
  const ourSha = sha256(ourData);
  const check = (peer: Record<string, unknown>, got: { bytes: number; sha: string }): void => {
    assert.equal(peer['recvError'], undefined, JSON.stringify(peer));
    assert.equal(peer['sendError'], undefined, JSON.stringify(peer));
    assert.equal(peer['recvBytes'], SIZE, 'bytes the kernel received');
    assert.equal(peer['recvSha'], ourSha, 'SHA-256 of what the kernel received');
    assert.equal(got.bytes, SIZE, 'bytes the stack received');
    assert.equal(got.sha, peer['sentSha'], 'SHA-256 of what the stack received');
  };

  await t.test(`kernel client -> stack server: ${SIZE / MIB} MiB each way at once, SHA-256 equal`, async () => {
    const l = s.tcp.listen({ port: 5001 });
    const accepted = new Promise<TcpSocket>((resolve) => { l.onConnection = resolve; });
    const peer = startPeer(ns, ['stream', 'client', US, 5001, SIZE, 21], 150_000);
    try {
      const sock = await within(accepted, 10_000, 'accept');
      l.close();
      const t0 = performance.now();
      const got = drain(sock).then((g) => ({ ...g, ms: performance.now() - t0 }));
      const [g, , res] = await within(Promise.all([got, pump(sock, ourData), peer.result]), 150_000, 'transfer');
      const outMs = Number(res['recvSeconds']) * 1000;
      console.log(`afxdp: kernel client: kernel->stack ${mibps(SIZE, g.ms)} MiB/s, stack->kernel ${mibps(SIZE, outMs)} MiB/s`);
      check(res, g);
    } finally { peer.kill(); l.close(); }
  });

  await t.test(`stack client -> kernel server after an ARP flush: the stack resolves the kernel, ${SIZE / MIB} MiB each way`, async () => {
    s.arp.flushInterface(ifIndex);
    assert.equal(s.arp.list().filter((e) => e.ip === HOST).length, 0);
    const peer = startPeer(ns, ['stream', 'server', 5002, SIZE, 22], 150_000);
    try {
      await within(peer.ready, 10_000, 'kernel server ready');
      const t0 = performance.now();
      const sock = s.tcp.connect({ raddr: parseIpv4(HOST)!, rport: 5002 });
      const got = drain(sock).then((g) => ({ ...g, ms: performance.now() - t0 }));
      await within(new Promise<void>((resolve, reject) => {
        sock.onConnect = resolve;
        const prev = sock.onClose; sock.onClose = (e) => { prev?.(e); reject(e ?? new Error('closed before connecting')); };
      }), 10_000, 'connect');
      const entry = s.arp.list().find((e) => e.ip === HOST);
      assert.equal(entry?.mac, linkJson(ns, kend).address, 'the stack learned the kernel end\'s MAC');
      const [g, , res] = await within(Promise.all([got, pump(sock, ourData), peer.result]), 150_000, 'transfer');
      const outMs = Number(res['recvSeconds']) * 1000;
      console.log(`afxdp: stack client: kernel->stack ${mibps(SIZE, g.ms)} MiB/s, stack->kernel ${mibps(SIZE, outMs)} MiB/s`);
      check(res, g);
    } finally { peer.kill(); }
  });

  await t.test('counts no transmit drops or errors on a clean link', () => {
    const c = d.stats();
    console.log(`afxdp: driver stats ${JSON.stringify(c)}`);
    assert.ok(c.rxPackets > 5000 && c.txPackets > 5000, JSON.stringify(c));
    assert.equal(c.txErrors, 0, JSON.stringify(c));
    assert.equal(c.txDropped, 0, JSON.stringify(c));
  });

  await t.test('close() detaches the program, removes the veth pair and is idempotent', () => {
    loop!.stop();
    d.close();
    d.close();
    assert.equal(d.fileDescriptor, -1);
    assert.throws(() => ipIn(ns, ['link', 'show', 'dev', ifname]), /does not exist/);
    assert.throws(() => ipIn(ns, ['link', 'show', 'dev', kend]), /does not exist/);
    destroyNetns(ns);
    assert.ok(!liveNetns().includes(ns));
  });
});

test('AfXdpDriver refuses clearly and leaves nothing behind: zero-copy on a veth, a queue the device lacks, a queue already served', { timeout: 30_000 }, async (t) => {
  if (!requireRoot(t, ['ip'])) return;
  const ns = createNetns('xdp-err');
  t.after(() => destroyNetns(ns));
  const name = `xdz${process.pid % 100000}`;
  assert.throws(() => AfXdpDriver.open({ ifname: name, netns: ns, hostAddr: '198.18.78.1/24', zeroCopy: true }),
    /bind\(AF_XDP .* queue 0\): EOPNOTSUPP \(.*does not do AF_XDP zero-copy/);
  assert.throws(() => ipIn(ns, ['link', 'show', 'dev', name]), /does not exist/, 'the veth pair it made is gone');
  ipIn(ns, ['link', 'add', 'q0', 'type', 'veth', 'peer', 'name', 'q1']);
  assert.throws(() => AfXdpDriver.open({ ifname: 'q0', netns: ns, queue: 5 }), /queue 5\): EINVAL \(q0 has no receive queue 5/);
  const d = AfXdpDriver.open({ ifname: 'q0', netns: ns });
  t.after(() => d.close());
  assert.throws(() => AfXdpDriver.open({ ifname: 'q0', netns: ns }), /EBUSY \(another AF_XDP socket already serves queue 0/);
  assert.equal(linkJson(ns, 'q0').xdp?.prog?.name, 'tstack_xsk', 'the first socket\'s program stays');
  d.close();
  assert.equal(linkJson(ns, 'q0').xdp, undefined, 'close() detached the program');
  assert.match(ipIn(ns, ['link', 'show', 'dev', 'q0']), /q0/, 'an interface the driver did not create stays');
});

test('tstack run examples/hello-http on driver = "afxdp": curl gets the body, ab -n 5000 -c 50 has 0 failed', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl', 'ab', 'sysctl'])) return;
  const app = await startApp({
    prefix: 'xdp-run', subnet: 75, app: 'examples/hello-http/server.js', env: { PORT: '8080' }, driver: 'afxdp',
    ready: /hello-http: listening on :::8080/,
  });
  const url = `http://${app.stackIp}:8080/`;
  assert.equal(await curl(app.ns, [url]), 'Hello from tstack\n');
  const r = await ab(app.ns, url, 5000, 50);
  assert.equal(r.complete, 5000, r.raw);
  assert.equal(r.failed, 0, r.raw);
  assert.equal(r.non2xx, 0, r.raw);
  console.log(`afxdp: tstack run hello-http, ab -n 5000 -c 50 (Connection: close): ${r.rps} requests/s`);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
  assert.throws(() => ipIn(app.ns, ['link', 'show', 'dev', app.ifname]), /does not exist/);
  await app.stop();
});

test('tstack run an unmodified express app on driver = "afxdp": GET, POST JSON, 404, ab -n 2000 -c 20 0 failed', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl', 'ab'])) return;
  const app = await startApp({
    prefix: 'xdp-exp', subnet: 77, app: 'test/fixtures/apps/express-app.js', env: { PORT: '3000' }, driver: 'afxdp',
    ready: /express-app: listening on (0\.0\.0\.0|::):3000/,
  });
  const base = `http://${app.stackIp}:3000`;
  const hello = JSON.parse(await curl(app.ns, [`${base}/hello`])) as { hello: string; remote: string };
  assert.equal(hello.hello, 'express');
  assert.equal(hello.remote, `::ffff:${app.hostIp}`);
  const body = JSON.stringify({ name: 'tstack', items: [1, 2, 3] });
  const out = await curl(app.ns, ['-w', '\\n%{http_code}', '-H', 'content-type: application/json', '--data-binary', body, `${base}/echo`]);
  const [json, code] = out.split('\n');
  assert.equal(code, '201');
  assert.deepEqual(JSON.parse(json!), { got: JSON.parse(body), items: 3 });
  assert.equal(await curl(app.ns, ['-o', '/dev/null', '-w', '%{http_code}', `${base}/nope`]), '404');
  const r = await ab(app.ns, `${base}/hello`, 2000, 20);
  assert.equal(r.complete, 2000, r.raw);
  assert.equal(r.failed, 0, r.raw);
  assert.equal(r.non2xx, 0, r.raw);
  console.log(`afxdp: express, ab -n 2000 -c 20: ${r.rps} requests/s`);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
  await app.stop();
});

test('exception path: on an existing veth end that keeps the kernel\'s address, tstack serves port 80 while a kernel socat answers another port, ping and ARP', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ping', 'curl', 'socat'])) return;
  const nsHost = createNetns('xdp-exc');
  const nsPeer = createNetns('xdp-excp');
  const a = `xea${process.pid % 100000}`, b = `xeb${process.pid % 100000}`;
  const SHARED = '198.18.76.1', PEER = '198.18.76.9';
  let drv: AfXdpDriver | null = null, loop: RunLoop | null = null, stack: Stack | null = null;
  let socat: ChildProcess | null = null;
  let unwatch: (() => void) | null = null;
  t.after(() => {
    socat?.kill('SIGKILL');
    unwatch?.();
    try { loop?.stop(); } catch { /* closing anyway */ }
    try { stack?.close(); } catch { /* idem */ }
    drv?.close();
    destroyNetns(nsHost); destroyNetns(nsPeer);
  });
  ipIn(nsHost, ['link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', nsPeer]);
  ipIn(nsHost, ['addr', 'add', `${SHARED}/24`, 'dev', a]);
  ipIn(nsHost, ['link', 'set', a, 'up']);
  ipIn(nsPeer, ['addr', 'add', `${PEER}/24`, 'dev', b]);
  ipIn(nsPeer, ['link', 'set', b, 'up']);
  // A kernel service on the shared address: socat answers every connection with a line.
  socat = spawn('ip', ['netns', 'exec', nsHost, 'socat', `TCP-LISTEN:7777,bind=${SHARED},reuseaddr,fork`, 'SYSTEM:echo kernel-socat'], { stdio: 'ignore' });

  drv = AfXdpDriver.open({ ifname: a, netns: nsHost, exception: true });
  assert.equal(formatMac(drv.mac), linkJson(nsHost, a).address, 'the stack uses the interface\'s own MAC');
  stack = new Stack({ clock: realClock, name: 'xdp-exc' });
  const ifIndex = stack.addInterface(drv, { addr: `${SHARED}/24` });
  drv.setLocalAddress(parseIpv4(SHARED)!);
  unwatch = stack.watchPorts(drv.portWatcher);
  loop = new RunLoop({ stack, poll: 'adaptive' });
  loop.addPort(drv, ifIndex);
  loop.start();
  const s = stack;
  const listener = s.tcp.listen({ port: 80 });
  listener.onConnection = (sock) => {
    let req = '';
    sock.onData = () => {
      const chunk = sock.read();
      if (chunk) req += Buffer.from(chunk).toString('latin1');
      if (req.includes('\r\n\r\n')) {
        sock.write(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 13\r\nconnection: close\r\n\r\nhello tstack\n'));
        sock.close();
      }
    };
  };
  assert.equal(linkJson(nsHost, a).xdp?.prog?.name, 'tstack_except');

  await t.test('the peer gets port 80 from tstack (repeatedly) and port 7777 from the kernel\'s socat, on the same address', async () => {
    for (let i = 0; i < 20; i++) assert.equal(await curl(nsPeer, [`http://${SHARED}/`]), 'hello tstack\n');
    for (let i = 0; i < 3; i++) {
      const r = await runIn(nsPeer, 'socat', ['-T', '3', '-', `TCP:${SHARED}:7777`], { timeoutMs: 10_000, input: '' });
      assert.equal(r.stdout, 'kernel-socat\n', r.stderr);
    }
    const r = await ab(nsPeer, `http://${SHARED}/`, 1000, 10);
    assert.equal(r.failed, 0, r.raw);
    assert.equal(r.complete, 1000, r.raw);
    console.log(`afxdp exception path: ab -n 1000 -c 10 to tstack on the shared address: ${r.rps} requests/s`);
  });

  await t.test('the kernel answers ping on the shared address and refuses a port nobody holds (RST, not a timeout)', async () => {
    const p = await spawnIn(nsPeer, 'ping', ['-c', '5', '-i', '0.05', '-W', '2', SHARED], 10_000);
    assert.equal(pingStats(p.stdout).received, 5, p.stdout);
    const r = await runIn(nsPeer, 'curl', ['-sS', '--max-time', '3', `http://${SHARED}:81/`], { timeoutMs: 10_000 });
    assert.match(r.stderr, /Connection refused|Couldn't connect/);
  });

  await t.test('ARP is seen by both: the kernel answers the peer, and the stack learns the peer from the copy', () => {
    const entry = s.arp.list().find((e) => e.ip === PEER);
    assert.equal(entry?.mac, linkJson(nsPeer, b).address, 'the stack learned the peer');
    assert.match(ipIn(nsPeer, ['neigh', 'show', SHARED]), new RegExp(linkJson(nsHost, a).address));
  });

  await t.test('a stack client connects out from the shared address (its ephemeral port joins the table) and a closed listener\'s port returns to the kernel', async () => {
    const srv = spawnIn(nsPeer, 'socat', [`TCP-LISTEN:9000,bind=${PEER},reuseaddr`, 'SYSTEM:echo peer-says-hi'], 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const sock = s.tcp.connect({ raddr: parseIpv4(PEER)!, rport: 9000 });
    const got = await within(drain(sock), 10_000, 'peer data');
    assert.equal(got.bytes, 'peer-says-hi\n'.length);
    await srv;
    listener.close();
    const r = await runIn(nsPeer, 'curl', ['-sS', '--max-time', '3', `http://${SHARED}/`], { timeoutMs: 10_000 });
    assert.match(r.stderr, /Connection refused|Couldn't connect/, 'the kernel, with no listener on 80, refuses');
  });

});

test('tstack run hello-http on port 80 with [[port]] exception = true: the peer gets tstack on 80 and a kernel socat on 7777 of the same address', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl', 'ab', 'socat'])) return;
  const nsPeer = createNetns('xdp-runp');
  const SHARED = '198.18.79.1', PEER = '198.18.79.9';
  const peerEnd = `xrb${process.pid % 100000}`;
  let socat: ChildProcess | null = null;
  t.after(() => { socat?.kill('SIGKILL'); destroyNetns(nsPeer); });
  const app = await startApp({
    prefix: 'xdp-runx', subnet: 79, app: 'examples/hello-http/server.js', env: { PORT: '80' },
    ready: /hello-http: listening on :::80/,
    port: (ns, ifname) => {
      // An existing veth end whose kernel side carries the address the stack will share.
      ipIn(ns, ['link', 'add', ifname, 'type', 'veth', 'peer', 'name', peerEnd, 'netns', nsPeer]);
      ipIn(ns, ['addr', 'add', `${SHARED}/24`, 'dev', ifname]);
      ipIn(ns, ['link', 'set', ifname, 'up']);
      ipIn(nsPeer, ['addr', 'add', `${PEER}/24`, 'dev', peerEnd]);
      ipIn(nsPeer, ['link', 'set', peerEnd, 'up']);
      socat = spawn('ip', ['netns', 'exec', ns, 'socat', `TCP-LISTEN:7777,bind=${SHARED},reuseaddr,fork`, 'SYSTEM:echo kernel-socat'], { stdio: 'ignore' });
      return `[[port]]\ndriver = "afxdp"\nifname = "${ifname}"\naddr = "${SHARED}/24"\nnetns = "${ns}"\nexception = true\n`;
    },
  });
  assert.equal(await curl(nsPeer, [`http://${SHARED}/`]), 'Hello from tstack\n');
  const k = await runIn(nsPeer, 'socat', ['-T', '3', '-', `TCP:${SHARED}:7777`], { timeoutMs: 10_000 });
  assert.equal(k.stdout, 'kernel-socat\n', k.stderr);
  const r = await ab(nsPeer, `http://${SHARED}/`, 2000, 20);
  assert.equal(r.complete, 2000, r.raw);
  assert.equal(r.failed, 0, r.raw);
  // The kernel kept serving while tstack was busy.
  const k2 = await runIn(nsPeer, 'socat', ['-T', '3', '-', `TCP:${SHARED}:7777`], { timeoutMs: 10_000 });
  assert.equal(k2.stdout, 'kernel-socat\n', k2.stderr);
  console.log(`afxdp exception path under tstack run: ab -n 2000 -c 20: ${r.rps} requests/s; socat on the kernel answered before and after`);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
  // The interface was not tstack's: it stays, with its address, and without our program.
  assert.match(ipIn(app.ns, ['addr', 'show', 'dev', app.ifname]), new RegExp(`inet ${SHARED.replace(/\./g, '\\.')}/24`));
  assert.equal(linkJson(app.ns, app.ifname).xdp, undefined);
  await app.stop();
});

test('AfXdpDriver on both ends of an existing veth: frames cross byte for byte, a full TX batch is kicked through, a full RX ring drops and counts', { timeout: 30_000 }, async (t) => {
  if (!requireRoot(t, ['ip'])) return;
  const ns = createNetns('xdp-att');
  const a = `xaa${process.pid % 100000}`, b = `xab${process.pid % 100000}`;
  let da: AfXdpDriver | null = null, db: AfXdpDriver | null = null;
  t.after(() => { da?.close(); db?.close(); destroyNetns(ns); });
  ipIn(ns, ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  for (const dev of [a, b]) {
    exec(ns, 'sysctl', ['-qw', `net/ipv6/conf/${dev}/disable_ipv6=1`]);
    ipIn(ns, ['link', 'set', dev, 'arp', 'off', 'up']);
  }
  const pool = new BufferPool();
  da = AfXdpDriver.open({ ifname: a, netns: ns, pool });
  db = AfXdpDriver.open({ ifname: b, netns: ns, pool, frames: 64, burst: 1000 });
  assert.equal(da.kernelEnd, null);
  assert.equal(formatMac(da.mac), linkJson(ns, a).address, 'an existing interface: the stack takes its MAC');
  const macA = da.mac, macB = db.mac;

  const seqFrame = (src: Uint8Array, dst: Uint8Array, seq: number, len = 60): PacketBuffer => {
    const f = pool.alloc();
    const at = f.append(len);
    f.data.set(dst, at); f.data.set(src, at + 6); f.data[at + 12] = 0x88; f.data[at + 13] = 0xb5;
    f.data[at + 14] = seq >> 8; f.data[at + 15] = seq & 0xff;
    for (let i = 16; i < len; i++) f.data[at + i] = (i * 7 + seq) & 0xff;
    return f;
  };
  const isSeq = (x: PacketBuffer): boolean => x.data[x.start + 12] === 0x88 && x.data[x.start + 13] === 0xb5;
  const collect = async (d: AfXdpDriver, want: number, ms = 2000): Promise<PacketBuffer[]> => {
    const got: PacketBuffer[] = [];
    const out: PacketBuffer[] = [];
    const end = Date.now() + ms;
    while (got.length < want && Date.now() < end) {
      const n = d.rxBurst(out, 64);
      for (let k = 0; k < n; k++) { if (isSeq(out[k]!)) got.push(out[k]!); else out[k]!.release(); }
      if (n === 0) await new Promise((r) => setTimeout(r, 5));
    }
    return got;
  };

  await t.test('a 1514-byte frame arrives byte for byte, after the stack\'s headroom', async () => {
    const f = seqFrame(macB, macA, 7, 1514);
    const sent = Buffer.from(f.data.subarray(f.start, f.end)).toString('hex');
    db!.transmit(f);
    db!.flush();
    const [got] = await collect(da!, 1);
    assert.ok(got, 'received');
    assert.equal(Buffer.from(got.data.subarray(got.start, got.end)).toString('hex'), sent);
    assert.ok(got.start >= pool.headroom);
    got.release();
  });

  await t.test('100 frames queued without flush() go out in order (a 32-frame TX ring, kicks of 32)', async () => {
    const before = db!.stats();
    for (let i = 0; i < 100; i++) db!.transmit(seqFrame(macB, macA, i));
    db!.flush();
    const got = await collect(da!, 100);
    assert.deepEqual(got.map((x) => (x.data[x.start + 14]! << 8) | x.data[x.start + 15]!), Array.from({ length: 100 }, (_, i) => i));
    for (const x of got) x.release();
    const after = db!.stats();
    assert.equal(after.txPackets - before.txPackets, 100);
    assert.equal(after.txDropped - before.txDropped, 0);
  });

  await t.test('frames that meet a full 32-slot RX ring are dropped by the kernel and counted in rxDropped', async () => {
    const before = db!.stats().rxDropped;
    for (let i = 0; i < 100; i++) da!.transmit(seqFrame(macA, macB, i));
    da!.flush();
    await new Promise((r) => setTimeout(r, 100));
    const got = await collect(db!, 100, 300);
    for (const x of got) x.release();
    const dropped = db!.stats().rxDropped - before;
    assert.equal(got.length, 32, 'the ring (32 receive frames) held 32');
    assert.equal(dropped, 68, 'the kernel dropped the rest');
  });

  await t.test('close() leaves an interface the driver did not create, without our program', () => {
    da!.close();
    assert.match(ipIn(ns, ['link', 'show', 'dev', a]), new RegExp(a));
    assert.equal(linkJson(ns, a).xdp, undefined);
  });
});
