// The worker side of `tstack run` with `[stack] workers = N > 1` (docs/architecture.md,
// "Workers"; the supervisor is src/runtime/cluster.ts). A worker is a process running the
// unmodified program on its own stack, which owns one queue of every port. The supervisor
// tells it who it is through the environment, and they talk over the IPC channel:
//   worker -> supervisor  {t:'ready'} once the stack is up; {t:'beat'} every BEAT_MS while the
//                         event loop turns (the watchdog's evidence); {t:'arp', …} for each
//                         neighbour a received ARP packet taught this worker.
//   supervisor -> worker  {t:'arp', …} learned by another worker: installed without asking.
// The channel never keeps the program alive: it ends when its own handles are gone.
import { FlowKey, FlowKind, rssClassify, rssClassifyIp, rssHash6, rssQueueOfTuple4 } from '../wire/rss.js';
import type { PacketBuffer } from '../base/pktbuf.js';
import type { Stack } from '../stack/stack.js';
import type { Instance } from './instance.js';
import type { ControlServer } from './control.js';

/** Who this process is among the workers: from the supervisor's environment variables. */
export interface WorkerIdentity {
  /** 0..count-1: the queue this worker owns on every port. */
  index: number;
  count: number;
  /** Seed of the instance's shared choices (fanout group ids, the ports' default MAC). */
  seed: number;
  /** PACKET_FANOUT slot of each queue's socket (see src/driver/fanout.ts). */
  slots: number[];
  /** AF_XDP ports: the id of the XSKMAP the supervisor's program redirects through, by port index. */
  xskMaps?: Record<number, number>;
}

export const WORKER_ENV = { index: 'TSTACK_WORKER', count: 'TSTACK_WORKERS', seed: 'TSTACK_WORKER_SEED', slots: 'TSTACK_FANOUT_SLOTS', xskMaps: 'TSTACK_XSKMAPS' } as const;

/** The identity the supervisor gave this process, or null when it is not one of several workers. */
export function workerFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerIdentity | null {
  const i = env[WORKER_ENV.index], n = env[WORKER_ENV.count];
  if (i === undefined || n === undefined) return null;
  const index = Number(i), count = Number(n), seed = Number(env[WORKER_ENV.seed] ?? 1);
  if (!Number.isInteger(index) || !Number.isInteger(count) || index < 0 || index >= count) return null;
  const raw = (env[WORKER_ENV.slots] ?? '').split(',').filter((s) => s !== '').map(Number);
  const slots = raw.length === count && raw.every((s) => Number.isInteger(s) && s >= 0) ? raw : Array.from({ length: count }, (_, k) => k);
  const xskMaps: Record<number, number> = {};
  for (const pair of (env[WORKER_ENV.xskMaps] ?? '').split(',')) {
    const [port, id] = pair.split(':').map(Number);
    if (Number.isInteger(port) && Number.isInteger(id) && id! > 0) xskMaps[port!] = id!;
  }
  return { index, count, seed: Number.isInteger(seed) ? seed : 1, slots, ...(Object.keys(xskMaps).length > 0 && { xskMaps }) };
}

/** The MAC every worker of an instance uses on port `port` when the config gives none. */
export function workerMac(seed: number, port: number): Uint8Array {
  return new Uint8Array([0x02, 0x74, 0x77, (seed >>> 8) & 0xff, seed & 0xff, port & 0xff]);
}

/** The TCP port filter of worker `w` (ff_rss_check): the return traffic must hash to its queue. */
export function ownsTuple(w: WorkerIdentity): (laddr: number, lport: number, raddr: number, rport: number) => boolean {
  const me = w.index, n = w.count;
  return (laddr, lport, raddr, rport) => rssQueueOfTuple4(laddr, raddr, lport, rport, n) === me;
}

/** ownsTuple for IPv6 active opens. */
export function ownsTuple6(w: WorkerIdentity): (laddr6: Uint8Array, lport: number, raddr6: Uint8Array, rport: number) => boolean {
  const me = w.index, n = w.count;
  return (laddr6, lport, raddr6, rport) => rssHash6(laddr6, 0, raddr6, 0, lport, rport) % n === me;
}

/**
 * The UDP port filter of worker `w`: an ephemeral port p belongs to worker p % N (so a datagram
 * to a port no socket of the receiving worker holds goes to p % N), and, when the first peer is
 * known (connect(), or send() on an unbound socket), its replies must hash to this worker too,
 * so they come straight here (ff_rss_check, as for TCP).
 */
export function ownsUdpPort(w: WorkerIdentity): (lport: number, laddr: number, raddr: number, rport: number) => boolean {
  const me = w.index, n = w.count;
  return (lport, laddr, raddr, rport) => lport % n === me && (raddr === 0 || laddr === 0 || rssQueueOfTuple4(laddr, raddr, lport, rport, n) === me);
}

/**
 * Who owns a received frame or a reassembled datagram, for worker `me` of `n` (the software
 * steering; docs/architecture.md "Workers"):
 *   TCP, and ICMP errors about TCP      the flow hash's worker (accepted by it, or opened by it
 *                                       with a port that hashes back to it);
 *   a fragment                          the worker its (addresses, proto, id) hash picks: it
 *                                       reassembles, then steers the whole datagram (packet());
 *   UDP, and ICMP errors about UDP      this worker when it has a socket on our port (a port
 *                                       every copy of the program bound: any worker may take
 *                                       it, as with SO_REUSEPORT); else the port's owner, p % N;
 *   anything else (ARP, echo, IGMP…)    this worker.
 */
export interface FlowOwner {
  frame(b: Uint8Array, off: number, len: number): number;
  packet(b: Uint8Array, off: number, len: number, v6: boolean): number;
}

export function flowOwner(stack: Stack, me: number, n: number): FlowOwner {
  const key = new FlowKey();
  const owner = (b: Uint8Array): number => {
    switch (key.kind) {
      case FlowKind.Tcp:
      case FlowKind.Fragment:
        return key.hash % n;
      case FlowKind.Udp: {
        const udp = stack.udp;
        const here = key.v6 ? udp.hasSocket6(b, key.localOff6, key.localPort) : udp.hasSocket(key.localAddr, key.localPort);
        return here ? me : key.localPort % n;
      }
      default:
        return me;
    }
  };
  return {
    frame(b, off, len) { rssClassify(b, off, len, key); return owner(b); },
    packet(b, off, len, v6) { rssClassifyIp(b, off, len, v6, key); return owner(b); },
  };
}

const BEAT_MS = 100;

type Msg = { t: 'arp'; ifIndex: number; ip: number; mac: number[] } | { t: 'frame'; to: number; ifIndex: number; data: Uint8Array; meta: number[] } | { t: string };

/** Steering counters of this worker (frames of flows another worker owns). */
export const steering = { forwarded: 0, received: 0, reassembled: 0 };

/**
 * Connects the worker's instance to the supervisor: ready, heartbeats, ARP both ways. A no-op
 * without an IPC channel (a worker started by hand).
 */
export interface WorkerLink {
  /** Hands a received frame to worker `to` (takes the buffer). */
  forward(to: number, ifIndex: number, buf: PacketBuffer): void;
}

export function attachWorker(inst: Instance, w: WorkerIdentity, control: ControlServer | null = null): WorkerLink | null {
  const send = process.send?.bind(process);
  if (!send || !process.channel) return null;
  const post = (m: object) => { try { send(m); } catch { /* the supervisor is gone: we die with it */ } };
  inst.stack.arp.onLearned = (ifIndex, ip, mac, off) => {
    post({ t: 'arp', ifIndex, ip, mac: Array.from(mac.subarray(off, off + 6)) });
  };
  inst.stack.ip6.ndp.onLearned = (ifIndex, addr, addrOff, mac, macOff) => {
    post({ t: 'ndp', ifIndex, addr: Array.from(addr.subarray(addrOff, addrOff + 16)), mac: Array.from(mac.subarray(macOff, macOff + 6)) });
  };
  // Software steering (F-Stack's dispatch ring, here the IPC channel through the supervisor): a
  // TCP/UDP frame whose flow hashes to another worker's queue goes to that worker. With the
  // AF_PACKET fanout program this happens only around a worker's replacement; the owner of a
  // flow is always hash % N, so no connection moves.
  const me = w.index, n = w.count;
  const forward = (to: number, ifIndex: number, buf: PacketBuffer): void => {
    steering.forwarded++;
    // The offload state travels too: a kernel peer's partial checksum is trusted as it would be here.
    post({ t: 'frame', to, ifIndex, data: buf.data.slice(buf.start, buf.end), meta: [buf.csum, buf.csumStart - buf.start, buf.csumOffset, buf.gso, buf.gsoSize] });
    buf.release();
  };
  const owners = flowOwner(inst.stack, me, n);
  inst.loop.steer = (ifIndex: number, buf: PacketBuffer): boolean => {
    const to = owners.frame(buf.data, buf.start, buf.end - buf.start);
    if (to === me) return false;
    forward(to, ifIndex, buf);
    return true;
  };
  // A datagram this worker reassembled (its fragments hashed here) goes on to its flow's owner,
  // framed again for the owner's stack.input.
  const reassembled = (v6: boolean) => (ifIndex: number, buf: PacketBuffer): boolean => {
    const len = buf.end - buf.start;
    const to = owners.packet(buf.data, buf.start, len, v6);
    if (to === me) return false;
    const mac = inst.stack.interfaceByIndex(ifIndex)?.mac;
    if (!mac) return false;
    steering.forwarded++;
    steering.reassembled++;
    const data = new Uint8Array(14 + len);
    data.set(mac, 0);
    data[12] = v6 ? 0x86 : 0x08; data[13] = v6 ? 0xdd : 0x00;
    data.set(buf.data.subarray(buf.start, buf.end), 14);
    post({ t: 'frame', to, ifIndex, data, meta: [buf.csum, buf.csumStart - buf.start + 14, buf.csumOffset, buf.gso, buf.gsoSize] });
    buf.release();
    return true;
  };
  inst.stack.ipv4.onReassembled = reassembled(false);
  inst.stack.ip6.onReassembled = reassembled(true);
  // A change an operator makes through one worker's control socket (sysctl, route, ifconfig,
  // static ARP) is made on every worker; the supervisor replays them to replacements.
  if (control) control.onChange = (cmd, args) => post({ t: 'change', cmd, args });
  process.on('message', (m: Msg) => {
    if (m && m.t === 'change' && control) {
      const c = m as unknown as { cmd: string; args: Record<string, unknown> };
      control.apply(c.cmd, c.args).catch((e: Error) => process.stderr.write(`tstack: worker ${w.index}: cannot apply ${c.cmd}: ${e.message}\n`));
    } else if (m && m.t === 'frame') {
      const f = m as Extract<Msg, { t: 'frame' }>;
      const port = inst.ports.find((p) => p.ifIndex === f.ifIndex);
      if (!port || !(f.data instanceof Uint8Array)) return;
      inst.loop.post(() => {
        const b = port.driver.pool.alloc(port.driver.pool.headroom + f.data.length);
        b.data.set(f.data, b.start);
        b.end = b.start + f.data.length;
        const [csum, cs, co, gso, gsoSize] = f.meta;
        b.csum = csum as typeof b.csum; b.csumStart = b.start + (cs ?? 0); b.csumOffset = co ?? 0;
        b.gso = gso as typeof b.gso; b.gsoSize = gsoSize ?? 0;
        steering.received++;
        inst.stack.input(f.ifIndex, b);
        inst.loop.kick();
      });
    } else if (m && m.t === 'ndp') {
      const a = m as unknown as { ifIndex: number; addr: number[]; mac: number[] };
      inst.loop.post(() => { inst.stack.ip6.ndp.learnShared(a.ifIndex, Uint8Array.from(a.addr), Uint8Array.from(a.mac)); inst.loop.kick(); });
    } else if (m && m.t === 'arp') {
      const a = m as Extract<Msg, { t: 'arp' }>;
      // Commands on the stack run between iterations, on its thread (this one).
      inst.loop.post(() => { inst.stack.arp.learn(a.ifIndex, a.ip, Uint8Array.from(a.mac)); inst.loop.kick(); });
    }
  });
  // Listening for messages refs the channel: unref it so the program exits as it would alone.
  process.channel.unref();
  const beat = setInterval(() => post({ t: 'beat' }), BEAT_MS);
  beat.unref();
  post({ t: 'ready', index: w.index, pid: process.pid });
  return { forward };
}
