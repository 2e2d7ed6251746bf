// The wire protocol of render-dispatch, shared by the dispatcher (Bun), the render server (Node)
// and the browser page (through the bundle in client/protocol.js). Every inbound message on every
// side is checked here, at the boundary, and a bad one is answered with a reason naming the field.

/** The browser's request on the dispatcher's /stream socket, exactly as in the Rednet tutorial. */
export const GET_SERVER_URL = 'get_server_url';
/** The dispatcher's answer when no render server is free. */
export const NONE = 'none';

export const DEFAULT_DISPATCHER_PORT = 18000;
export const DEFAULT_DISPATCHER_URL = `ws://localhost:${DEFAULT_DISPATCHER_PORT}/stream`;

/** Paths: browsers use STREAM on both processes; render servers hold CONTROL open to the dispatcher. */
export const PATHS = {
  stream: '/stream',
  control: '/v1/control',
  servers: '/v1/servers',
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
  policy: 1008,
  tooBig: 1009,
  /** A newer control connection for the same render server replaced this one. */
  replaced: 4000,
  /** A control message was malformed or out of order. */
  badMessage: 4001,
} as const;

/** What a render server says of its one client. */
export type ClientState = 'none' | 'connected';

// ---- control channel: render server -> dispatcher ----

export interface RegisterMessage {
  type: 'register';
  /** Random id chosen by the render server process at start; stable across dispatcher restarts. */
  id: string;
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

// ---- control channel: dispatcher -> render server ----

export interface RegisteredMessage {
  type: 'registered';
  id: string;
  /** HMAC key (base64url) that signs this server's tickets; known only to it and the dispatcher. */
  key: string;
  heartbeatMs: number;
  ttlMs: number;
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
}

export type DispatcherToRender = RegisteredMessage | LeaseMessage | ErrorMessage;

// ---- browser -> dispatcher: the JSON extension of get_server_url ----

/**
 * Besides the tutorial's plain text, a client may send {"type":"get_server_url","requestId":"…"}.
 * The answer is then JSON too, and a retry with the same requestId gets the same server.
 */
export interface StreamRequest {
  /** False for the tutorial's plain text request, which is answered in plain text. */
  json: boolean;
  requestId: string | null;
}

export type StreamAnswer =
  | { type: 'server_url'; url: string; requestId?: string }
  | { type: 'none'; reason: string; requestId?: string }
  | { type: 'error'; error: string; field?: string };

const MAX_REQUEST_ID = 128;

export function parseStreamRequest(text: string): Parsed<StreamRequest> {
  if (text === GET_SERVER_URL) return { ok: true, value: { json: false, requestId: null } };
  if (!text.startsWith('{')) return { ok: false, error: streamErrorReply(text) };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, error: 'message is not valid JSON' };
  }
  const record = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (record.type !== GET_SERVER_URL) return { ok: false, field: 'type', error: `type must be "${GET_SERVER_URL}"` };
  const requestId = record.requestId;
  if (requestId !== undefined && (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > MAX_REQUEST_ID)) {
    return { ok: false, field: 'requestId', error: `requestId must be a string of 1 to ${MAX_REQUEST_ID} characters` };
  }
  return { ok: true, value: { json: true, requestId: requestId ?? null } };
}

// ---- tickets ----

/** Claims of the JWT (HS256) carried in a render server URL. */
export interface TicketClaims {
  /** The render server's id: a ticket is good for that server only. */
  sub: string;
  /** Unique id of this hand-out; a render server accepts each once. */
  jti: string;
  /** Expiry, seconds since the epoch (the claim deadline). */
  exp: number;
  [claim: string]: unknown;
}

// ---- validation ----

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string; field?: string };

type FieldKind = 'string' | 'number' | 'url' | 'clientState' | 'clientEvent' | 'optionalString';
type Shape = Record<string, FieldKind>;

/** The registry of control messages a render server may send, with the kind of each field. */
const RENDER_TO_DISPATCHER: Record<RenderToDispatcher['type'], Shape> = {
  register: { id: 'string', url: 'url', client: 'clientState', targetFps: 'number' },
  heartbeat: { fps: 'number', frameMs: 'number', client: 'clientState' },
  client: { event: 'clientEvent' },
  drain: {},
};

const DISPATCHER_TO_RENDER: Record<DispatcherToRender['type'], Shape> = {
  registered: { id: 'string', key: 'string', heartbeatMs: 'number', ttlMs: 'number', expiresAt: 'number' },
  lease: { expiresAt: 'number' },
  error: { error: 'string', field: 'optionalString' },
};

const MAX_STRING = 2048;

function checkField(kind: FieldKind, value: unknown): string | null {
  switch (kind) {
    case 'optionalString':
      if (value === undefined) return null;
    // falls through: when present it must be a string like any other
    case 'string':
      if (typeof value !== 'string' || value.length === 0) return 'must be a non-empty string';
      return value.length > MAX_STRING ? `must be at most ${MAX_STRING} characters` : null;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) && value >= 0
        ? null
        : 'must be a finite number >= 0';
    case 'url':
      return typeof value === 'string' && isWebSocketUrl(value) ? null : 'must be a ws:// or wss:// URL';
    case 'clientState':
      return value === 'none' || value === 'connected' ? null : 'must be "none" or "connected"';
    case 'clientEvent':
      return value === 'connected' || value === 'gone' ? null : 'must be "connected" or "gone"';
  }
}

function parseWith<T>(registry: Record<string, Shape>, text: string): Parsed<T> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, error: 'message is not valid JSON' };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, error: 'message must be a JSON object' };
  }
  const record = data as Record<string, unknown>;
  const type = record.type;
  if (typeof type !== 'string' || !Object.hasOwn(registry, type)) {
    return { ok: false, field: 'type', error: `type must be one of ${Object.keys(registry).join(', ')}` };
  }
  const shape = registry[type];
  const value: Record<string, unknown> = { type };
  for (const [field, kind] of Object.entries(shape)) {
    const problem = checkField(kind, record[field]);
    if (problem) return { ok: false, field, error: `${type}.${field} ${problem}` };
    if (record[field] !== undefined) value[field] = record[field];
  }
  return { ok: true, value: value as T };
}

export function parseRenderMessage(text: string): Parsed<RenderToDispatcher> {
  return parseWith<RenderToDispatcher>(RENDER_TO_DISPATCHER, text);
}

export function parseDispatcherMessage(text: string): Parsed<DispatcherToRender> {
  return parseWith<DispatcherToRender>(DISPATCHER_TO_RENDER, text);
}

/** Builds a control message; the type parameter keeps the fields honest at compile time. */
export function encode(message: RenderToDispatcher | DispatcherToRender): string {
  return JSON.stringify(message);
}

export function isWebSocketUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'ws:' || url.protocol === 'wss:';
  } catch {
    return false;
  }
}

/** The URL the dispatcher hands a browser: the server's base URL with the ticket added. */
export function ticketUrl(baseUrl: string, ticket: string): string {
  const url = new URL(baseUrl);
  url.searchParams.set(TICKET_PARAM, ticket);
  return url.toString();
}

/**
 * The dispatcher's reply to a text message on /stream: the tutorial has exactly one request, so
 * anything else is named back to the sender as an error (one text message, never a close).
 */
export function streamErrorReply(received: string): string {
  const shown = received.length > 64 ? `${received.slice(0, 64)}…` : received;
  return `error: unknown request ${JSON.stringify(shown)}; send "${GET_SERVER_URL}"`;
}
