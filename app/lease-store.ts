// The render servers' leases, as rows of one SQLite table (bun:sqlite, WAL). This table is the
// only authority on which server may be handed out: every transition is one statement or one
// transaction, and the lease expiry is part of the allocation query itself, so correctness never
// waits for a sweeper and a dispatcher restarted on the same file carries on where it stopped.

import { Database } from 'bun:sqlite';
import type { ClientState } from '../common/protocol.ts';

/** Stored states. "expired" is derived at read time from the lease deadline, never trusted as stored. */
export type StoredState = 'ready' | 'reserved' | 'busy' | 'offline';
export type ServerState = StoredState | 'expired';

export interface ServerRow {
  id: string;
  url: string;
  key: string;
  state: StoredState;
  conn: string | null;
  leaseExpires: number;
  claimExpires: number | null;
  targetFps: number;
  fps: number;
  frameMs: number;
  registeredAt: number;
  updatedAt: number;
}

export interface ServerView {
  id: string;
  url: string;
  state: ServerState;
  leaseExpiresAt: number;
  claimExpiresAt: number | null;
  targetFps: number;
  fps: number;
  frameMs: number;
  registeredAt: number;
}

export interface Allocation {
  id: string;
  url: string;
  key: string;
  claimExpires: number;
}

export interface RegisterInput {
  id: string;
  url: string;
  conn: string;
  client: ClientState;
  targetFps: number;
  newKey: string;
  now: number;
  ttlMs: number;
}

export interface RegisterResult {
  row: ServerRow;
  /** True unless the same id already held a live lease (a re-registration after a blip). */
  isNew: boolean;
  /** Earlier instances on the same URL that this registration replaced. */
  replaced: { id: string; url: string }[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS servers (
  id            TEXT PRIMARY KEY,
  url           TEXT NOT NULL UNIQUE,
  key           TEXT NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('ready', 'reserved', 'busy', 'offline')),
  conn          TEXT,
  lease_expires INTEGER NOT NULL,
  claim_expires INTEGER,
  target_fps    REAL NOT NULL DEFAULT 0,
  fps           REAL NOT NULL DEFAULT 0,
  frame_ms      REAL NOT NULL DEFAULT 0,
  registered_at INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS servers_by_state ON servers (state, updated_at);
`;

const COLUMNS = `id, url, key, state, conn, lease_expires AS leaseExpires, claim_expires AS claimExpires,
  target_fps AS targetFps, fps, frame_ms AS frameMs, registered_at AS registeredAt, updated_at AS updatedAt`;

/** The state a row is really in at `now`, whatever was last written. */
export function effectiveState(row: Pick<ServerRow, 'state' | 'leaseExpires' | 'claimExpires'>, now: number): ServerState {
  if (row.state === 'offline') return 'offline';
  if (row.leaseExpires <= now) return 'expired';
  if (row.state === 'reserved' && row.claimExpires !== null && row.claimExpires <= now) return 'ready';
  return row.state;
}

export function openLeaseStore(path: string) {
  const db = new Database(path, { create: true, strict: true });
  db.run('PRAGMA journal_mode = WAL');
  db.run('PRAGMA synchronous = NORMAL');
  db.run('PRAGMA busy_timeout = 5000');
  db.run(SCHEMA);

  const byId = db.query<ServerRow, { id: string }>(`SELECT ${COLUMNS} FROM servers WHERE id = $id`);
  const all = db.query<ServerRow, []>(`SELECT ${COLUMNS} FROM servers ORDER BY registered_at, id`);
  const othersOnUrl = db.query<{ id: string; url: string }, { url: string; id: string }>(
    'SELECT id, url FROM servers WHERE url = $url AND id != $id',
  );
  const deleteById = db.query('DELETE FROM servers WHERE id = $id');
  const insert = db.query(`
    INSERT INTO servers (id, url, key, state, conn, lease_expires, claim_expires, target_fps, registered_at, updated_at)
    VALUES ($id, $url, $key, $state, $conn, $leaseExpires, NULL, $targetFps, $now, $now)`);
  const reattach = db.query(`
    UPDATE servers SET url = $url, state = $state, conn = $conn, lease_expires = $leaseExpires,
      claim_expires = CASE WHEN $state = 'reserved' THEN claim_expires ELSE NULL END,
      target_fps = $targetFps, updated_at = $now
    WHERE id = $id`);

  // The expiry and claim-deadline tests live in the allocation statement: a server whose lease has
  // run out, or whose connection closed, can never be picked, whether or not anything swept it.
  const allocate = db.query<Allocation, { now: number; claimExpires: number }>(`
    UPDATE servers SET state = 'reserved', claim_expires = $claimExpires, updated_at = $now
    WHERE id = (
      SELECT id FROM servers
      WHERE lease_expires > $now
        AND (state = 'ready' OR (state = 'reserved' AND claim_expires <= $now))
      ORDER BY updated_at, id
      LIMIT 1)
    RETURNING id, url, key, claim_expires AS claimExpires`);

  const heartbeat = db.query<ServerRow, { id: string; conn: string; leaseExpires: number; fps: number; frameMs: number; client: ClientState; now: number }>(`
    UPDATE servers SET lease_expires = $leaseExpires, fps = $fps, frame_ms = $frameMs, updated_at = $now,
      state = CASE
        WHEN $client = 'connected' THEN 'busy'
        WHEN state = 'reserved' AND claim_expires > $now THEN 'reserved'
        ELSE 'ready' END,
      claim_expires = CASE WHEN $client = 'none' AND state = 'reserved' AND claim_expires > $now THEN claim_expires ELSE NULL END
    WHERE id = $id AND conn = $conn AND state != 'offline'
    RETURNING ${COLUMNS}`);

  const setClient = db.query<ServerRow, { id: string; conn: string; state: StoredState; now: number }>(`
    UPDATE servers SET state = $state, claim_expires = NULL, updated_at = $now
    WHERE id = $id AND conn = $conn AND state != 'offline'
    RETURNING ${COLUMNS}`);

  const disconnect = db.query<ServerRow, { id: string; conn: string; now: number }>(`
    UPDATE servers SET state = 'offline', conn = NULL, claim_expires = NULL, updated_at = $now
    WHERE id = $id AND conn = $conn
    RETURNING ${COLUMNS}`);

  const expiredLive = db.query<ServerRow, { now: number }>(
    `SELECT ${COLUMNS} FROM servers WHERE state != 'offline' AND lease_expires <= $now`,
  );

  const registerTx = db.transaction((input: RegisterInput): RegisterResult => {
    const replaced = othersOnUrl.all({ url: input.url, id: input.id });
    for (const old of replaced) deleteById.run({ id: old.id });
    const existing = byId.get({ id: input.id });
    const leaseExpires = input.now + input.ttlMs;
    if (!existing) {
      const state: StoredState = input.client === 'connected' ? 'busy' : 'ready';
      insert.run({ id: input.id, url: input.url, key: input.newKey, state, conn: input.conn, leaseExpires, targetFps: input.targetFps, now: input.now });
      return { row: byId.get({ id: input.id })!, isNew: true, replaced };
    }
    const live = effectiveState(existing, input.now);
    // A reservation survives a re-registration: the client holding the ticket may still arrive.
    const state: StoredState = input.client === 'connected' ? 'busy' : live === 'reserved' ? 'reserved' : 'ready';
    reattach.run({ id: input.id, url: input.url, state, conn: input.conn, leaseExpires, targetFps: input.targetFps, now: input.now });
    return { row: byId.get({ id: input.id })!, isNew: live === 'offline' || live === 'expired', replaced };
  });

  return {
    register: (input: RegisterInput): RegisterResult => registerTx.immediate(input),

    /** Reserves the least recently used free server, or returns null when none is free. */
    allocate: (now: number, claimMs: number): Allocation | null =>
      allocate.get({ now, claimExpires: now + claimMs }) ?? null,

    /** Extends the lease of the server held by `conn`; null if that connection no longer holds it. */
    heartbeat: (id: string, conn: string, now: number, ttlMs: number, health: { fps: number; frameMs: number; client: ClientState }): ServerRow | null =>
      heartbeat.get({ id, conn, leaseExpires: now + ttlMs, now, ...health }) ?? null,

    /** Records the render server's report that its client connected (busy) or left (ready). */
    setClient: (id: string, conn: string, connected: boolean, now: number): ServerRow | null =>
      setClient.get({ id, conn, state: connected ? 'busy' : 'ready', now }) ?? null,

    /** The control connection closed: from this moment the server is never handed out. */
    disconnect: (id: string, conn: string, now: number): ServerRow | null => disconnect.get({ id, conn, now }) ?? null,

    /** Rows whose lease ran out but that are not yet marked offline (for events, not for correctness). */
    expired: (now: number): ServerRow[] => expiredLive.all({ now }),

    get: (id: string): ServerRow | null => byId.get({ id }) ?? null,

    list: (now: number): ServerView[] =>
      all.all().map((row) => ({
        id: row.id,
        url: row.url,
        state: effectiveState(row, now),
        leaseExpiresAt: row.leaseExpires,
        claimExpiresAt: row.state === 'reserved' ? row.claimExpires : null,
        targetFps: row.targetFps,
        fps: row.fps,
        frameMs: row.frameMs,
        registeredAt: row.registeredAt,
      })),

    close: (): void => db.close(),
  };
}

export type LeaseStore = ReturnType<typeof openLeaseStore>;
