// `npm start` (dist/examples/demo.js) serves real traffic as root (TAP in a namespace) and,
// without CAP_NET_ADMIN, on two in-process stacks.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hasCommand, requireRoot } from '../helpers/netns.js';

const demo = fileURLToPath(new URL('../../examples/demo.js', import.meta.url));

test('as root: hello-http runs under tstack run on TAP; the kernel pings it and curl fetches the page; all is cleaned up', (t) => {
  if (!requireRoot(t, ['ip', 'ping', 'curl'])) return;
  const r = spawnSync(process.execPath, [demo], { encoding: 'utf8', timeout: 90_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /hello-http: listening on :::80/);
  assert.match(r.stdout, /3 packets transmitted, 3 received/);
  assert.match(r.stdout, /HTTP\/1\.1 200 OK[\s\S]*Hello from tstack/);
  assert.match(r.stdout, /app exited with code 0; cleaned up/);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(left, /tst-demo-/);
});

test('without privileges: the same app on one stack, fetched from a second, over the memory wire', (t) => {
  if (!requireRoot(t, ['runuser'])) return; // needs root only to drop to an unprivileged user
  if (!hasCommand('runuser')) { t.skip('runuser missing'); return; }
  // The checkout must be readable by an unprivileged user (it is in a normal clone).
  if (spawnSync('runuser', ['-u', 'nobody', '--', 'test', '-r', demo]).status !== 0) { t.skip(`${demo} is not readable by nobody`); return; }
  const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, demo], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /needs root/);
  assert.match(r.stdout, /hello-http: listening on :::80/);
  assert.match(r.stdout, /HTTP\/1\.1 200 OK[\s\S]*Hello from tstack/);
});
