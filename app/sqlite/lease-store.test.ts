// What only the SQLite engine has: a file, its write-ahead log, and its migrations.

import { afterEach, describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LeaseStore } from '../lease-store.ts';
import { openSqliteStore } from './lease-store.ts';
import { SCHEMA_VERSION } from './schema.ts';

let dir: string;
const fresh = () => (dir = mkdtempSync(join(tmpdir(), 'sqlite-store-')));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const input = (i: number) => ({
  id: `s${i}`, url: `ws://127.0.0.1:1/${'x'.repeat(500)}${i}`, conn: `conn-s${i}`, instanceHash: 'h', client: 'none', targetFps: 60, newKey: 'k', ttlMs: 3000,
}) as const;

/** From now on the file refuses, by rolling the whole transaction back (as a full disk would), an update of a server `when`. */
/** A store on a fresh file with `servers` registered, whose file rolls back any update of a server `when` (SQL, on `new`) holds. */
async function refusingStore(servers: number, when: string): Promise<LeaseStore> {
  const path = join(fresh(), 'd.db');
  const s = openSqliteStore(path);
  for (let n = 1; n <= servers; n++) await s.register(input(n));
  const db = new Database(path);
  db.run(`CREATE TRIGGER trap AFTER UPDATE ON servers WHEN ${when} BEGIN SELECT RAISE(ROLLBACK, 'refused'); END`);
  db.close();
  return s;
}

describe('SQLite lease file', () => {
  test('the write-ahead log is emptied by maintenance (the sweep runs it every 10 s)', async () => {
    const path = join(fresh(), 'd.db');
    const clock = { t: 0, now: () => clock.t };
    const s = openSqliteStore(path, clock);
    for (let i = 0; i < 2000; i++) {
      await s.register(input(i));
      await s.disconnect(`s${i}`, `conn-s${i}`);
    }
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    clock.t = 1;
    expect(await s.purge(0)).toBe(2000);
    await s.maintain();
    expect(statSync(`${path}-wal`).size).toBe(0);
    await s.close();
    const reopened = new Database(path);
    expect(reopened.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    reopened.close();
  });

  test('the write-ahead log starts again while the file is in use, with no maintenance pass', async () => {
    const path = join(fresh(), 'd.db');
    const clock = { t: 0, now: () => clock.t };
    const s = openSqliteStore(path, clock);
    // Pages in the log, read from the header of its index (sqlite.org/walformat.html: mxFrame, a
    // native-order u32 at byte 16 of the -shm file) rather than by a checkpoint of the test's own.
    const appended = () => readFileSync(`${path}-shm`).readUInt32LE(16);
    // Pages appended to the log, counted across its restarts: each count is since the last one.
    let pages = 0;
    let last = 0;
    let largest = 0;
    let restarts = 0;
    const end = Date.now() + 30_000;
    for (let i = 0; pages < 30_000 && Date.now() < end; i++) {
      await s.register(input(i));
      await s.disconnect(`s${i}`, `conn-s${i}`);
      if (i % 50 === 0) {
        const now = appended();
        if (now < last) restarts++;
        pages += now >= last ? now - last : now;
        last = now;
        largest = Math.max(largest, statSync(`${path}-wal`).size);
      }
    }
    expect(pages).toBeGreaterThanOrEqual(30_000);
    // Never restarted, the log would have held all 30,000 pages (120 MB).
    expect(restarts).toBeGreaterThanOrEqual(2);
    expect(largest).toBeLessThan(20_000 * 4096);
    await s.close();
  }, 60_000);

  test('a file of the release before migrations is migrated, keeping its leases', async () => {
    const path = join(fresh(), 'd.db');
    const s = openSqliteStore(path);
    await s.register(input(1));
    const [before] = await s.all();
    await s.close();
    // Back to version 6's shape: leases in the servers rows, no owner on places in line, no
    // dispatchers table, no index of reservations by deadline, holders indexed whole.
    const db = new Database(path);
    db.run('DROP INDEX servers_lapsing');
    db.run('DROP INDEX servers_holding');
    db.run('DROP INDEX servers_session_holding');
    db.run('CREATE INDEX servers_by_holder ON servers (holder)');
    for (const column of ['lease_expires INTEGER', 'fps REAL', 'frame_ms REAL']) db.run(`ALTER TABLE servers ADD COLUMN ${column} NOT NULL DEFAULT 0`);
    db.run('UPDATE servers SET lease_expires = (SELECT lease_expires FROM leases WHERE leases.id = servers.id)');
    db.run('DROP TRIGGER servers_lease_gone');
    db.run('DROP TABLE leases');
    db.run('DROP TABLE dispatchers');
    db.run('DROP INDEX waiting_by_owner');
    db.run('ALTER TABLE waiting DROP COLUMN owner');
    db.run('PRAGMA user_version = 6');
    db.close();
    const again = openSqliteStore(path);
    expect((await again.all()).map((r) => [r.id, r.leaseExpires])).toEqual([['s1', before.leaseExpires]]);
    await again.close();
    const check = new Database(path);
    expect(check.query('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION });
    check.close();
  });

  test('a file from a newer release is refused, untouched', async () => {
    const path = join(fresh(), 'd.db');
    const s = openSqliteStore(path);
    await s.register(input(1));
    await s.close();
    const db = new Database(path);
    db.run(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openSqliteStore(path)).toThrow(`newer than this dispatcher's ${SCHEMA_VERSION}`);
    const check = new Database(path);
    expect(check.query('SELECT count(*) AS n FROM servers').get()).toEqual({ n: 1 });
    check.close();
  });

  test('at a full fleet, a server freed by another process is handed out on its next turn', async () => {
    const path = join(fresh(), 'd.db');
    const s = openSqliteStore(path);
    await s.register(input(1));
    await s.setClient('s1', 'conn-s1', 'connected');
    expect(await s.allocate(10_000)).toBeNull();
    expect(await s.allocate(10_000)).toBeNull();
    // Another process's connection, which this store's memo of a full fleet knows nothing of.
    const other = new Database(path);
    other.run("UPDATE servers SET state = 'ready', client = 'none' WHERE id = 's1'");
    other.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect((await s.allocate(10_000))?.id).toBe('s1');
    await s.close();
  });

  test('at a full fleet, a server freed through another connection of the process is handed out in the same turn', async () => {
    const path = join(fresh(), 'd.db');
    const s = openSqliteStore(path);
    const other = openSqliteStore(path);
    await s.register(input(1));
    await s.setClient('s1', 'conn-s1', 'connected');
    expect(await s.allocate(10_000)).toBeNull();
    // Not awaited: the write is made at once, and the memo must not outlive it.
    const freeing = other.setClient('s1', 'conn-s1', 'none');
    expect((await s.allocate(10_000))?.id).toBe('s1');
    expect(await freeing).toBe(true);
    await other.close();
    await s.close();
  });

  test('a reservation undone with its turn is handed out again; the asks after it in the turn fail rather than write alone', async () => {
    const s = await refusingStore(2, "new.holder = 'page-2'");
    // One turn: s1 reserved for page-1, then page-2's reservation undoes everything.
    const outcomes = await Promise.allSettled([1, 2, 3].map((n) => s.allocate(10_000, 0, null, `page-${n}`)));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect((await s.get('s2'))!.state).toBe('ready');
    expect((await s.allocate(10_000, 0, null, 'page-4'))?.id).toBe('s1');
    await s.close();
  });

  for (const fullFleet of [false, true]) {
    test(`a page's ask is decided after the turn's reports: a server freed in it is handed out${fullFleet ? ' (the fleet known full)' : ''}`, async () => {
      const s = openSqliteStore(join(fresh(), 'd.db'));
      await s.register(input(1));
      await s.setClient('s1', 'conn-s1', 'connected');
      // Found full, the next asks are answered from memory, without a transaction.
      if (fullFleet) expect(await s.allocate(10_000, 0, null, 'page-0')).toBeNull();
      // Read in one turn, the ask before the report that its server's client left.
      const [given, freed] = await Promise.all([s.allocate(10_000, 0, null, 'page-1'), s.setClient('s1', 'conn-s1', 'none')]);
      expect(freed).toBe(true);
      expect(given?.id).toBe('s1');
      await s.close();
    });
  }

  test('at a full fleet, the page that asked first in a turn is handed the server a report in it frees', async () => {
    const s = openSqliteStore(join(fresh(), 'd.db'));
    await s.register(input(1));
    await s.setClient('s1', 'conn-s1', 'connected');
    expect(await s.allocate(10_000, 0, null, 'page-0')).toBeNull();
    const [first, freed, second] = await Promise.all([
      s.allocate(10_000, 0, null, 'page-1'),
      s.setClient('s1', 'conn-s1', 'none'),
      s.allocate(10_000, 0, null, 'page-2'),
    ]);
    expect(freed).toBe(true);
    expect(first?.id).toBe('s1');
    expect(second).toBeNull();
    await s.close();
  });

  test('a page asking again in the turn its client is reported connected is handed a new server, not that one', async () => {
    const s = openSqliteStore(join(fresh(), 'd.db'));
    await s.register(input(1));
    await s.register(input(2));
    const first = await s.allocate(10_000, 0, null, 'page-1');
    const [again] = await Promise.all([s.allocate(10_000, 0, null, 'page-1'), s.setClient(first!.id, `conn-${first!.id}`, 'connected')]);
    expect(again).not.toBeNull();
    expect(again!.id).not.toBe(first!.id);
    await s.close();
  });

  test('remembered answers outlive the process, and what another connection remembers or forgets is seen', async () => {
    const path = join(fresh(), 'd.db');
    const a = openSqliteStore(path);
    const far = Date.now() + 60_000;
    const first = { serverId: 's1', url: 'ws://127.0.0.1:1/s1?ticket=t1' };
    expect(await a.requests.save('r1', first, far)).toEqual(first);
    expect(await a.requests.save('r1', { serverId: 's2', url: 'ws://127.0.0.1:1/s2?ticket=t2' }, far)).toEqual(first);
    await a.requests.save('r2', { serverId: 's2', url: 'ws://127.0.0.1:1/s2?ticket=t2' }, far);
    await a.requests.forget('r2');
    await a.requests.save('old', { serverId: 's3', url: 'ws://127.0.0.1:1/s3?ticket=t3' }, Date.now() - 1);
    await a.close();
    // A restart: read back from the file.
    const b = openSqliteStore(path);
    const other = openSqliteStore(path);
    expect(await b.requests.find('r1')).toEqual(first);
    expect(await b.requests.find('r2')).toBeNull();
    expect(await b.requests.find('old')).toBeNull();
    // Another dispatcher on the file answers a request, then forgets another.
    const third = { serverId: 's3', url: 'ws://127.0.0.1:1/s3?ticket=t4' };
    await other.requests.save('r3', third, far);
    expect(await b.requests.find('r3')).toEqual(third);
    expect(await b.requests.save('r3', first, far)).toEqual(third);
    await other.requests.forget('r1');
    expect(await b.requests.find('r1')).toBeNull();
    await other.close();
    await b.close();
  });

  test('an answer remembered in a turn that was rolled back is forgotten with it', async () => {
    const s = await refusingStore(1, "new.state = 'draining'");
    const answer = { serverId: 's1', url: 'ws://127.0.0.1:1/s1?ticket=t1' };
    // In one turn: remembered, rolled back, and looked for again.
    const outcomes = await Promise.allSettled([s.requests.save('r1', answer, Date.now() + 60_000), s.drain('s1'), s.requests.find('r1')]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect((outcomes[2] as PromiseFulfilledResult<unknown>).value).toBeNull();
    expect(await s.requests.find('r1')).toBeNull();
    expect(await s.requests.save('r1', answer, Date.now() + 60_000)).toEqual(answer);
    expect(await s.requests.find('r1')).toEqual(answer);
    await s.close();
  });
});

