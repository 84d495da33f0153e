// VLAN interfaces created at run time through the control socket (what `tstack ifconfig NAME
// create vlan ID vlandev PORT` sends), then addressed with ifconfig.set; refusals change nothing.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ControlClient } from '../../src/cli/client.js';
import { controlInstances, refused } from '../helpers/control-instance.js';
import type { InterfaceSnapshot } from '../../src/stack/stats.js';

const fixture = controlInstances('control-vlan');
let c: ControlClient;

before(async () => {
  ({ c } = await fixture.start('v', ''));
});

test('vlan.create adds a VLAN interface on a port; ifconfig.set addresses it; mistakes are refused', async () => {
  const v = await c.request<InterfaceSnapshot>('vlan.create', { port: 'mem0', id: 100, name: 'mem0.100' });
  assert.deepEqual(v.vlan, { parent: 'mem0', id: 100, outer: 0 });
  const q = await c.request<InterfaceSnapshot>('vlan.create', { port: 'mem0', id: 100, outer: 300 });
  assert.equal(q.name, 'mem0.300.100');
  await c.request('ifconfig.set', { port: 'mem0.100', add: '198.18.175.2/24' });
  const snap = await c.request<{ interfaces: InterfaceSnapshot[] }>('snapshot', {});
  assert.deepEqual(snap.interfaces.find((i) => i.name === 'mem0.100')!.inet.map((a) => a.addr), ['198.18.175.2']);
  await refused(c.request('vlan.create', { port: 'mem0', id: 100 }), 'EEXIST', /already exists/);
  await refused(c.request('vlan.create', { port: 'mem0', id: 4095 }), 'EINVAL', /out of range/);
  await refused(c.request('vlan.create', { port: 'mem0.100', id: 5 }), 'EINVAL', /not a port/);
  await refused(c.request('vlan.create', { port: 'nope', id: 5 }), 'ENXIO', /no port 'nope'/);
  await refused(c.request('vlan.create', { port: 'mem0', id: 7, name: 'mem0' }), 'EEXIST', /exists/);
  const after = await c.request<{ interfaces: InterfaceSnapshot[] }>('snapshot', {});
  assert.equal(after.interfaces.length, snap.interfaces.length, 'refusals created nothing');
});
