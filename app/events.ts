// The dispatcher's event API, named as in the scalable-server daemon: a program that embeds the
// dispatcher listens here. `server.*` speaks of both kinds of server connection, render servers and
// linked dispatchers, told apart by `kind`; `message` and `evt.<code>` are the flock's messages,
// whose handlers may stop one from travelling on (`returnValue = false`).

export type LostReason = 'closed' | 'expired' | 'drained' | 'replaced';

/** What is at the other end of a server connection. */
export type ServerKind = 'render' | 'dispatcher';

/** A flock message as its handlers see it. */
export interface FlockMessage {
  /** The dispatcher it entered the flock at, and its number there. */
  origin: string;
  seq: number;
  /** Links travelled to get here (0 where it entered). */
  hops: number;
  event?: string;
  user?: string;
  data?: unknown;
}

/** Who a message came from: a page on this dispatcher, or the link it arrived on. */
export interface Connection {
  kind: 'page' | 'dispatcher';
  /** The page's connection id, or the linked dispatcher's member id. */
  id: string;
  /**
   * Answers that connection only: a page gets it as a message, a linked dispatcher raises
   * `message` (or `evt.<code>`) for it without passing it on.
   */
  send(message: { event?: string; user?: string; data?: unknown }): void;
}

/** The ids a log line is about, for structured logs (--log-format json). */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** How one get_server_url was answered, for metrics and the dashboard. */
export interface RequestOutcome {
  /** The page's connection. */
  conn: string;
  requestId: string | null;
  /** `url` a server (at once, or after waiting in line: then `waitedMs`), `none`, `queued` (stood in line), `error` (refused). */
  outcome: 'url' | 'none' | 'queued' | 'error';
  /** From the request arriving to its answer (or to its place in line). */
  ms: number;
  waitedMs?: number;
  serverId?: string;
  /** The linked dispatcher that lent the server. */
  lender?: string;
}

/** The event object of `message` and `evt.<code>`: set `returnValue = false` to stop the message here. */
export interface MessageEvent {
  event: string;
  returnValue: boolean;
  message: FlockMessage;
  connection: Connection | null;
}

export interface DispatcherEvents {
  /** A render server registered (or registered again after it had been lost), or a link to a dispatcher came up. */
  'server.new': { kind: ServerKind; id: string; url: string };
  /** A render server may no longer be handed out, or a link to a dispatcher went down ('closed'). */
  'server.lost': { kind: ServerKind; id: string; url: string; reason: LostReason };
  /** A browser opened the /stream socket. */
  'connection.new': { id: string };
  /** A browser's /stream socket closed. */
  'connection.lost': { id: string };
  /** One log line; the dispatcher writes nothing to the console itself. `debug` is one line per hand-out or client report. */
  log: { level: 'debug' | 'info' | 'warn' | 'error'; message: string; fields?: LogFields };
  /** A page's get_server_url was answered. */
  request: RequestOutcome;
  /** A render server's heartbeat was written. */
  heartbeat: { serverId: string };
  /** A flock message with no event type (or any, with noEvents), once per message. */
  message: MessageEvent;
  /** A flock message whose event type is `<code>`, instead of `message`. */
  [event: `evt.${string}`]: MessageEvent;
}

type Listener<T> = (event: T) => void;

export interface EventSource<E> {
  on<K extends keyof E>(name: K, listener: Listener<E[K]>): () => void;
  emit<K extends keyof E>(name: K, event: E[K]): void;
}

/** A small typed emitter; a listener that throws is reported on `log` and never breaks the caller. */
export function createEventSource<E extends { log: DispatcherEvents['log'] }>(): EventSource<E> {
  const listeners = new Map<keyof E, Set<Listener<never>>>();

  function on<K extends keyof E>(name: K, listener: Listener<E[K]>): () => void {
    let set = listeners.get(name);
    if (!set) listeners.set(name, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  function emit<K extends keyof E>(name: K, event: E[K]): void {
    for (const listener of listeners.get(name) ?? []) {
      try {
        (listener as Listener<E[K]>)(event);
      } catch (error) {
        if (name !== 'log') emit('log', { level: 'error', message: `listener for ${String(name)} threw: ${error}` } as E['log']);
      }
    }
  }

  return { on, emit };
}
