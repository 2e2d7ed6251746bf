// Which relayed messages this dispatcher has had already, so that a copy arriving by a second path
// (a ring, a mesh, a link restored) is dropped and each message is handled exactly once. Messages
// are numbered by their origin, so per origin it is enough to know the highest number seen and
// which of the last `window` below it came: anything older than that is taken as seen. Origins
// are random per process, so one not heard from for a while (a dispatcher that stopped) is forgotten.

export interface SeenOptions {
  /** How far behind the newest a late copy may arrive and still be told apart. */
  window?: number;
  /** An origin silent this long is forgotten. */
  forgetAfterMs?: number;
  now(): number;
}

interface Origin {
  newest: number;
  recent: Set<number>;
  heardAt: number;
}

/** Forgotten origins are looked for after this many new messages. */
const PRUNE_EVERY = 1024;

export function createSeen({ window = 4096, forgetAfterMs = 10 * 60_000, now }: SeenOptions) {
  const origins = new Map<string, Origin>();
  let sincePrune = 0;

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
        origins.set(originId, (origin = { newest: seq, recent: new Set([seq]), heardAt: t }));
        return true;
      }
      origin.heardAt = t;
      if (seq <= origin.newest - window || origin.recent.has(seq)) return false;
      origin.recent.add(seq);
      if (seq > origin.newest) origin.newest = seq;
      // Numbers that fell out of the window are covered by `newest - window` from now on.
      if (origin.recent.size > 2 * window) {
        for (const old of origin.recent) if (old <= origin.newest - window) origin.recent.delete(old);
      }
      return true;
    },
    /** How many origins are remembered (for tests and /v1/flock). */
    size: (): number => origins.size,
  };
}

export type Seen = ReturnType<typeof createSeen>;
