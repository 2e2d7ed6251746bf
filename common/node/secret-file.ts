// The shared secret with no configuration on one machine. The first program of a user to start
// (dispatcher or render server) writes 32 random bytes to a file only that user can read, and every
// later one reads it, as Erlang nodes share ~/.erlang.cookie. A render server cannot know where a
// dispatcher keeps its lease file (`:memory:`, another folder), so the file lives in one per-user
// place: $RENDER_DISPATCH_HOME, else ~/.render-dispatch. Across machines, copy it or pass --secret.
// Works on Node and Bun alike (node:fs only).

import { chmodSync, linkSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { UsageError, checkSecret } from '../flags.ts';

/** Overrides the folder of the default secret file (tests and side-by-side installs use it). */
export const HOME_ENV = 'RENDER_DISPATCH_HOME';

export function defaultSecretFile(env: Record<string, string | undefined> = process.env): string {
  return join(env[HOME_ENV] || join(homedir(), '.render-dispatch'), 'secret');
}

function readSecret(path: string): string {
  const stat = lstatSync(path);
  if (!stat.isFile()) throw new UsageError(`secret file ${path} is not a regular file`);
  // Like ssh with a private key: a secret others can read is no secret, so it is refused, not used.
  if ((stat.mode & 0o077) !== 0) {
    throw new UsageError(`secret file ${path} is readable by other users (mode ${(stat.mode & 0o777).toString(8)}): chmod 600 it`);
  }
  if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
    throw new UsageError(`secret file ${path} belongs to another user (uid ${stat.uid})`);
  }
  const secret = readFileSync(path, 'utf8').trim();
  try {
    checkSecret(secret);
  } catch {
    throw new UsageError(`secret file ${path} does not hold a valid secret (16 or more of A-Z a-z 0-9 . _ ~ + / -)`);
  }
  return secret;
}

/**
 * The secret in `path`, created first if missing. Creation is atomic (written aside with mode
 * 0600, then hard-linked into place, which fails if another process got there first), so programs
 * started together all end up with the same secret.
 */
export function loadOrCreateSecret(path: string): string {
  try {
    return readSecret(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(aside, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(aside, 0o600); // whatever the umask did
  try {
    linkSync(aside, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    rmSync(aside, { force: true });
  }
  return readSecret(path);
}

/** --secret, then the environment, then the secret file (made on first use). */
export function resolveSecret(
  flag: string | undefined,
  fromEnv: string | undefined,
  file: string,
  load: (file: string) => string = loadOrCreateSecret,
): { secret: string; source: string } {
  if (flag !== undefined) {
    checkSecret(flag);
    return { secret: flag, source: '--secret' };
  }
  if (fromEnv !== undefined && fromEnv !== '') {
    checkSecret(fromEnv);
    return { secret: fromEnv, source: 'the environment' };
  }
  return { secret: load(file), source: file };
}
