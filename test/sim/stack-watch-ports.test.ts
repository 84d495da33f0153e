// Stack.watchPorts: the hook a driver's exception path (AF_XDP) uses to hand the kernel every
// frame the stack has no socket for. Proven on the virtual clock: a port is reported taken when
// a listener, a connection (either end) or a UDP socket first holds it, and free only when the
// last of them (TIME_WAIT included) lets it go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4 } from '../../src/wire/addr.js';
import { Simulation } from '../helpers/sim.js';

test('watchPorts reports TCP listeners, connections and TIME_WAIT, and UDP binds, on their transitions only', () => {
  const sim = new Simulation({ seed: 7 });
  const a = sim.addHost({ name: 'a', addr: '198.18.0.1/24', sysctl: { 'net.inet.tcp.msl': 100 } });
  const b = sim.addHost({ name: 'b', addr: '198.18.0.2/24' });
  const events: string[] = [];
  const pre = a.host.udp.open();
  pre.bind(0, 5353);
  const unwatch = a.host.watchPorts((proto, port, inUse) => events.push(`${proto === 6 ? 'tcp' : 'udp'} ${port} ${inUse ? 'open' : 'closed'}`));
  assert.deepEqual(events, ['udp 5353 open'], 'what the stack held already is replayed');
  events.length = 0;

  const l = a.host.tcp.listen({ port: 80 });
  assert.deepEqual(events, ['tcp 80 open']);
  let served = 0;
  l.onConnection = (s) => { served++; s.onData = () => { s.read(); s.close(); }; };
  // Two connections to the listener's port: no more events (the port is already held).
  const peers = [0, 1].map(() => b.host.tcp.connect({ raddr: parseIpv4('198.18.0.1')!, rport: 80 }));
  assert.ok(sim.runUntil(() => served === 2, { maxMs: 5000 }), sim.describe());
  assert.deepEqual(events, ['tcp 80 open']);
  // The listener closes while connections still hold 80: still held.
  l.close();
  assert.deepEqual(events, ['tcp 80 open']);
  for (const p of peers) { p.write(new Uint8Array([1])); p.close(); }
  // a closes first (server close after the request): its ends go through TIME_WAIT, then free.
  assert.ok(sim.runUntil(() => a.host.tcp.activeTcbs === 0, { maxMs: 10_000 }), sim.describe());
  assert.deepEqual(events, ['tcp 80 open', 'tcp 80 closed']);
  events.length = 0;

  // An active open takes an ephemeral port; it is reported at once and released at the end.
  const c = a.host.tcp.connect({ raddr: parseIpv4('198.18.0.2')!, rport: 9 });
  const eph = c.tcb.lport;
  assert.deepEqual(events, [`tcp ${eph} open`]);
  c.abort();
  assert.deepEqual(events, [`tcp ${eph} open`, `tcp ${eph} closed`]);
  events.length = 0;

  // UDP: the first socket on a port opens it, the last to close frees it.
  const u1 = a.host.udp.open(); u1.reuseAddr = true; u1.bind(0, 6000);
  const u2 = a.host.udp.open(); u2.reuseAddr = true; u2.bind(0, 6000);
  u1.close();
  assert.deepEqual(events, ['udp 6000 open']);
  u2.close();
  pre.close();
  assert.deepEqual(events, ['udp 6000 open', 'udp 6000 closed', 'udp 5353 closed']);

  unwatch();
  a.host.tcp.listen({ port: 81 });
  assert.equal(events.length, 3, 'no events after unsubscribing');
});
