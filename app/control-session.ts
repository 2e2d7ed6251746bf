// One render server's control connection: registration, heartbeats, client reports and drain,
// each a lease-store transition. Anything that may free a server wakes the waiting room. The
// connection got past the shared secret to get here; what it registers must still be its own: an
// id belongs to the process that first registered it (proved by its instance secret), and a URL
// to the live server registered on it. While the lease store cannot be reached the connection
// stays open: heartbeats that ask for an answer go unanswered until it is back, and the first one
// after extends (or revives) the lease. Only a registration that could not be stored closes it,
// to be tried again. A server's messages are handled in order, so a heartbeat with messages
// behind it is written without waiting for its batch's window.

import { CLOSE, encode, parseRenderMessage, type DispatcherToRender, type HeartbeatMessage, type RenderToDispatcher } from '../common/protocol.ts';
import type { Allocator } from './allocator.ts';
import type { Clock } from './clock.ts';
import type { DispatcherEvents, EventSource, LogFields } from './events.ts';
import type { HeartbeatBatch } from './heartbeat-batch.ts';
import { inOrder } from './in-order.ts';
import type { LeaseStore, ServerRow } from './lease-store.ts';
import type { StoreFailures } from './store-failures.ts';
import type { WaitingRoom } from './waiting-room.ts';

/** A socket as the runtime adapter presents it. */
export interface Link {
  send(text: string): void;
  close(code: number, reason: string): void;
}

export interface Session {
  message(text: string): Promise<void>;
  /** The socket closed; resolves once the store has been told. */
  closed(): Promise<void>;
}

export interface ControlContext {
  store: LeaseStore;
  timings: { heartbeatMs: number; ttlMs: number; claimMs: number };
  graceMs: number;
  clock: Clock;
  events: EventSource<DispatcherEvents>;
  allocator: Allocator;
  room: WaitingRoom;
  heartbeats: HeartbeatBatch;
  /** Expiries already announced: bookkeeping for events only, the store decides. */
  announcedExpired: Set<string>;
  announceDrain(row: ServerRow): void;
  failures: StoreFailures;
}

const DONE: Promise<void> = Promise.resolve();

function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The instance secret is kept only as its hash: the lease file never holds what proves an identity. */
async function hashInstance(instance: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(instance)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function openControlSession(ctx: ControlContext, link: Link): Session {
  const { store, timings, clock, events, announcedExpired } = ctx;
  const conn = crypto.randomUUID();
  let serverId: string | null = null;
  let open = true;
  // When the current client connected, for the waiting room's estimates.
  let clientSince: number | null = null;
  const reply = (message: DispatcherToRender) => link.send(encode(message));
  const refuse = (error: string, field?: string) => reply({ type: 'error', error, ...(field ? { field } : {}) });
  const log = (level: 'debug' | 'info', message: string, fields?: LogFields) => events.emit('log', { level, message, ...(fields ? { fields } : {}) });
  const wakeRoom = () => {
    if (ctx.room.hasWaiting()) void ctx.room.serve();
  };

  function lostHold(): void {
    // Another control connection registered this id since: this one speaks for nobody.
    refuse('this connection no longer holds the lease (replaced by a newer registration)');
    link.close(CLOSE.replaced, 'lease held by a newer connection');
    serverId = null;
  }

  // A heartbeat waits in its batch for up to the batch's window, and what the server says next
  // waits behind it (in order): a report of its client would be held that long. So a beat with
  // messages behind it does not wait for the window: neither one that joins its batch with
  // messages queued, nor one still waiting when a message comes.
  let unhandled = 0;
  const inTurn = inOrder(handleText);
  const message = (text: string): Promise<void> => {
    unhandled++;
    ctx.heartbeats.hurry(conn);
    return inTurn(text);
  };

  function failed(type: RenderToDispatcher['type'], error: unknown): void {
    ctx.failures.failed(`on a ${type} from ${serverId ?? 'a render server'}`, error);
    if (type === 'register' && serverId === null && open) link.close(CLOSE.tryAgainLater, 'store unavailable: register again');
  }

  function handleText(text: string): Promise<void> {
    unhandled--;
    const parsed = parseRenderMessage(text);
    if (!parsed.ok) return (refuse(parsed.error, parsed.field), DONE);
    const msg = parsed.value;
    // The most frequent message (10,000 a second from 10,000 servers) as one chain on its batch.
    if (msg.type !== 'heartbeat') return handle(msg).catch((error: unknown) => failed(msg.type, error));
    if (serverId === null) return (unregistered(msg.type), DONE);
    return heartbeat(serverId, msg);
  }

  function heartbeat(id: string, msg: HeartbeatMessage): Promise<void> {
    const written = ctx.heartbeats.beat(id, conn, { fps: msg.fps, frameMs: msg.frameMs, client: msg.client });
    if (unhandled > 0) ctx.heartbeats.hurry(conn);
    return written
      .then((beat) => {
        // The connection may have been replaced or closed while the batch was written.
        if (serverId !== id) return;
        if (!beat) return lostHold();
        events.emit('heartbeat', { serverId: id });
        if (announcedExpired.delete(id)) events.emit('server.new', { kind: 'render', id, url: beat.url });
        if (msg.answer) reply({ type: 'lease', expiresAt: beat.leaseExpires });
        // A server back from a freeze, or healthy again, may be what a waiting page needs.
        if (beat.state === 'ready') wakeRoom();
      })
      .catch((error: unknown) => failed('heartbeat', error));
  }

  const unregistered = (type: RenderToDispatcher['type']) => refuse(`send register before ${type}`, 'type');

  async function handle(msg: Exclude<RenderToDispatcher, HeartbeatMessage>): Promise<void> {
    if (msg.type === 'register') {
      const instanceHash = await hashInstance(msg.instance);
      if (!open) return;
      if (serverId !== null && serverId !== msg.id) {
        return refuse(`this connection is registered as ${serverId}; open a new one for ${msg.id}`, 'id');
      }
      const result = await store.register({
        id: msg.id, url: msg.url, conn, instanceHash, client: msg.client, targetFps: msg.targetFps, newKey: randomKey(), ttlMs: timings.ttlMs,
      });
      if (!result.ok) {
        events.emit('log', { level: 'warn', message: `refused a registration: ${result.conflict}` });
        refuse(`registration refused: ${result.conflict}`, result.field);
        return link.close(CLOSE.conflict, 'registration conflicts with a live render server');
      }
      serverId = msg.id;
      announcedExpired.delete(msg.id);
      for (const old of result.replaced) events.emit('server.lost', { kind: 'render', ...old, reason: 'replaced' });
      reply({
        type: 'registered', id: msg.id, key: result.row.key,
        heartbeatMs: timings.heartbeatMs, ttlMs: timings.ttlMs, claimMs: timings.claimMs, expiresAt: result.row.leaseExpires,
      });
      if (result.isNew) events.emit('server.new', { kind: 'render', id: msg.id, url: msg.url });
      log('info', `render server ${msg.id} registered at ${msg.url} (${result.row.state})`, { serverId: msg.id, url: msg.url, state: result.row.state });
      return wakeRoom();
    }

    if (serverId === null) return unregistered(msg.type);

    if (msg.type === 'drain') {
      const row = await store.drain(serverId);
      if (row) ctx.announceDrain(row);
      return;
    }

    const connected = msg.event === 'connected';
    const now = clock.now();
    if (!(await store.setClient(serverId, conn, connected ? 'connected' : 'none', ctx.graceMs))) return lostHold();
    log('debug', `render server ${serverId}: client ${msg.event}`, { serverId, client: msg.event });
    if (connected) {
      clientSince = now;
      return;
    }
    if (clientSince !== null) ctx.room.sessionEnded(now - clientSince);
    clientSince = null;
    ctx.allocator.released(serverId);
    wakeRoom();
  }

  async function disconnect(id: string): Promise<void> {
    try {
      const before = await store.get(id);
      const row = await store.disconnect(id, conn);
      // No row: a newer connection holds the lease, and this close says nothing about the server.
      // A drained or expired server was announced lost already.
      if (row && before?.state !== 'draining' && !announcedExpired.delete(row.id)) {
        events.emit('server.lost', { kind: 'render', id: row.id, url: row.url, reason: 'closed' });
      }
    } catch (error) {
      // The lease runs out by itself: the store stops handing the server out at its deadline.
      ctx.failures.failed(`marking ${id} offline (its lease lapses by itself)`, error);
    }
  }

  function closed(): Promise<void> {
    open = false;
    if (serverId === null) return Promise.resolve();
    const id = serverId;
    serverId = null;
    ctx.allocator.forget(id);
    return disconnect(id);
  }

  return { message, closed };
}
