// bench/http.ts reads wrk's summary: requests/s, completed requests, latency percentiles in any
// unit wrk prints, socket errors and non-2xx responses.
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk } from '../../bench/http.js';

const SAMPLE = `Running 5s test @ http://198.18.94.2:8080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.33ms    2.30ms  33.52ms   86.71%
    Req/Sec    23.50k     4.50k   30.17k    88.00%
  Latency Distribution
     50%  850.00us
     75%    2.95ms
     90%    4.93ms
     99%    1.10s
  117041 requests in 5.01s, 18.64MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:  23361.77
Transfer/sec:      3.72MB
`;

test('parseWrk reads requests/s, requests, p50/p99 in ms, socket errors and non-2xx', () => {
  assert.deepEqual(parseWrk(SAMPLE), { rps: 23361.77, requests: 117041, p50: 0.85, p99: 1100, socketErrors: 10, non2xx: 7 });
});

test('parseWrk: a clean run has 0 errors; output without the requests/s line is null', () => {
  const clean = SAMPLE.replace(/ {2}Socket errors.*\n/, '').replace(/ {2}Non-2xx.*\n/, '');
  const w = parseWrk(clean)!;
  assert.equal(w.socketErrors, 0);
  assert.equal(w.non2xx, 0);
  assert.equal(parseWrk('unable to connect to 198.18.94.2:8080 Connection refused\n'), null);
});
