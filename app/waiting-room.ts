// The waiting room: pages that asked to wait when no server was free stand in a FIFO queue (kept
// in the lease store, one line for every dispatcher on it), are told their position whenever it
// changes, and are handed a server the moment one frees. Each dispatcher serves the pages whose
// sockets it holds, and only when one of them is first in line: a page waiting on another
// dispatcher is served there, woken by the store's change notice. Leaving the page leaves the
// queue at once.

import type { DispatcherToBrowser, ServerRequest } from '../common/protocol.ts';
import type { Allocator } from './allocator.ts';
import type { JoinResult, LeaseStore } from './lease-store.ts';

export type Notify = (message: DispatcherToBrowser) => void;

export interface WaitingRoomOptions {
  store: LeaseStore;
  allocator: Allocator;
  maxQueue: number;
  /** How many places pages from one address may hold. */
  maxPerAddress: number;
  /** Told when the store fails while serving (the next change or sweep serves again). */
  failed(error: unknown): void;
}

/** How much the newest finished session moves the mean used for wait estimates. */
const SESSION_WEIGHT = 0.2;

export function createWaitingRoom({ store, allocator, maxQueue, maxPerAddress, failed }: WaitingRoomOptions) {
  const notifiers = new Map<string, Notify>();
  const told = new Map<string, number>();
  let meanSessionMs: number | null = null;
  let serving = false;
  let again = false;

  function forget(conn: string): void {
    notifiers.delete(conn);
    told.delete(conn);
  }

  /** Tells every waiting page whose place changed where it now stands. */
  async function publish(): Promise<void> {
    if (notifiers.size === 0) return;
    const { size, mine } = await store.waiting.standings();
    // Expected wait for a place in line: whole rounds of sessions ending across the live servers.
    const servers = meanSessionMs === null ? 0 : Math.max(1, await store.liveCount());
    const estimate = (position: number) => (meanSessionMs === null ? undefined : Math.round(meanSessionMs * Math.ceil(position / servers)));
    for (const { conn, position } of mine) {
      if (told.get(conn) === position) continue;
      told.set(conn, position);
      const estimateMs = estimate(position);
      notifiers.get(conn)?.({ type: 'queued', position, size, ...(estimateMs !== undefined ? { estimateMs } : {}) });
    }
  }

  /**
   * Hands free servers to the head of the line until either runs out. Runs one at a time: a call
   * while it runs makes it go round once more, so no free server is left unnoticed.
   */
  async function serve(): Promise<void> {
    if (serving) {
      again = true;
      return;
    }
    serving = true;
    try {
      do {
        again = false;
        for (let head = await store.waiting.head(); head; head = await store.waiting.head()) {
          // First in line is a page on another dispatcher: it is served there.
          if (!head.mine) break;
          const notify = notifiers.get(head.conn);
          if (!notify) {
            await store.waiting.leave(head.conn);
            continue;
          }
          // The head's own old server is worth no wait here: others stand behind it.
          const grant = await allocator.allocate({ session: head.session, requestId: head.requestId, conn: head.conn, waitForOwnServer: false });
          if (!grant) break;
          // The page may have left while its ticket was signed: then the server goes straight back.
          if (!(await store.waiting.leave(head.conn))) {
            await allocator.cancel(grant);
            continue;
          }
          forget(head.conn);
          notify({ type: 'server_url', url: grant.url, ...(head.requestId ? { requestId: head.requestId } : {}) });
        }
        await publish();
      } while (again);
    } catch (error) {
      failed(error);
    } finally {
      serving = false;
    }
  }

  return {
    /** Puts a connection in line; refused with a reason when the room, or this address's share of it, is full. */
    async join(conn: string, request: ServerRequest, notify: Notify, address: string): Promise<{ ok: true } | { ok: false; reason: string }> {
      // The socket is known before the place exists, so a serve running meanwhile never takes the place for a stale one.
      notifiers.set(conn, notify);
      let joined: JoinResult;
      try {
        joined = await store.waiting.join({ conn, session: request.session ?? null, requestId: request.requestId ?? null, address }, { maxQueue, maxPerAddress });
      } catch (error) {
        forget(conn);
        throw error;
      }
      if (!joined.ok) {
        forget(conn);
        return {
          ok: false,
          reason: joined.full === 'line'
            ? `the waiting room is full (${maxQueue} waiting)`
            : `your address holds all the places in the waiting room it may (${maxPerAddress})`,
        };
      }
      // The page may have closed while its place was being taken: its leave found nothing to drop.
      if (notifiers.get(conn) !== notify) {
        await store.waiting.leave(conn).catch(() => false);
        return { ok: true };
      }
      await serve();
      return { ok: true };
    },
    async leave(conn: string): Promise<void> {
      if (!notifiers.has(conn)) return;
      forget(conn);
      // A place the store could not drop now is dropped with this dispatcher's others if it stops answering.
      if (await store.waiting.leave(conn).catch(() => false)) await serve();
    },
    isWaiting: (conn: string): boolean => notifiers.has(conn),
    /**
     * Whether any page waits on a socket this process holds: the only ones it can serve. Kept in
     * memory because it is asked on every heartbeat and client report.
     */
    hasWaiting: (): boolean => notifiers.size > 0,
    serve,
    /** The mean session length wait estimates are made of (null until one has ended). */
    meanSessionMs: (): number | null => meanSessionMs,
    /** A client's session ended after this long: the basis of wait estimates. */
    sessionEnded(durationMs: number): void {
      meanSessionMs = meanSessionMs === null ? durationMs : meanSessionMs * (1 - SESSION_WEIGHT) + durationMs * SESSION_WEIGHT;
    },
  };
}

export type WaitingRoom = ReturnType<typeof createWaitingRoom>;
