import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, loadConfig, ConfigError } from '../../src/runtime/config.js';
import { Sysctl } from '../../src/stack/sysctl.js';
import { parseIpv6 } from '../../src/wire/addr.js';

function registry(): Sysctl {
  const s = new Sysctl();
  s.define({ name: 'net.inet.tcp.msl', type: 'int', default: 30000, description: 'MSL (ms)', min: 1, max: 600000 });
  s.define({ name: 'net.inet.tcp.syncookies', type: 'bool', default: true, description: 'SYN cookies' });
  s.define({ name: 'net.inet.tcp.cc.algorithm', type: 'string', default: 'newreno', description: 'CC', choices: ['newreno', 'cubic'] });
  return s;
}

/** Parses `text` expecting a ConfigError; returns it. */
function fails(text: string, file = 'conf/tstack.toml'): ConfigError {
  try {
    parseConfig(text, file, { sysctl: registry() });
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the config to be rejected');
}

/** Asserts the message starts with FILE:LINE: key 'KEY': and carries `detail`. */
function assertNames(err: ConfigError, line: number, key: string, detail: RegExp): void {
  assert.equal(err.line, line, err.message);
  assert.equal(err.key, key, err.message);
  assert.ok(err.message.startsWith(`conf/tstack.toml:${line}: key '${key}': `), err.message);
  assert.match(err.message, detail);
}

describe('config defaults', () => {
  test('an empty file gives every default', () => {
    const c = parseConfig('', 'empty.toml');
    assert.deepEqual(c.stack, { workers: 1, poll: 'adaptive', busyPollUs: 0, pollSliceUs: 50, watchdogMs: 1000 });
    assert.deepEqual(c.ports, []);
    assert.deepEqual(c.sysctl, []);
    assert.deepEqual(c.control, { socket: '', name: 'empty', enabled: true });
    assert.deepEqual(c.metrics, {});
    assert.deepEqual(c.log, { level: 'info' });
  });

  test('a port with only an address defaults to tap, ifname tst<index>, mtu 1500, no MAC', () => {
    const c = parseConfig('[[port]]\naddr = "198.18.0.2/24"\n[[port]]\ndriver = "memory"\n', 'x.toml');
    assert.equal(c.ports.length, 2);
    const [a, b] = c.ports;
    assert.equal(a!.driver, 'tap');
    assert.equal(a!.ifname, 'tst0');
    assert.equal(a!.mtu, 1500);
    assert.equal(a!.mac, undefined);
    assert.equal(a!.addr, '198.18.0.2/24');
    assert.equal(b!.driver, 'memory');
    assert.equal(b!.ifname, 'memory1');
  });

  test('the DESIGN.md example parses to the values it states', () => {
    const c = parseConfig(`
[stack]
workers = 1                 # one stack per worker
poll = "interrupt"

[[port]]
driver = "tap"
ifname = "tst0"
addr = "198.18.0.2/24"
gateway = "198.18.0.1"
host_addr = "198.18.0.1/24"
addr6 = "2001:db8::2/64"
mtu = 9000
mac = "02:00:00:00:00:02"
netns = "tst-ns"
pcap = "/tmp/x.pcap"

[sysctl]
"net.inet.tcp.syncookies" = 0
"net.inet.tcp.cc.algorithm" = "cubic"
net.inet.tcp.msl = 1000

[control]
socket = "/tmp/t.sock"

[log]
level = "debug"
`, 'd.toml', { sysctl: registry() });
    assert.deepEqual(c.stack, { workers: 1, poll: 'interrupt', busyPollUs: 0, pollSliceUs: 50, watchdogMs: 1000 });
    const p = c.ports[0]!;
    assert.equal(p.gateway, '198.18.0.1');
    assert.equal(p.hostAddr, '198.18.0.1/24');
    assert.equal(p.addr6, '2001:db8::2/64');
    assert.equal(p.mtu, 9000);
    assert.deepEqual([...p.mac!], [2, 0, 0, 0, 0, 2]);
    assert.equal(p.netns, 'tst-ns');
    assert.equal(p.pcap, '/tmp/x.pcap');
    // Sysctl values come back coerced by the registry (0 -> false), with their lines.
    assert.deepEqual(c.sysctl, [
      { name: 'net.inet.tcp.syncookies', value: false, line: 19 },
      { name: 'net.inet.tcp.cc.algorithm', value: 'cubic', line: 20 },
      { name: 'net.inet.tcp.msl', value: 1000, line: 21 },
    ]);
    assert.equal(c.control.socket, '/tmp/t.sock');
    assert.equal(c.log.level, 'debug');
    assert.equal(c.lineOf('port[0].mtu'), 13);
    assert.equal(c.lineOf('stack.poll'), 4);
  });

  test('examples/tstack.toml is a valid config', () => {
    const c = loadConfig(new URL('../../../examples/tstack.toml', import.meta.url).pathname);
    assert.equal(c.ports[0]!.ifname, 'tst0');
    assert.equal(c.ports[0]!.hostAddr, '198.18.0.1/24');
  });

  test('loadConfig reads a file and errors name that file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tstack-config-'));
    try {
      const f = join(dir, 'tstack.toml');
      writeFileSync(f, '[stack]\nworkers = 2\n');
      assert.equal(loadConfig(f).stack.workers, 2);
      writeFileSync(f, '[stack]\n\nworkers = 0\n');
      assert.throws(() => loadConfig(f), (e: Error) => e.message.startsWith(`${f}:3: key 'stack.workers': `));
      assert.throws(() => loadConfig(join(dir, 'missing.toml')), /missing\.toml: cannot read the file \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config errors name the file, the key and the line', () => {
  test('unknown key in a port', () => {
    const e = fails('[[port]]\naddr = "198.18.0.2/24"\n\n[[port]]\ndriver = "memory"\nmtuu = 1400\n');
    assertNames(e, 6, 'port[1].mtuu', /unknown key \(expected one of driver, ifname, .*mtu/);
  });

  test('unknown table', () => {
    const e = fails('[stack]\nworkers = 1\n\n[freebsd.boot]\nhz = 100\n');
    assertNames(e, 4, 'freebsd', /unknown table or key/);
  });

  test('wrong type', () => {
    assertNames(fails('[[port]]\nmtu = "abc"\n'), 2, 'port[0].mtu', /must be an integer between 68 and 65535 \(got "abc"\)/);
    assertNames(fails('[stack]\npoll = 3\n'), 2, 'stack.poll', /must be one of "busy", "adaptive", "interrupt" \(got 3\)/);
    assertNames(fails('port = 1\n'), 1, 'port', /array of tables/);
    assertNames(fails('[control]\nsocket = true\n'), 2, 'control.socket', /must be a string \(got true\)/);
  });

  test('out of range', () => {
    assertNames(fails('[[port]]\nmtu = 67\n'), 2, 'port[0].mtu', /between 68 and 65535 \(got 67\)/);
    assertNames(fails('[stack]\n# comment\nworkers = 0 # none\n'), 3, 'stack.workers', /integer between 1 and/);
    assertNames(fails('[[port]]\nifname = "a-very-long-name0"\n'), 2, 'port[0].ifname', /at most 15 characters/);
  });

  test('IPv6 port keys: addr6, gateway6 (global or link-local) and slaac', () => {
    const p = parseConfig('[[port]]\naddr6 = "2001:db8::2/64"\ngateway6 = "fe80::1"\nslaac = true\n', 'v6.toml').ports[0]!;
    assert.equal(p.addr6, '2001:db8::2/64');
    assert.equal(p.gateway6, 'fe80::1');
    assert.equal(p.slaac, true);
  });

  test('bad CIDR, address, gateway and MAC', () => {
    assertNames(fails('[[port]]\naddr = "198.18.0.2/33"\n'), 2, 'port[0].addr', /IPv4 address with prefix length .*\(got "198\.18\.0\.2\/33"\)/);
    assertNames(fails('[[port]]\naddr = "198.18.0.2"\n'), 2, 'port[0].addr', /prefix length/);
    assertNames(fails('[[port]]\naddr = "198.18.0.2/24"\ngateway = "198.18.1.1"\n'), 3, 'port[0].gateway', /not on 198\.18\.0\.2\/24's subnet/);
    assertNames(fails('[[port]]\naddr = "198.18.0.2/24"\ngateway = "198.18.0.x"\n'), 3, 'port[0].gateway', /IPv4 address/);
    assertNames(fails('[[port]]\naddr6 = "2001:db8::g/64"\n'), 2, 'port[0].addr6', /IPv6 address/);
    assertNames(fails('[[port]]\ngateway6 = "ff02::1"\n'), 2, 'port[0].gateway6', /unicast IPv6 address/);
    assertNames(fails('[[port]]\ngateway6 = "2001:db8::1/64"\n'), 2, 'port[0].gateway6', /unicast IPv6 address/);
    assertNames(fails('[[port]]\nslaac = "yes"\n'), 2, 'port[0].slaac', /true or false/);
    assertNames(fails('[[port]]\nhost_addr = "198.18.0.1"\n'), 2, 'port[0].host_addr', /prefix length/);
    assertNames(fails('[[port]]\nmac = "01:00:5e:00:00:01"\n'), 2, 'port[0].mac', /unicast/);
    assertNames(fails('[[port]]\nmac = "zz"\n'), 2, 'port[0].mac', /MAC address/);
  });

  test('unknown sysctl, quoted or dotted', () => {
    assertNames(fails('[sysctl]\n"net.inet.tcp.msl" = 1000\n"net.inet.tcp.nope" = 1\n'), 3, 'net.inet.tcp.nope', /unknown sysctl "net\.inet\.tcp\.nope"/);
    assertNames(fails('[sysctl]\nnet.inet.tcp.nope = 1\n'), 2, 'net.inet.tcp.nope', /unknown sysctl/);
    // Against a real stack's registry too (no registry passed).
    assert.throws(() => parseConfig('\n[sysctl]\n"no.such.key" = 1\n', 'r.toml'),
      (e: Error) => e instanceof ConfigError && e.message.startsWith("r.toml:3: key 'no.such.key': unknown sysctl"));
  });

  test('bad sysctl value', () => {
    assertNames(fails('[sysctl]\n"net.inet.tcp.msl" = "abc"\n'), 2, 'net.inet.tcp.msl', /expected an integer \(got "abc"\)/);
    assertNames(fails('[sysctl.net.inet]\ntcp.msl = 0\n'), 2, 'net.inet.tcp.msl', /must be >= 1/);
    assertNames(fails('[sysctl]\n"net.inet.tcp.cc.algorithm" = "bbr9"\n'), 2, 'net.inet.tcp.cc.algorithm', /must be one of newreno, cubic/);
    assertNames(fails('[sysctl]\n"net.inet.tcp.msl" = [1, 2]\n'), 2, 'net.inet.tcp.msl', /integer, a string or a boolean \(got an array\)/);
  });

  test('TOML syntax error keeps its line and names the key on it', () => {
    const e = fails('[stack]\nworkers = 1\npoll = "busy\n');
    assert.equal(e.line, 3);
    assert.equal(e.key, 'stack.poll');
    assert.match(e.message, /^conf\/tstack\.toml:3: key 'stack\.poll': invalid TOML: .*\(column \d+\)$/);
    const e2 = fails('[[port]]\nmtu = 1500\nmtu = 1400\n');
    assert.equal(e2.line, 3);
    assert.equal(e2.key, 'port[0].mtu');
  });

  test('unknown driver', () => {
    assertNames(fails('[[port]]\ndriver = "dpdk"\n'), 2, 'port[0].driver', /must be one of "tap", "memory", "pcap", "afpacket", "afxdp"/);
  });

  test('afpacket takes host_addr, host_addr6 and netns, and an ifname that leaves room for the veth kernel end', () => {
    const cfg = parseConfig('[[port]]\ndriver = "afpacket"\nifname = "afp0"\nhost_addr = "198.18.70.1/24"\nhost_addr6 = "2001:db8:70::1/64"\nnetns = "x"\n', 'conf/tstack.toml');
    assert.equal(cfg.ports[0]!.driver, 'afpacket');
    assert.equal(cfg.ports[0]!.hostAddr, '198.18.70.1/24');
    assert.equal(cfg.ports[0]!.netns, 'x');
    assertNames(fails('[[port]]\ndriver = "afpacket"\nifname = "abcdefghijklmno"\nhost_addr = "198.18.70.1/24"\n'), 3, 'port[0].ifname', /at most 14 characters with host_addr/);
    // Without host_addr the driver attaches to an existing interface: 15 bytes are fine.
    assert.equal(parseConfig('[[port]]\ndriver = "afpacket"\nifname = "abcdefghijklmno"\n', 'f').ports[0]!.ifname, 'abcdefghijklmno');
  });

  test('[stack] poll_slice_us: microseconds of ring watching between spinning iterations, 0-100000', () => {
    assert.equal(parseConfig('[stack]\npoll = "busy"\npoll_slice_us = 0\n', 'f').stack.pollSliceUs, 0);
    assert.equal(parseConfig('[stack]\npoll_slice_us = 500\n', 'f').stack.pollSliceUs, 500);
    assertNames(fails('[stack]\npoll_slice_us = 100001\n'), 2, 'stack.poll_slice_us', /100001/);
  });

  test('[stack] busy_poll_us: microseconds of polling after traffic (adaptive), 0-1000000', () => {
    assert.equal(parseConfig('[stack]\npoll = "adaptive"\nbusy_poll_us = 50\n', 'f').stack.busyPollUs, 50);
    assertNames(fails('[stack]\nbusy_poll_us = -1\n'), 2, 'stack.busy_poll_us', /-1/);
  });

  test('afxdp takes exception, queue and zero_copy; exception needs addr and an existing interface; mtu fits a UMEM frame', () => {
    const cfg = parseConfig('[[port]]\ndriver = "afxdp"\nifname = "eth1"\naddr = "198.18.80.2/24"\nexception = true\nqueue = 3\nzero_copy = true\n', 'f');
    assert.equal(cfg.ports[0]!.driver, 'afxdp');
    assert.equal(cfg.ports[0]!.exception, true);
    assert.equal(cfg.ports[0]!.queue, 3);
    assert.equal(cfg.ports[0]!.zeroCopy, true);
    assertNames(fails('[[port]]\ndriver = "afxdp"\nexception = true\n'), 3, 'port[0].exception', /needs addr/);
    assertNames(fails('[[port]]\ndriver = "afxdp"\naddr = "198.18.80.2/24"\nhost_addr = "198.18.80.1/24"\nexception = true\n'), 5, 'port[0].exception', /existing interface/);
    assertNames(fails('[[port]]\ndriver = "afxdp"\nexception = "yes"\n'), 3, 'port[0].exception', /true or false/);
    assertNames(fails('[[port]]\ndriver = "afxdp"\nmtu = 9000\n'), 3, 'port[0].mtu', /at most 3490/);
    assertNames(fails('[[port]]\ndriver = "afpacket"\nexception = true\n'), 3, 'port[0].exception', /only applies to driver "afxdp"/);
  });

  test('driver-specific keys on the wrong driver, and duplicate ifnames', () => {
    assertNames(fails('[[port]]\ndriver = "memory"\nnetns = "x"\n'), 3, 'port[0].netns', /only applies to driver "tap"/);
    assertNames(fails('[[port]]\ndriver = "pcap"\n'), 1, 'port[0]', /needs input .* and\/or output/);
    assertNames(fails('[[port]]\nifname = "a"\n[[port]]\nifname = "a"\n'), 4, 'port[1].ifname', /already used by port\[0\]/);
  });

  test('one address per port, one port per subnet, host addresses only, no TAP named "lo"', () => {
    const two = (a: string, b: string) => `[[port]]\ndriver = "memory"\nifname = "m0"\naddr = "${a}"\n[[port]]\ndriver = "memory"\nifname = "m1"\naddr = "${b}"\n`;
    assertNames(fails(two('198.18.0.2/24', '198.18.0.2/24')), 8, 'port[1].addr', /198\.18\.0\.2 is already port\[0\]'s address/);
    assertNames(fails(two('198.18.0.2/24', '198.18.0.3/24')), 8, 'port[1].addr', /same subnet as port\[0\]'s 198\.18\.0\.2\/24/);
    assertNames(fails(two('198.18.0.2/16', '198.18.7.3/24')), 8, 'port[1].addr', /same subnet/);
    assert.equal(parseConfig(two('198.18.0.2/24', '198.18.1.2/24'), 'ok.toml').ports.length, 2, 'two subnets are fine');
    assertNames(fails('[[port]]\naddr = "198.18.0.0/24"\n'), 2, 'port[0].addr', /network address, not a host address/);
    assertNames(fails('[[port]]\naddr = "198.18.0.255/24"\n'), 2, 'port[0].addr', /broadcast address, not a host address/);
    assertNames(fails('[[port]]\naddr = "198.18.0.2/24"\nhost_addr = "198.18.0.255/24"\n'), 3, 'port[0].host_addr', /broadcast address/);
    assert.equal(parseConfig('[[port]]\naddr = "198.18.0.0/31"\n', 'p2p.toml').ports[0]!.addr, '198.18.0.0/31', 'a /31 has no network or broadcast address (RFC 3021)');
    assertNames(fails('[[port]]\ndriver = "tap"\nifname = "lo"\n'), 3, 'port[0].ifname', /"lo" is the loopback interface/);
  });

  test('[shield]: limits and rules are parsed; a bad rule is named with its line', () => {
    const c = parseConfig('[shield]\nmax_conn_per_source = 64\nsyn_rate_per_source = 20\ndefault = "allow"\n[[shield.rule]]\naction = "deny"\nfrom = "198.18.0.0/24"\nproto = "tcp"\nport = 22\n[[shield.rule]]\naction = "allow"\nfrom = "198.18.1.5"\n'
      + '[[shield.rule]]\naction = "deny"\nfrom = "2001:db8:66::/48"\n[[shield.rule]]\naction = "allow"\nfrom = "2001:db8::7"\nproto = "icmp"\n[[shield.rule]]\naction = "deny"\nproto = "udp"\n', 's.toml');
    assert.equal(c.shield.maxConnPerSource, 64);
    assert.equal(c.shield.synRatePerSource, 20);
    assert.deepEqual(c.shield.rules, [
      { action: 'deny', from: 0xc6120000, fromLen: 24, proto: 'tcp', port: 22, family: 4 },
      { action: 'allow', from: 0xc6120105, fromLen: 32, proto: 'any', port: -1, family: 4 },
      { action: 'deny', from: 0, fromLen: 48, proto: 'any', port: -1, family: 6, from6: parseIpv6('2001:db8:66::')! },
      { action: 'allow', from: 0, fromLen: 128, proto: 'icmp', port: -1, family: 6, from6: parseIpv6('2001:db8::7')! },
      { action: 'deny', from: 0, fromLen: 0, proto: 'udp', port: -1 },
    ]);
    assertNames(fails('[shield]\n[[shield.rule]]\naction = "deny"\nfrom = "2001:db8::/129"\n'), 4, 'shield.rule[0].from', /IPv6 address with prefix length/);
    assertNames(fails('[shield]\n[[shield.rule]]\naction = "deny"\nproto = "icmp"\nport = 1\n'), 5, 'shield.rule[0].port', /needs proto = "tcp" or "udp"/);
    assertNames(fails('[shield]\n[[shield.rule]]\naction = "drop"\n'), 3, 'shield.rule[0].action', /must be one of "allow", "deny"/);
    assertNames(fails('[shield]\nmax_conn_per_source = -1\n'), 2, 'shield.max_conn_per_source', />= 0|at least 0|integer/);
  });

  test('lines stay right after multi-line strings and arrays', () => {
    // A key-looking line inside a multi-line string is not a key.
    assertNames(fails('[stack]\npoll = """\nworkers = 5\n"""\nworkers = 0\n'), 5, 'stack.workers', /integer/);
    assertNames(fails("[stack]\npoll = '''\nworkers = 5'''\nworkers = 0\n"), 4, 'stack.workers', /integer/);
    assertNames(fails('[[port]]\nmac = [\n  "workers = 1",\n]\n[stack]\nworkers = 0\n'), 2, 'port[0].mac', /must be a string \(got an array\)/);
    assertNames(fails('[stack]\npoll = [\n  "workers = 1",\n  { workers = 2 },\n]\nworkers = 0\n'), 6, 'stack.workers', /integer/);
  });
});
