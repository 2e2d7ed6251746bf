// `bun run demo`: a dispatcher and a render host running three render servers, the page to open,
// and on Ctrl-C (or SIGTERM) every one of them stopped. `--postgres` starts a throwaway PostgreSQL
// instead of the lease file, two dispatchers on it (the port given and the next), and the render
// servers spread over both, each with the other as its fallback. Flags let tests run the same demo
// on free ports.

import { join } from 'node:path';
import { flagTable, parsePort, positive, readFlags, usageOf } from '../common/flags.ts';
import { configFromArgv } from '../common/node/entry.ts';
import { defaultSecretFile } from '../common/node/secret-file.ts';
import { DEFAULT_DISPATCHER_PORT, DEFAULT_RENDER_PORT } from '../common/protocol.ts';
import { startCluster, type Cluster } from '../tests/postgres-cluster.ts';

const FLAGS = flagTable({
  postgres: { help: 'a throwaway PostgreSQL and two dispatchers on it (the port given and the next) instead of the lease file' },
  'dispatcher-port': { value: 'N', help: 'the (first) dispatcher\'s port', parse: parsePort, default: DEFAULT_DISPATCHER_PORT },
  'render-port': { value: 'N', help: 'the first render server\'s port; the others follow it', parse: parsePort, default: DEFAULT_RENDER_PORT },
  'render-count': { value: 'N', help: 'how many render servers', parse: positive({ max: 64 }), default: 3 },
  // Passed on to the programs, which check them.
  workers: { value: 'N|auto', help: 'dispatcher processes per dispatcher (--workers)', default: '1' },
  db: { value: 'FILE', help: 'the lease file (without --postgres)', default: 'dispatcher.db' },
  size: { value: 'N', help: 'frame width and height', default: '512' },
  spin: { value: 'X', help: 'how fast the torus turns', default: '1' },
  help: { help: 'print this and exit' },
});
const USAGE = usageOf('usage: bun run demo [options]', FLAGS);

function parse(argv: string[]) {
  const v = readFlags(argv, FLAGS);
  if (v.help) return null;
  return {
    dispatcherPort: v['dispatcher-port'], renderPort: v['render-port'], renderCount: v['render-count'], workers: v.workers, db: v.db, size: v.size,
    spin: v.spin, postgres: v.postgres,
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
  Dashboard: ${dispatcherHttp}/dashboard (any user name; the password is the secret, in ${defaultSecretFile()})
  Metrics: ${dispatcherHttp}/metrics
  Ctrl-C stops everything.`);
