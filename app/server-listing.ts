// The operator's list of servers (GET /v1/servers): one page at a time in registration order,
// optionally only those in one state as of now. A read of its own over the servers table, kept
// apart from the lease transitions in lease-store.ts.

import type { Database } from 'bun:sqlite';
import { SERVER_COLUMNS } from './lease-schema.ts';
import type { ServerRow, ServerState } from './lease-store.ts';

/** Where a page ends: the last row's place in the order. */
export type ListCursor = { registeredAt: number; id: string };

export interface ListQuery {
  /** Only servers in this state as of `now` ('expired' included). */
  state?: ServerState | null;
  limit: number;
  /** Start after this row (the `next` of the page before). */
  after?: ListCursor | null;
}

/** A page: its rows, and where the next page starts (null on the last). */
export interface ServerPage {
  rows: ServerRow[];
  next: ListCursor | null;
}

/** A row's state as of $now, in SQL: lease-store.ts's effectiveState, for filtering. */
const EFFECTIVE_STATE = `CASE WHEN state = 'offline' THEN 'offline' WHEN lease_expires <= $now THEN 'expired'
  WHEN state = 'reserved' AND claim_expires <= $now THEN 'ready' ELSE state END`;

export function openServerListing(db: Database) {
  type PageParams = { now: number; state: string | null; afterAt: number | null; afterId: string; limit: number };
  // Walks the servers_by_registration index from the cursor on.
  const page = db.query<ServerRow, PageParams>(`
    SELECT ${SERVER_COLUMNS} FROM servers
    WHERE ($state IS NULL OR ${EFFECTIVE_STATE} = $state)
      AND ($afterAt IS NULL OR registered_at > $afterAt OR (registered_at = $afterAt AND id > $afterId))
    ORDER BY registered_at, id LIMIT $limit`);

  return {
    list: ({ state = null, limit, after = null }: ListQuery, now: number): ServerPage => {
      // One row more than asked tells whether there is a next page.
      const rows = page.all({ now, state, afterAt: after?.registeredAt ?? null, afterId: after?.id ?? '', limit: limit + 1 });
      const more = rows.length > limit;
      if (more) rows.pop();
      const last = rows.at(-1);
      return { rows, next: more && last ? { registeredAt: last.registeredAt, id: last.id } : null };
    },
  };
}
