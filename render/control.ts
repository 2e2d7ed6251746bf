// The render server's side of the control channel: it registers with the dispatcher, heartbeats
// at the interval the dispatcher gives, reports its client, and when the dispatcher goes away it
// keeps trying, with capped backoff, to register again by itself: with several dispatchers (on one
// shared store) it tries the next one in the list, so its lease carries on through another
// dispatcher within the TTL and its client never notices. Each registration brings a new
// ticket key; the one before stays good for one claim period, so that a page handed a URL just
// before a reconnection still gets in.

import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import type { LogFields } from '../common/node/log.ts';
import {
  PATHS,
  encode,
  parseDispatcherMessage,
  type ClientState,
  type RenderToDispatcher,
} from '../common/protocol.ts';

export interface Health {
  fps: number;
  frameMs: number;
  client: ClientState;
}

/** The keys tickets may be signed with now, and how long a ticket may live. */
export interface Keyring {
  keys: string[];
  claimMs: number;
}

export interface ControlOptions {
  /** The dispatchers' base URLs, e.g. ws://127.0.0.1:18000: one connection at a time, the next when it goes. */
  dispatchers: string[];
  id: string;
  /** The URL browsers reach this server at. */
  publicUrl: string;
  targetFps: number;
  /** Shared secret the dispatcher asks of render servers. */
  secret: string;
  /** Read when it registers and at every heartbeat, from start() on: it must answer before any client or frame. */
  health(): Health;
  /** A line with the ids it is about (the dispatcher's URL), for the JSON logs. */
  log(message: string, fields?: LogFields): void;
  now?: () => number;
}

const BACKOFF_FIRST_MS = 100;
// Capped low so that a restarted dispatcher sees every render server again within about a second.
const BACKOFF_MAX_MS = 1000;

export function createControlClient(options: ControlOptions) {
  const controlUrl = (base: string) => `${base.replace(/\/$/, '')}${PATHS.control}`;
  // The dispatcher connected to, or tried next.
  let current = 0;
  const now = options.now ?? Date.now;
  // Proves to the dispatcher that a later registration of this id is this process again.
  const instance = randomBytes(32).toString('base64url');
  let socket: WebSocket | null = null;
  let key: string | null = null;
  let previous: { key: string; until: number } | null = null;
  let claimMs = 0;
  let heartbeat: NodeJS.Timeout | null = null;
  let retry: NodeJS.Timeout | null = null;
  let attempt = 0;
  let stopped = true;
  let registeredOnce = false;
  // The socket whose registration is current: a key outlives its connection (tickets signed with
  // it still pass), a registration does not.
  let registeredOn: WebSocket | null = null;

  const send = (message: RenderToDispatcher) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(encode(message));
  };

  function connect(): void {
    retry = null;
    const dispatcher = options.dispatchers[current];
    const ws = new WebSocket(controlUrl(dispatcher), { headers: { authorization: `Bearer ${options.secret}` } });
    socket = ws;
    ws.on('open', () => {
      attempt = 0;
      send({ type: 'register', id: options.id, instance, url: options.publicUrl, client: options.health().client, targetFps: options.targetFps });
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return options.log('dispatcher sent a binary control message; ignored');
      const parsed = parseDispatcherMessage(data.toString());
      if (!parsed.ok) return options.log(`bad message from dispatcher: ${parsed.error}`);
      const msg = parsed.value;
      if (msg.type === 'registered') {
        if (key && key !== msg.key) previous = { key, until: now() + msg.claimMs };
        key = msg.key;
        claimMs = msg.claimMs;
        registeredOn = ws;
        if (heartbeat) clearInterval(heartbeat);
        heartbeat = setInterval(() => send({ type: 'heartbeat', ...options.health() }), msg.heartbeatMs);
        options.log(`${registeredOnce ? 'registered again' : 'registered'} with ${dispatcher} as ${msg.id} (heartbeat ${msg.heartbeatMs}ms, ttl ${msg.ttlMs}ms)`, {
          dispatcher,
          heartbeatMs: msg.heartbeatMs,
          ttlMs: msg.ttlMs,
        });
        registeredOnce = true;
      } else if (msg.type === 'error') {
        options.log(`dispatcher refused a message: ${msg.error}`);
      }
    });
    ws.on('unexpected-response', (_request, response) => {
      // The dispatcher refused the upgrade (a wrong secret): say why, once per refusal streak.
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk));
      response.on('end', () => {
        if (attempt === 0) options.log(`dispatcher refused registration: ${response.statusCode} ${body.trim()}`, { dispatcher, status: response.statusCode });
        ws.terminate();
      });
    });
    ws.on('error', () => {
      // 'close' follows and schedules the retry; a refused connection is the normal case while
      // the dispatcher is down, so it is not worth a line per attempt.
    });
    ws.on('close', (code, reason) => {
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = null;
      if (socket === ws) socket = null;
      if (registeredOn === ws) registeredOn = null;
      if (stopped) return;
      // Try the next dispatcher: the one that went may be down for good.
      current = (current + 1) % options.dispatchers.length;
      if (registeredOnce && attempt === 0) {
        options.log(`lost the dispatcher ${dispatcher} (${code}${reason.length ? ` ${reason}` : ''}); registering again with ${options.dispatchers[current]}`, {
          dispatcher,
          code,
          next: options.dispatchers[current],
        });
      }
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt++) * (0.8 + Math.random() * 0.4);
      retry = setTimeout(connect, delay);
    });
  }

  return {
    start(): void {
      if (!stopped) return;
      stopped = false;
      connect();
    },
    /** The keys a ticket may be signed with (the newest first) and the longest a ticket may live; null before the first registration. */
    keyring(): Keyring | null {
      if (!key) return null;
      if (previous && previous.until <= now()) previous = null;
      return { keys: previous ? [key, previous.key] : [key], claimMs };
    },
    /** Whether a dispatcher has this server registered now: its control connection is open and answered. */
    registered: (): boolean => registeredOn !== null && registeredOn.readyState === WebSocket.OPEN,
    reportClient(event: 'connected' | 'gone'): void {
      send({ type: 'client', event });
    },
    /** The dispatcher it is connected to, or will try next. */
    dispatcher: (): string => options.dispatchers[current],
    /** Asks the dispatcher to hand this server out no more. */
    drain(): void {
      send({ type: 'drain' });
    },
    async stop(): Promise<void> {
      stopped = true;
      if (retry) clearTimeout(retry);
      if (heartbeat) clearInterval(heartbeat);
      const ws = socket;
      if (!ws || ws.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'render server stopping');
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000).unref();
      });
    },
  };
}

export type ControlClient = ReturnType<typeof createControlClient>;
