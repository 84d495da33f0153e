// epoll(7) for tstack/posix descriptors: interest lists, a ready list fed by the engine's
// callbacks, level- and edge-triggered reporting, one-shot entries. The shape follows Linux
// (fs/eventpoll.c): a wake-up only queues an entry, epoll_wait polls it again and reports what
// is true at that moment.

/** Linux's event bits (include/uapi/linux/eventpoll.h). */
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDNORM = 0x040;
export const EPOLLRDBAND = 0x080;
export const EPOLLWRNORM = 0x100;
export const EPOLLWRBAND = 0x200;
export const EPOLLRDHUP = 0x2000;
export const EPOLLEXCLUSIVE = 0x10000000;
export const EPOLLWAKEUP = 0x20000000;
export const EPOLLONESHOT = 0x40000000;
/** Written as a positive number; compare with `(events & EPOLLET) !== 0` (bitwise results are signed). */
export const EPOLLET = 0x80000000;

export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;

/** The input flags that are not events. */
const FLAG_BITS = (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE | EPOLLWAKEUP) >>> 0;
/** "epoll_wait(2) will always wait for this event; it is not necessary to set it in events". */
const ALWAYS = EPOLLERR | EPOLLHUP;

/** What epoll_ctl takes and epoll_wait fills in (`data` is returned untouched, like epoll_data_t). */
export interface EpollEvent<D = unknown> {
  events: number;
  data: D;
}

/** A descriptor epoll can watch: its current readiness (a poll(2) mask) and who watches it. */
export interface Pollable {
  /** The readiness mask right now (EPOLLIN/OUT/ERR/HUP/RDHUP…), like a driver's ->poll(). */
  poll(): number;
  /** Epoll entries watching this descriptor (managed by EpollSet). */
  readonly watchers: EpollEntry[];
}

/** One (epoll set, descriptor) pair: Linux's struct epitem. */
export class EpollEntry {
  /** On the ready list. */
  queued = false;
  /** EPOLLONESHOT fired: no events until EPOLL_CTL_MOD re-arms it. */
  disabled = false;
  /** EPOLL_CTL_DEL or close: skipped if still on the ready list. */
  removed = false;
  constructor(readonly set: EpollSet, readonly fd: number, readonly target: Pollable, public events: number, public data: unknown) {}
  /** Event bits asked for, plus the two that are always reported. */
  get interest(): number { return ((this.events & ~FLAG_BITS) | ALWAYS) >>> 0; }
}

export const EpollCtlResult = { Ok: 0, Exists: 1, NotFound: 2, Invalid: 3 } as const;
export type EpollCtlResult = (typeof EpollCtlResult)[keyof typeof EpollCtlResult];

/**
 * An epoll instance's state. The descriptor layer (posix.ts) owns the fd numbers and errno
 * mapping; this class owns the interest list and the ready list.
 */
export class EpollSet {
  private readonly entries = new Map<number, EpollEntry>();
  private ready: EpollEntry[] = [];
  private spare: EpollEntry[] = [];
  /** Called when an entry becomes ready (the descriptor layer wakes async waiters). */
  onReady: (() => void) | null = null;

  get size(): number { return this.entries.size; }

  add(fd: number, target: Pollable, events: number, data: unknown): EpollCtlResult {
    if (this.entries.has(fd)) return EpollCtlResult.Exists;
    const e = new EpollEntry(this, fd, target, events >>> 0, data);
    this.entries.set(fd, e);
    target.watchers.push(e);
    // Linux ep_insert: "If the file is already "ready" we drop it inside the ready list".
    this.check(e, 0);
    return EpollCtlResult.Ok;
  }

  modify(fd: number, events: number, data: unknown): EpollCtlResult {
    const e = this.entries.get(fd);
    if (!e) return EpollCtlResult.NotFound;
    // epoll_ctl(2): EINVAL "EPOLLEXCLUSIVE was specified in event and fd refers to an existing
    // epoll instance ... or an EPOLL_CTL_MOD operation with EPOLLEXCLUSIVE".
    if ((events & EPOLLEXCLUSIVE) !== 0 || (e.events & EPOLLEXCLUSIVE) !== 0) return EpollCtlResult.Invalid;
    e.events = events >>> 0;
    e.data = data;
    e.disabled = false;
    this.check(e, 0);
    return EpollCtlResult.Ok;
  }

  remove(fd: number): EpollCtlResult {
    const e = this.entries.get(fd);
    if (!e) return EpollCtlResult.NotFound;
    this.detach(e);
    return EpollCtlResult.Ok;
  }

  /** The descriptor `fd` was closed: epoll(7) "closing a file descriptor causes it to be removed from all epoll interest lists". */
  forget(e: EpollEntry): void {
    if (this.entries.get(e.fd) === e) this.detach(e);
  }

  /** Drops every entry (the epoll descriptor was closed). */
  clear(): void {
    for (const e of [...this.entries.values()]) this.detach(e);
    this.ready.length = 0;
  }

  /**
   * A wake-up from the watched descriptor. `key` says which events it is about (0 = any), the
   * way Linux's ep_poll_callback filters: "if (pollflags && !(pollflags & epi->event.events))".
   */
  check(e: EpollEntry, key: number): void {
    if (e.queued || e.disabled || e.removed) return;
    const interest = e.interest;
    if (key !== 0 && (key & interest) === 0) return;
    if ((e.target.poll() & interest) === 0) return;
    e.queued = true;
    this.ready.push(e);
    this.onReady?.();
  }

  /** True when some queued entry is still ready (for the poll mask of the epoll fd itself). */
  get hasReady(): boolean {
    for (const e of this.ready) if (!e.removed && !e.disabled && (e.target.poll() & e.interest) !== 0) return true;
    return false;
  }

  /**
   * Reports up to `max` ready entries into `out` (objects in `out` are reused), returns the
   * count. Level-triggered entries that are still ready go back on the list; edge-triggered
   * ones leave it until the next wake-up; one-shot entries are disabled.
   */
  wait(out: EpollEvent[], max: number): number {
    const cur = this.ready;
    this.ready = this.spare;
    const next = this.ready;
    next.length = 0;
    let n = 0;
    const requeue = this.spare = cur; // reused below as scratch for level-triggered entries
    let i = 0;
    let lt = 0;
    for (; i < cur.length && n < max; i++) {
      const e = cur[i]!;
      e.queued = false;
      if (e.removed || e.disabled) continue;
      const revents = (e.target.poll() & e.interest) >>> 0;
      if (revents === 0) continue;
      let slot = out[n];
      if (slot === undefined) { slot = { events: 0, data: undefined }; out[n] = slot; }
      slot.events = revents;
      slot.data = e.data;
      n++;
      if ((e.events & EPOLLONESHOT) !== 0) e.disabled = true;
      else if ((e.events & EPOLLET) === 0) requeue[lt++] = e; // still in cur's consumed prefix: safe to overwrite
    }
    // Linux ep_done_scan: entries not reached go back first, then the level-triggered ones.
    for (; i < cur.length; i++) { const e = cur[i]!; if (!e.removed) next.push(e); }
    for (let k = 0; k < lt; k++) { const e = requeue[k]!; e.queued = true; next.push(e); }
    cur.length = 0;
    return n;
  }

  private detach(e: EpollEntry): void {
    e.removed = true;
    this.entries.delete(e.fd);
    const w = e.target.watchers;
    const k = w.indexOf(e);
    if (k >= 0) w.splice(k, 1);
  }
}
