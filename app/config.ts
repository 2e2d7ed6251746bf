// The dispatcher's command line: its flags as one table (name, parse, default, help) from which
// both --help and the typed config object come, and the checks that span several flags.

import { availableParallelism } from 'node:os';
import { DEFAULT_DISPATCHER_PORT, MAX_HOPS_LIMIT, SECRET_ENV } from '../common/protocol.ts';
import {
  UsageError, between, count, flagTable, isLoopback, parseDuration, parsePort, positive, processCount, readFlags, usageOf, type Env,
} from '../common/flags.ts';
import { LOG_FORMAT_FLAG, type LogFormat } from '../common/node/log.ts';
import { HOME_ENV, defaultSecretFile, loadOrCreateSecret, resolveSecret } from '../common/node/secret-file.ts';
import { BURST_SECONDS, DEFAULT_POLICY, DEFAULT_TIMINGS, type LeaseTimings, type Policy } from './dispatcher.ts';
import { DEFAULT_MAX_HOPS, linkUrl } from './flock/flock.ts';
import { isPostgresUrl } from './open-store.ts';
import { checkAllowedOrigin } from './origin.ts';

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
  /** Dispatchers to keep a link to (ws:// URLs of their /v1/link). */
  links: string[];
  /** How many links a flock message may travel. */
  maxHops: number;
  /** Raise `message` for every flock message, never `evt.<code>`. */
  noEvents: boolean;
  /** Serve /metrics and count what it shows. */
  metrics: boolean;
  logFormat: LogFormat;
}

/** This machine's cores: what --workers auto means. */
export const CORES = availableParallelism();

function databaseUrl(env: Env): string | null {
  const text = env.DATABASE_URL;
  if (!text) return null;
  if (!isPostgresUrl(text)) throw new UsageError(`DATABASE_URL must be a postgres:// or postgresql:// URL, got "${text.split('@').pop()}"`);
  return text;
}

function allowedOrigin(text: string, flag: string): string {
  const origin = checkAllowedOrigin(text);
  if (origin === null) throw new UsageError(`--${flag} must be "*", "null" or scheme://host[:port] with no path, got "${text}"`);
  return origin;
}

function link(text: string, flag: string): string {
  const url = linkUrl(text);
  if (url === null) throw new UsageError(`--${flag} must be a dispatcher's ws:// or wss:// URL (ws://host:port), got "${text}"`);
  return url;
}

export const DISPATCHER_FLAGS = flagTable({
  port: { value: 'N', help: 'port to listen on; 0 picks a free one', parse: parsePort, default: DEFAULT_DISPATCHER_PORT },
  host: { value: 'ADDR', help: 'address to listen on; 0.0.0.0 serves other machines', default: '127.0.0.1' },
  local: { help: 'listen on loopback only (the default; conflicts with a non-loopback --host)' },
  db: {
    value: 'FILE|URL',
    help: 'where the leases are: a SQLite file (:memory: keeps none), or postgres://user:pass@host:5432/db to share them with every dispatcher pointed at the same database',
    default: (env: Env) => databaseUrl(env) ?? 'dispatcher.db',
    shown: 'DATABASE_URL when it is set, else dispatcher.db',
  },
  heartbeat: { value: 'DUR', help: 'heartbeat interval told to render servers', parse: parseDuration, default: DEFAULT_TIMINGS.heartbeatMs, shown: `${DEFAULT_TIMINGS.heartbeatMs}ms` },
  ttl: { value: 'DUR', help: 'lease lifetime after each heartbeat', parse: parseDuration, default: DEFAULT_TIMINGS.ttlMs, shown: `${DEFAULT_TIMINGS.ttlMs}ms` },
  'claim-timeout': {
    value: 'DUR', help: 'how long a handed-out server waits for its client', parse: parseDuration, default: DEFAULT_TIMINGS.claimMs, shown: `${DEFAULT_TIMINGS.claimMs}ms`,
  },
  'min-health': {
    value: 'R', help: 'hand out only servers that can reach this share of their target fps, 0-1', parse: between(0, 1), default: DEFAULT_POLICY.minHealth,
  },
  grace: {
    value: 'DUR', help: "how long a page's session may have its server back after leaving it", parse: parseDuration, default: DEFAULT_POLICY.graceMs,
    shown: `${DEFAULT_POLICY.graceMs}ms`,
  },
  'max-queue': { value: 'N', help: 'how many pages may wait for a server at once', parse: positive({ max: 1_000_000 }), default: DEFAULT_POLICY.maxQueue },
  'max-waiting-per-address': {
    value: 'N', help: 'how many of those places pages from one address (an IPv6 /64) may hold', parse: positive({ max: 1_000_000 }),
    shown: 'half of --max-queue',
  },
  'rate-limit': {
    value: 'N', help: `get_server_url requests a second from one address, with bursts of ${BURST_SECONDS}×N; 0 turns the limit off`, parse: count(1_000_000),
    default: DEFAULT_POLICY.rateLimit,
  },
  'trust-proxy': { help: 'behind a reverse proxy: count limits by the last X-Forwarded-For hop' },
  'allow-origin': {
    value: 'O', multiple: true, parse: allowedOrigin,
    help: 'a web origin whose pages may use /stream, e.g. https://example.com (repeatable; "*" for any page). Default: pages opened from disk (null) and pages on this machine (http://localhost:*, http://127.0.0.1:*)',
    shown: null,
  },
  retention: {
    value: 'DUR', help: 'how long servers gone offline or expired stay listed', parse: parseDuration, default: DEFAULT_POLICY.retentionMs,
    shown: `${DEFAULT_POLICY.retentionMs / 60_000}min`,
  },
  workers: {
    value: 'N|auto', help: `dispatcher processes sharing the port, restarted if they die (auto: one per core, ${CORES} here)`, parse: processCount(CORES, 256),
    default: 1,
  },
  link: {
    value: 'URL', multiple: true, parse: link,
    help: 'another dispatcher to link to, ws://host:port (repeatable): messages travel the flock and full sites borrow render servers; the link is dialled again whenever it drops',
    shown: null,
  },
  'max-hops': { value: 'N', help: 'how many links a flock message may travel', parse: positive({ max: MAX_HOPS_LIMIT }), default: DEFAULT_MAX_HOPS },
  'message-rate': {
    value: 'N', help: `messages a second one page may send to the flock, with bursts of ${BURST_SECONDS}×N; 0 turns the limit off`, parse: count(1_000_000),
    default: DEFAULT_POLICY.messageRate,
  },
  'no-events': { help: 'raise message for every flock message, never evt.<code> (for programs embedding the dispatcher)' },
  secret: { value: 'S', help: `shared secret render servers and operators present and linked dispatchers prove they know (or the ${SECRET_ENV} environment variable); by default the secret file's`, shown: null },
  'secret-file': {
    value: 'FILE',
    help: `where the secret is kept, made (mode 0600) if missing: render servers of the same user on this machine read it with no flag`,
    default: (env: Env) => defaultSecretFile(env),
    shown: `$${HOME_ENV}/secret or ~/.render-dispatch/secret`,
  },
  verbose: { help: 'also log every hand-out, every none and every client report' },
  'log-format': LOG_FORMAT_FLAG,
  'no-metrics': { help: 'serve no /metrics and count nothing for it' },
  help: { help: 'print this and exit' },
});

export const DISPATCHER_USAGE = usageOf('usage: bun run dispatcher [options]', DISPATCHER_FLAGS, 'Durations are milliseconds, or a number with ms, s or min (3s, 10min).');

/** Returns null when --help was asked for; throws UsageError on a bad flag. */
export function parseDispatcherArgs(argv: string[], env: Env = process.env, loadSecret: (file: string) => string = loadOrCreateSecret): DispatcherConfig | null {
  const v = readFlags(argv, DISPATCHER_FLAGS, env);
  if (v.help) return null;
  if (v.local && !isLoopback(v.host)) throw new UsageError(`--local listens on loopback only; it conflicts with --host ${v.host}`);
  const timings: LeaseTimings = { heartbeatMs: v.heartbeat, ttlMs: v.ttl, claimMs: v['claim-timeout'] };
  if (timings.ttlMs <= timings.heartbeatMs) {
    throw new UsageError(`--ttl (${timings.ttlMs}ms) must be longer than --heartbeat (${timings.heartbeatMs}ms), or every lease lapses between beats`);
  }
  const { secret, source } = resolveSecret(v.secret, env[SECRET_ENV], v['secret-file'], loadSecret);
  return {
    host: v.host,
    port: v.port,
    db: v.db,
    timings,
    policy: {
      minHealth: v['min-health'],
      graceMs: v.grace,
      maxQueue: v['max-queue'],
      maxWaitingPerAddress: v['max-waiting-per-address'] ?? Math.ceil(v['max-queue'] / 2),
      rateLimit: v['rate-limit'],
      retentionMs: v.retention,
      messageRate: v['message-rate'],
    },
    secret,
    secretSource: source,
    allowOrigins: v['allow-origin'] ?? null,
    trustProxy: v['trust-proxy'],
    verbose: v.verbose,
    workers: v.workers,
    links: v.link ?? [],
    maxHops: v['max-hops'],
    noEvents: v['no-events'],
    metrics: !v['no-metrics'],
    logFormat: v['log-format'],
  };
}
