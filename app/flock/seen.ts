// Which relayed messages this dispatcher has had already, so that a copy arriving by a second path
// (a ring, a mesh, a link restored) is dropped and each message is handled exactly once. Messages
// are numbered by their origin, so per origin it is enough to know the highest number seen and,
// in a ring of bits, which of the `window` numbers below it came: anything older than that is
// taken as seen. The window is wider than any backlog a link may hold (a socket more than 4 MiB
// behind is closed, and a message is at least ~100 bytes), so a copy late by a slow path is still
// told apart from a new message. Origins are random per process, so one not heard from for a
// while (a dispatcher that stopped) is forgotten.

export interface SeenOptions {
  /** How far behind the newest a late copy may arrive and still be told apart. */
  window?: number;
  /** An origin silent this long is forgotten. */
  forgetAfterMs?: number;
  now(): number;
}

interface Origin {
  newest: number;
  /** Bit `seq % window` says whether `seq` (newest − window < seq ≤ newest) has come. */
  bits: Uint8Array;
  heardAt: number;
}

/** Forgotten origins are looked for after this many new ones. */
const PRUNE_EVERY = 1024;

export function createSeen({ window = 65_536, forgetAfterMs = 10 * 60_000, now }: SeenOptions) {
  const origins = new Map<string, Origin>();
  let sincePrune = 0;

  const bit = (origin: Origin, seq: number) => (origin.bits[(seq % window) >> 3] >> ((seq % window) & 7)) & 1;
  const set = (origin: Origin, seq: number) => (origin.bits[(seq % window) >> 3] |= 1 << ((seq % window) & 7));
  const clear = (origin: Origin, seq: number) => (origin.bits[(seq % window) >> 3] &= ~(1 << ((seq % window) & 7)));

  function prune(t: number): void {
    for (const [id, origin] of origins) if (t - origin.heardAt > forgetAfterMs) origins.delete(id);
  }

  return {
    /** True the first time (origin, seq) is offered, false for every copy after it. */
    first(originId: string, seq: number): boolean {
      const t = now();
      let origin = origins.get(originId);
      if (!origin) {
        if (++sincePrune >= PRUNE_EVERY) {
          sincePrune = 0;
          prune(t);
        }
        origin = { newest: seq, bits: new Uint8Array(Math.ceil(window / 8)), heardAt: t };
        origins.set(originId, origin);
        set(origin, seq);
        return true;
      }
      origin.heardAt = t;
      if (seq <= origin.newest - window) return false;
      if (seq <= origin.newest) {
        if (bit(origin, seq)) return false;
        set(origin, seq);
        return true;
      }
      // Moving the window up: the numbers skipped over have not come (yet).
      if (seq - origin.newest >= window) origin.bits.fill(0);
      else for (let skipped = origin.newest + 1; skipped < seq; skipped++) clear(origin, skipped);
      origin.newest = seq;
      set(origin, seq);
      return true;
    },
    /** How many origins are remembered (for tests and /v1/flock). */
    size: (): number => origins.size,
  };
}

export type Seen = ReturnType<typeof createSeen>;
