// The waiting room's line (see WaitingList in ../lease-store.ts) in PostgreSQL: one FIFO for every
// dispatcher on the database, in the order of a sequence. Each place belongs to the dispatcher
// (`owner`) holding the page's socket; a dispatcher keeps its row in `dispatchers` alive while it
// runs, and places whose owner stopped doing so are skipped, then dropped. Joining and leaving
// are announced, so that every dispatcher tells its pages where they now stand.

import type { JoinResult, Joiner, LineLimits, Waiter, WaitingList } from '../lease-store.ts';
import { NOW, type PgClient } from './client.ts';

/** How long a join waits for another dispatcher's join to finish. */
const JOIN_LOCK_TIMEOUT_MS = 2000;

// A dispatcher's own places ($2) are alive to it whatever its row says.
const ALIVE = `(owner = $2 OR owner IN (SELECT id FROM dispatchers WHERE alive_until > ${NOW}))`;

export function openWaitingList(
  { sql, timed, plain }: PgClient,
  owner: string,
  changed: () => void,
): WaitingList & { keepAlive(ms: number): Promise<void>; close(): Promise<void> } {
  let joining: Promise<unknown> = Promise.resolve();
  async function joinNow(waiter: Joiner, { maxQueue, maxPerAddress }: LineLimits): Promise<JoinResult> {
    const result = await sql.begin(async (tx): Promise<JoinResult> => {
      // One join at a time on the whole database, so that two dispatchers never both see room for
      // one more; a dispatcher stuck holding the lock makes a join fail, not wait for ever.
      await plain(`SET LOCAL lock_timeout = '${JOIN_LOCK_TIMEOUT_MS}ms'`, [], tx);
      await plain(`SELECT pg_advisory_xact_lock(hashtext('render_dispatch.waiting.join'))`, [], tx);
      const [{ total, fromAddress }] = await timed<{ total: number; fromAddress: number }>(
        `SELECT count(*)::int AS total, (count(*) FILTER (WHERE address = $3))::int AS "fromAddress" FROM waiting WHERE ${ALIVE}`,
        [owner, waiter.address],
        tx,
      );
      if (total >= maxQueue) return { ok: false, full: 'line' };
      if (fromAddress >= maxPerAddress) return { ok: false, full: 'address' };
      await timed(`INSERT INTO waiting (conn, session, request_id, address, joined_at, owner) VALUES ($2, $3, $4, $5, ${NOW}, $6)`, [
        waiter.conn, waiter.session, waiter.requestId, waiter.address, owner,
      ], tx);
      return { ok: true };
    });
    if (result.ok) changed();
    return result;
  }

  return {
    join: (waiter, limits) => {
      // One join of this dispatcher waits for the lock at a time: a crowd of joins never takes
      // every pooled connection from heartbeats and allocations.
      const turn = joining.then(() => joinNow(waiter, limits));
      joining = turn.catch(() => {});
      return turn;
    },
    leave: async (conn) => {
      const left = (await plain('DELETE FROM waiting WHERE conn = $1 RETURNING seq', [conn])).length > 0;
      if (left) changed();
      return left;
    },
    head: async () => {
      const [row] = await timed<Waiter & { mine: boolean }>(
        `SELECT conn, session, request_id AS "requestId", owner = $2 AS mine FROM waiting WHERE ${ALIVE} ORDER BY seq LIMIT 1`,
        [owner],
      );
      return row ?? null;
    },
    standings: async () => {
      const rows = await timed<{ conn: string; owner: string }>(`SELECT conn, owner FROM waiting WHERE ${ALIVE} ORDER BY seq`, [owner]);
      const mine = rows.flatMap((row, index) => (row.owner === owner ? [{ conn: row.conn, position: index + 1 }] : []));
      return { size: rows.length, mine };
    },
    size: async () => (await timed<{ n: number }>(`SELECT count(*)::int AS n FROM waiting WHERE ${ALIVE}`, [owner]))[0].n,
    sizeFrom: async (address) =>
      (await timed<{ n: number }>(`SELECT count(*)::int AS n FROM waiting WHERE address = $3 AND ${ALIVE}`, [owner, address]))[0].n,
    keepAlive: async (ms) => {
      await sql.begin(async (tx) => {
        await timed(
          `INSERT INTO dispatchers (id, alive_until) VALUES ($2, ${NOW} + $3) ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until`,
          [owner, ms],
          tx,
        );
        await timed(`DELETE FROM waiting WHERE NOT ${ALIVE}`, [owner], tx);
        await timed(`DELETE FROM dispatchers WHERE alive_until <= ${NOW} AND id <> $2`, [owner], tx);
      });
    },
    close: async () => {
      await plain('DELETE FROM waiting WHERE owner = $1', [owner]);
      await plain('DELETE FROM dispatchers WHERE id = $1', [owner]);
      changed();
    },
  };
}
