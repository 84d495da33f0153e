// Bulk transfer pieces the TCP simulations share: stream a buffer out of an engine socket as
// fast as its send buffer allows, collect what one receives, and compare by SHA-256.
import { createHash } from 'node:crypto';
import type { TcpSocket } from '../../src/stack/tcp/socket.js';
import type { TcpError } from '../../src/stack/tcp/socket.js';

/** SHA-256 (hex) of the chunks in order. */
export function sha(chunks: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

/** Streams `data` out of `s` in writes of at most `chunk` bytes, refilling on drain, then shuts down. */
export function pump(s: TcpSocket, data: Uint8Array, chunk = 65536): void {
  let off = 0;
  const go = () => {
    while (off < data.length) {
      const n = s.write(data.subarray(off, Math.min(data.length, off + chunk)));
      off += n;
      if (n === 0) return;
    }
    s.onDrain = null;
    s.shutdown();
  };
  s.onDrain = go;
  go();
}

export interface Collected { chunks: Uint8Array[]; bytes: number; ended: boolean; closed: boolean; err: TcpError | undefined }

/** Reads everything `s` receives into `chunks`; notes end of stream and close (with its error). */
export function collect(s: TcpSocket): Collected {
  const r: Collected = { chunks: [], bytes: 0, ended: false, closed: false, err: undefined };
  s.onData = () => { for (let d = s.read(); d; d = s.read()) { r.chunks.push(d); r.bytes += d.length; } };
  s.onEnd = () => { r.ended = true; };
  s.onClose = (e) => { r.closed = true; r.err = e; };
  return r;
}
