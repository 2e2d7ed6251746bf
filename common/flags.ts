// A program's flags as one table: each flag's name, how its text is read, its default and its help.
// The table gives both the --help text and the parsed values, so the two cannot drift apart; the
// programs' config files (app/config.ts, render/config.ts) turn the values into a config object and
// check what spans several flags. Bad values throw a UsageError that names the flag. No runtime:
// the entry files hand in argv and the environment.

export class UsageError extends Error {}

export type Env = Record<string, string | undefined>;

export interface Flag<T> {
  /** The value's placeholder in the help (`N`, `DUR`, `FILE`); a flag without one is a switch. */
  value?: string;
  /** What it does, in words; the default is added unless `shown` is null. */
  help: string;
  /** Reads the flag's text; throws UsageError naming the flag. */
  parse?: (text: string, flag: string) => T;
  /** The value when the flag is absent (may depend on the environment). */
  default?: T | ((env: Env) => T);
  /** How the default reads in the help; null leaves it out (the help says it). */
  shown?: string | null;
  /** Repeatable: the values in order. */
  multiple?: boolean;
}

export type FlagTable = Record<string, Flag<unknown>>;

type ValueOf<F> = F extends { multiple: true; parse: (text: string, flag: string) => infer T }
  ? T[] | undefined
  : F extends { parse: (text: string, flag: string) => infer T }
    ? F extends { default: unknown } ? T : T | undefined
    : F extends { value: string } ? (F extends { default: unknown } ? string : string | undefined) : boolean;

export type FlagValues<T extends FlagTable> = { [K in keyof T]: ValueOf<T[K]> };

/** Checks a table's types where it is written, keeping each flag's own. */
export function flagTable<T extends FlagTable>(table: T): T {
  return table;
}

/** Reads argv (`--name value`, `--name=value`, switches) against the table. */
export function readFlags<T extends FlagTable>(argv: string[], table: T, env: Env = {}): FlagValues<T> {
  const texts = new Map<string, string[]>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const flag = Object.hasOwn(table, name) ? table[name] : undefined;
    if (!flag) throw new UsageError(`unknown option --${name}`);
    if (!flag.value) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      switches.add(name);
      continue;
    }
    const text = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (text === undefined || (eq === -1 && text.startsWith('--'))) throw new UsageError(`--${name} needs a value (${flag.value})`);
    // A flag given twice takes its last value, unless it is repeatable.
    texts.set(name, flag.multiple ? [...(texts.get(name) ?? []), text] : [text]);
  }
  const values: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(table)) {
    if (!flag.value) {
      values[name] = switches.has(name);
      continue;
    }
    const given = texts.get(name);
    const parse = flag.parse ?? ((text: string) => text);
    if (given) values[name] = flag.multiple ? given.map((text) => parse(text, name)) : parse(given[0], name);
    else values[name] = typeof flag.default === 'function' ? (flag.default as (env: Env) => unknown)(env) : flag.default;
  }
  return values as FlagValues<T>;
}

const COLUMN = 22;

/** The help text: `usage`, a line per flag with its default, then `notes`. */
export function usageOf(usage: string, table: FlagTable, notes = ''): string {
  const lines = Object.entries(table).map(([name, flag]) => {
    const head = `  --${name}${flag.value ? ` ${flag.value}` : ''}`;
    const shown = flag.shown === undefined ? (typeof flag.default === 'function' || flag.default === undefined ? null : String(flag.default)) : flag.shown;
    const text = `${flag.help}${shown === null ? '' : ` (default ${shown})`}`;
    const words = text.split(' ');
    const wrapped: string[] = [];
    let line = '';
    for (const word of words) {
      if (line && line.length + 1 + word.length > 98 - COLUMN) {
        wrapped.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    wrapped.push(line);
    const first = head.length < COLUMN ? `${head.padEnd(COLUMN)}${wrapped[0]}` : `${head}\n${' '.repeat(COLUMN)}${wrapped[0]}`;
    return [first, ...wrapped.slice(1).map((rest) => ' '.repeat(COLUMN) + rest)].join('\n');
  });
  return `${usage}\n\n${lines.join('\n')}${notes ? `\n\n${notes}` : ''}`;
}

export function parsePort(text: string, flag: string): number {
  const port = Number(text);
  if (text.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--${flag} must be a port number 0-65535, got "${text}"`);
  return port;
}

/** A whole number from 1 to `max` (or any number above 0 with `integer: false`). */
export function positive({ integer = true, max = Number.MAX_SAFE_INTEGER } = {}) {
  return (text: string, flag: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > max || (integer && !Number.isInteger(value))) {
      throw new UsageError(`--${flag} must be a ${integer ? 'whole ' : ''}number from 1 to ${max}, got "${text}"`);
    }
    return value;
  };
}

/** One of `choices`, as written. */
export function choice<T extends string>(...choices: readonly T[]) {
  return (text: string, flag: string): T => {
    if (!(choices as readonly string[]).includes(text)) throw new UsageError(`--${flag} must be ${choices.join(' or ')}, got "${text}"`);
    return text as T;
  };
}

/** A whole number from 0 to `max`. */
export function count(max: number) {
  return (text: string, flag: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isInteger(value) || value < 0 || value > max) {
      throw new UsageError(`--${flag} must be a whole number from 0 to ${max}, got "${text}"`);
    }
    return value;
  };
}

/** A number within [min, max]. */
export function between(min: number, max: number) {
  return (text: string, flag: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !(value >= min && value <= max)) throw new UsageError(`--${flag} must be a number from ${min} to ${max}, got "${text}"`);
    return value;
  };
}

/** `auto` is one per core; otherwise a whole number from 1 to `max`. */
export function processCount(cores: number, max: number) {
  return (text: string, flag: string): number => {
    if (text === 'auto') return Math.max(1, cores);
    const n = Number(text);
    if (text.trim() === '' || !Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${flag} must be auto or a whole number from 1 to ${max}, got "${text}"`);
    return n;
  };
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000 };

/** "1500ms", "3s", "10min" or a plain number of milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|min)?$/.exec(text.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] ?? 'ms'] : NaN;
  if (!(ms >= 1)) throw new UsageError(`--${flag} must be a duration such as 500ms, 3s or 10min, got "${text}"`);
  return Math.round(ms);
}

export function parseWsUrl(text: string, flag: string): string {
  try {
    const url = new URL(text);
    if (url.protocol === 'ws:' || url.protocol === 'wss:') return url.toString().replace(/\/$/, '');
  } catch {
    // reported below
  }
  throw new UsageError(`--${flag} must be a ws:// or wss:// URL, got "${text}"`);
}

/** A shared secret travels as a bearer token: long enough to guess at, in the token alphabet. */
export function checkSecret(secret: string): void {
  if (!/^[A-Za-z0-9._~+/-]{16,}$/.test(secret)) {
    throw new UsageError('the shared secret must be at least 16 characters of A-Z a-z 0-9 . _ ~ + / -');
  }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
