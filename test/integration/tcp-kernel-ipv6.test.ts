// TCP over IPv6 against the Linux kernel, in namespaces this file creates (2001:db8:221..226::/64
// and 198.18.221..226.0/24): an unmodified node:http server under `tstack run` answers `curl -6`
// and `ab -n 20000 -c 50` over IPv6 with 0 failed, over TAP and AF_PACKET; an unmodified client
// program's http.get/undici/fetch reach a kernel server at an IPv6 address through the stack; 64 MiB each way over TAP with SHA-256 equal,
// the kernel as client and as server, on a clean link and with 3% loss (nftables on the kernel
// side); the stack as IPv6 client of a kernel server over AF_PACKET; tshark over captures of
// both drivers finds no malformed frame and no bad checksum from the stack.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { destroyAllNetns, exec, requireRoot } from '../helpers/netns.js';
import {
  addKernelLoss, drain, kernelLossCounters, openKernelLink, pump, sha256, startPeer, within, type KernelLink,
} from '../helpers/kernel-peer.js';
import { ab, curl, startApp, stopAllApps } from '../helpers/run-app.js';
import { parseIpv6 } from '../../src/wire/addr.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { AfPacketDriver } from '../../src/driver/afpacket.js';
import { PcapWriter, capture } from '../../src/driver/pcap.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';
import { Stack as StackClass } from '../../src/stack/stack.js';
import { createNetns, destroyNetns } from '../helpers/netns.js';

after(destroyAllNetns);
after(stopAllApps);

const MIB = 1 << 20;
const SIZE = Number(process.env.TSTACK_KERNEL_BULK_MIB ?? 64) * MIB;
const ourData = randomBytes(SIZE);
const ourSha = sha256(ourData);

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** DAD done: the stack's address is usable (it is tentative for about a second). */
const preferred = (stack: Stack, addr: string) => () => stack.ip6.addresses(1).some((a) => a.addr === addr && a.state === 'preferred');

/** Frames from `mac` in a capture that tshark finds malformed or with a bad checksum, with how many frames were ours. */
function tsharkComplaints(pcapPath: string, mac: string): { ours: number; bad: string } {
  const run = (filter: string, fields: string[] = []) => execFileSync('tshark', ['-r', pcapPath, '-n',
    '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-Y', filter,
    ...(fields.length ? ['-T', 'fields', ...fields.flatMap((f) => ['-e', f])] : [])], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const ours = run(`eth.src == ${mac}`, ['frame.number']).split('\n').filter(Boolean).length;
  const bad = run(`eth.src == ${mac} && (_ws.malformed || tcp.checksum.status == "Bad" || icmpv6.checksum.status == "Bad" || _ws.expert.severity == "error")`);
  return { ours, bad: bad.trim() };
}

interface Outcome { peer: Record<string, unknown>; got: { bytes: number; sha: string } }

function check(o: Outcome): void {
  assert.equal(o.peer['recvError'], undefined, `kernel receive error: ${JSON.stringify(o.peer)}`);
  assert.equal(o.peer['sendError'], undefined, `kernel send error: ${JSON.stringify(o.peer)}`);
  assert.equal(o.peer['recvBytes'], SIZE, 'bytes the kernel received');
  assert.equal(o.peer['recvSha'], ourSha, 'SHA-256 of what the kernel received');
  assert.equal(o.got.bytes, SIZE, 'bytes the stack received');
  assert.equal(o.got.sha, o.peer['sentSha'], 'SHA-256 of what the stack received');
}

/** The kernel connects to [us6]; the stack (on ::, dual-stack) accepts and both send SIZE bytes. */
async function kernelClient(stack: Stack, ns: string, us6: string, port: number, timeoutMs: number): Promise<Outcome> {
  const l = stack.tcp.listen({ port, addr6: new Uint8Array(16) });
  const accepted = new Promise<TcpSocket>((resolve) => { l.onConnection = resolve; });
  const peer = startPeer(ns, ['stream', 'client', us6, port, SIZE, 21], timeoutMs);
  try {
    const s = await within(accepted, 10_000, 'accept');
    assert.equal(s.family, 6);
    l.close();
    const [got, , res] = await within(Promise.all([drain(s), pump(s, ourData), peer.result]), timeoutMs, 'transfer');
    return { peer: res, got };
  } finally { peer.kill(); l.close(); }
}

/** The stack connects to a kernel server on [host6]; both send SIZE bytes. */
async function stackClient(stack: Stack, ns: string, host6: string, port: number, timeoutMs: number, size = SIZE): Promise<Outcome> {
  const peer = startPeer(ns, ['stream', 'server', port, size, 22], timeoutMs, 6);
  try {
    await within(peer.ready, 10_000, 'kernel server ready');
    const s = stack.tcp.connect({ raddr: 0, raddr6: parseIpv6(host6)!, rport: port });
    const got = drain(s);
    await within(new Promise<void>((resolve, reject) => {
      s.onConnect = resolve;
      const prev = s.onClose; s.onClose = (e) => { prev?.(e); reject(e ?? new Error('closed before connecting')); };
    }), 10_000, 'connect');
    assert.equal(s.tcb.mss, 1440, 'MSS over a 1500-byte IPv6 path');
    const data = size === SIZE ? ourData : ourData.subarray(0, size);
    const [g, , res] = await within(Promise.all([got, pump(s, data), peer.result]), timeoutMs, 'transfer');
    return { peer: res, got: g };
  } finally { peer.kill(); }
}

for (const driver of ['tap', 'afpacket'] as const) test(`tstack run over ${driver}: an unmodified node:http server answers curl -6 and ab -n 20000 -c 50 over IPv6 with 0 failed`, { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl', 'ab', 'ping'])) return;
  const sub = driver === 'tap' ? 221 : 226;
  const app = await startApp({
    prefix: 'v6http', subnet: sub, app: 'examples/hello-http/server.js', env: { PORT: '8080' },
    ready: /hello-http: listening on :::8080/,
    port: (ns, ifname) => `[[port]]
driver = "${driver}"
ifname = "${ifname}"
addr = "198.18.${sub}.2/24"
host_addr = "198.18.${sub}.1/24"
addr6 = "2001:db8:${sub}::2/64"
host_addr6 = "2001:db8:${sub}::1/64"
netns = "${ns}"`,
  });
  try {
    // DAD: the stack's address answers once it is no longer tentative.
    const deadline = Date.now() + 20_000;
    for (;;) {
      try { exec(app.ns, 'ping', ['-6', '-c', '1', '-W', '1', `2001:db8:${sub}::2`]); break; } catch (e) {
        if (Date.now() > deadline) throw e;
      }
    }
    const url = `http://[2001:db8:${sub}::2]:8080/`;
    assert.equal(await curl(app.ns, ['-6', '-g', url]), 'Hello from tstack\n');
    const head = await curl(app.ns, ['-6', '-g', '-i', url]);
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    // The same dual-stack listener still serves IPv4.
    assert.equal(await curl(app.ns, [`http://198.18.${sub}.2:8080/`]), 'Hello from tstack\n');
    const r = await ab(app.ns, url, 20000, 50);
    assert.equal(r.complete, 20000, r.raw);
    assert.equal(r.failed, 0, r.raw);
    assert.equal(r.non2xx, 0, r.raw);
    t.diagnostic(`${driver}: ab -n 20000 -c 50 over IPv6: ${r.rps} requests/s (2-core VM under load)`);
    app.child.kill('SIGTERM');
    assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
  } finally {
    await app.stop();
  }
});

test('tstack run: an unmodified client\'s http.get, undici and fetch to a kernel server at [2001:db8:227::1] go through the stack', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'python3', 'ping'])) return;
  const sub = 227;
  const app = await startApp({
    prefix: 'v6cli', subnet: sub, app: 'test/fixtures/apps/client-app.js', stdin: true,
    env: { STACK_URL: `http://[2001:db8:${sub}::1]:8000/hello.txt`, LOOPBACK_URL: `http://[2001:db8:${sub}::1]:8000/hello.txt` },
    ready: /client-app: ready/,
    port: (ns, ifname) => `[[port]]
driver = "tap"
ifname = "${ifname}"
addr = "198.18.${sub}.2/24"
host_addr = "198.18.${sub}.1/24"
addr6 = "2001:db8:${sub}::2/64"
host_addr6 = "2001:db8:${sub}::1/64"
netns = "${ns}"`,
  });
  const dir = mkdtempSync(join(tmpdir(), 'tstack-v6cli-'));
  const py = spawn('ip', ['netns', 'exec', app.ns, 'python3', '-u', '-m', 'http.server', '8000', '--bind', `2001:db8:${sub}::1`, '--directory', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    writeFileSync(join(dir, 'hello.txt'), 'hello over IPv6\n');
    let pyLog = '';
    py.stdout.setEncoding('utf8').on('data', (d: string) => { pyLog += d; });
    py.stderr.setEncoding('utf8').on('data', (d: string) => { pyLog += d; });
    await until(() => /Serving HTTP/.test(pyLog), 10_000, 'python3 -m http.server');
    // DAD: the stack's address answers once it is no longer tentative.
    const deadline = Date.now() + 20_000;
    for (;;) {
      try { exec(app.ns, 'ping', ['-6', '-c', '1', '-W', '1', `2001:db8:${sub}::2`]); break; } catch (e) {
        if (Date.now() > deadline) throw e;
      }
    }
    app.child.stdin!.end('go\n');
    const m = await app.waitForOutput(/client-app: result (.*)\n/, 30_000);
    const result = JSON.parse(m[1]!) as Record<string, unknown>;
    const want = { status: 200, body: 'hello over IPv6\n' };
    for (const k of ['httpGet', 'undici', 'fetch', 'loopback']) assert.deepEqual(result[k], want, `${k}: ${JSON.stringify(result)}`);
    // Every request came from the stack's address (the root namespace has no route there).
    await until(() => pyLog.split('\n').filter((l) => l.includes('GET /hello.txt')).length >= 4, 5000, 'the server log');
    const fromStack = pyLog.split('\n').filter((l) => l.startsWith(`2001:db8:${sub}::2 `) && l.includes('GET /hello.txt'));
    assert.equal(fromStack.length, 4, pyLog);
    assert.deepEqual(await Promise.race([app.exited, new Promise((r) => setTimeout(r, 10_000, 'still running').unref())]), { code: 0, signal: null }, app.output());
  } finally {
    py.kill('SIGTERM');
    await app.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const lossy of [false, true]) {
  const label = lossy ? '3% loss each way' : 'clean link';
  const timeoutMs = lossy ? 55_000 : 45_000;
  test(`TCP over IPv6 with the kernel over TAP, ${label}: ${SIZE / MIB} MiB each way, SHA-256 equal`, { timeout: 4 * timeoutMs }, async (t) => {
    if (!requireRoot(t, ['ip', 'python3', 'nft'])) return;
    const link: KernelLink = openKernelLink({ name: lossy ? 'k6bl' : 'k6bc', subnet: lossy ? 223 : 222, ipv6: true, sysctl: { 'net.inet.tcp.msl': 100 } });
    try {
      await until(preferred(link.stack, link.us6), 20_000, 'DAD');
      if (lossy) addKernelLoss(link.ns, 3);
      await t.test('kernel client -> tstack server', async () => check(await kernelClient(link.stack, link.ns, link.us6, 5001, timeoutMs)));
      await t.test('tstack client -> kernel server', async () => check(await stackClient(link.stack, link.ns, link.host6, 5002, timeoutMs)));
      if (lossy) {
        const c = kernelLossCounters(link.ns);
        t.diagnostic(`nftables drops: in ${c.in}, out ${c.out}`);
        assert.ok(c.in > SIZE / MIB && c.out > SIZE / MIB, `nftables dropped too little to matter: ${JSON.stringify(c)}`);
      } else {
        // TSO6 both ways over TAP (the virtio header's gso TCPV6): frames far above the MTU.
        const st = link.tap.stats();
        const rxAvg = st.rxBytes / st.rxPackets, txAvg = st.txBytes / st.txPackets;
        t.diagnostic(`TAP frames: received ${st.rxPackets} (avg ${rxAvg.toFixed(0)} B), sent ${st.txPackets} (avg ${txAvg.toFixed(0)} B)`);
        assert.ok(rxAvg > 3000 && txAvg > 3000, `super-segments both ways: rx avg ${rxAvg.toFixed(0)} B, tx avg ${txAvg.toFixed(0)} B`);
      }
      const end = Date.now() + 3000;
      while (link.stack.tcp.activeTcbs > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.equal(link.stack.tcp.activeTcbs, 0, 'connections left after TIME_WAIT');
    } finally {
      link.close();
    }
  });
}

test('tshark over a TAP capture of TCP over IPv6 (both directions, 4 MiB each way): 0 malformed, 0 bad checksums from the stack', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'python3', 'tshark'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'tstack-k6t-'));
  const pcapPath = join(dir, 'v6.pcap');
  const link = openKernelLink({ name: 'k6tc', subnet: 224, ipv6: true, pcapPath, csumOffload: false });
  try {
    await until(preferred(link.stack, link.us6), 20_000, 'DAD');
    const o = await stackClient(link.stack, link.ns, link.host6, 5003, 45_000, 4 * MIB);
    assert.equal(o.peer['recvBytes'], 4 * MIB);
    assert.equal(o.got.bytes, 4 * MIB);
    assert.equal(o.got.sha, o.peer['sentSha']);
    link.pcap!.close();
    const mac = Array.from(link.stack.interfaces[0]!.dev.mac, (b) => b.toString(16).padStart(2, '0')).join(':');
    const { ours, bad } = tsharkComplaints(pcapPath, mac);
    t.diagnostic(`${ours} frames from the stack checked`);
    assert.ok(ours > 500, `frames from the stack in the capture: ${ours}`);
    assert.equal(bad, '', `tshark complaints about our frames:\n${bad.slice(0, 4000)}`);
  } finally {
    link.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('AF_PACKET: the stack as IPv6 client of a kernel server, 8 MiB each way SHA-256 equal, tshark clean', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'python3', 'tshark'])) return;
  const sub = 225;
  const ns = createNetns('k6ap');
  const dev = `k6ap${process.pid % 100000}`.slice(0, 14);
  const dir = mkdtempSync(join(tmpdir(), 'tstack-k6a-'));
  const pcapPath = join(dir, 'afp.pcap');
  let loop: RunLoop | null = null;
  let stack: StackClass | null = null;
  let pcap: PcapWriter | null = null;
  try {
    const driver = AfPacketDriver.open({ ifname: dev, netns: ns, hostAddr6: `2001:db8:${sub}::1/64` });
    pcap = new PcapWriter(pcapPath);
    const d = capture(driver, pcap, realClock);
    stack = new StackClass({ clock: realClock, name: 'k6ap' });
    const ifIndex = stack.addInterface(d, { addr6: `2001:db8:${sub}::2/64` });
    loop = new RunLoop({ stack, poll: 'interrupt' });
    loop.addPort(d, ifIndex);
    stack.onOutput = () => loop!.kick();
    loop.start();
    await until(preferred(stack, `2001:db8:${sub}::2`), 20_000, 'DAD');
    const size = 8 * MIB;
    const o = await stackClient(stack, ns, `2001:db8:${sub}::1`, 5004, 60_000, size);
    assert.equal(o.peer['recvBytes'], size);
    assert.equal(o.peer['recvSha'], sha256(ourData.subarray(0, size)));
    assert.equal(o.got.bytes, size);
    assert.equal(o.got.sha, o.peer['sentSha']);
    loop.stop(); loop = null;
    pcap.close(); pcap = null;
    const mac = Array.from(driver.mac, (b) => b.toString(16).padStart(2, '0')).join(':');
    const { ours, bad } = tsharkComplaints(pcapPath, mac);
    t.diagnostic(`${ours} frames from the stack checked`);
    assert.ok(ours > 500, `frames from the stack in the capture: ${ours}`);
    assert.equal(bad, '', `tshark complaints about our frames:\n${bad.slice(0, 4000)}`);
  } finally {
    try { loop?.stop(); } catch { /* closing anyway */ }
    try { stack?.close(); } catch { /* idem */ }
    try { pcap?.close(); } catch { /* idem */ }
    destroyNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});
