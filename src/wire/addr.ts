// Address helpers. IPv4 addresses are unsigned 32-bit numbers (numeric keys on the hot path);
// IPv6 addresses are 16-byte Uint8Arrays; MAC addresses are 6-byte Uint8Arrays.

export type Ipv4Addr = number;

export const IPV4_ANY = 0;
export const IPV4_BROADCAST = 0xffffffff;

/** Parses dotted-quad IPv4 text; returns null when it is not one. */
export function parseIpv4(text: string): Ipv4Addr | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return v >>> 0;
}

export function formatIpv4(a: Ipv4Addr): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** Parses "a.b.c.d/len" (len defaults to 32). */
export function parseIpv4Cidr(text: string): { addr: Ipv4Addr; prefixLen: number } | null {
  const [a, l, ...rest] = text.split('/');
  if (rest.length || a === undefined) return null;
  const addr = parseIpv4(a);
  const prefixLen = l === undefined ? 32 : /^\d{1,2}$/.test(l) ? Number(l) : -1;
  if (addr === null || prefixLen < 0 || prefixLen > 32) return null;
  return { addr, prefixLen };
}

export function prefixMask(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

export function isIpv4Multicast(a: Ipv4Addr): boolean { return (a >>> 28) === 0xe; }
export function isIpv4Loopback(a: Ipv4Addr): boolean { return (a >>> 24) === 127; }

export function readIpv4(b: Uint8Array, off: number): Ipv4Addr {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}
export function writeIpv4(b: Uint8Array, off: number, a: Ipv4Addr): void {
  b[off] = a >>> 24; b[off + 1] = a >>> 16; b[off + 2] = a >>> 8; b[off + 3] = a;
}

export type MacAddr = Uint8Array;
export const MAC_BROADCAST: MacAddr = new Uint8Array([255, 255, 255, 255, 255, 255]);
export const MAC_ZERO: MacAddr = new Uint8Array(6);

export function parseMac(text: string): MacAddr | null {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(text);
  return m ? Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16))) : null;
}
export function formatMac(m: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + m[off + i]!.toString(16).padStart(2, '0');
  return s;
}
export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
export function isMacBroadcast(b: Uint8Array, off: number): boolean {
  return (b[off]! & b[off + 1]! & b[off + 2]! & b[off + 3]! & b[off + 4]! & b[off + 5]!) === 255;
}
export function isMacMulticast(b: Uint8Array, off: number): boolean { return (b[off]! & 1) === 1; }

/** Parses IPv6 text (RFC 4291 §2.2 forms, including an embedded IPv4 tail); null when invalid. */
export function parseIpv6(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  let s = text;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  let tail4: number | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    tail4 = parseIpv4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const groups = head.length + tail.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return null;
  const words: number[] = [...head.map(hex16), ...new Array(8 - groups).fill(0), ...tail.map(hex16)];
  if (words.some((w) => w < 0)) return null;
  for (let i = 0; i < 8; i++) { out[2 * i] = words[i]! >> 8; out[2 * i + 1] = words[i]! & 255; }
  if (tail4 !== null) writeIpv4(out, 12, tail4);
  return out;
}
function hex16(g: string): number { return /^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : -1; }

/** Formats IPv6 per RFC 5952 (lowercase, longest zero run compressed). */
export function formatIpv6(a: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((a[off + 2 * i]! << 8) | a[off + 2 * i + 1]!);
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i; while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}
