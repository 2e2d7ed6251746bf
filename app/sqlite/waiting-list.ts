// The waiting room's line (see WaitingList in ../lease-store.ts) as a table in the lease file:
// first come, first served in the order of an autoincrementing number. Each place belongs to the
// dispatcher (`owner`) holding the page's socket; a dispatcher keeps a row in `dispatchers` alive
// while it runs, and places whose owner stopped doing so are skipped, then dropped. Changes to the
// line are announced to the other dispatchers on the file (`changed`).

import type { Database } from 'bun:sqlite';
import type { Clock } from '../clock.ts';
import type { JoinResult, Waiter, WaitingList } from '../lease-store.ts';
import type { GroupCommit } from './group-commit.ts';

// A dispatcher's own places are alive to it whatever its row says.
const ALIVE = '(owner = $owner OR owner IN (SELECT id FROM dispatchers WHERE alive_until > $now))';

export function openWaitingList(
  db: Database,
  { read, write }: GroupCommit,
  clock: Clock,
  owner: string,
  changed: () => void,
): WaitingList & { keepAlive(ms: number): Promise<void>; close(): Promise<boolean> } {
  const join = db.query(
    'INSERT INTO waiting (conn, session, request_id, address, joined_at, owner) VALUES ($conn, $session, $requestId, $address, $now, $owner)',
  );
  const leave = db.query('DELETE FROM waiting WHERE conn = $conn');
  const head = db.query<Waiter & { mine: number }, { now: number; owner: string }>(
    `SELECT conn, session, request_id AS requestId, owner = $owner AS mine FROM waiting WHERE ${ALIVE} ORDER BY seq LIMIT 1`,
  );
  const order = db.query<{ conn: string; owner: string }, { now: number; owner: string }>(`SELECT conn, owner FROM waiting WHERE ${ALIVE} ORDER BY seq`);
  const size = db.query<{ n: number }, { now: number; owner: string }>(`SELECT count(*) AS n FROM waiting WHERE ${ALIVE}`);
  const fromAddress = db.query<{ n: number }, { address: string; now: number; owner: string }>(
    `SELECT count(*) AS n FROM waiting WHERE address = $address AND ${ALIVE}`,
  );
  const alive = db.query(`INSERT INTO dispatchers (id, alive_until) VALUES ($owner, $until)
    ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until`);
  const dropDead = db.query(`DELETE FROM waiting WHERE NOT ${ALIVE}`);
  const forgetDead = db.query('DELETE FROM dispatchers WHERE alive_until <= $now');
  const goodbye = db.query('DELETE FROM dispatchers WHERE id = $owner');
  const leaveAll = db.query('DELETE FROM waiting WHERE owner = $owner');
  const keepAlive = db.transaction((until: number, now: number) => {
    alive.run({ owner, until });
    const dropped = dropDead.run({ now, owner }).changes;
    forgetDead.run({ now });
    return dropped;
  });

  // Other dispatchers are told of a change to the line once it is committed.
  const told = (done: Promise<boolean>): Promise<boolean> =>
    done.then((change) => {
      if (change) changed();
      return change;
    });

  return {
    join: async (waiter, { maxQueue, maxPerAddress }) => {
      let result: JoinResult = { ok: true };
      await told(
        write(() => {
          const now = clock.now();
          if (size.get({ now, owner })!.n >= maxQueue) result = { ok: false, full: 'line' };
          else if (fromAddress.get({ address: waiter.address, now, owner })!.n >= maxPerAddress) result = { ok: false, full: 'address' };
          else join.run({ ...waiter, now, owner });
          return result.ok;
        }),
      );
      return result;
    },
    leave: (conn) => told(write(() => leave.run({ conn }).changes > 0)),
    head: () =>
      read(() => {
        const row = head.get({ now: clock.now(), owner });
        return row ? { conn: row.conn, session: row.session, requestId: row.requestId, mine: row.mine === 1 } : null;
      }),
    standings: () =>
      read(() => {
        const rows = order.all({ now: clock.now(), owner });
        const mine = rows.flatMap((row, index) => (row.owner === owner ? [{ conn: row.conn, position: index + 1 }] : []));
        return { size: rows.length, mine };
      }),
    size: () => read(() => size.get({ now: clock.now(), owner })!.n),
    sizeFrom: (address) => read(() => fromAddress.get({ address, now: clock.now(), owner })!.n),
    keepAlive: async (ms) => {
      const now = clock.now();
      await told(write(() => keepAlive.immediate(now + ms, now) > 0));
    },
    /** Gives up this dispatcher's places; true if it held any. */
    close: () =>
      write(() => {
        goodbye.run({ owner });
        return leaveAll.run({ owner }).changes > 0;
      }),
  };
}
