// tstack.toml: one file, modelled on F-Stack's config.ini. Every key has a default, a type and
// an error that names the file, the key and the line. smol-toml gives values but not positions,
// so a small scanner (KeyLines) maps each key path back to the line it was written on.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve as resolvePath } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { parseIpv4, parseIpv4Cidr, parseIpv6, parseMac, prefixMask } from '../wire/addr.js';
import { Stack } from '../stack/stack.js';
import { Sysctl, SysctlError, type SysctlValue } from '../stack/sysctl.js';
import type { Clock } from '../base/time.js';
import type { ShieldConfig } from '../stack/shield.js';
import type { TunnelConfig } from '../stack/tunnel/tunnels.js';

export type PollMode = 'busy' | 'adaptive' | 'interrupt';
export const POLL_MODES: readonly PollMode[] = ['busy', 'adaptive', 'interrupt'];

export type DriverKind = 'tap' | 'memory' | 'pcap' | 'afpacket' | 'afxdp';
export const DRIVER_KINDS: readonly DriverKind[] = ['tap', 'memory', 'pcap', 'afpacket', 'afxdp'];
/** Drivers that exist today; the others are accepted by name and refused with a clear error. */
export const IMPLEMENTED_DRIVERS: readonly DriverKind[] = ['tap', 'memory', 'pcap', 'afpacket', 'afxdp'];

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

/**
 * [control]: the instance's control socket. `socket` '' means the default path,
 * `<dir>/<name>.sock` (runtime/control.ts: /run/tstack for root, else $XDG_RUNTIME_DIR/tstack or
 * the temp dir); `name` defaults to the config file's base name.
 */
export interface ControlConfig {
  socket: string;
  name: string;
  /** Group (name or numeric id) given the socket, so its members may use the tools. */
  group?: string;
  enabled: boolean;
}

/** [metrics]: a Prometheus endpoint on kernel sockets; off unless `listen` is set. */
export interface MetricsConfig { listen?: string }

/**
 * [api] kernel_fallback: which outgoing connections (and UDP sockets that only send) of a program
 * under `tstack run` / `tstack/register` stay on the kernel's sockets instead of the stack.
 * "auto": loopback, and destinations the stack has no route for; "loopback": loopback only
 * (unrouted destinations fail on the stack); "never": everything goes to the stack.
 */
export type KernelFallback = 'auto' | 'loopback' | 'never';
export const KERNEL_FALLBACKS: readonly KernelFallback[] = ['auto', 'loopback', 'never'];

export interface ApiConfig {
  kernelFallback: KernelFallback;
  /** [api] kernel: IPv4 prefixes ("10.0.0.0/8") whose destinations always use the kernel. */
  kernel: string[];
  /**
   * [api] same_host: a stack listener on any address or on loopback is also listened for on the
   * kernel's loopback (same port), so other processes of the host reach it (docs/compat.md).
   */
  sameHost: boolean;
}

export interface PortConfig {
  /** Position in the [[port]] array (0-based). */
  index: number;
  driver: DriverKind;
  /** Device / interface name; default `tst<index>` (tap) or `<driver><index>`. */
  ifname: string;
  /** The stack's own IPv4 address, "a.b.c.d/len". */
  addr?: string;
  /** Default IPv4 gateway, "a.b.c.d" (must be on addr's subnet). */
  gateway?: string;
  /** tap, afpacket (which then creates a veth pair): the kernel side's IPv4 address, "a.b.c.d/len". */
  hostAddr?: string;
  /** The stack's IPv6 address, "2001:db8::2/64" (a link-local address from the MAC is always there too). */
  addr6?: string;
  /** Default IPv6 router, "2001:db8::1" or a link-local "fe80::1". */
  gateway6?: string;
  /** Accept router advertisements: default routers, on-link prefixes, SLAAC addresses. */
  slaac?: boolean;
  /** tap, afpacket: the kernel side's IPv6 address. */
  hostAddr6?: string;
  mtu: number;
  /** The stack's MAC on this link; default: a random locally administered one. */
  mac?: Uint8Array;
  /** tap: move the device into this existing network namespace; afpacket: the namespace the interface is in (or the veth pair is created in). */
  netns?: string;
  /** Capture every frame this port receives and transmits into this pcap file. */
  pcap?: string;
  /**
   * afxdp: the exception path (F-Stack's KNI). The kernel keeps the interface and its address;
   * only traffic for the stack's ports goes to the stack, the rest to the kernel.
   */
  exception?: boolean;
  /** afxdp: the receive queue the socket serves; default 0. */
  queue?: number;
  /** afxdp: bind in zero-copy mode (the NIC's driver must support it); default false (copy mode). */
  zeroCopy?: boolean;
  /** pcap driver: the file whose frames are replayed as received. */
  input?: string;
  /** pcap driver: the file transmitted frames are written to. */
  output?: string;
  /** VLAN interfaces on this port ([[port.vlan]]). */
  vlans?: VlanConfig[];
  /** Secondary IPv4 addresses (F-Stack's VIPs), "a.b.c.d/len" (docs/l2.md). */
  vips?: string[];
  /** Secondary IPv6 addresses, "2001:db8::3/64". */
  vips6?: string[];
}

/** A bond over ports: `[[bond]]` (docs/l2.md). */
export interface BondConfig {
  index: number;
  ifname: string;
  mode: 'active-backup' | 'balance-xor';
  /** Port ifnames. */
  members: string[];
  addr?: string;
  gateway?: string;
  addr6?: string;
  gateway6?: string;
  vips?: string[];
  /** Carrier check interval, ms (Linux's miimon); default 100. */
  miimon: number;
  /** ARP monitoring (active-backup): probe interval in ms, and the IPv4 addresses probed. */
  arpInterval?: number;
  arpTargets?: string[];
}

/** A VLAN interface on a port: `[[port.vlan]]` (docs/l2.md). */
export interface VlanConfig {
  /** 802.1Q VID, 1..4094. */
  id: number;
  /** Q-in-Q: the 802.1ad service VID the C-tagged frame travels in (0x88a8); absent for plain 802.1Q. */
  outer?: number;
  /** Interface name; default `<port ifname>.<id>` (`<port>.<outer>.<id>` with Q-in-Q). */
  ifname: string;
  addr?: string;
  gateway?: string;
  addr6?: string;
  gateway6?: string;
  /** Default: the port's MTU (at most it). */
  mtu?: number;
  /** Default: the port's MAC. */
  mac?: Uint8Array;
  /** 802.1p priority code point of every frame sent (0..7, default 0). */
  pcp?: number;
  vips?: string[];
  vips6?: string[];
}

export interface SysctlSetting { name: string; value: SysctlValue; line: number }

/** One [[tunnel]] table: what Stack.addTunnel takes, plus its position. */
export interface TunnelEntry extends TunnelConfig { index: number; }

export interface TstackConfig {
  /** The file name used in error messages. */
  file: string;
  /**
   * busyPollUs (adaptive poll): after traffic, keep polling the devices for this many
   * microseconds before sleeping on readiness; 0 keeps the iteration-count budget.
   */
  stack: {
    /** Worker processes, one stack each ("auto" in the file = the cores available); docs/architecture.md "Workers". */
    workers: number; poll: PollMode; busyPollUs: number;
    /** busy / adaptive with busyPollUs: watch the receive rings this long (µs) between iterations (RunLoopOptions.spinSliceUs). */
    pollSliceUs: number;
    /** A worker whose loop has not iterated for this long (ms) is replaced (`tstack run` with workers > 1). */
    watchdogMs: number;
    /** A packet dispatcher module (absolute path; its default export: src/runtime/dispatcher.ts). */
    dispatcher?: string;
  };
  ports: PortConfig[];
  /** [[tunnel]] tables: VXLAN, GRE and IP-in-IP interfaces (docs/tunnels.md), in file order. */
  tunnels?: TunnelEntry[];
  /** Validated against the stack's registry, in file order. */
  sysctl: SysctlSetting[];
  /** Bonds over ports ([[bond]], docs/l2.md). */
  bonds?: BondConfig[];
  control: ControlConfig;
  metrics: MetricsConfig;
  log: { level: LogLevel };
  /** How `tstack/register` splits a program's sockets between the stack and the kernel. */
  api: ApiConfig;
  /** The shield: allow/deny rules and per-source TCP limits ([shield], [[shield.rule]]). */
  shield: ShieldConfig;
  /** Line of a key path such as `port[0].mtu` (or of its nearest enclosing table); 0 if unknown. */
  lineOf(key: string): number;
}

/** A configuration mistake, located: `FILE:LINE: key 'port[0].mtu': must be …`. */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly line: number, readonly key: string | undefined, readonly detail: string) {
    super(`${file}${line > 0 ? `:${line}` : ''}: ${key !== undefined ? `key '${key}': ` : ''}${detail}`);
    this.name = 'ConfigError';
  }
}

export interface ParseOptions {
  /**
   * The sysctl registry [sysctl] is validated against. Default: a fresh Stack's registry
   * (which holds every sysctl the stack's modules define).
   */
  sysctl?: Sysctl;
}

/**
 * The config a program under `tstack run` runs on, or the message to print instead (exit code
 * 2): a config error, or a config without a [[port]] (`shown`: the path as the user gave it).
 */
export function loadRunConfig(path: string, shown: string): TstackConfig | string {
  try {
    const c = loadConfig(path);
    return c.ports.length === 0 ? `${shown}: no [[port]] configured: the program would have no network to run on` : c;
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
}

export function loadConfig(path: string, opts: ParseOptions = {}): TstackConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(path, 0, undefined, `cannot read the file (${err.code ?? err.message})`);
  }
  return parseConfig(text, path, opts);
}

type Seg = string | number;
type Table = Record<string, unknown>;

export function parseConfig(text: string, fileName: string, opts: ParseOptions = {}): TstackConfig {
  const lines = new KeyLines(text);
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    const what = e.message.split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
    const key = lines.keyAtLine(e.line);
    throw new ConfigError(fileName, e.line, key && displayKey(key), `invalid TOML: ${what} (column ${e.column})`);
  }
  const v = new Validator(fileName, lines);

  const cfg: TstackConfig = {
    file: fileName,
    stack: { workers: 1, poll: 'adaptive', busyPollUs: 0, pollSliceUs: 50, watchdogMs: 1000 },
    ports: [],
    sysctl: [],
    control: { socket: '', name: defaultInstanceName(fileName), enabled: true },
    metrics: {},
    log: { level: 'info' },
    api: { kernelFallback: 'auto', kernel: [], sameHost: true },
    shield: { default: 'allow', rules: [], maxConnPerSource: 0, synRatePerSource: 0 },
    lineOf: (key) => lines.lineOfDisplay(key),
  };

  let bondsRaw: unknown[] | null = null;
  for (const [name, value] of Object.entries(doc)) {
    switch (name) {
      case 'stack': {
        const t = v.table(['stack'], value);
        v.known(['stack'], t, ['workers', 'poll', 'busy_poll_us', 'poll_slice_us', 'watchdog_ms', 'dispatcher']);
        if (t.dispatcher !== undefined) {
          if (typeof t.dispatcher !== 'string' || t.dispatcher === '') v.fail(['stack', 'dispatcher'], 'must be the path of a JavaScript module');
          cfg.stack.dispatcher = resolvePath(dirname(resolvePath(fileName)), t.dispatcher as string);
        }
        if (t.workers === 'auto') cfg.stack.workers = Math.max(1, Math.min(1024, availableParallelism()));
        else if (t.workers !== undefined) cfg.stack.workers = v.int(['stack', 'workers'], t.workers, 1, 1024);
        if (t.watchdog_ms !== undefined) cfg.stack.watchdogMs = v.int(['stack', 'watchdog_ms'], t.watchdog_ms, 100, 600_000);
        if (t.poll !== undefined) cfg.stack.poll = v.choice(['stack', 'poll'], t.poll, POLL_MODES);
        if (t.busy_poll_us !== undefined) cfg.stack.busyPollUs = v.int(['stack', 'busy_poll_us'], t.busy_poll_us, 0, 1_000_000);
        if (t.poll_slice_us !== undefined) cfg.stack.pollSliceUs = v.int(['stack', 'poll_slice_us'], t.poll_slice_us, 0, 100_000);
        break;
      }
      case 'port': {
        if (!Array.isArray(value)) v.fail(['port'], 'must be an array of tables: write each port as [[port]]');
        (value as unknown[]).forEach((p, i) => cfg.ports.push(portConfig(v, i, p)));
        break;
      }
      case 'tunnel': {
        if (!Array.isArray(value)) v.fail(['tunnel'], 'must be an array of tables: write each tunnel as [[tunnel]]');
        cfg.tunnels = (value as unknown[]).map((x, i) => tunnelConfig(v, i, x));
        break;
      }
      case 'sysctl': {
        const t = v.table(['sysctl'], value);
        const registry = opts.sysctl ?? new Stack({ clock: ZERO_CLOCK }).sysctl;
        for (const [path, raw] of flatten(['sysctl'], t)) cfg.sysctl.push(sysctlSetting(v, registry, path, raw));
        break;
      }
      case 'control': {
        const t = v.table(['control'], value);
        v.known(['control'], t, ['socket', 'name', 'group', 'enabled']);
        if (t.socket !== undefined) cfg.control.socket = v.path(['control', 'socket'], t.socket);
        if (t.name !== undefined) cfg.control.name = v.name(['control', 'name'], t.name, 'an instance name');
        if (t.group !== undefined) cfg.control.group = v.name(['control', 'group'], t.group, 'a group name or id');
        if (t.enabled !== undefined) {
          if (typeof t.enabled !== 'boolean') v.fail(['control', 'enabled'], `must be true or false (got ${describe(t.enabled)})`);
          cfg.control.enabled = t.enabled as boolean;
        }
        break;
      }
      case 'metrics': {
        const t = v.table(['metrics'], value);
        v.known(['metrics'], t, ['listen']);
        if (t.listen !== undefined) {
          const s = v.str(['metrics', 'listen'], t.listen);
          const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s);
          if (!m || parseIpv4(m[1]!) === null || Number(m[2]) > 65535) v.fail(['metrics', 'listen'], `must be "ADDRESS:PORT" such as "127.0.0.1:9464" (got ${describe(t.listen)})`);
          cfg.metrics.listen = s;
        }
        break;
      }
      case 'log': {
        const t = v.table(['log'], value);
        v.known(['log'], t, ['level']);
        if (t.level !== undefined) cfg.log.level = v.choice(['log', 'level'], t.level, LOG_LEVELS);
        break;
      }
      case 'api': {
        const t = v.table(['api'], value);
        v.known(['api'], t, ['kernel_fallback', 'kernel', 'same_host']);
        if (t.same_host !== undefined) {
          if (typeof t.same_host !== 'boolean') v.fail(['api', 'same_host'], `must be true or false (got ${describe(t.same_host)})`);
          cfg.api.sameHost = t.same_host as boolean;
        }
        if (t.kernel_fallback !== undefined) cfg.api.kernelFallback = v.choice(['api', 'kernel_fallback'], t.kernel_fallback, KERNEL_FALLBACKS);
        if (t.kernel !== undefined) {
          if (!Array.isArray(t.kernel)) v.fail(['api', 'kernel'], `must be an array of IPv4 prefixes like ["10.0.0.0/8"] (got ${describe(t.kernel)})`);
          cfg.api.kernel = (t.kernel as unknown[]).map((x) => v.cidr4(['api', 'kernel'], x));
        }
        break;
      }
      case 'shield':
        cfg.shield = shieldConfig(v, value);
        break;
      case 'bond':
        // Checked once every port is known (below).
        if (!Array.isArray(value)) v.fail(['bond'], 'must be an array of tables: write each bond as [[bond]]');
        bondsRaw = value as unknown[];
        break;
      default:
        v.fail([name], `unknown table or key (expected one of [stack], [[port]], [[bond]], [[tunnel]], [sysctl], [control], [metrics], [log], [api], [shield])`);
    }
  }
  if (bondsRaw) {
    const bonds: BondConfig[] = [];
    bondsRaw.forEach((b, i) => bonds.push(bondConfig(v, cfg.ports, bonds, i, b)));
    cfg.bonds = bonds;
  }

  const seen = new Map<string, number>();
  for (const p of cfg.ports) {
    const prev = seen.get(p.ifname);
    if (prev !== undefined) v.fail(['port', p.index, 'ifname'], `"${p.ifname}" is already used by port[${prev}]`);
    seen.set(p.ifname, p.index);
  }
  for (const p of cfg.ports) {
    (p.vlans ?? []).forEach((x, i) => {
      const prev = seen.get(x.ifname);
      if (prev !== undefined) v.fail(['port', p.index, 'vlan', i, 'ifname'], `"${x.ifname}" is already used by port[${prev}] or one of its VLANs`);
      seen.set(x.ifname, p.index);
    });
  }
  for (const tn of cfg.tunnels ?? []) {
    if (seen.has(tn.ifname)) v.fail(['tunnel', tn.index, 'ifname'], `"${tn.ifname}" is already used by port[${seen.get(tn.ifname)}] or one of its VLANs`);
    if ((cfg.bonds ?? []).some((b) => b.ifname === tn.ifname)) v.fail(['tunnel', tn.index, 'ifname'], `"${tn.ifname}" is already used by a bond`);
    if ((cfg.tunnels ?? []).some((o) => o.index < tn.index && o.ifname === tn.ifname)) v.fail(['tunnel', tn.index, 'ifname'], `"${tn.ifname}" is already used by another tunnel`);
  }
  // One address per interface and one interface per subnet: otherwise which one answers for an
  // address, or which one a packet to the subnet leaves by, is a guess.
  const nets: { owner: string; addr: number; prefixLen: number; text: string }[] = [];
  const claim = (path: Seg[], owner: string, text: string | undefined) => {
    if (text === undefined) return;
    const c = parseIpv4Cidr(text)!;
    for (const o of nets) {
      if (o.addr === c.addr) v.fail(path, `${text.split('/')[0]} is already ${o.owner}'s address`);
      const m = prefixMask(Math.min(o.prefixLen, c.prefixLen));
      // Secondary addresses may share their own interface's subnets.
      if (o.owner !== owner && ((o.addr & m) >>> 0) === ((c.addr & m) >>> 0)) {
        v.fail(path, `${text} is on the same subnet as ${o.owner}'s ${o.text}: give each ${owner.includes('vlan') || owner.startsWith('tunnel') ? 'interface' : 'port'} its own subnet`);
      }
    }
    nets.push({ owner, addr: c.addr, prefixLen: c.prefixLen, text });
  };
  for (const p of cfg.ports) claim(['port', p.index, 'addr'], `port[${p.index}]`, p.addr);
  for (const p of cfg.ports) (p.vlans ?? []).forEach((x, i) => claim(['port', p.index, 'vlan', i, 'addr'], `port[${p.index}].vlan[${i}]`, x.addr));
  for (const p of cfg.ports) {
    (p.vips ?? []).forEach((a, j) => claim(['port', p.index, 'vips', j], `port[${p.index}]`, a));
    (p.vlans ?? []).forEach((x, i) => (x.vips ?? []).forEach((a, j) => claim(['port', p.index, 'vlan', i, 'vips', j], `port[${p.index}].vlan[${i}]`, a)));
  }
  for (const b of cfg.bonds ?? []) {
    claim(['bond', b.index, 'addr'], `bond[${b.index}]`, b.addr);
    (b.vips ?? []).forEach((a, j) => claim(['bond', b.index, 'vips', j], `bond[${b.index}]`, a));
  }
  for (const tn of cfg.tunnels ?? []) claim(['tunnel', tn.index, 'addr'], `tunnel[${tn.index}]`, tn.addr);
  return cfg;
}

/** The config file's base name without its extension ("tstack" for /etc/tstack.toml). */
export function defaultInstanceName(file: string): string {
  const base = file.split('/').pop() ?? '';
  const name = base.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
  return name === '' || name === '.' || name === '..' ? 'tstack' : name;
}

const ZERO_CLOCK: Clock = { now: () => 0 };

const PORT_KEYS = ['driver', 'ifname', 'addr', 'gateway', 'host_addr', 'addr6', 'gateway6', 'slaac', 'host_addr6', 'mtu', 'mac', 'netns', 'pcap', 'input', 'output', 'exception', 'queue', 'zero_copy', 'vlan', 'vips', 'vips6'];
const VLAN_KEYS = ['id', 'outer', 'ifname', 'addr', 'gateway', 'addr6', 'gateway6', 'mtu', 'mac', 'pcp', 'vips', 'vips6'];

/**
 * `vips = ["198.18.0.3", "198.18.9.2/24"]`: secondary addresses. One without a length takes the
 * primary's when it is on the primary's subnet, else /32.
 */
function vipList(v: Validator, path: Seg[], raw: unknown, primary: string | undefined): string[] {
  if (!Array.isArray(raw)) v.fail(path, `must be an array of addresses like ["198.18.0.3", "198.18.9.2/24"] (got ${describe(raw)})`);
  const p = primary === undefined ? null : parseIpv4Cidr(primary);
  return (raw as unknown[]).map((x, i) => {
    const at = [...path, i];
    const s = v.str(at, x);
    if (!s.includes('/')) {
      const a = parseIpv4(s);
      if (a === null) v.fail(at, `must be an IPv4 address like "198.18.0.3" or "198.18.9.2/24" (got ${describe(x)})`);
      const m = p ? prefixMask(p.prefixLen) : 0;
      return v.hostAddress(at, `${s}/${p && ((a & m) >>> 0) === ((p.addr & m) >>> 0) ? p.prefixLen : 32}`);
    }
    return v.cidr4(at, v.hostAddress(at, s));
  });
}

function vip6List(v: Validator, path: Seg[], raw: unknown): string[] {
  if (!Array.isArray(raw)) v.fail(path, `must be an array of addresses like ["2001:db8::3/64"] (got ${describe(raw)})`);
  return (raw as unknown[]).map((x, i) => {
    const s = v.str([...path, i], x);
    return v.cidr6([...path, i], s.includes('/') ? s : `${s}/128`);
  });
}
/** Keys that only mean something for some drivers. */
const DRIVER_ONLY: Record<string, readonly DriverKind[]> = {
  host_addr: ['tap', 'afpacket', 'afxdp'], host_addr6: ['tap', 'afpacket', 'afxdp'], netns: ['tap', 'afpacket', 'afxdp'],
  input: ['pcap'], output: ['pcap'], exception: ['afxdp'], queue: ['afxdp'], zero_copy: ['afxdp'],
};

function portConfig(v: Validator, index: number, raw: unknown): PortConfig {
  const at = (k: string): Seg[] => ['port', index, k];
  const t = v.table(['port', index], raw);
  v.known(['port', index], t, PORT_KEYS);
  const driver: DriverKind = t.driver === undefined ? 'tap' : v.choice(at('driver'), t.driver, DRIVER_KINDS);
  if (!IMPLEMENTED_DRIVERS.includes(driver)) {
    v.fail(at('driver'), `driver "${driver}" is not implemented yet (available: ${IMPLEMENTED_DRIVERS.join(', ')})`);
  }
  for (const [k, only] of Object.entries(DRIVER_ONLY)) {
    if (t[k] !== undefined && !only.includes(driver)) {
      v.fail(at(k), `only applies to driver ${only.map((d) => `"${d}"`).join(' or ')} (this port's driver is "${driver}")`);
    }
  }
  const p: PortConfig = {
    index,
    driver,
    ifname: t.ifname === undefined ? (driver === 'tap' ? `tst${index}` : `${driver}${index}`) : v.ifname(at('ifname'), t.ifname),
    mtu: t.mtu === undefined ? 1500 : v.int(at('mtu'), t.mtu, 68, 65535),
  };
  let net: { addr: number; prefixLen: number } | undefined;
  if (t.addr !== undefined) { p.addr = v.cidr4(at('addr'), v.hostAddress(at('addr'), t.addr)); net = parseIpv4Cidr(p.addr)!; }
  if (t.gateway !== undefined) p.gateway = gateway4(v, at('gateway'), t.gateway, p.addr, 'needs addr on the same port (the gateway must be on its subnet)');
  if (t.host_addr !== undefined) {
    p.hostAddr = v.hostAddress(at('host_addr'), v.cidr4(at('host_addr'), t.host_addr));
    if (net && parseIpv4Cidr(p.hostAddr)!.addr === net.addr) v.fail(at('host_addr'), `must differ from addr (${p.addr}): it is the kernel's side of the link`);
  }
  if (t.addr6 !== undefined) p.addr6 = v.cidr6(at('addr6'), t.addr6);
  if (t.gateway6 !== undefined) p.gateway6 = gateway6(v, at('gateway6'), t.gateway6);
  if (t.slaac !== undefined) {
    if (typeof t.slaac !== 'boolean') v.fail(at('slaac'), `must be true or false (got ${describe(t.slaac)})`);
    p.slaac = t.slaac;
  }
  if (t.host_addr6 !== undefined) p.hostAddr6 = v.cidr6(at('host_addr6'), t.host_addr6);
  if (t.mac !== undefined) {
    const mac = parseMac(v.str(at('mac'), t.mac));
    if (!mac) v.fail(at('mac'), `must be a MAC address like "02:00:00:00:00:01" (got ${JSON.stringify(t.mac)})`);
    if (mac[0]! & 1) v.fail(at('mac'), `must be a unicast MAC (the first octet's low bit is the multicast bit) (got ${JSON.stringify(t.mac)})`);
    p.mac = mac;
  }
  // afpacket and afxdp with host_addr create a veth pair whose kernel end is named `${ifname}h`.
  if ((driver === 'afpacket' || driver === 'afxdp') && (t.host_addr !== undefined || t.host_addr6 !== undefined) && p.ifname.length > 14) {
    v.fail(at('ifname'), `must be at most 14 characters with host_addr: the veth pair's kernel end is "${p.ifname}h" (got ${describe(p.ifname)})`);
  }
  // A device the driver creates cannot be named after the loopback interface, which always exists.
  if (p.ifname === 'lo' && (driver === 'tap' || (driver === 'afpacket' && (t.host_addr !== undefined || t.host_addr6 !== undefined)))) {
    v.fail(at('ifname'), `"lo" is the loopback interface: the ${driver} driver creates its own device here, give it another name`);
  }
  if (t.netns !== undefined) p.netns = v.name(at('netns'), t.netns, 'a network namespace name');
  if (t.exception !== undefined) {
    if (typeof t.exception !== 'boolean') v.fail(at('exception'), `must be true or false (got ${describe(t.exception)})`);
    if (t.exception && (t.host_addr !== undefined || t.host_addr6 !== undefined)) {
      v.fail(at('exception'), 'applies to an existing interface whose kernel side keeps the address: remove host_addr/host_addr6');
    }
    if (t.exception && t.addr === undefined) v.fail(at('exception'), 'needs addr (the address the stack shares with the kernel)');
    p.exception = t.exception;
  }
  if (t.queue !== undefined) p.queue = v.int(at('queue'), t.queue, 0, 63);
  if (t.zero_copy !== undefined) {
    if (typeof t.zero_copy !== 'boolean') v.fail(at('zero_copy'), `must be true or false (got ${describe(t.zero_copy)})`);
    p.zeroCopy = t.zero_copy;
  }
  if (driver === 'afxdp' && p.mtu > 3490) v.fail(at('mtu'), `must be at most 3490 for afxdp (a frame fits one 4 KiB UMEM frame) (got ${p.mtu})`);
  if (t.pcap !== undefined) p.pcap = v.path(at('pcap'), t.pcap);
  if (t.input !== undefined) p.input = v.path(at('input'), t.input);
  if (t.output !== undefined) p.output = v.path(at('output'), t.output);
  if (driver === 'pcap' && p.input === undefined && p.output === undefined) {
    v.fail(['port', index], 'a "pcap" port needs input (a capture to replay) and/or output (where transmitted frames go)');
  }
  if (t.vips !== undefined) p.vips = vipList(v, at('vips'), t.vips, p.addr);
  if (t.vips6 !== undefined) p.vips6 = vip6List(v, at('vips6'), t.vips6);
  if (t.vlan !== undefined) {
    if (!Array.isArray(t.vlan)) v.fail(at('vlan'), 'must be an array of tables: write each VLAN as [[port.vlan]] after its [[port]]');
    p.vlans = [];
    (t.vlan as unknown[]).forEach((raw, i) => p.vlans!.push(vlanConfig(v, p, i, raw)));
  }
  return p;
}

const TUNNEL_KEYS = ['kind', 'ifname', 'local', 'remote', 'remotes', 'vni', 'key', 'seq', 'port', 'addr', 'addr6', 'mtu', 'mac', 'ttl'];
const TUNNEL_KINDS = ['vxlan', 'gre', 'ipip'] as const;

function tunnelConfig(v: Validator, index: number, raw: unknown): TunnelEntry {
  const at = (k: string): Seg[] => ['tunnel', index, k];
  const t = v.table(['tunnel', index], raw);
  v.known(['tunnel', index], t, TUNNEL_KEYS);
  if (t.kind === undefined) v.fail(at('kind'), `is required: one of ${TUNNEL_KINDS.map((k) => `"${k}"`).join(', ')}`);
  const kind = v.choice(at('kind'), t.kind, TUNNEL_KINDS);
  if (t.ifname === undefined) v.fail(at('ifname'), 'is required (the tunnel interface\'s name, say "vx0")');
  if (t.local === undefined) v.fail(at('local'), 'is required: the underlay source address, one of the ports\' addresses');
  const e: TunnelEntry = { index, kind, ifname: v.ifname(at('ifname'), t.ifname), local: v.ipv4(at('local'), t.local), remotes: [] };
  if (t.remote !== undefined && t.remotes !== undefined) v.fail(at('remotes'), 'give remote or remotes, not both');
  if (t.remote !== undefined) e.remotes = [v.ipv4(at('remote'), t.remote)];
  if (t.remotes !== undefined) {
    if (kind !== 'vxlan') v.fail(at('remotes'), `only a vxlan tunnel has several remotes; a ${kind} tunnel has one remote`);
    if (!Array.isArray(t.remotes)) v.fail(at('remotes'), `must be an array of IPv4 addresses (got ${describe(t.remotes)})`);
    e.remotes = (t.remotes as unknown[]).map((x) => v.ipv4(at('remotes'), x));
  }
  if (kind !== 'vxlan' && e.remotes.length !== 1) v.fail(at('remote'), `is required for a ${kind} tunnel (its other end)`);
  const only = (k: string, kinds: readonly string[]) => { if (t[k] !== undefined && !kinds.includes(kind)) v.fail(at(k), `only applies to kind ${kinds.map((x) => `"${x}"`).join(' or ')} (this tunnel is "${kind}")`); };
  only('vni', ['vxlan']); only('port', ['vxlan']); only('mac', ['vxlan']); only('key', ['gre']); only('seq', ['gre']);
  if (kind === 'vxlan') {
    if (t.vni === undefined) v.fail(at('vni'), 'is required for a vxlan tunnel (0..16777215)');
    e.vni = v.int(at('vni'), t.vni, 0, 0xffffff);
  }
  if (t.port !== undefined) e.port = v.int(at('port'), t.port, 1, 65535);
  if (t.key !== undefined) e.key = v.int(at('key'), t.key, 0, 0xffffffff);
  if (t.seq !== undefined) {
    if (typeof t.seq !== 'boolean') v.fail(at('seq'), `must be true or false (got ${describe(t.seq)})`);
    e.seq = t.seq;
  }
  if (t.addr !== undefined) e.addr = v.cidr4(at('addr'), v.hostAddress(at('addr'), t.addr));
  only('addr6', ['vxlan']);
  if (t.addr6 !== undefined) e.addr6 = v.cidr6(at('addr6'), t.addr6);
  if (t.mtu !== undefined) e.mtu = v.int(at('mtu'), t.mtu, 576, 65535);
  if (t.ttl !== undefined) e.ttl = v.int(at('ttl'), t.ttl, 1, 255);
  if (t.mac !== undefined) {
    const mac = parseMac(v.str(at('mac'), t.mac));
    if (!mac || (mac[0]! & 1)) v.fail(at('mac'), `must be a unicast MAC address like "02:00:00:00:00:01" (got ${JSON.stringify(t.mac)})`);
    e.mac = mac;
  }
  return e;
}

const BOND_KEYS = ['ifname', 'mode', 'members', 'addr', 'gateway', 'addr6', 'gateway6', 'vips', 'miimon', 'arp_interval', 'arp_ip_target'];

function bondConfig(v: Validator, ports: PortConfig[], earlier: BondConfig[], index: number, raw: unknown): BondConfig {
  const base: Seg[] = ['bond', index];
  const at = (k: string): Seg[] => ['bond', index, k];
  const t = v.table(base, raw);
  v.known(base, t, BOND_KEYS);
  if (!Array.isArray(t.members) || t.members.length === 0) v.fail(at('members'), `must be a non-empty array of port ifnames like ["tst0", "tst1"] (got ${describe(t.members)})`);
  const members = (t.members as unknown[]).map((m, i) => {
    const name = v.str([...at('members'), i], m);
    const p = ports.find((x) => x.ifname === name);
    if (!p) v.fail([...at('members'), i], `"${name}" is not a port's ifname (ports: ${ports.map((x) => x.ifname).join(', ') || 'none'})`);
    if (p.addr !== undefined || p.addr6 !== undefined || p.vlans?.length || p.vips?.length || p.gateway !== undefined) {
      v.fail([...at('members'), i], `port[${p.index}] (${name}) has addresses or VLANs of its own: a bond member carries only the bond's`);
    }
    const other = earlier.find((b) => b.members.includes(name));
    if (other) v.fail([...at('members'), i], `"${name}" is already a member of ${other.ifname}`);
    return name;
  });
  if (new Set(members).size !== members.length) v.fail(at('members'), 'lists a port twice');
  const c: BondConfig = {
    index,
    ifname: t.ifname === undefined ? `bond${index}` : v.ifname(at('ifname'), t.ifname),
    mode: t.mode === undefined ? 'active-backup' : v.choice(at('mode'), t.mode, ['active-backup', 'balance-xor'] as const),
    members,
    miimon: t.miimon === undefined ? 100 : v.int(at('miimon'), t.miimon, 10, 60_000),
  };
  if (ports.some((p) => p.ifname === c.ifname) || earlier.some((b) => b.ifname === c.ifname)) v.fail(at('ifname'), `"${c.ifname}" is already used`);
  if (t.addr !== undefined) c.addr = v.cidr4(at('addr'), v.hostAddress(at('addr'), t.addr));
  if (t.gateway !== undefined) c.gateway = gateway4(v, at('gateway'), t.gateway, c.addr, 'needs addr (the gateway must be on its subnet)');
  if (t.addr6 !== undefined) c.addr6 = v.cidr6(at('addr6'), t.addr6);
  if (t.gateway6 !== undefined) c.gateway6 = gateway6(v, at('gateway6'), t.gateway6);
  if (t.vips !== undefined) c.vips = vipList(v, at('vips'), t.vips, c.addr);
  if (t.arp_interval !== undefined) {
    c.arpInterval = v.int(at('arp_interval'), t.arp_interval, 10, 60_000);
    if (c.mode !== 'active-backup') v.fail(at('arp_interval'), 'ARP monitoring is for mode = "active-backup"');
    if (!Array.isArray(t.arp_ip_target) || t.arp_ip_target.length === 0) v.fail(at('arp_ip_target'), 'arp_interval needs arp_ip_target, the IPv4 addresses to probe, like ["198.18.0.1"]');
  }
  if (t.arp_ip_target !== undefined) {
    if (c.arpInterval === undefined) v.fail(at('arp_ip_target'), 'needs arp_interval (ms between probes)');
    c.arpTargets = (t.arp_ip_target as unknown[]).map((x, i) => v.ipv4([...at('arp_ip_target'), i], x));
  }
  return c;
}

/** An IPv4 gateway key: an address on the subnet of `addr` (the interface's), `missing` when it has none. */
function gateway4(v: Validator, key: Seg[], raw: unknown, addr: string | undefined, missing: string): string {
  const gw = v.ipv4(key, raw);
  if (addr === undefined) v.fail(key, missing);
  const net = parseIpv4Cidr(addr)!, mask = prefixMask(net.prefixLen);
  if (((parseIpv4(gw)! & mask) >>> 0) !== ((net.addr & mask) >>> 0)) v.fail(key, `${gw} is not on ${addr}'s subnet`);
  return gw;
}

/** An IPv6 gateway key: a unicast address (a link-local one is fine). */
function gateway6(v: Validator, key: Seg[], raw: unknown): string {
  const s = v.str(key, raw);
  const gw = parseIpv6(s);
  if (!gw || gw[0] === 0xff || gw.every((x) => x === 0)) v.fail(key, `must be a unicast IPv6 address like "2001:db8::1" or "fe80::1" (got ${describe(raw)})`);
  return s;
}

function vlanConfig(v: Validator, port: PortConfig, i: number, raw: unknown): VlanConfig {
  const base: Seg[] = ['port', port.index, 'vlan', i];
  const at = (k: string): Seg[] => [...base, k];
  const t = v.table(base, raw);
  v.known(base, t, VLAN_KEYS);
  if (t.id === undefined) v.fail(base, 'needs id (the VID, 1..4094)');
  const id = v.int(at('id'), t.id, 1, 4094);
  const outer = t.outer === undefined ? undefined : v.int(at('outer'), t.outer, 1, 4094);
  const c: VlanConfig = {
    id,
    ifname: t.ifname === undefined ? (outer === undefined ? `${port.ifname}.${id}` : `${port.ifname}.${outer}.${id}`) : v.ifname(at('ifname'), t.ifname),
    ...(outer !== undefined && { outer }),
  };
  for (const o of port.vlans ?? []) {
    if (o.id === id && o.outer === outer) v.fail(at('id'), `VLAN ${outer !== undefined ? `${outer}.` : ''}${id} is already on port[${port.index}]`);
  }
  if (t.addr !== undefined) c.addr = v.cidr4(at('addr'), v.hostAddress(at('addr'), t.addr));
  if (t.gateway !== undefined) c.gateway = gateway4(v, at('gateway'), t.gateway, c.addr, 'needs addr on the same VLAN (the gateway must be on its subnet)');
  if (t.addr6 !== undefined) c.addr6 = v.cidr6(at('addr6'), t.addr6);
  if (t.gateway6 !== undefined) c.gateway6 = gateway6(v, at('gateway6'), t.gateway6);
  if (t.mtu !== undefined) {
    c.mtu = v.int(at('mtu'), t.mtu, 68, 65535);
    if (c.mtu > port.mtu) v.fail(at('mtu'), `must be at most the port's mtu (${port.mtu}) (got ${c.mtu})`);
  }
  if (t.mac !== undefined) {
    const mac = parseMac(v.str(at('mac'), t.mac));
    if (!mac) v.fail(at('mac'), `must be a MAC address like "02:00:00:00:00:01" (got ${JSON.stringify(t.mac)})`);
    if (mac[0]! & 1) v.fail(at('mac'), `must be a unicast MAC (the first octet's low bit is the multicast bit) (got ${JSON.stringify(t.mac)})`);
    c.mac = mac;
  }
  if (t.pcp !== undefined) c.pcp = v.int(at('pcp'), t.pcp, 0, 7);
  if (t.vips !== undefined) c.vips = vipList(v, at('vips'), t.vips, c.addr);
  if (t.vips6 !== undefined) c.vips6 = vip6List(v, at('vips6'), t.vips6);
  return c;
}

const SHIELD_PROTOS = ['any', 'tcp', 'udp', 'icmp'] as const;

function shieldConfig(v: Validator, raw: unknown): ShieldConfig {
  const t = v.table(['shield'], raw);
  v.known(['shield'], t, ['default', 'max_conn_per_source', 'syn_rate_per_source', 'rule']);
  const cfg: ShieldConfig = { default: 'allow', rules: [], maxConnPerSource: 0, synRatePerSource: 0 };
  if (t.default !== undefined) cfg.default = v.choice(['shield', 'default'], t.default, ['allow', 'deny'] as const);
  if (t.max_conn_per_source !== undefined) cfg.maxConnPerSource = v.int(['shield', 'max_conn_per_source'], t.max_conn_per_source, 0, 1 << 24);
  if (t.syn_rate_per_source !== undefined) cfg.synRatePerSource = v.int(['shield', 'syn_rate_per_source'], t.syn_rate_per_source, 0, 1 << 24);
  if (t.rule !== undefined) {
    if (!Array.isArray(t.rule)) v.fail(['shield', 'rule'], `must be [[shield.rule]] tables (got ${describe(t.rule)})`);
    (t.rule as unknown[]).forEach((raw, i) => {
      const at = (k: string): Seg[] => ['shield', 'rule', i, k];
      const r = v.table(['shield', 'rule', i], raw);
      v.known(['shield', 'rule', i], r, ['action', 'from', 'proto', 'port']);
      if (r.action === undefined) v.fail(['shield', 'rule', i], 'needs action = "allow" or "deny"');
      const action = v.choice(at('action'), r.action, ['allow', 'deny'] as const);
      let from = 0, fromLen = 0, family: 4 | 6 | undefined, from6: Uint8Array | undefined;
      if (r.from !== undefined) {
        const s = v.str(at('from'), r.from);
        if (s.includes(':')) {
          // An IPv6 prefix ("2001:db8::/32"; an address alone is its /128).
          const c = v.cidr6(at('from'), s.includes('/') ? s : `${s}/128`).split('/');
          family = 6; from6 = parseIpv6(c[0]!)!; fromLen = Number(c[1]);
        } else {
          const c = parseIpv4Cidr(s.includes('/') ? s : `${s}/32`);
          if (!c) v.fail(at('from'), `must be an IPv4 or IPv6 address or prefix like "198.18.0.0/24" or "2001:db8::/32" (got ${describe(r.from)})`);
          family = 4; from = c.addr; fromLen = c.prefixLen;
        }
      }
      const proto = r.proto === undefined ? 'any' : v.choice(at('proto'), r.proto, SHIELD_PROTOS);
      let port = -1;
      if (r.port !== undefined) {
        if (proto !== 'tcp' && proto !== 'udp') v.fail(at('port'), 'needs proto = "tcp" or "udp" (only they have ports)');
        port = v.int(at('port'), r.port, 0, 65535);
      }
      cfg.rules.push({ action, from, fromLen, proto, port, ...(family !== undefined && { family }), ...(from6 !== undefined && { from6 }) });
    });
  }
  return cfg;
}

function sysctlSetting(v: Validator, registry: Sysctl, path: Seg[], raw: unknown): SysctlSetting {
  const name = path.slice(1).join('.');
  if (typeof raw !== 'number' && typeof raw !== 'string' && typeof raw !== 'boolean') {
    v.fail(path, `a sysctl value must be an integer, a string or a boolean (got ${describe(raw)})`, name);
  }
  try {
    // Validate on a scratch registry value: set() coerces and range-checks. The instance
    // applies the result to its own stack.
    const value = registry.set(name, raw);
    return { name, value, line: v.line(path) };
  } catch (e) {
    if (!(e instanceof SysctlError)) throw e;
    const detail = e.message.replace(/^sysctl '[^']*':\s*/, '');
    return v.fail(path, /^unknown sysctl/.test(detail) ? `unknown sysctl "${name}" (see \`tstack sysctl -a\` for the list)` : detail, name);
  }
}

/** [sysctl] accepts quoted names ("net.inet.tcp.msl" = …) and dotted keys (net.inet.tcp.msl = …). */
function flatten(prefix: Seg[], t: Table): [Seg[], unknown][] {
  const out: [Seg[], unknown][] = [];
  for (const [k, val] of Object.entries(t)) {
    const path = [...prefix, k];
    if (isTable(val)) out.push(...flatten(path, val)); else out.push([path, val]);
  }
  return out;
}

function isTable(x: unknown): x is Table {
  // smol-toml's TomlDate extends Date.
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Date);
}

function describe(x: unknown): string {
  if (Array.isArray(x)) return 'an array';
  if (isTable(x)) return 'a table';
  if (typeof x === 'object' && x !== null) return `${String(x)}`;
  return JSON.stringify(x);
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;
/** `port[0].mtu`, `sysctl."net.inet.tcp.msl"`: TOML's own way of writing the path. */
export function displayKey(path: readonly Seg[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else s += (s ? '.' : '') + (BARE_KEY.test(seg) ? seg : JSON.stringify(seg));
  }
  return s;
}

class Validator {
  constructor(readonly file: string, readonly lines: KeyLines) {}

  line(path: Seg[]): number { return this.lines.lineOf(path); }

  fail(path: Seg[], detail: string, keyName?: string): never {
    throw new ConfigError(this.file, this.line(path), keyName ?? displayKey(path), detail);
  }

  table(path: Seg[], x: unknown): Table {
    if (!isTable(x)) this.fail(path, `must be a table (got ${describe(x)})`);
    return x;
  }

  known(path: Seg[], t: Table, keys: readonly string[]): void {
    for (const k of Object.keys(t)) {
      if (!keys.includes(k)) this.fail([...path, k], `unknown key (expected one of ${keys.join(', ')})`);
    }
  }

  int(path: Seg[], x: unknown, min: number, max: number): number {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
      this.fail(path, `must be an integer between ${min} and ${max} (got ${describe(x)})`);
    }
    return x;
  }

  str(path: Seg[], x: unknown): string {
    if (typeof x !== 'string') this.fail(path, `must be a string (got ${describe(x)})`);
    return x;
  }

  choice<T extends string>(path: Seg[], x: unknown, choices: readonly T[]): T {
    if (typeof x !== 'string' || !choices.includes(x as T)) {
      this.fail(path, `must be one of ${choices.map((c) => `"${c}"`).join(', ')} (got ${describe(x)})`);
    }
    return x as T;
  }

  path(path: Seg[], x: unknown): string {
    const s = this.str(path, x);
    if (s === '' || s.includes('\0')) this.fail(path, `must be a non-empty file path (got ${describe(x)})`);
    return s;
  }

  name(path: Seg[], x: unknown, what: string): string {
    const s = this.str(path, x);
    if (!/^[A-Za-z0-9_.-]+$/.test(s) || s === '.' || s === '..') this.fail(path, `must be ${what}: letters, digits, '_', '-', '.' (got ${describe(x)})`);
    return s;
  }

  ifname(path: Seg[], x: unknown): string {
    const s = this.name(path, x, 'an interface name');
    // IFNAMSIZ is 16 including the terminating NUL.
    if (s.length > 15) this.fail(path, `must be at most 15 characters, the kernel's limit (got ${describe(x)})`);
    return s;
  }

  ipv4(path: Seg[], x: unknown): string {
    const s = this.str(path, x);
    if (parseIpv4(s) === null) this.fail(path, `must be an IPv4 address like "198.18.0.1" (got ${describe(x)})`);
    return s;
  }

  /** An "a.b.c.d/len" that names a host: not the subnet's network or broadcast address (len < 31). */
  hostAddress(path: Seg[], x: unknown): string {
    const s = this.cidr4(path, x);
    const c = parseIpv4Cidr(s)!;
    if (c.prefixLen < 31) {
      const mask = prefixMask(c.prefixLen);
      const network = (c.addr & mask) >>> 0;
      if (c.addr === network) this.fail(path, `${s} is the subnet's network address, not a host address`);
      if (c.addr === ((network | ~mask) >>> 0)) this.fail(path, `${s} is the subnet's broadcast address, not a host address`);
    }
    return s;
  }

  cidr4(path: Seg[], x: unknown): string {
    const s = this.str(path, x);
    const c = s.includes('/') ? parseIpv4Cidr(s) : null;
    if (!c) this.fail(path, `must be an IPv4 address with prefix length like "198.18.0.2/24" (got ${describe(x)})`);
    return s;
  }

  cidr6(path: Seg[], x: unknown): string {
    const s = this.str(path, x);
    const [a, l, ...rest] = s.split('/');
    const ok = rest.length === 0 && a !== undefined && parseIpv6(a) !== null && l !== undefined && /^\d{1,3}$/.test(l) && Number(l) <= 128;
    if (!ok) this.fail(path, `must be an IPv6 address with prefix length like "2001:db8::2/64" (got ${describe(x)})`);
    return s;
  }
}

/**
 * Where each key was written. Tracks [table] and [[array]] headers (an array-of-tables header
 * opens element n of that array) and `key = value` lines, with bare, quoted and dotted keys;
 * skips the insides of multi-line strings and arrays so their contents are not taken for keys.
 */
class KeyLines {
  private readonly byPath = new Map<string, number>();
  /** line -> key path written on it (for locating TOML syntax errors). */
  private readonly byLine = new Map<number, Seg[]>();
  /** The table in effect on each line (index = line - 1). */
  private readonly tableAt: Seg[][] = [];
  private readonly lines: string[];

  constructor(text: string) {
    const arrayCounts = new Map<string, number>(); // header path (with indices) -> elements so far
    let table: Seg[] = [];
    const lines = this.lines = text.split(/\r?\n/);
    let inMultiline: string | null = null; // '"""' or "'''" while inside one
    let depth = 0; // open [ / { of a multi-line value
    for (let i = 0; i < lines.length; i++) {
      const lineNo = i + 1;
      this.tableAt.push(table);
      let s = lines[i]!;
      if (inMultiline) {
        const end = s.indexOf(inMultiline);
        if (end < 0) continue;
        s = s.slice(end + 3);
        inMultiline = null;
        const r = scanValue(s, depth); depth = r.depth; inMultiline = r.multiline;
        continue;
      }
      if (depth > 0) {
        const r = scanValue(s, depth); depth = r.depth; inMultiline = r.multiline;
        continue;
      }
      const trimmed = s.trimStart();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      if (trimmed.startsWith('[')) {
        const isArray = trimmed.startsWith('[[');
        const keyText = trimmed.slice(isArray ? 2 : 1);
        const parsed = parseKey(keyText);
        if (!parsed) continue;
        // Inner segments that name an array of tables refer to its last element:
        // after [[port]], [port.x] means port[last].x.
        const path: Seg[] = [];
        const segs = parsed.segs;
        for (let j = 0; j < segs.length; j++) {
          path.push(segs[j]!);
          const n = arrayCounts.get(JSON.stringify(path));
          if (j < segs.length - 1 && n !== undefined) path.push(n - 1);
        }
        if (isArray) {
          const k = JSON.stringify(path);
          const n = (arrayCounts.get(k) ?? 0) + 1;
          arrayCounts.set(k, n);
          path.push(n - 1);
        }
        table = path;
        this.record(table, lineNo);
        this.byLine.set(lineNo, table);
        continue;
      }
      const parsed = parseKey(trimmed);
      if (!parsed || trimmed[parsed.end] !== '=') continue;
      const path = [...table, ...parsed.segs];
      this.record(path, lineNo);
      this.byLine.set(lineNo, path);
      const r = scanValue(trimmed.slice(parsed.end + 1), 0);
      depth = r.depth; inMultiline = r.multiline;
    }
  }

  private record(path: Seg[], line: number): void {
    const k = JSON.stringify(path);
    if (!this.byPath.has(k)) this.byPath.set(k, line);
  }

  /**
   * The line of `path`; else of its first recorded descendant ([a.b] declares a); else of its
   * nearest recorded ancestor; 0 when nothing matches.
   */
  lineOf(path: readonly Seg[]): number {
    const exact = this.byPath.get(JSON.stringify(path));
    if (exact !== undefined) return exact;
    const prefix = JSON.stringify(path).slice(0, -1) + ',';
    let first = 0;
    for (const [k, line] of this.byPath) if (k.startsWith(prefix) && (first === 0 || line < first)) first = line;
    if (first) return first;
    for (let n = path.length - 1; n > 0; n--) {
      const line = this.byPath.get(JSON.stringify(path.slice(0, n)));
      if (line !== undefined) return line;
    }
    return 0;
  }

  lineOfDisplay(key: string): number {
    for (const [k, line] of this.byPath) if (displayKey(JSON.parse(k) as Seg[]) === key) return line;
    return 0;
  }

  /** The key written on `line`; for a line the scanner skipped (say, after a broken value), a best guess from its text. */
  keyAtLine(line: number): Seg[] | undefined {
    const known = this.byLine.get(line);
    if (known) return known;
    const text = this.lines[line - 1];
    const table = this.tableAt[line - 1];
    if (text === undefined || table === undefined) return undefined;
    const k = parseKey(text);
    if (k && text[k.end] === '=') return [...table, ...k.segs];
    return table.length ? table : undefined;
  }
}

/** Parses a (dotted, possibly quoted) key at the start of `s`; `end` is the index after it and its trailing spaces. */
function parseKey(s: string): { segs: string[]; end: number } | null {
  const segs: string[] = [];
  let i = 0;
  const skip = () => { while (s[i] === ' ' || s[i] === '\t') i++; };
  skip();
  for (;;) {
    if (s[i] === '"') {
      let out = '';
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) {
          const c = s[i + 1]!;
          out += c === 'n' ? '\n' : c === 't' ? '\t' : c;
          i += 2;
        } else out += s[i++];
      }
      if (s[i] !== '"') return null;
      i++;
      segs.push(out);
    } else if (s[i] === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) return null;
      segs.push(s.slice(i + 1, end));
      i = end + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(s.slice(i));
      if (!m) return null;
      segs.push(m[0]);
      i += m[0].length;
    }
    skip();
    if (s[i] !== '.') break;
    i++;
    skip();
  }
  return { segs, end: i };
}

/** Follows a value's text to see whether it leaves a multi-line string or bracket open. */
function scanValue(s: string, depth: number): { depth: number; multiline: string | null } {
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '#') break;
    if (c === '"' || c === "'") {
      const triple = s.startsWith(c.repeat(3), i);
      if (triple) {
        const end = s.indexOf(c.repeat(3), i + 3);
        if (end < 0) return { depth, multiline: c.repeat(3) };
        i = end + 3;
        continue;
      }
      i++;
      while (i < s.length && s[i] !== c) i += c === '"' && s[i] === '\\' ? 2 : 1;
      i++;
      continue;
    }
    if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth = Math.max(0, depth - 1);
    i++;
  }
  return { depth, multiline: null };
}
