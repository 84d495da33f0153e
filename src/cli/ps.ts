// `tstack ps`: the running instances (name, pid, ports, addresses, workers, uptime), found by
// their control sockets. A socket nobody answers on is a crashed instance's: shown as stale.
import type { Command } from 'commander';
import { ControlClient, action, listSockets, out, printJson, table } from './client.js';

interface Info { name: string; pid: number; socket: string; workers: number; uptime: number; poll: string; ports: { name: string; driver: string; inet: string[] }[] }

export function register(program: Command): void {
  program.command('ps')
    .description('list the running tstack instances')
    .option('--json', 'print one JSON document (fields in docs/tools.md)')
    .option('-a, --all', 'also list stale sockets (left by instances that died)')
    .action(action(async (opts: { json?: boolean; all?: boolean }) => {
      const found: (Info & { state: string })[] = [];
      for (const s of await listSockets()) {
        if (!s.live) {
          if (opts.all || s.error?.code === 'EACCES') {
            found.push({ name: s.path.replace(/^.*\//, '').replace(/\.sock$/, ''), pid: 0, socket: s.path, workers: 0, uptime: 0, poll: '', ports: [],
              state: s.error?.code === 'EACCES' ? 'permission denied' : 'stale' });
          }
          continue;
        }
        try {
          const c = await ControlClient.connect(s.path);
          try { found.push({ ...(await c.request<Info>('info')), state: 'running' }); } finally { c.close(); }
        } catch { /* went away meanwhile */ }
      }
      if (opts.json) { printJson(found); return; }
      if (found.length === 0) { out('no tstack instance is running\n'); return; }
      out(table([['NAME', 'PID', 'WORKERS', 'UPTIME', 'PORTS', 'ADDRESSES', 'SOCKET'], ...found.map((i) => [
        i.name, i.state === 'running' ? i.pid : '-', i.state === 'running' ? i.workers : '-', i.state === 'running' ? duration(i.uptime) : i.state,
        i.ports.map((p) => `${p.name}(${p.driver})`).join(',') || '-', i.ports.flatMap((p) => p.inet).join(',') || '-', i.socket,
      ])]));
    }));
}

/** 3725 -> "1:02:05", 86400+ -> "1d 0:00:00". */
export function duration(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return d > 0 ? `${d}d ${hms}` : hms;
}
