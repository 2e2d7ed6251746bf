// One browser's /stream connection. The tutorial's plain `get_server_url` is answered in plain
// text (a URL or `none`); the JSON form may carry a request id, a session for sticky return, and
// `wait` to stand in the waiting room instead of being told none. What one page may take is
// bounded: one unclaimed server at a time (asking again returns the same one), a rate per
// address, and a share of the waiting room per address. A store that cannot be reached is an
// answer too: `none`, with the reason `store unavailable` in the JSON form. A page may also speak
// to the flock: `message` raises its events here and travels on to every linked dispatcher and
// their subscribed pages, and `subscribe` has the flock's messages sent to this page; messages are
// limited in size (by the protocol) and in rate, per connection.

import { NONE, encode, parseStreamRequest, type DispatcherToBrowser, type PageMessage, type ServerRequest } from '../common/protocol.ts';
import type { Admission } from './admission.ts';
import type { Allocator } from './allocator.ts';
import type { Link, Session } from './control-session.ts';
import type { DispatcherEvents, EventSource, RequestOutcome } from './events.ts';
import type { Relay } from './flock/relay.ts';
import { inOrder } from './in-order.ts';
import type { RateLimit } from './rate-limit.ts';
import type { StoreFailures } from './store-failures.ts';
import type { WaitingRoom } from './waiting-room.ts';

/** Who is at the other end of a socket, as far as limits are concerned. */
export interface Peer {
  /** The address limits are counted under (an IPv4 address or an IPv6 /64). */
  address: string;
  /** Why this page may not send or subscribe to the flock's messages (its origin), or null if it may. */
  flockRefusal?: string | null;
}

/** The reason given when the lease store cannot be reached. */
export const STORE_UNAVAILABLE = 'store unavailable';

export interface StreamContext {
  allocator: Allocator;
  /** Holds asks at a full fleet, so that the reports that free servers are read first. */
  admission: Admission;
  room: WaitingRoom;
  events: EventSource<DispatcherEvents>;
  rateLimit: RateLimit;
  /** Messages to the flock, counted per connection. */
  messageLimit: RateLimit;
  relay: Relay;
  failures: StoreFailures;
}

export function openStreamSession({ allocator, admission, room, events, rateLimit, messageLimit, relay, failures }: StreamContext, link: Link, peer: Peer): Session {
  const conn = crypto.randomUUID();
  let open = true;
  events.emit('connection.new', { id: conn });
  const send = (message: DispatcherToBrowser) => {
    if (open) link.send(encode(message));
  };

  const message = inOrder(handleText);

  async function handleText(text: string): Promise<void> {
    // Messages queued behind a slow one may run after the socket closed: they are for nobody.
    if (!open) return;
    const parsed = parseStreamRequest(text);
    if (!parsed.ok) {
      // The tutorial's channel is plain text: what is not JSON gets the plain error line.
      if (!text.startsWith('{')) return link.send(parsed.error);
      return send({ type: 'error', error: parsed.error, ...(parsed.field ? { field: parsed.field } : {}) });
    }
    const request = parsed.value;
    if ((request.type === 'message' || request.type === 'subscribe') && peer.flockRefusal) {
      return send({ type: 'error', error: peer.flockRefusal, field: 'type' });
    }
    if (request.type === 'message') return toFlock(request);
    if (request.type === 'subscribe') {
      relay.subscribe(conn, send);
      return send({ type: 'subscribed' });
    }
    return serverUrl(request);
  }

  function toFlock({ event, user, data }: PageMessage): void {
    const rate = messageLimit.take(conn);
    if (!rate.ok) {
      return send({ type: 'error', error: `too many messages on this connection (at most ${messageLimit.perSecond} a second): try again in ${rate.retryMs}ms`, retryMs: rate.retryMs });
    }
    relay.fromPage(conn, { event, user, data }, send);
  }

  async function serverUrl(request: ServerRequest & { json: boolean }): Promise<void> {
    const requestId = request.requestId ? { requestId: request.requestId } : {};
    const startedAt = performance.now();
    const answered = (outcome: RequestOutcome['outcome'], more: Partial<RequestOutcome> = {}) =>
      events.emit('request', { conn, requestId: request.requestId ?? null, outcome, ms: performance.now() - startedAt, ...more });
    const rate = rateLimit.take(peer.address);
    if (!rate.ok) {
      answered('error');
      const error = `too many requests from your address (at most ${rateLimit.perSecond} a second): try again in ${rate.retryMs}ms`;
      if (!request.json) return link.send(`error: ${error}`);
      return send({ type: 'error', error, retryMs: rate.retryMs, ...requestId });
    }
    if (room.isWaiting(conn)) {
      answered('error');
      return send({ type: 'error', error: 'already waiting for a server on this connection; close it to leave the queue' });
    }
    try {
      // A page that left while its ask was held is handed nothing (it may be a dispatcher shutting down).
      const grant = await admission.admit(() => (open ? allocator.allocate({ ...request, conn }) : Promise.resolve(null)));
      // A page that left while its ticket was signed will never come: the server goes straight back.
      if (!open) return grant ? await allocator.cancel(grant) : undefined;
      admission.found(!grant);
      if (grant) answered('url', { serverId: grant.serverId, ...(grant.lender ? { lender: grant.lender } : {}) });
      else if (!request.json || !request.wait) answered('none');
      if (!request.json) return link.send(grant?.url ?? NONE);
      if (grant) return send({ type: 'server_url', url: grant.url, ...requestId });
      if (!request.wait) return send({ type: 'none', reason: 'no render server is free', ...requestId });
      const joinedAt = performance.now();
      const notify = (message: DispatcherToBrowser) => {
        if (message.type === 'server_url') answered('url', { waitedMs: performance.now() - joinedAt });
        send(message);
      };
      const joined = await room.join(conn, request, notify, peer.address);
      answered(joined.ok ? 'queued' : 'none');
      if (!joined.ok) send({ type: 'none', reason: joined.reason, ...requestId });
    } catch (error) {
      answered('none');
      failures.failed('answering a page (it was told none)', error);
      if (!request.json) return link.send(NONE);
      send({ type: 'none', reason: STORE_UNAVAILABLE, ...requestId });
    }
  }

  function closed(): Promise<void> {
    open = false;
    relay.unsubscribe(conn);
    events.emit('connection.lost', { id: conn });
    return room.leave(conn);
  }

  return { message, closed };
}
