// The one client slot's rules, with stand-ins for the sockets and the stream: one claim at a time,
// a socket attached only to a claim, and the slot free again however its client goes.

import { describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { HANDSHAKE_MS, createClientSlot } from './slot.ts';
import type { Admitted } from './tickets.ts';

class FakeWebSocket extends EventEmitter {
  closes: [number, string][] = [];
  close(code: number, reason: string): void {
    this.closes.push([code, reason]);
  }
}

function setup() {
  const events: string[] = [];
  const told: Admitted[] = [];
  let failStream: (error: Error) => void = () => {};
  const slot = createClientSlot({
    stream: {
      start: (_ws, session) => {
        events.push(`start ${session}`);
        return new Promise<void>((_resolve, reject) => (failStream = reject));
      },
      end: () => events.push('end'),
    },
    onClient: (event, client) => {
      events.push(event);
      told.push(client);
    },
    log: (message) => events.push(`log ${message}`),
  });
  const raw = new EventEmitter();
  const ws = new FakeWebSocket();
  const socket = raw as unknown as Duplex;
  const asWebSocket = ws as unknown as WebSocket;
  /** Claims the slot and completes the handshake for `ws`. */
  const hold = (session: string | null = 'page-1') => {
    assert.equal(slot.claim(), true);
    slot.attach(socket, { jti: 'jti-1', session }, (attach) => attach(asWebSocket));
  };
  return { slot, events, told, raw, ws, socket, asWebSocket, hold, failStream: (error: Error) => failStream(error) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('client slot', () => {
  test('a second claim is refused while the slot is claimed, and while a client holds it', () => {
    const claimed = setup();
    assert.equal(claimed.slot.claim(), true);
    assert.equal(claimed.slot.claim(), false, 'claimed, handshake under way');
    const held = setup();
    held.hold();
    assert.equal(held.slot.claim(), false, 'held by a client');
  });

  test('a held slot starts the stream with the session, reports the client with its ticket id, and is free again when it closes', () => {
    const { slot, events, told, ws, hold } = setup();
    hold('page-1');
    assert.deepEqual(events, ['connected', 'start page-1']);
    ws.emit('close', 1000, Buffer.from(''));
    assert.deepEqual(events, ['connected', 'start page-1', 'end', 'gone']);
    assert.deepEqual(told, [{ jti: 'jti-1', session: 'page-1' }, { jti: 'jti-1', session: 'page-1' }], 'both reports say which ticket');
    assert.equal(slot.claim(), true, 'a released slot can be claimed again');
  });

  test('a socket error and the close after it release the slot once', () => {
    const { slot, events, ws, hold } = setup();
    hold();
    ws.emit('error', new Error('reset'));
    ws.emit('close', 1006, Buffer.from(''));
    assert.deepEqual(events.filter((e) => e === 'gone' || e === 'end'), ['end', 'gone']);
    assert.equal(slot.claim(), true);
  });

  test('a handshake that dies before completing gives the slot back, with no client reported', () => {
    const { slot, events, raw, socket } = setup();
    assert.equal(slot.claim(), true);
    slot.attach(socket, { jti: 'jti-1', session: null }, () => {});
    assert.equal(slot.claim(), false, 'held while the handshake is under way');
    raw.emit('close');
    assert.deepEqual(events, []);
    assert.equal(slot.claim(), true);
  });

  test('the upgrade socket closing after the handshake does not free a slot another client then claims', () => {
    const { slot, raw, ws, hold } = setup();
    hold();
    ws.emit('close', 1000, Buffer.from(''));
    assert.equal(slot.claim(), true, 'the next upgrade claims it');
    raw.emit('close');
    assert.equal(slot.claim(), false, 'still claimed by the next upgrade');
  });

  test('a frame loop that fails closes the client with 1001 and frees the slot at once', async () => {
    const { slot, events, ws, hold, failStream } = setup();
    hold();
    failStream(new Error('GL context lost'));
    await settle();
    assert.deepEqual(ws.closes, [[1001, 'render server failed to draw']]);
    assert.deepEqual(events, ['connected', 'start page-1', 'log frame loop failed: GL context lost', 'end', 'gone']);
    assert.equal(slot.claim(), true, 'before the client has finished closing');
    ws.emit('close', 1001, Buffer.from(''));
    assert.equal(events.filter((e) => e === 'gone').length, 1);
  });

  test('a socket is attached only to a claimed slot', () => {
    const { slot, socket, asWebSocket, hold } = setup();
    assert.throws(() => slot.attach(socket, { jti: 'jti-1', session: null }, (attach) => attach(asWebSocket)), /must be claimed/);
    hold();
    assert.throws(() => slot.attach(socket, { jti: 'jti-1', session: null }, (attach) => attach(asWebSocket)), /must be claimed/);
  });

  test('closeClient closes the client holding the slot with the code and reason, and nothing else', () => {
    const { slot, ws, socket, asWebSocket } = setup();
    slot.closeClient(1001, 'render server shutting down');
    assert.equal(slot.claim(), true);
    slot.closeClient(1001, 'render server shutting down');
    assert.deepEqual(ws.closes, [], 'free, then claimed: no client to close');
    slot.attach(socket, { jti: 'jti-1', session: null }, (attach) => attach(asWebSocket));
    slot.closeClient(1001, 'render server shutting down');
    assert.deepEqual(ws.closes, [[1001, 'render server shutting down']]);
  });

  test('a socket already gone when it is attached (it closed while its ticket was checked) frees the slot', () => {
    const { slot, events, raw, socket } = setup();
    assert.equal(slot.claim(), true);
    (raw as EventEmitter & { destroyed: boolean }).destroyed = true;
    let handshakes = 0;
    slot.attach(socket, { jti: 'jti-1', session: null }, () => handshakes++);
    assert.equal(handshakes, 0);
    assert.deepEqual(events, []);
    assert.equal(slot.claim(), true);
  });

  test('a claim whose handshake never completes lapses; a handshake completing after that is closed, not streamed', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const { slot, events, ws, socket, asWebSocket } = setup();
      assert.equal(slot.claim(), true);
      let complete: (ws: WebSocket) => void = () => {};
      slot.attach(socket, { jti: 'jti-1', session: null }, (attach) => (complete = attach));
      mock.timers.tick(HANDSHAKE_MS - 1);
      assert.equal(slot.claim(), false, 'still claimed just before the limit');
      mock.timers.tick(1);
      assert.equal(slot.claim(), true, 'the lapsed claim freed the slot, and the next upgrade took it');
      complete(asWebSocket);
      assert.deepEqual(ws.closes, [[1013, 'the handshake took too long: ask the dispatcher again']]);
      assert.deepEqual(events, []);
    } finally {
      mock.timers.reset();
    }
  });
});
