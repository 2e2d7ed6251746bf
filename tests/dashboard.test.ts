// The operator's dashboard in Chromium against a real dispatcher: refused without the secret;
// signed in, it shows a render server appear, go busy as its client arrives, be drained with the
// page's own button, go offline and disappear when its rows are purged, with the events in the
// log and the charts and tiles fed live. A screenshot is left in tests/output/dashboard.png (the
// README's is a copy of one).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from './browser-helpers.ts';
import { ROOT, askJson, freePort, simulateRenderServer, startDispatcher, testSecret, waitFor, type Proc, type SimulatedServer } from './helpers.ts';

describe('the dashboard', () => {
  let port: number;
  let dispatcher: Proc;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const sims: SimulatedServer[] = [];

  before(async () => {
    port = await freePort();
    // Rows of servers gone are purged after a second, so the dashboard can show one disappear.
    dispatcher = startDispatcher(port, ':memory:', ['--retention', '1s']);
    await dispatcher.waitForOutput(/listening on/);
    browser = await launchChromium();
  });
  after(async () => {
    for (const sim of sims) sim.close();
    await browser?.close();
    await dispatcher.stop();
  });

  /** The state shown in the row of server `id`, or null when there is no such row. */
  const rowState = (id: string) =>
    page.evaluate((serverId) => document.querySelector(`#servers tr[data-id="${serverId}"]`)?.getAttribute('data-state') ?? null, id);
  const tile = (name: string) => page.evaluate((n) => document.querySelector(`[data-tile="${n}"] b`)?.textContent ?? null, name);

  test('without the secret, or with a wrong one, it is refused (headless Chromium gives up rather than ask)', async () => {
    for (const credentials of [undefined, { username: 'operator', password: 'not-the-secret-at-all' }]) {
      const context = await browser.newContext(credentials ? { httpCredentials: credentials } : {});
      const page = await context.newPage();
      const shown = await page.goto(`http://127.0.0.1:${port}/dashboard`).catch((error: Error) => error.message);
      assert.ok(typeof shown === 'string' ? shown.includes('ERR_INVALID_AUTH_CREDENTIALS') : shown?.status() === 401, String(shown));
      const response = await context.request.get(`http://127.0.0.1:${port}/dashboard`);
      assert.equal(response.status(), 401);
      await context.close();
    }
  });

  test('signed in, it shows a server appear, go busy, be drained and disappear, live', async () => {
    context = await browser.newContext({ httpCredentials: { username: 'operator', password: testSecret() }, viewport: { width: 1280, height: 1000 } });
    page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(`http://127.0.0.1:${port}/dashboard`);
    await waitFor('the feed live', async () => (await page.textContent('#feed-state')) === 'live');

    const sim = await simulateRenderServer(port, 'dash-1', 'ws://127.0.0.1:41001/stream');
    sims.push(sim);
    await waitFor('the row, ready', async () => (await rowState('dash-1')) === 'ready');
    await waitFor('the ready tile', async () => (await tile('ready')) === '1');
    await waitFor('server.new in the log', async () => ((await page.textContent('#events')) ?? '').includes('server.new render dash-1'));

    const answer = await askJson(port, { requestId: 'dash-page' });
    assert.equal(answer.type, 'server_url');
    sim.report('connected');
    await waitFor('the row, busy', async () => (await rowState('dash-1')) === 'busy');
    await waitFor('a hand-out counted in the chart data', async () => Number(await tile('busy')) === 1);

    await page.click('#servers tr[data-id="dash-1"] button[data-action="drain"]');
    await waitFor('the row, draining', async () => (await rowState('dash-1')) === 'draining');
    await waitFor('server.lost drained in the log', async () => ((await page.textContent('#events')) ?? '').includes('server.lost render dash-1'));
    mkdirSync(join(ROOT, 'tests', 'output'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'tests', 'output', 'dashboard.png'), fullPage: true });

    sim.close();
    await waitFor('the row, offline', async () => (await rowState('dash-1')) === 'offline');
    await waitFor('the row gone once purged', async () => (await rowState('dash-1')) === null, 20_000);
    assert.deepEqual(errors, []);
  });
});
