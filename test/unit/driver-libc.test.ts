import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as libc from '../../src/driver/sys/libc.js';

const available = libc.libcAvailable();
const skip = available ? false : 'koffi/libc.so.6 not available on this machine';
const FIONREAD = 0x541b;

function withPipe(fn: (r: number, w: number) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const [r, w] = libc.pipe(libc.O_CLOEXEC | libc.O_NONBLOCK);
    try { await fn(r, w); } finally { libc.close(r); libc.close(w); }
  };
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

test('read and write honour the byteOffset of a Uint8Array subarray', { skip }, withPipe((r, w) => {
  const src = new Uint8Array(256);
  for (let i = 0; i < src.length; i++) src[i] = i;
  assert.equal(libc.write(w, src.subarray(150, 160), 10), 10);
  const dst = new Uint8Array(256);
  assert.equal(libc.read(r, dst.subarray(7), 64), 10);
  assert.deepEqual([...dst.subarray(0, 18)], [0, 0, 0, 0, 0, 0, 0, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 0]);
}));

test('writeAt/readAt move bytes at data + offset without a subarray', { skip }, withPipe((r, w) => {
  const src = new Uint8Array(2048);
  for (let i = 0; i < src.length; i++) src[i] = (i * 7) & 0xff;
  assert.equal(libc.writeAt(w, src, 150, 60), 60);
  const dst = new Uint8Array(2048);
  assert.equal(libc.readAt(r, dst, 140, 1000), 60);
  assert.deepEqual(dst.subarray(140, 200), src.subarray(150, 210));
  assert.equal(dst[139], 0);
  assert.equal(dst[200], 0);
  // The cached address is the same array's, so a second use lands in the same place.
  assert.equal(libc.addressOf(dst), libc.addressOf(dst));
  assert.throws(() => libc.readAt(r, dst, 2000, 100), RangeError);
}));

test('addressOf refuses small arrays that V8 may keep on its heap', { skip }, () => {
  assert.throws(() => libc.addressOf(new Uint8Array(16)), RangeError);
});

test('a non-blocking read of an empty pipe returns -1 with errno EAGAIN', { skip }, withPipe((r) => {
  assert.equal(libc.read(r, new Uint8Array(128)), -1);
  assert.equal(libc.errno(), libc.EAGAIN);
  assert.equal(libc.errnoName(libc.EAGAIN), 'EAGAIN');
}));

test('ioctlPtr lets the kernel write into the array (FIONREAD counts queued bytes)', { skip }, withPipe((r, w) => {
  libc.write(w, new Uint8Array(123));
  const n = new Uint8Array(4);
  assert.equal(libc.ioctlPtr(r, FIONREAD, n), 0);
  assert.equal(new DataView(n.buffer).getInt32(0, true), 123);
}));

test('close of a bad descriptor reports EBADF through errno', { skip }, () => {
  assert.equal(libc.close(-1), -1);
  assert.equal(libc.errno(), libc.EBADF);
});

test('pollReadable calls back when the fd turns readable, never while it is empty, and stops on close', { skip }, withPipe(async (r, w) => {
  let calls = 0;
  const buf = new Uint8Array(128);
  const watcher = libc.pollReadable(r, (status) => {
    assert.equal(status, 0);
    calls++;
    while (libc.read(r, buf) > 0) { /* drain until EAGAIN */ }
  });
  try {
    await sleep(30);
    assert.equal(calls, 0, 'no wake-up while empty');
    libc.write(w, new Uint8Array([1, 2, 3]));
    for (let i = 0; i < 100 && calls === 0; i++) await sleep(5);
    assert.equal(calls, 1);
    await sleep(30);
    assert.equal(calls, 1, 'drained: no further wake-ups (no spinning)');
    assert.throws(() => libc.pollReadable(r, () => {}), /already has a watcher/);
    watcher.pause();
    libc.write(w, new Uint8Array([4]));
    await sleep(30);
    assert.equal(calls, 1, 'paused');
    watcher.resume();
    for (let i = 0; i < 100 && calls === 1; i++) await sleep(5);
    assert.equal(calls, 2, 'resumed: the pending byte wakes it');
  } finally {
    watcher.close();
    watcher.close(); // idempotent
  }
  libc.write(w, new Uint8Array([5]));
  await sleep(30);
  assert.equal(calls, 2, 'closed');
}));
