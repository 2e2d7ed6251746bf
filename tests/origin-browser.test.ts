// A web page from another site, open in the operator's browser, tries what the defaults forbid:
// to reserve a server on /stream, to register on the control channel, to drain a server. Chromium
// reaches the page as http://evil.example (mapped to 127.0.0.1 by its resolver, so nothing leaves
// the machine). The same page against a dispatcher that allows its origin does reserve a server:
// the refusals are the dispatcher's, not the browser's.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { launchChromium } from './browser-helpers.ts';
import { freePort, servers, simulateRenderServer, startDispatcher, type Proc, type SimulatedServer } from './helpers.ts';

const ATTACK_PAGE = `<!doctype html><title>an ordinary site</title><script>
const params = new URLSearchParams(location.search);
const base = '127.0.0.1:' + params.get('port');
window.results = {};
function socket(name, path, message) {
  return new Promise((resolve) => {
    const ws = new WebSocket('ws://' + base + path);
    ws.onopen = () => { window.results[name] = 'opened'; if (message) ws.send(message); else resolve(); };
    ws.onmessage = (m) => { window.results[name] = 'answered ' + m.data; ws.close(); resolve(); };
    ws.onclose = (e) => { window.results[name] = window.results[name] || 'refused ' + e.code; resolve(); };
  });
}
window.done = Promise.all([
  socket('stream', '/stream', 'get_server_url'),
  socket('control', '/v1/control', null),
  fetch('http://' + base + '/v1/servers/' + params.get('victim') + '/drain', { method: 'POST', mode: 'no-cors' })
    .then(() => { window.results.drain = 'sent'; }, (e) => { window.results.drain = 'failed ' + e; }),
]);
</script>`;

describe('a page from another origin in Chromium', () => {
  let browser: Browser;
  let site: Server;
  let sitePort: number;
  let guarded: { port: number; proc: Proc; fleet: SimulatedServer[] };
  let open: { port: number; proc: Proc; fleet: SimulatedServer[] };

  async function dispatcher(extra: string[]) {
    const port = await freePort();
    const proc = startDispatcher(port, ':memory:', extra);
    await proc.waitForOutput(/listening/);
    const fleet = await Promise.all([0, 1].map((i) => simulateRenderServer(port, `victim-${i}`, `ws://127.0.0.1:${23000 + port % 1000 * 2 + i}/stream`)));
    return { port, proc, fleet };
  }

  before(async () => {
    site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(ATTACK_PAGE));
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    sitePort = (site.address() as AddressInfo).port;
    guarded = await dispatcher([]);
    open = await dispatcher(['--allow-origin', `http://evil.example:${sitePort}`]);
    browser = await launchChromium(['--host-resolver-rules=MAP evil.example 127.0.0.1']);
  });
  after(async () => {
    await browser?.close();
    for (const d of [guarded, open]) {
      for (const server of d?.fleet ?? []) server.close();
      await d?.proc.stop();
    }
    site?.close();
  });

  async function attack(port: number): Promise<Record<string, string>> {
    const page = await browser.newPage();
    await page.goto(`http://evil.example:${sitePort}/?port=${port}&victim=victim-0`);
    await page.evaluate(() => (window as unknown as { done: Promise<unknown> }).done);
    const results = await page.evaluate(() => (window as unknown as { results: Record<string, string> }).results);
    await page.close();
    return results;
  }

  test('with the defaults it can neither reserve, nor register, nor drain', async () => {
    const results = await attack(guarded.port);
    assert.match(results.stream, /^refused /);
    assert.match(results.control, /^refused /);
    const states = (await servers(guarded.port)).map((s) => [s.id, s.state]);
    assert.deepEqual(states, [['victim-0', 'ready'], ['victim-1', 'ready']]);
  });

  test('the same page, its origin allowed on /stream, reserves a server (and still cannot register or drain)', async () => {
    const results = await attack(open.port);
    assert.match(results.stream, /^answered ws:\/\/127\.0\.0\.1:\d+\/stream\?ticket=/);
    assert.match(results.control, /^refused /);
    const states = (await servers(open.port)).map((s) => s.state).sort();
    assert.deepEqual(states, ['ready', 'reserved']);
  });
});
