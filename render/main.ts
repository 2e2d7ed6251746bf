// Entry of `bun run render` (run on Node: headless-gl cannot load in Bun). Flags in; an X display,
// a GL renderer and a running render server out; a clean stop on SIGINT/SIGTERM. With --count N it
// is the host of N render servers instead (render/host.ts), each started with this same file.

import { configFromArgv } from '../common/node/entry.ts';
import { createLogger } from '../common/node/log.ts';
import { RENDER_USAGE, parseRenderArgs } from './config.ts';
import { openHeadlessRenderer } from './headless.ts';
import { HOSTED_ENV, runHost } from './host.ts';
import { startRenderServer } from './server.ts';

const config = configFromArgv('render', RENDER_USAGE, parseRenderArgs);
if (config.count > 1) process.exit(await runHost(config, process.argv.slice(2)));

const logger = createLogger({ format: config.logFormat, program: 'render', tag: `render :${config.port}`, verbose: false });

try {
  const { renderer, display, close: closeRenderer } = await openHeadlessRenderer(config.size);
  const running = await startRenderServer(config, renderer, logger);
  const about = { serverId: running.id, port: running.port };
  logger.log(
    'info',
    `streaming ${config.size}x${config.size} at up to ${config.fps} fps on ${running.publicUrl} (display ${display.name}), dispatcher ${config.dispatchers.join(', ')} (secret from ${config.secretSource})`,
    { ...about, url: running.publicUrl, size: config.size, targetFps: config.fps, display: display.name, dispatchers: config.dispatchers.join(','), secretSource: config.secretSource },
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log('info', `${signal}, stopping`, { ...about, signal });
    await running.close();
    closeRenderer();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // Started by a render host: nobody would restart this server once the host is gone.
  if (process.env[HOSTED_ENV] && process.send) process.on('disconnect', () => void stop('render host gone'));
} catch (error) {
  logger.log('error', `cannot start: ${error instanceof Error ? error.message : error}`, { port: config.port });
  process.exit(1);
}
