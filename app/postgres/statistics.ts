// PostgreSQL chooses how to run each statement from what it last counted of the tables, and its
// autovacuum looks at a database at most once a minute. Allocation has two ways: walk the free
// servers' index in order and stop at the first (about 0.05 ms), or read every free row and sort
// them. Counted while the table held a handful of servers, the sort looks cheaper, and it stays
// chosen once a fleet has registered: 2 ms an allocation at 1,000 servers, and a third of the
// cycles the same database completes with a fresh count. So the servers this dispatcher registers
// anew are counted, and the tables analysed again whenever they add a quarter; and on every
// maintenance pass (after the sweep's purge) their dead row versions are vacuumed too, since every
// hand-out and report leaves one behind and the walk of the index steps over them.

import type { PgClient } from './client.ts';

/** Tables analysed and vacuumed: the ones every hand-out, report and waiting page writes. */
const TABLES = 'servers, requests, waiting, dispatchers';
/** Fewer new rows than this never call for a new count. */
const MIN_NEW_ROWS = 64;

export function keepStatistics({ plain }: Pick<PgClient, 'plain'>) {
  let counted = 0;
  let inserted = 0;
  let analysing: Promise<void> | null = null;

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
    /** Dead row versions vacuumed and the count made again (another dispatcher doing it meanwhile is skipped). */
    async maintain(): Promise<void> {
      const rows = inserted;
      await plain(`VACUUM (ANALYZE, SKIP_LOCKED) ${TABLES}`);
      counted += rows;
      inserted -= rows;
    },
  };
}
