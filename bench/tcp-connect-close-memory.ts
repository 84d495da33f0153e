// TCP connect+close latency: sequential cycles between two Stacks on the memory wire (MTU 1500),
// one thread. A cycle: the client connects; on 'connect' it closes (FIN); the server, seeing the
// end of the stream, closes too; the cycle ends when the server sees its connection closed (its
// FIN acknowledged). Seven segments per cycle through the full stack (TCP, IPv4, Ethernet, the
// memory wire). Reference: the same program on Node `net` over the kernel loopback, same run.
//
// The client keeps every connection in TIME_WAIT (2*MSL, the default 30 s MSL), as a kernel
// does, so the rounds are sized in cycles and the client's ephemeral range is widened to
// 1024-65535 so that no port is reused within the run (at most 30 warm-up slices of 1,000
// cycles plus 3 rounds of 5,000: 45,000 connections in TIME_WAIT at the end).
import { once } from 'node:events';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { realClock } from '../src/runtime/loop.js';
import { MemoryPair, median, sleep, warmUntilSettled } from './tcp-bulk-memory.js';
import { result, type BenchOptions, type BenchResult, type Benchmark } from './types.js';

const PORT = 5002;

interface Plan { cycles: number; rounds: number; warmCycles: number; warmMinMs: number }

function plan(quick: boolean): Plan {
  return quick ? { cycles: 2000, rounds: 1, warmCycles: 500, warmMinMs: 300 } : { cycles: 5000, rounds: 3, warmCycles: 1000, warmMinMs: 1000 };
}

/** tstack: `n` sequential connect+close cycles; returns µs per cycle. */
function tstackCycles(pair: MemoryPair, n: number): number {
  let serverClosed = 0;
  const l = pair.b.tcp.listen({ port: PORT });
  l.onConnection = (s) => {
    s.onEnd = () => s.close();
    s.onClose = () => { serverClosed++; };
  };
  const tcp = pair.a.tcp;
  const raddr = pair.bAddr;
  const t0 = realClock.now();
  for (let i = 0; i < n; i++) {
    const c = tcp.connect({ raddr, rport: PORT });
    c.onConnect = () => c.close();
    const want = i + 1;
    if (!pair.runUntil(() => serverClosed >= want, 2000)) {
      throw new Error(`tcp-connect-close-memory: cycle ${i} not finished within 2 s (client ${c.state}; ${pair.drops()})`);
    }
  }
  const t1 = realClock.now();
  l.close();
  return ((t1 - t0) * 1000) / n;
}

/** Node `net` over 127.0.0.1: same program, returns µs per cycle. */
async function nodeCycles(srv: Server, n: number): Promise<number> {
  const port = (srv.address() as AddressInfo).port;
  let wake: (() => void) | null = null;
  const onConn = (s: Socket) => {
    // allowHalfOpen is off: 'end' from the client makes the server end too.
    s.on('error', () => {});
    s.on('close', () => { const w = wake; wake = null; w?.(); });
    s.resume();
  };
  srv.on('connection', onConn);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const closed = new Promise<void>((res) => { wake = res; });
    const c = netConnect({ port, host: '127.0.0.1' });
    c.on('error', () => {});
    c.on('connect', () => c.end());
    c.resume();
    await closed;
  }
  const t1 = performance.now();
  srv.off('connection', onConn);
  return ((t1 - t0) * 1000) / n;
}

export const tcpConnectCloseMemory: Benchmark = {
  name: 'tcp-connect-close-memory',
  description: 'TCP µs per connect+close cycle between two stacks on the memory wire (MTU 1500), one thread; ' +
    'reference: Node net over kernel loopback, same program',
  async run(opts: BenchOptions): Promise<BenchResult[]> {
    const p = plan(opts.quick);
    const pair = new MemoryPair();
    // Every cycle leaves a TIME_WAIT on the client: give it the whole non-reserved range.
    pair.a.tcp.ports.setRange(1024, 65535);
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const ours: number[] = [];
    const theirs: number[] = [];
    try {
      // ARP and the JIT warm up here.
      const w = warmUntilSettled(() => tstackCycles(pair, p.warmCycles), p.warmMinMs, 4000, 30);
      await sleep(10);
      const wn = await nodeCycles(srv, p.warmCycles);
      opts.log(`tcp-connect-close-memory warm-up: tstack ${w.slices} x ${p.warmCycles} cycles in ${Math.round(w.ms)} ms (last ${w.last.toFixed(1)} µs), node ${wn.toFixed(1)} µs`);
      for (let r = 0; r < p.rounds; r++) {
        ours.push(tstackCycles(pair, p.cycles));
        await sleep(10);
        theirs.push(await nodeCycles(srv, p.cycles));
        opts.log(`tcp-connect-close-memory round ${r + 1}/${p.rounds}: tstack ${ours[r]!.toFixed(1)} µs, node net ${theirs[r]!.toFixed(1)} µs`);
      }
      opts.log(`tcp-connect-close-memory: client holds ${pair.a.tcp.activeTcbs} connections (TIME_WAIT), server ${pair.b.tcp.activeTcbs}`);
      const d = pair.drops();
      if (d) opts.log(`tcp-connect-close-memory: ${d}`);
    } finally {
      pair.close();
      srv.close();
    }
    return [result({
      bench: 'tcp-connect-close-memory',
      metric: 'connect-close',
      value: median(ours),
      unit: 'µs',
      reference: median(theirs),
      referenceLabel: 'node net on kernel loopback, same program',
      better: 'lower',
      note: `sequential cycles (connect, close on 'connect', server closes on end, done when the server sees close), ${p.cycles} per round, median of ${p.rounds} alternating round(s) after warm-up slices of ${p.warmCycles} cycles until the figure settles (>= ${p.warmMinMs} ms)`,
    })];
  },
};
