import { describe, expect, test } from 'bun:test';
import { batchWindow, createHeartbeatBatch } from './heartbeat-batch.ts';
import type { LeaseStore } from './lease-store.ts';
import { openSqliteStore } from './sqlite/lease-store.ts';

const TTL = 3000;

async function setUp(servers: number) {
  const clock = { t: 1_000_000, now: () => clock.t };
  const store: LeaseStore = openSqliteStore(':memory:', clock);
  for (let i = 0; i < servers; i++) {
    await store.register({ id: `s${i}`, url: `ws://127.0.0.1:1/s${i}`, conn: `c${i}`, instanceHash: `h${i}`, client: 'none', targetFps: 60, newKey: 'k', ttlMs: TTL });
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
  test('the window is a twentieth of the margin between heartbeat and lease, from 1 to 100 ms', () => {
    expect(batchWindow({ heartbeatMs: 1000, ttlMs: 3000 })).toBe(100);
    expect(batchWindow({ heartbeatMs: 1000, ttlMs: 10_000 })).toBe(100);
    expect(batchWindow({ heartbeatMs: 100, ttlMs: 300 })).toBe(10);
    expect(batchWindow({ heartbeatMs: 100, ttlMs: 110 })).toBe(1);
  });

  test('heartbeats arriving together are written in one transaction, each answered', async () => {
    const { batch, transactions } = await setUp(50);
    const beats = await Promise.all(Array.from({ length: 50 }, (_, i) => batch.beat(`s${i}`, `c${i}`, health)));
    expect(transactions()).toBe(1);
    expect(beats.every((b) => b !== null && b.state === 'ready')).toBe(true);
  });

  test('a lease is extended from the heartbeat\'s arrival, not from the commit', async () => {
    const { batch, clock } = await setUp(1);
    const arrived = clock.t;
    const answer = batch.beat('s0', 'c0', health);
    clock.t += 1000; // time passes before the batch is written
    expect((await answer)?.leaseExpires).toBe(arrived + TTL);
  });

  test('a connection that no longer holds the lease gets null; the others in its batch are unaffected', async () => {
    const { batch } = await setUp(2);
    const [stale, good] = await Promise.all([batch.beat('s0', 'someone-else', health), batch.beat('s1', 'c1', health)]);
    expect(stale).toBeNull();
    expect(good?.state).toBe('ready');
  });

  test('hurrying a connection writes the waiting beats only while that connection has one waiting', async () => {
    const { batch, transactions } = await setUp(2);
    batch.hurry('c0');
    const first = batch.beat('s0', 'c0', health);
    batch.hurry('c1');
    expect(transactions()).toBe(0);
    batch.hurry('c0');
    expect(transactions()).toBe(1);
    // c0's beat is being written: hurrying it again does not cut the next batch's window short.
    const second = batch.beat('s1', 'c1', health);
    batch.hurry('c0');
    expect(await first).not.toBeNull();
    await Bun.sleep(10); // the write is over, and the next batch's window (100 ms) still runs
    expect(transactions()).toBe(1);
    expect(await second).not.toBeNull();
    expect(transactions()).toBe(2);
  });

  test('a full batch is written at once; flush writes what waits', async () => {
    const { batch, transactions } = await setUp(1);
    const waiting = batch.beat('s0', 'c0', health);
    await batch.flush();
    expect(transactions()).toBe(1);
    expect(await waiting).not.toBeNull();
    await batch.flush();
    expect(transactions()).toBe(1);
  });

  test('a batch arriving while one is written waits for it, and is written next', async () => {
    const { batch, transactions } = await setUp(2);
    const first = batch.beat('s0', 'c0', health);
    const writing = batch.flush();
    const second = batch.beat('s1', 'c1', health);
    const flushed = batch.flush();
    await Promise.all([writing, flushed]);
    expect([(await first)?.state, (await second)?.state, transactions()]).toEqual(['ready', 'ready', 2]);
  });
});
