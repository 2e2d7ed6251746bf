// One browser's /stream connection. The tutorial's plain `get_server_url` is answered in plain
// text (a URL or `none`); the JSON form may carry a request id, a session for sticky return, and
// `wait` to stand in the waiting room instead of being told none.

import { NONE, encode, parseStreamRequest, type DispatcherToBrowser } from '../common/protocol.ts';
import type { Allocator } from './allocator.ts';
import type { Link, Session } from './control-session.ts';
import type { DispatcherEvents, EventSource } from './events.ts';
import type { WaitingRoom } from './waiting-room.ts';

export interface StreamContext {
  allocator: Allocator;
  room: WaitingRoom;
  events: EventSource<DispatcherEvents>;
}

export function openStreamSession({ allocator, room, events }: StreamContext, link: Link): Session {
  const conn = crypto.randomUUID();
  let open = true;
  events.emit('connection.new', { id: conn });
  const send = (message: DispatcherToBrowser) => {
    if (open) link.send(encode(message));
  };

  async function message(text: string): Promise<void> {
    const parsed = parseStreamRequest(text);
    if (!parsed.ok) {
      // The tutorial's channel is plain text: what is not JSON gets the plain error line.
      if (!text.startsWith('{')) return link.send(parsed.error);
      return send({ type: 'error', error: parsed.error, ...(parsed.field ? { field: parsed.field } : {}) });
    }
    const request = parsed.value;
    if (room.isWaiting(conn)) {
      return send({ type: 'error', error: 'already waiting for a server on this connection; close it to leave the queue' });
    }
    const grant = await allocator.allocate(request);
    // A page that left while its ticket was signed will never come: the server goes straight back.
    if (!open) return grant ? allocator.cancel(grant) : undefined;
    if (!request.json) return link.send(grant?.url ?? NONE);
    const requestId = request.requestId ? { requestId: request.requestId } : {};
    if (grant) return send({ type: 'server_url', url: grant.url, ...requestId });
    if (!request.wait) return send({ type: 'none', reason: 'no render server is free', ...requestId });
    const joined = room.join(conn, request, send);
    if (!joined.ok) send({ type: 'none', reason: joined.reason, ...requestId });
  }

  function closed(): void {
    open = false;
    room.leave(conn);
    events.emit('connection.lost', { id: conn });
  }

  return { message, closed };
}
