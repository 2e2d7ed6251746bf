// The render server's wiring, in one process: a stand-in renderer (no GL) and a stand-in dispatcher
// that registers it and signs its tickets. What control reports before there is any client or
// frame, and the one client slot seen through real upgrades: held, refused while held, given back
// when the client leaves or its handshake dies, closed with 1001 when the server stops.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { sign } from 'hono/jwt';
import { WebSocketServer } from 'ws';
import { PATHS } from '../common/protocol.ts';
import { connectFrames, waitFor } from '../tests/helpers.ts';
import type { Renderer } from './renderer.ts';
import { startRenderServer, type RunningRenderServer } from './server.ts';

const SIZE = 16;
const KEY = 'k'.repeat(43);
const CLAIM_MS = 10_000;

const renderer: Renderer = { size: SIZE, readFrame: () => Buffer.alloc(SIZE * SIZE * 4, 128), destroy: () => {} };

describe('render server wiring, in process', () => {
  const fromServer: Record<string, unknown>[] = [];
  const logs: Record<string, unknown>[] = [];
  let dispatcher: WebSocketServer;
  let running: RunningRenderServer;
  let stopped = false;

  const ticketUrl = async (claims: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const ticket = await sign({ sub: running.id, jti: randomUUID(), iat: now, exp: now + 10, ...claims }, KEY, 'HS256');
    return `${running.publicUrl}?ticket=${ticket}`;
  };
  const clientEvents = () => fromServer.filter((m) => m.type === 'client').map((m) => m.event);

  before(async () => {
    dispatcher = new WebSocketServer({ port: 0, host: '127.0.0.1', path: PATHS.control });
    await new Promise((resolve) => dispatcher.once('listening', resolve));
    dispatcher.on('connection', (ws) => {
      ws.on('message', (data) => {
        const message = JSON.parse(data.toString());
        fromServer.push(message);
        if (message.type === 'register') {
          ws.send(JSON.stringify({ type: 'registered', id: message.id, key: KEY, heartbeatMs: 20, ttlMs: 3000, claimMs: CLAIM_MS, expiresAt: Date.now() + 3000 }));
        }
      });
    });
    const { port } = dispatcher.address() as AddressInfo;
    running = await startRenderServer(
      {
        host: '127.0.0.1', port: 0, dispatchers: [`ws://127.0.0.1:${port}`], size: SIZE, fps: 30, quality: 50, spin: 1,
        publicUrl: null, count: 1, secret: 'test-secret', secretSource: 'the test', logFormat: 'text',
      },
      renderer,
      { log: (_level, message, fields) => logs.push({ message, ...fields }) },
    );
  });

  after(async () => {
    if (!stopped) await running?.close();
    await new Promise((resolve) => dispatcher?.close(resolve));
  });

  test('control reads the stream from its first report: no client, and zeros before any frame is measured', async () => {
    const heartbeat = await waitFor('the first heartbeat', () => fromServer.find((m) => m.type === 'heartbeat'));
    assert.equal(fromServer[0].type, 'register');
    assert.equal(fromServer[0].client, 'none');
    assert.deepEqual(heartbeat, { type: 'heartbeat', fps: 0, frameMs: 0, client: 'none' });
  });

  test('/readyz is 200 once registered, and a refused upgrade is counted by its kind', async () => {
    const base = `http://127.0.0.1:${running.port}`;
    await waitFor('ready', async () => (await fetch(`${base}/readyz`)).status === 200);
    await assert.rejects(connectFrames(`ws://127.0.0.1:${running.port}/stream`), { status: 401 });
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /^render_dispatch_render_tickets_refused_total\{reason="missing"\} 1$/m);
    assert.match(text, /^render_dispatch_render_tickets_refused_total\{reason="busy"\} 0$/m);
    assert.match(text, /^render_dispatch_render_registered 1$/m);
  });

  test('one client holds the slot: a second ticket is refused 409 and not spent, and gets in once the first client leaves', async () => {
    const first = await connectFrames(await ticketUrl({ sid: 'page-session-1' }));
    await waitFor('hello', () => first.texts.find((t) => t.type === 'hello'));
    await waitFor('connected reported', () => clientEvents().length === 1);
    // Its log line says which server, which ticket (by id) and which session, and holds no ticket.
    const line = logs.find((l) => l.message === 'client connected')!;
    assert.deepEqual(Object.keys(line).sort(), ['jti', 'message', 'port', 'serverId', 'session']);
    assert.deepEqual([line.serverId, line.port, line.session], [running.id, running.port, 'page-session-1']);
    assert.match(String(line.jti), /^[0-9a-f-]{36}$/);
    await waitFor('a heartbeat with the client', () => fromServer.some((m) => m.type === 'heartbeat' && m.client === 'connected'));

    const second = await ticketUrl();
    await assert.rejects(connectFrames(second), { status: 409, body: 'busy: another client is streaming from this server' });

    first.ws.close();
    await waitFor('gone reported', () => clientEvents().length === 2);
    assert.deepEqual(clientEvents(), ['connected', 'gone']);
    const again = await connectFrames(second);
    await waitFor('hello', () => again.texts.find((t) => t.type === 'hello'));
    again.ws.close();
    await waitFor('gone reported', () => clientEvents().length === 4);
  });

  test('an admitted upgrade whose handshake dies gives the slot back, and no client is reported', async () => {
    const before = clientEvents().length;
    const { pathname, search, host } = new URL(await ticketUrl());
    // A good ticket but no Sec-WebSocket-Key: the gate admits it, the handshake then fails with 400.
    const answer = await new Promise<string>((resolve, reject) => {
      const raw = connect(running.port, '127.0.0.1', () => {
        raw.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      let text = '';
      raw.on('data', (chunk) => (text += chunk));
      raw.on('close', () => resolve(text));
      raw.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    const client = await waitFor('a client to get in', () => ticketUrl().then(connectFrames), 5000);
    await waitFor('connected reported', () => clientEvents().length === before + 1);
    assert.deepEqual(clientEvents().slice(before), ['connected'], 'the upgrade that died was never a client');
    client.ws.close();
    await waitFor('gone reported', () => clientEvents().length === before + 2);
  });

  test('stopping the server closes its client with 1001 and the reason', async () => {
    const client = await connectFrames(await ticketUrl());
    await waitFor('a frame', () => client.frames.length >= 1);
    stopped = true;
    await running.close('render server shutting down');
    assert.deepEqual(await client.closed, { code: 1001, reason: 'render server shutting down' });
    assert.ok(fromServer.some((m) => m.type === 'drain'), 'drained first');
  });
});
