// Heartbeats are the dispatcher's most frequent write: 10,000 render servers send 10,000 a second.
// Each one its own transaction costs a commit apiece, so heartbeats that arrive within a window
// (batchWindow) are written in one transaction, and answered (those that ask) once it commits.
// Whatever else a render server sends waits behind its beat (its messages are handled in order),
// so the control session hurries the batch of a beat that has messages behind it.
// Safe to delay: a lease is extended from the moment its heartbeat arrived (the store is told how
// long ago that was, on any clock), and until the batch commits the store holds the older, shorter
// deadline, never a longer one. One batch is written at a time; what arrives meanwhile waits for
// the next.

import type { Clock } from './clock.ts';
import type { Beat, Health, LeaseStore } from './lease-store.ts';

/** The longest the first heartbeat of a batch waits for company. */
const MAX_WINDOW_MS = 100;
/** A batch this large is written at once: at 10,000 servers, about one window's beats. */
const MAX_BATCH = 1000;

/**
 * How long the first heartbeat of a batch waits for company. A commit writes each page of leases
 * it touched once, however many beats changed it, so a longer window writes less for each beat:
 * 10,000 servers at 1 Hz touch nearly every page of leases (about 100) in any 50 ms, so a window
 * twice as long writes each page half as often (10 commits a second, not 20, less the windows
 * that client reports cut short: 3 points of a core fewer in the heartbeat benchmark). The wait
 * never takes more than a twentieth of the margin a lease has between heartbeats, and the
 * deadline is set from each beat's arrival whatever the wait.
 */
export function batchWindow({ heartbeatMs, ttlMs }: { heartbeatMs: number; ttlMs: number }): number {
  return Math.max(1, Math.min(MAX_WINDOW_MS, (ttlMs - heartbeatMs) / 20));
}

interface Pending {
  id: string;
  conn: string;
  arrived: number;
  health: Health;
  resolve(beat: Beat | null): void;
  reject(error: unknown): void;
}

export function createHeartbeatBatch(store: LeaseStore, ttlMs: number, clock: Clock, windowMs = MAX_WINDOW_MS) {
  let pending: Pending[] = [];
  /** The connections whose beats are in `pending`. */
  let waiting = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  let writing: Promise<void> | null = null;

  async function write(batch: Pending[]): Promise<void> {
    try {
      const now = clock.now();
      const beats = await store.heartbeats(
        batch.map(({ id, conn, arrived, health }) => ({ id, conn, ageMs: Math.max(0, now - arrived), health })),
        ttlMs,
      );
      batch.forEach((item, i) => item.resolve(beats[i]));
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }

  function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = null;
    if (writing) return writing.then(() => (pending.length ? flush() : undefined));
    const batch = pending;
    pending = [];
    waiting = new Set();
    if (batch.length === 0) return Promise.resolve();
    writing = write(batch).finally(() => {
      writing = null;
      if (pending.length) timer ??= setTimeout(flush, 0);
    });
    return writing;
  }

  return {
    /** Extends the lease from now; resolves with the new deadline once written, or null if `conn` no longer holds it. */
    beat(id: string, conn: string, health: Health): Promise<Beat | null> {
      return new Promise((resolve, reject) => {
        pending.push({ id, conn, arrived: clock.now(), health, resolve, reject });
        waiting.add(conn);
        if (pending.length >= MAX_BATCH && !writing) void flush();
        else timer ??= setTimeout(flush, windowMs);
      });
    },
    /** If `conn`'s beat waits for the window, writes the waiting beats now (after the batch being written, if one is). */
    hurry(conn: string): void {
      if (waiting.has(conn)) void flush();
    },
    /** Writes whatever is waiting (on shutdown). */
    flush,
  };
}

export type HeartbeatBatch = ReturnType<typeof createHeartbeatBatch>;
