// The operator's list of servers (GET /v1/servers) from PostgreSQL: one page at a time in
// registration order, optionally only those in one state as of now (the database's now).

import type { ListQuery, ServerPage, ServerRow } from '../lease-store.ts';
import { NOW, type PgClient } from './client.ts';
import { SERVER_COLUMNS } from './schema.ts';

/** A row's state as of now, in SQL: effectiveState of ../lease-store.ts, for filtering. */
const EFFECTIVE_STATE = `CASE WHEN state = 'offline' THEN 'offline' WHEN lease_expires <= ${NOW} THEN 'expired'
  WHEN state = 'reserved' AND claim_expires <= ${NOW} THEN 'ready' ELSE state END`;

export function openServerListing({ timed }: PgClient) {
  return {
    list: async ({ state = null, limit, after = null }: ListQuery): Promise<ServerPage> => {
      // One row more than asked tells whether there is a next page; the time read with it is the page's.
      const rows = await timed<ServerRow & { pageNow: number }>(
        `SELECT ${SERVER_COLUMNS}, ${NOW} AS "pageNow" FROM servers
         WHERE ($2::text IS NULL OR ${EFFECTIVE_STATE} = $2::text)
           AND ($3::float8 IS NULL OR registered_at > $3::float8 OR (registered_at = $3::float8 AND id > $4::text))
         ORDER BY registered_at, id LIMIT $5`,
        [state, after?.registeredAt ?? null, after?.id ?? '', limit + 1],
      );
      const now = rows[0]?.pageNow ?? (await timed<{ now: number }>(`SELECT ${NOW} AS now`))[0].now;
      const page = rows.map(({ pageNow: _, ...row }) => row as ServerRow);
      const more = page.length > limit;
      if (more) page.pop();
      const last = page.at(-1);
      return { rows: page, next: more && last ? { registeredAt: last.registeredAt, id: last.id } : null, now };
    },
  };
}
