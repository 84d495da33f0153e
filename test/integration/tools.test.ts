// The operator tools against a running `tstack run` instance: an unmodified node:http server
// (examples/hello-http) on a TAP port whose kernel side lives in a test namespace. Every check
// goes through the `tstack` command itself (bin/tstack.js) over the instance's control socket,
// and is compared with what the kernel side did or saw (python sockets, ping, ss, tshark, curl).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ipIn, requireRoot } from '../helpers/netns.js';
import { BIN, ROOT, curl, runCommand, runIn, startApp, stopAllApps, waitUntil, type CommandResult, type RunningApp } from '../helpers/run-app.js';
import { ControlClient } from '../../src/cli/client.js';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

// Children a test started and may leave behind when it fails (holding connections, stdin open):
// they would keep this file's process alive.
const holders = new Set<ChildProcess>();
after(async () => {
  for (const c of holders) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await stopAllApps();
});

const NAME = `tools-${process.pid}`;
const SOCKET = `/run/tstack/${NAME}.sock`;
const METRICS_PORT = 20000 + (process.pid % 20000);

interface Sock { proto: string; localAddress: string; localPort: number; foreignAddress: string; foreignPort: number; state: string; recvQ: number; sendQ: number }

/** Runs `tstack ARGS --socket SOCKET` (as `user` when given); resolves with its output and exit code. */
function tool(args: string[], opts: { user?: string; socket?: boolean } = {}): Promise<CommandResult> {
  const full = [BIN, ...args, ...(opts.socket === false ? [] : ['--socket', SOCKET])];
  return opts.user
    ? runCommand('runuser', ['-u', opts.user, '--', process.execPath, ...full], { timeoutMs: 30_000 })
    : runCommand(process.execPath, full, { timeoutMs: 30_000 });
}

async function json<T>(args: string[]): Promise<T> {
  const r = await tool([...args, '--json']);
  assert.equal(r.code, 0, `tstack ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const sockets = async () => (await json<{ sockets: Sock[] }>(['netstat', '-an'])).sockets;

/** A python program in the namespace holding `n` connections open until its stdin closes. */
function holdConnections(ns: string, ip: string, port: number, n: number) {
  const py = `
import socket, sys
ss = [socket.create_connection((${JSON.stringify(ip)}, ${port})) for _ in range(${n})]
print(' '.join(str(s.getsockname()[1]) for s in ss), flush=True)
sys.stdin.readline()
for s in ss: s.close()
print('closed', flush=True)
sys.stdin.readline()
`;
  const p = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', py], { stdio: ['pipe', 'pipe', 'inherit'] });
  holders.add(p);
  let out = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const line = (re: RegExp) => waitUntil(() => re.test(out), 20_000, `python: ${re}`).then(() => re.exec(out)!);
  return { p, line };
}

describe('tstack tools against `tstack run examples/hello-http`', () => {
  let app: RunningApp;
  let url: string;

  before(async () => {
    if (process.getuid?.() !== 0 && process.env['CI'] !== 'true') return;
    app = await startApp({
      prefix: 'tools', subnet: 187, app: 'examples/hello-http/server.js', env: { PORT: '80' },
      ready: /hello-http: listening on :::80/,
      extraConfig: `[control]\nname = "${NAME}"\n[metrics]\nlisten = "127.0.0.1:${METRICS_PORT}"\n`,
    });
    url = `http://${app.stackIp}/`;
    await waitUntil(() => existsSync(SOCKET), 10_000, `the control socket ${SOCKET}`);
  });

  test('the socket is mode 0660, ps lists the instance, and a malformed request gets an error reply', async (t) => {
    if (!requireRoot(t, ['ip', 'python3'])) return;
    assert.equal(lstatSync(SOCKET).mode & 0o777, 0o660);
    const psRun = await tool(['ps', '--json'], { socket: false });
    assert.equal(psRun.code, 0, psRun.stderr);
    const ps = JSON.parse(psRun.stdout) as { name: string; pid: number; ports: { name: string; inet: string[] }[] }[];
    const me = ps.find((i) => i.name === NAME);
    assert.ok(me, JSON.stringify(ps));
    assert.deepEqual(me.ports[0]!.inet, [`${app.stackIp}/24`]);
    const lines: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = createConnection(SOCKET);
      let buf = '';
      s.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const l = buf.split('\n').filter(Boolean);
        if (l.length >= 3) { lines.push(...l); s.destroy(); resolve(); }
      });
      s.on('error', reject);
      s.write('not json\n{"v":1,"id":7,"cmd":"nope"}\n{"v":1,"id":8,"cmd":"sysctl.set","args":{"name":"net.inet.tcp.msl","value":[1]}}\n');
    });
    const replies = lines.map((l) => JSON.parse(l) as { id: unknown; ok: boolean; error: { code: string } });
    assert.deepEqual(replies.map((r) => [r.id, r.ok, r.error.code]), [[null, false, 'EPROTO'], [7, false, 'ENOSYS'], [8, false, 'EINVAL']]);
    assert.equal((await json<Record<string, number>>(['sysctl', 'net.inet.tcp.msl']))['net.inet.tcp.msl'], 30000);
  });

  test('netstat -an lists exactly the 100 connections the kernel opened, then none of them after close; netstat -s counts them', async (t) => {
    if (!requireRoot(t, ['ip', 'python3', 'ss'])) return;
    const before = await json<{ tcp: Record<string, number> }>(['netstat', '-s', '-p', 'tcp']);
    const h = holdConnections(app.ns, app.stackIp, 80, 100);
    // A failed assertion must not leave the python (and so this test file) running.
    t.after(() => { if (h.p.exitCode === null && h.p.signalCode === null) h.p.kill(); });
    const ports = (await h.line(/^(\d+(?: \d+)*)\n/m))[1]!.split(' ').map(Number);
    assert.equal(ports.length, 100);
    let est: Sock[] = [];
    for (let i = 0; i < 50; i++) {
      est = (await sockets()).filter((s) => s.state === 'ESTABLISHED' && s.localPort === 80);
      if (est.length === 100) break;
      await sleep(100);
    }
    assert.deepEqual(est.map((s) => s.foreignPort).sort((a, b) => a - b), [...ports].sort((a, b) => a - b));
    for (const s of est) {
      assert.equal(s.localAddress, app.stackIp);
      assert.equal(s.foreignAddress, app.hostIp);
      assert.equal(s.proto, 'tcp');
    }
    const listen = (await sockets()).filter((s) => s.state === 'LISTEN');
    // The app listens without a host: Node's default, the dual-stack ::, which takes IPv4 peers too.
    assert.deepEqual(listen.map((s) => [s.localAddress, s.localPort]), [['::', 80]]);
    const mid = await json<{ tcp: Record<string, number>; gauges: Record<string, number> }>(['netstat', '-s', '-p', 'tcp']);
    assert.equal(mid.tcp['connAccepts']! - before.tcp['connAccepts']!, 100);
    assert.ok(mid.gauges['tcpEstablished']! >= 100);

    h.p.stdin.write('\n');
    await h.line(/closed/);
    // The kernel closed first: its side holds TIME_WAIT, the stack's side goes through LAST_ACK to CLOSED.
    let left: Sock[] = [];
    for (let i = 0; i < 50; i++) {
      left = (await sockets()).filter((s) => s.localPort === 80 && ports.includes(s.foreignPort));
      if (left.length === 0) break;
      await sleep(100);
    }
    assert.deepEqual(left, []);
    // The kernel closed first, so its side ends in TIME_WAIT: nothing of the 100 may be left in
    // another state there (FIN_WAIT_2 would mean the stack never sent its FIN).
    let kernel: string[] = [];
    for (let i = 0; i < 50; i++) {
      kernel = (await runIn(app.ns, 'ss', ['-Htan', `dst ${app.stackIp}`])).stdout.trim().split('\n').filter(Boolean);
      if (kernel.every((l) => l.startsWith('TIME-WAIT'))) break;
      await sleep(100);
    }
    assert.deepEqual(kernel.filter((l) => !l.startsWith('TIME-WAIT')), [], 'the kernel side holds only TIME_WAITs');
    const rst = (await json<{ tcp: Record<string, number> }>(['netstat', '-s', '-p', 'tcp'])).tcp['sndRst']! - mid.tcp['sndRst']!;
    t.diagnostic(`kernel side: ${kernel.length} TIME_WAIT of 100; the stack sent ${rst} RSTs while closing`);
    h.p.stdin.end();
    const end = await json<{ tcp: Record<string, number> }>(['netstat', '-s', '-p', 'tcp']);
    assert.equal(end.tcp['connAccepts']! - before.tcp['connAccepts']!, 100);
  });

  test('sysctl sets and gets net.inet.tcp.msl; a bad value is refused by name and the old value kept; the stack uses the MSL', async (t) => {
    if (!requireRoot(t, ['ip', 'curl'])) return;
    const set = await tool(['sysctl', 'net.inet.tcp.msl=15000']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'net.inet.tcp.msl: 30000 -> 15000\n');
    assert.equal((await tool(['sysctl', 'net.inet.tcp.msl'])).stdout, 'net.inet.tcp.msl: 15000\n');
    const bad = await tool(['sysctl', 'net.inet.tcp.msl=abc']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /net\.inet\.tcp\.msl.*expected an integer/);
    const unknown = await tool(['sysctl', 'net.inet.tcp.nosuch=1']);
    assert.match(unknown.stderr, /unknown sysctl 'net\.inet\.tcp\.nosuch'/);
    assert.equal((await json<Record<string, number>>(['sysctl', 'net.inet.tcp.msl']))['net.inet.tcp.msl'], 15000);

    // TIME_WAIT lasts 2*MSL on the side that closes first: the server, for Connection: close.
    // With MSL 3 s it is gone within seconds (the default would hold it for 60 s).
    assert.equal((await tool(['sysctl', 'net.inet.tcp.msl=3000'])).code, 0);
    const closedAt = Date.now();
    assert.equal(await curl(app.ns, ['-H', 'Connection: close', url]), 'Hello from tstack\n');
    const tw = (await sockets()).filter((s) => s.state === 'TIME_WAIT');
    assert.ok(tw.length >= 1, 'the stack holds TIME_WAIT after closing first');
    let left = tw;
    while (left.length > 0 && Date.now() - closedAt < 30_000) {
      await sleep(500);
      left = (await sockets()).filter((s) => s.state === 'TIME_WAIT');
    }
    assert.deepEqual(left, [], 'TIME_WAIT gone well before the default 2*MSL of 60 s');
    t.diagnostic(`TIME_WAIT with MSL 3 s lasted less than ${((Date.now() - closedAt) / 1000).toFixed(1)} s`);
    assert.equal((await tool(['sysctl', 'net.inet.tcp.msl=30000'])).code, 0);
  });

  test('ifconfig --json counters grow by the pings sent; ifconfig mtu 1400 lowers new connections\' MSS', async (t) => {
    if (!requireRoot(t, ['ip', 'ping', 'python3'])) return;
    type If = { name: string; mtu: number; rxPackets: number; txPackets: number; rxBytes: number; driver: string; mac: string };
    const a = await json<If>(['ifconfig', app.ifname]);
    const sa = await json<{ icmp: Record<string, number> }>(['netstat', '-s', '-p', 'icmp']);
    const ping = await runIn(app.ns, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', app.stackIp]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const b = await json<If>(['ifconfig', app.ifname]);
    const sb = await json<{ icmp: Record<string, number> }>(['netstat', '-s', '-p', 'icmp']);
    assert.equal(b.driver, 'tap');
    assert.ok(b.rxPackets - a.rxPackets >= 5 && b.txPackets - a.txPackets >= 5, `${JSON.stringify(a)} -> ${JSON.stringify(b)}`);
    assert.ok(b.rxBytes - a.rxBytes >= 5 * 98);
    assert.equal(sb.icmp['echoRequests']! - sa.icmp['echoRequests']!, 5);
    assert.equal(sb.icmp['echoReplies']! - sa.icmp['echoReplies']!, 5);

    const mss = async () => {
      const r = await runIn(app.ns, 'python3', ['-c',
        `import socket; s=socket.create_connection((${JSON.stringify(app.stackIp)},80)); print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)); s.close()`]);
      assert.equal(r.code, 0, r.stderr);
      return Number(r.stdout.trim());
    };
    const before1500 = await mss();
    const set = await tool(['ifconfig', app.ifname, 'mtu', '1400']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /mtu 1400/);
    const after1400 = await mss();
    assert.ok(before1500 > 1360 && after1400 <= 1360, `MSS ${before1500} at mtu 1500, ${after1400} at mtu 1400`);
    const tooBig = await tool(['ifconfig', app.ifname, 'mtu', '9000']);
    assert.equal(tooBig.code, 1);
    assert.match(tooBig.stderr, /mtu 9000 is out of range/);
    assert.equal((await json<If>(['ifconfig', app.ifname])).mtu, 1400, 'a refused change changes nothing');
    assert.equal((await tool(['ifconfig', app.ifname, 'mtu', '1500'])).code, 0);
  });

  test('route add sends replies through the gateway; route delete takes it away', async (t) => {
    if (!requireRoot(t, ['ip', 'ping'])) return;
    // A second kernel address outside the stack's subnet: the stack reaches it only by a route.
    ipIn(app.ns, ['addr', 'add', '198.18.188.1/32', 'dev', app.ifname]);
    const pingFrom = () => runIn(app.ns, 'ping', ['-c', '1', '-W', '1', '-I', '198.18.188.1', app.stackIp]);
    assert.notEqual((await pingFrom()).code, 0, 'no route back yet');
    const add = await tool(['route', 'add', '198.18.188.0/24', app.hostIp]);
    assert.equal(add.code, 0, add.stderr);
    const routes = await json<{ destination: string; prefixLen: number; gateway: string; flags: string }[]>(['route', 'show']);
    assert.ok(routes.some((r) => r.destination === '198.18.188.0' && r.prefixLen === 24 && r.gateway === app.hostIp && r.flags === 'UGS'), JSON.stringify(routes));
    const get = await json<{ nexthop: string; source: string }>(['route', 'get', '198.18.188.1']);
    assert.deepEqual([get.nexthop, get.source], [app.hostIp, app.stackIp]);
    assert.equal((await pingFrom()).code, 0, 'replies go through the gateway');
    assert.equal((await tool(['route', 'delete', '198.18.188.0/24'])).code, 0);
    assert.notEqual((await pingFrom()).code, 0, 'no route again');
    const again = await tool(['route', 'delete', '198.18.188.0/24']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no route to 198\.18\.188\.0\/24/);
  });

  test('ifconfig inet6 adds an address the kernel can ping; route add -inet6 sends replies through a gateway; -alias removes the address', async (t) => {
    if (!requireRoot(t, ['ip', 'ping'])) return;
    const kernel = '2001:db8:187::1', ours = '2001:db8:187::2';
    ipIn(app.ns, ['addr', 'add', `${kernel}/64`, 'dev', app.ifname, 'nodad']);
    const add = await tool(['ifconfig', app.ifname, 'inet6', `${ours}/64`]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, new RegExp(`inet6 ${ours} prefixlen 64`));
    // Duplicate address detection first (about a second), then the address answers.
    const ping6 = (args: string[] = []) => runIn(app.ns, 'ping', ['-6', '-c', '1', '-W', '1', ...args, ours]);
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) ok = (await ping6()).code === 0;
    assert.ok(ok, 'the kernel side pings the address ifconfig added');

    // A kernel address outside the prefix: the stack reaches it only through a route.
    ipIn(app.ns, ['addr', 'add', '2001:db8:188::1/128', 'dev', app.ifname, 'nodad']);
    assert.notEqual((await ping6(['-I', '2001:db8:188::1'])).code, 0, 'no route back yet');
    const radd = await tool(['route', 'add', '-inet6', '2001:db8:188::/64', kernel]);
    assert.equal(radd.code, 0, radd.stderr);
    const r6 = await json<{ destination: string; prefixLen: number; gateway: string; flags: string }[]>(['route', 'show', '-inet6']);
    assert.ok(r6.some((r) => r.destination === '2001:db8:188::' && r.prefixLen === 64 && r.gateway === kernel && r.flags === 'UGS'), JSON.stringify(r6));
    const get = await json<{ nexthop: string; source: string }>(['route', 'get', '2001:db8:188::1']);
    assert.deepEqual([get.nexthop, get.source], [kernel, ours]);
    assert.match((await tool(['netstat', '-r'])).stdout, /Internet6:[\s\S]*2001:db8:188::\/64\s+2001:db8:187::1\s+UGS/);
    assert.equal((await ping6(['-I', '2001:db8:188::1'])).code, 0, 'replies go through the gateway');
    assert.equal((await tool(['route', 'delete', '2001:db8:188::/64'])).code, 0);
    assert.notEqual((await ping6(['-I', '2001:db8:188::1'])).code, 0, 'no route again');
    const again = await tool(['route', 'delete', '-inet6', '2001:db8:188::/64']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no route to 2001:db8:188::\/64/);

    const del = await tool(['ifconfig', app.ifname, 'inet6', ours, '-alias']);
    assert.equal(del.code, 0, del.stderr);
    assert.doesNotMatch(del.stdout, new RegExp(`inet6 ${ours} `));
    assert.notEqual((await ping6()).code, 0, 'the removed address no longer answers');
    const gone = await tool(['ifconfig', app.ifname, '-alias', ours]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, new RegExp(`has no address ${ours}`));
  });

  test('every tool takes -w N: worker 0 is the one worker, another number is a clear error', async (t) => {
    if (!requireRoot(t, [])) return;
    for (const args of [['netstat', '-an'], ['sysctl', 'net.inet.tcp.msl'], ['ifconfig'], ['route', 'show'], ['arp', '-a'], ['ndp', '-a'], ['top', '-c', '1', '-i', '0.1'], ['traffic', '-c', '1', '-i', '0.1']]) {
      const zero = await tool([...args, '-w', '0', '--json']);
      assert.equal(zero.code, 0, `${args.join(' ')} -w 0: ${zero.stderr}`);
      const one = await tool([...args, '-w', '1']);
      assert.equal(one.code, 1, `${args.join(' ')} -w 1`);
      assert.match(one.stderr, /^tstack: (?:sysctl: )?no worker 1: this instance runs 1 worker \(0\)/, args.join(' '));
    }
    assert.equal((await tool(['metrics', '-w', '0'])).code, 0);
    const cap = await tool(['capture', '--worker', '3', '-c', '1']);
    assert.equal(cap.code, 1);
    assert.match(cap.stderr, /no worker 3/);
    const bad = await tool(['netstat', '-an', '-w', 'x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /-w x: a worker is a number/);
  });

  test('arp -a shows the kernel MAC after a ping; arp -d removes it and tshark sees the next request', async (t) => {
    if (!requireRoot(t, ['ip', 'ping', 'tshark'])) return;
    const kernelMac = /link\/ether ([0-9a-f:]{17})/.exec(ipIn(app.ns, ['link', 'show', 'dev', app.ifname]))![1]!;
    assert.equal((await runIn(app.ns, 'ping', ['-c', '1', '-W', '2', app.stackIp])).code, 0);
    const list = await json<{ ip: string; mac: string; ifname: string; state: string }[]>(['arp', '-a']);
    const e = list.find((x) => x.ip === app.hostIp);
    assert.ok(e, JSON.stringify(list));
    assert.equal(e.mac, kernelMac);
    const text = await tool(['arp', '-a']);
    assert.ok(text.stdout.includes(`? (${app.hostIp}) at ${kernelMac} on ${app.ifname}`), text.stdout);

    // The next reply to the kernel side needs its MAC again: the stack asks (tshark in the namespace
    // sees the request). Capture start-up races the ping on a loaded machine, so try up to 3 times.
    let seen = '';
    for (let attempt = 0; attempt < 3 && seen === ''; attempt++) {
      const del = await tool(['arp', '-d', app.hostIp]);
      assert.equal(del.code, 0, del.stderr);
      assert.equal((await json<{ ip: string }[]>(['arp', '-a'])).some((x) => x.ip === app.hostIp), false);
      const shark = spawn('ip', ['netns', 'exec', app.ns, 'tshark', '-i', app.ifname, '-f', 'arp', '-c', '1', '-a', 'duration:8', '-T', 'fields',
        '-e', 'arp.opcode', '-e', 'arp.src.proto_ipv4', '-e', 'arp.dst.proto_ipv4'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let sharkOut = '', sharkErr = '';
      shark.stdout.setEncoding('utf8').on('data', (d: string) => { sharkOut += d; });
      shark.stderr.setEncoding('utf8').on('data', (d: string) => { sharkErr += d; });
      const sharkDone = new Promise((r) => shark.on('close', r));
      await waitUntil(() => /Capturing on/.test(sharkErr), 15_000, 'tshark to start');
      await sleep(1000);
      assert.equal((await runIn(app.ns, 'ping', ['-c', '1', '-W', '3', app.stackIp])).code, 0);
      await sharkDone;
      seen = sharkOut.trim();
    }
    assert.equal(seen, `1\t${app.stackIp}\t${app.hostIp}`, 'the stack asked who-has the kernel side again');
    assert.equal((await json<{ ip: string; mac: string }[]>(['arp', '-a'])).find((x) => x.ip === app.hostIp)?.mac, kernelMac);
  });

  test('capture -w - -c 20 port 80 | tshark -r - shows the HTTP exchange with 0 malformed', async (t) => {
    if (!requireRoot(t, ['ip', 'curl', 'tshark', 'sh'])) return;
    const dir = mkdtempSync(join(tmpdir(), 'tools-cap-'));
    const file = join(dir, 'out.txt');
    const cap = spawn('sh', ['-c', `"${process.execPath}" "${BIN}" capture --socket "${SOCKET}" -w - -c 20 port 80 | tshark -r - -T fields -e frame.number -e _ws.malformed -e http.request.method -e http.response.code > "${file}"`],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let capErr = '';
    cap.stderr.setEncoding('utf8').on('data', (d: string) => { capErr += d; });
    let finished = false;
    const done = new Promise<number | null>((r) => cap.on('close', (code) => { finished = true; r(code); }));
    await waitUntil(() => /capturing/.test(capErr), 15_000, 'the capture to start');
    for (let i = 0; i < 30 && !finished; i++) assert.equal(await curl(app.ns, [url]), 'Hello from tstack\n');
    assert.equal(await done, 0, capErr);
    const rows = (await import('node:fs')).readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split('\t'));
    rmSync(dir, { recursive: true, force: true });
    assert.equal(rows.length, 20, rows.join('\n'));
    assert.equal(rows.filter((r) => r[1]).length, 0, '0 malformed');
    assert.ok(rows.some((r) => r[2] === 'GET'), 'an HTTP request');
    assert.ok(rows.some((r) => r[3] === '200'), 'an HTTP response');
    assert.match(capErr, /20 packets captured, 0 dropped/);
  });

  test('top under tmux redraws and leaves on q; top --json -c 2 prints two samples; traffic prints lines', async (t) => {
    if (!requireRoot(t, ['tmux'])) return;
    const session = `tools${process.pid}`;
    const tmux = (...a: string[]) => spawnSync('tmux', a, { encoding: 'utf8' });
    tmux('new-session', '-d', '-s', session, '-x', '140', '-y', '30', `"${process.execPath}" "${BIN}" top --socket "${SOCKET}" -i 0.3`);
    try {
      let first = '';
      await waitUntil(() => { first = tmux('capture-pane', '-p', '-t', session).stdout; return /LOOPS\/S/.test(first); }, 10_000, 'top to draw');
      const stamp = (s: string) => /- (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) -/.exec(s)?.[1];
      let later = first;
      await waitUntil(() => { later = tmux('capture-pane', '-p', '-t', session).stdout; return stamp(later) !== stamp(first) && /LOOPS\/S/.test(later); }, 10_000, 'top to redraw');
      assert.equal(later.split('\n').filter((l) => l.includes('LOOPS/S')).length, 1, 'redrawn in place, not scrolled');
      tmux('send-keys', '-t', session, 'q');
      await waitUntil(() => tmux('has-session', '-t', session).status !== 0, 10_000, 'top to leave on q');
    } finally {
      tmux('kill-session', '-t', session);
    }
    const r = await tool(['top', '--json', '-c', '2', '-i', '0.3']);
    assert.equal(r.code, 0, r.stderr);
    const samples = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { loopsPerSec: number; busy: number; ports: { name: string }[] });
    assert.equal(samples.length, 2);
    for (const s of samples) { assert.ok(s.loopsPerSec >= 0 && s.busy >= 0 && s.busy <= 1); assert.ok(s.ports.some((p) => p.name === app.ifname)); }
    const tr = await tool(['traffic', '-c', '2', '-i', '0.3']);
    assert.equal(tr.code, 0, tr.stderr);
    assert.equal(tr.stdout.trim().split('\n').length, 5, tr.stdout);
  });

  test('the metrics endpoint and tstack metrics parse as Prometheus text and grow with traffic', async (t) => {
    if (!requireRoot(t, ['ip', 'curl'])) return;
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
      return parsePrometheus(await res.text());
    };
    const a = await scrape();
    for (let i = 0; i < 3; i++) await curl(app.ns, [url]);
    const b = await scrape();
    const key = `tstack_interface_receive_packets_total{port="${app.ifname}",worker="0"}`;
    // Each curl is at least SYN, ACK+request, FIN in and SYN-ACK, response, FIN out.
    for (const k of [key, `tstack_interface_transmit_packets_total{port="${app.ifname}",worker="0"}`]) {
      assert.ok(b.samples.get(k)! >= a.samples.get(k)! + 9, `${k}: ${a.samples.get(k)} -> ${b.samples.get(k)}`);
    }
    const rxBytes = `tstack_interface_receive_bytes_total{port="${app.ifname}",worker="0"}`;
    assert.ok(b.samples.get(rxBytes)! >= a.samples.get(rxBytes)! + 3 * 3 * 54, rxBytes);
    const acc = 'tstack_tcp_conn_accepts_total{worker="0"}';
    assert.ok(b.samples.get(acc)! >= a.samples.get(acc)! + 3);
    assert.equal(b.types.get('tstack_tcp_conn_accepts_total'), 'counter');
    // No counter goes backwards.
    for (const [k, v] of a.samples) if (b.types.get(k.replace(/\{.*$/, '')) === 'counter') assert.ok(b.samples.get(k)! >= v, `${k} went down`);
    const cli = await tool(['metrics']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.ok(parsePrometheus(cli.stdout).samples.has(key));
  });

  test('100 concurrent tool requests during a wrk run are all answered and leave throughput standing; a client that never reads is cut off without stalling', async (t) => {
    if (!requireRoot(t, ['ip', 'wrk', 'curl'])) return;
    /** 100 clients at once, each with one request (half of them the full snapshot with sockets). */
    const wave = () => Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const c = await ControlClient.connect(SOCKET);
      try { return await c.request<{ interfaces: { name: string }[] }>(i % 2 ? 'snapshot' : 'counters', { sockets: true }); } finally { c.close(); }
    }));
    const round = async (withTools: boolean) => {
      const t0 = Date.now();
      const wrk = runIn(app.ns, 'wrk', ['-t1', '-c20', '-d2s', url], { timeoutMs: 30_000 });
      let answered = -1, waveMs = 0;
      if (withTools) {
        // Inside the run: wrk has connected by then (its first requests are answered in ms).
        await sleep(300);
        const w0 = Date.now();
        const answers = await wave();
        waveMs = Date.now() - w0;
        answered = answers.filter((a) => a.interfaces.some((x) => x.name === app.ifname)).length;
      }
      const w = await wrk;
      assert.equal(w.code, 0, w.stderr);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(w.stdout)?.[1]);
      assert.ok(rps > 0, w.stdout);
      return { rps, answered, waveMs, wallMs: Date.now() - t0 };
    };
    await round(false); // warm-up: ARP, the JIT, the listen queue
    const plain: number[] = [], tools: number[] = [];
    for (let i = 0; i < 3; i++) {
      for (const withTools of i % 2 ? [true, false] : [false, true]) {
        const r = await round(withTools);
        (withTools ? tools : plain).push(r.rps);
        if (withTools) {
          assert.equal(r.answered, 100, 'every tool request answered with the instance\'s interfaces');
          t.diagnostic(`round ${i + 1}: 100 tool requests answered in ${r.waveMs} ms during a ${r.wallMs} ms wrk run at ${r.rps} req/s`);
        } else t.diagnostic(`round ${i + 1}: wrk alone ${r.rps} req/s`);
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const ratio = med(tools) / med(plain);
    t.diagnostic(`median req/s with tool requests ${med(tools)}, without ${med(plain)}: ratio ${ratio.toFixed(3)} (bench tools-under-load measures it with more rounds)`);
    // The 10% claim is measured by the bench on a quiet machine; a test on a shared 2-core VM
    // can only show the stack is not starved by its tools.
    assert.ok(ratio >= 0.5, `throughput with tool requests ${med(tools)} req/s is less than half of ${med(plain)} without`);

    // A client that sends 5,000 requests and never reads its replies: once 1 MiB of them is
    // unread the instance runs no more of its requests, and disconnects it 5 s later; HTTP is
    // served meanwhile.
    const c0 = await ControlClient.connect(SOCKET);
    const slowBefore = (await c0.request<{ slowDisconnects: number }>('info')).slowDisconnects;
    const commandsBefore = (await c0.request<{ loop: { commands: number } }>('counters')).loop.commands;
    const greedy = createConnection(SOCKET);
    await new Promise((r) => greedy.once('connect', r));
    greedy.pause();
    let closedByServer = false;
    greedy.on('close', () => { closedByServer = true; });
    greedy.on('error', () => {});
    const req = '{"v":1,"id":1,"cmd":"snapshot","args":{"sockets":true,"sysctl":true}}\n';
    greedy.write(req.repeat(5000));
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) assert.equal(await curl(app.ns, [url]), 'Hello from tstack\n');
    const curlMs = Date.now() - t0;
    await waitUntil(() => closedByServer, 30_000, 'the instance to disconnect the client that never reads');
    t.diagnostic(`10 requests took ${curlMs} ms while a client left its replies unread; it was cut off after ${Date.now() - t0} ms`);
    assert.ok(curlMs < 10_000);
    const info = await c0.request<{ slowDisconnects: number; clients: number }>('info');
    const commands = (await c0.request<{ loop: { commands: number } }>('counters')).loop.commands - commandsBefore;
    c0.close();
    assert.equal(info.slowDisconnects, slowBefore + 1, 'disconnected for its unread output');
    t.diagnostic(`the instance ran ${commands} commands for it (of 5,000 sent)`);
    assert.ok(commands < 1000, `${commands} of the 5,000 requests ran: the stack kept working for a client that does not read`);
    assert.equal((await curl(app.ns, [url])), 'Hello from tstack\n');
    const ps = await tool(['netstat', '-s', '-p', 'tcp']);
    assert.equal(ps.code, 0, 'the instance still answers');
  });

  test('a user without access gets a clear permission error', async (t) => {
    if (!requireRoot(t, ['runuser'])) return;
    const r = await tool(['netstat', '-an'], { user: 'nobody' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tstack: permission denied on the control socket \/run\/tstack\/tools-\d+\.sock/);
  });

  test('ndp -a lists the IPv6 neighbour cache; -d of an unknown host is an error naming it', async (t) => {
    if (!requireRoot(t, [])) return;
    const r = await tool(['ndp', '-a', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Array.isArray(JSON.parse(r.stdout)));
    const d = await tool(['ndp', '-d', '2001:db8::99']);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /2001:db8::99: no neighbor entry/);
  });
});

describe('control socket life cycle', () => {
  test('a stale socket left by a kill -9\'d instance does not stop the next start; a live one is not stolen', async (t) => {
    if (!requireRoot(t, [])) return;
    const dir = mkdtempSync(join(tmpdir(), 'tools-stale-'));
    const sock = join(dir, 'stale.sock');
    const cfg = join(dir, 'stale.toml');
    writeFileSync(cfg, `[[port]]\ndriver = "memory"\nifname = "mem0"\naddr = "198.18.189.2/24"\n[control]\nsocket = "${sock}"\n`);
    const up = () => {
      const p = spawn(process.execPath, [BIN, 'up', '-c', cfg, '-v'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
      p.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
      return { p, out: () => out };
    };
    try {
      const a = up();
      await waitUntil(() => a.out().includes(`control socket ${sock}`), 10_000, 'the first instance');
      const second = up();
      await waitUntil(() => /another running instance answers on it/.test(second.out()), 10_000, 'the second instance to leave the live socket alone');
      second.p.kill('SIGTERM');
      a.p.kill('SIGKILL');
      await new Promise((r) => a.p.on('close', r));
      assert.ok(existsSync(sock), 'kill -9 leaves the socket file behind');
      const refused = await tool(['ps'], { socket: false });
      assert.equal(refused.code, 0);
      const b = up();
      await waitUntil(() => b.out().includes(`control socket ${sock}`), 10_000, 'the next instance to start on the stale path');
      const info = await new Promise<{ pid: number }>((resolve, reject) => {
        ControlClient.connect(sock).then((c) => c.request<{ pid: number }>('info').then((i) => { c.close(); resolve(i); }, reject), reject);
      });
      assert.equal(info.pid, b.p.pid);
      b.p.kill('SIGTERM');
      await new Promise((r) => b.p.on('close', r));
      assert.equal(existsSync(sock), false, 'a clean stop removes the socket');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Parses the Prometheus text exposition format with parse-prometheus-text-format (a parser made
 * for it, compatible with prom2json; it throws on a line it cannot read) and checks what the
 * format requires of an exporter on top: every sample line was read, every family is typed and
 * helped, counter names end in _total, values are numbers, no sample is repeated.
 */
function parsePrometheus(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const families = parsePrometheusTextFormat(text);
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const f of families) {
    assert.ok(!types.has(f.name), `family ${f.name} twice`);
    assert.notEqual(f.type, 'UNTYPED', `family ${f.name} has no TYPE line`);
    assert.notEqual(f.help, '', `family ${f.name} has no HELP line`);
    types.set(f.name, f.type.toLowerCase());
    if (f.type === 'COUNTER') assert.ok(f.name.endsWith('_total'), `counter ${f.name} without _total`);
    for (const m of f.metrics) {
      const value = Number(m.value);
      assert.ok(m.value !== undefined && m.value !== '' && (!Number.isNaN(value) || m.value === 'NaN'), `${f.name}: value ${m.value}`);
      const labels = Object.entries(m.labels ?? {}).map(([k, v]) => `${k}="${v}"`).join(',');
      const key = `${f.name}${labels ? `{${labels}}` : ''}`;
      assert.ok(!samples.has(key), `duplicate sample ${key}`);
      samples.set(key, value);
    }
  }
  const sampleLines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  assert.equal(samples.size, sampleLines, 'the parser read every sample line');
  return { samples, types };
}
