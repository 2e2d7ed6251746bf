import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { DEFAULT_POLICY, DEFAULT_TIMINGS } from './dispatcher.ts';
import { startDispatcher, type RunningDispatcher } from './server.ts';
import { encode } from '../common/protocol.ts';

const SECRET = 'server-test-secret-0123456789';

let running: RunningDispatcher;

beforeAll(async () => {
  running = await startDispatcher({ host: '127.0.0.1', port: 0, db: ':memory:', timings: DEFAULT_TIMINGS, policy: DEFAULT_POLICY, secret: SECRET });
});
afterAll(() => running.close());

function open(url: string, headers?: Record<string, string>): Promise<WebSocket> {
  // Bun's WebSocket takes { headers } as its second argument, which the DOM's type does not know.
  const ws = new WebSocket(url, (headers ? { headers } : undefined) as unknown as string[]);
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`could not open ${url}`));
  });
}

function next(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.addEventListener('message', (m) => resolve(String(m.data)), { once: true }));
}

/** The tutorial page's exchange: a fresh socket, one request, one answer. */
async function ask(payload: string | Uint8Array = 'get_server_url'): Promise<string> {
  const ws = await open(running.streamUrl);
  const answer = next(ws);
  ws.send(payload);
  const text = await answer;
  ws.close();
  return text;
}

describe('dispatcher over real sockets', () => {
  test('with no render server the answer is exactly none', async () => {
    expect(await ask()).toBe('none');
  });

  test('a registered server is handed out once; its control socket closing takes it out', async () => {
    // Bun's WebSocket client takes headers, as render servers' does: the control channel needs the secret.
    const control = await open(`ws://127.0.0.1:${running.port}/v1/control`, { authorization: `Bearer ${SECRET}` });
    const registered = next(control);
    control.send(encode({ type: 'register', id: 'srv', instance: 'server-test-instance-0123', url: 'ws://127.0.0.1:16999/stream', client: 'none', targetFps: 60 }));
    expect(JSON.parse(await registered)).toMatchObject({ type: 'registered', id: 'srv' });

    expect(await ask()).toStartWith('ws://127.0.0.1:16999/stream?ticket=');
    expect(await ask()).toBe('none');
    control.send(JSON.stringify({ type: 'client', event: 'connected' }));
    control.send(JSON.stringify({ type: 'client', event: 'gone' }));
    await Bun.sleep(50);
    expect(await ask()).toStartWith('ws://127.0.0.1:16999/stream?ticket=');

    const lost = new Promise((resolve) => running.dispatcher.events.on('server.lost', resolve));
    control.close();
    expect(await lost).toEqual({ kind: 'render', id: 'srv', url: 'ws://127.0.0.1:16999/stream', reason: 'closed' });
    expect(await ask()).toBe('none');
  });

  test('unknown and binary requests get a clear error and the socket stays usable', async () => {
    const ws = await open(running.streamUrl);
    let answer = next(ws);
    ws.send('hello');
    expect(await answer).toBe('error: unknown request "hello"; send "get_server_url"');
    answer = next(ws);
    ws.send(new Uint8Array([1, 2, 3]));
    expect(await answer).toContain('binary messages are not understood');
    answer = next(ws);
    ws.send('get_server_url');
    expect(await answer).toBe('none');
    ws.close();
  });

  test('a binary control message closes that control socket with 1003 and a reason', async () => {
    const control = await open(`ws://127.0.0.1:${running.port}/v1/control`, { authorization: `Bearer ${SECRET}` });
    const closed = new Promise<CloseEvent>((resolve) => (control.onclose = resolve));
    control.send(new Uint8Array([0]));
    const event = await closed;
    expect(event.code).toBe(1003);
    expect(event.reason).toBe('control messages are JSON text');
  });

  test('browser connections are announced as events', async () => {
    const seen: string[] = [];
    const offNew = running.dispatcher.events.on('connection.new', () => seen.push('new'));
    const lost = new Promise((resolve) => running.dispatcher.events.on('connection.lost', resolve));
    await ask();
    await lost;
    offNew();
    expect(seen).toEqual(['new']);
  });
});
