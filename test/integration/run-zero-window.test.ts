// The zero-window-and-vanish attack against an unmodified node:http server under `tstack run`:
// 200 kernel clients ask for a 1 MB body, read none of it (their kernels advertise a zero
// window) and vanish (their traffic is blackholed, then the process exits). The stack's persist
// timer gives up (net.inet.tcp.maxpersistidle, shortened here to 10 s so the test takes about a
// minute), the server sees ETIMEDOUT on every socket, and the memory they pinned is released.
//
// The baseline is the server's memory after serving the same load normally (200 concurrent
// 1 MB downloads read to the end): what the process holds in steady state, its buffer pools
// warmed, so the comparison measures what abandoned connections pin, not first-use growth.
// MALLOC_MMAP_THRESHOLD_ fixes glibc's mmap threshold (it otherwise rises after the first freed
// 1 MB body, so later bodies come from the heap and their pages stay in RSS after free): with
// it the process's RSS follows what the program holds, which is what this test is about.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireRoot, run } from '../helpers/netns.js';
import { curl, runIn, startApp, stopAllApps } from '../helpers/run-app.js';

after(stopAllApps);

const CLIENTS = fileURLToPath(new URL('../../../test/fixtures/peers/zero_window_clients.py', import.meta.url));
const N = 200;

interface Stats { connections: number; rss: number; heapUsed: number; external: number; arrayBuffers: number }

describe('zero window and vanish against node:http under tstack run', () => {
  test(`${N} clients that stall a 1 MB response and vanish are dropped; memory returns to within 10% of baseline`, { timeout: 240_000 }, async (t) => {
    if (!requireRoot(t, ['ip', 'curl', 'python3', 'nft'])) return;
    const app = await startApp({
      prefix: 'run-zwin', subnet: 181, app: 'test/fixtures/apps/big-body-server.js', env: { PORT: '8080', MALLOC_MMAP_THRESHOLD_: '131072' },
      nodeOptions: ['--expose-gc'], ready: /big-body: listening on 8080/,
      extraConfig: `
[sysctl]
"net.inet.tcp.maxpersistidle" = 10000
"net.inet.tcp.persmax" = 2000
`,
    });
    const base = `http://${app.stackIp}:8080`;
    const stats = async (): Promise<Stats> => JSON.parse(await curl(app.ns, [`${base}/stats`])) as Stats;
    // Closed sockets' buffers are not always collectable at the first GC: the least of a few samples.
    const settled = async (): Promise<Stats> => {
      let best = await stats();
      for (let i = 0; i < 4; i++) {
        await sleep(300);
        const s = await stats();
        if (s.arrayBuffers < best.arrayBuffers) best = { ...s, rss: Math.min(s.rss, best.rss) };
      }
      return best;
    };
    const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

    // A normal load of the same shape, twice, then the baseline.
    for (let i = 0; i < 2; i++) {
      const r = await runIn(app.ns, 'python3', [CLIENTS, app.stackIp, '8080', String(N), 'read'], { timeoutMs: 150_000 });
      assert.equal(r.code, 0, `normal downloads: ${r.stdout}${r.stderr}`);
    }
    const baseline = await settled();
    assert.equal(baseline.connections, 0);

    // The attackers, from their own address so that only their traffic is blackholed.
    const evil = `198.18.181.3`;
    run('ip', ['-n', app.ns, 'addr', 'add', `${evil}/24`, 'dev', app.ifname]);
    const attack = spawn('ip', ['netns', 'exec', app.ns, 'python3', CLIENTS, app.stackIp, '8080', String(N), 'hold', evil], { stdio: ['pipe', 'pipe', 'pipe'] });
    let aout = '';
    attack.stdout.setEncoding('utf8').on('data', (d: string) => { aout += d; });
    attack.stderr.setEncoding('utf8').on('data', (d: string) => { aout += d; });
    const attackExit = new Promise((r) => attack.on('close', r));
    for (let i = 0; i < 600 && !aout.includes('holding'); i++) await sleep(100);
    assert.match(aout, /holding/, aout);
    const pinned = await stats();
    assert.equal(pinned.connections, N, 'every stalled response is still open');

    // Vanish: nothing from or to the attackers' address passes any more, then they exit.
    run('ip', ['netns', 'exec', app.ns, 'nft', '-f', '-'], { input: `table inet zwin {
  chain in { type filter hook input priority 0; ip daddr ${evil} drop; }
  chain out { type filter hook output priority 0; ip saddr ${evil} drop; }
}` });
    attack.stdin.end();
    await attackExit;
    const vanished = Date.now();

    let after: Stats = pinned;
    while (Date.now() - vanished < 60_000) {
      await sleep(2000);
      after = await stats();
      if (after.connections === 0) break;
    }
    const gaveUp = Date.now() - vanished;
    assert.equal(after.connections, 0, `connections left ${gaveUp} ms after the peers vanished`);
    after = await settled();
    t.diagnostic(`baseline rss ${mb(baseline.rss)} (arrayBuffers ${mb(baseline.arrayBuffers)}); pinned ${mb(pinned.rss)} `
      + `(arrayBuffers ${mb(pinned.arrayBuffers)}); ${gaveUp} ms after vanishing: ${mb(after.rss)} (arrayBuffers ${mb(after.arrayBuffers)})`);
    // What the connections pinned (response bodies, socket rings) is buffer memory: it comes
    // back to the baseline. The process's RSS, which the allocator returns less eagerly, too.
    assert.ok(pinned.arrayBuffers > baseline.arrayBuffers + N * 1048576 * 0.9, 'the attack did pin the bodies while the peers were there');
    assert.ok(after.arrayBuffers <= baseline.arrayBuffers * 1.1, `buffers ${mb(after.arrayBuffers)} within 10% of the baseline ${mb(baseline.arrayBuffers)}`);
    assert.ok(after.rss <= baseline.rss * 1.1, `rss ${mb(after.rss)} within 10% of the baseline ${mb(baseline.rss)}`);

    // And the server still serves.
    assert.equal((await curl(app.ns, [`${base}/stats`])).includes('"connections":0'), true);
    await app.stop();
  });
});
