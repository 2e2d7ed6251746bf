// The dispatcher's command line, turned into one typed config object.

import { DEFAULT_DISPATCHER_PORT, SECRET_ENV } from '../common/protocol.ts';
import { UsageError, isLoopback, parseDuration, parseFlags, parsePort, parsePositive, parseRatio } from '../common/cli.ts';
import { HOME_ENV, defaultSecretFile, loadOrCreateSecret, resolveSecret } from '../common/secret-file.ts';
import { BURST_SECONDS, DEFAULT_POLICY, DEFAULT_TIMINGS, type LeaseTimings, type Policy } from './dispatcher.ts';
import { isPostgresUrl } from './open-store.ts';
import { checkAllowedOrigin } from './origin.ts';
import { parseProcessCount } from '../common/supervisor.ts';
import { CORES } from './workers.ts';

export interface DispatcherConfig {
  host: string;
  port: number;
  db: string;
  timings: LeaseTimings;
  policy: Policy;
  /** The shared secret render servers and operators present. */
  secret: string;
  /** Where it came from, for the start-up line (never the secret itself). */
  secretSource: string;
  /** Origins allowed on /stream; null for the default (pages from disk and from this machine). */
  allowOrigins: string[] | null;
  /** Count limits by the last hop of X-Forwarded-For instead of the connection's address. */
  trustProxy: boolean;
  /** Print a line per hand-out and client report too. */
  verbose: boolean;
  /** Dispatcher processes sharing the port (1: this process serves, as without the flag). */
  workers: number;
}

export const DISPATCHER_USAGE = `usage: bun run dispatcher [options]

  --port N            port to listen on (default ${DEFAULT_DISPATCHER_PORT}; 0 picks a free one)
  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 serves other machines)
  --local             listen on loopback only (the default; conflicts with a non-loopback --host)
  --db FILE|URL       where the leases are: a SQLite file (default dispatcher.db; :memory:
                      keeps none), or postgres://user:pass@host:5432/db to share them with
                      every dispatcher pointed at the same database (default: DATABASE_URL
                      when it is set)
  --heartbeat DUR     heartbeat interval told to render servers (default ${DEFAULT_TIMINGS.heartbeatMs}ms)
  --ttl DUR           lease lifetime after each heartbeat (default ${DEFAULT_TIMINGS.ttlMs}ms)
  --claim-timeout DUR how long a handed-out server waits for its client (default ${DEFAULT_TIMINGS.claimMs}ms)
  --min-health R      hand out only servers that can reach this share of their target fps,
                      0-1 (default ${DEFAULT_POLICY.minHealth})
  --grace DUR         how long a page's session may have its server back after leaving it
                      (default ${DEFAULT_POLICY.graceMs}ms)
  --max-queue N       how many pages may wait for a server at once (default ${DEFAULT_POLICY.maxQueue})
  --max-waiting-per-address N
                      how many of those places pages from one address (an IPv6 /64) may hold
                      (default: half of --max-queue)
  --rate-limit N      get_server_url requests a second from one address, with bursts of
                      ${BURST_SECONDS}×N (default ${DEFAULT_POLICY.rateLimit}; 0 turns the limit off)
  --trust-proxy       behind a reverse proxy: count limits by the last X-Forwarded-For hop
  --allow-origin O    a web origin whose pages may use /stream, e.g. https://example.com
                      (repeatable; "*" for any page). Default: pages opened from disk (null)
                      and pages on this machine (http://localhost:*, http://127.0.0.1:*)
  --retention DUR     how long servers gone offline or expired stay listed (default ${DEFAULT_POLICY.retentionMs / 60_000}min)
  --secret S          shared secret render servers and operators must present (or the
                      ${SECRET_ENV} environment variable); by default the secret file's
  --secret-file FILE  where the secret is kept, made (mode 0600) if missing (default
                      $${HOME_ENV}/secret or ~/.render-dispatch/secret): render servers of
                      the same user on this machine read it with no flag
  --workers N|auto    dispatcher processes sharing the port, restarted if they die (auto: one
                      per core, ${CORES} here; default 1)
  --verbose           also log every hand-out and client report
  --help              print this and exit

Durations are milliseconds, or a number with ms, s or min (3s, 10min).`;

function parseCount(flag: string, text: string, max: number): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new UsageError(`--${flag} must be a whole number from 0 to ${max}, got "${text}"`);
  }
  return value;
}

function parseWorkers(text: string): number {
  const n = parseProcessCount(text, CORES);
  if (n === null) throw new UsageError(`--workers must be auto or a whole number from 1 to 256, got "${text}"`);
  return n;
}

function databaseUrl(text: string | undefined): string | null {
  if (!text) return null;
  if (!isPostgresUrl(text)) throw new UsageError(`DATABASE_URL must be a postgres:// or postgresql:// URL, got "${text.split('@').pop()}"`);
  return text;
}

/** Returns null when --help was asked for; throws UsageError on a bad flag. */
export function parseDispatcherArgs(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  loadSecret: (file: string) => string = loadOrCreateSecret,
): DispatcherConfig | null {
  const v = parseFlags(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    local: { type: 'boolean' },
    db: { type: 'string' },
    heartbeat: { type: 'string' },
    ttl: { type: 'string' },
    'claim-timeout': { type: 'string' },
    'min-health': { type: 'string' },
    grace: { type: 'string' },
    'max-queue': { type: 'string' },
    'max-waiting-per-address': { type: 'string' },
    'rate-limit': { type: 'string' },
    'trust-proxy': { type: 'boolean' },
    'allow-origin': { type: 'string', multiple: true },
    retention: { type: 'string' },
    secret: { type: 'string' },
    'secret-file': { type: 'string' },
    verbose: { type: 'boolean' },
    workers: { type: 'string' },
    help: { type: 'boolean' },
  });
  if (v.help) return null;
  const host = v.host ?? '127.0.0.1';
  if (v.local && !isLoopback(host)) throw new UsageError(`--local listens on loopback only; it conflicts with --host ${host}`);
  const timings: LeaseTimings = {
    heartbeatMs: v.heartbeat ? parseDuration('heartbeat', v.heartbeat) : DEFAULT_TIMINGS.heartbeatMs,
    ttlMs: v.ttl ? parseDuration('ttl', v.ttl) : DEFAULT_TIMINGS.ttlMs,
    claimMs: v['claim-timeout'] ? parseDuration('claim-timeout', v['claim-timeout']) : DEFAULT_TIMINGS.claimMs,
  };
  if (timings.ttlMs <= timings.heartbeatMs) {
    throw new UsageError(`--ttl (${timings.ttlMs}ms) must be longer than --heartbeat (${timings.heartbeatMs}ms), or every lease lapses between beats`);
  }
  const maxQueue = v['max-queue'] ? parsePositive('max-queue', v['max-queue'], { max: 1_000_000 }) : DEFAULT_POLICY.maxQueue;
  const allowOrigins = v['allow-origin']?.map((text) => {
    const origin = checkAllowedOrigin(text);
    if (origin === null) throw new UsageError(`--allow-origin must be "*", "null" or scheme://host[:port] with no path, got "${text}"`);
    return origin;
  });
  const secretFile = v['secret-file'] ?? defaultSecretFile(env);
  const { secret, source } = resolveSecret(v.secret, env[SECRET_ENV], secretFile, loadSecret);
  return {
    host,
    port: v.port ? parsePort('port', v.port) : DEFAULT_DISPATCHER_PORT,
    db: v.db ?? databaseUrl(env.DATABASE_URL) ?? 'dispatcher.db',
    timings,
    policy: {
      minHealth: v['min-health'] ? parseRatio('min-health', v['min-health']) : DEFAULT_POLICY.minHealth,
      graceMs: v.grace ? parseDuration('grace', v.grace) : DEFAULT_POLICY.graceMs,
      maxQueue,
      maxWaitingPerAddress: v['max-waiting-per-address']
        ? parsePositive('max-waiting-per-address', v['max-waiting-per-address'], { max: 1_000_000 })
        : Math.ceil(maxQueue / 2),
      rateLimit: v['rate-limit'] ? parseCount('rate-limit', v['rate-limit'], 1_000_000) : DEFAULT_POLICY.rateLimit,
      retentionMs: v.retention ? parseDuration('retention', v.retention) : DEFAULT_POLICY.retentionMs,
    },
    secret,
    secretSource: source,
    allowOrigins: allowOrigins ?? null,
    trustProxy: v['trust-proxy'] ?? false,
    verbose: v.verbose ?? false,
    workers: v.workers ? parseWorkers(v.workers) : 1,
  };
}
