// Tests use the runtime's namespace helpers, plus requireRoot to skip (or, under CI, fail) when
// the machine cannot run an integration test.
import { hasCommand, isRoot } from '../../src/runtime/netns.js';

export * from '../../src/runtime/netns.js';

/** The part of node:test's TestContext we need. */
interface Skippable { skip(message?: string): void; }

/**
 * Returns true when the test may use namespaces and devices (root, plus `commands` on PATH).
 * Otherwise skips the test with the reason and returns false, except under CI
 * (process.env.CI set), where a missing requirement is a failure: it throws.
 */
export function requireRoot(t: Skippable, commands: string[] = ['ip']): boolean {
  let reason: string | null = null;
  if (process.platform !== 'linux') reason = 'needs Linux network namespaces';
  else if (!isRoot()) reason = 'needs root (network namespaces, TAP devices)';
  else {
    const missing = commands.filter((c) => !hasCommand(c));
    if (missing.length) reason = `needs ${missing.join(', ')} on PATH`;
  }
  if (reason === null) return true;
  if (process.env.CI) throw new Error(`integration test cannot run under CI: ${reason}`);
  t.skip(reason);
  return false;
}
