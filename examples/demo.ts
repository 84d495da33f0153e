// `npm start`: the stack serving real traffic.
// As root: a private network namespace and a TAP device; the Linux kernel on the other side
// pings the stack and exchanges UDP with an echo service running on it. Without the privileges:
// the same service on one stack, and a second stack as the client, joined by the memory wire.
import { existsSync } from 'node:fs';
import { MemoryWire } from '../src/driver/memory.js';
import { parseConfig } from '../src/runtime/config.js';
import { startInstance, type Instance } from '../src/runtime/instance.js';
import { realClock } from '../src/runtime/loop.js';
import { createNetns, destroyNetns, hasCommand, isRoot, spawnIn } from '../src/runtime/netns.js';
import { formatIpv4, formatMac, parseIpv4 } from '../src/wire/addr.js';
import type { Stack } from '../src/stack/stack.js';

const STACK_ADDR = '198.18.0.2';
const HOST_ADDR = '198.18.0.1';
const ECHO_PORT = 7;

function say(line = ''): void { process.stdout.write(`${line}\n`); }

/** The application: a UDP echo service on the stack. */
function serveEcho(stack: Stack): void {
  const s = stack.udp.open();
  s.bind(0, ECHO_PORT);
  s.onMessage = (data, addr, port) => s.send(data, addr, port);
}

function privileges(): string | null {
  if (process.platform !== 'linux') return 'TAP devices need Linux';
  if (!isRoot()) return 'creating a network namespace and a TAP device needs root (CAP_NET_ADMIN)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  if (!hasCommand('ip')) return 'iproute2 (`ip`) is not installed';
  return null;
}

const PY_UDP = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
for i in range(3):
    t = time.perf_counter()
    s.sendto(('hello tstack #%d' % i).encode(), (sys.argv[1], int(sys.argv[2])))
    data, addr = s.recvfrom(2048)
    print('  %s:%d echoed %r in %.0f us' % (addr[0], addr[1], data.decode(), (time.perf_counter() - t) * 1e6))
`;

async function tapDemo(): Promise<void> {
  const ns = createNetns('demo');
  let inst: Instance | null = null;
  try {
    const config = parseConfig(`
[stack]
poll = "interrupt"
[[port]]
driver = "tap"
ifname = "tstdemo0"
addr = "${STACK_ADDR}/24"
host_addr = "${HOST_ADDR}/24"
netns = "${ns}"
`, '<demo>');
    inst = startInstance(config);
    serveEcho(inst.stack);
    const port = inst.ports[0]!;
    say(`tstack is up on TAP device tstdemo0 in network namespace ${ns}`);
    say(`  stack ${STACK_ADDR}/24 (MAC ${formatMac(port.driver.mac)}), kernel side ${HOST_ADDR}/24`);
    say(`  serving: ICMP echo, UDP echo on port ${ECHO_PORT}\n`);
    say(`$ ip netns exec ${ns} ping -c 3 -i 0.2 ${STACK_ADDR}`);
    const ping = await spawnIn(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', STACK_ADDR], 15_000);
    say(ping.stdout.trim().split('\n').map((l) => `  ${l}`).join('\n'));
    if (hasCommand('python3')) {
      say(`\n$ (python3 UDP client in ${ns}) -> ${STACK_ADDR}:${ECHO_PORT}`);
      const udp = await spawnIn(ns, 'python3', ['-c', PY_UDP, STACK_ADDR, String(ECHO_PORT)], 15_000);
      say((udp.stdout + udp.stderr).trimEnd());
    }
    const c = inst.stack.interfaces[0]!.counters;
    say(`\nstack counters: rx ${c.rxPackets} frames, tx ${c.txPackets} frames; ARP cache: ${inst.stack.arp.list().map((e) => `${e.ip} ${e.mac} (${e.state})`).join(', ')}`);
    say('\nTry it by hand (as root):');
    say('  ip netns add tst-demo');
    say('  sed "s/# netns = .*/netns = \\"tst-demo\\"/" examples/tstack.toml > /tmp/tstack.toml');
    say('  npx tstack up --config /tmp/tstack.toml &');
    say(`  ip netns exec tst-demo ping ${STACK_ADDR}`);
    say('  kill %1; ip netns del tst-demo');
  } finally {
    inst?.stop();
    destroyNetns(ns);
    say('\ncleaned up: TAP device and namespace removed');
  }
}

async function memoryDemo(): Promise<void> {
  const wire = new MemoryWire({ clock: realClock });
  const conf = (addr: string, ifname: string) => parseConfig(`
[stack]
poll = "interrupt"
[[port]]
driver = "memory"
ifname = "${ifname}"
addr = "${addr}/24"
`, '<demo>');
  const server = startInstance(conf(STACK_ADDR, 'mem0'), { memoryWire: wire });
  const client = startInstance(conf(HOST_ADDR, 'mem1'), { memoryWire: wire });
  try {
    serveEcho(server.stack);
    say(`two stacks on the in-process memory wire: server ${STACK_ADDR}, client ${HOST_ADDR}\n`);
    const dst = parseIpv4(STACK_ADDR)!;
    const pings = new Map<number, number>();
    client.stack.icmp.onEchoReply = (src, _id, seq) => {
      say(`  ping reply from ${formatIpv4(src)}: seq=${seq} time=${(performance.now() - pings.get(seq)!).toFixed(3)} ms`);
      pings.delete(seq);
    };
    for (let seq = 1; seq <= 3; seq++) {
      pings.set(seq, performance.now());
      client.stack.icmp.sendEcho(dst, 1, seq, new Uint8Array(56));
      await new Promise((r) => setTimeout(r, 100));
    }
    const u = client.stack.udp.open();
    const got = new Promise<string>((resolve) => { u.onMessage = (d, a, p) => resolve(`${formatIpv4(a)}:${p} echoed "${Buffer.from(d)}"`); });
    u.send(Buffer.from('hello tstack'), dst, ECHO_PORT);
    say(`  ${await Promise.race([got, new Promise<string>((r) => setTimeout(() => r('no UDP echo within 2 s'), 2000))])}`);
  } finally {
    client.stop();
    server.stop();
  }
}

async function main(): Promise<void> {
  const why = privileges();
  if (why === null) await tapDemo();
  else {
    say(`(${why}: running the same service on two in-process stacks instead)\n`);
    await memoryDemo();
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
