// The Bun adapter: the only file of the dispatcher that calls Bun.*. It opens the lease store,
// serves the Hono app with Bun's native WebSocket handler, and announces expiries on a timer.

import { join } from 'node:path';
import { upgradeWebSocket, websocket } from 'hono/bun';
import { createDispatcher, type Clock, type Dispatcher } from './dispatcher.ts';
import { createApp } from './http.ts';
import { openLeaseStore } from './lease-store.ts';
import type { DispatcherConfig } from './config.ts';

export const CLIENT_DIR = join(import.meta.dir, '..', 'client');

export interface RunningDispatcher {
  dispatcher: Dispatcher;
  /** The port actually bound (useful with --port 0). */
  port: number;
  /** ws:// URL of the browsers' /stream endpoint. */
  streamUrl: string;
  /** http:// base URL. */
  httpUrl: string;
  close(): Promise<void>;
}

export function startDispatcher(config: DispatcherConfig, clock?: Clock): RunningDispatcher {
  const store = openLeaseStore(config.db);
  const dispatcher = createDispatcher({ store, timings: config.timings, policy: config.policy, clock });
  const app = createApp({ dispatcher, upgradeWebSocket, clientDir: CLIENT_DIR, secret: config.secret });
  const server = Bun.serve({
    hostname: config.host,
    port: config.port,
    fetch: app.fetch,
    websocket: { ...websocket, idleTimeout: 60, maxPayloadLength: 64 * 1024 },
  });
  const sweeper = setInterval(dispatcher.sweep, config.timings.heartbeatMs);
  const port = server.port ?? config.port;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  return {
    dispatcher,
    port,
    streamUrl: `ws://${shownHost}:${port}/stream`,
    httpUrl: `http://${shownHost}:${port}`,
    async close() {
      clearInterval(sweeper);
      await server.stop(true);
      dispatcher.flush();
      store.close();
    },
  };
}
