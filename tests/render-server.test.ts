// A real dispatcher (Bun) and real render servers (Node) talking over loopback: registration,
// ticketed streaming of whole JPEG frames, one client per server, and clean stops. Restarts and
// other failures are in faults.test.ts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readFrameMeta } from '../common/frame-meta.ts';
import { askDispatcher, connectFrames, freePort, servers, startDispatcher, startDispatcherWithRender, startProcess, startRender, waitFor, type Proc } from './helpers.ts';

const isJpeg = (frame: Buffer) => frame[0] === 0xff && frame[1] === 0xd8 && frame.at(-2) === 0xff && frame.at(-1) === 0xd9;

describe('dispatcher and render server, as processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'render-dispatch-'));
  const db = join(dir, 'dispatcher.db');
  let dispatcherPort: number;
  let renderPort: number;
  let dispatcher: Proc;
  let render: Proc;
  let pair: Awaited<ReturnType<typeof startDispatcherWithRender>> | undefined;

  before(async () => {
    pair = await startDispatcherWithRender(db);
    ({ dispatcherPort, renderPort, dispatcher, render } = pair);
  });

  after(async () => {
    await pair?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the handed-out URL streams whole JPEG frames of the turning torus', async () => {
    const url = await askDispatcher(dispatcherPort);
    assert.match(url, new RegExp(`^ws://127\\.0\\.0\\.1:${renderPort}/stream\\?ticket=`));
    const client = await connectFrames(url);
    await waitFor('10 frames', () => client.frames.length >= 10);
    assert.ok(client.frames.every(isJpeg), 'every message is one complete JPEG');
    const first = await sharp(client.frames[0]).metadata();
    assert.deepEqual([first.width, first.height, first.format], [128, 128, 'jpeg']);
    assert.notDeepEqual(client.frames[0], client.frames[9], 'the picture changes over time');
    assert.equal((await servers(dispatcherPort))[0].state, 'busy');

    // One client per server: nobody else is handed it, and nobody gets in without a ticket.
    assert.equal(await askDispatcher(dispatcherPort), 'none');
    await assert.rejects(connectFrames(`ws://127.0.0.1:${renderPort}/stream`), { status: 401 });
    await assert.rejects(connectFrames(url), { status: 403, body: 'ticket already used' });

    client.ws.close();
    await waitFor('the server to be free again', async () => (await servers(dispatcherPort))[0].state === 'ready');
  });

  test('the client steers the camera: good input shows in the frames, bad input is refused and changes nothing', async () => {
    const client = await connectFrames(await askDispatcher(dispatcherPort));
    const { texts } = client;
    await waitFor('frames', () => client.frames.length >= 2);
    assert.deepEqual(texts[0], { type: 'hello', id: (await servers(dispatcherPort))[0].id, size: 128, targetFps: 30, camera: { yaw: 0, pitch: 0, distance: 4 } });
    assert.equal(readFrameMeta(client.frames[0])?.inputSeq, -1);

    client.ws.send(JSON.stringify({ type: 'camera', seq: 7, yaw: 0.8, pitch: 0.5, distance: 6 }));
    await waitFor('a frame showing input 7', () => client.frames.some((f) => readFrameMeta(f)?.inputSeq === 7));
    const metas = client.frames.map((f) => readFrameMeta(f)!);
    assert.deepEqual(metas.map((m) => m.seq), metas.map((_, i) => i), 'frames are numbered in order');

    for (const [bad, field] of [
      [{ type: 'camera', seq: 8, yaw: 0, pitch: 3, distance: 6 }, 'pitch'],
      [{ type: 'camera', seq: 8, yaw: 0, pitch: 0, distance: 'far' }, 'distance'],
      [{ type: 'zoom' }, 'type'],
    ] as const) {
      client.ws.send(JSON.stringify(bad));
      await waitFor(`the error for ${field}`, () => texts.some((t) => t.type === 'error' && t.field === field));
    }
    client.ws.send('not json');
    await waitFor('the error for bad JSON', () => texts.some((t) => t.type === 'error' && t.error === 'message is not valid JSON'));
    const after = client.frames.length;
    await waitFor('frames after bad input', () => client.frames.length > after + 3);
    assert.equal(readFrameMeta(client.frames.at(-1)!)?.inputSeq, 7, 'the frames still show the last good input');

    client.ws.send(JSON.stringify({ type: 'ping', t: 12345 }));
    await waitFor('the pong', () => texts.some((t) => t.type === 'pong' && t.t === 12345 && typeof t.serverTime === 'number'));
    client.ws.close();
    await waitFor('the server to be free again', async () => (await servers(dispatcherPort))[0].state === 'ready');
  });

  test('SIGTERM drains, closes the client with 1001 and a reason, leaves the dispatcher, exits 0', async () => {
    const client = await connectFrames(await askDispatcher(dispatcherPort));
    await waitFor('first frame', () => client.frames.length >= 1);
    assert.equal(await render.stop('SIGTERM'), 0);
    assert.deepEqual(await client.closed, { code: 1001, reason: 'render server shutting down' });
    await dispatcher.waitForOutput(/lost \(drained\)/);
    await waitFor('the server to be offline', async () => (await servers(dispatcherPort))[0].state === 'offline');
    assert.equal(await askDispatcher(dispatcherPort), 'none');
  });
});

describe('render server start-up errors', () => {
  test('a bad flag exits 2 with a message naming it', async () => {
    const proc = startProcess('node', ['--import', 'tsx', 'render/main.ts', '--fps', 'lots']);
    assert.equal(await proc.exited, 2);
    assert.match(proc.output(), /--fps must be a whole number from 1 to 240, got "lots"/);
  });

  test('an X display that cannot be opened is a clear error, not a crash', async () => {
    const proc = startRender(await freePort(), await freePort(), [], { DISPLAY: ':4077' });
    assert.equal(await proc.exited, 1);
    assert.match(proc.output(), /cannot start: could not create a 128x128 GL context \(is the X display :4077 up/);
  });
});

describe('a dispatcher with a shared secret', () => {
  const secret = 'farm-secret-0123456789';
  let dispatcherPort: number;
  let dispatcher: Proc;

  before(async () => {
    dispatcherPort = await freePort();
    dispatcher = startDispatcher(dispatcherPort, ':memory:', ['--secret', secret]);
    await dispatcher.waitForOutput(/listening/);
  });
  after(() => dispatcher.stop());

  test('refuses a render server with the wrong secret, which says why, and takes one with the right one', async () => {
    const wrong = startRender(await freePort(), dispatcherPort, [], { RENDER_DISPATCH_SECRET: 'not-the-farm-secret-at-all' });
    await wrong.waitForOutput(/dispatcher refused registration: 401 wrong secret/);
    assert.deepEqual(await servers(dispatcherPort), []);
    await wrong.stop();

    const right = startRender(await freePort(), dispatcherPort, ['--secret', secret]);
    await waitFor('the render server to register', async () => (await servers(dispatcherPort)).some((s) => s.state === 'ready'), 30_000);
    await right.stop();
  });
});
