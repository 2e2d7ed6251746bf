// Entry of `bun run dispatcher`: flags in, a running dispatcher out, a clean stop on SIGINT/SIGTERM.

import { configFromArgv } from '../common/cli.ts';
import { DISPATCHER_USAGE, parseDispatcherArgs } from './config.ts';
import { SchemaTooNew } from './lease-store.ts';
import { isPostgresUrl } from './open-store.ts';
import { startDispatcher } from './server.ts';

const config = configFromArgv('dispatcher', DISPATCHER_USAGE, parseDispatcherArgs);

// A database that is not up yet is waited for, not a reason to exit: dispatchers are often started
// alongside it.
async function start() {
  for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
    try {
      return await startDispatcher(config);
    } catch (error) {
      // A file or a schema this release cannot use will not get better by waiting.
      if (!isPostgresUrl(config.db) || error instanceof SchemaTooNew) throw error;
      console.error(`dispatcher: cannot open the lease store yet (${error instanceof Error ? error.message : error}); trying again in ${delay}ms`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
const running = await start();
const { events } = running.dispatcher;
events.on('log', ({ level, message }) => {
  if (level === 'debug' && !config.verbose) return;
  (level === 'warn' || level === 'error' ? console.error : console.log)(`dispatcher: ${message}`);
});
events.on('server.lost', ({ id, url, reason }) => console.log(`dispatcher: render server ${id} at ${url} lost (${reason})`));
console.log(`dispatcher: listening on ${running.httpUrl} (browsers: ${running.streamUrl}, leases in ${running.store}, secret from ${config.secretSource})`);

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`dispatcher: ${signal}, stopping`);
  await running.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
