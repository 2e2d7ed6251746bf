// Flag parsing helpers shared by the programs' entry files: each turns a bad value into a
// message that names the flag, and the entry prints it with the usage text and exits 2.

import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

type FlagSpec = NonNullable<ParseArgsConfig['options']>;

/** node:util's parseArgs in strict mode, its errors turned into UsageErrors. */
export function parseFlags<O extends FlagSpec>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * An entry file's first step: the config from process.argv, or the usage on stdout and exit 0 for
 * --help (parse returns null), or the message and usage on stderr and exit 2 for a bad flag.
 */
export function configFromArgv<C>(program: string, usage: string, parse: (argv: string[]) => C | null): C {
  let config: C | null;
  try {
    config = parse(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${program}: ${error.message}\n\n${usage}`);
    process.exit(2);
  }
  if (config === null) {
    console.log(usage);
    process.exit(0);
  }
  return config;
}

export function parsePort(flag: string, text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--${flag} must be a port number 0-65535, got "${text}"`);
  return port;
}

export function parsePositive(flag: string, text: string, { integer = true, max = Number.MAX_SAFE_INTEGER } = {}): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > max || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${flag} must be a ${integer ? 'whole ' : ''}number from 1 to ${max}, got "${text}"`);
  }
  return value;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000 };

/** "1500ms", "3s", "10min" or a plain number of milliseconds. */
export function parseDuration(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|min)?$/.exec(text.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] ?? 'ms'] : NaN;
  if (!(ms >= 1)) throw new UsageError(`--${flag} must be a duration such as 500ms, 3s or 10min, got "${text}"`);
  return Math.round(ms);
}

export function parseWsUrl(flag: string, text: string): string {
  try {
    const url = new URL(text);
    if (url.protocol === 'ws:' || url.protocol === 'wss:') return url.toString().replace(/\/$/, '');
  } catch {
    // reported below
  }
  throw new UsageError(`--${flag} must be a ws:// or wss:// URL, got "${text}"`);
}

/** A number from 0 to 1. */
export function parseRatio(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value <= 1)) throw new UsageError(`--${flag} must be a number from 0 to 1, got "${text}"`);
  return value;
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
