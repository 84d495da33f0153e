// Ephemeral port selection, RFC 6056 §3.3.3 "Algorithm 3: Simple Hash-Based Port Selection":
//
//   offset = F(local_IP, remote_IP, remote_port, secret_key);
//   count = num_ephemeral;
//   do {
//       port = min_ephemeral + (next_ephemeral + offset) % num_ephemeral;
//       next_ephemeral++;
//       if(check_suitable_port(port)) return port;
//       count--;
//   } while (count > 0);
//   return ERROR;
//
// Each destination sees its own sequence of ports starting at a secret offset, so ports are
// hard to guess off-path, and a port is not reused for the same destination until the whole
// range has been cycled through. F is SipHash-2-4 with a key drawn once.
import { type SipKey, siphash24, sipKeyFromRandom } from './siphash.js';

export class EphemeralPorts {
  private readonly key: SipKey;
  private first: number;
  private last: number;
  private nextEphemeral: number;
  // F() of the last destination: clients mostly connect to one server over and over.
  private lastLaddr = -1;
  private lastRaddr = -1;
  private lastRport = -1;
  private lastOffset = 0;

  /** Default range is IANA's dynamic ports (RFC 6056 §3.2: 49152-65535). */
  constructor(random32: () => number, first = 49152, last = 65535) {
    this.key = sipKeyFromRandom(random32);
    // RFC 6056 §3.3.3: "next_ephemeral = initial_value" — random, so a restart does not
    // replay the same ports.
    this.nextEphemeral = random32() >>> 0;
    this.first = 0;
    this.last = 0;
    this.setRange(first, last);
  }

  /** Sets the inclusive range [first, last]; throws on an invalid one. */
  setRange(first: number, last: number): void {
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 65535 || first > last) {
      throw new RangeError(`invalid ephemeral port range ${first}-${last}`);
    }
    this.first = first;
    this.last = last;
  }

  get rangeFirst(): number { return this.first; }
  get rangeLast(): number { return this.last; }

  /**
   * Chooses a local port for a connection from `laddr` to `raddr`:`rport`. `inUse(p)` says
   * whether p cannot be used (e.g. the 4-tuple exists or a listener holds the port).
   * Returns -1 when every port in the range is unsuitable.
   */
  select(laddr: number, raddr: number, rport: number, inUse: (lport: number) => boolean): number {
    const num = this.last - this.first + 1;
    let offset = this.lastOffset;
    if (laddr !== this.lastLaddr || raddr !== this.lastRaddr || rport !== this.lastRport) {
      offset = siphash24(this.key, laddr, raddr, rport & 0xffff);
      this.lastLaddr = laddr; this.lastRaddr = raddr; this.lastRport = rport; this.lastOffset = offset;
    }
    for (let count = num; count > 0; count--) {
      const port = this.first + ((this.nextEphemeral + offset) % 4294967296) % num;
      this.nextEphemeral = (this.nextEphemeral + 1) >>> 0;
      if (!inUse(port)) return port;
    }
    return -1;
  }
}
