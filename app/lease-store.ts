// The render servers' leases, as rows of one SQLite table (bun:sqlite, WAL). This table is the
// only authority on which server may be handed out: every transition is one statement or one
// transaction, and the lease expiry is part of the allocation query itself, so correctness never
// waits for a sweeper and a dispatcher restarted on the same file carries on where it stopped.
// Deadlines are absolute times, so a restart neither shortens nor extends any lease.

import type { ClientState } from '../common/protocol.ts';
import { SERVER_COLUMNS as COLUMNS, openLeaseDatabase } from './lease-schema.ts';
import { openRequestMemo } from './request-memo.ts';
import { openServerListing } from './server-listing.ts';
import { openWaitingList } from './waiting-list.ts';

/** Stored states. "expired" is derived at read time from the lease deadline, never trusted as stored. */
export type StoredState = 'ready' | 'reserved' | 'busy' | 'draining' | 'offline';
export type ServerState = StoredState | 'expired';

export interface ServerRow {
  id: string;
  url: string;
  key: string;
  /** SHA-256 of the registering process's instance secret: only that process may register the id again. */
  instanceHash: string;
  state: StoredState;
  conn: string | null;
  leaseExpires: number;
  claimExpires: number | null;
  /** Whether the server's client is connected, as it last reported (kept apart from state for draining servers). */
  client: ClientState;
  targetFps: number;
  fps: number;
  frameMs: number;
  /** The frame rate it can reach as a share of its target, 0-1 in steps of 0.1 (1 until measured). */
  health: number;
  /** The session of the page it was last handed to, if that page gave one. */
  session: string | null;
  /** Until when that session may have it back after its client left (sticky return). */
  sessionUntil: number | null;
  registeredAt: number;
  updatedAt: number;
}

/** A reservation: everything its ticket is made of, so the same grant can be signed again. */
export interface Allocation {
  id: string;
  url: string;
  key: string;
  claimExpires: number;
  /** When it was handed out (the ticket's iat). */
  handedAt: number;
  /** The hand-out's own id (the ticket's jti). */
  grantId: string;
  session: string | null;
}

/** Who a reservation is for: the page's session and the connection that asked. */
export interface Holder {
  session?: string | null;
  conn?: string | null;
}

export interface RegisterInput {
  id: string;
  url: string;
  conn: string;
  instanceHash: string;
  client: ClientState;
  targetFps: number;
  newKey: string;
  now: number;
  ttlMs: number;
}

export type RegisterResult =
  | {
      ok: true;
      row: ServerRow;
      /** True unless the same id already held a live lease (a re-registration after a blip). */
      isNew: boolean;
      /** Earlier servers on the same URL, no longer alive, that this registration replaced. */
      replaced: { id: string; url: string }[];
    }
  /** What the registration would have taken (`field`), and whose it is. */
  | { ok: false; field: 'id' | 'url'; conflict: string };

/** What a heartbeat needs back: the new deadline, and whether the server is free. */
export interface Beat {
  url: string;
  state: StoredState;
  leaseExpires: number;
}

// A type, not an interface: bun:sqlite's bindings need an index signature.
export type Health = {
  fps: number;
  frameMs: number;
  client: ClientState;
};

/** The state a row is really in at `now`, whatever was last written. */
export function effectiveState(row: Pick<ServerRow, 'state' | 'leaseExpires' | 'claimExpires'>, now: number): ServerState {
  if (row.state === 'offline') return 'offline';
  if (row.leaseExpires <= now) return 'expired';
  if (row.state === 'reserved' && row.claimExpires !== null && row.claimExpires <= now) return 'ready';
  return row.state;
}

const ALLOCATION = `id, url, key, claim_expires AS claimExpires, handed_at AS handedAt, grant_id AS grantId, session`;

export function openLeaseStore(path: string) {
  const db = openLeaseDatabase(path);
  const requests = openRequestMemo(db);
  const waiting = openWaitingList(db);
  const listing = openServerListing(db);

  const byId = db.query<ServerRow, { id: string }>(`SELECT ${COLUMNS} FROM servers WHERE id = $id`);
  const all = db.query<ServerRow, []>(`SELECT ${COLUMNS} FROM servers ORDER BY registered_at, id`);
  const othersOnUrl = db.query<Pick<ServerRow, 'id' | 'url' | 'state' | 'leaseExpires' | 'claimExpires'>, { url: string; id: string }>(
    'SELECT id, url, state, lease_expires AS leaseExpires, claim_expires AS claimExpires FROM servers WHERE url = $url AND id != $id',
  );
  const deleteById = db.query('DELETE FROM servers WHERE id = $id');
  const insert = db.query(`
    INSERT INTO servers (id, url, key, instance_hash, state, conn, lease_expires, claim_expires, client, target_fps, registered_at, updated_at)
    VALUES ($id, $url, $key, $instanceHash, $state, $conn, $leaseExpires, NULL, $client, $targetFps, $now, $now)`);
  // A fresh key at every registration: a key leaks with nothing but the connection that got it.
  const reattach = db.query(`
    UPDATE servers SET url = $url, key = $key, state = $state, conn = $conn, lease_expires = $leaseExpires, client = $client,
      claim_expires = CASE WHEN $state = 'reserved' THEN claim_expires ELSE NULL END,
      target_fps = $targetFps, updated_at = $now
    WHERE id = $id`);

  // The expiry, claim-deadline and health tests live in the allocation statement: a server whose
  // lease has run out, whose connection closed or that renders far below its target can never be
  // picked, whether or not anything swept it. The healthiest goes first, then the least recently
  // handed out; a server kept for a returning session has handed_at set to the end of its grace
  // period, so it goes last. Each branch walks the servers_free index in order and stops at its
  // first live row, so the cost does not grow with the number of servers.
  const LIVE = 'lease_expires > $now AND health >= $minHealth';
  type AllocateParams = { now: number; claimExpires: number; minHealth: number; grantId: string; holder: string | null };
  const allocate = db.query<Allocation, AllocateParams & { session: string | null }>(`
    UPDATE servers SET state = 'reserved', claim_expires = $claimExpires, session = $session, session_until = NULL,
      handed_at = $now, updated_at = $now, grant_id = $grantId, holder = $holder
    WHERE id = (
      SELECT id FROM (
        SELECT * FROM (SELECT id, health, handed_at FROM servers WHERE state = 'ready' AND ${LIVE}
                       ORDER BY health DESC, handed_at, id LIMIT 1)
        UNION ALL
        SELECT * FROM (SELECT id, health, handed_at FROM servers WHERE state = 'reserved' AND claim_expires <= $now AND ${LIVE}
                       ORDER BY health DESC, handed_at, id LIMIT 1))
      ORDER BY health DESC, handed_at, id LIMIT 1)
    RETURNING ${ALLOCATION}`);
  const allocateSticky = db.query<Allocation, AllocateParams & { session: string }>(`
    UPDATE servers SET state = 'reserved', claim_expires = $claimExpires, session_until = NULL, handed_at = $now, updated_at = $now,
      grant_id = $grantId, holder = $holder
    WHERE id = (
      SELECT id FROM servers
      WHERE session = $session AND session_until > $now AND ${LIVE}
        AND (state = 'ready' OR (state = 'reserved' AND claim_expires <= $now))
      LIMIT 1)
    RETURNING ${ALLOCATION}`);
  // A reservation not yet claimed, held by this page's session or connection: asked again, the
  // page gets that one back instead of a second server.
  const pendingFor = db.query<Allocation, { now: number; session: string | null; holder: string | null }>(`
    SELECT ${ALLOCATION} FROM servers
    WHERE (session = $session OR holder = $holder) AND state = 'reserved' AND claim_expires > $now AND lease_expires > $now
    LIMIT 1`);
  const heldBySession = db.query<{ id: string }, { session: string; now: number }>(`
    SELECT id FROM servers WHERE session = $session AND state = 'busy' AND lease_expires > $now LIMIT 1`);

  // The reported client reconciles the state: a draining server stays draining, a reservation
  // stays until its client arrives or its deadline passes.
  const heartbeat = db.query<Beat, { id: string; conn: string; leaseExpires: number; now: number } & Health>(`
    UPDATE servers SET lease_expires = $leaseExpires, fps = $fps, frame_ms = $frameMs, client = $client, updated_at = $now,
      -- The frame rate its frame time allows, as a share of its target; unmeasured counts as whole.
      -- Rounded down to a step of 0.1 (it can reach at least this), so that servers about as
      -- healthy as each other take turns.
      health = CASE WHEN $frameMs > 0 AND target_fps > 0
        THEN CAST(min(1.0, 1000.0 / ($frameMs * target_fps)) * 10 AS INTEGER) / 10.0 ELSE 1.0 END,
      state = CASE
        WHEN state = 'draining' THEN 'draining'
        WHEN $client = 'connected' THEN 'busy'
        WHEN state = 'reserved' AND claim_expires > $now THEN 'reserved'
        ELSE 'ready' END,
      claim_expires = CASE WHEN $client = 'none' AND state = 'reserved' AND claim_expires > $now THEN claim_expires ELSE NULL END
    WHERE id = $id AND conn = $conn AND state != 'offline'
    RETURNING url, state, lease_expires AS leaseExpires`);

  // When the client leaves, its session may come back for the server within the grace period.
  const setClient = db.query<unknown, { id: string; conn: string; client: ClientState; now: number; graceUntil: number }>(`
    UPDATE servers SET client = $client, claim_expires = NULL, updated_at = $now,
      session_until = CASE WHEN $client = 'none' AND session IS NOT NULL THEN $graceUntil ELSE NULL END,
      handed_at = CASE WHEN $client = 'none' AND session IS NOT NULL THEN $graceUntil ELSE handed_at END,
      state = CASE WHEN state = 'draining' THEN 'draining' WHEN $client = 'connected' THEN 'busy' ELSE 'ready' END
    WHERE id = $id AND conn = $conn AND state != 'offline'`);

  const release = db.query<ServerRow, { id: string; now: number }>(`
    UPDATE servers SET state = 'ready', claim_expires = NULL, updated_at = $now
    WHERE id = $id AND state = 'reserved'
    RETURNING ${COLUMNS}`);

  const drain = db.query<ServerRow, { id: string; now: number }>(`
    UPDATE servers SET state = 'draining', claim_expires = NULL, updated_at = $now
    WHERE id = $id AND state NOT IN ('offline', 'draining')
    RETURNING ${COLUMNS}`);

  const undrain = db.query<ServerRow, { id: string; now: number }>(`
    UPDATE servers SET state = CASE WHEN client = 'connected' THEN 'busy' ELSE 'ready' END, updated_at = $now
    WHERE id = $id AND state = 'draining'
    RETURNING ${COLUMNS}`);

  const disconnect = db.query<ServerRow, { id: string; conn: string; now: number }>(`
    UPDATE servers SET state = 'offline', conn = NULL, claim_expires = NULL, client = 'none', updated_at = $now
    WHERE id = $id AND conn = $conn
    RETURNING ${COLUMNS}`);

  const countLive = db.query<{ n: number }, { now: number }>(
    `SELECT count(*) AS n FROM servers WHERE lease_expires > $now AND state IN ('ready', 'reserved', 'busy')`,
  );

  const expiredLive = db.query<ServerRow, { now: number }>(
    `SELECT ${COLUMNS} FROM servers WHERE state != 'offline' AND lease_expires <= $now`,
  );

  // Rows of servers long gone: nothing reads them but an operator's list, which they would crowd.
  const purge = db.query<unknown, { before: number }>(
    `DELETE FROM servers WHERE (state = 'offline' AND updated_at <= $before) OR lease_expires <= $before`,
  );

  type BeatInput = { id: string; conn: string; now: number; health: Health };
  const heartbeatTx = db.transaction((beats: BeatInput[], ttlMs: number): (Beat | null)[] =>
    beats.map(({ id, conn, now, health }) => heartbeat.get({ id, conn, leaseExpires: now + ttlMs, now, ...health }) ?? null),
  );

  const registerTx = db.transaction((input: RegisterInput): RegisterResult => {
    const existing = byId.get({ id: input.id });
    // An id is its first registrant's for as long as its row exists.
    if (existing && existing.instanceHash !== input.instanceHash) {
      return { ok: false, field: 'id', conflict: `id ${input.id} belongs to another render server process` };
    }
    // Another id on this URL is a render server that was restarted; while its lease lives, it has not.
    const others = othersOnUrl.all({ url: input.url, id: input.id });
    const alive = others.find((old) => !['offline', 'expired'].includes(effectiveState(old, input.now)));
    if (alive) return { ok: false, field: 'url', conflict: `${input.url} belongs to live render server ${alive.id}` };
    for (const old of others) deleteById.run({ id: old.id });
    const replaced = others.map(({ id, url }) => ({ id, url }));
    const leaseExpires = input.now + input.ttlMs;
    const fields = {
      id: input.id, url: input.url, key: input.newKey, conn: input.conn, leaseExpires, client: input.client, targetFps: input.targetFps, now: input.now,
    };
    if (!existing) {
      insert.run({ ...fields, instanceHash: input.instanceHash, state: input.client === 'connected' ? 'busy' : 'ready' });
      return { ok: true, row: byId.get({ id: input.id })!, isNew: true, replaced };
    }
    const live = effectiveState(existing, input.now);
    // A drain outlasts a reconnection, and so does a reservation: the client holding the ticket may still arrive.
    const state: StoredState =
      existing.state === 'draining' ? 'draining' : input.client === 'connected' ? 'busy' : live === 'reserved' ? 'reserved' : 'ready';
    reattach.run({ ...fields, state });
    return { ok: true, row: byId.get({ id: input.id })!, isNew: live === 'offline' || live === 'expired', replaced };
  });
  const checkpoint = (): void => {
    db.run('PRAGMA wal_checkpoint(TRUNCATE)');
  };
  const grantParams = (now: number, claimMs: number, minHealth: number, holder: string | null) => ({
    now, claimExpires: now + claimMs, minHealth, grantId: crypto.randomUUID(), holder,
  });

  return {
    register: (input: RegisterInput): RegisterResult => registerTx.immediate(input),

    /** Reserves a free server for `session` (or nobody's), or returns null when none is free and healthy enough. */
    allocate: (now: number, claimMs: number, minHealth = 0, session: string | null = null, conn: string | null = null): Allocation | null =>
      allocate.get({ ...grantParams(now, claimMs, minHealth, conn), session }) ?? null,

    /** Reserves the server `session` had, if it is free and the session's grace period has not passed. */
    allocateSticky: (session: string, now: number, claimMs: number, minHealth = 0, conn: string | null = null): Allocation | null =>
      allocateSticky.get({ ...grantParams(now, claimMs, minHealth, conn), session }) ?? null,

    /** The unclaimed reservation this session or connection already holds, if any. */
    pending: ({ session = null, conn = null }: Holder, now: number): Allocation | null =>
      session || conn ? (pendingFor.get({ now, session, holder: conn }) ?? null) : null,

    /** The busy server whose client is of this session (a page reloading finds its old self still connected). */
    heldBy: (session: string, now: number): string | null => heldBySession.get({ session, now })?.id ?? null,

    /** One heartbeat, through the same transaction as a batch: null if `conn` no longer holds the lease. */
    heartbeat: (id: string, conn: string, now: number, ttlMs: number, health: Health): Beat | null =>
      heartbeatTx.immediate([{ id, conn, now, health }], ttlMs)[0],

    /**
     * Many heartbeats in one transaction (one commit instead of one each), each with the time it
     * arrived: the answers in the same order, null where that connection no longer holds the lease.
     */
    heartbeats: (beats: BeatInput[], ttlMs: number): (Beat | null)[] => heartbeatTx.immediate(beats, ttlMs),

    /**
     * Records the render server's report that its client connected or left; `graceMs` keeps the
     * server for the client's session. False if `conn` no longer holds the lease.
     */
    setClient: (id: string, conn: string, client: ClientState, now: number, graceMs = 0): boolean =>
      setClient.run({ id, conn, client, now, graceUntil: now + graceMs }).changes > 0,

    /** Gives back a reservation nobody will claim (its page left before it got the URL). */
    release: (id: string, now: number): boolean => release.get({ id, now }) !== null,

    /** Stops the server being handed out; its client stays. Null if offline or draining already. */
    drain: (id: string, now: number): ServerRow | null => drain.get({ id, now }) ?? null,

    /** Ends a drain. Null if the server was not draining. */
    undrain: (id: string, now: number): ServerRow | null => undrain.get({ id, now }) ?? null,

    /** The control connection closed: from this moment the server is never handed out. */
    disconnect: (id: string, conn: string, now: number): ServerRow | null => disconnect.get({ id, conn, now }) ?? null,

    /** Rows whose lease ran out but that are not yet marked offline (for events, not for correctness). */
    expired: (now: number): ServerRow[] => expiredLive.all({ now }),

    get: (id: string): ServerRow | null => byId.get({ id }) ?? null,

    /** Servers with a live lease that are not draining: the pool clients are served from. */
    liveCount: (now: number): number => countLive.get({ now })!.n,

    all: (): ServerRow[] => all.all(),

    /** One page of servers in registration order, optionally of one state. */
    list: listing.list,

    /** Forgets servers offline, or expired, since before `before`; returns how many. */
    purge: (before: number): number => purge.run({ before }).changes,

    /** Folds the write-ahead log back into the file and truncates it (bounded disk between checkpoints). */
    checkpoint,

    requests,
    waiting,

    close: (): void => {
      checkpoint();
      db.close();
    },
  };
}

export type LeaseStore = ReturnType<typeof openLeaseStore>;
