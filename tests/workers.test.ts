// A process per core, on real processes: `dispatcher --workers 2` behind one port (pages from one
// address spread over both, a reload on the other worker gets its own server back, a worker
// SIGKILLed under load and replaced, SIGTERM closing every socket with 1001), and `render --count`
// (a killed render server restarted and registered again, three servers on two cores each getting
// its share). Which worker served a page is read off its --verbose line for the page's request id.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import {
  askDispatcher, askJson, childPids, connectFrames, freePort, freePortRun, openSocket, servers, simulateRenderServer, startDispatcher, startProcess, waitFor,
  type Proc, type SimulatedServer,
} from './helpers.ts';

const baseUrl = (url: string) => url.split('?')[0];
const dir = mkdtempSync(join(tmpdir(), 'render-dispatch-workers-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A primary with two workers on a fresh SQLite file, both listening. */
async function startWorkers(port: number, extra: string[] = []): Promise<Proc> {
  const primary = startDispatcher(port, join(dir, `${crypto.randomUUID()}.db`), ['--workers', '2', '--verbose', '--rate-limit', '0', ...extra]);
  await primary.waitForOutput(/dispatcher 1: listening/);
  await primary.waitForOutput(/dispatcher 2: listening/);
  return primary;
}

/** Which worker answered the request `requestId` (from its --verbose line), or null if none said. */
function workerOf(output: string, requestId: string): number | null {
  const match = new RegExp(`dispatcher (\\d+): (?:handed out .*|no server free) for request ${requestId}$`, 'm').exec(output);
  return match ? Number(match[1]) : null;
}

describe('dispatcher --workers 2 on one port', () => {
  let port: number;
  let primary: Proc;
  const sims: SimulatedServer[] = [];

  before(async () => {
    port = await freePort();
    primary = await startWorkers(port);
  });
  after(async () => {
    for (const sim of sims) sim.close();
    assert.equal(await primary.stop(), 0);
  });

  test("the tutorial's exchange is answered on every connection, and 1,000 pages from one address spread over both workers", async () => {
    for (let i = 0; i < 20; i++) assert.equal(await askDispatcher(port), 'none');
    const answers: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const ids = Array.from({ length: 100 }, (_, i) => `page-${batch * 100 + i}`);
      answers.push(...(await Promise.all(ids.map((requestId) => askJson(port, { requestId })))).map((answer) => answer.type));
    }
    assert.deepEqual(new Set(answers), new Set(['none']));
    await waitFor('a line for every page', () => workerOf(primary.output(), 'page-999') !== null && workerOf(primary.output(), 'page-0') !== null);
    const perWorker = [0, 0, 0];
    for (let i = 0; i < 1000; i++) {
      const worker = workerOf(primary.output(), `page-${i}`);
      assert.ok(worker === 1 || worker === 2, `page-${i} answered by worker ${worker}`);
      perWorker[worker]++;
    }
    // Linux spreads connections by their ports, not their address: one address reaches both.
    assert.ok(perWorker[1] >= 300 && perWorker[2] >= 300, `pages per worker: ${perWorker[1]} and ${perWorker[2]}`);
  });

  test('a reloading page that lands on the other worker gets its own server back', async () => {
    for (let i = 0; i < 3; i++) sims.push(await simulateRenderServer(port, `sticky-${i}`, `ws://127.0.0.1:${40000 + i}/stream`));
    const session = `session-${crypto.randomUUID()}`;
    const first = await askJson(port, { session, requestId: 'reload-0' });
    assert.equal(first.type, 'server_url');
    const own = sims.find((sim) => sim.url === baseUrl(first.url!))!;
    const firstWorker = await waitFor('the first answer\'s worker', () => workerOf(primary.output(), 'reload-0'));
    own.report('connected');
    let other: number | null = null;
    for (let reload = 1; reload <= 30 && other === null; reload++) {
      // The page reloads: its client leaves the render server, and it asks again with its session.
      own.report('gone');
      await waitFor('the server to be free for its session', async () => (await servers(port)).some((s) => s.id === own.id && s.state === 'ready'));
      const again = await askJson(port, { session, requestId: `reload-${reload}` });
      assert.equal(again.type, 'server_url', `reload ${reload}: ${JSON.stringify(again)}`);
      assert.equal(baseUrl(again.url!), own.url, `reload ${reload} got another server`);
      own.report('connected');
      const worker = await waitFor(`reload ${reload}'s worker`, () => workerOf(primary.output(), `reload-${reload}`));
      if (worker !== firstWorker) other = worker;
    }
    assert.ok(other !== null, 'no reload landed on the other worker in 30 tries');
  });
});

describe('a worker SIGKILLed under load', () => {
  test('the other answers throughout, the primary starts a new one, no lease is lost, no server is handed out twice', async () => {
    const port = await freePort();
    // Pages never claim here, so within the claim timeout each server may be handed out once only.
    const primary = await startWorkers(port, ['--claim-timeout', '60s']);
    const renderPort = await freePortRun(3);
    const host = startProcess('node', [
      '--import', 'tsx', 'render/main.ts', '--port', String(renderPort), '--count', '3', '--dispatcher', `ws://127.0.0.1:${port}`, '--size', '64', '--fps', '10',
    ]);
    try {
      await waitFor('three render servers registered', async () => (await servers(port)).filter((s) => s.state === 'ready').length === 3, 30_000);
      const ids = (await servers(port)).map((s) => s.id).sort();
      const workers = childPids(primary.child.pid!);
      assert.equal(workers.length, 2);
      const granted: string[] = [];
      let answeredAfterKill = 0;
      let failed = 0;
      let killedAt = 0;
      const deadline = Date.now() + 4000;
      const loop = async (n: number) => {
        for (let i = 0; Date.now() < deadline && i < 2000; i++) {
          try {
            const answer = await askJson(port, { requestId: `load-${n}-${i}` });
            if (answer.url) granted.push(baseUrl(answer.url));
            if (killedAt && Date.now() > killedAt + 200) answeredAfterKill++;
          } catch {
            failed++; // a socket on the killed worker
          }
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      };
      const loops = Promise.all([0, 1, 2, 3].map(loop));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      killedAt = Date.now();
      process.kill(workers[0], 'SIGKILL');
      await loops;
      await primary.waitForOutput(/worker \d exited \(SIGKILL\); starting it again/);
      await waitFor('a new worker in its place', () => childPids(primary.child.pid!).filter((pid) => !workers.includes(pid)).length === 1);
      assert.ok(answeredAfterKill > 50, `only ${answeredAfterKill} answers after the kill (${failed} failed)`);
      assert.equal(new Set(granted).size, granted.length, `a server was handed out twice: ${granted.join(', ')}`);
      assert.equal(granted.length, 3, 'every server handed out once');
      // The render servers whose control connection was on the killed worker came back to the
      // port and kept their leases (and reservations): the same ids, none offline or expired.
      await new Promise((resolve) => setTimeout(resolve, 3500)); // past the TTL
      const rows = await servers(port);
      assert.deepEqual(rows.map((s) => s.id).sort(), ids);
      assert.deepEqual(rows.map((s) => s.state), ['reserved', 'reserved', 'reserved']);
    } finally {
      await host.stop();
      await primary.stop();
    }
  });

  test('SIGTERM: every worker closes its sockets with 1001 and the primary exits 0', async () => {
    const port = await freePort();
    const primary = await startWorkers(port);
    const sockets = await Promise.all(Array.from({ length: 20 }, () => openSocket(`ws://127.0.0.1:${port}/stream`)));
    const closes = sockets.map((ws) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code))));
    assert.equal(await primary.stop('SIGTERM'), 0);
    assert.deepEqual(new Set(await Promise.all(closes)), new Set([1001]));
    assert.match(primary.output(), /dispatcher 1: SIGTERM, stopping/);
    assert.match(primary.output(), /dispatcher 2: SIGTERM, stopping/);
    assert.match(primary.output(), /dispatcher \(primary\): stopped/);
  });
});

describe('render --count', () => {
  let dispatcherPort: number;
  let dispatcher: Proc;
  before(async () => {
    dispatcherPort = await freePort();
    dispatcher = startDispatcher(dispatcherPort, ':memory:', ['--rate-limit', '0']);
    await dispatcher.waitForOutput(/listening/);
  });
  after(async () => {
    await dispatcher.stop();
  });

  const startHost = (port: number, count: number, extra: string[]) =>
    startProcess('node', [
      '--import', 'tsx', 'render/main.ts', '--port', String(port), '--count', String(count), '--dispatcher', `ws://127.0.0.1:${dispatcherPort}`, ...extra,
    ]);
  const readyOn = async (url: string) => (await servers(dispatcherPort)).some((s) => s.url === url && s.state === 'ready');

  test('a killed render server is started again and registers again; SIGTERM drains every one', async () => {
    const port = await freePortRun(2);
    const host = startHost(port, 2, ['--size', '64', '--fps', '20']);
    try {
      const urls = [0, 1].map((i) => `ws://127.0.0.1:${port + i}/stream`);
      await waitFor('both render servers registered', async () => (await Promise.all(urls.map(readyOn))).every(Boolean), 30_000);
      const [first, second] = childPids(host.child.pid!);
      process.kill(second, 'SIGKILL');
      await host.waitForOutput(/render server :\d+ exited \(SIGKILL\); starting it again/);
      await waitFor('the restarted server registered', async () => (await Promise.all(urls.map(readyOn))).every(Boolean) && childPids(host.child.pid!).length === 2, 30_000);
      assert.ok(childPids(host.child.pid!).includes(first), 'the other render server was left alone');
      const client = await connectFrames(await askDispatcher(dispatcherPort));
      await waitFor('frames', () => client.frames.length >= 2);
      assert.equal(await host.stop('SIGTERM'), 0);
      assert.equal((await client.closed).code, 1001);
      assert.match(host.output(), /render host: stopped/);
    } finally {
      await host.stop('SIGKILL');
    }
  });

  test('--count 3 on 2 cores: each server gets its share of the machine', async () => {
    const port = await freePortRun(3);
    // A frame rate no server reaches, so that all three compete for the cores.
    const host = startHost(port, 3, ['--size', '512', '--fps', '240']);
    const clients: WebSocket[] = [];
    try {
      const urls = [0, 1, 2].map((i) => `ws://127.0.0.1:${port + i}/stream`);
      await waitFor('three render servers registered', async () => (await Promise.all(urls.map(readyOn))).every(Boolean), 30_000);
      const streams = [];
      for (let i = 0; i < 3; i++) streams.push(await connectFrames(await askDispatcher(dispatcherPort)));
      clients.push(...streams.map((s) => s.ws));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const before = streams.map((s) => s.frames.length);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const counts = streams.map((s, i) => s.frames.length - before[i]);
      const mean = counts.reduce((a, b) => a + b) / counts.length;
      // The benchmark holds each within ±10 % of the mean; here, on a busy machine, none is starved.
      for (const count of counts) assert.ok(count >= mean * 0.5, `frames in 3 s per server: ${counts.join(', ')}`);
    } finally {
      for (const ws of clients) ws.close();
      await host.stop();
    }
  });
});
