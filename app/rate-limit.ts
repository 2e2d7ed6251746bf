// How often one address may ask for a server: a token bucket per address that fills at `perSecond`
// and holds up to `burst`, so a page reloading or a crowd behind one address arriving together is
// served, and a loop asking thousands of times a second is told to slow down. Kept in memory: an
// address's bucket is forgotten once it is full again, so the map holds only addresses active in
// the last few seconds.

export interface RateLimitOptions {
  /** Requests a second each address earns; 0 turns the limit off. */
  perSecond: number;
  /** How many an address may save up. */
  burst: number;
  now(): number;
}

export type RateVerdict = { ok: true } | { ok: false; retryMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets are swept for full ones after this many new addresses. */
const SWEEP_EVERY = 1024;

export function createRateLimit({ perSecond, burst, now }: RateLimitOptions) {
  const buckets = new Map<string, Bucket>();
  let added = 0;

  function refill(bucket: Bucket, t: number): void {
    bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) / 1000) * perSecond);
    bucket.at = t;
  }

  function sweep(t: number): void {
    for (const [key, bucket] of buckets) {
      refill(bucket, t);
      if (bucket.tokens >= burst) buckets.delete(key);
    }
  }

  return {
    /** Takes one request's token for `address`, or says how long until one is earned. */
    take(address: string): RateVerdict {
      if (perSecond <= 0) return { ok: true };
      const t = now();
      let bucket = buckets.get(address);
      if (!bucket) {
        if (++added % SWEEP_EVERY === 0) sweep(t);
        bucket = { tokens: burst, at: t };
        buckets.set(address, bucket);
      } else refill(bucket, t);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryMs: Math.ceil(((1 - bucket.tokens) / perSecond) * 1000) };
    },
    /** The rate, as configured (for the message a refusal carries). */
    perSecond,
    /** Addresses being tracked (for tests and memory checks). */
    size: () => buckets.size,
  };
}

export type RateLimit = ReturnType<typeof createRateLimit>;
