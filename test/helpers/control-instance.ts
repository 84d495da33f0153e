// In-process instances (memory ports, no root) with a control socket and a connected client,
// as the control-socket unit tests use them; everything started is stopped in after().
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { ControlServer } from '../../src/runtime/control.js';
import { ControlClient, ToolError } from '../../src/cli/client.js';

export interface ControlInstance { inst: Instance; server: ControlServer; c: ControlClient; sock: string }

/** A temporary directory for `tag`'s sockets and configs, removed (with every instance) in after(). */
export function controlInstances(tag: string): { dir: string; start(name: string, portToml: string): Promise<ControlInstance> } {
  const dir = mkdtempSync(join(tmpdir(), `tstack-${tag}-`));
  const open: ControlInstance[] = [];
  after(() => {
    for (const o of open) { o.c.close(); o.server.close(); o.inst.stop(); }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    /** An instance whose one memory port `mem0` has `portToml` (addresses…), serving `dir/NAME.sock`. */
    async start(name, portToml) {
      const sock = join(dir, `${name}.sock`);
      const inst = startInstance(parseConfig(`[[port]]\ndriver = "memory"\nifname = "mem0"\n${portToml}\n[control]\nsocket = "${sock}"\n`, join(dir, `${name}.toml`)));
      const server = new ControlServer(inst, { onWarning: (m) => { throw new Error(m); } });
      assert.equal(await server.ready, sock);
      const c = await ControlClient.connect(sock);
      const o = { inst, server, c, sock };
      open.push(o);
      return o;
    },
  };
}

/** Asserts that `p` rejects with a ToolError of `code` whose message matches. */
export async function refused(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof ToolError && e.code === code && message.test(e.message));
}
