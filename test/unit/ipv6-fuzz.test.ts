// 20,000 mutated IPv6 frames (pings, fragments, extension headers, NS/NA/RA, MLD queries, errors)
// into the IPv6 layer: nothing throws, every buffer goes back to the pool once the timers have
// run, and the layer still answers a clean ping afterwards.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../src/base/prng.js';
import { finishIcmpv6Checksum } from '../../src/wire/icmpv6.js';
import { Ipv6Next } from '../../src/wire/ipv6.js';
import { NaFlag } from '../../src/wire/ndp.js';
import {
  ETH_HLEN, IPV6_HLEN, OUR, OUR_LL, PEER, PEER_LL, echoRequest, fragmentFrames, icmp6, ip6, ipv6Frame, makeHarness, naFrame,
  nsFrame, pingFrame, raFrame,
} from '../helpers/ipv6-harness.js';

function templates(): Uint8Array[] {
  const echo = icmp6(PEER, OUR, echoRequest(1, 1, new Uint8Array(2000).fill(7)));
  const mldQuery = new Uint8Array(28); mldQuery[0] = 130;
  const all = ip6('ff02::1');
  return [
    pingFrame(OUR, new Uint8Array(56)),
    pingFrame(OUR_LL, new Uint8Array(8), { src: PEER_LL }),
    pingFrame(all, new Uint8Array(8), { src: PEER_LL }),
    ...fragmentFrames(PEER, OUR, Ipv6Next.ICMPv6, echo, 1000, 5),
    ipv6Frame(PEER, OUR, Ipv6Next.DestOptions, Uint8Array.of(Ipv6Next.ICMPv6, 0, 0x9e, 2, 0, 0, 1, 0, ...icmp6(PEER, OUR, echoRequest(2, 2, new Uint8Array(8))))),
    ipv6Frame(PEER, OUR, Ipv6Next.HopByHop, Uint8Array.of(Ipv6Next.Routing, 0, 5, 2, 0, 0, 1, 0, Ipv6Next.ICMPv6, 2, 0, 1, 0, 0, 0, 0, ...OUR, ...icmp6(PEER, OUR, echoRequest(3, 3, new Uint8Array(8))))),
    nsFrame(PEER, OUR), nsFrame(ip6('::'), OUR, { slla: null }),
    naFrame(PEER, OUR, PEER, NaFlag.Solicited | NaFlag.Override),
    raFrame({ mtu: 1400, prefixes: [{ prefix: '2001:db8:1::', valid: 600, preferred: 300 }] }),
    ipv6Frame(PEER_LL, all, Ipv6Next.ICMPv6, icmp6(PEER_LL, all, mldQuery), { hopLimit: 1 }),
    ipv6Frame(PEER, OUR, Ipv6Next.ICMPv6, icmp6(PEER, OUR, Uint8Array.of(2, 0, 0, 0, 0, 0, 5, 0, ...ipv6Frame(OUR, PEER, Ipv6Next.UDP, new Uint8Array(16)).subarray(ETH_HLEN)))),
    ipv6Frame(PEER, OUR, Ipv6Next.UDP, new Uint8Array(20)),
  ];
}

test('20,000 mutated IPv6 frames: no throw, every buffer returned, still answering afterwards', () => {
  const h = makeHarness({ cfg: { addr6: '2001:db8::2/64', slaac: true } });
  const rng = new Prng('ipv6-fuzz');
  const base = templates();
  let sent = 0;
  for (let i = 0; i < 20_000; i++) {
    const f = base[rng.u32() % base.length]!.slice();
    const mode = rng.u32() % 4;
    const flips = 1 + (rng.u32() % 4);
    for (let k = 0; k < flips; k++) {
      // Mostly the headers, where the decisions are.
      const span = mode === 0 ? f.length : Math.min(f.length, ETH_HLEN + IPV6_HLEN + 48);
      f[ETH_HLEN + (rng.u32() % (span - ETH_HLEN))] = rng.u32() & 0xff;
    }
    let frame = f;
    if (mode === 1) frame = f.subarray(0, ETH_HLEN + (rng.u32() % (f.length - ETH_HLEN + 1)));
    // Half the time, a checksum that fits the mutated ICMPv6 message, so it goes deeper.
    if (mode >= 2 && frame[ETH_HLEN + 6] === Ipv6Next.ICMPv6 && frame.length > ETH_HLEN + IPV6_HLEN + 4) {
      const pl = Math.min((frame[ETH_HLEN + 4]! << 8) | frame[ETH_HLEN + 5]!, frame.length - ETH_HLEN - IPV6_HLEN);
      finishIcmpv6Checksum(frame, ETH_HLEN + IPV6_HLEN, pl, frame, ETH_HLEN + 8, frame, ETH_HLEN + 24);
    }
    h.receive(frame);
    sent++;
    if (i % 1000 === 0) { h.advance(rng.u32() % 5000); h.take(); }
  }
  // Long enough for every timer a mutated RA may have stretched (RetransTimer capped at 60 s).
  h.advance(400_000);
  h.take();
  assert.equal(sent, 20_000);
  assert.equal(h.pool.inUse, 0, 'every buffer went back to the pool');
  assert.ok(Object.keys(h.drops).length > 10, JSON.stringify(h.drops));
  h.receive(nsFrame(PEER, OUR));
  h.receive(pingFrame(OUR, new Uint8Array(8), { id: 9, seq: 9 }));
  assert.ok(h.take().some((f) => f.icmpType === 129), 'still answers a ping');
});
