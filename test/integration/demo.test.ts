// `npm start` (dist/examples/demo.js) serves real traffic as root (TAP in a namespace) and,
// without CAP_NET_ADMIN, on two in-process stacks.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hasCommand, requireRoot } from '../helpers/netns.js';

const demo = fileURLToPath(new URL('../../examples/demo.js', import.meta.url));

test('as root: the kernel pings the stack and gets UDP echoes over TAP, then everything is cleaned up', (t) => {
  if (!requireRoot(t, ['ip', 'ping', 'python3'])) return;
  const r = spawnSync(process.execPath, [demo], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /3 packets transmitted, 3 received/);
  assert.equal((r.stdout.match(/echoed 'hello tstack #\d'/g) ?? []).length, 3, r.stdout);
  assert.match(r.stdout, /cleaned up/);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(left, /tst-demo-/);
});

test('without privileges: the same service on two stacks joined by the memory wire', (t) => {
  if (!requireRoot(t, ['runuser'])) return; // needs root only to drop to an unprivileged user
  if (!hasCommand('runuser')) { t.skip('runuser missing'); return; }
  // The checkout must be readable by an unprivileged user (it is in a normal clone).
  if (spawnSync('runuser', ['-u', 'nobody', '--', 'test', '-r', demo]).status !== 0) { t.skip(`${demo} is not readable by nobody`); return; }
  const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, demo], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /needs root/);
  assert.equal((r.stdout.match(/ping reply from 198\.18\.0\.2/g) ?? []).length, 3, r.stdout);
  assert.match(r.stdout, /echoed "hello tstack"/);
});
