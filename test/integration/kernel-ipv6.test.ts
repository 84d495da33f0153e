// IPv6 against the Linux kernel in namespaces this file creates, over TAP and AF_PACKET: ping6
// both ways (default size, 1452-byte payloads that fill a 1500-byte MTU, and 3000-byte ones
// that travel in fragments), link-local ping, neighbour discovery both ways, SLAAC from a
// router advertisement sent by scapy on the kernel side, duplicate address detection against
// a scapy defender, and tshark over everything the stack sent.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AfPacketDriver } from '../../src/driver/afpacket.js';
import { PcapWriter, capture } from '../../src/driver/pcap.js';
import { TapDriver } from '../../src/driver/tap.js';
import type { Driver } from '../../src/driver/types.js';
import { RunLoop, realClock } from '../../src/runtime/loop.js';
import { Stack, type InterfaceConfig } from '../../src/stack/stack.js';
import { formatIpv6, formatMac, parseIpv6, parseMac } from '../../src/wire/addr.js';
import { createNetns, destroyAllNetns, destroyNetns, exec, ipIn, requireRoot, spawnIn } from '../helpers/netns.js';

after(destroyAllNetns);

const TOOLS = ['ip', 'ping', 'python3', 'tshark'];
// /usr/bin/python3 has scapy (the python3 on PATH may not).
const SCAPY = '/usr/bin/python3';

interface Link {
  ns: string; dev: string; kernelDev: string; stack: Stack; loop: RunLoop; mac: string; pcapPath: string; close(): void;
}

/** A stack on a TAP device or an AF_PACKET veth whose kernel end lives in a fresh namespace. */
function openLink(kind: 'tap' | 'afpacket', tag: string, hostAddr6: string | null, cfg: InterfaceConfig, sysctl: Record<string, number | boolean> = {}): Link {
  const ns = createNetns(tag);
  const dev = `${tag}${process.pid % 100000}`.slice(0, 14);
  const mac = Uint8Array.of(0x02, 0x5e, tag.charCodeAt(tag.length - 1), (process.pid >> 16) & 0xff, (process.pid >> 8) & 0xff, process.pid & 0xff);
  const dir = mkdtempSync(join(tmpdir(), 'tstack-k6-'));
  const pcapPath = join(dir, `${tag}.pcap`);
  let driver: Driver;
  let kernelDev = dev;
  if (kind === 'tap') {
    driver = TapDriver.open({ ifname: dev, netns: ns, mac, ...(hostAddr6 && { hostAddr6 }) });
  } else {
    driver = AfPacketDriver.open({ ifname: dev, netns: ns, mac, hostAddr6: hostAddr6 ?? undefined! });
    kernelDev = `${dev}h`;
  }
  const pcap = new PcapWriter(pcapPath);
  const d = capture(driver, pcap, realClock);
  const stack = new Stack({ clock: realClock, name: tag });
  for (const [k, v] of Object.entries(sysctl)) stack.sysctl.set(k, v);
  const ifIndex = stack.addInterface(d, cfg);
  const loop = new RunLoop({ stack, poll: 'interrupt' });
  loop.addPort(d, ifIndex);
  stack.onOutput = () => loop.kick();
  loop.start();
  return {
    ns, dev, kernelDev, stack, loop, mac: formatMac(mac), pcapPath,
    close() {
      try { loop.stop(); } catch { /* closing anyway */ }
      try { stack.close(); } catch { /* idem */ }
      try { pcap.close(); } catch { /* idem */ }
      destroyNetns(ns);
    },
  };
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const preferred = (l: Link, addr: string) => l.stack.ip6.addresses(1).some((a) => a.addr === addr && a.state === 'preferred');

async function pingFromStack(l: Link, dst: string, size: number, count: number): Promise<number> {
  const to = parseIpv6(dst)!;
  const seen = new Set<number>();
  const payload = Uint8Array.from({ length: size }, (_, i) => (i * 13) & 0xff);
  l.stack.ip6.icmp.onEchoReply = (_src, id, seq, p) => {
    if (id === 0x6666 && p.length === size && p.every((x, i) => x === payload[i])) seen.add(seq);
  };
  for (let seq = 0; seq < count; seq++) {
    l.stack.ip6.icmp.sendEcho(to, 0x6666, seq, payload);
    l.loop.kick();
    await new Promise((r) => setTimeout(r, 30));
  }
  await until(() => seen.size === count, 3000, `${count} echo replies from ${dst}`).catch(() => {});
  l.stack.ip6.icmp.onEchoReply = null;
  return seen.size;
}

/** Frames our MAC sent that tshark finds malformed, with a bad checksum, or with an error-level finding. */
function tsharkComplaints(l: Link): { ours: number; bad: string } {
  const run = (filter: string, fields: string[] = []) => execFileSync('tshark', ['-r', l.pcapPath, '-n', '-o', 'ip.check_checksum:TRUE',
    '-Y', filter, ...(fields.length ? ['-T', 'fields', ...fields.flatMap((f) => ['-e', f])] : [])], { encoding: 'utf8', timeout: 60_000 });
  const ours = run(`eth.src == ${l.mac}`, ['frame.number']).trim().split('\n').filter(Boolean).length;
  const bad = run(`eth.src == ${l.mac} && (_ws.malformed || icmpv6.checksum.status == "Bad" || _ws.expert.severity >= "Error")`);
  return { ours, bad: bad.trim() };
}

for (const kind of ['tap', 'afpacket'] as const) {
  test(`${kind}: ping6 both ways (56, 1452 and fragmented 3000-byte payloads), link-local, NDP both ways, tshark clean`, { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t, TOOLS)) return;
    const sub = kind === 'tap' ? 61 : 64;
    const host = `2001:db8:${sub}::1`, us = `2001:db8:${sub}::2`;
    const l = openLink(kind, kind === 'tap' ? 'k6t' : 'k6a', `${host}/64`, { addr6: `${us}/64` });
    try {
      await until(() => preferred(l, us), 5000, 'DAD of our address');
      const ll = l.stack.ip6.addresses(1).find((a) => a.origin === 'link-local')!.addr;
      const ping = async (args: string[], n: number) => {
        const r = await spawnIn(l.ns, 'ping', ['-6', '-c', String(n), '-i', '0.05', '-W', '2', ...args], 30_000);
        const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
        return { sent: Number(m?.[1]), received: Number(m?.[2]), out: r.stdout + r.stderr };
      };
      let r = await ping([us], 20);
      assert.equal(r.received, 20, r.out);
      r = await ping(['-s', '1452', '-M', 'do', us], 20);
      assert.equal(r.received, 20, `1452-byte payloads fill the 1500-byte MTU: ${r.out}`);
      const reassembled = l.stack.ip6.stats.reassembled, fragmented = l.stack.ip6.stats.fragmented;
      r = await ping(['-s', '3000', us], 5);
      assert.equal(r.received, 5, r.out);
      assert.ok(l.stack.ip6.stats.reassembled - reassembled >= 5, 'the requests were reassembled');
      assert.ok(l.stack.ip6.stats.fragmented - fragmented >= 5, 'the replies left in fragments');
      r = await ping([`${ll}%${l.kernelDev}`], 5);
      assert.equal(r.received, 5, `link-local: ${r.out}`);
      // The stack pings the kernel: resolution of the kernel's address, then every size.
      assert.equal(await pingFromStack(l, host, 56, 5), 5);
      assert.equal(await pingFromStack(l, host, 1452, 5), 5);
      assert.equal(await pingFromStack(l, host, 3000, 5), 5);
      const neigh = ipIn(l.ns, ['-6', 'neigh', 'show', us]);
      assert.match(neigh, new RegExp(l.mac), `the kernel learned our MAC: ${neigh}`);
      const ours = l.stack.ip6.ndp.list().find((e) => e.addr === host);
      assert.ok(ours && ours.mac !== '(incomplete)', JSON.stringify(l.stack.ip6.ndp.list()));
      const kmac = (JSON.parse(ipIn(l.ns, ['-j', 'link', 'show', 'dev', l.kernelDev])) as { address: string }[])[0]!.address;
      assert.equal(ours.mac, kmac);
    } finally {
      l.close();
    }
    const { ours, bad } = tsharkComplaints(l);
    t.diagnostic(`${ours} frames from the stack in the capture`);
    assert.ok(ours > 80, `the capture holds our frames (${ours})`);
    assert.equal(bad, '', `tshark complaints about our frames:\n${bad.slice(0, 4000)}`);
    rmSync(join(l.pcapPath, '..'), { recursive: true, force: true });
  });
}

/** Runs a Python (scapy) script in the namespace; resolves with its stdout once it prints `ready` (and keeps running). */
function scapyIn(ns: string, script: string, args: string[]): { ready: Promise<void>; done: Promise<string> } {
  const p = spawn('ip', ['netns', 'exec', ns, SCAPY, '-c', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  let onReady: () => void = () => {};
  const ready = new Promise<void>((res) => { onReady = res; });
  p.stdout.on('data', (c: Buffer) => { out += c.toString(); if (out.includes('ready')) onReady(); });
  p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const done = new Promise<string>((res) => p.on('exit', () => { onReady(); res(out + err); }));
  return { ready, done };
}

const PY_RA = `
import sys
from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, sendp
dev, mac, ll, prefix = sys.argv[1:5]
ra = (Ether(src=mac, dst='33:33:00:00:00:01') / IPv6(src=ll, dst='ff02::1', hlim=255)
      / ICMPv6ND_RA(routerlifetime=1800, chlim=64) / ICMPv6NDOptSrcLLAddr(lladdr=mac) / ICMPv6NDOptMTU(mtu=1500)
      / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=14400))
sendp(ra, iface=dev, verbose=False)
print('ready', flush=True)
`;

test('tap: SLAAC from a router advertisement sent by scapy gives the stack its address and default route', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t, TOOLS)) return;
  const l = openLink('tap', 'k6s', '2001:db8:62::1/64', { slaac: true });
  try {
    exec(l.ns, 'ip', ['-6', 'addr', 'add', '2001:db8:99::1/128', 'dev', 'lo']);
    await until(() => l.stack.ip6.addresses(1).some((a) => a.origin === 'link-local' && a.state === 'preferred'), 5000, 'our link-local address');
    // The kernel's own link-local address on the link, once its DAD is over.
    let kll = '';
    await until(() => {
      const j = JSON.parse(ipIn(l.ns, ['-j', '-6', 'addr', 'show', 'dev', l.kernelDev, 'scope', 'link'])) as { addr_info: { local: string; tentative?: boolean }[] }[];
      const a = j[0]?.addr_info.find((x) => x.local && !x.tentative);
      kll = a?.local ?? '';
      return kll !== '';
    }, 5000, "the kernel's link-local address");
    const kmac = (JSON.parse(ipIn(l.ns, ['-j', 'link', 'show', 'dev', l.kernelDev])) as { address: string }[])[0]!.address;
    const s = scapyIn(l.ns, PY_RA, [l.kernelDev, kmac, kll, '2001:db8:62::']);
    assert.match(await s.done, /ready/);
    const macBytes = parseMac(l.mac)!;
    const iid = [macBytes[0]! ^ 2, macBytes[1]!, macBytes[2]!, 0xff, 0xfe, macBytes[3]!, macBytes[4]!, macBytes[5]!];
    const slaac = parseIpv6(`2001:db8:62::${[0, 2, 4, 6].map((i) => ((iid[i]! << 8) | iid[i + 1]!).toString(16)).join(':')}`)!;
    const addr = formatIpv6(slaac);
    await until(() => preferred(l, addr), 5000, `SLAAC address ${addr}`);
    const routes = l.stack.ip6.routes.list(l.stack.clock.now());
    assert.ok(routes.some((r) => r.prefix === '::/0' && r.gateway === kll), JSON.stringify(routes));
    const r = await spawnIn(l.ns, 'ping', ['-6', '-c', '5', '-i', '0.05', '-W', '2', addr], 20_000);
    assert.match(r.stdout, /5 packets transmitted, 5 received/, r.stdout + r.stderr);
    // Off-link through the default router the RA announced (the kernel answers for its loopback address).
    assert.equal(await pingFromStack(l, '2001:db8:99::1', 56, 3), 3);
  } finally {
    l.close();
  }
});

const PY_DEFEND = `
import sys, time
from scapy.all import AsyncSniffer, Ether, IPv6, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, sendp
dev, mac, target = sys.argv[1:4]
answered = []
def defend(p):
    if ICMPv6ND_NS in p and p[IPv6].src == '::' and p[ICMPv6ND_NS].tgt == target and not answered:
        answered.append(1)
        sendp(Ether(src=mac, dst='33:33:00:00:00:01') / IPv6(src=target, dst='ff02::1', hlim=255)
              / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mac), iface=dev, verbose=False)
s = AsyncSniffer(iface=dev, filter='icmp6', prn=defend, store=False)
s.start()
time.sleep(0.5)
print('ready', flush=True)
deadline = time.time() + 20
while not answered and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.2)
s.stop()
print('answered' if answered else 'no probe seen', flush=True)
`;

test('tap: a duplicate address is detected when scapy answers the DAD probe, and the address is never used', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t, TOOLS)) return;
  // The contested address is added once scapy listens.
  const l = openLink('tap', 'k6d', '2001:db8:63::1/64', { addr6: '2001:db8:63::2/64' }, { 'net.inet6.ip6.dad_count': 2 });
  try {
    const kmac = (JSON.parse(ipIn(l.ns, ['-j', 'link', 'show', 'dev', l.kernelDev])) as { address: string }[])[0]!.address;
    const s = scapyIn(l.ns, PY_DEFEND, [l.kernelDev, kmac, '2001:db8:63::5']);
    await s.ready;
    l.stack.ip6.addAddress(1, '2001:db8:63::5/64');
    l.loop.kick();
    const out = await s.done;
    assert.match(out, /answered/, out);
    await until(() => l.stack.ip6.addresses(1).some((a) => a.addr === '2001:db8:63::5' && a.state === 'duplicated'), 5000, 'the duplicate to be detected');
    assert.equal(l.stack.ip6.addrconf.stats.dadFailed, 1);
    const r = await spawnIn(l.ns, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '1', '2001:db8:63::5'], 20_000);
    assert.match(r.stdout, /2 packets transmitted, 0 received/, 'a duplicated address is not answered');
  } finally {
    l.close();
  }
});
