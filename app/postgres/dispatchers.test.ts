// Several dispatchers on one PostgreSQL database, in one process: each with its own store (its own
// pool and listening connection) and its own clock, as on machines of their own. Nothing here
// sweeps: whatever reaches a dispatcher from another does so through the store's change notices.

import { afterEach, describe, expect, test } from 'bun:test';
import { SQL } from 'bun';
import { encode, type DispatcherToBrowser } from '../../common/protocol.ts';
import type { Clock } from '../clock.ts';
import { createDispatcher, type Dispatcher } from '../dispatcher.ts';
import { closeStores, sharedCluster } from '../testing/engines.ts';
import { openPostgresStore } from './lease-store.ts';

const timings = { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 };
const running: Dispatcher[] = [];

afterEach(async () => {
  while (running.length) running.pop()!.stop();
  await closeStores();
});

/** Two dispatchers on a database of their own. */
async function pair(clocks: [Clock, Clock] = [{ now: Date.now }, { now: Date.now }]): Promise<[Dispatcher, Dispatcher]> {
  const { url } = await sharedCluster();
  const name = `db_${crypto.randomUUID().replaceAll('-', '')}`;
  const admin = new SQL(url, { max: 1 });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.close();
  const dbUrl = url.replace(/\/postgres$/, `/${name}`);
  const open = async (clock: Clock) => {
    const dispatcher = createDispatcher({ store: await openPostgresStore(dbUrl), clock, timings, policy: { rateLimit: 0 } });
    running.push(dispatcher);
    // Closed with the others by the suite's helper.
    return dispatcher;
  };
  return [await open(clocks[0]), await open(clocks[1])];
}

async function renderServer(dispatcher: Dispatcher, id: string) {
  const sent: Record<string, unknown>[] = [];
  const session = dispatcher.openControl({ send: (t) => sent.push(JSON.parse(t)), close() {} });
  const instance = `instance-of-${id}-0123456789`;
  await session.message(encode({ type: 'register', id, instance, url: `ws://127.0.0.1:1/${id}`, client: 'none', targetFps: 60 }));
  return {
    sent,
    heartbeat: (client: 'none' | 'connected' = 'none') => session.message(encode({ type: 'heartbeat', fps: 60, frameMs: 5, client })),
    client: (event: 'connected' | 'gone') => session.message(encode({ type: 'client', event })),
  };
}

function page(dispatcher: Dispatcher) {
  const received: DispatcherToBrowser[] = [];
  const session = dispatcher.openStream({ send: (t) => received.push(JSON.parse(t)), close() {} }, { address: '192.0.2.1' });
  return {
    received,
    session,
    ask: (request: object = {}) => session.message(JSON.stringify({ type: 'get_server_url', ...request })),
    server: () => {
      const url = received.find((m) => m.type === 'server_url');
      return url?.type === 'server_url' ? new URL(url.url).pathname.slice(1) : null;
    },
    position: () => {
      const queued = received.filter((m) => m.type === 'queued').at(-1);
      return queued?.type === 'queued' ? queued.position : null;
    },
  };
}

async function until(what: string, done: () => boolean, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe('dispatchers sharing one PostgreSQL database', () => {
  test('clocks 5 s apart: a lease expires exactly one TTL after its last heartbeat, seen from either', async () => {
    const ahead = { now: () => Date.now() + 5000 };
    const [a, b] = await pair([ahead, { now: Date.now }]);
    const server = await renderServer(a, 's1');
    const before = Date.now();
    await server.heartbeat();
    const after = Date.now();
    const [seenByA] = (await a.page({ limit: 10 })).servers;
    const [seenByB] = (await b.page({ limit: 10 })).servers;
    // Set on the database's clock: not the 5 s-fast one of the dispatcher that wrote it.
    expect(seenByA.leaseExpiresAt).toBe(seenByB.leaseExpiresAt);
    expect(seenByB.leaseExpiresAt).toBeGreaterThanOrEqual(before + timings.ttlMs - 5);
    expect(seenByB.leaseExpiresAt).toBeLessThanOrEqual(after + timings.ttlMs + 5);
    // Handed out by the slow dispatcher until then, and by neither after.
    const early = page(b);
    await early.ask();
    expect(early.server()).toBe('s1');
    await new Promise((resolve) => setTimeout(resolve, seenByB.leaseExpiresAt - Date.now() + 50));
    expect((await a.page({ limit: 10 })).servers[0].state).toBe('expired');
    expect((await b.page({ limit: 10 })).servers[0].state).toBe('expired');
    const late = page(a);
    await late.ask();
    expect(late.received[0]).toMatchObject({ type: 'none', reason: 'no render server is free' });
  }, 15_000);

  test('a server freed through one dispatcher serves the first page waiting on the other, and positions reach every page', async () => {
    const [a, b] = await pair();
    const server = await renderServer(a, 's1');
    const holder = page(a);
    await holder.ask();
    await server.client('connected');
    const first = page(b);
    const second = page(a);
    const third = page(b);
    await first.ask({ wait: true });
    await second.ask({ wait: true });
    await third.ask({ wait: true });
    await until('positions', () => first.position() === 1 && second.position() === 2 && third.position() === 3);
    await server.client('gone');
    await until('the first in line to be served', () => first.server() === 's1');
    await until('the others to move up', () => second.position() === 1 && third.position() === 2);
    expect([second.server(), third.server()]).toEqual([null, null]);
  });

  test('a retry sent to the other dispatcher gets the same grant, and another session another server', async () => {
    const [a, b] = await pair();
    await renderServer(a, 's1');
    await renderServer(b, 's2');
    const asked = page(a);
    await asked.ask({ requestId: 'req-1', session: 'session-1' });
    const retried = page(b);
    await retried.ask({ requestId: 'req-1', session: 'session-1' });
    expect(asked.server()).not.toBeNull();
    expect(retried.received[0]).toEqual(asked.received[0]);
    const other = page(b);
    await other.ask({ session: 'session-2' });
    expect(other.server()).not.toBe(asked.server());
  });

  test('one session asking both dispatchers at once holds one reservation', async () => {
    const [a, b] = await pair();
    for (let i = 0; i < 6; i++) await renderServer(i % 2 ? a : b, `s${i}`);
    const pages = Array.from({ length: 12 }, (_, i) => page(i % 2 ? a : b));
    await Promise.all(pages.map((p) => p.ask({ session: 'one-session' })));
    expect(new Set(pages.map((p) => p.server())).size).toBe(1);
  });

  test('sticky return across dispatchers: the session that left gets its server back on the other one', async () => {
    const [a, b] = await pair();
    const servers = { s1: await renderServer(a, 's1'), s2: await renderServer(a, 's2') };
    const before = page(a);
    await before.ask({ session: 'session-r' });
    const mine = before.server() as 's1' | 's2';
    expect(mine).not.toBeNull();
    await servers[mine].client('connected');
    await servers[mine].client('gone');
    const reloaded = page(b);
    await reloaded.ask({ session: 'session-r' });
    expect(reloaded.server()).toBe(mine);
  });
});
