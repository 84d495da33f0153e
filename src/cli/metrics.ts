// `tstack metrics`: the instance's counters in Prometheus text format (the same text the
// `[metrics] listen` endpoint serves), for scripts and node_exporter's textfile collector.
import type { Command } from 'commander';
import { action, instanceOptions, out, withInstance } from './client.js';

export function register(program: Command): void {
  instanceOptions(program.command('metrics')
    .description('print the instance\'s counters in Prometheus text format'), false)
    .action(action(async (opts: { instance?: string; socket?: string }) => {
      await withInstance(opts, async (c) => { out((await c.request<{ text: string }>('metrics')).text); });
    }));
}
