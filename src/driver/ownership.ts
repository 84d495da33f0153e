// Which network devices are tstack's to replace or delete. A driver that creates a device
// (a TAP, a veth pair, an AF_XDP veth) marks it with the interface alias
// `tstack:<pid>:<start time>` of the process that holds it, and before creating one it claims
// the name:
// - absent: go ahead;
// - marked by a tstack process that has since died (a crashed run, `kill -9`): a leftover of
//   ours, deleted so the new run can create it again;
// - marked by a tstack process that is still running: refused, untouched ("tst0 exists and
//   belongs to running tstack pid N");
// - anything else (no alias, another alias): refused, untouched ("exists and was not created
//   by tstack").
// A driver deletes, when it closes or when its start fails, only a device that carries its own
// process's mark (deleteOwnDevice). The start time makes a recycled pid no owner.
//
// Starting is on the restart path (a crashed run must serve again within a second), so `ip` runs
// as few times as it can: whether a name exists is asked of the kernel directly
// (if_nametoindex in the namespace), and the changes go to one `ip -batch` per step.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ifNameToIndex } from './sys/libc.js';
import { inNetns, run } from './sys/netns.js';

export class DeviceOwnershipError extends Error {
  constructor(message: string, readonly ifname: string, readonly ownerPid: number | null) {
    super(message);
    this.name = 'DeviceOwnershipError';
  }
}

/** A device's mark: the pid that holds it and that process's start time (clock ticks after boot). */
export interface DeviceOwner { pid: number; start: string }

const TAG = /^tstack:(\d+):(\d+)$/;

/** This process's start time from /proc/<pid>/stat (field 22), '' when unreadable. */
function startTime(pid: number | 'self'): string | null {
  let stat: string;
  try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return null; }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields restart after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); a zombie has exited already.
  if (rest[0] === 'Z' || rest[0] === 'X') return null;
  return rest[19] ?? null;
}

let ownTag: string | null = null;
/** The alias this process puts on the devices it creates. */
export function ownerTag(): string {
  ownTag ??= `tstack:${process.pid}:${startTime('self') ?? '0'}`;
  return ownTag;
}

export function parseOwner(alias: string): DeviceOwner | null {
  const m = TAG.exec(alias.trim());
  return m ? { pid: Number(m[1]), start: m[2]! } : null;
}

/** True while the process that marked a device runs (the same process: pid and start time). */
export function ownerAlive(o: DeviceOwner): boolean {
  return startTime(o.pid) === o.start;
}

/**
 * Waits (blocking, up to ms) for the owner to exit: after a `kill -9` of `tstack run`, the
 * restart may come while the killed program is still on its way out. True once it is gone.
 */
function exitsWithin(o: DeviceOwner, ms: number): boolean {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; ownerAlive(o); waited += 20) {
    if (waited >= ms) return false;
    Atomics.wait(sleeper, 0, 0, 20);
  }
  return true;
}

const at = (netns: string | undefined) => (netns !== undefined ? ['-n', netns] : []);
const where = (netns: string | undefined) => (netns !== undefined ? ` in network namespace ${netns}` : '');

/** Throws a clear error when `netns` names no namespace (ip's own message is cryptic). */
export function checkNetns(netns: string | undefined): void {
  if (netns === undefined || existsSync(`/var/run/netns/${netns}`)) return;
  throw new Error(`network namespace ${JSON.stringify(netns)} does not exist (create it with: ip netns add ${netns})`);
}

/** True when `name` is a device in `netns` (this namespace when undefined). */
export function deviceExists(name: string, netns?: string): boolean {
  return inNetns(netns, () => ifNameToIndex(name) !== 0);
}

/** Runs `ip [-n netns] -batch -` with one command per line (stops at the first that fails). */
export function ipBatch(netns: string | undefined, lines: string[]): void {
  if (lines.length === 0) return;
  run('ip', [...at(netns), '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** The device's alias ('' when it has none), or null when there is no such device. */
export function deviceAlias(name: string, netns?: string): string | null {
  let out: string;
  try {
    out = run('ip', [...at(netns), '-j', 'link', 'show', 'dev', name]);
  } catch (e) {
    const msg = (e as Error).message;
    if (/does not exist|Cannot find device/i.test(msg)) return null;
    checkNetns(netns);
    throw e;
  }
  const links = JSON.parse(out) as { ifname: string; ifalias?: string }[];
  return links[0]?.ifalias ?? '';
}

/** Every device of the namespace: its alias ('' for none) and the device it is linked to (a veth's peer). */
function listDevices(netns: string | undefined): Map<string, { alias: string; link: string }> {
  let out: string;
  try { out = run('ip', [...at(netns), '-j', 'link', 'show']); } catch (e) { checkNetns(netns); throw e; }
  const links = JSON.parse(out) as { ifname: string; ifalias?: string; link?: string }[];
  return new Map(links.map((l) => [l.ifname, { alias: l.ifalias ?? '', link: l.link ?? '' }]));
}

/**
 * Which of `names` are a dead tstack's leftovers (to replace); throws DeviceOwnershipError,
 * touching nothing, for a device someone else owns. Returns the leftovers to delete: a veth
 * whose peer is deleted with it is not listed twice.
 */
function leftoversOf(names: string[], netns: string | undefined): string[] {
  checkNetns(netns);
  // The usual case (a clean start): nothing by those names, and no `ip` to run.
  const present = names.filter((n) => deviceExists(n, netns));
  if (present.length === 0) return [];
  const devices = listDevices(netns);
  const leftovers: string[] = [];
  for (const name of present) {
    const alias = devices.get(name)?.alias ?? null;
    if (alias === null) continue;
    const owner = parseOwner(alias);
    if (owner === null) {
      throw new DeviceOwnershipError(`${name} exists${where(netns)} and was not created by tstack: choose another ifname, `
        + `or remove it yourself (tstack only deletes devices it created)`, name, null);
    }
    if (owner.pid === process.pid && alias === ownerTag()) {
      throw new DeviceOwnershipError(`${name} exists${where(netns)} and belongs to this process (configured twice?)`, name, owner.pid);
    }
    if (!exitsWithin(owner, 500)) {
      throw new DeviceOwnershipError(`${name} exists${where(netns)} and belongs to running tstack pid ${owner.pid}: `
        + `stop that instance first, or give this one another ifname`, name, owner.pid);
    }
    leftovers.push(name);
  }
  // A veth's two ends go together: the second is gone with the first.
  return leftovers.filter((n, i) => !leftovers.slice(0, i).some((m) => devices.get(m)?.link === n || devices.get(n)?.link === m));
}

/**
 * Makes sure `name` (and the other names a driver will create with it, say a veth's peer) can
 * be created: absent, or a dead tstack's leftover (deleted here). Throws DeviceOwnershipError,
 * touching nothing, for a device someone else owns. Returns the names of leftovers replaced.
 */
export function claimDeviceNames(names: string[], netns?: string): string[] {
  const leftovers = leftoversOf(names, netns);
  for (const name of leftovers) {
    try { run('ip', [...at(netns), 'link', 'del', 'dev', name]); } catch (e) { if (deviceExists(name, netns)) throw e; }
  }
  return leftovers;
}

/** Marks a device this process created as its own. */
export function markDevice(name: string, netns?: string): void {
  run('ip', [...at(netns), 'link', 'set', 'dev', name, 'alias', ownerTag()]);
}

/** Deletes `name` if, and only if, it carries this process's mark. Never throws. */
export function deleteOwnDevice(name: string, netns?: string): boolean {
  try {
    if (deviceAlias(name, netns) !== ownerTag()) return false;
    run('ip', [...at(netns), 'link', 'del', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

/** What a driver that sends through its own end of a veth pair asks of the pair. */
export interface VethPairOptions {
  /** Our end (the driver's socket binds to it) and the kernel's end. */
  name: string;
  kernelEnd: string;
  netns?: string;
  mtu: number;
  /** Addresses for the kernel's end (IPv6 added without DAD). */
  hostAddr?: string;
  hostAddr6?: string;
  /** Receive and transmit queues of both ends (veth's numrxqueues/numtxqueues); default the kernel's (1). */
  queues?: number;
}

/**
 * Creates a veth pair the AF_PACKET and AF_XDP drivers send through, both ends marked as this
 * process's: a dead run's leftover is replaced first, anyone else's device refused untouched
 * (claimDeviceNames). Our end carries only the stack's traffic: no IPv6 (no router
 * solicitations, no NDP) and no ARP from this namespace's kernel, set before it is up so
 * nothing leaves first. On failure the caller deletes with deleteOwnDevice, which touches only
 * what this created.
 */
const queuesOf = (o: VethPairOptions): string => (o.queues !== undefined && o.queues > 1 ? ` numtxqueues ${o.queues} numrxqueues ${o.queues}` : '');

export function createVethPair(o: VethPairOptions): void {
  // A dead run's pair is deleted in the same batch that creates ours; created and marked in one
  // go: a failure after this point finds our mark and cleans up.
  ipBatch(o.netns, [
    ...leftoversOf([o.name, o.kernelEnd], o.netns).map((n) => `link del dev ${n}`),
    `link add ${o.name} mtu ${o.mtu}${queuesOf(o)} type veth peer name ${o.kernelEnd} mtu ${o.mtu}${queuesOf(o)}`,
    `link set dev ${o.name} alias ${ownerTag()}`,
  ]);
  // /proc/sys/net is the namespace of the thread that opens it: ours, inside inNetns.
  const key = `/proc/sys/net/ipv6/conf/${o.name}/disable_ipv6`;
  try {
    inNetns(o.netns, () => writeFileSync(key, '1'));
  } catch (e) { throw new Error(`${key}: ${(e as Error).message}`); }
  ipBatch(o.netns, [
    `link set dev ${o.name} arp off up`,
    `link set dev ${o.kernelEnd} alias ${ownerTag()} up`,
    ...(o.hostAddr ? [`addr add ${o.hostAddr} dev ${o.kernelEnd}`] : []),
    ...(o.hostAddr6 ? [`addr add ${o.hostAddr6} dev ${o.kernelEnd} nodad`] : []),
  ]);
}
