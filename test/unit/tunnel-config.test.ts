// [[tunnel]] in tstack.toml: the key names parse; mistakes are located errors; an
// instance builds the tunnel interfaces after its ports, and two instances on the memory wire
// ping through a GRE tunnel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/runtime/config.js';
import { startInstance } from '../../src/runtime/instance.js';
import { MemoryWire } from '../../src/driver/memory.js';
import { realClock } from '../../src/runtime/loop.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { interfaces } from '../../src/stack/stats.js';
import { formatInterface } from '../../src/cli/ifconfig.js';

const PORT = '[[port]]\ndriver = "memory"\nifname = "m0"\naddr = "198.18.214.2/24"\n';

test('[[tunnel]]: vxlan with remote or remotes, gre with key, ipip', () => {
  const cfg = parseConfig(`${PORT}
[[tunnel]]
kind = "vxlan"
ifname = "vx0"
vni = 42
local = "198.18.214.2"
remote = "198.18.214.1"
addr = "198.18.42.2/24"
[[tunnel]]
kind = "vxlan"
ifname = "vx1"
vni = 43
local = "198.18.214.2"
remotes = ["198.18.214.1", "198.18.214.3"]
[[tunnel]]
kind = "gre"
ifname = "gre0"
key = 7
local = "198.18.214.2"
remote = "198.18.214.1"
addr = "198.18.43.2/30"
[[tunnel]]
kind = "ipip"
ifname = "ipip0"
local = "198.18.214.2"
remote = "198.18.214.5"
mtu = 1400
`, 't.toml');
  assert.deepEqual(cfg.tunnels!.map((t) => [t.kind, t.ifname, t.remotes, t.vni ?? t.key ?? null]), [
    ['vxlan', 'vx0', ['198.18.214.1'], 42],
    ['vxlan', 'vx1', ['198.18.214.1', '198.18.214.3'], 43],
    ['gre', 'gre0', ['198.18.214.1'], 7],
    ['ipip', 'ipip0', ['198.18.214.5'], null],
  ]);
  assert.equal(cfg.tunnels![3]!.mtu, 1400);
});

test('[[tunnel]] mistakes are located errors', () => {
  const bad = (body: string, re: RegExp) => assert.throws(() => parseConfig(`${PORT}[[tunnel]]\n${body}`, 't.toml'), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  bad('kind = "vxlan"\nifname = "vx0"\nlocal = "198.18.214.2"\nremote = "198.18.214.1"\n', /tunnel\[0\]\.vni.*required/);
  bad('kind = "gre"\nifname = "g0"\nlocal = "198.18.214.2"\nremotes = ["198.18.214.1"]\n', /only a vxlan tunnel has several remotes/);
  bad('kind = "ipip"\nifname = "i0"\nlocal = "198.18.214.2"\nremote = "198.18.214.1"\nkey = 3\n', /only applies to kind "gre"/);
  bad('kind = "gre"\nifname = "m0"\nlocal = "198.18.214.2"\nremote = "198.18.214.1"\n', /already used by port\[0\]/);
  bad('kind = "gre"\nifname = "g0"\nlocal = "198.18.214.2"\nremote = "198.18.214.1"\naddr6 = "2001:db8::1/64"\n', /addr6.*only applies to kind "vxlan"/);
  bad('kind = "sit"\nifname = "s0"\nlocal = "198.18.214.2"\nremote = "198.18.214.1"\n', /tunnel\[0\]\.kind/);
  bad('kind = "gre"\nifname = "g0"\nlocal = "198.18.214.2"\nremote = "198.18.214.1"\ncolour = 1\n', /unknown key/);
});

test('two instances on the memory wire ping through a GRE tunnel from [[tunnel]]', async () => {
  const wire = new MemoryWire({ clock: realClock });
  const mk = (me: number, peer: number) => startInstance(parseConfig(`[[port]]\ndriver = "memory"\naddr = "198.18.214.${me}/24"\n[[tunnel]]\nkind = "gre"\nifname = "gre0"\nkey = 5\nlocal = "198.18.214.${me}"\nremote = "198.18.214.${peer}"\naddr = "198.18.215.${me}/24"\n`, 'g.toml'), { memoryWire: wire });
  const a = mk(1, 2), b = mk(2, 1);
  try {
    const gre = a.stack.interfaces.find((i) => i.name === 'gre0')!;
    assert.equal(gre.index, 2, 'after the port, before lo0');
    assert.equal(gre.mtu, 1500 - 20 - 8);
    // What ifconfig shows: the kind and ends, POINTOPOINT, and the IGMP groups joined.
    const u = a.stack.udp.open(); u.bind(0, 4000); u.addMembership(parseIpv4('239.9.9.9')!, parseIpv4('198.18.215.1')!);
    const snap = interfaces(a.stack).find((i) => i.name === 'gre0')!;
    assert.equal(snap.tunnel, 'gre key 5 local 198.18.214.1 remote 198.18.214.2');
    assert.ok(snap.flags.includes('POINTOPOINT') && !snap.flags.includes('BROADCAST'));
    assert.deepEqual(snap.groups, ['239.9.9.9']);
    assert.match(formatInterface({ ...snap, driver: 'unknown', deviceRxDropped: 0, deviceTxDropped: 0 }), /\ttunnel: gre key 5 .*\n\tgroups: 239\.9\.9\.9\n\tdriver: tunnel/);
    u.close();
    const got = new Promise<number>((resolve) => { a.stack.icmp.onEchoReply = (src) => resolve(src); });
    const timer = setInterval(() => a.stack.icmp.sendEcho(parseIpv4('198.18.215.2')!, 1, 1, new Uint8Array(8)), 100);
    try {
      assert.equal(await Promise.race([got, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('no echo reply in 10 s')), 10_000))]), parseIpv4('198.18.215.2'));
    } finally { clearInterval(timer); }
  } finally {
    a.stop(); b.stop();
  }
});
