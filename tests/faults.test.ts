// The failures a real farm sees, on real processes, each with its bound: a render server killed
// or frozen, the dispatcher killed and restarted on its file, a client that never arrives, and a
// thousand browsers asking at once.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  askDispatcher, connectFrames, freePort, openSocket, servers, simulateRenderServer, startDispatcher, startRender, waitFor, type Proc,
} from './helpers.ts';

const baseUrl = (url: string) => url.split('?')[0];

async function startServers(dispatcherPort: number, count: number): Promise<{ procs: Proc[]; urls: string[] }> {
  const ports = await Promise.all(Array.from({ length: count }, freePort));
  const procs = ports.map((port) => startRender(port, dispatcherPort, ['--fps', '30']));
  await waitFor(`${count} render servers to register`, async () => (await servers(dispatcherPort)).filter((s) => s.state === 'ready').length === count, 30_000);
  return { procs, urls: ports.map((port) => `ws://127.0.0.1:${port}/stream`) };
}

describe('a render server killed or frozen', () => {
  let dispatcherPort: number;
  let dispatcher: Proc;
  let procs: Proc[] = [];
  let urls: string[] = [];

  before(async () => {
    dispatcherPort = await freePort();
    dispatcher = startDispatcher(dispatcherPort);
    await dispatcher.waitForOutput(/listening/);
    ({ procs, urls } = await startServers(dispatcherPort, 2));
  });
  after(async () => {
    for (const proc of procs) {
      proc.child.kill('SIGCONT');
      await proc.stop();
    }
    await dispatcher.stop();
  });

  test('SIGKILL: its client learns at once, and it is never handed out 1 s after the kill', async () => {
    const url = await askDispatcher(dispatcherPort);
    const victim = procs[urls.indexOf(baseUrl(url))];
    const client = await connectFrames(url);
    await waitFor('frames', () => client.frames.length >= 2);
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await client.closed;
    assert.ok(Date.now() - killedAt < 1000, `the client's socket closed ${Date.now() - killedAt}ms after the kill`);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, killedAt + 1000 - Date.now())));
    const row = (await servers(dispatcherPort)).find((s) => s.url === baseUrl(url))!;
    assert.equal(row.state, 'offline');
    const other = await askDispatcher(dispatcherPort);
    assert.notEqual(baseUrl(other), baseUrl(url));
    assert.equal(await askDispatcher(dispatcherPort), 'none');
    (await connectFrames(other)).ws.close();
    await waitFor('the other server to be free', async () => (await servers(dispatcherPort)).some((s) => s.url === baseUrl(other) && s.state === 'ready'));
  });

  test('SIGSTOP: never handed out TTL + 1 s after the freeze; after SIGCONT it comes back by itself', async () => {
    const live = (await servers(dispatcherPort)).find((s) => s.state === 'ready')!;
    const frozen = procs[urls.indexOf(live.url)];
    const stoppedAt = Date.now();
    frozen.child.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 3000 + 1000));
    assert.equal((await servers(dispatcherPort)).find((s) => s.id === live.id)!.state, 'expired');
    assert.equal(await askDispatcher(dispatcherPort), 'none', `handed out ${Date.now() - stoppedAt}ms after SIGSTOP`);
    frozen.child.kill('SIGCONT');
    await waitFor('the thawed server to be ready again', async () => (await servers(dispatcherPort)).find((s) => s.id === live.id)!.state === 'ready', 5000);
    assert.equal(baseUrl(await askDispatcher(dispatcherPort)), live.url);
  });
});

describe('the dispatcher killed and restarted on its file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'render-dispatch-faults-'));
  const db = join(dir, 'dispatcher.db');
  let dispatcherPort: number;
  let dispatcher: Proc;
  let procs: Proc[] = [];

  before(async () => {
    dispatcherPort = await freePort();
    dispatcher = startDispatcher(dispatcherPort, db);
    await dispatcher.waitForOutput(/listening/);
    ({ procs } = await startServers(dispatcherPort, 3));
  });
  after(async () => {
    for (const proc of procs) await proc.stop();
    await dispatcher.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('loses no lease, has every server back within 2 s, and the streaming client never notices', async (t) => {
    const client = await connectFrames(await askDispatcher(dispatcherPort));
    await waitFor('frames', () => client.frames.length >= 3);
    const before = (await servers(dispatcherPort)).map(({ id, url, state }) => ({ id, url, state })).sort((a, b) => a.id.localeCompare(b.id));
    assert.deepEqual(before.map((s) => s.state).sort(), ['busy', 'ready', 'ready']);

    await dispatcher.stop('SIGKILL');
    const framesAtKill = client.frames.length;
    const restartedAt = Date.now();
    dispatcher = startDispatcher(dispatcherPort, db);
    await waitFor('all three registrations', () => (dispatcher.output().match(/registered at/g) ?? []).length === 3, 2000, 10);
    t.diagnostic(`all 3 render servers registered again ${Date.now() - restartedAt}ms after the restart began`);

    const afterRestart = (await servers(dispatcherPort)).map(({ id, url, state }) => ({ id, url, state })).sort((a, b) => a.id.localeCompare(b.id));
    assert.deepEqual(afterRestart, before, 'the same leases, in the same states');
    assert.ok(client.frames.length > framesAtKill, 'frames kept coming');
    const gaps = client.frames.length;
    await waitFor('more frames', () => client.frames.length > gaps + 5);
    const answers = [await askDispatcher(dispatcherPort), await askDispatcher(dispatcherPort), await askDispatcher(dispatcherPort)];
    assert.equal(answers.filter((a) => a === 'none').length, 1, 'the busy server is not handed to a second client');
    client.ws.close();
  });
});

describe('hand-outs', () => {
  let dispatcherPort: number;
  let dispatcher: Proc;

  before(async () => {
    dispatcherPort = await freePort();
    // These ask hundreds of times a second from one address: a load test, not a crowd, so no rate limit.
    dispatcher = startDispatcher(dispatcherPort, ':memory:', ['--claim-timeout', '1s', '--rate-limit', '0']);
    await dispatcher.waitForOutput(/listening/);
  });
  after(() => dispatcher.stop());

  test('a server whose client never arrives returns to the pool at the claim deadline', async () => {
    const server = await simulateRenderServer(dispatcherPort, 'lonely', 'ws://127.0.0.1:1/stream');
    const first = await askDispatcher(dispatcherPort);
    const handedAt = Date.now();
    assert.equal(await askDispatcher(dispatcherPort), 'none');
    const again = await waitFor('the server back in the pool', async () => {
      const answer = await askDispatcher(dispatcherPort);
      return answer === 'none' ? null : answer;
    }, 3000, 20);
    const waited = Date.now() - handedAt;
    assert.ok(waited >= 900 && waited < 1600, `back after ${waited}ms for a 1 s claim deadline`);
    assert.equal(baseUrl(again), baseUrl(first));
    assert.notEqual(again, first, 'with a new ticket');
    server.close();
  });

  test('1,000 concurrent get_server_url against 100 ready servers: 100 URLs, 900 none, no server twice', async () => {
    const simulated = await Promise.all(
      Array.from({ length: 100 }, (_, i) => simulateRenderServer(dispatcherPort, `sim-${i}`, `ws://127.0.0.1:${20000 + i}/stream`)),
    );
    const sockets = [];
    for (let batch = 0; batch < 10; batch++) {
      sockets.push(...(await Promise.all(Array.from({ length: 100 }, () => openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`)))));
    }
    const answers = await Promise.all(
      sockets.map((ws) => new Promise<string>((resolve) => {
        ws.once('message', (data) => resolve(data.toString()));
        ws.send('get_server_url');
      })),
    );
    for (const ws of sockets) ws.close();
    for (const server of simulated) server.close();
    const urls = answers.filter((a) => a !== 'none');
    assert.equal(urls.length, 100);
    assert.equal(answers.filter((a) => a === 'none').length, 900);
    assert.equal(new Set(urls.map(baseUrl)).size, 100, 'no server twice');
  });
});
