// libc through koffi (FFI): the few syscalls the device drivers need, and a libuv readiness
// watcher. Loaded lazily, so importing this module on a machine without koffi or glibc does
// not crash; the first call that needs it throws a clear error instead.
//
// Buffers: `read`/`write` take a Uint8Array and honour its byteOffset (checked in
// test/unit/driver-libc.test.ts), but building a subarray per frame allocates. The hot path
// uses `readAt`/`writeAt`, which pass `address(data) + offset` as an integer: a Uint8Array
// larger than 64 bytes keeps its bytes off the V8 heap, and V8 never moves them, so the
// address taken once per buffer stays valid for the buffer's life (cached in a WeakMap).
import { createRequire } from 'node:module';

/** The part of koffi's PollHandle we use. */
interface KoffiPollHandle {
  start(opts: { readable?: boolean }, cb: (status: number, events: unknown) => void): void;
  stop(): void;
  close(): void;
  ref(): void;
  unref(): void;
}

type Fn = (...args: any[]) => any;

interface Bindings {
  koffi: any;
  open: Fn; close: Fn; read: Fn; write: Fn; readP: Fn; writeP: Fn;
  ioctlPtr: Fn; ioctlInt: Fn; fcntl: Fn; socket: Fn; pipe2: Fn;
  mmap: Fn; munmap: Fn; memcpy: Fn; setsockopt: Fn; getsockopt: Fn; bind: Fn; sendtoP: Fn;
  ifNameToIndex: Fn; setns: Fn; prctl: Fn; syscall3: Fn;
}

let bindings: Bindings | null = null;
let loadError: Error | null = null;

function load(): Bindings {
  if (bindings) return bindings;
  if (loadError) throw loadError;
  try {
    const koffi = createRequire(import.meta.url)('koffi');
    const lib = koffi.load('libc.so.6');
    bindings = {
      koffi,
      open: lib.func('int open(const char *path, int flags, int mode)'),
      close: lib.func('int close(int fd)'),
      read: lib.func('intptr_t read(int fd, void *buf, size_t n)'),
      write: lib.func('intptr_t write(int fd, const void *buf, size_t n)'),
      // Same symbols with the buffer as a plain address (see the header comment).
      readP: lib.func('read', 'intptr_t', ['int', 'uintptr_t', 'size_t']),
      writeP: lib.func('write', 'intptr_t', ['int', 'uintptr_t', 'size_t']),
      // ioctl and fcntl are variadic in C; on the Linux ABIs we run on (x86-64, arm64) a
      // fixed third argument is passed exactly like the variadic one.
      ioctlPtr: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
      ioctlInt: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
      fcntl: lib.func('fcntl', 'int', ['int', 'int', 'int']),
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)'),
      mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, intptr_t off)'),
      munmap: lib.func('int munmap(void *addr, size_t len)'),
      // Addresses as integers (see the header comment); memcpy's return value is not needed.
      memcpy: lib.func('memcpy', 'void', ['uintptr_t', 'uintptr_t', 'size_t']),
      setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
      getsockopt: lib.func('int getsockopt(int fd, int level, int name, _Inout_ void *val, _Inout_ uint32_t *len)'),
      bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
      sendtoP: lib.func('sendto', 'intptr_t', ['int', 'uintptr_t', 'size_t', 'int', 'uintptr_t', 'uint32_t']),
      ifNameToIndex: lib.func('unsigned int if_nametoindex(const char *name)'),
      setns: lib.func('int setns(int fd, int nstype)'),
      // Variadic in C; integer arguments pass the same way fixed (see ioctl above).
      prctl: lib.func('prctl', 'int', ['int', 'unsigned long', 'unsigned long', 'unsigned long', 'unsigned long']),
      // syscall(2) is variadic; three integer-class arguments pass like fixed ones on x86-64 and
      // arm64 (the same reasoning as ioctl above). Used for bpf(2), which glibc does not wrap.
      syscall3: lib.func('syscall', 'long', ['long', 'long', 'void *', 'unsigned long']),
    };
    return bindings;
  } catch (e) {
    loadError = new Error(`libc via koffi is not available: ${(e as Error).message}`);
    throw loadError;
  }
}

/** True when koffi and libc.so.6 load (Linux with glibc). */
export function libcAvailable(): boolean {
  try { load(); return true; } catch { return false; }
}

// Linux values (x86-64 and arm64 agree on these).
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const AF_INET = 2;
export const AF_PACKET = 17;
export const AF_XDP = 44;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = O_NONBLOCK;
export const SOCK_CLOEXEC = O_CLOEXEC;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;
export const MSG_DONTWAIT = 0x40;
export const CLONE_NEWNET = 0x40000000;

export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EBUSY = 16;
export const EINVAL = 22;
export const ENOBUFS = 105;
export const EPERM = 1;
export const ENOENT = 2;

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 5: 'EIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 24: 'EMFILE', 95: 'EOPNOTSUPP',
  105: 'ENOBUFS', 90: 'EMSGSIZE', 100: 'ENETDOWN', 6: 'ENXIO', 97: 'EAFNOSUPPORT', 524: 'ENOTSUPP',
  7: 'E2BIG', 28: 'ENOSPC', 38: 'ENOSYS',
};

/** errno of the last failed call on this thread. */
export function errno(): number { return load().koffi.errno(); }

export function errnoName(code: number): string { return ERRNO_NAMES[code] ?? `errno ${code}`; }

/** An Error naming the call and errno, e.g. "ioctl(TUNSETIFF): EPERM". */
export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${errnoName(errno)}`);
    this.name = 'SysError';
  }
}

/** Returns fd or -1 (see errno()). */
export function open(path: string, flags: number, mode = 0): number { return load().open(path, flags, mode); }
export function close(fd: number): number { return load().close(fd); }
/** Reads into buf (its byteOffset honoured). Returns bytes read or -1. */
export function read(fd: number, buf: Uint8Array, len = buf.length): number { return load().read(fd, buf, len); }
/** Writes from buf (its byteOffset honoured). Returns bytes written or -1. */
export function write(fd: number, buf: Uint8Array, len = buf.length): number { return load().write(fd, buf, len); }

const addresses = new WeakMap<Uint8Array, number>();

/** The address of data[0], taken once per array. data must be longer than 64 bytes (off-heap). */
export function addressOf(data: Uint8Array): number {
  let a = addresses.get(data);
  if (a === undefined) {
    if (data.byteLength <= 64) throw new RangeError('addressOf: arrays of 64 bytes or less may live on the V8 heap and move');
    a = Number(load().koffi.address(data));
    addresses.set(data, a);
  }
  return a;
}

/** read(fd, data + off, len) without allocating. Returns bytes read or -1. */
export function readAt(fd: number, data: Uint8Array, off: number, len: number): number {
  if (off < 0 || len < 0 || off + len > data.length) throw new RangeError('readAt: range outside the array');
  return load().readP(fd, addressOf(data) + off, len);
}

/** write(fd, data + off, len) without allocating. Returns bytes written or -1. */
export function writeAt(fd: number, data: Uint8Array, off: number, len: number): number {
  if (off < 0 || len < 0 || off + len > data.length) throw new RangeError('writeAt: range outside the array');
  return load().writeP(fd, addressOf(data) + off, len);
}

/** ioctl with a pointer argument (the bytes are read and/or written by the kernel). */
export function ioctlPtr(fd: number, request: number, arg: Uint8Array): number { return load().ioctlPtr(fd, request, arg); }
/** ioctl with an integer passed by value (e.g. TUNSETOFFLOAD). */
export function ioctlInt(fd: number, request: number, arg: number): number { return load().ioctlInt(fd, request, arg); }
export function fcntl(fd: number, cmd: number, arg = 0): number { return load().fcntl(fd, cmd, arg); }
export function socket(domain: number, type: number, protocol: number): number { return load().socket(domain, type, protocol); }

const PR_SET_PDEATHSIG = 1;
/**
 * prctl(PR_SET_PDEATHSIG): the kernel sends `signal` to this process when the thread that
 * started it exits. Throws SysError on failure.
 */
export function setParentDeathSignal(signal: number): void {
  if (load().prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0) !== 0) throw new SysError('prctl(PR_SET_PDEATHSIG)', errno());
}

/** pipe2(): [readFd, writeFd]; throws SysError on failure. */
export function pipe(flags = O_CLOEXEC): [number, number] {
  const fds = [0, 0];
  if (load().pipe2(fds, flags) !== 0) throw new SysError('pipe2', errno());
  return [fds[0]!, fds[1]!];
}

/** Sets O_NONBLOCK on fd; throws SysError on failure. */
export function setNonBlocking(fd: number): void {
  const fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) throw new SysError('fcntl(O_NONBLOCK)', errno());
}

/**
 * A driver's readiness watcher, started on first use and resumed after a pause: `w` is the
 * driver's current watcher or null. Created unref'd when the driver is (see PollWatcher.unref).
 */
export function startWatcher(w: PollWatcher | null, fd: number, cb: (status: number) => void, refed: boolean): PollWatcher {
  if (w !== null) { w.resume(); return w; }
  const created = pollReadable(fd, cb);
  if (!refed) created.unref();
  return created;
}

export interface PollWatcher {
  readonly fd: number;
  /** Stops and releases the watcher. Idempotent. */
  close(): void;
  /** Stops calling back without releasing the watcher. */
  pause(): void;
  resume(): void;
  /** Lets the event loop exit while the watcher is active (like a timer's unref()). */
  unref(): void;
  ref(): void;
}

// Strong references to every live handle: koffi's PollHandle stops silently when it is
// garbage-collected (DESIGN.md). Keyed by fd because a second watcher on an fd aborts the
// process (libuv asserts), so we refuse it here instead.
const watchers = new Map<number, KoffiPollHandle>();

/**
 * Calls `cb` from the event loop whenever fd is readable (libuv uv_poll, level-triggered):
 * the callee should read until EAGAIN, or it is called again on the next loop turn.
 * A negative `status` (a libuv error) pauses the watcher and is passed on as cb(status).
 */
export function pollReadable(fd: number, cb: (status: number) => void): PollWatcher {
  const koffi = load().koffi;
  if (watchers.has(fd)) throw new Error(`pollReadable: fd ${fd} already has a watcher`);
  let closed = false;
  let paused = false;
  // koffi calls back with (status, events), not the (events) its type declarations show.
  const onPoll = (status: number): void => {
    if (status < 0) { paused = true; handle.stop(); } // resume() may retry
    cb(status);
  };
  const handle: KoffiPollHandle = koffi.node.poll(fd, { readable: true }, onPoll);
  if (!handle) throw new Error(`pollReadable: koffi could not watch fd ${fd}`);
  watchers.set(fd, handle);
  return {
    fd,
    close() {
      if (closed) return;
      closed = true;
      // close() stops the uv_poll (removing fd from epoll) synchronously, so the caller may
      // close the descriptor right after.
      handle.close();
      watchers.delete(fd);
    },
    pause() { if (!closed && !paused) { paused = true; handle.stop(); } },
    resume() { if (!closed && paused) { paused = false; handle.start({ readable: true }, onPoll); } },
    unref() { if (!closed) handle.unref(); },
    ref() { if (!closed) handle.ref(); },
  };
}

/** A shared memory mapping (mmap): its bytes, and what munmap needs. */
export interface Mapping {
  /** The address of the first byte, as an integer (for copyAt). */
  readonly address: number;
  readonly length: number;
  /** The mapped bytes (koffi.view): valid until unmap(); touching them afterwards crashes. */
  readonly buffer: ArrayBuffer;
  /** @internal koffi's pointer, kept for munmap. */
  readonly ptr: unknown;
}

/** mmap(NULL, length, prot, flags, fd, offset); throws SysError on failure. */
export function mmap(length: number, prot: number, flags: number, fd: number, offset = 0): Mapping {
  const b = load();
  const ptr = b.mmap(null, length, prot, flags, fd, offset);
  const address = ptr === null ? -1 : Number(b.koffi.address(ptr));
  // MAP_FAILED is (void *)-1: all ones, which loses precision as a Number.
  if (address <= 0 || address >= 2 ** 64 - 4096) throw new SysError('mmap', errno());
  return { address, length, buffer: b.koffi.view(ptr, length) as ArrayBuffer, ptr };
}

/** munmap(mapping); returns 0 or -1. The mapping's buffer must not be touched afterwards. */
export function munmap(m: Mapping): number { return load().munmap(m.ptr, m.length); }

/** memcpy(dst, src, len) between two addresses (addressOf(x) + offset, Mapping.address + offset). */
export function copyAt(dst: number, src: number, len: number): void { load().memcpy(dst, src, len); }

/** setsockopt with an int option value. Returns 0 or -1. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): number {
  const v = new Int32Array(1);
  v[0] = value;
  return load().setsockopt(fd, level, name, new Uint8Array(v.buffer), 4);
}

/** setsockopt with the option value's bytes. Returns 0 or -1. */
export function setsockopt(fd: number, level: number, name: number, value: Uint8Array): number {
  return load().setsockopt(fd, level, name, value, value.length);
}

/** getsockopt into `value` (its length is the room offered). Returns the length written, or -1. */
export function getsockopt(fd: number, level: number, name: number, value: Uint8Array): number {
  const len = [value.length];
  return load().getsockopt(fd, level, name, value, len) < 0 ? -1 : len[0]!;
}

/** bind(fd, sockaddr bytes). Returns 0 or -1. */
export function bind(fd: number, addr: Uint8Array): number { return load().bind(fd, addr, addr.length); }

/**
 * sendto(fd, address, len, flags, NULL, 0) with the data as an integer address (0 and len 0
 * for a packet ring's transmit kick). Returns bytes sent or -1.
 */
export function sendtoAt(fd: number, address: number, len: number, flags: number): number {
  return load().sendtoP(fd, address, len, flags, 0, 0);
}

/** The interface index of `name` in the calling thread's network namespace; 0 when there is none. */
export function ifNameToIndex(name: string): number { return load().ifNameToIndex(name); }

/** syscall(nr, a, ptr, b): a raw system call with a pointer argument (bpf(2)). Returns its result or -1. */
export function syscall3(nr: number, a: number, ptr: Uint8Array, b: number): number {
  return Number(load().syscall3(nr, a, ptr, b));
}

/** setns(fd, nstype) for the calling thread. Returns 0 or -1. */
export function setns(fd: number, nstype: number): number { return load().setns(fd, nstype); }
