// Entry of `bun run render` (run on Node: headless-gl cannot load in Bun). Flags in; an X display,
// a GL renderer and a running render server out; a clean stop on SIGINT/SIGTERM. With --count N it
// is the host of N render servers instead (render/host.ts), each started with this same file.

import { configFromArgv } from '../common/node/entry.ts';
import { RENDER_USAGE, parseRenderArgs } from './config.ts';
import { openHeadlessRenderer } from './headless.ts';
import { HOSTED_ENV, runHost } from './host.ts';
import { startRenderServer } from './server.ts';

const config = configFromArgv('render', RENDER_USAGE, parseRenderArgs);
if (config.count > 1) process.exit(await runHost(config, process.argv.slice(2)));

const tag = `render :${config.port}`;
const log = (message: string) => console.log(`${tag}: ${message}`);

try {
  const { renderer, display, close: closeRenderer } = await openHeadlessRenderer(config.size);
  const running = await startRenderServer(config, renderer, log);
  log(`streaming ${config.size}x${config.size} at up to ${config.fps} fps on ${running.publicUrl} (display ${display.name}), dispatcher ${config.dispatchers.join(', ')} (secret from ${config.secretSource})`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}, stopping`);
    await running.close();
    closeRenderer();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // Started by a render host: nobody would restart this server once the host is gone.
  if (process.env[HOSTED_ENV] && process.send) process.on('disconnect', () => void stop('render host gone'));
} catch (error) {
  console.error(`${tag}: cannot start: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
