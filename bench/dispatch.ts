// Dispatch: full Rednet cycles per second. A client asks get_server_url and receives a URL; the
// simulated render server it names reports the client connected and then gone, so the server is
// free again. Clients loop for a fixed time, on persistent connections or with a new WebSocket
// per request as the tutorial's page does; the same loops against a bare Bun.serve server that
// answers a constant give the floor for this machine. Everything on 127.0.0.1, bounded in time.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, servers, simulateRenderServer, startDispatcher, startProcess, waitFor, type Proc, type SimulatedServer } from '../tests/helpers.ts';
import { answerWithin, answeredUrl, askMessage, type Ask } from './asking.ts';
import { lineChart } from './chart.ts';
import type { InProcessCycles } from './cycle-in-process.ts';
import { cpuShareDuring } from './procfs.ts';
import { markdownTable, percentile } from './stats.ts';

export type Mode = 'persistent' | 'per-request';

export interface DispatchOptions {
  concurrency: number[];
  servers: number[];
  modes: Mode[];
  durationMs: number;
}

export const FULL: DispatchOptions = { concurrency: [1, 16, 64, 256], servers: [10, 1000], modes: ['persistent', 'per-request'], durationMs: 3000 };
export const SMOKE: DispatchOptions = { concurrency: [1, 8], servers: [10], modes: ['persistent', 'per-request'], durationMs: 300 };

export interface DispatchRow {
  target: 'baseline' | 'dispatcher';
  servers: number | null;
  mode: Mode;
  clients: number;
  requestsPerSecond: number;
  cyclesPerSecond: number;
  noneShare: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Share of one core the server process used. */
  serverCpu: number;
  /** Every render server busy before the run: each answer is `none`. */
  fleetFull?: boolean;
  /** Asked as the page asks (see Ask). */
  asPage?: boolean;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`could not open ${url}`));
  });
}

/** The next message on `ws`; fails if the socket closes first, or nothing comes in time. */
function nextMessage(ws: WebSocket): Promise<string> {
  return answerWithin((answer, fail) => {
    ws.onmessage = (event) => answer(String(event.data));
    ws.onclose = (event) => fail(new Error(`the socket closed before an answer (${event.code} ${event.reason})`));
  });
}

export interface LoadResult {
  requests: number;
  cycles: number;
  nones: number;
  latencies: number[];
  elapsedMs: number;
}

/** `clients` loops asking until the time is up; each answered URL is a cycle its server completes. */
export async function load(url: string, clients: number, mode: Mode, durationMs: number, byUrl: Map<string, SimulatedServer> | null, ask: Ask = 'plain'): Promise<LoadResult> {
  const result: LoadResult = { requests: 0, cycles: 0, nones: 0, latencies: [], elapsedMs: 0 };
  const persistent = mode === 'persistent' ? await Promise.all(Array.from({ length: clients }, () => open(url))) : [];
  const start = performance.now();
  const end = start + durationMs;
  try {
    await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        let last = '';
        while (performance.now() < end) {
          const t0 = performance.now();
          const ws = mode === 'persistent' ? persistent[i] : await open(url);
          let text: string;
          try {
            const answer = nextMessage(ws);
            ws.send(askMessage(ask));
            text = await answer;
          } finally {
            if (mode === 'per-request') ws.close();
          }
          const given = answeredUrl(text, ask);
          result.latencies.push(performance.now() - t0);
          result.requests++;
          if (given === null) {
            result.nones++;
            continue;
          }
          // Asked again before its server's reports arrived, a connection gets its unclaimed grant
          // back: the same server, not a new cycle.
          if (given === last) continue;
          last = given;
          result.cycles++;
          const server = byUrl?.get(given.slice(0, given.indexOf('?')));
          if (byUrl && !server) throw new Error(`answer names no simulated server: ${given}`);
          server?.report('connected');
          server?.report('gone');
        }
      }),
    );
  } finally {
    for (const ws of persistent) ws.close();
  }
  result.elapsedMs = performance.now() - start;
  return result;
}

function row(target: DispatchRow['target'], servers: number | null, mode: Mode, clients: number, r: LoadResult, serverCpu: number): DispatchRow {
  const seconds = r.elapsedMs / 1000;
  return {
    target, servers, mode, clients,
    requestsPerSecond: Math.round(r.requests / seconds),
    cyclesPerSecond: Math.round(r.cycles / seconds),
    noneShare: r.requests ? r.nones / r.requests : 0,
    p50Ms: percentile(r.latencies, 50),
    p99Ms: percentile(r.latencies, 99),
    maxMs: Math.max(...r.latencies),
    serverCpu,
  };
}

async function started(proc: Proc, pattern: RegExp): Promise<Proc> {
  await proc.waitForOutput(pattern, 20_000);
  return proc;
}

/** The limits the dispatch benchmark runs with, printed with its table. */
export const DISPATCH_LIMITS = ['--rate-limit', '0'];

export async function runDispatch(options: DispatchOptions, log = console.error): Promise<DispatchRow[]> {
  const rows: DispatchRow[] = [];

  const baselinePort = await freePort();
  const baseline = await started(startProcess('bun', ['bench/baseline-server.ts', String(baselinePort)]), /listening/);
  try {
    for (const mode of options.modes) {
      for (const clients of options.concurrency) {
        const { result, cpuShare } = await cpuShareDuring(baseline.child.pid!, () => load(`ws://127.0.0.1:${baselinePort}/`, clients, mode, options.durationMs, null));
        rows.push(row('baseline', null, mode, clients, result, cpuShare));
        log(`baseline ${mode} ${clients} clients: ${rows.at(-1)!.requestsPerSecond} req/s`);
      }
    }
  } finally {
    await baseline.stop();
  }

  for (const serverCount of options.servers) {
    const port = await freePort();
    // A lease file, as users run it. Long leases: this measures dispatch; the heartbeat benchmark
    // measures heartbeats.
    const dir = mkdtempSync(join(tmpdir(), 'bench-dispatch-'));
    // Every client is on 127.0.0.1, so the per-address rate limit would measure itself: off.
    const dispatcher = await started(startDispatcher(port, join(dir, 'dispatcher.db'), ['--ttl', '600s', '--heartbeat', '300s', ...DISPATCH_LIMITS]), /listening/);
    const simulated: SimulatedServer[] = [];
    try {
      for (let i = 0; i < serverCount; i += 100) {
        const batch = Array.from({ length: Math.min(100, serverCount - i) }, (_, j) => simulateRenderServer(port, `sim-${i + j}`, `ws://127.0.0.1:1/s${i + j}`));
        simulated.push(...(await Promise.all(batch)));
      }
      const byUrl = new Map(simulated.map((s) => [s.url, s]));
      for (const mode of options.modes) {
        for (const clients of options.concurrency) {
          const { result, cpuShare } = await cpuShareDuring(dispatcher.child.pid!, () => load(`ws://127.0.0.1:${port}/stream`, clients, mode, options.durationMs, byUrl));
          rows.push(row('dispatcher', serverCount, mode, clients, result, cpuShare));
          log(`dispatcher (${serverCount} servers) ${mode} ${clients} clients: ${rows.at(-1)!.cyclesPerSecond} cycles/s`);
          // Let the last reports land so that every server is free for the next run.
          await waitFor('the servers to be free', async () => (await servers(port)).every((s) => s.state === 'ready'), 10_000);
        }
      }
      if (serverCount === Math.max(...options.servers)) {
        // The same persistent loop asking as the shipped page asks.
        const clients = Math.max(...options.concurrency.filter((n) => n <= 64));
        const { result, cpuShare } = await cpuShareDuring(dispatcher.child.pid!, () => load(`ws://127.0.0.1:${port}/stream`, clients, 'persistent', options.durationMs, byUrl, 'page'));
        rows.push({ ...row('dispatcher', serverCount, 'persistent', clients, result, cpuShare), asPage: true });
        log(`dispatcher (${serverCount} servers) persistent ${clients} clients, as the page asks: ${rows.at(-1)!.cyclesPerSecond} cycles/s`);
        await waitFor('the servers to be free', async () => (await servers(port)).every((s) => s.state === 'ready'), 10_000);
      }
      if (serverCount === Math.min(...options.servers)) {
        // A crowd at a full fleet: every server has its client, 64 persistent pages ask and are told `none`.
        const clients = Math.max(...options.concurrency.filter((n) => n <= 64));
        const holders = await Promise.all(simulated.map(() => open(`ws://127.0.0.1:${port}/stream`)));
        for (const page of holders) {
          const answer = nextMessage(page);
          page.send('get_server_url');
          const url = await answer;
          byUrl.get(url.slice(0, url.indexOf('?')))!.report('connected');
        }
        await waitFor('every server to be busy', async () => (await servers(port)).every((s) => s.state === 'busy'), 10_000);
        const { result, cpuShare } = await cpuShareDuring(dispatcher.child.pid!, () => load(`ws://127.0.0.1:${port}/stream`, clients, 'persistent', options.durationMs, byUrl));
        if (result.cycles > 0) throw new Error('a full fleet handed a server out');
        rows.push({ ...row('dispatcher', serverCount, 'persistent', clients, result, cpuShare), fleetFull: true });
        log(`dispatcher (${serverCount} servers, all busy) persistent ${clients} clients: ${rows.at(-1)!.requestsPerSecond} none/s`);
        for (const page of holders) page.close();
      }
    } finally {
      for (const s of simulated) s.close();
      await dispatcher.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

const ms = (n: number) => n.toFixed(2);

export function dispatchTable(rows: DispatchRow[]): string {
  return [
    'Dispatch: requests and full Rednet cycles per second, latency of get_server_url (ms), share of a core used by the server process',
    `(dispatcher flags: ${DISPATCH_LIMITS.join(' ')}: every client is on one address)`,
    '',
    markdownTable(
      ['server', 'render servers', 'connections', 'clients', 'requests/s', 'cycles/s', 'none', 'p50', 'p99', 'max', 'server CPU'],
      rows.map((r) => [
        r.target === 'baseline' ? 'bare Bun.serve' : 'dispatcher', r.servers ?? '-',
        r.fleetFull ? `${r.mode}, every server busy` : r.asPage ? `${r.mode}, as the page asks` : r.mode, r.clients,
        r.requestsPerSecond, r.target === 'baseline' ? '-' : r.cyclesPerSecond, `${Math.round(r.noneShare * 100)}%`,
        ms(r.p50Ms), ms(r.p99Ms), ms(r.maxMs), `${Math.round(r.serverCpu * 100)}%`,
      ]),
    ),
  ].join('\n');
}

/**
 * The speed targets that rest on this benchmark, each a ratio within the run; with the cycle in
 * process (no sockets), the most cycles the dispatcher's own code could complete on one core.
 */
export function dispatchTargets(rows: DispatchRow[], inProcess?: InProcessCycles[]): string {
  const find = (target: DispatchRow['target'], servers: number | null, clients: number, fleetFull = false) =>
    rows.find((r) => r.target === target && r.servers === servers && r.mode === 'persistent' && r.clients === clients && !!r.fleetFull === fleetFull && !r.asPage);
  const baseline64 = find('baseline', null, 64);
  const busy64 = find('dispatcher', 1000, 64);
  const few16 = find('dispatcher', 10, 16);
  const few256 = find('dispatcher', 10, 256);
  const crowd = find('dispatcher', 10, 64, true);
  const asPage = rows.find((r) => r.asPage);
  const pct = (a?: number, b?: number) => (a !== undefined && b ? `${((a / b) * 100).toFixed(1)}%` : '-');
  // A smoke run's CPU may round to nothing.
  const perCpu = (rate?: number, cpu?: number) => (rate !== undefined && cpu ? rate / cpu : undefined);
  return [
    'Against the targets (persistent connections; ratios within this run)',
    '',
    markdownTable(
      ['measure', 'target', 'this run'],
      [
        ['cycles/s, 1,000 servers, 64 clients, as a share of the bare server\'s requests/s', '≥ 15%', `${pct(busy64?.cyclesPerSecond, baseline64?.requestsPerSecond)} (${busy64?.cyclesPerSecond ?? '-'} / ${baseline64?.requestsPerSecond ?? '-'})`],
        // When the load generator holds the bare server back (it shares the machine), its rate
        // understates what a core of it answers: the same share per second of each server's CPU.
        ['the same, per second of each server\'s CPU', '≥ 15%', pct(perCpu(busy64?.cyclesPerSecond, busy64?.serverCpu), perCpu(baseline64?.requestsPerSecond, baseline64?.serverCpu))],
        ['get_server_url p99, 1,000 servers, 64 clients', '≤ 3 ms', busy64 ? `${ms(busy64.p99Ms)} ms` : '-'],
        ['cycles/s, 10 servers: 256 clients against 16', '≥ 100%', `${pct(few256?.cyclesPerSecond, few16?.cyclesPerSecond)} (${few256?.cyclesPerSecond ?? '-'} / ${few16?.cyclesPerSecond ?? '-'})`],
        ['answers/s to 64 clients at a full fleet, as a share of the bare server\'s', '≥ 50%', `${pct(crowd?.requestsPerSecond, baseline64?.requestsPerSecond)} (${crowd?.requestsPerSecond ?? '-'} / ${baseline64?.requestsPerSecond ?? '-'})`],
      ],
    ),
    ...(asPage
      ? [
          '',
          `As the shipped page asks when it opens (JSON, a new request id and session each time; ${asPage.servers} servers, ${asPage.clients} clients): ${asPage.cyclesPerSecond} cycles/s, ` +
            `${pct(asPage.cyclesPerSecond, baseline64?.requestsPerSecond)} of the bare server's requests/s, p99 ${ms(asPage.p99Ms)} ms.`,
        ]
      : []),
    ...(inProcess ?? []).flatMap((cycle) => [
      '',
      `The same cycle in process, without sockets (${cycle.servers} servers, ${cycle.pages} pages${cycle.ask === 'page' ? ', asking as the page asks' : ''}): ` +
        `${cycle.cyclesPerSecond} cycles/s, ${cycle.microseconds.toFixed(1)} µs each = ${pct(cycle.cyclesPerSecond, baseline64?.requestsPerSecond)} of the bare server's requests/s` +
        (cycle.ask === 'plain' ? ': the most the dispatcher\'s own code and store allow one core with free sockets.' : '.'),
    ]),
  ].join('\n');
}

export function dispatchChart(rows: DispatchRow[]): string {
  const series = new Map<string, [number, number][]>();
  for (const r of rows) {
    if (r.fleetFull || r.asPage) continue;
    const name = r.target === 'baseline' ? `bare Bun.serve, ${r.mode}` : `dispatcher ${r.servers} servers, ${r.mode}`;
    series.set(name, [...(series.get(name) ?? []), [r.clients, r.target === 'baseline' ? r.requestsPerSecond : r.cyclesPerSecond]]);
  }
  return lineChart({
    title: 'Dispatch cycles per second (baseline: answers per second)',
    xLabel: 'concurrent clients',
    yLabel: 'per second',
    logX: true,
    series: [...series].map(([name, points]) => ({ name, points })),
  });
}
