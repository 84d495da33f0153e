// PACKET_FANOUT for the AF_PACKET driver with several workers: each worker's packet socket joins
// one fanout group, and a classic BPF program (PACKET_FANOUT_CBPF) picks the socket of each
// received frame with tstack's own flow hash (src/wire/rss.ts). The kernel's own
// PACKET_FANOUT_HASH uses the skb's symmetric flow hash, seeded at boot: a worker could not
// choose a local port whose return traffic comes back to it. With our hash it can
// (the TCP port filter), so no frame of a TCP/UDP flow needs a second hop.
//
// The kernel indexes a group's sockets in join order and, when one leaves, moves the last into
// its slot; `slots[q]` is the slot of the worker that owns queue q, which the supervisor tracks
// (src/runtime/cluster.ts) and every joining worker installs anew (the program is the group's).
import * as libc from './sys/libc.js';

const SOL_PACKET = 263;
const PACKET_FANOUT = 18;
const PACKET_FANOUT_DATA = 22;
const PACKET_FANOUT_CBPF = 6;

// Classic BPF opcodes (<linux/filter.h>)
const LD = 0x00, LDX = 0x01, ST = 0x02, ALU = 0x04, JMP = 0x05, RET = 0x06, MISC = 0x07;
const W = 0x00, H = 0x08, B = 0x10;
const ABS = 0x20, IND = 0x40, MEM = 0x60, MSH = 0xa0;
const ADD = 0x00, MUL = 0x20, OR = 0x40, AND = 0x50, LSH = 0x60, RSH = 0x70, MOD = 0x90, XOR = 0xa0;
const JA = 0x00, JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40;
const K = 0x00, X = 0x08, A = 0x10;
const TAX = 0x00;
/** Loads relative to the network header and the ancillary skb->protocol (SKF_NET_OFF, SKF_AD_OFF + SKF_AD_PROTOCOL). */
const NET = -0x100000;
const AD_PROTOCOL = -0x1000;

type Insn = [code: number, jt: number | string, jf: number | string, k: number] | string;

/** Assembles instructions with labels (a bare string marks a label; jt/jf/ja may name one). */
function assemble(prog: Insn[]): Uint8Array {
  const labels = new Map<string, number>();
  const code: Exclude<Insn, string>[] = [];
  for (const i of prog) { if (typeof i === 'string') labels.set(i, code.length); else code.push(i); }
  const out = new Uint8Array(Math.max(72, code.length * 8));
  const dv = new DataView(out.buffer);
  const rel = (pc: number, t: number | string): number => {
    if (typeof t === 'number') return t;
    const at = labels.get(t);
    if (at === undefined || at <= pc) throw new Error(`fanout program: bad label ${t}`);
    return at - pc - 1;
  };
  code.forEach(([c, jt, jf, k], pc) => {
    const isJa = c === (JMP | JA);
    dv.setUint16(pc * 8, c, true);
    dv.setUint8(pc * 8 + 2, isJa ? 0 : rel(pc, jt));
    dv.setUint8(pc * 8 + 3, isJa ? 0 : rel(pc, jf));
    dv.setUint32(pc * 8 + 4, isJa ? rel(pc, jt) : k >>> 0, true);
  });
  return out.subarray(0, code.length * 8);
}

/**
 * The fanout program: tstack's flow hash (src/wire/rss.ts, the same cases in the same order —
 * TCP/UDP ports, fragments by (proto, id), ICMP errors by the datagram they quote) mapped to
 * the slot of the queue's socket. A load past the frame's end ends the program with 0.
 */
export function fanoutProgram(queues: number, slots?: readonly number[]): Uint8Array {
  const s = slots ?? Array.from({ length: queues }, (_, i) => i);
  if (s.length !== queues) throw new Error('fanout program: one slot per queue');
  /** M[0] ^= A, then on to the fold. */
  const mixAndFold: Insn[] = [
    [MISC | TAX, 0, 0, 0],
    [LD | W | MEM, 0, 0, 0],
    [ALU | XOR | X, 0, 0, 0],
    [ST, 0, 0, 0],
    [JMP | JA, 'fold', 0, 0],
  ];
  /** M[0] ^= the two 16-bit words at IND offsets a and b (X must hold their base). */
  const xorPortsInd = (a: number, b: number): Insn[] => [
    [LD | H | IND, 0, 0, a],
    [ST, 0, 0, 1],
    [LD | H | IND, 0, 0, b],
    [LDX | W | MEM, 0, 0, 1],
    [ALU | XOR | X, 0, 0, 0],
    ...mixAndFold,
  ];
  /** M[0] ^= the two 16-bit words at ABS offsets a and b. */
  const xorPortsAbs = (a: number, b: number): Insn[] => [
    [LD | H | ABS, 0, 0, a],
    [MISC | TAX, 0, 0, 0],
    [LD | H | ABS, 0, 0, b],
    [ALU | XOR | X, 0, 0, 0],
    ...mixAndFold,
  ];
  /** M[0] = the XOR of the eight address words of the IPv6 header at NET + base. */
  const v6Addresses = (base: number): Insn[] => {
    const out: Insn[] = [[LD | W | ABS, 0, 0, NET + base + 8]];
    for (let off = base + 12; off < base + 40; off += 4) out.push([MISC | TAX, 0, 0, 0], [LD | W | ABS, 0, 0, NET + off], [ALU | XOR | X, 0, 0, 0]);
    out.push([ST, 0, 0, 0]);
    return out;
  };
  const prog: Insn[] = [
    [LD | W | ABS, 0, 0, AD_PROTOCOL],
    [JMP | JEQ | K, 'v4', 0, 0x0800],
    [JMP | JEQ | K, 'v6', 0, 0x86dd],
    [RET | K, 0, 0, s[0]!],
    'v4',
    [LD | W | ABS, 0, 0, NET + 12],
    [MISC | TAX, 0, 0, 0],
    [LD | W | ABS, 0, 0, NET + 16],
    [ALU | XOR | X, 0, 0, 0],
    [ST, 0, 0, 0],
    [LD | H | ABS, 0, 0, NET + 6],
    [JMP | JSET | K, 'frag4', 0, 0x3fff],
    [LD | B | ABS, 0, 0, NET + 9],
    [JMP | JEQ | K, 'ports4', 0, 6],
    [JMP | JEQ | K, 'ports4', 0, 17],
    [JMP | JEQ | K, 'icmp4', 'fold', 1],
    'ports4',
    [LDX | B | MSH, 0, 0, NET],
    ...xorPortsInd(NET, NET + 2),
    'frag4',
    // M[0] ^= (proto << 16) | id
    [LD | B | ABS, 0, 0, NET + 9],
    [ALU | LSH | K, 0, 0, 16],
    [MISC | TAX, 0, 0, 0],
    [LD | H | ABS, 0, 0, NET + 4],
    [ALU | OR | X, 0, 0, 0],
    ...mixAndFold,
    'icmp4',
    [LDX | B | MSH, 0, 0, NET],
    [LD | B | IND, 0, 0, NET],
    [JMP | JEQ | K, 'err4', 0, 3],
    [JMP | JEQ | K, 'err4', 0, 4],
    [JMP | JEQ | K, 'err4', 0, 11],
    [JMP | JEQ | K, 'err4', 'fold', 12],
    'err4',
    // The quoted header at NET + ihl + 8: M[0] = its addresses (the fragment/ports cases as above).
    [LD | W | IND, 0, 0, NET + 8 + 12],
    [ST, 0, 0, 2],
    [LD | W | IND, 0, 0, NET + 8 + 16],
    [LDX | W | MEM, 0, 0, 2],
    [ALU | XOR | X, 0, 0, 0],
    [ST, 0, 0, 0],
    [LDX | B | MSH, 0, 0, NET],
    [LD | H | IND, 0, 0, NET + 8 + 6],
    [JMP | JSET | K, 'qfrag4', 0, 0x1fff],
    [LD | B | IND, 0, 0, NET + 8 + 9],
    [JMP | JEQ | K, 'qports4', 0, 6],
    [JMP | JEQ | K, 'qports4', 'fold', 17],
    'qfrag4',
    [LD | B | IND, 0, 0, NET + 8 + 9],
    [ALU | LSH | K, 0, 0, 16],
    [ST, 0, 0, 1],
    [LD | H | IND, 0, 0, NET + 8 + 4],
    [LDX | W | MEM, 0, 0, 1],
    [ALU | OR | X, 0, 0, 0],
    ...mixAndFold,
    'qports4',
    // X = outer IHL + quoted IHL: the quoted ports sit at NET + X + 8.
    [LD | B | IND, 0, 0, NET + 8],
    [ALU | AND | K, 0, 0, 0x0f],
    [ALU | LSH | K, 0, 0, 2],
    [ALU | ADD | X, 0, 0, 0],
    [MISC | TAX, 0, 0, 0],
    ...xorPortsInd(NET + 8, NET + 8 + 2),
    'v6',
    ...v6Addresses(0),
    [LD | B | ABS, 0, 0, NET + 6],
    [JMP | JEQ | K, 'ports6', 0, 6],
    [JMP | JEQ | K, 'ports6', 0, 17],
    [JMP | JEQ | K, 'frag6', 0, 44],
    [JMP | JEQ | K, 'icmp6', 'fold', 58],
    'ports6',
    ...xorPortsAbs(NET + 40, NET + 42),
    'frag6',
    [LD | W | ABS, 0, 0, NET + 44],
    ...mixAndFold,
    'icmp6',
    [LD | B | ABS, 0, 0, NET + 40],
    [JMP | JGT | K, 'fold', 0, 4],
    [JMP | JGE | K, 0, 'fold', 1],
    ...v6Addresses(48),
    [LD | B | ABS, 0, 0, NET + 48 + 6],
    [JMP | JEQ | K, 'qports6', 0, 6],
    [JMP | JEQ | K, 'qports6', 'fold', 17],
    'qports6',
    ...xorPortsAbs(NET + 88, NET + 90),
    'fold',
    [LD | W | MEM, 0, 0, 0],
    [ALU | MUL | K, 0, 0, 0x9e3779b1],
    [ALU | RSH | K, 0, 0, 16],
    [ALU | MOD | K, 0, 0, queues],
  ];
  const identity = s.every((v, i) => v === i);
  if (identity) prog.push([RET | A, 0, 0, 0]);
  else {
    // queue -> slot: a chain of comparisons, one per queue.
    for (let q = 0; q < queues - 1; q++) prog.push([JMP | JEQ | K, 0, 1, q], [RET | K, 0, 0, s[q]!]);
    prog.push([RET | K, 0, 0, s[queues - 1]!]);
  }
  return assemble(prog);
}

/** The group id (16 bits) of an instance's fanout groups: one per supervisor and port. */
export function fanoutGroupId(seed: number, port: number): number {
  return ((seed * 31 + port) & 0xffff) || 1;
}

/**
 * Joins the bound packet socket `fd` to fanout group `group` and installs the program that
 * spreads the group's frames by tstack's flow hash. Throws with the failing step.
 */
export function joinFanout(fd: number, group: number, queues: number, slots?: readonly number[]): void {
  if (libc.setsockoptInt(fd, SOL_PACKET, PACKET_FANOUT, (group & 0xffff) | (PACKET_FANOUT_CBPF << 16)) < 0) {
    throw new libc.SysError('setsockopt(PACKET_FANOUT)', libc.errno());
  }
  const code = fanoutProgram(queues, slots);
  // The filter's bytes must stay put while the kernel copies them: an off-heap array.
  const insns = new Uint8Array(Math.max(128, code.length));
  insns.set(code);
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (pointer at offset 8).
  const fprog = new Uint8Array(16);
  const dv = new DataView(fprog.buffer);
  dv.setUint16(0, code.length / 8, true);
  dv.setBigUint64(8, BigInt(libc.addressOf(insns)), true);
  if (libc.setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, fprog) < 0) {
    throw new libc.SysError('setsockopt(PACKET_FANOUT_DATA)', libc.errno());
  }
}
