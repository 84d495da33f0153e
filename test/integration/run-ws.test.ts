// An unmodified ws echo server under `tstack run` (test/fixtures/apps/ws-echo.js); a ws client
// on the kernel's sockets inside the namespace sends 100 messages (text and binary) and gets
// each one back, in order.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from '../helpers/netns.js';
import { runIn, startApp, stopAllApps } from '../helpers/run-app.js';

after(stopAllApps);

describe('tstack run test/fixtures/apps/ws-echo.js', () => {
  test('echoes 100 WebSocket messages to a kernel-side ws client', async (t) => {
    if (!requireRoot(t, ['ip'])) return;
    const app = await startApp({
      prefix: 'run-ws', subnet: 144, app: 'test/fixtures/apps/ws-echo.js', env: { PORT: '8080' },
      ready: /ws-echo: listening on :::8080/,
    });
    const r = await runIn(app.ns, process.execPath, ['test/fixtures/apps/ws-client.js', `ws://${app.stackIp}:8080/`, '100']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n--- app:\n${app.output()}`);
    assert.match(r.stdout, /ws-client: 100 echoed/);

    app.child.kill('SIGTERM');
    assert.deepEqual(await app.exited, { code: 0, signal: null }, app.output());
    await app.stop();
  });
});
