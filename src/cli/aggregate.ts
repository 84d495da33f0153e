// What the tools show of an instance with several workers (one stack and one control socket
// each): every worker is asked and the answers merged here. Counters add up; what every worker
// holds alike (addresses, routes, sysctls) is worker 0's; tables (sockets, neighbours) are the
// union, each row marked with its worker where it matters (docs/tools.md, "Workers").
import type { InterfaceSnapshot } from '../stack/stats.js';

/** Adds up two JSON values leaf by leaf: numbers add, objects merge key by key; anything else is the first's. */
export function sumTree<T>(a: T, b: unknown): T {
  if (typeof a === 'number' && typeof b === 'number') return (a + b) as T;
  if (a === undefined) return b as T;
  if (typeof a !== 'object' || a === null || Array.isArray(a) || typeof b !== 'object' || b === null || Array.isArray(b)) return a;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = sumTree(out[k], v);
  return out as T;
}

/** sumTree over a list (the first element's shape wins; an empty list is undefined). */
export function sumAll<T>(list: T[]): T {
  return list.slice(1).reduce((acc, x) => sumTree(acc, x), list[0] as T);
}

/** The per-port counters an interface snapshot carries (added up over workers). */
const IF_COUNTERS = ['rxPackets', 'rxBytes', 'rxErrors', 'rxDropped', 'rxMulticast', 'txPackets', 'txBytes', 'txErrors', 'txDropped'] as const;

/** Worker 0's interfaces (addresses, MTU, flags) with every worker's counters added up. */
export function mergeInterfaces(lists: InterfaceSnapshot[][]): InterfaceSnapshot[] {
  const [first = [], ...rest] = lists;
  return first.map((i) => {
    const m: InterfaceSnapshot = { ...i };
    for (const l of rest) {
      const o = l.find((x) => x.name === i.name);
      if (o) for (const k of IF_COUNTERS) m[k] += o[k];
    }
    return m;
  });
}

/** Device statistics per port (ifconfig's dropped columns), added up over workers. */
export function mergeDevices<D extends { port: string; stats: Record<string, number> }>(lists: D[][]): D[] {
  const [first = [], ...rest] = lists;
  return first.map((d) => ({ ...d, stats: sumAll([d.stats, ...rest.map((l) => l.find((x) => x.port === d.port)?.stats ?? {})]) }));
}

/**
 * The rows of every worker's table, one per key (worker order: worker 0's row wins, unless
 * `better` prefers a later one, e.g. a resolved neighbour over an incomplete one).
 */
export function union<R>(lists: R[][], key: (r: R) => string, better: (a: R, b: R) => boolean = () => false): R[] {
  const seen = new Map<string, R>();
  for (const l of lists) for (const r of l) {
    const k = key(r);
    const had = seen.get(k);
    if (had === undefined || better(r, had)) seen.set(k, r);
  }
  return [...seen.values()];
}

/** Every worker's rows, each with its worker number. */
export function tagged<R extends object>(lists: R[][], workers: number[]): (R & { worker: number })[] {
  return lists.flatMap((l, k) => l.map((r) => ({ ...r, worker: workers[k]! })));
}

/** Neighbour states from least to most useful (an incomplete entry on worker 0 loses to a resolved one elsewhere). */
export const betterNeighbour = (a: { state: string }, b: { state: string }): boolean => b.state === 'incomplete' && a.state !== 'incomplete';
