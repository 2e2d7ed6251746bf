// The dispatcher's command line, turned into one typed config object.

import { DEFAULT_DISPATCHER_PORT } from '../common/protocol.ts';
import { UsageError, isLoopback, parseDuration, parseFlags, parsePort } from '../common/cli.ts';
import { DEFAULT_TIMINGS, type LeaseTimings } from './dispatcher.ts';

export interface DispatcherConfig {
  host: string;
  port: number;
  db: string;
  timings: LeaseTimings;
}

export const DISPATCHER_USAGE = `usage: bun run dispatcher [options]

  --port N            port to listen on (default ${DEFAULT_DISPATCHER_PORT}; 0 picks a free one)
  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 serves other machines)
  --local             listen on loopback only (the default; conflicts with a non-loopback --host)
  --db FILE           SQLite file holding the leases (default dispatcher.db; :memory: keeps none)
  --heartbeat DUR     heartbeat interval told to render servers (default ${DEFAULT_TIMINGS.heartbeatMs}ms)
  --ttl DUR           lease lifetime after each heartbeat (default ${DEFAULT_TIMINGS.ttlMs}ms)
  --claim-timeout DUR how long a handed-out server waits for its client (default ${DEFAULT_TIMINGS.claimMs}ms)
  --help              print this and exit

Durations are milliseconds, or a number with ms or s (3s).`;

/** Returns null when --help was asked for; throws UsageError on a bad flag. */
export function parseDispatcherArgs(argv: string[]): DispatcherConfig | null {
  const v = parseFlags(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    local: { type: 'boolean' },
    db: { type: 'string' },
    heartbeat: { type: 'string' },
    ttl: { type: 'string' },
    'claim-timeout': { type: 'string' },
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
  return {
    host,
    port: v.port ? parsePort('port', v.port) : DEFAULT_DISPATCHER_PORT,
    db: v.db ?? 'dispatcher.db',
    timings,
  };
}
