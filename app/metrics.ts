// The dispatcher's Prometheus metrics (prom-client, one registry per dispatcher so that several in
// one process stay apart). Nothing in the dispatcher calls into this file: it listens to the
// dispatcher's events (requests answered, heartbeats, servers lost by kind) and times the lease
// store's calls through a wrapper, and reads the gauges (servers by state, the waiting line, the
// flock's links) when scraped. What is observed on every request or store call goes into a
// HotHistogram (hot-histogram.ts): prom-client's own cost more than the calls they timed.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Dispatcher } from './dispatcher.ts';
import { createHotHistogram } from './hot-histogram.ts';
import type { LeaseStore } from './lease-store.ts';

/** Seconds: a hand-out is about a millisecond, a store call less; the tail is what matters. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const WAIT_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

export function createMetrics() {
  const registry = new Registry();
  const registers = [registry];
  // The process's own (CPU, memory, event loop) under their usual names, as dashboards expect them.
  collectDefaultMetrics({ register: registry });

  const handouts = new Counter({ name: 'render_dispatch_handouts_total', help: 'Render servers handed to pages, by where they came from', labelNames: ['source'] as const, registers });
  const nones = new Counter({ name: 'render_dispatch_none_total', help: 'get_server_url answered none (no server free, store unavailable, waiting room full)', registers });
  const refused = new Counter({ name: 'render_dispatch_requests_refused_total', help: 'get_server_url refused (rate limit, already waiting)', registers });
  const queued = new Counter({ name: 'render_dispatch_queued_total', help: 'Pages that stood in the waiting room', registers });
  const latency = createHotHistogram('render_dispatch_request_duration_seconds', 'From a get_server_url arriving to its answer (or its place in line)', LATENCY_BUCKETS);
  const answered = latency.series({});
  const waited = new Histogram({ name: 'render_dispatch_wait_seconds', help: 'How long pages stood in the waiting room before a server', buckets: WAIT_BUCKETS, registers });
  const heartbeats = new Counter({ name: 'render_dispatch_heartbeats_total', help: 'Render server heartbeats written', registers });
  const lost = new Counter({
    name: 'render_dispatch_servers_lost_total', help: 'Render servers lost, by how it was found: closed, expired (the lease ran out), drained, replaced', labelNames: ['reason'] as const, registers,
  });
  const registered = new Counter({ name: 'render_dispatch_servers_registered_total', help: 'Render servers that registered (or came back)', registers });
  const connections = new Gauge({ name: 'render_dispatch_page_connections', help: 'Pages connected to /stream', registers });
  const storeCalls = createHotHistogram('render_dispatch_store_duration_seconds', 'Lease store calls, by method', LATENCY_BUCKETS);
  // Every label value from the start, so that a rate over a series that has not moved yet is 0, not absent.
  for (const source of ['local', 'lent']) handouts.inc({ source }, 0);
  for (const reason of ['closed', 'expired', 'drained', 'replaced']) lost.inc({ reason }, 0);
  const storeErrors = new Counter({ name: 'render_dispatch_store_errors_total', help: 'Lease store calls that failed, by method', labelNames: ['method'] as const, registers });

  return {
    registry,
    /** The observer of one lease store method's calls (see timedStore). */
    storeCall(method: string): (seconds: number, failed: boolean) => void {
      const observe = storeCalls.series({ method });
      return (seconds, failed) => {
        observe(seconds);
        if (failed) storeErrors.inc({ method });
      };
    },
    /** Counts what `dispatcher` does from now on, and reads its gauges when scraped. */
    watch(dispatcher: Dispatcher, store: LeaseStore): void {
      const { events } = dispatcher;
      events.on('request', ({ outcome, ms, waitedMs, lender }) => {
        if (outcome === 'url') handouts.inc({ source: lender ? 'lent' : 'local' });
        if (outcome === 'none') nones.inc();
        if (outcome === 'error') refused.inc();
        if (outcome === 'queued') queued.inc();
        if (waitedMs !== undefined) waited.observe(waitedMs / 1000);
        else answered(ms / 1000);
      });
      events.on('heartbeat', () => heartbeats.inc());
      events.on('server.lost', ({ kind, reason }) => kind === 'render' && lost.inc({ reason }));
      events.on('server.new', ({ kind }) => kind === 'render' && registered.inc());
      events.on('connection.new', () => connections.inc());
      events.on('connection.lost', () => connections.dec());

      new Gauge({
        name: 'render_dispatch_servers', help: 'Render servers by state, as of the scrape', labelNames: ['state'] as const, registers,
        async collect() {
          for (const [state, n] of Object.entries(await dispatcher.countByState())) this.set({ state }, n);
        },
      });
      new Gauge({
        name: 'render_dispatch_waiting_pages', help: 'Pages in the waiting room (every dispatcher on the store)', registers,
        async collect() {
          this.set(await store.waiting.size());
        },
      });
      new Gauge({
        name: 'render_dispatch_flock_links', help: 'Links to other dispatchers that are up', registers,
        collect() {
          this.set(dispatcher.flock.view().links.filter((link) => link.state === 'up').length);
        },
      });
    },
    async text(): Promise<string> {
      const hot = [latency.text(), storeCalls.text()].filter(Boolean).join('\n\n');
      return `${await registry.metrics()}${hot ? `\n${hot}\n` : ''}`;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The store with every asynchronous call timed. The methods are the interface's (a new one is
 * a compile error here until it is timed or listed as not worth it).
 */
export function timedStore(store: LeaseStore, observer: Metrics['storeCall']): LeaseStore {
  const time = <A extends unknown[], R>(method: string, fn: (...args: A) => Promise<R>) => {
    const observe = observer(method);
    return (...args: A): Promise<R> => {
      const started = performance.now();
      let call: Promise<R>;
      try {
        call = Promise.resolve(fn(...args));
      } catch (error) {
        call = Promise.reject(error);
      }
      return call.then(
        (value) => {
          observe((performance.now() - started) / 1000, false);
          return value;
        },
        (error: unknown) => {
          observe((performance.now() - started) / 1000, true);
          throw error;
        },
      );
    };
  };
  return {
    engine: store.engine,
    location: store.location,
    now: time('now', store.now),
    register: time('register', store.register),
    allocate: time('allocate', store.allocate),
    allocateForSession: time('allocateForSession', store.allocateForSession),
    pending: time('pending', store.pending),
    heartbeat: time('heartbeat', store.heartbeat),
    heartbeats: time('heartbeats', store.heartbeats),
    setClient: time('setClient', store.setClient),
    release: time('release', store.release),
    drain: time('drain', store.drain),
    undrain: time('undrain', store.undrain),
    disconnect: time('disconnect', store.disconnect),
    expired: time('expired', store.expired),
    get: time('get', store.get),
    liveCount: time('liveCount', store.liveCount),
    freeCount: time('freeCount', store.freeCount),
    all: time('all', store.all),
    list: time('list', store.list),
    purge: time('purge', store.purge),
    maintain: time('maintain', store.maintain),
    requests: {
      find: time('requests.find', store.requests.find),
      save: time('requests.save', store.requests.save),
      forget: time('requests.forget', store.requests.forget),
      prune: time('requests.prune', store.requests.prune),
    },
    waiting: {
      join: time('waiting.join', store.waiting.join),
      leave: time('waiting.leave', store.waiting.leave),
      head: time('waiting.head', store.waiting.head),
      standings: time('waiting.standings', store.waiting.standings),
      size: time('waiting.size', store.waiting.size),
      sizeFrom: time('waiting.sizeFrom', store.waiting.sizeFrom),
    },
    keepAlive: time('keepAlive', store.keepAlive),
    onChange: (listener) => store.onChange(listener),
    ready: time('ready', store.ready),
    close: () => store.close(),
  } satisfies LeaseStore;
}
