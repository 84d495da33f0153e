// The stack against the Linux kernel over TAP, in a namespace this test creates:
// ping (small and 1472-byte), ARP both ways, UDP echo, ICMP port unreachable for a closed port.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TapDriver } from '../../src/driver/tap.js';
import { Stack } from '../../src/stack/stack.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';
import { formatMac, parseIpv4 } from '../../src/wire/addr.js';
import { createNetns, destroyNetns, exec, ipIn, requireRoot, spawnIn } from '../helpers/netns.js';

const HOST = '198.18.60.1', US = '198.18.60.2';
let ns = '';
let stack: Stack;
let loop: RunLoop;
let tap: TapDriver;
let ready = false;

before(() => {
  ready = requireRoot({ skip: () => {} }, ['ip', 'ping', 'python3']);
  if (!ready) return;
  ns = createNetns('k4');
  tap = TapDriver.open({ ifname: 'tstk4', hostAddr: `${HOST}/24`, netns: ns });
  stack = new Stack({ clock: realClock, name: 'k4' });
  const ifIndex = stack.addInterface(tap, { addr: `${US}/24` });
  loop = new RunLoop({ stack, poll: 'interrupt' });
  loop.addPort(tap, ifIndex);
  stack.onOutput = () => loop.kick();
  loop.start();
  const echo = stack.udp.open();
  echo.bind(0, 7);
  echo.onMessage = (d, a, p) => echo.send(d, a, p);
});

after(() => {
  if (!ns) return;
  try { loop.stop(); } finally { stack.close(); destroyNetns(ns); }
});

function skipUnlessReady(t: { skip(msg?: string): void }): boolean {
  if (ready) return true;
  requireRoot(t, ['ip', 'ping', 'python3']);
  return false;
}

test('kernel pings the stack: 20 of 20 replies', async (t) => {
  if (!skipUnlessReady(t)) return;
  const r = await spawnIn(ns, 'ping', ['-c', '20', '-i', '0.05', '-W', '2', US], 20_000);
  assert.match(r.stdout, /20 packets transmitted, 20 received/, r.stdout + r.stderr);
});

test('kernel pings the stack with 1472-byte payloads (full 1500-byte frames): 20 of 20', async (t) => {
  if (!skipUnlessReady(t)) return;
  const r = await spawnIn(ns, 'ping', ['-c', '20', '-i', '0.05', '-s', '1472', '-M', 'do', '-W', '2', US], 20_000);
  assert.match(r.stdout, /20 packets transmitted, 20 received/, r.stdout + r.stderr);
});

test('kernel pings the stack with 3000-byte payloads: fragments are reassembled and answered in fragments', async (t) => {
  if (!skipUnlessReady(t)) return;
  const before = stack.ipStats.reassembled;
  const r = await spawnIn(ns, 'ping', ['-c', '5', '-i', '0.05', '-s', '3000', '-W', '2', US], 20_000);
  assert.match(r.stdout, /5 packets transmitted, 5 received/, r.stdout + r.stderr);
  assert.ok(stack.ipStats.reassembled - before >= 5);
});

test('ARP works both ways: the kernel learned our MAC, and we resolve the kernel when we ping it', async (t) => {
  if (!skipUnlessReady(t)) return;
  const neigh = ipIn(ns, ['neigh', 'show', US]);
  assert.match(neigh, new RegExp(formatMac(tap.mac)), neigh);
  const seqs: number[] = [];
  stack.icmp.onEchoReply = (src, _id, seq) => { if (src === parseIpv4(HOST)) seqs.push(seq); };
  for (let i = 1; i <= 3; i++) { stack.icmp.sendEcho(parseIpv4(HOST)!, 99, i, new Uint8Array(32)); loop.kick(); }
  const deadline = Date.now() + 3000;
  while (seqs.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  stack.icmp.onEchoReply = null;
  assert.deepEqual(seqs.sort(), [1, 2, 3]);
  const entry = stack.arp.list().find((e) => e.ip === HOST);
  assert.equal(entry?.state, 'reachable');
  const hostMac = ipIn(ns, ['-br', 'link', 'show', 'tstk4']).trim().split(/\s+/)[2];
  assert.equal(entry?.mac, hostMac);
});

const PY_UDP = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
out = []
for i in range(10):
    msg = ('datagram-%d-' % i).encode() + bytes(range(256)) * (i + 1)
    s.sendto(msg, (sys.argv[1], int(sys.argv[2])))
    data, addr = s.recvfrom(65536)
    out.append(data == msg and addr == (sys.argv[1], int(sys.argv[2])))
print('ok' if all(out) else 'mismatch %r' % out)
`;

test('a UDP echo program on the stack answers datagrams sent by the kernel', async (t) => {
  if (!skipUnlessReady(t)) return;
  const r = await spawnIn(ns, 'python3', ['-c', PY_UDP, US, '7'], 20_000);
  assert.equal(r.stdout.trim(), 'ok', r.stderr);
});

const PY_CLOSED = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], 9))
s.send(b'anyone there?')
try:
    s.recv(100)
    print('no error')
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')
`;

test('a datagram to a closed port gets ICMP port unreachable (the kernel reports ECONNREFUSED)', async (t) => {
  if (!skipUnlessReady(t)) return;
  const before = stack.icmp.stats.errorsSent;
  const r = await spawnIn(ns, 'python3', ['-c', PY_CLOSED, US], 20_000);
  assert.equal(r.stdout.trim(), 'refused', r.stderr);
  assert.equal(stack.icmp.stats.errorsSent - before, 1);
  void exec;
});
