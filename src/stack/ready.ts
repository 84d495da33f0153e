// A transport's ready list: the sockets with application events waiting, each at most once
// (its `ready` flag is the intrusive part), delivered together after a receive burst
// (Stack.poll). The array keeps its storage between deliveries: marking allocates nothing once
// the list has grown to the largest burst.

/** What a ready list holds: a socket with a flag that only its list sets and clears. */
export interface ReadyItem { ready: boolean }

export class ReadyList<T extends ReadyItem> {
  private readonly items: (T | null)[] = [];
  private count = 0;
  private delivering = false;

  /**
   * `deliverOne` hands one socket its events. `hasMore` says whether a socket whose callback
   * threw still has events to deliver (it is then kept for the next delivery).
   */
  constructor(private readonly deliverOne: (item: T) => void, private readonly hasMore: (item: T) => boolean = () => false) {}

  /** Sockets wait for deliver(). */
  get pending(): boolean { return this.count > 0; }

  /** `item` has events for the next delivery (a no-op when it is already on the list). */
  mark(item: T): void {
    if (item.ready) return;
    item.ready = true;
    this.items[this.count++] = item;
  }

  /**
   * Delivers to every socket on the list, in the order they were first marked. Callbacks may
   * re-enter (write, close, open sockets): a socket they mark joins this pass, and a nested
   * deliver() returns at once. When a callback throws, the sockets not reached yet wait for
   * the next delivery.
   */
  deliver(): void {
    if (this.delivering) return;
    this.delivering = true;
    const items = this.items;
    let i = 0;
    let cur: T | null = null;
    try {
      for (; i < this.count; i++) {
        cur = items[i]!;
        items[i] = null;
        cur.ready = false;
        this.deliverOne(cur);
      }
      cur = null;
    } finally {
      let rest = 0;
      for (let k = i + 1; k < this.count; k++) { items[rest++] = items[k]!; items[k] = null; }
      this.count = rest;
      this.delivering = false;
      if (cur !== null && this.hasMore(cur)) this.mark(cur);
    }
  }

  /** Forgets every socket (the stack is shutting down). */
  clear(): void {
    for (let k = 0; k < this.count; k++) { this.items[k]!.ready = false; this.items[k] = null; }
    this.count = 0;
  }
}
