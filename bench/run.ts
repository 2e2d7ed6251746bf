// `bun run bench [name …] [--smoke]`: runs the named benchmarks (or all), prints a markdown table
// for each, writes the raw results as JSON to bench/results/ and the charts of the scaling runs as
// SVG to bench/charts/. --smoke runs each in a few seconds, as the tests do, so that the
// benchmarks cannot rot; its files go to bench/results/ only.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, flagTable, readFlags, usageOf } from '../common/flags.ts';
import { configFromArgv } from '../common/node/entry.ts';
import * as allocation from './allocation.ts';
import { cyclesInProcess } from './cycle-in-process.ts';
import * as dispatch from './dispatch.ts';
import * as failure from './failure-detection.ts';
import * as flock from './flock.ts';
import * as frames from './frames.ts';
import * as heartbeats from './heartbeats.ts';
import * as input from './input-latency.ts';
import * as memory from './memory.ts';
import * as operations from './operations.ts';
import * as stores from './stores.ts';
import * as workers from './workers.ts';

interface Outcome {
  table: string;
  raw: unknown;
  charts?: Record<string, string>;
}

const BENCHES: Record<string, (smoke: boolean) => Promise<Outcome>> = {
  async dispatch(smoke) {
    const costs = await allocation.allocationCost(smoke ? [10, 100] : [10, 1000, 10_000], smoke ? 1000 : 20_000);
    const rows = await dispatch.runDispatch(smoke ? dispatch.SMOKE : dispatch.FULL);
    const inProcess = [];
    for (const ask of ['plain', 'page'] as const) inProcess.push(await cyclesInProcess(smoke ? 10 : 1000, smoke ? 8 : 64, smoke ? 300 : 3000, ask));
    return {
      table: `${allocation.allocationTable(costs)}\n\n${dispatch.dispatchTable(rows)}\n\n${dispatch.dispatchTargets(rows, inProcess)}`,
      raw: { allocation: costs, rows, inProcess },
      charts: { dispatch: dispatch.dispatchChart(rows) },
    };
  },
  async stores(smoke) {
    const result = await stores.runStores(smoke ? stores.SMOKE : stores.FULL);
    return { table: stores.storesTable(result), raw: result };
  },
  async heartbeats(smoke) {
    const runs = await heartbeats.runHeartbeats(smoke ? heartbeats.SMOKE : heartbeats.FULL);
    return { table: heartbeats.heartbeatTable(runs), raw: runs };
  },
  async frames(smoke) {
    const rows = await frames.runFrames(smoke ? frames.SMOKE : frames.FULL);
    return { table: frames.framesTable(rows), raw: rows, charts: { frames: frames.framesChart(rows) } };
  },
  async 'failure-detection'(smoke) {
    const result = await failure.runFailureDetection(smoke ? failure.SMOKE : failure.FULL);
    return { table: failure.failureTable(result), raw: result };
  },
  async 'input-latency'(smoke) {
    const result = await input.runInputLatency(smoke ? input.SMOKE : input.FULL);
    return { table: input.inputLatencyTable(result), raw: result };
  },
  async workers(smoke) {
    const result = await workers.runWorkers(smoke ? workers.SMOKE : workers.FULL);
    return { table: workers.workersTable(result), raw: result };
  },
  async operations(smoke) {
    const options = smoke ? operations.SMOKE : operations.FULL;
    const rows = await operations.runOperations(options);
    return { table: operations.operationsTable(rows, options), raw: rows };
  },
  async memory(smoke) {
    const rows = await memory.runMemory(smoke ? memory.SMOKE : memory.FULL);
    return { table: memory.memoryTable(rows), raw: rows };
  },
  async flock(smoke) {
    const result = await flock.runFlock(smoke ? flock.SMOKE : flock.FULL);
    return { table: flock.flockTable(result), raw: result };
  },
};

const FLAGS = flagTable({
  smoke: { help: 'run each for a few seconds, as the tests do' },
  help: { help: 'print this and exit' },
});
const USAGE = usageOf(`usage: bun run bench [${Object.keys(BENCHES).join(' | ')} …] [options]`, FLAGS);

const options = configFromArgv('bench', USAGE, (argv) => {
  const names = argv.filter((a) => !a.startsWith('--'));
  const values = readFlags(argv.filter((a) => a.startsWith('--')), FLAGS);
  if (values.help) return null;
  for (const name of names) if (!BENCHES[name]) throw new UsageError(`no benchmark named ${name}`);
  return { names: names.length ? names : Object.keys(BENCHES), smoke: values.smoke ?? false };
});

const resultsDir = join(import.meta.dir, 'results');
const chartsDir = options.smoke ? resultsDir : join(import.meta.dir, 'charts');
mkdirSync(resultsDir, { recursive: true });
mkdirSync(chartsDir, { recursive: true });
const suffix = options.smoke ? '.smoke' : '';
for (const name of options.names) {
  const { table, raw, charts = {} } = await BENCHES[name](options.smoke);
  const file = join(resultsDir, `${name}${suffix}.json`);
  writeFileSync(file, `${JSON.stringify({ name, at: new Date().toISOString(), smoke: options.smoke, result: raw }, null, 2)}\n`);
  const written = Object.entries(charts).map(([chart, svg]) => {
    const path = join(chartsDir, `${chart}${suffix}.svg`);
    writeFileSync(path, svg);
    return path;
  });
  console.log(`\n${table}\n\nraw results: ${file}${written.length ? `\ncharts: ${written.join(', ')}` : ''}`);
}
// Sockets to servers that were stopped may still be closing: nothing is left to wait for.
process.exit(0);
