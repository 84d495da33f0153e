// One instance on two TAP ports, each in a namespace this file creates (A: 198.18.152.0/24,
// B: 198.18.153.0/24, and 2001:db8:152::/64, 2001:db8:153::/64). It serves both sides; with
// forwarding off (the default) nothing crosses; with net.inet.ip.forwarding and
// net.inet6.ip6.forwarding on, the kernel in A pings and curls the kernel in B through tstack,
// TTL and hop limit decremented (the replies arrive with 63, the requests leave tstack with 63).
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { createNetns, destroyAllNetns, destroyNetns, ipIn, requireRoot, spawnIn } from '../helpers/netns.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { formatIpv4 } from '../../src/wire/addr.js';

after(destroyAllNetns);

const A = '198.18.152', B = '198.18.153';

async function until(pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A minimal HTTP/1.0 responder on the engine's TCP: answers every request with `body` and closes. */
function serveHttp(inst: Instance, port: number, body: (s: TcpSocket) => string): void {
  const l = inst.stack.tcp.listen({ port });
  l.onConnection = (s) => {
    let req = '';
    s.onData = () => {
      for (let d = s.read(); d; d = s.read()) req += Buffer.from(d).toString('latin1');
      if (req.includes('\r\n\r\n')) {
        const b = body(s);
        s.write(Buffer.from(`HTTP/1.0 200 OK\r\nContent-Length: ${b.length}\r\nConnection: close\r\n\r\n${b}`));
        s.shutdown();
        req = '';
      }
    };
  };
}

test('two TAP ports in two namespaces: both served; forwarding off forwards nothing; on, ping/ping6/curl cross with TTL 63', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ping', 'curl', 'python3', 'tshark'])) return;
  const nsA = createNetns('fwda'), nsB = createNetns('fwdb');
  const tag = process.pid % 100000;
  const devA = `fa${tag}`, devB = `fb${tag}`;
  const dir = mkdtempSync(join(tmpdir(), 'tstack-fwd-'));
  const pcapB = join(dir, 'b.pcap');
  let inst: Instance | null = null;
  let server: ChildProcess | null = null;
  try {
    inst = startInstance(parseConfig(`
[stack]
poll = "interrupt"
[[port]]
driver = "tap"
ifname = "${devA}"
netns = "${nsA}"
addr = "${A}.2/24"
host_addr = "${A}.1/24"
addr6 = "2001:db8:152::2/64"
host_addr6 = "2001:db8:152::1/64"
[[port]]
driver = "tap"
ifname = "${devB}"
netns = "${nsB}"
addr = "${B}.2/24"
host_addr = "${B}.1/24"
addr6 = "2001:db8:153::2/64"
host_addr6 = "2001:db8:153::1/64"
pcap = "${pcapB}"
`, 'fwd.toml'));
    serveHttp(inst, 8080, (s) => `hello ${formatIpv4(s.localAddress)}`);
    ipIn(nsA, ['route', 'add', `${B}.0/24`, 'via', `${A}.2`]);
    ipIn(nsB, ['route', 'add', `${A}.0/24`, 'via', `${B}.2`]);
    ipIn(nsA, ['-6', 'route', 'add', '2001:db8:153::/64', 'via', '2001:db8:152::2']);
    ipIn(nsB, ['-6', 'route', 'add', '2001:db8:152::/64', 'via', '2001:db8:153::2']);
    // IPv6 DAD on both sides.
    await until(() => inst!.stack.ip6.addresses(1).concat(inst!.stack.ip6.addresses(2)).filter((a) => a.origin === 'manual' && a.state === 'preferred').length === 2, 15_000, 'DAD');
    await until(async () => !(await spawnIn(nsA, 'ip', ['-6', 'addr', 'show', 'tentative'])).stdout.includes('2001:db8'), 15_000, 'kernel DAD in A');
    await until(async () => !(await spawnIn(nsB, 'ip', ['-6', 'addr', 'show', 'tentative'])).stdout.includes('2001:db8'), 15_000, 'kernel DAD in B');

    // Served on both ports.
    for (const [ns, sub] of [[nsA, A], [nsB, B]] as const) {
      const r = await spawnIn(ns, 'curl', ['-sS', '--max-time', '20', `http://${sub}.2:8080/`], 30_000);
      assert.equal(r.stdout, `hello ${sub}.2`, r.stderr);
    }

    // A kernel HTTP server in B with a 4 MiB file.
    const file = join(dir, 'blob');
    const blob = Buffer.alloc(4 << 20);
    for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeFileSync(file, blob);
    server = spawn('ip', ['netns', 'exec', nsB, 'python3', '-m', 'http.server', '--bind', `${B}.1`, '8000', '--directory', dir], { stdio: 'ignore' });
    await until(async () => (await spawnIn(nsB, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${B}.1:8000/blob`], 10_000)).stdout === '200', 20_000, 'the kernel server in B');

    // Forwarding off: nothing crosses.
    let p = await spawnIn(nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', `${B}.1`], 20_000);
    assert.match(p.stdout, / 0 received/, p.stdout);
    p = await spawnIn(nsA, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '1', '2001:db8:153::1'], 20_000);
    assert.match(p.stdout, / 0 received/, p.stdout);
    const off = await spawnIn(nsA, 'curl', ['-sS', '--max-time', '3', '-o', '/dev/null', `http://${B}.1:8000/blob`], 20_000);
    assert.notEqual(off.code, 0, 'curl through tstack fails with forwarding off');
    assert.equal(inst.stack.ipStats.forwarded + inst.stack.ip6.stats.forwarded, 0);

    // Forwarding on.
    inst.stack.sysctl.set('net.inet.ip.forwarding', 1);
    inst.stack.sysctl.set('net.inet6.ip6.forwarding', 1);
    p = await spawnIn(nsA, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', `${B}.1`], 30_000);
    assert.match(p.stdout, / 5 received/, p.stdout);
    assert.match(p.stdout, /ttl=63/, `the reply crossed one router: ${p.stdout}`);
    p = await spawnIn(nsA, 'ping', ['-6', '-c', '5', '-i', '0.2', '-W', '2', '2001:db8:153::1'], 30_000);
    assert.match(p.stdout, / 5 received/, p.stdout);
    assert.match(p.stdout, /ttl=63/, p.stdout);
    // TTL 1 from A: tstack answers Time Exceeded (ping reports it from tstack's address).
    p = await spawnIn(nsA, 'ping', ['-c', '1', '-t', '1', '-W', '2', `${B}.1`], 20_000);
    assert.match(p.stdout, new RegExp(`From ${A.replace(/\./g, '\\.')}\\.2 .*Time to live exceeded`), p.stdout);
    const r = await spawnIn(nsA, 'sh', ['-c', `curl -sS --max-time 60 http://${B}.1:8000/blob | sha256sum`], 90_000);
    assert.equal(r.stdout.split(' ')[0], createHash('sha256').update(blob).digest('hex'), r.stderr);
    t.diagnostic(`forwarded ${inst.stack.ipStats.forwarded} IPv4 datagrams, ${inst.stack.ip6.stats.forwarded} IPv6 packets`);
    assert.ok(inst.stack.ipStats.forwarded > 100);
  } finally {
    server?.kill('SIGKILL');
    inst?.stop();
    destroyNetns(nsA);
    destroyNetns(nsB);
  }
  // What tstack sent into B: the echo requests from A with TTL 63, nothing malformed.
  const fields = execFileSync('tshark', ['-r', pcapB, '-n', '-Y', `icmp.type == 8 && ip.src == ${A}.1`, '-T', 'fields', '-e', 'ip.ttl'], { encoding: 'utf8', timeout: 60_000 }).trim().split('\n');
  assert.deepEqual([...new Set(fields)], ['63'], `TTL of the forwarded echo requests: ${fields.join(',')}`);
  const hl = execFileSync('tshark', ['-r', pcapB, '-n', '-Y', 'icmpv6.type == 128 && ipv6.src == 2001:db8:152::1', '-T', 'fields', '-e', 'ipv6.hlim'], { encoding: 'utf8', timeout: 60_000 }).trim().split('\n');
  assert.deepEqual([...new Set(hl)], ['63']);
  const bad = execFileSync('tshark', ['-r', pcapB, '-n', '-o', 'ip.check_checksum:TRUE', '-Y', '_ws.malformed || ip.checksum.status == "Bad"', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', timeout: 60_000 }).trim();
  assert.equal(bad, '', `malformed frames in B's capture: ${bad}`);
  rmSync(dir, { recursive: true, force: true });
});
