// `node --import tstack/register app.js` (and `tstack run`, which does the same): starts the
// default instance from TSTACK_CONFIG and patches node:net, node:http, node:tls and node:dgram
// so the unmodified program's sockets live on the stack (src/api/patch-node.ts; the routing
// policy is src/api/register-policy.ts; docs/run.md explains both).
//
// Only the main thread of the first process is patched: a worker thread, or a child process
// that inherited `--import` (child_process.fork, cluster), would try to open the same devices
// again; TSTACK_REGISTER_PID, inherited through the environment, tells a child it is one.
// TSTACK_DEBUG=1 prints each placement decision on stderr.
import { isMainThread } from 'node:worker_threads';
import { dieWithRunParent } from '../runtime/lifetime.js';
import { getDefaultInstance } from './runtime.js';
import { installPatches } from './patch-node.js';
import { RoutingPolicy } from './register-policy.js';
import { ConfigError, loadConfig } from '../runtime/config.js';

/**
 * Under `tstack run` (which reads no config itself): a bad config, or one without a port,
 * ends here with the message `tstack run` used to print and exit code 2, before the program runs.
 */
function checkRunConfig(): void {
  const shown = process.env['TSTACK_RUN_CONFIG'];
  const file = process.env['TSTACK_CONFIG'];
  delete process.env['TSTACK_RUN_CONFIG'];
  if (shown === undefined || !file) return;
  try {
    if (loadConfig(file).ports.length === 0) {
      process.stderr.write(`tstack: ${shown}: no [[port]] configured: the program would have no network to run on\n`);
      process.exit(2);
    }
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`tstack: ${e.message}\n`);
    process.exit(2);
  }
}

function start(): void {
  checkRunConfig();
  let inst;
  try {
    inst = getDefaultInstance();
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    // Nothing of the program has run yet. As the `tstack` command: 2 for a missing or bad
    // configuration, 1 for a runtime failure (say, no permission to create the TAP device).
    const cause = (e as { cause?: unknown }).cause;
    process.exit(!process.env['TSTACK_CONFIG'] || cause instanceof ConfigError ? 2 : 1);
  }
  const debug = !!process.env['TSTACK_DEBUG'];
  installPatches({
    stack: inst,
    policy: new RoutingPolicy(inst.stack, inst.config.api),
    ...(debug && { onDecision: (what: string, target: string, where: string) => process.stderr.write(`tstack: ${what} ${target} -> ${where}\n`) }),
  });
}

const owner = process.env['TSTACK_REGISTER_PID'];
if (isMainThread && (owner === undefined || owner === String(process.pid))) {
  process.env['TSTACK_REGISTER_PID'] = String(process.pid);
  dieWithRunParent();
  start();
}
