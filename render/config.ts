// The render server's command line, turned into one typed config object.

import { availableParallelism, networkInterfaces } from 'node:os';
import { DEFAULT_DISPATCHER_PORT, DEFAULT_RENDER_PORT, PATHS, SECRET_ENV } from '../common/protocol.ts';
import { UsageError, parseFlags, parsePort, parsePositive, parseWsUrl } from '../common/cli.ts';
import { parseProcessCount } from '../common/supervisor.ts';
import { HOME_ENV, defaultSecretFile, loadOrCreateSecret, resolveSecret } from '../common/secret-file.ts';

export interface RenderConfig {
  host: string;
  port: number;
  /** The dispatchers to register with, tried in turn (several on one shared lease store). */
  dispatchers: string[];
  size: number;
  fps: number;
  quality: number;
  /** Speed of the torus's turning, 1 as designed, 0 still. */
  spin: number;
  /** Set by --public-url; otherwise derived from the bound address once listening. */
  publicUrl: string | null;
  /** How many render servers, on consecutive ports from `port` (1: this process is the server). */
  count: number;
  /** The dispatcher's shared secret. */
  secret: string;
  /** Where it came from, for the start-up line (never the secret itself). */
  secretSource: string;
}


const CORES = availableParallelism();

export const RENDER_USAGE = `usage: bun run render --port N [options]

  --port N            port to listen on (default ${DEFAULT_RENDER_PORT}; 0 picks a free one)
  --host ADDR         address to listen on (default 127.0.0.1)
  --dispatcher URLS   the dispatcher to register with (default ws://127.0.0.1:${DEFAULT_DISPATCHER_PORT}), or
                      several, comma-separated, sharing one PostgreSQL store: it holds one
                      connection and moves to the next when that one goes, keeping its lease
  --size N            frame width and height in pixels, 16-2048 (default 512)
  --fps N             target frames per second, 1-240 (default 60)
  --quality N         JPEG quality, 1-100 (default 80)
  --spin X            how fast the torus turns, 0-10 times the designed speed; 0 holds it
                      still (default 1)
  --count N|auto      render servers to run, each its own process, on ports PORT, PORT+1, …,
                      restarted if they crash (auto: one per core, ${CORES} here; default 1)
  --public-url URL    the ws:// URL browsers reach this server at, when it is not the bound
                      address (behind NAT or a proxy); default ws://HOST:PORT/stream
  --secret S          the dispatcher's shared secret (or the ${SECRET_ENV} environment
                      variable); by default the secret file's
  --secret-file FILE  where the secret is kept, made (mode 0600) if missing (default
                      $${HOME_ENV}/secret or ~/.render-dispatch/secret, as the dispatcher's)
  --help              print this and exit

Needs an X display for GL: with DISPLAY unset it starts its own Xvfb.`;

export function parseRenderArgs(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  loadSecret: (file: string) => string = loadOrCreateSecret,
): RenderConfig | null {
  const v = parseFlags(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    dispatcher: { type: 'string' },
    size: { type: 'string' },
    fps: { type: 'string' },
    quality: { type: 'string' },
    spin: { type: 'string' },
    'public-url': { type: 'string' },
    count: { type: 'string' },
    secret: { type: 'string' },
    'secret-file': { type: 'string' },
    help: { type: 'boolean' },
  });
  if (v.help) return null;
  const count = v.count ? parseCount(v.count) : 1;
  if (count > 1 && v.port === '0') throw new UsageError('--count runs servers on consecutive ports from --port: give a port, not 0');
  if (count > 1 && v['public-url']) throw new UsageError('--public-url names one server: it cannot be given with --count');
  const { secret, source } = resolveSecret(v.secret, env[SECRET_ENV], v['secret-file'] ?? defaultSecretFile(env), loadSecret);
  return {
    host: v.host ?? '127.0.0.1',
    port: v.port ? parsePort('port', v.port) : DEFAULT_RENDER_PORT,
    dispatchers: v.dispatcher ? v.dispatcher.split(',').map((url) => parseWsUrl('dispatcher', url.trim())) : [`ws://127.0.0.1:${DEFAULT_DISPATCHER_PORT}`],
    size: v.size ? parseSize(v.size) : 512,
    fps: v.fps ? parsePositive('fps', v.fps, { max: 240 }) : 60,
    quality: v.quality ? parsePositive('quality', v.quality, { max: 100 }) : 80,
    spin: v.spin ? parseSpin(v.spin) : 1,
    publicUrl: v['public-url'] ? parseWsUrl('public-url', v['public-url']) : null,
    count,
    secret,
    secretSource: source,
  };
}

function parseCount(text: string): number {
  const count = parseProcessCount(text, CORES, 64);
  if (count === null) throw new UsageError(`--count must be auto or a whole number from 1 to 64, got "${text}"`);
  return count;
}

function parseSpin(text: string): number {
  const spin = Number(text);
  if (text.trim() === '' || !(spin >= 0 && spin <= 10)) throw new UsageError(`--spin must be a number from 0 to 10, got "${text}"`);
  return spin;
}

function parseSize(text: string): number {
  const size = parsePositive('size', text, { max: 2048 });
  if (size < 16) throw new UsageError(`--size must be a whole number from 16 to 2048, got "${text}"`);
  return size;
}

/** The URL browsers use when --public-url is not given: the bound address, made reachable. */
export function derivePublicUrl(host: string, port: number): string {
  let shown = host;
  if (host === '0.0.0.0' || host === '::') {
    const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    shown = external?.address ?? '127.0.0.1';
  }
  if (shown.includes(':') && !shown.startsWith('[')) shown = `[${shown}]`;
  return `ws://${shown}:${port}${PATHS.stream}`;
}
