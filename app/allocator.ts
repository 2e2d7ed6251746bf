// Handing out servers: picks one through the lease store, signs its claim ticket, remembers the
// answer for a request id, and gives a returning session its previous server back. A page holds at
// most one unclaimed reservation: asking again, on the same connection or with the same session,
// gets the same grant (the same ticket, signed again from what the lease row keeps).

import { ticketUrl, type TicketClaims } from '../common/protocol.ts';
import type { DispatcherEvents, LogFields } from './events.ts';
import type { Allocation, LeaseStore } from './lease-store.ts';
import { createTicketSigner } from './ticket-signer.ts';

export interface AllocationRequest {
  /** A retry with the same id gets the same answer while its claim lasts. */
  requestId?: string | null;
  /** The page's session, for sticky return. */
  session?: string | null;
  /** The page connection asking: it holds at most one unclaimed reservation. */
  conn?: string | null;
  /**
   * Whether to wait a moment for the session's previous server when its old client still holds
   * it (a reloading page asks before its old socket's close has been reported).
   */
  waitForOwnServer?: boolean;
}

/** A server handed out: the URL with its ticket, and what is needed to take it back. */
export interface Grant {
  url: string;
  serverId: string;
  requestId: string | null;
  /** The linked dispatcher that lent the server, when it is not this site's. */
  lender?: string;
}

export interface AllocatorOptions {
  store: LeaseStore;
  claimMs: number;
  minHealth: number;
  log(level: DispatcherEvents['log']['level'], message: string, fields?: LogFields): void;
}

/** Long enough for a reloading page's old socket close to reach the render server and be reported. */
const OWN_SERVER_WAIT_MS = 1500;

export function createAllocator({ store, claimMs, minHealth, log }: AllocatorOptions) {
  // Requests with an id whose answer is being signed: a retry that overtakes the first attempt
  // waits for it instead of reserving a second server. The answer itself is kept in the store.
  const inFlight = new Map<string, Promise<Grant | null>>();
  // Allocations waiting for a server's client to leave, by server id.
  const releaseWaiters = new Map<string, Set<() => void>>();
  const signer = createTicketSigner();

  function waitForRelease(serverId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let waiters = releaseWaiters.get(serverId);
      if (!waiters) releaseWaiters.set(serverId, (waiters = new Set()));
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0) releaseWaiters.delete(serverId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
    });
  }

  async function pick({ session, conn = null, waitForOwnServer = true }: AllocationRequest): Promise<Allocation | null> {
    if (!session) return store.allocate(claimMs, minHealth, null, conn);
    const { allocation, held } = await store.allocateForSession(session, claimMs, minHealth, conn, waitForOwnServer);
    if (!held) return allocation;
    // The session's server still busy with its old client (a reload asking before its old
    // socket's close was reported) is waited for a moment, then looked for again with the rest.
    await waitForRelease(held, OWN_SERVER_WAIT_MS);
    return (await store.allocateForSession(session, claimMs, minHealth, conn, false)).allocation;
  }

  /** The ticket of a reservation: everything in it comes from the lease row, so signing it again gives the same URL. */
  async function ticketFor(claim: Allocation): Promise<string> {
    const claims: TicketClaims = {
      sub: claim.id,
      jti: claim.grantId,
      iat: Math.floor(claim.handedAt / 1000),
      exp: Math.ceil(claim.claimExpires / 1000),
      ...(claim.session ? { sid: claim.session } : {}),
    };
    return ticketUrl(claim.url, signer.sign(claim.id, claim.key, claims));
  }

  async function reserve(request: AllocationRequest): Promise<Grant | null> {
    const claim = await pick(request);
    if (!claim) {
      log('debug', `no server free${request.requestId ? ` for request ${request.requestId}` : ''}`, ids(request));
      return null;
    }
    const url = await ticketFor(claim);
    if (request.requestId) {
      // Another dispatcher may have answered the same request meanwhile: its answer stands, this
      // reservation goes back.
      const standing = await store.requests.save(request.requestId, { serverId: claim.id, url }, claim.claimExpires);
      if (standing.serverId !== claim.id) {
        await store.release(claim.id);
        return { ...standing, requestId: request.requestId };
      }
    }
    log('debug', `handed out ${claim.url} (server ${claim.id})${request.requestId ? ` for request ${request.requestId}` : ''}`, {
      ...ids(request), serverId: claim.id, grant: claim.grantId,
    });
    return { url, serverId: claim.id, requestId: request.requestId ?? null };
  }

  /** A free server's URL (with ticket), or null. A known request id gets its earlier answer. */
  function allocate(request: AllocationRequest = {}): Promise<Grant | null> {
    const { requestId } = request;
    if (!requestId) return reserve(request);
    let pending = inFlight.get(requestId);
    if (!pending) {
      pending = (async () => {
        const remembered = await store.requests.find(requestId);
        return remembered ? { ...remembered, requestId } : reserve(request);
      })().finally(() => inFlight.delete(requestId));
      inFlight.set(requestId, pending);
    }
    return pending;
  }

  return {
    allocate,
    /** Takes back a grant whose page left before it could be told: the server is free again at once. */
    async cancel(grant: Grant): Promise<void> {
      if (grant.requestId) await store.requests.forget(grant.requestId);
      if (await store.release(grant.serverId)) log('debug', `took back server ${grant.serverId}: its page left before it got the URL`);
    },
    /** A server left for good: its imported key is dropped. */
    forget(serverId: string): void {
      signer.forget(serverId);
    },
    /** A server's client left: allocations waiting for it go on. */
    released(serverId: string): void {
      for (const done of [...(releaseWaiters.get(serverId) ?? [])]) done();
    },
  };
}

export type Allocator = ReturnType<typeof createAllocator>;

/** The ids a hand-out's log line carries: enough to follow a page to the render server (whose log names the grant). */
function ids({ requestId, session, conn }: AllocationRequest): LogFields {
  return { requestId: requestId ?? undefined, session: session ?? undefined, conn: conn ?? undefined };
}
