// Why a parser rejected bytes. Parsers return these (never throw); callers count drops by reason.
export const WireError = {
  Ok: 0,
  Truncated: 1,
  BadVersion: 2,
  BadHeaderLength: 3,
  BadLength: 4,
  BadChecksum: 5,
  BadOption: 6,
  Unsupported: 7,
  Malformed: 8,
} as const;
export type WireError = (typeof WireError)[keyof typeof WireError];

const NAMES = ['ok', 'truncated', 'bad_version', 'bad_header_length', 'bad_length', 'bad_checksum', 'bad_option', 'unsupported', 'malformed'];
export function wireErrorName(e: number): string { return NAMES[e] ?? `error_${e}`; }
