// `tstack ifconfig [PORT [up|down|mtu N|inet CIDR|inet6 CIDR|-alias CIDR] …]`: the ports as FreeBSD's
// ifconfig(8) shows them (flags, MTU, MAC, addresses, driver, counters), and changes to them.
import type { Command } from 'commander';
import type { InterfaceSnapshot } from '../stack/stats.js';
import { prefixMask } from '../wire/addr.js';
import { ToolError, action, instanceOptions, out, printJson, withWorkers } from './client.js';
import { mergeDevices, mergeInterfaces } from './aggregate.js';

interface Snap { interfaces: InterfaceSnapshot[]; drivers: Record<string, string>; devices: { port: string; stats: Record<string, number> }[] }

export function register(program: Command): void {
  instanceOptions(program.command('ifconfig')
    .description("show the instance's ports, or change one: up, down, mtu N, inet CIDR, inet6 CIDR, -alias CIDR; NAME create vlan ID vlandev PORT [outer N]")
    .argument('[port]', 'the port (interface) name')
    .argument('[actions...]', 'up | down | mtu N | inet A.B.C.D/LEN | inet6 ADDR[/LEN] [-alias] | -alias ADDR[/LEN] | create vlan ID vlandev PORT [outer N]'))
    .allowUnknownOption(true)
    .action(action(async (port: string | undefined, actions: string[], opts: { json?: boolean; instance?: string; socket?: string; worker?: string }) => {
      await withWorkers(opts, async (w) => {
        // Changes go to one worker, which passes them on to the others (src/runtime/worker.ts).
        const c = w.first;
        if (port !== undefined && actions[0] === 'create') {
          // FreeBSD's vlan(4): `ifconfig NAME create vlan ID vlandev PORT` (+ `outer N` for Q-in-Q).
          const create: Record<string, unknown> = { name: port };
          let i = 1;
          for (; i < actions.length; i++) {
            const a = actions[i]!;
            const arg = () => { const v = actions[++i]; if (v === undefined) throw new ToolError(`ifconfig: '${a}' needs a value`, 2); return v; };
            const num = () => { const v = arg(); if (!/^\d+$/.test(v)) throw new ToolError(`ifconfig: ${a} '${v}' is not a number`, 2); return Number(v); };
            if (a === 'vlan') create['id'] = num();
            else if (a === 'outer') create['outer'] = num();
            else if (a === 'vlandev') create['port'] = arg();
            else break;
          }
          if (create['id'] === undefined || create['port'] === undefined) throw new ToolError('ifconfig: create needs vlan ID and vlandev PORT (ifconfig NAME create vlan ID vlandev PORT [outer N])', 2);
          // A VLAN is not passed on between workers: every worker makes its own.
          await w.all('vlan.create', create);
          actions = actions.slice(i);
        }
        if (port !== undefined && actions.length > 0) {
          const change: Record<string, unknown> = { port };
          for (let i = 0; i < actions.length; i++) {
            const a = actions[i]!;
            const arg = () => { const v = actions[++i]; if (v === undefined) throw new ToolError(`ifconfig: '${a}' needs a value`, 2); return v; };
            if (a === 'up') change['up'] = true;
            else if (a === 'down') change['up'] = false;
            else if (a === 'mtu') { const v = arg(); if (!/^\d+$/.test(v)) throw new ToolError(`ifconfig: mtu '${v}' is not a number`, 2); change['mtu'] = Number(v); }
            else if (a === 'inet') { const v = arg(); if (v === 'alias') change['add'] = arg(); else change['add'] = v; if (actions[i + 1] === 'alias') i++; }
            else if (a === '-alias' || a === 'delete') change['delete'] = arg();
            else if (a === 'inet6') {
              // FreeBSD: `inet6 ADDR[/LEN] [alias]` adds (prefixlen 64 by default), `inet6 ADDR -alias` removes.
              const v = arg();
              if (!v.includes(':')) throw new ToolError(`ifconfig: inet6 '${v}' is not an IPv6 address`, 2);
              const next = actions[i + 1];
              if (next === '-alias' || next === 'delete') { change['delete'] = v; i++; } else { change['add'] = v; if (next === 'alias') i++; }
            }
            else throw new ToolError(`ifconfig: unknown action '${a}' (expected up, down, mtu N, inet CIDR, inet6 CIDR, -alias CIDR)`, 2);
          }
          await c.request('ifconfig.set', change);
        }
        const snaps = await w.all<Snap>('snapshot', {});
        // Several workers: worker 0's ports (addresses, MTU, flags) with everyone's counters added up.
        const snap: Snap = !w.many ? snaps[0]! : {
          ...snaps[0]!, interfaces: mergeInterfaces(snaps.map((x) => x.interfaces)), devices: mergeDevices(snaps.map((x) => x.devices)),
        };
        let list = snap.interfaces;
        if (port !== undefined) {
          list = list.filter((i) => i.name === port);
          if (list.length === 0) throw new ToolError(`ifconfig: no port '${port}' (ports: ${snap.interfaces.map((i) => i.name).join(', ')})`);
        }
        const withDriver = list.map((i) => {
          const d = snap.devices.find((x) => x.port === i.name)?.stats;
          return { ...i, driver: snap.drivers[i.name] ?? 'unknown', deviceRxDropped: d?.['rxDropped'] ?? 0, deviceTxDropped: d?.['txDropped'] ?? 0 };
        });
        if (opts.json) { printJson(port !== undefined ? withDriver[0] : withDriver); return; }
        for (const i of withDriver) out(formatInterface(i));
      });
    }));
}

export function formatInterface(i: InterfaceSnapshot & { driver: string; deviceRxDropped: number; deviceTxDropped: number }): string {
  const lines = [`${i.name}: flags=<${i.flags.join(',')}> mtu ${i.mtu}`, `\tether ${i.mac}`];
  for (const a of i.inet) lines.push(`\tinet ${a.addr} netmask 0x${prefixMask(a.prefixLen).toString(16).padStart(8, '0')} broadcast ${a.broadcast}`);
  for (const a of i.inet6) lines.push(`\tinet6 ${a.addr} prefixlen ${a.prefixLen}`);
  if (i.tunnel) lines.push(`\ttunnel: ${i.tunnel}`);
  if (i.groups) lines.push(`\tgroups: ${i.groups.join(' ')}`);
  if (i.bond) {
    lines.push(`\tbond: ${i.bond.mode}${i.bond.active ? ` active ${i.bond.active}` : ''} members ${i.bond.members.join(' ')} failovers ${i.bond.failovers}`);
  } else if (i.vlan) {
    // FreeBSD's vlan(4) line.
    lines.push(`\tvlan: ${i.vlan.id} vlanproto: 802.1q${i.vlan.outer ? ` outer: ${i.vlan.outer} (802.1ad)` : ''} parent interface: ${i.vlan.parent}`);
  } else {
    lines.push(`\tdriver: ${i.tunnel ? 'tunnel' : i.driver}`);
    if (i.master) lines.push(`\tmaster: ${i.master}`);
  }
  lines.push(`\tRX packets ${i.rxPackets}  bytes ${i.rxBytes} (${human(i.rxBytes)})  errors ${i.rxErrors}  dropped ${i.rxDropped + i.deviceRxDropped}  multicast ${i.rxMulticast}`);
  lines.push(`\tTX packets ${i.txPackets}  bytes ${i.txBytes} (${human(i.txBytes)})  errors ${i.txErrors}  dropped ${i.txDropped + i.deviceTxDropped}`);
  return lines.join('\n') + '\n';
}

export function human(bytes: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes, k = 0;
  while (v >= 1024 && k < u.length - 1) { v /= 1024; k++; }
  return `${k === 0 ? v : v.toFixed(1)} ${u[k]}`;
}

