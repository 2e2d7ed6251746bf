// The SQLite lease file: its settings (WAL), and its tables built by numbered migrations that run
// in one write transaction, so two processes opening the same file never both migrate it and a
// started dispatcher never drops leases. The statements on the tables are in lease-store.ts,
// allocation.ts, heartbeats.ts, request-memo.ts, waiting-list.ts and server-listing.ts beside this
// file; checkpoints.ts says who folds the log back into the file.

import { Database } from 'bun:sqlite';
import { SchemaTooNew } from '../lease-store.ts';

/**
 * Each entry moves the file one version on. Version 6 is where migrations began: a file from
 * before it was written by a release that never shared its file, and is cleared once.
 */
const FIRST_MIGRATED_VERSION = 6;
const MIGRATIONS: Record<number, string> = {
  6: `
CREATE TABLE servers (
  id            TEXT PRIMARY KEY,
  url           TEXT NOT NULL UNIQUE,
  key           TEXT NOT NULL,
  instance_hash TEXT NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('ready', 'reserved', 'busy', 'draining', 'offline')),
  conn          TEXT,
  lease_expires INTEGER NOT NULL,
  claim_expires INTEGER,
  client        TEXT NOT NULL DEFAULT 'none' CHECK (client IN ('none', 'connected')),
  target_fps    REAL NOT NULL DEFAULT 0,
  fps           REAL NOT NULL DEFAULT 0,
  frame_ms      REAL NOT NULL DEFAULT 0,
  health        REAL NOT NULL DEFAULT 1,
  session       TEXT,
  session_until INTEGER,
  handed_at     INTEGER NOT NULL DEFAULT 0,
  -- The current reservation: its own id (the ticket's jti) and the page connection it is for.
  grant_id      TEXT,
  holder        TEXT,
  registered_at INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
-- Allocation walks these in order and stops at the first live row: it never sorts the table.
CREATE INDEX servers_free ON servers (state, health DESC, handed_at, id);
CREATE INDEX servers_by_session ON servers (session);
CREATE INDEX servers_by_holder ON servers (holder);
-- The operator's list pages through this.
CREATE INDEX servers_by_registration ON servers (registered_at, id);
CREATE TABLE requests (
  request_id TEXT PRIMARY KEY,
  server_id  TEXT NOT NULL,
  url        TEXT NOT NULL,
  expires    INTEGER NOT NULL
);
CREATE INDEX requests_by_expiry ON requests (expires);
CREATE TABLE waiting (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  conn       TEXT NOT NULL UNIQUE,
  session    TEXT,
  request_id TEXT,
  address    TEXT NOT NULL DEFAULT '',
  joined_at  INTEGER NOT NULL
);
CREATE INDEX waiting_by_address ON waiting (address);`,
  // Places in line belong to the dispatcher holding the page's socket, which says it is alive.
  7: `
DELETE FROM waiting;
ALTER TABLE waiting ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX waiting_by_owner ON waiting (owner);
CREATE TABLE dispatchers (
  id          TEXT PRIMARY KEY,
  alive_until INTEGER NOT NULL
);`,
  // What a heartbeat writes, apart from the wide servers rows: a commit appends every page it
  // dirtied to the log, and a narrow row puts about 100 servers on a page instead of 15.
  8: `
CREATE TABLE leases (
  id            TEXT PRIMARY KEY,
  lease_expires INTEGER NOT NULL,
  fps           REAL NOT NULL DEFAULT 0,
  frame_ms      REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO leases (id, lease_expires, fps, frame_ms) SELECT id, lease_expires, fps, frame_ms FROM servers;
ALTER TABLE servers DROP COLUMN lease_expires;
ALTER TABLE servers DROP COLUMN fps;
ALTER TABLE servers DROP COLUMN frame_ms;
CREATE TRIGGER servers_lease_gone AFTER DELETE ON servers BEGIN DELETE FROM leases WHERE id = old.id; END;`,
  // Reservations by deadline, for allocation's look at the lapsed ones: walking servers_free past
  // every unclaimed reservation cost a table row and a lease each.
  9: `CREATE INDEX servers_lapsing ON servers (claim_expires) WHERE state = 'reserved';`,
  // A page's reservation not yet claimed, by its connection or its session: the holder and session
  // of every server a page was ever handed stayed in the whole-table indexes, and a page asking
  // again walked them all (a page of the dispatch benchmark holds about 16: 3.7 µs against 0.7).
  10: `
DROP INDEX servers_by_holder;
CREATE INDEX servers_holding ON servers (holder) WHERE state = 'reserved';
CREATE INDEX servers_session_holding ON servers (session) WHERE state = 'reserved' AND session IS NOT NULL;`,
  // Remembered answers appended in order, without an index of their random request ids: each new
  // id landed on an index page of its own, which the commit then wrote (./request-memo.ts).
  11: `
CREATE TABLE requests_in_order (
  seq        INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL,
  server_id  TEXT NOT NULL,
  url        TEXT NOT NULL,
  expires    INTEGER NOT NULL
);
INSERT INTO requests_in_order (request_id, server_id, url, expires) SELECT request_id, server_id, url, expires FROM requests ORDER BY expires;
DROP TABLE requests;
ALTER TABLE requests_in_order RENAME TO requests;
CREATE INDEX requests_by_expiry ON requests (expires);`,
};
export const SCHEMA_VERSION = Math.max(...Object.keys(MIGRATIONS).map(Number));

/**
 * A server with its lease: what reads of SERVER_COLUMNS select from. CROSS JOIN keeps servers the
 * outer loop, so that a walk of one of its indexes stays one.
 */
export const SERVERS = 'servers CROSS JOIN leases USING (id)';

/**
 * A servers row's lease deadline, for statements that find servers by a text key (a session, a
 * holder): joined as SERVERS, the same lookup cost 3–5 µs more on each run, found or not; as this
 * subquery, a fraction of a microsecond.
 */
export const LEASE_EXPIRES = '(SELECT lease_expires FROM leases WHERE leases.id = servers.id)';

/** A whole servers row with its lease, as ServerRow (from SERVERS). */
export const SERVER_COLUMNS = `id, url, key, instance_hash AS instanceHash, state, conn, lease_expires AS leaseExpires,
  claim_expires AS claimExpires, client, target_fps AS targetFps, fps, frame_ms AS frameMs, health, session,
  session_until AS sessionUntil, registered_at AS registeredAt, updated_at AS updatedAt`;

/** Where the write-ahead log is cut back to after each checkpoint. */
export const WAL_LIMIT_BYTES = 4 * 1024 * 1024;

/** Brings the file to SCHEMA_VERSION; refuses a file written by a newer release rather than guess. */
function migrate(db: Database, path: string): void {
  db.transaction(() => {
    let { user_version: version } = db.query<{ user_version: number }, []>('PRAGMA user_version').get()!;
    if (version > SCHEMA_VERSION) {
      throw new SchemaTooNew(path, version, SCHEMA_VERSION);
    }
    if (version < FIRST_MIGRATED_VERSION) {
      for (const table of ['servers', 'requests', 'waiting']) db.run(`DROP TABLE IF EXISTS ${table}`);
      version = FIRST_MIGRATED_VERSION - 1;
    }
    for (let next = version + 1; next <= SCHEMA_VERSION; next++) db.run(MIGRATIONS[next]);
    db.run(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

export function openLeaseDatabase(path: string): Database {
  const db = new Database(path, { create: true, strict: true });
  db.run('PRAGMA journal_mode = WAL');
  db.run('PRAGMA synchronous = NORMAL');
  db.run('PRAGMA busy_timeout = 5000');
  // Every page of 100,000 servers stays in memory (SQLite's default is 2 MiB): a page read from
  // the file is a system call.
  db.run('PRAGMA cache_size = -65536');
  // When the log starts again from its beginning (checkpoints.ts says when), its file is cut back
  // to this size, so that it does not stay at its largest after a burst; a restart starts from an
  // empty log.
  db.run(`PRAGMA journal_size_limit = ${WAL_LIMIT_BYTES}`);
  db.run('PRAGMA wal_checkpoint(TRUNCATE)');
  migrate(db, path);
  return db;
}
