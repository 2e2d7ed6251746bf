// The engines the behaviour suites run against, the way a library runs one suite against every
// adapter: each gives a fresh store on a clock the test moves, and another store on the same data
// (a restarted dispatcher, or a second one). PostgreSQL is one throwaway cluster for the whole
// run, emptied before each fresh store. "sqlite, linked" is the file as the workers of
// `--workers N` see it: views served by one process, every call over a message channel.

import { SQL } from 'bun';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../../tests/postgres-cluster.ts';
import type { Clock } from '../clock.ts';
import type { LeaseStore } from '../lease-store.ts';
import { openPostgresStore } from '../postgres/lease-store.ts';
import { SCHEMA } from '../postgres/schema.ts';
import { openSqliteFile, openSqliteStore, type SqliteLeaseFile } from '../sqlite/lease-store.ts';
import { linkedStore, serveStore, type Channel, type LinkMessage } from '../store-link.ts';

export interface Engine {
  name: string;
  /** A store on empty data. */
  fresh(clock: Clock): Promise<LeaseStore>;
  /** Another store on the data of the last fresh one. */
  another(clock: Clock): Promise<LeaseStore>;
}

const opened: LeaseStore[] = [];
const track = (store: LeaseStore) => (opened.push(store), store);

/** Closes every store the suites opened (call in afterEach). */
export async function closeStores(): Promise<void> {
  while (opened.length) await opened.pop()!.close().catch(() => {});
  while (linkedFiles.length) await linkedFiles.pop()!.close();
}

let sqliteDir: string | null = null;
let sqliteFile = '';
function newSqliteFile(): string {
  sqliteDir ??= mkdtempSync(join(tmpdir(), 'render-dispatch-suite-'));
  return (sqliteFile = join(sqliteDir, `${crypto.randomUUID()}.db`));
}
const sqlite: Engine = {
  name: 'sqlite',
  fresh: async (clock) => track(openSqliteStore(newSqliteFile(), clock)),
  another: async (clock) => track(openSqliteStore(sqliteFile, clock)),
};
process.on('exit', () => sqliteDir && rmSync(sqliteDir, { recursive: true, force: true }));

/** Two ends of an in-process channel that copies each message, as IPC would, and keeps their order. */
export function channelPair(): [Channel, Channel] {
  const listeners = [new Set<(m: LinkMessage) => void>(), new Set<(m: LinkMessage) => void>()];
  const end = (mine: number): Channel => ({
    send(message) {
      const copy = structuredClone(message);
      queueMicrotask(() => listeners[1 - mine].forEach((listener) => listener(copy)));
    },
    onMessage(listener) {
      listeners[mine].add(listener);
      return () => listeners[mine].delete(listener);
    },
  });
  return [end(0), end(1)];
}

let linkedFile: SqliteLeaseFile | null = null;
const linkedFiles: SqliteLeaseFile[] = [];
function linkedView(file: SqliteLeaseFile): LeaseStore {
  const [near, far] = channelPair();
  const stop = serveStore(file.view(), far);
  const store = linkedStore(near, { engine: 'sqlite', location: sqliteFile });
  const close = store.close;
  return track({ ...store, close: async () => (await close(), stop()) });
}
const sqliteLinked: Engine = {
  name: 'sqlite, linked',
  async fresh(clock) {
    linkedFile = openSqliteFile(newSqliteFile(), clock);
    linkedFiles.push(linkedFile);
    return linkedView(linkedFile);
  },
  another: async () => linkedView(linkedFile!),
};

let cluster: Promise<Cluster> | null = null;
/** The suites' PostgreSQL cluster, started on first use. */
export function sharedCluster(): Promise<Cluster> {
  return (cluster ??= startCluster());
}

const postgres: Engine = {
  name: 'postgres',
  async fresh(clock) {
    const { url } = await sharedCluster();
    const sql = new SQL(url, { max: 1 });
    try {
      // DELETE, not TRUNCATE: a store of the test before may still be finishing a statement.
      await sql.unsafe(`DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '${SCHEMA}') THEN
          DELETE FROM ${SCHEMA}.servers; DELETE FROM ${SCHEMA}.requests; DELETE FROM ${SCHEMA}.waiting; DELETE FROM ${SCHEMA}.dispatchers;
        END IF; END $$`);
    } finally {
      await sql.close();
    }
    return track(await openPostgresStore(url, { clock }));
  },
  another: async (clock) => track(await openPostgresStore((await sharedCluster()).url, { clock })),
};

export const ENGINES: Engine[] = [sqlite, sqliteLinked, postgres];

/** A clock the test sets. */
export function manualClock(t = 0) {
  const clock = { t, now: () => clock.t, set: (to: number) => void (clock.t = to) };
  return clock;
}
