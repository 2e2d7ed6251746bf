// The dispatcher's event API, named as in the scalable-server daemon: a program that embeds the
// dispatcher listens here, and the later flock of linked dispatchers is built on the same events.

export type LostReason = 'closed' | 'expired' | 'drained' | 'replaced';

export interface DispatcherEvents {
  /** A render server registered (or registered again after it had been lost). */
  'server.new': { id: string; url: string };
  /** A render server may no longer be handed out. */
  'server.lost': { id: string; url: string; reason: LostReason };
  /** A browser opened the /stream socket. */
  'connection.new': { id: string };
  /** A browser's /stream socket closed. */
  'connection.lost': { id: string };
  /** One log line; the dispatcher writes nothing to the console itself. `debug` is one line per hand-out or client report. */
  log: { level: 'debug' | 'info' | 'warn' | 'error'; message: string };
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
