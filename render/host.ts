// `bun run render --port 16000 --count N`: N render servers on ports 16000 … 16000+N−1, each its own
// Node process so that the OS shares the cores between them, kept alive by this host: one that
// crashes is started again after a backoff, a crash loop is reported and left stopped, and SIGTERM
// or SIGINT has every server drain (leave the dispatcher, close its client with 1001) and exit.
// Each server is started with this program's own command line (--log-format too) and its port, and
// tags its own lines.
// Given several dispatchers, server i starts with the i-th, so that they spread over them, each
// moving on to the next when its own goes.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createLogger } from '../common/node/log.ts';
import { superviseChildren } from '../common/supervisor.ts';
import type { RenderConfig } from './config.ts';

const MAIN = join(import.meta.dirname, 'main.ts');

/** Set in the environment of the render servers a host starts. */
export const HOSTED_ENV = 'RENDER_DISPATCH_HOSTED';

/** Runs the host until it is stopped; resolves with the exit code. */
export async function runHost(config: RenderConfig, argv: string[]): Promise<number> {
  const logger = createLogger({ format: config.logFormat, program: 'render', tag: 'render host', verbose: false });
  const log = (line: string) => logger.log('info', line);
  const portOf = (index: number) => config.port + index;
  const supervisor = superviseChildren({
    count: config.count,
    name: (index) => `render server :${portOf(index)}`,
    log,
    start(index) {
      const { dispatchers } = config;
      const turn = dispatchers.map((_, j) => dispatchers[(index + j) % dispatchers.length]);
      const own = ['--count', '1', '--port', String(portOf(index)), '--dispatcher', turn.join(',')];
      // The IPC channel is how a render server knows its host is gone (it then stops too).
      const child = spawn(process.execPath, [...process.execArgv, MAIN, ...argv, ...own], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, [HOSTED_ENV]: '1' },
      });
      const exited = new Promise<number | string>((resolve) => {
        child.once('exit', (code, signal) => resolve(signal ?? code ?? 'unknown'));
        // Not started at all (no such program, no processes left): no exit event follows.
        child.once('error', (error) => {
          if (child.pid === undefined) resolve(`could not start: ${error.message}`);
        });
      });
      return { pid: child.pid ?? -1, exited, kill: (signal) => void child.kill(signal) };
    },
  });
  log(`${config.count} render servers on ports ${portOf(0)}-${portOf(config.count - 1)}`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: every render server drains and stops`);
    await supervisor.stop();
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const { crashLoop } = await supervisor.done;
  log(crashLoop ? 'every render server is crash-looping: stopping' : 'stopped');
  return crashLoop ? 1 : 0;
}
