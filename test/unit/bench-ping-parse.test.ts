// The ping benches read iputils ping's output: the summary line and each reply's time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePing } from '../../bench/driver-ping.js';

const OUT = `PING 198.18.86.2 (198.18.86.2) 56(84) bytes of data.
64 bytes from 198.18.86.2: icmp_seq=1 ttl=64 time=0.310 ms
64 bytes from 198.18.86.2: icmp_seq=2 ttl=64 time=0.120 ms
64 bytes from 198.18.86.2: icmp_seq=3 ttl=64 time=4.50 ms
64 bytes from 198.18.86.2: icmp_seq=4 ttl=64 time=0.200 ms

--- 198.18.86.2 ping statistics ---
5 packets transmitted, 4 received, 20% packet loss, time 41ms
rtt min/avg/max/mdev = 0.120/1.282/4.500/1.860 ms
`;

test('parsePing reads the summary and takes the median and p99 from the per-reply times', () => {
  const s = parsePing(OUT);
  assert.deepEqual(s, { sent: 5, received: 4, min: 0.12, avg: 1.282, max: 4.5, mdev: 1.86, p50: 0.31, p99: 4.5 });
});

test('parsePing without per-reply lines (ping -q) gives NaN percentiles, and null without a summary', () => {
  const q = parsePing(OUT.split('\n').filter((l) => !l.includes('time=')).join('\n'));
  assert.ok(q && Number.isNaN(q.p50) && Number.isNaN(q.p99) && q.avg === 1.282);
  assert.equal(parsePing('ping: connect: Network is unreachable\n'), null);
});
