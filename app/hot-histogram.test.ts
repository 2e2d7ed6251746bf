import { describe, expect, test } from 'bun:test';
import { Histogram, Registry } from 'prom-client';
import { createHotHistogram } from './hot-histogram.ts';

const BUCKETS = [0.0005, 0.001, 0.005, 0.1, 1];
const NAME = 'render_dispatch_test_seconds';

describe('hot histogram', () => {
  test('writes the lines prom-client writes for the same observations', async () => {
    const registry = new Registry();
    const reference = new Histogram({ name: NAME, help: 'Calls, by method', labelNames: ['method'] as const, buckets: BUCKETS, registers: [registry] });
    const hot = createHotHistogram(NAME, 'Calls, by method', BUCKETS);
    const observers = { allocate: hot.series({ method: 'allocate' }), 'waiting.join': hot.series({ method: 'waiting.join' }) };
    const values = [0.0001, 0.0005, 0.00051, 0.002, 0.1, 0.5, 3, 0];
    values.forEach((v, i) => {
      const method = i % 3 === 0 ? 'waiting.join' : 'allocate';
      reference.observe({ method }, v);
      observers[method](v);
    });
    const lines = (text: string) => text.split('\n').filter((line) => line !== '').sort();
    expect(lines(hot.text())).toEqual(lines(await registry.getSingleMetricAsString(NAME)));
  });

  test('a series is there from the start at 0; without labels, its lines have none but le', () => {
    const hot = createHotHistogram(NAME, 'Requests', BUCKETS);
    expect(hot.text()).toBe('');
    const observe = hot.series({});
    expect(hot.text()).toContain(`${NAME}_bucket{le="+Inf"} 0`);
    expect(hot.text()).toContain(`${NAME}_count 0`);
    observe(0.002);
    expect(hot.text()).toContain(`${NAME}_bucket{le="0.005"} 1`);
    expect(hot.text()).toContain(`${NAME}_bucket{le="0.001"} 0`);
    expect(hot.text()).toContain(`${NAME}_count 1`);
  });

  test('label values are escaped as the format asks', () => {
    const hot = createHotHistogram(NAME, 'Calls', BUCKETS);
    hot.series({ method: 'a"b\\c' })(1);
    expect(hot.text()).toContain(`${NAME}_count{method="a\\"b\\\\c"} 1`);
  });
});
