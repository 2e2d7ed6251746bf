// Entry of `bun run render` (run on Node: headless-gl cannot load in Bun). Flags in; an X display,
// a GL renderer and a running render server out; a clean stop on SIGINT/SIGTERM.

import { UsageError } from '../common/cli.ts';
import { RENDER_USAGE, parseRenderArgs } from './config.ts';
import { startRenderServer } from './server.ts';
import { ensureDisplay } from './xvfb.ts';

let config;
try {
  config = parseRenderArgs(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`render: ${error.message}\n\n${RENDER_USAGE}`);
  process.exit(2);
}
if (!config) {
  console.log(RENDER_USAGE);
  process.exit(0);
}

const tag = `render :${config.port}`;
const log = (message: string) => console.log(`${tag}: ${message}`);

try {
  const display = await ensureDisplay();
  // gl opens the display when a context is made, so it is loaded only once DISPLAY is set.
  const { createRenderer } = await import('./renderer.ts');
  const renderer = createRenderer(config.size);
  const running = await startRenderServer(config, renderer, log);
  log(`streaming ${config.size}x${config.size} at up to ${config.fps} fps on ${running.publicUrl} (display ${display.name}), dispatcher ${config.dispatcher}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}, stopping`);
    await running.close();
    renderer.destroy();
    display.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
} catch (error) {
  console.error(`${tag}: cannot start: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
