// The floors of the house (docs/architecture.md, "Layers"), checked on the sources: an import
// that crosses a floor the wrong way, or a cycle between engine modules, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// dist/test/unit -> the repository root (tests run from dist/, the sources are read from src/).
const root = [resolve(here, '../../..'), resolve(here, '../..')].find((r) => existsSync(join(r, 'src', 'stack', 'stack.ts')))!;
const src = join(root, 'src');

interface Imp { from: string; spec: string; target: string | null; line: number }

function walk(d: string, out: string[] = []): string[] {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (e.endsWith('.ts') && !e.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every static import, re-export and dynamic import with a literal specifier (type-only ones included). */
export function importsOf(file: string, text: string): Imp[] {
  const out: Imp[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(=])import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
  // Comments may quote import lines; strip them first (keeping line numbers).
  const code = text.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' ')).replace(/\/\/[^\n]*/g, '');
  for (let m = re.exec(code); m; m = re.exec(code)) {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    const line = code.slice(0, m.index).split('\n').length;
    const target = spec.startsWith('.') ? resolve(dirname(file), spec).replace(/\.js$/, '.ts') : null;
    out.push({ from: file, spec, target, line });
  }
  return out;
}

const files = walk(src);
const all = files.flatMap((f) => importsOf(f, readFileSync(f, 'utf8')));

/** The floor of a file or import: wire, base, stack, driver, runtime, api, cli, root; node for node:*, pkg for packages. */
function floor(pathOrSpec: string): string {
  if (pathOrSpec.startsWith('node:')) return 'node';
  if (!pathOrSpec.startsWith('/')) return 'pkg';
  const rel = relative(src, pathOrSpec);
  if (rel.startsWith('..')) return 'outside';
  const top = rel.split(/[\\/]/)[0]!;
  return top.endsWith('.ts') ? 'root' : top;
}

// Which floors each floor may import (its own included).
const allowed: Record<string, string[]> = {
  wire: ['wire'],
  base: ['base', 'wire'],
  stack: ['stack', 'base', 'wire'],
  driver: ['driver', 'base', 'wire', 'node', 'pkg'],
  runtime: ['runtime', 'driver', 'stack', 'base', 'wire', 'node', 'pkg'],
  api: ['api', 'runtime', 'stack', 'base', 'wire', 'node', 'pkg'],
  cli: ['cli', 'api', 'runtime', 'driver', 'stack', 'base', 'wire', 'node', 'pkg'],
  root: ['api', 'runtime', 'driver', 'stack', 'base', 'wire'],
};

function violations(imps: Imp[]): string[] {
  const bad: string[] = [];
  for (const i of imps) {
    const from = floor(i.from);
    const to = i.target ? floor(i.target) : floor(i.spec);
    const ok = allowed[from];
    if (!ok) { bad.push(`${relative(root, i.from)}: unknown floor '${from}'`); continue; }
    if (!ok.includes(to)) bad.push(`${relative(root, i.from)}:${i.line} (${from}) imports ${i.spec} (${to})`);
  }
  return bad;
}

/** Import cycles among the given files (each reported once, as a path). */
function cycles(imps: Imp[], within: (f: string) => boolean): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const i of imps) {
    if (!within(i.from) || !i.target || !within(i.target)) continue;
    let s = edges.get(i.from);
    if (!s) edges.set(i.from, s = new Set());
    s.add(i.target);
  }
  // Tarjan's strongly connected components: any component of more than one file is a cycle.
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), on = new Set<string>(), stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); comp.push(relative(src, w)); } while (w !== v);
      if (comp.length > 1 || edges.get(v)?.has(v)) out.push(comp.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return out;
}

test('no import crosses a floor the wrong way (engine and wire are sans-I/O, drivers know no engine)', () => {
  assert.ok(files.length > 50, `found the sources under ${src}`);
  assert.deepEqual(violations(all), []);
});

// The TCP module's files still import each other in a ring (being untangled into tcp/demux,
// lifecycle, tunables, counters): the one cycle tolerated until then, and no other.
const KNOWN_TCP_CYCLE = ['input', 'listen', 'output', 'prr', 'rack', 'socket', 'tcb', 'tcp', 'timers', 'timewait'].map((f) => `stack/tcp/${f}.ts`);

test('the engine (src/stack) has no import cycle', () => {
  const stackDir = join(src, 'stack') + '/';
  const found = cycles(all, (f) => f.startsWith(stackDir)).filter((c) => c.join() !== KNOWN_TCP_CYCLE.join());
  assert.deepEqual(found, []);
});

test('the checker catches a wrong-way import and a cycle', () => {
  const a = join(src, 'stack', 'a.ts'), b = join(src, 'stack', 'b.ts'), d = join(src, 'driver', 'x.ts');
  const imps = [
    ...importsOf(a, "import { b } from './b.js';\nimport { readFileSync } from 'node:fs';"),
    ...importsOf(b, "import type { A } from './a.js';"),
    ...importsOf(d, "export { Stack } from '../stack/stack.js';\nconst m = await import('../runtime/loop.js');"),
    ...importsOf(join(src, 'wire', 'y.ts'), "import { PacketBuffer } from '../base/pktbuf.js';"),
  ];
  assert.deepEqual(violations(imps).map((v) => v.replace(/^.*\((\w+)\) imports (\S+).*$/, '$1->$2')),
    ['stack->node:fs', 'driver->../stack/stack.js', 'driver->../runtime/loop.js', 'wire->../base/pktbuf.js']);
  assert.deepEqual(cycles(imps, (f) => f.startsWith(join(src, 'stack'))), [['stack/a.ts', 'stack/b.ts']]);
});
