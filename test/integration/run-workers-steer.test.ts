// `tstack run` with [stack] workers = 2 (issue 11; docs/architecture.md "Workers", "Flow
// ownership"): UDP sockets, ICMP errors and fragments reach the worker that owns them. An
// unmodified node:http + node:dgram + node:net program (test/fixtures/apps/workers-steer.js) on
// AF_PACKET fanout and on a multi-queue TAP, with kernel peers in the test namespace
// (198.18.241.0/24) and a routed server behind a 1280-byte link in a second namespace
// (198.18.242.0/24) for frag-needed.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, destroyNetns, requireRoot } from '../helpers/netns.js';
import { BIN, ROOT, curl, runIn, startApp, stopAllApps, waitUntil, type RunningApp } from '../helpers/run-app.js';

after(stopAllApps);

const SUBNET = 241;
const ROUTED = '198.18.242.2';

/** Kernel-side UDP servers in the namespace: 7001 echoes, 7002 answers every datagram with 3000 bytes (fragmented at MTU 1500). */
const UDP_SERVERS = `
const dgram = require('node:dgram');
const a = dgram.createSocket('udp4'); a.on('message', (m, r) => a.send(m, r.port, r.address)); a.bind(7001);
const b = dgram.createSocket('udp4'); b.on('message', (m, r) => b.send(Buffer.alloc(3000, 0x62), r.port, r.address)); b.bind(7002, () => console.log('udp up'));`;

/** A TCP server that answers the number of bytes it read once the client ends. */
const COUNT_SERVER = `
require('node:net').createServer((c) => { let n = 0; c.on('data', (d) => { n += d.length; }); c.on('end', () => c.end(String(n))); c.on('error', () => {}); })
  .listen(7100, () => console.log('tcp up'));`;

function inNs(ns: string, script: string): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`peer exited ${c}`)));
  });
  return { child, ready };
}

const ctlDir = mkdtempSync(join(tmpdir(), 'tstack-steer-'));
after(() => rmSync(ctlDir, { recursive: true, force: true }));

async function startWorkers(prefix: string, driver: 'afpacket' | 'tap' | 'afxdp', extraPort = ''): Promise<RunningApp> {
  return startApp({
    extraConfig: `[control]\nsocket = "${ctlDir}/${prefix}.sock"\n`,
    prefix, subnet: SUBNET, app: 'test/fixtures/apps/workers-steer.js', args: ['8080'], driver, workers: 2,
    env: { TSTACK_DEBUG: '1' },
    port: (ns, ifname) => `[[port]]\ndriver = "${driver}"\nifname = "${ifname}"\naddr = "198.18.${SUBNET}.2/24"\ngateway = "198.18.${SUBNET}.1"\nhost_addr = "198.18.${SUBNET}.1/24"\nnetns = "${ns}"${extraPort}`,
    ready: /listening pid \d+[\s\S]*listening pid \d+/, readyTimeoutMs: 60_000,
  });
}

/** Asks until both workers answered `path`; returns each worker's "K/N". */
async function fromBoth(app: RunningApp, path: string, what: string): Promise<Map<string, string>> {
  const results = new Map<string, string>();
  for (let k = 0; k < 30 && results.size < 2; k++) {
    const out = await curl(app.ns, ['-s', '-m', '120', `http://${app.stackIp}:8080${path}`]);
    const m = new RegExp(`${what} (\\d+)/(\\d+) pid (\\d+)`).exec(out);
    assert.ok(m, `${path} answered: ${out}`);
    if (!results.has(m[3]!)) results.set(m[3]!, `${m[1]}/${m[2]}`);
  }
  assert.equal(results.size, 2, `both workers answered ${path}`);
  return results;
}

for (const driver of ['afpacket', 'tap'] as const) {
  test(`2 workers on ${driver}: UDP clients on each worker get their replies (3000-byte fragmented ones too), and a port unreachable reaches the connected socket as ECONNREFUSED`, { timeout: 240_000 }, async (t) => {
    if (!requireRoot(t, ['ip', 'curl'])) return;
    const app = await startWorkers(driver === 'tap' ? 'st-udp-tap' : 'st-udp-ap', driver);
    // Linux rate-limits ICMP errors per destination (about 6, then 1 a second): off in the test namespace.
    execFileSync('ip', ['netns', 'exec', app.ns, 'sysctl', '-q', '-w', 'net.ipv4.icmp_ratelimit=0']);
    const udp = inNs(app.ns, UDP_SERVERS);
    try {
      await udp.ready;
      const host = app.hostIp;
      for (const [pid, r] of await fromBoth(app, `/udp?host=${host}&p1=7001&p2=7002&n=40`, 'udp')) assert.equal(r, '40/40', `worker ${pid}: udp ${r}`);
      for (const [pid, r] of await fromBoth(app, `/refused?host=${host}&port=7009&n=20`, 'refused')) assert.equal(r, '20/20', `worker ${pid}: refused ${r}`);
    } finally {
      udp.child.kill();
      await app.stop();
    }
    const m = /frames steered (\d+)/.exec(app.output());
    t.diagnostic(`${driver}: ${m?.[0] ?? 'no steering figure'}`);
  });
}

/** A veth pair between two namespaces: end `a` in nsA, end `b` in nsB (both down, unaddressed). */
function routerLink(a: string, nsA: string, b: string, nsB: string): void {
  execFileSync('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  execFileSync('ip', ['link', 'set', a, 'netns', nsA]);
  execFileSync('ip', ['link', 'set', b, 'netns', nsB]);
}

const ip = (ns: string, ...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args]);

/** Both workers of instance `name` counted a path MTU update in their TCP statistics (netstat -s, worker by worker). */
function assertEachWorkerLoweredPmtu(t: { diagnostic(m: string): void }, name: string): void {
  for (const i of [0, 1]) {
    const s = JSON.parse(execFileSync(process.execPath, [BIN, 'netstat', '-s', '-p', 'tcp', '--json', '--socket', join(ctlDir, `${name}.w${i}.sock`)], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 })) as Record<string, Record<string, number>>;
    const tcp = (s['tcp'] ?? s) as Record<string, number>;
    assert.ok((tcp['pmtuUpdates'] ?? 0) > 0, `worker ${i} pmtuUpdates: ${JSON.stringify(tcp)}`);
    t.diagnostic(`worker ${i}: pmtuUpdates ${tcp['pmtuUpdates']}`);
  }
}

test('2 workers on afpacket: a frag-needed from a router lowers the path MTU of the owning worker\'s TCP connection (bulk through a 1280-byte link)', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl'])) return;
  const app = await startWorkers('st-pmtu', 'afpacket');
  const ns2 = createNetns('st-pmtu-r');
  const a = `s11r${process.pid % 10000}`, b = `${a}b`;
  let server: ReturnType<typeof inNs> | null = null;
  try {
    // ns routes between the stack (198.18.241.0/24) and ns2 (198.18.242.0/24); its end of the
    // link to ns2 has MTU 1280, ns2's end 1500: ns2 advertises MSS 1460, so the stack's full
    // segments meet the 1280-byte hop and the router answers frag-needed.
    routerLink(a, app.ns, b, ns2);
    ip(app.ns, 'ip', 'addr', 'add', '198.18.242.1/24', 'dev', a);
    ip(app.ns, 'ip', 'link', 'set', a, 'mtu', '1280', 'up');
    ip(app.ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
    ip(ns2, 'ip', 'addr', 'add', `${ROUTED}/24`, 'dev', b);
    ip(ns2, 'ip', 'link', 'set', b, 'up');
    ip(ns2, 'ip', 'link', 'set', 'lo', 'up');
    ip(ns2, 'ip', 'route', 'add', 'default', 'via', '198.18.242.1');
    server = inNs(ns2, COUNT_SERVER);
    await server.ready;
    for (const [pid, r] of await fromBoth(app, `/bulk?host=${ROUTED}&port=7100&n=8&bytes=200000`, 'bulk')) assert.equal(r, '8/8', `worker ${pid}: bulk ${r}`);
    // Each worker's TCP lowered its path MTU (netstat -s, worker by worker).
    assertEachWorkerLoweredPmtu(t, 'st-pmtu');
  } finally {
    server?.child.kill();
    await app.stop();
    try { execFileSync('ip', ['netns', 'exec', app.ns, 'ip', 'link', 'del', a], { stdio: 'ignore' }); } catch { /* gone with the namespace */ }
    destroyNetns(ns2);
  }
});

test('2 workers on afpacket: an ICMPv6 Packet Too Big from a router lowers the path MTU of the owning worker\'s IPv6 TCP connection', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl'])) return;
  const app = await startWorkers('st-ptb', 'afpacket',
    `\naddr6 = "2001:db8:${SUBNET}::2/64"\ngateway6 = "2001:db8:${SUBNET}::1"\nhost_addr6 = "2001:db8:${SUBNET}::1/64"`);
  const ns2 = createNetns('st-ptb-r');
  const a = `s11p${process.pid % 10000}`, b = `${a}b`;
  let server: ReturnType<typeof inNs> | null = null;
  try {
    // As the IPv4 test: the router's end of the link to ns2 has MTU 1280 (IPv6's minimum), ns2's 1500.
    routerLink(a, app.ns, b, ns2);
    ip(app.ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1');
    ip(app.ns, 'ip', 'link', 'set', a, 'mtu', '1280', 'up');
    ip(app.ns, 'ip', '-6', 'addr', 'add', '2001:db8:242::1/64', 'dev', a, 'nodad');
    ip(ns2, 'ip', 'link', 'set', b, 'up');
    ip(ns2, 'ip', 'link', 'set', 'lo', 'up');
    ip(ns2, 'ip', '-6', 'addr', 'add', '2001:db8:242::2/64', 'dev', b, 'nodad');
    ip(ns2, 'ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:242::1');
    server = inNs(ns2, COUNT_SERVER.replace('.listen(7100,', ".listen(7100, '::',"));
    await server.ready;
    // Each worker's IPv6 address is usable once its DAD is over; until then the program's IPv6
    // connect would stay on the kernel (no route on the stack: docs/compat.md), so wait for it.
    const preferred = (i: number) => {
      const j = JSON.parse(execFileSync(process.execPath, [BIN, 'ndp', '-I', '--json', '--socket', join(ctlDir, 'st-ptb.sock'), '-w', String(i)], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 })) as { addrs: { addr: string; state: string }[] }[];
      return j.some((p) => p.addrs.some((a) => a.addr === `2001:db8:${SUBNET}::2` && a.state === 'preferred'));
    };
    await waitUntil(() => preferred(0) && preferred(1), 30_000, 'both workers\' IPv6 address is past DAD');
    const results = await fromBoth(app, `/bulk?host=2001:db8:242::2&port=7100&n=8&bytes=200000`, 'bulk');
    for (const [pid, r] of results) assert.equal(r, '8/8', `worker ${pid}: bulk ${r}`);
    assertEachWorkerLoweredPmtu(t, 'st-ptb');
  } finally {
    server?.child.kill();
    await app.stop();
    destroyNetns(ns2);
  }
});

test('2 workers on afxdp: one XSK per worker on its own queue of a 2-queue veth; both serve, UDP replies and ECONNREFUSED reach their worker, a replacement after kill -9 takes the queue again', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'curl', 'ab'])) return;
  const app = await startWorkers('st-xdp', 'afxdp');
  execFileSync('ip', ['netns', 'exec', app.ns, 'sysctl', '-q', '-w', 'net.ipv4.icmp_ratelimit=0']);
  const udp = inNs(app.ns, UDP_SERVERS);
  try {
    await udp.ready;
    // The supervisor made the veth with a queue per worker on both ends.
    const link = JSON.parse(execFileSync('ip', ['-n', app.ns, '-d', '-j', 'link', 'show', 'dev', `${app.ifname}h`], { encoding: 'utf8' })) as { num_rx_queues?: number; num_tx_queues?: number }[];
    assert.equal(link[0]?.num_rx_queues, 2); assert.equal(link[0]?.num_tx_queues, 2);
    let seen = new Set<string>();
    for (let k = 0; k < 40 && seen.size < 2; k++) {
      const out = await curl(app.ns, ['-s', '-m', '10', `http://${app.stackIp}:8080/`]);
      const m = /hello from (\d+)/.exec(out);
      if (m) seen = new Set([...seen, m[1]!]);
    }
    assert.equal(seen.size, 2, 'both workers answered');
    const r = await runIn(app.ns, 'ab', ['-q', '-n', '1000', '-c', '10', `http://${app.stackIp}:8080/`], { timeoutMs: 120_000 });
    assert.match(r.stdout, /Complete requests:\s+1000/);
    assert.match(r.stdout, /Failed requests:\s+0/);
    const host = app.hostIp;
    for (const [pid, res] of await fromBoth(app, `/udp?host=${host}&p1=7001&p2=7002&n=20`, 'udp')) assert.equal(res, '20/20', `worker ${pid}: udp ${res}`);
    for (const [pid, res] of await fromBoth(app, `/refused?host=${host}&port=7009&n=10`, 'refused')) assert.equal(res, '10/10', `worker ${pid}: refused ${res}`);
    // kill -9 of one worker: its socket leaves the XSKMAP with it; the replacement binds the same queue and serves.
    const victim = [...seen][0]!;
    process.kill(Number(victim), 'SIGKILL');
    await waitUntil(() => (app.output().match(/listening pid/g) ?? []).length >= 3, 30_000, 'a replacement listens');
    let both = new Set<string>();
    for (let k = 0; k < 60 && both.size < 2; k++) {
      const m = /hello from (\d+)/.exec(await curl(app.ns, ['-s', '-m', '5', `http://${app.stackIp}:8080/`]).catch(() => ''));
      if (m) both = new Set([...both, m[1]!]);
    }
    assert.equal(both.size, 2, 'two workers serve after the replacement');
    assert.ok(!both.has(victim));
  } finally {
    udp.child.kill();
    await app.stop();
  }
  const m = /frames steered (\d+)/.exec(app.output());
  t.diagnostic(`afxdp: ${m?.[0] ?? 'no steering figure'} (the kernel end picks the queue by its own hash; steering moves the rest)`);
});

test('AF_XDP on a veth with one queue: a second worker\'s socket on queue 1 is refused with EINVAL', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t, ['ip'])) return;
  const ns = createNetns('st-xdp1');
  const name = `s11x${process.pid % 10000}`;
  try {
    execFileSync('ip', ['-n', ns, 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}h`]);
    execFileSync('ip', ['-n', ns, 'link', 'set', name, 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', `${name}h`, 'up']);
    const { AfXdpDriver, attachXdpShared } = await import('../../src/driver/afxdp.js');
    const shared = attachXdpShared({ ifname: name, netns: ns });
    try {
      const q0 = AfXdpDriver.open({ ifname: name, netns: ns, queue: 0, sharedXskMap: shared.xskMapId });
      q0.close();
      assert.throws(() => AfXdpDriver.open({ ifname: name, netns: ns, queue: 1, sharedXskMap: shared.xskMapId }),
        /bind\(AF_XDP s11x\d+ queue 1\): EINVAL/);
    } finally {
      shared.close();
    }
  } finally {
    destroyNetns(ns);
  }
});

test('AF_XDP: the kernel does not let an XDP program redirect a frame to the socket of another queue (why workers own queues, not hashes)', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t, ['ip'])) return;
  const { AfXdpDriver } = await import('../../src/driver/afxdp.js');
  const bpf = await import('../../src/driver/sys/bpf.js');
  const libc = await import('../../src/driver/sys/libc.js');
  const { inNetns } = await import('../../src/driver/sys/netns.js');
  const ns = createNetns('st-xdpq');
  const name = `s11q${process.pid % 10000}`;
  try {
    const ipn = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a]);
    ipn('link', 'add', name, 'numtxqueues', '2', 'numrxqueues', '2', 'type', 'veth', 'peer', 'name', `${name}h`, 'numtxqueues', '2', 'numrxqueues', '2');
    ipn('link', 'set', name, 'up'); ipn('link', 'set', `${name}h`, 'up');
    ipn('addr', 'add', '198.18.243.1/24', 'dev', `${name}h`);
    ipn('neigh', 'add', '198.18.243.2', 'lladdr', '02:00:00:00:00:02', 'dev', `${name}h`, 'nud', 'permanent');
    /** Attaches `which` program, opens sockets on queues 0 and 1, sends 60 datagrams from 60 kernel sockets; datagrams each socket got. */
    const trial = async (which: 'queue' | 'slot1'): Promise<[number, number]> => {
      const fds = inNetns(ns, () => {
        const ifindex = libc.ifNameToIndex(name);
        const map = bpf.createXskMap(64);
        const prog = bpf.progLoadXdp(which === 'queue' ? bpf.redirectAllProgram(map) : bpf.redirectToSlotProgram(map, 1), 'tst_trial');
        const link = bpf.linkCreateXdp(prog, ifindex, bpf.XDP_FLAGS_DRV_MODE);
        return { map, prog, link };
      });
      const socks = [0, 1].map((queue) => AfXdpDriver.open({ ifname: name, netns: ns, queue, sharedXskMap: bpf.mapIdOf(fds.map) }));
      try {
        execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', `
          const dgram = require('node:dgram'); let left = 60;
          for (let i = 0; i < 60; i++) { const s = dgram.createSocket('udp4'); s.send('x', 9, '198.18.243.2', () => { s.close(); if (--left === 0) process.exit(0); }); }`], { timeout: 20_000 });
        await new Promise((r) => setTimeout(r, 300));
        const rx: import('../../src/base/pktbuf.js').PacketBuffer[] = [];
        return socks.map((d) => {
          let n = 0;
          for (let k = d.rxBurst(rx, 64); k > 0; k = d.rxBurst(rx, 64)) {
            for (let i = 0; i < k; i++) { const b = rx[i]!; if (b.data[b.start + 12] === 0x08 && b.data[b.start + 23] === 17) n++; b.release(); }
          }
          return n;
        }) as [number, number];
      } finally {
        for (const d of socks) d.close();
        for (const fd of [fds.link, fds.prog, fds.map]) libc.close(fd);
      }
    };
    const byQueue = await trial('queue');
    const toSlot1 = await trial('slot1');
    t.diagnostic(`redirect to the arrival queue's socket: queue 0 ${byQueue[0]}, queue 1 ${byQueue[1]}; everything to queue 1's socket: ${toSlot1[0]} + ${toSlot1[1]} of 60`);
    // The kernel end spreads its sockets' datagrams over both queues…
    assert.equal(byQueue[0] + byQueue[1], 60);
    assert.ok(byQueue[0] > 0 && byQueue[1] > 0, `both queues used: ${byQueue}`);
    // …and a redirect to queue 1's socket delivers only what arrived on queue 1: the rest is
    // dropped (xsk_rcv_check: xs->queue_id != xdp->rxq->queue_index -> -EINVAL).
    assert.equal(toSlot1[0], 0);
    assert.ok(toSlot1[1] < 60 && toSlot1[1] > 0, `only queue 1's frames arrive: ${toSlot1[1]}`);
  } finally {
    destroyNetns(ns);
  }
});
