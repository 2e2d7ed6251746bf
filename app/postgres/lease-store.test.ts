// What only the PostgreSQL engine has: migrations that many dispatchers run at once, and the
// database's clock.

import { afterEach, describe, expect, test } from 'bun:test';
import { SQL } from 'bun';
import { closeStores, sharedCluster } from '../testing/engines.ts';
import { FREE, PENDING } from './allocation.ts';
import { NOW } from './client.ts';
import { openPostgresStore } from './lease-store.ts';
import { SCHEMA, SCHEMA_VERSION } from './schema.ts';

afterEach(closeStores);

/** A database of its own on the shared cluster. */
async function database(): Promise<string> {
  const { url } = await sharedCluster();
  const name = `db_${crypto.randomUUID().replaceAll('-', '')}`;
  const admin = new SQL(url, { max: 1 });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.close();
  return url.replace(/\/postgres$/, `/${name}`);
}

const input = { id: 'a', url: 'ws://127.0.0.1:1/a', conn: 'c', instanceHash: 'h', client: 'none', targetFps: 60, newKey: 'k', ttlMs: 3000 } as const;

describe('PostgreSQL lease store', () => {
  test('eight dispatchers starting together migrate once, and a restart keeps the leases', async () => {
    const url = await database();
    const stores = await Promise.all(Array.from({ length: 8 }, () => openPostgresStore(url)));
    await stores[0].register(input);
    await Promise.all(stores.map((s) => s.close()));
    const sql = new SQL(url, { max: 1 });
    expect(await sql.unsafe(`SELECT version FROM ${SCHEMA}.migrations ORDER BY version`)).toEqual(
      Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })),
    );
    await sql.close();
    const again = await openPostgresStore(url);
    expect((await again.all()).map((r) => r.id)).toEqual(['a']);
    await again.close();
  });

  test('a database migrated by a newer release is refused, untouched', async () => {
    const url = await database();
    const s = await openPostgresStore(url);
    await s.register(input);
    await s.close();
    const sql = new SQL(url, { max: 1 });
    await sql.unsafe(`INSERT INTO ${SCHEMA}.migrations (version) VALUES (${SCHEMA_VERSION + 1})`);
    await expect(openPostgresStore(url)).rejects.toThrow(`newer than this dispatcher's ${SCHEMA_VERSION}`);
    expect(await sql.unsafe(`SELECT count(*)::int AS n FROM ${SCHEMA}.servers`)).toEqual([{ n: 1 }]);
    await sql.close();
  });

  test('deadlines are set on the database clock, whatever the dispatcher process thinks the time is', async () => {
    const url = await database();
    const s = await openPostgresStore(url);
    const before = Date.now();
    const result = await s.register(input);
    const after = Date.now();
    // The test machine's clock and the database's are the same clock here: the lease ends one TTL after it.
    expect(result.ok && result.row.leaseExpires).toBeGreaterThanOrEqual(before + 3000 - 1);
    expect(result.ok && result.row.leaseExpires).toBeLessThanOrEqual(after + 3000 + 1);
    const now = await s.now();
    expect(Math.abs(now - Date.now())).toBeLessThan(1000);
    await s.close();
  });

  test('the password never reaches a log line', async () => {
    const { port } = await sharedCluster();
    const url = `postgres://postgres:hunter2@127.0.0.1:${port}/postgres`;
    const s = await openPostgresStore(url);
    expect(s.location).toBe(`postgres://postgres:***@127.0.0.1:${port}/postgres`);
    await s.close();
  });

  test("the planner's counts follow the fleet: analysed as servers register, vacuumed and analysed on maintenance", async () => {
    const url = await database();
    const s = await openPostgresStore(url);
    const sql = new SQL(url, { max: 1 });
    const stats = async () =>
      (await sql.unsafe(`SELECT last_analyze, last_vacuum FROM pg_stat_user_tables WHERE schemaname = '${SCHEMA}' AND relname = 'servers'`))[0] as {
        last_analyze: Date | null;
        last_vacuum: Date | null;
      };
    for (let i = 0; i < 100; i++) await s.register({ ...input, id: `s${i}`, url: `ws://127.0.0.1:1/s${i}`, conn: `c${i}` });
    // The count is made in the background; the database publishes it within a second or so.
    const deadline = Date.now() + 5000;
    while (!(await stats())?.last_analyze && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await stats()).last_analyze).not.toBeNull();
    // Allocation then walks the free servers' index in order instead of sorting every row.
    await sql.unsafe(`SET search_path = ${SCHEMA}`);
    const plan = (await sql.unsafe(
      `EXPLAIN SELECT id FROM servers WHERE state IN ('ready', 'reserved') AND (state = 'ready' OR claim_expires <= 0) AND lease_expires > 0 AND health >= 0.1
       ORDER BY health DESC, handed_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
    )).map((row: Record<string, string>) => row['QUERY PLAN']).join('\n');
    expect(plan).toContain('Index Scan using servers_free');
    expect(plan).not.toContain('Sort');
    expect((await stats()).last_vacuum).toBeNull();
    await s.maintain();
    const vacuumed = Date.now() + 5000;
    while (!(await stats()).last_vacuum && Date.now() < vacuumed) await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await stats()).last_vacuum).not.toBeNull();
    await sql.close();
    await s.close();
  }, 15_000);

  test('the servers table is vacuumed as its rows are written again, not only on maintenance', async () => {
    const url = await database();
    const s = await openPostgresStore(url, { churnRows: 10 });
    const sql = new SQL(url, { max: 1 });
    const vacuums = async () =>
      Number((await sql.unsafe(`SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = '${SCHEMA}' AND relname = 'servers'`))[0].vacuum_count);
    await s.register(input);
    const report = (i: number) => s.setClient('a', 'c', i % 2 ? 'none' : 'connected');
    for (let i = 0; i < 9; i++) await report(i);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await vacuums()).toBe(0);
    await report(9);
    const deadline = Date.now() + 5000;
    while ((await vacuums()) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await vacuums()).toBe(1);
    await sql.close();
    await s.close();
  }, 15_000);

  test("a page's pending reservation is looked up among reservations only, and a session's kept server by its session", async () => {
    const url = await database();
    const s = await openPostgresStore(url);
    for (let i = 0; i < 200; i++) await s.register({ ...input, id: `s${i}`, url: `ws://127.0.0.1:1/s${i}`, conn: `c${i}` });
    // One page handed 100 servers in turn, each claimed and left: it is their holder still.
    for (let i = 0; i < 100; i++) {
      const { id } = (await s.allocate(10_000, 0, 'sess-1', 'page-1'))!;
      await s.setClient(id, `c${id.slice(1)}`, 'connected');
      await s.setClient(id, `c${id.slice(1)}`, 'none');
    }
    const sql = new SQL(url, { max: 1 });
    await sql.unsafe(`SET search_path = ${SCHEMA}`);
    await sql.unsafe('ANALYZE servers');
    const plan = (await sql.unsafe(`EXPLAIN ${PENDING("'sess-1'", "'page-1'").replaceAll(NOW, '0')}`)).map((row: Record<string, string>) => row['QUERY PLAN']).join('\n');
    // Either partial index holds reservations only; the planner may walk one of them whole.
    expect(plan).toMatch(/Index Scan using servers_(session_)?holding|Bitmap Index Scan on servers_(session_)?holding/);
    expect(plan).not.toContain('servers_by_session');
    expect(plan).not.toContain('Seq Scan');
    // And a server kept for a returning session is looked up by the session, not among every free one.
    const sticky = (await sql.unsafe(
      `EXPLAIN SELECT id FROM servers WHERE session = 'sess-2' AND session_until > 0 AND ${FREE('0').replaceAll(NOW, '0')} ORDER BY health DESC, handed_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
    )).map((row: Record<string, string>) => row['QUERY PLAN']).join('\n');
    expect(sticky).toContain('servers_by_session');
    await sql.close();
    await s.close();
  }, 15_000);
});
