// A packet dispatcher (docs/dispatcher.md): UDP echo (port 7) answered in the dispatcher, before
// the stack, plus an allow-list for TCP port 22. Use it with `[stack] dispatcher =
// "examples/dispatcher/udp-echo.js"` in a tstack.toml, or installDispatcher(instance, fn).
//
// The function gets the receive buffer (buf.data, from buf.start to buf.end: the Ethernet
// frame) and returns undefined (the stack takes it), 'drop', 'respond' (the frame, rewritten in
// place, goes straight back out), or a worker index.
const ALLOWED_SSH = new Set(['198.18.0.1']);

export default function dispatch(buf) {
  const b = buf.data, s = buf.start;
  if (buf.end - s < 42 || b[s + 12] !== 0x08 || b[s + 13] !== 0x00) return undefined; // IPv4 only
  const ip = s + 14;
  const ihl = (b[ip] & 0x0f) * 4;
  if ((((b[ip + 6] << 8) | b[ip + 7]) & 0x3fff) !== 0) return undefined; // fragments: the stack's
  const l4 = ip + ihl;
  const proto = b[ip + 9];
  const dport = (b[l4 + 2] << 8) | b[l4 + 3];
  if (proto === 6 && dport === 22) {
    const src = `${b[ip + 12]}.${b[ip + 13]}.${b[ip + 14]}.${b[ip + 15]}`;
    return ALLOWED_SSH.has(src) ? undefined : 'drop';
  }
  if (proto !== 17 || dport !== 7) return undefined;
  // Echo: swap the MACs, the addresses and the ports. Swapping leaves both checksums right (the
  // sums are over the same words); a checksum the sender left to offload is not filled in, so
  // send the datagram without one (0 is allowed over IPv4) and say the frame needs no offload.
  for (let i = 0; i < 6; i++) { const t = b[s + i]; b[s + i] = b[s + 6 + i]; b[s + 6 + i] = t; }
  for (let i = 0; i < 4; i++) { const t = b[ip + 12 + i]; b[ip + 12 + i] = b[ip + 16 + i]; b[ip + 16 + i] = t; }
  for (let i = 0; i < 2; i++) { const t = b[l4 + i]; b[l4 + i] = b[l4 + 2 + i]; b[l4 + 2 + i] = t; }
  b[l4 + 6] = 0; b[l4 + 7] = 0;
  buf.csum = 0; buf.gso = 0;
  return 'respond';
}
