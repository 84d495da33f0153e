// The Linux reference of bench/tcp-autotune-memory.ts: one bulk transfer between two node:net
// programs on kernel sockets with default buffers, over the user-space link emulator
// (bench/link-emulator.ts) with the same link as the tstack side. Root only.
//
//   namespace A: TAP 198.18.230.1/24, timed-bulk client ==[link emulator]== TAP 198.18.230.2/24, timed-bulk server: namespace B
//
// The receiver times the transfer as the tstack side does (first byte to last; half to last).
// The sender's congestion control is set per socket (TCP_CONGESTION): cubic, Linux's built-in
// default, unless TSTACK_BENCH_LINUX_CC names another (or "default": the namespace's, which a
// new namespace inherits from the host and may only change to an algorithm the host allows).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetns, destroyNetns, exec, hasCommand, isRoot, spawnIn } from '../src/runtime/netns.js';
import { startServer, type Server } from './http.js';
import { LinkEmulator, type LinkDirectionStats, type LinkModel } from './link-emulator.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = join(ROOT, 'bench', 'fixtures', 'timed-bulk.js');
const ADDR_A = '198.18.230.1/24';
const ADDR_B = '198.18.230.2/24';
const PORT = 5001;

export interface LinuxBulkResult {
  /** Goodput over the whole transfer and over its second half, MB/s (10^6 bytes/s). */
  mbps: number;
  steadyMbps: number;
  /** The sender's congestion control. */
  cc: string;
  /** The namespace's tcp_rmem and tcp_wmem (min default max). */
  rmem: string;
  wmem: string;
  /** Segments the sender retransmitted (its namespace's TcpRetransSegs). */
  retransmits: number;
  /** The emulator's counters for the data direction. */
  link: LinkDirectionStats;
}

/** The congestion control the reference's sender uses: TSTACK_BENCH_LINUX_CC, default cubic. */
export function linuxCc(): string {
  return process.env['TSTACK_BENCH_LINUX_CC']?.trim() || 'cubic';
}

function retransSegs(ns: string): number {
  // /proc/net/snmp as seen from inside the namespace: its own counters, fresh with it.
  const lines = exec(ns, 'cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf('RetransSegs');
  return i < 0 ? NaN : Number(values[i]);
}

/**
 * One transfer of `bytes` from a client in namespace A to a server in B over a fresh emulated
 * link; everything it creates is removed before it returns or throws.
 */
export async function linuxBulkOverEmulatedLink(bytes: number, model: LinkModel): Promise<LinuxBulkResult> {
  const tag = process.pid % 100000;
  const nsA = createNetns('bench-lka');
  let nsB: string | null = null;
  let emu: LinkEmulator | null = null;
  let server: Server | null = null;
  try {
    nsB = createNetns('bench-lkb');
    emu = LinkEmulator.open({
      ...model,
      a: { netns: nsA, ifname: `tlea${tag}`, addr: ADDR_A },
      b: { netns: nsB, ifname: `tleb${tag}`, addr: ADDR_B },
    });
    const cc = linuxCc();
    const sysctl = (name: string) => exec(nsA, 'cat', [`/proc/sys/net/ipv4/${name}`]).trim().replace(/\s+/g, ' ');
    server = await startServer('ip', ['netns', 'exec', nsB, process.execPath, FIXTURE, 'server', String(PORT), String(bytes)],
      process.env, 'timed-bulk server', /timed-bulk: listening/);
    const client = await spawnIn(nsA, process.execPath,
      [FIXTURE, 'client', ADDR_B.split('/')[0]!, String(PORT), String(bytes), ...(cc === 'default' ? [] : [cc])], 300_000);
    if (client.code !== 0) throw new Error(`timed-bulk client failed (exit ${client.code}): ${client.stdout}${client.stderr}`);
    // The server prints its line when the last byte is in, before the client sees its close;
    // the pipe may still hold it for a moment.
    const srv = server;
    const resultLine = () => srv.output().split('\n').find((l) => l.startsWith('{'));
    for (const end = Date.now() + 10_000; resultLine() === undefined && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
    const line = resultLine();
    if (!line) throw new Error(`timed-bulk server printed no result:\n${server.output()}`);
    const r = JSON.parse(line) as { bytes: number; wholeMs: number; halfMs: number };
    return {
      mbps: r.bytes / 1e6 / (r.wholeMs / 1000),
      steadyMbps: r.bytes / 2 / 1e6 / (r.halfMs / 1000),
      cc: cc === 'default' ? sysctl('tcp_congestion_control') : cc,
      rmem: sysctl('tcp_rmem'),
      wmem: sysctl('tcp_wmem'),
      retransmits: retransSegs(nsA),
      link: emu.stats().aToB,
    };
  } finally {
    if (server) await server.stop();
    emu?.close();
    if (nsB) destroyNetns(nsB);
    destroyNetns(nsA);
  }
}

/** Why this process cannot build the emulated link, or null when it can. */
export function emulatedLinkUnavailable(): string | null {
  if (process.platform !== 'linux') return 'needs Linux network namespaces';
  if (!isRoot()) return 'needs root (network namespaces, TAP devices)';
  if (!hasCommand('ip')) return 'needs ip (iproute2) on PATH';
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun (modprobe tun)';
  return null;
}
