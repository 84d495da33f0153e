// `tstack route [show | add DEST GATEWAY | add DEST -interface PORT | delete DEST | get DEST]`:
// the instance's routing table, as FreeBSD's route(8) and netstat -r show it. DEST is
// `default`, A.B.C.D (a host) or A.B.C.D/LEN; `-net`/`-host` are accepted and ignored.
import type { Command } from 'commander';
import type { RouteSnapshot } from '../stack/stats.js';
import { prefixMask, formatIpv4 } from '../wire/addr.js';
import { ToolError, action, instanceOptions, out, printJson, table, withInstance } from './client.js';

export function register(program: Command): void {
  instanceOptions(program.command('route')
    .description('show or change the routing table: show | add DEST GW | add DEST -interface PORT | delete DEST | get DEST')
    .argument('[command]', 'show (default), add, delete, get')
    .argument('[args...]', 'DEST [GATEWAY] [-interface PORT] [-metric N]'))
    .allowUnknownOption(true)
    .action(action(async (command: string | undefined, args: string[], opts: { json?: boolean; instance?: string; socket?: string }) => {
      const cmd = command ?? 'show';
      const rest = args.filter((a) => a !== '-net' && a !== '-host' && a !== '-inet');
      const req: Record<string, unknown> = {};
      const positional: string[] = [];
      for (let i = 0; i < rest.length; i++) {
        const a = rest[i]!;
        if (a === '-interface' || a === '-iface' || a === 'dev') { req['port'] = rest[++i]; continue; }
        if (a === '-metric' || a === 'metric') { req['metric'] = Number(rest[++i]); continue; }
        if (a === 'via' || a === 'gw') continue;
        if (a === '-inet6' || a.includes(':')) throw new ToolError('route: IPv6 is not enabled on this instance (tstack has no IPv6 behaviour yet)');
        positional.push(a);
      }
      await withInstance(opts, async (c) => {
        switch (cmd) {
          case 'show':
          case 'list': {
            const snap = await c.request<{ routes: RouteSnapshot[] }>('snapshot', {});
            if (opts.json) printJson(snap.routes); else out(formatRoutes(snap.routes));
            return;
          }
          case 'add':
          case 'delete':
          case 'del': {
            const [dest, gw] = positional;
            if (dest === undefined) throw new ToolError(`route ${cmd}: a destination is missing (default, A.B.C.D or A.B.C.D/LEN)`, 2);
            if (gw !== undefined) req['gateway'] = gw;
            req['destination'] = dest;
            const r = await c.request<RouteSnapshot[]>(cmd === 'add' ? 'route.add' : 'route.delete', req);
            if (opts.json) printJson(r); else out(`${cmd === 'add' ? 'add' : 'delete'} ${dest === 'default' ? '' : 'net '}${dest}${gw ? `: gateway ${gw}` : ''}${req['port'] ? `: interface ${String(req['port'])}` : ''}\n`);
            return;
          }
          case 'get': {
            const dest = positional[0];
            if (dest === undefined) throw new ToolError('route get: a destination is missing', 2);
            const r = await c.request<{ destination: string; route: RouteSnapshot; source: string; nexthop: string }>('route.get', { destination: dest === 'default' ? '0.0.0.0' : dest });
            if (opts.json) { printJson(r); return; }
            out([
              `   route to: ${r.destination}`,
              `destination: ${r.route.prefixLen === 0 ? 'default' : r.route.destination}`,
              `       mask: ${formatIpv4(prefixMask(r.route.prefixLen))}`,
              ...(r.route.gateway ? [`    gateway: ${r.route.gateway}`] : []),
              `  interface: ${r.route.ifname}`,
              `      flags: <${flagNames(r.route.flags)}>`,
              `     source: ${r.source}`,
              '',
            ].join('\n'));
            return;
          }
          default:
            throw new ToolError(`route: unknown command '${cmd}' (expected show, add, delete, get)`, 2);
        }
      });
    }));
}

function flagNames(f: string): string {
  const names: Record<string, string> = { U: 'UP', G: 'GATEWAY', H: 'HOST', S: 'STATIC', C: 'CONNECTED' };
  return [...f].map((x) => names[x] ?? x).join(',');
}

/** netstat -r's table. */
export function formatRoutes(routes: RouteSnapshot[]): string {
  return 'Routing tables\n\nInternet:\n' + table([['Destination', 'Gateway', 'Flags', 'Netif', 'Metric'], ...routes.map((r) => [
    r.prefixLen === 0 ? 'default' : r.prefixLen === 32 ? r.destination : `${r.destination}/${r.prefixLen}`,
    r.gateway || `link#${r.ifname}`, r.flags, r.ifname, r.metric,
  ])]);
}
