import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { verify } from 'hono/jwt';
import { CLOSE, NONE, TICKET_PARAM, encode } from '../common/protocol.ts';
import { createDispatcher, type Dispatcher, type Policy } from './dispatcher.ts';
import { ENGINES, closeStores, type Engine } from './testing/engines.ts';

const timings = { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 };

function fakeLink() {
  const sent: Record<string, unknown>[] = [];
  const closes: { code: number; reason: string }[] = [];
  return { sent, closes, send: (text: string) => sent.push(JSON.parse(text)), close: (code: number, reason: string) => closes.push({ code, reason }) };
}

let clock: { t: number; now(): number };
let dispatcher: Dispatcher;
let events: string[];
/** The instance secret of each simulated render server process, by id. */
const instances = new Map<string, string>();

let engine: Engine;

async function start(policy: Partial<Policy> = {}) {
  dispatcher?.stop();
  dispatcher = createDispatcher({ store: await engine.fresh(clock), timings, clock, policy: { rateLimit: 0, ...policy } });
  events = [];
  for (const name of ['server.new', 'server.lost', 'connection.new', 'connection.lost'] as const) {
    dispatcher.events.on(name, (e) => events.push(`${name} ${'reason' in e ? e.reason : e.id}`));
  }
}

async function setUpFor(next: Engine) {
  engine = next;
  // Starts at the present: tickets are checked against the real time by the render server.
  clock = { t: Date.now(), now: () => clock.t };
  instances.clear();
  await start();
}

async function tearDown() {
  dispatcher.stop();
  await closeStores();
}

const PEER = { address: '192.0.2.1' };

/** The first reply a fresh /stream session gives to one message. */
async function answer(text: string, peer = PEER): Promise<string> {
  const sent: string[] = [];
  const session = dispatcher.openStream({ send: (t) => sent.push(t), close() {} }, peer);
  await session.message(text);
  await session.closed();
  return sent[0];
}

/** A /stream connection kept open, with every reply it got. */
function page(peer = PEER) {
  const sent: Record<string, unknown>[] = [];
  const session = dispatcher.openStream({ send: (t) => sent.push(t.startsWith('{') ? JSON.parse(t) : { text: t }), close() {} }, peer);
  return { sent, session, ask: (request: object) => session.message(JSON.stringify({ type: 'get_server_url', ...request })) };
}

async function registered(id = 'a', url = 'ws://127.0.0.1:16000/stream', instance = instances.get(id) ?? `instance-of-${id}-${crypto.randomUUID()}`) {
  instances.set(id, instance);
  const link = fakeLink();
  const session = dispatcher.openControl(link);
  await session.message(encode({ type: 'register', id, instance, url, client: 'none', targetFps: 60 }));
  return { link, session, key: link.sent[0].key as string };
}

for (const engine of ENGINES) {
describe(engine.name, () => {
  beforeEach(() => setUpFor(engine));
  afterEach(() => tearDown());

  describe('control sessions', () => {
    test('registration answers with the key, the interval and the exact deadline', async () => {
      const { link } = await registered();
      expect(link.sent[0]).toMatchObject({ type: 'registered', id: 'a', heartbeatMs: 1000, ttlMs: 3000, expiresAt: clock.t + 3000 });
      expect(events).toEqual(['server.new a']);
    });

    test('a heartbeat that asks is answered with the new deadline; one that does not is written unanswered', async () => {
      const { link, session } = await registered();
      clock.t += 700;
      await session.message(JSON.stringify({ type: 'heartbeat', fps: 59.5, frameMs: 12, client: 'none', answer: true }));
      expect(link.sent.slice(1)).toEqual([{ type: 'lease', expiresAt: clock.t + 3000 }]);
      expect((await dispatcher.list())[0]).toMatchObject({ fps: 59.5, frameMs: 12, leaseExpiresAt: clock.t + 3000 });
      clock.t += 700;
      await session.message(JSON.stringify({ type: 'heartbeat', fps: 30, frameMs: 20, client: 'none' }));
      expect(link.sent.length).toBe(2);
      expect((await dispatcher.list())[0]).toMatchObject({ fps: 30, frameMs: 20, leaseExpiresAt: clock.t + 3000 });
      await session.message(JSON.stringify({ type: 'heartbeat', fps: 30, frameMs: 20, client: 'none', answer: 'yes' }));
      expect(link.sent.at(-1)).toEqual({ type: 'error', field: 'answer', error: 'heartbeat.answer must be true or false' });
    });

    test('bad messages get an error naming the field, and the lease is kept', async () => {
      const { link, session } = await registered();
      await session.message('{"type":"heartbeat","fps":"fast","frameMs":1,"client":"none"}');
      await session.message('not json');
      await session.message('{"type":"teleport"}');
      expect(link.sent.slice(1)).toEqual([
        { type: 'error', field: 'fps', error: 'heartbeat.fps must be a finite number from 0 to 1000' },
        { type: 'error', error: 'message is not valid JSON' },
        { type: 'error', field: 'type', error: 'type must be one of register, heartbeat, client, drain' },
      ]);
      expect(link.closes).toEqual([]);
      expect(await dispatcher.allocate()).not.toBeNull();
    });

    /** A dispatcher whose store counts the heartbeat batches written, and a registered server. */
    async function countingBeats() {
      const store = await engine.fresh(clock);
      let writes = 0;
      const heartbeats = store.heartbeats;
      store.heartbeats = (beats, ttlMs) => (writes++, heartbeats(beats, ttlMs));
      dispatcher.stop();
      dispatcher = createDispatcher({ store, timings, clock, policy: { rateLimit: 0 } });
      const { session } = await registered();
      return { store, session, writes: () => writes };
    }
    const beatText = (client: 'none' | 'connected') => encode({ type: 'heartbeat', fps: 60, frameMs: 1, client });

    test('a message from a server whose heartbeat waits in its batch writes the batch at once: its report is not held for the window', async () => {
      const { store, session, writes } = await countingBeats();
      const beat = session.message(beatText('none'));
      await Bun.sleep(0); // read, and waiting in its batch (a window of 100 ms at these timings)
      expect(writes()).toBe(0);
      const report = session.message(encode({ type: 'client', event: 'connected' }));
      expect(writes()).toBe(1);
      await Promise.all([beat, report]);
      expect((await store.get('a'))?.state).toBe('busy');
    });

    test('a heartbeat read with messages queued behind it is written at once', async () => {
      const { store, session, writes } = await countingBeats();
      const connected = session.message(encode({ type: 'client', event: 'connected' }));
      const beat = session.message(beatText('connected'));
      const gone = session.message(encode({ type: 'client', event: 'gone' }));
      await connected;
      await Bun.sleep(0); // the beat has joined its batch, well within its window
      expect(writes()).toBe(1);
      await Promise.all([beat, gone]);
      expect((await store.get('a'))?.state).toBe('ready');
    });

    test('a heartbeat before registering is refused', async () => {
      const link = fakeLink();
      await dispatcher.openControl(link).message(JSON.stringify({ type: 'heartbeat', fps: 1, frameMs: 1, client: 'none' }));
      expect(link.sent[0]).toMatchObject({ type: 'error', field: 'type' });
    });

    test('a closed control connection is lost at once and never handed out', async () => {
      const { session } = await registered();
      await session.closed();
      expect(events).toEqual(['server.new a', 'server.lost closed']);
      expect(await answer('get_server_url')).toBe(NONE);
    });

    test('a replaced connection is told so and closed with the replaced code', async () => {
      const first = await registered();
      await registered();
      await first.session.message(JSON.stringify({ type: 'heartbeat', fps: 1, frameMs: 1, client: 'none' }));
      expect(first.link.closes).toEqual([{ code: CLOSE.replaced, reason: 'lease held by a newer connection' }]);
      // Its close says nothing about the server, which the newer connection holds.
      await first.session.closed();
      expect(events.filter((e) => e.startsWith('server.lost'))).toEqual([]);
    });

    test('expiry is announced once by the sweep, and a late heartbeat brings the server back', async () => {
      const { session } = await registered();
      clock.t += 3000;
      await dispatcher.sweep();
      await dispatcher.sweep();
      expect(events).toEqual(['server.new a', 'server.lost expired']);
      await session.message(JSON.stringify({ type: 'heartbeat', fps: 60, frameMs: 1, client: 'none' }));
      expect(events).toEqual(['server.new a', 'server.lost expired', 'server.new a']);
    });
  });

  describe('drain and health', () => {
    test('a drain message stops hand-outs and is announced once as drained', async () => {
      const { session } = await registered();
      await session.message('{"type":"drain"}');
      await session.message('{"type":"drain"}');
      await session.closed();
      expect(events).toEqual(['server.new a', 'server.lost drained']);
      expect(await answer('get_server_url')).toBe(NONE);
    });

    test('drain and undrain by id, with 404 and 409 for the impossible', async () => {
      const { session } = await registered();
      expect(await dispatcher.drain('nope')).toEqual({ ok: false, status: 404, reason: 'no render server nope' });
      expect(await dispatcher.undrain('a')).toEqual({ ok: false, status: 409, reason: 'render server a is not draining' });
      const drained = await dispatcher.drain('a');
      expect(drained.ok && drained.server.reason).toBe('draining');
      expect(await answer('get_server_url')).toBe(NONE);
      expect((await dispatcher.undrain("a")).ok).toBe(true);
      expect(await answer('get_server_url')).not.toBe(NONE);
      await session.closed();
      expect(await dispatcher.drain('a')).toEqual({ ok: false, status: 409, reason: 'render server a is offline' });
    });

    test('a server that renders far below its target is not handed out, and says why', async () => {
      const { session } = await registered();
      await session.message(JSON.stringify({ type: 'heartbeat', fps: 0, frameMs: 200, client: 'none' }));
      expect((await dispatcher.list())[0].reason).toBe('unhealthy: 200.0ms a frame allows 5.0 fps, under 10% of its 60 fps target');
      expect(await answer('get_server_url')).toBe(NONE);
      await session.message(JSON.stringify({ type: 'heartbeat', fps: 0, frameMs: 20, client: 'none' }));
      expect((await dispatcher.list())[0].reason).toBeNull();
      expect(await answer('get_server_url')).not.toBe(NONE);
    });
  });

  describe('get_server_url', () => {
    test('answers a URL with a ticket signed for that server, then none', async () => {
      const { key } = await registered('a', 'ws://127.0.0.1:16000/stream');
      const url = new URL(await answer('get_server_url'));
      expect(`${url.origin}${url.pathname}`).toBe('ws://127.0.0.1:16000/stream');
      const claims = await verify(url.searchParams.get(TICKET_PARAM)!, key, 'HS256');
      expect(claims.sub).toBe('a');
      expect(claims.exp).toBe(Math.ceil((clock.t + timings.claimMs) / 1000));
      expect(await answer('get_server_url')).toBe(NONE);
    });

    test('answers anything else with an error that names what it got', async () => {
      expect(await answer('GET_SERVER_URL')).toBe('error: unknown request "GET_SERVER_URL"; send "get_server_url"');
    });

    test('the JSON form answers in JSON, and a retry with the same request id gets the same server', async () => {
      const sessions = [(await registered('a', 'ws://127.0.0.1:16000/stream')).session, (await registered('b', 'ws://127.0.0.1:16001/stream')).session];
      const ask = async (requestId?: string) => JSON.parse(await answer(JSON.stringify({ type: 'get_server_url', requestId })));
      const first = await ask('r-1');
      expect(first).toMatchObject({ type: 'server_url', requestId: 'r-1' });
      expect(await ask('r-1')).toEqual(first);
      const other = await ask('r-2');
      expect(new URL(other.url).port).not.toBe(new URL(first.url).port);
      expect(await ask('r-3')).toEqual({ type: 'none', reason: 'no render server is free', requestId: 'r-3' });
      expect(await ask()).toEqual({ type: 'none', reason: 'no render server is free' });
      // After the claim deadline (the leases kept alive meanwhile) the id no longer holds a server.
      clock.t += timings.claimMs;
      for (const session of sessions) await session.message(JSON.stringify({ type: 'heartbeat', fps: 0, frameMs: 0, client: 'none' }));
      const later = await ask('r-1');
      expect(later.type).toBe('server_url');
      expect(later.url).not.toBe(first.url);
    });

    test('concurrent retries of one request id reserve one server between them', async () => {
      for (const id of ['a', 'b', 'c']) await registered(id, `ws://127.0.0.1:1600${id.charCodeAt(0) - 97}/stream`);
      const message = JSON.stringify({ type: 'get_server_url', requestId: 'same' });
      const answers = await Promise.all(Array.from({ length: 5 }, () => answer(message)));
      expect(new Set(answers).size).toBe(1);
      expect((await dispatcher.list()).filter((s) => s.state === 'reserved')).toHaveLength(1);
    });

    test.each([
      ['{"type":"get_server_url","requestId":""}', 'requestId'],
      ['{"type":"get_url"}', 'type'],
      ['{"type":', undefined],
    ])('a malformed JSON request %s is answered with a JSON error', async (text, field) => {
      const reply = JSON.parse(await answer(text));
      expect(reply.type).toBe('error');
      expect(reply.field).toBe(field);
    });

    test('a server whose client left is handed out again', async () => {
      const { session } = await registered();
      await answer('get_server_url');
      await session.message(JSON.stringify({ type: 'client', event: 'connected' }));
      expect(await answer('get_server_url')).toBe(NONE);
      await session.message(JSON.stringify({ type: 'client', event: 'gone' }));
      expect(await answer('get_server_url')).not.toBe(NONE);
    });
  });

  describe('what is whose', () => {
    test('another process cannot register a live id: refused, closed 4001, the holder keeps its key', async () => {
      const victim = await registered('a', 'ws://127.0.0.1:16000/stream');
      const attacker = fakeLink();
      await dispatcher.openControl(attacker).message(encode({ type: 'register', id: 'a', instance: 'not-the-victims-instance', url: 'ws://evil.example/stream', client: 'none', targetFps: 60 }));
      expect(attacker.sent).toEqual([{ type: 'error', field: 'id', error: 'registration refused: id a belongs to another render server process' }]);
      expect(attacker.closes).toEqual([{ code: CLOSE.conflict, reason: 'registration conflicts with a live render server' }]);
      // The victim's connection still holds the lease, at its URL, and tickets are signed with its key.
      await victim.session.message(encode({ type: 'heartbeat', fps: 60, frameMs: 1, client: 'none', answer: true }));
      expect(victim.link.sent.at(-1)).toMatchObject({ type: 'lease' });
      const url = new URL(await answer('get_server_url'));
      expect(url.host).toBe('127.0.0.1:16000');
      expect((await verify(url.searchParams.get(TICKET_PARAM)!, victim.key, 'HS256')).sub).toBe('a');
      expect(events.filter((e) => e.startsWith('server.'))).toEqual(['server.new a']);
    });

    test('a new id cannot take the URL of a live server; once that one is gone it replaces it', async () => {
      const old = await registered('old', 'ws://127.0.0.1:16000/stream');
      const usurper = fakeLink();
      const session = dispatcher.openControl(usurper);
      await session.message(encode({ type: 'register', id: 'new', instance: 'instance-of-new-0123456789', url: 'ws://127.0.0.1:16000/stream', client: 'none', targetFps: 60 }));
      expect(usurper.sent[0]).toEqual({ type: 'error', field: 'url', error: 'registration refused: ws://127.0.0.1:16000/stream belongs to live render server old' });
      expect(usurper.closes[0].code).toBe(CLOSE.conflict);
      expect((await dispatcher.list()).map((s) => [s.id, s.state])).toEqual([['old', 'ready']]);
      // The old process dies; the restarted one on the same port takes the URL, announced as replaced.
      await old.session.closed();
      await registered('new', 'ws://127.0.0.1:16000/stream');
      expect((await dispatcher.list()).map((s) => [s.id, s.state])).toEqual([['new', 'ready']]);
      expect(events).toContain('server.lost replaced');
    });

    test('every registration brings a fresh key, and the same process may register its id again', async () => {
      const first = await registered('a');
      const second = await registered('a');
      expect(second.key).not.toBe(first.key);
      const url = new URL(await answer('get_server_url'));
      expect((await verify(url.searchParams.get(TICKET_PARAM)!, second.key, 'HS256')).sub).toBe('a');
    });

    test('tickets carry iat and live exactly one claim period', async () => {
      await registered('a');
      const url = new URL(await answer('get_server_url'));
      const [, payload] = url.searchParams.get(TICKET_PARAM)!.split('.');
      const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')));
      expect(claims.iat).toBe(Math.floor(clock.t / 1000));
      expect(claims.exp - claims.iat).toBeLessThanOrEqual(timings.claimMs / 1000 + 1);
    });
  });

  describe('no hoarding', () => {
    test('one connection asking again gets the same grant back, not a second server', async () => {
      for (const id of ['a', 'b', 'c']) await registered(id, `ws://127.0.0.1:1600${id.charCodeAt(0) - 97}/stream`);
      const p = page();
      for (let i = 0; i < 5; i++) await p.session.message('get_server_url');
      expect(new Set(p.sent.map((m) => m.text)).size).toBe(1);
      expect((await dispatcher.list()).filter((s) => s.state === 'reserved')).toHaveLength(1);
      // Once its page has connected the grant is spent, and the next ask is a new one.
      const server = (await dispatcher.list()).find((s) => s.state === 'reserved')!;
      expect(server.state).toBe('reserved');
    });

    test('one session over many connections holds one unclaimed server', async () => {
      for (const id of ['a', 'b', 'c']) await registered(id, `ws://127.0.0.1:1600${id.charCodeAt(0) - 97}/stream`);
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => answer(JSON.stringify({ type: 'get_server_url', session: 'session-one' }))),
      );
      expect(new Set(answers).size).toBe(1);
      expect((await dispatcher.list()).filter((s) => s.state === 'reserved')).toHaveLength(1);
      expect(JSON.parse(await answer(JSON.stringify({ type: 'get_server_url', session: 'session-two' }))).type).toBe('server_url');
    });

    test('a claimed grant is spent: the same connection may then have another server', async () => {
      const a = await registered('a', 'ws://127.0.0.1:16000/stream');
      await registered('b', 'ws://127.0.0.1:16001/stream');
      const p = page();
      await p.session.message('get_server_url');
      await a.session.message(encode({ type: 'client', event: 'connected' }));
      await p.session.message('get_server_url');
      expect(p.sent.map((m) => new URL(String(m.text)).port)).toEqual(['16000', '16001']);
    });

    test('the rate limit per address answers with a clear error and when to retry; other addresses are served', async () => {
      await start({ rateLimit: 2 });
      await registered('a', 'ws://127.0.0.1:16000/stream');
      await registered('b', 'ws://127.0.0.1:16001/stream');
      const p = page({ address: '198.51.100.7' });
      // A burst of five seconds' worth, then no more until time passes.
      for (let i = 0; i < 11; i++) await p.session.message('get_server_url');
      expect(p.sent.slice(0, 10).every((m) => String(m.text).startsWith('ws://'))).toBe(true);
      expect(p.sent[10].text).toBe('error: too many requests from your address (at most 2 a second): try again in 500ms');
      await p.ask({ requestId: 'json-1' });
      expect(p.sent[11]).toEqual({ type: 'error', error: expect.stringContaining('too many requests'), retryMs: 500, requestId: 'json-1' });
      expect(await answer('get_server_url', { address: '203.0.113.9' })).toStartWith('ws://');
      clock.t += 500;
      await p.session.message('get_server_url');
      expect(String(p.sent[12].text)).toStartWith('ws://');
    });

    test('one address holds at most its share of the waiting room', async () => {
      await start({ maxQueue: 10, maxWaitingPerAddress: 3 });
      const pages = Array.from({ length: 4 }, () => page({ address: '198.51.100.7' }));
      for (const p of pages) await p.ask({ wait: true });
      expect(pages.map((p) => p.sent[0].type)).toEqual(['queued', 'queued', 'queued', 'none']);
      expect(pages[3].sent[0]).toEqual({ type: 'none', reason: 'your address holds all the places in the waiting room it may (3)' });
      const elsewhere = page({ address: '203.0.113.9' });
      await elsewhere.ask({ wait: true });
      expect(elsewhere.sent[0]).toMatchObject({ type: 'queued', position: 4 });
    });
  });

  describe('bounded state', () => {
    test('servers gone for longer than the retention are forgotten; live ones stay', async () => {
      await start({ retentionMs: 60_000 });
      const gone = await registered('gone', 'ws://127.0.0.1:16000/stream');
      await registered('stays', 'ws://127.0.0.1:16001/stream');
      await gone.session.closed();
      clock.t += 30_000;
      await dispatcher.sweep();
      expect((await dispatcher.list()).map((s) => s.id)).toEqual(['gone', 'stays']);
      clock.t += 31_000;
      await dispatcher.sweep();
      expect((await dispatcher.list()).map((s) => s.id)).toEqual(['stays']);
      // "stays" sends no heartbeat here: once expired for over the retention, it goes too (purges
      // run every 10 s).
      clock.t += 10_000;
      await dispatcher.sweep();
      expect((await dispatcher.list()).map((s) => s.id)).toEqual([]);
    });
  });
});
}
