// The transports' ready list (src/stack/ready.ts): each socket once per delivery, in the order
// first marked; marks made by callbacks join the pass; a throwing callback loses nothing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ReadyList } from '../../src/stack/ready.js';

interface Sock { name: string; ready: boolean; events: number }
const sock = (name: string): Sock => ({ name, ready: false, events: 0 });

test('a socket marked several times is delivered once, in the order of its first mark', () => {
  const seen: string[] = [];
  const list = new ReadyList<Sock>((s) => seen.push(s.name));
  const a = sock('a'), b = sock('b');
  list.mark(a); list.mark(b); list.mark(a); list.mark(b);
  assert.equal(list.pending, true);
  list.deliver();
  assert.deepEqual(seen, ['a', 'b']);
  assert.equal(list.pending, false);
  assert.equal(a.ready || b.ready, false);
});

test('marks made by a callback join the same pass, and a nested deliver() returns at once', () => {
  const seen: string[] = [];
  const a = sock('a'), b = sock('b');
  const list: ReadyList<Sock> = new ReadyList<Sock>((s) => {
    seen.push(s.name);
    if (s === a && seen.length === 1) { list.mark(b); list.mark(a); list.deliver(); }
  });
  list.mark(a);
  list.deliver();
  assert.deepEqual(seen, ['a', 'b', 'a'], 'a raised events on itself and on b from its callback');
  assert.equal(list.pending, false);
});

test('a callback that throws: the sockets not reached, and what the thrower still has, wait for the next delivery', () => {
  const seen: string[] = [];
  const a = sock('a'), b = sock('b'), c = sock('c');
  let boom = true;
  const list = new ReadyList<Sock>((s) => {
    seen.push(s.name);
    if (s === b && boom) { boom = false; throw new Error('callback'); }
    s.events = 0;
  }, (s) => s.events !== 0);
  for (const s of [a, b, c]) { s.events = 1; list.mark(s); }
  assert.throws(() => list.deliver(), /callback/);
  assert.deepEqual(seen, ['a', 'b']);
  assert.equal(list.pending, true);
  list.deliver();
  assert.deepEqual(seen, ['a', 'b', 'c', 'b']);
  assert.equal(list.pending, false);
});

test('clear() forgets every socket', () => {
  const list = new ReadyList<Sock>(() => assert.fail('nothing to deliver'));
  const a = sock('a');
  list.mark(a);
  list.clear();
  assert.equal(a.ready, false);
  list.deliver();
});
