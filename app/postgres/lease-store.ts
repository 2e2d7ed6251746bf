// The lease store on PostgreSQL, for several dispatchers sharing one truth. Every deadline is set
// and compared on the database's clock (see NOW in client.ts). Allocation is one statement
// (allocation.ts) that locks the row it picks and skips rows other dispatchers hold locked, so
// concurrent dispatchers never hand out one server twice and never wait on each other. What may
// free a server, and every change to the waiting line, is announced on one NOTIFY channel; each
// dispatcher listens and wakes its waiting pages. Notices sent while a dispatcher's listening
// connection was down are lost, so when it listens again it wakes them anyway.

import type { Clock } from '../clock.ts';
import type { Allocation, Beat, Change, LeaseStore, RegisterResult, ServerRow } from '../lease-store.ts';
import { decideRegistration } from '../registration.ts';
import { ALLOCATE, ALLOCATE_STICKY_OR_HELD, FREE, PENDING } from './allocation.ts';
import { NOW, connect, redact, type Runner } from './client.ts';
import { openRequestMemo } from './request-memo.ts';
import { SERVER_COLUMNS as COLUMNS, migrate } from './schema.ts';
import { openServerListing } from './server-listing.ts';
import { keepStatistics } from './statistics.ts';
import { openWaitingList } from './waiting-list.ts';

const CHANNEL = 'render_dispatch_changes';
/** How many times an allocation that found every free server locked looks again. */
const SKIPPED_ATTEMPTS = 5;
/** How many times a registration that raced another for the same id or URL is tried again. */
const REGISTER_ATTEMPTS = 3;

export interface PostgresStoreOptions {
  /** Time from this clock instead of the database's (tests that move time). */
  clock?: Clock;
  /** Rows of servers written again between two vacuums of it, at least (tests make it small; see statistics.ts). */
  churnRows?: number;
}

export async function openPostgresStore(url: string, { clock, churnRows }: PostgresStoreOptions = {}): Promise<LeaseStore> {
  const client = connect(url, clock);
  const { sql, timed, plain } = client;
  try {
    await migrate(sql);
  } catch (error) {
    await sql.close();
    throw error;
  }
  const owner = crypto.randomUUID();
  const listeners = new Set<(change: Change) => void>();
  const tell = (change: Change) => {
    for (const listener of listeners) listener(change);
  };
  // A notice is a hint to look again, never the truth itself: one lost costs a sweep's delay.
  const announce = (serverId?: string) => {
    sql.notify(CHANNEL, JSON.stringify({ from: owner, ...(serverId ? { serverId } : {}) })).catch(() => {});
  };
  /**
   * `change`, an UPDATE … RETURNING id whose parameters end at $`last`, with the notice of each
   * row it changed sent in the same statement (and so at its commit): no round trip of its own.
   * `when` (SQL) says which changes are worth telling.
   */
  const announcing = (change: string, last: number, when = 'true') =>
    `WITH changed AS (${change})
     SELECT id, CASE WHEN ${when} THEN pg_notify($${last + 1}, json_build_object('from', $${last + 2}::text, 'serverId', id)::text) END
     FROM changed`;
  let listened = false;
  const subscription = await sql.listen(
    CHANNEL,
    (payload) => {
      try {
        const { from, serverId } = JSON.parse(payload) as { from?: string; serverId?: string };
        if (from !== owner) tell(typeof serverId === 'string' ? { serverId } : {});
      } catch {
        // Not ours: the channel is open to anyone on the database; ignored.
      }
    },
    () => {
      // Listening again after the connection dropped: whatever was announced meanwhile was lost.
      if (listened) tell({});
      listened = true;
    },
  );
  const requests = openRequestMemo(client);
  const waiting = openWaitingList(client, owner, () => announce());
  const listing = openServerListing(client);
  const statistics = keepStatistics(client, churnRows);

  /** Whether a write changed any servers row (and so left a dead version of it behind). */
  const changedAny = (rows: unknown[]) => (statistics.wrote(rows.length), rows.length > 0);
  const rowOf = async (id: string) => (await plain<ServerRow>(`SELECT ${COLUMNS} FROM servers WHERE id = $1`, [id]))[0] ?? null;
  const oneRow = async (text: string, params: unknown[]) => (await timed<ServerRow>(text, params))[0] ?? null;

  async function registerOnce(input: Parameters<LeaseStore['register']>[0]): Promise<RegisterResult> {
    return sql.begin(async (tx) => {
      const [{ now }] = await timed<{ now: number }>(`SELECT ${NOW} AS now`, [], tx);
      const found = await plain<ServerRow>(`SELECT ${COLUMNS} FROM servers WHERE id = $1 OR url = $2 ORDER BY id FOR UPDATE`, [input.id, input.url], tx);
      const existing = found.find((row) => row.id === input.id) ?? null;
      const decided = decideRegistration(input, existing, found.filter((row) => row.id !== input.id), now);
      if (!decided.ok) return decided;
      if (decided.replaced.length) await plain('DELETE FROM servers WHERE id = ANY($1::text[])', [decided.replaced.map((r) => r.id)], tx);
      const values = [input.id, input.url, input.newKey, input.conn, now + input.ttlMs, input.client, input.targetFps, now, decided.state];
      const [row] = decided.existing
        ? await plain<ServerRow>(
            `UPDATE servers SET url = $2, key = $3, state = $9, conn = $4, lease_expires = $5, client = $6,
               claim_expires = CASE WHEN $9 = 'reserved' THEN claim_expires ELSE NULL END, target_fps = $7, updated_at = $8
             WHERE id = $1 RETURNING ${COLUMNS}`,
            values,
            tx,
          )
        : await plain<ServerRow>(
            `INSERT INTO servers (id, url, key, conn, lease_expires, client, target_fps, registered_at, updated_at, state, instance_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10) RETURNING ${COLUMNS}`,
            [...values, input.instanceHash],
            tx,
          );
      return { ok: true, row, isNew: decided.isNew, replaced: decided.replaced };
    });
  }

  /**
   * A page's pending reservation, or else a new one (`reserve` checks and reserves in one
   * statement, ./allocation.ts). A connection lives on one dispatcher, so its requests are taken
   * one at a time here. A session may ask through several dispatchers at once: it is serialised
   * across all of them by an advisory lock held to the end of its transaction.
   */
  const connTurns = new Map<string, Promise<unknown>>();
  function inTurn<T>(conn: string, work: () => Promise<T>): Promise<T> {
    const turn = (connTurns.get(conn) ?? Promise.resolve()).then(work, work);
    connTurns.set(conn, turn);
    void turn.finally(() => connTurns.get(conn) === turn && connTurns.delete(conn)).catch(() => {});
    return turn;
  }
  /** `work` in a transaction holding the session's advisory lock. */
  function inSession<T>(session: string, work: (tx: Runner) => Promise<T>): Promise<T> {
    return sql.begin(async (tx) => {
      await plain('SELECT pg_advisory_xact_lock(hashtext($1))', [`session:${session}`], tx);
      return work(tx);
    });
  }
  async function pendingOr(session: string | null, conn: string | null, reserve: (tx?: Runner) => Promise<Allocation[]>): Promise<Allocation | null> {
    if (!session) return conn ? inTurn(conn, async () => (await reserve())[0] ?? null) : ((await reserve())[0] ?? null);
    return inSession(session, async (tx) => (await reserve(tx))[0] ?? null);
  }
  /** The page's pending reservation, else any free server (one statement, ALLOCATE). */
  async function pendingOrFree(claimMs: number, minHealth: number, session: string | null, conn: string | null, tx?: Runner): Promise<Allocation[]> {
    for (let attempt = 1; ; attempt++) {
      const reserved = await timed<Allocation>(ALLOCATE, [claimMs, session, crypto.randomUUID(), conn, minHealth], tx);
      statistics.wrote(reserved.length);
      if (reserved.length || attempt >= SKIPPED_ATTEMPTS) return reserved;
      // Nothing unlocked was free. The free servers left may only be locked for a moment (a
      // heartbeat batch, another dispatcher's reservation that will fail): look again while
      // any is still free, rather than tell a page none while a server is free.
      const [{ free }] = await timed<{ free: boolean }>(`SELECT EXISTS (SELECT 1 FROM servers WHERE ${FREE('$2')}) AS free`, [minHealth], tx);
      if (!free) return reserved;
    }
  }

  const store: LeaseStore = {
    engine: 'postgres',
    location: redact(url),
    now: async () => (await timed<{ now: number }>(`SELECT ${NOW} AS now`))[0].now,

    async register(input) {
      for (let attempt = 1; ; attempt++) {
        try {
          const result = await registerOnce(input);
          if (result.ok) announce(input.id);
          if (result.ok && result.isNew) statistics.registered();
          return result;
        } catch (error) {
          // Another dispatcher inserted the same id or URL meanwhile: look again.
          if ((error as { errno?: string }).errno !== '23505' || attempt >= REGISTER_ATTEMPTS) throw error;
        }
      }
    },

    allocate: (claimMs, minHealth = 0, session = null, conn = null) =>
      pendingOr(session, conn, (tx) => pendingOrFree(claimMs, minHealth, session, conn, tx)),

    allocateForSession: (session, claimMs, minHealth = 0, conn = null, waitForOwn = true) =>
      inSession(session, async (tx) => {
        const [row] = await timed<Allocation & { held: string | null }>(ALLOCATE_STICKY_OR_HELD, [claimMs, session, crypto.randomUUID(), conn, minHealth, waitForOwn], tx);
        if (row?.held) return { allocation: null, held: row.held };
        statistics.wrote(row ? 1 : 0);
        if (row) {
          const { held: _, ...allocation } = row;
          return { allocation, held: null };
        }
        const [fresh] = await pendingOrFree(claimMs, minHealth, session, conn, tx);
        return { allocation: fresh ?? null, held: null };
      }),

    pending: async ({ session = null, conn = null }) =>
      session || conn ? ((await timed<Allocation>(PENDING('$2', '$3'), [session, conn]))[0] ?? null) : null,

    heartbeat: async (id, conn, ttlMs, health) => (await store.heartbeats([{ id, conn, ageMs: 0, health }], ttlMs))[0],

    // One statement for the whole batch: the beats travel as one JSON array.
    async heartbeats(beats, ttlMs) {
      const rows = await timed<Beat & { id: string }>(
        `UPDATE servers s SET lease_expires = ${NOW} - b.age + $2, fps = b.fps, frame_ms = b.frame_ms, client = b.client, updated_at = ${NOW},
           health = CASE WHEN b.frame_ms > 0 AND s.target_fps > 0
             THEN floor(least(1.0, 1000.0 / (b.frame_ms * s.target_fps)) * 10) / 10.0 ELSE 1.0 END,
           state = CASE
             WHEN s.state = 'draining' THEN 'draining'
             WHEN b.client = 'connected' THEN 'busy'
             WHEN s.state = 'reserved' AND s.claim_expires > ${NOW} THEN 'reserved'
             ELSE 'ready' END,
           claim_expires = CASE WHEN b.client = 'none' AND s.state = 'reserved' AND s.claim_expires > ${NOW} THEN s.claim_expires ELSE NULL END
         FROM jsonb_to_recordset($3::text::jsonb) AS b(id text, conn text, age float8, fps float8, frame_ms float8, client text)
         WHERE s.id = b.id AND s.conn = b.conn AND s.state <> 'offline'
         RETURNING s.id, s.url, s.state, s.lease_expires AS "leaseExpires"`,
        [ttlMs, JSON.stringify(beats.map(({ id, conn, ageMs, health }) => ({ id, conn, age: ageMs, fps: health.fps, frame_ms: health.frameMs, client: health.client })))],
      );
      const byId = new Map(rows.map(({ id, ...beat }) => [id, beat]));
      return beats.map(({ id }) => byId.get(id) ?? null);
    },

    // A client leaving frees its server: that is told.
    setClient: async (id, conn, client, graceMs = 0) =>
      changedAny(
        await timed(
          announcing(
            `UPDATE servers SET client = $4::text, claim_expires = NULL, updated_at = ${NOW},
               session_until = CASE WHEN $4::text = 'none' AND session IS NOT NULL THEN ${NOW} + $5 ELSE NULL END,
               handed_at = CASE WHEN $4::text = 'none' AND session IS NOT NULL THEN ${NOW} + $5 ELSE handed_at END,
               state = CASE WHEN state = 'draining' THEN 'draining' WHEN $4::text = 'connected' THEN 'busy' ELSE 'ready' END
             WHERE id = $2 AND conn = $3 AND state <> 'offline' RETURNING id`,
            5,
            `$4::text = 'none'`,
          ),
          [id, conn, client, graceMs, CHANNEL, owner],
        ),
      ),

    release: async (id) =>
      changedAny(
        await timed(
          announcing(`UPDATE servers SET state = 'ready', claim_expires = NULL, updated_at = ${NOW} WHERE id = $2 AND state = 'reserved' RETURNING id`, 2),
          [id, CHANNEL, owner],
        ),
      ),

    drain: (id) =>
      oneRow(
        `UPDATE servers SET state = 'draining', claim_expires = NULL, updated_at = ${NOW}
         WHERE id = $2 AND state NOT IN ('offline', 'draining') RETURNING ${COLUMNS}`,
        [id],
      ),

    async undrain(id) {
      const row = await oneRow(
        `UPDATE servers SET state = CASE WHEN client = 'connected' THEN 'busy' ELSE 'ready' END, updated_at = ${NOW}
         WHERE id = $2 AND state = 'draining' RETURNING ${COLUMNS}`,
        [id],
      );
      if (row) announce(id);
      return row;
    },

    disconnect: (id, conn) =>
      oneRow(
        `UPDATE servers SET state = 'offline', conn = NULL, claim_expires = NULL, client = 'none', updated_at = ${NOW}
         WHERE id = $2 AND conn = $3 RETURNING ${COLUMNS}`,
        [id, conn],
      ),

    expired: () => timed<ServerRow>(`SELECT ${COLUMNS} FROM servers WHERE state <> 'offline' AND lease_expires <= ${NOW}`),
    get: rowOf,
    liveCount: async () =>
      (await timed<{ n: number }>(`SELECT count(*)::int AS n FROM servers WHERE lease_expires > ${NOW} AND state IN ('ready', 'reserved', 'busy')`))[0].n,
    freeCount: async (minHealth = 0) => (await timed<{ n: number }>(`SELECT count(*)::int AS n FROM servers WHERE ${FREE('$2')}`, [minHealth]))[0].n,
    all: () => plain<ServerRow>(`SELECT ${COLUMNS} FROM servers ORDER BY registered_at, id`),
    list: listing.list,
    purge: async (retentionMs) =>
      (
        await timed<{ n: number }>(
          `WITH gone AS (DELETE FROM servers WHERE (state = 'offline' AND updated_at <= ${NOW} - $2) OR lease_expires <= ${NOW} - $2 RETURNING 1)
           SELECT count(*)::int AS n FROM gone`,
          [retentionMs],
        )
      )[0].n,
    maintain: statistics.maintain,
    requests,
    waiting,
    keepAlive: waiting.keepAlive,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    ready: async () => {
      await plain('SELECT 1');
      return true;
    },
    async close() {
      await waiting.close().catch(() => {});
      await subscription.unlisten().catch(() => {});
      await sql.close();
    },
  };
  return store;
}
