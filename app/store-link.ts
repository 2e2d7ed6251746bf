// A lease store across a process boundary. With `--workers N` on a SQLite file, the primary holds
// the file and each worker reaches its view of it through a message channel (Bun's IPC): one
// writer process, so the workers never contend for the file's lock (bench/workers.ts has the
// figures that chose this). `serveStore` answers one worker's calls on its view; `linkedStore` is
// the worker's LeaseStore, every method a call and its answer, and the view's change notices
// passed on. Nothing here knows the engine: any LeaseStore can be served.

import type { Change, LeaseStore, RequestMemo, WaitingList } from './lease-store.ts';

/** One end of a message channel whose messages arrive in order (Bun's IPC, or a pair in tests). */
export interface Channel {
  send(message: LinkMessage): void;
  /** Returns the unsubscribe. */
  onMessage(listener: (message: LinkMessage) => void): () => void;
}

export type LinkMessage =
  /** `unset`: the places of arguments left undefined (JSON would make them null, which is not "the default"). */
  | { t: 'call'; id: number; method: string; args: unknown[]; unset?: number[] }
  | { t: 'result'; id: number; value: unknown }
  | { t: 'error'; id: number; name: string; message: string }
  | { t: 'change'; change: Change };

// The store's methods by path, as called through the link: everything but the synchronous members.
const METHODS = [
  'now', 'register', 'allocate', 'allocateForSession', 'pending', 'heartbeat', 'heartbeats', 'setClient', 'release',
  'drain', 'undrain', 'disconnect', 'expired', 'get', 'liveCount', 'freeCount', 'all', 'list', 'purge', 'maintain', 'keepAlive', 'ready', 'close',
] as const satisfies readonly (keyof LeaseStore)[];
const MEMO_METHODS = ['find', 'save', 'forget', 'prune'] as const satisfies readonly (keyof RequestMemo)[];
const WAITING_METHODS = ['join', 'leave', 'head', 'standings', 'size', 'sizeFrom'] as const satisfies readonly (keyof WaitingList)[];

type Callable = (...args: unknown[]) => Promise<unknown>;

function lookup(store: LeaseStore, method: string): Callable | null {
  const [scope, name] = method.includes('.') ? method.split('.', 2) : ['', method];
  const table: Record<string, { of: object; names: readonly string[] }> = {
    '': { of: store, names: METHODS },
    requests: { of: store.requests, names: MEMO_METHODS },
    waiting: { of: store.waiting, names: WAITING_METHODS },
  };
  const entry = Object.hasOwn(table, scope) ? table[scope] : null;
  if (!entry || !entry.names.includes(name)) return null;
  const fn = (entry.of as Record<string, Callable>)[name];
  return fn.bind(entry.of);
}

/** Answers the calls arriving on `channel` with `store`, and passes its change notices on. Returns the stop. */
export function serveStore(store: LeaseStore, channel: Channel): () => void {
  // The other end may be gone by the time an answer is ready: its answers go nowhere.
  const send = (message: LinkMessage) => {
    try {
      channel.send(message);
    } catch {
      // nobody to tell
    }
  };
  const stopListening = channel.onMessage((message) => {
    if (message?.t !== 'call') return;
    const { id, method, args, unset = [] } = message;
    const fn = typeof method === 'string' && Array.isArray(args) ? lookup(store, method) : null;
    if (!fn) {
      send({ t: 'error', id, name: 'TypeError', message: `no store method "${method}" taking an argument list` });
      return;
    }
    for (const index of Array.isArray(unset) ? unset : []) if (Number.isInteger(index) && index >= 0 && index < args.length) args[index] = undefined;
    Promise.resolve()
      .then(() => fn(...args))
      .then(
        (value) => send({ t: 'result', id, value }),
        (error: unknown) => {
          const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
          send({ t: 'error', id, name, message });
        },
      );
  });
  const stopChanges = store.onChange((change) => channel.send({ t: 'change', change }));
  return () => {
    stopListening();
    stopChanges();
  };
}

/** The error a call gets when the process holding the store is gone. */
export class StoreLinkClosed extends Error {
  constructor() {
    super('the lease store link is closed (the primary process holding the file is gone)');
    this.name = 'StoreLinkClosed';
  }
}

/**
 * A LeaseStore whose every call goes over `channel` to a `serveStore` end. `engine` and `location`
 * are the served store's, for logs. `close` closes the served view and the link; `disconnected`
 * is for when the other end went away (every call then fails with StoreLinkClosed).
 */
export function linkedStore(channel: Channel, served: { engine: string; location: string }): LeaseStore & { disconnected(): void } {
  let nextId = 1;
  let closed = false;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const listeners = new Set<(change: Change) => void>();
  const stop = channel.onMessage((message) => {
    if (message.t === 'change') {
      for (const listener of listeners) listener(message.change);
      return;
    }
    if (message.t !== 'result' && message.t !== 'error') return;
    const call = pending.get(message.id);
    if (!call) return;
    pending.delete(message.id);
    if (message.t === 'result') call.resolve(message.value);
    else call.reject(Object.assign(new Error(message.message), { name: message.name }));
  });
  const call = (method: string) =>
    (...args: unknown[]) =>
      new Promise((resolve, reject) => {
        if (closed) return reject(new StoreLinkClosed());
        const id = nextId++;
        // Undefined means "the default": trailing ones are dropped, others are named.
        while (args.length && args[args.length - 1] === undefined) args.pop();
        const unset = args.flatMap((arg, index) => (arg === undefined ? [index] : []));
        try {
          channel.send({ t: 'call', id, method, args, ...(unset.length ? { unset } : {}) });
          pending.set(id, { resolve, reject });
        } catch (error) {
          reject(error instanceof Error ? error : new StoreLinkClosed());
        }
      });
  const methods = (names: readonly string[], prefix = '') => Object.fromEntries(names.map((name) => [name, call(prefix + name)]));
  const disconnected = () => {
    closed = true;
    stop();
    for (const { reject } of pending.values()) reject(new StoreLinkClosed());
    pending.clear();
  };
  return {
    ...(methods(METHODS) as unknown as Pick<LeaseStore, (typeof METHODS)[number]>),
    engine: served.engine,
    location: served.location,
    requests: methods(MEMO_METHODS, 'requests.') as unknown as RequestMemo,
    waiting: methods(WAITING_METHODS, 'waiting.') as unknown as WaitingList,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      if (closed) return;
      // Gives up this dispatcher's view (its places in the waiting line); the link goes either way.
      await call('close')().catch(() => {});
      disconnected();
    },
    disconnected,
  };
}
