import { afterEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
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

function register(s: LeaseStore, id: string, now: number, opts: { url?: string; conn?: string; client?: 'none' | 'connected' } = {}) {
  return s.register({
    id, url: opts.url ?? `ws://127.0.0.1:${id.length + 16000}/stream-${id}`, conn: opts.conn ?? `conn-${id}`,
    client: opts.client ?? 'none', targetFps: 60, newKey: `key-${id}`, now, ttlMs: TTL,
  });
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

  test('registering again keeps the key and an outstanding reservation', () => {
    const s = store();
    register(s, 'a', 0);
    s.allocate(0, CLAIM);
    const again = s.register({ id: 'a', url: 'ws://127.0.0.1:16001/stream-a', conn: 'c2', client: 'none', targetFps: 60, newKey: 'other', now: 100, ttlMs: TTL });
    expect(again.row.key).toBe('key-a');
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

  test('a new instance on the same URL replaces the old one', () => {
    const s = store();
    register(s, 'old', 0, { url: 'ws://127.0.0.1:16000/stream' });
    const result = register(s, 'new', 5, { url: 'ws://127.0.0.1:16000/stream' });
    expect(result.replaced.map((r) => r.id)).toEqual(['old']);
    expect(states(s, 6)).toEqual([['new', 'ready']]);
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
