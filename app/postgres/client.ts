// The PostgreSQL connection of one dispatcher (Bun's built-in client: a pool, transactions, LISTEN)
// and the one way its statements read the time. Every statement's first parameter is the time
// from an injected clock, or null for the database's own: `NOW` in a statement is then
// statement_timestamp(), one instant for the whole statement, on the one clock every dispatcher on
// the database shares.

import { SQL } from 'bun';
import type { Clock } from '../clock.ts';
import { SCHEMA } from './schema.ts';

/** The time in a statement: $1, or the database's clock in whole milliseconds. */
export const NOW = `coalesce($1::float8, floor(extract(epoch FROM statement_timestamp()) * 1000)::float8)`;

/** Connections per dispatcher: enough to keep allocation, heartbeats and the waiting room from queueing behind each other. */
const POOL_SIZE = 4;

export type Runner = Pick<SQL, 'unsafe'>;

export interface PgClient {
  sql: SQL;
  /** Runs `text`, whose $1 is the time (it must use NOW), with `params` as $2, $3, …; on `tx` inside a transaction. */
  timed<T>(text: string, params?: unknown[], tx?: Runner): Promise<T[]>;
  /** Runs `text` with `params` as $1, $2, … */
  plain<T>(text: string, params?: unknown[], tx?: Runner): Promise<T[]>;
  /** The injected clock's time, or null for the database's. */
  clockTime(): number | null;
}

export function connect(url: string, clock?: Clock): PgClient {
  const sql = new SQL(url, {
    max: POOL_SIZE,
    // A database that accepts connections but never answers is unavailable, not a hang.
    connectionTimeout: 5,
    idleTimeout: 60,
    connection: { search_path: SCHEMA, statement_timeout: 10_000, application_name: 'render-dispatch' },
  });
  const clockTime = () => (clock ? clock.now() : null);
  return {
    sql,
    clockTime,
    timed: async <T>(text: string, params: unknown[] = [], tx: Runner = sql) => (await tx.unsafe(text, [clockTime(), ...params])) as T[],
    plain: async <T>(text: string, params: unknown[] = [], tx: Runner = sql) => (await tx.unsafe(text, params)) as T[],
  };
}

/** The URL with its password left out, for logs. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
