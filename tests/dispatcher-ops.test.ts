// Operating the dispatcher, on real processes: /metrics scraped as the system moves (a none, a
// render server registering, a hand-out, heartbeats, store calls, the server lost), --no-metrics
// serving none, and JSON logs from both programs that follow one page from its request (by its
// request id) to its stream (by the ticket's id, which the render server logs on connecting).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { askJson, connectFrames, freePort, startDispatcher, startRender, waitFor, type Proc } from './helpers.ts';

const running: Proc[] = [];
after(async () => {
  await Promise.all(running.splice(0).map((proc) => proc.stop()));
});

/** The value of one series in a Prometheus text page (labels as written, e.g. `{source="local"}`), or null. */
function metric(text: string, name: string, labels = ''): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const scrape = async (port: number) => {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return response.text();
};

/** The JSON lines of a process's output (every line must be one). */
function jsonLines(output: string): Record<string, unknown>[] {
  return output.trim().split('\n').map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`not a JSON line: ${line}`);
    }
  });
}

describe('operating the dispatcher', () => {
  test('/metrics moves as the system does, and JSON logs follow a page from its request to its stream', async () => {
    const [port, renderPort] = await Promise.all([freePort(), freePort()]);
    const dispatcher = startDispatcher(port, ':memory:', ['--log-format', 'json', '--verbose']);
    running.push(dispatcher);
    await dispatcher.waitForOutput(/listening on/);

    const start = await scrape(port);
    assert.equal(metric(start, 'render_dispatch_handouts_total', '{source="local"}'), 0);
    assert.equal(metric(start, 'render_dispatch_none_total'), 0);
    assert.equal(metric(start, 'render_dispatch_servers', '{state="ready"}'), 0);
    assert.ok((metric(start, 'process_cpu_seconds_total') ?? -1) >= 0);

    assert.equal((await askJson(port, { requestId: 'too-early' })).type, 'none');
    const render = startRender(renderPort, port, ['--log-format', 'json']);
    running.push(render);
    await waitFor('the render server ready', async () => metric(await scrape(port), 'render_dispatch_servers', '{state="ready"}') === 1, 20_000);
    const beatsBefore = metric(await scrape(port), 'render_dispatch_heartbeats_total')!;

    const answer = await askJson(port, { requestId: 'follow-me', session: 'session-follow-me' });
    assert.equal(answer.type, 'server_url');
    const client = await connectFrames(answer.url!);
    await waitFor('frames', () => client.frames.length >= 2);

    await waitFor('heartbeats counted', async () => metric(await scrape(port), 'render_dispatch_heartbeats_total')! >= beatsBefore + 2, 10_000);
    const during = await scrape(port);
    assert.equal(metric(during, 'render_dispatch_none_total'), 1);
    assert.equal(metric(during, 'render_dispatch_handouts_total', '{source="local"}'), 1);
    assert.equal(metric(during, 'render_dispatch_servers_registered_total'), 1);
    assert.equal(metric(during, 'render_dispatch_request_duration_seconds_count'), 2);
    assert.equal(metric(during, 'render_dispatch_page_connections'), 0);
    assert.ok(metric(during, 'render_dispatch_store_duration_seconds_count', '{method="allocate"}')! >= 1);
    await waitFor('the server busy', async () => metric(await scrape(port), 'render_dispatch_servers', '{state="busy"}') === 1);

    client.ws.close();
    await render.stop();
    await waitFor('the server lost', async () => {
      const text = await scrape(port);
      return ['closed', 'drained'].some((reason) => metric(text, 'render_dispatch_servers_lost_total', `{reason="${reason}"}`) === 1);
    });

    // The page's request id leads to the grant, and the grant (the ticket's jti) to the stream.
    const handedOut = jsonLines(dispatcher.output()).find((line) => line.requestId === 'follow-me' && String(line.msg).startsWith('handed out'));
    assert.ok(handedOut, dispatcher.output());
    assert.equal(handedOut.session, 'session-follow-me');
    assert.equal(typeof handedOut.grant, 'string');
    const connected = jsonLines(render.output()).find((line) => line.msg === 'client connected');
    assert.ok(connected, render.output());
    assert.equal(connected.jti, handedOut.grant);
    assert.equal(connected.serverId, handedOut.serverId);
    for (const line of jsonLines(dispatcher.output())) {
      assert.equal(typeof line.level, 'string');
      assert.equal(typeof line.time, 'string');
      assert.equal(line.program, 'dispatcher');
    }
    assert.doesNotMatch(dispatcher.output() + render.output(), /ticket=/);
  });

  test('--no-metrics serves none', async () => {
    const port = await freePort();
    const dispatcher = startDispatcher(port, ':memory:', ['--no-metrics']);
    running.push(dispatcher);
    await dispatcher.waitForOutput(/listening on/);
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.deepEqual([response.status, await response.text()], [404, 'metrics are off (--no-metrics)']);
    await dispatcher.stop();
  });
});
