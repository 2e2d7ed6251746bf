// What operating it costs dispatch: the dispatch load (full cycles at persistent clients against
// simulated render servers) on a dispatcher started with --no-metrics and nobody watching,
// against one counting its metrics, scraped once a second (Prometheus's default is every 15 s),
// with a dashboard's feed open. Both run side by side on lease files with the same servers, and
// are loaded in turn, several rounds each, so that whatever else the machine does weighs on both.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startDispatcher, testSecret, type Proc, type SimulatedServer } from '../tests/helpers.ts';
import { DISPATCH_LIMITS, load } from './dispatch.ts';
import { registerMany } from './stores.ts';
import { cpuMs } from './procfs.ts';
import { markdownTable, percentile } from './stats.ts';

export interface OperationsOptions {
  servers: number;
  clients: number;
  durationMs: number;
  rounds: number;
}

export const FULL: OperationsOptions = { servers: 1000, clients: 64, durationMs: 3000, rounds: 6 };
export const SMOKE: OperationsOptions = { servers: 20, clients: 4, durationMs: 300, rounds: 1 };

export interface OperationsRow {
  setup: 'bare' | 'watched';
  round: number;
  cyclesPerSecond: number;
  requestsPerSecond: number;
  p99Ms: number;
  /** The dispatcher's CPU milliseconds per 1,000 requests: less at the mercy of the scheduler than a rate. */
  cpuMsPerThousand: number;
  /** Scrapes of /metrics during the round, and summaries the dashboard feed delivered. */
  scrapes: number;
  summaries: number;
}

interface Setup {
  name: OperationsRow['setup'];
  port: number;
  proc: Proc;
  simulated: SimulatedServer[];
}

async function setUp(name: OperationsRow['setup'], servers: number, dir: string): Promise<Setup> {
  const port = await freePort();
  const extra = ['--ttl', '600s', '--heartbeat', '300s', ...DISPATCH_LIMITS, ...(name === 'bare' ? ['--no-metrics'] : [])];
  const proc = startDispatcher(port, join(dir, `${name}.db`), extra);
  await proc.waitForOutput(/listening/, 20_000);
  return { name, port, proc, simulated: await registerMany([port], servers) };
}

/** Scrapes /metrics every second and reads the dashboard's feed until `stop`; counts both. */
function watch(port: number) {
  const counts = { scrapes: 0, summaries: 0 };
  const controller = new AbortController();
  const scraper = setInterval(() => {
    void fetch(`http://127.0.0.1:${port}/metrics`, { signal: controller.signal }).then((r) => r.text()).then(() => counts.scrapes++, () => {});
  }, 1000);
  const feed = (async () => {
    const response = await fetch(`http://127.0.0.1:${port}/v1/dashboard/feed`, {
      headers: { authorization: `Bearer ${testSecret()}` }, signal: controller.signal,
    });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      counts.summaries += (decoder.decode(chunk.value).match(/^event: summary$/gm) ?? []).length;
    }
  })().catch(() => {});
  return {
    counts,
    async stop() {
      clearInterval(scraper);
      controller.abort();
      await feed;
    },
  };
}

export async function runOperations(options: OperationsOptions, log = console.error): Promise<OperationsRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-operations-'));
  const setups: Setup[] = [];
  const rows: OperationsRow[] = [];
  try {
    setups.push(await setUp('bare', options.servers, dir), await setUp('watched', options.servers, dir));
    for (let round = 1; round <= options.rounds; round++) {
      for (const setup of round % 2 ? setups : [...setups].reverse()) {
        const watcher = setup.name === 'watched' ? watch(setup.port) : null;
        // The feed's history and first scrape land before the load starts.
        if (watcher) await new Promise((resolve) => setTimeout(resolve, 1200));
        const byUrl = new Map(setup.simulated.map((s) => [s.url, s]));
        const cpuBefore = cpuMs(setup.proc.child.pid!);
        const result = await load(`ws://127.0.0.1:${setup.port}/stream`, options.clients, 'persistent', options.durationMs, byUrl);
        const cpuSpent = cpuMs(setup.proc.child.pid!) - cpuBefore;
        await watcher?.stop();
        const seconds = result.elapsedMs / 1000;
        rows.push({
          setup: setup.name, round,
          cyclesPerSecond: Math.round(result.cycles / seconds), requestsPerSecond: Math.round(result.requests / seconds),
          p99Ms: percentile(result.latencies, 99), scrapes: watcher?.counts.scrapes ?? 0, summaries: watcher?.counts.summaries ?? 0,
          cpuMsPerThousand: Math.round((cpuSpent / Math.max(1, result.requests)) * 1000),
        });
        const last = rows.at(-1)!;
        log(`${setup.name} round ${round}: ${last.cyclesPerSecond} cycles/s, ${last.requestsPerSecond} req/s, p99 ${last.p99Ms.toFixed(2)}ms`);
        // Every server's client reports land before the next run.
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  } finally {
    for (const setup of setups) {
      for (const s of setup.simulated) s.close();
      await setup.proc.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

export function operationsTable(rows: OperationsRow[], options: OperationsOptions = FULL): string {
  const of = (setup: OperationsRow['setup']) => rows.filter((r) => r.setup === setup);
  const bare = of('bare');
  const watched = of('watched');
  const ratio = mean(watched.map((r) => r.cyclesPerSecond)) / Math.max(1, mean(bare.map((r) => r.cyclesPerSecond)));
  return [
    `Dispatch with and without operating it: ${options.servers} simulated render servers, ${options.clients} persistent clients, ${options.durationMs / 1000} s a round, loaded in turn (flags: ${DISPATCH_LIMITS.join(' ')}, lease file). bare: --no-metrics, nobody watching; watched: metrics counted, /metrics scraped every second, a dashboard feed open.`,
    '',
    markdownTable(
      ['setup', 'round', 'cycles/s', 'requests/s', 'p99', 'dispatcher CPU ms / 1,000 requests', 'scrapes', 'feed summaries'],
      rows.map((r) => [r.setup, r.round, r.cyclesPerSecond, r.requestsPerSecond, `${r.p99Ms.toFixed(2)} ms`, r.cpuMsPerThousand, r.scrapes, r.summaries]),
    ),
    '',
    `Mean cycles/s: bare ${Math.round(mean(bare.map((r) => r.cyclesPerSecond)))}, watched ${Math.round(mean(watched.map((r) => r.cyclesPerSecond)))}: watched at ${(ratio * 100).toFixed(1)} % of bare. ` +
      `CPU per 1,000 requests: bare ${Math.round(mean(bare.map((r) => r.cpuMsPerThousand)))} ms, watched ${Math.round(mean(watched.map((r) => r.cpuMsPerThousand)))} ms (+${((mean(watched.map((r) => r.cpuMsPerThousand)) / Math.max(1, mean(bare.map((r) => r.cpuMsPerThousand))) - 1) * 100).toFixed(1)} %).`,
  ].join('\n');
}
