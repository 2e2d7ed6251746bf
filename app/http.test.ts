import { describe, expect, test } from 'bun:test';
import { upgradeWebSocket, websocket } from 'hono/bun';
import { createDispatcher } from './dispatcher.ts';
import { createApp } from './http.ts';
import { openLeaseStore } from './lease-store.ts';
import { CLIENT_DIR } from './server.ts';

const dispatcher = createDispatcher({ store: openLeaseStore(':memory:') });
const app = createApp({ dispatcher, upgradeWebSocket, clientDir: CLIENT_DIR });

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
    const link = { send() {}, close() {} };
    await dispatcher.openControl(link).message(JSON.stringify({ type: 'register', id: 'x', url: 'ws://127.0.0.1:1/stream', client: 'none', targetFps: 30 }));
    const body = (await (await app.request('/v1/servers')).json()) as { servers: { id: string; state: string }[] };
    expect(body.servers.map((s) => [s.id, s.state])).toEqual([['x', 'ready']]);
  });

  test('the WebSocket paths refuse a plain request with 426 and a reason', async () => {
    for (const path of ['/stream', '/v1/control']) {
      const response = await app.request(path);
      expect(response.status).toBe(426);
      expect(await response.text()).toContain('speaks WebSocket only');
    }
  });

  test('drain routes need the shared secret when one is set', async () => {
    const secret = 'test-secret-0123456789';
    const guarded = createApp({ dispatcher, upgradeWebSocket, clientDir: CLIENT_DIR, secret });
    const missing = await guarded.request('/v1/servers/x/drain', { method: 'POST' });
    expect(missing.status).toBe(401);
    expect(await missing.text()).toBe('this needs the shared secret: send Authorization: Bearer <secret>');
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

  test('draining an unknown server is a 404 with a reason', async () => {
    const response = await app.request('/v1/servers/ghost/drain', { method: 'POST' });
    expect([response.status, await response.text()]).toEqual([404, 'no render server ghost']);
  });

  test('an unknown path is a 404 that names it', async () => {
    const response = await app.request('/nope', { method: 'POST' });
    expect(response.status).toBe(404);
    expect(await response.text()).toBe('no route for POST /nope');
  });

  test('a session that fails closes its socket with 1011, is logged, and the server carries on', async () => {
    const failing = createDispatcher({ store: openLeaseStore(':memory:') });
    const logged: string[] = [];
    failing.events.on('log', ({ level, message }) => level === 'error' && logged.push(message));
    failing.openStream = () => ({
      message: async () => {
        throw new Error('the lease file went away');
      },
      closed() {},
    });
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: createApp({ dispatcher: failing, upgradeWebSocket, clientDir: CLIENT_DIR }).fetch, websocket });
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
