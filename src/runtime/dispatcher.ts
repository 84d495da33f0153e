// The packet dispatcher (F-Stack's ff_regist_packet_dispatcher; docs/dispatcher.md): user code
// that sees every received frame before the stack and decides its fate:
//   undefined / 'stack'  the stack gets it (with several workers: its flow's owner, as usual);
//   'drop'               dropped, counted;
//   'respond'            the dispatcher rewrote the frame in place (buf.data[buf.start, buf.end));
//                        it goes straight back out of the port it came in on;
//   a number i           worker i gets it (with one worker, only 0 means anything: the stack).
// The function gets the receive buffer itself (no copy, nothing allocated per frame) and the
// port's interface index; it must not keep the buffer after it returns.
import type { PacketBuffer } from '../base/pktbuf.js';
import type { Instance } from './instance.js';

export type DispatchVerdict = undefined | 'stack' | 'drop' | 'respond' | number;
export type PacketDispatcher = (buf: PacketBuffer, ifIndex: number) => DispatchVerdict;

export interface DispatcherStats { seen: number; dropped: number; responded: number; redirected: number; errors: number }

/** Counters of the dispatcher installed on each instance. */
const statsOf = new WeakMap<Instance, DispatcherStats>();

export function dispatcherStats(inst: Instance): DispatcherStats | undefined {
  const s = statsOf.get(inst);
  return s && { ...s };
}

/**
 * Puts `fn` in front of the stack on every port of `inst`. `toWorker(i, ifIndex, buf)` hands a
 * frame to worker i (several workers; it takes the buffer); without it a number other than
 * `self` is a drop. A dispatcher that throws lets the frame through to the stack (counted).
 * Returns a function that removes it.
 */
export function installDispatcher(
  inst: Instance, fn: PacketDispatcher,
  opts: { self?: number; toWorker?: (i: number, ifIndex: number, buf: PacketBuffer) => void } = {},
): () => void {
  const loop = inst.loop;
  const prev = loop.steer;
  const self = opts.self ?? 0;
  const toWorker = opts.toWorker;
  const st: DispatcherStats = { seen: 0, dropped: 0, responded: 0, redirected: 0, errors: 0 };
  statsOf.set(inst, st);
  const drivers = new Map(inst.ports.map((p) => [p.ifIndex, p.driver]));
  const steer = (ifIndex: number, buf: PacketBuffer): boolean => {
    st.seen++;
    let v: DispatchVerdict;
    try { v = fn(buf, ifIndex); } catch { st.errors++; v = undefined; }
    if (v === undefined || v === 'stack' || v === self) return prev !== null ? prev(ifIndex, buf) : false;
    if (v === 'drop') { st.dropped++; buf.release(); return true; }
    if (v === 'respond') {
      const d = drivers.get(ifIndex);
      if (d === undefined || buf.end <= buf.start) { st.errors++; buf.release(); return true; }
      st.responded++;
      d.transmit(buf);
      return true;
    }
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && toWorker !== undefined) {
      st.redirected++;
      toWorker(v, ifIndex, buf);
      return true;
    }
    st.dropped++;
    buf.release();
    return true;
  };
  loop.steer = steer;
  return () => { if (loop.steer === steer) loop.steer = prev; };
}
