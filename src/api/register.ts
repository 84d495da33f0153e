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
import { fileURLToPath } from 'node:url';
import { dieWithRunParent } from '../runtime/lifetime.js';
import { getDefaultInstance } from './runtime.js';
import { installPatches } from './patch-node.js';
import { RoutingPolicy } from './register-policy.js';
import { ConfigError, loadConfig, loadRunConfig } from '../runtime/config.js';
import { workerFromEnv } from '../runtime/worker.js';
import { Cluster } from '../runtime/cluster.js';

/**
 * Under `tstack run` (which reads no config itself): a bad config, or one without a port,
 * ends here with the message `tstack run` used to print and exit code 2, before the program runs.
 */
function checkRunConfig(): void {
  const shown = process.env['TSTACK_RUN_CONFIG'];
  const file = process.env['TSTACK_CONFIG'];
  delete process.env['TSTACK_RUN_CONFIG'];
  if (shown === undefined || !file) return;
  const r = loadRunConfig(file, shown);
  if (typeof r === 'string') {
    process.stderr.write(`tstack: ${r}\n`);
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

/**
 * `[stack] workers` > 1 without `tstack run`: this process becomes the supervisor (as `tstack
 * run` would be) and runs the program once per worker; the program never runs here. Returns
 * the exit code, or null when this process is to run the program itself.
 */
async function supervise(): Promise<number | null> {
  const file = process.env['TSTACK_CONFIG'];
  if (!file || workerFromEnv() || process.env['TSTACK_RUN_PID'] !== undefined) return null;
  let workers = 1;
  let config;
  try { config = loadConfig(file); workers = config.stack.workers; } catch { return null; /* start() reports it */ }
  if (workers <= 1) return null;
  const app = process.argv[1];
  if (!app) { process.stderr.write('tstack: [stack] workers > 1 needs a program file to run once per worker\n'); return 2; }
  // Our own --import goes again on each worker (Cluster adds it); other node options pass on.
  const nodeOptions: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const a = process.execArgv[i]!;
    if (a === '--import' && /register/.test(process.execArgv[i + 1] ?? '')) { i++; continue; }
    if (a.startsWith('--import=') && /register/.test(a)) continue;
    nodeOptions.push(a);
  }
  return await new Cluster({
    config, configPath: file, app, args: process.argv.slice(2), nodeOptions,
    preload: fileURLToPath(import.meta.url),
    forwarded: ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'], fromTerminal: ['SIGINT', 'SIGQUIT'],
  }).run();
}

const owner = process.env['TSTACK_REGISTER_PID'];
if (isMainThread && (owner === undefined || owner === String(process.pid))) {
  const code = owner === undefined ? await supervise() : null;
  if (code !== null) process.exit(code);
  process.env['TSTACK_REGISTER_PID'] = String(process.pid);
  dieWithRunParent();
  start();
}
