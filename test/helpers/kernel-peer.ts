// The Linux kernel as a TCP peer: a namespace with a TAP device (or a veth pair under AF_PACKET)
// whose kernel side talks to a tstack Stack in this process (optionally behind a FaultInjector and a pcap capture), a
// Python peer (test/fixtures/peers/tcp_peer.py, plain sockets) run inside the namespace, and
// nftables random loss on the kernel side (this kernel has no netem: DESIGN.md).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { AfPacketDriver } from '../../src/driver/afpacket.js';
import { FaultInjector, type FaultConfig } from '../../src/driver/fault.js';
import { PcapWriter, capture } from '../../src/driver/pcap.js';
import { TapDriver } from '../../src/driver/tap.js';
import type { Driver } from '../../src/driver/types.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';
import { Stack } from '../../src/stack/stack.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import { createNetns, destroyNetns, exec } from './netns.js';

export const PEER_SCRIPT = fileURLToPath(new URL('../../../test/fixtures/peers/tcp_peer.py', import.meta.url));

export interface KernelLinkOptions {
  /** Namespace prefix (1-12 of [a-z0-9-]) and device name (`tst${name}`: at most 15 bytes for TAP, 14 for AF_PACKET). */
  name: string;
  /** The stack's device: a TAP device (default) or AF_PACKET on a veth pair the driver creates. */
  driver?: 'tap' | 'afpacket';
  /** Third octet of the /24 in 198.18.0.0/15: the kernel is .1, the stack .2. */
  subnet: number;
  /** FaultInjector around the TAP driver (reordering, duplication...). */
  faults?: { seed: number | string; tx?: FaultConfig; rx?: FaultConfig };
  /** Record every frame the stack sends and receives into this pcap file. */
  pcapPath?: string;
  /** TAP checksum offload (default true); false makes the kernel fill in its checksums (TAP only). */
  csumOffload?: boolean;
  /** Sysctls set on the stack before the interface comes up. */
  sysctl?: Record<string, number | boolean | string>;
  /** IPv6 too: the kernel is 2001:db8:<subnet>::1/64, the stack ::2 (host6/us6). */
  ipv6?: boolean;
  /** The kernel side (.1) as the stack's default gateway (for peers beyond the namespace). */
  gateway?: boolean;
}

export interface KernelLink {
  ns: string;
  /** Kernel and stack addresses, dotted and u32. */
  host: string;
  us: string;
  hostAddr: number;
  usAddr: number;
  /** With `ipv6`: the kernel's and the stack's IPv6 addresses ('' otherwise). */
  host6: string;
  us6: string;
  stack: Stack;
  loop: RunLoop;
  /** The stack's device (under any FaultInjector and capture). */
  dev: TapDriver | AfPacketDriver;
  /** The TAP device; throws on an AF_PACKET link. */
  readonly tap: TapDriver;
  faults: FaultInjector | null;
  pcap: PcapWriter | null;
  /** Stops the loop, closes the stack and the capture, removes the namespace. Never throws. */
  close(): void;
}

export function openKernelLink(o: KernelLinkOptions): KernelLink {
  const ns = createNetns(o.name);
  const host = `198.18.${o.subnet}.1`, us = `198.18.${o.subnet}.2`;
  const host6 = o.ipv6 ? `2001:db8:${o.subnet}::1` : '', us6 = o.ipv6 ? `2001:db8:${o.subnet}::2` : '';
  let dev: TapDriver | AfPacketDriver | null = null;
  try {
    const hostAddrs = { hostAddr: `${host}/24`, ...(o.ipv6 && { hostAddr6: `${host6}/64` }) };
    if (o.driver === 'afpacket') {
      if (o.csumOffload === false) throw new Error('openKernelLink: csumOffload is a TAP option');
      dev = AfPacketDriver.open({ ifname: `tst${o.name}`.slice(0, 14), netns: ns, ...hostAddrs });
    } else {
      dev = TapDriver.open({ ifname: `tst${o.name}`.slice(0, 15), netns: ns, csumOffload: o.csumOffload, ...hostAddrs });
    }
    const stack = new Stack({ clock: realClock, name: o.name });
    for (const [k, v] of Object.entries(o.sysctl ?? {})) stack.sysctl.set(k, v);
    let driver: Driver = dev;
    let faults: FaultInjector | null = null;
    if (o.faults) {
      faults = new FaultInjector(dev, { clock: realClock, seed: o.faults.seed, tx: o.faults.tx, rx: o.faults.rx });
      driver = faults;
    }
    let pcap: PcapWriter | null = null;
    if (o.pcapPath) {
      pcap = new PcapWriter(o.pcapPath);
      driver = capture(driver, pcap, realClock);
    }
    const ifIndex = stack.addInterface(driver, { addr: `${us}/24`, ...(o.gateway && { gateway: host }), ...(o.ipv6 && { addr6: `${us6}/64` }) });
    const loop = new RunLoop({ stack, poll: 'adaptive' });
    loop.addPort(driver, ifIndex);
    loop.start();
    const d = dev;
    return {
      ns, host, us, hostAddr: parseIpv4(host)!, usAddr: parseIpv4(us)!, host6, us6, stack, loop, dev: d, faults, pcap,
      get tap(): TapDriver {
        if (!(d instanceof TapDriver)) throw new Error(`openKernelLink: ${o.name} is an AF_PACKET link, not TAP`);
        return d;
      },
      close() {
        try { loop.stop(); } catch { /* a driver error on the way out changes nothing */ }
        try { stack.close(); } catch { /* idem */ }
        try { pcap?.close(); } catch { /* idem */ }
        destroyNetns(ns);
      },
    };
  } catch (e) {
    dev?.close();
    destroyNetns(ns);
    throw e;
  }
}

// ---- nftables loss on the kernel side ----

/**
 * Drops `percent`% of TCP segments at random in both directions on the kernel side of the
 * namespace (input and output hooks), with counters so a test can prove drops happened.
 */
export function addKernelLoss(ns: string, percent: number): void {
  const rules = `table inet tstloss {
  chain in { type filter hook input priority 0; meta l4proto tcp numgen random mod 100 < ${percent} counter drop; }
  chain out { type filter hook output priority 0; meta l4proto tcp numgen random mod 100 < ${percent} counter drop; }
}
`;
  exec(ns, 'nft', ['-f', '-'], { input: rules });
}

/** Packets dropped so far by addKernelLoss's rules: { in, out }. */
export function kernelLossCounters(ns: string): { in: number; out: number } {
  const j = JSON.parse(exec(ns, 'nft', ['-j', 'list', 'table', 'inet', 'tstloss'])) as { nftables: Record<string, unknown>[] };
  const res = { in: 0, out: 0 };
  for (const item of j.nftables) {
    const rule = item['rule'] as { chain: string; expr: Record<string, unknown>[] } | undefined;
    if (!rule) continue;
    for (const e of rule.expr) {
      const c = e['counter'] as { packets: number } | undefined;
      if (c && (rule.chain === 'in' || rule.chain === 'out')) res[rule.chain] += c.packets;
    }
  }
  return res;
}

// ---- the Python peer ----

export interface PeerHandle {
  /** Resolves when a server-mode peer is listening (its {"ready": port} line). */
  ready: Promise<void>;
  /** The peer's final JSON line; rejects when it exits without one (with its stderr). */
  result: Promise<Record<string, unknown>>;
  kill(): void;
}

/** Runs tcp_peer.py with `args` inside ns; killed after timeoutMs. `family` 6: its servers listen on IPv6 ::. */
export function startPeer(ns: string, args: (string | number)[], timeoutMs = 60_000, family: 4 | 6 = 4): PeerHandle {
  const p = spawn('ip', ['netns', 'exec', ns, 'python3', '-u', PEER_SCRIPT, ...args.map(String)], {
    stdio: ['ignore', 'pipe', 'pipe'], ...(family === 6 && { env: { ...process.env, TCP_PEER_FAMILY: '6' } }),
  });
  let stdout = '', stderr = '';
  let readyResolve!: () => void, readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
  let last: Record<string, unknown> | null = null;
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    let nl: number;
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      try {
        const obj = JSON.parse(line) as Record<string, unknown>;
        if ('ready' in obj) readyResolve(); else last = obj;
      } catch { stderr += `(stdout) ${line}\n`; }
    }
  });
  p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    p.on('error', (e) => { clearTimeout(timer); readyReject(e); reject(e); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const err = new Error(`peer ${args.join(' ')} exited (code ${code}, signal ${signal}) without a result; stderr: ${stderr.trim()}`);
      readyReject(err);
      if (last) resolve(last); else reject(err);
    });
  });
  // A test that never awaits `ready` must not see an unhandled rejection.
  ready.catch(() => {});
  return { ready, result, kill: () => p.kill('SIGKILL') };
}

// ---- the tstack side of a stream ----

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Writes all of `data`, then shuts down writing (FIN), feeding the socket as the send buffer
 * drains. Resolves once the last byte is queued and the FIN requested; rejects when write
 * throws (EPIPE: the connection went away).
 */
export function pump(s: TcpSocket, data: Uint8Array, chunk = 64 * 1024): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    const go = (): void => {
      try {
        while (off < data.length) {
          const n = s.write(data.subarray(off, Math.min(data.length, off + chunk)));
          if (n === 0) return;
          off += n;
        }
      } catch (e) { reject(e as Error); return; }
      s.onDrain = null;
      s.shutdown();
      resolve();
    };
    s.onDrain = go;
    go();
  });
}

export interface Received { bytes: number; sha: string }

/**
 * Hashes everything readable until the peer's FIN; rejects when the connection closes with
 * an error first. Sets onData/onEnd (and chains onClose).
 */
export function drain(s: TcpSocket): Promise<Received> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    const readAll = (): void => { for (let c = s.read(); c; c = s.read()) { h.update(c); bytes += c.length; } };
    s.onData = readAll;
    s.onEnd = () => { readAll(); resolve({ bytes, sha: h.digest('hex') }); };
    const prev = s.onClose;
    s.onClose = (err) => {
      prev?.(err);
      if (err) reject(err);
    };
  });
}

/** Resolves with the error code (or null) when the socket closes. */
export function closed(s: TcpSocket): Promise<string | null> {
  return new Promise((resolve) => {
    const prev = s.onClose;
    s.onClose = (err) => { prev?.(err); resolve(err ? String(err.code) : null); };
  });
}

/** Polls `cond` every 10 ms until it holds (true) or timeoutMs passes (false). */
export async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** Rejects after ms with `what` in the message (to bound an await in a test). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

