// examples/hello-http under `tstack run`: an unmodified node:http server whose listening socket
// is on the stack (TAP, kernel side in a test namespace). curl gets the body, ApacheBench's
// 20,000 requests over 50 connections all succeed, and SIGTERM ends the program with exit 0
// and the device gone.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from '../helpers/netns.js';
import { ab, curl, deviceExists, startApp, stopAllApps } from '../helpers/run-app.js';

after(stopAllApps);

describe('tstack run examples/hello-http/server.js', () => {
  test('serves curl and ab -n 20000 -c 50 from the kernel namespace with 0 failed, then exits 0 on SIGTERM', async (t) => {
    if (!requireRoot(t, ['ip', 'curl', 'ab'])) return;
    const app = await startApp({
      prefix: 'run-hello', subnet: 141, app: 'examples/hello-http/server.js', env: { PORT: '8080' },
      ready: /hello-http: listening on :::8080/,
    });
    const url = `http://${app.stackIp}:8080/`;

    const body = await curl(app.ns, [url]);
    assert.equal(body, 'Hello from tstack\n');
    const head = await curl(app.ns, ['-i', url]);
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\ncontent-length: 18\r\n/i);

    const r = await ab(app.ns, url, 20000, 50);
    assert.equal(r.complete, 20000, r.raw);
    assert.equal(r.failed, 0, r.raw);
    assert.equal(r.non2xx, 0, r.raw);
    t.diagnostic(`ab -n 20000 -c 50: ${r.rps} requests/s`);

    app.child.kill('SIGTERM');
    const exit = await app.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, app.output());
    assert.equal(deviceExists(app.ns, app.ifname), false, 'the TAP device is gone');
    await app.stop();
  });
});
