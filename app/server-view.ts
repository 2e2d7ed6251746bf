// How a server looks to an operator in GET /v1/servers: its state as of now and, when it is not
// being handed out, the reason in words.

import type { ServerView } from '../common/protocol.ts';
import { effectiveState, type ListCursor, type ServerRow, type ServerState } from './lease-store.ts';

export type { ServerView } from '../common/protocol.ts';

function reasonFor(row: ServerRow, state: ServerState, now: number, minHealth: number): string | null {
  switch (state) {
    case 'offline':
      return 'offline: its control connection closed';
    case 'expired':
      return `expired: no heartbeat for ${now - row.leaseExpires}ms past its lease`;
    case 'draining':
      return row.client === 'connected' ? 'draining: its client may stay, no new one is sent' : 'draining';
    case 'busy':
      return 'busy: its client is connected';
    case 'reserved':
      return `reserved: waiting for its client until ${new Date(row.claimExpires!).toISOString()}`;
    case 'ready':
      if (row.health >= minHealth) return null;
      return `unhealthy: ${row.frameMs.toFixed(1)}ms a frame allows ${(1000 / row.frameMs).toFixed(1)} fps, under ${Math.round(minHealth * 100)}% of its ${row.targetFps} fps target`;
  }
}

export function viewOf(row: ServerRow, now: number, minHealth: number): ServerView {
  const state = effectiveState(row, now);
  return {
    id: row.id,
    url: row.url,
    state,
    reason: reasonFor(row, state, now, minHealth),
    leaseExpiresAt: row.leaseExpires,
    claimExpiresAt: state === 'reserved' ? row.claimExpires : null,
    client: row.client,
    targetFps: row.targetFps,
    fps: row.fps,
    frameMs: row.frameMs,
    health: Math.round(row.health * 1000) / 1000,
    registeredAt: row.registeredAt,
  };
}

const STATES: readonly ServerState[] = ['ready', 'reserved', 'busy', 'draining', 'offline', 'expired'];

/** How many servers are in each state as of `now` (every state present, at 0 if none): for /metrics and the dashboard. */
export function countByState(rows: readonly ServerRow[], now: number): Record<ServerState, number> {
  const counts = Object.fromEntries(STATES.map((state) => [state, 0])) as Record<ServerState, number>;
  for (const row of rows) counts[effectiveState(row, now)]++;
  return counts;
}
export const PAGE_LIMIT = { default: 100, max: 1000 } as const;


/** The `after` of the next page: opaque to clients, the last row's place in the order. */
export function encodeCursor(cursor: ListCursor | null): string | null {
  return cursor && btoa(JSON.stringify([cursor.registeredAt, cursor.id])).replace(/=+$/, '');
}

function decodeCursor(text: string): ListCursor | null {
  try {
    const value: unknown = JSON.parse(atob(text));
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string' && value[1].length <= 64) {
      return { registeredAt: value[0], id: value[1] };
    }
  } catch {
    // reported below
  }
  return null;
}

/** GET /v1/servers?state=&limit=&after=, checked: each bad parameter is named. */
export function parseListQuery(params: Record<string, string | undefined>): { ok: true; state: ServerState | null; limit: number; after: ListCursor | null } | { ok: false; reason: string } {
  for (const name of Object.keys(params)) {
    if (!['state', 'limit', 'after'].includes(name)) return { ok: false, reason: `unknown parameter ${name}: use state, limit or after` };
  }
  const { state, limit, after } = params;
  if (state !== undefined && !STATES.includes(state as ServerState)) return { ok: false, reason: `state must be one of ${STATES.join(', ')}` };
  const n = limit === undefined ? PAGE_LIMIT.default : Number(limit);
  if (!Number.isInteger(n) || n < 1 || n > PAGE_LIMIT.max) return { ok: false, reason: `limit must be a whole number from 1 to ${PAGE_LIMIT.max}` };
  const cursor = after === undefined ? null : decodeCursor(after);
  if (after !== undefined && !cursor) return { ok: false, reason: 'after must be the next value of an earlier page' };
  return { ok: true, state: (state as ServerState | undefined) ?? null, limit: n, after: cursor };
}
