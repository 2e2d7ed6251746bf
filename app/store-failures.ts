// What the dispatcher says when its lease store fails. While a database is down every heartbeat
// and request fails with it: one line for the first failure, then at most one summary every few
// seconds, and one line when the store answers again.

import type { DispatcherEvents } from './events.ts';

const SUMMARY_EVERY_MS = 5000;

type Log = (level: DispatcherEvents['log']['level'], message: string) => void;

export function createStoreFailures(log: Log, now: () => number = Date.now) {
  let failing = false;
  let unreported = 0;
  let reportedAt = 0;
  let last = '';

  return {
    /** A store call made while doing `what` failed. */
    failed(what: string, error: unknown): void {
      last = `${what}: ${error instanceof Error ? error.message : String(error)}`;
      if (!failing || now() - reportedAt >= SUMMARY_EVERY_MS) {
        log('error', failing ? `the lease store still fails (${unreported + 1} failures since the last report; last: ${last})` : `the lease store failed ${last}`);
        failing = true;
        unreported = 0;
        reportedAt = now();
      } else {
        unreported++;
      }
    },
    /** A store call succeeded: if it had been failing, say it is back. */
    succeeded(): void {
      if (!failing) return;
      failing = false;
      log('info', `the lease store answers again${unreported ? ` (${unreported} more failures since the last report)` : ''}`);
      unreported = 0;
    },
  };
}

export type StoreFailures = ReturnType<typeof createStoreFailures>;
