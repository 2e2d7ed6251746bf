// What the dispatcher asks of the store that holds the render servers' leases, whatever engine is
// behind it: bun:sqlite for one dispatcher (app/sqlite/), PostgreSQL for several sharing one truth
// (app/postgres/). The store is the only authority on which server may be handed out: every
// transition is one statement or one transaction, and expiry is part of the allocation query, so
// correctness never waits for a sweeper. The store also keeps the time: every deadline is set and
// compared on its clock (the database's, for PostgreSQL), so dispatchers whose clocks disagree
// still agree on every lease. The behaviour suite in lease-store.suite.ts runs against each engine.

import type { ClientState, ServerState } from '../common/protocol.ts';

export type { ServerState } from '../common/protocol.ts';
/** Stored states. "expired" is derived at read time from the lease deadline, never trusted as stored. */
export type StoredState = Exclude<ServerState, 'expired'>;

export interface ServerRow {
  id: string;
  url: string;
  key: string;
  /** SHA-256 of the registering process's instance secret: only that process may register the id again. */
  instanceHash: string;
  state: StoredState;
  conn: string | null;
  leaseExpires: number;
  claimExpires: number | null;
  /** Whether the server's client is connected, as it last reported (kept apart from state for draining servers). */
  client: ClientState;
  targetFps: number;
  fps: number;
  frameMs: number;
  /** The frame rate it can reach as a share of its target, 0-1 in steps of 0.1 (1 until measured). */
  health: number;
  /** The session of the page it was last handed to, if that page gave one. */
  session: string | null;
  /** Until when that session may have it back after its client left (sticky return). */
  sessionUntil: number | null;
  registeredAt: number;
  updatedAt: number;
}

/** A reservation: everything its ticket is made of, so the same grant can be signed again. */
export interface Allocation {
  id: string;
  url: string;
  key: string;
  claimExpires: number;
  /** When it was handed out (the ticket's iat). */
  handedAt: number;
  /** The hand-out's own id (the ticket's jti). */
  grantId: string;
  session: string | null;
}

/** What a session's page is given: a reservation, or the session's server still busy to wait for. */
export interface SessionAllocation {
  allocation: Allocation | null;
  /** Set only when nothing was reserved. */
  held: string | null;
}

/** Who a reservation is for: the page's session and the connection that asked. */
export interface Holder {
  session?: string | null;
  conn?: string | null;
}

export interface RegisterInput {
  id: string;
  url: string;
  conn: string;
  instanceHash: string;
  client: ClientState;
  targetFps: number;
  newKey: string;
  ttlMs: number;
}

export type RegisterResult =
  | {
      ok: true;
      row: ServerRow;
      /** True unless the same id already held a live lease (a re-registration after a blip). */
      isNew: boolean;
      /** Earlier servers on the same URL, no longer alive, that this registration replaced. */
      replaced: { id: string; url: string }[];
    }
  /** What the registration would have taken (`field`), and whose it is. */
  | { ok: false; field: 'id' | 'url'; conflict: string };

/** What a heartbeat needs back: the new deadline, and whether the server is free. */
export interface Beat {
  url: string;
  state: StoredState;
  leaseExpires: number;
}

// A type, not an interface: bun:sqlite's bindings need an index signature.
export type Health = {
  fps: number;
  frameMs: number;
  client: ClientState;
};

/** One heartbeat to write: `ageMs` is how long ago it arrived, so the lease runs from its arrival. */
export interface BeatInput {
  id: string;
  conn: string;
  ageMs: number;
  health: Health;
}

/** Where a page of the operator's list ends: the last row's place in the order. */
export type ListCursor = { registeredAt: number; id: string };

export interface ListQuery {
  /** Only servers in this state as of now ('expired' included). */
  state?: ServerState | null;
  limit: number;
  /** Start after this row (the `next` of the page before). */
  after?: ListCursor | null;
}

/** A page: its rows, where the next page starts (null on the last), and the store's time it was read at. */
export interface ServerPage {
  rows: ServerRow[];
  next: ListCursor | null;
  now: number;
}

export interface RememberedAnswer {
  serverId: string;
  url: string;
}

/**
 * Idempotent allocation: a page may name its request, and a retry with the same id, sent to any
 * dispatcher on the store, gets the answer the first attempt got while that server's claim lasts.
 */
export interface RequestMemo {
  /** The answer given to this request id, while its claim deadline has not passed. */
  find(requestId: string): Promise<RememberedAnswer | null>;
  /**
   * Keeps `answer` until `expires`, unless another attempt of the same request got there first:
   * returns the answer that stands (this one, or the earlier one).
   */
  save(requestId: string, answer: RememberedAnswer, expires: number): Promise<RememberedAnswer>;
  forget(requestId: string): Promise<void>;
  /** Drops answers whose claim deadline has passed. */
  prune(): Promise<void>;
}

export interface Waiter {
  conn: string;
  session: string | null;
  requestId: string | null;
}

export interface Joiner extends Waiter {
  /** The page's address (or IPv6 /64), for the cap on places per address. */
  address: string;
}

/**
 * The waiting room's line: one FIFO for every dispatcher on the store. Each place belongs to the
 * dispatcher holding the page's socket; places of a dispatcher that stopped answering are skipped
 * and then dropped, so a dead dispatcher never blocks the line.
 */
/** The caps on the line, checked in the same step as a place is taken. */
export interface LineLimits {
  /** Places in the whole line. */
  maxQueue: number;
  /** Places pages from one address may hold. */
  maxPerAddress: number;
}

/** A place taken, or which cap was reached. */
export type JoinResult = { ok: true } | { ok: false; full: 'line' | 'address' };

export interface WaitingList {
  /** Takes a place at the end of the line unless a cap is reached: one step, so pages joining together never pass a cap. */
  join(waiter: Joiner, limits: LineLimits): Promise<JoinResult>;
  /** True if the connection was waiting. */
  leave(conn: string): Promise<boolean>;
  /** The first in line, and whether this dispatcher holds its socket. */
  head(): Promise<(Waiter & { mine: boolean }) | null>;
  /** Where each page this dispatcher holds stands in the whole line, and how long the line is. */
  standings(): Promise<{ size: number; mine: { conn: string; position: number }[] }>;
  size(): Promise<number>;
  /** How many places pages from this address hold. */
  sizeFrom(address: string): Promise<number>;
}

/** Something another dispatcher on the store did that may interest this one's waiting pages. */
export interface Change {
  /** A server that may have become free (its client left, it was released or undrained, it registered). */
  serverId?: string;
}

export interface LeaseStore {
  /** The engine, for logs: "sqlite" or "postgres". */
  readonly engine: string;
  /** Where the leases are, for logs, with any password left out. */
  readonly location: string;
  /** The store's time in ms since the epoch: the clock every deadline is set and compared on. */
  now(): Promise<number>;

  register(input: RegisterInput): Promise<RegisterResult>;
  /**
   * The unclaimed reservation `session` or `conn` already holds; else reserves a free server for
   * them; else null when none is free and healthy enough. One step: a page never holds two.
   */
  allocate(claimMs: number, minHealth?: number, session?: string | null, conn?: string | null): Promise<Allocation | null>;
  /**
   * A page of a session asking, in one step: the unclaimed reservation `session` or `conn` already
   * holds; else the server the session kept, if it is free and the session's grace period has not
   * passed; else, with `waitForOwn` (the default), when a server of the session is still busy
   * with its old client (a reloading page asks before its old socket's close is reported),
   * nothing, and `held` names that server; else a free server, as `allocate`. A release while it
   * runs is never missed: the released server is either still busy in the look for the busy one
   * or free in the look for the kept one.
   */
  allocateForSession(session: string, claimMs: number, minHealth?: number, conn?: string | null, waitForOwn?: boolean): Promise<SessionAllocation>;
  /** The unclaimed reservation this session or connection already holds, if any. */
  pending(holder: Holder): Promise<Allocation | null>;
  /** One heartbeat: null if `conn` no longer holds the lease. */
  heartbeat(id: string, conn: string, ttlMs: number, health: Health): Promise<Beat | null>;
  /** Many heartbeats in one transaction: the answers in the same order, null where `conn` no longer holds the lease. */
  heartbeats(beats: BeatInput[], ttlMs: number): Promise<(Beat | null)[]>;
  /**
   * Records the render server's report that its client connected or left; `graceMs` keeps the
   * server for the client's session. False if `conn` no longer holds the lease.
   */
  setClient(id: string, conn: string, client: ClientState, graceMs?: number): Promise<boolean>;
  /** Gives back a reservation nobody will claim (its page left before it got the URL). */
  release(id: string): Promise<boolean>;
  /** Stops the server being handed out; its client stays. Null if offline or draining already. */
  drain(id: string): Promise<ServerRow | null>;
  /** Ends a drain. Null if the server was not draining. */
  undrain(id: string): Promise<ServerRow | null>;
  /** The control connection closed: from this moment the server is never handed out. */
  disconnect(id: string, conn: string): Promise<ServerRow | null>;
  /** Rows whose lease ran out but that are not yet marked offline (for events, not for correctness). */
  expired(): Promise<ServerRow[]>;
  get(id: string): Promise<ServerRow | null>;
  /** Servers with a live lease that are not draining: the pool clients are served from. */
  liveCount(): Promise<number>;
  /** Servers `allocate` could hand out now: what this site tells the flock it can lend. */
  freeCount(minHealth?: number): Promise<number>;
  all(): Promise<ServerRow[]>;
  /** One page of servers in registration order, optionally of one state as of now. */
  list(query: ListQuery): Promise<ServerPage>;
  /** Forgets servers offline, or expired, for longer than `retentionMs`; returns how many. */
  purge(retentionMs: number): Promise<number>;
  /** Housekeeping after a purge (SQLite folds its write-ahead log back into the file). */
  maintain(): Promise<void>;

  requests: RequestMemo;
  waiting: WaitingList;

  /** This dispatcher answers for its waiting pages for `ms` more (called on every sweep). */
  keepAlive(ms: number): Promise<void>;
  /** Calls `listener` for what other dispatchers on the store do; returns the unsubscribe. */
  onChange(listener: (change: Change) => void): () => void;
  /** Whether the store answers now (for /readyz). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/** The state a row is really in at `now`, whatever was last written. */
export function effectiveState(row: Pick<ServerRow, 'state' | 'leaseExpires' | 'claimExpires'>, now: number): ServerState {
  if (row.state === 'offline') return 'offline';
  if (row.leaseExpires <= now) return 'expired';
  if (row.state === 'reserved' && row.claimExpires !== null && row.claimExpires <= now) return 'ready';
  return row.state;
}

/** A store written by a newer release: refused untouched, and no use waiting for. */
export class SchemaTooNew extends Error {
  constructor(where: string, found: number, known: number) {
    super(`${where} has lease schema version ${found}, newer than this dispatcher's ${known}: upgrade the dispatcher`);
    this.name = 'SchemaTooNew';
  }
}
