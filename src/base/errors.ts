// Socket-level errors with the POSIX names Node uses (err.code), so the API layers can pass
// them through unchanged.

export const Errno = {
  EPERM: 1, ENOENT: 2, EINTR: 4, EIO: 5, EPROTO: 71, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14,
  EBUSY: 16, EEXIST: 17, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOSPC: 28, EPIPE: 32,
  EDESTADDRREQ: 89, EMSGSIZE: 90, EPROTOTYPE: 91, ENOPROTOOPT: 92, EPROTONOSUPPORT: 93, EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97, EADDRINUSE: 98, EADDRNOTAVAIL: 99, ENETDOWN: 100, ENETUNREACH: 101,
  ECONNABORTED: 103, ECONNRESET: 104, ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107, ETIMEDOUT: 110,
  ECONNREFUSED: 111, EHOSTDOWN: 112, EHOSTUNREACH: 113, EALREADY: 114, EINPROGRESS: 115,
  ENODEV: 19,
} as const;
export type ErrnoCode = keyof typeof Errno;

export class NetError extends Error {
  readonly errno: number;
  constructor(readonly code: ErrnoCode, message?: string) {
    super(message ? `${code}: ${message}` : code);
    this.name = 'NetError';
    this.errno = Errno[code];
  }
}
