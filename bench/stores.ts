// The lease stores compared, in one run on this machine: dispatch cycles per second at 16 and 64
// clients with 1,000 servers, on SQLite with one dispatcher and on PostgreSQL with 1, 2 and 4
// dispatchers sharing one database (clients and servers spread over them), against a bare Bun
// WebSocket server; optionally the dispatcher of an earlier checkout too (RENDER_DISPATCH_BEFORE
// names its folder), for the cost of the store interface. Then the CPU 10,000 heartbeating servers
// cost the dispatcher and the database, and how long a page waiting on one dispatcher waits for a
// server freed through another. A throwaway PostgreSQL cluster; everything on 127.0.0.1, bounded.

import { SQL } from 'bun';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../tests/postgres-cluster.ts';
import { freePort, openSocket, simulateRenderServer, startDispatcher, startProcess, type Proc, type SimulatedServer } from '../tests/helpers.ts';
import { DISPATCH_LIMITS, load, type LoadResult } from './dispatch.ts';
import { cpuMs, treeCpuMs } from './procfs.ts';
import { markdownTable, percentile } from './stats.ts';

export interface StoresOptions {
  servers: number;
  clients: number[];
  durationMs: number;
  dispatchers: number[];
  heartbeatServers: number;
  heartbeatMs: number;
  wakeups: number;
}

export const FULL: StoresOptions = { servers: 1000, clients: [16, 64], durationMs: 3000, dispatchers: [1, 2, 4], heartbeatServers: 10_000, heartbeatMs: 5000, wakeups: 200 };
export const SMOKE: StoresOptions = { servers: 20, clients: [4], durationMs: 300, dispatchers: [1, 2], heartbeatServers: 100, heartbeatMs: 1000, wakeups: 10 };

export interface DispatchRow {
  setup: string;
  clients: number;
  cyclesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Shares of one core: the dispatchers together, and the database. */
  dispatcherCpu: number;
  databaseCpu: number | null;
}

export interface HeartbeatRow {
  store: string;
  servers: number;
  heartbeatsPerSecond: number;
  dispatcherCpu: number;
  databaseCpu: number | null;
}

export interface StoresResult {
  dispatch: DispatchRow[];
  heartbeats: HeartbeatRow[];
  wake: { samples: number; p50Ms: number; p99Ms: number; maxMs: number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const BEFORE_ENV = 'RENDER_DISPATCH_BEFORE';

/** The CPU a set of processes (and, for the database, its backends) uses while `work` runs, as shares of one core. */
async function cpuDuring<T>(dispatchers: Proc[], cluster: Cluster | null, work: () => Promise<T>) {
  const pids = dispatchers.map((p) => p.child.pid!);
  const sum = () => pids.reduce((n, pid) => n + cpuMs(pid), 0);
  const db = () => (cluster ? treeCpuMs(cluster.postmasterPid()) : 0);
  const [d0, b0, t0] = [sum(), db(), performance.now()];
  const result = await work();
  const elapsed = performance.now() - t0;
  return { result, dispatcherCpu: (sum() - d0) / elapsed, databaseCpu: cluster ? (db() - b0) / elapsed : null };
}

/** Clients spread evenly over the dispatchers' URLs, measured as one load. */
async function spreadLoad(ports: number[], clients: number, durationMs: number, byUrl: Map<string, SimulatedServer>): Promise<LoadResult> {
  const parts = await Promise.all(
    ports.map((port, i) => load(`ws://127.0.0.1:${port}/stream`, Math.floor(clients / ports.length) + (i < clients % ports.length ? 1 : 0), 'persistent', durationMs, byUrl)),
  );
  return {
    requests: parts.reduce((n, p) => n + p.requests, 0),
    cycles: parts.reduce((n, p) => n + p.cycles, 0),
    nones: parts.reduce((n, p) => n + p.nones, 0),
    latencies: parts.flatMap((p) => p.latencies),
    elapsedMs: Math.max(...parts.map((p) => p.elapsedMs)),
  };
}

/** `count` simulated render servers, registered in batches, spread over the dispatchers' ports. */
export async function registerMany(ports: number[], count: number): Promise<SimulatedServer[]> {
  const simulated: SimulatedServer[] = [];
  for (let i = 0; i < count; i += 200) {
    const batch = Array.from({ length: Math.min(200, count - i) }, (_, j) => simulateRenderServer(ports[(i + j) % ports.length], `sim-${i + j}`, `ws://127.0.0.1:1/s${i + j}`));
    simulated.push(...(await Promise.all(batch)));
  }
  return simulated;
}

interface Setup {
  name: string;
  cluster: Cluster | null;
  start(extra: string[]): Promise<{ procs: Proc[]; ports: number[]; cleanUp(): void }>;
}

function sqliteSetup(name: string, main: string): Setup {
  return {
    name,
    cluster: null,
    async start(extra) {
      const dir = mkdtempSync(join(tmpdir(), 'bench-stores-'));
      const port = await freePort();
      const proc = startProcess('bun', [main, '--port', String(port), '--db', join(dir, 'dispatcher.db'), ...extra]);
      await proc.waitForOutput(/listening/, 20_000);
      return { procs: [proc], ports: [port], cleanUp: () => rmSync(dir, { recursive: true, force: true }) };
    },
  };
}

function postgresSetup(cluster: Cluster, count: number): Setup {
  return {
    name: `PostgreSQL, ${count} dispatcher${count > 1 ? 's' : ''}`,
    cluster,
    async start(extra) {
      // A database of its own for each setup, so that none inherits another's rows.
      const ports = await Promise.all(Array.from({ length: count }, freePort));
      const url = cluster.url.replace(/\/postgres$/, `/bench_${crypto.randomUUID().replaceAll('-', '')}`);
      const admin = new SQL(cluster.url, { max: 1 });
      await admin.unsafe(`CREATE DATABASE ${new URL(url).pathname.slice(1)}`);
      await admin.close();
      const procs = ports.map((port) => startDispatcher(port, url, extra));
      await Promise.all(procs.map((proc) => proc.waitForOutput(/listening/, 20_000)));
      return { procs, ports, cleanUp() {} };
    },
  };
}

async function dispatchRows(setup: Setup, options: StoresOptions, log: (line: string) => void): Promise<DispatchRow[]> {
  const { procs, ports, cleanUp } = await setup.start(['--ttl', '600s', '--heartbeat', '300s', ...DISPATCH_LIMITS]);
  const simulated = await registerMany(ports, options.servers);
  const rows: DispatchRow[] = [];
  try {
    const byUrl = new Map(simulated.map((s) => [s.url, s]));
    for (const clients of options.clients) {
      const { result, dispatcherCpu, databaseCpu } = await cpuDuring(procs, setup.cluster, () => spreadLoad(ports, clients, options.durationMs, byUrl));
      rows.push({
        setup: setup.name, clients, cyclesPerSecond: Math.round(result.cycles / (result.elapsedMs / 1000)),
        p50Ms: percentile(result.latencies, 50), p99Ms: percentile(result.latencies, 99), dispatcherCpu, databaseCpu,
      });
      log(`${setup.name}, ${clients} clients: ${rows.at(-1)!.cyclesPerSecond} cycles/s`);
      await sleep(500);
    }
  } finally {
    for (const s of simulated) s.close();
    await Promise.all(procs.map((proc) => proc.stop()));
    cleanUp();
  }
  return rows;
}

async function baselineRows(options: StoresOptions): Promise<DispatchRow[]> {
  const port = await freePort();
  const proc = startProcess('bun', ['bench/baseline-server.ts', String(port)]);
  await proc.waitForOutput(/listening/);
  const rows: DispatchRow[] = [];
  try {
    for (const clients of options.clients) {
      const { result, dispatcherCpu } = await cpuDuring([proc], null, () => load(`ws://127.0.0.1:${port}/`, clients, 'persistent', options.durationMs, null));
      rows.push({
        setup: 'bare Bun WebSocket server (answers/s)', clients, cyclesPerSecond: Math.round(result.requests / (result.elapsedMs / 1000)),
        p50Ms: percentile(result.latencies, 50), p99Ms: percentile(result.latencies, 99), dispatcherCpu, databaseCpu: null,
      });
    }
  } finally {
    await proc.stop();
  }
  return rows;
}

async function heartbeatRow(setup: Setup, options: StoresOptions, log: (line: string) => void): Promise<HeartbeatRow> {
  const { procs, ports, cleanUp } = await setup.start(['--heartbeat', '1000ms', '--ttl', '3000ms', ...DISPATCH_LIMITS]);
  const simulated = await registerMany(ports, options.heartbeatServers);
  try {
    // Registering thousands takes a while, and the heartbeats sent meanwhile are answered late:
    // measured once that backlog is gone.
    await sleep(3000);
    const before = simulated.reduce((n, s) => n + s.leases(), 0);
    const { result: elapsed, dispatcherCpu, databaseCpu } = await cpuDuring(procs, setup.cluster, async () => {
      const t0 = performance.now();
      await sleep(options.heartbeatMs);
      return performance.now() - t0;
    });
    const row = {
      store: setup.name, servers: options.heartbeatServers,
      heartbeatsPerSecond: Math.round(((simulated.reduce((n, s) => n + s.leases(), 0) - before) * 1000) / elapsed), dispatcherCpu, databaseCpu,
    };
    log(`${setup.name}: ${row.heartbeatsPerSecond} heartbeats/s, dispatcher ${Math.round(dispatcherCpu * 100)}%, database ${Math.round((databaseCpu ?? 0) * 100)}%`);
    return row;
  } finally {
    for (const s of simulated) s.close();
    await Promise.all(procs.map((proc) => proc.stop()));
    cleanUp();
  }
}

/** A page waits on B; the one server, held through A, is freed there: how long until the page has it. */
async function wakeLatency(cluster: Cluster, samples: number) {
  const { procs, ports } = await postgresSetup(cluster, 2).start([...DISPATCH_LIMITS]);
  const server = await simulateRenderServer(ports[0], 'wake-1', 'ws://127.0.0.1:1/wake-1');
  const latencies: number[] = [];
  try {
    const holder = await openSocket(`ws://127.0.0.1:${ports[0]}/stream`);
    holder.send('get_server_url');
    await new Promise((resolve) => holder.once('message', resolve));
    server.report('connected');
    for (let i = 0; i < samples; i++) {
      const page = await openSocket(`ws://127.0.0.1:${ports[1]}/stream`);
      const queued = new Promise((resolve) => page.once('message', resolve));
      page.send(JSON.stringify({ type: 'get_server_url', wait: true }));
      await queued;
      const served = new Promise<number>((resolve) => page.on('message', (data) => String(data).includes('server_url') && resolve(performance.now())));
      const freedAt = performance.now();
      server.report('gone');
      latencies.push((await served) - freedAt);
      server.report('connected');
      page.close();
      await sleep(20);
    }
    holder.close();
  } finally {
    server.close();
    await Promise.all(procs.map((proc) => proc.stop()));
  }
  return { samples: latencies.length, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies) };
}

export async function runStores(options: StoresOptions, log = console.error): Promise<StoresResult> {
  const cluster = await startCluster();
  try {
    const sqlite = sqliteSetup('SQLite, 1 dispatcher', 'app/main.ts');
    const before = process.env[BEFORE_ENV];
    const setups = [
      sqlite,
      ...(before ? [sqliteSetup('SQLite, 1 dispatcher, before the store interface', join(before, 'app', 'main.ts'))] : []),
      ...options.dispatchers.map((n) => postgresSetup(cluster, n)),
    ];
    const dispatch = await baselineRows(options);
    for (const setup of setups) dispatch.push(...(await dispatchRows(setup, options, log)));
    const heartbeats = [await heartbeatRow(sqlite, options, log), await heartbeatRow(postgresSetup(cluster, 1), options, log)];
    const wake = await wakeLatency(cluster, options.wakeups);
    log(`wake across dispatchers: p50 ${wake.p50Ms.toFixed(2)}ms, p99 ${wake.p99Ms.toFixed(2)}ms`);
    return { dispatch, heartbeats, wake };
  } finally {
    await cluster.stop();
  }
}

const pct = (share: number | null) => (share === null ? '-' : `${Math.round(share * 100)}%`);

export function storesTable({ dispatch, heartbeats, wake }: StoresResult): string {
  return [
    `Dispatch cycles/s and get_server_url latency (ms), persistent connections, render servers simulated (dispatcher flags: ${DISPATCH_LIMITS.join(' ')})`,
    '',
    markdownTable(
      ['store', 'clients', 'cycles/s', 'p50', 'p99', 'dispatcher CPU', 'database CPU'],
      dispatch.map((r) => [r.setup, r.clients, r.cyclesPerSecond, r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), pct(r.dispatcherCpu), pct(r.databaseCpu)]),
    ),
    '',
    'Heartbeating render servers at 1 Hz, one dispatcher: share of a core used',
    '',
    markdownTable(
      ['store', 'servers', 'heartbeats/s', 'dispatcher CPU', 'database CPU'],
      heartbeats.map((r) => [r.store, r.servers, r.heartbeatsPerSecond, pct(r.dispatcherCpu), pct(r.databaseCpu)]),
    ),
    '',
    'A page waiting on dispatcher B, its server freed through dispatcher A (PostgreSQL, LISTEN/NOTIFY): ms until the page has its URL',
    '',
    markdownTable(['samples', 'p50', 'p99', 'max'], [[wake.samples, wake.p50Ms.toFixed(2), wake.p99Ms.toFixed(2), wake.maxMs.toFixed(2)]]),
  ].join('\n');
}
