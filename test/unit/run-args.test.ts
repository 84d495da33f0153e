// `tstack run`'s short way (bin/tstack.js → runFast): the well-formed command lines it takes,
// and the ones it leaves to the full parser (help, usage errors) by returning null.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRunArgs } from '../../src/cli/run.js';

test('takes -c/--config FILE and --node-option OPT in any order, then the program and all it is given', () => {
  assert.deepEqual(parseRunArgs(['-c', 'a.toml', 'app.js']), { app: 'app.js', args: [], opts: { config: 'a.toml' } });
  assert.deepEqual(parseRunArgs(['--node-option', '--expose-gc', '--config=b.toml', '--node-option=--no-warnings', 'app.js', '--port', '80', '-c', 'x']),
    { app: 'app.js', args: ['--port', '80', '-c', 'x'], opts: { config: 'b.toml', nodeOption: ['--expose-gc', '--no-warnings'] } });
  assert.deepEqual(parseRunArgs(['--config', 'a.toml', '-c', 'c.toml', 'app.js']), { app: 'app.js', args: [], opts: { config: 'c.toml' } }, 'the last --config wins');
});

test('leaves help, unknown options, a missing config, value or program to the full parser', () => {
  for (const argv of [['--help', 'app.js'], ['-h'], ['app.js'], ['-c'], ['-c', 'a.toml'], ['-ca.toml', 'app.js'], ['--config=', 'app.js'], ['-x', '-c', 'a.toml', 'app.js'], []]) {
    assert.equal(parseRunArgs(argv), null, JSON.stringify(argv));
  }
});
