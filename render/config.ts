// The render server's command line: its flags as one table (name, parse, default, help) from which
// both --help and the typed config object come, and the checks that span several flags.

import { availableParallelism, networkInterfaces } from 'node:os';
import { DEFAULT_DISPATCHER_PORT, DEFAULT_RENDER_PORT, PATHS, SECRET_ENV } from '../common/protocol.ts';
import { UsageError, between, flagTable, parsePort, parseWsUrl, positive, processCount, readFlags, usageOf, type Env } from '../common/flags.ts';
import { LOG_FORMAT_FLAG, type LogFormat } from '../common/node/log.ts';
import { HOME_ENV, defaultSecretFile, loadOrCreateSecret, resolveSecret } from '../common/node/secret-file.ts';

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
  /** Log lines as text (as they always were) or one JSON object per line. */
  logFormat: LogFormat;
}


const CORES = availableParallelism();

function parseSize(text: string, flag: string): number {
  const size = Number(text);
  if (text.trim() === '' || !Number.isInteger(size) || size < 16 || size > 2048) throw new UsageError(`--${flag} must be a whole number from 16 to 2048, got "${text}"`);
  return size;
}

const dispatcherList = (text: string, flag: string) => text.split(',').map((url) => parseWsUrl(url.trim(), flag));

export const RENDER_FLAGS = flagTable({
  port: { value: 'N', help: 'port to listen on; 0 picks a free one', parse: parsePort, default: DEFAULT_RENDER_PORT },
  host: { value: 'ADDR', help: 'address to listen on', default: '127.0.0.1' },
  dispatcher: {
    value: 'URLS',
    help: 'the dispatcher to register with, or several, comma-separated, on one shared store: it holds one connection and moves to the next when that one goes, keeping its lease',
    parse: dispatcherList, default: [`ws://127.0.0.1:${DEFAULT_DISPATCHER_PORT}`], shown: `ws://127.0.0.1:${DEFAULT_DISPATCHER_PORT}`,
  },
  size: { value: 'N', help: 'frame width and height in pixels, 16-2048', parse: parseSize, default: 512 },
  fps: { value: 'N', help: 'target frames per second, 1-240', parse: positive({ max: 240 }), default: 60 },
  quality: { value: 'N', help: 'JPEG quality, 1-100', parse: positive({ max: 100 }), default: 80 },
  spin: { value: 'X', help: 'how fast the torus turns, 0-10 times the designed speed; 0 holds it still', parse: between(0, 10), default: 1 },
  count: {
    value: 'N|auto', help: `render servers to run, each its own process, on ports PORT, PORT+1, …, restarted if they crash (auto: one per core, ${CORES} here)`,
    parse: processCount(CORES, 64), default: 1,
  },
  'public-url': {
    value: 'URL', help: 'the ws:// URL browsers reach this server at, when it is not the bound address (behind NAT or a proxy)', parse: parseWsUrl,
    shown: 'ws://HOST:PORT/stream',
  },
  secret: { value: 'S', help: `the dispatcher's shared secret (or the ${SECRET_ENV} environment variable); by default the secret file's`, shown: null },
  'secret-file': {
    value: 'FILE', help: "where the secret is kept, made (mode 0600) if missing, as the dispatcher's", default: (env: Env) => defaultSecretFile(env),
    shown: `$${HOME_ENV}/secret or ~/.render-dispatch/secret`,
  },
  'log-format': LOG_FORMAT_FLAG,
  help: { help: 'print this and exit' },
});

export const RENDER_USAGE = usageOf('usage: bun run render [options]', RENDER_FLAGS, 'Needs an X display for GL: with DISPLAY unset it starts its own Xvfb.');

export function parseRenderArgs(argv: string[], env: Env = process.env, loadSecret: (file: string) => string = loadOrCreateSecret): RenderConfig | null {
  const v = readFlags(argv, RENDER_FLAGS, env);
  if (v.help) return null;
  if (v.count > 1 && v.port === 0) throw new UsageError('--count runs servers on consecutive ports from --port: give a port, not 0');
  if (v.count > 1 && v['public-url']) throw new UsageError('--public-url names one server: it cannot be given with --count');
  if (v.port + v.count - 1 > 65535) throw new UsageError(`--count ${v.count} from --port ${v.port} runs past port 65535`);
  const { secret, source } = resolveSecret(v.secret, env[SECRET_ENV], v['secret-file'], loadSecret);
  return {
    host: v.host,
    port: v.port,
    dispatchers: v.dispatcher,
    size: v.size,
    fps: v.fps,
    quality: v.quality,
    spin: v.spin,
    publicUrl: v['public-url'] ?? null,
    count: v.count,
    secret,
    secretSource: source,
    logFormat: v['log-format'],
  };
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
