// `tstack sysctl [-a] [NAME[=VALUE] …]`: list, get and set an instance's tunables at run time,
// as FreeBSD's sysctl(8) prints them (`net.inet.tcp.msl: 30000`, `… 30000 -> 15000`). A NAME that
// is a prefix lists everything under it. A bad name or value is an error naming it; the value
// stays what it was.
import type { Command } from 'commander';
import { ToolError, action, instanceOptions, out, printJson, withInstance } from './client.js';

interface Entry { name: string; value: number | string | boolean; type: string; description: string; default: unknown; readonly: boolean }

const show = (v: unknown) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v));

export function register(program: Command): void {
  instanceOptions(program.command('sysctl')
    .description("list, get or set the instance's tunables (NAME=VALUE sets)")
    .option('-a, --all', 'list every tunable')
    .option('-d, --describe', 'print the description instead of the value')
    .argument('[names...]', 'NAME to get (or a prefix to list), NAME=VALUE to set'))
    .action(action(async (names: string[], opts: { all?: boolean; describe?: boolean; json?: boolean; instance?: string; socket?: string }) => {
      await withInstance(opts, async (c) => {
        const json: Record<string, unknown> = {};
        const sets: { name: string; old: unknown; value: unknown }[] = [];
        let failed: ToolError | null = null;
        const line = (e: Entry) => out(`${e.name}: ${opts.describe ? e.description : show(e.value)}\n`);
        if (names.length === 0 || opts.all) {
          const all = await c.request<Entry[]>('sysctl.list');
          if (opts.json) { printJson(Object.fromEntries(all.map((e) => [e.name, e.value]))); } else all.forEach(line);
          if (names.length === 0) return;
        }
        for (const arg of names) {
          const eq = arg.indexOf('=');
          try {
            if (eq > 0) {
              const name = arg.slice(0, eq), value = arg.slice(eq + 1);
              const r = await c.request<{ name: string; old: unknown; value: unknown }>('sysctl.set', { name, value });
              sets.push(r);
              if (!opts.json) out(`${r.name}: ${show(r.old)} -> ${show(r.value)}\n`);
              continue;
            }
            if (eq === 0) throw new ToolError(`'${arg}': a NAME is missing before '='`, 2);
            const list = await c.request<Entry[]>('sysctl.list', { prefix: arg });
            const exact = list.find((e) => e.name === arg);
            const under = exact ? [exact] : list.filter((e) => e.name.startsWith(`${arg}.`));
            if (under.length === 0) throw new ToolError(`unknown sysctl '${arg}'`, 1, 'ENOENT');
            for (const e of under) { if (opts.json) json[e.name] = e.value; else line(e); }
          } catch (e) {
            if (!(e instanceof ToolError)) throw e;
            process.stderr.write(`tstack: sysctl: ${e.message}\n`);
            failed ??= e;
          }
        }
        if (opts.json && !opts.all) printJson(sets.length && Object.keys(json).length === 0 ? sets : sets.length ? { get: json, set: sets } : json);
        if (failed) process.exitCode = failed.exitCode;
      });
    }));
}
