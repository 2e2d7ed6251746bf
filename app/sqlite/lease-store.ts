// The lease store on bun:sqlite (WAL): the embedded default. Time is the injected clock's. A
// dispatcher restarted on the same file carries on where it stopped: deadlines are absolute times,
// so a restart neither shortens nor extends any lease.
//
// The file is one process's. Several dispatchers may still share it when that process hosts them
// (the workers of `--workers N`, through app/store-link.ts): each gets a view with a waiting-line
// place of its own, and what one view does that may free a server is told to the others, as
// PostgreSQL's NOTIFY tells other dispatchers. bun:sqlite answers synchronously, so nothing a view
// does can come between the statements of another's step.

import type { ClientState } from '../../common/protocol.ts';
import { systemClock, type Clock } from '../clock.ts';
import {
  type Change,
  type LeaseStore,
  type RegisterInput,
  type RegisterResult,
  type ServerRow,
} from '../lease-store.ts';
import { decideRegistration } from '../registration.ts';
import { openAllocation } from './allocation.ts';
import { checkpointOnThread } from './checkpoints.ts';
import { openFullFleet } from './full-fleet.ts';
import { createGroupCommit } from './group-commit.ts';
import { openHeartbeats } from './heartbeats.ts';
import { openRequestMemo } from './request-memo.ts';
import { SERVER_COLUMNS as COLUMNS, SERVERS, openLeaseDatabase } from './schema.ts';
import { openServerListing } from './server-listing.ts';
import { openWaitingList } from './waiting-list.ts';

/** Whether `path` names a file (not one of SQLite's in-memory databases). */
const isFile = (path: string) => path !== '' && path !== ':memory:' && !path.startsWith('file::memory:');

/** One open lease file, and the dispatchers' views of it. */
export interface SqliteLeaseFile {
  /** A store for one dispatcher: its own place in the waiting line, told what the other views do. */
  view(): LeaseStore;
  /** Closes the file (after its views). */
  close(): Promise<void>;
}

/** The store of a dispatcher that has the file to itself. */
export function openSqliteStore(path: string, clock: Clock = systemClock): LeaseStore {
  const file = openSqliteFile(path, clock);
  const view = file.view();
  return {
    ...view,
    close: async () => {
      await view.close();
      await file.close();
    },
  };
}

export function openSqliteFile(path: string, clock: Clock = systemClock): SqliteLeaseFile {
  const db = openLeaseDatabase(path);
  // What a rolled-back group did (a reservation, say) is undone: a full fleet it found may not be,
  // and an answer it remembered is not.
  const fleet = openFullFleet(db);
  const group = createGroupCommit(db, setImmediate, () => {
    fleet.forget();
    requests.rolledBack();
  });
  const allocation = openAllocation(db, group, clock, fleet);
  const requests = openRequestMemo(db, group, clock);
  const listing = openServerListing(db, group, clock);
  // Each view's listener, by its owner id: a view is not told what it did itself.
  const views = new Map<string, Set<(change: Change) => void>>();
  const announce = (from: string, serverId?: string) => {
    for (const [owner, listeners] of views) {
      if (owner === from) continue;
      // A listener that fails (a worker just gone) must not keep the others from being told.
      for (const listener of listeners) {
        try {
          listener(serverId ? { serverId } : {});
        } catch {}
      }
    }
  };

  const byId = db.query<ServerRow, { id: string }>(`SELECT ${COLUMNS} FROM ${SERVERS} WHERE id = $id`);
  const all = db.query<ServerRow, []>(`SELECT ${COLUMNS} FROM ${SERVERS} ORDER BY registered_at, id`);
  const othersOnUrl = db.query<Pick<ServerRow, 'id' | 'url' | 'state' | 'leaseExpires' | 'claimExpires'>, { url: string; id: string }>(
    `SELECT id, url, state, lease_expires AS leaseExpires, claim_expires AS claimExpires FROM ${SERVERS} WHERE url = $url AND id != $id`,
  );
  // Its lease row goes with it (a trigger).
  const deleteById = db.query('DELETE FROM servers WHERE id = $id');
  const insert = db.query(`
    INSERT INTO servers (id, url, key, instance_hash, state, conn, claim_expires, client, target_fps, registered_at, updated_at)
    VALUES ($id, $url, $key, $instanceHash, $state, $conn, NULL, $client, $targetFps, $now, $now)`);
  // A fresh key at every registration: a key leaks with nothing but the connection that got it.
  const reattach = db.query(`
    UPDATE servers SET url = $url, key = $key, state = $state, conn = $conn, client = $client,
      claim_expires = CASE WHEN $state = 'reserved' THEN claim_expires ELSE NULL END,
      target_fps = $targetFps, updated_at = $now
    WHERE id = $id`);
  const setLease = db.query(`
    INSERT INTO leases (id, lease_expires) VALUES ($id, $leaseExpires)
    ON CONFLICT (id) DO UPDATE SET lease_expires = excluded.lease_expires`);

  // When the client leaves, its session may come back for the server within the grace period.
  const setClient = db.query<unknown, { id: string; conn: string; client: ClientState; now: number; graceUntil: number }>(`
    UPDATE servers SET client = $client, claim_expires = NULL, updated_at = $now,
      session_until = CASE WHEN $client = 'none' AND session IS NOT NULL THEN $graceUntil ELSE NULL END,
      handed_at = CASE WHEN $client = 'none' AND session IS NOT NULL THEN $graceUntil ELSE handed_at END,
      state = CASE WHEN state = 'draining' THEN 'draining' WHEN $client = 'connected' THEN 'busy' ELSE 'ready' END
    WHERE id = $id AND conn = $conn AND state != 'offline'`);

  // Each answers with the id of the row it changed, read whole afterwards (RETURNING sees only the
  // table it updates).
  type Changed = { id: string };
  const release = db.query<Changed, { id: string; now: number }>(`
    UPDATE servers SET state = 'ready', claim_expires = NULL, updated_at = $now
    WHERE id = $id AND state = 'reserved'
    RETURNING id`);

  const drain = db.query<Changed, { id: string; now: number }>(`
    UPDATE servers SET state = 'draining', claim_expires = NULL, updated_at = $now
    WHERE id = $id AND state NOT IN ('offline', 'draining')
    RETURNING id`);

  const undrain = db.query<Changed, { id: string; now: number }>(`
    UPDATE servers SET state = CASE WHEN client = 'connected' THEN 'busy' ELSE 'ready' END, updated_at = $now
    WHERE id = $id AND state = 'draining'
    RETURNING id`);

  const disconnect = db.query<Changed, { id: string; conn: string; now: number }>(`
    UPDATE servers SET state = 'offline', conn = NULL, claim_expires = NULL, client = 'none', updated_at = $now
    WHERE id = $id AND conn = $conn
    RETURNING id`);
  const whole = (changed: Changed | null): ServerRow | null => (changed ? byId.get({ id: changed.id }) : null);

  const countLive = db.query<{ n: number }, { now: number }>(
    `SELECT count(*) AS n FROM ${SERVERS} WHERE lease_expires > $now AND state IN ('ready', 'reserved', 'busy')`,
  );

  const expiredLive = db.query<ServerRow, { now: number }>(
    `SELECT ${COLUMNS} FROM ${SERVERS} WHERE state != 'offline' AND lease_expires <= $now`,
  );

  // Rows of servers long gone: nothing reads them but an operator's list, which they would crowd.
  const purge = db.query<unknown, { before: number }>(
    `DELETE FROM servers WHERE (state = 'offline' AND updated_at <= $before) OR id IN (SELECT id FROM leases WHERE lease_expires <= $before)`,
  );

  const heartbeatTx = openHeartbeats(db);

  const registerTx = db.transaction((input: RegisterInput, now: number): RegisterResult => {
    const existing = byId.get({ id: input.id });
    const others = othersOnUrl.all({ url: input.url, id: input.id });
    const decided = decideRegistration(input, existing, others, now);
    if (!decided.ok) return decided;
    for (const old of decided.replaced) deleteById.run({ id: old.id });
    const fields = {
      id: input.id, url: input.url, key: input.newKey, conn: input.conn, client: input.client, targetFps: input.targetFps, now, state: decided.state,
    };
    if (decided.existing) reattach.run(fields);
    else insert.run({ ...fields, instanceHash: input.instanceHash });
    setLease.run({ id: input.id, leaseExpires: now + input.ttlMs });
    return { ok: true, row: byId.get({ id: input.id })!, isNew: decided.isNew, replaced: decided.replaced };
  });
  // bun:sqlite answers synchronously; the interface is asynchronous because a database across the
  // network cannot be. Each method runs its statements at once, in this turn's transaction when it
  // writes, and answers once what it wrote or may have seen is committed (./group-commit.ts).
  const { write, read } = group;
  const view = (): LeaseStore => {
    const owner = crypto.randomUUID();
    const listeners = new Set<(change: Change) => void>();
    views.set(owner, listeners);
    const waiting = openWaitingList(db, group, clock, owner, () => announce(owner));
    // The other views are told of a change once it is committed.
    const announcing = <T>(done: Promise<T>, serverId: (result: T) => string | null): Promise<T> =>
      done.then((result) => {
        const id = serverId(result);
        if (id) announce(owner, id);
        return result;
      });
    return {
      engine: 'sqlite',
      location: path,
      now: async () => clock.now(),
      register: (input) => announcing(write(() => (fleet.forget(), registerTx.immediate(input, clock.now()))), (result) => (result.ok ? input.id : null)),
      allocate: (claimMs, minHealth = 0, session = null, conn = null) => allocation.allocate(claimMs, minHealth, session, conn),
      allocateForSession: (session, claimMs, minHealth = 0, conn = null, waitForOwn = true) =>
        allocation.allocateForSession(session, claimMs, minHealth, conn, waitForOwn),
      pending: ({ session = null, conn = null }) => allocation.pending(session, conn),
      heartbeat: (id, conn, ttlMs, health) => write(() => (fleet.forget(), heartbeatTx.immediate([{ id, conn, ageMs: 0, health }], ttlMs, clock.now())[0])),
      heartbeats: (beats, ttlMs) => write(() => (fleet.forget(), heartbeatTx.immediate(beats, ttlMs, clock.now()))),
      setClient: (id: string, conn: string, client: ClientState, graceMs = 0) => {
        const now = clock.now();
        const set = write(() => (fleet.forget(), setClient.run({ id, conn, client, now, graceUntil: now + graceMs }).changes > 0));
        return announcing(set, (done) => (done && client === 'none' ? id : null));
      },
      release: (id) => announcing(write(() => (fleet.forget(), release.get({ id, now: clock.now() }) !== null)), (released) => (released ? id : null)),
      drain: (id) => write(() => whole(drain.get({ id, now: clock.now() }))),
      undrain: (id) => announcing(write(() => (fleet.forget(), whole(undrain.get({ id, now: clock.now() })))), (row) => row?.id ?? null),
      disconnect: (id, conn) => write(() => whole(disconnect.get({ id, conn, now: clock.now() }))),
      expired: () => read(() => expiredLive.all({ now: clock.now() })),
      get: (id) => read(() => byId.get({ id }) ?? null),
      liveCount: () => read(() => countLive.get({ now: clock.now() })!.n),
      freeCount: (minHealth = 0) => allocation.freeCount(minHealth),
      all: () => read(() => all.all()),
      list: listing.list,
      purge: (retentionMs) => write(() => purge.run({ before: clock.now() - retentionMs }).changes),
      // Folds the write-ahead log back into the file and truncates it (bounded disk between
      // checkpoints), the checkpoint thread holding off; a checkpoint cannot run inside a
      // transaction, so the open one commits first. One that finds another process reading the log
      // leaves it for the next pass.
      maintain: async () => {
        await (checkpoints ? checkpoints.hold(() => checkpointHere('TRUNCATE')) : checkpointHere('TRUNCATE'));
        const failure = checkpointFailure;
        checkpointFailure = null;
        if (failure) throw new Error(failure);
      },
      requests,
      waiting,
      keepAlive: async (ms) => waiting.keepAlive(ms),
      onChange: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      ready: () => read(() => db.query('SELECT 1').get() !== null),
      close: async () => {
        views.delete(owner);
        if (await waiting.close()) announce(owner);
      },
    };
  };
  // Checkpoints run on a thread (./checkpoints.ts); the log starts again from its beginning only
  // after one on this connection, with no transaction open and the thread holding off, finds
  // nothing it holds left to fold back. Why the thread gave the file back is told once, by the next
  // maintenance pass. Started last: nothing after it can fail and leave its connection open.
  let checkpointFailure: string | null = null;
  const checkpointHere = (mode: 'PASSIVE' | 'TRUNCATE'): boolean => {
    group.flush();
    return db.query<{ busy: number; log: number; checkpointed: number }, []>(`PRAGMA wal_checkpoint(${mode})`).all()[0].busy === 0;
  };
  const catchUp = (): boolean => {
    try {
      return checkpointHere('PASSIVE');
    } catch (error) {
      checkpointFailure = `a checkpoint failed: ${error}`;
      return false;
    }
  };
  const checkpoints = isFile(path)
    ? checkpointOnThread(db, path, catchUp, (reason) => (checkpointFailure = `checkpoints are back on the dispatcher's connection: ${reason}`))
    : null;

  return {
    view,
    close: async () => {
      views.clear();
      // The thread's connection closed first, the truncate finds nobody else checkpointing.
      await checkpoints?.stop();
      fleet.close();
      checkpointHere('TRUNCATE');
      db.close();
    },
  };
}
