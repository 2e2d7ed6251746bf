// The dispatcher's HTTP and WebSocket routes as a Web-standard Hono app. The runtime adapter
// (server.ts) passes in its upgradeWebSocket helper; tests call app.request() without a port.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Hono, type MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { HTTPException } from 'hono/http-exception';
import type { UpgradeWebSocket, WSContext } from 'hono/ws';
import { CLOSE, PATHS } from '../common/protocol.ts';
import type { Dispatcher, Link, Session } from './dispatcher.ts';

export interface AppOptions {
  dispatcher: Dispatcher;
  upgradeWebSocket: UpgradeWebSocket;
  /** Folder holding index.html and protocol.js. */
  clientDir: string;
  /** When set, registering and operator routes need `Authorization: Bearer <secret>`. */
  secret?: string | null;
}

/** Every message either socket takes is a small JSON object or a short line; anything larger is refused unread. */
const MAX_MESSAGE = 16 * 1024;

/** The page's files: a flat folder of HTML and classic scripts. */
const CONTENT_TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8' };

const requireUpgrade: MiddlewareHandler = async (c, next) => {
  if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
    throw new HTTPException(426, { message: `${c.req.path} speaks WebSocket only: open it with a WebSocket client` });
  }
  await next();
};

/**
 * A WebSocket route whose connection is one session: opened with the socket, fed its text
 * messages, told when it closes. What a session cannot read (binary, oversized) is refused here.
 */
function sessionRoute(
  upgradeWebSocket: UpgradeWebSocket,
  open: (link: Link) => Session,
  onBinary: (ws: WSContext) => void,
  report: (error: unknown) => void,
) {
  return upgradeWebSocket(() => {
    let session: Session | null = null;
    const sessionFor = (ws: WSContext) => (session ??= open({ send: (text) => ws.send(text), close: (code, reason) => ws.close(code, reason) }));
    return {
      onOpen: (_event, ws) => {
        sessionFor(ws);
      },
      onMessage: async (event, ws) => {
        if (typeof event.data !== 'string') return onBinary(ws);
        if (event.data.length > MAX_MESSAGE) return ws.close(CLOSE.tooBig, `messages are at most ${MAX_MESSAGE} bytes`);
        await sessionFor(ws).message(event.data);
      },
      onClose: () => session?.closed(),
      // A failure inside a session (the lease file unwritable, say) ends that socket, not the process.
      onError: (event, ws) => {
        report((event as Event & { error?: unknown }).error ?? event);
        ws.close(CLOSE.internalError, 'internal error');
      },
    };
  });
}

const noCheck: MiddlewareHandler = (_c, next) => next();

/** The shared secret's check, refused as 401 (400 for a malformed header) with a reason. */
function requireSecret(secret: string | null | undefined): MiddlewareHandler {
  if (!secret) return noCheck;
  return bearerAuth({
    token: secret,
    noAuthenticationHeader: { message: 'this needs the shared secret: send Authorization: Bearer <secret>' },
    invalidAuthenticationHeader: { message: 'malformed Authorization header: expected Bearer <secret>' },
    invalidToken: { message: 'wrong secret' },
  });
}

export function createApp({ dispatcher, upgradeWebSocket, clientDir, secret }: AppOptions) {
  const app = new Hono();
  const authorized = requireSecret(secret);
  const report = (error: unknown) =>
    dispatcher.events.emit('log', { level: 'error', message: `socket session failed: ${error instanceof Error ? (error.stack ?? error.message) : error}` });

  async function clientFile(name: string): Promise<Response> {
    const body = await readFile(join(clientDir, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new HTTPException(404, { message: `no client file ${name}` });
      throw error;
    });
    return new Response(body, { headers: { 'content-type': CONTENT_TYPES[name.split('.').pop()!], 'cache-control': 'no-cache' } });
  }
  app.get('/', () => clientFile('index.html'));
  app.get('/:file{[a-z-]+\\.(?:html|js)}', (c) => clientFile(c.req.param('file')));

  app.get(PATHS.servers, (c) => c.json({ servers: dispatcher.list() }));

  // Drain: the server is handed out no more, its client stays. DELETE ends the drain.
  app.post(`${PATHS.servers}/:id/drain`, authorized, (c) => {
    const result = dispatcher.drain(c.req.param('id'));
    if (!result.ok) throw new HTTPException(result.status, { message: result.reason });
    return c.json({ server: result.server });
  });
  app.delete(`${PATHS.servers}/:id/drain`, authorized, (c) => {
    const result = dispatcher.undrain(c.req.param('id'));
    if (!result.ok) throw new HTTPException(result.status, { message: result.reason });
    return c.json({ server: result.server });
  });

  // Browsers: the Rednet tutorial's exchange, one text request, one text answer, and its JSON form.
  app.get(
    PATHS.stream,
    requireUpgrade,
    sessionRoute(
      upgradeWebSocket,
      dispatcher.openStream,
      (ws) => ws.send('error: binary messages are not understood; send "get_server_url" as text'),
      report,
    ),
  );

  // Render servers: one control connection each, holding the lease.
  app.get(
    PATHS.control,
    requireUpgrade,
    authorized,
    sessionRoute(upgradeWebSocket, dispatcher.openControl, (ws) => ws.close(CLOSE.unsupportedData, 'control messages are JSON text'), report),
  );

  app.notFound((c) => c.text(`no route for ${c.req.method} ${c.req.path}`, 404));

  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse();
    dispatcher.events.emit('log', { level: 'error', message: `${c.req.method} ${c.req.path}: ${error.stack ?? error}` });
    return c.text('internal error', 500);
  });

  return app;
}
