// The Bun adapter: the only file of the dispatcher that serves with Bun.* (the PostgreSQL engine's
// client and the primary of `--workers` are the others that touch Bun). It opens the lease store
// (or is given one, as a worker is), serves the Hono app with Bun's native WebSocket handler,
// dials the flock's links with Bun's WebSocket client, and sweeps on a timer.

import { join } from 'node:path';
import type { Server, WebSocketHandler } from 'bun';
import { CLOSE } from '../common/protocol.ts';
import { createDispatcher, type Clock, type Dispatcher } from './dispatcher.ts';
import type { Connect } from './flock/dialer.ts';
import { DEFAULT_MAX_HOPS } from './flock/flock.ts';
import { createDashboardFeed } from './dashboard-feed.ts';
import { createMetrics, timedStore } from './metrics.ts';
import type { LeaseStore } from './lease-store.ts';
import { createApp, type SocketHandlers, type Upgrade } from './http.ts';
import { openStore } from './open-store.ts';
import { createOriginPolicy } from './origin.ts';
import type { DispatcherConfig } from './config.ts';

export const CLIENT_DIR = join(import.meta.dir, '..', 'client');

/** A socket this far behind (bytes queued unsent) is closed, in either direction of a link. */
const MAX_UNSENT = 4 * 1024 * 1024;

/**
 * Bun's WebSocket events handed to the route that upgraded the socket (its handlers ride on the
 * socket as its data). Each message goes straight to its route: no event object, no wrapper.
 */
export const socketEvents: WebSocketHandler<SocketHandlers> = {
  open: (ws) => ws.data.open({ send: (text) => void ws.sendText(text), close: (code, reason) => ws.close(code, reason) }),
  message: (ws, message) => ws.data.message(message),
  close: (ws) => ws.data.close(),
};

/** The app's upgrade on a Bun server (which answers false to a request that is no valid handshake). */
export const upgradeOn = (server: () => Server<SocketHandlers> | null): Upgrade => (request, handlers) => server()?.upgrade(request, { data: handlers }) ?? false;

export interface RunningDispatcher {
  dispatcher: Dispatcher;
  /** The port actually bound (useful with --port 0). */
  port: number;
  /** ws:// URL of the browsers' /stream endpoint. */
  streamUrl: string;
  /** http:// base URL. */
  httpUrl: string;
  /** The lease store's engine and location, for the start-up line. */
  store: string;
  close(): Promise<void>;
}

/** What starting needs of the config; the rest has its defaults. */
export type StartOptions = Pick<DispatcherConfig, 'host' | 'port' | 'db' | 'timings' | 'policy' | 'secret'> &
  Partial<Pick<DispatcherConfig, 'allowOrigins' | 'trustProxy' | 'links' | 'maxHops' | 'noEvents' | 'metrics'>>;

export interface StartHow {
  /** For tests that move time. */
  clock?: Clock;
  /** A store opened elsewhere (a worker's link to the primary's file); by default `config.db` is opened. */
  store?: LeaseStore;
  /** Share the port with other processes (the workers of `--workers N`; Linux spreads connections over them). */
  reusePort?: boolean;
}

export async function startDispatcher(config: StartOptions, { clock, store: given, reusePort = false }: StartHow = {}): Promise<RunningDispatcher> {
  const opened = given ?? (await openStore(config.db, clock));
  const metrics = config.metrics === false ? null : createMetrics();
  const store = metrics ? timedStore(opened, metrics.storeCall) : opened;
  const dispatcher = createDispatcher({
    store, timings: config.timings, policy: config.policy, clock,
    flock: { secret: config.secret, maxHops: config.maxHops ?? DEFAULT_MAX_HOPS, noEvents: config.noEvents ?? false, connect },
  });
  metrics?.watch(dispatcher, store);
  const feed = createDashboardFeed(dispatcher, store, { now: () => Date.now(), meanSessionMs: dispatcher.meanSessionMs });
  // The server knows each request's peer (requestIP), and exists only once Bun.serve returns.
  let server: Server<SocketHandlers> | null = null;
  const app = createApp({
    dispatcher,
    upgrade: upgradeOn(() => server),
    clientDir: CLIENT_DIR,
    secret: config.secret,
    origins: createOriginPolicy({ streamOrigins: config.allowOrigins ?? null, listenHost: config.host }),
    remoteAddress: (request) => server?.requestIP(request)?.address ?? null,
    trustProxy: config.trustProxy ?? false,
    metrics,
    feed,
  });
  server = Bun.serve({
    hostname: config.host,
    port: config.port,
    reusePort,
    fetch: app.fetch,
    // A page that subscribes to the flock and never reads would otherwise have its messages
    // queued here without bound: past MAX_UNSENT, its socket is closed.
    websocket: { ...socketEvents, idleTimeout: 60, maxPayloadLength: 64 * 1024, backpressureLimit: MAX_UNSENT, closeOnBackpressureLimit: true },
  });
  const sweeper = setInterval(dispatcher.sweep, config.timings.heartbeatMs);
  for (const url of config.links ?? []) dispatcher.flock.link(url);
  const port = server.port ?? config.port;
  const listening = server;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  return {
    dispatcher,
    port,
    streamUrl: `ws://${shownHost}:${port}/stream`,
    httpUrl: `http://${shownHost}:${port}`,
    store: `${store.engine} ${store.location}`,
    async close() {
      clearInterval(sweeper);
      feed.stop();
      // Nothing new comes in; the pages and render servers connected are told why (1001); then the port closes.
      void listening.stop(false);
      await dispatcher.goAway('dispatcher shutting down');
      await listening.stop(true);
      dispatcher.stop();
      await dispatcher.flush().catch(() => {});
      await store.close();
    },
  };
}

/** A link to another dispatcher over Bun's WebSocket client (which sends no Origin: it is no browser page). */
const connect: Connect = (url, on) => {
  const ws = new WebSocket(url);
  ws.onopen = () => on.open();
  ws.onmessage = (event) => {
    if (typeof event.data === 'string') on.message(event.data);
    else ws.close(1003, 'link frames are JSON text');
  };
  ws.onclose = (event) => on.close(event.code, event.reason);
  return {
    send(text) {
      // The same bound as the listening side's: a link that far behind is closed (and dialled again).
      if (ws.bufferedAmount > MAX_UNSENT) return ws.close(CLOSE.tooFarBehind, `link more than ${MAX_UNSENT} bytes behind`);
      ws.send(text);
    },
    close: (code, reason) => ws.close(code, reason),
  };
};
