// The `tstack` command. Each subcommand lives in its own file under src/cli/ and exports a
// `register(program)`; main wires them up. Exit codes: 0 ok, 1 runtime failure, 2 usage or
// configuration error.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { register as registerUp } from './up.js';
import { register as registerRun } from './run.js';
import { register as registerPs } from './ps.js';
import { register as registerSysctl } from './sysctl.js';
import { register as registerIfconfig } from './ifconfig.js';
import { register as registerRoute } from './route.js';
import { register as registerNetstat } from './netstat.js';
import { register as registerArp } from './arp.js';
import { register as registerTop } from './top.js';
import { register as registerCapture } from './capture.js';
import { register as registerMetrics } from './metrics.js';

/** Subcommands, in the order `tstack --help` lists them; the operator tools talk to a running
 * instance over its control socket (src/cli/client.ts, docs/tools.md). */
const COMMANDS: ((program: Command) => void)[] = [
  registerUp, registerRun, registerPs, registerSysctl, registerIfconfig, registerRoute, registerNetstat, registerArp,
  registerTop, registerCapture, registerMetrics,
];

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function version(): string {
  // dist/src/cli/main.js and src/cli/main.ts both sit three levels below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command('tstack')
    .description('tstack: a user-space TCP/IP stack for Node.js')
    .version(version(), '-V, --version', 'print the version and exit')
    .showHelpAfterError()
    // `tstack run app.js --flag`: options after a subcommand's arguments can belong to the app.
    .enablePositionalOptions()
    .exitOverride();
  for (const reg of COMMANDS) reg(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --version and --help "fail" with exit code 0; usage errors were already printed.
      process.exitCode = e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      return;
    }
    process.stderr.write(`tstack: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}
