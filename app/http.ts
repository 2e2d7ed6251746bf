// The dispatcher's HTTP and WebSocket routes as a Web-standard Hono app. The runtime adapter
// (server.ts) passes in its WebSocket upgrade and how to read a request's address; tests
// call app.request() without a port. Every refusal (a browser page where none may be, a missing
// secret) is an HTTP status with a reason, before any socket exists.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Hono, type Handler, type MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { streamSSE } from 'hono/streaming';
import { timingSafeEqual } from 'hono/utils/buffer';
import { CLOSE, PATHS } from '../common/protocol.ts';
import { addressKey, lastForwardedFor } from './client-address.ts';
import type { Dispatcher, Link, Peer, Session } from './dispatcher.ts';
import type { OriginChecks, OriginVerdict } from './origin.ts';
import type { DashboardMessage } from '../common/protocol.ts';
import type { DashboardFeed } from './dashboard-feed.ts';
import { METRICS_CONTENT_TYPE, type Metrics } from './metrics.ts';
import { encodeCursor, parseListQuery } from './server-view.ts';

export interface AppOptions {
  dispatcher: Dispatcher;
  upgrade: Upgrade;
  /** Folder holding index.html and protocol.js. */
  clientDir: string;
  /** Registering and operator routes need `Authorization: Bearer <secret>`. */
  secret: string;
  origins: OriginChecks;
  /** The address a request came from, as the runtime sees it. */
  remoteAddress(request: Request): string | null;
  /** Take the page's address from the last hop of X-Forwarded-For (behind a reverse proxy). */
  trustProxy?: boolean;
  /** What GET /metrics shows; null when the dispatcher was started with --no-metrics. */
  metrics?: Metrics | null;
  /** What the dashboard is told live. */
  feed?: DashboardFeed;
}

/** Every message either socket takes is a small JSON object or a short line; anything larger is refused unread. */
const MAX_MESSAGE = 16 * 1024;

/** The page's files: a flat folder of HTML and classic scripts. */
const CONTENT_TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/** The dashboard's chart library, served from the installed package (no CDN). */
const UPLOT = { 'uplot.js': 'uplot/dist/uPlot.iife.min.js', 'uplot.css': 'uplot/dist/uPlot.min.css' } as const;
const resolvePackage = createRequire(import.meta.url).resolve;

const requireUpgrade: MiddlewareHandler = async (c, next) => {
  if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
    throw new HTTPException(426, { message: `${c.req.path} speaks WebSocket only: open it with a WebSocket client` });
  }
  await next();
};

/** What a WebSocket route hands the runtime for one socket: called as it opens, for each message, and as it closes. */
export interface SocketHandlers {
  open(socket: Link): void;
  /** Text arrives as a string, binary as bytes. */
  message(data: string | Uint8Array): void;
  close(): void;
}

/**
 * The runtime's upgrade (server.ts: Bun's): turns a handshake request into a socket whose events
 * go to `handlers`, or answers false when the request is no valid handshake.
 */
export type Upgrade = (request: Request, handlers: SocketHandlers) => boolean;

/**
 * A WebSocket route whose connection is one session: opened with the socket, fed its text
 * messages, told when it closes. What a session cannot read (binary, oversized) is refused here.
 * A message is handed straight to its session, with nothing made for it on the way: a render
 * server's heartbeat and a page's request are the dispatcher's most frequent events.
 */
function sessionRoute(
  upgrade: Upgrade,
  open: (link: Link, peer: Peer) => Session,
  peerOf: (request: Request) => Peer,
  onBinary: (link: Link) => void,
  report: (error: unknown) => void,
): Handler {
  return (c) => {
    const peer = peerOf(c.req.raw);
    let link: Link;
    let session: Session | null = null;
    // A failure inside a session (the lease file unwritable, say) ends that socket, not the process.
    const fail = (error: unknown) => {
      report(error);
      link.close(CLOSE.internalError, 'internal error');
    };
    const handlers: SocketHandlers = {
      open(socket) {
        link = socket;
        try {
          session = open(link, peer);
        } catch (error) {
          fail(error);
        }
      },
      message(data) {
        if (session === null) return; // it failed to open, and is closing
        if (typeof data !== 'string') return onBinary(link);
        if (data.length > MAX_MESSAGE) return link.close(CLOSE.tooBig, `messages are at most ${MAX_MESSAGE} bytes`);
        try {
          session.message(data).catch(fail);
        } catch (error) {
          fail(error);
        }
      },
      close() {
        try {
          session?.closed().catch(report);
        } catch (error) {
          report(error);
        }
      },
    };
    if (!upgrade(c.req.raw, handlers)) {
      throw new HTTPException(400, { message: `${c.req.path}: not a valid WebSocket handshake (Sec-WebSocket-Key and Sec-WebSocket-Version 13 are needed)` });
    }
    // The socket is open; the runtime sends no response of its own.
    return new Response(null);
  };
}

/**
 * The shared secret's check: `Authorization: Bearer <secret>` (programs), or Basic with any user
 * name and the secret as password (a browser asks for it, and sends it again with the dashboard's
 * feed and its drain buttons). Refused as 401 (400 for a malformed header) with a reason.
 */
function requireSecret(secret: string): MiddlewareHandler {
  const text = { 'content-type': 'text/plain; charset=utf-8' };
  const challenge = { ...text, 'www-authenticate': 'Basic realm="render-dispatch operator", charset="UTF-8"' };
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (!header) {
      throw new HTTPException(401, {
        res: new Response('this needs the shared secret: send Authorization: Bearer <secret>, or sign in with any user name and the secret as password', {
          status: 401, headers: challenge,
        }),
      });
    }
    const [scheme, value = ''] = header.split(/\s+/, 2);
    let given: string | null = null;
    if (/^bearer$/i.test(scheme)) given = value;
    else if (/^basic$/i.test(scheme)) {
      try {
        const decoded = atob(value);
        given = decoded.includes(':') ? decoded.slice(decoded.indexOf(':') + 1) : null;
      } catch {
        given = null;
      }
    }
    if (given === null || given === '') throw new HTTPException(400, { message: 'malformed Authorization header: expected Bearer <secret>' });
    if (!(await timingSafeEqual(given, secret))) {
      throw new HTTPException(401, { res: new Response('wrong secret', { status: 401, headers: /^basic$/i.test(scheme) ? challenge : text }) });
    }
    await next();
  };
}

/** Refuses, as 403 with the reason, a request whose Origin the check turns down. */
function requireOrigin(check: (origin: string | undefined, host: string | undefined) => OriginVerdict): MiddlewareHandler {
  return async (c, next) => {
    const verdict = check(c.req.header('origin'), c.req.header('host'));
    if (!verdict.ok) throw new HTTPException(403, { message: verdict.reason });
    await next();
  };
}

export function createApp({ dispatcher, upgrade, clientDir, secret, origins, remoteAddress, trustProxy = false, metrics = null, feed }: AppOptions) {
  const app = new Hono();
  const authorized = requireSecret(secret);
  const operator = requireOrigin(origins.operator);
  const peerOf = (request: Request): Peer => {
    const address = (trustProxy ? lastForwardedFor(request.headers.get('x-forwarded-for') ?? undefined) : null) ?? remoteAddress(request) ?? 'unknown';
    return { address: addressKey(address) };
  };
  const report = (error: unknown) =>
    dispatcher.events.emit('log', { level: 'error', message: `socket session failed: ${error instanceof Error ? (error.stack ?? error.message) : error}` });

  async function clientFile(name: string, path = join(clientDir, name)): Promise<Response> {
    const body = await readFile(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new HTTPException(404, { message: `no client file ${name}` });
      throw error;
    });
    return new Response(body, { headers: { 'content-type': CONTENT_TYPES[name.split('.').pop()!], 'cache-control': 'no-cache' } });
  }
  app.get('/', () => clientFile('index.html'));
  app.get('/index.html', () => clientFile('index.html'));
  // Scripts only: the dashboard's page is behind the secret, below.
  app.get('/:file{[a-z-]+\\.js}', (c) => clientFile(c.req.param('file')));

  // The operator's dashboard: the page, its chart library, and its live feed, all behind the secret.
  app.get(PATHS.dashboard, operator, authorized, () => clientFile('dashboard.html'));
  app.get('/vendor/:file{uplot\\.(?:js|css)}', (c) => {
    const file = c.req.param('file') as keyof typeof UPLOT;
    return clientFile(file, resolvePackage(UPLOT[file]));
  });
  app.get(PATHS.dashboardFeed, operator, authorized, (c) => {
    if (!feed) throw new HTTPException(404, { message: 'this dispatcher has no dashboard feed' });
    return streamSSE(c, async (stream) => {
      // One write at a time, in order: summaries and event batches come from timers.
      let writing = Promise.resolve();
      const send = (message: DashboardMessage) => {
        writing = writing.then(() => stream.writeSSE({ event: message.type, data: JSON.stringify(message) })).catch(() => {});
      };
      const unsubscribe = feed.subscribe(send);
      const closed = new Promise<void>((resolve) => stream.onAbort(resolve));
      await closed;
      unsubscribe();
    });
  });
  // Prometheus: scraped by a program (no Origin); a browser page only if it is the dispatcher's own.
  app.get(PATHS.metrics, operator, async (c) => {
    if (!metrics) throw new HTTPException(404, { message: 'metrics are off (--no-metrics)' });
    return c.body(await metrics.text(), 200, { 'content-type': METRICS_CONTENT_TYPE });
  });

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
    // The dashboard shows it at its next second, not at its next count.
    feed?.recount();
    return c.json({ server: result.server });
  });
  app.delete(`${PATHS.servers}/:id/drain`, operator, authorized, async (c) => {
    const result = await dispatcher.undrain(c.req.param('id'));
    if (!result.ok) throw new HTTPException(result.status, { message: result.reason });
    feed?.recount();
    return c.json({ server: result.server });
  });

  // Browsers: the Rednet tutorial's exchange, one text request, one text answer, and its JSON form.
  app.get(
    PATHS.stream,
    requireUpgrade,
    requireOrigin(origins.stream),
    sessionRoute(
      upgrade,
      dispatcher.openStream,
      (request) => {
        const verdict = origins.messages(request.headers.get('origin') ?? undefined, request.headers.get('host') ?? undefined);
        return { ...peerOf(request), flockRefusal: verdict.ok ? null : verdict.reason };
      },
      (link) => link.send('error: binary messages are not understood; send "get_server_url" as text'),
      report,
    ),
  );

  // Render servers: one control connection each, holding the lease.
  app.get(
    PATHS.control,
    requireUpgrade,
    requireOrigin(origins.control),
    authorized,
    sessionRoute(upgrade, dispatcher.openControl, peerOf, (link) => link.close(CLOSE.unsupportedData, 'control messages are JSON text'), report),
  );

  // The flock: this dispatcher's links, for operators; and linked dispatchers' sockets, which
  // prove they know the secret in their handshake (no secret crosses the wire) and are never a
  // browser page.
  app.get(PATHS.flock, operator, (c) => c.json(dispatcher.flock.view()));
  app.get(
    PATHS.link,
    requireUpgrade,
    requireOrigin(origins.link),
    sessionRoute(upgrade, dispatcher.openLink, peerOf, (link) => link.close(CLOSE.unsupportedData, 'link frames are JSON text'), report),
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
