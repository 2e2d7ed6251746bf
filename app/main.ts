// Entry of `bun run dispatcher`: flags in, a running dispatcher out, a clean stop on SIGINT/SIGTERM.
// With --workers N it becomes the primary that runs N of them on one port (app/workers.ts), each
// started with this same file and command line.

import { configFromArgv } from '../common/node/entry.ts';
import { createLogger } from '../common/node/log.ts';
import { DISPATCHER_USAGE, parseDispatcherArgs } from './config.ts';
import { SchemaTooNew } from './lease-store.ts';
import { isPostgresUrl, openWorkerStore } from './open-store.ts';
import { startDispatcher } from './server.ts';
import { primaryChannel, runPrimary, siblingsLink, workerNumber } from './workers.ts';

const config = configFromArgv('dispatcher', DISPATCHER_USAGE, parseDispatcherArgs);
const worker = workerNumber();
const tag = worker === null ? 'dispatcher' : `dispatcher ${worker}`;
const cannotStart = (error: unknown): never => {
  console.error(`${tag}${worker === null && config.workers > 1 ? ' (primary)' : ''}: cannot start: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
};
if (worker === null && config.workers > 1) process.exit(await runPrimary(config, process.argv.slice(2)).catch(cannotStart));
let workerStore: Awaited<ReturnType<typeof openWorkerStore>> | null = null;

// A database that is not up yet is waited for, not a reason to exit: dispatchers are often started
// alongside it.
async function start() {
  for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
    try {
      if (worker === null) return await startDispatcher(config);
      workerStore = await openWorkerStore(config.db, primaryChannel());
      return await startDispatcher(config, { store: workerStore, reusePort: true });
    } catch (error) {
      // A file or a schema this release cannot use will not get better by waiting.
      if (!isPostgresUrl(config.db) || error instanceof SchemaTooNew) throw error;
      console.error(`${tag}: cannot open the lease store yet (${error instanceof Error ? error.message : error}); trying again in ${delay}ms`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
const running = await start().catch(cannotStart);
if (worker !== null) running.dispatcher.flock.joinSiblings(siblingsLink());
const { events } = running.dispatcher;
const logger = createLogger({ format: config.logFormat, program: 'dispatcher', tag, verbose: config.verbose });
events.on('log', ({ level, message, fields }) => logger.log(level, message, fields));
events.on('server.lost', ({ kind, id, url, reason }) => {
  // A link's loss is logged by the flock itself, with what happens next.
  if (kind === 'render') logger.log('info', `render server ${id} at ${url} lost (${reason})`, { serverId: id, url, reason });
});
logger.log('info', `listening on ${running.httpUrl} (browsers: ${running.streamUrl}, leases in ${running.store}, secret from ${config.secretSource}, flock member ${running.dispatcher.flock.member})`, {
  url: running.httpUrl, store: running.store, member: running.dispatcher.flock.member,
});

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.log('info', `${signal}, stopping`, { signal });
  await running.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
// A worker whose primary is gone stops too: nobody would restart it, and on SQLite its store went with the primary.
if (worker !== null) {
  process.on('disconnect', () => {
    workerStore?.disconnected();
    void stop('primary gone');
  });
}
