// Moves TypeScript files and rewrites every relative import that points at them (and the moved
// files' own relative imports). Usage: node scripts/move.mjs old.ts=new.ts ...
import { readFileSync, writeFileSync, readdirSync, statSync, mkdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, relative, resolve, posix } from 'node:path';

const root = process.cwd();
const moves = new Map();
for (const a of process.argv.slice(2)) {
  const [from, to] = a.split('=');
  moves.set(resolve(root, from), resolve(root, to));
}
function walk(d, out) {
  for (const e of readdirSync(d)) {
    if (e === 'node_modules' || e === 'dist' || e.startsWith('.')) continue;
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|mts|js|mjs)$/.test(e)) out.push(p);
  }
  return out;
}
const files = ['src', 'test', 'bench', 'examples', 'scripts'].filter((d) => existsSync(join(root, d))).flatMap((d) => walk(join(root, d), []));
const re = /((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+)(['"])/g;
for (const f of files) {
  const src = readFileSync(f, 'utf8');
  const newF = moves.get(f) ?? f;
  let changed = false;
  const out = src.replace(re, (m, pre, spec, post) => {
    const js = resolve(dirname(f), spec);
    const ts = js.replace(/\.js$/, '.ts');
    const target = moves.get(ts) ? moves.get(ts).replace(/\.ts$/, '.js') : js;
    let rel = relative(dirname(newF), target).split('\\').join('/');
    if (!rel.startsWith('.')) rel = './' + rel;
    if (rel !== spec) changed = true;
    return pre + rel + post;
  });
  if (changed) writeFileSync(f, out);
}
for (const [from, to] of moves) {
  mkdirSync(dirname(to), { recursive: true });
  execFileSync('git', ['mv', relative(root, from), relative(root, to)]);
}
