// The API runtime: which stack a `tstack/dgram` (later `tstack/net`) socket lives on, and
// whether that stack keeps the process alive.
//
// Node keeps a process alive while ref'd handles exist, and a program whose sockets are all
// closed (or unref()'d) exits by itself. A tstack instance's run loop holds the event loop
// with a keep-alive interval, timers and the TAP driver's readiness watcher, so left alone
// it would keep every program alive forever. Here every API socket holds a handle count on
// its stack's context; when the count drops to 0 the loop is unref()'d (and ref()'d again
// when a socket needs it), so the process lives exactly as long as it would on kernel
// sockets.
import { Stack } from '../stack/stack.js';
import { loadConfig } from '../runtime/config.js';
import { startInstance, type Instance } from '../runtime/instance.js';
import { startControl, type ControlServer } from '../runtime/control.js';
import type { RunLoop } from '../runtime/loop.js';
import { attachWorker, workerFromEnv } from '../runtime/worker.js';
import { installDispatcher, type PacketDispatcher } from '../runtime/dispatcher.js';
import type { PacketBuffer } from '../base/pktbuf.js';
import { pathToFileURL } from 'node:url';

/** What API calls accept as `{ stack }`: a bare Stack (the caller drives it) or an Instance. */
export type StackLike = Stack | Instance;

export interface StackOption {
  /** The stack to use; default: the process-wide default instance (TSTACK_CONFIG). */
  stack?: StackLike;
}

/** No default stack could be made: the message says what to set. */
export class RuntimeError extends Error {
  readonly code = 'ERR_TSTACK_NO_STACK';
  constructor(message: string, options?: { cause?: unknown }) { super(message, options); this.name = 'RuntimeError'; }
}

/** How long, at most, the last release waits for datagrams held by ARP resolution to leave. */
const LINGER_MAX_MS = 3000;
const LINGER_STEP_MS = 20;

/**
 * One per Stack: the handle count of the API sockets on it. When `managed`, the count decides
 * whether the instance's run loop keeps the process alive.
 */
export class StackContext {
  private count = 0;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;
  private lingerUntil = 0;

  constructor(readonly stack: Stack, readonly loop: RunLoop | null, private managed: boolean) {
    if (managed) loop?.unref();
  }

  /** Ref'd API handles on this stack. */
  get refs(): number { return this.count; }

  /** Whether the handle count drives the loop's ref state (the default instance, adopted instances). */
  get isManaged(): boolean { return this.managed; }

  /** A socket handle became active and ref'd (bound and not unref()'d). */
  acquire(): void {
    if (this.count++ === 0 && this.managed) {
      this.cancelLinger();
      this.loop?.ref();
    }
  }

  /** A socket handle stopped being active or ref'd (closed or unref()'d). */
  release(): void {
    if (this.count === 0) throw new Error('StackContext.release: not acquired');
    if (--this.count === 0 && this.managed) this.idle();
  }

  /** @internal Start managing the loop's ref state (adoptInstance). */
  manage(): void {
    if (this.managed) return;
    this.managed = true;
    if (this.count === 0) this.idle();
  }

  private idle(): void {
    if (!this.loop) return;
    // Datagrams sent just before the last close may still wait for ARP: the kernel would send
    // them after the program's last handle went away, so give them a bounded moment too.
    if (this.heldForResolution() > 0) {
      if (this.lingerTimer === null) this.lingerUntil = performance.now() + LINGER_MAX_MS;
      if (performance.now() < this.lingerUntil) {
        this.lingerTimer = setTimeout(() => { this.lingerTimer = null; if (this.count === 0) this.idle(); }, LINGER_STEP_MS);
        return;
      }
    }
    this.lingerTimer = null;
    this.loop.unref();
  }

  private cancelLinger(): void {
    if (this.lingerTimer !== null) { clearTimeout(this.lingerTimer); this.lingerTimer = null; }
  }

  private heldForResolution(): number {
    let n = 0;
    for (const e of this.stack.arp.list()) n += e.queued;
    return n;
  }
}

const contexts = new WeakMap<Stack, StackContext>();
let defaultInstance: Instance | null = null;
/** The default instance was started here (so stopping it at exit is ours to do). */
let defaultOwned = false;
/** The default instance's control socket, when this module started the instance. */
let defaultControl: ControlServer | null = null;

function closeDefaultControl(): void {
  const c = defaultControl;
  defaultControl = null;
  c?.close();
}

function isInstance(x: StackLike): x is Instance {
  return !(x instanceof Stack) && typeof x === 'object' && x !== null && (x as Instance).stack instanceof Stack;
}

function contextFor(stack: Stack, loop: RunLoop | null, managed: boolean): StackContext {
  let ctx = contexts.get(stack);
  if (!ctx) {
    ctx = new StackContext(stack, loop, managed);
    contexts.set(stack, ctx);
  } else if (managed) ctx.manage();
  return ctx;
}

/**
 * The stack an API call should use, with its handle count. `{ stack }` wins; otherwise the
 * default instance (started from TSTACK_CONFIG on first use). A bare Stack has no loop: its
 * owner drives it (tests on a virtual clock), and handle counts change nothing.
 */
export function resolveStack(opts?: StackOption): StackContext {
  const s = opts?.stack;
  if (s === undefined) {
    const inst = getDefaultInstance();
    return contextFor(inst.stack, inst.loop, true);
  }
  if (s instanceof Stack) return contextFor(s, null, false);
  if (isInstance(s)) return contextFor(s.stack, s.loop, false);
  throw new TypeError('The "stack" option must be a tstack Stack or Instance');
}

/**
 * Lets API handles decide whether `inst` keeps the process alive: from now on its loop is
 * ref'd only while some socket on it is bound and ref'd. `tstack run` and the default
 * instance use this; an instance the caller stops itself need not.
 */
export function adoptInstance(inst: Instance): StackContext {
  return contextFor(inst.stack, inst.loop, true);
}

/**
 * The process-wide default instance, started on first use from the file named by
 * TSTACK_CONFIG. Throws RuntimeError (naming the variable) when it is unset or the file is bad.
 */
export function getDefaultInstance(): Instance {
  if (defaultInstance) return defaultInstance;
  const file = process.env['TSTACK_CONFIG'];
  if (!file) {
    throw new RuntimeError('tstack: no stack to put this socket on: set TSTACK_CONFIG to a tstack.toml file, ' +
      'pass { stack } to the call, or call setDefaultInstance() first');
  }
  let inst: Instance;
  // One of several workers under `tstack run` (src/runtime/cluster.ts): its own queues and control socket.
  const worker = workerFromEnv();
  try {
    const config = loadConfig(file);
    if (worker) {
      config.control.name = `${config.control.name}.w${worker.index}`;
      if (config.control.socket !== '') config.control.socket = `${config.control.socket.replace(/\.sock$/, '')}.w${worker.index}.sock`;
    }
    inst = startInstance(config, worker ? { worker } : {});
  } catch (e) {
    throw new RuntimeError(`tstack: cannot start the default stack from TSTACK_CONFIG=${file}: ${(e as Error).message}`, { cause: e });
  }
  installDefault(inst, true);
  // The tools' way in (tstack sysctl, netstat…); it never keeps the program alive.
  defaultControl = startControl(inst);
  const link = worker ? attachWorker(inst, worker, defaultControl) : null;
  const dispatcher = inst.config.stack.dispatcher;
  if (dispatcher !== undefined) {
    // The dispatcher takes over once its module has loaded (a few ms after the stack is up).
    const target = inst;
    import(pathToFileURL(dispatcher).href).then((m: { default?: unknown }) => {
      if (typeof m.default !== 'function') throw new Error('its default export is not a function');
      if (defaultInstance !== target) return;
      installDispatcher(target, m.default as PacketDispatcher, {
        ...(worker && { self: worker.index }), ...(link && { toWorker: (i: number, ifIndex: number, buf: PacketBuffer) => link.forward(i, ifIndex, buf) }),
      });
    }).catch((e: Error) => process.stderr.write(`tstack: [stack] dispatcher ${dispatcher}: ${e.message}\n`));
  }
  return inst;
}

/**
 * Makes `inst` the default for API calls without `{ stack }` (null clears it). The instance
 * is adopted (see adoptInstance) and, unless `stopOnExit` is false, stopped when the process
 * exits or gets SIGINT/SIGTERM. Replacing a default this module started stops that one.
 */
export function setDefaultInstance(inst: Instance | null, opts: { stopOnExit?: boolean } = {}): void {
  if (inst === defaultInstance) return;
  if (defaultInstance && defaultOwned) defaultInstance.stop();
  closeDefaultControl();
  defaultInstance = null;
  defaultOwned = false;
  removeExitHooks();
  if (inst) installDefault(inst, opts.stopOnExit !== false);
}

function installDefault(inst: Instance, stopOnExit: boolean): void {
  defaultInstance = inst;
  defaultOwned = stopOnExit;
  adoptInstance(inst);
  if (stopOnExit) addExitHooks();
}

/** Stops the default instance now (idempotent); API sockets on it stop working. */
export function shutdownDefaultInstance(): void {
  const inst = defaultInstance;
  defaultInstance = null;
  defaultOwned = false;
  removeExitHooks();
  closeDefaultControl();
  if (inst) { try { inst.stop(); } catch { /* exiting anyway */ } }
}

// ---- process exit ------------------------------------------------------------------------

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let hooked = false;

function onExit(): void { shutdownDefaultInstance(); }

function onSignal(sig: NodeJS.Signals): void {
  // We are the only listener: the program relies on the default action (exit), which our
  // listener suppressed. Stop the stack, then let the signal do what it would have done.
  const alone = process.listenerCount(sig) === 1;
  shutdownDefaultInstance();
  if (alone) process.kill(process.pid, sig);
}

function addExitHooks(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function removeExitHooks(): void {
  if (!hooked) return;
  hooked = false;
  process.removeListener('exit', onExit);
  for (const s of SIGNALS) process.removeListener(s, onSignal);
}
