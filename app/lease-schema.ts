// The lease database file: its settings (WAL) and the servers table's shape, with the indexes
// allocation walks. The statements on it are in lease-store.ts.

import { Database } from 'bun:sqlite';

// Bumped whenever the table's shape changes. Leases are short-lived and every render server
// registers again within a second, so an older file's tables are dropped, not migrated.
const SCHEMA_VERSION = 6;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS servers (
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
CREATE INDEX IF NOT EXISTS servers_free ON servers (state, health DESC, handed_at, id);
CREATE INDEX IF NOT EXISTS servers_by_session ON servers (session);
CREATE INDEX IF NOT EXISTS servers_by_holder ON servers (holder);
-- The operator's list pages through this.
CREATE INDEX IF NOT EXISTS servers_by_registration ON servers (registered_at, id);
`;

/** A whole servers row, as lease-store.ts's ServerRow. */
export const SERVER_COLUMNS = `id, url, key, instance_hash AS instanceHash, state, conn, lease_expires AS leaseExpires,
  claim_expires AS claimExpires, client, target_fps AS targetFps, fps, frame_ms AS frameMs, health, session,
  session_until AS sessionUntil, registered_at AS registeredAt, updated_at AS updatedAt`;

/** Where the write-ahead log is cut back to after each checkpoint. */
export const WAL_LIMIT_BYTES = 4 * 1024 * 1024;

export function openLeaseDatabase(path: string): Database {
  const db = new Database(path, { create: true, strict: true });
  db.run('PRAGMA journal_mode = WAL');
  db.run('PRAGMA synchronous = NORMAL');
  db.run('PRAGMA busy_timeout = 5000');
  // The log is folded back into the file every 1,000 pages (SQLite's default); this keeps the file
  // itself from staying at its largest size after a burst, and a restart starts from an empty log.
  db.run(`PRAGMA journal_size_limit = ${WAL_LIMIT_BYTES}`);
  db.run('PRAGMA wal_checkpoint(TRUNCATE)');
  const { user_version: version } = db.query<{ user_version: number }, []>('PRAGMA user_version').get()!;
  if (version !== SCHEMA_VERSION) {
    db.run('DROP TABLE IF EXISTS servers');
    db.run('DROP TABLE IF EXISTS requests');
    db.run('DROP TABLE IF EXISTS waiting');
    db.run(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  }
  db.run(SCHEMA);
  return db;
}
