// Bonding against the kernel (this kernel has no bonding module: the bond is tstack's): two TAP
// ports, both enslaved to a Linux bridge in a namespace this file creates, carry an
// active-backup bond (198.18.154.2/24). The kernel behind the bridge (198.18.154.1) downloads
// 48 MiB from tstack with curl; a third of the way in, the active member's device is brought
// down; the bond fails over (carrier seen through SIOCGIFFLAGS), announces itself on the other
// member, and the download finishes with the same SHA-256. The kernel's ARP entry still names
// the bond's MAC, reachable.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import type { BondDevice } from '../../src/stack/l2/bond.js';
import { createNetns, destroyAllNetns, destroyNetns, ipIn, requireRoot, spawnIn } from '../helpers/netns.js';

after(destroyAllNetns);

const SUB = '198.18.154';
const MAC_A = '02:5e:01:54:00:0a', MAC_B = '02:5e:01:54:00:0b';

test('active-backup bond over two TAP ports on a Linux bridge: a 48 MiB download survives the active member going down', { timeout: 240_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'bridge', 'curl', 'sha256sum'])) return;
  const ns = createNetns('bond');
  const tag = process.pid % 100000;
  const devA = `ba${tag}`, devB = `bb${tag}`;
  const size = 48 << 20;
  const blob = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
  let inst: Instance | null = null;
  try {
    ipIn(ns, ['link', 'add', 'br0', 'type', 'bridge']);
    ipIn(ns, ['addr', 'add', `${SUB}.1/24`, 'dev', 'br0']);
    ipIn(ns, ['link', 'set', 'br0', 'up']);
    inst = startInstance(parseConfig(`
[stack]
poll = "interrupt"
[[port]]
driver = "tap"
ifname = "${devA}"
netns = "${ns}"
mac = "${MAC_A}"
[[port]]
driver = "tap"
ifname = "${devB}"
netns = "${ns}"
mac = "${MAC_B}"
[[bond]]
ifname = "bond0"
mode = "active-backup"
members = ["${devA}", "${devB}"]
addr = "${SUB}.2/24"
`, 'bond.toml'));
    for (const d of [devA, devB]) ipIn(ns, ['link', 'set', d, 'master', 'br0']);
    const bond = inst.stack.interfaces.find((i) => i.name === 'bond0')!;
    const dev = bond.dev as BondDevice;
    assert.equal(dev.activeName, devA);

    let wentDown = -1;
    const l = inst.stack.tcp.listen({ port: 8080 });
    l.onConnection = (s) => {
      let req = '', off = -1;
      const pump = () => {
        while (off < size) {
          const n = s.write(blob.subarray(off, Math.min(size, off + 65536)));
          off += n;
          if (wentDown < 0 && off > size / 3) {
            // The process (and the stack) waits while the device goes down: the rest of the
            // transfer must cross the failover.
            ipIn(ns, ['link', 'set', devA, 'down']);
            wentDown = off;
          }
          if (n === 0) return;
        }
        s.shutdown();
      };
      s.onData = () => {
        for (let d = s.read(); d; d = s.read()) req += Buffer.from(d).toString('latin1');
        if (off < 0 && req.includes('\r\n\r\n')) {
          s.write(Buffer.from(`HTTP/1.0 200 OK\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`));
          off = 0;
          s.onDrain = pump;
          pump();
        }
      };
    };
    // The bridge forwards once its ports are up; the first ping may be lost to that.
    const deadline = Date.now() + 20_000;
    while (!/ 1 received/.test((await spawnIn(ns, 'ping', ['-c', '1', '-W', '1', `${SUB}.2`], 10_000)).stdout)) {
      if (Date.now() > deadline) throw new Error('the bond never answered a ping through the bridge');
    }
    const r = await spawnIn(ns, 'sh', ['-c', `curl -sS --max-time 150 http://${SUB}.2:8080/ | sha256sum`], 180_000);
    assert.ok(wentDown > 0, 'the active member went down during the transfer');
    assert.equal(r.stdout.split(' ')[0], createHash('sha256').update(blob).digest('hex'), `download intact: ${r.stderr}`);
    assert.equal(dev.activeName, devB);
    assert.equal(dev.failovers, 1);
    const members = inst.stack.interfaces.filter((i) => i.master === bond);
    t.diagnostic(`down at ${(wentDown / 1048576).toFixed(1)} MiB; tx frames ${devA}: ${members[0]!.counters.txPackets}, ${devB}: ${members[1]!.counters.txPackets}`);
    assert.ok(members[1]!.counters.txPackets > 10, 'the backup member carried the rest');
    // The kernel's neighbour entry follows: the bond's MAC (its first member's), reachable through the other port.
    const neigh = ipIn(ns, ['neigh', 'show', `${SUB}.2`]);
    assert.match(neigh, new RegExp(MAC_A), neigh);
    const fdb = (await spawnIn(ns, 'bridge', ['-j', 'fdb', 'show', 'br', 'br0'], 10_000)).stdout;
    const entry = (JSON.parse(fdb) as { mac: string; ifname: string }[]).find((e) => e.mac === MAC_A);
    assert.equal(entry?.ifname, devB, `the bridge learned the bond's MAC on the new member: ${fdb}`);
  } finally {
    inst?.stop();
    destroyNetns(ns);
  }
});
