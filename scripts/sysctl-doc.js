#!/usr/bin/env node
// Prints docs/sysctl.md from the stack's own sysctl registry (the single source of truth).
// Usage: node scripts/sysctl-doc.js > docs/sysctl.md   (a test checks the file is current)
import { Stack } from '../dist/src/stack/stack.js';
import { VirtualClock } from '../dist/src/base/time.js';

export function sysctlDoc() {
  const stack = new Stack({ clock: new VirtualClock() });
  const rows = stack.sysctl.list().map(({ name, def }) => {
    const range = def.type === 'int' && (def.min !== undefined || def.max !== undefined) ? `${def.min ?? ''}..${def.max ?? ''}` : def.choices ? def.choices.join(' \\| ') : '';
    return `| \`${name}\` | ${def.type} | \`${JSON.stringify(def.default)}\` | ${range} | ${def.description.replace(/\|/g, '\\|')} |`;
  });
  return [
    '# Sysctl tunables',
    '',
    'Set them in `tstack.toml` under `[sysctl]` (`"net.inet.tcp.msl" = 10000`). Names follow FreeBSD where',
    'one exists. This file is generated from the stack\'s registry by `node scripts/sysctl-doc.js`.',
    '',
    '| name | type | default | range | meaning |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(sysctlDoc());
