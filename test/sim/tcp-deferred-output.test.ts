// Deferred output (Stack.setDeferOutput, what the run loop turns on): what the application does
// to a connection during one round — read, write, shutdown — leaves as few segments as the
// windows allow. An HTTP-style exchange then costs the server one segment after the SYN,ACK:
// the response with its FIN, carrying the window the read opened, and no lone window update.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, type StackNode } from '../helpers/sim.js';
import { parseIpv4 } from '../../src/wire/addr.js';
import type { PacketBuffer } from '../../src/base/pktbuf.js';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';

const SERVER = parseIpv4('198.18.7.2')!;
const REQUEST = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
const RESPONSE = new TextEncoder().encode('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');

interface Seg { flags: string; len: number; win: number }

/** The TCP segments `node` transmits, decoded from its Ethernet frames (IPv4 only). */
function recordSegments(node: StackNode): Seg[] {
  const out: Seg[] = [];
  const port = node.port;
  const tx = port.transmit.bind(port);
  port.transmit = (buf: PacketBuffer) => {
    const d = buf.data, f = buf.start;
    if (((d[f + 12]! << 8) | d[f + 13]!) === 0x0800 && d[f + 23] === 6) {
      const ip = f + 14, ihl = (d[ip]! & 15) * 4, tcp = ip + ihl;
      const total = (d[ip + 2]! << 8) | d[ip + 3]!;
      const doff = (d[tcp + 12]! >> 4) * 4, fl = d[tcp + 13]!;
      const names = [[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x10, '.']] as const;
      out.push({ flags: names.filter(([b]) => fl & b).map(([, n]) => n).join(''), len: total - ihl - doff, win: (d[tcp + 14]! << 8) | d[tcp + 15]! });
    }
    tx(buf);
  };
  return out;
}

function exchange(deferOutput: boolean, respond: (s: TcpSocket) => void): { server: Seg[]; got: string; closed: boolean } {
  const sim = new Simulation({ seed: `deferred-${deferOutput}`, latencyMs: 1 });
  const a = sim.addHost({ name: 'a', addr: '198.18.7.1/24', deferOutput });
  const b = sim.addHost({ name: 'b', addr: '198.18.7.2/24', deferOutput });
  const server = recordSegments(b);
  const l = b.stack.tcp.listen({ port: 80 });
  l.onConnection = (s) => {
    let seen = 0;
    s.onData = () => {
      for (let c = s.read(); c; c = s.read()) seen += c.length;
      if (seen === REQUEST.length) respond(s);
    };
    s.onEnd = () => s.close();
  };
  const c = a.stack.tcp.connect({ raddr: SERVER, rport: 80 });
  let got = '', closed = false;
  c.onConnect = () => { c.write(REQUEST); };
  c.onData = () => { for (let x = c.read(); x; x = c.read()) got += new TextDecoder().decode(x); };
  c.onEnd = () => c.close();
  c.onClose = () => { closed = true; };
  assert.ok(sim.runUntil(() => closed, { maxMs: 10_000 }), sim.describe());
  sim.run(1000);
  sim.close();
  return { server, got, closed };
}

test('deferred output: the response and the FIN written in one round leave as one segment, with the opened window', () => {
  const r = exchange(true, (s) => { s.write(RESPONSE); s.shutdown(); });
  assert.equal(r.got, new TextDecoder().decode(RESPONSE));
  // SYN,ACK; then response + FIN together; then the ACK of the client's FIN.
  assert.deepEqual(r.server.map((x) => `${x.flags}:${x.len}`), ['S.:0', 'FP.:' + RESPONSE.length, '.:0']);
  // The read opened the window past the SYN,ACK's unscaled 65535; it rides on the response.
  const scaled = r.server[1]!.win;
  assert.ok(scaled > 0 && scaled < 65535, `window field ${scaled} is the scaled, opened window`);
});

test('deferred output: several writes in one round coalesce into one segment', () => {
  const r = exchange(true, (s) => {
    s.write(RESPONSE.subarray(0, 10));
    s.write(RESPONSE.subarray(10, 30));
    s.write(RESPONSE.subarray(30));
    s.close();
  });
  assert.equal(r.got, new TextDecoder().decode(RESPONSE));
  assert.deepEqual(r.server.map((x) => `${x.flags}:${x.len}`), ['S.:0', 'FP.:' + RESPONSE.length, '.:0']);
});

test('immediate output (no run loop): the same exchange sends the window update, the response and the FIN apart', () => {
  const r = exchange(false, (s) => { s.write(RESPONSE); s.shutdown(); });
  assert.equal(r.got, new TextDecoder().decode(RESPONSE));
  const flags = r.server.map((x) => `${x.flags}:${x.len}`);
  assert.ok(flags.length > 3, `more segments without deferral: ${flags.join(' ')}`);
  assert.ok(flags.includes('FP.:0') || flags.includes('F.:0'), `a FIN of its own: ${flags.join(' ')}`);
});
