import { beforeEach, describe, expect, test } from 'bun:test';
import { verify } from 'hono/jwt';
import { CLOSE, NONE, TICKET_PARAM } from '../common/protocol.ts';
import { createDispatcher, type Dispatcher } from './dispatcher.ts';
import { openLeaseStore } from './lease-store.ts';

const timings = { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 };

function fakeLink() {
  const sent: Record<string, unknown>[] = [];
  const closes: { code: number; reason: string }[] = [];
  return { sent, closes, send: (text: string) => sent.push(JSON.parse(text)), close: (code: number, reason: string) => closes.push({ code, reason }) };
}

let clock: { t: number; now(): number };
let dispatcher: Dispatcher;
let events: string[];

beforeEach(() => {
  // Starts at the present: tickets are checked against the real time by the render server.
  clock = { t: Date.now(), now: () => clock.t };
  dispatcher = createDispatcher({ store: openLeaseStore(':memory:'), timings, clock });
  events = [];
  for (const name of ['server.new', 'server.lost', 'connection.new', 'connection.lost'] as const) {
    dispatcher.events.on(name, (e) => events.push(`${name} ${'reason' in e ? e.reason : e.id}`));
  }
});

/** The first reply a fresh /stream session gives to one message. */
async function answer(text: string): Promise<string> {
  const sent: string[] = [];
  const session = dispatcher.openStream({ send: (t) => sent.push(t), close() {} });
  await session.message(text);
  session.closed();
  return sent[0];
}

async function registered(id = 'a', url = 'ws://127.0.0.1:16000/stream') {
  const link = fakeLink();
  const session = dispatcher.openControl(link);
  await session.message(JSON.stringify({ type: 'register', id, url, client: 'none', targetFps: 60 }));
  return { link, session, key: link.sent[0].key as string };
}

describe('control sessions', () => {
  test('registration answers with the key, the interval and the exact deadline', async () => {
    const { link } = await registered();
    expect(link.sent[0]).toMatchObject({ type: 'registered', id: 'a', heartbeatMs: 1000, ttlMs: 3000, expiresAt: clock.t + 3000 });
    expect(events).toEqual(['server.new a']);
  });

  test('every heartbeat reply carries the new deadline', async () => {
    const { link, session } = await registered();
    clock.t += 700;
    await session.message(JSON.stringify({ type: 'heartbeat', fps: 59.5, frameMs: 12, client: 'none' }));
    expect(link.sent[1]).toEqual({ type: 'lease', expiresAt: clock.t + 3000 });
    expect(dispatcher.list()[0]).toMatchObject({ fps: 59.5, frameMs: 12 });
  });

  test('bad messages get an error naming the field, and the lease is kept', async () => {
    const { link, session } = await registered();
    await session.message('{"type":"heartbeat","fps":"fast","frameMs":1,"client":"none"}');
    await session.message('not json');
    await session.message('{"type":"teleport"}');
    expect(link.sent.slice(1)).toEqual([
      { type: 'error', field: 'fps', error: 'heartbeat.fps must be a finite number >= 0' },
      { type: 'error', error: 'message is not valid JSON' },
      { type: 'error', field: 'type', error: 'type must be one of register, heartbeat, client, drain' },
    ]);
    expect(link.closes).toEqual([]);
    expect(await dispatcher.allocate()).not.toBeNull();
  });

  test('a heartbeat before registering is refused', async () => {
    const link = fakeLink();
    await dispatcher.openControl(link).message(JSON.stringify({ type: 'heartbeat', fps: 1, frameMs: 1, client: 'none' }));
    expect(link.sent[0]).toMatchObject({ type: 'error', field: 'type' });
  });

  test('a closed control connection is lost at once and never handed out', async () => {
    const { session } = await registered();
    session.closed();
    expect(events).toEqual(['server.new a', 'server.lost closed']);
    expect(await answer('get_server_url')).toBe(NONE);
  });

  test('a replaced connection is told so and closed with the replaced code', async () => {
    const first = await registered();
    await registered();
    await first.session.message(JSON.stringify({ type: 'heartbeat', fps: 1, frameMs: 1, client: 'none' }));
    expect(first.link.closes).toEqual([{ code: CLOSE.replaced, reason: 'lease held by a newer connection' }]);
    // Its close says nothing about the server, which the newer connection holds.
    first.session.closed();
    expect(events.filter((e) => e.startsWith('server.lost'))).toEqual([]);
  });

  test('expiry is announced once by the sweep, and a late heartbeat brings the server back', async () => {
    const { session } = await registered();
    clock.t += 3000;
    dispatcher.sweep();
    dispatcher.sweep();
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
    session.closed();
    expect(events).toEqual(['server.new a', 'server.lost drained']);
    expect(await answer('get_server_url')).toBe(NONE);
  });

  test('drain and undrain by id, with 404 and 409 for the impossible', async () => {
    const { session } = await registered();
    expect(dispatcher.drain('nope')).toEqual({ ok: false, status: 404, reason: 'no render server nope' });
    expect(dispatcher.undrain('a')).toEqual({ ok: false, status: 409, reason: 'render server a is not draining' });
    const drained = dispatcher.drain('a');
    expect(drained.ok && drained.server.reason).toBe('draining');
    expect(await answer('get_server_url')).toBe(NONE);
    expect(dispatcher.undrain('a').ok).toBe(true);
    expect(await answer('get_server_url')).not.toBe(NONE);
    session.closed();
    expect(dispatcher.drain('a')).toEqual({ ok: false, status: 409, reason: 'render server a is offline' });
  });

  test('a server that renders far below its target is not handed out, and says why', async () => {
    const { session } = await registered();
    await session.message(JSON.stringify({ type: 'heartbeat', fps: 0, frameMs: 200, client: 'none' }));
    expect(dispatcher.list()[0].reason).toBe('unhealthy: 200.0ms a frame allows 5.0 fps, under 10% of its 60 fps target');
    expect(await answer('get_server_url')).toBe(NONE);
    await session.message(JSON.stringify({ type: 'heartbeat', fps: 0, frameMs: 20, client: 'none' }));
    expect(dispatcher.list()[0].reason).toBeNull();
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
    expect(dispatcher.list().filter((s) => s.state === 'reserved')).toHaveLength(1);
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
