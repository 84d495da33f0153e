// VLAN interfaces against crafted frames (this kernel has no 802.1Q module, so the kernel side is
// scapy on the TAP device in a namespace this file creates): an instance built from a
// tstack.toml with two [[port.vlan]] children (VIDs 100 and 200, different subnets) and no
// untagged address. Tagged ARP, ping and TCP SYN on each VID are answered with the right tag
// and source address; untagged frames, frames for VID 300 and a VLAN asked for the other's
// address are not answered; tshark reads the stack's own capture with 0 malformed frames.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/runtime/config.js';
import { startInstance, type Instance } from '../../src/runtime/instance.js';
import { createNetns, destroyAllNetns, destroyNetns, requireRoot } from '../helpers/netns.js';

after(destroyAllNetns);

// /usr/bin/python3 has scapy (the python3 on PATH may not).
const SCAPY = '/usr/bin/python3';
const SUB100 = '198.18.150', SUB200 = '198.18.151';
const STACK_MAC = '02:5e:01:50:00:02', PEER_MAC = '02:5e:01:50:00:01';

// Sends each probe, tagged as told, and reports every frame the stack sends back as one JSON line.
const PY = `
import sys, json, time, threading
from scapy.all import Ether, Dot1Q, ARP, IP, ICMP, TCP, sendp, AsyncSniffer, conf
dev, mine, peer = sys.argv[1:4]
conf.verb = 0
def tagged(vid, pkt):
    return Ether(src=mine, dst=peer if pkt.haslayer(IP) else 'ff:ff:ff:ff:ff:ff', type=0x8100) / Dot1Q(vlan=vid) / pkt if vid else Ether(src=mine, dst=peer if pkt.haslayer(IP) else 'ff:ff:ff:ff:ff:ff') / pkt
probes = []
for name, vid, src, dst in [('v100', 100, '${SUB100}.1', '${SUB100}.2'), ('v200', 200, '${SUB200}.1', '${SUB200}.2'),
                           ('untagged', 0, '${SUB100}.1', '${SUB100}.2'), ('vid300', 300, '${SUB100}.1', '${SUB100}.2'),
                           ('cross', 200, '${SUB200}.1', '${SUB100}.2')]:
    probes.append((name, tagged(vid, ARP(op=1, hwsrc=mine, psrc=src, pdst=dst))))
    probes.append((name, tagged(vid, IP(src=src, dst=dst, ttl=64) / ICMP(type=8, id=0x4242, seq=vid))))
    probes.append((name, tagged(vid, IP(src=src, dst=dst, ttl=64) / TCP(sport=40000 + vid, dport=7, flags='S', seq=1000))))
out = []
def keep(p):
    if p[Ether].src.lower() != peer.lower(): return
    vids = []
    x = p[Ether].payload
    while isinstance(x, Dot1Q):
        vids.append(x.vlan); x = x.payload
    r = {'vids': vids}
    if p.haslayer(ARP): r.update(kind='arp', op=p[ARP].op, psrc=p[ARP].psrc, pdst=p[ARP].pdst)
    elif p.haslayer(ICMP): r.update(kind='icmp', type=p[ICMP].type, src=p[IP].src, dst=p[IP].dst, seq=p[ICMP].seq)
    elif p.haslayer(TCP): r.update(kind='tcp', flags=str(p[TCP].flags), src=p[IP].src, dst=p[IP].dst, dport=p[TCP].dport)
    else: r.update(kind='other', summary=p.summary())
    out.append(r)
started = threading.Event()
sn = AsyncSniffer(iface=dev, prn=keep, store=False, started_callback=started.set)
sn.start()
started.wait(30)
time.sleep(0.2)
for name, p in probes:
    sendp(p, iface=dev)
    time.sleep(0.02)
# The six answers (ARP reply, echo reply, SYN-ACK per VLAN), then a while for any wrong one.
deadline = time.time() + 30
while time.time() < deadline and len({json.dumps(r, sort_keys=True) for r in out if r.get('op') != 1}) < 6:
    time.sleep(0.1)
time.sleep(1.5)
sn.stop()
for r in out: print(json.dumps(r))
print('done', flush=True)
`;

function runScapy(ns: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn('ip', ['netns', 'exec', ns, SCAPY, '-c', PY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); rej(new Error(`scapy timed out: ${out}${err}`)); }, 60_000);
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    p.on('exit', (code) => { clearTimeout(timer); if (code === 0 && out.includes('done')) res(out); else rej(new Error(`scapy exited ${code}: ${out}${err}`)); });
  });
}

for (const kind of ['tap', 'afpacket'] as const) test(`${kind}: VLANs 100 and 200 on a port answer tagged ARP, ping and SYN with their own tag and address; untagged and unknown VIDs get nothing`, { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t, ['ip', 'tshark', 'python3'])) return;
  const ns = createNetns('vlan');
  const dev = `v${kind === 'tap' ? 't' : 'a'}${process.pid % 100000}`.slice(0, 14);
  // afpacket: tstack creates a veth pair; scapy works on the kernel end, which has an untagged
  // address of its own (outside the VLANs' subnets).
  const kernelDev = kind === 'tap' ? dev : `${dev}h`;
  const dir = mkdtempSync(join(tmpdir(), 'tstack-vlan-'));
  const pcap = join(dir, 'stack.pcap');
  let inst: Instance | null = null;
  try {
    inst = startInstance(parseConfig(`
[stack]
poll = "interrupt"
[[port]]
driver = "${kind}"
ifname = "${dev}"
netns = "${ns}"
mac = "${STACK_MAC}"
pcap = "${pcap}"
${kind === 'afpacket' ? 'host_addr = "198.18.157.1/24"' : ''}
[[port.vlan]]
id = 100
addr = "${SUB100}.2/24"
[[port.vlan]]
id = 200
addr = "${SUB200}.2/24"
`, 'vlan.toml'));
    const l = inst.stack.tcp.listen({ port: 7 });
    l.onConnection = () => {};
    const out = await runScapy(ns, [kernelDev, PEER_MAC, STACK_MAC]);
    const got = out.split('\n').filter((s) => s.startsWith('{')).map((s) => JSON.parse(s) as Record<string, unknown>);
    // What the stack sent on its own initiative (nothing: no untagged address, no announcements
    // on the port) is not mixed in: every frame seen must be an answer to a probe.
    const key = (r: Record<string, unknown>) => `${JSON.stringify(r['vids'])} ${r['kind']} ${r['kind'] === 'arp' ? `op${r['op']} ${r['psrc']}>${r['pdst']}` : `${r['src']}>${r['dst']} ${r['kind'] === 'icmp' ? `type${r['type']} seq${r['seq']}` : `${r['flags']} ${r['dport']}`}`}`;
    const seen = got.map(key).filter((k) => !k.includes(' op1 ')); // the stack's own ARP requests are not answers
    t.diagnostic(seen.join(' | '));
    for (const [vid, sub] of [[100, SUB100], [200, SUB200]] as const) {
      assert.ok(seen.includes(`[${vid}] arp op2 ${sub}.2>${sub}.1`), `ARP reply on VLAN ${vid}: ${seen.join(' | ')}`);
      assert.ok(seen.includes(`[${vid}] icmp ${sub}.2>${sub}.1 type0 seq${vid}`), `echo reply on VLAN ${vid}: ${seen.join(' | ')}`);
      assert.ok(seen.includes(`[${vid}] tcp ${sub}.2>${sub}.1 SA ${40000 + vid}`), `SYN-ACK on VLAN ${vid}: ${seen.join(' | ')}`);
    }
    // Exactly those answers, none for untagged, VID 300 or the cross-VLAN probes.
    const answers = seen;
    assert.equal(new Set(answers).size, 6, `only the six answers: ${seen.join(' | ')}`);
    for (const k of got) assert.ok(JSON.stringify(k['vids']) === '[100]' || JSON.stringify(k['vids']) === '[200]', `every frame tagged: ${JSON.stringify(k)}`);
    const drops = inst.stack.drops;
    assert.ok((drops['vlan_unknown_vid'] ?? 0) >= 3, `VID 300 dropped and counted: ${JSON.stringify(drops)}`);
    const ports = inst.stack.interfaces;
    assert.ok(ports[0]!.counters.rxDropped >= 3);
    assert.ok(ports.find((i) => i.name === `${dev}.100`)!.counters.txPackets >= 3);
  } finally {
    inst?.stop();
    destroyNetns(ns);
  }
  const tshark = (filter: string) => execFileSync('tshark', ['-r', pcap, '-n', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', timeout: 60_000 }).trim().split('\n').filter(Boolean).length;
  const sent = tshark(`eth.src == ${STACK_MAC}`);
  const tagged = tshark(`eth.src == ${STACK_MAC} && vlan`);
  const bad = tshark(`_ws.malformed || _ws.expert.severity >= "Error"`);
  t.diagnostic(`capture: ${sent} frames from the stack, ${tagged} tagged, ${bad} malformed or in error`);
  assert.ok(sent >= 6);
  assert.equal(tagged, sent, 'every frame the stack sent is tagged');
  assert.equal(bad, 0);
  rmSync(dir, { recursive: true, force: true });
});
