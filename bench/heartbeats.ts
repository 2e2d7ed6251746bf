// Heartbeats at scale: many simulated render servers heartbeating at 1 Hz. Measures the share of
// a core the dispatcher spends on them, and the dispatch latency while they run, against the same
// servers registered but told to heartbeat only every ten minutes, in the same run.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, simulateRenderServer, startDispatcher, type SimulatedServer } from '../tests/helpers.ts';
import { load, DISPATCH_LIMITS } from './dispatch.ts';
import { cpuShareDuring } from './procfs.ts';
import { markdownTable, percentile } from './stats.ts';

export interface HeartbeatOptions {
  servers: number;
  measureMs: number;
  clients: number;
}

export const FULL: HeartbeatOptions = { servers: 10_000, measureMs: 5000, clients: 64 };
export const SMOKE: HeartbeatOptions = { servers: 200, measureMs: 1000, clients: 4 };

export interface HeartbeatRun {
  heartbeatMs: number;
  servers: number;
  heartbeatsPerSecond: number;
  /** Share of one core the dispatcher used with no dispatch load. */
  idleCpu: number;
  dispatchP50Ms: number;
  dispatchP99Ms: number;
  cyclesPerSecond: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runOne(options: HeartbeatOptions, heartbeatMs: number, log: (line: string) => void): Promise<HeartbeatRun> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-heartbeats-'));
  const ttl = heartbeatMs * 3;
  const dispatcher = startDispatcher(port, join(dir, 'dispatcher.db'), ['--heartbeat', `${heartbeatMs}ms`, '--ttl', `${ttl}ms`, ...DISPATCH_LIMITS]);
  const simulated: SimulatedServer[] = [];
  try {
    await dispatcher.waitForOutput(/listening/);
    for (let i = 0; i < options.servers; i += 200) {
      const batch = Array.from({ length: Math.min(200, options.servers - i) }, (_, j) => simulateRenderServer(port, `sim-${i + j}`, `ws://127.0.0.1:1/s${i + j}`));
      simulated.push(...(await Promise.all(batch)));
    }
    // One whole interval (when it is short), so that every server is beating; measured over whole
    // intervals too.
    await sleep(Math.min(heartbeatMs, 2000) + 200);
    const windowMs = heartbeatMs >= options.measureMs ? options.measureMs : Math.ceil(options.measureMs / heartbeatMs) * heartbeatMs;
    const leasesBefore = simulated.reduce((n, s) => n + s.leases(), 0);
    const { cpuShare: idleCpu, result: elapsed } = await cpuShareDuring(dispatcher.child.pid!, async () => {
      const t0 = performance.now();
      await sleep(windowMs);
      return performance.now() - t0;
    });
    const heartbeatsPerSecond = Math.round(((simulated.reduce((n, s) => n + s.leases(), 0) - leasesBefore) * 1000) / elapsed);
    const byUrl = new Map(simulated.map((s) => [s.url, s]));
    const dispatch = await load(`ws://127.0.0.1:${port}/stream`, options.clients, 'persistent', options.measureMs, byUrl);
    log(`heartbeat ${heartbeatMs}ms, ${options.servers} servers: ${heartbeatsPerSecond} beats/s, dispatcher ${Math.round(idleCpu * 100)}% of a core`);
    return {
      heartbeatMs,
      servers: options.servers,
      heartbeatsPerSecond,
      idleCpu,
      dispatchP50Ms: percentile(dispatch.latencies, 50),
      dispatchP99Ms: percentile(dispatch.latencies, 99),
      cyclesPerSecond: Math.round((dispatch.cycles * 1000) / dispatch.elapsedMs),
    };
  } finally {
    for (const s of simulated) s.close();
    await dispatcher.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same servers twice: first all but silent (the baseline), then beating at 1 Hz. */
export async function runHeartbeats(options: HeartbeatOptions, log = console.error): Promise<HeartbeatRun[]> {
  return [await runOne(options, 600_000, log), await runOne(options, 1000, log)];
}

export function heartbeatTable(runs: HeartbeatRun[]): string {
  const [quiet, beating] = runs;
  return [
    `Heartbeats at scale (${beating.servers} simulated render servers; dispatch load: persistent connections)`,
    '',
    markdownTable(
      ['heartbeat', 'heartbeats/s', 'dispatcher CPU (no dispatch)', 'dispatch p50 ms', 'dispatch p99 ms', 'cycles/s'],
      runs.map((r) => [
        r.heartbeatMs >= 60_000 ? `every ${r.heartbeatMs / 60_000} min (baseline)` : `every ${r.heartbeatMs / 1000} s`,
        r.heartbeatsPerSecond, `${Math.round(r.idleCpu * 100)}%`, r.dispatchP50Ms.toFixed(2), r.dispatchP99Ms.toFixed(2), r.cyclesPerSecond,
      ]),
    ),
    '',
    `dispatch p99 with heartbeats / without: ${(beating.dispatchP99Ms / quiet.dispatchP99Ms).toFixed(2)}`,
  ].join('\n');
}
