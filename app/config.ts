// The dispatcher's command line, turned into one typed config object.

import { DEFAULT_DISPATCHER_PORT, SECRET_ENV } from '../common/protocol.ts';
import { UsageError, checkSecret, isLoopback, parseDuration, parseFlags, parsePort, parsePositive, parseRatio } from '../common/cli.ts';
import { DEFAULT_POLICY, DEFAULT_TIMINGS, type LeaseTimings, type Policy } from './dispatcher.ts';

export interface DispatcherConfig {
  host: string;
  port: number;
  db: string;
  timings: LeaseTimings;
  policy: Policy;
  /** Shared secret for registering and operator routes; required off loopback. */
  secret: string | null;
  /** Print a line per hand-out and client report too. */
  verbose: boolean;
}


export const DISPATCHER_USAGE = `usage: bun run dispatcher [options]

  --port N            port to listen on (default ${DEFAULT_DISPATCHER_PORT}; 0 picks a free one)
  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 serves other machines)
  --local             listen on loopback only (the default; conflicts with a non-loopback --host)
  --db FILE           SQLite file holding the leases (default dispatcher.db; :memory: keeps none)
  --heartbeat DUR     heartbeat interval told to render servers (default ${DEFAULT_TIMINGS.heartbeatMs}ms)
  --ttl DUR           lease lifetime after each heartbeat (default ${DEFAULT_TIMINGS.ttlMs}ms)
  --claim-timeout DUR how long a handed-out server waits for its client (default ${DEFAULT_TIMINGS.claimMs}ms)
  --min-health R      hand out only servers that can reach this share of their target fps,
                      0-1 (default ${DEFAULT_POLICY.minHealth})
  --grace DUR         how long a page's session may have its server back after leaving it
                      (default ${DEFAULT_POLICY.graceMs}ms)
  --max-queue N       how many pages may wait for a server at once (default ${DEFAULT_POLICY.maxQueue})
  --secret S          shared secret render servers and operators must present (or the
                      ${SECRET_ENV} environment variable); required off loopback
  --verbose           also log every hand-out and client report
  --help              print this and exit

Durations are milliseconds, or a number with ms or s (3s).`;

/** Returns null when --help was asked for; throws UsageError on a bad flag. */
export function parseDispatcherArgs(argv: string[], env: Record<string, string | undefined> = process.env): DispatcherConfig | null {
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
    secret: { type: 'string' },
    verbose: { type: 'boolean' },
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
  const secret = v.secret ?? env[SECRET_ENV] ?? null;
  if (secret !== null) checkSecret(secret);
  if (!isLoopback(host) && secret === null) {
    throw new UsageError(`listening on ${host} needs a shared secret (--secret or ${SECRET_ENV}), or anyone could register a render server`);
  }
  return {
    host,
    port: v.port ? parsePort('port', v.port) : DEFAULT_DISPATCHER_PORT,
    db: v.db ?? 'dispatcher.db',
    timings,
    policy: {
      minHealth: v['min-health'] ? parseRatio('min-health', v['min-health']) : DEFAULT_POLICY.minHealth,
      graceMs: v.grace ? parseDuration('grace', v.grace) : DEFAULT_POLICY.graceMs,
      maxQueue: v['max-queue'] ? parsePositive('max-queue', v['max-queue'], { max: 1_000_000 }) : DEFAULT_POLICY.maxQueue,
    },
    secret,
    verbose: v.verbose ?? false,
  };
}
