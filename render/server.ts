// The Node adapter of the render server: the only file that binds sockets. It serves the routes of
// http.ts over @hono/node-server, checks the one client's ticket at the WebSocket upgrade
// (refusing with an HTTP status and reason before any socket exists, and counting the refusal)
// before handing the upgrade to the client slot, and wires the metrics, the frame stream, the slot
// and the dispatcher's control channel together.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { serve } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import type { LogFields, Logger } from '../common/node/log.ts';
import { CLOSE, PATHS } from '../common/protocol.ts';
import { derivePublicUrl, type RenderConfig } from './config.ts';
import { createControlClient } from './control.ts';
import type { Renderer } from './renderer.ts';
import { encodeJpeg } from './encoder.ts';
import { createRenderApp } from './http.ts';
import { createRenderMetrics } from './metrics.ts';
import { poseAt } from './scene.ts';
import { createClientSlot } from './slot.ts';
import { createFrameStream } from './stream.ts';
import { createTicketGate } from './tickets.ts';

export interface RunningRenderServer {
  id: string;
  port: number;
  publicUrl: string;
  /** Drains, leaves the dispatcher, closes the client with 1001 and the reason, stops listening. */
  close(reason?: string): Promise<void>;
}

function refuse(socket: Duplex, status: number, reason: string): void {
  const body = Buffer.from(`${reason}\n`);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Refused'}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export async function startRenderServer(config: RenderConfig, renderer: Renderer, logger: Logger): Promise<RunningRenderServer> {
  const id = randomUUID();
  let publicUrl = config.publicUrl ?? '';
  let port = config.port;
  let stopping = false;
  // Every line says which server wrote it; in JSON, so that one server's lines can be picked out of
  // a host's or a farm's without reading its tag.
  const log = (message: string, fields?: LogFields) => logger.log('info', message, { serverId: id, port, ...fields });

  // Each part is made from the ones before it, none from one after: the metrics, which the stream
  // reports its frames to; the stream, so that control reads real stats (zeros until there is
  // something to measure) whenever it asks; the slot, which drives the stream and reports its
  // client through control; the gate, which claims the slot; the routes, which read them all.
  const metrics = createRenderMetrics();
  const stream = createFrameStream({ id, renderer, fps: config.fps, quality: config.quality, spin: config.spin, meter: metrics.meter, log });
  const control = createControlClient({
    dispatchers: config.dispatchers,
    id,
    get publicUrl() {
      return publicUrl;
    },
    targetFps: config.fps,
    secret: config.secret,
    health: () => {
      const { fps, frameMs, client } = stream.stats();
      return { fps, frameMs, client };
    },
    log,
  });
  const slot = createClientSlot({
    stream,
    onClient: (event, client) => {
      // The ticket's id and the page's session, never the ticket: it would let a reader in.
      log(`client ${event}`, { jti: client.jti, session: client.session });
      control.reportClient(event);
    },
    log,
  });
  const gate = createTicketGate({
    identity: () => {
      const keyring = control.keyring();
      return keyring ? { id, ...keyring } : null;
    },
    claim: slot.claim,
  });

  const app = createRenderApp({ id, config, publicUrl: () => publicUrl, stream, control, metrics, stopping: () => stopping });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host });

  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://render.invalid');
    if (url.pathname !== PATHS.stream) return refuse(socket, 404, `no WebSocket at ${url.pathname}; use ${PATHS.stream}`);
    gate.admit(url).then(
      (admission) => {
        if (!admission.ok) {
          metrics.refused(admission.refusal);
          return refuse(socket, admission.status, admission.reason);
        }
        slot.attach(socket, { jti: admission.jti, session: admission.session }, (attach) => wss.handleUpgrade(request, socket, head, attach));
      },
      (error) => refuse(socket, 500, `could not check the ticket: ${error}`),
    );
  });

  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once('listening', resolve);
    server.once('error', reject);
  });
  port = (server.address() as AddressInfo).port;
  publicUrl ||= derivePublicUrl(config.host, port);
  // The first frame compiles the shaders and loads the encoder: pay for it before registering,
  // so that it neither counts against this server's health nor delays its first client.
  await encodeJpeg(renderer.readFrame(poseAt(0)), config.size, config.quality);
  control.start();

  return {
    id,
    port,
    publicUrl,
    async close(reason = 'render server shutting down') {
      // Drain first so that no new client is sent here while the rest happens.
      stopping = true;
      control.drain();
      stream.stop();
      await control.stop();
      slot.closeClient(CLOSE.goingAway, reason);
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
