// The package as a user gets it: `npm pack` of this checkout (after the build), `npm install` of
// the tarball into an empty project, then `import('tstack')` (the root exports, with its types
// file present), every subpath in package.json's "exports", and the `tstack` bin. Catches a
// file missing from "files", an export pointing at nothing, or a root that needs a dev-only module.
// Needs npm and the registry (for the dependencies' metadata; their tarballs come from the cache
// `npm ci` filled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/run-app.js';

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('npm pack, npm install of the tarball: import("tstack"), every exported subpath and the bin work', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tstack-pack-'));
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; exports: Record<string, unknown> };
    const tgz = run('npm', ['pack', '--silent', '--pack-destination', dir], ROOT).trim().split('\n').pop()!;
    assert.equal(tgz, `tstack-${pkg.version}.tgz`);
    const app = join(dir, 'app');
    run('mkdir', ['-p', app], dir);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }));
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, tgz)], app);

    const root = join(app, 'node_modules', 'tstack');
    assert.ok(existsSync(join(root, 'dist', 'src', 'index.d.ts')), 'the root types are in the package');
    const out = run(process.execPath, ['--input-type=module', '-e', `
      const m = await import('tstack');
      const net = await import('tstack/net');
      const dgram = await import('tstack/dgram');
      const posix = await import('tstack/posix');
      console.log(JSON.stringify({
        root: typeof m.Stack, rootKeys: Object.keys(m).length,
        net: typeof net.createServer, dgram: typeof dgram.createSocket, posix: Object.keys(posix).length,
        register: import.meta.resolve('tstack/register'),
      }));`], app);
    const r = JSON.parse(out) as Record<string, unknown>;
    assert.equal(r['root'], 'function', 'Stack from the root');
    assert.ok((r['rootKeys'] as number) > 10, out);
    assert.equal(r['net'], 'function');
    assert.equal(r['dgram'], 'function');
    assert.ok((r['posix'] as number) > 0);
    assert.match(String(r['register']), /node_modules\/tstack\/dist\/src\/api\/register\.js$/);
    for (const sub of Object.keys(pkg.exports)) {
      const spec = sub === '.' ? 'tstack' : `tstack/${sub.slice(2)}`;
      run(process.execPath, ['--input-type=module', '-e', `import.meta.resolve(${JSON.stringify(spec)})`], app);
    }
    const help = run(join(app, 'node_modules', '.bin', 'tstack'), ['--help'], app);
    assert.match(help, /Usage: tstack/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
