// The store link's own edges (the behaviour suites run every store method through it as the
// "sqlite, linked" engine): arguments left to their defaults anywhere in the list, messages that
// name no method, and a link whose other end went away.

import { afterEach, describe, expect, test } from 'bun:test';
import { openSqliteStore } from './sqlite/lease-store.ts';
import { StoreLinkClosed, linkedStore, serveStore, type LinkMessage } from './store-link.ts';
import { channelPair, manualClock } from './testing/engines.ts';

const stores: { close(): Promise<void> }[] = [];
afterEach(async () => {
  while (stores.length) await stores.pop()!.close();
});

function linked() {
  const clock = manualClock(1000);
  const served = openSqliteStore(':memory:', clock);
  stores.push(served);
  const [near, far] = channelPair();
  serveStore(served, far);
  return { store: linkedStore(near, { engine: 'sqlite', location: ':memory:' }), near, far };
}

describe('store link', () => {
  test('an argument left undefined in the middle keeps its default on the other side', async () => {
    const { store } = linked();
    await store.register({ id: 'a', url: 'ws://h:1/s', conn: 'c', instanceHash: 'h', client: 'none', targetFps: 60, newKey: 'k', ttlMs: 60_000 });
    // minHealth undefined (default 0), then a session: JSON alone would send null, and no server is >= NULL.
    const grant = await store.allocate(10_000, undefined, 'session-1');
    expect(grant).toMatchObject({ id: 'a', session: 'session-1' });
  });

  test('a message naming no method, or an inherited name, is answered with an error and changes nothing', async () => {
    const { near } = linked();
    const answers: LinkMessage[] = [];
    near.onMessage((message) => answers.push(message));
    near.send({ t: 'call', id: 1, method: 'constructor.keys', args: [] });
    near.send({ t: 'call', id: 2, method: 'waiting.__proto__', args: [] });
    near.send({ t: 'call', id: 3, method: 'all', args: 'not a list' as unknown as unknown[] });
    await Bun.sleep(5);
    expect(answers.map((answer) => answer.t)).toEqual(['error', 'error', 'error']);
  });

  test('once the other end is gone, calls waiting and new ones fail with StoreLinkClosed', async () => {
    const [near] = channelPair(); // nobody serves the far end
    const store = linkedStore(near, { engine: 'sqlite', location: ':memory:' });
    const waiting = store.liveCount();
    store.disconnected();
    expect(waiting).rejects.toBeInstanceOf(StoreLinkClosed);
    expect(store.liveCount()).rejects.toBeInstanceOf(StoreLinkClosed);
  });
});
