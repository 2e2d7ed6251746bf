import { describe, expect, test } from 'bun:test';
import { upgradeWebSocket } from 'hono/bun';
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

  test('an unknown path is a 404 that names it', async () => {
    const response = await app.request('/nope', { method: 'POST' });
    expect(response.status).toBe(404);
    expect(await response.text()).toBe('no route for POST /nope');
  });
});
