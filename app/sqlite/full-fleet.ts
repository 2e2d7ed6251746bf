// What the lease file knows when it has no server to hand out. A crowd of pages asking while every
// server is busy would otherwise cost a write each (the allocation statement, finding nothing) and
// crowd out the reports that free servers. Once an allocation finds nothing, the next ones are
// answered from memory. The memo is forgotten, through any connection of this process, by every
// write that may free a server (a registration, a heartbeat, which may revive a lapsed lease or
// raise a server's health, a client's report, a release, an undrain), by every new reservation
// (a page holding one may ask for it again), and by a transaction rolled back (what it wrote is
// undone). A commit by another process is seen through SQLite's data_version, read once a turn of
// the event loop and at least every millisecond. The memo lapses by itself at the earliest claim
// deadline, when a reserved server returns to the pool, and if the clock steps back. While any
// reservation is unclaimed, a page asking again is still looked up, and gets its own back.

import type { Database } from 'bun:sqlite';

export interface FullFleet {
  /**
   * True if no server with at least `minHealth` can be handed out at `now` (as last found, and
   * nothing since could have freed one); then `pending` says whether any page holds an unclaimed
   * reservation it may be asking for again.
   */
  known(minHealth: number, now: number): { pending: boolean } | null;
  /** An allocation at `now` found no server with at least `minHealth`, in the same step. */
  found(minHealth: number, now: number): void;
  /** Something that may free a server was written (on this connection or another of this process). */
  forget(): void;
  /** The file is closing. */
  close(): void;
}

/** Another process's commit is looked for at least this often (ms), however long a turn runs. */
const RECHECK_MS = 1;

/** Every memo of this process: a write on any connection to a file forgets them all at once. */
const memos = new Set<{ forget(): void }>();

/** `later` runs after the turn's other callbacks (setImmediate in the dispatcher). */
export function openFullFleet(db: Database, later: (then: () => void) => void = setImmediate): FullFleet {
  // When a reservation not yet claimed lapses (its server is then free), and whether there is one.
  const reservations = db.query<{ until: number | null; pending: number }, { now: number }>(
    `SELECT min(claim_expires) AS until, count(*) AS pending FROM servers INDEXED BY servers_lapsing WHERE state = 'reserved' AND claim_expires > $now`,
  );
  // Outside a transaction even this costs a read lock (microseconds), so it is asked once a turn,
  // and again if a turn runs long (a turn's continuations may run past the next one's start).
  const dataVersion = db.query<{ data_version: number }, []>('PRAGMA data_version');
  let memo: { minHealth: number; at: number; until: number; pending: boolean; version: number } | null = null;
  let checkedThisTurn = false;
  let checkedAt = 0;
  const self = { forget: () => void (memo = null) };
  memos.add(self);

  return {
    known(minHealth, now) {
      if (!memo || minHealth < memo.minHealth || now < memo.at || now >= memo.until) return null;
      const t = performance.now();
      if (!checkedThisTurn || t - checkedAt >= RECHECK_MS) {
        if (!checkedThisTurn) later(() => (checkedThisTurn = false));
        checkedThisTurn = true;
        checkedAt = t;
        if (dataVersion.get()!.data_version !== memo.version) return (memo = null);
      }
      return { pending: memo.pending };
    },
    found(minHealth, now) {
      const { until, pending } = reservations.get({ now })!;
      memo = { minHealth, at: now, until: until ?? Infinity, pending: pending > 0, version: dataVersion.get()!.data_version };
    },
    forget() {
      for (const other of memos) other.forget();
    },
    close() {
      memos.delete(self);
    },
  };
}
