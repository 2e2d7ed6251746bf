// Which lease store a dispatcher opens: `--db postgres://…` (or postgresql://, or DATABASE_URL
// when --db is not given) is PostgreSQL, shared by every dispatcher pointed at it; anything else
// is a SQLite file (`:memory:` keeps nothing), this dispatcher's alone.

import type { Clock } from './clock.ts';
import type { LeaseStore } from './lease-store.ts';
import { openPostgresStore } from './postgres/lease-store.ts';
import { openSqliteStore } from './sqlite/lease-store.ts';

export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/**
 * Opens the store `db` names. `clock` is for tests that move time: SQLite always keeps time by a
 * clock in the process; PostgreSQL keeps it by the database's own unless one is given.
 */
export async function openStore(db: string, clock?: Clock): Promise<LeaseStore> {
  return isPostgresUrl(db) ? openPostgresStore(db, { clock }) : openSqliteStore(db, clock);
}
