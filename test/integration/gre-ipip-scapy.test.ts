// GRE and IP-in-IP against crafted packets (root, namespaces; this kernel has no GRE or IPIP
// devices): a program under `tstack run` with a keyed GRE tunnel and an IP-in-IP tunnel over its
// TAP port. scapy, on the kernel side, sends an ICMP echo and a TCP SYN inside each tunnel; the
// stack answers inside the same tunnel (GRE key kept), and tshark decodes both directions with
// 0 malformed frames.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, run } from '../helpers/netns.js';
import { runIn, startApp, startLiveCapture, stopAllApps, waitUntil } from '../helpers/run-app.js';

// /usr/bin/python3 has scapy (the python3 on PATH may not).
const SCAPY = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'tstack-gre-'));
after(async () => { await stopAllApps(); rmSync(dir, { recursive: true, force: true }); });

const APP = `import net from 'node:net';
net.createServer((s) => s.end()).listen(5002, () => console.log('ready'));
`;

// Sends an echo request and a SYN inside the tunnel until the stack's answers (inside the same
// tunnel) have been seen, or 20 s pass. Prints what it saw.
const PY = `
import sys, time
from scapy.all import Ether, IP, GRE, ICMP, TCP, AsyncSniffer, sendp, Raw
iface, smac, kind = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == 'gre':
    enc = IP(src='198.18.218.1', dst='198.18.218.2') / GRE(key_present=1, key=9)
    isrc, idst = '198.18.219.1', '198.18.219.2'
else:
    enc = IP(src='198.18.218.1', dst='198.18.218.2', proto=4)
    isrc, idst = '198.18.220.1', '198.18.220.2'
seen = {}
def inner(p):
    if kind == 'gre':
        if GRE not in p or p[GRE].key != 9 or p[GRE].proto != 0x0800: return None
        return p[GRE].payload
    return p[IP].payload if p[IP].proto == 4 else None
def on(p):
    if IP not in p or p[IP].src != '198.18.218.2' or p[IP].dst != '198.18.218.1': return
    q = inner(p)
    if q is None or not isinstance(q, IP) or q.src != idst or q.dst != isrc: return
    if ICMP in q and q[ICMP].type == 0 and q[ICMP].id == 7 and bytes(q[ICMP].payload) == b'tstack-tunnel': seen['icmp'] = 1
    if TCP in q and q[TCP].flags == 'SA' and q[TCP].ack == 1001 and q[TCP].sport == 5002: seen['syn'] = 1
sn = AsyncSniffer(iface=iface, filter='ip proto 47 or ip proto 4', prn=on, store=False)
sn.start()
end = time.time() + 20
while time.time() < end and len(seen) < 2:
    sendp(Ether(dst=smac) / enc / IP(src=isrc, dst=idst) / ICMP(id=7, seq=1) / Raw(b'tstack-tunnel'), iface=iface, verbose=False)
    sendp(Ether(dst=smac) / enc / IP(src=isrc, dst=idst) / TCP(sport=40000, dport=5002, flags='S', seq=1000), iface=iface, verbose=False)
    t = time.time() + 1
    while time.time() < t and len(seen) < 2: time.sleep(0.05)
sn.stop()
print(kind, ' '.join(sorted(seen)))
`;

test('scapy-built GRE (keyed) and IP-in-IP packets to tstack are answered inside the tunnel; tshark decodes both directions, 0 malformed', async (t) => {
  if (!requireRoot(t, ['ip', 'tshark'])) return;
  if (spawnSync(SCAPY, ['-c', 'import scapy']).status !== 0) {
    if (process.env.CI) throw new Error('scapy missing under CI');
    t.skip('scapy is not installed for /usr/bin/python3'); return;
  }
  const appFile = join(dir, 'gre-app.mjs');
  writeFileSync(appFile, APP);
  const py = join(dir, 'tun.py');
  writeFileSync(py, PY);
  const app = await startApp({
    prefix: 'gre', subnet: 218, app: appFile, ready: /ready/,
    extraConfig: '[[tunnel]]\nkind = "gre"\nifname = "gre0"\nkey = 9\nlocal = "198.18.218.2"\nremote = "198.18.218.1"\naddr = "198.18.219.2/24"\n'
      + '[[tunnel]]\nkind = "ipip"\nifname = "ipip0"\nlocal = "198.18.218.2"\nremote = "198.18.218.1"\naddr = "198.18.220.2/24"\n',
  });
  const { ns, ifname } = app;
  const cap = await startLiveCapture(ns, ifname, 'ip proto 47 or ip proto 4', app.stackIp, ['frame.protocols', 'gre.key', '_ws.malformed', '_ws.expert.severity']);
  try {
    const neigh = run('ip', ['-n', ns, 'neigh', 'show', app.stackIp]);
    const smac = /lladdr ([0-9a-f:]{17})/.exec(neigh)?.[1];
    assert.ok(smac, `the stack's MAC from the kernel's neighbour table: ${neigh}`);
    for (const kind of ['gre', 'ipip']) {
      const r = await runIn(ns, SCAPY, [py, ifname, smac, kind], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), `${kind} icmp syn`, `${kind}: the echo reply and the SYN-ACK came back inside the tunnel\n${app.output()}`);
    }
    // tshark (blocks of packets arrive late): requests and answers of both kinds, decoded inside.
    const tunnelled = () => cap.lines().filter((l) => /:ip:(gre:ip|ip):(icmp|tcp)/.test(l.split('\t')[3] ?? ''));
    const has = (src: string, re: RegExp) => tunnelled().some((l) => l.split('\t')[1]!.startsWith(src) && re.test(l.split('\t')[3]!));
    await waitUntil(() => has('198.18.218.1', /gre:ip:icmp/) && has('198.18.218.2', /gre:ip:icmp/) && has('198.18.218.1', /:ip:ip:icmp/) && has('198.18.218.2', /:ip:ip:icmp/)
      && has('198.18.218.2', /gre:ip:tcp/) && has('198.18.218.2', /:ip:ip:tcp/), 20_000, 'tshark to show both directions of both tunnels');
    const gre = tunnelled().filter((l) => l.includes('gre'));
    assert.ok(gre.every((l) => l.split('\t')[4] === '0x00000009'), `every GRE packet carries key 9:\n${gre.join('\n')}`);
    const malformed = tunnelled().filter((l) => (l.split('\t')[5] ?? '') !== '');
    assert.deepEqual(malformed, [], 'malformed frames');
  } finally {
    cap.stop();
    await app.stop();
  }
});
