// The waiting room's line, run against every engine: one FIFO seen from every store on the data.

import { afterEach, describe, expect, test } from 'bun:test';
import { ENGINES, closeStores, manualClock } from './testing/engines.ts';

const TTL = 3000;

afterEach(closeStores);

for (const engine of ENGINES) {
  describe(`waiting line (${engine.name})`, () => {
    const clock = manualClock();
    const at = (t: number) => clock.set(t);
    const store = () => {
      at(0);
      return engine.fresh(clock);
    };
    const joiner = (conn: string, address = 'addr') => ({ conn, session: null, requestId: null, address });
    const roomy = { maxQueue: 100, maxPerAddress: 100 };

    test('first come, first served, across every store on the data; places are counted per address', async () => {
      const here = await store();
      const there = await engine.another(clock);
      await here.keepAlive(TTL);
      await there.keepAlive(TTL);
      await here.waiting.join(joiner('p1', 'x'), roomy);
      await there.waiting.join(joiner('p2', 'y'), roomy);
      await here.waiting.join(joiner('p3', 'x'), roomy);
      expect(await here.waiting.head()).toEqual({ conn: 'p1', session: null, requestId: null, mine: true });
      expect(await there.waiting.head()).toMatchObject({ conn: 'p1', mine: false });
      expect(await here.waiting.standings()).toEqual({ size: 3, mine: [{ conn: 'p1', position: 1 }, { conn: 'p3', position: 3 }] });
      expect(await there.waiting.standings()).toEqual({ size: 3, mine: [{ conn: 'p2', position: 2 }] });
      expect([await here.waiting.sizeFrom('x'), await there.waiting.size()]).toEqual([2, 3]);
      expect(await here.waiting.leave('p1')).toBe(true);
      expect(await here.waiting.leave('p1')).toBe(false);
      expect(await here.waiting.head()).toMatchObject({ conn: 'p2', mine: false });
    });

    test("a dispatcher that stops keeping alive loses its places, and never blocks the line", async () => {
      const here = await store();
      const there = await engine.another(clock);
      await there.keepAlive(TTL);
      await there.waiting.join(joiner('gone'), roomy);
      await here.waiting.join(joiner('mine'), roomy);
      expect(await here.waiting.head()).toMatchObject({ conn: 'gone', mine: false });
      at(TTL);
      expect(await here.waiting.head()).toMatchObject({ conn: 'mine', mine: true });
      expect(await here.waiting.size()).toBe(1);
      await here.keepAlive(TTL);
      at(0);
      expect(await there.waiting.standings()).toEqual({ size: 1, mine: [] });
    });

    test('pages joining together, on every store, never pass a cap: the line or their address', async () => {
      const here = await store();
      const there = await engine.another(clock);
      await here.keepAlive(TTL);
      await there.keepAlive(TTL);
      const limits = { maxQueue: 12, maxPerAddress: 8 };
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => (i % 2 ? here : there).waiting.join(joiner(`p${i}`, i < 20 ? 'crowd' : `other-${i}`), limits)),
      );
      const taken = results.filter((r) => r.ok).length;
      expect(taken).toBe(12);
      expect(await here.waiting.size()).toBe(12);
      expect(await here.waiting.sizeFrom('crowd')).toBe(8);
      expect(results.filter((r) => !r.ok && r.full === 'address').length).toBeGreaterThan(0);
      expect(results.filter((r) => !r.ok && r.full === 'line').length).toBeGreaterThan(0);
      expect(await here.waiting.join(joiner('late', 'elsewhere'), limits)).toEqual({ ok: false, full: 'line' });
      expect(await here.waiting.leave('p1')).toBe(true);
      expect(await here.waiting.join(joiner('late', 'elsewhere'), limits)).toEqual({ ok: true });
    });
  });
}
