// Drives stacks on a memory wire by a virtual clock: `step()` moves what is ready now; when
// nothing moved, the clock jumps to the next wire event or stack deadline.
import type { VirtualClock } from '../../src/base/time.js';
import type { MemoryWire } from '../../src/driver/memory.js';

/** runUntil(cond, maxMs): steps and advances the clock until cond() holds or maxMs of virtual time pass; returns cond(). */
export function virtualRunner(clock: VirtualClock, wire: MemoryWire, nodes: readonly (readonly [{ poll(now: number): number }, ...unknown[]])[], step: () => boolean, defaultMaxMs: number) {
  return (cond: () => boolean, maxMs = defaultMaxMs): boolean => {
    const end = clock.now() + maxMs;
    while (!cond() && clock.now() < end) {
      if (step()) continue;
      let next = wire.nextEventTime();
      for (const [s] of nodes) next = Math.min(next, s.poll(clock.now()));
      clock.set(Math.min(end, Math.max(clock.now() + 0.01, next)));
    }
    return cond();
  };
}
