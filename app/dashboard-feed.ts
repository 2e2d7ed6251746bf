// What the operator's dashboard is told, live: a summary every second (hand-outs and `none`
// answers in that second, p50 and p99 dispatch latency, the waiting room's length and oldest wait,
// servers by state) with the last five minutes of them on connecting, so the charts start full;
// and the events as they happen (render servers and links new and lost, pages connecting and
// leaving), in batches four times a second so a crowd of pages cannot flood it. Counted from the
// dispatcher's events, every second whether or not a dashboard is open (in memory, so the charts
// have a past); the store is read for the line and the servers only while one is.

import type { DashboardEvent, DashboardMessage, DashboardSummary, ServerState } from '../common/protocol.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { LeaseStore } from './lease-store.ts';
import { countByState } from './server-view.ts';

const HISTORY_SECONDS = 300;
const EVENTS_EVERY_MS = 250;
const EVENTS_PER_BATCH = 200;
/** Latency samples kept per second: enough for p99, bounded under a crowd. */
const SAMPLES_PER_SECOND = 5000;
/** Counting servers by state reads every row: done this often, not every second. */
const STATES_EVERY_MS = 5000;

export interface FeedOptions {
  now(): number;
  meanSessionMs(): number | null;
}

export function createDashboardFeed(dispatcher: Dispatcher, store: LeaseStore, { now, meanSessionMs }: FeedOptions) {
  const subscribers = new Set<(message: DashboardMessage) => void>();
  const history: DashboardSummary[] = [];
  const waitingSince = new Map<string, number>();
  let second = { handouts: 0, nones: 0, samples: [] as number[] };
  let events: DashboardEvent[] = [];
  let dropped = 0;
  let states: { at: number; counts: Record<ServerState, number> } | null = null;
  let ticker: ReturnType<typeof setInterval> | undefined;
  let batcher: ReturnType<typeof setInterval> | undefined;

  const { events: source } = dispatcher;
  source.on('request', ({ conn, outcome, ms, waitedMs }) => {
    if (outcome === 'url') second.handouts++;
    if (outcome === 'none') second.nones++;
    if (outcome === 'queued') waitingSince.set(conn, now());
    if (waitedMs !== undefined) waitingSince.delete(conn);
    else if (outcome !== 'queued' && second.samples.length < SAMPLES_PER_SECOND) second.samples.push(ms);
  });
  const record = (event: Omit<DashboardEvent, 't'>) => {
    if (subscribers.size === 0) return;
    if (events.length >= EVENTS_PER_BATCH) dropped++;
    else events.push({ t: now(), ...event });
  };
  source.on('server.new', ({ kind, id, url }) => record({ name: 'server.new', kind, id, url }));
  source.on('server.lost', ({ kind, id, url, reason }) => record({ name: 'server.lost', kind, id, url, reason }));
  source.on('connection.new', ({ id }) => record({ name: 'connection.new', id }));
  source.on('connection.lost', ({ id }) => {
    waitingSince.delete(id);
    record({ name: 'connection.lost', id });
  });

  async function serverStates(): Promise<Record<ServerState, number>> {
    const t = now();
    if (!states || t - states.at >= STATES_EVERY_MS) {
      states = { at: t, counts: await dispatcher.countByState() };
    }
    return states.counts;
  }

  const lastStates = (): Record<ServerState, number> => states?.counts ?? countByState([], 0);

  /** Forces the next summary to count servers again (a drain from the dashboard shows at once). */
  const recount = () => (states = null);

  async function tick(): Promise<void> {
    const { handouts, nones, samples } = second;
    second = { handouts: 0, nones: 0, samples: [] };
    samples.sort((a, b) => a - b);
    const at = (p: number) => (samples.length ? Math.round(samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))] * 1000) / 1000 : null);
    const t = now();
    let oldest: number | null = null;
    for (const since of waitingSince.values()) oldest = oldest === null ? since : Math.min(oldest, since);
    const summary: DashboardSummary = {
      t, handouts, nones, p50: at(50), p99: at(99),
      queue: subscribers.size ? await store.waiting.size().catch(() => history.at(-1)?.queue ?? 0) : (history.at(-1)?.queue ?? 0),
      oldestWaitMs: oldest === null ? null : t - oldest,
      meanSessionMs: meanSessionMs(),
      servers: subscribers.size ? await serverStates().catch(() => lastStates()) : lastStates(),
    };
    history.push(summary);
    if (history.length > HISTORY_SECONDS) history.shift();
    for (const send of subscribers) send({ type: 'summary', summary });
  }

  function flushEvents(): void {
    if (events.length === 0 && dropped === 0) return;
    const batch: DashboardMessage = { type: 'events', events, dropped };
    events = [];
    dropped = 0;
    for (const send of subscribers) send(batch);
  }

  // Seconds are counted whether or not a dashboard is open, so history is there when one opens.
  ticker = setInterval(() => void tick(), 1000);

  return {
    /** Starts sending to `send`: the history first, then summaries and events. Returns the unsubscribe. */
    subscribe(send: (message: DashboardMessage) => void): () => void {
      send({ type: 'history', summaries: [...history] });
      subscribers.add(send);
      batcher ??= setInterval(flushEvents, EVENTS_EVERY_MS);
      return () => {
        subscribers.delete(send);
        if (subscribers.size === 0) {
          clearInterval(batcher);
          batcher = undefined;
          events = [];
          dropped = 0;
        }
      };
    },
    recount,
    stop(): void {
      clearInterval(ticker);
      clearInterval(batcher);
      subscribers.clear();
    },
  };
}

export type DashboardFeed = ReturnType<typeof createDashboardFeed>;
