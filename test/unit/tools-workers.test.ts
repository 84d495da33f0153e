// The tools against an instance with several workers (a control socket each, NAME.w<i>.sock),
// without root: two in-process instances on memory ports play worker 0 and worker 1, and the
// `tstack` command (bin/tstack.js, a child process) finds them as one instance, merges their
// answers (counters added up, ARP caches united, metrics labelled by worker) or talks to one
// with -w N. The same against a real 2-worker `tstack run` is test/integration/tools-workers.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { ControlServer } from '../../src/runtime/control.js';
import { ControlClient, ToolError, socketInstance } from '../../src/cli/client.js';
import { mergeInterfaces, sumAll, union } from '../../src/cli/aggregate.js';
import type { InterfaceSnapshot } from '../../src/stack/stats.js';
import { BIN, runCommand, type CommandResult } from '../helpers/run-app.js';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

const dir = mkdtempSync(join(tmpdir(), 'tstack-toolsw-'));
const BASE = join(dir, 'aggr.sock');
const METRICS_PORT = 40000 + (process.pid % 20000);
const insts: Instance[] = [];
const servers: ControlServer[] = [];

before(async () => {
  for (const i of [0, 1]) {
    const cfg = parseConfig(`[[port]]\ndriver = "memory"\nifname = "mem0"\naddr = "198.18.92.2/24"\n[control]\nsocket = "${join(dir, `aggr.w${i}.sock`)}"\n[metrics]\nlisten = "127.0.0.1:${METRICS_PORT}"\n`, join(dir, 'aggr.toml'));
    const inst = startInstance(cfg);
    insts.push(inst);
    const s = new ControlServer(inst, { worker: { index: i, count: 2 }, onWarning: (m) => { throw new Error(m); } });
    servers.push(s);
    assert.equal(await s.ready, join(dir, `aggr.w${i}.sock`));
    // Distinct numbers on each worker, to see them add up.
    inst.stack.tcp.counters.connAccepts = 10 + i;
    inst.stack.interfaces.find((x) => x.name === 'mem0')!.counters.rxPackets = 100 * (i + 1);
    inst.stack.arp.addStatic(inst.ports[0]!.ifIndex, 0xc6125c00 + 10 + i, new Uint8Array([2, 0, 0, 0, 0, 10 + i]));
    inst.stack.arp.addStatic(inst.ports[0]!.ifIndex, 0xc6125c00 + 20, new Uint8Array([2, 0, 0, 0, 0, 20]));
  }
});

after(() => {
  for (const s of servers) s.close();
  for (const i of insts) i.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `tstack ARGS` (asynchronously: this process serves the sockets it talks to). */
function tool(args: string[]): Promise<CommandResult> {
  return runCommand(process.execPath, [BIN, ...args], { timeoutMs: 60_000 });
}

async function json<T>(args: string[]): Promise<T> {
  const r = await tool([...args, '--json', '--socket', BASE]);
  assert.equal(r.code, 0, `tstack ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

describe('merging (src/cli/aggregate.ts)', () => {
  test('sumTree adds numbers leaf by leaf and keeps the first value of anything else', () => {
    assert.deepEqual(sumAll([{ tcp: { a: 1, b: 2 }, drops: { x: 1 }, s: 'one' }, { tcp: { a: 10, b: 20 }, drops: { y: 5 }, s: 'two' }]),
      { tcp: { a: 11, b: 22 }, drops: { x: 1, y: 5 }, s: 'one' });
  });
  test('mergeInterfaces keeps worker 0\'s addresses and adds up the counters by port name', () => {
    const i = (rx: number, addr: string) => ({ index: 1, name: 'p0', mtu: 1500, inet: [{ addr, prefixLen: 24, broadcast: '' }], rxPackets: rx, rxBytes: rx * 10, rxErrors: 0, rxDropped: 0, rxMulticast: 0,
      txPackets: 1, txBytes: 1, txErrors: 0, txDropped: 0 }) as unknown as InterfaceSnapshot;
    const m = mergeInterfaces([[i(1, '198.18.0.1')], [i(2, '198.18.0.9')]]);
    assert.equal(m.length, 1);
    assert.equal(m[0]!.rxPackets, 3);
    assert.equal(m[0]!.rxBytes, 30);
    assert.equal(m[0]!.txPackets, 2);
    assert.equal(m[0]!.inet[0]!.addr, '198.18.0.1');
  });
  test('union keeps one row per key, a resolved neighbour over an incomplete one', () => {
    const rows = union([[{ ip: 'a', state: 'incomplete' }, { ip: 'b', state: 'reachable' }], [{ ip: 'a', state: 'reachable' }, { ip: 'c', state: 'stale' }]],
      (r) => r.ip, (x, y) => y.state === 'incomplete' && x.state !== 'incomplete');
    assert.deepEqual(rows, [{ ip: 'a', state: 'reachable' }, { ip: 'b', state: 'reachable' }, { ip: 'c', state: 'stale' }]);
  });
  test('socketInstance: NAME.w<i>.sock is worker i of NAME', () => {
    assert.deepEqual(socketInstance('/run/tstack/web.w12.sock'), { instance: '/run/tstack/web', worker: 12 });
    assert.deepEqual(socketInstance('/run/tstack/web.sock'), { instance: '/run/tstack/web', worker: null });
    assert.deepEqual(socketInstance('/run/tstack/web.wx.sock'), { instance: '/run/tstack/web.wx', worker: null });
  });
});

describe('tools over two workers', () => {
  test('each worker\'s control socket knows its worker and refuses requests about another, naming its socket', async () => {
    const c = await ControlClient.connect(join(dir, 'aggr.w1.sock'));
    try {
      const info = await c.request<{ workers: number; worker: number; instance: string }>('info');
      assert.equal(info.workers, 2);
      assert.equal(info.worker, 1);
      c.worker = 0;
      await assert.rejects(c.request('info'), (e: unknown) => e instanceof ToolError && e.code === 'ENXIO' && /worker 0 has its own \(.*aggr\.w0\.sock\)/.test(e.message));
      c.worker = 5;
      await assert.rejects(c.request('info'), (e: unknown) => e instanceof ToolError && e.code === 'ENXIO' && /0\.\.1/.test(e.message));
      c.worker = 1;
      assert.equal((await c.request<{ worker: number }>('counters')).worker, 1);
    } finally { c.close(); }
  });

  test('netstat -s adds up the workers\' counters; -w 0 and -w 1 give each worker\'s', async () => {
    type S = { tcp: Record<string, number> };
    const all = await json<S>(['netstat', '-s']);
    const w0 = await json<S>(['netstat', '-s', '-w', '0']);
    const w1 = await json<S>(['netstat', '-s', '-w', '1']);
    assert.equal(w0.tcp['connAccepts'], 10);
    assert.equal(w1.tcp['connAccepts'], 11);
    assert.equal(all.tcp['connAccepts'], 21);
    for (const k of Object.keys(all.tcp)) assert.equal(all.tcp[k], w0.tcp[k]! + w1.tcp[k]!, k);
  });

  test('netstat -i and ifconfig add up the ports\' counters', async () => {
    const i = await json<InterfaceSnapshot[]>(['netstat', '-i']);
    assert.equal(i.find((x) => x.name === 'mem0')!.rxPackets, 300);
    const f = await json<InterfaceSnapshot>(['ifconfig', 'mem0']);
    assert.equal(f.rxPackets, 300);
    assert.equal(f.inet[0]!.addr, '198.18.92.2');
  });

  test('arp -a is the union of the workers\' caches', async () => {
    const arp = await json<{ ip: string }[]>(['arp', '-a']);
    assert.deepEqual(arp.map((e) => e.ip).sort(), ['198.18.92.10', '198.18.92.11', '198.18.92.20']);
  });

  test('-w 2 is an error naming the workers there are; -N finds NAME.w*.sock', async () => {
    const r = await tool(['netstat', '-s', '-w', '2', '--socket', BASE]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no worker 2: instance 'aggr' runs 2 workers \(0\.\.1\)/);
  });

  test('metrics: one exposition, every sample labelled by its worker', async () => {
    const r = await tool(['metrics', '--socket', BASE]);
    assert.equal(r.code, 0, r.stderr);
    const families = parsePrometheusTextFormat(r.stdout) as { name: string; metrics: { labels?: Record<string, string>; value?: string }[] }[];
    const names = families.map((f) => f.name);
    assert.equal(new Set(names).size, names.length, 'each family once');
    const rx = families.find((f) => f.name === 'tstack_interface_receive_packets_total');
    assert.ok(rx, names.join(' '));
    const byWorker = Object.fromEntries(rx.metrics.filter((m) => m.labels?.['port'] === 'mem0').map((m) => [m.labels!['worker'], Number(m.value)]));
    assert.deepEqual(byWorker, { 0: 100, 1: 200 });
  });

  test('the [metrics] endpoint: worker 0 serves every worker\'s samples (worker 1 does not try to listen)', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      http.get(`http://127.0.0.1:${METRICS_PORT}/metrics`, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.match(text, /tstack_interface_receive_packets_total\{port="mem0",worker="0"\} 100/);
    assert.match(text, /tstack_interface_receive_packets_total\{port="mem0",worker="1"\} 200/);
    assert.equal(text.match(/^# TYPE tstack_interface_receive_packets_total /gm)?.length, 1);
  });

  test('sysctl set through the instance goes to worker 0 (which passes it on); get reads worker 0', async () => {
    const r = await tool(['sysctl', 'net.inet.tcp.msl=12000', '--socket', BASE]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(insts[0]!.stack.sysctl.get('net.inet.tcp.msl'), 12000);
    assert.deepEqual(await json(['sysctl', 'net.inet.tcp.msl']), { 'net.inet.tcp.msl': 12000 });
    insts[0]!.stack.sysctl.set('net.inet.tcp.msl', 30000);
  });

  test('a worker without a socket (being replaced): the tools go on with the others; -w of it says so', async () => {
    servers[1]!.close();
    const r = await tool(['netstat', '-s', '-w', '1', '--socket', BASE]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /worker 1 of instance 'aggr' has no control socket .*restarting/);
    const all = await json<{ tcp: Record<string, number> }>(['netstat', '-s']);
    assert.equal(all.tcp['connAccepts'], 10, 'worker 0 alone');
  });
});
