// Unmodified express and fastify apps under `tstack run` (test/fixtures/apps/): their
// listening sockets are on the stack; curl in the kernel namespace GETs and POSTs JSON, and
// ApacheBench's 2,000 requests over 20 connections all succeed.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from '../helpers/netns.js';
import { ab, curl, startApp, stopAllApps } from '../helpers/run-app.js';

after(stopAllApps);

const POST_BODY = JSON.stringify({ name: 'tstack', items: [1, 2, 3], nested: { ok: true } });

for (const [name, subnet] of [['express', 142], ['fastify', 143]] as const) {
  describe(`tstack run test/fixtures/apps/${name}-app.js`, () => {
    test(`${name}: curl GET and POST JSON, and ab -n 2000 -c 20, from the kernel namespace`, async (t) => {
      if (!requireRoot(t, ['ip', 'curl', 'ab'])) return;
      const app = await startApp({
        prefix: `run-${name}`, subnet, app: `test/fixtures/apps/${name}-app.js`, env: { PORT: '3000' },
        ready: new RegExp(`${name}-app: listening on (0\\.0\\.0\\.0|::):3000`), // fastify names 0.0.0.0; express listens on Node's default ::
      });
      const base = `http://${app.stackIp}:3000`;

      const hello = JSON.parse(await curl(app.ns, [`${base}/hello`])) as { hello: string; remote: string };
      assert.equal(hello.hello, name);
      // express listens on Node's default `::` (IPv4 peers IPv4-mapped, as on the kernel);
      // fastify on 0.0.0.0.
      assert.equal(hello.remote, name === 'express' ? `::ffff:${app.hostIp}` : app.hostIp, 'the peer is the kernel side of the TAP device');

      const out = await curl(app.ns, ['-w', '\\n%{http_code}', '-H', 'content-type: application/json', '--data-binary', POST_BODY, `${base}/echo`]);
      const [json, code] = out.split('\n');
      assert.equal(code, '201');
      assert.deepEqual(JSON.parse(json!), { got: JSON.parse(POST_BODY), items: 3 });

      const missing = await curl(app.ns, ['-o', '/dev/null', '-w', '%{http_code}', `${base}/nope`]);
      assert.equal(missing, '404');

      const r = await ab(app.ns, `${base}/hello`, 2000, 20);
      assert.equal(r.complete, 2000, r.raw);
      assert.equal(r.failed, 0, r.raw);
      assert.equal(r.non2xx, 0, r.raw);
      t.diagnostic(`ab -n 2000 -c 20: ${r.rps} requests/s`);

      app.child.kill('SIGTERM');
      assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
      await app.stop();
    });
  });
}
