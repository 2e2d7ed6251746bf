// The flock on real processes over loopback: dispatchers linked in a ring of 3 and a mesh of 4
// relaying 1,000 messages from several origins (each member's pages get each once, no sender its
// own); a member embedding the daemon whose handler stops a message (returnValue = false); lending
// in a line A–B–C with render servers only at C (a page at A streams from C's server, C's servers
// are never handed out twice when C's pages and A's race, A says none once C is full); and a link
// cut and restored through a TCP proxy (both ends report it, relay resumes, nothing twice); and the
// workers of one `--workers 2` dispatcher passing the flock on to each other.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import WebSocket from 'ws';
import { askDispatcher, askJson, connectFrames, freePort, openSocket, simulateRenderServer, startDispatcher, startProcess, startRender, waitFor, type Proc, type SimulatedServer } from './helpers.ts';

interface LinkView {
  peer: string | null;
  address: string;
  direction: 'in' | 'out';
  state: string;
  capacity: { free: number } | null;
  relayed: { received: number; sent: number; duplicates: number; echoes: number } | null;
}

interface FlockView {
  member: string;
  free: number | null;
  links: LinkView[];
  peers: { member: string; free: number; hops: number }[];
}

const running: Proc[] = [];
after(async () => {
  await Promise.all(running.splice(0).map((proc) => proc.stop()));
});

async function flockOf(port: number): Promise<FlockView> {
  return (await fetch(`http://127.0.0.1:${port}/v1/flock`)).json() as Promise<FlockView>;
}

/** A dispatcher linked to the dispatchers on `links` (ports), started and listening. */
async function member(port: number, links: number[] = [], extra: string[] = []): Promise<Proc> {
  const proc = startDispatcher(port, ':memory:', ['--message-rate', '0', '--rate-limit', '0', ...links.flatMap((p) => ['--link', `ws://127.0.0.1:${p}`]), ...extra]);
  running.push(proc);
  await proc.waitForOutput(/listening on/);
  return proc;
}

async function linksUp(port: number, count: number): Promise<void> {
  await waitFor(`${count} links up at :${port}`, async () => (await flockOf(port)).links.filter((link) => link.state === 'up').length === count);
}

interface Page {
  ws: WebSocket;
  /** The data of every flock message delivered, in order. */
  got: unknown[];
}

/** A page on a dispatcher's /stream that subscribed to the flock's messages. */
async function subscribedPage(port: number): Promise<Page> {
  const ws = await openSocket(`ws://127.0.0.1:${port}/stream`);
  const got: unknown[] = [];
  let subscribed!: () => void;
  const ready = new Promise<void>((resolve) => (subscribed = resolve));
  ws.on('message', (raw) => {
    const message = JSON.parse(raw.toString());
    if (message.type === 'subscribed') subscribed();
    if (message.type === 'message') got.push(message.data);
  });
  ws.send(JSON.stringify({ type: 'subscribe' }));
  await ready;
  return { ws, got };
}

const counts = (values: unknown[]) => {
  const map = new Map<string, number>();
  for (const value of values) map.set(JSON.stringify(value), (map.get(JSON.stringify(value)) ?? 0) + 1);
  return map;
};

const ring = (n: number): [number, number][] => Array.from({ length: n }, (_, i) => [i, (i + 1) % n]);
const mesh = (n: number): [number, number][] => Array.from({ length: n }, (_, i) => Array.from({ length: n - i - 1 }, (_, j) => [i, i + j + 1] as [number, number])).flat();

describe('the flock relays each message to every member exactly once', () => {
  for (const [name, size, edges] of [['ring', 3, ring(3)], ['mesh', 4, mesh(4)]] as const) {
    test(`a ${name} of ${size}: 1,000 messages from every member reach each member's pages once, and no sender its own`, async () => {
      const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
      const procs: Proc[] = [];
      for (let i = 0; i < size; i++) procs.push(await member(ports[i], edges.filter(([a]) => a === i).map(([, b]) => ports[b])));
      const degree = (i: number) => edges.filter(([a, b]) => a === i || b === i).length;
      for (let i = 0; i < size; i++) await linksUp(ports[i], degree(i));

      const listeners = await Promise.all(ports.map(subscribedPage));
      const senders = await Promise.all(ports.map(subscribedPage));
      const sentBy: number[][] = ports.map(() => []);
      for (let n = 0; n < 1000; n++) {
        const from = n % size;
        senders[from].ws.send(JSON.stringify({ type: 'message', event: 'count', data: n }));
        sentBy[from].push(n);
      }
      await waitFor('every listener has 1,000', () => listeners.every((page) => page.got.length >= 1000), 30_000);
      // Any copy still on its way would arrive now.
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const [i, page] of listeners.entries()) {
        assert.equal(page.got.length, 1000, `member ${i}'s listener got ${page.got.length}`);
        assert.deepEqual([...counts(page.got).values()].every((c) => c === 1), true);
      }
      for (const [i, page] of senders.entries()) {
        const own = new Set(sentBy[i]);
        assert.equal(page.got.filter((n) => own.has(n as number)).length, 0, `sender ${i} got its own back`);
        assert.equal(page.got.length, 1000 - own.size);
      }
      const links = (await Promise.all(ports.map(flockOf))).flatMap((view) => view.links);
      assert.ok(links.every((link) => link.relayed?.echoes === 0), 'a message came back to its origin');
      // More than one path: copies were dropped, not handled twice.
      assert.ok(links.some((link) => (link.relayed?.duplicates ?? 0) > 0));
      for (const page of [...listeners, ...senders]) page.ws.close();
      await Promise.all(procs.map((proc) => proc.stop()));
    });
  }

  test('a handler in an embedding program that sets returnValue = false stops the message there', async () => {
    const [a, b, c] = await Promise.all([freePort(), freePort(), freePort()]);
    const atC = await member(c);
    const atB = startProcess('bun', ['tests/fixtures/flock-member.ts', String(b), String(c)]);
    running.push(atB);
    await atB.waitForOutput(/listening on/);
    await member(a, [b]);
    await linksUp(b, 2);
    const [pageB, pageC] = await Promise.all([subscribedPage(b), subscribedPage(c)]);
    const sender = await openSocket(`ws://127.0.0.1:${a}/stream`);
    sender.send(JSON.stringify({ type: 'message', event: 'secret', data: 1 }));
    sender.send(JSON.stringify({ type: 'message', event: 'chat', data: 2 }));
    await waitFor('the chat at C', () => pageC.got.length === 1);
    await atB.waitForOutput(/stopped secret 1/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(pageC.got, [2]);
    assert.deepEqual(pageB.got, [2]);
    for (const ws of [sender, pageB.ws, pageC.ws]) ws.close();
    await atC.stop();
  });
});

describe('lending: A–B–C in a line, render servers only at C', () => {
  const sims: SimulatedServer[] = [];
  after(() => sims.forEach((sim) => sim.close()));

  test("a page at A streams from C's server; C's servers go out once when C's pages and A's race; A says none when C is full", async () => {
    const [a, b, c, renderPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    await member(c, [], ['--verbose']);
    await member(b, [c]);
    await member(a, [b]);
    const render = startRender(renderPort, c);
    running.push(render);
    await waitFor("A hears C's free server", async () => (await flockOf(a)).peers.some((peer) => peer.free === 1 && peer.hops === 2), 20_000);

    const lent = await askJson(a, { requestId: 'page-at-a' });
    assert.equal(lent.type, 'server_url');
    assert.ok(lent.url!.startsWith(`ws://127.0.0.1:${renderPort}/`), lent.url);
    // A retry of the same request gets the same answer, not a second server.
    assert.equal((await askJson(a, { requestId: 'page-at-a' })).url, lent.url);
    const client = await connectFrames(lent.url!);
    await waitFor('frames from C', () => client.frames.length >= 2);
    client.ws.close();
    await render.stop();

    for (let i = 0; i < 6; i++) sims.push(await simulateRenderServer(c, `sim-${i}`, `ws://127.0.0.1:${40000 + i}/stream`));
    await waitFor('A hears six free at C', async () => (await flockOf(a)).peers.some((peer) => peer.free === 6), 20_000);
    const answers = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => askJson(c, { requestId: `c-${i}` })),
      ...Array.from({ length: 8 }, (_, i) => askJson(a, { requestId: `a-${i}` })),
    ]);
    const urls = answers.filter((answer) => answer.type === 'server_url').map((answer) => answer.url!.split('?')[0]);
    assert.equal(urls.length, 6, JSON.stringify(answers));
    assert.equal(new Set(urls).size, 6, 'a server was handed out twice');
    assert.ok(answers.every((answer) => answer.type === 'server_url' || answer.type === 'none'));

    const none = await askJson(a, { requestId: 'after-full' });
    assert.equal(none.type, 'none');
    assert.equal(await askDispatcher(a), 'none');
  });
});

describe('a dispatcher with --workers 2 in the flock', () => {
  test("a message reaches the pages on both workers and a linked dispatcher's, once each", async () => {
    const [a, b] = await Promise.all([freePort(), freePort()]);
    await member(b);
    // Each worker dials B: a message may reach a worker from B before it comes through the primary.
    const workers = startDispatcher(a, ':memory:', ['--workers', '2', '--message-rate', '0', '--link', `ws://127.0.0.1:${b}`]);
    running.push(workers);
    await workers.waitForOutput(/dispatcher 1: listening/);
    await workers.waitForOutput(/dispatcher 2: listening/);
    await linksUp(b, 2);
    // Linux spreads connections over both workers by their ports: sixteen pages all on one is a 1 in 32,768 chance.
    const pages = await Promise.all(Array.from({ length: 16 }, () => subscribedPage(a)));
    const atB = await subscribedPage(b);
    const sender = await openSocket(`ws://127.0.0.1:${b}/stream`);
    const fromB = Array.from({ length: 50 }, (_, n) => n);
    const fromWorkers = Array.from({ length: 50 }, (_, n) => `w${n}`);
    for (const n of fromB) sender.send(JSON.stringify({ type: 'message', data: n }));
    for (const w of fromWorkers) pages[0].ws.send(JSON.stringify({ type: 'message', data: w }));
    await waitFor('every page has them all', () => pages.every((page, i) => page.got.length >= (i === 0 ? 50 : 100)));
    await waitFor("B's page has them all", () => atB.got.length >= 100);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const [i, page] of pages.entries()) {
      assert.deepEqual(page.got.filter((d) => typeof d === 'number'), fromB);
      assert.deepEqual(page.got.filter((d) => typeof d === 'string'), i === 0 ? [] : fromWorkers);
    }
    // Sorted alike on both sides: the workers' messages may overtake B's own.
    assert.deepEqual([...atB.got].sort(), [...fromB, ...fromWorkers].sort());
    // Whichever worker answers, nothing came back to where it started.
    const views = [await flockOf(b), ...(await Promise.all(Array.from({ length: 6 }, () => flockOf(a))))];
    assert.ok(views.every((view) => view.links.every((link) => link.relayed === null || link.relayed.echoes === 0)), JSON.stringify(views));
    assert.ok(views.slice(1).some((view) => view.links.some((link) => link.peer === 'sibling-workers' && link.state === 'up')));
    for (const ws of [sender, atB.ws, ...pages.map((page) => page.ws)]) ws.close();
    assert.equal(await workers.stop(), 0);
  });
});

/** A TCP proxy that can cut every connection through it and refuse new ones until restored. */
function tcpProxy(listenPort: number, targetPort: number): Promise<{ cut(): void; restore(): void; close(): void }> {
  const sockets = new Set<Socket>();
  let cut = false;
  const server: NetServer = createServer((inbound) => {
    if (cut) return inbound.destroy();
    const outbound = createConnection({ host: '127.0.0.1', port: targetPort });
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  return new Promise((resolve) =>
    server.listen(listenPort, '127.0.0.1', () =>
      resolve({
        cut() {
          cut = true;
          for (const socket of sockets) socket.destroy();
        },
        restore() {
          cut = false;
        },
        close() {
          for (const socket of sockets) socket.destroy();
          server.close();
        },
      }),
    ),
  );
}

describe('a link cut and restored', () => {
  test('both ends report it, the dialler links again, relay resumes and nothing arrives twice', async () => {
    const [a, b, proxyPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const atB = await member(b);
    const proxy = await tcpProxy(proxyPort, b);
    const atA = await member(a, [proxyPort]);
    await linksUp(a, 1);
    await linksUp(b, 1);
    const listener = await subscribedPage(b);
    const sender = await openSocket(`ws://127.0.0.1:${a}/stream`);
    for (let n = 0; n < 100; n++) sender.send(JSON.stringify({ type: 'message', data: n }));
    await waitFor('the first hundred', () => listener.got.length === 100);

    proxy.cut();
    await atA.waitForOutput(/link to ws:\/\/127\.0\.0\.1:\d+\/v1\/link lost/);
    await atB.waitForOutput(/link from 127\.0\.0\.1 closed/);
    await waitFor('B without links', async () => (await flockOf(b)).links.length === 0);
    assert.notEqual((await flockOf(a)).links[0].state, 'up');

    proxy.restore();
    await linksUp(a, 1);
    await linksUp(b, 1);
    assert.equal(atB.output().match(/linked from dispatcher/g)?.length, 2);
    for (let n = 100; n < 200; n++) sender.send(JSON.stringify({ type: 'message', data: n }));
    await waitFor('the second hundred', () => listener.got.length >= 200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(listener.got, Array.from({ length: 200 }, (_, n) => n));
    sender.close();
    listener.ws.close();
    proxy.close();
  });
});
