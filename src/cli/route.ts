// `tstack route [show | add DEST GATEWAY | add DEST -interface PORT | delete DEST | get DEST]`:
// the instance's routing tables, as FreeBSD's route(8) and netstat -r show them. DEST is
// `default`, A.B.C.D (a host) or A.B.C.D/LEN, or the IPv6 forms (2001:db8::1, 2001:db8::/48, or
// `-inet6 default`); `-net`/`-host` are accepted and ignored.
import type { Command } from 'commander';
import type { Route6Snapshot, RouteSnapshot } from '../stack/stats.js';
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
      if (rest.includes('-inet6') || rest.includes('-6')) req['inet6'] = true;
      const positional: string[] = [];
      for (let i = 0; i < rest.length; i++) {
        const a = rest[i]!;
        if (a === '-interface' || a === '-iface' || a === 'dev') { req['port'] = rest[++i]; continue; }
        if (a === '-metric' || a === 'metric') { req['metric'] = Number(rest[++i]); continue; }
        if (a === 'via' || a === 'gw') continue;
        if (a === '-inet6' || a === '-6') continue;
        if (a.includes(':')) req['inet6'] = true;
        positional.push(a);
      }
      await withInstance(opts, async (c) => {
        switch (cmd) {
          case 'show':
          case 'list': {
            const snap = await c.request<{ routes: RouteSnapshot[]; routes6?: Route6Snapshot[] }>('snapshot', {});
            // --json: the IPv4 table, or with -inet6 the IPv6 one; text: both, as netstat -r.
            if (opts.json) printJson(req['inet6'] ? snap.routes6 ?? [] : snap.routes); else out(formatRoutes(snap.routes, snap.routes6));
            return;
          }
          case 'add':
          case 'delete':
          case 'del': {
            const [dest, gw] = positional;
            if (dest === undefined) throw new ToolError(`route ${cmd}: a destination is missing (default, A.B.C.D or A.B.C.D/LEN)`, 2);
            if (gw !== undefined) req['gateway'] = gw;
            req['destination'] = dest;
            const r = await c.request<RouteSnapshot[] | Route6Snapshot[]>(cmd === 'add' ? 'route.add' : 'route.delete', req);
            if (opts.json) printJson(r); else out(`${cmd === 'add' ? 'add' : 'delete'} ${dest === 'default' ? '' : 'net '}${dest}${gw ? `: gateway ${gw}` : ''}${req['port'] ? `: interface ${String(req['port'])}` : ''}\n`);
            return;
          }
          case 'get': {
            const dest = positional[0];
            if (dest === undefined) throw new ToolError('route get: a destination is missing', 2);
            const v6 = req['inet6'] === true;
            const r = await c.request<{ destination: string; route: RouteSnapshot; source: string; nexthop: string }>('route.get',
              { destination: dest === 'default' && !v6 ? '0.0.0.0' : dest, ...(v6 && { inet6: true }) });
            if (opts.json) { printJson(r); return; }
            out([
              `   route to: ${r.destination}`,
              `destination: ${r.route.prefixLen === 0 ? 'default' : r.route.destination}`,
              v6 ? `  prefixlen: ${r.route.prefixLen}` : `       mask: ${formatIpv4(prefixMask(r.route.prefixLen))}`,
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
  const names: Record<string, string> = { U: 'UP', G: 'GATEWAY', H: 'HOST', S: 'STATIC', C: 'CONNECTED', D: 'DYNAMIC' };
  return [...f].map((x) => names[x] ?? x).join(',');
}

/** netstat -r's tables (Internet6 when the instance has IPv6 routes). */
export function formatRoutes(routes: RouteSnapshot[], routes6: Route6Snapshot[] = []): string {
  const v4 = 'Routing tables\n\nInternet:\n' + table([['Destination', 'Gateway', 'Flags', 'Netif', 'Metric'], ...routes.map((r) => [
    r.prefixLen === 0 ? 'default' : r.prefixLen === 32 ? r.destination : `${r.destination}/${r.prefixLen}`,
    r.gateway || `link#${r.ifname}`, r.flags, r.ifname, r.metric,
  ])]);
  if (routes6.length === 0) return v4;
  return v4 + '\nInternet6:\n' + table([['Destination', 'Gateway', 'Flags', 'Netif', 'Metric', 'Expire'], ...routes6.map((r) => [
    r.prefixLen === 0 ? 'default' : r.prefixLen === 128 ? r.destination : `${r.destination}/${r.prefixLen}`,
    r.gateway || `link#${r.ifname}`, r.flags, r.ifname, r.metric, r.expiresInMs === null ? '' : Math.ceil(r.expiresInMs / 1000),
  ])]);
}
