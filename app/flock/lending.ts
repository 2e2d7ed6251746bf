// Lending render servers between sites. Each dispatcher hands out only the servers whose leases
// are in its own store and signs only their tickets; what it tells the flock is how many it could
// hand out now, whenever that changes (and every few seconds, and to every new link). A page
// whose site has no free server is lent one: local servers first, then the linked dispatcher that
// last said it had the most free (nearest first among equals); that dispatcher reserves one in
// its own store, as for its own pages, and answers with the URL and a ticket it signed, which the
// asking dispatcher passes to its page. `none` only when every dispatcher heard from is full. A
// lent server its page never took goes back to its lender, which takes back only what it lent to
// that dispatcher, within the claim period; an answer that comes after the asker gave up on it is
// given back at once.

import type { FlockBody } from '../../common/protocol.ts';
import type { AllocationRequest, Allocator, Grant } from '../allocator.ts';
import type { DispatcherEvents } from '../events.ts';
import type { LeaseStore } from '../lease-store.ts';
import type { Relay } from './relay.ts';

/** How long a lender has to answer before the next one is asked. */
const ASK_MS = 2000;
/** Free servers are counted at most this often (a burst of hand-outs is one count). */
const COUNT_EVERY_MS = 50;
/** Capacity is told again this often even when unchanged, so a dispatcher that went quiet is forgotten. */
const REFRESH_MS = 10_000;
/** Capacity older than this is not trusted: the dispatcher may be gone. */
const STALE_MS = 3 * REFRESH_MS;

export interface PeerCapacity {
  member: string;
  free: number;
  /** Links between here and there, as its last word travelled. */
  hops: number;
  heardAt: number;
}

export interface LendingOptions {
  relay: Relay;
  store: LeaseStore;
  /** This site's own allocator. */
  local: Allocator;
  minHealth: number;
  claimMs: number;
  log(level: DispatcherEvents['log']['level'], message: string): void;
  /** A failure of the store while answering a lender's question. */
  failed(what: string, error: unknown): void;
  now(): number;
  askMs?: number;
}

type Lent = Extract<FlockBody, { kind: 'lent' }>;

export function createLending({ relay, store, local, minHealth, claimMs, log, failed, now, askMs = ASK_MS }: LendingOptions) {
  const peers = new Map<string, PeerCapacity>();
  const calls = new Map<number, { member: string; answer(lent: Lent | null): void }>();
  const freed = new Set<() => void>();
  // Servers this member lent, until their claim lapses: only the borrower may give one back.
  const lentTo = new Map<string, { origin: string; requestId: string | null; until: number }>();
  // Servers this member borrowed for a request id, so that a retry answered from the request memo
  // still knows whom to give the server back to.
  const borrowedFor = new Map<string, { lender: string; serverId: string; until: number }>();
  const forgetLapsed = () => {
    const t = now();
    for (const [id, lent] of lentTo) if (lent.until <= t) lentTo.delete(id);
    for (const [id, borrowed] of borrowedFor) if (borrowed.until <= t) borrowedFor.delete(id);
  };
  let nextCall = 0;
  let announced: { free: number; at: number } | null = null;
  let counting: Promise<void> | null = null;
  let again = false;
  let lastCount = 0;

  /** Counts this site's free servers and tells the flock if that changed (or is due again). */
  async function count(): Promise<void> {
    do {
      again = false;
      const free = await store.freeCount(minHealth);
      if (announced?.free !== free || now() - announced.at >= REFRESH_MS) {
        announced = { free, at: now() };
        relay.announce({ kind: 'capacity', free });
      }
    } while (again);
  }

  /**
   * Something may have changed this site's free servers: counted again within COUNT_EVERY_MS, once
   * however often it is called, and not at all while no other dispatcher is linked to hear it (a
   * count reads every free row: on the hand-out path it would cost every dispatcher, linked or not).
   */
  function changed(): void {
    if (relay.linked() === 0) return;
    if (counting) {
      again = true;
      return;
    }
    counting = new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, COUNT_EVERY_MS - (now() - lastCount))))
      .then(() => {
        lastCount = now();
        return count();
      })
      .catch((error) => failed('counting free servers for the flock', error))
      .finally(() => (counting = null));
  }

  // A new link hears this site's capacity at once; one gone may have taken peers with it.
  relay.onLinkChange(() => {
    announced = null;
    changed();
  });

  relay.handle('capacity', (body, from) => {
    const before = peers.get(from.origin)?.free ?? 0;
    peers.set(from.origin, { member: from.origin, free: body.free, hops: from.hops, heardAt: now() });
    if (body.free > before) for (const listener of freed) listener();
  });

  relay.handle('lent', (body, from) => {
    const call = calls.get(body.call);
    if (call?.member === from.origin) return call.answer(body);
    // Too late: the page was told something else meanwhile.
    if (body.serverId) relay.sendTo(from.origin, { kind: 'return', serverId: body.serverId });
  });

  relay.handle('borrow', async (body, from) => {
    // Known to this site's store under names of the asking dispatcher's, so that its pages and
    // this site's own never share a reservation or a remembered answer.
    const request: AllocationRequest = {
      conn: `flock:${from.origin}:${body.holder}`,
      session: body.session ?? null,
      requestId: body.requestId ? `flock:${from.origin}:${body.requestId}` : null,
      waitForOwnServer: false,
    };
    let answer: Lent;
    try {
      const grant = await local.allocate(request);
      answer = grant ? { kind: 'lent', call: body.call, url: grant.url, serverId: grant.serverId } : { kind: 'lent', call: body.call, reason: 'no render server is free' };
      if (grant) {
        forgetLapsed();
        lentTo.set(grant.serverId, { origin: from.origin, requestId: request.requestId ?? null, until: now() + claimMs });
        log('info', `lent render server ${grant.serverId} to dispatcher ${from.origin}`);
      }
    } catch (error) {
      failed(`lending a server to ${from.origin}`, error);
      answer = { kind: 'lent', call: body.call, reason: 'store unavailable' };
    }
    relay.sendTo(from.origin, answer);
    changed();
  });

  relay.handle('return', async (body, from) => {
    const lent = lentTo.get(body.serverId);
    if (!lent || lent.origin !== from.origin || lent.until <= now()) {
      return log('warn', `dispatcher ${from.origin} gave back server ${body.serverId}, which it was not lent (or not lately): ignored`);
    }
    lentTo.delete(body.serverId);
    await local.cancel({ serverId: body.serverId, url: '', requestId: lent.requestId }).catch((error) => failed(`taking back server ${body.serverId}`, error));
    changed();
  });

  function ask(member: string, request: AllocationRequest, holder: string): Promise<Lent | null> {
    const call = ++nextCall;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(null), askMs);
      function settle(lent: Lent | null) {
        clearTimeout(timer);
        calls.delete(call);
        resolve(lent);
      }
      calls.set(call, { member, answer: settle });
      const sent = relay.sendTo(member, {
        kind: 'borrow', call, holder,
        ...(request.requestId ? { requestId: request.requestId } : {}),
        ...(request.session ? { session: request.session } : {}),
      });
      if (!sent) settle(null);
    });
  }

  /** Who may lend now: those that last said they had free servers, most free first, then nearest. */
  function lenders(): PeerCapacity[] {
    const t = now();
    return [...peers.values()]
      .filter((peer) => peer.free > 0 && t - peer.heardAt < STALE_MS)
      .sort((a, b) => b.free - a.free || a.hops - b.hops || (a.member < b.member ? -1 : 1));
  }

  /** A server lent by a linked dispatcher, or null when none of them has one. */
  async function borrow(request: AllocationRequest): Promise<Grant | null> {
    // Alone (or with no linked site heard from), a full fleet's `none` costs nothing here.
    if (peers.size === 0) return null;
    const holder = request.conn ?? request.session ?? crypto.randomUUID();
    for (const peer of lenders()) {
      const lent = await ask(peer.member, request, holder);
      if (!lent?.url || !lent.serverId) {
        // Full after all (or silent): not asked again until it says otherwise.
        if (peers.get(peer.member) === peer) peer.free = 0;
        continue;
      }
      const grant: Grant = { url: lent.url, serverId: lent.serverId, requestId: request.requestId ?? null, lender: peer.member };
      if (!request.requestId) return grant;
      forgetLapsed();
      borrowedFor.set(request.requestId, { lender: peer.member, serverId: grant.serverId, until: now() + claimMs });
      // A retry of the same request, here or on another dispatcher of this site, gets the same answer.
      const standing = await store.requests.save(request.requestId, { serverId: grant.serverId, url: grant.url }, (await store.now()) + claimMs);
      if (standing.url === grant.url) return grant;
      giveBack(grant);
      return { ...standing, requestId: request.requestId };
    }
    return null;
  }

  /** A lent server whose page left before it got the URL goes back to its lender. */
  function giveBack(grant: Grant): void {
    if (!grant.lender) return;
    relay.sendTo(grant.lender, { kind: 'return', serverId: grant.serverId });
  }

  return {
    borrow,
    giveBack,
    changed,
    /** Who lent the server answered for `requestId`, if this member borrowed it (a retry's answer comes from the request memo). */
    lenderOf(requestId: string, serverId: string): string | null {
      const borrowed = borrowedFor.get(requestId);
      return borrowed && borrowed.serverId === serverId && borrowed.until > now() ? borrowed.lender : null;
    },
    /** Called when a linked dispatcher says it has more free servers than before (the waiting room may be served). */
    onFreed(listener: () => void): () => void {
      freed.add(listener);
      return () => void freed.delete(listener);
    },
    /** What was last heard from each dispatcher, and what this one last told. */
    peers: (): PeerCapacity[] => [...peers.values()].map((peer) => ({ ...peer })),
    announced: (): number | null => announced?.free ?? null,
  };
}

export type Lending = ReturnType<typeof createLending>;

/**
 * The allocator pages are served by: this site's servers, then a lent one. Cancelling a lent
 * grant gives it back to its lender.
 */
export function withLending(local: Allocator, lending: Lending): Allocator {
  return {
    ...local,
    async allocate(request = {}) {
      const own = await local.allocate(request);
      if (own) {
        // A retry answered from the request memo may be of a lent server.
        const lender = request.requestId ? lending.lenderOf(request.requestId, own.serverId) : null;
        if (lender) return { ...own, lender };
        lending.changed();
        return own;
      }
      return lending.borrow(request);
    },
    async cancel(grant) {
      if (grant.lender) return lending.giveBack(grant);
      await local.cancel(grant);
      lending.changed();
    },
    released(serverId) {
      local.released(serverId);
      lending.changed();
    },
  };
}
