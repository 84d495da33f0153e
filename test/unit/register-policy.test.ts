// Which sockets of a program under `tstack run` go to the stack and which stay on the kernel
// (src/api/register-policy.ts): decided from the address and the stack's own routing table.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from '../../src/stack/stack.js';
import { VirtualClock } from '../../src/base/time.js';
import type { NetDevice } from '../../src/base/device.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import { RoutingPolicy } from '../../src/api/register-policy.js';

function device(name: string): NetDevice {
  return {
    name, mac: new Uint8Array([2, 0, 0, 0, 0, 2]), mtu: 1500,
    offloads: { rxCsum: false, txCsum: false, tso4: false, tso6: false },
    transmit(buf: PacketBuffer) { buf.release(); },
  };
}

/** A stack on 198.18.0.2/24, with a default route via 198.18.0.1 when `gateway`. */
function stack(gateway: boolean): Stack {
  const s = new Stack({ clock: new VirtualClock() });
  s.addInterface(device('t0'), { addr: '198.18.0.2/24', ...(gateway && { gateway: '198.18.0.1' }) });
  return s;
}

describe('RoutingPolicy "auto" (the default)', () => {
  const p = new RoutingPolicy(stack(false));

  test('connections to loopback and to Node\'s default host use the kernel', () => {
    for (const h of ['127.0.0.1', '127.9.9.9', '::1', 'localhost', 'LOCALHOST', 'db.localhost', undefined, '', '0.0.0.0', '::', '::ffff:127.0.0.1']) {
      assert.equal(p.outgoing(h), 'kernel', String(h));
    }
  });

  test('a destination on the stack\'s connected network, or its own address, uses the stack', () => {
    assert.equal(p.outgoing('198.18.0.1'), 'stack');
    assert.equal(p.outgoing('198.18.0.254'), 'stack');
    assert.equal(p.outgoing('::ffff:198.18.0.1'), 'stack');
    assert.equal(p.outgoing('198.18.0.2'), 'stack');
  });

  test('a destination the stack has no route for uses the kernel', () => {
    assert.equal(p.outgoing('198.18.1.1'), 'kernel');
    assert.equal(p.outgoing('192.0.2.10'), 'kernel');
    assert.equal(p.outgoing('2001:db8::1'), 'kernel');
  });

  test('a host name goes to the stack only when the stack has a default route', () => {
    assert.equal(p.outgoing('db.example'), 'kernel');
    const withGw = new RoutingPolicy(stack(true));
    assert.equal(withGw.outgoing('db.example'), 'stack');
    assert.equal(withGw.outgoing('192.0.2.10'), 'stack', 'everything is routed through the gateway');
    assert.equal(withGw.outgoing('127.0.0.1'), 'kernel', 'loopback still stays on the kernel');
  });

  test('listening on any address or the stack\'s own address binds on the stack', () => {
    for (const h of [undefined, '', '0.0.0.0', '::', '198.18.0.2', 'myhost.example']) assert.equal(p.listen(h), 'stack', String(h));
  });

  test('listening on loopback, or on an address the stack does not own, stays on the kernel', () => {
    for (const h of ['127.0.0.1', 'localhost', '::1', '198.18.0.9', '2001:db8::2']) assert.equal(p.listen(h), 'kernel', h);
  });
});

describe('RoutingPolicy options', () => {
  test('[api] kernel prefixes send routed destinations to the kernel', () => {
    const p = new RoutingPolicy(stack(true), { kernelFallback: 'auto', kernel: ['198.18.0.128/25', '10.0.0.0/8'] });
    assert.equal(p.outgoing('198.18.0.200'), 'kernel');
    assert.equal(p.outgoing('198.18.0.100'), 'stack');
    assert.equal(p.outgoing('10.1.2.3'), 'kernel');
  });

  test('"loopback": only loopback uses the kernel; unrouted destinations fail on the stack instead', () => {
    const p = new RoutingPolicy(stack(false), { kernelFallback: 'loopback' });
    assert.equal(p.outgoing('127.0.0.1'), 'kernel');
    assert.equal(p.outgoing('192.0.2.10'), 'stack');
    assert.equal(p.outgoing('db.example'), 'stack');
    assert.equal(p.listen('127.0.0.1'), 'kernel');
    assert.equal(p.listen('198.18.0.9'), 'stack');
  });

  test('"never": everything goes to the stack, loopback and kernel prefixes included', () => {
    const p = new RoutingPolicy(stack(false), { kernelFallback: 'never', kernel: ['10.0.0.0/8'] });
    for (const h of ['127.0.0.1', 'localhost', undefined, '10.0.0.1', '192.0.2.1']) assert.equal(p.outgoing(h), 'stack', String(h));
    assert.equal(p.listen('127.0.0.1'), 'stack');
  });

  test('a malformed prefix is refused when the policy is built', () => {
    assert.throws(() => new RoutingPolicy(stack(false), { kernel: ['10.0.0.0'] }), /not an IPv4 prefix/);
  });
});

describe('RoutingPolicy with lo0 (every instance has it)', () => {
  function withLoopback(): Stack {
    const s = stack(true);
    s.addLoopback();
    return s;
  }

  test('listening on loopback binds on the stack\'s lo0, ::1 included (mirrored on the kernel\'s ::1)', () => {
    const p = new RoutingPolicy(withLoopback());
    for (const h of ['127.0.0.1', '127.0.0.2', 'localhost', '::1']) assert.equal(p.listen(h), 'stack', h);
    assert.deepEqual(p.mirrorAddresses('::1'), ['::1']);
  });

  test('TCP to [::1] goes to the stack when a stack listener on :: or ::1 owns the port; IPv6 destinations the stack routes go to the stack', () => {
    const s = withLoopback();
    const p = new RoutingPolicy(s);
    s.tcp.listen({ addr6: new Uint8Array(16), port: 8081 });
    assert.equal(p.outgoing('::1', 8081), 'stack');
    assert.equal(p.outgoing('::1', 8082), 'kernel');
    assert.equal(p.outgoing('2001:db8:77::9', 80), 'kernel', 'no IPv6 route on this stack');
    s.ip6.attach(s.interfaces[0]!, { addr6: '2001:db8:77::2/64' });
    // Duplicate address detection is still running: no source address yet, but the prefix is the
    // stack's, so the connect fails on the stack rather than leaving through the kernel's routes.
    assert.equal(s.ip6.addresses(1).find((a) => a.addr === '2001:db8:77::2')?.state, 'tentative');
    assert.equal(p.outgoing('2001:db8:77::9', 80), 'stack', 'on-link prefix of a tentative address');
    assert.equal(p.outgoing('2001:db8:79::9', 80), 'kernel', 'no route to another prefix');
    s.sysctl.set('net.inet6.ip6.dad_count', 0);
    s.ip6.addAddress(1, '2001:db8:78::2/64');
    assert.equal(p.outgoing('2001:db8:78::9', 80), 'stack', 'on-link prefix of an assigned address');
    assert.equal(p.outgoingUdp('2001:db8:78::9', 53), 'stack', 'UDP over IPv6 too');
    assert.equal(p.listen('2001:db8:78::2'), 'stack');
    assert.equal(p.listen('2001:db8:99::2'), 'kernel');
  });

  test('a loopback port a stack listener owns is reached inside the stack; any other loopback port on the kernel', () => {
    const s = withLoopback();
    const p = new RoutingPolicy(s);
    s.tcp.listen({ addr: 0, port: 8080 });
    for (const h of ['127.0.0.1', 'localhost', undefined, '::ffff:127.0.0.1']) assert.equal(p.outgoing(h, 8080), 'stack', String(h));
    assert.equal(p.outgoing('127.0.0.1', '8080'), 'stack');
    assert.equal(p.outgoing('127.0.0.1', 5432), 'kernel', 'the host\'s database');
    assert.equal(p.outgoing('127.0.0.1'), 'kernel', 'no port: cannot be the program\'s own listener');
    assert.equal(p.outgoing('::1', 8080), 'kernel', 'reaches the listener through its kernel mirror');
  });

  test('UDP to loopback: the stack when a stack socket is bound on the port', () => {
    const s = withLoopback();
    const p = new RoutingPolicy(s);
    const u = s.udp.open();
    u.bind(0, 5353);
    assert.equal(p.outgoingUdp('127.0.0.1', 5353), 'stack');
    assert.equal(p.outgoingUdp('127.0.0.1', 53), 'kernel');
    u.close();
    assert.equal(p.outgoingUdp('127.0.0.1', 5353), 'kernel');
  });

  test('stack listeners are mirrored on the kernel\'s loopback for the host, unless [api] same_host = false', () => {
    const p = new RoutingPolicy(withLoopback());
    assert.deepEqual(p.mirrorAddresses(undefined), ['::ffff:127.0.0.1', '::1']);
    assert.deepEqual(p.mirrorAddresses('::'), ['::ffff:127.0.0.1', '::1']);
    assert.deepEqual(p.mirrorAddresses('0.0.0.0'), ['127.0.0.1']);
    assert.deepEqual(p.mirrorAddresses('127.0.0.1'), ['127.0.0.1']);
    assert.deepEqual(p.mirrorAddresses('localhost'), ['127.0.0.1']);
    assert.deepEqual(p.mirrorAddresses('198.18.0.2'), [], 'the host reaches the stack\'s own address through the device');
    assert.deepEqual(new RoutingPolicy(withLoopback(), { sameHost: false }).mirrorAddresses(undefined), []);
  });
});

describe('RoutingPolicy for udp6 sockets', () => {
  const s = new Stack({ clock: new VirtualClock() });
  s.addInterface(device('t0'), { addr: '198.18.0.2/24', addr6: '2001:db8:5::2/64' });
  s.addLoopback();
  // The configured address passes DAD after a second on the virtual clock (no one answers).
  for (let t = 0; t <= 5000; t += 50) { (s.clock as VirtualClock).set(t); s.poll(); }
  const p = new RoutingPolicy(s);

  test('a udp6 socket bound to ::, ::1 or the stack\'s IPv6 address goes to the stack; another address stays on the kernel', () => {
    assert.equal(p.listen('::', 'udp'), 'stack');
    assert.equal(p.listen(undefined, 'udp'), 'stack');
    assert.equal(p.listen('::1', 'udp'), 'stack');
    assert.equal(p.listen('2001:db8:5::2', 'udp'), 'stack');
    assert.equal(p.listen('2001:db8:6::2', 'udp'), 'kernel');
    assert.equal(p.listen('2001:db8:5::2'), 'stack', 'and a TCP listener on it');
  });

  test('udp6 sends go to the stack where it has an IPv6 route; ::1 only to a port a stack socket holds', () => {
    assert.equal(p.outgoingUdp('2001:db8:5::1', 53), 'stack');
    assert.equal(p.outgoingUdp('2001:db8:7::1', 53), 'kernel');
    assert.equal(p.outgoing('2001:db8:5::1'), 'stack', 'TCP over IPv6 too');
    assert.equal(p.outgoingUdp('::1', 5353), 'kernel');
    const sock = s.udp.open(6);
    sock.bind6(new Uint8Array(16), 0, 5353);
    assert.equal(p.outgoingUdp('::1', 5353), 'stack');
    sock.close();
  });
});
