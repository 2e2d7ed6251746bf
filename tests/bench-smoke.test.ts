// Every benchmark's smoke mode, run through `bun run bench NAME --smoke` exactly as a person
// would run the full one, so that none can rot. Each takes seconds; the checks are of shape and
// sanity, not of speed: speed is what the full runs are for.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startProcess } from './helpers.ts';

async function smoke(name: string): Promise<{ table: string; result: any }> {
  const proc = startProcess('bun', ['bench/run.ts', name, '--smoke']);
  const code = await proc.exited;
  assert.equal(code, 0, `bun run bench ${name} --smoke failed:\n${proc.output()}`);
  assert.match(proc.output(), /\n\| --- \|/, 'it printed a markdown table');
  const { result } = JSON.parse(readFileSync(join(ROOT, 'bench', 'results', `${name}.smoke.json`), 'utf8'));
  return { table: proc.output(), result };
}

describe('benchmark smoke runs', () => {
  test('dispatch: the dispatcher completes cycles, the baseline answers, and a chart is drawn', async () => {
    const { result, table } = await smoke('dispatch');
    const rows = result.rows as { target: string; cyclesPerSecond: number; requestsPerSecond: number; p99Ms: number; noneShare: number; fleetFull?: boolean; asPage?: boolean }[];
    assert.ok((result.allocation as { microseconds: number; groupedMicroseconds: number }[]).every((c) => c.microseconds > 0 && c.groupedMicroseconds > 0));
    assert.ok(rows.some((r) => r.target === 'baseline' && r.requestsPerSecond > 0));
    assert.ok(rows.filter((r) => r.target === 'dispatcher' && !r.fleetFull).every((r) => r.cyclesPerSecond > 0 && r.p99Ms > 0));
    // The crowd at a full fleet is answered, every time with none.
    const crowd = rows.filter((r) => r.fleetFull);
    assert.equal(crowd.length, 1);
    assert.ok(crowd[0].requestsPerSecond > 0 && crowd[0].noneShare === 1 && crowd[0].cyclesPerSecond === 0);
    assert.match(table, /Against the targets/);
    // The cycle without sockets completes cycles too.
    assert.deepEqual((result.inProcess as { ask: string; cyclesPerSecond: number }[]).map((c) => [c.ask, c.cyclesPerSecond > 0]), [['plain', true], ['page', true]]);
    assert.ok(rows.some((r) => r.asPage && r.cyclesPerSecond > 0));
    assert.match(table, /As the shipped page asks/);
    assert.match(table, /The same cycle in process, without sockets/);
    assert.match(readFileSync(join(ROOT, 'bench', 'results', 'dispatch.smoke.svg'), 'utf8'), /^<svg[^]*<polyline/);
  });

  test('heartbeats: the beating servers\' beats are written, the quiet ones\' are not, and the bare server is sent as many', async () => {
    const { result, table } = await smoke('heartbeats');
    const { runs, floor } = result as { runs: { heartbeatsPerSecond: number; servers: number }[]; floor: { sockets: number; beatsPerSecond: number; cpu: number } };
    const [quiet, beating] = runs;
    assert.equal(quiet.heartbeatsPerSecond, 0);
    assert.ok(beating.heartbeatsPerSecond > beating.servers * 0.5, `${beating.heartbeatsPerSecond} beats/s from ${beating.servers} servers at 1 Hz`);
    assert.ok(floor.beatsPerSecond > floor.sockets * 0.5, `the bare server was sent ${floor.beatsPerSecond}/s from ${floor.sockets} sockets`);
    // Its CPU is read in clock ticks: 200 beats a second for a smoke run's seconds may take none.
    assert.ok(Number.isFinite(floor.cpu) && floor.cpu >= 0, `the bare server's CPU share: ${floor.cpu}`);
    assert.match(table, /floor: the bare Bun WebSocket server/);
  });

  test('frames: the loop alone and the streamed frames are counted and decoded', async () => {
    const { result } = await smoke('frames');
    const [row] = result as { baselineFps: number; one: { fps: number; frameBytes: number }; three: { fps: number }[] }[];
    assert.ok(row.baselineFps > 0 && row.one.fps > 0 && row.one.frameBytes > 100);
    assert.equal(row.three.length, 3);
    assert.ok(row.three.every((m) => m.fps > 0));
  });

  test('memory: the connections and servers take memory, and it is counted', async () => {
    const { result } = await smoke('memory');
    const rows = result as { count: number; loadedBytes: number; baselineBytes: number }[];
    assert.equal(rows.length, 2);
    assert.ok(rows.every((r) => r.loadedBytes > 0 && r.baselineBytes > 0));
  });

  test('failure detection: SIGKILL is seen at once, SIGSTOP within the TTL', async () => {
    const { result } = await smoke('failure-detection');
    const { sigkill, sigstop, options } = result as { sigkill: { n: number; max: number }; sigstop: { n: number; max: number }; options: { ttlMs: number } };
    assert.ok(sigkill.n > 0 && sigkill.max < 1000, `SIGKILL seen after ${sigkill.max}ms`);
    assert.ok(sigstop.n > 0 && sigstop.max <= options.ttlMs + 500, `SIGSTOP seen after ${sigstop.max}ms with a ${options.ttlMs}ms TTL`);
  });

  test('input latency: every input shows in a frame, and is timed', async () => {
    const { result } = await smoke('input-latency');
    const { samplesMs, options } = result as { samplesMs: number[]; options: { trials: number } };
    assert.equal(samplesMs.length, options.trials);
    assert.ok(samplesMs.every((ms) => ms > 0 && ms < 5000), samplesMs.join(', '));
  });

  test('stores: each store completes cycles, heartbeats are answered, and a page on one dispatcher is woken from another', async () => {
    const { result } = await smoke('stores');
    const { dispatch, heartbeats, wake } = result as {
      dispatch: { setup: string; cyclesPerSecond: number }[];
      heartbeats: { heartbeatsPerSecond: number; servers: number; databaseCpu: number | null }[];
      wake: { samples: number; p99Ms: number };
    };
    assert.ok(dispatch.some((r) => r.setup.startsWith('PostgreSQL, 2')) && dispatch.every((r) => r.cyclesPerSecond > 0));
    assert.ok(heartbeats.every((r) => r.heartbeatsPerSecond > r.servers * 0.5));
    assert.ok(heartbeats[1].databaseCpu !== null && heartbeats[1].databaseCpu > 0);
    assert.ok(wake.samples > 0 && wake.p99Ms > 0);
  });

  test('workers: 1 and 2 workers on each store complete cycles, the file test counts cycles, every --count 3 server streams', async () => {
    const { result } = await smoke('workers');
    const { dispatch, file, fairness } = result as {
      dispatch: { store: string; workers: number; cyclesPerSecond: number; cpuMsPerThousand: number }[];
      file: { processes: number; cyclesPerSecond: number }[];
      fairness: { fps: number[] }[];
    };
    assert.deepEqual(dispatch.map((r) => `${r.store} ${r.workers}`), ['SQLite 1', 'PostgreSQL 1', 'SQLite 2', 'PostgreSQL 2']);
    assert.ok(dispatch.every((r) => r.cyclesPerSecond > 0 && r.cpuMsPerThousand > 0));
    assert.ok(file.length === 2 && file.every((r) => r.cyclesPerSecond > 0));
    assert.ok(fairness.every((r) => r.fps.length === 3 && r.fps.every((fps) => fps > 0)));
  });

  test('flock: every message reaches the reader once at 0 to 3 hops, and every ask at L and A gets its own server', async () => {
    const { result } = await smoke('flock');
    const { relay, lending, options } = result as {
      relay: { hops: number; loaded: { sent: number; received: number; duplicates: number; messagesPerSecond: number; p99Ms: number }; idle: { received: number; duplicates: number } }[];
      lending: { setup: string; asks: number; urls: number; distinct: number; p99Ms: number }[];
      options: { messages: number; idleMessages: number; servers: number };
    };
    assert.deepEqual(relay.map((r) => r.hops), [0, 1, 2, 3]);
    for (const { hops, loaded, idle } of relay) {
      assert.equal(loaded.received, options.messages, `${hops} hops: ${loaded.received} read`);
      assert.equal(idle.received, options.idleMessages, `${hops} hops, idle: ${idle.received} read`);
      assert.equal(loaded.duplicates + idle.duplicates, 0, `${hops} hops: copies read`);
      assert.ok(loaded.messagesPerSecond > 0 && loaded.p99Ms > 0);
    }
    assert.deepEqual(lending.map((r) => r.setup), ['local', 'lent']);
    assert.ok(lending.every((r) => r.asks === options.servers && r.urls === r.asks && r.distinct === r.asks && r.p99Ms > 0), JSON.stringify(lending));
  });

  test('operations: both setups complete cycles, and the watched one was scraped and fed while loaded', async () => {
    const { result } = await smoke('operations');
    const rows = result as { setup: string; cyclesPerSecond: number; scrapes: number; summaries: number }[];
    assert.deepEqual(rows.map((r) => r.setup).sort(), ['bare', 'watched']);
    assert.ok(rows.every((r) => r.cyclesPerSecond > 0), JSON.stringify(rows));
    const watched = rows.find((r) => r.setup === 'watched')!;
    assert.ok(watched.scrapes >= 1 && watched.summaries >= 1, JSON.stringify(watched));
  });
});
