import { describe, expect, test } from 'bun:test';
import { createHeartbeatBatch } from './heartbeat-batch.ts';
import { openLeaseStore } from './lease-store.ts';

const TTL = 3000;

function setUp(servers: number) {
  const store = openLeaseStore(':memory:');
  const clock = { t: 1_000_000, now: () => clock.t };
  for (let i = 0; i < servers; i++) {
    store.register({ id: `s${i}`, url: `ws://127.0.0.1:1/s${i}`, conn: `c${i}`, instanceHash: `h${i}`, client: 'none', targetFps: 60, newKey: 'k', now: clock.t, ttlMs: TTL });
  }
  let transactions = 0;
  const heartbeats = store.heartbeats;
  store.heartbeats = (beats, ttlMs) => {
    transactions++;
    return heartbeats(beats, ttlMs);
  };
  return { store, clock, batch: createHeartbeatBatch(store, TTL, clock), transactions: () => transactions };
}

const health = { fps: 30, frameMs: 10, client: 'none' as const };

describe('heartbeat batches', () => {
  test('heartbeats arriving together are written in one transaction, each answered', async () => {
    const { batch, transactions } = setUp(50);
    const beats = await Promise.all(Array.from({ length: 50 }, (_, i) => batch.beat(`s${i}`, `c${i}`, health)));
    expect(transactions()).toBe(1);
    expect(beats.every((b) => b !== null && b.state === 'ready')).toBe(true);
  });

  test('a lease is extended from the heartbeat\'s arrival, not from the commit', async () => {
    const { batch, clock } = setUp(1);
    const arrived = clock.t;
    const answer = batch.beat('s0', 'c0', health);
    clock.t += 1000; // time passes before the batch is written
    expect((await answer)?.leaseExpires).toBe(arrived + TTL);
  });

  test('a connection that no longer holds the lease gets null; the others in its batch are unaffected', async () => {
    const { batch } = setUp(2);
    const [stale, good] = await Promise.all([batch.beat('s0', 'someone-else', health), batch.beat('s1', 'c1', health)]);
    expect(stale).toBeNull();
    expect(good?.state).toBe('ready');
  });

  test('a full batch is written at once; flush writes what waits', async () => {
    const { batch, transactions } = setUp(1);
    const waiting = batch.beat('s0', 'c0', health);
    batch.flush();
    expect(transactions()).toBe(1);
    expect(await waiting).not.toBeNull();
    batch.flush();
    expect(transactions()).toBe(1);
  });
});
