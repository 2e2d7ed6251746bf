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
// servers table is also vacuumed whenever this dispatcher has written that many of its rows again
// (CHURN_ROWS, or twice the servers counted if more), one vacuum at a time.

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
  let vacuuming: Promise<void> | null = null;

  function analyse(): void {
    if (analysing) return;
    const rows = inserted;
    analysing = plain(`ANALYZE (SKIP_LOCKED) ${TABLES}`)
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
    /** `rows` servers rows written again (a hand-out, a report, a batch of heartbeats): vacuumed once they add up. */
    wrote(rows = 1): void {
      written += rows;
      if (vacuuming || written < Math.max(churnRows, 2 * (counted + inserted))) return;
      written = 0;
      // Another dispatcher vacuuming the table meanwhile is skipped; a failure waits for the next round.
      vacuuming = plain('VACUUM (SKIP_LOCKED) servers')
        .then(() => {})
        .catch(() => {})
        .finally(() => (vacuuming = null));
    },
    /** Dead row versions vacuumed and the count made again (another dispatcher doing it meanwhile is skipped). */
    async maintain(): Promise<void> {
      const rows = inserted;
      await plain(`VACUUM (ANALYZE, SKIP_LOCKED) ${TABLES}`);
      counted += rows;
      inserted -= rows;
    },
  };
}
