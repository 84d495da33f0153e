// Shelling out and entering namespaces, for the drivers' setup (never per packet).
import { execFileSync } from 'node:child_process';
import * as libc from './libc.js';

/** Runs a command (no shell) and returns its stdout; throws with its stderr on failure. */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs ?? 10_000,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

/** Runs fn with the calling thread inside namespace `netns` (when given), and always back out. */
export function inNetns<T>(netns: string | undefined, fn: () => T): T {
  if (netns === undefined) return fn();
  const target = libc.open(`/var/run/netns/${netns}`, libc.O_RDONLY | libc.O_CLOEXEC);
  if (target < 0) throw new libc.SysError(`open(/var/run/netns/${netns})`, libc.errno());
  const orig = libc.open('/proc/thread-self/ns/net', libc.O_RDONLY | libc.O_CLOEXEC);
  if (orig < 0) { const e = libc.errno(); libc.close(target); throw new libc.SysError('open(/proc/thread-self/ns/net)', e); }
  try {
    if (libc.setns(target, libc.CLONE_NEWNET) < 0) throw new libc.SysError(`setns(${netns})`, libc.errno());
    try {
      return fn();
    } finally {
      // Staying in the other namespace would move every later socket of this thread there.
      if (libc.setns(orig, libc.CLONE_NEWNET) < 0) {
        const e = new libc.SysError('setns(back to the original namespace)', libc.errno());
        process.emitWarning(e.message);
        throw e;
      }
    }
  } finally {
    libc.close(target);
    libc.close(orig);
  }
}
