// The statements that hand servers out on PostgreSQL. Each reservation is one statement: it
// answers the page's reservation not yet claimed if it holds one, and otherwise locks the row it
// picks (skipping rows other dispatchers hold locked) and reserves it, so concurrent dispatchers
// never hand out one server twice and never wait on each other. Every statement's $1 is the time
// (NOW, client.ts).

import { NOW } from './client.ts';

/** A reservation's columns, as Allocation. */
export const ALLOCATION = `id, url, key, claim_expires AS "claimExpires", handed_at AS "handedAt", grant_id AS "grantId", session`;

/** A free server: ready, or reserved by a page that did not come in time; live and healthy enough (`minHealth`, a parameter). */
export const FREE = (minHealth: string) =>
  `state IN ('ready', 'reserved') AND (state = 'ready' OR claim_expires <= ${NOW}) AND lease_expires > ${NOW} AND health >= ${minHealth}`;

/** The reservation not yet claimed that the page's session or connection (parameters) holds. */
export const PENDING = (session: string, conn: string) =>
  `SELECT ${ALLOCATION} FROM servers
   WHERE (session = ${session}::text OR holder = ${conn}::text) AND state = 'reserved' AND claim_expires > ${NOW} AND lease_expires > ${NOW}
   LIMIT 1`;

/**
 * Reserves the server `pick` selects (one id, FOR UPDATE SKIP LOCKED) unless the page already
 * holds a reservation not yet claimed, which is answered instead: one statement, one round trip.
 * $2 is the claim period, $3 the page's session, $4 the grant's id, $5 the page's connection, $6
 * the least health; `takeSession` gives the server the page's session. With `orHeld`, when
 * nothing is answered or reserved and $7 is true, the session's server still busy with a client
 * comes back instead, as `held` (its other columns null): one statement sees one snapshot, so a
 * server released meanwhile is either busy in it or free for `pick`, never neither.
 */
const pendingOrReserve = (pick: string, takeSession: boolean, orHeld = false) =>
  `WITH pending AS (${PENDING('$3', '$5')}),
   reserved AS (
     UPDATE servers SET state = 'reserved', claim_expires = ${NOW} + $2, ${takeSession ? 'session = $3, ' : ''}session_until = NULL,
       handed_at = ${NOW}, updated_at = ${NOW}, grant_id = $4, holder = $5
     WHERE NOT EXISTS (SELECT 1 FROM pending) AND id = (${pick})
     RETURNING ${ALLOCATION})${
       orHeld
         ? `,
   held AS (SELECT id FROM servers WHERE $7::boolean AND session = $3 AND state = 'busy' AND lease_expires > ${NOW} LIMIT 1)
   SELECT *, NULL::text AS held FROM pending UNION ALL SELECT *, NULL FROM reserved
   UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, id FROM held
     WHERE NOT EXISTS (SELECT 1 FROM pending) AND NOT EXISTS (SELECT 1 FROM reserved)`
         : `
   SELECT * FROM pending UNION ALL SELECT * FROM reserved`
     }`;

/** The healthiest free server, then the least recently handed out. */
export const ALLOCATE = pendingOrReserve(`SELECT id FROM servers WHERE ${FREE('$6')} ORDER BY health DESC, handed_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, true);

/**
 * The server the session had, if it is free and the session's grace period has not passed (of
 * several, in allocation's order); else, with $7, the session's busy server as `held`.
 */
export const ALLOCATE_STICKY_OR_HELD = pendingOrReserve(
  `SELECT id FROM servers WHERE session = $3 AND session_until > ${NOW} AND ${FREE('$6')} ORDER BY health DESC, handed_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
  false,
  true,
);
