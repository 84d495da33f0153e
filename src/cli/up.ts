// `tstack up --config FILE`: runs the stack with no application. It answers ARP, ping (and
// ping6 on ports with IPv6), and UDP to closed ports (ICMP port unreachable) until
// SIGINT/SIGTERM, then removes its devices.
import type { Command } from 'commander';
import { formatMac } from '../wire/addr.js';
import { ConfigError, loadConfig, type TstackConfig } from '../runtime/config.js';
import { startInstance, type Instance } from '../runtime/instance.js';
import { startControl } from '../runtime/control.js';

export interface UpOptions { config: string; verbose?: boolean }

export function register(program: Command): void {
  program.command('up')
    .description('run the stack with no application: answers ARP, ping and closed-port UDP until SIGINT/SIGTERM')
    .requiredOption('-c, --config <file>', 'the tstack.toml to run')
    .option('-v, --verbose', 'print the applied sysctls and, on exit, per-port counters')
    .action((opts: UpOptions) => { up(opts); });
}

const err = (line: string) => process.stderr.write(`tstack: ${line}\n`);

export function up(opts: UpOptions): void {
  let config: TstackConfig;
  try {
    config = loadConfig(opts.config);
  } catch (e) {
    if (e instanceof ConfigError) { err(e.message); process.exit(2); }
    throw e;
  }
  if (config.ports.length === 0) {
    err(`${config.file}: no [[port]] configured: nothing to bring up`);
    process.exit(2);
  }
  const verbose = opts.verbose === true || config.log.level === 'debug';

  let instance: Instance;
  try {
    instance = startInstance(config, {
      // A stack bug must not take every port down with it: report and keep running.
      onError: (e) => err(`error in the run loop: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
    });
  } catch (e) {
    if (e instanceof ConfigError) { err(e.message); process.exit(2); }
    err(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }

  for (const p of instance.ports) {
    const c = p.config;
    const addrs = [c.addr ?? 'no IPv4 address', c.addr6].filter(Boolean).join(' ');
    const extra = [c.gateway && `gw ${c.gateway}`, c.gateway6 && `gw6 ${c.gateway6}`, c.slaac && 'slaac', c.netns && `netns ${c.netns}`, c.pcap && `pcap ${c.pcap}`].filter(Boolean).join(', ');
    process.stdout.write(`${c.ifname}  ${c.driver}  ${formatMac(p.driver.mac)}  ${addrs}${extra ? `  (${extra})` : ''}\n`);
  }
  if (verbose) for (const s of config.sysctl) process.stdout.write(`sysctl ${s.name} = ${String(s.value)}\n`);
  process.stdout.write(`tstack: up, ${instance.ports.length} port${instance.ports.length === 1 ? '' : 's'}, poll ${config.stack.poll}, pid ${process.pid}; SIGINT or SIGTERM stops it\n`);

  const control = startControl(instance);
  void control?.ready.then((path) => { if (path && verbose) process.stdout.write(`tstack: control socket ${path}\n`); });

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    let code = 0;
    control?.close();
    try {
      instance.stop();
    } catch (e) {
      err(`stopping: ${e instanceof Error ? e.message : String(e)}`);
      code = 1;
    }
    if (verbose) {
      const s = instance.loop.stats();
      process.stdout.write(`loop: ${s.iterations} iterations, ${s.rxFrames} frames received, ${s.readableWakeups} readable wake-ups, ${s.timerWakeups} timer wake-ups, ${s.errors} errors\n`);
      for (const p of instance.ports) {
        const d = p.driver.stats();
        process.stdout.write(`${p.config.ifname}: rx ${d.rxPackets} pkts ${d.rxBytes} bytes (${d.rxDropped} dropped), tx ${d.txPackets} pkts ${d.txBytes} bytes (${d.txDropped} dropped, ${d.txErrors} errors)\n`);
      }
    }
    process.stdout.write(`tstack: stopped (${signal})\n`);
    process.exit(code);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
