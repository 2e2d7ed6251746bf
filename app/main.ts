// Entry of `bun run dispatcher`: flags in, a running dispatcher out, a clean stop on SIGINT/SIGTERM.

import { configFromArgv } from '../common/cli.ts';
import { DISPATCHER_USAGE, parseDispatcherArgs } from './config.ts';
import { startDispatcher } from './server.ts';

const config = configFromArgv('dispatcher', DISPATCHER_USAGE, parseDispatcherArgs);

const running = startDispatcher(config);
const { events } = running.dispatcher;
events.on('log', ({ level, message }) => {
  if (level === 'debug' && !config.verbose) return;
  (level === 'warn' || level === 'error' ? console.error : console.log)(`dispatcher: ${message}`);
});
events.on('server.lost', ({ id, url, reason }) => console.log(`dispatcher: render server ${id} at ${url} lost (${reason})`));
console.log(`dispatcher: listening on ${running.httpUrl} (browsers: ${running.streamUrl}, leases in ${config.db}, secret from ${config.secretSource})`);

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
