// Typed tunables with FreeBSD-style names (F-Stack's [freebsd.sysctl]). Each module defines
// its own keys at start-up; the config file and `tstack sysctl` set them by name.

export type SysctlValue = number | string | boolean;

export interface SysctlDef<T extends SysctlValue = SysctlValue> {
  name: string;
  type: 'int' | 'bool' | 'string';
  default: T;
  description: string;
  min?: number;
  max?: number;
  /** For strings: the allowed values. */
  choices?: readonly string[];
  readonly?: boolean;
}

export class SysctlError extends Error {
  constructor(message: string, readonly key: string) { super(message); this.name = 'SysctlError'; }
}

/**
 * A typed handle on one tunable: `value` is always the current setting (kept by watch()), so a
 * module spells the name once, where it defines it, and reads a typed field afterwards.
 */
export class SysctlHandle<T extends SysctlValue> {
  value: T;
  constructor(readonly name: string, value: T) { this.value = value; }
}

export class Sysctl {
  private readonly defs = new Map<string, SysctlDef>();
  private readonly values = new Map<string, SysctlValue>();
  private readonly watchers = new Map<string, ((v: SysctlValue) => void)[]>();

  /** Defines a tunable (once per registry: several stacks may share one) and returns a typed handle on it. */
  define<T extends SysctlValue>(def: SysctlDef<T>): SysctlHandle<T> {
    if (!this.defs.has(def.name)) {
      this.defs.set(def.name, def);
      this.values.set(def.name, def.default);
    }
    return this.handle<T>(def.name);
  }

  /** A typed handle on a defined tunable (throws SysctlError for an unknown name). */
  handle<T extends SysctlValue>(name: string): SysctlHandle<T> {
    const h = new SysctlHandle<T>(name, this.get(name) as T);
    this.watch(name, (v) => { h.value = v as T; });
    return h;
  }

  has(name: string): boolean { return this.defs.has(name); }

  get(name: string): SysctlValue {
    const v = this.values.get(name);
    if (v === undefined) throw new SysctlError(`unknown sysctl '${name}'`, name);
    return v;
  }
  int(name: string): number { return this.get(name) as number; }
  bool(name: string): boolean { return this.get(name) as boolean; }
  str(name: string): string { return this.get(name) as string; }

  /** Validates and sets; throws SysctlError naming the key on a bad value. Strings are coerced ("1", "true"). */
  set(name: string, raw: SysctlValue, force = false): SysctlValue {
    const def = this.defs.get(name);
    if (!def) throw new SysctlError(`unknown sysctl '${name}'`, name);
    if (def.readonly && !force) throw new SysctlError(`sysctl '${name}' is read-only`, name);
    const v = coerce(def, raw);
    this.values.set(name, v);
    for (const w of this.watchers.get(name) ?? []) w(v);
    return v;
  }

  /** Calls `fn` now and on every change; modules cache hot values this way. */
  watch(name: string, fn: (v: SysctlValue) => void): void {
    const list = this.watchers.get(name) ?? [];
    list.push(fn);
    this.watchers.set(name, list);
    fn(this.get(name));
  }

  list(prefix = ''): { name: string; value: SysctlValue; def: SysctlDef }[] {
    return [...this.defs.values()].filter((d) => d.name.startsWith(prefix)).sort((a, b) => a.name.localeCompare(b.name))
      .map((def) => ({ name: def.name, value: this.values.get(def.name)!, def }));
  }
}

function coerce(def: SysctlDef, raw: SysctlValue): SysctlValue {
  const bad = (why: string) => new SysctlError(`sysctl '${def.name}': ${why} (got ${JSON.stringify(raw)})`, def.name);
  switch (def.type) {
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'boolean' ? Number(raw) : /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isInteger(n)) throw bad('expected an integer');
      if (def.min !== undefined && n < def.min) throw bad(`must be >= ${def.min}`);
      if (def.max !== undefined && n > def.max) throw bad(`must be <= ${def.max}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 1 || raw === '1' || raw === 'true' || raw === 'on') return true;
      if (raw === 0 || raw === '0' || raw === 'false' || raw === 'off') return false;
      throw bad('expected a boolean (0/1/true/false)');
    }
    case 'string': {
      if (typeof raw !== 'string') throw bad('expected a string');
      if (def.choices && !def.choices.includes(raw)) throw bad(`must be one of ${def.choices.join(', ')}`);
      return raw;
    }
  }
}
