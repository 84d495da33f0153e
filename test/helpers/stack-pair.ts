// Two stacks joined back to back by a minimal in-test link (no driver, no fault injection):
// frames move only when run() delivers them, on a virtual clock.
import { BufferPool, type PacketBuffer } from '../../src/base/pktbuf.js';
import { NO_OFFLOADS, type NetDevice } from '../../src/base/device.js';
import { Stack } from '../../src/stack/stack.js';
import { VirtualClock } from '../../src/base/time.js';

export class PipeDevice implements NetDevice {
  readonly offloads = NO_OFFLOADS;
  peer: PipeDevice | null = null;
  readonly inbox: PacketBuffer[] = [];
  sent = 0;
  dropNext = 0;
  constructor(readonly name: string, readonly mac: Uint8Array, readonly mtu = 1500) {}
  transmit(buf: PacketBuffer): void {
    this.sent++;
    if (this.dropNext > 0) { this.dropNext--; buf.release(); return; }
    this.peer!.inbox.push(buf);
  }
}

export function pair() {
  const clock = new VirtualClock(0);
  const pool = new BufferPool();
  const da = new PipeDevice('a0', Uint8Array.of(2, 0, 0, 0, 0, 1));
  const db = new PipeDevice('b0', Uint8Array.of(2, 0, 0, 0, 0, 2));
  da.peer = db; db.peer = da;
  const a = new Stack({ clock, pool, name: 'a' });
  const b = new Stack({ clock, pool, name: 'b' });
  a.addInterface(da, { addr: '198.18.0.1/24' });
  b.addInterface(db, { addr: '198.18.0.2/24' });
  /** Delivers queued frames until quiet, then lets time pass up to `ms`. */
  const run = (ms = 0) => {
    const until = clock.now() + ms;
    for (let guard = 0; guard < 100000; guard++) {
      let moved = false;
      for (const [st, dev] of [[a, da], [b, db]] as const) {
        while (dev.inbox.length) { st.input(1, dev.inbox.shift()!); moved = true; }
        st.poll(clock.now());
      }
      if (moved) continue;
      const next = Math.min(a.poll(clock.now()), b.poll(clock.now()));
      if (next > until) break;
      clock.set(Math.max(next, clock.now()));
    }
    clock.set(until);
    a.poll(); b.poll();
  };
  return { clock, pool, a, b, da, db, run };
}
