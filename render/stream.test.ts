// The frame loop with a stand-in renderer and a real socket: frames in order while encoding
// overlaps drawing, a page that says what it showed is never sent more than three frames past it,
// and a camera message starts the frame that shows it instead of waiting for the next tick.

import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { readFrameMeta, type FrameMeta } from '../common/frame-meta.ts';
import { waitFor } from '../tests/helpers.ts';
import type { Renderer } from './renderer.ts';
import { createFrameStream, type FrameStream } from './stream.ts';

const SIZE = 16;
const renderer: Renderer = { size: SIZE, readFrame: () => Buffer.alloc(SIZE * SIZE * 4, 128), destroy: () => {} };

interface Client {
  ws: WebSocket;
  frames: FrameMeta[];
  /** When each frame arrived (performance.now()). */
  arrivals: number[];
  texts: Record<string, unknown>[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A frame stream at `fps` behind a WebSocket server on 127.0.0.1, and one client on it. */
async function streaming(fps: number): Promise<{ stream: FrameStream; client: Client }> {
  const stream = createFrameStream({ id: 'test', renderer, fps, quality: 50, spin: 1, log: () => {} });
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (ws) => {
    stream.start(ws, null).catch(() => {});
    ws.on('close', () => stream.end(ws));
  });
  const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const client: Client = { ws, frames: [], arrivals: [], texts: [] };
  ws.on('message', (data, isBinary) => {
    if (!isBinary) return void client.texts.push(JSON.parse(data.toString()));
    client.frames.push(readFrameMeta(new Uint8Array(data as Buffer))!);
    client.arrivals.push(performance.now());
  });
  await new Promise((resolve) => ws.once('open', resolve));
  cleanups.push(async () => {
    ws.close();
    stream.stop();
    await new Promise((resolve) => server.close(resolve));
  });
  return { stream, client };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('frame stream', () => {
  test('frames go out in the order drawn, numbered from 0, while each is encoded as the next is drawn', async () => {
    const { client } = await streaming(200);
    await waitFor('30 frames', () => client.frames.length >= 30);
    assert.deepEqual(client.frames.slice(0, 30).map((f) => f.seq), Array.from({ length: 30 }, (_, i) => i));
  });

  test('a page that says what it showed is sent at most three frames past it; saying more lets more come', async () => {
    const { client, stream } = await streaming(200);
    await waitFor('the first frame', () => client.frames.length >= 1);
    client.ws.send(JSON.stringify({ type: 'shown', seq: 0 }));
    // What was sent before the page's word arrived is on its way; after that, nothing more.
    await sleep(100);
    const sent = client.frames.length;
    await sleep(300);
    // At 200 fps, 300 ms would be about 60 frames without the page's word.
    assert.equal(client.frames.length, sent, 'no frame while the page shows none of those sent');
    assert.ok(stream.stats().framesSkipped > 0, 'the frames not drawn are counted as skipped');
    const last = client.frames.at(-1)!.seq;
    client.ws.send(JSON.stringify({ type: 'shown', seq: last }));
    await waitFor('frames past the newly shown one', () => client.frames.at(-1)!.seq >= last + 3);
    await sleep(100);
    assert.equal(client.frames.at(-1)!.seq, last + 3, 'and again no more than three past it');
  });

  test('a page that shows every frame at once still gets the target rate, not more', async () => {
    const { client } = await streaming(20);
    client.ws.on('message', (data, isBinary) => {
      if (isBinary) client.ws.send(JSON.stringify({ type: 'shown', seq: readFrameMeta(new Uint8Array(data as Buffer))!.seq }));
    });
    await waitFor('the first frame', () => client.frames.length >= 1);
    const before = client.frames.length;
    await sleep(1000);
    const frames = client.frames.length - before;
    // Woken by every acknowledgement, the loop ran at twice its rate (40 here).
    assert.ok(frames >= 14 && frames <= 26, `${frames} frames in a second at 20 fps`);
  });

  test('a page silent about what it showed for a second is sent frames again', async () => {
    const { client } = await streaming(50);
    await waitFor('the first frame', () => client.frames.length >= 1);
    client.ws.send(JSON.stringify({ type: 'shown', seq: 0 }));
    await sleep(300);
    const held = client.frames.length;
    await waitFor('frames again after the page fell silent', () => client.frames.length >= held + 5, 3000);
  });

  test('a page that never says is paced by the frame rate alone', async () => {
    const { client } = await streaming(100);
    await sleep(500);
    assert.ok(client.frames.length >= 10, `${client.frames.length} frames in 500 ms at 100 fps`);
  });

  test('a shown frame that was never sent is an error naming seq, and changes nothing', async () => {
    const { client } = await streaming(50);
    await waitFor('a frame', () => client.frames.length >= 1);
    client.ws.send(JSON.stringify({ type: 'shown', seq: 1_000_000 }));
    const error = await waitFor('the error', () => client.texts.find((t) => t.type === 'error'));
    assert.equal(error.field, 'seq');
    assert.match(String(error.error), /no frame 1000000 was sent/);
    const count = client.frames.length;
    await waitFor('frames still coming', () => client.frames.length >= count + 3);
  });

  test("a camera message starts the frame that shows it instead of waiting for the next tick", async () => {
    // One frame a second: without the early start, the frame showing an input sent just after a
    // frame arrives comes a whole second later; with it, half a second after that frame at most.
    const { client } = await streaming(1);
    await waitFor('the first frame', () => client.frames.length >= 1, 5000);
    const sentAt = performance.now();
    client.ws.send(JSON.stringify({ type: 'camera', seq: 0, yaw: 1, pitch: 0.2, distance: 5 }));
    await waitFor('the frame showing it', () => client.frames.some((f) => f.inputSeq === 0), 5000);
    const shownAfter = client.arrivals[client.frames.findIndex((f) => f.inputSeq === 0)] - sentAt;
    assert.ok(shownAfter < 800, `the input showed ${Math.round(shownAfter)} ms after it was sent, at 1 fps`);
  });
});
