// [[port.vlan]] in tstack.toml: parsed and checked, built by startInstance as children of the
// port, shown in the tools' snapshot; two instances on one memory wire talk TCP over the VLAN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ConfigError, parseConfig } from '../../src/runtime/config.js';
import { startInstance } from '../../src/runtime/instance.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { VirtualClock } from '../../src/base/time.js';
import { interfaces } from '../../src/stack/stats.js';
import { formatInterface } from '../../src/cli/ifconfig.js';
import { parseIpv4 } from '../../src/wire/addr.js';

const conf = (n: number) => `
[[port]]
driver = "memory"
ifname = "m${n}"
mac = "02:00:00:00:01:0${n}"
[[port.vlan]]
id = 100
addr = "198.18.110.${n}/24"
addr6 = "2001:db8:110::${n}/64"
[[port.vlan]]
id = 100
outer = 200
addr = "198.18.111.${n}/24"
mtu = 1400
mac = "02:00:00:00:02:0${n}"
`;

test('[[port.vlan]]: two instances on one memory wire, TCP over VLAN 100 with no byte lost, Q-in-Q ping, visible in ifconfig', () => {
  const clock = new VirtualClock(1000);
  const wire = new MemoryWire({ clock });
  const a = startInstance(parseConfig(conf(1), 'a.toml'), { clock, memoryWire: wire, start: false });
  const b = startInstance(parseConfig(conf(2), 'b.toml'), { clock, memoryWire: wire, start: false });
  const step = () => { a.loop.iterate(); b.loop.iterate(); clock.advance(1); };
  try {
    const snap = interfaces(a.stack);
    assert.deepEqual(snap.map((i) => `${i.index} ${i.name} ${i.mtu} ${i.vlan ? `${i.vlan.parent}/${i.vlan.outer}/${i.vlan.id}` : '-'}`),
      ['1 m1 1500 -', '2 lo0 1500 -', '3 m1.100 1500 m1/0/100', '4 m1.200.100 1400 m1/200/100'].map((s, i) => i === 1 ? `2 lo0 ${snap[1]!.mtu} -` : s));
    assert.equal(snap[3]!.mac, '02:00:00:00:02:01');
    const text = formatInterface({ ...snap[3]!, driver: 'vlan', deviceRxDropped: 0, deviceTxDropped: 0 });
    assert.match(text, /vlan: 100 vlanproto: 802\.1q outer: 200 \(802\.1ad\) parent interface: m1/);
    assert.match(text, /inet 198\.18\.111\.1 netmask 0xffffff00/);

    const l = b.stack.tcp.listen({ port: 7 });
    const data = new Uint8Array(512 * 1024).map((_, i) => (i * 31 + 7) & 255);
    const got: Uint8Array[] = [];
    let done = false;
    l.onConnection = (s) => { s.onData = () => { for (let d = s.read(); d; d = s.read()) got.push(d); }; s.onEnd = () => { done = true; s.shutdown(); }; };
    const c = a.stack.tcp.connect({ raddr: parseIpv4('198.18.110.2')!, rport: 7 });
    let off = 0;
    const pump = () => { while (off < data.length) { const n = c.write(data.subarray(off, off + 65536)); off += n; if (n === 0) return; } c.shutdown(); };
    c.onConnect = pump; c.onDrain = pump;
    for (let i = 0; i < 120_000 && !done; i++) step();
    assert.ok(done, `transfer finished (${got.reduce((n, x) => n + x.length, 0)} of ${data.length})`);
    const h = createHash('sha256'); for (const g of got) h.update(g);
    assert.equal(h.digest('hex'), createHash('sha256').update(data).digest('hex'));

    let replies = 0;
    a.stack.icmp.onEchoReply = (src) => { if (src === parseIpv4('198.18.111.2')) replies++; };
    a.stack.icmp.sendEcho(parseIpv4('198.18.111.2')!, 1, 1, new Uint8Array(32));
    for (let i = 0; i < 5000 && replies === 0; i++) step();
    assert.equal(replies, 1);
    // IPv6 on the VLAN: DAD passed for the configured address.
    for (let i = 0; i < 3000; i += 10) { a.loop.iterate(); b.loop.iterate(); clock.advance(10); }
    assert.ok(a.stack.ip6.addresses(3).some((x) => x.addr === '2001:db8:110::1' && x.state === 'preferred'), JSON.stringify(a.stack.ip6.addresses(3)));
    assert.equal(interfaces(b.stack)[2]!.inet[0]!.addr, '198.18.110.2');
    assert.ok(interfaces(b.stack)[2]!.rxBytes > data.length);
  } finally { a.stop(); b.stop(); }
});

test('[[port.vlan]] mistakes are located errors', () => {
  const bad = (extra: string, re: RegExp) => assert.throws(() => parseConfig(`[[port]]\ndriver = "memory"\naddr = "198.18.112.1/24"\n${extra}`, 't.toml'), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  bad('[[port.vlan]]\naddr = "198.18.113.1/24"\n', /port\[0\]\.vlan\[0\].*needs id/);
  bad('[[port.vlan]]\nid = 4095\n', /vlan\[0\]\.id/);
  bad('[[port.vlan]]\nid = 5\ncolour = 1\n', /colour/);
  bad('[[port.vlan]]\nid = 5\n[[port.vlan]]\nid = 5\n', /vlan\[1\]\.id.*already/);
  bad('[[port.vlan]]\nid = 5\nmtu = 9000\n', /at most the port's mtu/);
  bad('[[port.vlan]]\nid = 5\naddr = "198.18.112.9/24"\n', /vlan\[0\]\.addr.*same subnet as port\[0\]/);
  bad('[[port.vlan]]\nid = 5\nouter = 0\n', /outer/);
  const ok = parseConfig('[[port]]\ndriver = "memory"\n[[port.vlan]]\nid = 5\nouter = 7\npcp = 3\n', 't.toml');
  assert.deepEqual(ok.ports[0]!.vlans, [{ id: 5, outer: 7, ifname: 'memory0.7.5', pcp: 3 }]);
});
