// The device mark: `tstack:<pid>:<start time>` names a live owner only while that very process
// runs (a recycled pid with another start time is no owner; a dead pid is none).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ownerAlive, ownerTag, parseOwner } from '../../src/driver/ownership.js';

test('this process marks devices tstack:<pid>:<start>, and is alive by that mark', (t) => {
  if (process.platform !== 'linux') { t.skip('reads /proc'); return; }
  const tag = ownerTag();
  assert.match(tag, new RegExp(`^tstack:${process.pid}:\\d+$`));
  const o = parseOwner(tag)!;
  assert.equal(o.pid, process.pid);
  assert.equal(ownerAlive(o), true);
  assert.equal(ownerAlive({ pid: process.pid, start: `${Number(o.start) + 1}` }), false, 'same pid, other start time: a recycled pid');
});

test('a process that has exited is no owner; aliases that are not marks parse as none', (t) => {
  if (process.platform !== 'linux') { t.skip('reads /proc'); return; }
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const pid = Number(r.stdout.trim());
  assert.equal(ownerAlive({ pid, start: '1' }), false);
  for (const alias of ['', 'uplink', 'tstack:12', 'tstack:x:1', 'xtstack:1:2']) assert.equal(parseOwner(alias), null, alias);
  assert.deepEqual(parseOwner(' tstack:42:777 '), { pid: 42, start: '777' });
});
