// Checkpoints on their own thread (checkpoints.ts): what is written reaches the file itself while
// the dispatcher's connection never checkpoints, the log starts again, a held file is left alone,
// and a thread that cannot do a file's checkpoints gives them back to its connection.

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
  // As the lease file: commits do not wait for the disk, checkpoints do.
  db.run('PRAGMA synchronous = NORMAL');
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
/** A checkpoint on `db`, as the lease file's: true if it found nobody else checkpointing. */
const checkpointOn = (db: Database, mode = 'PASSIVE') => db.query<{ busy: number }, []>(`PRAGMA wal_checkpoint(${mode})`).all()[0].busy === 0;

test('what is written reaches the file on the thread, and once caught up the log starts again', async () => {
  const { db, path } = openFile(3000);
  let askedToCatchUp = 0;
  // Asked while the thread holds the file, the connection's own checkpoint never finds it at work.
  let caughtUpAlone = true;
  const checkpoints = checkpointOnThread(db, path, () => {
    askedToCatchUp++;
    const alone = checkpointOn(db);
    caughtUpAlone &&= alone;
    return alone;
  });
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
  expect(caughtUpAlone).toBe(true);
  // Caught up, the next write starts the log again.
  write.run('B', 0);
  expect(db.query<{ log: number }, []>(LOG).all()[0].log).toBeLessThan(10);
  await checkpoints.stop();
  db.close();
}, 30_000);

test('a held file is left alone: a truncate on its connection never finds the thread at work', async () => {
  const { db, path } = openFile(2000);
  const checkpoints = checkpointOnThread(db, path, () => checkpointOn(db));
  const write = db.query<unknown, [string, number]>('UPDATE t SET data = ? WHERE id = ?');
  const busy: boolean[] = [];
  for (let round = 0; round < 10; round++) {
    for (let id = 0; id < 2000; id++) {
      write.run(`D${round}`, id);
      if (id % 200 === 0) await Bun.sleep(0);
    }
    busy.push(!(await checkpoints.hold(() => checkpointOn(db, 'TRUNCATE'))));
  }
  expect(busy).toEqual(Array(10).fill(false));
  await checkpoints.stop();
  db.close();
}, 30_000);

test('stopped, the connection checkpoints again and the thread closes its own', async () => {
  const { db, path } = openFile(10);
  const checkpoints = checkpointOnThread(db, path, () => checkpointOn(db));
  db.run('UPDATE t SET data = ? WHERE id = 1', ['C']);
  expect(await until(() => markedInFile(path, 67) === 1)).toBe(true);
  await checkpoints.stop();
  expect(checkpoints.onThread).toBe(false);
  expect(db.query('PRAGMA wal_autocheckpoint').get()).toEqual({ wal_autocheckpoint: 1000 });
  db.close();
  // The thread's connection was closed first: this one, the last, removed the log.
  expect(existsSync(`${path}-wal`)).toBe(false);
}, 30_000);

test('a file the thread cannot open goes back to its connection, and says why', async () => {
  const { db } = openFile(1);
  let reason = '';
  const checkpoints = checkpointOnThread(db, join(dir, 'no-such-file.db'), () => checkpointOn(db), (why) => (reason = why));
  expect(await until(() => !checkpoints.onThread)).toBe(true);
  expect(reason).toContain('unable to open');
  expect(db.query('PRAGMA wal_autocheckpoint').get()).toEqual({ wal_autocheckpoint: 1000 });
  db.close();
});
