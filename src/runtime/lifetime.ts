// A program under `tstack run` lives no longer than its `tstack run`.
import { constants } from 'node:os';
import { setParentDeathSignal } from '../driver/sys/libc.js';

/**
 * Under `tstack run` (TSTACK_RUN_PID names it), the program dies with it: a `kill -9` of
 * `tstack run` must not leave an orphan holding the device, which would keep the next start
 * from creating it. The death signal is SIGKILL: the parent is gone, nobody is left to pass a
 * gentler signal on or to wait for a graceful exit. A veth left behind by it is a dead owner's,
 * which the next start replaces (src/driver/ownership.ts).
 */
export function dieWithRunParent(): void {
  const parent = process.env['TSTACK_RUN_PID'];
  if (parent === undefined) return;
  delete process.env['TSTACK_RUN_PID'];
  if (process.platform !== 'linux') return;
  try {
    setParentDeathSignal(constants.signals.SIGKILL);
  } catch (e) {
    process.stderr.write(`tstack: cannot tie the program to tstack run's lifetime: ${(e as Error).message}\n`);
    return;
  }
  // The parent may have died before the signal was armed: then we are an orphan already.
  if (String(process.ppid) !== parent) process.exit(1);
}

