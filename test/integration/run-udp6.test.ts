// UDP over IPv6 against the Linux kernel, over TAP and AF_PACKET, in namespaces this file
// creates: an unmodified node:dgram udp6 echo program under `tstack run` (test/fixtures/apps/
// udp6-echo.js) answers a Python client on the kernel's sockets — datagrams up to 1400 bytes and
// 3000-byte ones that travel in fragments both ways — and, on the same :: socket, an IPv4 client;
// the program then acts as a udp6 client of a kernel echo server. tshark over the kernel side
// shows no malformed frame and no bad checksum among the stack's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot } from '../helpers/netns.js';
import { runIn, startApp, stopAllApps, waitUntil } from '../helpers/run-app.js';

const children = new Set<ChildProcess>();
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await stopAllApps();
});

const CLIENT6 = `
import os, socket, sys
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2.0)
ok = 0
frags = 0
for i in range(n):
    size = 3000 if i % 5 == 4 else 1 + (i * 131) % 1400
    msg = os.urandom(size)
    for attempt in range(6):
        s.sendto(msg, (addr, port))
        try:
            got, peer = s.recvfrom(65536)
        except socket.timeout:
            continue
        if got == msg and peer[0] == addr and peer[1] == port:
            ok += 1
            frags += size == 3000
        break
print(ok, frags)
`;

const SERVER6 = `
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(30)
print('ready', flush=True)
try:
    while True:
        msg, peer = s.recvfrom(65536)
        s.sendto(msg, peer)
except socket.timeout:
    pass
`;

const STACK_MAC = '02:5e:00:22:00:02';

for (const [driver, sub] of [['tap', 221], ['afpacket', 222]] as const) {
  test(`${driver}: a udp6 echo program under tstack run answers kernel clients over IPv6 (fragments both ways) and IPv4, and is a udp6 client of a kernel server; tshark clean`, { timeout: 180_000 }, async (t) => {
    if (!requireRoot(t, ['ip', 'python3', 'tshark'])) return;
    const us6 = `2001:db8:${sub}::2`, host6 = `2001:db8:${sub}::1`;
    const app = await startApp({
      prefix: `udp6-${driver === 'tap' ? 't' : 'a'}`, subnet: sub, driver, app: 'test/fixtures/apps/udp6-echo.js', env: { PORT: '7000' },
      stdin: true, extraConfig: `addr6 = "${us6}/64"\nhost_addr6 = "${host6}/64"\nmac = "${STACK_MAC}"\n`,
      ready: /udp6-echo: listening on \[::\]:7000 IPv6/,
    });
    const kdev = driver === 'tap' ? app.ifname : `${app.ifname}h`;
    const dir = mkdtempSync(join(tmpdir(), 'tstack-udp6-'));
    const pcap = join(dir, 'kernel-side.pcap');
    try {
      // The kernel side's address must be past its own DAD before it can be a source.
      await waitUntil(() => {
        try { return !/tentative/.test(execFileSync('ip', ['-n', app.ns, '-6', 'addr', 'show', 'dev', kdev], { encoding: 'utf8' })); } catch { return false; }
      }, 10_000, 'the kernel side\'s IPv6 address');
      // Capture what crosses the link; live once it shows a probe ping6 to the stack.
      const shark = spawn('ip', ['netns', 'exec', app.ns, 'tshark', '-l', '-n', '-i', kdev, '-w', pcap, '-P', '-f', 'ip6 or udp'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(shark);
      let sharkOut = '';
      shark.stdout.setEncoding('utf8').on('data', (d: string) => { sharkOut += d; });
      const probe = async (): Promise<void> => {
        const before = (sharkOut.match(/ICMPv6 .*Echo \(ping\) reply/g) ?? []).length;
        for (let i = 0; i < 40; i++) {
          await runIn(app.ns, 'ping', ['-6', '-c', '1', '-W', '1', us6], { timeoutMs: 5000 });
          await new Promise((r) => setTimeout(r, 250));
          if ((sharkOut.match(/ICMPv6 .*Echo \(ping\) reply/g) ?? []).length > before) return;
        }
        throw new Error(`tshark never showed a probe ping6: ${sharkOut.slice(-2000)}`);
      };
      await probe();

      // 1. Kernel client over IPv6: 40 datagrams, every fifth 3000 bytes (fragmented both ways).
      let r = await runIn(app.ns, 'python3', ['-c', CLIENT6, us6, '7000', '40'], { timeoutMs: 90_000 });
      assert.equal(r.code, 0, r.stderr + app.output());
      assert.equal(r.stdout.trim(), '40 8', `IPv6 echo: ${r.stdout}${r.stderr}`);
      // 2. The same :: socket answers IPv4, from the address it was sent to.
      r = await runIn(app.ns, 'python3', ['-c', CLIENT6, app.stackIp, '7000', '10'], { timeoutMs: 60_000 });
      assert.equal(r.stdout.trim(), '10 2', `IPv4 on the :: socket: ${r.stdout}${r.stderr}`);
      app.child.stdin!.write('peers\n');
      const peers = await app.waitForOutput(/udp6-echo: peers (.*)\n/, 10_000);
      assert.match(peers[1]!, new RegExp(`IPv6 ::ffff:${app.hostIp.replace(/\./g, '\\.')}`));
      assert.match(peers[1]!, new RegExp(`IPv6 ${host6}`));

      // 3. The program as udp6 client of a kernel echo server: 29 datagrams (the 1-byte one is not
      // sent), 3000-byte ones fragmented both ways. 40 + 29 udp6 datagrams from the stack in all.
      const server = spawn('ip', ['netns', 'exec', app.ns, 'python3', '-c', SERVER6, host6, '7001'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(server);
      let serverOut = '';
      server.stdout.setEncoding('utf8').on('data', (d: string) => { serverOut += d; });
      await waitUntil(() => serverOut.includes('ready'), 10_000, 'the kernel echo server');
      app.child.stdin!.write(`client ${host6} 7001 30\n`);
      const m = await app.waitForOutput(/udp6-echo: client (\d+)\/(\d+) from (.*) local (\w+)\n/, 40_000);
      assert.equal(m[1], m[2], `every datagram came back: ${m[0]}`);
      assert.equal(m[3], `${host6} IPv6 7001`);
      assert.equal(m[4], 'IPv6');
      server.kill('SIGKILL');

      // Everything the stack sent is in the capture once a later probe shows up.
      await probe();
      shark.kill('SIGINT');
      await waitUntil(() => shark.exitCode !== null || shark.signalCode !== null, 15_000, 'tshark to finish the capture');
    } finally {
      await app.stop();
    }
    // The payloads are random bytes: decoded as data, never guessed at by a heuristic (RTCP...).
    const asData = ['-d', 'udp.port==7000,data', '-d', 'udp.port==7001,data'];
    const read = (filter: string) => execFileSync('tshark', ['-r', pcap, '-n', ...asData, '-o', 'udp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE',
      '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', timeout: 60_000 }).trim().split('\n').filter(Boolean).length;
    const ours = `eth.src == ${STACK_MAC}`;
    const udp6 = read(`${ours} && ipv6 && udp`);
    const frags = read(`${ours} && ipv6.fraghdr`);
    // Checksum verification was on: the stack's datagrams show as verified good.
    const good = read(`${ours} && ipv6 && udp.checksum.status == "Good"`);
    const bad = read(`${ours} && (_ws.malformed || udp.checksum.status == "Bad" || icmpv6.checksum.status == "Bad" || _ws.expert.severity >= "Error")`);
    t.diagnostic(`from the stack: ${udp6} udp6 datagrams (${good} with a verified checksum), ${frags} IPv6 fragments; ${bad} flagged`);
    assert.equal(good, udp6, 'tshark verified every udp6 checksum');
    assert.ok(udp6 >= 69, `the capture holds the stack's udp6 datagrams (${udp6})`);
    assert.ok(frags >= 16, `the 3000-byte datagrams left in fragments (${frags})`);
    const detail = bad === 0 ? '' : execFileSync('tshark', ['-r', pcap, '-n', ...asData, '-o', 'udp.check_checksum:TRUE', '-V', '-Y',
      `${ours} && (_ws.malformed || udp.checksum.status == "Bad" || icmpv6.checksum.status == "Bad" || _ws.expert.severity >= "Error")`], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(bad, 0, `tshark finds no malformed frame and no bad checksum among the stack's (${pcap}):\n${detail.slice(0, 6000)}`);
    rmSync(dir, { recursive: true, force: true });
  });
}
