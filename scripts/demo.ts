// `bun run demo`: a dispatcher and a render host running three render servers, the page to open,
// and on Ctrl-C (or SIGTERM) every one of them stopped. `--postgres` starts a throwaway PostgreSQL
// instead of the lease file, two dispatchers on it (the port given and the next), and the render
// servers spread over both, each with the other as its fallback. Flags let tests run the same demo
// on free ports.

import { join } from 'node:path';
import { configFromArgv, parseFlags, parsePort, parsePositive } from '../common/cli.ts';
import { DEFAULT_DISPATCHER_PORT, DEFAULT_RENDER_PORT } from '../common/protocol.ts';
import { startCluster, type Cluster } from '../tests/postgres-cluster.ts';

const USAGE = `usage: bun run demo [--postgres] [--dispatcher-port ${DEFAULT_DISPATCHER_PORT}] [--render-port ${DEFAULT_RENDER_PORT}] [--render-count 3] [--workers 1] [--db dispatcher.db] [--size 512] [--spin 1]`;

function parse(argv: string[]) {
  const values = parseFlags(argv, {
    'dispatcher-port': { type: 'string' },
    'render-port': { type: 'string' },
    'render-count': { type: 'string' },
    workers: { type: 'string' },
    db: { type: 'string' },
    size: { type: 'string' },
    spin: { type: 'string' },
    postgres: { type: 'boolean' },
    help: { type: 'boolean' },
  });
  if (values.help) return null;
  return {
    dispatcherPort: values['dispatcher-port'] ? parsePort('dispatcher-port', values['dispatcher-port']) : DEFAULT_DISPATCHER_PORT,
    renderPort: values['render-port'] ? parsePort('render-port', values['render-port']) : DEFAULT_RENDER_PORT,
    renderCount: values['render-count'] ? parsePositive('render-count', values['render-count'], { max: 64 }) : 3,
    // Passed to each dispatcher, which checks it.
    workers: values.workers ?? '1',
    db: values.db ?? 'dispatcher.db',
    // Passed to each render server, which checks it.
    size: values.size ?? '512',
    spin: values.spin ?? '1',
    postgres: values.postgres ?? false,
  };
}

const options = configFromArgv('demo', USAGE, parse);

const root = join(import.meta.dir, '..');
const dispatcherPorts = options.postgres ? [options.dispatcherPort, options.dispatcherPort + 1] : [options.dispatcherPort];
const dispatcherHttp = `http://127.0.0.1:${options.dispatcherPort}`;
const dispatcherWs = `ws://127.0.0.1:${options.dispatcherPort}`;
const children: Bun.Subprocess[] = [];
let cluster: Cluster | null = null;
let stopping = false;

function start(name: string, cmd: string[]) {
  const child = Bun.spawn(cmd, { cwd: root, stdout: 'inherit', stderr: 'inherit', stdin: 'ignore' });
  children.push(child);
  child.exited.then((code) => {
    if (!stopping) {
      console.error(`demo: ${name} exited (${code}); stopping the demo`);
      void stop(1);
    }
  });
}

async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  const timeout = setTimeout(() => children.forEach((child) => child.kill('SIGKILL')), 5000);
  await Promise.all(children.map((child) => child.exited));
  clearTimeout(timeout);
  await cluster?.stop();
  console.log('demo: stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

if (options.postgres) {
  cluster = await startCluster();
  console.log(`demo: a throwaway PostgreSQL at ${cluster.url} (removed when the demo stops)`);
}
const db = cluster?.url ?? options.db;
for (const port of dispatcherPorts) {
  start(`dispatcher :${port}`, ['bun', 'app/main.ts', '--port', String(port), '--db', db, '--workers', options.workers]);
}
// One render host runs the servers; with two dispatchers it spreads them over both.
start('render host', [
  'node', '--import', 'tsx', 'render/main.ts', '--port', String(options.renderPort), '--count', String(options.renderCount),
  '--dispatcher', dispatcherPorts.map((port) => `ws://127.0.0.1:${port}`).join(','), '--size', options.size, '--spin', options.spin,
]);

// Ready when every render server can be handed out; say where to look.
const deadline = Date.now() + 60_000;
while (!stopping) {
  const ready = await fetch(`${dispatcherHttp}/v1/servers`)
    .then((r) => r.json() as Promise<{ servers: { state: string; reason: string | null }[] }>)
    .then((body) => body.servers.filter((s) => s.state === 'ready' && s.reason === null).length)
    .catch(() => 0);
  if (ready >= options.renderCount) break;
  if (Date.now() > deadline) {
    console.error(`demo: only ${ready} of ${options.renderCount} render servers registered within 60s`);
    await stop(1);
  }
  await Bun.sleep(200);
}
const page = `file://${join(root, 'client', 'index.html')}`;
const query = options.dispatcherPort === DEFAULT_DISPATCHER_PORT ? '' : `?dispatcher=${dispatcherWs}/stream`;
const others = dispatcherPorts.slice(1).map((port) => `http://127.0.0.1:${port}/?dispatcher=ws://127.0.0.1:${port}/stream`);
console.log(`
demo: ready, ${options.renderCount} render servers${options.postgres ? `, ${dispatcherPorts.length} dispatchers sharing one PostgreSQL` : ''}.
  Open up to ${options.renderCount} pages (one per render server):
    ${page}${query}
  or served by the dispatcher: ${dispatcherHttp}/${query}${others.map((url) => `\n  or by the other dispatcher: ${url}`).join('')}
  Server states: ${dispatcherHttp}/v1/servers
  Ctrl-C stops everything.`);
