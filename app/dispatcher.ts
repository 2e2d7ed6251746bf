// The dispatcher's logic, free of any runtime: it answers browsers' get_server_url, runs each
// render server's control session (register, heartbeat, client reports), signs claim tickets, and
// emits the events a program embedding it listens to. State lives in the lease store, not here.

import { sign } from 'hono/jwt';
import {
  CLOSE,
  GET_SERVER_URL,
  NONE,
  encode,
  parseRenderMessage,
  streamErrorReply,
  ticketUrl,
  type DispatcherToRender,
  type TicketClaims,
} from '../common/protocol.ts';
import { createEventSource, type DispatcherEvents } from './events.ts';
import type { LeaseStore, ServerRow } from './lease-store.ts';

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
  clock?: Clock;
}

function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function createDispatcher({ store, timings = DEFAULT_TIMINGS, clock = systemClock }: DispatcherOptions) {
  const events = createEventSource<DispatcherEvents>();
  // Which expiries were already announced: bookkeeping for events only, the store decides.
  const announcedExpired = new Set<string>();
  const log = (level: DispatcherEvents['log']['level'], message: string) => events.emit('log', { level, message });

  async function allocate(): Promise<string | null> {
    const now = clock.now();
    const claim = store.allocate(now, timings.claimMs);
    if (!claim) return null;
    const claims: TicketClaims = {
      sub: claim.id,
      jti: crypto.randomUUID(),
      iat: Math.floor(now / 1000),
      exp: Math.ceil(claim.claimExpires / 1000),
    };
    const ticket = await sign(claims, claim.key, 'HS256');
    log('info', `handed out ${claim.url} (server ${claim.id})`);
    return ticketUrl(claim.url, ticket);
  }

  /** The reply to one text message on a browser's /stream socket. */
  async function answerStream(text: string): Promise<string> {
    if (text !== GET_SERVER_URL) return streamErrorReply(text);
    return (await allocate()) ?? NONE;
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

      const row = store.setClient(serverId, conn, msg.event === 'connected', now);
      if (!row) return lostHold();
      log('info', `render server ${serverId}: client ${msg.event}`);
    }

    function closed(): void {
      if (serverId === null) return;
      const row = store.disconnect(serverId, conn, clock.now());
      // No row: a newer connection holds the lease, and this close says nothing about the server.
      if (row && !announcedExpired.delete(row.id)) events.emit('server.lost', { id: row.id, url: row.url, reason: 'closed' });
      serverId = null;
    }

    return { message, closed };
  }

  /** Announces leases that ran out since the last sweep. Allocation never depends on this. */
  function sweep(): void {
    for (const row of store.expired(clock.now())) {
      if (announcedExpired.has(row.id)) continue;
      announcedExpired.add(row.id);
      events.emit('server.lost', { id: row.id, url: row.url, reason: 'expired' });
    }
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
    streamOpened,
    streamClosed: (id: string) => events.emit('connection.lost', { id }),
    list: () => store.list(clock.now()),
    get: (id: string): ServerRow | null => store.get(id),
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
