// `tstack arp [-a | -d HOST | -s HOST MAC]` (FreeBSD's arp(8)) and `tstack ndp [-a | -d HOST | -I]`
// (FreeBSD's ndp(8)): the IPv6 neighbour cache, with `-I` the interfaces' IPv6 addresses.
import type { Command } from 'commander';
import type { ArpSnapshot, NdpSnapshot } from '../stack/stats.js';
import { ToolError, action, instanceOptions, out, printJson, table, withWorkers, type Workers } from './client.js';
import { betterNeighbour, union } from './aggregate.js';

interface Opts { all?: boolean; delete?: string; set?: string; json?: boolean; instance?: string; socket?: string; worker?: string }

/**
 * A delete, on the first worker that has the entry (each passes its changes on to the others;
 * workers share what they learn, so the first usually has it).
 */
async function deleteOnSome(w: Workers, cmd: string, args: Record<string, unknown>): Promise<unknown> {
  let err: unknown = null;
  for (const c of w.clients) {
    try { return await c.request(cmd, args); } catch (e) {
      if ((e as ToolError).code !== 'ENOENT') throw e;
      err ??= e;
    }
  }
  throw err;
}
interface NdpRow { addr: string; mac: string; ifname: string; state: string; router: boolean; queued: number }
interface AddrRow { addr: string; prefixLen: number; state: string; origin: string; preferredMs: number | null; validMs: number | null }

export function register(program: Command): void {
  instanceOptions(program.command('arp')
    .description('show the ARP cache (-a), delete an entry (-d HOST) or add a permanent one (-s HOST MAC)')
    .option('-a, --all', 'list every entry (the default)')
    .option('-d, --delete <host>', 'delete the entry for HOST')
    .option('-s, --set <host>', 'add a permanent entry for HOST (the MAC follows)')
    .option('-i, --interface <port>', 'with -s: the port the host is on')
    .argument('[mac]', 'with -s: the MAC address'))
    .action(action(async (mac: string | undefined, opts: Opts & { interface?: string }) => {
      await withWorkers(opts, async (w) => {
        const c = w.first;
        if (opts.delete !== undefined) {
          const r = await deleteOnSome(w, 'arp.delete', { host: opts.delete });
          if (opts.json) printJson(r); else out(`${opts.delete} (${opts.delete}) deleted\n`);
          return;
        }
        if (opts.set !== undefined) {
          if (mac === undefined) throw new ToolError('arp -s: the MAC address is missing (arp -s HOST MAC)', 2);
          const r = await c.request('arp.set', { host: opts.set, mac, ...(opts.interface && { port: opts.interface }) });
          if (opts.json) printJson(r);
          return;
        }
        // Several workers: the union of their caches.
        const snaps = await w.all<{ arp: ArpSnapshot[] }>('snapshot', {});
        const snap = { arp: w.many ? union(snaps.map((x) => x.arp), (e) => `${e.ifname} ${e.ip}`, betterNeighbour) : snaps[0]!.arp };
        if (opts.json) { printJson(snap.arp); return; }
        for (const e of snap.arp) {
          out(`? (${e.ip}) at ${e.mac} on ${e.ifname} ${e.state === 'permanent' ? 'permanent ' : ''}[ethernet]${e.state === 'permanent' ? '' : ` ${e.state}`}${e.queued ? ` (${e.queued} queued)` : ''}\n`);
        }
      });
    }));

  instanceOptions(program.command('ndp')
    .description('the IPv6 neighbor cache (-a), delete an entry (-d HOST), or the ports\' IPv6 addresses with their states (-I)')
    .option('-a, --all', 'list every entry (the default)')
    .option('-d, --delete <host>', 'delete the entry for HOST')
    .option('-I, --addresses', 'list each port\'s IPv6 addresses (state, origin, lifetimes)'))
    .action(action(async (opts: Opts & { addresses?: boolean }) => {
      await withWorkers(opts, async (w) => {
        if (opts.delete !== undefined) {
          const d = await deleteOnSome(w, 'ndp.delete', { host: opts.delete });
          if (opts.json) printJson(d); else out(`${opts.delete} deleted\n`);
          return;
        }
        // Several workers: the union of their caches; the addresses are worker 0's.
        const all = await w.all<{ ndp: NdpRow[]; addresses: { ifname: string; addrs: AddrRow[] }[] }>('ndp.list', {});
        const r = w.many ? { ...all[0]!, ndp: union(all.map((x) => x.ndp), (e) => `${e.ifname} ${e.addr}`, betterNeighbour) } : all[0]!;
        if (opts.addresses) {
          if (opts.json) { printJson(r.addresses); return; }
          for (const p of r.addresses) for (const a of p.addrs) {
            const life = a.validMs === null ? 'forever' : `valid ${Math.round(a.validMs / 1000)}s preferred ${Math.round((a.preferredMs ?? 0) / 1000)}s`;
            out(`${p.ifname} ${a.addr}/${a.prefixLen} ${a.state} ${a.origin} ${life}\n`);
          }
          return;
        }
        if (opts.json) { printJson(r.ndp); return; }
        out(`${'Neighbor'.padEnd(40)} ${'Linklayer Address'.padEnd(18)} ${'Netif'.padEnd(8)} State${' '.repeat(6)} Flags\n`);
        for (const e of r.ndp) {
          const host = e.addr.startsWith('fe80:') ? `${e.addr}%${e.ifname}` : e.addr;
          out(`${host.padEnd(40)} ${e.mac.padEnd(18)} ${e.ifname.padEnd(8)} ${e.state.padEnd(11)} ${e.router ? 'R' : ''}${e.queued ? ` (${e.queued} queued)` : ''}\n`);
        }
      });
    }));
}
