// The render server's HTTP routes, as a Hono app apart from the server that listens (server.ts),
// so that they can be tried with app.request. Besides the WebSocket, whose upgrade server.ts
// handles, they are for operators and load balancers: liveness, readiness with the status codes
// they expect, Prometheus metrics, and a short JSON "about" a page may link to. Nothing here shows
// a secret, a ticket or a ticket key.

import { Hono } from 'hono';
import { PATHS } from '../common/protocol.ts';
import type { RenderConfig } from './config.ts';
import type { ControlClient } from './control.ts';
import type { RenderMetrics } from './metrics.ts';
import type { FrameStream } from './stream.ts';

export interface RenderAppOptions {
  id: string;
  config: Pick<RenderConfig, 'size' | 'fps' | 'dispatchers'>;
  publicUrl(): string;
  stream: Pick<FrameStream, 'stats'>;
  control: Pick<ControlClient, 'registered' | 'dispatcher'>;
  metrics: Pick<RenderMetrics, 'scrape' | 'contentType'>;
  /** True once the server has begun to stop: not ready, whatever the dispatcher thinks. */
  stopping(): boolean;
}

export function createRenderApp({ id, config, publicUrl, stream, control, metrics, stopping }: RenderAppOptions): Hono {
  const app = new Hono();

  app.get('/', (c) => c.json({ id, url: publicUrl(), dispatcher: control.dispatcher(), dispatchers: config.dispatchers, size: config.size, targetFps: config.fps, ...stream.stats() }));
  app.get(PATHS.stream, (c) => c.text(`${PATHS.stream} speaks WebSocket only: open the URL the dispatcher handed out`, 426));

  // Liveness: the process answers. Readiness: a dispatcher can hand this server out, which it
  // does only while the server is registered; a server that is stopping has drained already.
  app.get(PATHS.healthz, (c) => c.text('ok'));
  app.get(PATHS.readyz, (c) => {
    if (stopping()) return c.text('shutting down', 503);
    return control.registered() ? c.text('ready') : c.text('not registered with a dispatcher', 503);
  });

  app.get(PATHS.metrics, async (c) => {
    const { fps, client } = stream.stats();
    const text = await metrics.scrape({ fps, clientConnected: client === 'connected', registered: control.registered() });
    return c.body(text, 200, { 'content-type': metrics.contentType });
  });

  app.get(PATHS.about, (c) => {
    const { fps, client } = stream.stats();
    return c.json({ id, size: config.size, targetFps: config.fps, fps: Math.round(fps * 10) / 10, registered: control.registered(), client });
  });

  app.notFound((c) => c.text(`no route for ${c.req.method} ${c.req.path}`, 404));
  return app;
}
