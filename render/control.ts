// The render server's side of the control channel: it registers with the dispatcher, heartbeats
// at the interval the dispatcher gives, reports its client, and when the dispatcher goes away it
// keeps trying, with capped backoff, to register again by itself.

import WebSocket from 'ws';
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

export interface ControlOptions {
  /** The dispatcher's base URL, e.g. ws://127.0.0.1:18000. */
  dispatcher: string;
  id: string;
  /** The URL browsers reach this server at. */
  publicUrl: string;
  targetFps: number;
  /** Shared secret the dispatcher asks of render servers, if it has one. */
  secret?: string | null;
  health(): Health;
  log(message: string): void;
}

const BACKOFF_FIRST_MS = 100;
// Capped low so that a restarted dispatcher sees every render server again within about a second.
const BACKOFF_MAX_MS = 1000;

export function createControlClient(options: ControlOptions) {
  const url = `${options.dispatcher.replace(/\/$/, '')}${PATHS.control}`;
  let socket: WebSocket | null = null;
  let key: string | null = null;
  let heartbeat: NodeJS.Timeout | null = null;
  let retry: NodeJS.Timeout | null = null;
  let attempt = 0;
  let stopped = true;
  let registeredOnce = false;

  const send = (message: RenderToDispatcher) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(encode(message));
  };

  function connect(): void {
    retry = null;
    const ws = new WebSocket(url, { headers: options.secret ? { authorization: `Bearer ${options.secret}` } : {} });
    socket = ws;
    ws.on('open', () => {
      attempt = 0;
      send({ type: 'register', id: options.id, url: options.publicUrl, client: options.health().client, targetFps: options.targetFps });
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return options.log('dispatcher sent a binary control message; ignored');
      const parsed = parseDispatcherMessage(data.toString());
      if (!parsed.ok) return options.log(`bad message from dispatcher: ${parsed.error}`);
      const msg = parsed.value;
      if (msg.type === 'registered') {
        key = msg.key;
        if (heartbeat) clearInterval(heartbeat);
        heartbeat = setInterval(() => send({ type: 'heartbeat', ...options.health() }), msg.heartbeatMs);
        options.log(`${registeredOnce ? 'registered again' : 'registered'} with ${options.dispatcher} as ${msg.id} (heartbeat ${msg.heartbeatMs}ms, ttl ${msg.ttlMs}ms)`);
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
        if (attempt === 0) options.log(`dispatcher refused registration: ${response.statusCode} ${body.trim()}`);
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
      if (stopped) return;
      if (registeredOnce && attempt === 0) options.log(`lost the dispatcher (${code}${reason.length ? ` ${reason}` : ''}); registering again`);
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
    /** The ticket key from the last registration (kept across reconnects: tickets stay valid). */
    key: () => key,
    reportClient(event: 'connected' | 'gone'): void {
      send({ type: 'client', event });
    },
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
