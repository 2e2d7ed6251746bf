// `bun run dispatcher --workers N`: a primary process that starts N dispatcher processes on one
// port and keeps them alive, and what a worker needs of it. The primary holds no socket: every
// worker listens on the port with SO_REUSEPORT and Linux spreads new connections over them. Any
// worker can serve any page, because leases, request ids, sticky sessions and the waiting line
// are all in the store (no sticky routing as with Node's cluster module). On a SQLite file the
// primary holds the file and serves each worker a view of it over Bun's IPC channel; on
// PostgreSQL each worker is simply another dispatcher on the database. A worker that dies is
// started again (common/supervisor.ts); SIGTERM or SIGINT has every worker drain and exit. Each
// worker is a member of the flock; the primary passes every flock frame a worker sends on to all
// the others, so a message reaching one worker (from a page or a link) reaches them all.

import { join } from 'node:path';
import { createLogger } from '../common/node/log.ts';
import { superviseChildren } from '../common/supervisor.ts';
import { CORES, type DispatcherConfig } from './config.ts';
import { hostStore } from './open-store.ts';
import type { RelayFrame } from '../common/protocol.ts';
import type { SiblingsLink } from './flock/flock.ts';
import type { Channel, LinkMessage } from './store-link.ts';

/** A flock frame between a worker and its siblings, through the primary; or a worker saying which member it is. */
type SiblingFrame = { t: 'flock'; frame: RelayFrame } | { t: 'flock-member'; member: string };

/** Set in a worker's environment to its number (1 … N); unset in a dispatcher run without --workers. */
export const WORKER_ENV = 'RENDER_DISPATCH_WORKER';

const MAIN = join(import.meta.dir, 'main.ts');

/** The worker's number, or null when this process is not a worker. */
export function workerNumber(env: Record<string, string | undefined> = process.env): number | null {
  const n = Number(env[WORKER_ENV]);
  return Number.isInteger(n) && n >= 1 && typeof process.send === 'function' ? n : null;
}

/** A worker's end of the IPC channel to its primary. */
export function primaryChannel(): Channel {
  return {
    send: (message) => void process.send!(message),
    onMessage(listener) {
      const handler = (message: unknown) => listener(message as LinkMessage);
      process.on('message', handler);
      return () => void process.off('message', handler);
    },
  };
}

/** A worker's link to its sibling workers: what it sends, the primary passes to every other worker. */
export function siblingsLink(): SiblingsLink {
  return {
    join: (member) => void process.send!({ t: 'flock-member', member } satisfies SiblingFrame),
    send: (frame) => void process.send!({ t: 'flock', frame } satisfies SiblingFrame),
    onFrame(listener) {
      const handler = (message: unknown) => {
        const sibling = message as SiblingFrame | null;
        if (sibling?.t === 'flock') listener(sibling.frame);
      };
      process.on('message', handler);
      return () => void process.off('message', handler);
    },
  };
}

/**
 * The port the workers will share: a free one for `--port 0`, else the one given, which must be
 * free. Bound here once without SO_REUSEPORT, so that a port another dispatcher's workers already
 * share is refused rather than joined (two primaries on one SQLite file would each think it theirs).
 */
function portForWorkers(host: string, port: number): number {
  try {
    const probe = Bun.listen({ hostname: host, port, socket: { data() {} } });
    const bound = probe.port;
    probe.stop(true);
    return bound;
  } catch {
    throw new Error(`port ${port} on ${host} is in use`);
  }
}

/**
 * Runs the primary until it is stopped; resolves with the exit code. `argv` is the command line,
 * passed on to every worker with the port fixed.
 */
export async function runPrimary(config: DispatcherConfig, argv: string[]): Promise<number> {
  const logger = createLogger({ format: config.logFormat, program: 'dispatcher', tag: 'dispatcher (primary)', verbose: config.verbose });
  const log = (line: string) => logger.log('info', line);
  const port = portForWorkers(config.host, config.port);
  const hosted = hostStore(config.db);
  // Each running worker, and the flock member it said it is.
  const running = new Map<ReturnType<typeof Bun.spawn>, string | null>();
  const supervisor = superviseChildren({
    count: config.workers,
    name: (index) => `worker ${index + 1}`,
    log,
    start(index) {
      const listeners = new Set<(message: LinkMessage) => void>();
      const child = Bun.spawn(['bun', MAIN, ...argv, '--port', String(port)], {
        env: { ...process.env, [WORKER_ENV]: String(index + 1) },
        stdio: ['ignore', 'inherit', 'inherit'],
        serialization: 'json',
        ipc: (message) => {
          const sibling = message as SiblingFrame | null;
          if (sibling?.t === 'flock-member') return void running.set(child, sibling.member);
          if (sibling?.t !== 'flock') return listeners.forEach((listener) => listener(message as LinkMessage));
          // Never back to the worker the message started at: that would be an echo.
          for (const [other, member] of running) {
            if (other !== child && member !== sibling.frame.origin && other.exitCode === null && other.signalCode === null) other.send(message);
          }
        },
      });
      running.set(child, null);
      const served = hosted?.serve({
        send(message) {
          // A worker that has just died cannot be answered; its calls die with it.
          if (child.exitCode === null && child.signalCode === null) child.send(message);
        },
        onMessage(listener) {
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      });
      const exited = child.exited.then(async (code) => {
        running.delete(child);
        // The view goes with its worker: its places in the waiting line are given up at once.
        await served?.stop().catch(() => {});
        return child.signalCode ?? code;
      });
      return { pid: child.pid, exited, kill: (signal) => child.kill(signal) };
    },
  });
  log(`${config.workers} worker${config.workers === 1 ? '' : 's'} sharing http://${config.host}:${port} (leases in ${hosted ? `${config.db}, held here` : 'the database'}; ${CORES} cores)`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: every worker drains and stops`);
    await supervisor.stop();
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const { crashLoop } = await supervisor.done;
  await hosted?.close();
  if (crashLoop) log('every worker is crash-looping: stopping');
  else log('stopped');
  return crashLoop ? 1 : 0;
}
