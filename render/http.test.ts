// The render server's operator routes through app.request, no port: readiness follows the
// registration and the stop, /about says what a page may know and nothing more, /metrics is the
// Prometheus text of the real metrics with what the frame loop reported and the states as they are.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientState } from '../common/protocol.ts';
import { createRenderApp } from './http.ts';
import { createRenderMetrics } from './metrics.ts';

function setup() {
  const state = { registered: false, stopping: false, client: 'none' as ClientState, fps: 0 };
  const metrics = createRenderMetrics();
  const app = createRenderApp({
    id: 'render-1',
    config: { size: 128, fps: 30, dispatchers: ['ws://127.0.0.1:18000'] },
    publicUrl: () => 'ws://127.0.0.1:16000/stream',
    stream: { stats: () => ({ fps: state.fps, frameMs: 4, framesSent: 0, framesSkipped: 0, client: state.client }) },
    control: { registered: () => state.registered, dispatcher: () => 'ws://127.0.0.1:18000' },
    metrics,
    stopping: () => state.stopping,
  });
  const get = async (path: string) => {
    const response = await app.request(path);
    // The media type alone: Hono writes its charset parameter with and without a space.
    const type = (response.headers.get('content-type') ?? '').split(';')[0];
    return { status: response.status, type, text: await response.text() };
  };
  return { state, metrics, get, app };
}

/** One sample's value from exposition text, by its name with labels as written; undefined if absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('render server routes', () => {
  test('/healthz is 200 ok; /readyz is 503 until registered, 200 while registered, 503 again once it stops', async () => {
    const { state, get } = setup();
    assert.deepEqual(await get('/healthz'), { status: 200, type: 'text/plain', text: 'ok' });
    assert.deepEqual(await get('/readyz'), { status: 503, type: 'text/plain', text: 'not registered with a dispatcher' });
    state.registered = true;
    assert.equal((await get('/readyz')).status, 200);
    assert.equal((await get('/readyz')).text, 'ready');
    state.registered = false;
    assert.equal((await get('/readyz')).status, 503, 'a registration lost is not ready');
    state.registered = true;
    state.stopping = true;
    assert.deepEqual(await get('/readyz'), { status: 503, type: 'text/plain', text: 'shutting down' });
    assert.equal((await get('/healthz')).status, 200, 'alive while it stops');
  });

  test('/about is the id, size, fps, registration and client, and nothing else', async () => {
    const { state, get } = setup();
    state.registered = true;
    state.client = 'connected';
    state.fps = 29.87;
    const about = await get('/about');
    assert.equal(about.status, 200);
    assert.deepEqual(JSON.parse(about.text), { id: 'render-1', size: 128, targetFps: 30, fps: 29.9, registered: true, client: 'connected' });
  });

  test('/metrics counts what the frame loop reports and shows the states at the scrape', async () => {
    const { state, metrics, get, app } = setup();
    const before = await get('/metrics');
    assert.equal(before.status, 200);
    assert.match((await app.request('/metrics')).headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/, "Prometheus's text format");
    assert.equal(sample(before.text, 'render_dispatch_render_frames_sent_total'), 0);
    assert.equal(sample(before.text, 'render_dispatch_render_clients_connected'), 0);
    assert.equal(sample(before.text, 'render_dispatch_render_registered'), 0);
    assert.equal(sample(before.text, 'render_dispatch_render_tickets_refused_total{reason="busy"}'), 0, 'every kind of refusal is there from the start');
    assert.ok(sample(before.text, 'process_cpu_user_seconds_total') !== undefined, 'with the default process metrics');

    metrics.meter.drawn(0.003);
    metrics.meter.encoded(0.002);
    metrics.meter.sent(1500);
    metrics.meter.drawn(0.004);
    metrics.meter.skipped();
    metrics.refused('used');
    state.client = 'connected';
    state.registered = true;
    state.fps = 30;
    const after = (await get('/metrics')).text;
    assert.equal(sample(after, 'render_dispatch_render_frames_rendered_total'), 2);
    assert.equal(sample(after, 'render_dispatch_render_frames_sent_total'), 1);
    assert.equal(sample(after, 'render_dispatch_render_frames_skipped_total'), 1);
    assert.equal(sample(after, 'render_dispatch_render_sent_bytes_total'), 1500);
    assert.equal(sample(after, 'render_dispatch_render_frame_seconds_count'), 2);
    assert.equal(sample(after, 'render_dispatch_render_frame_seconds_bucket{le="0.005"}'), 2);
    assert.equal(sample(after, 'render_dispatch_render_encode_seconds_count'), 1);
    assert.equal(sample(after, 'render_dispatch_render_tickets_refused_total{reason="used"}'), 1);
    assert.equal(sample(after, 'render_dispatch_render_clients_connected'), 1);
    assert.equal(sample(after, 'render_dispatch_render_registered'), 1);
    assert.equal(sample(after, 'render_dispatch_render_fps'), 30);
  });

  test('two servers in one process count apart', async () => {
    const one = setup();
    const two = setup();
    one.metrics.meter.sent(10);
    assert.equal(sample((await one.get('/metrics')).text, 'render_dispatch_render_frames_sent_total'), 1);
    assert.equal(sample((await two.get('/metrics')).text, 'render_dispatch_render_frames_sent_total'), 0);
  });

  test('an unknown route is 404 naming it', async () => {
    const { get } = setup();
    assert.deepEqual(await get('/nope'), { status: 404, type: 'text/plain', text: 'no route for GET /nope' });
  });
});
