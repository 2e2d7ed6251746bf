import { Database } from 'bun:sqlite';
import { afterEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGroupCommit } from './group-commit.ts';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

/** A file with one table, its writer, and a second connection that sees only what is committed. */
function open() {
  const dir = mkdtempSync(join(tmpdir(), 'group-commit-'));
  dirs.push(dir);
  const db = new Database(join(dir, 'test.db'), { create: true, strict: true });
  db.run('PRAGMA journal_mode = WAL');
  db.run('CREATE TABLE t (x INTEGER PRIMARY KEY, parent INTEGER REFERENCES t (x) DEFERRABLE INITIALLY DEFERRED)');
  const outside = new Database(join(dir, 'test.db'), { readonly: true });
  const committed = () => outside.query<{ x: number }, []>('SELECT x FROM t ORDER BY x').all().map((row) => row.x);
  // What runs once the turn's callbacks have: the commit, and reads asked to run last.
  const atEndOfTurn: (() => void)[] = [];
  let rollbacks = 0;
  const group = createGroupCommit(db, (then) => atEndOfTurn.push(then), () => rollbacks++);
  const endTurn = () => {
    for (const then of atEndOfTurn.splice(0)) then();
  };
  const insert = db.query<{ x: number }, { x: number; parent: number | null }>('INSERT INTO t (x, parent) VALUES ($x, $parent) RETURNING x');
  return { db, group, committed, endTurn, insert, rollbacks: () => rollbacks };
}

describe('group commit', () => {
  test("one turn's writes share one transaction, and each answers only once it is committed", async () => {
    const { group, committed, endTurn, insert } = open();
    const answered: number[] = [];
    const writes = [1, 2, 3].map((x) => group.write(() => insert.get({ x, parent: null })!.x).then((x) => answered.push(x)));
    await Promise.resolve();
    expect(answered).toEqual([]);
    expect(committed()).toEqual([]);
    endTurn();
    await Promise.all(writes);
    expect(answered).toEqual([1, 2, 3]);
    expect(committed()).toEqual([1, 2, 3]);
    expect(group.commits).toBe(1);
  });

  test('a read after uncommitted writes waits for their commit; one with nothing open answers at once', async () => {
    const { group, endTurn, insert, db } = open();
    const count = () => db.query<{ n: number }, []>('SELECT count(*) AS n FROM t').get()!.n;
    expect(await group.read(count)).toBe(0);
    void group.write(() => insert.get({ x: 1, parent: null }));
    let seen: number | null = null;
    const reading = group.read(count).then((n) => (seen = n));
    await Promise.resolve();
    expect(seen).toBeNull();
    endTurn();
    await reading;
    expect(seen as number | null).toBe(1);
  });

  test('a failed statement fails its caller alone; the rest of the group commits', async () => {
    const { group, committed, endTurn, insert } = open();
    const first = group.write(() => insert.get({ x: 1, parent: null }));
    const duplicate = group.write(() => insert.get({ x: 1, parent: null }));
    const third = group.write(() => insert.get({ x: 2, parent: null }));
    endTurn();
    await expect(duplicate).rejects.toThrow(/UNIQUE/);
    await first;
    await third;
    expect(committed()).toEqual([1, 2]);
  });

  test('a failed commit rolls the group back and fails every caller; the next group starts clean', async () => {
    const { group, committed, endTurn, insert, db, rollbacks } = open();
    db.run('PRAGMA foreign_keys = ON');
    const fine = group.write(() => insert.get({ x: 1, parent: null }));
    // The reference is checked at commit: the whole group fails there.
    const dangling = group.write(() => insert.get({ x: 2, parent: 99 }));
    const outcomes = Promise.allSettled([fine, dangling]);
    endTurn();
    for (const outcome of await outcomes) {
      expect(outcome.status).toBe('rejected');
      expect(String((outcome as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/);
    }
    expect(committed()).toEqual([]);
    expect(db.inTransaction).toBe(false);
    expect(rollbacks()).toBe(1);
    const next = group.write(() => insert.get({ x: 3, parent: null }));
    endTurn();
    await next;
    expect(committed()).toEqual([3]);
  });

  test('a group SQLite rolled back by itself fails its callers, and what follows starts a group of its own', async () => {
    const { group, committed, endTurn, insert, db, rollbacks } = open();
    db.run(`CREATE TRIGGER refuse BEFORE INSERT ON t WHEN new.x = 99 BEGIN SELECT RAISE(ROLLBACK, 'refused'); END`);
    const first = group.write(() => insert.get({ x: 1, parent: null }));
    const refused = group.write(() => insert.get({ x: 99, parent: null }));
    const after = group.write(() => insert.get({ x: 3, parent: null }));
    const outcomes = Promise.allSettled([first, refused, after]);
    endTurn();
    const [a, b, c] = await outcomes;
    expect([a.status, b.status, c.status]).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(committed()).toEqual([3]);
    // Whoever remembers what the group wrote is told it was undone.
    expect(rollbacks()).toBe(1);
  });

  test('a step asked to run last runs after the writes the turn brings later, before the commit, in the order asked', async () => {
    const { group, committed, endTurn, insert, db } = open();
    const count = () => db.query<{ n: number }, []>('SELECT count(*) AS n FROM t').get()!.n;
    const order: string[] = [];
    const first = group.last(() => (order.push('last 1'), count()));
    const write = group.write(() => (order.push('write'), insert.get({ x: 1, parent: null })!.x));
    const second = group.last(() => (order.push('last 2'), insert.get({ x: 2, parent: null })!.x));
    let answered = false;
    void second.then(() => (answered = true));
    await Promise.resolve();
    expect(order).toEqual(['write']);
    endTurn();
    expect(order).toEqual(['write', 'last 1', 'last 2']);
    expect(committed()).toEqual([1, 2]);
    expect([await first, await write, await second]).toEqual([1, 1, 2]);
    expect(answered).toBe(true);
    expect(group.commits).toBe(1);
  });

  test('a failed last step fails its caller alone; a turn with nothing but last steps commits them', async () => {
    const { group, committed, endTurn, insert } = open();
    const first = group.last(() => insert.get({ x: 1, parent: null })!.x);
    const duplicate = group.last(() => insert.get({ x: 1, parent: null }));
    const third = group.last(() => insert.get({ x: 2, parent: null })!.x);
    endTurn();
    await expect(duplicate).rejects.toThrow(/UNIQUE/);
    expect([await first, await third]).toEqual([1, 2]);
    expect(committed()).toEqual([1, 2]);
  });

  test('a last step that makes SQLite roll back fails every caller of its group, and the steps after it never run', async () => {
    const { group, committed, endTurn, insert, db, rollbacks } = open();
    db.run(`CREATE TRIGGER refuse BEFORE INSERT ON t WHEN new.x = 99 BEGIN SELECT RAISE(ROLLBACK, 'refused'); END`);
    const write = group.write(() => insert.get({ x: 1, parent: null }));
    const refused = group.last(() => insert.get({ x: 99, parent: null }));
    let ran = false;
    const after = group.last(() => ((ran = true), insert.get({ x: 3, parent: null })));
    const outcomes = Promise.allSettled([write, refused, after]);
    endTurn();
    expect((await outcomes).map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(String(((await outcomes)[2] as PromiseRejectedResult).reason)).toMatch(/rolled the transaction back/);
    expect(ran).toBe(false);
    expect(db.inTransaction).toBe(false);
    expect(committed()).toEqual([]);
    expect(rollbacks()).toBe(1);
  });

  test('a last read runs at the end of the turn without opening a transaction, and waits for writes that came after it', async () => {
    const { group, endTurn, insert, db } = open();
    const count = () => db.query<{ n: number }, []>('SELECT count(*) AS n FROM t').get()!.n;
    let seen: number | null = null;
    const alone = group.lastRead(count).then((n) => (seen = n));
    await Promise.resolve();
    expect(seen).toBeNull();
    expect(db.inTransaction).toBe(false);
    endTurn();
    await alone;
    expect(seen as number | null).toBe(0);
    expect(group.commits).toBe(0);
    // A write later in the turn opens the transaction: the read sees it, and answers once it commits.
    let answered = false;
    const reading = group.lastRead(count).then((n) => ((answered = true), n));
    const writing = group.write(() => insert.get({ x: 1, parent: null }));
    endTurn();
    expect(await reading).toBe(1);
    expect(answered).toBe(true);
    await writing;
    // With a transaction open when asked, it runs in it as a last step.
    void group.write(() => insert.get({ x: 2, parent: null }));
    const inside = group.lastRead(() => db.inTransaction);
    void group.write(() => insert.get({ x: 3, parent: null }));
    endTurn();
    expect(await inside).toBe(true);
    expect(count()).toBe(3);
  });

  test('last reads asked before a transaction opened in the turn run first in it; lost with it, they fail', async () => {
    const { group, endTurn, insert, db } = open();
    const order: string[] = [];
    const early = group.lastRead(() => (order.push('read'), db.inTransaction));
    const later = group.last(() => order.push('last'));
    endTurn();
    expect(await early).toBe(true);
    await later;
    expect(order).toEqual(['read', 'last']);
    db.run(`CREATE TRIGGER refuse BEFORE INSERT ON t WHEN new.x = 99 BEGIN SELECT RAISE(ROLLBACK, 'refused'); END`);
    const unread = group.lastRead(() => 'read');
    const refused = group.write(() => insert.get({ x: 99, parent: null }));
    endTurn();
    await expect(refused).rejects.toThrow(/refused/);
    await expect(unread).rejects.toThrow(/rolled the transaction back/);
  });

  test('flush commits at once, and the turn that ends later finds nothing to commit', async () => {
    const { group, committed, endTurn, insert } = open();
    const write = group.write(() => insert.get({ x: 1, parent: null }));
    group.flush();
    expect(committed()).toEqual([1]);
    await write;
    endTurn();
    expect(group.commits).toBe(1);
  });

  test('two connections of one process on one file do not wait on each other', async () => {
    const { db, group, insert } = open();
    const second = new Database(db.filename, { strict: true });
    second.run('PRAGMA busy_timeout = 5000');
    const secondGroup = createGroupCommit(second, () => {});
    void group.write(() => insert.get({ x: 1, parent: null }));
    const started = performance.now();
    // Opening the second connection's transaction commits the first's instead of waiting 5 s.
    const written = secondGroup.write(() => second.query('INSERT INTO t (x) VALUES (2)').run());
    expect(performance.now() - started).toBeLessThan(1000);
    secondGroup.flush();
    await written;
    expect(second.query<{ n: number }, []>('SELECT count(*) AS n FROM t').get()!.n).toBe(2);
  });
});
