// The embedding API over real sockets on loopback: daemons linked by config and by addClient /
// addServer, events of both ends, messages stopped by a handler, a wrong secret and a browser
// page refused as links.

import { afterEach, describe, expect, test } from 'bun:test';
import { CLOSE, PATHS } from '../common/protocol.ts';
import { Server } from './daemon.ts';
import type { MessageEvent } from './events.ts';
import { createOriginPolicy } from './origin.ts';

const SECRET = 'flock-secret-for-the-daemon-tests';
const started: Server[] = [];
afterEach(async () => {
  while (started.length) await started.pop()!.close();
});

async function daemon(daemonConfig: ConstructorParameters<typeof Server>[0] = {}): Promise<Server> {
  const server = new Server({ secret: SECRET, ...daemonConfig, daemon: { port: 0, ...daemonConfig.daemon } });
  started.push(server);
  return server.init();
}

async function until<T>(what: string, probe: () => T | undefined | null | false, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

const linksUp = (server: Server, n: number) => server.getDaemon().flock().links.filter((link) => link.state === 'up').length >= n;

describe('daemon', () => {
  test('a line linked by config and addClient: both ends raise server.new; messages travel and a handler stops them', async () => {
    const c = await daemon();
    const b = await daemon();
    const seen: string[] = [];
    const a = new Server({ secret: SECRET, daemon: { port: 0, servers: [{ hostname: '127.0.0.1', port: b.getDaemon().port }] } });
    started.push(a);
    a.on('server.new', (event) => seen.push(`a new ${event.kind} ${event.id}`));
    c.on('server.new', (event) => seen.push(`c new ${event.kind} ${event.id}`));
    await a.init();
    b.getDaemon().addClient(c.getDaemon().port);
    await until('both links up', () => linksUp(a, 1) && linksUp(b, 2) && linksUp(c, 1));
    expect(seen.sort()).toEqual([`a new dispatcher ${b.getDaemon().member}`, `c new dispatcher ${b.getDaemon().member}`]);

    const heard: Record<string, string[]> = { a: [], b: [], c: [] };
    for (const [name, server] of Object.entries({ a, b, c })) {
      const record = (event: MessageEvent) => heard[name].push(`${event.event} ${JSON.stringify(event.message.data)} hops ${event.message.hops}`);
      server.on('message', record).on('evt.greet', record).on('evt.secret', record);
    }
    b.on('evt.secret', (event) => {
      event.returnValue = false;
    });
    a.getDaemon().send({ event: 'greet', data: 1 });
    a.getDaemon().send({ event: 'secret', data: 2 });
    a.getDaemon().send({ data: 3 });
    await until('c hears two', () => heard.c.length === 2);
    await Bun.sleep(100);
    expect(heard).toEqual({
      a: [],
      b: ['evt.greet 1 hops 1', 'evt.secret 2 hops 1', 'message 3 hops 1'],
      c: ['evt.greet 1 hops 2', 'message 3 hops 2'],
    });
  });

  test("a page's message raises events here, reaches subscribed pages elsewhere, and not its own page", async () => {
    const b = await daemon();
    const a = await daemon({ daemon: { clients: [b.getDaemon().port] } });
    await until('linked', () => linksUp(a, 1) && linksUp(b, 1));
    const open = async (server: Server) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.getDaemon().port}${PATHS.stream}`);
      const got: Record<string, unknown>[] = [];
      ws.onmessage = (event) => got.push(JSON.parse(String(event.data)));
      await new Promise((resolve) => (ws.onopen = resolve));
      return { ws, got };
    };
    const listener = await open(b);
    listener.ws.send(JSON.stringify({ type: 'subscribe' }));
    const sender = await open(a);
    sender.ws.send(JSON.stringify({ type: 'subscribe' }));
    await until('subscribed', () => listener.got.length === 1 && sender.got.length === 1);
    const atA: string[] = [];
    a.on('evt.chat', (event) => atA.push(`${event.connection?.kind} ${event.message.user}`));
    sender.ws.send(JSON.stringify({ type: 'message', event: 'chat', user: 'hank', data: { text: 'hi' } }));
    await until('delivered', () => listener.got.length === 2);
    await Bun.sleep(100);
    expect(listener.got[1]).toEqual({ type: 'message', from: a.getDaemon().member, event: 'chat', user: 'hank', data: { text: 'hi' } });
    expect(sender.got).toEqual([{ type: 'subscribed' }]);
    expect(atA).toEqual(['page hank']);
    listener.ws.close();
    sender.ws.close();
  });

  test('a page sending too often is told to slow down, by connection', async () => {
    const a = await daemon({ policy: { messageRate: 2 } });
    const ws = new WebSocket(`ws://127.0.0.1:${a.getDaemon().port}${PATHS.stream}`);
    const got: { type: string; error?: string; retryMs?: number }[] = [];
    ws.onmessage = (event) => got.push(JSON.parse(String(event.data)));
    await new Promise((resolve) => (ws.onopen = resolve));
    let raised = 0;
    a.on('message', () => raised++);
    for (let i = 0; i < 12; i++) ws.send(JSON.stringify({ type: 'message', data: i }));
    await until('refusals', () => got.length === 2);
    expect(raised).toBe(10);
    expect(got[0].error).toStartWith('too many messages on this connection (at most 2 a second)');
    expect(got[0].retryMs).toBeGreaterThan(0);
    ws.close();
  });

  test("a page from disk or a sandboxed frame (Origin null) may ask for servers but not use the flock's messages, unless null is allowed by name", async () => {
    const answers = async (server: Server, origin: string, count: number) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.getDaemon().port}${PATHS.stream}`, { headers: { origin } } as never);
      const got: { type: string; error?: string; field?: string; reason?: string }[] = [];
      ws.onmessage = (event) => got.push(JSON.parse(String(event.data)));
      await new Promise((resolve) => (ws.onopen = resolve));
      ws.send(JSON.stringify({ type: 'subscribe' }));
      ws.send(JSON.stringify({ type: 'message', data: 1 }));
      ws.send(JSON.stringify({ type: 'get_server_url' }));
      await until(`${count} answers`, () => got.length === count);
      ws.close();
      return got;
    };
    const a = await daemon();
    const refusal = { type: 'error', error: "pages from null may not use the flock's messages (start the dispatcher with --allow-origin null)", field: 'type' };
    expect(await answers(a, 'null', 3)).toEqual([refusal, refusal, { type: 'none', reason: 'no render server is free' }]);
    // A page on this machine may (its own message is not sent back to it).
    expect((await answers(a, 'http://localhost:5173', 2)).map((m) => m.type)).toEqual(['subscribed', 'none']);
    expect(createOriginPolicy({ streamOrigins: ['null'], listenHost: '127.0.0.1' }).messages('null', '127.0.0.1:18000')).toEqual({ ok: true });
    expect(createOriginPolicy({ streamOrigins: ['*'], listenHost: '127.0.0.1' }).messages('https://any.example', '127.0.0.1:18000')).toEqual({ ok: true });
  });

  test('a dispatcher that does not know the secret is refused, and so is a browser page', async () => {
    const b = await daemon();
    const a = new Server({ secret: 'another-secret-entirely-0123', daemon: { port: 0, clients: [b.getDaemon().port] } });
    started.push(a);
    let linked = 0;
    a.on('server.new', () => linked++);
    b.on('server.new', () => linked++);
    await a.init();
    const link = await until('refused', () => a.getDaemon().flock().links.find((l) => l.lastClose));
    expect(link.lastClose).toStartWith(`${CLOSE.unauthorized} `);
    expect(linked).toBe(0);

    const page = await fetch(`http://127.0.0.1:${b.getDaemon().port}${PATHS.link}`, {
      headers: { upgrade: 'websocket', connection: 'upgrade', origin: 'https://evil.example', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
    });
    expect(page.status).toBe(403);
    expect(await page.text()).toContain('browser pages may not link to the flock');
  });

  test('bad addresses are refused where they are given', () => {
    expect(() => new Server({ daemon: { clients: [0] } })).toThrow('a client must be a port number 1-65535, got 0');
    expect(() => new Server({ daemon: { servers: ['http://10.0.0.2:18000'] } })).toThrow('a server must be { hostname, port } or a ws:// URL');
  });
});
