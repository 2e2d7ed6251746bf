// Heartbeats are the dispatcher's most frequent write: 10,000 render servers send 10,000 a second.
// Each one its own transaction costs a commit apiece, so heartbeats that arrive within a few
// milliseconds of each other are written in one transaction, and answered once it commits.
// Safe to delay: a lease is extended from the moment its heartbeat arrived, and until the batch
// commits the store holds the older, shorter deadline, never a longer one.

import type { Clock } from './clock.ts';
import type { Beat, Health, LeaseStore } from './lease-store.ts';

/** How long the first heartbeat of a batch waits for company. */
const WINDOW_MS = 5;
/** A batch this large is written at once. */
const MAX_BATCH = 1000;

interface Pending {
  id: string;
  conn: string;
  now: number;
  health: Health;
  resolve(beat: Beat | null): void;
  reject(error: unknown): void;
}

export function createHeartbeatBatch(store: LeaseStore, ttlMs: number, clock: Clock) {
  let pending: Pending[] = [];
  let timer: ReturnType<typeof setTimeout> | null = null;

  function flush(): void {
    if (timer) clearTimeout(timer);
    timer = null;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    try {
      const beats = store.heartbeats(batch, ttlMs);
      batch.forEach((item, i) => item.resolve(beats[i]));
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }

  return {
    /** Extends the lease from now; resolves with the new deadline once written, or null if `conn` no longer holds it. */
    beat(id: string, conn: string, health: Health): Promise<Beat | null> {
      return new Promise((resolve, reject) => {
        pending.push({ id, conn, now: clock.now(), health, resolve, reject });
        if (pending.length >= MAX_BATCH) flush();
        else timer ??= setTimeout(flush, WINDOW_MS);
      });
    },
    /** Writes whatever is waiting (on shutdown). */
    flush,
  };
}

export type HeartbeatBatch = ReturnType<typeof createHeartbeatBatch>;
