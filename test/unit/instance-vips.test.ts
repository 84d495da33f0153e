// Several ports and secondary addresses (VIPs) from tstack.toml: addresses on one interface,
// source selection (the address on the subnet of the next hop, else the primary), longest-prefix
// routing across interfaces, and the checks that keep one subnet per interface.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/runtime/config.js';
import { startInstance } from '../../src/runtime/instance.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { VirtualClock } from '../../src/base/time.js';
import { formatIpv4, parseIpv4 } from '../../src/wire/addr.js';
import { interfaces } from '../../src/stack/stats.js';

test('VIPs: every address answers, the source follows the destination subnet, routes pick the longest prefix', () => {
  const clock = new VirtualClock(1000);
  const wire = new MemoryWire({ clock });
  const a = startInstance(parseConfig(`
[[port]]
driver = "memory"
ifname = "a0"
addr = "198.18.162.2/24"
vips = ["198.18.162.3", "198.18.163.2/24", "198.18.164.9"]
addr6 = "2001:db8:162::2/64"
vips6 = ["2001:db8:162::3/64"]
[[port]]
driver = "memory"
ifname = "a1"
addr = "198.18.165.2/24"
`, 'a.toml'), { clock, memoryWire: wire, start: false });
  const b = startInstance(parseConfig(`
[[port]]
driver = "memory"
addr = "198.18.163.1/24"
vips = ["198.18.162.1/24", "198.18.165.1/24"]
`, 'b.toml'), { clock, memoryWire: wire, start: false });
  const step = (n: number) => { for (let i = 0; i < n; i++) { a.loop.iterate(); b.loop.iterate(); clock.advance(1); } };
  try {
    const snap = interfaces(a.stack)[0]!;
    assert.deepEqual(snap.inet.map((x) => `${x.addr}/${x.prefixLen}`), ['198.18.162.2/24', '198.18.162.3/24', '198.18.163.2/24', '198.18.164.9/32']);
    step(3000);
    assert.deepEqual(a.stack.ip6.addresses(1).filter((x) => x.origin === 'manual').map((x) => `${x.addr} ${x.state}`), ['2001:db8:162::2 preferred', '2001:db8:162::3 preferred']);
    // One connected route per subnet, on the port that has it; the /32 VIP adds none.
    assert.deepEqual(a.stack.routes.list().filter((r) => r.ifIndex !== 3).map((r) => `${formatIpv4(r.dst)}/${r.prefixLen} if${r.ifIndex}`).sort(),
      ['198.18.162.0/24 if1', '198.18.163.0/24 if1', '198.18.165.0/24 if2']);
    // Source selection: the address on the next hop's subnet, else the primary.
    assert.equal(formatIpv4(a.stack.sourceAddress(parseIpv4('198.18.163.1')!)), '198.18.163.2');
    assert.equal(formatIpv4(a.stack.sourceAddress(parseIpv4('198.18.162.1')!)), '198.18.162.2');
    assert.equal(formatIpv4(a.stack.sourceAddress(parseIpv4('198.18.165.1')!)), '198.18.165.2');
    // Longest prefix across interfaces: a /28 static route via port 2 beats port 1's /24.
    a.stack.routes.add(parseIpv4('198.18.163.16')!, 28, parseIpv4('198.18.165.1')!, 2);
    assert.equal(formatIpv4(a.stack.sourceAddress(parseIpv4('198.18.163.17')!)), '198.18.165.2');
    assert.equal(a.stack.routes.lookup(parseIpv4('198.18.163.15')!)!.ifIndex, 1);

    // Every VIP answers TCP; each connection's local address is the one chosen above.
    const l = a.stack.tcp.listen({ port: 80 });
    const accepted: string[] = [];
    l.onConnection = (s) => { accepted.push(formatIpv4(s.localAddress)); };
    b.stack.routes.add(parseIpv4('198.18.164.9')!, 32, 0, 1);
    const conns = ['198.18.162.2', '198.18.162.3', '198.18.163.2', '198.18.164.9'].map((d) => {
      const c = b.stack.tcp.connect({ raddr: parseIpv4(d)!, rport: 80 });
      return c;
    });
    step(2000);
    assert.deepEqual(accepted.sort(), ['198.18.162.2', '198.18.162.3', '198.18.163.2', '198.18.164.9']);
    assert.deepEqual(conns.map((c) => formatIpv4(c.localAddress)), ['198.18.162.1', '198.18.162.1', '198.18.163.1', '198.18.163.1']);
    const c2 = a.stack.tcp.connect({ raddr: parseIpv4('198.18.163.1')!, rport: 9 });
    assert.equal(formatIpv4(c2.localAddress), '198.18.163.2');
  } finally { a.stop(); b.stop(); }
});

test('vips mistakes are located errors', () => {
  const bad = (text: string, re: RegExp) => assert.throws(() => parseConfig(text, 't.toml'), (e: unknown) => e instanceof ConfigError && re.test(e.message), re.source);
  const two = (v: string) => `[[port]]\ndriver = "memory"\naddr = "198.18.166.2/24"\n[[port]]\ndriver = "memory"\naddr = "198.18.167.2/24"\n${v}`;
  bad(two('vips = ["198.18.166.9/24"]\n'), /port\[1\]\.vips\[0\].*same subnet as port\[0\]/);
  bad(two('vips = ["198.18.166.2"]\n'), /already port\[0\]'s address/);
  bad(two('vips = "198.18.168.1"\n'), /port\[1\]\.vips.*array/);
  bad(two('vips = ["198.18.167.0/24"]\n'), /vips\[0\]/);
  bad(two('vips6 = ["nope"]\n'), /vips6\[0\]/);
  const ok = parseConfig(two('vips = ["198.18.167.3", "198.18.169.1"]\nvips6 = ["2001:db8::5"]\n'), 't.toml');
  assert.deepEqual(ok.ports[1]!.vips, ['198.18.167.3/24', '198.18.169.1/32']);
  assert.deepEqual(ok.ports[1]!.vips6, ['2001:db8::5/128']);
});

test('[[bond]]: built over its member ports, shown in the snapshot; mistakes are located errors', () => {
  const cfg = parseConfig(`
[[port]]
driver = "memory"
ifname = "m0"
[[port]]
driver = "memory"
ifname = "m1"
[[bond]]
ifname = "bond0"
mode = "active-backup"
members = ["m0", "m1"]
addr = "198.18.172.2/24"
vips = ["198.18.172.3"]
`, 'b.toml');
  assert.deepEqual(cfg.bonds, [{ index: 0, ifname: 'bond0', mode: 'active-backup', members: ['m0', 'm1'], miimon: 100, addr: '198.18.172.2/24', vips: ['198.18.172.3/24'] }]);
  const inst = startInstance(cfg, { clock: new VirtualClock(), start: false });
  try {
    const snap = interfaces(inst.stack);
    const bond = snap.find((i) => i.name === 'bond0')!;
    assert.deepEqual(bond.bond, { mode: 'active-backup', members: ['m0', 'm1'], active: 'm0', failovers: 0 });
    assert.deepEqual(bond.inet.map((x) => x.addr), ['198.18.172.2', '198.18.172.3']);
    assert.equal(bond.mac, snap[0]!.mac);
    assert.deepEqual(snap.filter((i) => i.master).map((i) => i.name), ['m0', 'm1']);
  } finally { inst.stop(); }
  const bad = (text: string, re: RegExp) => assert.throws(() => parseConfig(text, 't.toml'), (e: unknown) => e instanceof ConfigError && re.test(e.message), re.source);
  const ports = '[[port]]\ndriver = "memory"\nifname = "m0"\n[[port]]\ndriver = "memory"\nifname = "m1"\naddr = "198.18.173.2/24"\n';
  bad(`${ports}[[bond]]\nmembers = ["m9"]\n`, /bond\[0\]\.members\[0\].*not a port/);
  bad(`${ports}[[bond]]\nmembers = ["m1"]\n`, /addresses or VLANs of its own/);
  bad(`${ports}[[bond]]\nmembers = ["m0"]\nmode = "802.3ad"\n`, /bond\[0\]\.mode/);
  bad(`${ports}[[bond]]\nmembers = ["m0"]\n[[bond]]\nmembers = ["m0"]\n`, /already a member of bond0/);
  bad(`${ports}[[bond]]\nmembers = ["m0"]\naddr = "198.18.173.9/24"\n`, /same subnet as port\[1\]/);
  bad(`${ports}[[bond]]\nmembers = []\n`, /non-empty/);
  bad(`${ports}[[bond]]\nmembers = ["m0"]\narp_interval = 200\n`, /arp_interval needs arp_ip_target/);
  bad(`${ports}[[bond]]\nmembers = ["m0"]\narp_ip_target = ["198.18.174.1"]\n`, /needs arp_interval/);
  bad(`${ports}[[bond]]\nmembers = ["m0"]\nmode = "balance-xor"\narp_interval = 200\narp_ip_target = ["198.18.174.1"]\n`, /for mode = "active-backup"/);
  const arp = parseConfig(`${ports}[[bond]]\nmembers = ["m0"]\narp_interval = 200\narp_ip_target = ["198.18.174.1"]\n`, 't.toml');
  assert.equal(arp.bonds![0]!.arpInterval, 200);
  assert.deepEqual(arp.bonds![0]!.arpTargets, ['198.18.174.1']);
  const inst2 = startInstance(arp, { clock: new VirtualClock(), start: false });
  inst2.stop();
});
