// The worker side of `tstack run` with `[stack] workers = N > 1` (docs/architecture.md,
// "Workers"; the supervisor is src/runtime/cluster.ts). A worker is a process running the
// unmodified program on its own stack, which owns one queue of every port. The supervisor
// tells it who it is through the environment, and they talk over the IPC channel:
//   worker -> supervisor  {t:'ready'} once the stack is up; {t:'beat'} every BEAT_MS while the
//                         event loop turns (the watchdog's evidence); {t:'arp', …} for each
//                         neighbour a received ARP packet taught this worker.
//   supervisor -> worker  {t:'arp', …} learned by another worker: installed without asking.
// The channel never keeps the program alive: it ends when its own handles are gone.
import { rssQueueOfTuple4 } from '../wire/rss.js';
import type { Instance } from './instance.js';

/** Who this process is among the workers: from the supervisor's environment variables. */
export interface WorkerIdentity {
  /** 0..count-1: the queue this worker owns on every port. */
  index: number;
  count: number;
  /** Seed of the instance's shared choices (fanout group ids, the ports' default MAC). */
  seed: number;
  /** PACKET_FANOUT slot of each queue's socket (see src/driver/fanout.ts). */
  slots: number[];
}

export const WORKER_ENV = { index: 'TSTACK_WORKER', count: 'TSTACK_WORKERS', seed: 'TSTACK_WORKER_SEED', slots: 'TSTACK_FANOUT_SLOTS' } as const;

/** The identity the supervisor gave this process, or null when it is not one of several workers. */
export function workerFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerIdentity | null {
  const i = env[WORKER_ENV.index], n = env[WORKER_ENV.count];
  if (i === undefined || n === undefined) return null;
  const index = Number(i), count = Number(n), seed = Number(env[WORKER_ENV.seed] ?? 1);
  if (!Number.isInteger(index) || !Number.isInteger(count) || index < 0 || index >= count) return null;
  const raw = (env[WORKER_ENV.slots] ?? '').split(',').filter((s) => s !== '').map(Number);
  const slots = raw.length === count && raw.every((s) => Number.isInteger(s) && s >= 0) ? raw : Array.from({ length: count }, (_, k) => k);
  return { index, count, seed: Number.isInteger(seed) ? seed : 1, slots };
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

const BEAT_MS = 100;

type Msg = { t: 'arp'; ifIndex: number; ip: number; mac: number[] } | { t: string };

/**
 * Connects the worker's instance to the supervisor: ready, heartbeats, ARP both ways. A no-op
 * without an IPC channel (a worker started by hand).
 */
export function attachWorker(inst: Instance, w: WorkerIdentity): void {
  const send = process.send?.bind(process);
  if (!send || !process.channel) return;
  const post = (m: object) => { try { send(m); } catch { /* the supervisor is gone: we die with it */ } };
  inst.stack.arp.onLearned = (ifIndex, ip, mac, off) => {
    post({ t: 'arp', ifIndex, ip, mac: Array.from(mac.subarray(off, off + 6)) });
  };
  process.on('message', (m: Msg) => {
    if (m && m.t === 'arp') {
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
}
