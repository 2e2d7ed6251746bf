import { describe, expect, test } from 'bun:test';
import { createDispatcher, type Dispatcher } from './dispatcher.ts';
import type { Server } from 'bun';
import { createApp, type SocketHandlers } from './http.ts';
import { encode } from '../common/protocol.ts';
import { openSqliteStore } from './sqlite/lease-store.ts';
import { createOriginPolicy } from './origin.ts';
import { CLIENT_DIR, socketEvents, upgradeOn } from './server.ts';

const secret = 'test-secret-0123456789';
const dispatcher = createDispatcher({ store: openSqliteStore(':memory:') });
const options = {
  // No server: app.request() tests refuse before any upgrade.
  upgrade: () => false,
  clientDir: CLIENT_DIR,
  secret,
  origins: createOriginPolicy({ streamOrigins: null, listenHost: '127.0.0.1' }),
  remoteAddress: () => '127.0.0.1',
};
const app = createApp({ dispatcher, ...options });
/** The app on a Bun server of its own, on a free port, with the dispatcher's socket adapter. */
function listen(on: Dispatcher): Server<SocketHandlers> {
  let listening: Server<SocketHandlers> | null = null;
  const served = createApp({ dispatcher: on, ...options, upgrade: upgradeOn(() => listening) });
  return (listening = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: served.fetch, websocket: socketEvents }));
}
/** A dispatcher whose sessions a test replaces, and the errors it logs. */
function loggingDispatcher(): { failing: Dispatcher; logged: string[] } {
  const failing = createDispatcher({ store: openSqliteStore(':memory:'), policy: { rateLimit: 0 } });
  const logged: string[] = [];
  failing.events.on('log', ({ level, message }) => level === 'error' && logged.push(message));
  return { failing, logged };
}
const bearer = { authorization: `Bearer ${secret}` };
const register = (id: string, url: string) =>
  dispatcher.openControl({ send() {}, close() {} }).message(encode({ type: 'register', id, instance: `instance-of-${id}-0123456789`, url, client: 'none', targetFps: 30 }));

describe('http routes', () => {
  test('GET / serves the client page and its protocol script', async () => {
    const page = await app.request('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<script src="protocol.js">');
    const script = await app.request('/protocol.js');
    expect(await script.text()).toContain('RenderDispatchProtocol');
    for (const name of ['session.js', 'camera.js', 'stats.js', 'main.js']) {
      const response = await app.request(`/${name}`);
      expect([name, response.status, response.headers.get('content-type')]).toEqual([name, 200, 'text/javascript; charset=utf-8']);
    }
  });

  test('nothing else is served from the client folder', async () => {
    for (const path of ['/nope.js', '/..%2Fpackage.json', '/index.test.ts']) {
      expect((await app.request(path)).status).toBe(404);
    }
  });

  test('GET /v1/servers lists servers with their state', async () => {
    await register('x', 'ws://127.0.0.1:1/stream');
    const body = (await (await app.request('/v1/servers')).json()) as { servers: { id: string; state: string }[]; next: string | null };
    expect(body.servers.map((s) => [s.id, s.state])).toEqual([['x', 'ready']]);
    expect(body.next).toBeNull();
  });

  test('GET /v1/servers pages with ?limit and ?after, filters with ?state, and names a bad parameter', async () => {
    for (let i = 0; i < 5; i++) await register(`p${i}`, `ws://127.0.0.1:2/stream-${i}`);
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const response = await app.request(`/v1/servers?state=ready&limit=2${after ? `&after=${after}` : ''}`);
      const body = (await response.json()) as { servers: { id: string }[]; next: string | null };
      expect(body.servers.length).toBeLessThanOrEqual(2);
      seen.push(...body.servers.map((s) => s.id));
      after = body.next;
    } while (after);
    expect(seen.filter((id) => id.startsWith('p'))).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    for (const [query, reason] of [
      ['state=sleeping', 'state must be one of ready, reserved, busy, draining, offline, expired'],
      ['limit=0', 'limit must be a whole number from 1 to 1000'],
      ['limit=5000', 'limit must be a whole number from 1 to 1000'],
      ['after=%%%', 'after must be the next value of an earlier page'],
      ['colour=red', 'unknown parameter colour: use state, limit or after'],
    ]) {
      const response = await app.request(`/v1/servers?${query}`);
      expect([query, response.status, await response.text()]).toEqual([query, 400, reason]);
    }
  });

  test('browser pages from other origins are refused with 403 and a reason; the own page and programs are not', async () => {
    const evil = { origin: 'https://evil.example', host: '127.0.0.1:18000' };
    const drain = await app.request('/v1/servers/x/drain', { method: 'POST', headers: { ...evil, ...bearer } });
    expect([drain.status, await drain.text()]).toEqual([403, 'operator routes refuse pages from other origins (Origin https://evil.example)']);
    const control = await app.request('/v1/control', { headers: { ...evil, ...bearer, upgrade: 'websocket' } });
    expect([control.status, await control.text()]).toEqual([403, 'browser pages may not open the control channel (Origin https://evil.example)']);
    const stream = await app.request('/stream', { headers: { ...evil, upgrade: 'websocket' } });
    expect(stream.status).toBe(403);
    expect(await stream.text()).toBe('pages from https://evil.example may not ask this dispatcher for servers (start it with --allow-origin https://evil.example)');
    // A site that points its own name at 127.0.0.1 keeps its Host: not the dispatcher's own page.
    const rebound = await app.request('/v1/servers', { headers: { origin: 'http://evil.example:18000', host: 'evil.example:18000' } });
    expect(rebound.status).toBe(403);
    expect((await app.request('/v1/servers', { headers: { origin: 'http://127.0.0.1:18000', host: '127.0.0.1:18000' } })).status).toBe(200);
    expect((await app.request('/v1/servers')).status).toBe(200);
    // A page from disk sends "null", and a page on this machine its loopback origin: both are /stream's users.
    for (const origin of ['null', 'http://localhost:5173']) {
      const response = await app.request('/stream', { headers: { origin, host: '127.0.0.1:18000' } });
      expect([origin, response.status]).toEqual([origin, 426]);
    }
  });

  test('the WebSocket paths refuse a plain request with 426 and a reason', async () => {
    for (const path of ['/stream', '/v1/control']) {
      const response = await app.request(path);
      expect(response.status).toBe(426);
      expect(await response.text()).toContain('speaks WebSocket only');
    }
  });

  test('drain routes and the control channel need the shared secret', async () => {
    const guarded = app;
    const missing = await guarded.request('/v1/servers/x/drain', { method: 'POST' });
    expect(missing.status).toBe(401);
    expect(await missing.text()).toBe('this needs the shared secret: send Authorization: Bearer <secret>, or sign in with any user name and the secret as password');
    expect(missing.headers.get('www-authenticate')).toStartWith('Basic ');
    const wrong = await guarded.request('/v1/servers/x/drain', { method: 'POST', headers: { authorization: 'Bearer not-the-secret-at-all' } });
    expect([wrong.status, await wrong.text()]).toEqual([401, 'wrong secret']);
    const control = await guarded.request('/v1/control', { headers: { upgrade: 'websocket' } });
    expect(control.status).toBe(401);
    const right = await guarded.request('/v1/servers/x/drain', { method: 'POST', headers: { authorization: `Bearer ${secret}` } });
    expect(right.status).toBe(200);
    expect(((await right.json()) as { server: { state: string } }).server.state).toBe('draining');
    const again = await guarded.request('/v1/servers/x/drain', { method: 'DELETE', headers: { authorization: `Bearer ${secret}` } });
    expect(again.status).toBe(200);
  });

  test('the dashboard and its feed need the secret, by Bearer or by Basic with any user name; its page is not served around it', async () => {
    expect((await app.request('/dashboard')).status).toBe(401);
    expect((await app.request('/dashboard.html')).status).toBe(404);
    const basic = (password: string) => ({ authorization: `Basic ${btoa(`operator:${password}`)}` });
    const page = await app.request('/dashboard', { headers: basic(secret) });
    expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8']);
    const wrong = await app.request('/dashboard', { headers: basic('not-the-secret-at-all') });
    expect([wrong.status, await wrong.text()]).toEqual([401, 'wrong secret']);
    expect((await app.request('/v1/dashboard/feed')).status).toBe(401);
    expect((await app.request('/dashboard', { headers: { ...bearer, origin: 'https://evil.example' } })).status).toBe(403);
    const chart = await app.request('/vendor/uplot.js');
    expect([chart.status, chart.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
  });

  test('draining an unknown server is a 404 with a reason', async () => {
    const response = await app.request('/v1/servers/ghost/drain', { method: 'POST', headers: bearer });
    expect([response.status, await response.text()]).toEqual([404, 'no render server ghost']);
  });

  test('an unknown path is a 404 that names it', async () => {
    const response = await app.request('/nope', { method: 'POST' });
    expect(response.status).toBe(404);
    expect(await response.text()).toBe('no route for POST /nope');
  });

  test('a request that asks for an upgrade without a valid handshake is a 400 that says why', async () => {
    const server = listen(dispatcher);
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/stream`, { headers: { upgrade: 'websocket', connection: 'upgrade' } });
      expect(response.status).toBe(400);
      expect(await response.text()).toContain('/stream: not a valid WebSocket handshake');
    } finally {
      await server.stop(true);
    }
  });

  test('a session that throws as it opens, or as it closes, is logged; its socket is closed with 1011 and the server carries on', async () => {
    const { failing, logged } = loggingDispatcher();
    let opened = 0;
    failing.openStream = () => {
      if (opened++ === 0) throw new Error('no session for you');
      return { message: async () => {}, closed: () => { throw new Error('closing went wrong'); } };
    };
    const server = listen(failing);
    try {
      const first = new WebSocket(`ws://127.0.0.1:${server.port}/stream`);
      const event = await new Promise<CloseEvent>((resolve) => (first.onclose = resolve));
      expect([event.code, event.reason]).toEqual([1011, 'internal error']);
      const second = new WebSocket(`ws://127.0.0.1:${server.port}/stream`);
      await new Promise((resolve) => (second.onopen = resolve));
      second.close();
      for (let i = 0; i < 100 && !logged.some((m) => m.includes('closing went wrong')); i++) await Bun.sleep(10);
      expect(logged.some((m) => m.includes('closing went wrong'))).toBe(true);
      expect(logged.some((m) => m.includes('no session for you'))).toBe(true);
      expect((await fetch(`http://127.0.0.1:${server.port}/v1/servers`)).status).toBe(200);
    } finally {
      await server.stop(true);
    }
  });

  test('a session that fails closes its socket with 1011, is logged, and the server carries on', async () => {
    const { failing, logged } = loggingDispatcher();
    failing.openStream = () => ({
      message: async () => {
        throw new Error('the lease file went away');
      },
      closed: async () => {},
    });
    const server = listen(failing);
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/stream`);
      await new Promise((resolve) => (ws.onopen = resolve));
      const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
      ws.send('get_server_url');
      const event = await closed;
      expect([event.code, event.reason]).toEqual([1011, 'internal error']);
      expect(logged.some((m) => m.includes('the lease file went away'))).toBe(true);
      expect((await fetch(`http://127.0.0.1:${server.port}/v1/servers`)).status).toBe(200);
    } finally {
      await server.stop(true);
    }
  });
});
