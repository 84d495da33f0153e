#!/usr/bin/env node
// The installed `tstack` command: the compiled CLI lives in dist/ (npm run build).
// `tstack run` takes a short way (src/cli/run.ts: runFast): it is on the restart path.
if (process.argv[2] === 'run') {
  const { runFast } = await import('../dist/src/cli/run.js');
  const code = await runFast(process.argv.slice(3));
  if (code !== null) process.exitCode = code;
  else await (await import('../dist/src/cli/main.js')).main();
} else {
  await (await import('../dist/src/cli/main.js')).main();
}
