import { describe, expect, test } from 'bun:test';
import { createAllocator } from './allocator.ts';
import type { LeaseStore } from './lease-store.ts';
import { openSqliteStore } from './sqlite/lease-store.ts';

const GRACE_MS = 60_000;

async function twoServers() {
  const clock = { t: 1_000_000, now: () => clock.t };
  const store: LeaseStore = openSqliteStore(':memory:', clock);
  for (const id of ['a', 'b']) {
    await store.register({ id, url: `ws://127.0.0.1:1/${id}`, conn: `c-${id}`, instanceHash: 'h', client: 'none', targetFps: 60, newKey: 'k', ttlMs: 600_000 });
  }
  const allocator = createAllocator({ store, claimMs: 10_000, minHealth: 0, log: () => {} });
  return { store, allocator };
}

describe('allocator', () => {
  test("a session's server released in the turn its page asks again is given back at once, not a second one", async () => {
    const { store, allocator } = await twoServers();
    const first = (await allocator.allocate({ session: 'sess', conn: 'page-1' }))!;
    const conn = `c-${first.serverId}`;
    await store.setClient(first.serverId, conn, 'connected');
    // The page reloads; its old client's departure is read in the same turn as the new ask.
    const started = performance.now();
    const [again] = await Promise.all([
      allocator.allocate({ session: 'sess', conn: 'page-2' }),
      store.setClient(first.serverId, conn, 'none', GRACE_MS).then(() => allocator.released(first.serverId)),
    ]);
    expect(again!.serverId).toBe(first.serverId);
    expect(performance.now() - started).toBeLessThan(1000);
    await store.close();
  });

  test('a server kept for the session is given at once, though another of its servers is still busy', async () => {
    const { store, allocator } = await twoServers();
    const busy = (await allocator.allocate({ session: 'sess', conn: 'page-1' }))!;
    await store.setClient(busy.serverId, `c-${busy.serverId}`, 'connected');
    // A second tab of the same session used the other server and left it, kept for the session.
    const kept = (await allocator.allocate({ session: 'sess', conn: 'page-2', waitForOwnServer: false }))!;
    expect(kept.serverId).not.toBe(busy.serverId);
    await store.setClient(kept.serverId, `c-${kept.serverId}`, 'connected');
    await store.setClient(kept.serverId, `c-${kept.serverId}`, 'none', GRACE_MS);
    const started = performance.now();
    const again = (await allocator.allocate({ session: 'sess', conn: 'page-3' }))!;
    expect(again.serverId).toBe(kept.serverId);
    expect(performance.now() - started).toBeLessThan(1000);
    await store.close();
  });

  test("a session's server still busy is waited for, and given back once its client leaves", async () => {
    const { store, allocator } = await twoServers();
    const first = (await allocator.allocate({ session: 'sess', conn: 'page-1' }))!;
    const conn = `c-${first.serverId}`;
    await store.setClient(first.serverId, conn, 'connected');
    const asking = allocator.allocate({ session: 'sess', conn: 'page-2' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await store.setClient(first.serverId, conn, 'none', GRACE_MS);
    allocator.released(first.serverId);
    expect((await asking)!.serverId).toBe(first.serverId);
    await store.close();
  });
});
