// The operator's list of servers (GET /v1/servers) from the lease file: one page at a time in
// registration order, optionally only those in one state as of now. A read of its own over the
// servers table, kept apart from the lease transitions in lease-store.ts.

import type { Database } from 'bun:sqlite';
import type { Clock } from '../clock.ts';
import type { ListQuery, ServerPage, ServerRow } from '../lease-store.ts';
import type { GroupCommit } from './group-commit.ts';
import { SERVER_COLUMNS, SERVERS } from './schema.ts';

/** A row's state as of $now, in SQL: effectiveState of ../lease-store.ts, for filtering. */
const EFFECTIVE_STATE = `CASE WHEN state = 'offline' THEN 'offline' WHEN lease_expires <= $now THEN 'expired'
  WHEN state = 'reserved' AND claim_expires <= $now THEN 'ready' ELSE state END`;

export function openServerListing(db: Database, { read }: GroupCommit, clock: Clock) {
  type PageParams = { now: number; state: string | null; afterAt: number | null; afterId: string; limit: number };
  // Walks the servers_by_registration index from the cursor on.
  const page = db.query<ServerRow, PageParams>(`
    SELECT ${SERVER_COLUMNS} FROM ${SERVERS}
    WHERE ($state IS NULL OR ${EFFECTIVE_STATE} = $state)
      AND ($afterAt IS NULL OR registered_at > $afterAt OR (registered_at = $afterAt AND id > $afterId))
    ORDER BY registered_at, id LIMIT $limit`);

  return {
    list: ({ state = null, limit, after = null }: ListQuery): Promise<ServerPage> =>
      read(() => {
        const now = clock.now();
        // One row more than asked tells whether there is a next page.
        const rows = page.all({ now, state, afterAt: after?.registeredAt ?? null, afterId: after?.id ?? '', limit: limit + 1 });
        const more = rows.length > limit;
        if (more) rows.pop();
        const last = rows.at(-1);
        return { rows, next: more && last ? { registeredAt: last.registeredAt, id: last.id } : null, now };
      }),
  };
}
