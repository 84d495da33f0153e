// docs/sysctl.md is generated from the registry; this keeps it from drifting.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

test('docs/sysctl.md lists every sysctl the stack defines, as generated', async () => {
  const root = new URL('../../../', import.meta.url);
  const { sysctlDoc } = await import(new URL('scripts/sysctl-doc.js', root).href);
  const current = readFileSync(new URL('docs/sysctl.md', root), 'utf8');
  assert.equal(current, sysctlDoc(), 'run: node scripts/sysctl-doc.js > docs/sysctl.md');
});
