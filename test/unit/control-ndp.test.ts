// `tstack ndp` over the control socket (in-process instance, memory ports, no root): the
// neighbour cache and the ports' IPv6 addresses, and a clear refusal where IPv6 is off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlInstances } from '../helpers/control-instance.js';
import { parseIpv6 } from '../../src/wire/addr.js';

const { start } = controlInstances('ndp');

interface NdpReply { ndp: { addr: string; ifname: string; state: string }[]; addresses: { ifname: string; addrs: { addr: string; state: string; origin: string }[] }[] }

test('ndp.list returns the neighbour cache and each port\'s IPv6 addresses', async () => {
  const { inst, c } = await start('v6', 'addr6 = "2001:db8:90::2/64"');
  // Duplicate address detection first (a second or two on the real clock).
  for (let i = 0; i < 100 && !inst.stack.ip6.addresses(1).every((a) => a.state === 'preferred'); i++) await new Promise((r) => setTimeout(r, 50));
  inst.stack.ip6.icmp.sendEcho(parseIpv6('2001:db8:90::7')!, 1, 1, new Uint8Array(8));
  const r = await c.request<NdpReply>('ndp.list', {});
  assert.deepEqual(r.ndp.map((e) => [e.addr, e.ifname, e.state]), [['2001:db8:90::7', 'mem0', 'incomplete']]);
  const mine = r.addresses.find((p) => p.ifname === 'mem0')!.addrs;
  assert.ok(mine.some((a) => a.addr === '2001:db8:90::2' && a.origin === 'manual'));
  assert.ok(mine.some((a) => a.addr.startsWith('fe80::') && a.origin === 'link-local'));
});

test('ndp.list on an instance without IPv6 lists nothing (as ndp -a on a host without IPv6)', async () => {
  const { c } = await start('v4', 'addr = "198.18.91.2/24"');
  assert.deepEqual(await c.request('ndp.list', {}), { ndp: [], addresses: [] });
});
