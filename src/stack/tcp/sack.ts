// The sender's SACK scoreboard (RFC 6675 §3 / §4): which bytes above SND.UNA the receiver
// has reported holding (RFC 2018), kept as a bounded sorted list of disjoint, non-adjacent
// ranges [start, end) in two typed arrays. It answers RFC 6675's IsLost(), NextSeg() and
// SetPipe() for the sender's SACK-based loss recovery. No allocation after construction.
//
// Conventions (sequence numbers are u32; ends are exclusive):
// - sndNxt plays RFC 6675's HighData (the range sent so far is [sndUna, sndNxt)).
// - highRxt is the sequence number just after the last byte retransmitted in this recovery
//   (sndUna when nothing was retransmitted yet); RFC 6675 calls the last byte itself HighRxt,
//   so "S > HighRxt" reads "S >= highRxt" here.
// - DupThresh is 3 (RFC 6675 §2 / RFC 5681).
import { seqGt, seqLt } from './seq.js';

export const DUP_THRESH = 3;

export class SackScoreboard {
  readonly capacity: number;
  private readonly starts: Uint32Array;
  private readonly ends: Uint32Array;
  private n = 0;
  private sacked = 0;
  private una = 0;
  /**
   * Unsacked bytes below this sequence number are lost whatever IsLost()'s DupThresh rule says
   * (set after a tail loss probe was SACKed while older data is still missing: RFC 8985's time-
   * based inference, everything sent before a delivered segment and a probe timeout ago).
   */
  private lostMark = 0;
  private hasLostMark = false;

  constructor(capacity = 64) {
    this.capacity = capacity;
    this.starts = new Uint32Array(capacity);
    this.ends = new Uint32Array(capacity);
  }

  /** Total bytes currently marked SACKed. */
  get sackedBytes(): number { return this.sacked; }
  /** One past the highest SACKed byte (RFC 6675: "the highest octet covered by any received SACK" + 1); sndUna when empty. */
  get highestSacked(): number { return this.n > 0 ? this.ends[this.n - 1]! : this.una; }
  /** Number of disjoint SACKed ranges. */
  get count(): number { return this.n; }
  /** Start of range i (0 = lowest); for diagnostics and tests. */
  rangeStart(i: number): number { return this.starts[i]!; }
  /** End (exclusive) of range i. */
  rangeEnd(i: number): number { return this.ends[i]!; }

  reset(): void {
    this.n = 0;
    this.sacked = 0;
    this.hasLostMark = false;
  }

  /** Marks every unSACKed byte below `seq` lost (see lostMark). */
  markLostBelow(seq: number): void {
    if (!this.hasLostMark || seqGt(seq, this.lostMark)) { this.lostMark = seq >>> 0; this.hasLostMark = true; }
  }

  /**
   * Applies one ACK: drops what SND.UNA now covers, then merges the SACK blocks
   * (blocks[2i] = left edge, blocks[2i+1] = right edge, i < n). Blocks wholly at or below
   * sndUna (D-SACK, RFC 2883, or stale), empty or inverted blocks and blocks reaching beyond
   * sndMax (never sent: RFC 6675 §5 / RFC 2018 forbid acting on them) are ignored; a block
   * straddling sndUna contributes its part above it. Returns the bytes newly SACKed.
   */
  update(sndUna: number, sndMax: number, blocks: Uint32Array, n: number): number {
    sndUna >>>= 0;
    this.una = sndUna;
    this.dropBelow(sndUna);
    const before = this.sacked;
    for (let i = 0; i < n; i++) {
      let s = blocks[2 * i]!;
      const e = blocks[2 * i + 1]!;
      if (!seqLt(s, e)) continue;
      if (!seqGt(e, sndUna)) continue;
      if (seqGt(e, sndMax)) continue;
      if (seqLt(s, sndUna)) s = sndUna;
      this.insert(s, e);
    }
    return this.sacked - before;
  }

  /** True when byte `seq` lies in a SACKed range. */
  isSacked(seq: number): boolean {
    for (let i = 0; i < this.n; i++) {
      if (seqLt(seq, this.starts[i]!)) return false;
      if (seqLt(seq, this.ends[i]!)) return true;
    }
    return false;
  }

  /** End of the SACKed range holding byte `seq`, or -1 when `seq` is not SACKed. */
  rangeEndAt(seq: number): number {
    for (let i = 0; i < this.n; i++) {
      if (seqLt(seq, this.starts[i]!)) return -1;
      if (seqLt(seq, this.ends[i]!)) return this.ends[i]!;
    }
    return -1;
  }

  /** Start of the lowest SACKed range that begins above `seq`, or -1 when there is none. */
  nextRangeStart(seq: number): number {
    for (let i = 0; i < this.n; i++) if (seqGt(this.starts[i]!, seq)) return this.starts[i]!;
    return -1;
  }

  /** SACKed bytes below `seq`. */
  sackedBelow(seq: number): number {
    let total = 0;
    for (let i = 0; i < this.n; i++) {
      const s = this.starts[i]!, e = this.ends[i]!;
      if (!seqLt(s, seq)) break;
      total += ((seqLt(e, seq) ? e : seq) - s) >>> 0;
    }
    return total;
  }

  /**
   * RFC 6675 §4 IsLost(SeqNumber): "returns true when either DupThresh discontiguous SACKed
   * sequences have arrived above 'SeqNumber' or more than (DupThresh - 1) * SMSS bytes with
   * sequence numbers greater than 'SeqNumber' have been SACKed."
   */
  isLost(seq: number, mss: number): boolean {
    if (this.hasLostMark && seqLt(seq, this.lostMark)) return true;
    let ranges = 0;
    let bytes = 0;
    const limit = (DUP_THRESH - 1) * mss;
    const above = (seq + 1) >>> 0;
    for (let i = this.n - 1; i >= 0; i--) {
      const s = this.starts[i]!, e = this.ends[i]!;
      if (!seqGt(e, above)) break;
      if (seqLt(s, above)) {
        bytes += (e - above) >>> 0;
      } else {
        bytes += (e - s) >>> 0;
        ranges++;
      }
      if (ranges >= DUP_THRESH || bytes > limit) return true;
    }
    return false;
  }

  /**
   * RFC 6675 §4 NextSeg(), rules (1)-(3): the start of the next range to send, its length
   * in out[0] and the rule that chose it in out[1] (when out has room), or -1.
   *   (1) the first unSACKed byte S2 >= highRxt below the highest SACKed byte, if IsLost(S2);
   *   (2) otherwise new data at sndNxt, when the caller says `unsent` bytes may be sent
   *       (unsent data the receive window allows; 0 skips the rule);
   *   (3) otherwise that same S2 even though it is not yet deemed lost.
   * A range never runs into SACKed bytes and is at most one SMSS. Rule (4), the rescue
   * retransmission, is left to the caller.
   */
  nextSeg(sndUna: number, sndNxt: number, highRxt: number, mss: number, out: Int32Array, unsent = 0): number {
    // S2: first unSACKed byte at or above max(sndUna, highRxt).
    let s2 = seqGt(highRxt, sndUna) ? highRxt >>> 0 : sndUna >>> 0;
    let i = 0;
    for (; i < this.n; i++) {
      const s = this.starts[i]!, e = this.ends[i]!;
      if (seqLt(s2, s)) break; // s2 sits in the hole below range i
      if (seqLt(s2, e)) s2 = e; // inside range i: skip it
    }
    const top = this.highestSacked;
    const candidate = i < this.n && seqLt(s2, top) && seqLt(s2, sndNxt);
    if (candidate) {
      // Rule (1): (1.a) S2 > HighRxt, (1.b) S2 below the highest SACKed octet, (1.c) IsLost.
      const holeEnd = this.starts[i]!;
      if (this.isLost(s2, mss)) return this.emit(s2, holeEnd, mss, 1, out);
    }
    if (unsent > 0) {
      // Rule (2): "one segment of up to SMSS octets of previously unsent data starting with
      // sequence number HighData+1".
      out[0] = unsent < mss ? unsent : mss;
      if (out.length > 1) out[1] = 2;
      return sndNxt >>> 0;
    }
    // Rule (3): (1.a) and (1.b) without (1.c).
    if (candidate) return this.emit(s2, this.starts[i]!, mss, 3, out);
    return -1;
  }

  /**
   * RFC 6675 §4 SetPipe(): bytes in [sndUna, sndNxt) not SACKed, counted once when not
   * IsLost() (the original may still be in flight) and once more when below highRxt
   * (retransmitted in this recovery).
   */
  pipe(sndUna: number, sndNxt: number, highRxt: number, mss: number): number {
    const una = sndUna >>> 0;
    const nxt = sndNxt >>> 0;
    // IsLost(S) only falls as S rises, so the lost bytes are the unSACKed ones below
    // `lostEnd`: the start of the highest range with enough SACKed data at or above it.
    let lostEnd = una;
    let ranges = 0;
    let bytes = 0;
    const limit = (DUP_THRESH - 1) * mss;
    for (let i = this.n - 1; i >= 0; i--) {
      ranges++;
      bytes += (this.ends[i]! - this.starts[i]!) >>> 0;
      if (ranges >= DUP_THRESH || bytes > limit) { lostEnd = this.starts[i]!; break; }
    }
    if (this.hasLostMark && seqGt(this.lostMark, lostEnd)) lostEnd = this.lostMark;
    let rxtEnd = seqGt(highRxt, una) ? highRxt >>> 0 : una;
    if (seqGt(rxtEnd, nxt)) rxtEnd = nxt;
    if (seqGt(lostEnd, nxt)) lostEnd = nxt;
    return this.unsackedBetween(lostEnd, nxt) + this.unsackedBetween(una, rxtEnd);
  }

  /** Bytes in [lo, hi) not covered by a SACKed range. */
  private unsackedBetween(lo: number, hi: number): number {
    if (!seqLt(lo, hi)) return 0;
    let total = (hi - lo) >>> 0;
    for (let i = 0; i < this.n; i++) {
      const s = this.starts[i]!, e = this.ends[i]!;
      if (!seqLt(s, hi)) break;
      if (!seqGt(e, lo)) continue;
      const a = seqLt(s, lo) ? lo : s;
      const b = seqGt(e, hi) ? hi : e;
      total -= (b - a) >>> 0;
    }
    return total;
  }

  private emit(s2: number, holeEnd: number, mss: number, rule: number, out: Int32Array): number {
    const room = (holeEnd - s2) >>> 0;
    out[0] = room < mss ? room : mss;
    if (out.length > 1) out[1] = rule;
    return s2;
  }

  /** Removes or trims ranges at or below una. */
  private dropBelow(una: number): void {
    if (this.hasLostMark && !seqGt(this.lostMark, una)) this.hasLostMark = false;
    let k = 0;
    while (k < this.n && !seqGt(this.ends[k]!, una)) {
      this.sacked -= (this.ends[k]! - this.starts[k]!) >>> 0;
      k++;
    }
    if (k > 0) {
      this.starts.copyWithin(0, k, this.n);
      this.ends.copyWithin(0, k, this.n);
      this.n -= k;
    }
    if (this.n > 0 && seqLt(this.starts[0]!, una)) {
      this.sacked -= (una - this.starts[0]!) >>> 0;
      this.starts[0] = una;
    }
  }

  /** Merges [s, e) into the list, joining overlapping and adjacent ranges. */
  private insert(s: number, e: number): void {
    const st = this.starts, en = this.ends;
    // First range that ends at or after s: it may touch or overlap [s, e).
    let i = 0;
    while (i < this.n && seqLt(en[i]!, s)) i++;
    // Ranges i..j-1 touch [s, e).
    let j = i;
    let ms = s, me = e;
    while (j < this.n && !seqGt(st[j]!, e)) {
      if (seqLt(st[j]!, ms)) ms = st[j]!;
      if (seqGt(en[j]!, me)) me = en[j]!;
      this.sacked -= (en[j]! - st[j]!) >>> 0;
      j++;
    }
    const merged = j - i;
    if (merged === 0) {
      // A new disjoint range at position i.
      if (this.n === this.capacity) {
        // Full: keep the lowest ranges, which matter most for retransmission; forgetting a
        // SACK only costs a needless retransmission.
        if (i === this.n) return;
        this.sacked -= (en[this.n - 1]! - st[this.n - 1]!) >>> 0;
        this.n--;
      }
      st.copyWithin(i + 1, i, this.n);
      en.copyWithin(i + 1, i, this.n);
      this.n++;
    } else if (merged > 1) {
      st.copyWithin(i + 1, j, this.n);
      en.copyWithin(i + 1, j, this.n);
      this.n -= merged - 1;
    }
    st[i] = ms;
    en[i] = me;
    this.sacked += (me - ms) >>> 0;
  }
}
