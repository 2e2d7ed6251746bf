// The lease store's behaviour, run against every engine (app/testing/engines.ts).

import { afterEach, describe, expect, test } from 'bun:test';
import { effectiveState, type LeaseStore } from './lease-store.ts';
import { ENGINES, closeStores, manualClock } from './testing/engines.ts';

const TTL = 3000;
const CLAIM = 10_000;
const idle = { fps: 0, frameMs: 0, client: 'none' } as const;

afterEach(closeStores);

for (const engine of ENGINES) {
  describe(`lease store (${engine.name})`, () => {
    const clock = manualClock();
    /** Sets the store's time. */
    const at = (t: number) => clock.set(t);
    const store = () => {
      at(0);
      return engine.fresh(clock);
    };

    async function register(s: LeaseStore, id: string, opts: { url?: string; conn?: string; client?: 'none' | 'connected'; instanceHash?: string } = {}) {
      const result = await s.register({
        id, url: opts.url ?? `ws://127.0.0.1:${id.length + 16000}/stream-${id}`, conn: opts.conn ?? `conn-${id}`, instanceHash: opts.instanceHash ?? `hash-${id}`,
        client: opts.client ?? 'none', targetFps: 60, newKey: `key-${id}-${clock.t}`, ttlMs: TTL,
      });
      if (!result.ok) throw new Error(result.conflict);
      return result;
    }

    /** [id, state] of every row as of `now`. */
    const states = async (s: LeaseStore, now: number) => (await s.all()).map((row) => [row.id, effectiveState(row, now)]);
    const stateOf = async (s: LeaseStore, id: string, now: number) => effectiveState((await s.get(id))!, now);

    test('hands a ready server out once, then none', async () => {
      const s = await store();
      at(1000);
      await register(s, 'a');
      at(1001);
      const first = await s.allocate(CLAIM);
      expect(first?.id).toBe('a');
      expect(first?.claimExpires).toBe(1001 + CLAIM);
      at(1002);
      expect(await s.allocate(CLAIM)).toBeNull();
      expect(await stateOf(s, 'a', 1002)).toBe('reserved');
    });

    test('counts the servers it could hand out now: ready, or reserved past the claim', async () => {
      const s = await store();
      at(1000);
      for (const id of ['a', 'b', 'c']) await register(s, id);
      expect(await s.freeCount()).toBe(3);
      at(1001);
      await s.allocate(CLAIM);
      await s.drain('c');
      expect(await s.freeCount()).toBe(1);
      // The page never came: its server counts again once the claim lapses, until the lease does.
      at(1001 + CLAIM);
      await s.heartbeat('a', 'conn-a', TTL, idle);
      await s.heartbeat('b', 'conn-b', TTL, idle);
      expect(await s.freeCount()).toBe(2);
      at(1001 + CLAIM + TTL);
      expect(await s.freeCount()).toBe(0);
    });

    test('never hands out a lease that has expired, swept or not', async () => {
      const s = await store();
      at(1000);
      await register(s, 'a');
      at(1000 + TTL);
      expect(await s.allocate(CLAIM)).toBeNull();
      expect(await stateOf(s, 'a', 1000 + TTL)).toBe('expired');
      at(1000 + TTL - 1);
      expect((await s.allocate(CLAIM))?.id).toBe('a');
    });

    test('a heartbeat extends the lease by the TTL and a late one revives an expired lease', async () => {
      const s = await store();
      await register(s, 'a');
      at(2000);
      expect((await s.heartbeat('a', 'conn-a', TTL, { fps: 60, frameMs: 5, client: 'none' }))?.leaseExpires).toBe(5000);
      at(5000);
      expect(await s.allocate(CLAIM)).toBeNull();
      // A frozen server that resumes: its next heartbeat makes it available again by itself.
      at(9000);
      expect((await s.heartbeat('a', 'conn-a', TTL, { fps: 60, frameMs: 5, client: 'none' }))?.state).toBe('ready');
      at(9001);
      expect((await s.allocate(CLAIM))?.id).toBe('a');
    });

    test('a batched heartbeat runs its lease from its arrival', async () => {
      const s = await store();
      await register(s, 'a');
      await register(s, 'b');
      at(1000);
      const beats = await s.heartbeats([{ id: 'a', conn: 'conn-a', ageMs: 40, health: idle }, { id: 'b', conn: 'not-b', ageMs: 0, health: idle }], TTL);
      expect(beats).toEqual([{ url: 'ws://127.0.0.1:16001/stream-a', state: 'ready', leaseExpires: 960 + TTL }, null]);
    });

    test('a reservation whose client never came returns to the pool at the claim deadline', async () => {
      const s = await store();
      await register(s, 'a');
      await s.allocate(CLAIM);
      at(CLAIM - 1);
      await s.heartbeat('a', 'conn-a', TTL, idle);
      expect(await s.allocate(CLAIM)).toBeNull();
      expect(await stateOf(s, 'a', CLAIM)).toBe('ready');
      at(CLAIM);
      expect((await s.allocate(CLAIM))?.id).toBe('a');
    });

    test('busy while the client is connected, ready again when it leaves', async () => {
      const s = await store();
      await register(s, 'a');
      await s.allocate(CLAIM);
      at(10);
      expect(await s.setClient('a', 'conn-a', 'connected')).toBe(true);
      expect(await stateOf(s, 'a', 10)).toBe('busy');
      // A busy server stays busy past any claim deadline.
      at(CLAIM + 5);
      await s.heartbeat('a', 'conn-a', TTL, { fps: 60, frameMs: 5, client: 'connected' });
      at(CLAIM + 6);
      expect(await s.allocate(CLAIM)).toBeNull();
      at(CLAIM + 7);
      await s.setClient('a', 'conn-a', 'none');
      expect(await stateOf(s, 'a', CLAIM + 7)).toBe('ready');
      at(CLAIM + 8);
      expect((await s.allocate(CLAIM))?.id).toBe('a');
    });

    test('a closed control connection takes the server out at once, lease or not', async () => {
      const s = await store();
      await register(s, 'a');
      at(1);
      expect((await s.disconnect('a', 'conn-a'))?.state).toBe('offline');
      at(2);
      expect(await s.allocate(CLAIM)).toBeNull();
      expect(await stateOf(s, 'a', 2)).toBe('offline');
    });

    test('a stale connection can neither heartbeat nor close a lease it no longer holds', async () => {
      const s = await store();
      await register(s, 'a', { conn: 'old' });
      at(10);
      await register(s, 'a', { conn: 'new' });
      at(20);
      expect(await s.heartbeat('a', 'old', TTL, idle)).toBeNull();
      expect(await s.disconnect('a', 'old')).toBeNull();
      expect((await s.allocate(CLAIM))?.id).toBe('a');
    });

    test('registering again brings a new key and keeps an outstanding reservation', async () => {
      const s = await store();
      await register(s, 'a');
      await s.allocate(CLAIM);
      at(100);
      const again = await register(s, 'a', { url: 'ws://127.0.0.1:16001/stream-a', conn: 'c2' });
      expect(again.row.key).toBe('key-a-100');
      expect(again.row.state).toBe('reserved');
      expect(again.isNew).toBe(false);
    });

    test('a registration reporting a connected client comes back busy', async () => {
      const s = await store();
      await register(s, 'a');
      at(100);
      const again = await register(s, 'a', { conn: 'c2', client: 'connected' });
      expect(again.row.state).toBe('busy');
      expect(await s.allocate(CLAIM)).toBeNull();
    });

    test('a new id on the URL of a live server is refused; once that server is gone it replaces it', async () => {
      const s = await store();
      await register(s, 'old', { url: 'ws://127.0.0.1:16000/stream' });
      const input = { id: 'new', url: 'ws://127.0.0.1:16000/stream', conn: 'c', instanceHash: 'h', client: 'none', targetFps: 60, newKey: 'k', ttlMs: TTL } as const;
      at(5);
      expect(await s.register(input)).toEqual({ ok: false, field: 'url', conflict: 'ws://127.0.0.1:16000/stream belongs to live render server old' });
      // Expired (frozen, or its dispatcher gone) counts as gone, as does offline.
      at(TTL);
      const result = await s.register(input);
      expect(result.ok && result.replaced.map((r) => r.id)).toEqual(['old']);
      expect(await states(s, TTL + 1)).toEqual([['new', 'ready']]);
    });

    test("an id is its first process's: another instance is refused even once the lease is gone", async () => {
      const s = await store();
      await register(s, 'a', { instanceHash: 'first' });
      at(1);
      await s.disconnect('a', 'conn-a');
      at(2);
      expect(await s.register({ id: 'a', url: 'ws://x/s', conn: 'c', instanceHash: 'second', client: 'none', targetFps: 60, newKey: 'k', ttlMs: TTL }))
        .toEqual({ ok: false, field: 'id', conflict: 'id a belongs to another render server process' });
      at(3);
      expect((await register(s, 'a', { instanceHash: 'first', conn: 'again' })).row.state).toBe('ready');
    });

    test('a pending reservation is found by its session or its connection, until claimed or lapsed', async () => {
      const s = await store();
      await register(s, 'a');
      await register(s, 'b');
      at(1);
      const grant = (await s.allocate(CLAIM, 0, 'sess-1', 'page-1'))!;
      at(2);
      expect(await s.pending({ session: 'sess-1' })).toEqual(grant);
      expect(await s.pending({ conn: 'page-1' })).toEqual(grant);
      expect(await s.pending({ session: 'sess-2', conn: 'page-2' })).toBeNull();
      expect(await s.pending({})).toBeNull();
      at(1 + CLAIM);
      expect(await s.pending({ conn: 'page-1' })).toBeNull();
      at(3);
      await s.setClient(grant.id, `conn-${grant.id}`, 'connected');
      at(4);
      expect(await s.pending({ session: 'sess-1' })).toBeNull();
    });

    test('lists servers a page at a time, filtered by the state they are in now', async () => {
      const s = await store();
      for (let i = 0; i < 5; i++) {
        at(i);
        await register(s, `s${i}`);
      }
      at(10);
      await s.allocate(CLAIM);
      at(11);
      await s.disconnect('s4', 'conn-s4');
      at(12);
      const first = await s.list({ limit: 2 });
      expect([first.rows.map((r) => r.id), first.now]).toEqual([['s0', 's1'], 12]);
      const second = await s.list({ limit: 2, after: first.next });
      expect(second.rows.map((r) => r.id)).toEqual(['s2', 's3']);
      const third = await s.list({ limit: 2, after: second.next });
      expect([third.rows.map((r) => r.id), third.next]).toEqual([['s4'], null]);
      expect((await s.list({ limit: 10, state: 'reserved' })).rows.map((r) => r.id)).toEqual(['s0']);
      expect((await s.list({ limit: 10, state: 'offline' })).rows.map((r) => r.id)).toEqual(['s4']);
      // After the claim deadline the reservation counts as ready again; after the TTL all are expired.
      at(10 + CLAIM);
      expect((await s.list({ limit: 10, state: 'ready' })).rows).toHaveLength(0);
      expect((await s.list({ limit: 10, state: 'expired' })).rows.map((r) => r.id)).toEqual(['s0', 's1', 's2', 's3']);
    });

    test('purges rows offline or expired for longer than the retention', async () => {
      const s = await store();
      await register(s, 'gone');
      await register(s, 'frozen');
      await register(s, 'alive');
      at(100);
      await s.disconnect('gone', 'conn-gone');
      at(5000);
      await s.heartbeat('alive', 'conn-alive', TTL, idle);
      at(TTL + 99);
      expect(await s.purge(TTL)).toBe(0);
      at(2 * TTL);
      expect(await s.purge(TTL)).toBe(2);
      expect((await s.all()).map((r) => r.id)).toEqual(['alive']);
    });

    test('hands out the least recently used server first, each server once', async () => {
      const s = await store();
      for (const id of ['a', 'b', 'c']) await register(s, id);
      at(1);
      await s.allocate(CLAIM);
      at(2);
      await s.setClient('a', 'conn-a', 'none');
      const order: (string | null)[] = [];
      for (const t of [3, 4, 5, 6]) {
        at(t);
        order.push((await s.allocate(CLAIM))?.id ?? null);
      }
      expect(order).toEqual(['b', 'c', 'a', null]);
    });

    test('lapsed reservations and ready servers are handed out in one order: healthiest, then least recently used', async () => {
      // a and b are reserved for 100 ms at 1 and 2; b is released at 3, a's page never comes. At
      // 101 a is a lapsed reservation (handed out at 1), b is ready (at 2), c is ready (never).
      const lapsedAmongReady = async (aFrameMs: number) => {
        const s = await store();
        for (const id of ['a', 'b', 'c']) await register(s, id);
        at(1);
        expect((await s.allocate(100))?.id).toBe('a');
        at(2);
        expect((await s.allocate(100))?.id).toBe('b');
        at(3);
        await s.release('b');
        await s.heartbeat('a', 'conn-a', TTL, { fps: 0, frameMs: aFrameMs, client: 'none' });
        at(101);
        expect(await stateOf(s, 'a', 101)).toBe('ready');
        return [await s.allocate(100), await s.allocate(100), await s.allocate(100), await s.allocate(100)].map((got) => got?.id ?? null);
      };
      expect(await lapsedAmongReady(5)).toEqual(['c', 'a', 'b', null]);
      expect(await lapsedAmongReady(30)).toEqual(['c', 'b', 'a', null]);
      // A lapsed reservation healthier than a ready server goes first, though handed out later.
      const s = await store();
      for (const id of ['a', 'b']) await register(s, id);
      at(1);
      await s.heartbeat('a', 'conn-a', TTL, { fps: 0, frameMs: 30, client: 'none' });
      at(2);
      expect((await s.allocate(100))?.id).toBe('b');
      at(102);
      expect([(await s.allocate(100))?.id, (await s.allocate(100))?.id]).toEqual(['b', 'a']);
    });

    test('a drained server is never handed out, keeps its client, and stays drained through reconnects', async () => {
      const s = await store();
      await register(s, 'a');
      await s.allocate(CLAIM);
      at(1);
      await s.setClient('a', 'conn-a', 'connected');
      at(2);
      expect((await s.drain('a'))?.state).toBe('draining');
      expect(await s.drain('a')).toBeNull();
      at(4);
      await s.setClient('a', 'conn-a', 'none');
      at(5);
      await s.heartbeat('a', 'conn-a', TTL, { fps: 0, frameMs: 3, client: 'none' });
      at(6);
      await register(s, 'a', { conn: 'conn-b' });
      expect(await stateOf(s, 'a', 7)).toBe('draining');
      at(7);
      expect(await s.allocate(CLAIM)).toBeNull();
      expect((await s.undrain('a'))?.state).toBe('ready');
      expect((await s.allocate(CLAIM))?.id).toBe('a');
    });

    test('undraining a server whose client is still there makes it busy, not ready', async () => {
      const s = await store();
      await register(s, 'a', { client: 'connected' });
      await s.drain('a');
      expect((await s.undrain('a'))?.state).toBe('busy');
      expect(await s.undrain('a')).toBeNull();
    });

    test('health comes from the frame time against the target, and the healthiest is handed out first', async () => {
      const s = await store();
      for (const id of ['slow', 'fast', 'sick']) await register(s, id);
      at(1);
      const beat = async (id: string, frameMs: number) => {
        await s.heartbeat(id, `conn-${id}`, TTL, { fps: 0, frameMs, client: 'none' });
        return (await s.get(id))!.health;
      };
      expect(await beat('slow', 30)).toBe(0.5); // 1000 / (30 * 60) = 0.56, rounded down
      expect(await beat('fast', 5)).toBe(1);
      expect(await beat('sick', 100)).toBe(0.1); // 1/6, rounded down to its step
      expect((await s.allocate(CLAIM, 0.2))?.id).toBe('fast');
      expect((await s.allocate(CLAIM, 0.2))?.id).toBe('slow');
      expect(await s.allocate(CLAIM, 0.2)).toBeNull();
      expect((await s.allocate(CLAIM, 0))?.id).toBe('sick');
    });

    test('a session gets its server back within its grace period, and only then', async () => {
      const s = await store();
      await register(s, 'a');
      await register(s, 'b');
      await register(s, 'c');
      await s.allocate(CLAIM, 0, 'sess');
      await s.setClient('a', 'conn-a', 'connected');
      // Its server still busy with its old client: nothing reserved, and the server named.
      expect(await s.allocateForSession('sess', CLAIM, 0, 'page-2')).toEqual({ allocation: null, held: 'a' });
      expect(await s.pending({ session: 'sess' })).toBeNull();
      at(100);
      await s.setClient('a', 'conn-a', 'none', 1000);
      // Kept for its session: handed to others last.
      expect((await s.allocate(CLAIM))?.id).toBe('b');
      expect((await s.allocateForSession('other', CLAIM)).allocation?.id).toBe('c');
      expect(await s.allocateForSession('sess', CLAIM, 0, 'page-3')).toMatchObject({ allocation: { id: 'a', session: 'sess' }, held: null });
      await s.release('a');
      at(1200);
      // The grace period over (the leases run to 3000), a session is given any free server.
      expect((await s.allocateForSession('sess', CLAIM, 0, 'page-4')).allocation?.id).toBe('a');
      await s.release('a');
      await s.release('b');
      // A session with nothing kept: the least recently handed out.
      expect((await s.allocateForSession('late', CLAIM)).allocation?.id).toBe('b');
    });

    test('a session with a busy server and a kept one is given the kept one at once; told not to wait, a new one', async () => {
      const s = await store();
      for (const id of ['a', 'b', 'c']) await register(s, id);
      await s.allocate(CLAIM, 0, 'sess', 'tab-1');
      await s.setClient('a', 'conn-a', 'connected');
      expect((await s.allocateForSession('sess', CLAIM, 0, 'tab-2', false)).allocation?.id).toBe('b');
      await s.setClient('b', 'conn-b', 'connected');
      at(100);
      await s.setClient('b', 'conn-b', 'none', 5000);
      expect(await s.allocateForSession('sess', CLAIM, 0, 'tab-3')).toMatchObject({ allocation: { id: 'b' }, held: null });
      // A page asking again gets the reservation it holds, busy server or not.
      expect((await s.allocateForSession('sess', CLAIM, 0, 'tab-3')).allocation?.id).toBe('b');
      await s.setClient('b', 'conn-b', 'connected');
      expect(await s.allocateForSession('sess', CLAIM, 0, 'tab-4')).toEqual({ allocation: null, held: expect.stringMatching(/^[ab]$/) });
      expect((await s.allocateForSession('sess', CLAIM, 0, 'tab-4', false)).allocation?.id).toBe('c');
    });

    test('a request id remembers its answer until the claim deadline, and the first answer stands', async () => {
      const s = await store();
      const answer = { serverId: 'a', url: 'ws://x/stream?ticket=t' };
      expect(await s.requests.save('r1', answer, 100)).toEqual(answer);
      // A second attempt (on another dispatcher, say) finds the first answer in its place.
      expect(await s.requests.save('r1', { serverId: 'b', url: 'ws://y' }, 100)).toEqual(answer);
      const other = await engine.another(clock);
      at(99);
      expect(await other.requests.find('r1')).toEqual(answer);
      at(100);
      expect(await other.requests.find('r1')).toBeNull();
      // Past its deadline an id may be used again.
      expect(await s.requests.save('r1', { serverId: 'b', url: 'ws://y' }, 200)).toEqual({ serverId: 'b', url: 'ws://y' });
      await other.requests.forget('r1');
      expect(await s.requests.find('r1')).toBeNull();
      await s.requests.save('r2', answer, 150);
      at(150);
      await s.requests.prune();
      at(0);
      expect(await s.requests.find('r2')).toBeNull();
    });

    test('leases survive a restart on the same data', async () => {
      const first = await store();
      await register(first, 'a');
      await register(first, 'b');
      at(1);
      await first.allocate(CLAIM);
      at(2);
      await first.setClient('a', 'conn-a', 'connected');
      await first.close();
      const second = await engine.another(clock);
      expect(await states(second, 3)).toEqual([['a', 'busy'], ['b', 'ready']]);
      at(3);
      expect((await second.allocate(CLAIM))?.id).toBe('b');
      expect(await second.allocate(CLAIM)).toBeNull();
    });

    test('two stores on the same data never hand out one server twice', async () => {
      const first = await store();
      const second = await engine.another(clock);
      for (let i = 0; i < 20; i++) await register(first, `s${i}`);
      at(1);
      const grants = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? first : second).allocate(CLAIM)));
      const ids = grants.flatMap((g) => (g ? [g.id] : []));
      expect(ids).toHaveLength(20);
      expect(new Set(ids).size).toBe(20);
    });

    // A store may remember that nothing is free (SQLite does); whatever frees a server must still
    // reach the next page at once. Each step empties the pool, asks (none), frees one way, asks again.
    test('at a full fleet, a server is handed out the moment anything frees one', async () => {
      const s = await store();
      const other = await engine.another(clock);
      at(1000);
      await register(s, 'a');
      const full = async () => expect(await s.allocate(CLAIM, 0.5)).toBeNull();
      const next = async () => (await s.allocate(CLAIM, 0.5))?.id ?? null;
      // A reservation whose page never comes: free at its claim deadline, not a moment before.
      const claimed = await s.allocate(CLAIM);
      at(1000 + CLAIM - 1);
      await s.heartbeat('a', 'conn-a', TTL, idle);
      await full();
      at(claimed!.claimExpires);
      expect(await next()).toBe('a');
      // Its client left.
      await s.setClient('a', 'conn-a', 'connected');
      await full();
      await s.setClient('a', 'conn-a', 'none');
      expect(await next()).toBe('a');
      // Released by a page gone before it got the URL.
      await full();
      await s.release('a');
      expect(await next()).toBe('a');
      // Undrained.
      await s.setClient('a', 'conn-a', 'none');
      await s.drain('a');
      await full();
      await s.undrain('a');
      expect(await next()).toBe('a');
      // A new server registered.
      await full();
      await register(s, 'b');
      expect(await next()).toBe('b');
      // A server too slow to hand out reports a faster frame.
      await s.heartbeat('b', 'conn-b', TTL, { fps: 10, frameMs: 100, client: 'none' });
      await s.setClient('b', 'conn-b', 'none');
      await full();
      await s.heartbeat('b', 'conn-b', TTL, { fps: 60, frameMs: 5, client: 'none' });
      expect(await next()).toBe('b');
      // A lease that ran out, revived by a late heartbeat.
      await s.setClient('b', 'conn-b', 'none');
      at(clock.t + TTL);
      await full();
      await s.heartbeat('b', 'conn-b', TTL, idle);
      expect(await next()).toBe('b');
      // Freed through another store on the same data (another dispatcher).
      await full();
      await other.setClient('b', 'conn-b', 'none');
      expect(await next()).toBe('b');
    });

    test('at a full fleet, a page asking again still gets its own unclaimed reservation', async () => {
      const s = await store();
      at(1000);
      await register(s, 'a');
      const mine = await s.allocate(CLAIM, 0, 'session-1', 'conn-1');
      expect(await s.allocate(CLAIM, 0, null, 'conn-2')).toBeNull();
      expect(await s.allocate(CLAIM, 0, null, 'conn-3')).toBeNull();
      expect((await s.allocate(CLAIM, 0, null, 'conn-1'))?.grantId).toBe(mine!.grantId);
      expect((await s.allocateForSession('session-1', CLAIM, 0, 'conn-4')).allocation?.grantId).toBe(mine!.grantId);
      // At a full fleet the session's busy server is still named, for its page to wait for.
      await s.setClient('a', 'conn-a', 'connected');
      expect(await s.allocateForSession('session-1', CLAIM, 0, 'conn-5')).toEqual({ allocation: null, held: 'a' });
      expect(await s.allocateForSession('session-1', CLAIM, 0, 'conn-5', false)).toEqual({ allocation: null, held: null });
    });

    test('at a full fleet for healthy servers, a page given a slower one gets it back asking again', async () => {
      const s = await store();
      at(1000);
      await register(s, 'slow');
      await s.heartbeat('slow', 'conn-slow', TTL, { fps: 10, frameMs: 100, client: 'none' });
      expect(await s.allocate(CLAIM, 0.5, null, 'conn-1')).toBeNull();
      const given = await s.allocate(CLAIM, 0, null, 'conn-1');
      expect(given?.id).toBe('slow');
      expect((await s.allocate(CLAIM, 0.5, null, 'conn-1'))?.grantId).toBe(given!.grantId);
    });
  });
}
