// Which relayed messages this dispatcher has had already, so that a copy arriving by a second path
// (a ring, a mesh, a link restored) is not handled twice. Messages are numbered by their origin,
// so per origin it is enough to know the highest number seen and, in a ring, what came of each of
// the `window` numbers below it: the fewest links any copy had travelled (a copy that comes by a
// shorter path than the first is passed on again, since the first may have run out of hops before
// reaching everyone), or that a handler here stopped it. Anything older than the window is taken
// as seen. The window is wider than any backlog a link may hold (a socket more than 4 MiB behind is
// closed, and a frame is at least ~100 bytes), so a copy late by a slow path is still told apart
// from a new message. Origins are random per process, so one not heard from for a while (a
// dispatcher that stopped) is forgotten.

/** What a copy is: the first of its message, one that travelled fewer links than any before, or neither. */
export type Offer = 'first' | 'shorter' | 'seen';

export interface SeenOptions {
  /** How far behind the newest a late copy may arrive and still be told apart. */
  window?: number;
  /** An origin silent this long is forgotten. */
  forgetAfterMs?: number;
  now(): number;
}

interface Origin {
  newest: number;
  /** At `seq % window`, for newest − window < seq ≤ newest: 0 not come, else the fewest hops, or STOPPED. */
  hops: Uint8Array;
  heardAt: number;
}

const STOPPED = 255;
/** Forgotten origins are looked for after this many new ones. */
const PRUNE_EVERY = 1024;

export function createSeen({ window = 65_536, forgetAfterMs = 10 * 60_000, now }: SeenOptions) {
  const origins = new Map<string, Origin>();
  let sincePrune = 0;

  function prune(t: number): void {
    for (const [id, origin] of origins) if (t - origin.heardAt > forgetAfterMs) origins.delete(id);
  }

  return {
    /** Records a copy of (origin, seq) that travelled `hops` links (0 for none), and says what it is. */
    offer(originId: string, seq: number, hops: number): Offer {
      const t = now();
      let origin = origins.get(originId);
      if (!origin) {
        if (++sincePrune >= PRUNE_EVERY) {
          sincePrune = 0;
          prune(t);
        }
        origin = { newest: seq, hops: new Uint8Array(window), heardAt: t };
        origins.set(originId, origin);
      }
      origin.heardAt = t;
      if (seq <= origin.newest - window) return 'seen';
      if (seq > origin.newest) {
        // Moving the window up: the slots of the numbers passed (and of this one) held older ones.
        if (seq - origin.newest >= window) origin.hops.fill(0);
        else for (let slot = origin.newest + 1; slot <= seq; slot++) origin.hops[slot % window] = 0;
        origin.newest = seq;
      }
      const slot = seq % window;
      const before = origin.hops[slot];
      // Stored as hops + 1, so that 0 means "not come" even for a message that started here.
      if (before === 0) {
        origin.hops[slot] = hops + 1;
        return 'first';
      }
      if (before === STOPPED || hops + 1 >= before) return 'seen';
      origin.hops[slot] = hops + 1;
      return 'shorter';
    },
    /** A handler here stopped (origin, seq): no copy of it is passed on from here. */
    stop(originId: string, seq: number): void {
      const origin = origins.get(originId);
      if (origin && seq > origin.newest - window && seq <= origin.newest) origin.hops[seq % window] = STOPPED;
    },
    /** How many origins are remembered (for tests). */
    size: (): number => origins.size,
  };
}
