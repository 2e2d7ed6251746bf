// The relay's memory of messages seen: each (origin, number) first once, late copies within the
// window told apart, older ones taken as seen, silent origins forgotten.

import { expect, test } from 'bun:test';
import { createSeen } from './seen.ts';

test('each number of each origin is first once, in any order', () => {
  const seen = createSeen({ now: () => 0 });
  const order = [5, 1, 3, 2, 4, 5, 1, 6];
  expect(order.map((n) => seen.first('a', n))).toEqual([true, true, true, true, true, false, false, true]);
  expect(seen.first('b', 1)).toBe(true);
});

test('within the window a late number is told apart from a copy; older than the window is taken as seen', () => {
  const seen = createSeen({ window: 10, now: () => 0 });
  for (let n = 1; n <= 1000; n++) if (n % 3) expect(seen.first('a', n)).toBe(true);
  // 999 and 996 never came: still new; 998 did.
  expect([seen.first('a', 999), seen.first('a', 996), seen.first('a', 998), seen.first('a', 999)]).toEqual([true, true, false, false]);
  expect(seen.first('a', 990)).toBe(false);
  // A jump past the whole window forgets every bit below it.
  expect(seen.first('a', 5000)).toBe(true);
  expect([seen.first('a', 4995), seen.first('a', 4991), seen.first('a', 4990)]).toEqual([true, true, false]);
});

test('the default window tells apart a copy 60,000 behind the newest', () => {
  const seen = createSeen({ now: () => 0 });
  for (let n = 1; n <= 70_000; n += 2) seen.first('a', n);
  expect([seen.first('a', 10_002), seen.first('a', 10_001), seen.first('a', 2)]).toEqual([true, false, false]);
});

test('origins silent for longer than forgetAfterMs are forgotten', () => {
  let t = 0;
  const seen = createSeen({ forgetAfterMs: 1000, now: () => t });
  seen.first('old', 1);
  t = 5000;
  for (let i = 0; i < 1024; i++) seen.first(`new-${i}`, 1);
  expect(seen.size()).toBe(1024);
});
