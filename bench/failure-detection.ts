// Failure detection: how long after a render server is killed (SIGKILL) or frozen (SIGSTOP) the
// dispatcher stops handing it out. Real dispatcher and render server processes on loopback; the
// moment is read from GET /v1/servers, whose state is computed by the same expiry rule as the
// allocation query, polled every 2 ms. Each freeze starts at a random phase of the heartbeat.

import { freePort, servers, startDispatcher, startRender, waitFor, type Proc } from '../tests/helpers.ts';
import { markdownTable, summarize, type Summary } from './stats.ts';

export interface FailureOptions {
  trials: number;
  heartbeatMs: number;
  ttlMs: number;
}

export const FULL: FailureOptions = { trials: 20, heartbeatMs: 1000, ttlMs: 3000 };
export const SMOKE: FailureOptions = { trials: 2, heartbeatMs: 100, ttlMs: 300 };

const POLL_MS = 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function stateOf(dispatcherPort: number, url: string): Promise<string | undefined> {
  return (await servers(dispatcherPort)).find((s) => s.url === url)?.state;
}

/** Milliseconds from `since` until the server is no longer ready, bounded by `limitMs`. */
async function timeUntilGone(dispatcherPort: number, url: string, since: number, limitMs: number): Promise<number> {
  while (Date.now() - since < limitMs) {
    if ((await stateOf(dispatcherPort, url)) !== 'ready') return Date.now() - since;
    await sleep(POLL_MS);
  }
  throw new Error(`still handed out ${limitMs}ms after the fault`);
}

async function startReadyRender(dispatcherPort: number): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const url = `ws://127.0.0.1:${port}/stream`;
  const proc = startRender(port, dispatcherPort, ['--size', '64', '--fps', '30']);
  await waitFor('the render server to be ready', async () => (await stateOf(dispatcherPort, url)) === 'ready', 30_000);
  return { proc, url };
}

export interface FailureResult {
  options: FailureOptions;
  sigkillMs: number[];
  sigstopMs: number[];
  sigkill: Summary;
  sigstop: Summary;
}

export async function runFailureDetection(options: FailureOptions, log = console.error): Promise<FailureResult> {
  const dispatcherPort = await freePort();
  const dispatcher = startDispatcher(dispatcherPort, ':memory:', ['--heartbeat', `${options.heartbeatMs}ms`, '--ttl', `${options.ttlMs}ms`]);
  const limit = options.ttlMs * 3;
  const sigkillMs: number[] = [];
  const sigstopMs: number[] = [];
  try {
    await dispatcher.waitForOutput(/listening/);
    for (let i = 0; i < options.trials; i++) {
      const { proc, url } = await startReadyRender(dispatcherPort);
      await sleep(Math.random() * options.heartbeatMs);
      const killedAt = Date.now();
      proc.child.kill('SIGKILL');
      sigkillMs.push(await timeUntilGone(dispatcherPort, url, killedAt, limit));
      await proc.exited;
      log(`SIGKILL trial ${i + 1}/${options.trials}: ${sigkillMs.at(-1)}ms`);
    }
    const { proc, url } = await startReadyRender(dispatcherPort);
    try {
      for (let i = 0; i < options.trials; i++) {
        await sleep(Math.random() * options.heartbeatMs);
        const stoppedAt = Date.now();
        proc.child.kill('SIGSTOP');
        sigstopMs.push(await timeUntilGone(dispatcherPort, url, stoppedAt, limit));
        proc.child.kill('SIGCONT');
        await waitFor('the thawed server to be ready', async () => (await stateOf(dispatcherPort, url)) === 'ready', limit);
        log(`SIGSTOP trial ${i + 1}/${options.trials}: ${sigstopMs.at(-1)}ms`);
      }
    } finally {
      proc.child.kill('SIGCONT');
      await proc.stop();
    }
  } finally {
    await dispatcher.stop();
  }
  return { options, sigkillMs, sigstopMs, sigkill: summarize(sigkillMs), sigstop: summarize(sigstopMs) };
}

export function failureTable(result: FailureResult): string {
  const { heartbeatMs, ttlMs, trials } = result.options;
  const row = (fault: string, s: Summary, bound: string) => [fault, s.n, s.min, s.p50, s.p99, s.max, bound];
  return [
    `Failure detection (heartbeat ${heartbeatMs} ms, TTL ${ttlMs} ms, ${trials} trials each; ms from the signal until no longer handed out)`,
    '',
    markdownTable(['fault', 'trials', 'min', 'p50', 'p99', 'max', 'bound'], [
      row('SIGKILL', result.sigkill, 'socket close'),
      row('SIGSTOP', result.sigstop, `TTL = ${ttlMs}`),
    ]),
  ].join('\n');
}
