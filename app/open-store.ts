// Which lease store a dispatcher opens: `--db postgres://…` (or postgresql://, or DATABASE_URL
// when --db is not given) is PostgreSQL, shared by every dispatcher pointed at it; anything else
// is a SQLite file (`:memory:` keeps nothing), one process's alone. With `--workers N` that process
// is the primary: it holds the file and serves each worker a view of it (app/store-link.ts), while
// workers on PostgreSQL are simply more dispatchers on the database. This file is the only place
// that choice is made.

import type { Clock } from './clock.ts';
import type { LeaseStore } from './lease-store.ts';
import { openPostgresStore } from './postgres/lease-store.ts';
import { openSqliteFile, openSqliteStore } from './sqlite/lease-store.ts';
import { linkedStore, serveStore, type Channel } from './store-link.ts';

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

/** What the primary of `--workers N` holds for its workers: a view per worker, served on its channel. */
export interface HostedStore {
  serve(channel: Channel): { stop(): Promise<void> };
  close(): Promise<void>;
}

/** The store the primary holds for its workers, or null when each worker opens `db` itself. */
export function hostStore(db: string): HostedStore | null {
  if (isPostgresUrl(db)) return null;
  const file = openSqliteFile(db);
  return {
    serve(channel) {
      const view = file.view();
      const stopServing = serveStore(view, channel);
      return {
        async stop() {
          stopServing();
          await view.close();
        },
      };
    },
    close: () => file.close(),
  };
}

/**
 * A worker's store: its view of the primary's file over `channel`, or `db` opened as any dispatcher
 * would. `disconnected` is for when the primary is gone: calls on its file then fail at once.
 */
export async function openWorkerStore(db: string, channel: Channel): Promise<LeaseStore & { disconnected(): void }> {
  if (isPostgresUrl(db)) return { ...(await openStore(db)), disconnected() {} };
  return linkedStore(channel, { engine: 'sqlite', location: `${db} (held by the primary)` });
}
