// `tstack arp [-a | -d HOST | -s HOST MAC]` (FreeBSD's arp(8)) and `tstack ndp`, which answers
// that IPv6 is not enabled until the stack has IPv6 behaviour.
import type { Command } from 'commander';
import type { ArpSnapshot } from '../stack/stats.js';
import { ToolError, action, instanceOptions, out, printJson, withInstance } from './client.js';

interface Opts { all?: boolean; delete?: string; set?: string; json?: boolean; instance?: string; socket?: string }

export function register(program: Command): void {
  instanceOptions(program.command('arp')
    .description('show the ARP cache (-a), delete an entry (-d HOST) or add a permanent one (-s HOST MAC)')
    .option('-a, --all', 'list every entry (the default)')
    .option('-d, --delete <host>', 'delete the entry for HOST')
    .option('-s, --set <host>', 'add a permanent entry for HOST (the MAC follows)')
    .option('-i, --interface <port>', 'with -s: the port the host is on')
    .argument('[mac]', 'with -s: the MAC address'))
    .action(action(async (mac: string | undefined, opts: Opts & { interface?: string }) => {
      await withInstance(opts, async (c) => {
        if (opts.delete !== undefined) {
          const r = await c.request('arp.delete', { host: opts.delete });
          if (opts.json) printJson(r); else out(`${opts.delete} (${opts.delete}) deleted\n`);
          return;
        }
        if (opts.set !== undefined) {
          if (mac === undefined) throw new ToolError('arp -s: the MAC address is missing (arp -s HOST MAC)', 2);
          const r = await c.request('arp.set', { host: opts.set, mac, ...(opts.interface && { port: opts.interface }) });
          if (opts.json) printJson(r);
          return;
        }
        const snap = await c.request<{ arp: ArpSnapshot[] }>('snapshot', {});
        if (opts.json) { printJson(snap.arp); return; }
        for (const e of snap.arp) {
          out(`? (${e.ip}) at ${e.mac} on ${e.ifname} ${e.state === 'permanent' ? 'permanent ' : ''}[ethernet]${e.state === 'permanent' ? '' : ` ${e.state}`}${e.queued ? ` (${e.queued} queued)` : ''}\n`);
        }
      });
    }));

  instanceOptions(program.command('ndp')
    .description('the IPv6 neighbor cache (IPv6 is not enabled yet)')
    .option('-a, --all', 'list every entry')
    .option('-d, --delete <host>', 'delete the entry for HOST'))
    .action(action(async (opts: Opts) => {
      await withInstance(opts, async (c) => { await c.request('ndp.list', {}); });
    }));
}
