// Operating a render server, on real processes: readiness that follows the registration with a
// real dispatcher, Prometheus metrics that move while a page streams and settle when it leaves,
// an /about with nothing secret in it, and --log-format json lines a machine can read, from a
// render server and from a render host.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  askDispatcher,
  askJson,
  connectFrames,
  freePort,
  freePortRun,
  servers,
  startDispatcher,
  startDispatcherWithRender,
  startProcess,
  startRender,
  testSecret,
  waitFor,
  type Proc,
} from './helpers.ts';

const get = async (port: number, path: string) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
};

/** One sample's value from a scrape, by its name (with labels as written); NaN if it is absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

const PREFIX = 'render_dispatch_render_';

describe('render server readiness', () => {
  const procs: Proc[] = [];
  after(async () => {
    for (const proc of procs.reverse()) await proc.stop();
  });

  test('/readyz is 503 while no dispatcher has it registered, 200 once one does, 503 when that dispatcher goes; /healthz is 200 throughout', async () => {
    const [renderPort, dispatcherPort] = [await freePort(), await freePort()];
    // Nothing listens on the dispatcher's port yet: the server starts and keeps trying.
    const render = startRender(renderPort, dispatcherPort);
    procs.push(render);
    await render.waitForOutput(/streaming/, 30_000);
    assert.match(render.output(), new RegExp(`^render :${renderPort}: streaming 128x128`, 'm'), 'text lines as they always were');
    const health = await get(renderPort, '/healthz');
    assert.deepEqual([health.status, health.text], [200, 'ok']);
    const unready = await get(renderPort, '/readyz');
    assert.equal(unready.status, 503);
    assert.equal(unready.text, 'not registered with a dispatcher');
    assert.equal(sample((await get(renderPort, '/metrics')).text, `${PREFIX}registered`), 0);

    const dispatcher = startDispatcher(dispatcherPort);
    procs.push(dispatcher);
    await waitFor('ready', async () => (await get(renderPort, '/readyz')).status === 200, 15_000);
    assert.equal((await get(renderPort, '/readyz')).text, 'ready');
    assert.equal((await servers(dispatcherPort))[0].state, 'ready', 'the dispatcher agrees');
    assert.equal(sample((await get(renderPort, '/metrics')).text, `${PREFIX}registered`), 1);

    await dispatcher.stop();
    await waitFor('unready again', async () => (await get(renderPort, '/readyz')).status === 503, 5_000);
    assert.equal((await get(renderPort, '/healthz')).status, 200);
  });
});

describe('render server metrics and about, with a real dispatcher', () => {
  let dispatcherPort: number;
  let renderPort: number;
  let pair: Awaited<ReturnType<typeof startDispatcherWithRender>> | undefined;

  before(async () => {
    pair = await startDispatcherWithRender();
    ({ dispatcherPort, renderPort } = pair);
  });

  after(async () => {
    await pair?.stop();
  });

  // Each test starts from a server the dispatcher can hand out, whatever the one before left.
  const free = () => waitFor('the server to be free', async () => (await servers(dispatcherPort))[0].state === 'ready');

  test('/metrics, scraped twice while a page streams, counts its frames and bytes, and shows the client gone once it leaves', async (t) => {
    await free();
    const url = await askDispatcher(dispatcherPort);
    const client = await connectFrames(url);
    t.after(() => client.ws.close());
    await waitFor('5 frames', () => client.frames.length >= 5);

    const received = () => ({ frames: client.frames.length, bytes: client.frames.reduce((sum, f) => sum + f.length, 0) });
    const seen1 = received();
    const first = await get(renderPort, '/metrics');
    assert.match(first.type, /^text\/plain; version=0\.0\.4/);
    await waitFor('5 more frames', () => client.frames.length >= seen1.frames + 5);
    const seen2 = received();
    const second = (await get(renderPort, '/metrics')).text;

    // A frame the page has is a frame the server counted as sent.
    assert.ok(sample(first.text, `${PREFIX}frames_sent_total`) >= seen1.frames, 'first scrape counts what the page had');
    assert.ok(sample(second, `${PREFIX}frames_sent_total`) >= seen2.frames, 'second scrape counts what the page had');
    assert.ok(sample(second, `${PREFIX}frames_sent_total`) > sample(first.text, `${PREFIX}frames_sent_total`));
    assert.ok(sample(first.text, `${PREFIX}sent_bytes_total`) >= seen1.bytes);
    assert.ok(sample(second, `${PREFIX}sent_bytes_total`) >= seen2.bytes);
    assert.ok(sample(second, `${PREFIX}sent_bytes_total`) > sample(first.text, `${PREFIX}sent_bytes_total`));
    assert.ok(sample(second, `${PREFIX}frames_rendered_total`) > sample(first.text, `${PREFIX}frames_rendered_total`));
    assert.ok(sample(second, `${PREFIX}frame_seconds_count`) > sample(first.text, `${PREFIX}frame_seconds_count`));
    assert.ok(sample(second, `${PREFIX}encode_seconds_count`) > sample(first.text, `${PREFIX}encode_seconds_count`));
    for (const text of [first.text, second]) {
      assert.equal(sample(text, `${PREFIX}clients_connected`), 1);
      assert.equal(sample(text, `${PREFIX}registered`), 1);
    }
    // Measured over a second: it shows once a whole second has been streamed.
    await waitFor('fps measured while streaming', async () => sample((await get(renderPort, '/metrics')).text, `${PREFIX}fps`) > 0);

    // The same ticket again is refused, and counted as used.
    await assert.rejects(connectFrames(url), { status: 403 });
    const refusedUsed = sample((await get(renderPort, '/metrics')).text, `${PREFIX}tickets_refused_total{reason="used"}`);
    assert.equal(refusedUsed, 1);

    client.ws.close();
    await waitFor('clients 0', async () => sample((await get(renderPort, '/metrics')).text, `${PREFIX}clients_connected`) === 0);
    const gone = (await get(renderPort, '/metrics')).text;
    assert.equal(sample(gone, `${PREFIX}fps`), 0);
    assert.ok(sample(gone, `${PREFIX}frames_sent_total`) >= client.frames.length);
  });

  test('/about says what the server is and holds no key, secret or ticket', async (t) => {
    await free();
    const url = await askDispatcher(dispatcherPort);
    const ticket = new URL(url).searchParams.get('ticket')!;
    const client = await connectFrames(url);
    t.after(() => client.ws.close());
    await waitFor('a frame', () => client.frames.length >= 1);
    const about = await get(renderPort, '/about');
    assert.equal(about.status, 200);
    const body = JSON.parse(about.text);
    assert.deepEqual(Object.keys(body).sort(), ['client', 'fps', 'id', 'registered', 'size', 'targetFps']);
    assert.deepEqual({ ...body, fps: 0 }, { id: (await servers(dispatcherPort))[0].id, size: 128, targetFps: 30, fps: 0, registered: true, client: 'connected' });
    for (const field of ['key', 'secret', 'ticket']) assert.equal(field in body, false, field);
    assert.equal(about.text.includes(ticket), false, 'not the ticket');
    assert.equal(about.text.includes(testSecret()), false, 'not the secret');
    client.ws.close();
    await waitFor('client none', async () => JSON.parse((await get(renderPort, '/about')).text).client === 'none');
  });
});

/** Every line of the output, parsed; fails naming the first that is not a JSON log line. */
function jsonLines(output: string): Record<string, unknown>[] {
  return output.split('\n').filter((line) => line.trim() !== '').map((line) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line);
    } catch {
      assert.fail(`not a JSON line: ${line}`);
    }
    for (const field of ['level', 'time', 'msg']) assert.ok(field in parsed, `${field} in ${line}`);
    assert.ok(!Number.isNaN(Date.parse(String(parsed.time))), `an ISO time in ${line}`);
    return parsed;
  });
}

describe('render server logs', () => {
  test('--log-format json: every line is a JSON object with level, time and msg; a client is named by its ticket id and session, never its ticket', async () => {
    const [dispatcherPort, renderPort] = [await freePort(), await freePort()];
    const dispatcher = startDispatcher(dispatcherPort);
    const render = startRender(renderPort, dispatcherPort, ['--log-format', 'json']);
    try {
      await dispatcher.waitForOutput(/listening/);
      await waitFor('the render server to register', async () => (await servers(dispatcherPort)).some((s) => s.state === 'ready'), 30_000);
      const answer = await askJson(dispatcherPort, { session: 'ops-test-session' });
      assert.equal(answer.type, 'server_url');
      const ticket = new URL(answer.url!).searchParams.get('ticket')!;
      const client = await connectFrames(answer.url!);
      await waitFor('a frame', () => client.frames.length >= 1);
      client.ws.close();
      await render.waitForOutput(/"msg":"client gone"/);
      assert.equal(await render.stop(), 0);

      const lines = jsonLines(render.output());
      const serverId = (await servers(dispatcherPort))[0].id;
      const byMsg = (msg: string) => lines.find((l) => l.msg === msg) ?? assert.fail(`no line "${msg}" in ${render.output()}`);
      const started = lines.find((l) => String(l.msg).startsWith('streaming 128x128'))!;
      assert.deepEqual([started.serverId, started.port, started.program, started.level], [serverId, renderPort, 'render', 'info']);
      const registered = lines.find((l) => String(l.msg).startsWith('registered with'))!;
      assert.deepEqual([registered.serverId, registered.dispatcher], [serverId, `ws://127.0.0.1:${dispatcherPort}`]);
      for (const msg of ['client connected', 'client gone']) {
        const line = byMsg(msg);
        assert.deepEqual([line.serverId, line.port, line.session], [serverId, renderPort, 'ops-test-session']);
        assert.match(String(line.jti), /^[0-9a-f-]{36}$/);
      }
      assert.equal(byMsg('SIGTERM, stopping').signal, 'SIGTERM');
      assert.equal(render.output().includes(ticket), false, 'no ticket in the logs');
      assert.equal(render.output().includes(testSecret()), false, 'no secret in the logs');
    } finally {
      await render.stop();
      await dispatcher.stop();
    }
  });

  test('--log-format json reaches a render host and every server it starts', async () => {
    const port = await freePortRun(2);
    const host = startProcess('node', ['--import', 'tsx', 'render/main.ts', '--count', '2', '--port', String(port), '--dispatcher', `ws://127.0.0.1:${await freePort()}`, '--size', '64', '--log-format', 'json']);
    try {
      await waitFor('both servers streaming', () => (host.output().match(/"msg":"streaming /g) ?? []).length === 2, 30_000);
      assert.equal(await host.stop(), 0);
      const lines = jsonLines(host.output());
      assert.ok(lines.some((l) => l.process === 'render host' && l.msg === `2 render servers on ports ${port}-${port + 1}`), host.output());
      for (const p of [port, port + 1]) assert.ok(lines.some((l) => l.process === `render :${p}` && l.port === p && typeof l.serverId === 'string'), `server :${p}`);
    } finally {
      await host.stop();
    }
  });

  test('--log-format yaml exits 2 with a message naming the flag', async () => {
    const proc = startProcess('node', ['--import', 'tsx', 'render/main.ts', '--log-format', 'yaml']);
    assert.equal(await proc.exited, 2);
    assert.match(proc.output(), /--log-format must be text or json, got "yaml"/);
  });
});
