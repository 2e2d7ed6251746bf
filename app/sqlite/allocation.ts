// Handing a server to a page on the lease file: a new reservation, a sticky return to the server
// a session held, and the reservation a page already holds, which it gets back when it asks again.
// Kept apart from the other lease transitions in lease-store.ts because it alone consults the
// full-fleet memo (./full-fleet.ts): a write that may free a server forgets the memo there, and a
// reservation, or finding none, updates it here.

import type { Database } from 'bun:sqlite';
import type { Clock } from '../clock.ts';
import type { Allocation, SessionAllocation } from '../lease-store.ts';
import type { FullFleet } from './full-fleet.ts';
import type { GroupCommit } from './group-commit.ts';
import { LEASE_EXPIRES, SERVERS } from './schema.ts';

const ALLOCATION = `id, url, key, claim_expires AS claimExpires, handed_at AS handedAt, grant_id AS grantId, session`;

export function openAllocation(db: Database, group: GroupCommit, clock: Clock, fleet: FullFleet) {
  // The expiry, claim-deadline and health tests live in the allocation statements: a server whose
  // lease has run out, whose connection closed or that renders far below its target can never be
  // picked, whether or not anything swept it. The healthiest goes first, then the least recently
  // handed out; a server kept for a returning session has handed_at set to the end of its grace
  // period, so it goes last. A free server is ready, or reserved by a page that did not come in
  // time: the first is the first live row of a walk of the servers_free index, the second is
  // looked for among the lapsed reservations only (servers_lapsing), which a live server's next
  // heartbeat returns to the pool; what stays is a dead server's, until its row is purged. So
  // neither cost grows with the number of servers. The two picks and the update are three
  // statements: as one (a UNION ALL with an UPDATE ... RETURNING) the same step took twice as long.
  const LIVE = 'lease_expires > $now AND health >= $minHealth';
  const FREE = `(state = 'ready' OR (state = 'reserved' AND claim_expires <= $now)) AND ${LIVE}`;
  type Pick = { id: string; url: string; key: string; health: number; handedAt: number };
  type PickParams = { now: number; minHealth: number };
  const PICKED = 'id, url, key, health, handed_at AS handedAt';
  const ORDER = 'ORDER BY health DESC, handed_at, id LIMIT 1';
  const firstReady = db.query<Pick, PickParams>(`SELECT ${PICKED} FROM ${SERVERS} WHERE state = 'ready' AND ${LIVE} ${ORDER}`);
  const firstLapsed = db.query<Pick, PickParams>(`
    SELECT ${PICKED} FROM servers INDEXED BY servers_lapsing CROSS JOIN leases USING (id)
    WHERE state = 'reserved' AND claim_expires <= $now AND ${LIVE} ${ORDER}`);
  // The order of ORDER between the two; ids compare as SQLite's BINARY collation does for ASCII.
  const first = (a: Pick | null, b: Pick | null): Pick | null => {
    if (!a || !b) return a ?? b;
    if (a.health !== b.health) return a.health > b.health ? a : b;
    if (a.handedAt !== b.handedAt) return a.handedAt < b.handedAt ? a : b;
    return a.id < b.id ? a : b;
  };
  type AllocateParams = { now: number; claimExpires: number; minHealth: number; grantId: string; holder: string | null };
  const reserve = db.query<unknown, Omit<AllocateParams, 'minHealth'> & { id: string; session: string | null }>(`
    UPDATE servers SET state = 'reserved', claim_expires = $claimExpires, session = $session, session_until = NULL,
      handed_at = $now, updated_at = $now, grant_id = $grantId, holder = $holder
    WHERE id = $id`);
  /** The picked server reserved for the page, as its grant. */
  const grant = (picked: Pick | null, params: AllocateParams & { session: string | null }): Allocation | null => {
    if (!picked) return null;
    const { minHealth: _, ...granted } = params;
    reserve.run({ ...granted, id: picked.id });
    const { now, claimExpires, grantId, session } = params;
    return { id: picked.id, url: picked.url, key: picked.key, claimExpires, handedAt: now, grantId, session };
  };
  const allocate = (params: AllocateParams & { session: string | null }): Allocation | null =>
    grant(first(firstReady.get(params), firstLapsed.get(params)), params);
  // The server kept for a returning session, looked up by session: left to itself, SQLite walked
  // every free server's entry in servers_free instead, for every page that sends its session
  // (about 100 µs at 1,000 servers). A session keeps one server or a few: they are read unsorted
  // and the first in allocation's order taken here, then reserved as any other. Sorted by SQLite,
  // as the subquery of one UPDATE, the ORDER BY cost about 11 µs even for a session with none.
  const keptFor = db.query<Pick, PickParams & { session: string }>(`
    SELECT ${PICKED} FROM servers INDEXED BY servers_by_session
    WHERE session = $session AND session_until > $now AND (state = 'ready' OR (state = 'reserved' AND claim_expires <= $now))
      AND health >= $minHealth AND ${LEASE_EXPIRES} > $now`);
  const allocateSticky = (params: AllocateParams & { session: string }): Allocation | null =>
    grant(keptFor.all(params).reduce<Pick | null>(first, null), params);
  // The session's server still busy with a client (a reloading page's old self).
  const busyFor = db.query<{ id: string }, { session: string; now: number }>(`
    SELECT id FROM servers INDEXED BY servers_by_session WHERE session = $session AND state = 'busy' AND ${LEASE_EXPIRES} > $now LIMIT 1`);
  const countFree = db.query<{ n: number }, { now: number; minHealth: number }>(`SELECT count(*) AS n FROM ${SERVERS} WHERE ${FREE}`);
  // A reservation not yet claimed, held by this page's connection or session: asked again, the
  // page gets that one back instead of a second server. Each is looked up in a partial index of
  // reservations only (migration 10), the lease by a subquery (LEASE_EXPIRES).
  const PENDING = `SELECT ${ALLOCATION} FROM servers INDEXED BY`;
  const STILL = `state = 'reserved' AND claim_expires > $now AND ${LEASE_EXPIRES} > $now LIMIT 1`;
  const pendingByHolder = db.query<Allocation, { now: number; holder: string }>(`${PENDING} servers_holding WHERE holder = $holder AND ${STILL}`);
  const pendingBySession = db.query<Allocation, { now: number; session: string }>(`${PENDING} servers_session_holding WHERE session = $session AND ${STILL}`);

  type Full = { pending: boolean } | null;
  const pendingFor = (session: string | null, conn: string | null, now: number): Allocation | null =>
    (conn ? pendingByHolder.get({ now, holder: conn }) : null) ?? (session ? pendingBySession.get({ now, session }) : null);
  // At a full fleet, looked up only while some page holds a reservation.
  const pendingUnless = (full: Full, session: string | null, conn: string | null, now: number): Allocation | null =>
    !full || full.pending ? pendingFor(session, conn, now) : null;
  const grantParams = (claimMs: number, minHealth: number, holder: string | null) => {
    const now = clock.now();
    return { now, claimExpires: now + claimMs, minHealth, grantId: crypto.randomUUID(), holder };
  };
  /**
   * Runs a page's `step` with its grant's parameters, and whether the fleet is known to be full
   * (then only a reservation some page holds can be answered, and only while one is held:
   * ./full-fleet.ts). Every statement of a step runs at once in this process, so nothing comes
   * between them. Decided last in the turn, after the reports read in it: a server freed in the
   * same turn is handed out, and a page asking again as its client's arrival is reported is not
   * handed back the server that client now has. At a full fleet that costs no transaction, unless
   * the turn opened one anyway; a step that finds a server freed with no transaction open (the
   * memo lapsed with time) is decided again as a last step of the next turn.
   */
  const decide = <T>(claimMs: number, minHealth: number, conn: string | null, step: (params: AllocateParams, full: Full) => T): Promise<T> => {
    const params = grantParams(claimMs, minHealth, conn);
    const reserve = () => group.last(() => step(params, fleet.known(minHealth, params.now)));
    if (!fleet.known(minHealth, params.now)) return reserve();
    return group
      .lastRead(() => {
        const full = fleet.known(minHealth, params.now);
        return full || db.inTransaction ? { answer: step(params, full) } : null;
      })
      .then((read) => (read ? read.answer : reserve()));
  };
  // A new reservation forgets the full-fleet memo (its page may ask for it again); finding no free
  // server at all sets it.
  const reserved = (got: Allocation | null): Allocation | null => (got && fleet.forget(), got);
  const anyFree = (params: AllocateParams & { session: string | null }): Allocation | null => {
    const got = allocate(params);
    if (!got) fleet.found(params.minHealth, params.now);
    return reserved(got);
  };

  return {
    allocate: (claimMs: number, minHealth: number, session: string | null, conn: string | null): Promise<Allocation | null> =>
      decide(claimMs, minHealth, conn, (params, full) => pendingUnless(full, session, conn, params.now) ?? (full ? null : anyFree({ ...params, session }))),
    allocateForSession: (session: string, claimMs: number, minHealth: number, conn: string | null, waitForOwn: boolean): Promise<SessionAllocation> =>
      decide(claimMs, minHealth, conn, (params, full) => {
        const pending = pendingUnless(full, session, conn, params.now);
        if (pending) return { allocation: pending, held: null };
        const kept = full ? null : reserved(allocateSticky({ ...params, session }));
        if (kept) return { allocation: kept, held: null };
        const held = waitForOwn ? (busyFor.get({ session, now: params.now })?.id ?? null) : null;
        return { allocation: held || full ? null : anyFree({ ...params, session }), held };
      }),
    pending: (session: string | null, conn: string | null): Promise<Allocation | null> =>
      group.read(() => pendingFor(session, conn, clock.now())),
    /** How many servers with at least `minHealth` could be handed out now. */
    freeCount: (minHealth: number): Promise<number> => group.read(() => countFree.get({ now: clock.now(), minHealth })!.n),
  };
}
