// The relay's memory of messages seen: each (origin, number) first once; a later copy that
// travelled fewer links is "shorter" (to be passed on again), any other a copy; a stopped message
// stays stopped; older than the window is taken as seen; silent origins are forgotten.

import { expect, test } from 'bun:test';
import { createSeen } from './seen.ts';

test('each number of each origin is first once, in any order', () => {
  const seen = createSeen({ now: () => 0 });
  const order = [5, 1, 3, 2, 4, 5, 1, 6];
  expect(order.map((n) => seen.offer('a', n, 1))).toEqual(['first', 'first', 'first', 'first', 'first', 'seen', 'seen', 'first']);
  expect(seen.offer('b', 1, 1)).toBe('first');
});

test('a copy that travelled fewer links than any before is shorter; a stopped message stays stopped', () => {
  const seen = createSeen({ now: () => 0 });
  expect([seen.offer('a', 1, 3), seen.offer('a', 1, 3), seen.offer('a', 1, 4), seen.offer('a', 1, 2), seen.offer('a', 1, 2)]).toEqual([
    'first', 'seen', 'seen', 'shorter', 'seen',
  ]);
  seen.offer('a', 2, 3);
  seen.stop('a', 2);
  expect(seen.offer('a', 2, 1)).toBe('seen');
});

test('within the window a late number is told apart from a copy; older than the window is taken as seen', () => {
  const seen = createSeen({ window: 10, now: () => 0 });
  for (let n = 1; n <= 1000; n++) if (n % 3) expect(seen.offer('a', n, 1)).toBe('first');
  // 999 and 996 never came: still new; 998 did.
  expect([seen.offer('a', 999, 1), seen.offer('a', 996, 1), seen.offer('a', 998, 1), seen.offer('a', 999, 1)]).toEqual(['first', 'first', 'seen', 'seen']);
  expect(seen.offer('a', 990, 1)).toBe('seen');
  // A jump past the whole window forgets everything below it.
  expect(seen.offer('a', 5000, 1)).toBe('first');
  expect([seen.offer('a', 4995, 1), seen.offer('a', 4991, 1), seen.offer('a', 4990, 1)]).toEqual(['first', 'first', 'seen']);
});

test('the default window tells apart a copy 60,000 behind the newest', () => {
  const seen = createSeen({ now: () => 0 });
  for (let n = 1; n <= 70_000; n += 2) seen.offer('a', n, 1);
  expect([seen.offer('a', 10_002, 1), seen.offer('a', 10_001, 1), seen.offer('a', 2, 1)]).toEqual(['first', 'seen', 'seen']);
});

test('origins silent for longer than forgetAfterMs are forgotten', () => {
  let t = 0;
  const seen = createSeen({ forgetAfterMs: 1000, now: () => t });
  seen.offer('old', 1, 1);
  t = 5000;
  for (let i = 0; i < 1024; i++) seen.offer(`new-${i}`, 1, 1);
  expect(seen.size()).toBe(1024);
});
