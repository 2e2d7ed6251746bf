// The waiting room's queue, as a table in the lease database: first come, first served, in the
// order of an autoincrementing number. The sockets of the waiting pages live in the process that
// accepted them, so a dispatcher starting up clears the rows its predecessor left: those pages
// lost their sockets with it and join again when they reconnect.

import type { Database } from 'bun:sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS waiting (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  conn       TEXT NOT NULL UNIQUE,
  session    TEXT,
  request_id TEXT,
  -- The page's address (or its IPv6 /64), for the cap on places per address.
  address    TEXT NOT NULL DEFAULT '',
  joined_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS waiting_by_address ON waiting (address);
`;

export interface Waiter {
  conn: string;
  session: string | null;
  requestId: string | null;
}

export interface Joiner extends Waiter {
  address: string;
}

export function openWaitingList(db: Database) {
  db.run(SCHEMA);
  db.run('DELETE FROM waiting');
  const join = db.query('INSERT INTO waiting (conn, session, request_id, address, joined_at) VALUES ($conn, $session, $requestId, $address, $now)');
  const leave = db.query('DELETE FROM waiting WHERE conn = $conn');
  const head = db.query<Waiter, []>('SELECT conn, session, request_id AS requestId FROM waiting ORDER BY seq LIMIT 1');
  const order = db.query<{ conn: string }, []>('SELECT conn FROM waiting ORDER BY seq');
  const size = db.query<{ n: number }, []>('SELECT count(*) AS n FROM waiting');
  const fromAddress = db.query<{ n: number }, { address: string }>('SELECT count(*) AS n FROM waiting WHERE address = $address');

  return {
    join: (waiter: Joiner, now: number): void => {
      join.run({ ...waiter, now });
    },
    /** True if the connection was waiting. */
    leave: (conn: string): boolean => leave.run({ conn }).changes > 0,
    head: (): Waiter | null => head.get() ?? null,
    /** The waiting connections, first in line first. */
    order: (): string[] => order.all().map((row) => row.conn),
    size: (): number => size.get()!.n,
    /** How many places pages from this address hold. */
    sizeFrom: (address: string): number => fromAddress.get({ address })!.n,
  };
}
