import { afterEach, describe, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { effectiveState, openLeaseStore, type LeaseStore } from './lease-store.ts';

const TTL = 3000;
const CLAIM = 10_000;
const stores: LeaseStore[] = [];

function store(path = ':memory:') {
  const s = openLeaseStore(path);
  stores.push(s);
  return s;
}

function register(s: LeaseStore, id: string, now: number, opts: { url?: string; conn?: string; client?: 'none' | 'connected'; instanceHash?: string } = {}) {
  const result = s.register({
    id, url: opts.url ?? `ws://127.0.0.1:${id.length + 16000}/stream-${id}`, conn: opts.conn ?? `conn-${id}`, instanceHash: opts.instanceHash ?? `hash-${id}`,
    client: opts.client ?? 'none', targetFps: 60, newKey: `key-${id}-${now}`, now, ttlMs: TTL,
  });
  if (!result.ok) throw new Error(result.conflict);
  return result;
}

/** [id, state] of every row as of `now`. */
const states = (s: LeaseStore, now: number) => s.all().map((row) => [row.id, effectiveState(row, now)]);
const stateOf = (s: LeaseStore, id: string, now: number) => effectiveState(s.get(id)!, now);

afterEach(() => {
  while (stores.length) stores.pop()!.close();
});

describe('lease store', () => {
  test('hands a ready server out once, then none', () => {
    const s = store();
    register(s, 'a', 1000);
    const first = s.allocate(1001, CLAIM);
    expect(first?.id).toBe('a');
    expect(first?.claimExpires).toBe(1001 + CLAIM);
    expect(s.allocate(1002, CLAIM)).toBeNull();
    expect(stateOf(s, 'a', 1002)).toBe('reserved');
  });

  test('never hands out a lease that has expired, swept or not', () => {
    const s = store();
    register(s, 'a', 1000);
    expect(s.allocate(1000 + TTL, CLAIM)).toBeNull();
    expect(stateOf(s, 'a', 1000 + TTL)).toBe('expired');
    expect(s.allocate(1000 + TTL - 1, CLAIM)?.id).toBe('a');
  });

  test('a heartbeat extends the lease by the TTL and a late one revives an expired lease', () => {
    const s = store();
    register(s, 'a', 0);
    expect(s.heartbeat('a', 'conn-a', 2000, TTL, { fps: 60, frameMs: 5, client: 'none' })?.leaseExpires).toBe(5000);
    expect(s.allocate(5000, CLAIM)).toBeNull();
    // A frozen server that resumes: its next heartbeat makes it available again by itself.
    expect(s.heartbeat('a', 'conn-a', 9000, TTL, { fps: 60, frameMs: 5, client: 'none' })?.state).toBe('ready');
    expect(s.allocate(9001, CLAIM)?.id).toBe('a');
  });

  test('a reservation whose client never came returns to the pool at the claim deadline', () => {
    const s = store();
    register(s, 'a', 0);
    s.allocate(0, CLAIM);
    s.heartbeat('a', 'conn-a', CLAIM - 1, TTL, { fps: 0, frameMs: 0, client: 'none' });
    expect(s.allocate(CLAIM - 1, CLAIM)).toBeNull();
    expect(stateOf(s, 'a', CLAIM)).toBe('ready');
    expect(s.allocate(CLAIM, CLAIM)?.id).toBe('a');
  });

  test('busy while the client is connected, ready again when it leaves', () => {
    const s = store();
    register(s, 'a', 0);
    s.allocate(0, CLAIM);
    expect(s.setClient('a', 'conn-a', 'connected', 10)).toBe(true);
    expect(stateOf(s, 'a', 10)).toBe('busy');
    // A busy server stays busy past any claim deadline.
    s.heartbeat('a', 'conn-a', CLAIM + 5, TTL, { fps: 60, frameMs: 5, client: 'connected' });
    expect(s.allocate(CLAIM + 6, CLAIM)).toBeNull();
    s.setClient('a', 'conn-a', 'none', CLAIM + 7);
    expect(stateOf(s, 'a', CLAIM + 7)).toBe('ready');
    expect(s.allocate(CLAIM + 8, CLAIM)?.id).toBe('a');
  });

  test('a closed control connection takes the server out at once, lease or not', () => {
    const s = store();
    register(s, 'a', 0);
    expect(s.disconnect('a', 'conn-a', 1)?.state).toBe('offline');
    expect(s.allocate(2, CLAIM)).toBeNull();
    expect(stateOf(s, 'a', 2)).toBe('offline');
  });

  test('a stale connection can neither heartbeat nor close a lease it no longer holds', () => {
    const s = store();
    register(s, 'a', 0, { conn: 'old' });
    register(s, 'a', 10, { conn: 'new' });
    expect(s.heartbeat('a', 'old', 20, TTL, { fps: 0, frameMs: 0, client: 'none' })).toBeNull();
    expect(s.disconnect('a', 'old', 30)).toBeNull();
    expect(s.allocate(40, CLAIM)?.id).toBe('a');
  });

  test('registering again brings a new key and keeps an outstanding reservation', () => {
    const s = store();
    register(s, 'a', 0);
    s.allocate(0, CLAIM);
    const again = register(s, 'a', 100, { url: 'ws://127.0.0.1:16001/stream-a', conn: 'c2' });
    expect(again.row.key).toBe('key-a-100');
    expect(again.row.state).toBe('reserved');
    expect(again.isNew).toBe(false);
  });

  test('a registration reporting a connected client comes back busy', () => {
    const s = store();
    register(s, 'a', 0);
    const again = register(s, 'a', 100, { conn: 'c2', client: 'connected' });
    expect(again.row.state).toBe('busy');
    expect(s.allocate(101, CLAIM)).toBeNull();
  });

  test('a new id on the URL of a live server is refused; once that server is gone it replaces it', () => {
    const s = store();
    register(s, 'old', 0, { url: 'ws://127.0.0.1:16000/stream' });
    const input = { id: 'new', url: 'ws://127.0.0.1:16000/stream', conn: 'c', instanceHash: 'h', client: 'none', targetFps: 60, newKey: 'k', ttlMs: TTL } as const;
    expect(s.register({ ...input, now: 5 })).toEqual({ ok: false, field: 'url', conflict: 'ws://127.0.0.1:16000/stream belongs to live render server old' });
    // Expired (frozen, or its dispatcher gone) counts as gone, as does offline.
    const result = s.register({ ...input, now: TTL });
    expect(result.ok && result.replaced.map((r) => r.id)).toEqual(['old']);
    expect(states(s, TTL + 1)).toEqual([['new', 'ready']]);
  });

  test('an id is its first process\'s: another instance is refused even once the lease is gone', () => {
    const s = store();
    register(s, 'a', 0, { instanceHash: 'first' });
    s.disconnect('a', 'conn-a', 1);
    expect(s.register({ id: 'a', url: 'ws://x/s', conn: 'c', instanceHash: 'second', client: 'none', targetFps: 60, newKey: 'k', now: 2, ttlMs: TTL }))
      .toEqual({ ok: false, field: 'id', conflict: 'id a belongs to another render server process' });
    expect(register(s, 'a', 3, { instanceHash: 'first', conn: 'again' }).row.state).toBe('ready');
  });

  test('a pending reservation is found by its session or its connection, until claimed or lapsed', () => {
    const s = store();
    register(s, 'a', 0);
    register(s, 'b', 0);
    const grant = s.allocate(1, CLAIM, 0, 'sess-1', 'page-1')!;
    expect(s.pending({ session: 'sess-1' }, 2)).toEqual(grant);
    expect(s.pending({ conn: 'page-1' }, 2)).toEqual(grant);
    expect(s.pending({ session: 'sess-2', conn: 'page-2' }, 2)).toBeNull();
    expect(s.pending({}, 2)).toBeNull();
    expect(s.pending({ conn: 'page-1' }, 1 + CLAIM)).toBeNull();
    s.setClient(grant.id, `conn-${grant.id}`, 'connected', 3);
    expect(s.pending({ session: 'sess-1' }, 4)).toBeNull();
  });

  test('lists servers a page at a time, filtered by the state they are in now', () => {
    const s = store();
    for (let i = 0; i < 5; i++) register(s, `s${i}`, i);
    s.allocate(10, CLAIM);
    s.disconnect('s4', 'conn-s4', 11);
    const first = s.list({ limit: 2 }, 12);
    expect(first.rows.map((r) => r.id)).toEqual(['s0', 's1']);
    const second = s.list({ limit: 2, after: first.next }, 12);
    expect(second.rows.map((r) => r.id)).toEqual(['s2', 's3']);
    const third = s.list({ limit: 2, after: second.next }, 12);
    expect([third.rows.map((r) => r.id), third.next]).toEqual([['s4'], null]);
    expect(s.list({ limit: 10, state: 'reserved' }, 12).rows.map((r) => r.id)).toEqual(['s0']);
    expect(s.list({ limit: 10, state: 'offline' }, 12).rows.map((r) => r.id)).toEqual(['s4']);
    // After the claim deadline the reservation counts as ready again; after the TTL all are expired.
    expect(s.list({ limit: 10, state: 'ready' }, 10 + CLAIM).rows).toHaveLength(0);
    expect(s.list({ limit: 10, state: 'expired' }, 10 + CLAIM).rows.map((r) => r.id)).toEqual(['s0', 's1', 's2', 's3']);
  });

  test('purges rows offline or expired since before the cut-off', () => {
    const s = store();
    register(s, 'gone', 0);
    register(s, 'frozen', 0);
    register(s, 'alive', 0);
    s.disconnect('gone', 'conn-gone', 100);
    s.heartbeat('alive', 'conn-alive', 5000, TTL, { fps: 0, frameMs: 0, client: 'none' });
    expect(s.purge(99)).toBe(0);
    expect(s.purge(TTL)).toBe(2);
    expect(s.all().map((r) => r.id)).toEqual(['alive']);
  });

  test('hands out the least recently used server first, each server once', () => {
    const s = store();
    for (const id of ['a', 'b', 'c']) register(s, id, 0);
    s.allocate(1, CLAIM);
    s.setClient('a', 'conn-a', 'none', 2);
    const order = [s.allocate(3, CLAIM), s.allocate(4, CLAIM), s.allocate(5, CLAIM), s.allocate(6, CLAIM)].map((a) => a?.id ?? null);
    expect(order).toEqual(['b', 'c', 'a', null]);
  });

  test('a drained server is never handed out, keeps its client, and stays drained through reconnects', () => {
    const s = store();
    register(s, 'a', 0);
    s.allocate(0, CLAIM);
    s.setClient('a', 'conn-a', 'connected', 1);
    expect(s.drain('a', 2)?.state).toBe('draining');
    expect(s.drain('a', 3)).toBeNull();
    s.setClient('a', 'conn-a', 'none', 4);
    s.heartbeat('a', 'conn-a', 5, TTL, { fps: 0, frameMs: 3, client: 'none' });
    register(s, 'a', 6, { conn: 'conn-b' });
    expect(stateOf(s, 'a', 7)).toBe('draining');
    expect(s.allocate(7, CLAIM)).toBeNull();
    expect(s.undrain('a', 8)?.state).toBe('ready');
    expect(s.allocate(9, CLAIM)?.id).toBe('a');
  });

  test('undraining a server whose client is still there makes it busy, not ready', () => {
    const s = store();
    register(s, 'a', 0, { client: 'connected' });
    s.drain('a', 1);
    expect(s.undrain('a', 2)?.state).toBe('busy');
    expect(s.undrain('a', 3)).toBeNull();
  });

  test('health comes from the frame time against the target, and the healthiest is handed out first', () => {
    const s = store();
    for (const id of ['slow', 'fast', 'sick']) register(s, id, 0);
    const beat = (id: string, frameMs: number) => {
      s.heartbeat(id, `conn-${id}`, 1, TTL, { fps: 0, frameMs, client: 'none' });
      return s.get(id)!.health;
    };
    expect(beat('slow', 30)).toBe(0.5); // 1000 / (30 * 60) = 0.56, rounded down
    expect(beat('fast', 5)).toBe(1);
    expect(beat('sick', 100)).toBe(0.1); // 1/6, rounded down to its step
    expect(s.allocate(2, CLAIM, 0.2)?.id).toBe('fast');
    expect(s.allocate(3, CLAIM, 0.2)?.id).toBe('slow');
    expect(s.allocate(4, CLAIM, 0.2)).toBeNull();
    expect(s.allocate(5, CLAIM, 0)?.id).toBe('sick');
  });

  test('a request id remembers its answer until the claim deadline, across a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'requests-'));
    try {
      const path = join(dir, 'd.db');
      const first = openLeaseStore(path);
      first.requests.save('r1', { serverId: 'a', url: 'ws://x/stream?ticket=t' }, 100);
      first.close();
      const second = store(path);
      expect(second.requests.find('r1', 99)).toEqual({ serverId: 'a', url: 'ws://x/stream?ticket=t' });
      expect(second.requests.find('r1', 100)).toBeNull();
      second.requests.prune(100);
      expect(second.requests.find('r1', 0)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the write-ahead log is emptied by a checkpoint (the sweep runs one every 10 s)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wal-'));
    try {
      const path = join(dir, 'd.db');
      const s = openLeaseStore(path);
      for (let i = 0; i < 2000; i++) {
        register(s, `s${i}`, i, { url: `ws://127.0.0.1:1/${'x'.repeat(500)}${i}` });
        s.disconnect(`s${i}`, `conn-s${i}`, i);
      }
      expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
      expect(s.purge(2000)).toBe(2000);
      s.checkpoint();
      expect(statSync(`${path}-wal`).size).toBe(0);
      s.close();
      const reopened = new Database(path);
      expect(reopened.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
      reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('leases survive a restart on the same file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leases-'));
    try {
      const path = join(dir, 'd.db');
      const first = openLeaseStore(path);
      register(first, 'a', 0);
      register(first, 'b', 0);
      first.allocate(1, CLAIM);
      first.setClient('a', 'conn-a', 'connected', 2);
      first.close();
      const second = store(path);
      expect(states(second, 3)).toEqual([['a', 'busy'], ['b', 'ready']]);
      expect(second.allocate(3, CLAIM)?.id).toBe('b');
      expect(second.allocate(4, CLAIM)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
