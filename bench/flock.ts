// The flock: what a link costs a message, and what borrowing costs a page. First the relay, on a
// line of four dispatchers D0–D1–D2–D3: a page on D0 sends numbered messages with at most `window`
// of them on their way, and one subscribed page reads them on D0 itself (0 hops: local delivery,
// the baseline), on D1, D2 or D3 (1, 2, 3 links). Every message travels the whole line in every
// case (the relay passes it on whoever listens), so the dispatchers do the same work each time and
// only the path to the reader differs. Per case: messages per second at the reader, latency p50/p99
// under that load and again one message at a time (idle), and whether each arrived exactly once
// and in order. Second, lending: a page whose dispatcher A has no render server of its own, with
// B linked next to it holding K, against a page at an unlinked dispatcher L with K of its own;
// each get_server_url timed from send to answer, asked alternately at L and A so that whatever
// else runs on the machine weighs on both alike. Everything on 127.0.0.1, bounded in count and time.
//
// Both ends of every message are pages in this one process, so performance.now() times them on
// one monotonic clock with sub-millisecond resolution: no epoch clock (Date.now() is whole
// milliseconds and may be stepped) is needed to compare a send with its arrival. The price is
// that this process's own event loop, sending and reading at once, is part of what is measured.

import type WebSocket from 'ws';
import { freePort, openSocket, startDispatcher, waitFor, type Proc, type SimulatedServer } from '../tests/helpers.ts';
import { cpuMs } from './procfs.ts';
import { registerMany } from './stores.ts';
import { markdownTable, percentile } from './stats.ts';

export interface FlockBenchOptions {
  /** Messages per relay case, with at most `window` sent and not yet read. */
  messages: number;
  window: number;
  /** Messages per case sent one at a time, each after the previous one was read. */
  idleMessages: number;
  /** Discarded messages first, so that no case pays for the dispatchers' and this process's warm-up. */
  warmup: number;
  /** Render servers at the lender B, and at the local baseline L. */
  servers: number;
  /** The longest one relay case may take before what arrived is reported as it is. */
  caseTimeoutMs: number;
}

export const FULL: FlockBenchOptions = { messages: 5000, window: 100, idleMessages: 500, warmup: 1000, servers: 200, caseTimeoutMs: 60_000 };
export const SMOKE: FlockBenchOptions = { messages: 300, window: 100, idleMessages: 20, warmup: 100, servers: 10, caseTimeoutMs: 10_000 };

/** Every dispatcher this benchmark starts: pages send as fast as they like and ask as often. */
export const FLOCK_FLAGS = ['--message-rate', '0', '--rate-limit', '0'];

export interface StreamResult {
  sent: number;
  /** Distinct messages read, copies of one counted once. */
  received: number;
  /** Copies read beyond the first of a message. */
  duplicates: number;
  /** Messages read after one sent later. */
  outOfOrder: number;
  messagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The first error a dispatcher answered the sending page with, if any. */
  error: string | null;
}

export interface RelayRow {
  hops: number;
  reader: string;
  loaded: StreamResult;
  idle: StreamResult;
  /**
   * Shares of one core during the loaded run: the busiest dispatcher's, and this process's (it
   * sends and reads every message: near 1, it is what limits the rate, not the flock).
   */
  busiestDispatcherCpu: number;
  benchCpu: number;
}

export interface LendingRow {
  setup: 'local' | 'lent';
  asks: number;
  urls: number;
  /** Different servers among the URLs: a server handed out twice shows here. */
  distinct: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
}

export interface FlockBenchResult {
  options: FlockBenchOptions;
  relay: RelayRow[];
  lending: LendingRow[];
}

/** Longer than a lender has to answer (2 s) before the asking dispatcher gives up on it. */
const ASK_TIMEOUT_MS = 10_000;

interface FlockView {
  links: { state: string }[];
  peers: { member: string; free: number; hops: number }[];
}

async function flockOf(port: number): Promise<FlockView> {
  return (await fetch(`http://127.0.0.1:${port}/v1/flock`)).json() as Promise<FlockView>;
}

async function member(port: number, links: number[], running: Proc[]): Promise<void> {
  const proc = startDispatcher(port, ':memory:', [...FLOCK_FLAGS, ...links.flatMap((p) => ['--link', `ws://127.0.0.1:${p}`])]);
  running.push(proc);
  await proc.waitForOutput(/listening on/);
}

async function linksUp(port: number, count: number): Promise<void> {
  await waitFor(`${count} link(s) up at :${port}`, async () => (await flockOf(port)).links.filter((link) => link.state === 'up').length === count, 20_000);
}

/** A page on a dispatcher's /stream that subscribed to the flock's messages. */
async function subscribedPage(port: number): Promise<WebSocket> {
  const ws = await openSocket(`ws://127.0.0.1:${port}/stream`);
  const subscribed = new Promise<void>((resolve) => {
    const listener = (raw: WebSocket.RawData) => {
      if (JSON.parse(raw.toString()).type !== 'subscribed') return;
      ws.off('message', listener);
      resolve();
    };
    ws.on('message', listener);
  });
  ws.send(JSON.stringify({ type: 'subscribe' }));
  await subscribed;
  return ws;
}

/** Closes a page and waits until the close handshake is done, so that it is no reader of the next case. */
function closePage(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2000);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close();
  });
}

let runs = 0;

/**
 * `count` messages from `sender`, never more than `window` sent and not yet read at `reader`; done
 * when each has been read (and a moment more, for a late copy) or after `timeoutMs`.
 */
function stream(sender: WebSocket, reader: WebSocket, count: number, window: number, timeoutMs: number): Promise<StreamResult> {
  // Tagged with the run, so that a straggler of an earlier case is never counted in this one.
  const run = ++runs;
  const copies = new Uint32Array(count);
  const latencies: number[] = [];
  let [sent, received, duplicates, outOfOrder, newest] = [0, 0, 0, 0, -1];
  let error: string | null = null;
  const start = performance.now();
  let lastAt = start;

  return new Promise((resolve) => {
    const onError = (raw: WebSocket.RawData) => {
      const message = JSON.parse(raw.toString());
      if (message.type === 'error') error ??= message.error;
    };
    const onMessage = (raw: WebSocket.RawData) => {
      const at = performance.now();
      const message = JSON.parse(raw.toString());
      if (message.type !== 'message' || message.data?.run !== run) return;
      const { n, t } = message.data as { n: number; t: number };
      if (copies[n]++ > 0) {
        duplicates++;
        return;
      }
      received++;
      lastAt = at;
      latencies.push(at - t);
      if (n < newest) outOfOrder++;
      else newest = n;
      if (received === count) {
        clearTimeout(deadline);
        // Any copy still on its way would arrive now.
        setTimeout(finish, 200);
      } else pump();
    };
    function pump(): void {
      while (sent < count && sent - received < window) {
        sender.send(JSON.stringify({ type: 'message', data: { run, n: sent, t: performance.now() } }));
        sent++;
      }
    }
    function finish(): void {
      clearTimeout(deadline);
      reader.off('message', onMessage);
      sender.off('message', onError);
      resolve({
        sent, received, duplicates, outOfOrder,
        messagesPerSecond: received ? Math.round(received / ((lastAt - start) / 1000)) : 0,
        p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: latencies.length ? Math.max(...latencies) : NaN,
        error,
      });
    }
    const deadline = setTimeout(finish, timeoutMs);
    reader.on('message', onMessage);
    sender.on('message', onError);
    pump();
  });
}

async function runRelay(options: FlockBenchOptions, log: (line: string) => void): Promise<RelayRow[]> {
  const running: Proc[] = [];
  const sockets: WebSocket[] = [];
  try {
    const ports = await Promise.all(Array.from({ length: 4 }, () => freePort()));
    // A line: each dials the one before it, started after it so that the first dial succeeds.
    for (let i = 0; i < ports.length; i++) await member(ports[i], i > 0 ? [ports[i - 1]] : [], running);
    for (let i = 0; i < ports.length; i++) await linksUp(ports[i], i === 0 || i === ports.length - 1 ? 1 : 2);

    const sender = await openSocket(`ws://127.0.0.1:${ports[0]}/stream`);
    sockets.push(sender);
    const warm = await subscribedPage(ports[0]);
    sockets.push(warm);
    await stream(sender, warm, options.warmup, options.window, options.caseTimeoutMs);
    await closePage(warm);

    const rows: RelayRow[] = [];
    for (let hops = 0; hops < ports.length; hops++) {
      // One reader at a time: the others' pages would each cost the dispatcher a send.
      const reader = await subscribedPage(ports[hops]);
      sockets.push(reader);
      const pids = [...running.map((proc) => proc.child.pid!), process.pid];
      const [cpu0, t0] = [pids.map(cpuMs), performance.now()];
      const loaded = await stream(sender, reader, options.messages, options.window, options.caseTimeoutMs);
      const elapsed = performance.now() - t0;
      const shares = pids.map((pid, i) => (cpuMs(pid) - cpu0[i]) / elapsed);
      const idle = await stream(sender, reader, options.idleMessages, 1, options.caseTimeoutMs);
      await closePage(reader);
      rows.push({ hops, reader: `D${hops}`, loaded, idle, busiestDispatcherCpu: Math.max(...shares.slice(0, -1)), benchCpu: shares.at(-1)! });
      log(`relay, ${hops} hop(s): ${loaded.received}/${loaded.sent} read, ${loaded.messagesPerSecond} messages/s, p99 ${loaded.p99Ms.toFixed(2)}ms`);
    }
    return rows;
  } finally {
    for (const ws of sockets) ws.close();
    await Promise.all(running.map((proc) => proc.stop()));
  }
}

/** One JSON get_server_url on a socket opened beforehand: the answer and the ms from send to it. */
async function timedAsk(port: number, requestId: string): Promise<{ url: string | null; ms: number }> {
  const ws = await openSocket(`ws://127.0.0.1:${port}/stream`);
  try {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = new Promise<{ type: string; url?: string }>((resolve, reject) => {
      ws.once('message', (raw) => resolve(JSON.parse(raw.toString())));
      ws.once('close', (code) => reject(new Error(`closed ${code} before an answer`)));
      timer = setTimeout(() => reject(new Error(`no answer to get_server_url within ${ASK_TIMEOUT_MS}ms`)), ASK_TIMEOUT_MS);
    });
    const t0 = performance.now();
    ws.send(JSON.stringify({ type: 'get_server_url', requestId }));
    const { type, url } = await answer.finally(() => clearTimeout(timer));
    return { url: type === 'server_url' && url ? url : null, ms: performance.now() - t0 };
  } finally {
    ws.close();
  }
}

/** Render servers ready at a dispatcher (one page of its list holds them all: at most 1,000). */
async function readyCount(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/v1/servers?state=ready&limit=1000`);
  return ((await response.json()) as { servers: unknown[] }).servers.length;
}

function lendingRow(setup: LendingRow['setup'], asks: { url: string | null; ms: number }[]): LendingRow {
  const urls = asks.flatMap((ask) => (ask.url ? [ask.url.split('?')[0]] : []));
  const ms = asks.map((ask) => ask.ms);
  return {
    setup, asks: asks.length, urls: urls.length, distinct: new Set(urls).size,
    p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), meanMs: ms.reduce((a, b) => a + b, 0) / ms.length, maxMs: Math.max(...ms),
  };
}

async function runLending(options: FlockBenchOptions, log: (line: string) => void): Promise<LendingRow[]> {
  const running: Proc[] = [];
  const simulated: SimulatedServer[] = [];
  try {
    const [a, b, l] = await Promise.all([freePort(), freePort(), freePort()]);
    await member(b, [], running);
    await member(a, [b], running);
    await member(l, [], running);
    await linksUp(a, 1);
    simulated.push(...(await registerMany([b], options.servers)), ...(await registerMany([l], options.servers)));
    await waitFor(`A to hear ${options.servers} free at B`, async () => (await flockOf(a)).peers.some((peer) => peer.free === options.servers), 20_000);
    await waitFor(`${options.servers} ready at L`, async () => (await readyCount(l)) === options.servers, 20_000);

    // Each hand-out reserves a server, so K asks at each empty it exactly; a fresh page each time,
    // as one page holds one unclaimed server and would be given the same one again.
    const local: { url: string | null; ms: number }[] = [];
    const lent: { url: string | null; ms: number }[] = [];
    for (let i = 0; i < options.servers; i++) {
      local.push(await timedAsk(l, `local-${i}`));
      lent.push(await timedAsk(a, `lent-${i}`));
    }
    const rows = [lendingRow('local', local), lendingRow('lent', lent)];
    for (const r of rows) log(`${r.setup}: ${r.urls}/${r.asks} URLs, p50 ${r.p50Ms.toFixed(2)}ms, p99 ${r.p99Ms.toFixed(2)}ms`);
    return rows;
  } finally {
    for (const s of simulated) s.close();
    await Promise.all(running.map((proc) => proc.stop()));
  }
}

export async function runFlock(options: FlockBenchOptions, log = console.error): Promise<FlockBenchResult> {
  const relay = await runRelay(options, log);
  const lending = await runLending(options, log);
  return { options, relay, lending };
}

const ms = (n: number) => n.toFixed(2);
const pct = (share: number) => `${Math.round(share * 100)}%`;

export function flockTable(result: FlockBenchResult): string {
  const { options } = result;
  return [
    `Flock relay on a line D0–D1–D2–D3: a page on D0 sends ${options.messages} messages with at most ${options.window} unread, one subscribed page reads them on D0 (0 hops, local delivery) or D1–D3; latency in ms from send to read, loaded and one message at a time (${options.idleMessages} messages) (flags: ${FLOCK_FLAGS.join(' ')})`,
    '',
    markdownTable(
      ['reader', 'hops', 'read once / sent', 'copies', 'out of order', 'messages/s', 'p50', 'p99', 'max', 'idle p50', 'idle p99', 'busiest dispatcher CPU', 'bench CPU', 'error'],
      result.relay.map(({ reader, hops, loaded, idle, busiestDispatcherCpu, benchCpu }) => [
        hops === 0 ? `${reader} (direct)` : reader, hops, `${loaded.received}/${loaded.sent}`, loaded.duplicates + idle.duplicates, loaded.outOfOrder + idle.outOfOrder,
        loaded.messagesPerSecond, ms(loaded.p50Ms), ms(loaded.p99Ms), ms(loaded.maxMs), ms(idle.p50Ms), ms(idle.p99Ms), pct(busiestDispatcherCpu), pct(benchCpu),
        loaded.error ?? idle.error ?? (idle.received === idle.sent ? '-' : `idle: ${idle.received}/${idle.sent} read`),
      ]),
    ),
    '',
    `Time to a URL (ms from get_server_url to the answer, a fresh page each): at L from its own ${options.servers} render servers, and at A, which has none, lent by B (1 link away, ${options.servers} servers); asked alternately`,
    '',
    markdownTable(
      ['setup', 'asks', 'got a URL', 'distinct servers', 'p50', 'p99', 'mean', 'max'],
      result.lending.map((r) => [r.setup === 'local' ? 'local (L)' : 'lent (A from B)', r.asks, r.urls, r.distinct, ms(r.p50Ms), ms(r.p99Ms), ms(r.meanMs), ms(r.maxMs)]),
    ),
  ].join('\n');
}
