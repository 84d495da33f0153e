// The Linux answers test/unit/posix-ipv6.test.ts holds tstack/posix to (test/fixtures/
// posix-ipv6-linux.ts) are this kernel's: scripts/posix-ipv6-linux.py runs the same 70 calls on
// kernel sockets in a namespace this file creates, and every result must equal the recorded one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createNetns, destroyAllNetns, exec, requireRoot } from '../helpers/netns.js';
import { LINUX_POSIX6 } from '../fixtures/posix-ipv6-linux.js';

after(() => destroyAllNetns());

test('the recorded Linux answers for the AF_INET6 POSIX cases are what this kernel answers', (t) => {
  if (!requireRoot(t, ['ip', 'python3'])) return;
  const ns = createNetns('posix6');
  const script = fileURLToPath(new URL('../../../scripts/posix-ipv6-linux.py', import.meta.url));
  const kernel = JSON.parse(exec(ns, 'python3', [script], { timeoutMs: 30_000 })) as Record<string, string>;
  assert.equal(Object.keys(kernel).length, 70);
  assert.deepEqual(kernel, { ...LINUX_POSIX6 });
});
