// The control socket on an in-process instance (memory port, no root): the protocol's errors
// change nothing, sysctl/ifconfig/route/arp commands act on the stack, commands run through
// RunLoop.post, a live capture sees frames and honours its filter, and the Prometheus text
// names what docs/tools.md names. The same commands against `tstack run` with kernel peers are
// in test/integration/tools.test.ts.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import type { Instance } from '../../src/runtime/instance.js';
import { compileFilter, FilterError } from '../../src/runtime/capture-filter.js';
import type { ControlClient } from '../../src/cli/client.js';
import { controlInstances, refused } from '../helpers/control-instance.js';
import { RunLoop } from '../../src/runtime/loop.js';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

const fixture = controlInstances('control');
let SOCK: string;
let inst: Instance;
let c: ControlClient;

before(async () => {
  ({ inst, c, sock: SOCK } = await fixture.start('unit', 'addr = "198.18.90.2/24"'));
});

describe('control socket protocol', () => {
  test('a malformed line, a wrong version and an unknown command get error replies on a connection that stays usable', async () => {
    const replies = await new Promise<{ id: unknown; ok: boolean; error?: { code: string }; result?: unknown }[]>((resolve, reject) => {
      const s = createConnection(SOCK);
      let buf = '';
      s.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n').filter(Boolean);
        if (lines.length === 5) { s.destroy(); resolve(lines.map((l) => JSON.parse(l))); }
      });
      s.on('error', reject);
      s.write('{oops\n[1,2]\n{"v":2,"id":1,"cmd":"info"}\n{"v":1,"id":"x","cmd":"reboot"}\n{"v":1,"id":9,"cmd":"sysctl.get","args":{"name":"net.inet.tcp.msl"}}\n');
    });
    assert.deepEqual(replies.map((r) => [r.id, r.ok, r.error?.code]), [[null, false, 'EPROTO'], [null, false, 'EPROTO'], [1, false, 'EPROTO'], ['x', false, 'ENOSYS'], [9, true, undefined]]);
    assert.deepEqual(replies[4]!.result, { name: 'net.inet.tcp.msl', value: 30000 });
  });

  test('sysctl.set type-checks, names the key in its refusal and keeps the old value', async () => {
    await refused(c.request('sysctl.set', { name: 'net.inet.tcp.msl', value: 'abc' }), 'EINVAL', /net\.inet\.tcp\.msl.*expected an integer/);
    await refused(c.request('sysctl.set', { name: 'net.inet.tcp.msl', value: 0 }), 'EINVAL', /must be >= 1/);
    await refused(c.request('sysctl.set', { name: 'net.nope', value: 1 }), 'ENOENT', /unknown sysctl 'net\.nope'/);
    assert.equal(inst.stack.sysctl.get('net.inet.tcp.msl'), 30000);
    assert.deepEqual(await c.request('sysctl.set', { name: 'net.inet.tcp.msl', value: '15000' }), { name: 'net.inet.tcp.msl', old: 30000, value: 15000 });
    assert.equal(inst.stack.sysctl.get('net.inet.tcp.msl'), 15000);
  });

  test('ifconfig.set validates everything before changing anything', async () => {
    await refused(c.request('ifconfig.set', { port: 'mem0', mtu: 1400, add: 'bad' }), 'EINVAL', /'bad' is not an IPv4 address/);
    assert.equal(inst.stack.interfaces[0]!.mtu, 1500, 'the valid mtu of a refused request was not applied');
    await refused(c.request('ifconfig.set', { port: 'eth9', up: false }), 'ENXIO', /no port 'eth9'/);
    await c.request('ifconfig.set', { port: 'mem0', mtu: 1400, add: '198.18.91.2/24' });
    assert.equal(inst.stack.interfaces[0]!.mtu, 1400);
    assert.equal(inst.stack.interfaceByIndex(inst.stack.routes.lookup(0xc6125b07)!.ifIndex)!.mtu, 1400, '198.18.91.7 is now on a connected route');
    await c.request('ifconfig.set', { port: 'mem0', delete: '198.18.91.2' });
    assert.equal(inst.stack.routes.lookup(0xc6125b07), null);
  });

  test('route.add/get/delete and arp.set/delete act on the stack\'s tables', async () => {
    await refused(c.request('route.add', { destination: '10.0.0.0/8', gateway: '192.0.2.1' }), 'ENETUNREACH', /not on a connected network/);
    await c.request('route.add', { destination: '10.0.0.0/8', gateway: '198.18.90.1' });
    const got = await c.request<{ nexthop: string; source: string; route: { flags: string } }>('route.get', { destination: '10.1.2.3' });
    assert.deepEqual([got.nexthop, got.source, got.route.flags], ['198.18.90.1', '198.18.90.2', 'UGS']);
    await c.request('route.delete', { destination: '10.0.0.0/8' });
    await refused(c.request('route.get', { destination: '10.1.2.3' }), 'ENETUNREACH', /no route to 10\.1\.2\.3/);
    await c.request('arp.set', { host: '198.18.90.9', mac: '02:00:00:00:00:09' });
    assert.ok(inst.stack.arp.list().some((e) => e.ip === '198.18.90.9' && e.state === 'permanent'));
    await c.request('arp.delete', { host: '198.18.90.9' });
    await refused(c.request('arp.delete', { host: '198.18.90.9' }), 'ENOENT', /no ARP entry/);
    assert.ok(Array.isArray((await c.request<{ ndp: unknown[] }>('ndp.list')).ndp));
    await refused(c.request('ndp.delete', { host: '2001:db8::9' }), 'ENOENT', /2001:db8::9: no neighbor entry/);
    await refused(c.request('ndp.delete', { host: '10.0.0.1' }), 'EINVAL', /not an IPv6 address/);
  });

  test('ifconfig.set inet6 gives a port without IPv6 an address and its connected route; -alias takes both away', async () => {
    await c.request('sysctl.set', { name: 'net.inet6.ip6.dad_count', value: 0 }); // assigned at once
    type If = { name: string; inet6: { addr: string; prefixLen: number }[] };
    type R6 = { destination: string; prefixLen: number; gateway: string; flags: string; ifname: string };
    const mem0 = async () => (await c.request<{ interfaces: If[] }>('snapshot')).interfaces.find((i) => i.name === 'mem0')!;
    const routes6 = async () => (await c.request<{ routes6: R6[] }>('snapshot')).routes6;
    await refused(c.request('ifconfig.set', { port: 'mem0', add: '2001:db8:5::zz/64' }), 'EINVAL', /not an IPv6 address/);
    await refused(c.request('ifconfig.set', { port: 'mem0', add: 'ff02::1/64' }), 'EINVAL', /not a unicast IPv6 address/);
    const after = await c.request<If>('ifconfig.set', { port: 'mem0', add: '2001:db8:5::2/64' });
    assert.ok(after.inet6.some((a) => a.addr === '2001:db8:5::2' && a.prefixLen === 64), JSON.stringify(after.inet6));
    assert.ok(after.inet6.some((a) => a.addr.startsWith('fe80::')), 'IPv6 started with a link-local address');
    assert.ok((await routes6()).some((r) => r.destination === '2001:db8:5::' && r.prefixLen === 64 && r.flags === 'UC' && r.ifname === 'mem0'));
    await refused(c.request('ifconfig.set', { port: 'mem0', add: '2001:db8:5::2/64' }), 'EEXIST', /already has 2001:db8:5::2/);
    await c.request('ifconfig.set', { port: 'mem0', add: '2001:db8:6::2' }); // prefixlen 64 by default, as FreeBSD's
    assert.ok((await mem0()).inet6.some((a) => a.addr === '2001:db8:6::2' && a.prefixLen === 64));
    await c.request('ifconfig.set', { port: 'mem0', delete: '2001:db8:6::2' });
    assert.ok(!(await mem0()).inet6.some((a) => a.addr === '2001:db8:6::2'));
    assert.ok(!(await routes6()).some((r) => r.destination === '2001:db8:6::'), 'the connected route went with the address');
    await refused(c.request('ifconfig.set', { port: 'mem0', delete: '2001:db8:6::2' }), 'EADDRNOTAVAIL', /mem0 has no address 2001:db8:6::2/);
  });

  test('route.add/get/delete take IPv6 destinations and gateways', async () => {
    await refused(c.request('route.add', { destination: '2001:db8:99::/48', gateway: '2001:db8:77::1' }), 'ENETUNREACH', /not on a connected network/);
    const list = await c.request<{ destination: string; prefixLen: number; gateway: string; flags: string }[]>('route.add', { destination: '2001:db8:99::/48', gateway: '2001:db8:5::1' });
    assert.ok(list.some((r) => r.destination === '2001:db8:99::' && r.prefixLen === 48 && r.gateway === '2001:db8:5::1' && r.flags === 'UGS'), JSON.stringify(list));
    await refused(c.request('route.add', { destination: '2001:db8:99::/48', gateway: '2001:db8:5::1' }), 'EEXIST', /exists/);
    const got = await c.request<{ nexthop: string; source: string; route: { flags: string; ifname: string } }>('route.get', { destination: '2001:db8:99::7' });
    assert.deepEqual([got.nexthop, got.source, got.route.flags, got.route.ifname], ['2001:db8:5::1', '2001:db8:5::2', 'UGS', 'mem0']);
    // A link-local gateway with one IPv6 port: that port.
    await c.request('route.add', { destination: 'default', gateway: 'fe80::1', inet6: true });
    const d = await c.request<{ nexthop: string; route: { prefixLen: number } }>('route.get', { destination: '2001:db8:1234::1' });
    assert.deepEqual([d.nexthop, d.route.prefixLen], ['fe80::1', 0]);
    await c.request('route.delete', { destination: 'default', inet6: true });
    await c.request('route.delete', { destination: '2001:db8:99::/48' });
    await refused(c.request('route.delete', { destination: '2001:db8:99::/48' }), 'ESRCH', /no route to 2001:db8:99::\/48/);
    await refused(c.request('route.get', { destination: '2001:db8:99::7' }), 'ENETUNREACH', /no route to 2001:db8:99::7/);
    await c.request('ifconfig.set', { port: 'mem0', delete: '2001:db8:5::2' });
  });

  test('a request for worker 0 is answered; another worker number is refused by name', async () => {
    const raw = (line: string) => new Promise<{ ok: boolean; result?: { workers: number }; error?: { code: string; message: string } }>((resolve, reject) => {
      const s = createConnection(SOCK);
      let buf = '';
      s.setEncoding('utf8').on('data', (d: string) => { buf += d; if (buf.includes('\n')) { s.destroy(); resolve(JSON.parse(buf.slice(0, buf.indexOf('\n')))); } });
      s.on('error', reject);
      s.write(line + '\n');
    });
    const zero = await raw('{"v":1,"id":1,"cmd":"info","worker":0}');
    assert.equal(zero.ok, true);
    assert.equal(zero.result!.workers, 1);
    const one = await raw('{"v":1,"id":2,"cmd":"info","worker":1}');
    assert.deepEqual([one.ok, one.error!.code], [false, 'ENXIO']);
    assert.match(one.error!.message, /no worker 1: this instance runs 1 worker \(0\)/);
    const bad = await raw('{"v":1,"id":3,"cmd":"info","worker":"x"}');
    assert.deepEqual([bad.ok, bad.error!.code], [false, 'EPROTO']);
  });

  test('a live capture sees the frames the stack sends, filtered, and stops after count', async () => {
    const frames: { dir: string; data: string }[] = [];
    const done = c.request<{ captured: number; dropped: number }>('capture', { filter: 'arp and host 198.18.90.1', count: 1 }, (ev) => {
      if (ev.event === 'frame') frames.push(ev as unknown as { dir: string; data: string });
    });
    await c.request('info'); // the capture is set up once a later request is answered
    inst.stack.setInterfaceUp(1, false);
    // The announcement (198.18.90.2) does not match; a request for 198.18.90.1 does.
    inst.stack.setInterfaceUp(1, true);
    inst.stack.ipOutput(inst.stack.pool.alloc(), 0, 0xc6125a01, 17, 0, 64, false);
    assert.deepEqual(await done, { captured: 1, dropped: 0 });
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.dir, 'out');
    const b = Buffer.from(frames[0]!.data, 'base64');
    assert.equal(b.readUInt16BE(12), 0x0806);
    assert.equal([...b.subarray(38, 42)].join('.'), '198.18.90.1');
    assert.equal(inst.stack.frameTap, null, 'no capture, no hook');
  });

  test('the metrics text names per-port counters and the TCP counters in snake case', async () => {
    const { text } = await c.request<{ text: string }>('metrics');
    assert.match(text, /^# TYPE tstack_interface_transmit_packets_total counter$/m);
    assert.match(text, /^tstack_interface_transmit_packets_total\{port="mem0",worker="0"\} \d+$/m);
    assert.match(text, /^tstack_tcp_conn_accepts_total\{worker="0"\} 0$/m);
    assert.match(text, /^tstack_tcp_listeners\{worker="0"\} 0$/m);
    // A real parser of the format: each family once (its samples grouped after its TYPE), typed.
    const families = parsePrometheusTextFormat(text);
    const names = families.map((f) => f.name);
    assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'no family split in two groups');
    assert.deepEqual(families.filter((f) => f.type === 'UNTYPED').map((f) => f.name), []);
    assert.equal(families.reduce((n, f) => n + f.metrics.length, 0), text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length);
  });
});

describe('RunLoop.post', () => {
  test('runs commands between iterations, a bounded batch per iteration', async () => {
    const ran: number[] = [];
    for (let i = 0; i < RunLoop.POSTED_PER_ITERATION + 4; i++) inst.loop.post(() => { ran.push(inst.loop.stats().iterations); });
    assert.deepEqual(ran, [], 'not run re-entrantly');
    for (let i = 0; i < 200 && ran.length < RunLoop.POSTED_PER_ITERATION + 4; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(ran.length, RunLoop.POSTED_PER_ITERATION + 4);
    assert.equal(ran[RunLoop.POSTED_PER_ITERATION - 1], ran[0], 'the first batch ran in one iteration');
    assert.ok(ran[ran.length - 1]! > ran[0]!, 'the rest waited for the next iteration');
  });
});

describe('capture filters', () => {
  const frame = (proto: number, src: string, dst: string, sport: number, dport: number) => {
    const b = new Uint8Array(14 + 20 + 8);
    b[12] = 0x08; b[13] = 0x00; b[14] = 0x45; b[23] = proto;
    b.set(src.split('.').map(Number), 26); b.set(dst.split('.').map(Number), 30);
    b[34] = sport >> 8; b[35] = sport & 0xff; b[36] = dport >> 8; b[37] = dport & 0xff;
    return b;
  };
  test('host, port, protocol, src/dst, net, and/or/not and parentheses read as in tcpdump', () => {
    const http = frame(6, '198.18.0.1', '198.18.0.2', 40000, 80);
    const dns = frame(17, '198.18.0.2', '198.18.1.9', 5353, 53);
    const m = (f: string, b: Uint8Array) => compileFilter(f)(b, 0, b.length);
    assert.equal(m('', http), true);
    assert.equal(m('port 80', http), true);
    assert.equal(m('port 80', dns), false);
    assert.equal(m('tcp port 80', http), true);
    assert.equal(m('udp port 80', http), false);
    assert.equal(m('src port 80', http), false);
    assert.equal(m('dst host 198.18.0.2 and tcp', http), true);
    assert.equal(m('net 198.18.1.0/24', dns), true);
    assert.equal(m('not (udp or icmp)', http), true);
    assert.equal(m('198.18.1.9 || arp', dns), true);
    assert.equal(m('portrange 50-60 and ! tcp', dns), true);
  });
  test('a bad filter is an error naming the word', () => {
    assert.throws(() => compileFilter('port http'), (e: unknown) => e instanceof FilterError && /expected a port number.*"http"/.test(e.message));
    assert.throws(() => compileFilter('hots 1.2.3.4'), /unknown word "hots"/);
    assert.throws(() => compileFilter('(tcp'), /missing "\)"/);
  });
});
