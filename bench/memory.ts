// Memory: the dispatcher's resident set with many idle browser connections, and with many
// registered render servers, each against the same dispatcher freshly started and idle.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, simulateRenderServer, startDispatcher, type SimulatedServer } from '../tests/helpers.ts';
import { rssBytes } from './procfs.ts';
import { markdownTable } from './stats.ts';

export interface MemoryOptions {
  count: number;
  settleMs: number;
}

export const FULL: MemoryOptions = { count: 10_000, settleMs: 3000 };
export const SMOKE: MemoryOptions = { count: 200, settleMs: 300 };

export interface MemoryRow {
  what: 'idle browser connections' | 'registered render servers';
  count: number;
  baselineBytes: number;
  loadedBytes: number;
  bytesEach: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function openStream(port: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/stream`);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('could not open /stream'));
  });
}

async function measure(what: MemoryRow['what'], options: MemoryOptions, fill: (port: number) => Promise<() => void>): Promise<MemoryRow> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-memory-'));
  // Heartbeats every ten minutes: registered servers sit idle, as connections do.
  const dispatcher = startDispatcher(port, join(dir, 'dispatcher.db'), ['--heartbeat', '600s', '--ttl', '1200s']);
  try {
    await dispatcher.waitForOutput(/listening/);
    await sleep(options.settleMs);
    const baselineBytes = rssBytes(dispatcher.child.pid!);
    const empty = await fill(port);
    await sleep(options.settleMs);
    const loadedBytes = rssBytes(dispatcher.child.pid!);
    empty();
    return { what, count: options.count, baselineBytes, loadedBytes, bytesEach: Math.round((loadedBytes - baselineBytes) / options.count) };
  } finally {
    await dispatcher.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runMemory(options: MemoryOptions, log = console.error): Promise<MemoryRow[]> {
  const connections = await measure('idle browser connections', options, async (port) => {
    const sockets: WebSocket[] = [];
    for (let i = 0; i < options.count; i += 500) {
      sockets.push(...(await Promise.all(Array.from({ length: Math.min(500, options.count - i) }, () => openStream(port)))));
    }
    return () => sockets.forEach((ws) => ws.close());
  });
  log(`${connections.count} idle connections: ${connections.bytesEach} bytes each`);
  const servers = await measure('registered render servers', options, async (port) => {
    const simulated: SimulatedServer[] = [];
    for (let i = 0; i < options.count; i += 200) {
      const batch = Array.from({ length: Math.min(200, options.count - i) }, (_, j) => simulateRenderServer(port, `sim-${i + j}`, `ws://127.0.0.1:1/s${i + j}`));
      simulated.push(...(await Promise.all(batch)));
    }
    return () => simulated.forEach((s) => s.close());
  });
  log(`${servers.count} registered servers: ${servers.bytesEach} bytes each`);
  return [connections, servers];
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

export function memoryTable(rows: MemoryRow[]): string {
  return [
    'Memory: dispatcher resident set (MiB), idle and with the load, and the difference per item',
    '',
    markdownTable(['with', 'count', 'RSS idle', 'RSS loaded', 'bytes each'], rows.map((r) => [r.what, r.count, mib(r.baselineBytes), mib(r.loadedBytes), r.bytesEach])),
  ].join('\n');
}
