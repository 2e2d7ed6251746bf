// The dispatcher's HTTP and WebSocket routes as a Web-standard Hono app. The runtime adapter
// (server.ts) passes in its upgradeWebSocket helper and how to read a request's address; tests
// call app.request() without a port. Every refusal (a browser page where none may be, a missing
// secret) is an HTTP status with a reason, before any socket exists.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Hono, type MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { HTTPException } from 'hono/http-exception';
import type { UpgradeWebSocket, WSContext } from 'hono/ws';
import { CLOSE, PATHS } from '../common/protocol.ts';
import { addressKey, lastForwardedFor } from './client-address.ts';
import type { Dispatcher, Link, Peer, Session } from './dispatcher.ts';
import type { OriginChecks, OriginVerdict } from './origin.ts';
import { encodeCursor, parseListQuery } from './server-view.ts';

export interface AppOptions {
  dispatcher: Dispatcher;
  upgradeWebSocket: UpgradeWebSocket;
  /** Folder holding index.html and protocol.js. */
  clientDir: string;
  /** Registering and operator routes need `Authorization: Bearer <secret>`. */
  secret: string;
  origins: OriginChecks;
  /** The address a request came from, as the runtime sees it. */
  remoteAddress(request: Request): string | null;
  /** Take the page's address from the last hop of X-Forwarded-For (behind a reverse proxy). */
  trustProxy?: boolean;
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
  open: (link: Link, peer: Peer) => Session,
  peerOf: (request: Request) => Peer,
  onBinary: (ws: WSContext) => void,
  report: (error: unknown) => void,
) {
  return upgradeWebSocket((c) => {
    const peer = peerOf(c.req.raw);
    let session: Session | null = null;
    const sessionFor = (ws: WSContext) => (session ??= open({ send: (text) => ws.send(text), close: (code, reason) => ws.close(code, reason) }, peer));
    return {
      onOpen: (_event, ws) => {
        sessionFor(ws);
      },
      onMessage: async (event, ws) => {
        if (typeof event.data !== 'string') return onBinary(ws);
        if (event.data.length > MAX_MESSAGE) return ws.close(CLOSE.tooBig, `messages are at most ${MAX_MESSAGE} bytes`);
        await sessionFor(ws).message(event.data);
      },
      onClose: () => void session?.closed(),
      // A failure inside a session (the lease file unwritable, say) ends that socket, not the process.
      onError: (event, ws) => {
        report((event as Event & { error?: unknown }).error ?? event);
        ws.close(CLOSE.internalError, 'internal error');
      },
    };
  });
}

/** The shared secret's check, refused as 401 (400 for a malformed header) with a reason. */
function requireSecret(secret: string): MiddlewareHandler {
  return bearerAuth({
    token: secret,
    noAuthenticationHeader: { message: 'this needs the shared secret: send Authorization: Bearer <secret>' },
    invalidAuthenticationHeader: { message: 'malformed Authorization header: expected Bearer <secret>' },
    invalidToken: { message: 'wrong secret' },
  });
}

/** Refuses, as 403 with the reason, a request whose Origin the check turns down. */
function requireOrigin(check: (origin: string | undefined, host: string | undefined) => OriginVerdict): MiddlewareHandler {
  return async (c, next) => {
    const verdict = check(c.req.header('origin'), c.req.header('host'));
    if (!verdict.ok) throw new HTTPException(403, { message: verdict.reason });
    await next();
  };
}

export function createApp({ dispatcher, upgradeWebSocket, clientDir, secret, origins, remoteAddress, trustProxy = false }: AppOptions) {
  const app = new Hono();
  const authorized = requireSecret(secret);
  const operator = requireOrigin(origins.operator);
  const peerOf = (request: Request): Peer => {
    const address = (trustProxy ? lastForwardedFor(request.headers.get('x-forwarded-for') ?? undefined) : null) ?? remoteAddress(request) ?? 'unknown';
    return { address: addressKey(address) };
  };
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

  // Liveness: the process answers. Readiness: it can reach its lease store, so it can hand out
  // servers (a load balancer sends pages elsewhere while this is 503).
  app.get(PATHS.healthz, (c) => c.text('ok'));
  app.get(PATHS.readyz, async (c) => ((await dispatcher.ready()) ? c.text('ready') : c.text('store unavailable', 503)));

  // Paged (100 a page unless ?limit=, up to 1,000) and filterable by ?state=.
  app.get(PATHS.servers, operator, async (c) => {
    const query = parseListQuery(c.req.query());
    if (!query.ok) throw new HTTPException(400, { message: query.reason });
    const { servers, next } = await dispatcher.page(query);
    return c.json({ servers, next: encodeCursor(next ?? null) });
  });

  // Drain: the server is handed out no more, its client stays. DELETE ends the drain.
  app.post(`${PATHS.servers}/:id/drain`, operator, authorized, async (c) => {
    const result = await dispatcher.drain(c.req.param('id'));
    if (!result.ok) throw new HTTPException(result.status, { message: result.reason });
    return c.json({ server: result.server });
  });
  app.delete(`${PATHS.servers}/:id/drain`, operator, authorized, async (c) => {
    const result = await dispatcher.undrain(c.req.param('id'));
    if (!result.ok) throw new HTTPException(result.status, { message: result.reason });
    return c.json({ server: result.server });
  });

  // Browsers: the Rednet tutorial's exchange, one text request, one text answer, and its JSON form.
  app.get(
    PATHS.stream,
    requireUpgrade,
    requireOrigin(origins.stream),
    sessionRoute(
      upgradeWebSocket,
      dispatcher.openStream,
      (request) => {
        const verdict = origins.messages(request.headers.get('origin') ?? undefined, request.headers.get('host') ?? undefined);
        return { ...peerOf(request), flockRefusal: verdict.ok ? null : verdict.reason };
      },
      (ws) => ws.send('error: binary messages are not understood; send "get_server_url" as text'),
      report,
    ),
  );

  // Render servers: one control connection each, holding the lease.
  app.get(
    PATHS.control,
    requireUpgrade,
    requireOrigin(origins.control),
    authorized,
    sessionRoute(upgradeWebSocket, dispatcher.openControl, peerOf, (ws) => ws.close(CLOSE.unsupportedData, 'control messages are JSON text'), report),
  );

  // The flock: this dispatcher's links, for operators; and linked dispatchers' sockets, which
  // prove they know the secret in their handshake (no secret crosses the wire) and are never a
  // browser page.
  app.get(PATHS.flock, operator, (c) => c.json(dispatcher.flock.view()));
  app.get(
    PATHS.link,
    requireUpgrade,
    requireOrigin(origins.link),
    sessionRoute(upgradeWebSocket, dispatcher.openLink, peerOf, (ws) => ws.close(CLOSE.unsupportedData, 'link frames are JSON text'), report),
  );

  app.notFound((c) => c.text(`no route for ${c.req.method} ${c.req.path}`, 404));

  app.onError(async (error, c) => {
    if (error instanceof HTTPException) return error.getResponse();
    if (!(await dispatcher.ready())) return c.text('store unavailable: the lease store cannot be reached, try again shortly', 503);
    dispatcher.events.emit('log', { level: 'error', message: `${c.req.method} ${c.req.path}: ${error.stack ?? error}` });
    return c.text('internal error', 500);
  });

  return app;
}
