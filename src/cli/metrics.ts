// `tstack metrics`: the instance's counters in Prometheus text format (the same text the
// `[metrics] listen` endpoint serves), for scripts and node_exporter's textfile collector. With
// several workers, one exposition of every worker's samples, each labelled worker="i".
import type { Command } from 'commander';
import { formatMetrics, type MetricsInput } from '../runtime/metrics.js';
import { action, instanceOptions, out, withWorkers } from './client.js';

export function register(program: Command): void {
  instanceOptions(program.command('metrics')
    .description('print the instance\'s counters in Prometheus text format'), false)
    .action(action(async (opts: { instance?: string; socket?: string; worker?: string }) => {
      await withWorkers(opts, async (w) => {
        if (!w.many) { out((await w.first.request<{ text: string }>('metrics')).text); return; }
        // One family per metric name, every worker's samples in it (not N texts glued together).
        const inputs = await w.all<{ input: MetricsInput }>('metrics', { raw: true });
        out(formatMetrics(inputs.map((x) => x.input)));
      });
    }));
}
