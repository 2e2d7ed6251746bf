// A process per core, measured in one run on this machine. First the dispatcher with 1 and 2
// workers on each store: full cycles and requests per second at 64 persistent clients with 1,000
// simulated render servers, and the CPU all its processes (and the database's) spend per request.
// Then why SQLite workers reach the file through the primary: 1 and 2 processes running the
// dispatch cycle's three write transactions directly on one WAL file, as several dispatchers on
// one file would. Last, the render host: `--count 3` on this machine's cores at 256², 512² and
// 1024², each server's frame rate against the mean of the three. Everything on 127.0.0.1, bounded.

import { SQL } from 'bun';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../tests/postgres-cluster.ts';
import {
  askDispatcher, connectFrames, freePort, freePortRun, servers, startDispatcher, startProcess, waitFor, type Proc, type SimulatedServer,
} from '../tests/helpers.ts';
import { DISPATCH_LIMITS, load } from './dispatch.ts';
import { registerMany } from './stores.ts';
import { treeCpuMs } from './procfs.ts';
import { markdownTable, percentile } from './stats.ts';

export interface WorkersOptions {
  servers: number;
  clients: number;
  durationMs: number;
  fileProcesses: number[];
  fileMs: number;
  sizes: number[];
  frameMs: number;
}

export const FULL: WorkersOptions = { servers: 1000, clients: 64, durationMs: 3000, fileProcesses: [1, 2], fileMs: 3000, sizes: [256, 512, 1024], frameMs: 5000 };
export const SMOKE: WorkersOptions = { servers: 20, clients: 4, durationMs: 300, fileProcesses: [1, 2], fileMs: 300, sizes: [64], frameMs: 500 };

export interface DispatchRow {
  store: string;
  workers: number;
  requestsPerSecond: number;
  cyclesPerSecond: number;
  p99Ms: number;
  /** Shares of one core: the dispatcher's processes (primary and workers), and the database's. */
  dispatcherCpu: number;
  databaseCpu: number | null;
  /** CPU milliseconds of every server-side process per 1,000 requests. */
  cpuMsPerThousand: number;
}

export interface FileRow {
  processes: number;
  cyclesPerSecond: number;
  /** The slowest cycles: the time spent waiting for the file's write lock shows here. */
  p99Ms: number;
  maxMs: number;
}

export interface FairnessRow {
  size: number;
  fps: number[];
  mean: number;
  /** The largest distance of one server's rate from the mean, as a share of it. */
  spread: number;
}

export interface WorkersResult {
  dispatch: DispatchRow[];
  file: FileRow[];
  fairness: FairnessRow[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function dispatchRow(store: string, db: string, workers: number, cluster: Cluster | null, options: WorkersOptions): Promise<DispatchRow> {
  const port = await freePort();
  const primary = startDispatcher(port, db, ['--workers', String(workers), '--ttl', '600s', '--heartbeat', '300s', ...DISPATCH_LIMITS]);
  const simulated: SimulatedServer[] = [];
  try {
    for (let n = 1; n <= workers; n++) await primary.waitForOutput(workers > 1 ? new RegExp(`dispatcher ${n}: listening`) : /listening/, 20_000);
    simulated.push(...(await registerMany([port], options.servers)));
    const byUrl = new Map(simulated.map((s) => [s.url, s]));
    const pid = primary.child.pid!;
    const dbCpu = () => (cluster ? treeCpuMs(cluster.postmasterPid()) : 0);
    const [c0, d0, t0] = [treeCpuMs(pid), dbCpu(), performance.now()];
    const result = await load(`ws://127.0.0.1:${port}/stream`, options.clients, 'persistent', options.durationMs, byUrl);
    const elapsed = performance.now() - t0;
    const [dispatcherMs, databaseMs] = [treeCpuMs(pid) - c0, dbCpu() - d0];
    return {
      store, workers,
      requestsPerSecond: Math.round(result.requests / (result.elapsedMs / 1000)),
      cyclesPerSecond: Math.round(result.cycles / (result.elapsedMs / 1000)),
      p99Ms: percentile(result.latencies, 99),
      dispatcherCpu: dispatcherMs / elapsed,
      databaseCpu: cluster ? databaseMs / elapsed : null,
      cpuMsPerThousand: ((dispatcherMs + databaseMs) / Math.max(1, result.requests)) * 1000,
    };
  } finally {
    for (const s of simulated) s.close();
    await primary.stop();
  }
}

/** `processes` processes each running the dispatch cycle's writes on one file for `ms`. */
async function fileRow(processes: number, options: WorkersOptions): Promise<FileRow> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-file-'));
  const path = join(dir, 'dispatcher.db');
  try {
    // The lease file with its schema and servers, made by the store itself.
    const { openSqliteStore } = await import('../app/sqlite/lease-store.ts');
    const store = openSqliteStore(path);
    for (let i = 0; i < 100; i++) {
      await store.register({ id: `s${i}`, url: `ws://127.0.0.1:1/s${i}`, conn: 'c', instanceHash: 'h', client: 'none', targetFps: 60, newKey: 'k', ttlMs: 3_600_000 });
    }
    await store.close();
    const start = Date.now() + 500;
    const procs = Array.from({ length: processes }, () => startProcess('bun', ['bench/file-writer.ts', path, String(start), String(options.fileMs)]));
    const outs = await Promise.all(procs.map(async (proc) => {
      await proc.exited;
      return JSON.parse(proc.output().trim().split('\n').at(-1)!) as { cycles: number; p99Ms: number; maxMs: number };
    }));
    return {
      processes,
      cyclesPerSecond: Math.round(outs.reduce((n, o) => n + o.cycles, 0) / (options.fileMs / 1000)),
      p99Ms: Math.max(...outs.map((o) => o.p99Ms)),
      maxMs: Math.max(...outs.map((o) => o.maxMs)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function fairnessRow(size: number, options: WorkersOptions): Promise<FairnessRow> {
  const dispatcherPort = await freePort();
  const dispatcher = startDispatcher(dispatcherPort, ':memory:', DISPATCH_LIMITS);
  let host: Proc | null = null;
  const clients: WebSocket[] = [];
  try {
    await dispatcher.waitForOutput(/listening/);
    const port = await freePortRun(3);
    // A frame rate none reaches: all three compete for the cores all the time.
    host = startProcess('node', [
      '--import', 'tsx', 'render/main.ts', '--port', String(port), '--count', '3', '--dispatcher', `ws://127.0.0.1:${dispatcherPort}`,
      '--size', String(size), '--fps', '240',
    ]);
    await waitFor('three render servers', async () => (await servers(dispatcherPort)).filter((s) => s.state === 'ready').length === 3, 60_000);
    const streams = [];
    for (let i = 0; i < 3; i++) streams.push(await connectFrames(await askDispatcher(dispatcherPort)));
    clients.push(...(streams.map((s) => s.ws) as unknown as WebSocket[]));
    await sleep(1000);
    const before = streams.map((s) => s.frames.length);
    const t0 = performance.now();
    await sleep(options.frameMs);
    const seconds = (performance.now() - t0) / 1000;
    const fps = streams.map((s, i) => (s.frames.length - before[i]) / seconds);
    const mean = fps.reduce((a, b) => a + b) / fps.length;
    return { size, fps, mean, spread: Math.max(...fps.map((f) => Math.abs(f - mean) / mean)) };
  } finally {
    for (const ws of clients) ws.close();
    await host?.stop();
    await dispatcher.stop();
  }
}

export async function runWorkers(options: WorkersOptions, log = console.error): Promise<WorkersResult> {
  const result: WorkersResult = { dispatch: [], file: [], fairness: [] };
  const dir = mkdtempSync(join(tmpdir(), 'bench-workers-'));
  const cluster = await startCluster();
  try {
    for (const workers of [1, 2]) {
      result.dispatch.push(await dispatchRow('SQLite', join(dir, `w${workers}.db`), workers, null, options));
      log(`SQLite, ${workers} worker(s): ${result.dispatch.at(-1)!.requestsPerSecond} req/s`);
      const admin = new SQL(cluster.url, { max: 1 });
      const name = `bench_${crypto.randomUUID().replaceAll('-', '')}`;
      await admin.unsafe(`CREATE DATABASE ${name}`);
      await admin.close();
      result.dispatch.push(await dispatchRow('PostgreSQL', cluster.url.replace(/\/postgres$/, `/${name}`), workers, cluster, options));
      log(`PostgreSQL, ${workers} worker(s): ${result.dispatch.at(-1)!.requestsPerSecond} req/s`);
    }
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const processes of options.fileProcesses) {
    result.file.push(await fileRow(processes, options));
    log(`one file, ${processes} process(es): ${result.file.at(-1)!.cyclesPerSecond} cycles/s`);
  }
  for (const size of options.sizes) {
    result.fairness.push(await fairnessRow(size, options));
    log(`--count 3 at ${size}²: ${result.fairness.at(-1)!.fps.map((f) => f.toFixed(1)).join(', ')} fps`);
  }
  return result;
}

const pct = (share: number) => `${Math.round(share * 100)}%`;

export function workersTable(result: WorkersResult): string {
  return [
    `Dispatcher workers: 64 persistent clients, full cycles on 1,000 simulated render servers (flags: ${DISPATCH_LIMITS.join(' ')})`,
    '',
    markdownTable(
      ['store', 'workers', 'requests/s', 'cycles/s', 'p99 ms', 'dispatcher CPU', 'database CPU', 'CPU ms per 1,000 requests'],
      result.dispatch.map((r) => [
        r.store, r.workers, r.requestsPerSecond, r.cyclesPerSecond, r.p99Ms.toFixed(2), pct(r.dispatcherCpu), r.databaseCpu === null ? '-' : pct(r.databaseCpu),
        r.cpuMsPerThousand.toFixed(0),
      ]),
    ),
    '',
    'One SQLite file written by several processes at once (the dispatch cycle\'s three write transactions, busy_timeout 5 s)',
    '',
    markdownTable(['processes', 'cycles/s (all together)', 'p99 cycle ms', 'slowest cycle ms'], result.file.map((r) => [r.processes, r.cyclesPerSecond, r.p99Ms.toFixed(2), r.maxMs.toFixed(1)])),
    '',
    'render --count 3 on this machine\'s cores (--fps 240, which none reaches): frames per second of each server',
    '',
    markdownTable(
      ['size', 'server 1', 'server 2', 'server 3', 'mean', 'largest distance from the mean'],
      result.fairness.map((r) => [`${r.size}²`, ...r.fps.map((f) => f.toFixed(1)), r.mean.toFixed(1), pct(r.spread)]),
    ),
  ].join('\n');
}
