// A Prometheus histogram for the dispatcher's hot paths: every lease store call and every request
// is timed. prom-client's Histogram finds the series of an observation by checking and hashing its
// labels each time, which under load cost more than the store calls it timed. Here the caller
// takes its series once (`series({ method: 'allocate' })`) and an observation is a bucket search
// and three additions. Written out in Prometheus's text format, after the registry's own metrics,
// with the same lines prom-client would write; every series taken is there from the start, at 0,
// so that a rate over one that has not moved yet is 0, not absent.

export interface HotHistogram {
  /** The observer of one label set's series; cheap to call, so take it once and keep it. */
  series(labels: Record<string, string>): (value: number) => void;
  /** The histogram in Prometheus's text exposition format ('' before any series is taken). */
  text(): string;
}

interface Series {
  labels: string;
  /** Observations per bucket (not cumulative), the last one past every bound (+Inf). */
  counts: Float64Array;
  sum: number;
  count: number;
}

const escape = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function createHotHistogram(name: string, help: string, buckets: readonly number[]): HotHistogram {
  const bounds = [...buckets].sort((a, b) => a - b);
  const all = new Map<string, Series>();

  return {
    series(labels) {
      const key = Object.keys(labels).sort().map((label) => `${label}="${escape(labels[label])}"`).join(',');
      const series = all.get(key) ?? { labels: key, counts: new Float64Array(bounds.length + 1), sum: 0, count: 0 };
      all.set(key, series);
      return (value) => {
        let i = 0;
        while (i < bounds.length && value > bounds[i]) i++;
        series.counts[i]++;
        series.sum += value;
        series.count++;
      };
    },
    text() {
      const lines: string[] = [];
      for (const { labels, counts, sum, count } of all.values()) {
        const joined = (le: string) => `{le="${le}"${labels ? `,${labels}` : ''}}`;
        let cumulative = 0;
        bounds.forEach((bound, i) => {
          cumulative += counts[i];
          lines.push(`${name}_bucket${joined(String(bound))} ${cumulative}`);
        });
        lines.push(`${name}_bucket${joined('+Inf')} ${count}`);
        const own = labels ? `{${labels}}` : '';
        lines.push(`${name}_sum${own} ${sum}`, `${name}_count${own} ${count}`);
      }
      return lines.length ? [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} histogram`, ...lines].join('\n') : '';
    },
  };
}
