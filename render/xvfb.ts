// headless-gl on Linux draws through GLX, so it needs an X display. When DISPLAY is unset the
// render server starts its own Xvfb on a free display (Xvfb picks it: -displayfd) and stops it on
// exit; -terminate also ends Xvfb when its last client goes, so even a SIGKILLed server leaves none.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface Display {
  name: string;
  /** Stops the Xvfb this module started; a no-op for a display that was already set. */
  stop(): void;
}

const START_TIMEOUT_MS = 10_000;

export async function ensureDisplay(): Promise<Display> {
  const existing = process.env.DISPLAY;
  if (existing) return { name: existing, stop() {} };

  const xvfb: ChildProcess = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '64x64x24', '-nolisten', 'tcp', '-terminate'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  xvfb.stderr?.on('data', (chunk) => (stderr = (stderr + chunk).slice(-2000)));

  const display = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(`Xvfb printed no display number within ${START_TIMEOUT_MS / 1000}s`), START_TIMEOUT_MS);
    function fail(reason: string) {
      clearTimeout(timer);
      xvfb.kill('SIGKILL');
      reject(new Error(`${reason}${stderr ? `\nXvfb said: ${stderr.trim()}` : ''}`));
    }
    xvfb.once('error', (error: NodeJS.ErrnoException) =>
      fail(error.code === 'ENOENT' ? 'Xvfb is not installed (apt-get install xvfb), and DISPLAY is not set' : `Xvfb failed to start: ${error.message}`),
    );
    xvfb.once('exit', (code, signal) => fail(`Xvfb exited at start (${signal ?? `code ${code}`})`));
    let out = '';
    (xvfb.stdio[3] as Readable).on('data', (chunk) => {
      out += chunk;
      const match = /^(\d+)\n/.exec(out);
      if (match) {
        clearTimeout(timer);
        xvfb.removeAllListeners('exit');
        resolve(`:${match[1]}`);
      }
    });
  });

  process.env.DISPLAY = display;
  const stop = () => {
    if (xvfb.exitCode === null) xvfb.kill('SIGTERM');
  };
  process.once('exit', stop);
  return { name: display, stop };
}
