// The header ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) share: type, code, checksum, and for
// echo messages an identifier and a sequence number in the following word.

export class IcmpHeaderView {
  bytes: Uint8Array = new Uint8Array(0);
  off = 0;
  len = 0;

  get type(): number { return this.bytes[this.off]!; }
  get code(): number { return this.bytes[this.off + 1]!; }
  get checksum(): number { return (this.bytes[this.off + 2]! << 8) | this.bytes[this.off + 3]!; }
  /** Echo request/reply identifier and sequence number. */
  get echoId(): number { return (this.bytes[this.off + 4]! << 8) | this.bytes[this.off + 5]!; }
  get echoSeq(): number { return (this.bytes[this.off + 6]! << 8) | this.bytes[this.off + 7]!; }
}
