// The operator tools against `tstack run` with [stack] workers = 2 (issue 12 over issue 11): each
// worker has its own stack and control socket (NAME.w0.sock, NAME.w1.sock); the tools find
// them as one instance, list and add up what every worker has, or talk to one with -w N. An
// unmodified node:http app; kernel-side connections from the test namespace (198.18.233.0/24).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireRoot } from '../helpers/netns.js';
import { BIN, ROOT, runCommand, startApp, stopAllApps, waitUntil, type CommandResult } from '../helpers/run-app.js';

after(stopAllApps);

const SUBNET = 233;
const NAME = `aggr-${process.pid}`;
const CONNS = 40;

interface Sock { proto: string; localAddress: string; localPort: number; foreignAddress: string; foreignPort: number; state: string; worker?: number }

/** Runs `tstack ARGS -N NAME` (ps: no -N); resolves with its output and exit code. */
function tool(args: string[]): Promise<CommandResult> {
  return runCommand(process.execPath, [BIN, ...args, ...(args[0] === 'ps' ? [] : ['-N', NAME])], { timeoutMs: 60_000 });
}

async function json<T>(args: string[]): Promise<T> {
  const r = await tool([...args, '--json']);
  assert.equal(r.code, 0, `tstack ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Retries `check` (async) until it returns true, up to `ms`. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

test('2 workers: ps shows one instance with 2 workers; netstat -an lists both workers\' connections; netstat -s is the sum of -w 0 and -w 1; -w 2 is an error', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'python3'])) return;
  const app = await startApp({
    prefix: 'aggr', subnet: SUBNET, app: 'test/fixtures/apps/workers-http.js', args: ['8080'], driver: 'afpacket', workers: 2,
    extraConfig: `[control]\nname = "${NAME}"\n`, ready: /listening pid \d+[\s\S]*listening pid \d+/, readyTimeoutMs: 60_000,
  });
  let holder: ReturnType<typeof spawn> | null = null;
  try {
    await waitUntil(() => existsSync(`/run/tstack/${NAME}.w0.sock`) && existsSync(`/run/tstack/${NAME}.w1.sock`), 20_000, 'both workers\' control sockets');

    // ps: one instance, two workers, two worker pids, the supervisor's pid.
    const ps = (await json<{ name: string; workers: number; pid: number; pids?: number[] }[]>(['ps'])).filter((i) => i.name.startsWith(NAME));
    assert.equal(ps.length, 1, JSON.stringify(ps));
    assert.equal(ps[0]!.name, NAME);
    assert.equal(ps[0]!.workers, 2);
    assert.equal(ps[0]!.pids?.length, 2);
    assert.equal(ps[0]!.pid, app.child.pid, 'PID is the supervisor\'s (tstack run)');

    // The kernel side opens CONNS connections (each worker gets those whose flow hashes to it).
    const py = `
import socket, sys
ss = [socket.create_connection((${JSON.stringify(app.stackIp)}, 8080)) for _ in range(${CONNS})]
print(' '.join(str(s.getsockname()[1]) for s in ss), flush=True)
sys.stdin.readline()
for s in ss: s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')
print('sent', flush=True)
sys.stdin.readline()
`;
    const h = spawn('ip', ['netns', 'exec', app.ns, 'python3', '-c', py], { stdio: ['pipe', 'pipe', 'inherit'] });
    holder = h;
    let pyOut = '';
    h.stdout!.setEncoding('utf8').on('data', (d: string) => { pyOut += d; });
    await waitUntil(() => /\d+( \d+)*\n/.test(pyOut), 30_000, 'python\'s connections');
    const ports = new Set(pyOut.trim().split(' ').map(Number));
    assert.equal(ports.size, CONNS);

    // netstat -an: every connection, on the worker that owns it; both workers have some.
    let mine: Sock[] = [];
    await eventually(async () => {
      const socks = (await json<{ sockets: Sock[] }>(['netstat', '-an'])).sockets;
      mine = socks.filter((s) => s.proto === 'tcp' && s.state === 'ESTABLISHED' && s.foreignAddress === app.hostIp && ports.has(s.foreignPort));
      return mine.length === CONNS;
    }, 30_000, `${CONNS} ESTABLISHED connections in netstat -an`);
    for (const s of mine) assert.equal(`${s.localAddress}:${s.localPort}`, `${app.stackIp}:8080`);
    const byWorker = [0, 1].map((w) => mine.filter((s) => s.worker === w).length);
    assert.ok(byWorker[0]! > 0 && byWorker[1]! > 0 && byWorker[0]! + byWorker[1]! === CONNS, `connections per worker: ${byWorker}`);
    // -w N: that worker's connections only.
    const w1 = (await json<{ sockets: Sock[] }>(['netstat', '-an', '-w', '1'])).sockets.filter((s) => s.state === 'ESTABLISHED' && ports.has(s.foreignPort));
    assert.equal(w1.length, byWorker[1]);
    t.diagnostic(`connections per worker: ${byWorker.join(' / ')}`);

    // netstat -s: the instance's counters are the sum of its workers' (idle connections: the
    // numbers hold still; a late ACK may move them between the three reads, so read again).
    type Stats = Record<string, Record<string, number>>;
    let last = '';
    await eventually(async () => {
      const [all, s0, s1] = [await json<Stats>(['netstat', '-s']), await json<Stats>(['netstat', '-s', '-w', '0']), await json<Stats>(['netstat', '-s', '-w', '1'])];
      const diff: string[] = [];
      for (const area of ['ip', 'tcp', 'udp', 'icmp']) {
        for (const [k, v] of Object.entries(all[area]!)) if (v !== (s0[area]![k] ?? 0) + (s1[area]![k] ?? 0)) diff.push(`${area}.${k}: ${v} != ${s0[area]![k]} + ${s1[area]![k]}`);
      }
      last = diff.join('; ');
      return diff.length === 0 && all['tcp']!['connAccepts']! >= CONNS && s0['tcp']!['connAccepts']! > 0 && s1['tcp']!['connAccepts']! > 0;
    }, 30_000, `netstat -s = -w 0 + -w 1 (${last})`);

    // Worker numbers out of range: an error naming the range.
    const bad = await tool(['netstat', '-s', '-w', '2']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`no worker 2: instance '${NAME}' runs 2 workers \\(0\\.\\.1\\)`));

    // top --json: the totals, and a row per worker.
    const top = await tool(['top', '--json', '-c', '1', '-i', '0.5']);
    assert.equal(top.code, 0, top.stderr);
    const sample = JSON.parse(top.stdout.trim().split('\n')[0]!) as { established: number; workers: { worker: number; established: number }[] };
    assert.deepEqual(sample.workers.map((w) => w.worker), [0, 1]);
    assert.equal(sample.established, sample.workers[0]!.established + sample.workers[1]!.established);
    // metrics: samples of both workers, labelled.
    const m = await tool(['metrics']);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stdout, /tstack_tcp_conn_accepts_total\{worker="0"\} \d+/);
    assert.match(m.stdout, /tstack_tcp_conn_accepts_total\{worker="1"\} \d+/);
    assert.equal(m.stdout.match(/^# TYPE tstack_tcp_conn_accepts_total /gm)?.length, 1, 'one family, not one per worker');

    // capture: one stream from both workers. Every connection sends its request; the capture
    // (no -c: stopped with SIGINT once it has seen them all) shows each of them.
    const cap = spawn(process.execPath, [BIN, 'capture', '-N', NAME, 'port', '8080'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let capOut = '', capErr = '';
    cap.stdout.setEncoding('utf8').on('data', (d: string) => { capOut += d; });
    cap.stderr.setEncoding('utf8').on('data', (d: string) => { capErr += d; });
    const capExit = new Promise<number | null>((r) => cap.on('close', r));
    try {
      await waitUntil(() => /capturing .*from 2 workers/.test(capErr), 30_000, `capture started: ${capErr}`);
      h.stdin!.write('\n');
      const requestPorts = () => new Set([...capOut.matchAll(new RegExp(`In  IP ${app.hostIp.replace(/\./g, '\\.')}\\.(\\d+) > ${app.stackIp.replace(/\./g, '\\.')}\\.8080: Flags \\[\\S*P\\S*\\]`, 'g'))].map((x) => Number(x[1])));
      await waitUntil(() => [...ports].every((p) => requestPorts().has(p)), 60_000, `every connection's request in the capture (${requestPorts().size}/${CONNS})`);
    } finally {
      cap.kill('SIGINT');
    }
    assert.equal(await capExit, 0, capErr);
    assert.match(capErr, /\d+ packets captured, 0 dropped/);
  } finally {
    holder?.stdin?.end();
    holder?.kill();
    await app.stop();
  }
});
