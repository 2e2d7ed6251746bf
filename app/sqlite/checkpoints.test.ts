// Checkpoints on their own thread (checkpoints.ts): what is written reaches the file itself while
// the dispatcher's connection never checkpoints, the log starts again, and a thread that cannot
// do a file's checkpoints gives them back to its connection.

import { afterEach, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointOnThread } from './checkpoints.ts';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A file in WAL mode with `rows` rows of 1,000 bytes, each on a page of its own. */
function openFile(rows: number): { db: Database; path: string } {
  dir = mkdtempSync(join(tmpdir(), 'checkpoints-'));
  const path = join(dir, 'd.db');
  const db = new Database(path, { create: true, strict: true });
  db.run('PRAGMA journal_mode = WAL');
  db.run('PRAGMA journal_size_limit = 4194304');
  db.run('CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)');
  db.transaction(() => {
    for (let id = 0; id < rows; id++) db.run('INSERT INTO t VALUES (?, zeroblob(3000))', [id]);
  })();
  db.run('PRAGMA wal_checkpoint(TRUNCATE)');
  return { db, path };
}

/** Waits for `done`, up to `ms`. */
async function until(done: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await Bun.sleep(10);
  return done();
}

/** How many of the file's rows carry `mark`, read from the file itself (its log left aside). */
function markedInFile(path: string, mark: number): number {
  const copy = join(dir, `copy-${mark}.db`);
  copyFileSync(path, copy);
  const db = new Database(copy, { readonly: true });
  const { n } = db.query<{ n: number }, [number]>('SELECT count(*) AS n FROM t WHERE unicode(data) = ?').get(mark)!;
  db.close();
  return n;
}

const LOG = 'PRAGMA wal_checkpoint(PASSIVE)';

test('what is written reaches the file on the thread, and once caught up the log starts again', async () => {
  const { db, path } = openFile(3000);
  let askedToCatchUp = 0;
  const checkpoints = checkpointOnThread(db, path, () => askedToCatchUp++);
  expect(checkpoints.onThread).toBe(true);
  expect(db.query('PRAGMA wal_autocheckpoint').get()).toEqual({ wal_autocheckpoint: 0 });
  // 3,000 commits of a page each: past the log's 1,000 pages, and never checkpointed by this connection.
  const write = db.query<unknown, [string, number]>('UPDATE t SET data = ? WHERE id = ?');
  for (let id = 0; id < 3000; id++) {
    write.run(`A${'.'.repeat(999)}`, id);
    if (id % 100 === 0) await Bun.sleep(0);
  }
  expect(await until(() => markedInFile(path, 65) === 3000)).toBe(true);
  expect(await until(() => askedToCatchUp > 0)).toBe(true);
  // What the dispatcher's connection does when asked: the rest, with no transaction open (it may
  // find the thread checkpointing, and then does it on the next round). The next write then
  // starts the log again.
  const log = db.query<{ busy: number; log: number }, []>(LOG);
  const restarted = () => {
    if (log.get()!.busy) return false;
    write.run('B', 0);
    return log.get()!.log < 10;
  };
  expect(await until(restarted)).toBe(true);
  checkpoints.stop();
  db.close();
});

test('stopped, the connection checkpoints again and the thread closes its own', async () => {
  const { db, path } = openFile(10);
  const checkpoints = checkpointOnThread(db, path, () => {});
  db.run('UPDATE t SET data = ? WHERE id = 1', ['C']);
  expect(await until(() => markedInFile(path, 67) === 1)).toBe(true);
  checkpoints.stop();
  expect(checkpoints.onThread).toBe(false);
  expect(db.query('PRAGMA wal_autocheckpoint').get()).toEqual({ wal_autocheckpoint: 1000 });
  db.close();
  // The last connection to close removes the log: the thread's, once it has closed.
  expect(await until(() => !existsSync(`${path}-wal`))).toBe(true);
});

test('a file the thread cannot open goes back to its connection, and says why', async () => {
  const { db } = openFile(1);
  let reason = '';
  const checkpoints = checkpointOnThread(db, join(dir, 'no-such-file.db'), () => {}, (why) => (reason = why));
  expect(await until(() => !checkpoints.onThread)).toBe(true);
  expect(reason).toContain('unable to open');
  expect(db.query('PRAGMA wal_autocheckpoint').get()).toEqual({ wal_autocheckpoint: 1000 });
  db.close();
});
