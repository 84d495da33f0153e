// TapDriver against the Linux kernel, inside a namespace of its own (root only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, Csum, type PacketBuffer } from '../../src/base/pktbuf.js';
import { TapDriver } from '../../src/driver/tap.js';
import { formatMac, parseIpv4, parseMac, writeIpv4 } from '../../src/wire/addr.js';
import { finish, fold, internetChecksum, pseudoHeaderV4, sum16 } from '../../src/wire/checksum.js';
import { createNetns, destroyNetns, exec, ipIn, requireRoot, run, spawnIn } from '../helpers/netns.js';
import { ETH_P_ARP, ETH_P_IP, Reply, icmpChecksumOk, respond, writeArpRequest } from '../helpers/l2-responder.js';

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function until(what: string, cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const HOST_IP = parseIpv4('198.18.7.1')!;
const OUR_IP = parseIpv4('198.18.7.2')!;
const FAR_IP = parseIpv4('198.18.8.2')!;
const OUR_MAC = parseMac('02:00:5e:00:07:02')!;
const FAR_MAC = parseMac('02:00:5e:00:08:02')!;

interface LinkInfo { mtu: number; flags: string[]; operstate: string; address: string; }
function linkInfo(ns: string, dev: string): LinkInfo {
  return (JSON.parse(ipIn(ns, ['-j', 'link', 'show', 'dev', dev])) as LinkInfo[])[0]!;
}

/** A UDP/IPv4 frame whose checksum field holds only the pseudo-header sum (Csum.Partial). */
function udpPartialFrame(pool: BufferPool, dstMac: Uint8Array, src: number, dst: number, payload: Uint8Array): PacketBuffer {
  const b = pool.alloc();
  const udpLen = 8 + payload.length;
  const at = b.append(14 + 20 + udpLen);
  const d = b.data;
  d.set(dstMac, at); d.set(OUR_MAC, at + 6); d[at + 12] = 0x08; d[at + 13] = 0x00;
  const i = at + 14;
  d.set([0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0], i);
  d[i + 2] = (20 + udpLen) >> 8; d[i + 3] = (20 + udpLen) & 0xff;
  writeIpv4(d, i + 12, src); writeIpv4(d, i + 16, dst);
  const ipSum = internetChecksum(d, i, 20);
  d[i + 10] = ipSum >> 8; d[i + 11] = ipSum & 0xff;
  const u = i + 20;
  d.set([0x9c, 0x40, 0, 9], u); // 40000 -> 9 (discard)
  d[u + 4] = udpLen >> 8; d[u + 5] = udpLen & 0xff;
  d.set(payload, u + 8);
  // Linux's convention for partial checksums: the folded, non-inverted pseudo-header sum.
  const pseudo = fold(pseudoHeaderV4(src, dst, 17, udpLen));
  d[u + 6] = pseudo >> 8; d[u + 7] = pseudo & 0xff;
  b.csum = Csum.Partial; b.csumStart = u; b.csumOffset = 6;
  return b;
}

test('TapDriver moves frames between the kernel and user space in a namespace', { timeout: 20_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'ping'])) return;
  const ns = createNetns('tap');
  const tag = `${process.pid % 100000}`;
  const ifA = `tsta${tag}`, ifB = `tstb${tag}`;
  const pool = new BufferPool();
  let drv: TapDriver | null = null, far: TapDriver | null = null;
  t.after(() => { drv?.close(); far?.close(); destroyNetns(ns); });

  // tso: false keeps the receive buffers MTU-sized (the truncation check below needs that);
  // TSO itself is proven by the bulk transfers in tcp-kernel-bulk.test.ts.
  drv = TapDriver.open({ ifname: ifA, netns: ns, mtu: 1400, mac: OUR_MAC, hostAddr: '198.18.7.1/24', hostAddr6: '2001:db8:7::1/64', pool, tso: false });
  assert.equal(drv.name, ifA);
  assert.equal(drv.mtu, 1400);
  assert.deepEqual(drv.offloads, { rxCsum: true, txCsum: true, tso4: false, tso6: false });

  // The responder: every wake-up drains the device; ARP requests and echo requests for
  // OUR_IP are answered in place, everything else is counted by EtherType and dropped.
  const seen = { arpReplies: 0, echoRequests: 0, badEchoReplies: 0, other: 0 };
  let wakeups = 0, emptyWakeups = 0;
  const out: PacketBuffer[] = [];
  const d = drv;
  d.onReadable(() => {
    wakeups++;
    const n = d.rxBurst(out, 32);
    if (n === 0) emptyWakeups++;
    for (let k = 0; k < n; k++) {
      const b = out[k]!;
      const type = (b.data[b.start + 12]! << 8) | b.data[b.start + 13]!;
      const reply = respond(b, OUR_MAC, OUR_IP);
      if (reply === Reply.Echo) {
        seen.echoRequests++;
        if (!icmpChecksumOk(b)) seen.badEchoReplies++;
        d.transmit(b);
        continue;
      }
      if (reply === Reply.Arp) { d.transmit(b); continue; }
      if (type === ETH_P_ARP && b.data[b.start + 21] === 2) seen.arpReplies++;
      else seen.other++;
      b.release();
    }
    d.flush();
  });

  await t.test('applies the MTU, the up state and both host addresses in the namespace', () => {
    const link = linkInfo(ns, ifA);
    assert.equal(link.mtu, 1400);
    assert.ok(link.flags.includes('UP'), `flags ${link.flags}`);
    assert.ok(link.flags.includes('LOWER_UP'), `carrier: flags ${link.flags}`);
    assert.match(ipIn(ns, ['-4', 'addr', 'show', 'dev', ifA]), /inet 198\.18\.7\.1\/24/);
    assert.match(ipIn(ns, ['-6', 'addr', 'show', 'dev', ifA]), /inet6 2001:db8:7::1\/64/);
    // The device lives only in the namespace, not in ours.
    assert.throws(() => run('ip', ['link', 'show', 'dev', ifA]), /does not exist/);
  });

  await t.test('a frame written by the driver reaches the kernel (an ARP request teaches it our MAC)', async () => {
    const b = pool.alloc();
    writeArpRequest(b, OUR_MAC, OUR_IP, HOST_IP);
    d.transmit(b);
    d.flush();
    assert.equal(d.stats().txPackets, 1);
    await until('neighbor entry for 198.18.7.2', () =>
      ipIn(ns, ['neigh', 'show', '198.18.7.2', 'dev', ifA]).includes(formatMac(OUR_MAC)));
    // The kernel's ARP reply comes back through rxBurst.
    await until('ARP reply from the kernel', () => seen.arpReplies >= 1);
  });

  await t.test('kernel pings reach rxBurst through wake-ups and our replies reach ping', async () => {
    const before = { wakeups, rx: d.stats().rxPackets };
    const r = await spawnIn(ns, 'ping', ['-c', '5', '-i', '0.05', '-W', '2', '198.18.7.2'], 8000);
    assert.equal(r.code, 0, `ping failed: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /5 received/);
    assert.ok(seen.echoRequests >= 5, `echo requests seen: ${seen.echoRequests}`);
    assert.equal(seen.badEchoReplies, 0);
    assert.ok(wakeups > before.wakeups);
    assert.ok(d.stats().rxPackets - before.rx >= 5);
    // Level-triggered readiness + read-until-EAGAIN: a wake-up always finds frames.
    assert.ok(emptyWakeups <= 1, `empty wake-ups: ${emptyWakeups} of ${wakeups}`);
  });

  await t.test('an idle device costs no CPU (no spinning between wake-ups)', async () => {
    const w0 = wakeups;
    const rx0 = d.stats().rxPackets;
    const cpu0 = process.cpuUsage();
    await sleep(300);
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    // Stray kernel traffic (IPv6 MLD/RS) may wake us a few times, once per frame at most.
    assert.ok(wakeups - w0 <= d.stats().rxPackets - rx0 + 1, `wake-ups ${wakeups - w0} for ${d.stats().rxPackets - rx0} frames`);
    assert.ok(cpuMs < 60, `used ${cpuMs.toFixed(1)} ms of CPU in 300 ms idle`);
  });

  await t.test('a frame larger than the receive buffer is dropped and counted, never delivered cut', async () => {
    // Raise the kernel side's MTU behind the driver's back: a 2,542-byte frame cannot fit.
    ipIn(ns, ['link', 'set', 'dev', ifA, 'mtu', '3000']);
    try {
      const before = { ...d.stats() };
      const echoes = seen.echoRequests;
      const r = await spawnIn(ns, 'ping', ['-c', '1', '-s', '2500', '-W', '0.3', '198.18.7.2'], 5000);
      assert.notEqual(r.code, 0, 'no reply to a frame we never saw whole');
      await until('the drop counter', () => d.stats().rxDropped > before.rxDropped);
      assert.equal(seen.echoRequests, echoes);
    } finally {
      ipIn(ns, ['link', 'set', 'dev', ifA, 'mtu', '1400']);
    }
  });

  await t.test('a Csum.Partial frame leaves with its checksum completed by the kernel', async () => {
    // Forward through the namespace to a second TAP that asks for complete checksums.
    exec(ns, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    far = TapDriver.open({ ifname: ifB, netns: ns, hostAddr: '198.18.8.1/24', csumOffload: false, mac: FAR_MAC, pool });
    assert.equal(far.offloads.rxCsum, false);
    ipIn(ns, ['neigh', 'replace', '198.18.8.2', 'lladdr', formatMac(FAR_MAC), 'dev', ifB, 'nud', 'permanent']);
    const got: PacketBuffer[] = [];
    const f = far;
    f.onReadable(() => {
      const n = f.rxBurst(out, 32);
      for (let k = 0; k < n; k++) {
        const b = out[k]!;
        const isUdp = ((b.data[b.start + 12]! << 8) | b.data[b.start + 13]!) === ETH_P_IP && b.data[b.start + 23] === 17;
        if (isUdp) got.push(b); else b.release();
      }
    });
    const hostMac = parseMac(linkInfo(ns, ifA).address)!;
    const payload = new TextEncoder().encode('tstack partial checksum!');
    d.transmit(udpPartialFrame(pool, hostMac, OUR_IP, FAR_IP, payload));
    d.flush();
    try {
      await until('the forwarded datagram on the second TAP', () => got.length >= 1);
      const b = got[0]!;
      const i = b.start + 14, u = i + 20;
      const udpLen = (b.data[u + 4]! << 8) | b.data[u + 5]!;
      assert.equal(udpLen, 8 + payload.length);
      assert.deepEqual(b.data.subarray(u + 8, u + udpLen), payload);
      assert.equal(b.csum, Csum.None, 'no offload: the kernel hands over a complete checksum');
      const check = (b.data[u + 6]! << 8) | b.data[u + 7]!;
      assert.notEqual(check, fold(pseudoHeaderV4(OUR_IP, FAR_IP, 17, udpLen)), 'checksum was completed');
      assert.equal(finish(sum16(b.data, u, udpLen, pseudoHeaderV4(OUR_IP, FAR_IP, 17, udpLen))), 0, 'UDP checksum verifies');
    } finally {
      for (const x of got) x.release();
    }
  });

  await t.test('close() removes the device, stops the watcher, and is idempotent', () => {
    const fd = d.fileDescriptor;
    assert.ok(fd >= 0);
    d.close();
    d.close();
    assert.equal(d.fileDescriptor, -1);
    assert.doesNotMatch(ipIn(ns, ['link', 'show']), new RegExp(ifA));
    assert.equal(d.rxBurst(out, 32), 0);
    far!.close();
    assert.doesNotMatch(ipIn(ns, ['link', 'show']), new RegExp(ifB));
    assert.equal(pool.stats().inUse, 0, 'every buffer went back to the pool');
  });
});
