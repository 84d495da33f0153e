import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatIpv4, formatIpv6, formatMac, isIpv4Loopback, isIpv4Multicast, isMacBroadcast, isMacMulticast, macEquals,
  parseIpv4, parseIpv4Cidr, parseIpv6, parseMac, prefixMask, readIpv4, writeIpv4, MAC_BROADCAST,
} from '../../src/wire/addr.js';

test('IPv4 text: dotted quads parse and format; everything else is null', () => {
  assert.equal(parseIpv4('198.18.50.1'), 0xc6123201);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(parseIpv4('0.0.0.0'), 0);
  assert.equal(formatIpv4(0xc6123201), '198.18.50.1');
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-4', '1..2.3', 'a.b.c.d', '1.2.3.4 ', '1234.1.1.1']) {
    assert.equal(parseIpv4(bad), null, bad);
  }
});

test('IPv4 CIDR and masks', () => {
  assert.deepEqual(parseIpv4Cidr('198.18.0.2/24'), { addr: 0xc6120002, prefixLen: 24 });
  assert.deepEqual(parseIpv4Cidr('10.0.0.1'), { addr: 0x0a000001, prefixLen: 32 });
  for (const bad of ['1.2.3.4/33', '1.2.3.4/', '1.2.3.4/x', '1.2.3.4/8/8', '/8']) assert.equal(parseIpv4Cidr(bad), null, bad);
  assert.equal(prefixMask(0), 0);
  assert.equal(prefixMask(24), 0xffffff00);
  assert.equal(prefixMask(32), 0xffffffff);
  assert.ok(isIpv4Multicast(parseIpv4('224.0.0.1')!) && !isIpv4Multicast(parseIpv4('240.0.0.1')!));
  assert.ok(isIpv4Loopback(parseIpv4('127.1.2.3')!));
});

test('IPv4 bytes: write then read at an offset', () => {
  const b = new Uint8Array(7);
  writeIpv4(b, 3, 0xc6123201);
  assert.deepEqual([...b], [0, 0, 0, 198, 18, 50, 1]);
  assert.equal(readIpv4(b, 3), 0xc6123201);
});

test('IPv6 text: RFC 4291 §2.2 forms parse', () => {
  const hex = (s: string) => Buffer.from(parseIpv6(s) ?? []).toString('hex');
  assert.equal(hex('2001:db8:50::1'), '20010db8005000000000000000000001');
  assert.equal(hex('::'), '0'.repeat(32));
  assert.equal(hex('::1'), '0'.repeat(31) + '1');
  assert.equal(hex('1::'), '0001' + '0'.repeat(28));
  assert.equal(hex('::ffff:198.18.50.1'), '00000000000000000000ffffc6123201');
  assert.equal(hex('FE80::1%tva'), 'fe80' + '0'.repeat(27) + '1');
  assert.equal(hex('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
  for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::', '1.2.3.4', '::1.2.3']) {
    assert.equal(parseIpv6(bad), null, bad);
  }
});

test('IPv6 formatting follows RFC 5952 §4 (lowercase, longest zero run, first on a tie, never a single 16-bit 0)', () => {
  const f = (s: string) => formatIpv6(parseIpv6(s)!);
  assert.equal(f('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(f('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(f('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
  assert.equal(f('2001:0:0:1:0:0:0:1'), '2001:0:0:1::1');
  assert.equal(f('::'), '::');
  assert.equal(f('fe80::ff:fe00:5001'), 'fe80::ff:fe00:5001');
  assert.equal(f('1::'), '1::');
  const b = new Uint8Array(20); b.set(parseIpv6('ff02::1:ff00:5001')!, 4);
  assert.equal(formatIpv6(b, 4), 'ff02::1:ff00:5001');
});

test('MAC text and predicates', () => {
  const m = parseMac('02:00:00:00:50:01')!;
  assert.deepEqual([...m], [2, 0, 0, 0, 0x50, 1]);
  assert.deepEqual(parseMac('02-00-00-00-50-0A'), Uint8Array.from([2, 0, 0, 0, 0x50, 0x0a]));
  assert.equal(formatMac(m), '02:00:00:00:50:01');
  for (const bad of ['', '02:00:00:00:50', '02:00:00:00:50:01:02', '02:00:00:00:50:zz', '2:0:0:0:50:1']) assert.equal(parseMac(bad), null, bad);
  assert.ok(isMacBroadcast(MAC_BROADCAST, 0));
  assert.ok(isMacMulticast(parseMac('33:33:ff:00:50:01')!, 0));
  assert.ok(!isMacMulticast(m, 0));
  const b = new Uint8Array(10); b.set(m, 3);
  assert.ok(macEquals(b, 3, m, 0));
  assert.ok(!macEquals(b, 2, m, 0));
});
