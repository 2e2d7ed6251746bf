// 10⁵ random and mutated messages over real sockets: 40,000 to the dispatcher's /stream, 40,000
// to its control channel, 20,000 to a render server's client socket. No process dies; every
// message the protocol's parser refuses is answered with an error (or, for what no JSON reader
// takes, a documented close code); and the one real render server's lease, key and client slot
// come through untouched: a page streams from it afterwards.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type WebSocket from 'ws';
import { CLOSE, parseBrowserToRender, parseRenderMessage, parseStreamRequest } from '../common/protocol.ts';
import { CONTROL_TEMPLATES, RENDER_TEMPLATES, STREAM_TEMPLATES, mutated, random, type Random } from './fuzz-messages.ts';
import { askDispatcher, connectFrames, freePort, openSocket, operatorHeaders, servers, startDispatcher, startRender, waitFor, type Proc } from './helpers.ts';

const SEED = 20261123;
/** Messages in flight on one socket before waiting for their answers. */
const WINDOW = 200;

/**
 * Sends `count` messages from `make` on sockets from `open`, and checks each answer as it comes:
 * every message `expectsReply` says is refused must get exactly one answer that `isError` accepts,
 * in order. A socket the far side closes must close with one of `closes`; a new one takes over.
 */
async function barrage(options: {
  count: number;
  open(): Promise<WebSocket>;
  make(r: Random): { data: string | Buffer; refused: boolean };
  isError(reply: string): boolean;
  closes: number[];
  r: Random;
}): Promise<{ sent: number; errors: number; closes: number }> {
  let sent = 0;
  let errors = 0;
  let closes = 0;
  while (sent < options.count) {
    const ws = await options.open();
    let closed: { code: number } | null = null;
    ws.on('close', (code) => (closed = { code }));
    const replies: string[] = [];
    ws.on('message', (data, isBinary) => {
      if (!isBinary) replies.push(data.toString());
    });
    let expected = 0;
    while (sent < options.count && !closed) {
      const batch = Math.min(WINDOW, options.count - sent);
      for (let i = 0; i < batch; i++) {
        const { data, refused } = options.make(options.r);
        if (refused) expected++;
        ws.send(data);
        sent++;
      }
      await waitFor(`${expected} answers (${replies.length} so far)`, () => closed || replies.length >= expected, 20_000, 5);
    }
    if (closed) {
      closes++;
      assert.ok(options.closes.includes((closed as { code: number }).code), `closed with ${(closed as { code: number }).code}`);
    } else {
      assert.equal(replies.length, expected);
      for (const reply of replies) assert.ok(options.isError(reply), `not an error: ${reply.slice(0, 200)}`);
      errors += replies.length;
      ws.close();
    }
  }
  return { sent, errors, closes };
}

describe('10⁵ hostile messages on real sockets', () => {
  let dispatcherPort: number;
  let dispatcher: Proc;
  let render: Proc;
  let renderUrl: string;

  before(async () => {
    dispatcherPort = await freePort();
    // Tens of thousands of requests from one address: a load, so the rate limit is off here.
    dispatcher = startDispatcher(dispatcherPort, ':memory:', ['--rate-limit', '0']);
    await dispatcher.waitForOutput(/listening/);
    const renderPort = await freePort();
    render = startRender(renderPort, dispatcherPort);
    await render.waitForOutput(/registered with/, 30_000);
    renderUrl = `ws://127.0.0.1:${renderPort}/stream`;
  });
  after(async () => {
    await render?.stop();
    await dispatcher?.stop();
  });

  test('/stream: 40,000 messages, each refused one answered with an error', async () => {
    const r = random(SEED);
    const result = await barrage({
      count: 40_000,
      r,
      open: () => openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`),
      make: (rng) => {
        if (rng.next() < 0.02) return { data: Buffer.from([rng.int(256), 0, 255]), refused: true };
        const data = mutated(rng, STREAM_TEMPLATES);
        // Valid requests would each take a server or join the queue: only refused ones are sent.
        return { data: parseStreamRequest(data).ok ? `${data}x` : data, refused: true };
      },
      isError: (reply) => reply.startsWith('error: ') || JSON.parse(reply).type === 'error',
      closes: [CLOSE.tooBig],
    });
    assert.equal(result.sent, 40_000);
  });

  test('/v1/control: 40,000 messages, each refused one answered with an error, binary closed with 1003', async () => {
    const r = random(SEED + 1);
    const result = await barrage({
      count: 40_000,
      r,
      open: () => openSocket(`ws://127.0.0.1:${dispatcherPort}/v1/control`, { headers: operatorHeaders() }),
      make: (rng) => {
        if (rng.next() < 0.001) return { data: Buffer.from([1, 2, 3]), refused: false };
        const data = mutated(rng, CONTROL_TEMPLATES);
        // A valid message may register, beat or report: allowed, but its answer is not an error.
        return parseRenderMessage(data).ok ? { data: `${data} `.replace(/^/, '!'), refused: true } : { data, refused: true };
      },
      isError: (reply) => JSON.parse(reply).type === 'error',
      closes: [CLOSE.unsupportedData, CLOSE.tooBig],
    });
    assert.equal(result.sent, 40_000);
    assert.ok(result.closes > 0, 'binary frames closed some control sockets');
  });

  test('render server: 20,000 messages from its client, each refused one answered with an error', async () => {
    const r = random(SEED + 2);
    const result = await barrage({
      count: 20_000,
      r,
      open: async () => {
        const client = await connectFrames(await askDispatcher(dispatcherPort));
        // Its greeting first, so that every answer after it is one to count.
        await waitFor('the hello', () => client.texts.length > 0);
        client.ws.removeAllListeners('message');
        return client.ws;
      },
      make: (rng) => {
        if (rng.next() < 0.02) return { data: Buffer.from([9, 9]), refused: true };
        const data = mutated(rng, RENDER_TEMPLATES);
        return { data: parseBrowserToRender(data).ok ? `${data}]` : data, refused: true };
      },
      isError: (reply) => JSON.parse(reply).type === 'error',
      closes: [CLOSE.tooBig],
    });
    assert.equal(result.sent, 20_000);
  });

  test('both processes are alive and the render server is whole: its lease, its key, its client slot', async () => {
    assert.equal(dispatcher.child.exitCode, null);
    assert.equal(render.child.exitCode, null);
    await waitFor('the render server free again', async () => (await servers(dispatcherPort)).find((s) => s.url === renderUrl)?.state === 'ready');
    const page = await connectFrames(await askDispatcher(dispatcherPort));
    await waitFor('a frame', () => page.frames.length > 0);
    page.ws.close();
    assert.doesNotMatch(render.output(), /lost the dispatcher|frame loop failed/);
  });
});
