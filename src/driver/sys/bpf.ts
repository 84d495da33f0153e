// The bpf(2) system call through koffi, and the two small XDP programs the AF_XDP driver
// loads, written as raw BPF instructions (no libbpf, no libxdp, no compiler).
//
// - `redirectAll`: every frame to the AF_XDP socket of the queue it arrived on
//   (bpf_redirect_map into an XSKMAP, falling back to XDP_PASS when no socket is there).
// - `exceptionPath`: only IPv4 TCP/UDP to a port the stack holds (and ICMP errors about such a
//   flow) goes to the socket; everything else passes to the kernel (F-Stack's KNI). The ports
//   live in a one-element, memory-mapped array map the driver writes directly: no system call
//   per port change.
//
// The program is attached with BPF_LINK_CREATE: the link is a descriptor, and the program
// detaches by itself when the last descriptor closes (the process exits or crashes).
import { arch, endianness } from 'node:os';
import * as libc from './libc.js';

const SYS_BPF: number | undefined = ({ x64: 321, arm64: 280 } as Record<string, number>)[arch()];

// enum bpf_cmd
const BPF_MAP_CREATE = 0;
const BPF_MAP_UPDATE_ELEM = 2;
const BPF_MAP_DELETE_ELEM = 3;
const BPF_PROG_LOAD = 5;
const BPF_LINK_CREATE = 28;
const BPF_MAP_GET_FD_BY_ID = 14;
const BPF_OBJ_GET_INFO_BY_FD = 15;
// enum bpf_map_type, bpf_prog_type, bpf_attach_type
const BPF_MAP_TYPE_ARRAY = 2;
const BPF_MAP_TYPE_XSKMAP = 17;
const BPF_PROG_TYPE_XDP = 6;
const BPF_XDP = 37;
const BPF_F_MMAPABLE = 1 << 10;
/** XDP attach flags (link_create.flags): native driver mode, or the generic (skb) path. */
export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;

/** XDP verdicts. */
export const XDP_PASS = 2;

/** Size of union bpf_attr we pass (the kernel accepts any size up to its own, zero-filled). */
const ATTR_SIZE = 128;

/** True when this architecture's bpf(2) number is known (x86-64, arm64) and the host is little-endian. */
export function bpfSupported(): boolean { return SYS_BPF !== undefined && endianness() === 'LE'; }

function bpf(cmd: number, attr: Uint8Array, what: string): number {
  if (SYS_BPF === undefined) throw new Error(`bpf(2): unsupported architecture ${arch()}`);
  const r = libc.syscall3(SYS_BPF, cmd, attr, attr.length);
  if (r < 0) throw new libc.SysError(what, libc.errno());
  return r;
}

function attrOf(): { bytes: Uint8Array; dv: DataView } {
  const bytes = new Uint8Array(ATTR_SIZE);
  return { bytes, dv: new DataView(bytes.buffer) };
}

function setName(bytes: Uint8Array, off: number, name: string): void {
  const n = Buffer.from(name.slice(0, 15), 'ascii');
  bytes.set(n, off);
}

/** BPF_MAP_CREATE; returns the map's descriptor. */
export function mapCreate(type: number, keySize: number, valueSize: number, maxEntries: number, flags: number, name: string): number {
  const { bytes, dv } = attrOf();
  dv.setUint32(0, type, true);
  dv.setUint32(4, keySize, true);
  dv.setUint32(8, valueSize, true);
  dv.setUint32(12, maxEntries, true);
  dv.setUint32(16, flags, true);
  setName(bytes, 28, name); // after inner_map_fd (20) and numa_node (24)
  return bpf(BPF_MAP_CREATE, bytes, `bpf(BPF_MAP_CREATE ${name})`);
}

/** The kernel's id of the map `fd` (BPF_OBJ_GET_INFO_BY_FD: struct bpf_map_info's id). */
export function mapIdOf(fd: number): number {
  const info = new Uint8Array(128); // off the V8 heap: its address is stable
  const { bytes, dv } = attrOf();
  dv.setUint32(0, fd, true);
  dv.setUint32(4, 80, true);
  dv.setBigUint64(8, BigInt(libc.addressOf(info)), true);
  bpf(BPF_OBJ_GET_INFO_BY_FD, bytes, 'bpf(BPF_OBJ_GET_INFO_BY_FD)');
  return new DataView(info.buffer).getUint32(4, true);
}

/** A descriptor of the map with this id (BPF_MAP_GET_FD_BY_ID; CAP_SYS_ADMIN): how another process reaches a map. */
export function mapFdById(id: number): number {
  const { bytes, dv } = attrOf();
  dv.setUint32(0, id, true);
  return bpf(BPF_MAP_GET_FD_BY_ID, bytes, `bpf(BPF_MAP_GET_FD_BY_ID ${id})`);
}

/** BPF_MAP_UPDATE_ELEM with a u32 key and a u32 value. */
export function mapUpdateU32(fd: number, key: number, value: number): void {
  const kv = new Uint8Array(128); // > 64 bytes: off the V8 heap, so its address is stable
  const kd = new DataView(kv.buffer);
  kd.setUint32(0, key, true);
  kd.setUint32(64, value, true);
  const base = libc.addressOf(kv);
  const { bytes, dv } = attrOf();
  dv.setUint32(0, fd, true);
  dv.setBigUint64(8, BigInt(base), true);
  dv.setBigUint64(16, BigInt(base + 64), true);
  bpf(BPF_MAP_UPDATE_ELEM, bytes, 'bpf(BPF_MAP_UPDATE_ELEM)');
}

/** BPF_MAP_DELETE_ELEM with a u32 key; false when the key was not there. */
export function mapDeleteU32(fd: number, key: number): boolean {
  const kv = new Uint8Array(128);
  new DataView(kv.buffer).setUint32(0, key, true);
  const { bytes, dv } = attrOf();
  dv.setUint32(0, fd, true);
  dv.setBigUint64(8, BigInt(libc.addressOf(kv)), true);
  const r = libc.syscall3(SYS_BPF!, BPF_MAP_DELETE_ELEM, bytes, bytes.length);
  return r >= 0;
}

/** BPF_PROG_LOAD of an XDP program; the verifier's log is in the error when it refuses. */
export function progLoadXdp(prog: XdpProgram, name: string): number {
  const license = new Uint8Array(128);
  license.set(Buffer.from('Dual MIT/GPL\0', 'ascii'));
  const log = new Uint8Array(1 << 16);
  const { bytes, dv } = attrOf();
  dv.setUint32(0, BPF_PROG_TYPE_XDP, true);
  dv.setUint32(4, prog.count, true);
  dv.setBigUint64(8, BigInt(libc.addressOf(prog.bytes)), true);
  dv.setBigUint64(16, BigInt(libc.addressOf(license)), true);
  dv.setUint32(24, 1, true); // log_level
  dv.setUint32(28, log.length, true);
  dv.setBigUint64(32, BigInt(libc.addressOf(log)), true);
  setName(bytes, 48, name);
  dv.setUint32(68, BPF_XDP, true); // expected_attach_type
  // The verifier answers EAGAIN when it is interrupted (a signal pending, e.g. on a loaded
  // machine): libbpf tries 5 times (PROG_LOAD_ATTEMPTS); so do we.
  let r = -1;
  for (let attempt = 0; attempt < 5; attempt++) {
    r = libc.syscall3(SYS_BPF!, BPF_PROG_LOAD, bytes, bytes.length);
    if (r >= 0 || libc.errno() !== libc.EAGAIN) break;
  }
  if (r < 0) {
    const e = libc.errno();
    const text = Buffer.from(log).toString('utf8').replace(/\0.*$/s, '').trim().split('\n').slice(-8).join('\n');
    throw new Error(`bpf(BPF_PROG_LOAD ${name}): ${libc.errnoName(e)}${text ? `; verifier: ${text}` : ''}`);
  }
  return r;
}

/** BPF_LINK_CREATE of an XDP program on an interface; returns the link's descriptor. */
export function linkCreateXdp(progFd: number, ifindex: number, flags: number): number {
  const { bytes, dv } = attrOf();
  dv.setUint32(0, progFd, true);
  dv.setUint32(4, ifindex, true);
  dv.setUint32(8, BPF_XDP, true);
  dv.setUint32(12, flags, true);
  return bpf(BPF_LINK_CREATE, bytes, 'bpf(BPF_LINK_CREATE XDP)');
}

// ---- A small assembler: struct bpf_insn { u8 code; u8 dst:4, src:4; s16 off; s32 imm } ----

const LD = 0x00, LDX = 0x01, STX = 0x03, ALU = 0x04, JMP = 0x05, ALU64 = 0x07;
const W = 0x00, H = 0x08, B = 0x10, DW = 0x18, MEM = 0x60, IMM = 0x00;
const K = 0x00, X = 0x08;
const ADD = 0x00, AND = 0x50, LSH = 0x60, MOV = 0xb0, END = 0xd0, TO_BE = 0x08;
const JA = 0x00, JEQ = 0x10, JGT = 0x20, JNE = 0x50, JLT = 0xa0, CALL = 0x80, EXIT = 0x90;
const BPF_PSEUDO_MAP_FD = 1;
const BPF_PSEUDO_MAP_VALUE = 2;
const FN_REDIRECT_MAP = 51;

type Insn = { code: number; dst: number; src: number; off: number; imm: number; label?: string };

class Asm {
  private readonly out: Insn[] = [];
  private readonly labels = new Map<string, number>();
  private ins(code: number, dst: number, src: number, off: number, imm: number, label?: string): this {
    this.out.push({ code, dst, src, off, imm, ...(label !== undefined && { label }) });
    return this;
  }
  /** dst = *(size *)(src + off) */
  ldx(size: number, dst: number, src: number, off: number): this { return this.ins(LDX | size | MEM, dst, src, off, 0); }
  movImm(dst: number, imm: number): this { return this.ins(ALU64 | MOV | K, dst, 0, 0, imm); }
  mov(dst: number, src: number): this { return this.ins(ALU64 | MOV | X, dst, src, 0, 0); }
  addImm(dst: number, imm: number): this { return this.ins(ALU64 | ADD | K, dst, 0, 0, imm); }
  add(dst: number, src: number): this { return this.ins(ALU64 | ADD | X, dst, src, 0, 0); }
  andImm(dst: number, imm: number): this { return this.ins(ALU64 | AND | K, dst, 0, 0, imm); }
  lshImm(dst: number, imm: number): this { return this.ins(ALU64 | LSH | K, dst, 0, 0, imm); }
  /** dst = htobe16(dst) (a byte swap on this little-endian host), zero-extended. */
  be16(dst: number): this { return this.ins(ALU | END | TO_BE, dst, 0, 0, 16); }
  /** Two-slot load of a map descriptor (the kernel turns it into the map's address). */
  ldMapFd(dst: number, fd: number): this {
    this.ins(LD | DW | IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd);
    return this.ins(0, 0, 0, 0, 0);
  }
  /** Two-slot load of the address of a one-element array map's value + offset. */
  ldMapValue(dst: number, fd: number, offset: number): this {
    this.ins(LD | DW | IMM, dst, BPF_PSEUDO_MAP_VALUE, 0, fd);
    return this.ins(0, 0, 0, 0, offset);
  }
  jImm(op: number, dst: number, imm: number, label: string): this { return this.ins(JMP | op | K, dst, 0, 0, imm, label); }
  jReg(op: number, dst: number, src: number, label: string): this { return this.ins(JMP | op | X, dst, src, 0, 0, label); }
  ja(label: string): this { return this.ins(JMP | JA, 0, 0, 0, 0, label); }
  call(fn: number): this { return this.ins(JMP | CALL, 0, 0, 0, fn); }
  exit(): this { return this.ins(JMP | EXIT, 0, 0, 0, 0); }
  label(name: string): this { this.labels.set(name, this.out.length); return this; }
  assemble(): XdpProgram {
    // At least 128 bytes, so the array lives off the V8 heap and its address is stable.
    const bytes = new Uint8Array(Math.max(128, this.out.length * 8));
    const dv = new DataView(bytes.buffer);
    this.out.forEach((x, i) => {
      let off = x.off;
      if (x.label !== undefined) {
        const at = this.labels.get(x.label);
        if (at === undefined) throw new Error(`bpf asm: unknown label ${x.label}`);
        off = at - i - 1;
      }
      dv.setUint8(i * 8, x.code);
      dv.setUint8(i * 8 + 1, (x.src << 4) | x.dst);
      dv.setInt16(i * 8 + 2, off, true);
      dv.setInt32(i * 8 + 4, x.imm, true);
    });
    return { bytes, count: this.out.length };
  }
}

/** Assembled instructions: `count` of them at the start of `bytes`. */
export interface XdpProgram { readonly bytes: Uint8Array; readonly count: number }

/** Every frame to the XSKMAP entry of its receive queue (XDP_PASS when the entry is empty). */
export function redirectAllProgram(xskMapFd: number): XdpProgram {
  return new Asm()
    .ldx(W, 2, 1, 16) // r2 = ctx->rx_queue_index
    .ldMapFd(1, xskMapFd)
    .movImm(3, XDP_PASS) // flags: the verdict when the queue has no socket
    .call(FN_REDIRECT_MAP)
    .exit()
    .assemble();
}

/**
 * Every frame to XSKMAP slot `slot`, whatever queue it arrived on: what redirecting by a flow
 * hash to another queue's socket amounts to. The kernel refuses it for a socket bound to another
 * queue (net/xdp/xsk.c, xsk_rcv_check: -EINVAL, the frame dropped); a test proves it on this
 * kernel (test/integration/run-workers-steer.test.ts), which is why workers use the queue index.
 */
export function redirectToSlotProgram(xskMapFd: number, slot: number): XdpProgram {
  return new Asm()
    .movImm(2, slot)
    .ldMapFd(1, xskMapFd)
    .movImm(3, XDP_PASS)
    .call(FN_REDIRECT_MAP)
    .exit()
    .assemble();
}

/** Layout of the exception path's port table (the value of a one-element array map). */
export const PORTS_ADDR_OFFSET = 0;
export const PORTS_TABLE_OFFSET = 4;
export const PORTS_VALUE_SIZE = 4 + 65536;
export const PORT_TCP = 1;
export const PORT_UDP = 2;

/**
 * The exception path: IPv4 TCP/UDP whose destination port has its protocol's bit in the port
 * table (and whose destination is the stack's address, when one is set), and ICMP errors
 * (unreachable, time exceeded, parameter problem) quoting such a flow's source port, go to the
 * socket; ARP, IPv6, fragments, other protocols and ports pass to the kernel.
 */
export function exceptionProgram(xskMapFd: number, portsMapFd: number): XdpProgram {
  const a = new Asm();
  // r6 = ctx, r2 = data, r3 = data_end, r9 = the port table.
  a.mov(6, 1)
    .ldx(W, 2, 6, 0)
    .ldx(W, 3, 6, 4)
    .mov(4, 2).addImm(4, 34).jReg(JGT, 4, 3, 'pass') // Ethernet + a minimal IPv4 header
    // EtherType, read little-endian: 0x0008 is IPv4 (ARP, 0x0608, goes to the kernel).
    .ldx(H, 5, 2, 12).jImm(JNE, 5, 0x0008, 'pass')
    .ldMapValue(9, portsMapFd, 0)
    // The stack's address (network order in both): when set, other destinations are the kernel's.
    .ldx(W, 7, 9, PORTS_ADDR_OFFSET).jImm(JEQ, 7, 0, 'anyaddr')
    .ldx(W, 5, 2, 30).jReg(JNE, 5, 7, 'pass')
    .label('anyaddr')
    // Fragments (MF or an offset: 0x3fff, read little-endian as 0xff3f) carry no ports.
    .ldx(H, 5, 2, 20).andImm(5, 0xff3f).jImm(JNE, 5, 0, 'pass')
    // r4 = data + IHL*4: the L4 header is at r4 + 14.
    .ldx(B, 5, 2, 14).andImm(5, 0x0f).lshImm(5, 2).jImm(JLT, 5, 20, 'pass')
    .mov(4, 2).add(4, 5)
    .ldx(B, 8, 2, 23) // protocol
    .jImm(JEQ, 8, 6, 'tcp')
    .jImm(JEQ, 8, 17, 'udp')
    .jImm(JEQ, 8, 1, 'icmp')
    .ja('pass')
    .label('tcp').movImm(7, PORT_TCP).ja('ports')
    .label('udp').movImm(7, PORT_UDP)
    .label('ports')
    .mov(0, 4).addImm(0, 14 + 4).jReg(JGT, 0, 3, 'pass')
    .ldx(H, 5, 4, 14 + 2) // destination port
    .ja('lookup')
    .label('icmp')
    // type, then the quoted IPv4 header (without options) and the quoted source port: ours.
    .mov(0, 4).addImm(0, 14 + 8 + 20 + 2).jReg(JGT, 0, 3, 'pass')
    .ldx(B, 5, 4, 14)
    .jImm(JEQ, 5, 3, 'quoted').jImm(JEQ, 5, 11, 'quoted').jImm(JEQ, 5, 12, 'quoted').ja('pass')
    .label('quoted')
    .ldx(B, 5, 4, 14 + 8).jImm(JNE, 5, 0x45, 'pass')
    .ldx(B, 8, 4, 14 + 8 + 9)
    .movImm(7, PORT_TCP).jImm(JEQ, 8, 6, 'qport')
    .movImm(7, PORT_UDP).jImm(JEQ, 8, 17, 'qport')
    .ja('pass')
    .label('qport')
    .ldx(H, 5, 4, 14 + 8 + 20)
    .label('lookup')
    .be16(5).andImm(5, 0xffff)
    .mov(1, 9).add(1, 5)
    .ldx(B, 1, 1, PORTS_TABLE_OFFSET)
    .jReg(0x40 /* JSET */, 1, 7, 'redirect')
    .ja('pass')
    .label('redirect')
    .ldx(W, 2, 6, 16)
    .ldMapFd(1, xskMapFd)
    .movImm(3, XDP_PASS)
    .call(FN_REDIRECT_MAP)
    .exit()
    .label('pass')
    .movImm(0, XDP_PASS)
    .exit();
  return a.assemble();
}

/** An XSKMAP of `entries` queues. */
export function createXskMap(entries: number): number {
  return mapCreate(BPF_MAP_TYPE_XSKMAP, 4, 4, entries, 0, 'tstack_xsks');
}

/** The exception path's port table: one memory-mappable array element of PORTS_VALUE_SIZE bytes. */
export function createPortsMap(): number {
  return mapCreate(BPF_MAP_TYPE_ARRAY, 4, PORTS_VALUE_SIZE, 1, BPF_F_MMAPABLE, 'tstack_ports');
}

/** Bytes to mmap for the port table (the kernel rounds an element to 8 bytes, the mapping to pages). */
export const PORTS_MAP_BYTES = Math.ceil(Math.ceil(PORTS_VALUE_SIZE / 8) * 8 / 4096) * 4096;
