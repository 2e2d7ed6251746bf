// The attacks a web page or a second process on the machine could try, each on real processes: a
// dispatcher with its defaults, a real render server as the victim, and attackers speaking the
// protocol with `ws`. Every one is refused with a status or close code and a reason, and the
// victim's lease, key and client are untouched (a page still streams from it afterwards).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sign } from 'hono/jwt';
import WebSocket, { WebSocketServer } from 'ws';
import { CLOSE, encode } from '../common/protocol.ts';
import {
  askDispatcher, connectFrames, freePort, openSocket, operatorHeaders, servers, simulateRenderServer, startDispatcher, startRender, waitFor, type Proc,
} from './helpers.ts';

/** Opens a WebSocket; resolves with it open, or with the HTTP refusal (status and body). */
function attempt(url: string, options: WebSocket.ClientOptions = {}): Promise<{ ws: WebSocket } | { status: number; body: string }> {
  const ws = new WebSocket(url, options);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: body.trim() }));
    });
    ws.once('error', reject);
  });
}

/** The first message and, if the dispatcher closes, the close code and reason. */
function exchange(ws: WebSocket, text: string): Promise<{ reply: Record<string, unknown>; closed: Promise<{ code: number; reason: string }> }> {
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve({ reply: JSON.parse(data.toString()), closed }));
    ws.send(text);
  });
}

describe('attacks on a dispatcher with its defaults', () => {
  let dispatcherPort: number;
  let dispatcher: Proc;
  let victim: Proc;
  let victimUrl: string;
  let victimId: string;

  before(async () => {
    dispatcherPort = await freePort();
    dispatcher = startDispatcher(dispatcherPort, ':memory:', ['--retention', '1s']);
    await dispatcher.waitForOutput(/listening/);
    const renderPort = await freePort();
    victim = startRender(renderPort, dispatcherPort);
    await victim.waitForOutput(/registered with/, 30_000);
    victimUrl = `ws://127.0.0.1:${renderPort}/stream`;
    victimId = (await servers(dispatcherPort)).find((s) => s.url === victimUrl)!.id;
  });
  after(async () => {
    await victim?.stop();
    await dispatcher?.stop();
  });

  /** The victim as the dispatcher shows it, and proof that its key and client slot work: a page streams from it. */
  async function victimIntact(): Promise<void> {
    const row = (await servers(dispatcherPort)).find((s) => s.id === victimId);
    assert.equal(row?.url, victimUrl);
    assert.equal(row?.state, 'ready');
    const url = await askDispatcher(dispatcherPort);
    assert.ok(url.startsWith(`${victimUrl}?ticket=`), url);
    const page = await connectFrames(url);
    await waitFor('a frame from the victim', () => page.frames.length > 0);
    page.ws.close();
    await waitFor('the victim free again', async () => (await servers(dispatcherPort)).find((s) => s.id === victimId)?.state === 'ready');
  }

  test('registering with no secret is refused at the door: 401', async () => {
    const result = await attempt(`ws://127.0.0.1:${dispatcherPort}/v1/control`);
    assert.deepEqual(result, { status: 401, body: 'this needs the shared secret: send Authorization: Bearer <secret>, or sign in with any user name and the secret as password' });
  });

  test('taking over a live id, even with the secret, is refused with 4001 and the victim keeps all', async () => {
    const result = await attempt(`ws://127.0.0.1:${dispatcherPort}/v1/control`, { headers: operatorHeaders() });
    assert.ok('ws' in result);
    const { reply, closed } = await exchange(
      result.ws,
      encode({ type: 'register', id: victimId, instance: 'attacker-instance-0123456789', url: 'ws://127.0.0.1:1/evil', client: 'none', targetFps: 60 }),
    );
    assert.deepEqual(reply, { type: 'error', field: 'id', error: `registration refused: id ${victimId} belongs to another render server process` });
    assert.deepEqual(await closed, { code: CLOSE.conflict, reason: 'registration conflicts with a live render server' });
    assert.doesNotMatch(victim.output(), /lost the dispatcher/);
    await victimIntact();
  });

  test('a new id on the victim\'s URL is refused with 4001 and deletes nothing', async () => {
    const result = await attempt(`ws://127.0.0.1:${dispatcherPort}/v1/control`, { headers: operatorHeaders() });
    assert.ok('ws' in result);
    const { reply, closed } = await exchange(
      result.ws,
      encode({ type: 'register', id: 'usurper', instance: 'attacker-instance-0123456789', url: victimUrl, client: 'none', targetFps: 60 }),
    );
    assert.equal(reply.field, 'url');
    assert.equal((await closed).code, CLOSE.conflict);
    assert.equal((await servers(dispatcherPort)).some((s) => s.id === 'usurper'), false);
    await victimIntact();
  });

  test('a web page\'s Origin is refused on the control channel, the operator routes and /stream: 403', async () => {
    const evil = { origin: 'https://evil.example' };
    const control = await attempt(`ws://127.0.0.1:${dispatcherPort}/v1/control`, { headers: { ...evil, ...operatorHeaders() } });
    assert.deepEqual(control, { status: 403, body: 'browser pages may not open the control channel (Origin https://evil.example)' });
    const stream = await attempt(`ws://127.0.0.1:${dispatcherPort}/stream`, { headers: evil });
    assert.ok('status' in stream && stream.status === 403, JSON.stringify(stream));
    for (const method of ['POST', 'DELETE']) {
      const drain = await fetch(`http://127.0.0.1:${dispatcherPort}/v1/servers/${victimId}/drain`, { method, headers: { ...evil, ...operatorHeaders() } });
      assert.deepEqual([method, drain.status, await drain.text()], [method, 403, 'operator routes refuse pages from other origins (Origin https://evil.example)']);
    }
    const listing = await fetch(`http://127.0.0.1:${dispatcherPort}/v1/servers`, { headers: evil });
    assert.equal(listing.status, 403);
    // And without a browser's Origin, no drain without the secret.
    const bare = await fetch(`http://127.0.0.1:${dispatcherPort}/v1/servers/${victimId}/drain`, { method: 'POST' });
    assert.equal(bare.status, 401);
    await victimIntact();
  });

  test('registration input is checked: credentials, fragments, markup in ids', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ url: 'wss://user:pw@127.0.0.1:1/x' }, 'url'],
      [{ url: 'ws://127.0.0.1:1/x#frag' }, 'url'],
      [{ id: '<img src=x onerror=alert(1)>' }, 'id'],
      [{ id: 'line\nbreak' }, 'id'],
      [{ targetFps: 1e308 }, 'targetFps'],
    ];
    for (const [change, field] of cases) {
      const ws = await openSocket(`ws://127.0.0.1:${dispatcherPort}/v1/control`, { headers: operatorHeaders() });
      const { reply } = await exchange(ws, JSON.stringify({ type: 'register', id: 'probe', instance: 'probe-instance-0123456789', url: 'ws://127.0.0.1:1/probe', client: 'none', targetFps: 60, ...change }));
      assert.equal(reply.type, 'error');
      assert.equal(reply.field, field, JSON.stringify(reply));
      ws.close();
    }
    assert.equal((await servers(dispatcherPort)).some((s) => s.id === 'probe'), false);
  });
});

describe('no hoarding, and state that does not grow', () => {
  let dispatcherPort: number;
  let dispatcher: Proc;

  before(async () => {
    dispatcherPort = await freePort();
    dispatcher = startDispatcher(dispatcherPort, ':memory:', ['--retention', '1s', '--max-queue', '40']);
    await dispatcher.waitForOutput(/listening/);
  });
  after(() => dispatcher?.stop());

  test('one connection asking 20 times holds one server; so does one session over 20 connections', async () => {
    const fleet = await Promise.all(Array.from({ length: 10 }, (_, i) => simulateRenderServer(dispatcherPort, `h-${i}`, `ws://127.0.0.1:${21000 + i}/stream`)));
    const ws = await openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`);
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) {
      answers.push(await new Promise<string>((resolve) => {
        ws.once('message', (data) => resolve(data.toString()));
        ws.send('get_server_url');
      }));
    }
    ws.close();
    assert.equal(new Set(answers).size, 1, 'the same grant every time');
    const sockets = await Promise.all(Array.from({ length: 20 }, () => openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`)));
    const sessionAnswers = await Promise.all(sockets.map((s) => new Promise<Record<string, unknown>>((resolve) => {
      s.once('message', (data) => resolve(JSON.parse(data.toString())));
      s.send(JSON.stringify({ type: 'get_server_url', session: 'one-session-only' }));
    })));
    for (const s of sockets) s.close();
    assert.equal(new Set(sessionAnswers.map((a) => a.url)).size, 1);
    const reserved = (await servers(dispatcherPort)).filter((s) => s.state === 'reserved');
    assert.equal(reserved.length, 2, 'one for the connection, one for the session; eight still free');
    for (const server of fleet) server.close();
  });

  test('one address cannot fill the waiting room: another address still gets a place', async () => {
    // Linux answers on all of 127.0.0.0/8: a socket bound to 127.0.0.2 is another address.
    const crowd = [];
    for (let i = 0; i < 25; i++) crowd.push(await openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`));
    const replies = await Promise.all(crowd.map((s) => new Promise<Record<string, unknown>>((resolve) => {
      s.once('message', (data) => resolve(JSON.parse(data.toString())));
      s.send(JSON.stringify({ type: 'get_server_url', wait: true }));
    })));
    assert.equal(replies.filter((r) => r.type === 'queued').length, 20, 'half of --max-queue 40');
    assert.deepEqual(replies.find((r) => r.type === 'none'), { type: 'none', reason: 'your address holds all the places in the waiting room it may (20)' });
    const other = await openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`, { localAddress: '127.0.0.2' });
    const reply = await new Promise<Record<string, unknown>>((resolve) => {
      other.once('message', (data) => resolve(JSON.parse(data.toString())));
      other.send(JSON.stringify({ type: 'get_server_url', wait: true }));
    });
    assert.equal(reply.type, 'queued');
    for (const s of [...crowd, other]) s.close();
  });

  test('a flood from one address is slowed with a clear error; a crowd behind one address is served', async () => {
    const fleet = await Promise.all(Array.from({ length: 60 }, (_, i) => simulateRenderServer(dispatcherPort, `c-${i}`, `ws://127.0.0.1:${22000 + i}/stream`)));
    // 60 pages behind one address (one NAT) each ask once, together: all served by the default limits.
    await new Promise((resolve) => setTimeout(resolve, 5000)); // a full bucket
    const pages = await Promise.all(Array.from({ length: 60 }, () => openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`)));
    const answers = await Promise.all(pages.map((s) => new Promise<string>((resolve) => {
      s.once('message', (data) => resolve(data.toString()));
      s.send('get_server_url');
    })));
    assert.equal(answers.filter((a) => a.startsWith('ws://')).length, 60);
    // A loop asking as fast as it can from the same address: refused past the burst, with when to retry.
    const loop = await openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`);
    let refused: Record<string, unknown> | null = null;
    for (let i = 0; i < 200 && !refused; i++) {
      const reply = await new Promise<Record<string, unknown>>((resolve) => {
        loop.once('message', (data) => resolve(JSON.parse(data.toString())));
        loop.send(JSON.stringify({ type: 'get_server_url' }));
      });
      if (reply.type === 'error') refused = reply;
    }
    assert.ok(refused, 'the loop was slowed down');
    assert.match(String(refused.error), /^too many requests from your address \(at most 20 a second\): try again in \d+ms$/);
    assert.ok(Number(refused.retryMs) > 0);
    for (const s of [...pages, loop]) s.close();
    for (const server of fleet) server.close();
  });

  test('servers that left are forgotten after the retention, and the list is paged', async () => {
    const batch = await Promise.all(Array.from({ length: 300 }, (_, i) => simulateRenderServer(dispatcherPort, `gone-${i}`, `ws://127.0.0.1:1/gone-${i}`)));
    const first = (await (await fetch(`http://127.0.0.1:${dispatcherPort}/v1/servers?limit=100`)).json()) as { servers: unknown[]; next: string | null };
    assert.equal(first.servers.length, 100);
    assert.ok(first.next);
    for (const server of batch) server.close();
    await waitFor('the offline rows purged', async () => {
      const body = (await (await fetch(`http://127.0.0.1:${dispatcherPort}/v1/servers?state=offline&limit=1000`)).json()) as { servers: unknown[] };
      return body.servers.length === 0;
    }, 10_000, 200);
  });
});

describe('a render server takes no ticket that outlives a claim, whoever signed it', () => {
  // The test plays the dispatcher, so that it knows the key the render server was given.
  const KEY = 'known-to-this-test-key-0123456789abcdef';
  let render: Proc;
  let renderPort: number;
  let fake: WebSocketServer;
  let http: Server;
  let id: string;

  before(async () => {
    http = createServer();
    fake = new WebSocketServer({ server: http, path: '/v1/control' });
    const registered = new Promise<string>((resolve) => {
      fake.on('connection', (ws) => ws.on('message', (data) => {
        const msg = JSON.parse(data.toString());
        if (msg.type !== 'register') return;
        ws.send(encode({ type: 'registered', id: msg.id, key: KEY, heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000, expiresAt: Date.now() + 3000 }));
        resolve(msg.id);
      }));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    renderPort = await freePort();
    render = startRender(renderPort, (http.address() as AddressInfo).port);
    id = await registered;
    await render.waitForOutput(/registered with/, 30_000);
  });
  after(async () => {
    await render?.stop();
    for (const client of fake?.clients ?? []) client.terminate();
    fake?.close();
    await new Promise((resolve) => http?.close(resolve));
  });

  const ticket = (exp: number) => sign({ sub: id, jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000), exp }, KEY, 'HS256');

  test('a year-long ticket is refused with 403; one within the claim period streams', async () => {
    const now = Math.floor(Date.now() / 1000);
    await assert.rejects(connectFrames(`ws://127.0.0.1:${renderPort}/stream?ticket=${await ticket(now + 365 * 86_400)}`), (error: Error & { status?: number; body?: string }) => {
      assert.equal(error.status, 403);
      assert.equal(error.body, 'ticket invalid: it lives longer than the 10000ms claim period');
      return true;
    });
    const page = await connectFrames(`ws://127.0.0.1:${renderPort}/stream?ticket=${await ticket(now + 10)}`);
    await waitFor('a frame', () => page.frames.length > 0);
    page.ws.close();
  });
});
