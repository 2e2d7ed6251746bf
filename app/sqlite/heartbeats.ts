// Heartbeats on the lease file: each extends its server's lease from when it arrived and
// reconciles the servers row with what the server reports. Most change nothing the servers row
// holds, so they only read it and write the narrow leases row (see migration 8 in schema.ts).

import type { Database } from 'bun:sqlite';
import type { Beat, BeatInput, Health } from '../lease-store.ts';

/** One transaction for a batch of heartbeats: each answered with its lease, or null if its connection no longer holds the server. */
export function openHeartbeats(db: Database) {
  // The reported client reconciles the state: a draining server stays draining, a reservation
  // stays until its client arrives or its deadline passes. Health is the frame rate its frame time
  // allows, as a share of its target (unmeasured counts as whole), rounded down to a step of 0.1
  // (it can reach at least this), so that servers about as healthy as each other take turns.
  const HEALTH = `CASE WHEN $frameMs > 0 AND target_fps > 0 THEN CAST(min(1.0, 1000.0 / ($frameMs * target_fps)) * 10 AS INTEGER) / 10.0 ELSE 1.0 END`;
  const STATE = `CASE WHEN state = 'draining' THEN 'draining' WHEN $client = 'connected' THEN 'busy'
    WHEN state = 'reserved' AND claim_expires > $now THEN 'reserved' ELSE 'ready' END`;
  const CLAIM = `CASE WHEN $client = 'none' AND state = 'reserved' AND claim_expires > $now THEN claim_expires ELSE NULL END`;
  type BeatParams = { id: string; conn: string; now: number } & Health;
  type Held = Pick<Beat, 'url' | 'state'>;
  // Most heartbeats change nothing the servers row holds (state, health, claim, client): such a
  // beat only reads it, and writes its narrow lease row. The rest update the servers row too.
  const HOLDER = `WHERE id = $id AND conn = $conn AND state != 'offline'`;
  const unchanged = db.query<Held, BeatParams>(`
    SELECT url, state FROM servers ${HOLDER} AND health = ${HEALTH} AND state = ${STATE} AND claim_expires IS ${CLAIM} AND client = $client`);
  const changed = db.query<Held, BeatParams>(`
    UPDATE servers SET client = $client, updated_at = $now, health = ${HEALTH}, state = ${STATE}, claim_expires = ${CLAIM}
    ${HOLDER}
    RETURNING url, state`);
  const extend = db.query<unknown, { id: string; leaseExpires: number; fps: number; frameMs: number }>(
    'UPDATE leases SET lease_expires = $leaseExpires, fps = $fps, frame_ms = $frameMs WHERE id = $id',
  );
  // One object of each statement's parameters, filled in for each beat.
  const beat: BeatParams = { id: '', conn: '', now: 0, fps: 0, frameMs: 0, client: 'none' };
  const lease = { id: '', leaseExpires: 0, fps: 0, frameMs: 0 };
  const heartbeat = (leaseExpires: number): Beat | null => {
    const held = unchanged.get(beat) ?? changed.get(beat);
    if (!held) return null;
    lease.id = beat.id;
    lease.leaseExpires = leaseExpires;
    lease.fps = beat.fps;
    lease.frameMs = beat.frameMs;
    extend.run(lease);
    return { url: held.url, state: held.state, leaseExpires };
  };

  return db.transaction((beats: BeatInput[], ttlMs: number, now: number): (Beat | null)[] =>
    beats.map(({ id, conn, ageMs, health }) => {
      beat.id = id;
      beat.conn = conn;
      beat.now = now;
      beat.fps = health.fps;
      beat.frameMs = health.frameMs;
      beat.client = health.client;
      return heartbeat(now - ageMs + ttlMs);
    }),
  );
}
