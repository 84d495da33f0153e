// Errors shaped like Node's own, so programs that check `err.code`, `err.errno`, `err.syscall`
// (or print the message) behave the same on tstack as on kernel sockets. Messages follow
// Node 20's lib/internal/errors.js wording; the stack engine's NetError supplies the errno.
import { inspect, type InspectOptions } from 'node:util';
import { Errno, type ErrnoCode, NetError } from '../base/errors.js';

const STRERROR: Partial<Record<ErrnoCode, string>> = {
  EBADF: 'bad file descriptor', EINVAL: 'invalid argument', EACCES: 'permission denied',
  EADDRINUSE: 'address already in use', EADDRNOTAVAIL: 'address not available',
  EAFNOSUPPORT: 'address family not supported', ECONNREFUSED: 'connection refused',
  EMSGSIZE: 'message too long', ENETUNREACH: 'network is unreachable', EHOSTUNREACH: 'host is unreachable',
  ENOBUFS: 'no buffer space available', EISCONN: 'socket is already connected',
};

/** `syscall CODE` with errno (negative, as Node reports it), code and syscall: Node's ErrnoException. */
export function errnoException(code: ErrnoCode, syscall: string): NodeJS.ErrnoException {
  const e = new Error(`${syscall} ${code}`) as NodeJS.ErrnoException;
  e.errno = -Errno[code];
  e.code = code;
  e.syscall = syscall;
  return e;
}

/** `syscall CODE address:port` plus address/port fields: Node's ExceptionWithHostPort. */
export function exceptionWithHostPort(code: ErrnoCode, syscall: string, address: string | undefined, port?: number): NodeJS.ErrnoException & { address?: string; port?: number } {
  let details = '';
  if (port && port > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  const e = new Error(`${syscall} ${code}${details}`) as NodeJS.ErrnoException & { address?: string; port?: number };
  e.errno = -Errno[code];
  e.code = code;
  e.syscall = syscall;
  e.address = address;
  if (port) e.port = port;
  return e;
}

/** The engine's NetError code, or EINVAL for anything else (which would be an engine bug). */
export function netCode(err: unknown): ErrnoCode {
  if (err instanceof NetError) return err.code;
  throw err;
}

type ErrorCtor = new (message: string) => Error;

/** A Node "ERR_*" error: the given class, `code` set, and `Name [CODE]: message` on the stack. */
export function codedError<E extends Error>(Base: ErrorCtor, code: string, message: string): E & { code: string } {
  const e = new Base(message) as E & { code: string };
  e.code = code;
  if (typeof e.stack === 'string') e.stack = e.stack.replace(/^([A-Za-z]*Error)/, `$1 [${code}]`);
  return e;
}

/** Node's determineSpecificType(): the "Received …" part of argument errors. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'bigint': return `type bigint (${value}n)`;
    case 'number':
      if (value === 0) return 1 / value === -Infinity ? 'type number (-0)' : 'type number (0)';
      return `type number (${value})`;
    case 'boolean': return `type boolean (${value})`;
    case 'symbol': return `type symbol (${String(value)})`;
    case 'function': return `function ${(value as { name: string }).name}`;
    case 'object': {
      const ctor = (value as { constructor?: { name?: string } }).constructor;
      if (ctor && typeof ctor.name === 'string') return `an instance of ${ctor.name}`;
      return inspect(value, { depth: -1 });
    }
    case 'string': {
      const s = value.length > 28 ? `${value.slice(0, 25)}...` : value;
      return s.includes("'") ? `type string (${JSON.stringify(s)})` : `type string ('${s}')`;
    }
  }
  return String(value);
}

function joinOr(list: string[]): string {
  if (list.length > 2) return `${list.slice(0, -1).join(', ')}, or ${list[list.length - 1]}`;
  return list.join(' or ');
}

/** ERR_INVALID_ARG_TYPE with Node's wording ("must be of type string or an instance of Buffer…"). */
export function invalidArgType(name: string, expected: string[], actual: unknown): TypeError {
  const types = expected.filter((t) => t[0] === t[0]!.toLowerCase());
  const instances = expected.filter((t) => t[0] !== t[0]!.toLowerCase());
  let msg = name.endsWith(' argument') ? `The ${name} must be ` : `The "${name}" ${name.includes('.') ? 'property' : 'argument'} must be `;
  if (types.length) {
    msg += types.length === 1 ? `of type ${types[0]}` : `one of type ${joinOr(types)}`;
    if (instances.length) msg += ' or ';
  }
  if (instances.length) msg += `an instance of ${joinOr(instances)}`;
  msg += `. Received ${describeValue(actual)}`;
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE', msg);
}

/** Node's validatePort(): returns the port as a number or throws ERR_SOCKET_BAD_PORT. */
export function validatePort(port: unknown, name = 'Port', allowZero = true): number {
  if ((typeof port !== 'number' && typeof port !== 'string') ||
      (typeof port === 'string' && port.trim().length === 0) ||
      +port !== (+port >>> 0) || +port > 0xffff || (port === 0 && !allowZero)) {
    throw codedError(RangeError, 'ERR_SOCKET_BAD_PORT', `${name} should be ${allowZero ? '>=' : '>'} 0 and < 65536. Received ${describeValue(port)}.`);
  }
  return +port | 0;
}

export function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidArgType(name, ['string'], value);
}

export function validateNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number') throw invalidArgType(name, ['number'], value);
}

/** Node's SystemError class: its name on the prototype, printed as `SystemError [CODE]: …`. */
class SystemError extends Error {}
Object.defineProperty(SystemError.prototype, 'name', { value: 'SystemError', writable: true, configurable: true, enumerable: false });
// As Node's: inspected with its accessors' values (errno, syscall).
Object.defineProperty(SystemError.prototype, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: Error, _depth: number, ctx: InspectOptions) { return inspect(this, { ...ctx, getters: true, customInspect: false }); },
  writable: true, configurable: true, enumerable: false,
});

/**
 * Node's SystemError (ERR_SOCKET_BUFFER_SIZE and friends), shaped as lib/internal/errors.js
 * makes it: own `code` and `info`, `errno` and `syscall` as accessors into `info`.
 */
export function systemError(code: string, prefix: string, errCode: ErrnoCode, syscall: string): Error {
  const info = { errno: -Errno[errCode], code: errCode, message: STRERROR[errCode] ?? errCode, syscall };
  const message = `${prefix}: ${syscall} returned ${errCode} (${info.message})`;
  const e = new SystemError(message) as Error & Record<string, unknown>;
  e['code'] = code;
  Object.defineProperty(e, 'info', { value: info, enumerable: true, configurable: true, writable: false });
  Object.defineProperty(e, 'errno', { get: () => info.errno, set: (v: number) => { info.errno = v; }, enumerable: true, configurable: true });
  Object.defineProperty(e, 'syscall', { get: () => info.syscall, set: (v: string) => { info.syscall = v; }, enumerable: true, configurable: true });
  if (typeof e.stack === 'string') e.stack = e.stack.replace(`SystemError: ${message}`, `SystemError [${code}]: ${message}`);
  return e;
}
