// client/session.js on its own: the page's script, as it is, run in a node:vm context standing in
// for the page (client/protocol.js loaded first, as index.html does) with fake WebSockets, timers,
// clock and storage. What it asks the dispatcher, what it does with each answer, and when it tries
// again: every delay is read off the fake timers, so nothing here sleeps.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { withFrameMeta } from '../common/frame-meta.ts';
import { ROOT } from './helpers.ts';

const PROTOCOL_JS = readFileSync(join(ROOT, 'client', 'protocol.js'), 'utf8');
const SESSION_JS = readFileSync(join(ROOT, 'client', 'session.js'), 'utf8');
const DISPATCHER = 'ws://dispatcher.test:18000/stream';
const SERVER = 'ws://render.test:16000/stream';
/** What session.js waits after consecutive failures (its RETRY_MS): at once, then growing. */
const SCHEDULE = [0, 500, 1000, 2000, 4000];

interface Camera { yaw: number; pitch: number; distance: number }
interface Session { session: string; start(wait?: boolean): void; sendCamera(camera: Camera): number }
interface StateCall { name: string; message: string; details?: Record<string, unknown> }
interface Timer { id: number; at: number; delay: number; run: () => void }

/** Values made inside the context have its prototypes; this makes them comparable here. */
const plain = <T>(value: T): T => (value === undefined ? value : JSON.parse(JSON.stringify(value)));

class FakeSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readyState = FakeSocket.CONNECTING;
  binaryType = 'blob';
  sent: string[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((event: object) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string; wasClean: boolean }) => void) | null = null;

  constructor(readonly url: string, created: FakeSocket[]) {
    created.push(this);
  }
  send(data: string): void {
    assert.equal(this.readyState, FakeSocket.OPEN, 'send on a socket that is not open');
    this.sent.push(data);
  }
  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = FakeSocket.CLOSED;
  }
  // The other side:
  open(): void {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.({});
  }
  receive(data: string | ArrayBuffer | object): void {
    this.onmessage?.({ data: typeof data === 'object' && !(data instanceof ArrayBuffer) ? JSON.stringify(data) : data });
  }
  /** The connection ends without the page asking: refused, lost (1006), or closed by the peer. */
  lose(code = 1006, reason = ''): void {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }
  /** The JSON messages the page sent. */
  messages(): Record<string, unknown>[] {
    return this.sent.map((s) => JSON.parse(s));
  }
}

/** One page: a fresh context with session.js loaded and a session created, not started. */
class Page {
  now = 1_700_000_000_000;
  timers: Timer[] = [];
  sockets: FakeSocket[] = [];
  states: StateCall[] = [];
  hellos: unknown[] = [];
  frames: { buffer: unknown; meta: unknown }[] = [];
  pongs: number[] = [];
  listeners: Record<string, (() => void)[]> = {};
  session: Session;
  private nextTimer = 1;
  private nextId = 1;

  constructor(storage: { getItem(key: string): string | null; setItem(key: string, value: string): void } = memoryStorage(), dispatcherUrl = DISPATCHER) {
    const sockets = this.sockets;
    const realm = { SyntaxError };
    const WebSocket = class extends FakeSocket {
      constructor(url: string) {
        // As Chromium does, with an error of the page's own realm.
        if (!URL.canParse(url)) throw new realm.SyntaxError(`Failed to construct 'WebSocket': The URL '${url}' is invalid.`);
        super(url, sockets);
      }
    };
    const context = vm.createContext({
      WebSocket,
      URL,
      TextDecoder,
      sessionStorage: storage,
      crypto: { randomUUID: () => `00000000-0000-4000-8000-${String(this.nextId++).padStart(12, '0')}` },
      setTimeout: (run: () => void, delay = 0) => {
        const timer = { id: this.nextTimer++, at: this.now + delay, delay, run };
        this.timers.push(timer);
        return timer.id;
      },
      clearTimeout: (id: number) => {
        this.timers = this.timers.filter((t) => t.id !== id);
      },
      addEventListener: (type: string, listener: () => void) => {
        (this.listeners[type] ??= []).push(listener);
      },
    });
    vm.runInContext('var window = globalThis;', context);
    realm.SyntaxError = vm.runInContext('SyntaxError', context);
    (vm.runInContext('Date', context) as DateConstructor).now = () => this.now;
    vm.runInContext(PROTOCOL_JS, context, { filename: 'client/protocol.js' });
    vm.runInContext(SESSION_JS, context, { filename: 'client/session.js' });
    const create = (context as { RenderDispatchSession: (url: string, on: object) => Session }).RenderDispatchSession;
    this.session = create(dispatcherUrl, {
      state: (name: string, message: string, details?: Record<string, unknown>) => this.states.push(plain({ name, message, details })),
      hello: (hello: unknown) => this.hellos.push(plain(hello)),
      frame: (buffer: unknown, meta: unknown) => this.frames.push({ buffer, meta: plain(meta) }),
      pong: (offsetMs: number) => this.pongs.push(offsetMs),
    });
  }

  get last(): FakeSocket {
    assert.ok(this.sockets.length, 'no socket opened');
    return this.sockets.at(-1)!;
  }
  get state(): StateCall {
    return this.states.at(-1)!;
  }
  /** The delays of the timers not run yet. */
  pending(): number[] {
    return this.timers.map((t) => t.delay);
  }
  /** Moves the clock on by ms, running each timer that falls due, in order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = due.at;
      due.run();
    }
    this.now = until;
  }
  /** Runs the one pending timer, which must have this delay; returns the socket it opened. */
  retryAfter(delay: number): FakeSocket {
    assert.deepEqual(this.pending(), [delay], 'one retry pending, with this delay');
    const before = this.sockets.length;
    this.advance(delay);
    assert.equal(this.sockets.length, before + 1, 'the retry opened a socket');
    return this.last;
  }
  /** The dispatcher socket just opened is answered with a server; returns the render socket. */
  handOut(dispatcher = this.last, url = `${SERVER}?ticket=t0k3n`): FakeSocket {
    assert.equal(dispatcher.url, DISPATCHER);
    dispatcher.open();
    dispatcher.receive({ type: 'server_url', url });
    assert.equal(this.last.url, url);
    return this.last;
  }
}

function memoryStorage() {
  const items = new Map<string, string>();
  return { getItem: (key: string) => items.get(key) ?? null, setItem: (key: string, value: string) => void items.set(key, value) };
}

describe('client/session.js: asking the dispatcher', () => {
  test('sends get_server_url as JSON with a request id, the page session and the wait flag', () => {
    const page = new Page();
    page.session.start(true);
    assert.deepEqual(page.state, { name: 'connecting', message: 'Connecting to the dispatcher…' });
    const ws = page.last;
    assert.equal(ws.url, DISPATCHER);
    assert.deepEqual(ws.sent, [], 'nothing sent before the socket opens');
    ws.open();
    const [request] = ws.messages();
    assert.deepEqual(Object.keys(request).sort(), ['requestId', 'session', 'type', 'wait']);
    assert.equal(request.type, 'get_server_url');
    assert.equal(request.wait, true);
    assert.equal(request.session, page.session.session);
    assert.match(String(request.requestId), /^[A-Za-z0-9_-]+$/);
    assert.notEqual(request.requestId, request.session);

    const other = new Page();
    other.session.start(false);
    other.last.open();
    assert.equal(other.last.messages()[0].wait, false);
  });

  test('keeps the session in sessionStorage, so a reload asks with the same one', () => {
    const storage = memoryStorage();
    const first = new Page(storage);
    const reloaded = new Page(storage);
    assert.match(first.session.session, /^[A-Za-z0-9_-]{8,64}$/);
    assert.equal(reloaded.session.session, first.session.session);
    assert.equal(storage.getItem('render-dispatch.session'), first.session.session);

    const refusing = { getItem: (): string | null => { throw new Error('SecurityError'); }, setItem: () => { throw new Error('SecurityError'); } };
    const sandboxed = new Page(refusing);
    assert.match(sandboxed.session.session, /^[A-Za-z0-9_-]{8,64}$/, 'a session for this page view only');
  });

  test('a dispatcher that cannot be reached is asked again at once, then after 500, 1000, 2000 and 4000 ms; then the page gives up', () => {
    const page = new Page();
    page.session.start(false);
    let ws = page.last;
    const delays: number[] = [];
    for (;;) {
      ws.lose(1006);
      if (!page.timers.length) break;
      assert.deepEqual(page.state, { name: 'reconnecting', message: 'Cannot reach the dispatcher yet; trying again…' });
      delays.push(page.timers[0].delay);
      ws = page.retryAfter(page.timers[0].delay);
      assert.equal(ws.url, DISPATCHER);
    }
    assert.deepEqual(delays, SCHEDULE);
    assert.deepEqual(page.state, { name: 'disconnected', message: `Could not reach the dispatcher at ${DISPATCHER}.`, details: { canRetry: true } });
    assert.equal(page.sockets.length, SCHEDULE.length + 1);

    // The user's "Try again" starts the count over.
    page.session.start(false);
    page.last.lose(1006);
    page.retryAfter(0);
  });

  test('a dispatcher that drops the page before answering is asked again at once, for the same grant (same request id)', () => {
    const page = new Page();
    page.session.start(false);
    const first = page.last;
    first.open();
    first.lose(1001, 'dispatcher shutting down'); // a worker stopping: its sibling on the port answers
    assert.deepEqual(page.state, { name: 'reconnecting', message: 'Cannot reach the dispatcher yet; trying again…' });
    const second = page.retryAfter(0);
    second.open();
    assert.deepEqual(second.messages(), first.messages());
    second.lose(1006);
    page.retryAfter(500).open();
    assert.deepEqual(page.last.messages(), first.messages());
  });

  test('a page waiting in line that loses the dispatcher asks again at once, still waiting, with the same request id', () => {
    const page = new Page();
    page.session.start(true);
    const first = page.last;
    first.open();
    first.receive({ type: 'queued', position: 3, size: 5, estimateMs: 40_000 });
    assert.deepEqual(page.state, {
      name: 'waiting',
      message: 'Waiting for a render server: 2 ahead of you (about 40 s).',
      details: { type: 'queued', position: 3, size: 5, estimateMs: 40_000 },
    });
    first.receive({ type: 'queued', position: 1, size: 4 });
    assert.equal(page.state.message, 'Waiting for a render server: you are next.');
    assert.deepEqual(page.timers, [], 'nothing scheduled while waiting');

    first.lose(1001, 'dispatcher shutting down');
    assert.deepEqual(page.state, { name: 'reconnecting', message: 'Lost the dispatcher while waiting; trying again…' });
    const second = page.retryAfter(0);
    second.open();
    assert.deepEqual(second.messages(), first.messages(), 'the same request, id and all');
    assert.equal(second.messages()[0].wait, true);
  });

  test('a server URL: the dispatcher socket is closed and the page connects to the server, showing it without its ticket', () => {
    const page = new Page();
    page.session.start(false);
    const dispatcher = page.last;
    const render = page.handOut(dispatcher, `${SERVER}?ticket=abc.def.ghi`);
    assert.deepEqual(dispatcher.closedWith, { code: undefined, reason: undefined });
    assert.equal(dispatcher.onclose, null, 'its close is not taken for a lost dispatcher');
    assert.deepEqual(page.state, { name: 'connecting', message: 'Connecting to the render server…', details: { server: SERVER } });
    assert.equal(render.binaryType, 'arraybuffer');
    render.open();
    assert.deepEqual(render.messages(), [{ type: 'ping', t: page.now }]);
    assert.deepEqual(page.timers, []);
  });

  test('none: says so, offers to wait only to a page that was not waiting, and does not ask again by itself', () => {
    for (const wait of [false, true]) {
      const page = new Page();
      page.session.start(wait);
      page.last.open();
      page.last.receive({ type: 'none', reason: 'no render server is free' });
      assert.deepEqual(page.state, { name: 'none', message: 'No render server available.', details: { reason: 'no render server is free', canWait: !wait } });
      assert.notEqual(page.last.closedWith, null);
      assert.deepEqual(page.timers, []);
      assert.equal(page.sockets.length, 1);
    }
  });

  test('too many requests: waits the retryMs the dispatcher gave, then asks again with the same request id', () => {
    const page = new Page();
    page.session.start(true);
    const first = page.last;
    first.open();
    first.receive({ type: 'error', error: 'too many requests from your address (at most 20 a second): try again in 50ms', retryMs: 50 });
    assert.deepEqual(page.state, { name: 'reconnecting', message: 'The dispatcher is busy; asking again shortly…' });
    assert.notEqual(first.closedWith, null);
    assert.deepEqual(page.pending(), [50]);
    page.advance(49);
    assert.equal(page.sockets.length, 1, 'not before retryMs');
    page.advance(1);
    const second = page.last;
    assert.notEqual(second, first);
    second.open();
    assert.deepEqual(second.messages(), first.messages());
  });

  test('an error without retryMs, or an answer that is not one, is shown and not retried', () => {
    const page = new Page();
    page.session.start(false);
    page.last.open();
    page.last.receive({ type: 'error', error: 'session must be a string of 8 to 64 characters', field: 'session' });
    assert.deepEqual(page.state, { name: 'error', message: 'The dispatcher said: session must be a string of 8 to 64 characters' });
    assert.deepEqual(page.timers, []);

    const garbled = new Page();
    garbled.session.start(false);
    garbled.last.open();
    garbled.last.receive('ws://looks-like-the-plain-answer:1/stream');
    assert.deepEqual(garbled.state, { name: 'error', message: 'The dispatcher sent something unexpected: message is not valid JSON' });
    garbled.last.receive({ type: 'queued', position: 0, size: 1 });
    assert.equal(garbled.state.name, 'error');
    assert.match(garbled.state.message, /queued\.position must be an integer >= 1/);
    assert.deepEqual(garbled.timers, []);
  });

  test('a dispatcher URL that is not one is an error, not a retry loop', () => {
    const page = new Page(memoryStorage(), 'not a url');
    page.session.start(false);
    assert.deepEqual(page.state, {
      name: 'error',
      message: "Bad dispatcher URL not a url: Failed to construct 'WebSocket': The URL 'not a url' is invalid.",
    });
    assert.deepEqual(page.sockets, []);
    assert.deepEqual(page.timers, []);
  });
});

describe('client/session.js: streaming from the render server', () => {
  test('hands on hello, frames with their metadata, the clock offset from pong, and errors as notices', () => {
    const page = new Page();
    page.session.start(false);
    const render = page.handOut();
    const pingAt = page.now;
    render.open();
    const hello = { type: 'hello', id: 'r1', size: 128, targetFps: 30, camera: { yaw: 1, pitch: 0.5, distance: 6 } };
    render.receive(hello);
    assert.deepEqual(page.hellos, [hello]);

    page.advance(100); // the ping's round trip
    render.receive({ type: 'pong', t: pingAt, serverTime: pingAt + 5050 });
    assert.deepEqual(page.pongs, [5000], 'the server clock minus ours, taking the reply as sent halfway');

    const meta = { seq: 7, capturedAt: pingAt, inputSeq: 2, fps: 30 };
    const jpeg = withFrameMeta(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), meta);
    const buffer = jpeg.buffer.slice(jpeg.byteOffset, jpeg.byteOffset + jpeg.byteLength);
    render.receive(buffer);
    const bare = new Uint8Array([0xff, 0xd8, 0xff, 0xd9]).buffer;
    render.receive(bare);
    assert.equal(page.frames.length, 2);
    assert.equal(page.frames[0].buffer, buffer, 'the bytes as received');
    assert.deepEqual(page.frames[0].meta, meta);
    assert.equal(page.frames[1].meta, null, 'a frame without metadata');

    render.receive({ type: 'error', error: 'camera.pitch must be a finite number from -1.4 to 1.4' });
    assert.deepEqual(page.state, { name: 'notice', message: 'The render server said: camera.pitch must be a finite number from -1.4 to 1.4' });
    const seen = page.states.length;
    render.receive('{"type":"mystery"}');
    assert.equal(page.states.length, seen, 'a message it does not know is ignored');
  });

  test('sendCamera: -1 until the server socket is open, then seq 1, 2, …, starting again on the next server', () => {
    const page = new Page();
    const camera = { yaw: 0.25, pitch: -0.5, distance: 5 };
    assert.equal(page.session.sendCamera(camera), -1);
    page.session.start(false);
    const render = page.handOut();
    assert.equal(page.session.sendCamera(camera), -1, 'not while connecting');
    render.open();
    assert.equal(page.session.sendCamera(camera), 1);
    assert.equal(page.session.sendCamera({ ...camera, yaw: 1 }), 2);
    assert.deepEqual(render.messages().slice(1), [
      { type: 'camera', seq: 1, ...camera },
      { type: 'camera', seq: 2, ...camera, yaw: 1 },
    ]);

    render.lose(1006);
    assert.equal(page.session.sendCamera(camera), -1, 'not while finding another server');
    const next = page.handOut(page.retryAfter(page.pending()[0]));
    next.open();
    assert.equal(page.session.sendCamera(camera), 1);
  });

  test('a server that goes away after a stable stream: says why, and asks the dispatcher again at once, waiting, with a new request id', () => {
    const cases: [number, string, string][] = [
      [1001, 'render server shutting down', 'it is shutting down (render server shutting down)'],
      [1006, '', 'the connection was lost'],
      [4000, 'replaced by a newer connection', 'replaced by a newer connection'],
      [4999, '', 'it closed the connection (4999)'],
    ];
    for (const [code, reason, said] of cases) {
      const page = new Page();
      page.session.start(false);
      const firstAsk = page.last;
      page.handOut(firstAsk).open();
      page.advance(60_000);
      page.last.lose(code, reason);
      assert.deepEqual(page.state, { name: 'reconnecting', message: `The render server went away: ${said}. Finding you another…` });
      const ask = page.retryAfter(0);
      assert.equal(ask.url, DISPATCHER);
      ask.open();
      const [request] = ask.messages();
      assert.equal(request.wait, true, 'a page that had a server waits for the next one');
      assert.notEqual(request.requestId, firstAsk.messages()[0].requestId);
    }
  });

  test('servers lost in quick succession: at once, then 500, 1000, 2000, 4000 ms, 4000 after that; a stream of 10 s starts the count again', () => {
    const page = new Page();
    page.session.start(false);
    let ask = page.last;
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      page.handOut(ask).open();
      page.advance(2000); // streams 2 s
      page.last.lose(1006);
      delays.push(page.pending()[0]);
      ask = page.retryAfter(page.pending()[0]);
    }
    assert.deepEqual(delays, [...SCHEDULE, 4000, 4000]);

    page.handOut(ask).open();
    page.advance(10_001);
    page.last.lose(1006);
    ask = page.retryAfter(0);
    page.handOut(ask).open();
    page.last.lose(1006);
    page.retryAfter(500);
  });

  test('a server that refuses the page at the door is asked for again, backing off like any other failure', () => {
    const page = new Page();
    page.session.start(false);
    let ask = page.last;
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      page.handOut(ask).lose(1006); // closed before it opened: a ticket refused, say
      assert.deepEqual(page.state, { name: 'reconnecting', message: 'The render server would not take us; asking for another…' });
      delays.push(page.pending()[0]);
      ask = page.retryAfter(page.pending()[0]);
    }
    assert.deepEqual(delays, [...SCHEDULE, 4000]);
  });

  test('leaving the page closes the stream with 1000 and asks for nothing more', () => {
    const page = new Page();
    page.session.start(false);
    const render = page.handOut();
    render.open();
    const statesBefore = page.states.length;
    for (const listener of page.listeners.pagehide ?? []) listener();
    assert.deepEqual(render.closedWith, { code: 1000, reason: 'page closed' });
    render.lose(1000, 'page closed');
    assert.deepEqual(page.timers, []);
    assert.equal(page.states.length, statesBefore);

    // Nor while still talking to the dispatcher.
    const asking = new Page();
    asking.session.start(true);
    for (const listener of asking.listeners.pagehide ?? []) listener();
    asking.last.lose(1001);
    assert.deepEqual(asking.timers, []);
  });
});
