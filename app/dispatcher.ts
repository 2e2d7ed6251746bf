// The dispatcher's logic, free of any runtime: it wires the lease store, the allocator, the
// waiting room and the sessions of render servers (control) and browsers (stream) together, and
// is the event source a program embedding the dispatcher listens to. State lives in the store;
// what is kept here is bookkeeping for events and sockets. Several dispatchers may share one store:
// what another one does that frees a server reaches this one as the store's change notice. Each
// dispatcher is also a member of a flock (app/flock/): it relays messages with the dispatchers it
// is linked to, and a site whose servers are all busy is lent one by a linked site.

import { CLOSE } from '../common/protocol.ts';
import type { Allocator } from './allocator.ts';
import { createAllocator } from './allocator.ts';
import { systemClock, type Clock } from './clock.ts';
import { openControlSession, type Link, type Session } from './control-session.ts';
import { createEventSource, type DispatcherEvents, type LogFields } from './events.ts';
import { DEFAULT_MAX_HOPS, createFlock, type FlockOptions } from './flock/flock.ts';
import { batchWindow, createHeartbeatBatch } from './heartbeat-batch.ts';
import { createAdmission } from './admission.ts';
import type { ListQuery, LeaseStore, ServerRow } from './lease-store.ts';
import { createRateLimit } from './rate-limit.ts';
import { countByState, viewOf, type ServerView } from './server-view.ts';
import { createStoreFailures } from './store-failures.ts';
import { openStreamSession, type Peer } from './stream-session.ts';
import { createWaitingRoom } from './waiting-room.ts';

export type { Clock } from './clock.ts';
export type { Link, Session } from './control-session.ts';
export type { Peer } from './stream-session.ts';

export interface LeaseTimings {
  /** How often render servers are told to heartbeat. */
  heartbeatMs: number;
  /** How long a lease lasts after each heartbeat. */
  ttlMs: number;
  /** How long a handed-out server waits for its client before it returns to the pool. */
  claimMs: number;
}

export const DEFAULT_TIMINGS: LeaseTimings = { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 };

export interface Policy {
  /** A server that can reach less than this share of its target fps is not handed out. */
  minHealth: number;
  /** How long a page's session may have its server back after leaving it. */
  graceMs: number;
  /** How many pages may wait for a server at once. */
  maxQueue: number;
  /** How many of those places pages from one address (or IPv6 /64) may hold. */
  maxWaitingPerAddress: number;
  /** get_server_url requests a second one address may make (bursts of five times that); 0 for no limit. */
  rateLimit: number;
  /** How long the rows of servers gone offline or expired are kept for operators to see. */
  retentionMs: number;
  /** Messages a second one page may send to the flock (bursts of five times that); 0 for no limit. */
  messageRate: number;
}

export const DEFAULT_POLICY: Policy = {
  minHealth: 0.1, graceMs: 15_000, maxQueue: 100, maxWaitingPerAddress: 50, rateLimit: 20, retentionMs: 10 * 60_000, messageRate: 10,
};

/** A burst is this many seconds' worth of the rate limit. */
export const BURST_SECONDS = 5;
/** How often rows past their retention are purged and the lease log cut back (more often with a shorter retention). */
const PURGE_EVERY_MS = 10_000;

export interface DispatcherOptions {
  store: LeaseStore;
  timings?: LeaseTimings;
  /** Unset fields take their defaults. */
  policy?: Partial<Policy>;
  clock?: Clock;
  /** Its place in the flock; without a secret, no other dispatcher can link to it. */
  flock?: Partial<FlockOptions>;
}

export type DrainResult = { ok: true; server: ServerView } | { ok: false; status: 404 | 409; reason: string };

export function createDispatcher({ store, timings = DEFAULT_TIMINGS, policy: given, clock = systemClock, flock: flockOptions = {} }: DispatcherOptions) {
  const policy: Policy = { ...DEFAULT_POLICY, ...given };
  const events = createEventSource<DispatcherEvents>();
  const log = (level: DispatcherEvents['log']['level'], message: string, fields?: LogFields) => events.emit('log', { level, message, ...(fields ? { fields } : {}) });
  const failures = createStoreFailures(log, () => clock.now());
  const local: Allocator = createAllocator({ store, claimMs: timings.claimMs, minHealth: policy.minHealth, log });
  const flock = createFlock(
    { secret: crypto.randomUUID(), maxHops: DEFAULT_MAX_HOPS, noEvents: false, ...flockOptions },
    { events, store, local, minHealth: policy.minHealth, claimMs: timings.claimMs, log, failed: (what, error) => failures.failed(what, error), now: () => clock.now() },
  );
  // Pages are served from this site's servers first, then from those linked sites lend.
  const allocator = flock.allocator;
  const room = createWaitingRoom({
    store, allocator, maxQueue: policy.maxQueue, maxPerAddress: policy.maxWaitingPerAddress, failed: (error) => failures.failed('serving the waiting room', error),
  });
  const rateLimit = createRateLimit({ perSecond: policy.rateLimit, burst: policy.rateLimit * BURST_SECONDS, now: () => clock.now() });
  const messageLimit = createRateLimit({ perSecond: policy.messageRate, burst: policy.messageRate * BURST_SECONDS, now: () => clock.now() });
  const announcedExpired = new Set<string>();
  const heartbeats = createHeartbeatBatch(store, timings.ttlMs, clock, batchWindow(timings));
  const admission = createAdmission();
  let purgedAt = clock.now();

  function announceDrain(row: ServerRow): void {
    events.emit('server.lost', { kind: 'render', id: row.id, url: row.url, reason: 'drained' });
    log('info', `render server ${row.id} draining`);
  }

  const controlContext = {
    store, timings, graceMs: policy.graceMs, clock, events, allocator, room, heartbeats, announcedExpired, announceDrain, failures,
  };
  // This dispatcher's places in line are kept while it sweeps; another dispatcher's change may free
  // a server for a page waiting here, or for a reloading page waiting for its own server.
  void store.keepAlive(timings.ttlMs).catch((error) => failures.failed('starting', error));
  const unsubscribe = store.onChange(({ serverId }) => {
    if (serverId) allocator.released(serverId);
    else flock.lending.changed();
    if (room.hasWaiting()) void room.serve();
  });
  // Render servers coming and going change what this site can lend; a linked site with more free
  // servers than before may serve a page waiting here.
  const countAgain = ({ kind }: { kind: string }) => kind === 'render' && flock.lending.changed();
  events.on('server.new', countAgain);
  events.on('server.lost', countAgain);
  flock.lending.onFreed(() => room.hasWaiting() && void room.serve());

  async function sweepOnce(): Promise<void> {
    await store.keepAlive(timings.ttlMs);
    for (const row of await store.expired()) {
      if (announcedExpired.has(row.id)) continue;
      announcedExpired.add(row.id);
      allocator.forget(row.id);
      events.emit('server.lost', { kind: 'render', id: row.id, url: row.url, reason: 'expired' });
    }
    await store.requests.prune();
    const now = clock.now();
    if (now - purgedAt >= Math.min(PURGE_EVERY_MS, policy.retentionMs)) {
      purgedAt = now;
      const purged = await store.purge(policy.retentionMs);
      if (purged) log('info', `forgot ${purged} render server${purged === 1 ? '' : 's'} gone for over ${policy.retentionMs}ms`);
      // Expiry announcements are kept only for rows that still exist.
      for (const id of announcedExpired) if (!(await store.get(id))) announcedExpired.delete(id);
      await store.maintain();
    }
    failures.succeeded();
    // Claims lapse with time, and capacity is told again now and then even when unchanged.
    flock.lending.changed();
    if (room.hasWaiting()) void room.serve();
  }

  /**
   * Announces leases that ran out, serves the waiting room (claims lapse with time), forgets old
   * request ids and, now and then, the rows of servers long gone. A store that fails is reported,
   * and the next sweep tries again.
   */
  let sweeping: Promise<void> | null = null;
  function sweep(): Promise<void> {
    sweeping ??= sweepOnce()
      .catch((error) => failures.failed('sweeping', error))
      .finally(() => (sweeping = null));
    return sweeping;
  }

  async function drain(id: string): Promise<DrainResult> {
    const existing = await store.get(id);
    if (!existing) return { ok: false, status: 404, reason: `no render server ${id}` };
    if (existing.state === 'offline') return { ok: false, status: 409, reason: `render server ${id} is offline` };
    const row = await store.drain(id);
    if (row) announceDrain(row);
    return { ok: true, server: viewOf(row ?? existing, await store.now(), policy.minHealth) };
  }

  async function undrain(id: string): Promise<DrainResult> {
    if (!(await store.get(id))) return { ok: false, status: 404, reason: `no render server ${id}` };
    const row = await store.undrain(id);
    if (!row) return { ok: false, status: 409, reason: `render server ${id} is not draining` };
    events.emit('server.new', { kind: 'render', id: row.id, url: row.url });
    void room.serve();
    return { ok: true, server: viewOf(row, await store.now(), policy.minHealth) };
  }

  // Every open socket's link, so that a dispatcher stopping can tell each why it goes.
  const links = new Set<Link>();
  const tracked = (link: Link, session: Session): Session => {
    links.add(link);
    return {
      message: session.message,
      closed: () => {
        links.delete(link);
        return session.closed();
      },
    };
  };

  return {
    events,
    timings,
    policy,
    allocate: allocator.allocate,
    openControl: (link: Link): Session => tracked(link, openControlSession(controlContext, link)),
    openStream: (link: Link, peer: Peer): Session =>
      tracked(link, openStreamSession({ allocator, admission, room, events, rateLimit, messageLimit, relay: flock.relay, failures }, link, peer)),
    /** Another dispatcher dialled this one on /v1/link. */
    openLink: (link: Link, peer: Peer): Session => tracked(link, flock.openLink(link, peer.address)),
    flock: {
      /** This dispatcher's id in the flock. */
      member: flock.member,
      /** Keeps a link to the dispatcher at a ws:// URL, dialling again whenever it drops. */
      link: flock.link,
      /** Sends a message to this dispatcher's subscribed pages and the whole flock. */
      send: flock.relay.send,
      /** Its links and what it heard, for GET /v1/flock. */
      view: flock.view,
      joinSiblings: flock.joinSiblings,
    },
    /** Closes every socket with 1001 and `reason` (pages ask again, render servers move to another dispatcher); resolves once each session has ended. */
    async goAway(reason: string, timeoutMs = 2000): Promise<void> {
      flock.stop();
      for (const link of links) link.close(CLOSE.goingAway, reason);
      const deadline = Date.now() + timeoutMs;
      while (links.size && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    },
    sweep,
    /** Whether the lease store answers now (GET /readyz). */
    ready: (): Promise<boolean> => store.ready().catch(() => false),
    /** Stops listening to the store (before closing it). */
    stop: unsubscribe,
    /** Writes heartbeats still waiting for their batch (before closing the store). */
    flush: heartbeats.flush,
    drain,
    undrain,
    /** The mean session length the waiting room's estimates are made of. */
    meanSessionMs: room.meanSessionMs,
    list: async (): Promise<ServerView[]> => {
      const [rows, now] = await Promise.all([store.all(), store.now()]);
      return rows.map((row) => viewOf(row, now, policy.minHealth));
    },
    /** How many servers are in each state now (reads every row). */
    countByState: async () => {
      const [rows, now] = await Promise.all([store.all(), store.now()]);
      return countByState(rows, now);
    },
    /** One page of the servers, for GET /v1/servers. */
    page: async (query: ListQuery): Promise<{ servers: ServerView[]; next: ListQuery['after'] }> => {
      const { rows, next, now } = await store.list(query);
      return { servers: rows.map((row) => viewOf(row, now, policy.minHealth)), next };
    },
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
