// AfPacketDriver against the Linux kernel (root only): the driver creates a veth pair inside a
// namespace this file creates (kernel end 198.18.70.1, the stack 198.18.70.2), a Stack and a
// RunLoop run on it in this process, and kernel tools (ping, a Python TCP peer) talk to it.
// A second test runs examples/hello-http under `tstack run` with driver = "afpacket" and
// drives it with curl and ApacheBench.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BufferPool, Csum, type PacketBuffer } from '../../src/base/pktbuf.js';
import { AfPacketDriver, kernelEndName } from '../../src/driver/afpacket.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';
import { Stack } from '../../src/stack/stack.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { formatMac, parseIpv4, parseMac, writeIpv4 } from '../../src/wire/addr.js';
import { fold, internetChecksum, pseudoHeaderV4 } from '../../src/wire/checksum.js';
import { createNetns, destroyAllNetns, destroyNetns, exec, ipIn, liveNetns, requireRoot, run, spawnIn } from '../helpers/netns.js';
import { drain, pump, sha256, startPeer, within } from '../helpers/kernel-peer.js';
import { ab, curl, startApp, stopAllApps } from '../helpers/run-app.js';

after(async () => { await stopAllApps(); destroyAllNetns(); });

const MIB = 1 << 20;
const SIZE = 16 * MIB;
const HOST = '198.18.70.1';
const US = '198.18.70.2';
const OUR_MAC = parseMac('02:00:5e:00:46:02')!;

interface PingStats { sent: number; received: number; avgMs: number; minMs: number }
function pingStats(out: string): PingStats {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out);
  return { sent: Number(m?.[1] ?? NaN), received: Number(m?.[2] ?? NaN), minMs: Number(rtt?.[1] ?? NaN), avgMs: Number(rtt?.[2] ?? NaN) };
}

function linkJson(ns: string, dev: string): { flags: string[]; address: string; mtu: number } {
  return (JSON.parse(ipIn(ns, ['-j', 'link', 'show', 'dev', dev])) as { flags: string[]; address: string; mtu: number }[])[0]!;
}

const mibps = (bytes: number, ms: number): string => (bytes / MIB / (ms / 1000)).toFixed(1);

test('AfPacketDriver carries a Stack\'s ICMP, ARP and TCP to the kernel over a veth pair it creates', { timeout: 180_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ping', 'python3', 'sysctl'])) return;
  const ns = createNetns('afp');
  const ifname = `afp${process.pid % 100000}`;
  const kend = kernelEndName(ifname);
  let drv: AfPacketDriver | null = null;
  let loop: RunLoop | null = null;
  let stack: Stack | null = null;
  t.after(() => {
    try { loop?.stop(); } catch { /* closing anyway */ }
    try { stack?.close(); } catch { /* idem */ }
    drv?.close();
    destroyNetns(ns);
  });

  drv = AfPacketDriver.open({ ifname, netns: ns, hostAddr: `${HOST}/24`, hostAddr6: '2001:db8:70::1/64', mac: OUR_MAC });
  stack = new Stack({ clock: realClock, name: 'afp' });
  stack.sysctl.set('net.inet.tcp.msl', 100);
  const ifIndex = stack.addInterface(drv, { addr: `${US}/24` });
  loop = new RunLoop({ stack, poll: 'adaptive' });
  loop.addPort(drv, ifIndex);
  loop.start();
  const d = drv, s = stack;

  await t.test('creates the pair: the kernel end is up with the address, ours is up with no address, no IPv6 and no ARP', () => {
    const k = linkJson(ns, kend), o = linkJson(ns, ifname);
    assert.ok(k.flags.includes('UP') && k.flags.includes('LOWER_UP'), `kernel end flags ${k.flags}`);
    assert.ok(o.flags.includes('UP') && o.flags.includes('NOARP'), `our end flags ${o.flags}`);
    assert.match(ipIn(ns, ['-4', 'addr', 'show', 'dev', kend]), /inet 198\.18\.70\.1\/24/);
    assert.match(ipIn(ns, ['-6', 'addr', 'show', 'dev', kend]), /inet6 2001:db8:70::1\/64/);
    assert.doesNotMatch(ipIn(ns, ['addr', 'show', 'dev', ifname]), /inet/);
    assert.equal(exec(ns, 'sysctl', ['-n', `net/ipv6/conf/${ifname}/disable_ipv6`]).trim(), '1');
    // The stack's MAC is its own, not the veth's: the namespace's kernel ignores our frames.
    assert.notEqual(o.address, formatMac(OUR_MAC));
    assert.throws(() => run('ip', ['link', 'show', 'dev', ifname]), /does not exist/);
    assert.deepEqual(d.offloads, { rxCsum: true, txCsum: true, tso4: true, tso6: true });
  });

  await t.test('answers 20 kernel pings at 50 ms intervals, 20/20', async (st) => {
    const r = await spawnIn(ns, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', US], 15_000);
    const p = pingStats(r.stdout);
    assert.equal(p.received, 20, r.stdout + r.stderr);
    st.diagnostic(`ping RTT min ${p.minMs} ms, avg ${p.avgMs} ms`);
    console.log(`afpacket: ping -i 0.05 RTT min ${p.minMs} ms avg ${p.avgMs} ms`);
  });

  await t.test('the kernel learned our MAC by ARP (its neighbor entry for the stack)', () => {
    assert.match(ipIn(ns, ['neigh', 'show', US, 'dev', kend]), new RegExp(formatMac(OUR_MAC)));
  });

  await t.test('answers full-size pings with DF set (-s 1472 -M do), 20/20', async () => {
    const r = await spawnIn(ns, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', '-s', '1472', '-M', 'do', US], 15_000);
    assert.equal(pingStats(r.stdout).received, 20, r.stdout + r.stderr);
  });

  await t.test('reassembles fragmented pings and fragments the replies (-s 3000), 5/5', async () => {
    const r = await spawnIn(ns, 'ping', ['-c', '5', '-i', '0.1', '-W', '2', '-s', '3000', US], 15_000);
    assert.equal(pingStats(r.stdout).received, 5, r.stdout + r.stderr);
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

  await t.test(`kernel client -> stack server: ${SIZE / MIB} MiB each way at once, SHA-256 equal`, async (st) => {
    const l = s.tcp.listen({ port: 5001 });
    const accepted = new Promise<TcpSocket>((resolve) => { l.onConnection = resolve; });
    const peer = startPeer(ns, ['stream', 'client', US, 5001, SIZE, 21], 60_000);
    try {
      const sock = await within(accepted, 10_000, 'accept');
      l.close();
      const t0 = performance.now();
      const got = drain(sock).then((g) => ({ ...g, ms: performance.now() - t0 }));
      const [g, , res] = await within(Promise.all([got, pump(sock, ourData), peer.result]), 60_000, 'transfer');
      const outMs = Number(res['recvSeconds']) * 1000;
      const line = `afpacket: kernel client: kernel->stack ${mibps(SIZE, g.ms)} MiB/s, stack->kernel ${mibps(SIZE, outMs)} MiB/s`;
      st.diagnostic(line);
      console.log(line);
      check(res, g);
    } finally { peer.kill(); l.close(); }
  });

  await t.test(`stack client -> kernel server after an ARP flush: the stack resolves the kernel, ${SIZE / MIB} MiB each way`, async (st) => {
    s.arp.flushInterface(ifIndex);
    assert.equal(s.arp.list().filter((e) => e.ip === HOST).length, 0);
    const peer = startPeer(ns, ['stream', 'server', 5002, SIZE, 22], 60_000);
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
      const [g, , res] = await within(Promise.all([got, pump(sock, ourData), peer.result]), 60_000, 'transfer');
      const outMs = Number(res['recvSeconds']) * 1000;
      const line = `afpacket: stack client: kernel->stack ${mibps(SIZE, g.ms)} MiB/s, stack->kernel ${mibps(SIZE, outMs)} MiB/s`;
      st.diagnostic(line);
      console.log(line);
      check(res, g);
    } finally { peer.kill(); }
  });

  await t.test('counts no drops or errors on a clean link', () => {
    const c = d.stats();
    console.log(`afpacket: driver stats ${JSON.stringify(c)}`);
    assert.ok(c.rxPackets > 500 && c.txPackets > 500, JSON.stringify(c));
    assert.equal(c.txErrors, 0, JSON.stringify(c));
    assert.equal(c.txDropped, 0, JSON.stringify(c));
  });

  await t.test('close() removes the veth pair and is idempotent; then the namespace goes', () => {
    loop!.stop();
    d.close();
    d.close();
    assert.equal(d.fileDescriptor, -1);
    assert.throws(() => ipIn(ns, ['link', 'show', 'dev', ifname]), /does not exist/);
    assert.throws(() => ipIn(ns, ['link', 'show', 'dev', kend]), /does not exist/);
    destroyNetns(ns);
    assert.ok(!run('ip', ['netns', 'list']).includes(ns));
    assert.ok(!liveNetns().includes(ns));
  });
});

test('tstack run examples/hello-http on driver = "afpacket": curl gets the body, ab -n 5000 -c 50 has 0 failed', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl', 'ab', 'sysctl'])) return;
  const app = await startApp({
    prefix: 'afp-run', subnet: 72, app: 'examples/hello-http/server.js', env: { PORT: '8080' }, driver: 'afpacket',
    ready: /hello-http: listening on :::8080/,
  });
  const url = `http://${app.stackIp}:8080/`;
  assert.equal(await curl(app.ns, [url]), 'Hello from tstack\n');
  const r = await ab(app.ns, url, 5000, 50);
  assert.equal(r.complete, 5000, r.raw);
  assert.equal(r.failed, 0, r.raw);
  assert.equal(r.non2xx, 0, r.raw);
  t.diagnostic(`ab -n 5000 -c 50: ${r.rps} requests/s`);
  console.log(`afpacket: tstack run hello-http, ab -n 5000 -c 50 (Connection: close): ${r.rps} requests/s`);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
  // The driver deleted its veth pair on the way out; stop() removes the namespace.
  assert.throws(() => ipIn(app.ns, ['link', 'show', 'dev', app.ifname]), /does not exist/);
  await app.stop();
  assert.ok(!run('ip', ['netns', 'list']).includes(app.ns));
});

/** Waits (yielding to the event loop) until rxBurst on `d` returns a frame `match` accepts. */
async function receive(d: AfPacketDriver, match: (b: PacketBuffer) => boolean, ms = 2000): Promise<PacketBuffer> {
  const out: PacketBuffer[] = [];
  const end = Date.now() + ms;
  for (;;) {
    const n = d.rxBurst(out, 32);
    let found: PacketBuffer | null = null;
    for (let i = 0; i < n; i++) {
      const b = out[i]!;
      if (found === null && match(b)) found = b; else b.release();
    }
    if (found) return found;
    if (Date.now() > end) assert.fail('timed out waiting for the frame');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const hex = (b: Uint8Array, off: number, len: number): string => Buffer.from(b.buffer, b.byteOffset + off, len).toString('hex');

test('AfPacketDriver attached to existing veth ends: frames cross byte for byte, VLAN tags and partial checksums survive', { timeout: 30_000 }, async (t) => {
  if (!requireRoot(t, ['ip'])) return;
  const ns = createNetns('afp-att');
  const a = `afa${process.pid % 100000}`, b = `afb${process.pid % 100000}`;
  let da: AfPacketDriver | null = null, db: AfPacketDriver | null = null;
  t.after(() => { da?.close(); db?.close(); destroyNetns(ns); });
  ipIn(ns, ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  for (const dev of [a, b]) {
    // Quiet ends: no IPv6 router solicitations or MLD reports in the rings.
    exec(ns, 'sysctl', ['-qw', `net/ipv6/conf/${dev}/disable_ipv6=1`]);
    ipIn(ns, ['link', 'set', dev, 'arp', 'off', 'up']);
  }
  const pool = new BufferPool();
  da = AfPacketDriver.open({ ifname: a, netns: ns, pool });
  db = AfPacketDriver.open({ ifname: b, netns: ns, pool, rxFrames: 15, txFrames: 15, burst: 1000 });
  assert.equal(da.kernelEnd, null);
  assert.equal(da.rxFrames, 270, 'the default 256 rounded up to whole blocks of 15');
  assert.equal(db.rxFrames, 15);
  const macA = da.mac, macB = db.mac;

  await t.test('an 802.1Q-tagged frame arrives with its tag back in place (the kernel strips it into the ring header)', async () => {
    const f = pool.alloc();
    const at = f.append(14 + 4 + 60);
    const d = f.data;
    d.set(macA, at); d.set(macB, at + 6);
    d.set([0x81, 0x00, 0x20, 0x7b, 0x88, 0xb5], at + 12); // TPID, PCP 1 / VID 123, local experimental EtherType
    for (let i = 0; i < 60 - 2; i++) d[at + 18 + i] = i;
    const sent = hex(d, at, 78);
    db!.transmit(f);
    db!.flush();
    const got = await receive(da!, (x) => x.data[x.start + 12] === 0x81 && x.data[x.start + 16] === 0x88);
    assert.equal(got.end - got.start, 78);
    assert.equal(hex(got.data, got.start, 78), sent);
    assert.ok(got.start >= pool.headroom, `headroom ${got.start}`);
    got.release();
  });

  await t.test('a UDP frame sent with a partial checksum arrives marked valid, and the checksum field is the pseudo-header sum', async () => {
    const f = pool.alloc();
    const payload = 100;
    const udpLen = 8 + payload;
    const at = f.append(14 + 20 + udpLen);
    const d = f.data;
    d.set(macA, at); d.set(macB, at + 6); d[at + 12] = 0x08; d[at + 13] = 0x00;
    const i = at + 14;
    d.set([0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0], i);
    d[i + 2] = (20 + udpLen) >> 8; d[i + 3] = (20 + udpLen) & 0xff;
    const src = parseIpv4('198.18.71.1')!, dst = parseIpv4('198.18.71.2')!;
    writeIpv4(d, i + 12, src); writeIpv4(d, i + 16, dst);
    const ipSum = internetChecksum(d, i, 20);
    d[i + 10] = ipSum >> 8; d[i + 11] = ipSum & 0xff;
    const u = i + 20;
    d.set([0x9c, 0x40, 0x9c, 0x41], u);
    d[u + 4] = udpLen >> 8; d[u + 5] = udpLen & 0xff;
    d.fill(0xab, u + 8, u + 8 + payload);
    const pseudo = fold(pseudoHeaderV4(src, dst, 17, udpLen));
    d[u + 6] = pseudo >> 8; d[u + 7] = pseudo & 0xff;
    f.csum = Csum.Partial; f.csumStart = u; f.csumOffset = 6;
    db!.transmit(f);
    db!.flush();
    const got = await receive(da!, (x) => x.data[x.start + 12] === 0x08 && x.data[x.start + 23] === 17);
    assert.equal(got.csum, Csum.Valid);
    assert.equal(got.csumStart - got.start, 34, 'csum_start points at the UDP header');
    assert.equal(got.csumOffset, 6);
    assert.equal((got.data[got.start + 40]! << 8) | got.data[got.start + 41]!, pseudo);
    got.release();
  });

  await t.test('a socket does not see its own transmissions (PACKET_IGNORE_OUTGOING)', async () => {
    const f = pool.alloc();
    const at = f.append(60);
    f.data.set(macA, at); f.data.set(macB, at + 6); f.data[at + 12] = 0x88; f.data[at + 13] = 0xb6;
    db!.transmit(f);
    db!.flush();
    const got = await receive(da!, (x) => x.data[x.start + 12] === 0x88 && x.data[x.start + 13] === 0xb6);
    got.release();
    const out: PacketBuffer[] = [];
    const n = db!.rxBurst(out, 32);
    let own = 0;
    for (let k = 0; k < n; k++) { if (out[k]!.data[out[k]!.start + 13] === 0xb6) own++; out[k]!.release(); }
    assert.equal(own, 0);
  });

  /** A 60-byte frame of EtherType 0x88b5 carrying `seq` in its first payload bytes. */
  const seqFrame = (src: Uint8Array, dst: Uint8Array, seq: number): PacketBuffer => {
    const f = pool.alloc();
    const at = f.append(60);
    f.data.set(dst, at); f.data.set(src, at + 6); f.data[at + 12] = 0x88; f.data[at + 13] = 0xb5;
    f.data[at + 14] = seq >> 8; f.data[at + 15] = seq & 0xff;
    return f;
  };
  const isSeq = (x: PacketBuffer): boolean => x.data[x.start + 12] === 0x88 && x.data[x.start + 13] === 0xb5;

  await t.test('100 frames through a 15-slot TX ring without flush(): a full ring kicks the kernel instead of dropping', async () => {
    const before = db!.stats();
    for (let i = 0; i < 100; i++) db!.transmit(seqFrame(macB, macA, i));
    db!.flush();
    const seen: number[] = [];
    const out: PacketBuffer[] = [];
    const end = Date.now() + 2000;
    while (seen.length < 100 && Date.now() < end) {
      const n = da!.rxBurst(out, 64);
      for (let k = 0; k < n; k++) {
        const x = out[k]!;
        if (isSeq(x)) seen.push((x.data[x.start + 14]! << 8) | x.data[x.start + 15]!);
        x.release();
      }
      if (n === 0) await new Promise((r) => setTimeout(r, 5));
    }
    assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i), 'every frame, in order');
    const after = db!.stats();
    assert.equal(after.txPackets - before.txPackets, 100);
    assert.equal(after.txDropped - before.txDropped, 0);
  });

  await t.test('frames that meet a full RX ring are dropped by the kernel and counted in rxDropped', async () => {
    const before = db!.stats().rxDropped;
    for (let i = 0; i < 100; i++) da!.transmit(seqFrame(macA, macB, i));
    da!.flush();
    await new Promise((r) => setTimeout(r, 50));
    const out: PacketBuffer[] = [];
    let got = 0;
    for (let n; (n = db!.rxBurst(out, 64)) > 0;) {
      for (let k = 0; k < n; k++) { if (isSeq(out[k]!)) got++; out[k]!.release(); }
    }
    const dropped = db!.stats().rxDropped - before;
    assert.equal(got, 15, 'the ring held 15');
    assert.equal(dropped, 85, 'the kernel dropped the rest');
  });

  await t.test('close() leaves an interface the driver did not create', () => {
    da!.close();
    assert.match(ipIn(ns, ['link', 'show', 'dev', a]), new RegExp(a));
  });
});
