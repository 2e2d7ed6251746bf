// PostgreSQL chooses how to run each statement from what it last counted of the tables, and its
// autovacuum looks at a database at most once a minute. Allocation has two ways: walk the free
// servers' index in order and stop at the first (about 0.05 ms), or read every free row and sort
// them. Counted while the table held a handful of servers, the sort looks cheaper, and it stays
// chosen once a fleet has registered: 2 ms an allocation at 1,000 servers, and a third of the
// cycles the same database completes with a fresh count. So the servers this dispatcher registers
// anew are counted, and the tables analysed again whenever they add a quarter; and on every
// maintenance pass (after the sweep's purge) their dead row versions are vacuumed too, since every
// hand-out and report leaves one behind and the walk of the index steps over them. Between passes
// (ten seconds) a busy dispatcher leaves tens of thousands: a hand-out moves its server to the end
// of the free servers' index, and the walk from its start steps over every dead entry left there
// (1 ms an allocation after three seconds of load at 1,000 servers, against about 0.05 ms). So the
// servers table is also vacuumed whenever this dispatcher's hand-outs and reports have written
// about that many of its rows again (CHURN_ROWS, or twice the rows the table held at the last
// vacuum, if more). Heartbeats are not counted: one that changes nothing indexed can be written in
// place, without a new index entry. This module runs one of its vacuums or counts at a time, so
// that none is skipped for another of its own (SKIP_LOCKED skips a table another vacuum or count
// holds), and never shrinks the file (which would lock out every statement on the table while it
// waits).

import type { PgClient } from './client.ts';

/** Tables analysed and vacuumed: the ones every hand-out, report and waiting page writes. */
const TABLES = 'servers, requests, waiting, dispatchers';
/** Fewer new rows than this never call for a new count. */
const MIN_NEW_ROWS = 64;
/** Rows of servers written again between two vacuums of it, at least. */
export const CHURN_ROWS = 2000;

export function keepStatistics({ plain }: Pick<PgClient, 'plain'>, churnRows = CHURN_ROWS) {
  let counted = 0;
  let inserted = 0;
  let analysing: Promise<void> | null = null;
  let written = 0;
  /** The servers table's rows at the last vacuum of it (the database's own count). */
  let tableRows = 0;
  let vacuuming: Promise<void> | null = null;

  function analyse(): void {
    if (analysing) return;
    const rows = inserted;
    analysing = (vacuuming ?? Promise.resolve())
      .then(() => plain(`ANALYZE (SKIP_LOCKED) ${TABLES}`))
      .then(() => {
        counted += rows;
        inserted -= rows;
      })
      // A database that cannot be reached now fails the statements that matter; the next row counts again.
      .catch(() => {})
      .finally(() => (analysing = null));
  }

  return {
    /** A server registered anew: the tables are analysed again once such servers add a quarter to what was counted. */
    registered(): void {
      inserted++;
      if (inserted >= Math.max(MIN_NEW_ROWS, counted / 4)) analyse();
    },
    /** `rows` servers rows written again by a hand-out or a report: vacuumed once they add up. */
    wrote(rows = 1): void {
      written += rows;
      if (vacuuming || analysing || written < Math.max(churnRows, 2 * tableRows)) return;
      written = 0;
      // Another dispatcher vacuuming the table meanwhile is skipped; a failure waits for the next round.
      vacuuming = plain('VACUUM (SKIP_LOCKED, TRUNCATE false) servers')
        .then(() => plain<{ rows: number }>("SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = 'servers'::regclass"))
        .then(([row]) => {
          tableRows = Math.max(0, row?.rows ?? 0);
        })
        .catch(() => {})
        .finally(() => (vacuuming = null));
    },
    /** Dead row versions vacuumed and the count made again (another dispatcher doing it meanwhile is skipped). */
    async maintain(): Promise<void> {
      await vacuuming;
      await analysing;
      const rows = inserted;
      await plain(`VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false) ${TABLES}`);
      counted += rows;
      inserted -= rows;
    },
  };
}
