// How a server looks to an operator in GET /v1/servers: its state as of now and, when it is not
// being handed out, the reason in words.

import { effectiveState, type ServerRow, type ServerState } from './lease-store.ts';

export interface ServerView {
  id: string;
  url: string;
  state: ServerState;
  /** Why the server is not being handed out now; null when it is free to be. */
  reason: string | null;
  leaseExpiresAt: number;
  claimExpiresAt: number | null;
  client: ServerRow['client'];
  targetFps: number;
  fps: number;
  frameMs: number;
  health: number;
  registeredAt: number;
}

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
