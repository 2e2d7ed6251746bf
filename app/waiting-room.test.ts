import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { encode, type DispatcherToBrowser } from '../common/protocol.ts';
import { createDispatcher, type Dispatcher, type Session } from './dispatcher.ts';
import { ENGINES, closeStores, type Engine } from './testing/engines.ts';

let clock: { t: number; now(): number };
let dispatcher: Dispatcher;

let engine: Engine;

async function setUp(maxQueue = 100, graceMs = 15_000) {
  dispatcher?.stop();
  beats = [];
  clock = { t: Date.now(), now: () => clock.t };
  // No rate limit and no share per address: every page here comes from the same place.
  dispatcher = createDispatcher({
    store: await engine.fresh(clock), clock, policy: { minHealth: 0.2, graceMs, maxQueue, maxWaitingPerAddress: maxQueue, rateLimit: 0 },
  });
}
async function setUpFor(next: Engine) {
  engine = next;
  await setUp();
}

async function tearDown() {
  dispatcher.stop();
  await closeStores();
}

/** Lets the waiting room's asynchronous serving (ticket signing) run: until `done` holds, for 2 s at most. */
async function settle(done: () => boolean = () => true) {
  const deadline = Date.now() + 2000;
  do await new Promise((resolve) => setTimeout(resolve, 5));
  while (!done() && Date.now() < deadline);
}

let beats: (() => Promise<void>)[] = [];

/**
 * Moves the clock in heartbeat-sized steps, every server heartbeating as a live one would. Each
 * step's beats are written at once, once read, rather than after their batch's window in real time.
 */
async function advance(ms: number) {
  for (let left = ms; left > 0; left -= 1000) {
    clock.t += Math.min(1000, left);
    const written = beats.map((beat) => beat());
    await Bun.sleep(0);
    await dispatcher.flush();
    await Promise.all(written);
  }
}

async function server(id: string) {
  const session = dispatcher.openControl({ send() {}, close() {} });
  let client = 'none';
  await session.message(encode({ type: 'register', id, instance: `instance-of-${id}-0123456789`, url: `ws://127.0.0.1:1/${id}`, client: 'none', targetFps: 60 }));
  beats.push(() => session.message(JSON.stringify({ type: 'heartbeat', fps: 30, frameMs: 5, client })));
  return {
    connected: () => {
      client = 'connected';
      return session.message('{"type":"client","event":"connected"}');
    },
    gone: () => {
      client = 'none';
      return session.message('{"type":"client","event":"gone"}');
    },
  };
}

interface Page {
  received: DispatcherToBrowser[];
  session: Session;
  /** The server it was handed, by id, or null. */
  server(): string | null;
  /** The last position it was told, or null. */
  position(): number | null;
}

async function page(request: Record<string, unknown> = { wait: true }): Promise<Page> {
  const received: DispatcherToBrowser[] = [];
  const session = dispatcher.openStream({ send: (text) => received.push(JSON.parse(text)), close() {} }, { address: '192.0.2.1' });
  await session.message(JSON.stringify({ type: 'get_server_url', ...request }));
  return {
    received,
    session,
    server: () => {
      const url = received.find((m) => m.type === 'server_url');
      return url && url.type === 'server_url' ? new URL(url.url).pathname.slice(1) : null;
    },
    position: () => {
      const queued = received.filter((m) => m.type === 'queued').at(-1);
      return queued && queued.type === 'queued' ? queued.position : null;
    },
  };
}

for (const engine of ENGINES) {
describe(engine.name, () => {
  beforeEach(() => setUpFor(engine));
  afterEach(() => tearDown());

  describe('waiting room', () => {
    test('a page that asks to wait is queued, told its place, and handed the first server to free', async () => {
      const a = await server('a');
      const first = await page();
      expect(first.server()).toBe('a');
      await a.connected();
      const second = await page();
      const third = await page();
      expect([second.position(), third.position()]).toEqual([1, 2]);
      expect(second.received[0]).toEqual({ type: 'queued', position: 1, size: 1 });

      await a.gone();
      await settle(() => second.server() === 'a' && third.position() === 1);
      expect(second.server()).toBe('a');
      expect(third.position()).toBe(1);
    });

    test('without wait the answer is none, as before', async () => {
      const lone = await page({});
      expect(lone.received).toEqual([{ type: 'none', reason: 'no render server is free' }]);
    });

    test('leaving the page leaves the queue at once and the others move up', async () => {
      const pages = [await page(), await page(), await page()];
      expect(pages.map((p) => p.position())).toEqual([1, 2, 3]);
      await pages[0].session.closed();
      expect([pages[1].position(), pages[2].position()]).toEqual([1, 2]);
      await server('a');
      await settle(() => pages[1].server() === 'a');
      expect(pages[1].server()).toBe('a');
      expect(pages[0].server()).toBeNull();
    });

    test('past --max-queue the answer is none with the reason', async () => {
      await setUp(2);
      await page();
      await page();
      const turnedAway = await page({ wait: true, requestId: 'r9' });
      expect(turnedAway.received).toEqual([{ type: 'none', reason: 'the waiting room is full (2 waiting)', requestId: 'r9' }]);
    });

    test('asking again while waiting is an error, not a second place in line', async () => {
      const waiting = await page();
      await waiting.session.message('{"type":"get_server_url","wait":true}');
      expect(waiting.received.at(-1)).toMatchObject({ type: 'error' });
      expect(waiting.position()).toBe(1);
    });

    test('many pages: when some leave and servers free at the same time, the rest are served first come first served', async () => {
      const servers = await Promise.all(Array.from({ length: 10 }, (_, i) => server(`s${i}`)));
      const streaming = await Promise.all(servers.map(() => page()));
      for (const s of servers) await s.connected();
      expect(new Set(streaming.map((p) => p.server())).size).toBe(10);

      const waiting: Page[] = [];
      for (let i = 0; i < 40; i++) waiting.push(await page());
      expect(waiting.map((p) => p.position())).toEqual(waiting.map((_, i) => i + 1));

      // Every other waiter among the first 20 leaves while all ten servers free, interleaved.
      const leavers = new Set(waiting.filter((_, i) => i < 20 && i % 2 === 0));
      const changes: Promise<unknown>[] = [];
      servers.forEach((s, i) => {
        changes.push(s.gone());
        [...leavers].slice(i, i + 1).forEach((p) => p.session.closed());
      });
      await Promise.all(changes);
      const stayed = waiting.filter((p) => !leavers.has(p));
      await settle(() => stayed.filter((p) => p.server() !== null).length >= 10);

      const served = stayed.filter((p) => p.server() !== null);
      expect(served).toEqual(stayed.slice(0, 10));
      expect(new Set(served.map((p) => p.server())).size).toBe(10);
      expect([...leavers].every((p) => p.server() === null)).toBe(true);
      const still = stayed.slice(10);
      await settle(() => still.every((p, i) => p.position() === i + 1));
      expect(still.map((p) => p.position())).toEqual(still.map((_, i) => i + 1));
    });

    test('once sessions have ended, positions come with an estimate of the wait', async () => {
      const a = await server('a');
      await page();
      await a.connected();
      await advance(60_000);
      await a.gone();
      await page();
      await a.connected();
      const waiting = await page();
      expect(waiting.received[0]).toEqual({ type: 'queued', position: 1, size: 1, estimateMs: 60_000 });
    });
  });

  describe('sticky return', () => {
    const session = 'session-aaaa-1111';

    test('a session that left gets its own server back within the grace period, though another is free', async () => {
      const a = await server('a');
      await server('b');
      const first = await page({ session });
      expect(first.server()).toBe('a');
      await a.connected();
      await advance(1000);
      await a.gone();
      await advance(10_000);
      const back = await page({ session });
      expect(back.server()).toBe('a');
    });

    test('other sessions are sent elsewhere while a server is kept for its session, and get it when nothing else is free', async () => {
      const a = await server('a');
      await server('b');
      await page({ session });
      await a.connected();
      await a.gone();
      expect((await page({ session: 'someone-else-22' })).server()).toBe('b');
      expect((await page({ session: 'a-third-person-33' })).server()).toBe('a');
    });

    test('after the grace period the server is nobody in particular', async () => {
      await setUp(100, 5000);
      const a = await server('a');
      await server('b');
      await page({ session });
      await a.connected();
      await a.gone();
      await advance(5000);
      // b was used least recently, so without stickiness b goes first.
      expect((await page({ session })).server()).toBe('b');
    });

    test("a reloading page whose old connection is not yet reported gone waits a moment for its own server", async () => {
      const a = await server('a');
      await server('b');
      await page({ session });
      await a.connected();
      const reloading = page({ session });
      setTimeout(() => void a.gone(), 100);
      expect((await reloading).server()).toBe('a');
    });
  });
});
}
