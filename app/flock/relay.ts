// The flock's relay, as one dispatcher runs it: every message reaches every member of the flock
// exactly once, in any topology (a line, a ring, a full mesh), and never goes back to the member
// it started at. Each message carries its origin and the origin's sequence number; a member hands
// what it has not seen before to its handlers and passes it on to every link but the one it came
// by and the origin's, while it has travelled fewer than `maxHops` links; a copy that arrives by a
// second path is dropped (seen.ts), unless it travelled fewer links than the first: then it is
// passed on again (not handled again), since the first may have run out of hops before it reached
// everyone within `maxHops` of the origin. A user message raises `message`, or `evt.<code>` when it has an
// event type (unless noEvents), and is delivered to this dispatcher's subscribed pages; a handler
// that sets `returnValue = false` stops it here. The dispatchers' own messages (capacity,
// lending) go to the handlers registered for their kind. No runtime: links are given to it.

import { flockMessageProblem, type DeliveredMessage, type FlockBody, type RelayFrame } from '../../common/protocol.ts';
import type { Connection, DispatcherEvents, EventSource, FlockMessage, MessageEvent } from '../events.ts';
import { createSeen } from './seen.ts';

/** A link whose other end has proved itself: what the relay needs of it. */
export interface LinkEnd {
  /** The member id of the dispatcher at the other end. */
  peer: string;
  /** Where it is, for /v1/flock and events: the URL dialled, or the address it came from. */
  address: string;
  direction: 'in' | 'out';
  send(frame: RelayFrame): void;
}

export interface LinkStats {
  peer: string;
  address: string;
  direction: 'in' | 'out';
  since: number;
  /** Frames received, and those of them that were copies of messages handled already. */
  received: number;
  duplicates: number;
  /** Frames sent on. */
  sent: number;
  /** Frames that came back to this member though it started them: 0 unless the relay is wrong. */
  echoes: number;
}

export interface AttachedLink {
  receive(frame: RelayFrame): void;
  detach(): void;
  readonly stats: LinkStats;
}

export type UserMessage = Extract<FlockBody, { kind: 'message' }>;
type Internal = Exclude<FlockBody, { kind: 'message' }>;

/** Where one of the dispatchers' own messages came from. */
export interface Sender {
  origin: string;
  hops: number;
}

export interface RelayOptions {
  /** This dispatcher's id in the flock. */
  member: string;
  maxHops: number;
  /** Raise `message` for every message, never `evt.<code>`. */
  noEvents: boolean;
  events: EventSource<DispatcherEvents>;
  now(): number;
}

interface Entry extends AttachedLink {
  end: LinkEnd;
  stats: LinkStats;
}

export function createRelay({ member, maxHops, noEvents, events, now }: RelayOptions) {
  const seen = createSeen({ now });
  const links = new Set<Entry>();
  const pages = new Map<string, (message: DeliveredMessage) => void>();
  const handlers = new Map<Internal['kind'], (body: never, from: Sender) => void>();
  const linkChanged = new Set<() => void>();
  let seq = 0;

  function sendOn(entry: Entry, frame: RelayFrame): void {
    entry.stats.sent++;
    entry.end.send(frame);
  }

  /** Passes a frame on to every link but the one it came by and the origin's, if it may travel further. */
  function forward(frame: RelayFrame, from: Entry | null): void {
    if (frame.hops >= maxHops) return;
    const next: RelayFrame = { ...frame, hops: frame.hops + 1 };
    for (const entry of links) if (entry !== from && entry.end.peer !== frame.origin) sendOn(entry, next);
  }

  /** Raises `message` or `evt.<code>`; false if a handler stopped it. */
  function raise(message: FlockMessage, connection: Connection | null): boolean {
    const name = message.event !== undefined && !noEvents ? (`evt.${message.event}` as const) : 'message';
    const event: MessageEvent = { event: name, returnValue: true, message, connection };
    events.emit(name, event);
    return event.returnValue !== false;
  }

  function deliver(message: FlockMessage, exceptPage: string | null): void {
    const delivered: DeliveredMessage = { type: 'message', from: message.origin, ...userFields(message) };
    for (const [conn, send] of pages) if (conn !== exceptPage) send(delivered);
  }

  /** The dispatcher a message started at, as its handlers' `connection`: an answer goes to it alone. */
  function originConnection(origin: string): Connection {
    return { kind: 'dispatcher', id: origin, send: (message) => forward(frameOf(checked(message), origin), null) };
  }

  function handleInternal(body: Internal, frame: RelayFrame): void {
    (handlers.get(body.kind) as ((body: Internal, from: Sender) => void) | undefined)?.(body, { origin: frame.origin, hops: frame.hops });
  }

  function receive(entry: Entry, frame: RelayFrame): void {
    entry.stats.received++;
    if (frame.origin === member) {
      entry.stats.echoes++;
      return;
    }
    const offer = seen.offer(frame.origin, frame.seq, frame.hops);
    if (offer !== 'first') entry.stats.duplicates++;
    if (offer === 'seen') return;
    const { body } = frame;
    if (offer === 'shorter') {
      // Handled already; passed on further than the first copy could go. What a member says of
      // itself (its capacity) is taken again for the shorter distance.
      if (frame.to === undefined && body.kind === 'capacity') handleInternal(body, frame);
      if (frame.to !== member) forward(frame, entry);
      return;
    }
    if (frame.to !== undefined && frame.to !== member) return forward(frame, entry);
    if (body.kind !== 'message') {
      handleInternal(body, frame);
      if (frame.to === undefined) forward(frame, entry);
      return;
    }
    const message: FlockMessage = { origin: frame.origin, seq: frame.seq, hops: frame.hops, ...userFields(body) };
    const passOn = raise(message, originConnection(frame.origin));
    // A message for this member alone is answered here, never passed on.
    if (frame.to !== undefined) return;
    if (!passOn) return seen.stop(frame.origin, frame.seq);
    deliver(message, null);
    forward(frame, entry);
  }

  /** A message starting here, numbered. */
  function frameOf(body: FlockBody, to?: string): RelayFrame {
    return { type: 'relay', origin: member, seq: ++seq, hops: 0, ...(to !== undefined ? { to } : {}), body };
  }

  /** What handlers and pages here see of a user message starting here. */
  function ownMessage(frame: RelayFrame & { body: UserMessage }): FlockMessage {
    return { origin: member, seq: frame.seq, hops: 0, ...userFields(frame.body) };
  }

  return {
    member,
    /** A link came up: from now on frames go both ways. Raises `server.new` (kind dispatcher). */
    attach(end: LinkEnd, { quiet = false }: { quiet?: boolean } = {}): AttachedLink {
      const stats: LinkStats = { peer: end.peer, address: end.address, direction: end.direction, since: now(), received: 0, duplicates: 0, sent: 0, echoes: 0 };
      const entry: Entry = {
        end,
        stats,
        receive: (frame) => receive(entry, frame),
        detach: () => {
          if (!links.delete(entry)) return;
          if (!quiet) events.emit('server.lost', { kind: 'dispatcher', id: end.peer, url: end.address, reason: 'closed' });
          for (const listener of linkChanged) listener();
        },
      };
      links.add(entry);
      if (!quiet) events.emit('server.new', { kind: 'dispatcher', id: end.peer, url: end.address });
      for (const listener of linkChanged) listener();
      return entry;
    },

    /**
     * A message from a program embedding this dispatcher: to this dispatcher's subscribed pages and
     * the whole flock. Checked as a page's would be (TypeError): every other member would refuse it.
     */
    send(message: Omit<UserMessage, 'kind'>): void {
      const frame = frameOf(checked(message)) as RelayFrame & { body: UserMessage };
      deliver(ownMessage(frame), null);
      forward(frame, null);
    },

    /** A message from a page on this dispatcher: raised here first, then on to the other pages and the flock unless stopped. */
    fromPage(conn: string, message: Omit<UserMessage, 'kind'>, reply: (message: DeliveredMessage) => void): void {
      const frame = frameOf({ kind: 'message', ...userFields(message) }) as RelayFrame & { body: UserMessage };
      const connection: Connection = { kind: 'page', id: conn, send: (answer) => reply({ type: 'message', from: member, ...userFields(checked(answer)) }) };
      if (!raise(ownMessage(frame), connection)) return;
      deliver(ownMessage(frame), conn);
      forward(frame, null);
    },

    /** One of the dispatchers' own messages to the whole flock. */
    announce: (body: Internal): void => forward(frameOf(body), null),

    /** One of the dispatchers' own messages to one member, passed along by the others; false if there is no link at all. */
    sendTo(to: string, body: Internal): boolean {
      if (links.size === 0) return false;
      forward(frameOf(body, to), null);
      return true;
    },

    /** Handles the dispatchers' own messages of one kind (one handler a kind). */
    handle<K extends Internal['kind']>(kind: K, handler: (body: Extract<Internal, { kind: K }>, from: Sender) => void): void {
      handlers.set(kind, handler as (body: never, from: Sender) => void);
    },

    /** Called whenever a link comes up or goes down. */
    onLinkChange(listener: () => void): () => void {
      linkChanged.add(listener);
      return () => void linkChanged.delete(listener);
    },

    subscribe(conn: string, send: (message: DeliveredMessage) => void): void {
      pages.set(conn, send);
    },
    unsubscribe(conn: string): void {
      pages.delete(conn);
    },

    links: (): LinkStats[] => [...links].map((entry) => ({ ...entry.stats })),
    /** How many links are up (cheap: asked on the hand-out path). */
    linked: (): number => links.size,
  };
}

export type Relay = ReturnType<typeof createRelay>;

/** The user's fields of a message, copied so that nothing else travels with them. */
function userFields(message: { event?: string; user?: string; data?: unknown }): { event?: string; user?: string; data?: unknown } {
  return {
    ...(message.event !== undefined ? { event: message.event } : {}),
    ...(message.user !== undefined ? { user: message.user } : {}),
    ...(message.data !== undefined ? { data: message.data } : {}),
  };
}

/** A user message a program (or a handler) sends, checked as a page's would be. */
function checked(message: { event?: string; user?: string; data?: unknown }): UserMessage {
  const problem = flockMessageProblem(message);
  if (problem) throw new TypeError(problem);
  return { kind: 'message', ...userFields(message) };
}
