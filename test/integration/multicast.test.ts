// Multicast on a TAP port (root, namespaces): an unmodified node:dgram program under `tstack
// run` joins 239.1.2.3; a kernel sender in the namespace (python3, a route for 239/8 and 232/8
// on the TAP) reaches it; tshark sees the IGMPv3 reports on join and leave, and the answer to
// a general query scapy sends; after the leave
// nothing more is delivered; a source-specific join receives only from its source.
// The same for IPv6 with a udp6 program: ff15::1:2:3 joined through MLDv2 (tshark sees the
// reports on join and leave), a source-specific join on ff15::1:2:5.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, run } from '../helpers/netns.js';
import { runIn, startApp, startLiveCapture, stopAllApps, waitUntil } from '../helpers/run-app.js';

const dir = mkdtempSync(join(tmpdir(), 'tstack-mcast-'));
after(async () => { await stopAllApps(); rmSync(dir, { recursive: true, force: true }); });

/** A node:dgram program bound to PORT that joins, leaves and source-joins groups as told on stdin. */
const memberApp = (type: 'udp4' | 'udp6', port: number) => `import dgram from 'node:dgram';
import readline from 'node:readline';
const s = dgram.createSocket({ type: '${type}', reuseAddr: true });
s.on('message', (m, r) => console.log('msg ' + m + ' from ' + r.address));
s.bind(${port}, () => {
  console.log('ready');
  readline.createInterface({ input: process.stdin }).on('line', (l) => {
    const [op, a, b] = l.split(' ');
    try {
      if (op === 'join') s.addMembership(a);
      else if (op === 'leave') s.dropMembership(a);
      else if (op === 'ssm') s.addSourceSpecificMembership(a, b);
      console.log('ok ' + l);
    } catch (e) { console.log('err ' + l + ' ' + e.code); }
  });
});
`;
const APP = memberApp('udp4', 5400);

// /usr/bin/python3 has scapy (the python3 on PATH may not).
const SCAPY = '/usr/bin/python3';
const QUERY = `
import sys
from scapy.all import Ether, IP, IPOption_Router_Alert, sendp
from scapy.contrib.igmpv3 import IGMPv3, IGMPv3mq
q = (Ether(dst='01:00:5e:00:00:01') / IP(src='198.18.211.1', dst='224.0.0.1', ttl=1, tos=0xc0, options=[IPOption_Router_Alert()])
     / IGMPv3(type=0x11, mrcode=10) / IGMPv3mq(gaddr='0.0.0.0', qrv=2, qqic=125))
sendp(q, iface=sys.argv[1], verbose=False)
`;

const SENDER = `import socket, sys, time
src, group, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
for i in range(n):
    s.sendto(('%s%d' % (tag, i)).encode(), (group, 5400))
    time.sleep(0.05)
`;

test('dgram under tstack run: IGMPv3 join/leave reports, delivery from a kernel sender, nothing after the leave, source-specific join', async (t) => {
  if (!requireRoot(t, ['ip', 'tshark', 'python3'])) return;
  const appFile = join(dir, 'mcast-app.mjs');
  writeFileSync(appFile, APP);
  const sender = join(dir, 'send.py');
  writeFileSync(sender, SENDER);
  const app = await startApp({ prefix: 'mcast', subnet: 211, app: appFile, ready: /ready/, stdin: true });
  const { ns, ifname } = app;
  const other = '198.18.211.3';
  run('ip', ['-n', ns, 'addr', 'add', `${other}/24`, 'dev', ifname]);
  run('ip', ['-n', ns, 'route', 'add', '239.0.0.0/8', 'dev', ifname]);
  run('ip', ['-n', ns, 'route', 'add', '232.0.0.0/8', 'dev', ifname]);
  const cap = await startLiveCapture(ns, ifname, 'igmp', app.stackIp, ['igmp.version', 'igmp.type', 'igmp.record_type', 'igmp.maddr', 'igmp.saddr', '_ws.malformed']);
  try {
    const cmd = async (line: string) => { app.child.stdin!.write(line + '\n'); await app.waitForOutput(new RegExp(`(ok|err) ${line.replace(/\./g, '\\.')}\\n`)); assert.match(app.output(), new RegExp(`ok ${line.replace(/\./g, '\\.')}`)); };
    const send = (src: string, group: string, tag: string, n: number) => runIn(ns, 'python3', [sender, src, group, tag, String(n)], { timeoutMs: 20_000 });
    // IGMPv3 Membership Report (type 0x22) with a record of the given type for the group.
    const report = (recType: number, group: string) => cap.lines().some((l) => {
      const f = l.split('\t');
      return f[3] === '3' && f[4] === '0x22' && f[5]!.split(',').includes(String(recType)) && f[6]!.split(',').includes(group);
    });

    await cmd('join 239.1.2.3');
    await waitUntil(() => report(4, '239.1.2.3'), 15_000, 'an IGMPv3 CHANGE_TO_EXCLUDE report for 239.1.2.3');
    const first = await send(app.hostIp, '239.1.2.3', 'a', 10);
    assert.equal(first.code, 0, first.stderr);
    await app.waitForOutput(/msg a\d from 198\.18\.211\.1\n/, 15_000);

    // A querier (scapy) asks; the stack answers with MODE_IS_EXCLUDE for the group within the
    // Max Resp Time (1 s).
    if (spawnSync(SCAPY, ['-c', 'import scapy']).status === 0) {
      for (let i = 0; i < 5 && !report(2, '239.1.2.3'); i++) {
        const q = await runIn(ns, SCAPY, ['-c', QUERY, ifname], { timeoutMs: 30_000 });
        assert.equal(q.code, 0, q.stderr);
        const until = Date.now() + 4000;
        while (Date.now() < until && !report(2, '239.1.2.3')) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(report(2, '239.1.2.3'), 'an IGMPv3 MODE_IS_EXCLUDE report answers the general query');
    } else if (process.env.CI) throw new Error('scapy missing under CI');

    await cmd('leave 239.1.2.3');
    await waitUntil(() => report(3, '239.1.2.3'), 15_000, 'an IGMPv3 CHANGE_TO_INCLUDE report for 239.1.2.3');
    const mark = app.output().length;
    // After the leave: datagrams to the group, then to a group still joined (delivered in order
    // on the one link, so once "c" is here, "b" had its chance).
    await cmd('join 239.1.2.4');
    assert.equal((await send(app.hostIp, '239.1.2.3', 'b', 5)).code, 0);
    assert.equal((await send(app.hostIp, '239.1.2.4', 'c', 3)).code, 0);
    await app.waitForOutput(/msg c\d from/, 15_000);
    assert.doesNotMatch(app.output().slice(mark), /msg b/, 'nothing is delivered after the leave');

    // Source-specific: 232.1.1.1 from the kernel side's first address only.
    await cmd(`ssm ${app.hostIp} 232.1.1.1`);
    await waitUntil(() => cap.lines().some((l) => l.split('\t')[5]!.split(',').includes('5') && l.includes('232.1.1.1') && l.includes(app.hostIp)), 15_000, 'an IGMPv3 ALLOW_NEW_SOURCES report naming the source');
    const mark2 = app.output().length;
    assert.equal((await send(other, '232.1.1.1', 'x', 5)).code, 0);
    assert.equal((await send(app.hostIp, '232.1.1.1', 'y', 3)).code, 0);
    await app.waitForOutput(/msg y\d from 198\.18\.211\.1\n/, 15_000);
    assert.doesNotMatch(app.output().slice(mark2), /msg x/, 'the other source is not delivered');

    const igmp = cap.lines().filter((l) => l.startsWith('IGMP'));
    assert.ok(igmp.length >= 4, `IGMP frames seen: ${igmp.length}`);
    assert.ok(!igmp.some((l) => l.split('\t')[8] !== ''), `malformed IGMP frames: ${igmp.join('\n')}`);
  } finally {
    cap.stop();
    await app.stop();
  }
});

const APP6 = memberApp('udp6', 5402);

const SENDER6 = `import socket, sys, time
src, group, ifname, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(ifname))
s.bind((src, 0))
for i in range(n):
    s.sendto(('%s%d' % (tag, i)).encode(), (group, 5402))
    time.sleep(0.05)
`;

test('udp6 dgram under tstack run: MLDv2 join/leave reports for ff15::1:2:3, delivery from a kernel sender, nothing after the leave, source-specific join', async (t) => {
  if (!requireRoot(t, ['ip', 'tshark', 'python3'])) return;
  const appFile = join(dir, 'mcast6-app.mjs');
  writeFileSync(appFile, APP6);
  const sender = join(dir, 'send6.py');
  writeFileSync(sender, SENDER6);
  const us6 = '2001:db8:219::2', host6 = '2001:db8:219::1', other6 = '2001:db8:219::3';
  const app = await startApp({
    prefix: 'mcast6', subnet: 219, app: appFile, ready: /ready/, stdin: true,
    extraConfig: `addr6 = "${us6}/64"\nhost_addr6 = "${host6}/64"\n`,
  });
  const { ns, ifname } = app;
  run('ip', ['-n', ns, '-6', 'addr', 'add', `${other6}/64`, 'dev', ifname, 'nodad']);
  // The kernel side's address must be past its own DAD before it can be a source.
  await waitUntil(() => {
    try { return !/tentative/.test(execFileSync('ip', ['-n', ns, '-6', 'addr', 'show', 'dev', ifname], { encoding: 'utf8' })); } catch { return false; }
  }, 15_000, "the kernel side's IPv6 addresses");
  // MLD reports carry a Hop-by-Hop header first (Router Alert), which the BPF 'icmp6' misses.
  const cap = await startLiveCapture(ns, ifname, 'ip6 multicast', app.stackIp,
    ['icmpv6.type', 'icmpv6.mldr.mar.record_type', 'icmpv6.mldr.mar.multicast_address', 'icmpv6.mldr.mar.source_address', '_ws.malformed']);
  try {
    const esc = (x: string) => x.replace(/[.:]/g, (c) => `\\${c}`);
    const cmd = async (line: string) => { app.child.stdin!.write(line + '\n'); await app.waitForOutput(new RegExp(`(ok|err) ${esc(line)}\\n`)); assert.match(app.output(), new RegExp(`ok ${esc(line)}`)); };
    const send = (src: string, group: string, tag: string, n: number) => runIn(ns, 'python3', [sender, src, group, ifname, tag, String(n)], { timeoutMs: 20_000 });
    // MLDv2 Listener Report (ICMPv6 type 143) with a record of the given type for the group.
    const report = (recType: number, group: string, source?: string) => cap.lines().some((l) => {
      const f = l.split('\t');
      return f[3] === '143' && f[4]!.split(',').includes(String(recType)) && f[5]!.split(',').includes(group) && (source === undefined || f[6]!.split(',').includes(source));
    });

    await cmd('join ff15::1:2:3');
    await waitUntil(() => report(4, 'ff15::1:2:3'), 15_000, 'an MLDv2 CHANGE_TO_EXCLUDE record for ff15::1:2:3').catch((e) => { throw new Error(`${(e as Error).message}; tshark saw:\n${cap.lines().join('\n')}`); });
    const first = await send(host6, 'ff15::1:2:3', 'a', 10);
    assert.equal(first.code, 0, first.stderr);
    await app.waitForOutput(new RegExp(`msg a\\d from ${esc(host6)}\\n`), 15_000);

    await cmd('leave ff15::1:2:3');
    await waitUntil(() => report(3, 'ff15::1:2:3'), 15_000, 'an MLDv2 CHANGE_TO_INCLUDE record for ff15::1:2:3');
    const mark = app.output().length;
    // After the leave: datagrams to the group, then to a group still joined (delivered in order
    // on the one link, so once "c" is here, "b" had its chance).
    await cmd('join ff15::1:2:4');
    assert.equal((await send(host6, 'ff15::1:2:3', 'b', 5)).code, 0);
    assert.equal((await send(host6, 'ff15::1:2:4', 'c', 3)).code, 0);
    await app.waitForOutput(/msg c\d from/, 15_000);
    assert.doesNotMatch(app.output().slice(mark), /msg b/, 'nothing is delivered after the leave');

    // Source-specific: ff15::1:2:5 from the kernel side's first address only.
    await cmd(`ssm ${host6} ff15::1:2:5`);
    await waitUntil(() => report(5, 'ff15::1:2:5', host6), 15_000, 'an MLDv2 ALLOW_NEW_SOURCES record naming the source');
    const mark2 = app.output().length;
    assert.equal((await send(other6, 'ff15::1:2:5', 'x', 5)).code, 0);
    assert.equal((await send(host6, 'ff15::1:2:5', 'y', 3)).code, 0);
    await app.waitForOutput(new RegExp(`msg y\\d from ${esc(host6)}\\n`), 15_000);
    assert.doesNotMatch(app.output().slice(mark2), /msg x/, 'the other source is not delivered');

    const mld = cap.lines().filter((l) => l.split('\t')[3] === '143');
    assert.ok(mld.length >= 4, `MLDv2 reports seen: ${mld.length}`);
    assert.ok(!mld.some((l) => l.split('\t')[7] !== ''), `malformed MLDv2 reports: ${mld.join('\n')}`);
  } finally {
    cap.stop();
    await app.stop();
  }
});
