// Helpers for the cross-process suites: free loopback ports, real dispatcher and render server
// processes with their output captured, and bounded waits.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { encode } from '../common/protocol.ts';
import { defaultSecretFile, loadOrCreateSecret } from '../common/node/secret-file.ts';

export const ROOT = join(import.meta.dirname, '..');

/**
 * The secret the dispatchers these tests start use: the per-user file, as with no flags (the test
 * gate points RENDER_DISPATCH_HOME at a folder of its own, so no real secret is touched).
 */
export function testSecret(): string {
  return loadOrCreateSecret(defaultSecretFile());
}

/** Headers a program (not a browser: no Origin) sends to the control channel and operator routes. */
export function operatorHeaders(): Record<string, string> {
  return { authorization: `Bearer ${testSecret()}` };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The first of `count` consecutive free loopback ports (for a render host's --port with --count). */
export async function freePortRun(count: number): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await free(first + i);
    if (ok) return first;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
}

export interface Proc {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>;
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export function startProcess(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    output: () => output,
    exited,
    waitForOutput: (pattern, timeoutMs = 20_000) =>
      waitFor(`${pattern} in the output of ${command} ${args.join(' ')}`, () => pattern.test(output), timeoutMs).then(
        () => {},
        (error: Error) => {
          throw new Error(`${error.message}; it printed:\n${output}`);
        },
      ),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

export function startDispatcher(port: number, db = ':memory:', extra: string[] = []): Proc {
  return startProcess('bun', ['app/main.ts', '--port', String(port), '--db', db, ...extra]);
}

export function startRender(port: number, dispatcherPort: number, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
  return startProcess('node', ['--import', 'tsx', 'render/main.ts', '--port', String(port), '--dispatcher', `ws://127.0.0.1:${dispatcherPort}`, '--size', '128', ...extra], env);
}

/** A dispatcher and one real render server registered with it (at 30 fps), for suites about the render server. */
export async function startDispatcherWithRender(db = ':memory:'): Promise<{ dispatcherPort: number; renderPort: number; dispatcher: Proc; render: Proc; stop(): Promise<void> }> {
  const [dispatcherPort, renderPort] = [await freePort(), await freePort()];
  const dispatcher = startDispatcher(dispatcherPort, db);
  await dispatcher.waitForOutput(/listening/);
  const render = startRender(renderPort, dispatcherPort, ['--fps', '30']);
  await waitFor('the render server to register', async () => (await servers(dispatcherPort)).some((s) => s.state === 'ready'), 30_000);
  return {
    dispatcherPort, renderPort, dispatcher, render,
    async stop() {
      await render.stop();
      await dispatcher.stop();
    },
  };
}

export interface ServerView {
  id: string;
  url: string;
  state: string;
  leaseExpiresAt: number;
}

export async function servers(dispatcherPort: number): Promise<ServerView[]> {
  const response = await fetch(`http://127.0.0.1:${dispatcherPort}/v1/servers`);
  return ((await response.json()) as { servers: ServerView[] }).servers;
}

/** The tutorial's exchange on a fresh socket: get_server_url, one answer. */
export async function askDispatcher(dispatcherPort: number): Promise<string> {
  const ws = new WebSocket(`ws://127.0.0.1:${dispatcherPort}/stream`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const answer = new Promise<string>((resolve) => ws.once('message', (data) => resolve(data.toString())));
  ws.send('get_server_url');
  const text = await answer;
  ws.close();
  return text;
}

/** A dispatcher's JSON answer to get_server_url. */
export interface ServerAnswer {
  type: string;
  url?: string;
  reason?: string;
  requestId?: string;
}

/** One JSON get_server_url on a fresh socket: the parsed answer (rejects if the socket closes first). */
export async function askJson(dispatcherPort: number, request: object = {}): Promise<ServerAnswer> {
  const ws = await openSocket(`ws://127.0.0.1:${dispatcherPort}/stream`);
  const answer = new Promise<string>((resolve, reject) => {
    ws.once('message', (data) => resolve(data.toString()));
    ws.once('close', (code) => reject(new Error(`closed ${code} before an answer`)));
  });
  ws.send(JSON.stringify({ type: 'get_server_url', ...request }));
  try {
    return JSON.parse(await answer);
  } finally {
    ws.close();
  }
}

/** The pids of a process's children (none once it has gone). */
export function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface FrameClient {
  ws: WebSocket;
  frames: Buffer[];
  /** The text messages, parsed, in order. */
  texts: Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
}

/** Connects to a render server URL and collects the binary frames it sends. */
export function connectFrames(url: string): Promise<FrameClient> {
  const ws = new WebSocket(url);
  const frames: Buffer[] = [];
  const texts: Record<string, unknown>[] = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) frames.push(data as Buffer);
    else texts.push(JSON.parse(data.toString()));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, frames, texts, closed }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => reject(Object.assign(new Error(`refused: ${res.statusCode} ${body.trim()}`), { status: res.statusCode, body: body.trim() })));
    });
    ws.once('error', reject);
  });
}

export interface SimulatedServer {
  id: string;
  url: string;
  ws: WebSocket;
  /** How many lease answers it has had (its heartbeats ask for them unless told not to). */
  leases(): number;
  /** Reports the client's arrival or departure, as a real render server does. */
  report(event: 'connected' | 'gone'): void;
  close(): void;
}

/**
 * A render server's control side without the rendering: registers, heartbeats at the interval
 * the dispatcher gives, and reports its client when told to. For tests and benchmarks that need
 * many servers. Its heartbeats ask for an answer (counted by leases()) unless `answers` is false,
 * as a real render server's do not.
 */
export async function simulateRenderServer(dispatcherPort: number, id: string, url: string, { answers = true } = {}): Promise<SimulatedServer> {
  const ws = new WebSocket(`ws://127.0.0.1:${dispatcherPort}/v1/control`, { headers: operatorHeaders() });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let beat: NodeJS.Timeout | undefined;
  let client: 'none' | 'connected' = 'none';
  let leases = 0;
  const registered = new Promise<void>((resolve, reject) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'lease') leases++;
      else if (msg.type === 'registered') {
        // At a random phase, as servers started at different moments would: many simulated
        // servers registered at once would otherwise all beat in the same instant.
        const start = setTimeout(() => {
          beat = setInterval(() => ws.send(encode({ type: 'heartbeat', fps: 0, frameMs: 0, client, ...(answers ? { answer: true } : {}) })), msg.heartbeatMs);
        }, Math.random() * msg.heartbeatMs);
        ws.once('close', () => clearTimeout(start));
        resolve();
      } else if (msg.type === 'error') reject(new Error(msg.error));
    });
  });
  ws.on('close', () => clearInterval(beat));
  ws.send(encode({ type: 'register', id, instance: `instance-of-${id}-${randomUUID()}`, url, client, targetFps: 60 }));
  await registered;
  return {
    id,
    url,
    ws,
    leases: () => leases,
    report(event) {
      client = event === 'connected' ? 'connected' : 'none';
      ws.send(encode({ type: 'client', event }));
    },
    close() {
      clearInterval(beat);
      ws.close();
    },
  };
}

/** Opens a WebSocket and resolves once it is open. */
export function openSocket(url: string, options?: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(url, options);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
