// `tstack run --config FILE app.js [args…]`: runs an unmodified Node program with its
// node:net / node:dgram sockets (and so http, express, fastify, undici, ws…) on the stack.
// It starts `node --import <register.js> app.js args…` with TSTACK_CONFIG set; the child checks
// the config (a bad one, or one without a [[port]], exits 2 before the program runs) and
// brings the stack up in its own thread (src/api/register.ts). stdio is shared, signals are
// passed on, and the child's exit status becomes ours.
//
// The child is on the restart path (after a crash the program must serve again within a
// second), so this process loads as little as it can: bin/tstack.js hands a well-formed
// `tstack run` straight to runFast() (node: builtins only, no commander, no engine), and
// the config is read once, by the child.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';

export interface RunOptions { config: string; nodeOption?: string[] }

/** Signals passed on to the program (the ones a terminal or a supervisor sends). */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
const FROM_TERMINAL: NodeJS.Signals[] = ['SIGINT', 'SIGQUIT'];

export function register(program: Command): void {
  program.command('run')
    .description('run a Node program with its node:net and node:dgram sockets on the stack')
    .requiredOption('-c, --config <file>', 'the tstack.toml to run the program on')
    .option('--node-option <option>', 'an option for node itself, before the program (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v])
    .argument('<app>', 'the program to run (a .js / .mjs / .cjs file)')
    .argument('[args...]', "the program's own arguments")
    // Options after the program name belong to the program, not to us.
    .passThroughOptions()
    .action(async (app: string, args: string[], opts: RunOptions) => {
      process.exitCode = await run(app, args, opts);
    });
}

const err = (line: string) => process.stderr.write(`tstack: ${line}\n`);

/** The compiled preload: dist/src/api/register.js, next to this file's folder. */
export function registerModulePath(): string {
  return fileURLToPath(new URL('../api/register.js', import.meta.url));
}

/**
 * `tstack run …` without commander: argv after "run" when it is -c/--config FILE and
 * --node-option OPT (in any order, `--opt=value` too), then the program and its arguments.
 * Null for anything else (help, a missing value, another option): the full parser handles
 * it, with its usage messages.
 */
export function parseRunArgs(argv: string[]): { app: string; args: string[]; opts: RunOptions } | null {
  let config: string | undefined;
  const nodeOption: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (name === '-c' || name === '--config') { config = value(); if (config === undefined) return null; continue; }
    if (name === '--node-option') { const v = value(); if (v === undefined) return null; nodeOption.push(v); continue; }
    if (a.startsWith('-')) return null;
    if (config === undefined || config === '') return null;
    return { app: a, args: argv.slice(i + 1), opts: { config, ...(nodeOption.length > 0 && { nodeOption }) } };
  }
  return null;
}

/** bin/tstack.js's fast path: the exit code, or null when `argv` (after "run") needs the full parser. */
export async function runFast(argv: string[]): Promise<number | null> {
  const parsed = parseRunArgs(argv);
  return parsed === null ? null : run(parsed.app, parsed.args, parsed.opts);
}

/**
 * Whether the config may ask for more than one worker: a `workers` key whose value is not 1
 * (read as text, without the config module: the common single-worker case stays fast).
 */
function mayHaveWorkers(configPath: string): boolean {
  let text: string;
  try { text = readFileSync(configPath, 'utf8'); } catch { return false; }
  const m = /^\s*workers\s*=\s*([^#\n]*)/m.exec(text);
  return m !== null && m[1]!.trim() !== '1';
}

/** Runs the program; resolves with the exit code to use (a signal death re-raises the signal). */
export async function run(app: string, args: string[], opts: RunOptions): Promise<number> {
  const configPath = resolve(opts.config);
  const preload = registerModulePath();
  if (!existsSync(preload)) {
    err(`${preload} is missing: build tstack first (npm run build)`);
    return 1;
  }
  // Several workers: the supervisor (src/runtime/cluster.ts) needs the config here. One worker
  // keeps the fast path: the child reads (and checks) the config.
  if (mayHaveWorkers(configPath)) {
    const { loadRunConfig } = await import('../runtime/config.js');
    const config = loadRunConfig(configPath, opts.config);
    if (typeof config === 'string') { err(config); return 2; }
    if (config.stack.workers > 1) {
      // One process per worker, each running the program on its own stack.
      const { Cluster } = await import('../runtime/cluster.js');
      return await new Cluster({
        config, configPath, app, args, nodeOptions: opts.nodeOption ?? [], preload, forwarded: FORWARDED, fromTerminal: FROM_TERMINAL,
      }).run();
    }
  }
  // TSTACK_RUN_PID: the program arms a parent-death signal so that it dies with us (register.ts).
  // TSTACK_RUN_CONFIG: the config as the user named it, for the child's messages.
  const env: NodeJS.ProcessEnv = { ...process.env, TSTACK_CONFIG: configPath, TSTACK_RUN_PID: String(process.pid), TSTACK_RUN_CONFIG: opts.config };
  // Set by register.ts for the processes a registered program starts; this one is a new program.
  delete env['TSTACK_REGISTER_PID'];
  const child = spawn(process.execPath, [
    ...(opts.nodeOption ?? []), '--import', pathToFileURL(preload).href, app, ...args,
  ], { stdio: 'inherit', env });

  const forward = (sig: NodeJS.Signals) => {
    // A terminal's ^C / ^\ already went to its whole foreground group, the program included:
    // passing it on again would deliver it twice.
    if (FROM_TERMINAL.includes(sig) && process.stdin.isTTY) return;
    child.kill(sig);
  };
  for (const s of FORWARDED) process.on(s, forward);
  const unhook = () => { for (const s of FORWARDED) process.removeListener(s, forward); };

  return await new Promise<number>((done) => {
    child.on('error', (e) => {
      unhook();
      err(`cannot start ${process.execPath}: ${e.message}`);
      done(1);
    });
    child.on('exit', (code, signal) => {
      unhook();
      if (signal) {
        // Die of the same signal, so whoever started us sees what happened to the program.
        process.kill(process.pid, signal);
        // Not every signal kills by default (SIGUSR1 starts the inspector…): the shell's code.
        done(128 + (constants.signals[signal] ?? 0));
        return;
      }
      done(code ?? 1);
    });
  });
}
