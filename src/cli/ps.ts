// `tstack ps`: the running instances (name, pid, ports, addresses, workers, uptime), found by
// their control sockets. A socket nobody answers on is a crashed instance's: shown as stale.
// The workers of one instance (`tstack run` with `[stack] workers` > 1: a socket each,
// NAME.w0.sock, NAME.w1.sock…) are one instance, with its supervisor's pid and every worker's.
import type { Command } from 'commander';
import { ControlClient, action, listSockets, out, printJson, socketInstance, table } from './client.js';

interface Info { name: string; pid: number; socket: string; workers: number; uptime: number; poll: string; ports: { name: string; driver: string; inet: string[] }[]; supervisor?: number }
type Row = Info & { state: string; pids?: number[]; sockets?: string[] };

export function register(program: Command): void {
  program.command('ps')
    .description('list the running tstack instances')
    .option('--json', 'print one JSON document (fields in docs/tools.md)')
    .option('-a, --all', 'also list stale sockets (left by instances that died)')
    .action(action(async (opts: { json?: boolean; all?: boolean }) => {
      const found: Row[] = [];
      const split = new Map<string, Row>();
      for (const s of await listSockets()) {
        const { instance, worker } = socketInstance(s.path);
        const name = instance.replace(/^.*\//, '');
        if (!s.live) {
          if ((opts.all || s.error?.code === 'EACCES') && !split.has(instance)) {
            found.push({ name: worker === null ? name : `${name}.w${worker}`, pid: 0, socket: s.path, workers: 0, uptime: 0, poll: '', ports: [],
              state: s.error?.code === 'EACCES' ? 'permission denied' : 'stale' });
          }
          continue;
        }
        let info: Info;
        try {
          const c = await ControlClient.connect(s.path);
          try { info = await c.request<Info>('info'); } finally { c.close(); }
        } catch { continue; /* went away meanwhile */ }
        if (worker === null) { found.push({ ...info, state: 'running' }); continue; }
        // One of several workers: the first one seen stands for the instance.
        const row = split.get(instance);
        if (row) { row.pids!.push(info.pid); row.sockets!.push(s.path); continue; }
        const r: Row = { ...info, name, pid: info.supervisor || info.pid, socket: `${instance}.w*.sock`, state: 'running', pids: [info.pid], sockets: [s.path] };
        split.set(instance, r);
        found.push(r);
      }
      if (opts.json) { printJson(found); return; }
      if (found.length === 0) { out('no tstack instance is running\n'); return; }
      out(table([['NAME', 'PID', 'WORKERS', 'UPTIME', 'PORTS', 'ADDRESSES', 'SOCKET'], ...found.map((i) => [
        i.name, i.state === 'running' ? i.pid : '-', i.state === 'running' ? (i.pids ? `${i.workers} (${i.pids.join(',')})` : i.workers) : '-', i.state === 'running' ? duration(i.uptime) : i.state,
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
