// `npm start`: an unmodified Node HTTP server (examples/hello-http/server.js) on the stack.
// As root: a private network namespace and a TAP device; the app runs under `tstack run`, and
// the Linux kernel on the other side of the TAP device pings the stack and fetches the page
// with curl. Without the privileges: the same app on one in-process stack, fetched by a client
// on a second stack, the two joined by the memory wire.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tnet from '../src/api/net.js';
import { installPatches, uninstallPatches } from '../src/api/patch-node.js';
import { RoutingPolicy } from '../src/api/register-policy.js';
import { MemoryWire } from '../src/driver/memory.js';
import { parseConfig } from '../src/runtime/config.js';
import { startInstance } from '../src/runtime/instance.js';
import { realClock } from '../src/runtime/loop.js';
import { createNetns, destroyNetns, hasCommand, isRoot, spawnIn } from '../src/runtime/netns.js';

const STACK_ADDR = '198.18.0.2';
const HOST_ADDR = '198.18.0.1';
const root = fileURLToPath(new URL('../../', import.meta.url));
const APP = join(root, 'examples/hello-http/server.js');
const TSTACK = join(root, 'bin/tstack.js');

function say(line = ''): void { process.stdout.write(`${line}\n`); }
const indent = (s: string) => s.trimEnd().split('\n').map((l) => `  ${l}`).join('\n');

function privileges(): string | null {
  if (process.platform !== 'linux') return 'TAP devices need Linux';
  if (!isRoot()) return 'creating a network namespace and a TAP device needs root (CAP_NET_ADMIN)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  if (!hasCommand('ip')) return 'iproute2 (`ip`) is not installed';
  return null;
}

async function tapDemo(): Promise<void> {
  const ns = createNetns('demo');
  const dir = mkdtempSync(join(tmpdir(), 'tstack-demo-'));
  const config = join(dir, 'tstack.toml');
  writeFileSync(config, `[stack]
poll = "adaptive"

[[port]]
driver = "tap"
ifname = "tstdemo0"
addr = "${STACK_ADDR}/24"
host_addr = "${HOST_ADDR}/24"
netns = "${ns}"
`);
  say(`$ tstack run --config ${config} examples/hello-http/server.js`);
  const app = spawn(process.execPath, [TSTACK, 'run', '--config', config, APP], { env: { ...process.env, PORT: '80' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  app.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; process.stdout.write(indent(d) + '\n'); });
  app.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; process.stderr.write(indent(d) + '\n'); });
  const exited = new Promise<number | null>((resolve) => app.on('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 15_000;
    while (!/listening on/.test(out) && Date.now() < deadline && app.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    if (!/listening on/.test(out)) throw new Error('the app did not start listening');
    say(`\nThe app's listening socket is on tstack: TAP device tstdemo0, stack ${STACK_ADDR}/24, kernel side ${HOST_ADDR}/24 in namespace ${ns}.\n`);
    say(`$ ip netns exec ${ns} ping -c 3 -i 0.2 ${STACK_ADDR}`);
    say(indent((await spawnIn(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', STACK_ADDR], 15_000)).stdout));
    if (hasCommand('curl')) {
      say(`\n$ ip netns exec ${ns} curl -si http://${STACK_ADDR}/`);
      const r = await spawnIn(ns, 'curl', ['-si', '--max-time', '5', `http://${STACK_ADDR}/`], 15_000);
      say(indent(r.stdout.replace(/\r/g, '') || r.stderr));
    } else {
      say('\n(curl is not installed: apt-get install curl to fetch the page from the kernel side)');
    }
  } finally {
    app.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => { app.kill('SIGKILL'); r(null); }, 5000))]);
    destroyNetns(ns);
    rmSync(dir, { recursive: true, force: true });
    say(`\napp exited with code ${code}; cleaned up: TAP device and namespace removed`);
  }
  say('\nTry it by hand (as root):');
  say('  ip netns add tst-demo');
  say('  sed "s/# netns = .*/netns = \\"tst-demo\\"/" examples/tstack.toml > /tmp/tstack.toml');
  say('  npx tstack run --config /tmp/tstack.toml examples/hello-http/server.js &');
  say(`  ip netns exec tst-demo curl http://${STACK_ADDR}/`);
  say(`  ip netns exec tst-demo ab -n 20000 -c 50 http://${STACK_ADDR}/`);
  say('  kill %1; ip netns del tst-demo');
}

async function memoryDemo(): Promise<void> {
  const wire = new MemoryWire({ clock: realClock });
  const conf = (addr: string, ifname: string) => parseConfig(`[stack]\npoll = "interrupt"\n[[port]]\ndriver = "memory"\nifname = "${ifname}"\naddr = "${addr}/24"\n`, '<demo>');
  const server = startInstance(conf(STACK_ADDR, 'mem0'), { memoryWire: wire });
  const client = startInstance(conf(HOST_ADDR, 'mem1'), { memoryWire: wire });
  say(`server stack ${STACK_ADDR} and client stack ${HOST_ADDR}, joined by the in-process memory wire`);
  // What `tstack run` does for a program: patch node:net/node:http so listening sockets go on the stack.
  installPatches({ stack: server, policy: new RoutingPolicy(server.stack) });
  process.env.PORT = '80';
  say('$ (the unmodified examples/hello-http/server.js, loaded with the patches in place)');
  await import(APP);
  await new Promise((r) => setTimeout(r, 100));
  const res = await new Promise<string>((resolve, reject) => {
    const req = http.get({ host: STACK_ADDR, port: 80, path: '/', createConnection: () => tnet.connect({ host: STACK_ADDR, port: 80, stack: client }) as never }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve(`HTTP/${r.httpVersion} ${r.statusCode} ${r.statusMessage}\n${Object.entries(r.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\n')}\n\n${body}`));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
  });
  say(`\nGET http://${STACK_ADDR}/ from the client stack:`);
  say(indent(res));
  uninstallPatches();
  client.stop();
  server.stop();
}

async function main(): Promise<void> {
  const why = privileges();
  if (why === null) await tapDemo();
  else {
    say(`(${why}: running the same app on two in-process stacks instead)\n`);
    await memoryDemo();
  }
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
