// tstack.toml's IPv6 keys reach the stack: two memory ports on one wire, configured only by
// addr6, gateway6 and slaac, pass DAD; an MTU too small for IPv6 is refused at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance } from '../../src/runtime/instance.js';
import { VirtualClock } from '../../src/base/time.js';

test('addr6, gateway6 and slaac from tstack.toml configure IPv6 on each port, and DAD passes on the shared wire', () => {
  const cfg = parseConfig(`
[[port]]
driver = "memory"
addr6 = "2001:db8:7::1/64"
gateway6 = "fe80::1"
[[port]]
driver = "memory"
addr6 = "2001:db8:7::2/64"
slaac = true
`, 'v6.toml');
  const clock = new VirtualClock(1000);
  const inst = startInstance(cfg, { clock, start: false });
  const ip6 = inst.stack.ip6;
  const step = (ms: number) => { for (let t = 0; t < ms; t += 10) { inst.loop.iterate(); clock.advance(10); } };
  step(3000);
  assert.deepEqual(ip6.addresses(1).map((a) => `${a.addr} ${a.origin} ${a.state}`),
    [`${ip6.addresses(1)[0]!.addr} link-local preferred`, '2001:db8:7::1 manual preferred']);
  assert.ok(ip6.addresses(2).some((a) => a.addr === '2001:db8:7::2' && a.state === 'preferred'));
  assert.ok(ip6.routes.list(clock.now()).some((r) => r.prefix === '::/0' && r.gateway === 'fe80::1' && r.ifIndex === 1));
  assert.equal(ip6.link(1)!.slaac, false);
  assert.equal(ip6.link(2)!.slaac, true);
  inst.stop();
});

test('a port MTU too small for IPv6 is refused when the instance starts, naming the port', () => {
  const cfg = parseConfig('[[port]]\ndriver = "memory"\nmtu = 1000\naddr6 = "2001:db8::2/64"\n', 'small.toml');
  assert.throws(() => startInstance(cfg, { clock: new VirtualClock(), start: false }), /port\[0\].*IPv6 needs a link MTU of at least 1280/);
});
