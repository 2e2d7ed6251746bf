// The wire protocol of render-dispatch, shared by the dispatcher (Bun), the render server (Node)
// and the browser page (through the bundle in client/protocol.js). Every inbound message on every
// side is checked here, at the boundary, and a bad one is answered with a reason naming the field.

import { boolean, checkVariant, number, oneOf, optional, parseWith, text, type Check, type Parsed, type Shape } from './validate.ts';

export type { Parsed } from './validate.ts';

/** The browser's request on the dispatcher's /stream socket, exactly as in the Rednet tutorial. */
export const GET_SERVER_URL = 'get_server_url';
/** The dispatcher's answer when no render server is free. */
export const NONE = 'none';

export const DEFAULT_DISPATCHER_PORT = 18000;
export const DEFAULT_RENDER_PORT = 16000;
export const DEFAULT_DISPATCHER_URL = `ws://localhost:${DEFAULT_DISPATCHER_PORT}/stream`;

/** Paths: browsers use STREAM on both processes; render servers hold CONTROL open to the dispatcher. */
export const PATHS = {
  stream: '/stream',
  control: '/v1/control',
  servers: '/v1/servers',
  /** 200 while the process answers. */
  healthz: '/healthz',
  /** 200 when it can do its work (the dispatcher reaches its lease store; a render server is registered), else 503. */
  readyz: '/readyz',
  /** Prometheus metrics, on both programs. */
  metrics: '/metrics',
  /** What a render server is, as JSON with nothing secret: for the page's "About this server". */
  about: '/about',
  /** Linked dispatchers' WebSocket (the flock). */
  link: '/v1/link',
  /** This dispatcher's links, as JSON for operators. */
  flock: '/v1/flock',
  /** The operator's live page, and its feed (server-sent events). */
  dashboard: '/dashboard',
  dashboardFeed: '/v1/dashboard/feed',
} as const;

/** The environment variable both the dispatcher and render servers read the shared secret from. */
export const SECRET_ENV = 'RENDER_DISPATCH_SECRET';

/** The query parameter of a render server URL that carries the claim ticket. */
export const TICKET_PARAM = 'ticket';

/** WebSocket close codes used by every side (4000–4999 is the application range). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  unsupportedData: 1003,
  tooBig: 1009,
  internalError: 1011,
  /** The dispatcher cannot store a registration now (its lease store is unreachable): connect again. */
  tryAgainLater: 1013,
  /** A newer control connection for the same render server replaced this one. */
  replaced: 4000,
  /** A registration that would take an id or URL another live render server holds. */
  conflict: 4001,
  /** A linked dispatcher that could not prove it knows the flock's secret, or did not try in time. */
  unauthorized: 4003,
  /** A link to itself. */
  selfLink: 4009,
  /** A link whose other end reads too slowly: more than 4 MiB waited unsent. */
  tooFarBehind: 4013,
} as const;

/** What a render server says of its one client. */
export type ClientState = 'none' | 'connected';

// ---- control channel: render server <-> dispatcher ----

export interface RegisterMessage {
  type: 'register';
  /** Random id chosen by the render server process at start; stable across dispatcher restarts. */
  id: string;
  /**
   * A random secret of this process, never shown to anyone: registering an id again needs the
   * same one, so only the process that first registered an id can ever speak for it.
   */
  instance: string;
  /** The base WebSocket URL browsers reach this server at (the dispatcher adds the ticket). */
  url: string;
  client: ClientState;
  /** Frames per second the server aims at. */
  targetFps: number;
}

export interface HeartbeatMessage {
  type: 'heartbeat';
  fps: number;
  frameMs: number;
  client: ClientState;
  /**
   * Asks for a `lease` answer once the beat is written. Unasked, a beat goes unanswered: the
   * deadline is the beat's arrival plus the TTL the registration gave, and at 10,000 servers the
   * answers were a quarter of the dispatcher's heartbeat cost.
   */
  answer?: boolean;
}

export interface ClientEventMessage {
  type: 'client';
  event: 'connected' | 'gone';
}

/** The render server is shutting down: hand it out no more (sent before it closes its client). */
export interface DrainMessage {
  type: 'drain';
}

export type RenderToDispatcher = RegisterMessage | HeartbeatMessage | ClientEventMessage | DrainMessage;

export interface RegisteredMessage {
  type: 'registered';
  id: string;
  /** HMAC key (base64url) that signs this server's tickets; known only to it and the dispatcher, new at every registration. */
  key: string;
  heartbeatMs: number;
  ttlMs: number;
  /** How long a handed-out ticket may live: the render server refuses any that claims longer. */
  claimMs: number;
  /** The lease deadline, milliseconds since the epoch. */
  expiresAt: number;
}

export interface LeaseMessage {
  type: 'lease';
  expiresAt: number;
}

export interface ErrorMessage {
  type: 'error';
  error: string;
  field?: string;
  /** When a request was refused for coming too often: how long to wait before asking again. */
  retryMs?: number;
}

export type DispatcherToRender = RegisteredMessage | LeaseMessage | ErrorMessage;

// ---- browser <-> dispatcher: the JSON extension of get_server_url ----

/**
 * Besides the tutorial's plain text, a client may send {"type":"get_server_url", …} with any of
 * these fields. The answers are then JSON too.
 */
export interface ServerRequest {
  type: 'get_server_url';
  /** A retry with the same id gets the same server, never a second one. */
  requestId?: string;
  /** The page's session: within the grace period it gets its previous server back if that is free. */
  session?: string;
  /** When no server is free, wait in the queue instead of being told none. */
  wait?: boolean;
}

/**
 * A message a page sends to the flock: it raises `message` (or `evt.<event>`) on every dispatcher
 * it reaches and is delivered to their subscribed pages, unless a handler stops it.
 */
export interface PageMessage {
  type: 'message';
  /** What it is about: handlers listen for `evt.<event>`. */
  event?: string;
  user?: string;
  data?: unknown;
}

/** From now on, send this page the flock's messages. */
export interface SubscribeRequest {
  type: 'subscribe';
}

export type BrowserToDispatcher = ServerRequest | PageMessage | SubscribeRequest;

/** A flock message as a subscribed page receives it: `from` is the dispatcher it entered the flock at. */
export interface DeliveredMessage {
  type: 'message';
  from: string;
  event?: string;
  user?: string;
  data?: unknown;
}

export type DispatcherToBrowser =
  | { type: 'server_url'; url: string; requestId?: string }
  | { type: 'none'; reason: string; requestId?: string }
  /** Pushed whenever the waiting client's place changes; position 1 is next. */
  | { type: 'queued'; position: number; size: number; estimateMs?: number }
  | { type: 'subscribed' }
  | DeliveredMessage
  | ErrorMessage;

// ---- dispatcher <-> dispatcher: the flock's links ----

/**
 * What travels the flock. `message` is the users' (pages' and embedding programs'); the others
 * are the dispatchers' own: a site's free render servers, and lending one to a full site.
 */
export type FlockBody =
  | { kind: 'message'; event?: string; user?: string; data?: unknown }
  /** How many render servers this dispatcher could hand out now. */
  | { kind: 'capacity'; free: number }
  /** A full dispatcher asks for one (`call` matches the answer; `holder` is the page, as the lender will know it). */
  | { kind: 'borrow'; call: number; holder: string; requestId?: string; session?: string }
  /** The answer: a URL with a ticket the lender signed, or why not. */
  | { kind: 'lent'; call: number; url?: string; serverId?: string; reason?: string }
  /** A lent server whose page left before it got the URL: the lender takes it back. */
  | { kind: 'return'; serverId: string };

/**
 * One relayed message: `origin` is the dispatcher it started at and `seq` its number there (so a
 * copy arriving by a second path is dropped), `hops` the links it has travelled, this one included
 * (each dispatcher passes on only what has travelled fewer than its --max-hops). With `to` it is
 * for one dispatcher only, and the others just pass it on.
 */
export interface RelayFrame {
  type: 'relay';
  origin: string;
  seq: number;
  hops: number;
  to?: string;
  body: FlockBody;
}

/**
 * The link handshake, in which each end proves it knows the flock's secret without sending it:
 * the listener sends a challenge, the dialer answers with its own nonce and proof, the listener
 * proves itself in turn (see app/flock/link-proof.ts).
 */
export type LinkFrame =
  | { type: 'link_challenge'; member: string; nonce: string }
  | { type: 'link_hello'; member: string; nonce: string; proof: string }
  | { type: 'link_welcome'; member: string; proof: string }
  | RelayFrame
  | ErrorMessage;

// ---- browser <-> render server ----

export interface Camera {
  /** Orbit about the vertical axis, radians (any value; it wraps). */
  yaw: number;
  /** Orbit above or below the equator, radians. */
  pitch: number;
  /** Distance from the torus's centre. */
  distance: number;
}

export const DEFAULT_CAMERA: Camera = { yaw: 0, pitch: 0, distance: 4 };
export const CAMERA_LIMITS = { pitch: 1.4, distanceMin: 2.5, distanceMax: 12 } as const;

export type BrowserToRender =
  /** The camera the next frame is drawn with; seq lets the page match frames to its input. */
  | ({ type: 'camera'; seq: number } & Camera)
  /** Clock sync: the server answers with its own time. */
  | { type: 'ping'; t: number }
  /**
   * The frame with this seq is on screen. A page that says so is sent at most three frames past the
   * last one it showed, so frames never queue on their way to it; one that never does is paced by
   * its socket's buffer alone.
   */
  | { type: 'shown'; seq: number };

export type RenderToBrowser =
  | { type: 'hello'; id: string; size: number; targetFps: number; camera: Camera }
  | { type: 'pong'; t: number; serverTime: number }
  | ErrorMessage;

// ---- operators: GET /v1/servers and the dashboard's feed ----

/** A render server's state as operators see it; `expired` is derived from the lease deadline. */
export type ServerState = 'ready' | 'reserved' | 'busy' | 'draining' | 'offline' | 'expired';

/** How a server looks to an operator in GET /v1/servers. */
export interface ServerView {
  id: string;
  url: string;
  state: ServerState;
  /** Why the server is not being handed out now; null when it is free to be. */
  reason: string | null;
  leaseExpiresAt: number;
  claimExpiresAt: number | null;
  client: ClientState;
  targetFps: number;
  fps: number;
  frameMs: number;
  health: number;
  registeredAt: number;
}

/** One second of the dashboard's charts (GET /v1/dashboard/feed). */
export interface DashboardSummary {
  /** The second's end, ms since the epoch. */
  t: number;
  handouts: number;
  nones: number;
  /** Dispatch latency in that second, ms (null when nothing was answered). */
  p50: number | null;
  p99: number | null;
  /** Pages in the waiting room (every dispatcher on the store). */
  queue: number;
  /** How long the page that has waited longest on this dispatcher has waited, ms. */
  oldestWaitMs: number | null;
  /** The mean session length wait estimates are made of, ms (null until one has ended). */
  meanSessionMs: number | null;
  servers: Record<ServerState, number>;
}

export interface DashboardEvent {
  t: number;
  name: 'server.new' | 'server.lost' | 'connection.new' | 'connection.lost';
  kind?: string;
  id: string;
  url?: string;
  reason?: string;
}

/** What the dashboard's feed sends, each as a server-sent event named by its type. */
export type DashboardMessage =
  | { type: 'history'; summaries: DashboardSummary[] }
  | { type: 'summary'; summary: DashboardSummary }
  | { type: 'events'; events: DashboardEvent[]; dropped: number };

// ---- tickets ----

/** Claims of the JWT (HS256) carried in a render server URL. */
export interface TicketClaims {
  /** The render server's id: a ticket is good for that server only. */
  sub: string;
  /** Unique id of this hand-out; a render server accepts each once. */
  jti: string;
  /** Expiry, seconds since the epoch (the claim deadline). */
  exp: number;
  /** The page's session, when it gave one: a server keeps a returning session's camera. */
  sid?: string;
  [claim: string]: unknown;
}

// ---- registries ----

const SESSION = text({ min: 8, max: 64, pattern: /^[A-Za-z0-9_-]+$/, like: 'letters, digits, _ and -' });
/** Ids are shown to operators and written to logs: a safe alphabet, a bounded length. */
const SERVER_ID = text({ min: 1, max: 64, pattern: /^[A-Za-z0-9._-]+$/, like: 'letters, digits, . _ and -' });
const TOKEN = text({ min: 16, max: 128, pattern: /^[A-Za-z0-9._~+/=-]+$/, like: 'letters, digits and . _ ~ + / = -' });
const REQUEST_ID = text({ min: 1, max: 128, pattern: /^[A-Za-z0-9._:-]+$/, like: 'letters, digits and . _ : -' });
const CLIENT_STATE = oneOf('none', 'connected');
const ERROR: Shape = { error: text(), field: optional(text()), retryMs: optional(number({ min: 0 })) };
/** Frame rates and frame times beyond these are not a render server's but a mistake's. */
export const LIMITS = { fps: 1000, frameMs: 60_000, urlLength: 1024 } as const;

const RENDER_TO_DISPATCHER: Record<RenderToDispatcher['type'], Shape> = {
  register: {
    id: SERVER_ID,
    instance: TOKEN,
    url: (v) => (typeof v === 'string' ? serverUrlProblem(v) : 'must be a ws:// or wss:// URL'),
    client: CLIENT_STATE,
    targetFps: number({ min: 0, max: LIMITS.fps }),
  },
  heartbeat: { fps: number({ min: 0, max: LIMITS.fps }), frameMs: number({ min: 0, max: LIMITS.frameMs }), client: CLIENT_STATE, answer: optional(boolean) },
  client: { event: oneOf('connected', 'gone') },
  drain: {},
};

const DISPATCHER_TO_RENDER: Record<DispatcherToRender['type'], Shape> = {
  registered: {
    id: SERVER_ID, key: TOKEN, heartbeatMs: number({ min: 1 }), ttlMs: number({ min: 1 }), claimMs: number({ min: 1 }), expiresAt: number({ min: 0 }),
  },
  lease: { expiresAt: number({ min: 0 }) },
  error: ERROR,
};

/** What a message is about: the code of its `evt.<code>` event. */
const EVENT_CODE = text({ max: 64, pattern: /^[A-Za-z0-9_.:-]+$/, like: 'letters, digits and . _ : -' });
const USER = text({ max: 128 });
const ANY: Check = () => null;
/** The largest message a page may send to the flock, as JSON text. */
export const MAX_PAGE_MESSAGE = 4096;

const BROWSER_TO_DISPATCHER: Record<BrowserToDispatcher['type'], Shape> = {
  get_server_url: { requestId: optional(REQUEST_ID), session: optional(SESSION), wait: optional(boolean) },
  message: { event: optional(EVENT_CODE), user: optional(USER), data: ANY },
  subscribe: {},
};

const DISPATCHER_TO_BROWSER: Record<DispatcherToBrowser['type'], Shape> = {
  server_url: { url: text(), requestId: optional(text()) },
  none: { reason: text(), requestId: optional(text()) },
  queued: { position: number({ min: 1, integer: true }), size: number({ min: 1, integer: true }), estimateMs: optional(number({ min: 0 })) },
  subscribed: {},
  message: { from: text(), event: optional(text()), user: optional(text()), data: ANY },
  error: ERROR,
};

/** A dispatcher's id in the flock: random per process. */
const MEMBER = text({ min: 8, max: 64, pattern: /^[A-Za-z0-9_-]+$/, like: 'letters, digits, _ and -' });
const NONCE = text({ min: 16, max: 64, pattern: /^[A-Za-z0-9_-]+$/, like: 'base64url' });
const PROOF = text({ min: 64, max: 64, pattern: /^[0-9a-f]+$/, like: 'lowercase hex' });
const HOLDER = text({ max: 200 });
const CALL = number({ min: 1, integer: true });
/** A message travels at most this many links. */
export const MAX_HOPS_LIMIT = 64;

const FLOCK_BODY: Record<FlockBody['kind'], Shape> = {
  message: { event: optional(EVENT_CODE), user: optional(USER), data: ANY },
  capacity: { free: number({ min: 0, integer: true }) },
  borrow: { call: CALL, holder: HOLDER, requestId: optional(text({ max: 200 })), session: optional(SESSION) },
  lent: { call: CALL, url: optional(text({ max: LIMITS.urlLength * 2 })), serverId: optional(SERVER_ID), reason: optional(text()) },
  return: { serverId: SERVER_ID },
};

/** The body of a relay frame is checked by its kind, like a message by its type. */
const BODY: Check = (value) => {
  const checked = checkVariant(FLOCK_BODY, value, 'kind', 'body');
  return checked.ok ? null : checked.error.replace(/^body /, '');
};

const LINK_FRAMES: Record<LinkFrame['type'], Shape> = {
  link_challenge: { member: MEMBER, nonce: NONCE },
  link_hello: { member: MEMBER, nonce: NONCE, proof: PROOF },
  link_welcome: { member: MEMBER, proof: PROOF },
  relay: {
    origin: MEMBER, seq: number({ min: 1, integer: true }), hops: number({ min: 1, max: MAX_HOPS_LIMIT, integer: true }), to: optional(MEMBER), body: BODY,
  },
  error: ERROR,
};

const CAMERA_FIELDS: Shape = {
  yaw: number({ min: -1e6, max: 1e6 }),
  pitch: number({ min: -CAMERA_LIMITS.pitch, max: CAMERA_LIMITS.pitch }),
  distance: number({ min: CAMERA_LIMITS.distanceMin, max: CAMERA_LIMITS.distanceMax }),
};

const CAMERA: Check = (value) => {
  if (typeof value !== 'object' || value === null) return 'must be {yaw, pitch, distance}';
  for (const [field, check] of Object.entries(CAMERA_FIELDS)) {
    const problem = check((value as Record<string, unknown>)[field]);
    if (problem) return `.${field} ${problem}`;
  }
  return null;
};

const BROWSER_TO_RENDER: Record<BrowserToRender['type'], Shape> = {
  camera: { seq: number({ min: 0, integer: true }), ...CAMERA_FIELDS },
  ping: { t: number() },
  shown: { seq: number({ min: 0, integer: true }) },
};

const RENDER_TO_BROWSER: Record<RenderToBrowser['type'], Shape> = {
  hello: { id: text(), size: number({ min: 1 }), targetFps: number({ min: 0 }), camera: CAMERA },
  pong: { t: number(), serverTime: number() },
  error: ERROR,
};

export const parseRenderMessage = (text: string): Parsed<RenderToDispatcher> => parseWith(RENDER_TO_DISPATCHER, text);
export const parseDispatcherMessage = (text: string): Parsed<DispatcherToRender> => parseWith(DISPATCHER_TO_RENDER, text);
export const parseDispatcherAnswer = (text: string): Parsed<DispatcherToBrowser> => parseWith(DISPATCHER_TO_BROWSER, text);
export const parseBrowserToRender = (text: string): Parsed<BrowserToRender> => parseWith(BROWSER_TO_RENDER, text);
export const parseRenderToBrowser = (text: string): Parsed<RenderToBrowser> => parseWith(RENDER_TO_BROWSER, text);

/** A frame on a flock link; a relay frame's body keeps only its kind's fields. */
export function parseLinkFrame(text: string): Parsed<LinkFrame> {
  const parsed = parseWith<LinkFrame>(LINK_FRAMES, text);
  if (!parsed.ok || parsed.value.type !== 'relay') return parsed;
  const body = checkVariant<FlockBody>(FLOCK_BODY, parsed.value.body, 'kind', 'body');
  return body.ok ? { ok: true, value: { ...parsed.value, body: body.value } } : { ok: false, error: `relay.body ${body.error}`, field: 'body' };
}

/** Control and JSON messages of every channel are built through here, so their types are checked. */
export function encode(
  message: RenderToDispatcher | DispatcherToRender | DispatcherToBrowser | BrowserToRender | RenderToBrowser | BrowserToDispatcher | LinkFrame,
): string {
  return JSON.stringify(message);
}

/**
 * A text message on the dispatcher's /stream socket: the tutorial's plain `get_server_url` (then
 * `json` is false and the answer is plain text too) or a JSON message.
 */
export function parseStreamRequest(message: string): Parsed<BrowserToDispatcher & { json: boolean }> {
  if (message === GET_SERVER_URL) return { ok: true, value: { type: 'get_server_url', json: false } };
  if (!message.startsWith('{')) return { ok: false, error: streamErrorReply(message) };
  if (message.length > MAX_PAGE_MESSAGE) return { ok: false, error: `messages on ${PATHS.stream} are at most ${MAX_PAGE_MESSAGE} characters of JSON` };
  const parsed = parseWith<BrowserToDispatcher>(BROWSER_TO_DISPATCHER, message);
  return parsed.ok ? { ok: true, value: { ...parsed.value, json: true } } : parsed;
}

/**
 * What is wrong with a message a program sends to the flock, checked as a page's would be (every
 * other dispatcher checks it so), or null.
 */
export function flockMessageProblem(message: { event?: string; user?: string; data?: unknown }): string | null {
  let text: string;
  try {
    text = JSON.stringify({ ...message, type: 'message' });
  } catch {
    return 'a message must be JSON';
  }
  if (text.length > MAX_PAGE_MESSAGE) return `a message is at most ${MAX_PAGE_MESSAGE} characters of JSON`;
  const parsed = parseWith<PageMessage>(BROWSER_TO_DISPATCHER, text);
  return parsed.ok ? null : parsed.error;
}

/**
 * What is wrong with a URL a render server registers, or null. Pages are sent there with a ticket
 * added, so it may carry no credentials (they would reach every page), no fragment (the ticket
 * would land in it) and no ticket of its own.
 */
export function serverUrlProblem(candidate: string): string | null {
  if (candidate.length > LIMITS.urlLength) return `must be at most ${LIMITS.urlLength} characters`;
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return 'must be a ws:// or wss:// URL';
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return 'must be a ws:// or wss:// URL';
  if (url.username || url.password) return 'must not carry a user name or password';
  if (candidate.includes('#')) return 'must not have a fragment (#…)';
  if (url.searchParams.has(TICKET_PARAM)) return `must not carry a ${TICKET_PARAM} parameter: the dispatcher adds it`;
  return null;
}

/**
 * The URL the dispatcher hands a browser: the server's base URL with the ticket added. On the
 * hand-out path, so plain string work (a JWT is URL-safe as it is).
 */
export function ticketUrl(baseUrl: string, ticket: string): string {
  return `${baseUrl}${baseUrl.includes('?') ? '&' : '?'}${TICKET_PARAM}=${ticket}`;
}

/**
 * The dispatcher's reply to a text message on /stream that is neither the tutorial's request nor
 * JSON: named back to the sender as an error (one text message, never a close).
 */
export function streamErrorReply(received: string): string {
  const shown = received.length > 64 ? `${received.slice(0, 64)}…` : received;
  return `error: unknown request ${JSON.stringify(shown)}; send "${GET_SERVER_URL}"`;
}
