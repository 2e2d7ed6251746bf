// The dispatch cycle with no sockets: the dispatcher of `bun run dispatcher` (lease file, metrics)
// in this process, its render servers' control sessions and its pages' stream sessions fed
// messages directly. What one cycle costs the dispatcher's own code and its store, apart from
// WebSocket framing and the kernel: the most cycles one process could complete if sockets were
// free. Part of `bun run bench dispatch`, which prints it with the socket runs.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from '../common/protocol.ts';
import { createDispatcher } from '../app/dispatcher.ts';
import { createMetrics, timedStore } from '../app/metrics.ts';
import { openSqliteStore } from '../app/sqlite/lease-store.ts';
import { answerWithin, answeredUrl, askMessage, type Ask } from './asking.ts';

export interface InProcessCycles {
  servers: number;
  pages: number;
  ask: Ask;
  cyclesPerSecond: number;
  /** Wall-clock microseconds per cycle (the process does nothing else meanwhile). */
  microseconds: number;
}

const CONNECTED = encode({ type: 'client', event: 'connected' });
const GONE = encode({ type: 'client', event: 'gone' });

/**
 * `pages` pages asking in a loop for `ms`, each answered URL a cycle its server's reports complete,
 * as in the socket runs; asking plainly or as the shipped page asks (see Ask).
 */
export async function cyclesInProcess(servers: number, pages: number, ms: number, ask: Ask = 'plain'): Promise<InProcessCycles> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-in-process-'));
  const metrics = createMetrics();
  const store = timedStore(openSqliteStore(join(dir, 'dispatcher.db')), metrics.storeCall);
  const dispatcher = createDispatcher({ store, timings: { heartbeatMs: 300_000, ttlMs: 600_000, claimMs: 10_000 }, policy: { rateLimit: 0 } });
  metrics.watch(dispatcher, store);
  const ignore = { close: () => {} };
  try {
    const reports = new Map<string, (text: string) => Promise<void>>();
    for (let i = 0; i < servers; i++) {
      const url = `ws://127.0.0.1:1/s${i}`;
      const registered = Promise.withResolvers<void>();
      const session = dispatcher.openControl({
        ...ignore,
        send: (text) => (text.startsWith('{"type":"registered"') ? registered.resolve() : registered.reject(new Error(text))),
      });
      reports.set(url, session.message);
      void session.message(encode({ type: 'register', id: `sim-${i}`, instance: `bench-instance-${i}-of-${servers}`, url, client: 'none', targetFps: 60 }));
      await registered.promise;
    }
    let cycles = 0;
    let failure: Error | null = null;
    const start = performance.now();
    const end = start + ms;
    await Promise.all(
      Array.from({ length: pages }, async () => {
        let answer: (text: string) => void = () => {};
        const page = dispatcher.openStream({ ...ignore, send: (text) => answer(text) }, { address: '127.0.0.1' });
        let last = '';
        while (!failure && performance.now() < end) {
          const answered = answerWithin((resolve) => (answer = resolve));
          void page.message(askMessage(ask));
          let given: string | null;
          try {
            given = answeredUrl(await answered, ask);
          } catch (error) {
            failure = error as Error;
            break;
          }
          if (given === null || given === last) continue;
          last = given;
          cycles++;
          const report = reports.get(given.slice(0, given.indexOf('?')));
          if (!report) {
            failure = new Error(`a page was answered neither a server's URL nor none: ${given}`);
            break;
          }
          void report(CONNECTED);
          void report(GONE);
        }
        await page.closed();
      }),
    );
    if (failure) throw failure;
    const seconds = (performance.now() - start) / 1000;
    return { servers, pages, ask, cyclesPerSecond: Math.round(cycles / seconds), microseconds: (seconds * 1e6) / cycles };
  } finally {
    dispatcher.stop();
    await dispatcher.flush();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
