// A throwaway PostgreSQL for tests, benchmarks and the demo: initdb into a temp folder, a free port
// on 127.0.0.1, fsync off, stopped and removed at the end (or when the process exits). Never a
// system service. initdb refuses to run as root, so as root the cluster belongs to the `postgres`
// user and every command runs as that user.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './helpers.ts';

const run = promisify(execFile);
const PG_ROOT = '/usr/lib/postgresql';

export interface Cluster {
  url: string;
  port: number;
  /** Stops the server (fast shutdown: connections are cut), keeping its data. */
  pause(): Promise<void>;
  /** Starts it again on the same port. */
  resume(): Promise<void>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
  /** The server's main process (its backends are its children). */
  postmasterPid(): number;
}

/** The newest installed PostgreSQL's bin folder, or null when there is none. */
export function postgresBin(): string | null {
  if (!existsSync(PG_ROOT)) return null;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => existsSync(join(PG_ROOT, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(PG_ROOT, versions[0], 'bin') : null;
}

export async function startCluster(): Promise<Cluster> {
  const bin = postgresBin();
  if (!bin) throw new Error(`no PostgreSQL under ${PG_ROOT}: run bash scripts/setup.sh test`);
  const asRoot = userInfo().uid === 0;
  // As root: run as postgres, which must be able to enter the folder.
  const command = (tool: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args];
  const dir = mkdtempSync(join(tmpdir(), 'render-dispatch-pg-'));
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  const data = join(dir, 'data');
  const port = await freePort();
  const options = [
    `-p ${port}`, `-k ${dir}`, '-c listen_addresses=127.0.0.1', '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off',
    '-c max_connections=300', '-c shared_buffers=32MB',
  ].join(' ');
  const ctl = (args: string[]) => run(...command('pg_ctl', ['-D', data, ...args]));
  let running = false;
  const start = async () => {
    await ctl(['-o', options, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
    running = true;
  };
  const cleanUp = () => {
    if (running) {
      try {
        execFileSync(...command('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']), { stdio: 'ignore' });
      } catch {
        // already stopped
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanUp);
  // A runner killed outright runs no exit handler: a watchdog outlives it, stops the server and
  // removes its folder once the process that started it is gone.
  const [ctlCmd, ctlArgs] = command('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
  const quoted = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;
  spawn(
    'sh',
    ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${[ctlCmd, ...ctlArgs].map(quoted).join(' ')} >/dev/null 2>&1; rm -rf ${quoted(dir)}`],
    { detached: true, stdio: 'ignore' },
  ).unref();

  await run(...command('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']));
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async pause() {
      await ctl(['-m', 'fast', '-w', 'stop']);
      running = false;
    },
    resume: start,
    postmasterPid: () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]),
    async stop() {
      process.off('exit', cleanUp);
      if (running) await ctl(['-m', 'immediate', '-w', 'stop']).catch(() => {});
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
