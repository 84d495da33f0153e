import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import { EthernetView } from '../../src/wire/ethernet.js';
import { VLAN_VIEW_LEN, VlanTpid, VlanView, isVlanTpid, makeTci, popVlanTag, pushVlanTag, writeVlanTag } from '../../src/wire/vlan.js';
import { FRAMES } from '../fixtures/frames.js';
import { hexToBytes } from '../helpers/wire-dissect.js';

const frame = (label: string) => hexToBytes(FRAMES.find((f) => f.label === label)!.hex);

test('802.1Q tag: PCP 5, VID 100, inner IPv4 read from the captured frame', () => {
  const b = frame('vlan-udp4');
  const v = new VlanView();
  assert.equal(v.wrap(b, 12, b.length - 12), WireError.Ok);
  assert.equal(v.tpid, VlanTpid.CTag);
  assert.equal(v.pcp, 5);
  assert.equal(v.dei, false);
  assert.equal(v.vid, 100);
  assert.equal(v.tci, makeTci(5, false, 100));
  assert.equal(v.innerEtherType, 0x0800);
  assert.equal(v.payloadOff, 18);
  assert.equal(v.payloadLen, b.length - 18);
});

test('Q-in-Q: the S-tag (DEI 1, VID 200) then the C-tag (PCP 1, VID 10) then ARP, with one view', () => {
  const b = frame('qinq-arp');
  const v = new VlanView();
  assert.equal(v.wrap(b, 12, b.length - 12), WireError.Ok);
  assert.equal(v.tpid, VlanTpid.STag);
  assert.deepEqual([v.pcp, v.dei, v.vid], [0, true, 200]);
  assert.ok(isVlanTpid(v.innerEtherType));
  const next = v.nextTagOff;
  assert.equal(v.wrap(b, next, b.length - next), WireError.Ok);
  assert.deepEqual([v.tpid, v.pcp, v.dei, v.vid, v.innerEtherType], [0x8100, 1, false, 10, 0x0806]);
  assert.equal(v.payloadOff, 22);
});

test('wrap: truncation, a non-VLAN TPID, the reserved VID 0xFFF and an LLC length inside the tag are errors', () => {
  const b = frame('vlan-udp4');
  const v = new VlanView();
  for (let n = 0; n < VLAN_VIEW_LEN; n++) assert.equal(v.wrap(b, 12, n), WireError.Truncated);
  assert.equal(v.wrap(b, b.length - 5, 6), WireError.Truncated);
  const c = b.slice(); c[12] = 0x08; c[13] = 0x00;
  assert.equal(v.wrap(c, 12, c.length - 12), WireError.Unsupported);
  const r = b.slice(); r[14] |= 0x0f; r[15] = 0xff;
  assert.equal(v.wrap(r, 12, r.length - 12), WireError.Malformed);
  const l = b.slice(); l[16] = 0x00; l[17] = 0x40;
  assert.equal(v.wrap(l, 12, l.length - 12), WireError.Unsupported);
  const p = b.slice(); p[14] &= 0xf0; p[15] = 0;
  assert.equal(v.wrap(p, 12, p.length - 12), WireError.Ok, 'VID 0: priority-tagged');
});

test('setters change only their bits', () => {
  const b = frame('vlan-udp4');
  const v = new VlanView();
  v.wrap(b, 12, b.length - 12);
  v.vid = 4094; assert.deepEqual([v.pcp, v.dei, v.vid], [5, false, 4094]);
  v.pcp = 7; assert.deepEqual([v.pcp, v.dei, v.vid], [7, false, 4094]);
  v.dei = true; assert.deepEqual([v.pcp, v.dei, v.vid], [7, true, 4094]);
  v.tci = makeTci(0, false, 1); assert.deepEqual([v.pcp, v.dei, v.vid], [0, false, 1]);
  assert.equal(v.innerEtherType, 0x0800);
});

test('writeVlanTag reproduces the captured tags', () => {
  const b = frame('qinq-arp');
  const out = new Uint8Array(10);
  writeVlanTag(out, 0, VlanTpid.STag, 0, true, 200, VlanTpid.CTag);
  writeVlanTag(out, 4, VlanTpid.CTag, 1, false, 10, 0x0806);
  assert.deepEqual(out, b.subarray(12, 22));
});

test('push then pop a tag in the headroom: the untagged frame comes back unchanged', () => {
  const tagged = frame('vlan-udp4');
  // The untagged frame: MACs, then the inner EtherType and payload.
  const plain = new Uint8Array(tagged.length - 4);
  plain.set(tagged.subarray(0, 12)); plain.set(tagged.subarray(16), 12);
  const buf = new Uint8Array(8 + plain.length);
  buf.set(plain, 8);
  const start = pushVlanTag(buf, 8, VlanTpid.CTag, makeTci(5, false, 100));
  assert.equal(start, 4);
  assert.deepEqual(buf.subarray(start), tagged);
  const eth = new EthernetView();
  assert.equal(eth.wrap(buf, start, buf.length - start), WireError.Ok);
  assert.equal(eth.etherType, VlanTpid.CTag);
  const back = popVlanTag(buf, start);
  assert.equal(back, 8);
  assert.deepEqual(buf.subarray(back), plain);
});
