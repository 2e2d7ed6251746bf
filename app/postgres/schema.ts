// The PostgreSQL tables, in a schema of their own (render_dispatch) so they share a database with
// anything else, built by numbered migrations. Every dispatcher opening the database runs them
// under one advisory lock in one transaction: the first applies what is missing, the others find
// it done, and no lease is ever dropped. A database migrated by a newer release is refused, not
// guessed at. Times are milliseconds since the epoch on the database's clock, as double precision
// (exact for whole numbers far beyond any date), so they reach JavaScript as numbers.

import type { SQL } from 'bun';
import { SchemaTooNew } from '../lease-store.ts';

export const SCHEMA = 'render_dispatch';
/** The advisory lock migrations run under ("render-d" in ASCII). */
const MIGRATION_LOCK = 0x72656e6465722d64n;

const MIGRATIONS: Record<number, string> = {
  1: `
CREATE TABLE servers (
  id            text PRIMARY KEY,
  url           text NOT NULL UNIQUE,
  key           text NOT NULL,
  instance_hash text NOT NULL,
  state         text NOT NULL CHECK (state IN ('ready', 'reserved', 'busy', 'draining', 'offline')),
  conn          text,
  lease_expires double precision NOT NULL,
  claim_expires double precision,
  client        text NOT NULL DEFAULT 'none' CHECK (client IN ('none', 'connected')),
  target_fps    double precision NOT NULL DEFAULT 0,
  fps           double precision NOT NULL DEFAULT 0,
  frame_ms      double precision NOT NULL DEFAULT 0,
  health        double precision NOT NULL DEFAULT 1,
  session       text,
  session_until double precision,
  handed_at     double precision NOT NULL DEFAULT 0,
  grant_id      text,
  holder        text,
  registered_at double precision NOT NULL,
  updated_at    double precision NOT NULL
);
-- Allocation walks this in order, skipping rows other dispatchers hold locked, and stops at the first live one.
CREATE INDEX servers_free ON servers (health DESC, handed_at, id) WHERE state IN ('ready', 'reserved');
CREATE INDEX servers_by_session ON servers (session);
CREATE INDEX servers_by_holder ON servers (holder);
CREATE INDEX servers_by_registration ON servers (registered_at, id);
CREATE TABLE requests (
  request_id text PRIMARY KEY,
  server_id  text NOT NULL,
  url        text NOT NULL,
  expires    double precision NOT NULL
);
CREATE INDEX requests_by_expiry ON requests (expires);
CREATE TABLE dispatchers (
  id          text PRIMARY KEY,
  alive_until double precision NOT NULL
);
CREATE TABLE waiting (
  seq        bigserial PRIMARY KEY,
  conn       text NOT NULL UNIQUE,
  session    text,
  request_id text,
  address    text NOT NULL DEFAULT '',
  joined_at  double precision NOT NULL,
  owner      text NOT NULL
);
CREATE INDEX waiting_by_address ON waiting (address);
CREATE INDEX waiting_by_owner ON waiting (owner);`,
  // A page's reservation not yet claimed, by its connection or its session, from reservations
  // only: the whole-table indexes kept the holder and session of every server a page was ever
  // handed, and a page asking again visited them all.
  2: `
DROP INDEX servers_by_holder;
CREATE INDEX servers_holding ON servers (holder) WHERE state = 'reserved';
CREATE INDEX servers_session_holding ON servers (session) WHERE state = 'reserved' AND session IS NOT NULL;`,
};
export const SCHEMA_VERSION = Math.max(...Object.keys(MIGRATIONS).map(Number));

/** A whole servers row, as ServerRow (quoted: PostgreSQL folds unquoted names to lower case). */
export const SERVER_COLUMNS = `id, url, key, instance_hash AS "instanceHash", state, conn, lease_expires AS "leaseExpires",
  claim_expires AS "claimExpires", client, target_fps AS "targetFps", fps, frame_ms AS "frameMs", health, session,
  session_until AS "sessionUntil", registered_at AS "registeredAt", updated_at AS "updatedAt"`;

/** Brings the database to SCHEMA_VERSION; returns the version it found. */
export async function migrate(sql: SQL): Promise<number> {
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ${SCHEMA}.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const [{ version }] = await tx.unsafe(`SELECT coalesce(max(version), 0)::int AS version FROM ${SCHEMA}.migrations`);
    if (version > SCHEMA_VERSION) {
      throw new SchemaTooNew('the database', version, SCHEMA_VERSION);
    }
    for (let next = version + 1; next <= SCHEMA_VERSION; next++) {
      await tx.unsafe(`SET LOCAL search_path TO ${SCHEMA}`);
      await tx.unsafe(MIGRATIONS[next]);
      await tx.unsafe(`INSERT INTO ${SCHEMA}.migrations (version) VALUES (${next})`);
    }
    return version as number;
  });
}
