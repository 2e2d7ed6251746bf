import { describe, expect, test } from 'bun:test';
import { addressKey, lastForwardedFor } from './client-address.ts';
import { createRateLimit } from './rate-limit.ts';

describe('whose limits a request counts against', () => {
  test('IPv4 as it is; IPv6 by its /64, however it is written; IPv4-mapped IPv6 as IPv4', () => {
    expect(addressKey('203.0.113.9')).toBe('203.0.113.9');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:0:0:9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('[2001:db8::1]')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:198.51.100.4')).toBe('198.51.100.4');
  });

  test('behind a proxy, the last X-Forwarded-For hop: the one the proxy appended, not what the page claims', () => {
    expect(lastForwardedFor('6.6.6.6, 203.0.113.9')).toBe('203.0.113.9');
    expect(lastForwardedFor(' 203.0.113.9 ')).toBe('203.0.113.9');
    expect(lastForwardedFor('')).toBeNull();
    expect(lastForwardedFor(undefined)).toBeNull();
  });
});

describe('rate limit', () => {
  test('a burst, then the rate; each address its own bucket; full buckets forgotten', () => {
    const clock = { t: 0 };
    const limit = createRateLimit({ perSecond: 10, burst: 3, now: () => clock.t });
    expect([1, 2, 3, 4].map(() => limit.take('a').ok)).toEqual([true, true, true, false]);
    expect(limit.take('a')).toEqual({ ok: false, retryMs: 100 });
    expect(limit.take('b').ok).toBe(true);
    clock.t += 100;
    expect(limit.take('a').ok).toBe(true);
    expect(limit.take('a').ok).toBe(false);
    // Thousands of addresses that each asked once are swept away once their buckets refill.
    for (let i = 0; i < 5000; i++) limit.take(`x${i}`);
    clock.t += 10_000;
    for (let i = 0; i < 1024; i++) limit.take(`y${i}`);
    expect(limit.size()).toBeLessThan(2000);
  });

  test('0 turns it off', () => {
    const limit = createRateLimit({ perSecond: 0, burst: 0, now: () => 0 });
    expect(Array.from({ length: 1000 }, () => limit.take('a').ok).every(Boolean)).toBe(true);
  });
});
