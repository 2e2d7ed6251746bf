// Several dispatcher processes on one throwaway PostgreSQL: allocation that never hands a server
// out twice under a race, a dispatcher killed while pages stream, and the database itself stopped
// and started again under load. Real processes on loopback; every wait is bounded.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startCluster, type Cluster } from './postgres-cluster.ts';
import {
  askDispatcher, askJson, connectFrames, freePort, freePortRun, openSocket, servers, simulateRenderServer, startDispatcher, startProcess, startRender, waitFor,
  type Proc, type SimulatedServer,
} from './helpers.ts';

const baseUrl = (url: string) => url.split('?')[0];

async function dispatchers(cluster: Cluster, count: number, extra: string[] = []): Promise<{ procs: Proc[]; ports: number[] }> {
  const ports = await Promise.all(Array.from({ length: count }, freePort));
  const procs = ports.map((port) => startDispatcher(port, cluster.url, ['--rate-limit', '0', ...extra]));
  await Promise.all(procs.map((proc) => proc.waitForOutput(/listening/)));
  return { procs, ports };
}

describe('four dispatchers racing for one hundred servers', () => {
  let cluster: Cluster;
  let procs: Proc[] = [];
  let ports: number[] = [];
  const simulated: SimulatedServer[] = [];

  before(async () => {
    cluster = await startCluster();
    ({ procs, ports } = await dispatchers(cluster, 4));
    for (let i = 0; i < 100; i++) simulated.push(await simulateRenderServer(ports[i % 4], `s${i}`, `ws://127.0.0.1:1/s${i}`));
  });
  after(async () => {
    for (const server of simulated) server.close();
    await Promise.all(procs.map((proc) => proc.stop()));
    await cluster.stop();
  });

  test('2,000 concurrent get_server_url spread over them: exactly 100 URLs, no server twice, every other answer none', async () => {
    // Every socket open first, then every request at once.
    const sockets = await Promise.all(Array.from({ length: 2000 }, (_, i) => openSocket(`ws://127.0.0.1:${ports[i % 4]}/stream`)));
    const answers = await Promise.all(
      sockets.map((ws) => {
        const answer = new Promise<string>((resolve) => ws.once('message', (data) => resolve(data.toString())));
        ws.send('get_server_url');
        return answer;
      }),
    );
    for (const ws of sockets) ws.close();
    const urls = answers.filter((a) => a !== 'none');
    assert.equal(urls.length, 100, `answers other than URLs and none: ${answers.filter((a) => a !== 'none' && !a.startsWith('ws://')).slice(0, 3)}`);
    assert.equal(new Set(urls.map(baseUrl)).size, 100);
    assert.equal(answers.filter((a) => a === 'none').length, 1900);
  });
});

describe('a dispatcher killed while pages stream', () => {
  let cluster: Cluster;
  let procs: Proc[] = [];
  let ports: number[] = [];
  const renders: Proc[] = [];
  const renderUrls: string[] = [];

  before(async () => {
    cluster = await startCluster();
    ({ procs, ports } = await dispatchers(cluster, 2, ['--ttl', '3s', '--claim-timeout', '1s']));
    const [a, b] = ports.map((port) => `ws://127.0.0.1:${port}`);
    // The first render server registers through the dispatcher that will be killed, the second
    // through the other; each has the other as its fallback.
    for (const list of [`${a},${b}`, `${b},${a}`]) {
      const port = await freePort();
      renderUrls.push(`ws://127.0.0.1:${port}/stream`);
      renders.push(startRender(port, 0, ['--dispatcher', list, '--fps', '20']));
    }
    await waitFor('both render servers to register', async () => (await servers(ports[0])).filter((s) => s.state === 'ready').length === 2, 30_000);
  });
  after(async () => {
    await Promise.all(renders.map((proc) => proc.stop()));
    await Promise.all(procs.map((proc) => proc.stop()));
    await cluster.stop();
  });

  test("SIGKILL: the stream goes on, no server is handed out twice, and the dead one's server is handed out by the other past its TTL", async () => {
    const [throughDead, throughSurvivor] = renderUrls;
    // A page streams from the survivor's server; the dead one's server is left free (its grant lapses in 1 s).
    const grants = [await askDispatcher(ports[0]), await askDispatcher(ports[0])];
    const client = await connectFrames(grants.find((url) => baseUrl(url) === throughSurvivor)!);
    await waitFor('frames', () => client.frames.length >= 2);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const killedAt = Date.now();
    procs[0].child.kill('SIGKILL');
    await procs[0].exited;
    const framesAtKill = client.frames.length;
    // Others keep asking the survivor while the render server moves over: never the busy one.
    const answers: string[] = [];
    while (Date.now() - killedAt < 2500) {
      answers.push(await askDispatcher(ports[1]));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(answers.every((a) => a === 'none' || baseUrl(a) === throughDead), `handed out: ${new Set(answers.map(baseUrl))}`);
    // Past the TTL its old lease would have expired: it is handed out because it re-registered.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, killedAt + 3000 + 1000 - Date.now())));
    assert.equal(baseUrl(await askDispatcher(ports[1])), throughDead);
    assert.match(renders[0].output(), /registered again with ws:\/\/127\.0\.0\.1:\d+/);
    assert.ok(client.frames.length > framesAtKill + 20, `${client.frames.length - framesAtKill} frames since the kill`);
    const rows = await servers(ports[1]);
    assert.deepEqual(rows.map((s) => [baseUrl(s.url), s.state]).sort(), [[throughDead, 'reserved'], [throughSurvivor, 'busy']].sort());
    client.ws.close();
  });
});

describe('PostgreSQL stopped for 5 s under load', () => {
  let cluster: Cluster;
  let procs: Proc[] = [];
  let ports: number[] = [];
  let render: Proc;
  const simulated: SimulatedServer[] = [];

  before(async () => {
    cluster = await startCluster();
    ({ procs, ports } = await dispatchers(cluster, 2));
    render = startRender(await freePort(), ports[0], ['--fps', '20']);
    await waitFor('the render server to register', async () => (await servers(ports[0])).length === 1, 30_000);
    for (let i = 0; i < 4; i++) simulated.push(await simulateRenderServer(ports[i % 2], `sim${i}`, `ws://127.0.0.1:1/sim${i}`));
  });
  after(async () => {
    for (const server of simulated) server.close();
    await render.stop();
    await Promise.all(procs.map((proc) => proc.stop()));
    await cluster.stop();
  });

  test('dispatchers stay up and answer none (store unavailable), /readyz is 503, and all recovers by itself', async () => {
    const streamed = await askDispatcher(ports[0]);
    assert.ok(streamed.startsWith('ws://'));
    const client = await connectFrames(streamed);
    for (const port of ports) assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);

    await cluster.pause();
    const downAt = Date.now();
    const framesAtStop = client.frames.length;
    for (const port of ports) {
      assert.deepEqual(await askJson(port, { requestId: 'during-outage' }), { type: 'none', reason: 'store unavailable', requestId: 'during-outage' });
      assert.equal(await askDispatcher(port), 'none');
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.deepEqual([ready.status, await ready.text()], [503, 'store unavailable']);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, downAt + 5000 - Date.now())));
    // Control connections stayed open, and the stream never depended on the database.
    assert.ok(simulated.every((server) => server.ws.readyState === WebSocket.OPEN));
    assert.ok(client.frames.length > framesAtStop + 20, `${client.frames.length - framesAtStop} frames during the outage`);

    await cluster.resume();
    for (const port of ports) await waitFor(`/readyz on ${port}`, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 15_000);
    const leases = simulated.map((server) => server.leases());
    await waitFor('heartbeats answered again', () => simulated.every((server, i) => server.leases() > leases[i]), 10_000);
    // The streaming server is still busy with its client, and the free ones are handed out again.
    const granted = new Set<string>();
    for (let i = 0; i < 4; i++) granted.add(baseUrl(await askDispatcher(ports[i % 2])));
    assert.equal(granted.size, 4);
    assert.ok(!granted.has(baseUrl(streamed)));
    assert.equal(await askDispatcher(ports[0]), 'none');
    assert.ok(procs.every((proc) => proc.child.exitCode === null));
    client.ws.close();
  });
});

describe('bun run demo --postgres', () => {
  test('a throwaway database, two dispatchers on it, the render servers spread over both; all gone on SIGTERM', async () => {
    // The demo's second dispatcher takes the port after the first: find a free pair.
    const port = await freePortRun(2);
    const renderPort = await freePortRun(2);
    const demo = startProcess('bun', ['scripts/demo.ts', '--postgres', '--dispatcher-port', String(port), '--render-port', String(renderPort), '--render-count', '2', '--size', '64']);
    try {
      await demo.waitForOutput(/demo: ready/, 90_000);
      assert.match(demo.output(), /a throwaway PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+/);
      for (const p of [port, port + 1]) assert.equal((await servers(p)).length, 2);
      assert.ok((await askDispatcher(port + 1)).startsWith('ws://'));
    } finally {
      assert.equal(await demo.stop(), 0);
    }
    assert.match(demo.output(), /demo: stopped/);
  });
});
