// The dispatcher's logic, free of any runtime: it answers browsers' get_server_url, runs each
// render server's control session (register, heartbeat, client reports, drain), signs claim
// tickets, and emits the events a program embedding it listens to. State lives in the lease
// store; the only memory here is which expiries were announced and which requests are in flight.

import { sign } from 'hono/jwt';
import {
  CLOSE,
  NONE,
  encode,
  parseRenderMessage,
  parseStreamRequest,
  ticketUrl,
  type DispatcherToRender,
  type StreamAnswer,
  type TicketClaims,
} from '../common/protocol.ts';
import { createEventSource, type DispatcherEvents } from './events.ts';
import type { LeaseStore, ServerRow } from './lease-store.ts';
import { viewOf, type ServerView } from './server-view.ts';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface LeaseTimings {
  /** How often render servers are told to heartbeat. */
  heartbeatMs: number;
  /** How long a lease lasts after each heartbeat. */
  ttlMs: number;
  /** How long a handed-out server waits for its client before it returns to the pool. */
  claimMs: number;
}

export const DEFAULT_TIMINGS: LeaseTimings = { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 };

/** A server that can reach less than this share of its target fps is not handed out. */
export const DEFAULT_MIN_HEALTH = 0.2;

/** One render server's control socket, as the runtime adapter presents it. */
export interface ControlLink {
  send(text: string): void;
  close(code: number, reason: string): void;
}

export interface ControlSession {
  message(text: string): Promise<void>;
  closed(): void;
}

export interface DispatcherOptions {
  store: LeaseStore;
  timings?: LeaseTimings;
  minHealth?: number;
  clock?: Clock;
}

export type DrainResult = { ok: true; server: ServerView } | { ok: false; status: 404 | 409; reason: string };

function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function createDispatcher({ store, timings = DEFAULT_TIMINGS, minHealth = DEFAULT_MIN_HEALTH, clock = systemClock }: DispatcherOptions) {
  const events = createEventSource<DispatcherEvents>();
  // Which expiries were already announced: bookkeeping for events only, the store decides.
  const announcedExpired = new Set<string>();
  // Requests with an id whose answer is being signed: a retry that overtakes the first attempt
  // waits for it instead of reserving a second server. The answer itself is kept in the store.
  const inFlight = new Map<string, Promise<string | null>>();
  const log = (level: DispatcherEvents['log']['level'], message: string) => events.emit('log', { level, message });

  async function reserve(requestId: string | null): Promise<string | null> {
    const now = clock.now();
    const claim = store.allocate(now, timings.claimMs, minHealth);
    if (!claim) return null;
    const claims: TicketClaims = {
      sub: claim.id,
      jti: crypto.randomUUID(),
      iat: Math.floor(now / 1000),
      exp: Math.ceil(claim.claimExpires / 1000),
    };
    const url = ticketUrl(claim.url, await sign(claims, claim.key, 'HS256'));
    if (requestId) store.requests.save(requestId, { serverId: claim.id, url }, claim.claimExpires);
    log('info', `handed out ${claim.url} (server ${claim.id})${requestId ? ` for request ${requestId}` : ''}`);
    return url;
  }

  /** The URL (with ticket) of a free server, or null. A known request id gets its earlier answer. */
  function allocate(requestId: string | null = null): Promise<string | null> {
    if (!requestId) return reserve(null);
    const remembered = store.requests.find(requestId, clock.now());
    if (remembered) return Promise.resolve(remembered.url);
    let pending = inFlight.get(requestId);
    if (!pending) {
      pending = reserve(requestId).finally(() => inFlight.delete(requestId));
      inFlight.set(requestId, pending);
    }
    return pending;
  }

  /** The reply to one text message on a browser's /stream socket: plain text for the tutorial's request, JSON for the extension. */
  async function answerStream(text: string): Promise<string> {
    const parsed = parseStreamRequest(text);
    if (!parsed.ok) {
      // The tutorial's channel is plain text: a non-JSON message gets the plain error line.
      if (!text.startsWith('{')) return parsed.error;
      return JSON.stringify({ type: 'error', error: parsed.error, ...(parsed.field ? { field: parsed.field } : {}) } satisfies StreamAnswer);
    }
    const { json, requestId } = parsed.value;
    const url = await allocate(requestId);
    if (!json) return url ?? NONE;
    const id = requestId ? { requestId } : {};
    const answer: StreamAnswer = url ? { type: 'server_url', url, ...id } : { type: 'none', reason: 'no render server is free', ...id };
    return JSON.stringify(answer);
  }

  function announceDrain(row: ServerRow): void {
    events.emit('server.lost', { id: row.id, url: row.url, reason: 'drained' });
    log('info', `render server ${row.id} draining`);
  }

  function openControl(link: ControlLink): ControlSession {
    const conn = crypto.randomUUID();
    let serverId: string | null = null;
    const reply = (message: DispatcherToRender) => link.send(encode(message));
    const refuse = (error: string, field?: string) => reply({ type: 'error', error, ...(field ? { field } : {}) });

    function lostHold(): void {
      // Another control connection registered this id since: this one speaks for nobody.
      refuse('this connection no longer holds the lease (replaced by a newer registration)');
      link.close(CLOSE.replaced, 'lease held by a newer connection');
      serverId = null;
    }

    async function message(text: string): Promise<void> {
      const parsed = parseRenderMessage(text);
      if (!parsed.ok) return refuse(parsed.error, parsed.field);
      const msg = parsed.value;
      const now = clock.now();

      if (msg.type === 'register') {
        if (serverId !== null && serverId !== msg.id) {
          return refuse(`this connection is registered as ${serverId}; open a new one for ${msg.id}`, 'id');
        }
        const result = store.register({
          id: msg.id, url: msg.url, conn, client: msg.client, targetFps: msg.targetFps,
          newKey: randomKey(), now, ttlMs: timings.ttlMs,
        });
        serverId = msg.id;
        announcedExpired.delete(msg.id);
        for (const old of result.replaced) events.emit('server.lost', { ...old, reason: 'replaced' });
        reply({
          type: 'registered', id: msg.id, key: result.row.key,
          heartbeatMs: timings.heartbeatMs, ttlMs: timings.ttlMs, expiresAt: result.row.leaseExpires,
        });
        if (result.isNew) events.emit('server.new', { id: msg.id, url: msg.url });
        log('info', `render server ${msg.id} registered at ${msg.url} (${result.row.state})`);
        return;
      }

      if (serverId === null) return refuse(`send register before ${msg.type}`, 'type');

      if (msg.type === 'heartbeat') {
        const row = store.heartbeat(serverId, conn, now, timings.ttlMs, msg);
        if (!row) return lostHold();
        if (announcedExpired.delete(serverId)) events.emit('server.new', { id: row.id, url: row.url });
        return reply({ type: 'lease', expiresAt: row.leaseExpires });
      }

      if (msg.type === 'drain') {
        const row = store.drain(serverId, now);
        if (row) announceDrain(row);
        return;
      }

      const row = store.setClient(serverId, conn, msg.event === 'connected' ? 'connected' : 'none', now);
      if (!row) return lostHold();
      log('info', `render server ${serverId}: client ${msg.event}`);
    }

    function closed(): void {
      if (serverId === null) return;
      const before = store.get(serverId);
      const row = store.disconnect(serverId, conn, clock.now());
      // No row: a newer connection holds the lease, and this close says nothing about the server.
      // A drained or expired server was announced lost already.
      if (row && before?.state !== 'draining' && !announcedExpired.delete(row.id)) {
        events.emit('server.lost', { id: row.id, url: row.url, reason: 'closed' });
      }
      serverId = null;
    }

    return { message, closed };
  }

  /** Announces leases that ran out since the last sweep and forgets old request ids. Allocation never depends on this. */
  function sweep(): void {
    const now = clock.now();
    for (const row of store.expired(now)) {
      if (announcedExpired.has(row.id)) continue;
      announcedExpired.add(row.id);
      events.emit('server.lost', { id: row.id, url: row.url, reason: 'expired' });
    }
    store.requests.prune(now);
  }

  function drain(id: string): DrainResult {
    const now = clock.now();
    const existing = store.get(id);
    if (!existing) return { ok: false, status: 404, reason: `no render server ${id}` };
    if (existing.state === 'offline') return { ok: false, status: 409, reason: `render server ${id} is offline` };
    const row = store.drain(id, now);
    if (row) announceDrain(row);
    return { ok: true, server: viewOf(row ?? existing, now, minHealth) };
  }

  function undrain(id: string): DrainResult {
    const now = clock.now();
    const existing = store.get(id);
    if (!existing) return { ok: false, status: 404, reason: `no render server ${id}` };
    const row = store.undrain(id, now);
    if (!row) return { ok: false, status: 409, reason: `render server ${id} is not draining` };
    events.emit('server.new', { id: row.id, url: row.url });
    return { ok: true, server: viewOf(row, now, minHealth) };
  }

  let streams = 0;
  function streamOpened(): string {
    const id = `c${++streams}`;
    events.emit('connection.new', { id });
    return id;
  }

  return {
    events,
    timings,
    allocate,
    answerStream,
    openControl,
    sweep,
    drain,
    undrain,
    streamOpened,
    streamClosed: (id: string) => events.emit('connection.lost', { id }),
    list: (): ServerView[] => {
      const now = clock.now();
      return store.all().map((row) => viewOf(row, now, minHealth));
    },
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
