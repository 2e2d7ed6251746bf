// Lending between three sites in memory (each its own SQLite store and allocator, relays joined
// directly): local servers first, then the site that said it had the most free; a lender found
// full is passed over; a lent server given back is free at its lender again; a retry of a
// request gets the same lent server.

import { afterEach, describe, expect, test } from 'bun:test';
import type { RelayFrame } from '../../common/protocol.ts';
import { createAllocator } from '../allocator.ts';
import { createEventSource, type DispatcherEvents } from '../events.ts';
import type { LeaseStore } from '../lease-store.ts';
import { openSqliteStore } from '../sqlite/lease-store.ts';
import { createFlock, type Flock } from './flock.ts';

const CLAIM = 10_000;
const stores: LeaseStore[] = [];
/** A count or a loan still under way when a test ends meets a closed store: that is not the test's failure. */
let closing = false;
afterEach(async () => {
  closing = true;
  while (stores.length) await stores.pop()!.close();
  await Bun.sleep(60);
  closing = false;
});

interface Site {
  name: string;
  store: LeaseStore;
  flock: Flock;
}

async function site(name: string, servers: number, { askMs, slow = 0 }: { askMs?: number; slow?: number } = {}): Promise<Site> {
  const opened = openSqliteStore(':memory:');
  // A lender whose store takes `slow` ms to make its first reservation answers that one late.
  let delay = slow;
  const store: LeaseStore = {
    ...opened,
    allocate: (...args) => {
      const wait = delay;
      delay = 0;
      return Bun.sleep(wait).then(() => opened.allocate(...args));
    },
  };
  stores.push(opened);
  for (let i = 0; i < servers; i++) {
    const id = `${name}-${i}`;
    await store.register({ id, url: `ws://${name}.example/${i}`, conn: `conn-${id}`, instanceHash: `h-${id}`, client: 'none', targetFps: 60, newKey: `key-${id}`, ttlMs: 60_000 });
  }
  const log = () => {};
  const local = createAllocator({ store, claimMs: CLAIM, minHealth: 0, log });
  const flock = createFlock(
    { secret: 'unused-in-memory-0123456', maxHops: 8, noEvents: false },
    {
      events: createEventSource<DispatcherEvents>(), store, local, minHealth: 0, claimMs: CLAIM, log, now: Date.now, askMs,
      failed: (what, error) => {
        if (!closing) throw new Error(`${what}: ${error}`);
      },
    },
  );
  return { name, store, flock };
}

/** Joins two sites' relays directly (frames delivered on the next tick, as over a socket). */
function join(a: Site, b: Site): void {
  const ends: { receive(frame: RelayFrame): void }[] = [];
  const carry = (to: number) => (frame: RelayFrame) => setTimeout(() => ends[to].receive(structuredClone(frame)), 0);
  ends[0] = a.flock.relay.attach({ peer: b.flock.member, address: b.name, direction: 'out', send: carry(1) });
  ends[1] = b.flock.relay.attach({ peer: a.flock.member, address: a.name, direction: 'in', send: carry(0) });
}

const until = async (what: string, probe: () => boolean | Promise<boolean>) => {
  const deadline = Date.now() + 3000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
};

const heard = (at: Site, from: Site, free: number) => at.flock.lending.peers().some((p) => p.member === from.flock.member && p.free === free);

describe('lending', () => {
  test('local first, then the site with the most free; a full lender is passed over; a given-back server is free again', async () => {
    const [a, b, c] = await Promise.all([site('a', 1), site('b', 1), site('c', 3)]);
    join(a, b);
    join(a, c);
    await until('a hears b and c', () => heard(a, b, 1) && heard(a, c, 3));

    expect((await a.flock.allocator.allocate({ conn: 'p1' }))?.url).toStartWith('ws://a.example/0');
    const lent = await a.flock.allocator.allocate({ conn: 'p2' });
    expect(lent).toMatchObject({ serverId: expect.stringMatching(/^c-/), lender: c.flock.member });
    await until('c says 2 free', () => heard(a, c, 2));

    // C fills up behind A's back: A still believes it has two, asks, and goes on to B.
    await c.store.allocate(CLAIM, 0, null, 'c-page-1');
    await c.store.allocate(CLAIM, 0, null, 'c-page-2');
    const fromB = await a.flock.allocator.allocate({ conn: 'p3' });
    expect(fromB).toMatchObject({ serverId: 'b-0', lender: b.flock.member });
    expect(await a.flock.allocator.allocate({ conn: 'p4' })).toBeNull();

    // The page left before it got its URL: the server is B's to hand out again.
    await a.flock.allocator.cancel(fromB!);
    await until('b-0 free again', async () => (await b.store.freeCount()) === 1);
    expect((await b.flock.allocator.allocate({ conn: 'b-page' }))?.serverId).toBe('b-0');
  });

  test('an answer that comes after the asker gave up is given back; a server is taken back only from its borrower', async () => {
    const [a, b, c] = await Promise.all([site('a', 0, { askMs: 20 }), site('b', 1, { slow: 100 }), site('c', 0)]);
    join(a, b);
    join(c, b);
    await until('a hears b', () => heard(a, b, 1));
    expect(await a.flock.allocator.allocate({ conn: 'p1' })).toBeNull();
    // B reserved it for A after all; A gave it back on hearing.
    await until('b-0 free again', async () => (await b.store.freeCount()) === 1 && heard(a, b, 1));

    const lent = await a.flock.allocator.allocate({ conn: 'p2' });
    expect(lent?.serverId).toBe('b-0');
    // C never borrowed it: its give-back is ignored and A's page keeps the server.
    c.flock.lending.giveBack({ ...lent!, lender: b.flock.member });
    await Bun.sleep(50);
    expect(await b.store.freeCount()).toBe(0);
  });

  test('a retry of a request gets the same lent server, not a second one, and its cancel gives it back', async () => {
    const [a, b] = await Promise.all([site('a', 0), site('b', 2)]);
    join(a, b);
    await until('a hears b', () => heard(a, b, 2));
    const first = await a.flock.allocator.allocate({ requestId: 'req-1', conn: 'p1' });
    const again = await a.flock.allocator.allocate({ requestId: 'req-1', conn: 'p1-reloaded' });
    expect(again?.url).toBe(first!.url);
    expect(await b.store.freeCount()).toBe(1);
    await a.flock.allocator.cancel(again!);
    await until('both free at b', async () => (await b.store.freeCount()) === 2);
  });
});
