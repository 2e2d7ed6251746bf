// Heartbeats at scale: many simulated render servers heartbeating at 1 Hz. Measures the share of
// a core the dispatcher spends on them, and the dispatch latency while they run, against the same
// servers registered but told to heartbeat only every ten minutes, in the same run. The beats do
// not ask for an answer, as a render server's do not; the dispatcher's own count of beats written
// (its /metrics) gives the rate. The floor is the bare Bun WebSocket server of the dispatch
// benchmark taking as many sockets' heartbeats and answering none: what receiving them alone
// costs on this machine.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from '../common/protocol.ts';
import { freePort, simulateRenderServer, startDispatcher, startProcess, type SimulatedServer } from '../tests/helpers.ts';
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

/** The dispatcher's count of heartbeats written, from its /metrics. */
async function heartbeatsWritten(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('render_dispatch_heartbeats_total '));
  if (!line) throw new Error('the dispatcher\'s /metrics has no render_dispatch_heartbeats_total');
  return Number(line.split(' ')[1]);
}

async function runOne(options: HeartbeatOptions, heartbeatMs: number, log: (line: string) => void): Promise<HeartbeatRun> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-heartbeats-'));
  const ttl = heartbeatMs * 3;
  const dispatcher = startDispatcher(port, join(dir, 'dispatcher.db'), ['--heartbeat', `${heartbeatMs}ms`, '--ttl', `${ttl}ms`, ...DISPATCH_LIMITS]);
  const simulated: SimulatedServer[] = [];
  try {
    await dispatcher.waitForOutput(/listening/);
    for (let i = 0; i < options.servers; i += 200) {
      const batch = Array.from({ length: Math.min(200, options.servers - i) }, (_, j) => simulateRenderServer(port, `sim-${i + j}`, `ws://127.0.0.1:1/s${i + j}`, { answers: false }));
      simulated.push(...(await Promise.all(batch)));
    }
    // One whole interval (when it is short), so that every server is beating; measured over whole
    // intervals too.
    await sleep(Math.min(heartbeatMs, 2000) + 200);
    const windowMs = heartbeatMs >= options.measureMs ? options.measureMs : Math.ceil(options.measureMs / heartbeatMs) * heartbeatMs;
    const writtenBefore = await heartbeatsWritten(port);
    const { cpuShare: idleCpu, result: elapsed } = await cpuShareDuring(dispatcher.child.pid!, async () => {
      const t0 = performance.now();
      await sleep(windowMs);
      return performance.now() - t0;
    });
    const heartbeatsPerSecond = Math.round((((await heartbeatsWritten(port)) - writtenBefore) * 1000) / elapsed);
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

export interface HeartbeatFloor {
  sockets: number;
  /** Heartbeats the sockets sent in the window, per second. */
  beatsPerSecond: number;
  /** Share of one core the bare server used. */
  cpu: number;
}

/** As many sockets sending a heartbeat at 1 Hz to the bare server, which reads each and answers none. */
async function runFloor(options: HeartbeatOptions, log: (line: string) => void): Promise<HeartbeatFloor> {
  const port = await freePort();
  const server = startProcess('bun', ['bench/baseline-server.ts', String(port), '--silent']);
  const sockets: WebSocket[] = [];
  const timers: ReturnType<typeof setTimeout>[] = [];
  let sent = 0;
  let stopped = false;
  try {
    await server.waitForOutput(/listening/);
    const beat = encode({ type: 'heartbeat', fps: 0, frameMs: 0, client: 'none' });
    for (let i = 0; i < options.servers; i += 200) {
      const batch = Array.from({ length: Math.min(200, options.servers - i) }, () => new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
        ws.onopen = () => {
          sockets.push(ws);
          // A socket opening after a failure has stopped the run beats no more.
          if (stopped) return ws.close();
          // Spread over the second, as render servers started at different times are.
          timers.push(setTimeout(() => timers.push(setInterval(() => (ws.send(beat), sent++), 1000)), Math.random() * 1000));
          resolve();
        };
        ws.onerror = () => reject(new Error('the bare server refused a socket'));
      }));
      await Promise.all(batch);
    }
    await sleep(1200);
    const before = sent;
    const { cpuShare, result: elapsed } = await cpuShareDuring(server.child.pid!, async () => {
      const t0 = performance.now();
      await sleep(options.measureMs);
      return performance.now() - t0;
    });
    const beatsPerSecond = Math.round(((sent - before) * 1000) / elapsed);
    log(`bare server, ${options.servers} sockets at 1 Hz: ${beatsPerSecond} beats/s read, ${Math.round(cpuShare * 100)}% of a core`);
    return { sockets: options.servers, beatsPerSecond, cpu: cpuShare };
  } finally {
    stopped = true;
    for (const timer of timers) clearTimeout(timer);
    for (const ws of sockets) ws.close();
    await server.stop();
  }
}

export interface HeartbeatResults {
  /** The same servers twice: first all but silent (the baseline), then beating at 1 Hz. */
  runs: HeartbeatRun[];
  floor: HeartbeatFloor;
}

export async function runHeartbeats(options: HeartbeatOptions, log = console.error): Promise<HeartbeatResults> {
  const runs = [await runOne(options, 600_000, log), await runOne(options, 1000, log)];
  return { runs, floor: await runFloor(options, log) };
}

export function heartbeatTable({ runs, floor }: HeartbeatResults): string {
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
    '',
    `floor: the bare Bun WebSocket server reading ${floor.sockets} sockets at 1 Hz (${floor.beatsPerSecond} beats/s), answering none, used ${Math.round(floor.cpu * 100)}% of a core;`,
    // A short run (--smoke) may take less than one clock tick of CPU.
    floor.cpu > 0 ? `the dispatcher's heartbeats cost ${(beating.idleCpu / floor.cpu).toFixed(2)}× that` : 'too little to measure against',
  ].join('\n');
}
