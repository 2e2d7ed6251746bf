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

test('a copy later than the window is taken as seen; memory stays bounded', () => {
  const seen = createSeen({ window: 10, now: () => 0 });
  for (let n = 1; n <= 1000; n++) expect(seen.first('a', n)).toBe(true);
  expect(seen.first('a', 991)).toBe(false);
  expect(seen.first('a', 990)).toBe(false);
  expect(seen.first('a', 1001)).toBe(true);
});

test('origins silent for longer than forgetAfterMs are forgotten', () => {
  let t = 0;
  const seen = createSeen({ forgetAfterMs: 1000, now: () => t });
  seen.first('old', 1);
  t = 5000;
  for (let i = 0; i < 1024; i++) seen.first(`new-${i}`, 1);
  expect(seen.size()).toBe(1024);
});
